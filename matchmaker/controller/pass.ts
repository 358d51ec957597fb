/**
 * One matchmaking pass over the whole federation (the optimum depends on every object
 * at once): read the caches -> presence -> the matching (matchmaker/matching/) -> apply
 * the wanted Assignments, mark those on away hosts Lost, delete the rest -> write Request
 * and Offer status. Writes go out a few at a time; every failed write is logged with its
 * object and the pass reports them all (the reconciler throws them as one AggregateError
 * and the work queue retries with backoff).
 */
import type { Logger } from 'pino';
import type { Assignment, Offer, Request } from '../../generated/personalcloud.js';
import { applyObject, applyStatusIfChanged, errorMessage } from '../../kube/apply.js';
import type { KubeApi, KubeObject } from '../../kube/client.js';
import { Resources as R, type ResourceType } from '../../kube/kinds.js';
import { containsDesired } from '../../kube/ownership.js';
import { LOST_ANNOTATION, MATCHMAKER_FIELD_MANAGER, peerOfNamespace } from '../../api/federation.js';
import {
  assignmentKeyOf,
  offerStatuses,
  peerMismatchStatus,
  placementKey,
  requestStatus,
  trusted,
  type Matcher,
  type Placed,
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

export async function runPass(deps: PassDeps): Promise<{ result: PassResult; failures: Error[] }> {
  const { client, presence, log } = deps;
  await presence.confirmAway((name, ns) => client.get<LeaseObject>(R.Lease, name, ns));
  const present = presence.present();
  const allAssignments = deps.caches.assignments().filter(inPeerNamespace);
  const allOffers = deps.caches.offers().filter(inPeerNamespace);
  const allRequests = deps.caches.requests().filter(inPeerNamespace);
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
    lost,
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
  for (const [key, a] of existing) {
    if (wanted.has(key) || a.metadata?.deletionTimestamp) continue;
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
    status(R.Request, r, requestStatus(r, s.live, s.lost, existing, now));
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
