/**
 * The home operator process: informers, the Tenant and hosted Assignment controllers,
 * leader election on a Lease, and the /metrics, /healthz and /readyz server.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Offer } from '../generated/personalcloud.js';
import {
  GATEWAY_KEY,
  HostedAssignmentReconciler,
  type AssignmentObject,
  type TenantObject,
} from './assignment/hosted-assignment-controller.js';
import type { OperatorConfig } from './config.js';
import { startFederationWhenJoined } from './federation/start.js';
import type { Home } from './home.js';
import { MANAGED_SELECTOR } from '../api/labels.js';
import { Controller } from '../kube/controller.js';
import { EventRecorder } from '../kube/events.js';
import { cacheReadiness, startHealthServer, type HealthServer } from '../kube/health-server.js';
import { Informer } from '../kube/informer.js';
import { KubeClient, type KubeObject } from '../kube/client.js';
import { LeaderElector } from '../kube/leader-election.js';
import { createLogger } from '../kube/logger.js';
import { OperatorMetrics } from '../kube/metrics.js';
import { Resources, type ResourceType } from '../kube/kinds.js';
import { TenantReconciler } from './tenant/tenant-controller.js';

export interface RunningOperator {
  metrics: OperatorMetrics;
  metricsPort: number;
  client: KubeClient;
  isLeader(): boolean;
  /** Keys queued or in flight over both controllers. */
  busy(): number;
  hasSynced(): boolean;
  /** Queue every object again (what a resync or a new leader does). */
  resyncAll(): void;
  stop(): Promise<void>;
}

/** What makes a primary object worth reconciling again (not our own status writes). */
function signature(o: KubeObject): string {
  const m = o.metadata ?? {};
  return JSON.stringify([m.generation, m.deletionTimestamp, m.finalizers, m.labels]);
}

export async function runOperator(
  config: OperatorConfig,
  opts: { log?: Logger; kubeConfig?: KubeConfig; defaultMetrics?: boolean } = {},
): Promise<RunningOperator> {
  const log = opts.log ?? createLogger(config.logLevel);
  const kc = opts.kubeConfig ?? new KubeConfig();
  if (!opts.kubeConfig) {
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
  }
  const metrics = new OperatorMetrics(opts.defaultMetrics ?? true);
  const client = await KubeClient.fromKubeConfig(kc, (verb, code) =>
    metrics.apiRequests.labels(verb, String(code)).inc(),
  );
  const informers: Informer<KubeObject>[] = [];
  const informer = <T extends KubeObject>(type: ResourceType, labelSelector?: string): Informer<T> => {
    const inf = new Informer<T>(kc, client, type, log, {
      ...(labelSelector ? { labelSelector } : {}),
      onConnect: () => metrics.apiRequests.labels('WATCH', '200').inc(),
    });
    informers.push(inf);
    return inf;
  };

  const tenants = informer<TenantObject>(Resources.Tenant);
  const assignments = informer<AssignmentObject>(Resources.Assignment);
  const offers = informer<Offer & KubeObject>(Resources.Offer);
  const tenantInformers = {
    tenants,
    namespaces: informer(Resources.Namespace, MANAGED_SELECTOR),
    resourceQuotas: informer(Resources.ResourceQuota, MANAGED_SELECTOR),
    limitRanges: informer(Resources.LimitRange, MANAGED_SELECTOR),
    roles: informer(Resources.Role, MANAGED_SELECTOR),
    roleBindings: informer(Resources.RoleBinding, MANAGED_SELECTOR),
    networks: informer(Resources.NetworkAttachmentDefinition, MANAGED_SELECTOR),
    networkPolicies: informer(Resources.CiliumNetworkPolicy, MANAGED_SELECTOR),
  };
  const assignmentInformers = {
    assignments,
    tenants,
    virtualMachines: informer(Resources.VirtualMachine, MANAGED_SELECTOR),
    virtualMachineInstances: informer(Resources.VirtualMachineInstance),
    services: informer(Resources.Service, MANAGED_SELECTOR),
    httpRoutes: informer(Resources.HTTPRoute, MANAGED_SELECTOR),
    tlsRoutes: informer(Resources.TLSRoute, MANAGED_SELECTOR),
    gateways: informer(Resources.Gateway, MANAGED_SELECTOR),
  };

  /** This home: the flags, overridden by this home's Offer (unit size and bandwidth) when there is one. */
  const home = (): Home => {
    const offer = offers
      .list()
      .filter((o) => o.spec?.peer === config.peer && !o.metadata?.deletionTimestamp)
      .sort((a, b) =>
        String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)),
      )[0];
    return {
      peer: config.peer,
      homeDomain: config.homeDomain,
      homeLan: config.homeLan,
      unit: offer
        ? {
            cpu: String(offer.spec.unit.cpu),
            memory: String(offer.spec.unit.memory),
            storage: String(offer.spec.unit.storage),
          }
        : config.unit,
      bandwidth: {
        ingress: offer?.spec.bandwidth?.ingress ?? '10M',
        egress: offer?.spec.bandwidth?.egress ?? '10M',
      },
      gateway: {
        namespace: config.gatewayNamespace,
        name: config.gatewayName,
        className: config.gatewayClass,
      },
    };
  };

  const instance = config.identity;
  const tenantReconciler = new TenantReconciler(
    client,
    tenantInformers,
    new EventRecorder(client, 'tenant-controller', instance, log),
    home,
  );
  const assignmentReconciler = new HostedAssignmentReconciler(
    client,
    assignmentInformers,
    new EventRecorder(client, 'hosted-assignment-controller', instance, log),
    home,
  );
  const tenantController = new Controller(tenantReconciler, log, metrics, { workers: config.workers });
  const assignmentController = new Controller(assignmentReconciler, log, metrics, {
    workers: config.workers,
  });

  // --- event wiring: events only name keys; reconcilers re-read the caches ---------
  const seen = new Map<string, string>();
  const changed = (kind: string, o: KubeObject): boolean => {
    const k = `${kind}/${o.metadata?.uid ?? ''}`;
    const sig = signature(o);
    if (seen.get(k) === sig) return false;
    seen.set(k, sig);
    return true;
  };
  const enqueueRequester = (requester: string): void => {
    for (const k of assignmentReconciler.keysForRequester(requester)) assignmentController.enqueue(k);
  };
  tenants.on({
    add: (t) => {
      changed('Tenant', t);
      tenantController.enqueue(t.metadata?.name ?? '');
      assignmentReconciler.invalidate();
      enqueueRequester(t.metadata?.name ?? '');
    },
    update: (t) => {
      if (changed('Tenant', t)) tenantController.enqueue(t.metadata?.name ?? '');
      assignmentReconciler.invalidate();
      enqueueRequester(t.metadata?.name ?? '');
    },
    delete: (t) => {
      seen.delete(`Tenant/${t.metadata?.uid ?? ''}`);
      assignmentReconciler.invalidate();
      enqueueRequester(t.metadata?.name ?? '');
      // A younger Tenant may have been waiting for this one's peer or hostname.
      for (const k of tenantReconciler.allKeys()) tenantController.enqueue(k);
    },
  });
  const toTenant = (child: KubeObject): void => {
    const key = TenantReconciler.ownerKey(child);
    if (key) tenantController.enqueue(key);
  };
  for (const inf of Object.values(tenantInformers)) {
    if (inf === tenants) continue;
    inf.on({ add: toTenant, update: toTenant, delete: toTenant });
  }
  const assignmentKey = (a: KubeObject): string => `${a.metadata?.namespace ?? ''}/${a.metadata?.name ?? ''}`;
  assignments.on({
    add: (a) => {
      if (!assignmentReconciler.isHosted(a)) return;
      changed('Assignment', a);
      assignmentReconciler.invalidate();
      assignmentController.enqueue(assignmentKey(a));
    },
    update: (a) => {
      if (!assignmentReconciler.isHosted(a) || !changed('Assignment', a)) return;
      assignmentReconciler.invalidate();
      assignmentController.enqueue(assignmentKey(a));
    },
    delete: (a) => {
      if (!assignmentReconciler.isHosted(a)) return;
      seen.delete(`Assignment/${a.metadata?.uid ?? ''}`);
      assignmentReconciler.invalidate();
      enqueueRequester(a.spec.requester);
    },
  });
  const toAssignment = (child: KubeObject): void => {
    const key = HostedAssignmentReconciler.ownerKey(child);
    if (key) assignmentController.enqueue(key);
  };
  for (const inf of [
    assignmentInformers.virtualMachines,
    assignmentInformers.services,
    assignmentInformers.httpRoutes,
    assignmentInformers.tlsRoutes,
  ]) {
    inf.on({ add: toAssignment, update: toAssignment, delete: toAssignment });
  }
  const fromVmi = (vmi: KubeObject): void => {
    const vm = assignmentInformers.virtualMachines.get(vmi.metadata?.name ?? '', vmi.metadata?.namespace);
    if (vm) toAssignment(vm);
  };
  assignmentInformers.virtualMachineInstances.on({ add: fromVmi, update: fromVmi, delete: fromVmi });
  const gatewayChanged = (): void => assignmentController.enqueue(GATEWAY_KEY);
  assignmentInformers.gateways.on({ add: gatewayChanged, update: gatewayChanged, delete: gatewayChanged });
  const offerChanged = (o: Offer & KubeObject): void => {
    if (o.spec?.peer !== config.peer) return;
    assignmentReconciler.invalidate();
    for (const k of tenantReconciler.allKeys()) tenantController.enqueue(k);
    for (const k of assignmentReconciler.allKeys()) assignmentController.enqueue(k);
  };
  offers.on({ add: offerChanged, update: offerChanged, delete: offerChanged });

  for (const inf of informers) inf.start();
  const synced = (): boolean => informers.every((i) => i.hasSynced());

  // --- leadership --------------------------------------------------------------------
  let leading = false;
  let term = 0;
  const startControllers = async (): Promise<void> => {
    const myTerm = ++term;
    await Promise.all(informers.map((i) => i.waitForSync()));
    if (!leading || myTerm !== term) return;
    tenantController.start();
    assignmentController.start();
  };
  const stopControllers = async (): Promise<void> => {
    term++;
    await Promise.all([tenantController.stop(), assignmentController.stop()]);
  };
  let elector: LeaderElector | undefined;
  if (config.leaderElect) {
    elector = new LeaderElector(
      client,
      {
        namespace: config.leaseNamespace,
        name: config.leaseName,
        identity: config.identity,
        leaseDurationMs: config.leaseDurationMs,
        renewDeadlineMs: config.leaseRenewDeadlineMs,
        retryPeriodMs: config.leaseRetryPeriodMs,
      },
      {
        onStartedLeading: () => {
          leading = true;
          metrics.leader.set(1);
          void startControllers();
        },
        onStoppedLeading: () => {
          leading = false;
          metrics.leader.set(0);
          void stopControllers();
        },
      },
      log,
    );
    elector.start();
  } else {
    leading = true;
    metrics.leader.set(1);
    void startControllers();
  }

  const federation = startFederationWhenJoined({
    peer: config.peer,
    kubeConfig: kc,
    client,
    log,
    metrics,
    isLeader: () => leading,
  });
  let server: HealthServer | undefined;
  server = await startHealthServer(
    config.metricsPort,
    metrics,
    cacheReadiness(informers, () => leading),
    config.metricsHost,
  );
  log.info(
    {
      peer: config.peer,
      metricsPort: server.port,
      identity: config.identity,
      leaderElect: config.leaderElect,
    },
    'operator started',
  );

  return {
    metrics,
    metricsPort: server.port,
    client,
    isLeader: () => leading,
    busy: () => tenantController.busy() + assignmentController.busy(),
    hasSynced: synced,
    resyncAll: () => {
      for (const k of tenantReconciler.allKeys()) tenantController.enqueue(k);
      for (const k of assignmentReconciler.allKeys()) assignmentController.enqueue(k);
    },
    stop: async () => {
      await elector?.stop();
      leading = false;
      await federation.stop();
      await stopControllers();
      await Promise.all(informers.map((i) => i.stop()));
      await server?.close();
      server = undefined;
      client.close();
      log.info('operator stopped');
    },
  };
}
