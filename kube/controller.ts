/**
 * One controller: informer events become keys in a work queue; workers take keys one
 * at a time per key and call reconcile(key), which re-reads the object from the
 * informer cache (never trusting the event). A thrown error is retriable: the key is
 * requeued with the queue's per-key exponential backoff. A returned requeueAfter asks
 * for a later look (e.g. waiting for a namespace to finish terminating). Success
 * forgets the key's backoff.
 *
 * Workers run only while this process leads (start/stop follow the Lease); the
 * informers run all the time, so a standby's cache is warm when it takes over.
 * Controllers are usually built and wired with Manager.controller(...) (manager.ts).
 */
import type { Logger } from 'pino';
import type { OperatorMetrics } from './metrics.js';
import { WorkQueue, defaultRateLimiter, type RateLimiter } from './work-queue.js';

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface Reconciler {
  readonly name: string;
  /** Every key the controller is responsible for now (for a full resync on taking over). */
  allKeys(): string[];
  reconcile(key: string, log: Logger): Promise<ReconcileResult | void>;
}

export class Controller {
  private queue: WorkQueue | undefined;
  private workers: Promise<void>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly reconciler: Reconciler,
    private readonly log: Logger,
    private readonly metrics: OperatorMetrics,
    private readonly options: { workers?: number; resyncMs?: number; rateLimiter?: () => RateLimiter } = {},
  ) {}

  get name(): string {
    return this.reconciler.name;
  }

  /** Queue a key (ignored while not running: a new leader resyncs everything). */
  enqueue(key: string): void {
    this.queue?.add(key);
  }

  enqueueAfter(key: string, ms: number): void {
    this.queue?.addAfter(key, ms);
  }

  /** Queue every key the reconciler is responsible for. */
  resync(): void {
    if (!this.queue) return;
    for (const key of this.reconciler.allKeys()) this.queue.add(key);
  }

  isRunning(): boolean {
    return this.queue !== undefined;
  }

  depth(): number {
    return this.queue?.len() ?? 0;
  }

  busy(): number {
    return (this.queue?.len() ?? 0) + (this.queue?.inFlight() ?? 0);
  }

  start(): void {
    if (this.queue) return;
    const depth = this.metrics.queueDepth.labels(this.name);
    const queue = new WorkQueue((this.options.rateLimiter ?? defaultRateLimiter)(), (d) => depth.set(d));
    this.queue = queue;
    for (const key of this.reconciler.allKeys()) queue.add(key);
    const n = this.options.workers ?? 4;
    this.workers = Array.from({ length: n }, () => this.work(queue));
    if (this.options.resyncMs) {
      this.resyncTimer = setInterval(() => {
        for (const key of this.reconciler.allKeys()) queue.add(key);
      }, this.options.resyncMs);
      this.resyncTimer.unref();
    }
    this.log.info({ controller: this.name, workers: n }, 'controller started');
  }

  /** Stops taking keys; reconciles in flight finish. */
  async stop(): Promise<void> {
    const queue = this.queue;
    if (!queue) return;
    this.queue = undefined;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    queue.shutDown();
    await Promise.all(this.workers);
    this.workers = [];
    this.log.info({ controller: this.name }, 'controller stopped');
  }

  private async work(queue: WorkQueue): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const log = this.log.child({ controller: this.name, key });
      const end = this.metrics.reconcileDuration.labels(this.name).startTimer();
      try {
        const result = await this.reconciler.reconcile(key, log);
        queue.forget(key);
        if (result?.requeueAfterMs !== undefined) {
          queue.addAfter(key, result.requeueAfterMs);
          this.metrics.reconcileTotal.labels(this.name, 'requeue').inc();
        } else {
          this.metrics.reconcileTotal.labels(this.name, 'success').inc();
        }
      } catch (err) {
        this.metrics.reconcileTotal.labels(this.name, 'error').inc();
        this.metrics.reconcileErrors.labels(this.name).inc();
        const retries = queue.numRequeues(key);
        // A reconciler that collected several failures (one per child) throws an
        // AggregateError: every one is logged, not only the first.
        const errors = err instanceof AggregateError ? (err.errors as unknown[]) : [err];
        for (const e of errors)
          log.warn(
            { err: e instanceof Error ? e.message : String(e), retries },
            'reconcile failed; requeued with backoff',
          );
        queue.addRateLimited(key);
      } finally {
        end();
        queue.done(key);
      }
    }
  }
}
