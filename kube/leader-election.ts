/**
 * Leader election on a coordination.k8s.io/v1 Lease — the home's "chief": only the
 * holder runs the controllers. Follows client-go's leaderelection: a candidate takes
 * the Lease when it is absent, empty, or has not been renewed for leaseDuration as
 * measured on the candidate's own clock since it last saw the record change (so no
 * clock skew between homes matters); the leader renews every retryPeriod and steps
 * down when it could not renew within renewDeadline. Writes are guarded by the
 * resourceVersion, so two candidates never both win.
 */
import type { Logger } from 'pino';
import { isConflict, type KubeClient, type KubeObject } from './client.js';
import { Resources } from './kinds.js';

export interface LeaderElectionConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

/** A metav1.MicroTime (what Lease times are): RFC 3339 with microseconds. */
export function microTime(d: Date): string {
  return d.toISOString().replace('Z', '000Z');
}

export interface LeaderCallbacks {
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private observed: { record: string; at: number } | undefined;
  private lastRenew = 0;
  /** The last failed request's message: the same failure every retry period is logged once. */
  private lastFailure: string | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly config: LeaderElectionConfig,
    private readonly callbacks: LeaderCallbacks,
    private readonly log: Logger,
  ) {}

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.stopped = false;
    this.loop = this.tick();
  }

  /** Stops campaigning; a leader releases the Lease so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.loop;
    if (this.leading) {
      this.setLeading(false);
      try {
        const lease = await this.client.get<Lease>(Resources.Lease, this.config.name, this.config.namespace);
        if (lease?.spec?.holderIdentity === this.config.identity) {
          await this.client.update<Lease>({
            ...lease,
            spec: {
              ...lease.spec,
              holderIdentity: null,
              leaseDurationSeconds: 1,
              renewTime: microTime(new Date()),
            },
          });
          this.log.info({ lease: this.config.name }, 'released leader lease');
        }
      } catch (err) {
        this.log.warn({ err: String(err) }, 'could not release leader lease');
      }
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.loop = this.tick();
    }, this.config.retryPeriodMs);
  }

  private async tick(): Promise<void> {
    try {
      const ok = await this.tryAcquireOrRenew();
      this.lastFailure = undefined;
      if (ok) {
        this.lastRenew = Date.now();
        if (!this.leading) this.setLeading(true);
      } else if (this.leading) {
        this.log.warn({ lease: this.config.name }, 'lost the leader lease to another holder');
        this.setLeading(false);
      }
    } catch (err) {
      // e.g. its namespace deleted: the same 404 every retry period is one warning, not one per 2 s
      const message = err instanceof Error ? err.message : String(err);
      this.log[message === this.lastFailure ? 'debug' : 'warn'](
        { err: message },
        'leader election: lease request failed',
      );
      this.lastFailure = message;
      if (this.leading && Date.now() - this.lastRenew > this.config.renewDeadlineMs) {
        this.log.warn(
          { lease: this.config.name },
          'could not renew the leader lease within the renew deadline; stepping down',
        );
        this.setLeading(false);
      }
    }
    this.schedule();
  }

  private setLeading(leading: boolean): void {
    this.leading = leading;
    this.log.info(
      { lease: this.config.name, identity: this.config.identity, leading },
      leading ? 'became leader' : 'stopped leading',
    );
    if (leading) this.callbacks.onStartedLeading();
    else this.callbacks.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.config;
    const now = new Date();
    const durationSeconds = Math.max(1, Math.round(this.config.leaseDurationMs / 1000));
    const lease = await this.client.get<Lease>(Resources.Lease, name, namespace);
    if (!lease) {
      try {
        await this.client.create<Lease>({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        });
        return true;
      } catch (err) {
        if (isConflict(err)) return false;
        throw err;
      }
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseDurationSeconds]);
    if (!this.observed || this.observed.record !== record) this.observed = { record, at: Date.now() };
    const holder = spec.holderIdentity ?? '';
    const heldByOther = holder !== '' && holder !== identity;
    const durationMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (heldByOther && this.observed.at + durationMs > Date.now()) return false;
    const next: LeaseSpec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      renewTime: microTime(now),
    };
    if (holder !== identity) {
      next.acquireTime = microTime(now);
      next.leaseTransitions = (spec.leaseTransitions ?? 0) + 1;
    }
    try {
      const updated = await this.client.update<Lease>({ ...lease, spec: next });
      const s = updated.spec ?? {};
      this.observed = {
        record: JSON.stringify([s.holderIdentity, s.renewTime, s.leaseDurationSeconds]),
        at: Date.now(),
      };
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }
}
