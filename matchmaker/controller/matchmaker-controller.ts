/**
 * The matchmaker controller: watches Offers, Requests, heartbeat Leases and
 * Assignments in every `peer-*` namespace; after a burst of changes has been quiet
 * for a moment (or at the latest after a maximum wait) it runs one pass: build the
 * instance from the present peers, solve in stability mode against the Assignments
 * that exist (fewest moves), apply the wanted Assignments by server-side apply
 * (field manager `matchmaker`), mark those on lapsed hosts Lost, delete the rest,
 * and write Offer and Request status. Only the leader of a Lease writes.
 *
 * The matchmaker's unit of work is the whole federation rather than one object: the
 * solver's answer depends on every Offer and Request at once, so a per-object queue
 * would only re-run the same global solve. Passes are serialized and idempotent.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { Gauge, Histogram } from 'prom-client';
import type { Logger } from 'pino';
import type { Assignment, Offer, Request } from '../../generated/personalcloud.js';
import { errorMessage } from '../../kube/apply.js';
import { setConditions } from '../../kube/conditions.js';
import { cacheReadiness, startHealthServer, type HealthServer } from '../../kube/health-server.js';
import { Informer } from '../../kube/informer.js';
import { KubeClient, type KubeObject } from '../../kube/client.js';
import { LeaderElector } from '../../kube/leader-election.js';
import { createLogger } from '../../kube/logger.js';
import { OperatorMetrics } from '../../kube/metrics.js';
import { containsDesired } from '../../kube/ownership.js';
import { solve } from '../solver/index.js';
import {
  HEARTBEAT_LABEL,
  HEARTBEAT_LEASE,
  HOST_LABEL,
  LOST_ANNOTATION,
  MATCHMAKER_FIELD_MANAGER,
  REQUESTER_LABEL,
  REQUEST_LABEL,
  assignmentName,
  peerNamespace,
  peerOfNamespace,
} from '../../api/federation.js';
import {
  assignmentKeyOf,
  buildInstance,
  decodeAnswer,
  placementKey,
  placementVms,
  satisfied,
  trusted,
  type Placed,
} from './matching.js';
import { Resources as R } from '../../kube/kinds.js';
import { applyObject, applyStatusIfChanged } from '../../kube/apply.js';

export interface MatchmakerConfig {
  kubeconfig?: string;
  peerGraceMs: number;
  debounceQuietMs: number;
  debounceMaxMs: number;
  metricsPort: number;
  metricsHost: string;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  logLevel: string;
  /** Concurrent API writes per pass. */
  writeConcurrency: number;
}

export const matchmakerDefaults: Omit<MatchmakerConfig, 'identity'> = {
  peerGraceMs: 30_000,
  debounceQuietMs: 500,
  debounceMaxMs: 5_000,
  metricsPort: 8081,
  metricsHost: '0.0.0.0',
  leaderElect: true,
  leaseNamespace: 'personal-cloud-system',
  leaseName: 'matchmaker',
  logLevel: 'info',
  writeConcurrency: 16,
};

type AssignmentObject = Assignment & KubeObject;
type OfferObject = Offer & KubeObject;
type RequestObject = Request & KubeObject;

interface LeaseObject extends KubeObject {
  spec?: { renewTime?: string; holderIdentity?: string };
}

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

export interface RunningMatchmaker {
  metrics: OperatorMetrics;
  metricsPort: number;
  isLeader(): boolean;
  /** The last finished pass (undefined before the first). */
  lastPass(): PassResult | undefined;
  stop(): Promise<void>;
}

/** Runs fn over items with at most n in flight; returns the errors. */
async function pool<T>(items: readonly T[], n: number, fn: (t: T) => Promise<unknown>): Promise<unknown[]> {
  const errors: unknown[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const t = items[next++] as T;
      try {
        await fn(t);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return errors;
}

export async function runMatchmaker(
  config: MatchmakerConfig,
  opts: { log?: Logger; kubeConfig?: KubeConfig; defaultMetrics?: boolean; now?: () => number } = {},
): Promise<RunningMatchmaker> {
  const log = (opts.log ?? createLogger(config.logLevel)).child({ controller: 'matchmaker' });
  const now = opts.now ?? Date.now;
  const kc = opts.kubeConfig ?? new KubeConfig();
  if (!opts.kubeConfig) {
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
  }
  const metrics = new OperatorMetrics(opts.defaultMetrics ?? true);
  const solveSeconds = new Histogram({
    name: 'pcloud_matchmaker_solve_seconds',
    help: 'Time the solver took in one matchmaking pass.',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [metrics.registry],
  });
  const passSeconds = new Histogram({
    name: 'pcloud_matchmaker_pass_seconds',
    help: 'Time one matchmaking pass took (solve and writes).',
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
    registers: [metrics.registry],
  });
  const presentPeers = new Gauge({
    name: 'pcloud_matchmaker_present_peers',
    help: 'Peers whose heartbeat is within the grace period.',
    registers: [metrics.registry],
  });
  const assignedUnits = new Gauge({
    name: 'pcloud_matchmaker_assigned_units',
    help: 'Units assigned by the last pass.',
    registers: [metrics.registry],
  });
  // --- presence: when did we last see each peer's heartbeat change (our clock) -------
  const seen = new Map<string, { renewTime: string; at: number }>();
  /**
   * While the matchmaker cannot reach its own API server it sees no heartbeats, which
   * must not count against the peers: when requests succeed again after failing, every
   * peer gets a fresh grace period from that moment.
   */
  let failingSince: number | undefined;
  const apiAnswered = (code: number): void => {
    if (code === 0 || code >= 500) {
      failingSince ??= now();
      return;
    }
    if (failingSince === undefined) return;
    failingSince = undefined;
    const t = now();
    for (const s of seen.values()) s.at = Math.max(s.at, t);
    log.info({ peers: seen.size }, 'API server reachable again: every peer gets a fresh grace period');
  };
  const client = await KubeClient.fromKubeConfig(kc, (verb, code) => {
    metrics.apiRequests.labels(verb, String(code)).inc();
    apiAnswered(code);
  });

  const informers: Informer<KubeObject>[] = [];
  const informer = <T extends KubeObject>(type: typeof R.Offer, labelSelector?: string): Informer<T> => {
    const inf = new Informer<T>(kc, client, type, log, {
      ...(labelSelector ? { labelSelector } : {}),
      backoffMaxMs: 5_000,
    });
    informers.push(inf);
    return inf;
  };
  const offers = informer<OfferObject>(R.Offer);
  const requests = informer<RequestObject>(R.Request);
  const assignments = informer<AssignmentObject>(R.Assignment);
  const leases = informer<LeaseObject>(R.Lease, `${HEARTBEAT_LABEL}=true`);

  const observeLease = (l: LeaseObject): void => {
    const peer = peerOfNamespace(l.metadata?.namespace);
    if (!peer || l.metadata?.name !== HEARTBEAT_LEASE) return;
    const renewTime = l.spec?.renewTime ?? '';
    const prev = seen.get(peer);
    if (prev?.renewTime === renewTime) return;
    // First sight: trust renewTime (bounded by now); afterwards only our own clock counts,
    // so the homes' clocks never matter once the matchmaker has watched for a while.
    const at = prev ? now() : Math.min(now(), Date.parse(renewTime) || 0);
    seen.set(peer, { renewTime, at });
  };
  const presentSet = (): Set<string> => {
    const t = now();
    return new Set([...seen].filter(([, s]) => s.at + config.peerGraceMs > t).map(([p]) => p));
  };

  // --- debounced passes ----------------------------------------------------------------
  let leading = false;
  let stopped = false;
  let running: Promise<void> | undefined;
  let dirty = false;
  let quietTimer: NodeJS.Timeout | undefined;
  let maxTimer: NodeJS.Timeout | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelay = 500;
  let last: PassResult | undefined;
  let lastSolve: { signature: string; placed: Placed[] } | undefined;

  const clearTimers = (): void => {
    for (const t of [quietTimer, maxTimer, expiryTimer, retryTimer]) if (t) clearTimeout(t);
    quietTimer = maxTimer = expiryTimer = retryTimer = undefined;
  };
  const fire = (): void => {
    if (quietTimer) clearTimeout(quietTimer);
    if (maxTimer) clearTimeout(maxTimer);
    quietTimer = maxTimer = undefined;
    if (!leading || stopped) return;
    if (running) {
      dirty = true;
      return;
    }
    running = pass()
      .catch((err: unknown) => {
        log.warn({ err: errorMessage(err), retryInMs: retryDelay }, 'matchmaking pass failed; retrying');
        if (retryTimer) clearTimeout(retryTimer);
        retryTimer = setTimeout(changed, retryDelay);
        retryTimer.unref();
        retryDelay = Math.min(30_000, retryDelay * 2);
      })
      .finally(() => {
        running = undefined;
        if (dirty) {
          dirty = false;
          changed();
        }
      });
  };
  const changed = (): void => {
    if (!leading || stopped) return;
    if (quietTimer) clearTimeout(quietTimer);
    quietTimer = setTimeout(fire, config.debounceQuietMs);
    maxTimer ??= setTimeout(fire, config.debounceMaxMs);
  };
  const inPeerNamespace = (o: KubeObject): boolean => peerOfNamespace(o.metadata?.namespace) !== undefined;
  for (const inf of [offers, requests, assignments]) {
    const on = (o: KubeObject): void => {
      if (inPeerNamespace(o)) changed();
    };
    inf.on({ add: on, update: on, delete: on });
  }
  leases.on({
    add: (l) => {
      observeLease(l);
      changed();
    },
    update: (l) => {
      const peer = peerOfNamespace(l.metadata?.namespace);
      const wasPresent = peer !== undefined && presentSet().has(peer);
      observeLease(l);
      // a renewal of a present peer changes nothing; a returning peer does
      if (!wasPresent) changed();
    },
    delete: (l) => {
      const peer = peerOfNamespace(l.metadata?.namespace);
      if (peer) seen.delete(peer);
      changed();
    },
  });

  /** The earliest moment a present peer's heartbeat lapses: re-solve then. */
  const scheduleExpiry = (): void => {
    if (expiryTimer) clearTimeout(expiryTimer);
    expiryTimer = undefined;
    const t = now();
    const next = Math.min(...[...seen.values()].map((s) => s.at + config.peerGraceMs).filter((x) => x > t));
    if (!Number.isFinite(next)) return;
    expiryTimer = setTimeout(changed, next - t + 50);
    expiryTimer.unref();
  };

  /**
   * Before a peer counts as away, read its heartbeat live: a watch that missed events
   * or a matchmaker API outage must never look like every home leaving at once. Throws
   * when the API server cannot be asked (the pass is retried).
   */
  const confirmAway = async (): Promise<void> => {
    const t = now();
    const suspects = [...seen].filter(([, s]) => s.at + config.peerGraceMs <= t);
    for (const [peer] of suspects) {
      const lease = await client.get<LeaseObject>(R.Lease, HEARTBEAT_LEASE, peerNamespace(peer));
      if (lease) observeLease(lease);
      else seen.delete(peer);
    }
  };

  async function pass(): Promise<void> {
    const started = now();
    await confirmAway();
    const present = presentSet();
    presentPeers.set(present.size);
    const allAssignments = assignments.list().filter(inPeerNamespace);
    const allOffers = offers.list().filter(inPeerNamespace);
    const allRequests = requests.list().filter(inPeerNamespace);
    const lost = new Set(
      allAssignments
        .filter((a) => a.metadata?.annotations?.[LOST_ANNOTATION] !== undefined || !present.has(a.spec.host))
        .map(assignmentKeyOf),
    );
    const m = buildInstance({
      present,
      offers: allOffers,
      requests: allRequests,
      assignments: allAssignments,
      lost,
    });
    const signature = JSON.stringify([m.instance, m.previous]);
    let placed: Placed[];
    let solveMs = 0;
    const solved = lastSolve?.signature !== signature;
    if (!solved && lastSolve) {
      placed = lastSolve.placed;
    } else {
      const t0 = performance.now();
      const solution = solve(
        m.instance,
        m.previous.length > 0 ? { previous: { assignments: m.previous } } : {},
      );
      solveMs = performance.now() - t0;
      solveSeconds.observe(solveMs / 1000);
      const cells: number[][] = [];
      for (let e = 0; e < solution.count; e++)
        cells.push([solution.from[e]!, solution.to[e]!, solution.units[e]!]);
      placed = decodeAnswer(m, cells);
      lastSolve = { signature, placed };
    }
    const requestByKey = new Map(m.requests.map((r) => [`${r.requester}/${r.name}`, r.request] as const));
    const wanted = new Map(placed.map((p) => [placementKey(p), p] as const));
    const existing = new Map(allAssignments.map((a) => [assignmentKeyOf(a), a] as const));
    const writes: Array<() => Promise<unknown>> = [];
    let writeCount = 0;
    // a write that found nothing to change returns false and is not counted
    const write = (fn: () => Promise<unknown>): void => {
      writes.push(async () => {
        if ((await fn()) !== false) writeCount++;
      });
    };
    const stamp = new Date(now()).toISOString();

    for (const [key, p] of wanted) {
      const request = requestByKey.get(`${p.requester}/${p.request}`);
      if (!request) continue;
      const observed = existing.get(key);
      if (observed?.metadata?.deletionTimestamp) continue; // recreated once it is gone
      const desired = {
        apiVersion: 'personalcloud.io/v1alpha1',
        kind: 'Assignment',
        metadata: {
          name: assignmentName(p.requester, p.request),
          namespace: peerNamespace(p.host),
          labels: { [REQUESTER_LABEL]: p.requester, [REQUEST_LABEL]: p.request, [HOST_LABEL]: p.host },
        },
        spec: {
          requester: p.requester,
          request: p.request,
          host: p.host,
          units: p.units,
          vm: request.spec.vm,
        },
      };
      const wasLost = observed?.metadata?.annotations?.[LOST_ANNOTATION] !== undefined;
      if (observed && !wasLost && containsDesired(observed, desired)) continue;
      write(async () => {
        const applied = await applyObject<AssignmentObject>(
          client,
          R.Assignment,
          desired,
          MATCHMAKER_FIELD_MANAGER,
        );
        if (wasLost || observed?.status?.phase === 'Lost')
          await applyObject(
            client,
            R.Assignment,
            {
              metadata: applied.metadata && {
                name: applied.metadata.name,
                namespace: applied.metadata.namespace,
              },
              status: { phase: 'Pending' },
            },
            MATCHMAKER_FIELD_MANAGER,
            'status',
          );
      });
    }
    const lostPlacements: Placed[] = [];
    for (const [key, a] of existing) {
      if (wanted.has(key) || a.metadata?.deletionTimestamp) continue;
      const requestStillThere = requestByKey.has(`${a.spec.requester}/${a.spec.request}`);
      if (!present.has(a.spec.host) && requestStillThere) {
        // The host is away: keep the Assignment (the host keeps running it while cut
        // off), but it no longer counts; its units were re-solved elsewhere.
        lostPlacements.push({ ...a.spec });
        if (a.metadata?.annotations?.[LOST_ANNOTATION] !== undefined && a.status?.phase === 'Lost') continue;
        write(async () => {
          await applyObject(
            client,
            R.Assignment,
            {
              metadata: {
                name: a.metadata?.name,
                namespace: a.metadata?.namespace,
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
            {
              metadata: { name: a.metadata?.name, namespace: a.metadata?.namespace },
              status: { phase: 'Lost' },
            },
            MATCHMAKER_FIELD_MANAGER,
            'status',
          );
        });
        continue;
      }
      write(() =>
        client.delete(R.Assignment, a.metadata?.name ?? '', a.metadata?.namespace, { uid: a.metadata?.uid }),
      );
    }

    // --- Request status ----------------------------------------------------------------
    const byRequest = new Map<string, { live: Placed[]; lost: Placed[] }>();
    const slot = (p: Placed): { live: Placed[]; lost: Placed[] } => {
      const k = `${p.requester}/${p.request}`;
      let s = byRequest.get(k);
      if (!s) byRequest.set(k, (s = { live: [], lost: [] }));
      return s;
    };
    for (const p of placed) slot(p).live.push(p);
    for (const p of lostPlacements) slot(p).lost.push(p);
    const nowDate = new Date(now());
    let assignedTotal = 0;
    for (const r of trusted(allRequests)) {
      const s = byRequest.get(`${r.spec.peer}/${r.metadata?.name ?? ''}`) ?? { live: [], lost: [] };
      const assigned = s.live.reduce((t, p) => t + p.units, 0);
      assignedTotal += assigned;
      const placements = [
        ...s.live.map((p) => ({ p, lost: false })),
        ...s.lost.filter((l) => !s.live.some((p) => p.host === l.host)).map((p) => ({ p, lost: true })),
      ]
        .sort((a, b) => a.p.host.localeCompare(b.p.host))
        .map(({ p, lost: isLost }) => ({
          peer: p.host,
          units: p.units,
          vms: placementVms(p.units, p.request, existing.get(placementKey(p))?.status?.vms, isLost),
        }));
      const sat = satisfied(r.spec.units, assigned);
      const gen = r.metadata?.generation;
      const status = {
        ...(gen !== undefined ? { observedGeneration: gen } : {}),
        assignedUnits: assigned,
        placements,
        conditions: setConditions(
          r.status?.conditions,
          [
            { type: 'Satisfied', ...sat, observedGeneration: gen },
            { type: 'Ready', ...sat, observedGeneration: gen },
          ],
          nowDate,
        ),
      };
      write(() => applyStatusIfChanged(client, R.Request, r, status, MATCHMAKER_FIELD_MANAGER));
    }

    // --- Offer status --------------------------------------------------------------------
    const allocatedByHost = new Map<string, number>();
    for (const p of placed) allocatedByHost.set(p.host, (allocatedByHost.get(p.host) ?? 0) + p.units);
    const offersByPeer = new Map<string, OfferObject[]>();
    for (const o of trusted(allOffers))
      offersByPeer.set(o.spec.peer, [...(offersByPeer.get(o.spec.peer) ?? []), o]);
    for (const [peer, list] of offersByPeer) {
      let left = allocatedByHost.get(peer) ?? 0;
      list.sort(
        (a, b) =>
          String(a.metadata?.creationTimestamp ?? '').localeCompare(
            String(b.metadata?.creationTimestamp ?? ''),
          ) || String(a.metadata?.name).localeCompare(String(b.metadata?.name)),
      );
      for (const o of list) {
        const mine = Math.min(left, o.spec.units);
        left -= mine;
        const gen = o.metadata?.generation;
        const here = present.has(peer);
        const status = {
          ...(gen !== undefined ? { observedGeneration: gen } : {}),
          allocatedUnits: mine,
          conditions: setConditions(
            o.status?.conditions,
            [
              here
                ? {
                    type: 'Ready',
                    status: 'True' as const,
                    reason: 'Matched',
                    message: `${mine} of ${o.spec.units} unit(s) allocated to other homes`,
                    observedGeneration: gen,
                  }
                : {
                    type: 'Ready',
                    status: 'False' as const,
                    reason: 'PeerAway',
                    message: `no heartbeat from ${peer} within ${config.peerGraceMs / 1000}s: not offered`,
                    observedGeneration: gen,
                  },
            ],
            nowDate,
          ),
        };
        write(() => applyStatusIfChanged(client, R.Offer, o, status, MATCHMAKER_FIELD_MANAGER));
      }
    }
    // Objects whose spec.peer disagrees with their namespace are refused, visibly.
    for (const [type, list] of [
      [R.Offer, allOffers],
      [R.Request, allRequests],
    ] as const) {
      const ok = new Set(trusted<Offer | Request>(list));
      for (const o of list as (OfferObject | RequestObject)[]) {
        if (ok.has(o) || o.metadata?.deletionTimestamp) continue;
        const status = {
          conditions: setConditions(
            o.status?.conditions,
            [
              {
                type: 'Ready',
                status: 'False',
                reason: 'PeerMismatch',
                message: `spec.peer ${o.spec?.peer} is not the peer of namespace ${o.metadata?.namespace}`,
              },
            ],
            nowDate,
          ),
        };
        write(() => applyStatusIfChanged(client, type, o, status, MATCHMAKER_FIELD_MANAGER));
      }
    }

    const errors = await pool(writes, config.writeConcurrency, (fn) => fn());
    const offered = Array.from(m.instance.offers).reduce((t, x) => t + x, 0);
    const requested = m.requests.reduce((t, r) => t + r.units, 0);
    assignedUnits.set(assignedTotal);
    last = {
      present: [...present].sort(),
      offered,
      requested,
      assigned: assignedTotal,
      solved,
      solveMs,
      writes: writeCount,
      errors: errors.length,
    };
    passSeconds.observe((now() - started) / 1000);
    if (solved || errors.length > 0)
      log.info({ ...last, present: present.size, passMs: now() - started }, 'matchmaking pass');
    if (errors.length > 0) {
      for (const e of errors.slice(0, 3)) log.warn({ err: errorMessage(e) }, 'matchmaker write failed');
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = setTimeout(changed, retryDelay);
      retryTimer.unref();
      retryDelay = Math.min(30_000, retryDelay * 2);
    } else {
      retryDelay = 500;
    }
    scheduleExpiry();
  }

  for (const inf of informers) inf.start();
  const startPasses = async (): Promise<void> => {
    await Promise.all(informers.map((i) => i.waitForSync()));
    if (leading) {
      lastSolve = undefined;
      changed();
    }
  };
  let elector: LeaderElector | undefined;
  if (config.leaderElect) {
    await client
      .create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: config.leaseNamespace } })
      .catch(() => undefined);
    elector = new LeaderElector(
      client,
      {
        namespace: config.leaseNamespace,
        name: config.leaseName,
        identity: config.identity,
        leaseDurationMs: 15_000,
        renewDeadlineMs: 10_000,
        retryPeriodMs: 2_000,
      },
      {
        onStartedLeading: () => {
          leading = true;
          metrics.leader.set(1);
          void startPasses();
        },
        onStoppedLeading: () => {
          leading = false;
          metrics.leader.set(0);
          clearTimers();
        },
      },
      log,
    );
    elector.start();
  } else {
    leading = true;
    metrics.leader.set(1);
    void startPasses();
  }
  let server: HealthServer | undefined = await startHealthServer(
    config.metricsPort,
    metrics,
    cacheReadiness(informers, () => leading),
    config.metricsHost,
  );
  log.info(
    { metricsPort: server.port, peerGraceMs: config.peerGraceMs, identity: config.identity },
    'matchmaker started',
  );
  return {
    metrics,
    metricsPort: server.port,
    isLeader: () => leading,
    lastPass: () => last,
    stop: async () => {
      stopped = true;
      clearTimers();
      await elector?.stop();
      leading = false;
      await running;
      await Promise.all(informers.map((i) => i.stop()));
      await server?.close();
      server = undefined;
      client.close();
      log.info('matchmaker stopped');
    },
  };
}
