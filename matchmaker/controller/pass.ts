/**
 * One matchmaking pass over the whole federation (the optimum depends on every object
 * at once): read the caches -> presence -> the matching (matchmaker/matching/) -> apply
 * the wanted Assignments, mark those on away hosts Lost, delete the rest -> write Request
 * and Offer status. Writes go out a few at a time; every failed write is logged with its
 * object and the pass reports them all (the reconciler throws them as one AggregateError
 * and the work queue retries with backoff).
 *
 * What the peers wrote is checked before it counts: Offers and Requests whose spec is
 * over `maxObjectBytes` are ignored (Ready=False TooLarge); a host's Accepted=False on
 * an Assignment is a refusal: the Assignment is kept as its record (annotation
 * `refused-at-generation`), the host is excluded for that Request until the Request's
 * generation changes, the units are re-solved elsewhere, and the requester sees the
 * host and its reason; hosts' VM reports are checked before they are copied
 * (matching/status.ts).
 */
import type { Logger } from 'pino';
import type { Assignment, Offer, Request } from '../../generated/personalcloud.js';
import { applyObject, applyStatusIfChanged, errorMessage } from '../../kube/apply.js';
import type { KubeApi, KubeObject } from '../../kube/client.js';
import { Resources as R, type ResourceType } from '../../kube/kinds.js';
import { containsDesired } from '../../kube/ownership.js';
import {
  HOME_DOMAIN_ANNOTATION,
  LOST_ANNOTATION,
  MATCHMAKER_FIELD_MANAGER,
  REFUSED_GENERATION_ANNOTATION,
  peerOfNamespace,
} from '../../api/federation.js';
import {
  assignmentKeyOf,
  exclusionKey,
  offerStatuses,
  peerMismatchStatus,
  placementKey,
  requestStatus,
  tooLargeStatus,
  trusted,
  type Matcher,
  type Placed,
  type Refusal,
} from '../matching/index.js';
import type { LeaseObject, Presence } from './presence.js';

export type AssignmentObject = Assignment & KubeObject;
export type OfferObject = Offer & KubeObject;
export type RequestObject = Request & KubeObject;

export interface PassResult {
  present: string[];
  offered: number;
  requested: number;
  assigned: number;
  solved: boolean;
  solveMs: number;
  writes: number;
  errors: number;
}

/** What the pass reads: the informers' caches. */
export interface PassCaches {
  offers(): readonly OfferObject[];
  requests(): readonly RequestObject[];
  assignments(): readonly AssignmentObject[];
  /** The peer namespaces (their HOME_DOMAIN_ANNOTATION says each peer's home domain). */
  namespaces(): readonly KubeObject[];
}

export interface PassDeps {
  client: KubeApi;
  caches: PassCaches;
  presence: Presence;
  matcher: Matcher;
  now: () => number;
  peerGraceMs: number;
  /** Concurrent API writes. */
  writeConcurrency: number;
  /** Offers and Requests whose spec is larger (JSON bytes) are ignored. */
  maxObjectBytes: number;
  log: Logger;
}

/** Runs fn over items with at most n in flight; returns the errors. */
async function pool<T>(items: readonly T[], n: number, fn: (t: T) => Promise<unknown>): Promise<Error[]> {
  const errors: Error[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const t = items[next++] as T;
      try {
        await fn(t);
      } catch (err) {
        errors.push(err instanceof Error ? err : new Error(String(err)));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return errors;
}

interface Write {
  /** What is written, for the log and the error: `Assignment peer-bob/alice.web`. */
  what: string;
  /** Resolves false when it found nothing to change. */
  run: () => Promise<unknown>;
}

const inPeerNamespace = (o: KubeObject): boolean => peerOfNamespace(o.metadata?.namespace) !== undefined;
const ref = (kind: string, o: KubeObject): string => `${kind} ${o.metadata?.namespace}/${o.metadata?.name}`;
const specBytes = (o: { spec?: unknown }): number => Buffer.byteLength(JSON.stringify(o.spec ?? null));

/** A host's refusal of an Assignment, and whether it still holds (the Request did not change since). */
interface Refused extends Refusal {
  assignment: AssignmentObject;
  requestKey: string;
  /** The Request's generation now. */
  generation: string;
  /** False once the Request changed: the record is deleted and the host may be chosen again. */
  current: boolean;
}

/** Assignments their host refused (Accepted=False for the Assignment's current generation). */
function refusals(assignments: readonly AssignmentObject[], requests: readonly RequestObject[]): Refused[] {
  const byKey = new Map<string, RequestObject>(
    requests.map((r) => [`${r.spec.peer}/${r.metadata?.name ?? ''}`, r]),
  );
  const out: Refused[] = [];
  for (const a of assignments) {
    if (a.metadata?.deletionTimestamp) continue;
    const requestKey = `${a.spec.requester}/${a.spec.request}`;
    const r = byKey.get(requestKey);
    if (!r) continue; // withdrawn: deleted like any unwanted Assignment
    const recorded = a.metadata?.annotations?.[REFUSED_GENERATION_ANNOTATION];
    const c = a.status?.conditions?.find((x) => x.type === 'Accepted');
    const refusedNow =
      c?.status === 'False' &&
      (c.observedGeneration === undefined || c.observedGeneration === a.metadata?.generation);
    if (recorded === undefined && !refusedNow) continue;
    const generation = String(r.metadata?.generation ?? '');
    out.push({
      assignment: a,
      requestKey,
      host: a.spec.host,
      reason: c?.status === 'False' ? c.reason : 'Refused',
      message: c?.status === 'False' ? c.message : 'refused',
      generation,
      current: recorded === undefined || recorded === generation,
    });
  }
  return out;
}

export async function runPass(deps: PassDeps): Promise<{ result: PassResult; failures: Error[] }> {
  const { client, presence, log } = deps;
  await presence.confirmAway((name, ns) => client.get<LeaseObject>(R.Lease, name, ns));
  const present = presence.present();
  const allAssignments = deps.caches.assignments().filter(inPeerNamespace);
  const tooLarge = new Map<KubeObject, number>();
  for (const o of [...deps.caches.offers(), ...deps.caches.requests()]) {
    const bytes = specBytes(o);
    if (bytes > deps.maxObjectBytes) tooLarge.set(o, bytes);
  }
  const allOffers = deps.caches.offers().filter((o) => inPeerNamespace(o) && !tooLarge.has(o));
  const allRequests = deps.caches.requests().filter((o) => inPeerNamespace(o) && !tooLarge.has(o));
  const homeDomains = new Map<string, string>();
  for (const ns of deps.caches.namespaces()) {
    const peer = peerOfNamespace(ns.metadata?.name);
    const domain = ns.metadata?.annotations?.[HOME_DOMAIN_ANNOTATION];
    if (peer && domain) homeDomains.set(peer, domain);
  }
  const refused = refusals(allAssignments, trusted(allRequests));
  const refusedKeys = new Set(refused.map((f) => assignmentKeyOf(f.assignment)));
  const lost = new Set(
    allAssignments
      .filter((a) => a.metadata?.annotations?.[LOST_ANNOTATION] !== undefined || !present.has(a.spec.host))
      .map(assignmentKeyOf),
  );
  const matching = deps.matcher.match({
    present,
    offers: allOffers,
    requests: allRequests,
    assignments: allAssignments,
    lost: new Set([...lost, ...refusedKeys]),
    // a record that no longer holds still excludes in this pass: it is deleted first,
    // so the host re-decides on a fresh Assignment
    excluded: new Set(
      refused.map((f) => exclusionKey(f.assignment.spec.requester, f.assignment.spec.request, f.host)),
    ),
  });
  const { placed } = matching;
  const requestKeys = new Set(matching.instance.requests.map((r) => `${r.requester}/${r.name}`));
  const existing = new Map(allAssignments.map((a) => [assignmentKeyOf(a), a] as const));
  const writes: Write[] = [];
  const stamp = new Date(deps.now()).toISOString();

  // --- Assignments: apply the wanted ones ----------------------------------------------
  for (const desired of matching.assignments) {
    const key = `${desired.spec.host}/${desired.metadata.name}`;
    const observed = existing.get(key);
    if (observed?.metadata?.deletionTimestamp) continue; // recreated once it is gone
    const wasLost = observed?.metadata?.annotations?.[LOST_ANNOTATION] !== undefined;
    if (observed && !wasLost && containsDesired(observed, desired)) continue;
    writes.push({
      what: ref('Assignment', desired as AssignmentObject),
      run: async () => {
        await applyObject(client, R.Assignment, desired as AssignmentObject, MATCHMAKER_FIELD_MANAGER);
        if (wasLost || observed?.status?.phase === 'Lost')
          await applyObject(
            client,
            R.Assignment,
            {
              metadata: { name: desired.metadata.name, namespace: desired.metadata.namespace },
              status: { phase: 'Pending' },
            },
            MATCHMAKER_FIELD_MANAGER,
            'status',
          );
      },
    });
  }
  // --- ... keep those on away hosts as Lost, delete the rest -----------------------------
  const wanted = new Set(placed.map(placementKey));
  const lostPlacements: Placed[] = [];
  const refusedByKey = new Map(refused.map((f) => [assignmentKeyOf(f.assignment), f] as const));
  for (const [key, a] of existing) {
    if (wanted.has(key) || a.metadata?.deletionTimestamp) continue;
    const f = refusedByKey.get(key);
    if (f?.current) {
      // the host's refusal holds until the Request changes: keep the Assignment as its record
      if (a.metadata?.annotations?.[REFUSED_GENERATION_ANNOTATION] === f.generation) continue;
      writes.push({
        what: ref('Assignment', a),
        run: () =>
          applyObject(
            client,
            R.Assignment,
            {
              metadata: {
                name: a.metadata?.name,
                namespace: a.metadata?.namespace,
                labels: a.metadata?.labels ?? {},
                annotations: { [REFUSED_GENERATION_ANNOTATION]: f.generation },
              },
              spec: a.spec,
            },
            MATCHMAKER_FIELD_MANAGER,
          ),
      });
      continue;
    }
    if (!present.has(a.spec.host) && requestKeys.has(`${a.spec.requester}/${a.spec.request}`)) {
      // The host is away: keep the Assignment (the host keeps running it while cut
      // off), but it no longer counts; its units were re-solved elsewhere.
      lostPlacements.push({ ...a.spec });
      if (a.metadata?.annotations?.[LOST_ANNOTATION] !== undefined && a.status?.phase === 'Lost') continue;
      const meta = { name: a.metadata?.name, namespace: a.metadata?.namespace };
      writes.push({
        what: ref('Assignment', a),
        run: async () => {
          await applyObject(
            client,
            R.Assignment,
            {
              metadata: {
                ...meta,
                labels: a.metadata?.labels ?? {},
                annotations: { [LOST_ANNOTATION]: a.metadata?.annotations?.[LOST_ANNOTATION] ?? stamp },
              },
              spec: a.spec,
            },
            MATCHMAKER_FIELD_MANAGER,
          );
          await applyObject(
            client,
            R.Assignment,
            { metadata: meta, status: { phase: 'Lost' } },
            MATCHMAKER_FIELD_MANAGER,
            'status',
          );
        },
      });
      continue;
    }
    writes.push({
      what: ref('Assignment', a),
      run: () =>
        client.delete(R.Assignment, a.metadata?.name ?? '', a.metadata?.namespace, { uid: a.metadata?.uid }),
    });
  }

  // --- status ----------------------------------------------------------------------------
  const now = new Date(deps.now());
  const status = (type: ResourceType, o: KubeObject, s: object): void => {
    writes.push({
      what: `${ref(type.kind, o)} status`,
      run: () =>
        applyStatusIfChanged(client, type, o, s as Record<string, unknown>, MATCHMAKER_FIELD_MANAGER),
    });
  };
  const byRequest = new Map<string, { live: Placed[]; lost: Placed[] }>();
  const slot = (p: Placed): { live: Placed[]; lost: Placed[] } => {
    const k = `${p.requester}/${p.request}`;
    let s = byRequest.get(k);
    if (!s) byRequest.set(k, (s = { live: [], lost: [] }));
    return s;
  };
  for (const p of placed) slot(p).live.push(p);
  for (const p of lostPlacements) slot(p).lost.push(p);
  let assignedTotal = 0;
  for (const r of trusted(allRequests)) {
    const s = byRequest.get(`${r.spec.peer}/${r.metadata?.name ?? ''}`) ?? { live: [], lost: [] };
    assignedTotal += s.live.reduce((t, p) => t + p.units, 0);
    const key = `${r.spec.peer}/${r.metadata?.name ?? ''}`;
    const mine = refused.filter((f) => f.requestKey === key && f.current);
    status(R.Request, r, requestStatus(r, s.live, s.lost, existing, now, { homeDomains, refusals: mine }));
  }
  const allocated = new Map<string, number>();
  for (const p of placed) allocated.set(p.host, (allocated.get(p.host) ?? 0) + p.units);
  const offersByPeer = new Map<string, OfferObject[]>();
  for (const o of trusted(allOffers))
    offersByPeer.set(o.spec.peer, [...(offersByPeer.get(o.spec.peer) ?? []), o]);
  for (const [peer, list] of offersByPeer)
    for (const { offer, status: s } of offerStatuses(
      peer,
      list,
      allocated.get(peer) ?? 0,
      present.has(peer),
      deps.peerGraceMs,
      now,
    ))
      status(R.Offer, offer as OfferObject, s);
  // Objects whose spec.peer disagrees with their namespace are refused, visibly.
  for (const [type, list] of [
    [R.Offer, allOffers],
    [R.Request, allRequests],
  ] as const) {
    const ok = new Set<unknown>(trusted<Offer | Request>(list));
    for (const o of list as (OfferObject | RequestObject)[])
      if (!ok.has(o) && !o.metadata?.deletionTimestamp) status(type, o, peerMismatchStatus(o, now));
  }

  // Objects over the size bound are ignored, visibly.
  for (const [o, bytes] of tooLarge) {
    if (!inPeerNamespace(o) || o.metadata?.deletionTimestamp) continue;
    const type = o.kind === 'Offer' ? R.Offer : R.Request;
    status(type, o, tooLargeStatus(o as RequestObject, bytes, deps.maxObjectBytes, now));
  }

  let writeCount = 0;
  const failures = await pool(writes, deps.writeConcurrency, async (w) => {
    try {
      if ((await w.run()) !== false) writeCount++;
    } catch (err) {
      log.warn({ object: w.what, err: errorMessage(err) }, 'matchmaker write failed');
      throw new Error(`${w.what}: ${errorMessage(err)}`, { cause: err });
    }
  });
  const result: PassResult = {
    present: [...present].sort(),
    offered: Array.from(matching.instance.instance.offers).reduce((t, x) => t + x, 0),
    requested: matching.instance.requests.reduce((t, r) => t + r.units, 0),
    assigned: assignedTotal,
    solved: matching.solved,
    solveMs: matching.solveMs,
    writes: writeCount,
    errors: failures.length,
  };
  return { result, failures };
}
