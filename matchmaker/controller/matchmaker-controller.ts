/**
 * The matchmaker process: informers on Offers, Requests, Assignments and heartbeat
 * Leases in every namespace (only `peer-*` ones count), presence fed by the Leases, one
 * work-queue controller whose single key runs the pass (reconciler.ts: debounce, pass.ts:
 * the pass itself), leader election on a Lease (only the leader runs passes; the caches
 * stay warm on a standby), and the /metrics, /healthz and /readyz server.
 *
 * The matchmaker's unit of work is the whole federation rather than one object: the
 * solver's answer depends on every Offer and Request at once, so a per-object key would
 * only re-run the same global solve.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { Gauge, Histogram } from 'prom-client';
import type { Logger } from 'pino';
import { cacheReadiness, startHealthServer, type HealthServer } from '../../kube/health-server.js';
import { Controller } from '../../kube/controller.js';
import { Informer } from '../../kube/informer.js';
import { isConflict, type KubeApi, type KubeObject } from '../../kube/client.js';
import { Resources as R, type ResourceType } from '../../kube/kinds.js';
import { LeaderElector } from '../../kube/leader-election.js';
import { createLogger } from '../../kube/logger.js';
import { OperatorMetrics } from '../../kube/metrics.js';
import {
  PreconditionError,
  PreconditionMonitor,
  checkPreconditions,
  clientFor,
  loadKubeConfig,
  type RequiredNamespace,
} from '../../kube/preflight.js';
import { ExponentialBackoffRateLimiter } from '../../kube/work-queue.js';
import { HEARTBEAT_LABEL, peerOfNamespace } from '../../api/federation.js';
import { PEER_LABEL } from '../../api/labels.js';
import { Matcher } from '../matching/index.js';
import type { AssignmentObject, OfferObject, PassResult, RequestObject } from './pass.js';
import { Presence, type LeaseObject } from './presence.js';
import { MatchmakerReconciler } from './reconciler.js';

export type { PassResult } from './pass.js';

/** What the matchmaker is told at start (flags and defaults: cli/config.ts). */
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
  /** Offers and Requests whose spec is larger (JSON bytes) are ignored (Ready=False TooLarge). */
  maxObjectBytes: number;
}

export interface RunningMatchmaker {
  metrics: OperatorMetrics;
  metricsPort: number;
  isLeader(): boolean;
  /** The last finished pass (undefined before the first). */
  lastPass(): PassResult | undefined;
  stop(): Promise<void>;
}

const KUBECONFIG_FLAG = '--kubeconfig (or KUBECONFIG)';

/** Creates the namespace when it is missing; one that cannot be made is a PreconditionError. */
async function ensureNamespace(client: KubeApi, ns: RequiredNamespace): Promise<void> {
  if (await client.get(R.Namespace, ns.name)) return;
  try {
    await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns.name } });
  } catch (err) {
    if (isConflict(err)) return;
    throw new PreconditionError(
      `namespace ${ns.name} (for ${ns.usedFor}, ${ns.flag}) does not exist and cannot be created (${err instanceof Error ? err.message : String(err)})`,
      `create it (kubectl create namespace ${ns.name}) or give an existing one with ${ns.flag}`,
    );
  }
}

/** A failed pass is retried after 0.5 s, doubling up to 30 s; success resets it. */
const passBackoff = (): ExponentialBackoffRateLimiter => new ExponentialBackoffRateLimiter(500, 30_000);

function matchmakerMetrics(defaultMetrics: boolean) {
  const metrics = new OperatorMetrics(defaultMetrics);
  const registers = [metrics.registry];
  return {
    metrics,
    solveSeconds: new Histogram({
      name: 'pcloud_matchmaker_solve_seconds',
      help: 'Time the solver took in one matchmaking pass.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
    passSeconds: new Histogram({
      name: 'pcloud_matchmaker_pass_seconds',
      help: 'Time one matchmaking pass took (solve and writes).',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
      registers,
    }),
    presentPeers: new Gauge({
      name: 'pcloud_matchmaker_present_peers',
      help: 'Peers whose heartbeat is within the grace period.',
      registers,
    }),
    assignedUnits: new Gauge({
      name: 'pcloud_matchmaker_assigned_units',
      help: 'Units assigned by the last pass.',
      registers,
    }),
  };
}

export async function runMatchmaker(
  config: MatchmakerConfig,
  opts: { log?: Logger; kubeConfig?: KubeConfig; defaultMetrics?: boolean; now?: () => number } = {},
): Promise<RunningMatchmaker> {
  const log = (opts.log ?? createLogger(config.logLevel)).child({ controller: 'matchmaker' });
  const now = opts.now ?? Date.now;
  const kc = opts.kubeConfig ?? loadKubeConfig(config.kubeconfig, KUBECONFIG_FLAG);
  const m = matchmakerMetrics(opts.defaultMetrics ?? true);
  const metrics = m.metrics;
  const presence = new Presence(config.peerGraceMs, now, log);
  const client = await clientFor(kc, config.kubeconfig, KUBECONFIG_FLAG, (verb, code) => {
    metrics.apiRequests.labels(verb, String(code)).inc();
    presence.apiAnswered(code);
  });
  // Preconditions (docs/operator.md "First run"): the cluster answers, our CRDs are
  // served, and the Lease's namespace exists or can be made (the matchmaker creates it:
  // on the matchmaker cluster no chart does). A failure is one line and exit code 2.
  const leaseNamespace: RequiredNamespace = {
    name: config.leaseNamespace,
    usedFor: 'the leader-election Lease',
    flag: '--lease-namespace',
  };
  const monitor = new PreconditionMonitor(log);
  try {
    await checkPreconditions(client, kc.getCurrentCluster()?.server ?? '', {
      kubeconfigFlag: KUBECONFIG_FLAG,
      kinds: [R.Offer, R.Request, R.Assignment, R.Lease, R.Namespace],
      namespaces: [],
    });
    if (config.leaderElect) await ensureNamespace(client, leaseNamespace);
  } catch (err) {
    client.close();
    throw err;
  }

  // --- caches --------------------------------------------------------------------------
  const informers: Informer<KubeObject>[] = [];
  const informer = <T extends KubeObject>(type: ResourceType, labelSelector?: string): Informer<T> => {
    const inf = new Informer<T>(kc, client, type, log, {
      ...(labelSelector ? { labelSelector } : {}),
      backoffMaxMs: 5_000,
      ...monitor.informerHooks(type),
    });
    informers.push(inf);
    return inf;
  };
  const offers = informer<OfferObject>(R.Offer);
  const requests = informer<RequestObject>(R.Request);
  const assignments = informer<AssignmentObject>(R.Assignment);
  const leases = informer<LeaseObject>(R.Lease, `${HEARTBEAT_LABEL}=true`);
  // peer namespaces: `federation invite` labels them and records the peer's home domain
  const namespaces = informer<KubeObject>(R.Namespace, PEER_LABEL);

  // --- the controller: one key, the pass -------------------------------------------------
  // Resolves false when the current term as leader ends (so a pass waiting for the caches
  // to sync lets the controller stop).
  let endTerm: (v: false) => void = () => {};
  let termEnded = new Promise<false>((resolve) => (endTerm = resolve));
  const reconciler = new MatchmakerReconciler({
    client,
    caches: {
      offers: () => offers.list(),
      requests: () => requests.list(),
      assignments: () => assignments.list(),
      namespaces: () => namespaces.list(),
    },
    presence,
    matcher: new Matcher(),
    now,
    peerGraceMs: config.peerGraceMs,
    writeConcurrency: config.writeConcurrency,
    maxObjectBytes: config.maxObjectBytes,
    log,
    debounceQuietMs: config.debounceQuietMs,
    debounceMaxMs: config.debounceMaxMs,
    waitForSync: () =>
      Promise.race([Promise.all(informers.map((i) => i.waitForSync())).then(() => true), termEnded]),
    enqueueAfter: (key, ms) => controller.enqueueAfter(key, ms), // called once events flow, after this line
    onPass: (result, passMs) => {
      m.presentPeers.set(result.present.length);
      m.assignedUnits.set(result.assigned);
      if (result.solved) m.solveSeconds.observe(result.solveMs / 1000);
      m.passSeconds.observe(passMs / 1000);
    },
  });
  const controller = new Controller(reconciler, log, metrics, { workers: 1, rateLimiter: passBackoff });

  const changed = (o: KubeObject): void => {
    // a namespaced object in peer-*, or the namespace peer-* itself
    if (peerOfNamespace(o.metadata?.namespace ?? o.metadata?.name) !== undefined) reconciler.changed();
  };
  for (const inf of [offers, requests, assignments, namespaces])
    inf.on({ add: changed, update: changed, delete: changed });
  leases.on({
    add: (l) => {
      presence.observe(l);
      reconciler.changed();
    },
    update: (l) => {
      const peer = Presence.peerOf(l);
      const wasPresent = peer !== undefined && presence.isPresent(peer);
      presence.observe(l);
      // a renewal of a present peer changes nothing; a returning peer does
      if (!wasPresent) reconciler.changed();
    },
    delete: (l) => {
      presence.forget(l);
      reconciler.changed();
    },
  });
  if (config.leaderElect) {
    const leaseNs = new Informer<KubeObject>(kc, client, R.Namespace, log, {
      fieldSelector: `metadata.name=${config.leaseNamespace}`,
    });
    monitor.watchNamespace(leaseNs, leaseNamespace);
    informers.push(leaseNs);
  }
  for (const inf of informers) inf.start();

  // --- leadership: only the leader runs passes -------------------------------------------
  let leading = false;
  const lead = (): void => {
    termEnded = new Promise<false>((resolve) => (endTerm = resolve));
    leading = true;
    metrics.leader.set(1);
    reconciler.reset();
    controller.start(); // queues the key: the first pass runs once the caches have synced
  };
  let elector: LeaderElector | undefined;
  if (config.leaderElect) {
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
        onStartedLeading: lead,
        onStoppedLeading: () => {
          leading = false;
          metrics.leader.set(0);
          endTerm(false);
          void controller.stop();
        },
      },
      log,
    );
    elector.start();
  } else {
    lead();
  }
  const caches = cacheReadiness(informers, () => leading);
  let server: HealthServer | undefined = await startHealthServer(
    config.metricsPort,
    metrics,
    () => {
      const reasons = monitor.reasons();
      return reasons.length > 0 ? { ok: false, detail: reasons.join('\n') } : caches();
    },
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
    lastPass: () => reconciler.lastPass(),
    stop: async () => {
      await elector?.stop();
      leading = false;
      endTerm(false);
      await controller.stop(); // waits for a pass in flight
      await Promise.all(informers.map((i) => i.stop()));
      await server?.close();
      server = undefined;
      client.close();
      log.info('matchmaker stopped');
    },
  };
}
