/**
 * The small client the controllers talk through: get, list, server-side apply (also
 * on /status), patch, delete and create over one keep-alive HTTPS agent, with the
 * kubeconfig's credentials. Every request is counted (metric
 * pcloud_api_requests_total) so the benchmark can report what reconciling costs.
 *
 * Every write asks for strict field validation (`fieldValidation=Strict`): a field the
 * kind's schema does not know (a misspelling in a builder) is a 400/422 naming the
 * field, not a silent drop. The API server's `Warning` response headers (deprecated
 * APIs, duplicate fields in a list, ...) go to the onWarning callback, by default a
 * warn line on stderr.
 */
import https from 'node:https';
import http from 'node:http';
import type {
  KubeConfig,
  KubernetesListObject,
  KubernetesObject,
  V1ObjectMeta,
} from '@kubernetes/client-node';
import { pino } from 'pino';
import { resourceOf, resourcePath, type ResourceType } from './kinds.js';

export interface KubeObject extends KubernetesObject {
  metadata?: KubernetesObject['metadata'] & { [k: string]: unknown };
  [k: string]: unknown;
}

/**
 * An object of a generated kind type (generated/*.ts) as the client reads and writes
 * it: e.g. `Typed<VirtualMachine>` from an informer cache.
 */
export type Typed<T> = T & KubeObject;

/**
 * What a desired-state builder returns: a `Typed<T>` whose metadata names it. The
 * return type of a builder, so a field T's schema does not know fails `tsc`.
 */
export type Desired<T> = Typed<T> & { metadata: V1ObjectMeta & { name: string } };

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

/** Called once per request: its verb, HTTP status (0 = no response) and URL path. */
export type RequestObserver = (method: string, statusCode: number, path: string) => void;

/** One `Warning` header of an API response (RFC 7234: `299 - "text"`). */
export interface ApiWarning {
  method: string;
  path: string;
  /** The warn-code, 299 for the API server's own warnings. */
  code: number;
  /** The warn-text, unquoted. */
  text: string;
}

export interface KubeClientOptions {
  /** Called for every Warning header of every response; default: a warn line on stderr. */
  onWarning?: (warning: ApiWarning) => void;
}

/** The writes, which all ask for strict field validation. */
const WRITES = new Set(['POST', 'PUT', 'PATCH']);

/** The message of a server-side apply of an object its schema does not describe (see request()). */
const TYPED_PATCH_ERROR = /^failed to create typed patch object \(.*\): .*field not declared in schema/;

/**
 * The Warning headers of a response, one per header line (rawHeaders: Node joins
 * repeated headers with ", ", which the quoted texts may themselves contain).
 */
export function parseWarnings(rawHeaders: readonly string[]): Array<{ code: number; text: string }> {
  const out: Array<{ code: number; text: string }> = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'warning') continue;
    const value = rawHeaders[i + 1] ?? '';
    const m = /^(\d{3}) \S+ "((?:[^"\\]|\\.)*)"/.exec(value);
    out.push(
      m ? { code: Number(m[1]), text: (m[2] ?? '').replace(/\\(.)/g, '$1') } : { code: 0, text: value },
    );
  }
  return out;
}

let stderrWarnings: ((w: ApiWarning) => void) | undefined;

/** The default onWarning: one JSON warn line per warning on stderr (stdout may carry a command's output). */
function logWarningToStderr(w: ApiWarning): void {
  if (!stderrWarnings) {
    const log = pino(
      { level: 'warn', base: { component: 'kube-client' }, timestamp: pino.stdTimeFunctions.isoTime },
      pino.destination({ fd: 2, sync: true }),
    );
    stderrWarnings = (warning) =>
      log.warn({ method: warning.method, path: warning.path, code: warning.code }, warning.text);
  }
  stderrWarnings(w);
}

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** Give up after this long without a response (default 60 s). */
  timeoutMs?: number;
}

export class KubeClient {
  private constructor(
    private readonly server: URL,
    private readonly agent: http.Agent,
    private readonly headers: Record<string, string>,
    private readonly observe: RequestObserver,
    private readonly onWarning: (warning: ApiWarning) => void,
  ) {}

  static async fromKubeConfig(
    kc: KubeConfig,
    observe: RequestObserver = () => {},
    options: KubeClientOptions = {},
  ): Promise<KubeClient> {
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
    return new KubeClient(server, agent, headers, observe, options.onWarning ?? logWarningToStderr);
  }

  close(): void {
    this.agent.destroy();
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(options.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    if (WRITES.has(method)) url.searchParams.set('fieldValidation', 'Strict');
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = { ...this.headers, Accept: 'application/json' };
    if (body !== undefined) {
      headers['Content-Type'] = options.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(body));
    }
    const lib = url.protocol === 'https:' ? https : http;
    const { statusCode, text, rawHeaders } = await new Promise<{
      statusCode: number;
      text: string;
      rawHeaders: string[];
    }>((resolve, reject) => {
      const req = lib.request(
        url,
        { method, headers, agent: this.agent, timeout: options.timeoutMs ?? 60_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              statusCode: res.statusCode ?? 0,
              text: Buffer.concat(chunks).toString('utf8'),
              rawHeaders: res.rawHeaders,
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: timed out`)));
      req.on('error', (err) => {
        this.observe(method, 0, url.pathname);
        reject(err);
      });
      if (body !== undefined) req.write(body);
      req.end();
    });
    this.observe(method, statusCode, url.pathname);
    for (const w of parseWarnings(rawHeaders)) this.onWarning({ method, path: url.pathname, ...w });
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (statusCode < 200 || statusCode >= 300) {
      const status = (json ?? {}) as { reason?: string; message?: string };
      const message = status.message ?? text.slice(0, 200);
      // kube-apiserver answers a server-side apply whose object has a field the schema does not declare
      // with a 500 ("failed to create typed patch object ...: .spec.x: field not declared in schema",
      // kubernetes/kubernetes#122480, #139253). The request is wrong and stays wrong: a 400, as the
      // pending upstream fix (#139255) makes it, so callers treat it as terminal rather than retry it.
      if (statusCode === 500 && TYPED_PATCH_ERROR.test(message))
        throw new ApiError(400, 'BadRequest', message, method, url.pathname);
      throw new ApiError(statusCode, status.reason ?? 'Unknown', message, method, url.pathname);
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
    opts: { namespace?: string; labelSelector?: string; fieldSelector?: string } = {},
  ): Promise<KubernetesListObject<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let last: KubernetesListObject<T> | undefined;
    do {
      last = await this.request<KubernetesListObject<T>>('GET', resourcePath(type, opts.namespace), {
        query: {
          labelSelector: opts.labelSelector,
          fieldSelector: opts.fieldSelector,
          limit: 500,
          continue: cont,
        },
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

/**
 * What controllers call: the KubeClient's verbs. Reconcilers and the kube/ helpers take
 * this, so a unit test of an error path can hand in a small fake (the integration
 * tests use the real client against a real API server).
 */
export type KubeApi = Pick<
  KubeClient,
  | 'get'
  | 'list'
  | 'apply'
  | 'applyStatus'
  | 'create'
  | 'update'
  | 'delete'
  | 'jsonPatch'
  | 'mergePatch'
  | 'request'
>;
