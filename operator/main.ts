/**
 * The home operator process: a list of controllers on one manager (shared informers,
 * leader election on a Lease, /metrics, /healthz and /readyz). Each controller declares
 * what it reconciles, owns and watches in its own folder.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Offer } from '../generated/personalcloud.js';
import type { KubeClient, KubeObject } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { Resources } from '../kube/kinds.js';
import { createLogger } from '../kube/logger.js';
import { Manager } from '../kube/manager.js';
import { OperatorMetrics } from '../kube/metrics.js';
import { clientFor, loadKubeConfig } from '../kube/preflight.js';
import { setupHostedAssignmentController } from './assignment/hosted-assignment-controller.js';
import type { OperatorConfig } from './config.js';
import { setupJoinController } from './federation/join-controller.js';
import { setupGatewayController } from './gateway/gateway-controller.js';
import { DEFAULT_VM_BANDWIDTH, type Home } from './home.js';
import { setupTenantController } from './tenant/tenant-controller.js';

/** How a user names the kubeconfig (cli/config.ts), for the precondition messages. */
const KUBECONFIG_FLAG = '--kubeconfig (or KUBECONFIG)';

export interface RunningOperator {
  metrics: OperatorMetrics;
  metricsPort: number;
  client: KubeClient;
  isLeader(): boolean;
  /** Keys queued or in flight over every controller. */
  busy(): number;
  hasSynced(): boolean;
  /** Queue every object again (what a resync or a new leader does). */
  resyncAll(): void;
  stop(): Promise<void>;
}

/** This home: the flags, overridden by this home's Offer (unit size and bandwidth) when there is one. */
export function homeOf(config: OperatorConfig, offers: readonly (Offer & KubeObject)[]): Home {
  const mine = offers.filter((o) => o.spec?.peer === config.peer && !o.metadata?.deletionTimestamp);
  const offer = [...mine].sort((a, b) =>
    String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)),
  )[0];
  return {
    peer: config.peer,
    homeDomain: config.homeDomain,
    homeLan: config.homeLan,
    tenantMtu: config.tenantMtu,
    clusterCidrs: config.clusterCidrs,
    ...(mine.length > 0 ? { offeredUnits: mine.reduce((t, o) => t + (o.spec.units ?? 0), 0) } : {}),
    unit: offer
      ? {
          cpu: String(offer.spec.unit.cpu),
          memory: String(offer.spec.unit.memory),
          storage: String(offer.spec.unit.storage),
        }
      : config.unit,
    bandwidth: {
      ingress: offer?.spec.bandwidth?.ingress ?? DEFAULT_VM_BANDWIDTH,
      egress: offer?.spec.bandwidth?.egress ?? DEFAULT_VM_BANDWIDTH,
    },
    gateway: {
      namespace: config.gatewayNamespace,
      name: config.gatewayName,
      className: config.gatewayClass,
      httpPort: config.gatewayHttpPort,
      tlsPort: config.gatewayTlsPort,
    },
  };
}

export async function runOperator(
  config: OperatorConfig,
  opts: { log?: Logger; kubeConfig?: KubeConfig; defaultMetrics?: boolean } = {},
): Promise<RunningOperator> {
  const log = opts.log ?? createLogger(config.logLevel);
  const kc = opts.kubeConfig ?? loadKubeConfig(config.kubeconfig, KUBECONFIG_FLAG);
  const metrics = new OperatorMetrics(opts.defaultMetrics ?? true);
  const client = await clientFor(kc, config.kubeconfig, KUBECONFIG_FLAG, metrics.observeRequest());
  const mgr = new Manager(kc, client, log, metrics, {
    workers: config.workers,
    metricsPort: config.metricsPort,
    metricsHost: config.metricsHost,
    ...(config.leaderElect
      ? {
          leaderElection: {
            namespace: config.leaseNamespace,
            name: config.leaseName,
            identity: config.identity,
            leaseDurationMs: config.leaseDurationMs,
            renewDeadlineMs: config.leaseRenewDeadlineMs,
            retryPeriodMs: config.leaseRetryPeriodMs,
          },
        }
      : {}),
  });
  const offers = mgr.cache<Offer & KubeObject>(Resources.Offer);
  const home = (): Home => homeOf(config, offers.list());

  // The controllers of a home.
  const instance = { instance: config.identity, workers: config.workers };
  setupTenantController(mgr, home, instance);
  setupHostedAssignmentController(mgr, home, instance);
  setupGatewayController(mgr, home);
  const join = setupJoinController(mgr, {
    peer: config.peer,
    secret: config.joinSecret,
    heartbeatMs: config.heartbeatMs,
  });

  // Preconditions (docs/operator.md "First run"): every kind cached above is served, and
  // the namespaces of the Lease and the Gateway exist; the operator does not create them.
  mgr.require({
    kubeconfigFlag: KUBECONFIG_FLAG,
    namespaces: [
      ...(config.leaderElect
        ? [{ name: config.leaseNamespace, usedFor: 'the leader-election Lease', flag: '--lease-namespace' }]
        : []),
      { name: config.gatewayNamespace, usedFor: "the home's Gateway", flag: '--gateway-namespace' },
    ],
    events: new EventRecorder(client, 'operator', config.identity, log),
  });
  let metricsPort: number;
  try {
    metricsPort = await mgr.start();
  } catch (err) {
    client.close();
    throw err;
  }
  log.info(
    { peer: config.peer, metricsPort, identity: config.identity, leaderElect: config.leaderElect },
    'operator started',
  );
  return {
    metrics,
    metricsPort,
    client,
    isLeader: () => mgr.isLeader(),
    busy: () => mgr.busy(),
    hasSynced: () => mgr.hasSynced(),
    resyncAll: () => mgr.resyncAll(),
    stop: async () => {
      await mgr.stop();
      await join.halt(log);
      client.close();
      log.info('operator stopped');
    },
  };
}
