/**
 * The matchmaker as a reconciler of one key: the runtime's work queue drives the pass.
 * Any change calls `changed()`, which queues the key after the quiet time (`addAfter`;
 * an earlier pending delay wins). When the key comes up, a burst that is still going on
 * puts it back until it has been quiet for `debounceQuietMs`, but never later than
 * `debounceMaxMs` after its first change. A pass also queues the key for the moment the
 * next present peer's heartbeat lapses. Failed writes are thrown as one AggregateError,
 * so the queue retries with its per-key backoff; one key means passes never overlap.
 */
import type { Logger } from 'pino';
import type { Reconciler, ReconcileResult } from '../../kube/controller.js';
import { runPass, type PassDeps, type PassResult } from './pass.js';

export const PASS_KEY = 'federation';

export interface MatchmakerReconcilerOptions extends PassDeps {
  debounceQuietMs: number;
  debounceMaxMs: number;
  /**
   * Resolves true once every cache the pass reads has synced, false when this term as
   * leader ends first (a pass on caches that never synced would delete what it cannot see).
   */
  waitForSync: () => Promise<boolean>;
  /** Queue the key after ms (the controller's enqueueAfter). */
  enqueueAfter: (key: string, ms: number) => void;
  /** Called after every pass with its result and wall time. */
  onPass?: (result: PassResult, passMs: number) => void;
}

export class MatchmakerReconciler implements Reconciler {
  readonly name = 'matchmaker';
  private firstChange: number | undefined;
  private lastChange: number | undefined;
  private last: PassResult | undefined;

  constructor(private readonly o: MatchmakerReconcilerOptions) {}

  allKeys(): string[] {
    return [PASS_KEY];
  }

  /** Something the pass reads changed. */
  changed(): void {
    const t = this.o.now();
    this.firstChange ??= t;
    this.lastChange = t;
    this.o.enqueueAfter(PASS_KEY, this.o.debounceQuietMs);
  }

  /** A new term as leader: solve afresh, right away. */
  reset(): void {
    this.firstChange = this.lastChange = undefined;
    this.o.matcher.reset();
  }

  lastPass(): PassResult | undefined {
    return this.last;
  }

  async reconcile(_key: string, log: Logger): Promise<ReconcileResult | void> {
    if (!(await this.o.waitForSync())) return;
    const t = this.o.now();
    if (this.firstChange !== undefined && this.lastChange !== undefined) {
      const due = Math.min(this.lastChange + this.o.debounceQuietMs, this.firstChange + this.o.debounceMaxMs);
      if (t < due) return { requeueAfterMs: due - t };
    }
    this.firstChange = this.lastChange = undefined; // changes from now on start a new burst
    const { result, failures } = await runPass({ ...this.o, log });
    const passMs = this.o.now() - t;
    this.last = result;
    this.o.onPass?.(result, passMs);
    if (result.solved || failures.length > 0)
      log.info({ ...result, present: result.present.length, passMs }, 'matchmaking pass');
    const lapse = this.o.presence.msUntilNextLapse();
    if (lapse !== undefined) this.o.enqueueAfter(PASS_KEY, lapse + 50);
    if (failures.length > 0)
      throw new AggregateError(
        failures,
        `${failures.length} matchmaker write(s) failed: ${failures[0]!.message}`,
      );
  }
}
