/**
 * The small client the controllers talk through: get, list, server-side apply (also
 * on /status), patch, delete and create over one keep-alive HTTPS agent, with the
 * kubeconfig's credentials. Every request is counted (metric
 * pcloud_api_requests_total) so the benchmark can report what reconciling costs.
 */
import https from 'node:https';
import http from 'node:http';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { resourceOf, resourcePath, type ResourceType } from './kinds.js';

export interface KubeObject extends KubernetesObject {
  metadata?: KubernetesObject['metadata'] & { [k: string]: unknown };
  [k: string]: unknown;
}

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: ${statusCode} ${reason}: ${message}`);
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiError && err.statusCode === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof ApiError && err.statusCode === 409;
}

/** 4xx other than conflict / throttling: the request itself is wrong and will stay wrong. */
export function isInvalid(err: unknown): boolean {
  return err instanceof ApiError && (err.statusCode === 422 || err.statusCode === 400);
}

export type RequestObserver = (method: string, statusCode: number) => void;

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
}

export class KubeClient {
  private constructor(
    private readonly server: URL,
    private readonly agent: http.Agent,
    private readonly headers: Record<string, string>,
    private readonly observe: RequestObserver,
  ) {}

  static async fromKubeConfig(kc: KubeConfig, observe: RequestObserver = () => {}): Promise<KubeClient> {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const server = new URL(cluster.server);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = String(v);
    const agent =
      server.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            maxSockets: 32,
            ca: opts.ca,
            cert: opts.cert,
            key: opts.key,
            rejectUnauthorized: cluster.skipTLSVerify ? false : undefined,
            servername: cluster.tlsServerName,
          })
        : new http.Agent({ keepAlive: true, maxSockets: 32 });
    if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    return new KubeClient(server, agent, headers, observe);
  }

  close(): void {
    this.agent.destroy();
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(options.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = { ...this.headers, Accept: 'application/json' };
    if (body !== undefined) {
      headers['Content-Type'] = options.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(body));
    }
    const lib = url.protocol === 'https:' ? https : http;
    const { statusCode, text } = await new Promise<{ statusCode: number; text: string }>(
      (resolve, reject) => {
        const req = lib.request(url, { method, headers, agent: this.agent, timeout: 60_000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ statusCode: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: timed out`)));
        req.on('error', (err) => {
          this.observe(method, 0);
          reject(err);
        });
        if (body !== undefined) req.write(body);
        req.end();
      },
    );
    this.observe(method, statusCode);
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (statusCode < 200 || statusCode >= 300) {
      const status = (json ?? {}) as { reason?: string; message?: string };
      throw new ApiError(
        statusCode,
        status.reason ?? 'Unknown',
        status.message ?? text.slice(0, 200),
        method,
        url.pathname,
      );
    }
    return json as T;
  }

  async get<T extends KubeObject>(
    type: ResourceType,
    name: string,
    namespace?: string,
  ): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', resourcePath(type, namespace, name));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Lists every page (500 at a time); the list's resourceVersion is the last page's. */
  async list<T extends KubeObject>(
    type: ResourceType,
    opts: { namespace?: string; labelSelector?: string } = {},
  ): Promise<KubernetesListObject<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let last: KubernetesListObject<T> | undefined;
    do {
      last = await this.request<KubernetesListObject<T>>('GET', resourcePath(type, opts.namespace), {
        query: { labelSelector: opts.labelSelector, limit: 500, continue: cont },
      });
      items.push(...(last.items ?? []));
      cont = (last.metadata as { continue?: string } | undefined)?.continue;
    } while (cont);
    return { ...last, items };
  }

  /**
   * Server-side apply: the object is the full intent of fieldManager; fields it
   * applied before and omits now are removed; force takes over conflicting fields.
   */
  async apply<T extends KubeObject>(
    obj: T,
    fieldManager: string,
    opts: { subresource?: 'status' } = {},
  ): Promise<T> {
    if (!obj.apiVersion || !obj.kind || !obj.metadata?.name)
      throw new Error('apply needs apiVersion, kind and name');
    const type = resourceOf(obj.apiVersion, obj.kind);
    const path =
      resourcePath(type, obj.metadata.namespace, obj.metadata.name) +
      (opts.subresource ? `/${opts.subresource}` : '');
    return this.request<T>('PATCH', path, {
      query: { fieldManager, force: true },
      body: obj,
      contentType: 'application/apply-patch+yaml',
    });
  }

  /** Server-side apply of status only (the controller's own status fields). */
  async applyStatus<T extends KubeObject>(obj: T, fieldManager: string): Promise<T> {
    return this.apply(obj, fieldManager, { subresource: 'status' });
  }

  async mergePatch<T extends KubeObject>(
    type: ResourceType,
    name: string,
    namespace: string | undefined,
    patch: unknown,
  ): Promise<T> {
    return this.request<T>('PATCH', resourcePath(type, namespace, name), {
      body: patch,
      contentType: 'application/merge-patch+json',
    });
  }

  async jsonPatch<T extends KubeObject>(
    type: ResourceType,
    name: string,
    namespace: string | undefined,
    ops: unknown[],
  ): Promise<T> {
    return this.request<T>('PATCH', resourcePath(type, namespace, name), {
      body: ops,
      contentType: 'application/json-patch+json',
    });
  }

  async create<T extends KubeObject>(obj: T): Promise<T> {
    const type = resourceOf(obj.apiVersion ?? '', obj.kind ?? '');
    return this.request<T>('POST', resourcePath(type, obj.metadata?.namespace), { body: obj });
  }

  /** Replace (PUT) with the object's resourceVersion as precondition: 409 when it changed. */
  async update<T extends KubeObject>(obj: T): Promise<T> {
    const type = resourceOf(obj.apiVersion ?? '', obj.kind ?? '');
    return this.request<T>('PUT', resourcePath(type, obj.metadata?.namespace, obj.metadata?.name), {
      body: obj,
    });
  }

  /** Deletes; false when it was already gone. */
  async delete(
    type: ResourceType,
    name: string,
    namespace?: string,
    opts: { propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'; uid?: string } = {},
  ): Promise<boolean> {
    try {
      await this.request('DELETE', resourcePath(type, namespace, name), {
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          propagationPolicy: opts.propagationPolicy ?? 'Background',
          ...(opts.uid ? { preconditions: { uid: opts.uid } } : {}),
        },
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}
