/**
 * The status the matchmaker writes on Requests and Offers (pure builders; the pass
 * writes them through /status only when they changed).
 *
 * Request: `assignedUnits`, `placements[{peer, units, vms[{name, phase, hostname}]}]`
 * (VMs as the host reports them on its Assignment, else the names to come; placements
 * on an away host shown with phase Lost), conditions Satisfied and Ready, HostsAccepted
 * (a host's refusal, with its reason and the host) and HostReports.
 *
 * A host's report is another party's word: before it reaches the requester it is
 * checked (`checkHostReport`): at most `units` VMs, phases from VM_PHASES, hostnames
 * `<label>.<requester>.<the host's home domain>` (the domain recorded at invite, which
 * the host cannot write). Whatever fails is dropped and named in HostReports.
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
import { VM_PHASES } from '../../api/federation.js';
import { dnsLabel } from '../../api/labels.js';
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
/** Ready=False on an Offer or Request whose spec is larger than the matchmaker's bound. */
export const TOO_LARGE = 'TooLarge';
export const HostReportReasons = { Verified: 'Verified', HostReportRejected: 'HostReportRejected' } as const;
export const HOSTS_ACCEPTED = 'Accepted';

/** A host's refusal of one Request's Assignment (its Accepted=False condition). */
export interface Refusal {
  host: string;
  reason: string;
  message: string;
}

/** What the requester's status needs besides the placements: hosts' domains, refusals. */
export interface RequestTrust {
  /** peer -> its home domain, as recorded at invite (HOME_DOMAIN_ANNOTATION). */
  homeDomains: ReadonlyMap<string, string>;
  /** This Request's refusals (hosts excluded until the Request changes). */
  refusals: readonly Refusal[];
}

type ShownVm = { name: string; phase?: string; hostname?: string };

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * A host's report on one placement, checked before the requester sees it: at most
 * `units` VMs (the rest dropped), phases from VM_PHASES (a VM with another phase is
 * dropped), hostnames `<label>.<requester>.<domain>` with the host's declared domain
 * (another hostname is dropped, the VM kept). Returns what passes and what did not.
 */
export function checkHostReport(
  requester: string,
  host: string,
  units: number,
  domain: string | undefined,
  reported: readonly AssignmentVmStatus[],
): { vms: ShownVm[]; problems: string[] } {
  const problems: string[] = [];
  if (reported.length > units)
    problems.push(`reported ${reported.length} VMs for ${units} unit(s); only the first ${units} shown`);
  const vms: ShownVm[] = [];
  for (const v of reported.slice(0, units)) {
    if (v.phase !== undefined && !VM_PHASES.has(v.phase)) {
      problems.push(`VM ${v.name}: phase ${JSON.stringify(v.phase)} is not a VM phase`);
      continue;
    }
    let hostname = v.hostname;
    if (hostname !== undefined) {
      const suffix = domain ? `.${requester}.${domain}` : undefined;
      if (!suffix) {
        problems.push(`VM ${v.name}: hostname ${hostname} dropped: ${host} declared no home domain`);
        hostname = undefined;
      } else if (!hostname.endsWith(suffix) || !LABEL.test(hostname.slice(0, -suffix.length))) {
        problems.push(`VM ${v.name}: hostname ${hostname} is not under ${requester}.${domain}`);
        hostname = undefined;
      }
    }
    vms.push({ name: v.name, ...(v.phase ? { phase: v.phase } : {}), ...(hostname ? { hostname } : {}) });
  }
  return { vms, problems };
}

/** A placement's VMs as the requester sees them: the host's report, else the names to come. */
export function placementVms(
  units: number,
  request: string,
  observed: readonly ShownVm[] | undefined,
  lost: boolean,
): ShownVm[] {
  const vms =
    observed && observed.length > 0
      ? observed.map((v) => ({
          name: v.name,
          ...(v.phase ? { phase: v.phase } : {}),
          ...(v.hostname ? { hostname: v.hostname } : {}),
        }))
      : // names to come, as DNS labels (a long Request name is hashed down to 63 characters)
        Array.from({ length: units }, (_, i) => ({ name: dnsLabel(`${request}-${i}`), phase: 'Pending' }));
  return lost ? vms.map((v) => ({ ...v, phase: 'Lost' })) : vms;
}

/** Messages the status carries are bounded: the first few problems, then a count. */
function summarize(items: readonly string[], max = 5): string {
  const shown = items.slice(0, max).join('; ');
  return items.length > max ? `${shown}; and ${items.length - max} more` : shown;
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
  trust: RequestTrust,
): RequestStatus {
  const assigned = live.reduce((t, p) => t + p.units, 0);
  const problems: string[] = [];
  const reportOf = (p: Placed): ShownVm[] | undefined => {
    const reported = existing.get(placementKey(p))?.status?.vms;
    if (!reported || reported.length === 0) return undefined;
    const checked = checkHostReport(p.requester, p.host, p.units, trust.homeDomains.get(p.host), reported);
    problems.push(...checked.problems.map((m) => `host ${p.host}: ${m}`));
    return checked.vms;
  };
  const placements = [
    ...live.map((p) => ({ p, lost: false })),
    ...lost.filter((l) => !live.some((p) => p.host === l.host)).map((p) => ({ p, lost: true })),
  ]
    .sort((a, b) => a.p.host.localeCompare(b.p.host))
    .map(({ p, lost: isLost }) => ({
      peer: p.host,
      units: p.units,
      vms: placementVms(p.units, p.request, reportOf(p), isLost),
    }));
  const sat = satisfied(r.spec.units, assigned);
  const gen = r.metadata?.generation;
  const refused = trust.refusals;
  const accepted: ConditionInput =
    refused.length === 0
      ? {
          type: 'HostsAccepted',
          status: 'True',
          reason: HOSTS_ACCEPTED,
          message: 'no host refused this Request',
          observedGeneration: gen,
        }
      : {
          type: 'HostsAccepted',
          status: 'False',
          reason: refused[0]!.reason,
          message: summarize(
            refused.map(
              (f) =>
                `host ${f.host} refused: ${f.reason}: ${f.message.slice(0, 300)} (${f.host} is excluded until the Request changes; its units are placed elsewhere)`,
            ),
          ),
          observedGeneration: gen,
        };
  const reports: ConditionInput =
    problems.length === 0
      ? {
          type: 'HostReports',
          status: 'True',
          reason: HostReportReasons.Verified,
          message: "hosts' reports checked: VM counts, phases, hostnames under <requester>.<host domain>",
          observedGeneration: gen,
        }
      : {
          type: 'HostReports',
          status: 'False',
          reason: HostReportReasons.HostReportRejected,
          message: summarize(problems),
          observedGeneration: gen,
        };
  return {
    ...(gen !== undefined ? { observedGeneration: gen } : {}),
    assignedUnits: assigned,
    placements,
    conditions: setConditions(
      r.status?.conditions,
      [
        { type: 'Satisfied', ...sat, observedGeneration: gen },
        { type: 'Ready', ...sat, observedGeneration: gen },
        accepted,
        reports,
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

/** An Offer or Request ignored because its spec is larger than the matchmaker's bound. */
export function tooLargeStatus(
  o: Offer | Request,
  bytes: number,
  maxBytes: number,
  now: Date,
): { conditions: RequestStatus['conditions'] } {
  return {
    conditions: setConditions(
      o.status?.conditions,
      [
        {
          type: 'Ready',
          status: 'False',
          reason: TOO_LARGE,
          message: `spec is ${bytes} bytes, over the matchmaker's bound of ${maxBytes} (--max-object-bytes): ignored`,
          observedGeneration: o.metadata?.generation,
        },
      ],
      now,
    ),
  };
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
