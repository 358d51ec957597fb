/**
 * From Offers and Requests to a solver instance and back (pure).
 *
 * The solver's contract has one request R(i) and one bound U(i,j) per peer pair, but
 * every Request carries its own placement. So the instance has one node per present
 * host (O = the sum of its Offers, R = 0) and one node per Request (R = its units,
 * O = 0). U(request, host), from `boundFor`:
 *   0                         the host is the requester itself, or its Offers exclude the requester
 *   0                         the host refused this Request (MatchInput.excluded)
 *   placement.peers[host].max when the host is listed
 *   placement.maxPerPeer      when set
 *   unbounded                 otherwise
 * and never more than 1 when `spread` is true (Replicated: U = 1; the CRD also rejects a
 * maxPerPeer or peers[].max above 1 with spread). The max flow of that network is the
 * request-optimal assignment of the paper with per-Request bounds.
 *
 * Objects are trusted only as far as their namespace: an Offer or Request in
 * `peer-alice` counts for alice only when its spec.peer says alice.
 */
import type { Assignment, Offer, Request } from '../../generated/personalcloud.js';
import type { Instance } from '../solver/index.js';
import { peerOfNamespace } from '../../api/federation.js';

export interface MatchInput {
  /** Peers whose heartbeat is within the grace period. */
  present: ReadonlySet<string>;
  offers: readonly Offer[];
  requests: readonly Request[];
  /** Assignments that exist now (all peer namespaces): the previous answer to stay close to. */
  assignments: readonly Assignment[];
  /** Assignments that carry the lost annotation or sit on an away host (by `assignmentKeyOf`). */
  lost?: ReadonlySet<string>;
  /** (Request, host) pairs the host refused, by `exclusionKey`: U = 0 there. */
  excluded?: ReadonlySet<string>;
}

/** The key of one (Request, host) pair in `MatchInput.excluded`. */
export function exclusionKey(requester: string, request: string, host: string): string {
  return `${requester}/${request}@${host}`;
}

export interface RequestRef {
  requester: string;
  name: string;
  units: number;
  request: Request;
}

export interface MatchInstance {
  instance: Instance;
  /** [request node, host node, units] of Assignments that run on present hosts. */
  previous: [number, number, number][];
  /** Host nodes 0..hosts.length-1, sorted by name. */
  hosts: string[];
  /** Request nodes hosts.length.., sorted by requester, then name. */
  requests: RequestRef[];
  hostIndex: Map<string, number>;
}

/** One placement the solver chose: `units` of `requester`'s Request `request` on `host`. */
export interface Placed {
  requester: string;
  request: string;
  host: string;
  units: number;
}

/** Offers and Requests that count: spec.peer agrees with the namespace and nothing is being deleted. */
export function trusted<T extends Offer | Request>(objs: readonly T[]): T[] {
  return objs.filter(
    (o) =>
      !o.metadata?.deletionTimestamp &&
      o.spec?.peer !== undefined &&
      peerOfNamespace(o.metadata?.namespace) === o.spec.peer,
  );
}

export function offeredUnits(offers: readonly Offer[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const o of trusted(offers)) m.set(o.spec.peer, (m.get(o.spec.peer) ?? 0) + o.spec.units);
  return m;
}

/** `host/name` of an Assignment (its name is unique within the host's namespace). */
export function assignmentKeyOf(a: Assignment): string {
  return `${a.spec.host}/${a.metadata?.name ?? ''}`;
}

/** U(request, host), Infinity when unbounded. `excluded`: the peers the host's Offers exclude. */
export function boundFor(request: Request, host: string, excluded: ReadonlySet<string> | undefined): number {
  const requester = request.spec.peer;
  if (host === requester || excluded?.has(requester)) return 0;
  const placement = request.spec.placement ?? {};
  const listed = placement.peers?.find((p) => p.peer === host);
  const cap = listed ? listed.max : (placement.maxPerPeer ?? Infinity);
  return placement.spread ? Math.min(cap, 1) : cap;
}

export function buildInstance(input: MatchInput): MatchInstance {
  const offered = offeredUnits(input.offers);
  const excludes = new Map<string, Set<string>>();
  for (const o of trusted(input.offers)) {
    const s = excludes.get(o.spec.peer) ?? new Set<string>();
    for (const p of o.spec.excludePeers ?? []) s.add(p);
    excludes.set(o.spec.peer, s);
  }
  const hosts = [...offered.keys()].filter((p) => input.present.has(p) && (offered.get(p) ?? 0) > 0).sort();
  const hostIndex = new Map(hosts.map((h, i) => [h, i] as const));
  const requests: RequestRef[] = trusted(input.requests)
    .map((r) => ({ requester: r.spec.peer, name: r.metadata?.name ?? '', units: r.spec.units, request: r }))
    .sort((a, b) => a.requester.localeCompare(b.requester) || a.name.localeCompare(b.name));
  const H = hosts.length;
  const n = H + requests.length;
  const offers = new Array<number>(n).fill(0);
  const req = new Array<number>(n).fill(0);
  hosts.forEach((h, j) => (offers[j] = offered.get(h) ?? 0));
  const bounds: [number, number, number][] = [];
  requests.forEach((r, q) => {
    req[H + q] = r.units;
    hosts.forEach((h, j) => {
      const cap = input.excluded?.has(exclusionKey(r.requester, r.name, h))
        ? 0
        : boundFor(r.request, h, excludes.get(h));
      if (Number.isFinite(cap)) bounds.push([H + q, j, cap]);
    });
  });
  const requestIndex = new Map(requests.map((r, q) => [`${r.requester}/${r.name}`, H + q] as const));
  const previous: [number, number, number][] = [];
  for (const a of input.assignments) {
    if (a.metadata?.deletionTimestamp || input.lost?.has(assignmentKeyOf(a))) continue;
    const i = requestIndex.get(`${a.spec.requester}/${a.spec.request}`);
    const j = hostIndex.get(a.spec.host);
    if (i === undefined || j === undefined || a.spec.units <= 0) continue;
    previous.push([i, j, a.spec.units]);
  }
  return {
    instance: { peers: n, offers, requests: req, defaultBound: null, bounds },
    previous,
    hosts,
    requests,
    hostIndex,
  };
}

/** The solver's cells [request node, host node, units] as placements. */
export function decodeAnswer(m: MatchInstance, cells: readonly (readonly number[])[]): Placed[] {
  const H = m.hosts.length;
  const out: Placed[] = [];
  for (const [i, j, u] of cells) {
    const r = m.requests[(i ?? 0) - H];
    const host = m.hosts[j ?? -1];
    if (!r || host === undefined || !u) continue;
    out.push({ requester: r.requester, request: r.name, host, units: u });
  }
  return out;
}
