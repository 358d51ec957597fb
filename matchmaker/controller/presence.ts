/**
 * Presence: which peers count, from their heartbeat Leases, on the matchmaker's own
 * clock. A peer is present while its heartbeat's `renewTime` changed within the grace
 * period as observed here (on first sight `renewTime` is trusted, bounded by now), so
 * the homes' clocks never matter once the matchmaker has watched for a while.
 *
 * Two guards keep an outage from looking like every home leaving: a peer that looks
 * lapsed is re-read live before it counts as away (a missed watch event never removes
 * a home), and when the matchmaker's own API requests succeed again after failing (it
 * saw no heartbeats meanwhile) every peer gets a fresh grace period from that moment.
 */
import type { Logger } from 'pino';
import type { KubeObject } from '../../kube/client.js';
import { HEARTBEAT_LEASE, peerNamespace, peerOfNamespace } from '../../api/federation.js';

export interface LeaseObject extends KubeObject {
  spec?: { renewTime?: string; holderIdentity?: string };
}

/** Reads a peer's heartbeat Lease live; undefined when it does not exist. Throws when it cannot ask. */
export type ReadLease = (name: string, namespace: string) => Promise<LeaseObject | undefined>;

export class Presence {
  private readonly seen = new Map<string, { renewTime: string; at: number }>();
  private failingSince: number | undefined;

  constructor(
    private readonly graceMs: number,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /** The peer a heartbeat Lease belongs to, or undefined for any other Lease. */
  static peerOf(l: LeaseObject): string | undefined {
    if (l.metadata?.name !== HEARTBEAT_LEASE) return undefined;
    return peerOfNamespace(l.metadata?.namespace);
  }

  /** A heartbeat was seen (informer event or live read). */
  observe(l: LeaseObject): void {
    const peer = Presence.peerOf(l);
    if (!peer) return;
    const renewTime = l.spec?.renewTime ?? '';
    const prev = this.seen.get(peer);
    if (prev?.renewTime === renewTime) return;
    const at = prev ? this.now() : Math.min(this.now(), Date.parse(renewTime) || 0);
    this.seen.set(peer, { renewTime, at });
  }

  /** The heartbeat Lease was deleted: the peer left. */
  forget(l: LeaseObject): void {
    const peer = peerOfNamespace(l.metadata?.namespace);
    if (peer) this.seen.delete(peer);
  }

  isPresent(peer: string): boolean {
    const s = this.seen.get(peer);
    return s !== undefined && s.at + this.graceMs > this.now();
  }

  present(): Set<string> {
    const t = this.now();
    return new Set([...this.seen].filter(([, s]) => s.at + this.graceMs > t).map(([p]) => p));
  }

  /** Every API answer of the matchmaker's client (0 = no answer). */
  apiAnswered(code: number): void {
    if (code === 0 || code >= 500) {
      this.failingSince ??= this.now();
      return;
    }
    if (this.failingSince === undefined) return;
    this.failingSince = undefined;
    const t = this.now();
    for (const s of this.seen.values()) s.at = Math.max(s.at, t);
    this.log.info(
      { peers: this.seen.size },
      'API server reachable again: every peer gets a fresh grace period',
    );
  }

  /** Re-reads the heartbeat of every peer that looks lapsed. Throws when the API server cannot be asked. */
  async confirmAway(read: ReadLease): Promise<void> {
    const t = this.now();
    const suspects = [...this.seen].filter(([, s]) => s.at + this.graceMs <= t).map(([p]) => p);
    for (const peer of suspects) {
      const lease = await read(HEARTBEAT_LEASE, peerNamespace(peer));
      if (lease) this.observe(lease);
      else this.seen.delete(peer);
    }
  }

  /** Milliseconds until the next present peer's heartbeat lapses, undefined when none will. */
  msUntilNextLapse(): number | undefined {
    const t = this.now();
    const next = Math.min(...[...this.seen.values()].map((s) => s.at + this.graceMs).filter((x) => x > t));
    return Number.isFinite(next) ? next - t : undefined;
  }
}
