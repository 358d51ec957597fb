/**
 * A shared informer over @kubernetes/client-node's ListWatch (what makeInformer
 * returns). That ListWatch lists, then watches from the list's resourceVersion; when
 * a watch ends normally it re-watches from the last resourceVersion it saw; on 410
 * Gone (as the HTTP status or as an ERROR event) it clears the resourceVersion and
 * relists, firing delete for objects that vanished meanwhile. What it does not do is
 * come back after an error (API server down, connection refused): it calls its error
 * callbacks and stops. This wrapper restarts it with capped exponential backoff and
 * says when the first list has landed (hasSynced / waitForSync).
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeClient, KubeObject } from './client.js';
import { resourcePath, type ResourceType } from './kinds.js';

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(obj: T): void;
  delete?(obj: T): void;
}

/** What a reconciler reads: an informer's cache (a unit test may hand in a plain one). */
export interface ObjectCache<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export interface InformerOptions {
  labelSelector?: string;
  /** e.g. `metadata.name=federation-join`: one object (RBAC may grant list/watch of that name only). */
  fieldSelector?: string;
  /** List and watch one namespace only (credentials confined to a namespace cannot watch cluster-wide). */
  namespace?: string;
  /** Reconnect backoff (ms): initial and cap. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Called on every (re)connect attempt; used to count watch requests. */
  onConnect?: () => void;
  /** Called when a list or watch fails (before the restart is scheduled). */
  onFailure?: (err: unknown) => void;
  /** Called when a list and watch succeed again after a failure. */
  onRecovered?: () => void;
}

/** The HTTP status of a failed list or watch (ApiError, or client-node's Watch error), if any. */
export function failureStatus(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown } | undefined;
  return typeof e?.statusCode === 'number' ? e.statusCode : undefined;
}

export class Informer<T extends KubeObject> implements ObjectCache<T> {
  private readonly lw: ListWatch<T>;
  private synced = false;
  private stopped = true;
  private attempt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private erroredThisAttempt = false;
  /** The last failure's message: a failure repeating it is logged at debug, not warn. */
  private lastFailure: string | undefined;
  private readonly syncWaiters: Array<() => void> = [];

  constructor(
    kc: KubeConfig,
    client: KubeClient,
    readonly type: ResourceType,
    private readonly log: Logger,
    private readonly options: InformerOptions = {},
  ) {
    const { namespace, labelSelector, fieldSelector } = options;
    const listFn = (): Promise<KubernetesListObject<T>> =>
      client.list<T>(type, { namespace, labelSelector, fieldSelector });
    this.lw = new ListWatch<T>(
      resourcePath(type, namespace),
      new Watch(kc),
      listFn,
      false,
      labelSelector,
      fieldSelector,
    );
    this.lw.on('error', (err?: unknown) => this.onError(err));
    this.lw.on('connect', () => this.options.onConnect?.());
  }

  on(handlers: InformerHandlers<T>): void {
    this.lw.on('add', (o) => handlers.add?.(o));
    this.lw.on('update', (o) => handlers.update?.(o));
    this.lw.on('delete', (o) => handlers.delete?.(o));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.lw.stop();
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace);
  }

  resourceVersion(): string {
    return this.lw.latestResourceVersion();
  }

  private async run(): Promise<void> {
    this.erroredThisAttempt = false;
    try {
      // Resolves once the list is stored and the watch request has its response.
      await this.lw.start();
    } catch (err) {
      this.onError(err);
      return;
    }
    if (this.stopped || this.erroredThisAttempt) return;
    if (this.attempt > 0) {
      this.log.info({ kind: this.type.kind }, 'watch re-established');
      this.lastFailure = undefined;
      this.options.onRecovered?.();
    }
    this.attempt = 0;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private onError(err: unknown): void {
    this.erroredThisAttempt = true;
    if (this.stopped || this.restartTimer) return;
    this.options.onFailure?.(err);
    const initial = this.options.backoffInitialMs ?? 500;
    const max = this.options.backoffMaxMs ?? 30_000;
    const delay = Math.min(max, initial * 2 ** Math.min(this.attempt, 20));
    const jittered = Math.round(delay * (0.8 + Math.random() * 0.4));
    this.attempt++;
    // The same failure again (a removed CRD's 404 every 30 s) is not news: debug, not warn.
    const message = err instanceof Error ? err.message : String(err);
    const level = message === this.lastFailure ? 'debug' : 'warn';
    this.lastFailure = message;
    this.log[level](
      { kind: this.type.kind, err: message, retryInMs: jittered },
      'list/watch failed; reconnecting',
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.stopped) void this.run();
    }, jittered);
    this.restartTimer.unref();
  }
}
