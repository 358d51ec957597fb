/**
 * The status the matchmaker writes on Requests and Offers (pure builders; the pass
 * writes them through /status only when they changed).
 *
 * Request: `assignedUnits`, `placements[{peer, units, vms[{name, phase, hostname}]}]`
 * (VMs as the host reports them on its Assignment, else the names to come; placements
 * on an away host shown with phase Lost), conditions Satisfied and Ready.
 * Offer: `allocatedUnits` (a peer's allocated units spread over its Offers oldest first)
 * and Ready (Matched, or PeerAway). An object whose spec.peer disagrees with its
 * namespace gets Ready=False PeerMismatch and nothing else.
 */
import type {
  Assignment,
  AssignmentVmStatus,
  Offer,
  OfferStatus,
  Request,
  RequestStatus,
} from '../../generated/personalcloud.js';
import { setConditions, type ConditionInput } from '../../kube/conditions.js';
import { placementKey } from './assignments.js';
import type { Placed } from './instance.js';

export const SatisfiedReasons = {
  FullyAssigned: 'FullyAssigned',
  PartiallyAssigned: 'PartiallyAssigned',
  NoCapacity: 'NoCapacity',
} as const;

export const OfferReasons = { Matched: 'Matched', PeerAway: 'PeerAway' } as const;
export const PEER_MISMATCH = 'PeerMismatch';

/** A placement's VMs as the requester sees them: the host's report, else the names to come. */
export function placementVms(
  units: number,
  request: string,
  observed: readonly AssignmentVmStatus[] | undefined,
  lost: boolean,
): { name: string; phase?: string; hostname?: string }[] {
  const vms =
    observed && observed.length > 0
      ? observed.map((v) => ({
          name: v.name,
          ...(v.phase ? { phase: v.phase } : {}),
          ...(v.hostname ? { hostname: v.hostname } : {}),
        }))
      : Array.from({ length: units }, (_, i) => ({ name: `${request}-${i}`, phase: 'Pending' }));
  return lost ? vms.map((v) => ({ ...v, phase: 'Lost' })) : vms;
}

export function satisfied(
  wanted: number,
  assigned: number,
): { status: 'True' | 'False'; reason: string; message: string } {
  if (assigned >= wanted)
    return {
      status: 'True',
      reason: SatisfiedReasons.FullyAssigned,
      message: `all ${wanted} unit(s) placed`,
    };
  if (assigned > 0)
    return {
      status: 'False',
      reason: SatisfiedReasons.PartiallyAssigned,
      message: `${assigned} of ${wanted} unit(s) placed; the federation has no room for the rest`,
    };
  return {
    status: 'False',
    reason: SatisfiedReasons.NoCapacity,
    message: `none of ${wanted} unit(s) placed: no present peer has room that the placement allows`,
  };
}

/**
 * A Request's status from its live placements (this pass's answer), its lost ones
 * (Assignments kept on away hosts) and the Assignments as they exist (by `host/name`).
 */
export function requestStatus(
  r: Request,
  live: readonly Placed[],
  lost: readonly Placed[],
  existing: ReadonlyMap<string, Assignment>,
  now: Date,
): RequestStatus {
  const assigned = live.reduce((t, p) => t + p.units, 0);
  const placements = [
    ...live.map((p) => ({ p, lost: false })),
    ...lost.filter((l) => !live.some((p) => p.host === l.host)).map((p) => ({ p, lost: true })),
  ]
    .sort((a, b) => a.p.host.localeCompare(b.p.host))
    .map(({ p, lost: isLost }) => ({
      peer: p.host,
      units: p.units,
      vms: placementVms(p.units, p.request, existing.get(placementKey(p))?.status?.vms, isLost),
    }));
  const sat = satisfied(r.spec.units, assigned);
  const gen = r.metadata?.generation;
  return {
    ...(gen !== undefined ? { observedGeneration: gen } : {}),
    assignedUnits: assigned,
    placements,
    conditions: setConditions(
      r.status?.conditions,
      [
        { type: 'Satisfied', ...sat, observedGeneration: gen },
        { type: 'Ready', ...sat, observedGeneration: gen },
      ],
      now,
    ),
  };
}

/** Creation time in ms (a string from the API server's JSON, a Date by the type); 0 when unset. */
const createdAt = (o: Offer): number => new Date(o.metadata?.creationTimestamp ?? 0).getTime() || 0;

/** Oldest first (then by name): the order a peer's allocated units fill its Offers. */
function byAge(a: Offer, b: Offer): number {
  return createdAt(a) - createdAt(b) || String(a.metadata?.name).localeCompare(String(b.metadata?.name));
}

/** The status of each of one peer's Offers, given the units allocated on that peer. */
export function offerStatuses(
  peer: string,
  offers: readonly Offer[],
  allocated: number,
  present: boolean,
  peerGraceMs: number,
  now: Date,
): { offer: Offer; status: OfferStatus }[] {
  let left = allocated;
  return [...offers].sort(byAge).map((o) => {
    const mine = Math.min(left, o.spec.units);
    left -= mine;
    const gen = o.metadata?.generation;
    const ready: ConditionInput = present
      ? {
          type: 'Ready',
          status: 'True',
          reason: OfferReasons.Matched,
          message: `${mine} of ${o.spec.units} unit(s) allocated to other homes`,
          observedGeneration: gen,
        }
      : {
          type: 'Ready',
          status: 'False',
          reason: OfferReasons.PeerAway,
          message: `no heartbeat from ${peer} within ${peerGraceMs / 1000}s: not offered`,
          observedGeneration: gen,
        };
    return {
      offer: o,
      status: {
        ...(gen !== undefined ? { observedGeneration: gen } : {}),
        allocatedUnits: mine,
        conditions: setConditions(o.status?.conditions, [ready], now),
      },
    };
  });
}

/** An Offer or Request refused because spec.peer is not the peer of its namespace. */
export function peerMismatchStatus(
  o: Offer | Request,
  now: Date,
): { conditions: RequestStatus['conditions'] } {
  return {
    conditions: setConditions(
      o.status?.conditions,
      [
        {
          type: 'Ready',
          status: 'False',
          reason: PEER_MISMATCH,
          message: `spec.peer ${o.spec?.peer} is not the peer of namespace ${o.metadata?.namespace}`,
        },
      ],
      now,
    ),
  };
}
