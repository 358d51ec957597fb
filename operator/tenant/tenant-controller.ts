/**
 * TenantReconciler: a Tenant becomes its namespace, quota and limits, RBAC for the
 * remote peer, its private L2 network and its network policies. One condition per
 * child; Ready when all are. Problems the schema cannot catch become False
 * conditions and Warning Events; one failing child never blocks the others.
 */
import type { Logger } from 'pino';
import type { Tenant } from '../../generated/personalcloud.js';
import type { Home } from '../home.js';
import {
  MANAGED_SELECTOR,
  TENANT_FIELD_MANAGER,
  TENANT_FINALIZER,
  TENANT_LABEL,
  tenantNamespaceName,
} from '../../api/labels.js';
import type { Cidr } from '../network-address.js';
import type { Offer } from '../../generated/personalcloud.js';
import { applyStatusIfChanged } from '../../kube/apply.js';
import { retriableError, syncChildren, type ChildFailure, type ChildSet } from '../../kube/children.js';
import type { Manager } from '../../kube/manager.js';
import type { ConditionInput } from '../../kube/conditions.js';
import type { ReconcileResult, Reconciler } from '../../kube/controller.js';
import { EventRecorder } from '../../kube/events.js';
import type { ObjectCache } from '../../kube/informer.js';
import type { KubeApi, KubeObject } from '../../kube/client.js';
import { addFinalizer, isDeleting, removeFinalizer } from '../../kube/ownership.js';
import { Resources, type ResourceType } from '../../kube/kinds.js';
import { desiredNamespace } from './namespace.js';
import { desiredCiliumNetworkPolicies, desiredStandardNetworkPolicy } from './network-policies.js';
import {
  desiredNetworkAttachmentDefinition,
  tenantNetworkStatus,
  type TenantNetworkStatus,
} from './network.js';
import { QUOTA_NAME, desiredLimitRange, desiredResourceQuota } from './quota.js';
import { desiredRole, desiredRoleBinding } from './rbac.js';
import { tenantStatus } from './status.js';
import {
  TenantConditions,
  TenantProblem,
  checkBandwidth,
  checkConflicts,
  checkQuota,
  checkSubnet,
  type TenantConditionType,
  type TenantQuota,
  type TenantRates,
} from './validation.js';

export type TenantObject = Tenant & KubeObject;
type OfferObject = Offer & KubeObject;

/** What the child builders need once a Tenant's spec has been checked. */
interface TenantPlan {
  tenant: TenantObject;
  home: Home;
  quota: TenantQuota | TenantProblem;
  subnet: Cidr | TenantProblem;
  rates: TenantRates | TenantProblem;
  network: TenantNetworkStatus;
}

/**
 * The children of a Tenant, described once: kind, the condition it reports under, and
 * its builder (undefined when the Tenant's spec cannot give one: that condition is
 * already False). The namespace comes first: the others live in it.
 */
const TENANT_CHILDREN: ReadonlyArray<{
  type: ResourceType;
  condition: TenantConditionType;
  desired: (p: TenantPlan) => KubeObject[] | undefined;
}> = [
  {
    type: Resources.Namespace,
    condition: TenantConditions.Namespace,
    desired: (p) => [desiredNamespace(p.tenant)],
  },
  { type: Resources.Role, condition: TenantConditions.RBAC, desired: (p) => [desiredRole(p.tenant)] },
  {
    type: Resources.RoleBinding,
    condition: TenantConditions.RBAC,
    desired: (p) => [desiredRoleBinding(p.tenant)],
  },
  {
    type: Resources.ResourceQuota,
    condition: TenantConditions.Quota,
    desired: (p) =>
      p.quota instanceof TenantProblem ? undefined : [desiredResourceQuota(p.tenant, p.quota)],
  },
  {
    type: Resources.LimitRange,
    condition: TenantConditions.Quota,
    desired: (p) =>
      p.quota instanceof TenantProblem ? undefined : [desiredLimitRange(p.tenant, p.home.unit)],
  },
  {
    type: Resources.NetworkAttachmentDefinition,
    condition: TenantConditions.Network,
    desired: (p) =>
      p.subnet instanceof TenantProblem || p.rates instanceof TenantProblem
        ? undefined
        : [desiredNetworkAttachmentDefinition(p.tenant, p.subnet, p.rates, p.network.mtu)],
  },
  {
    type: Resources.CiliumNetworkPolicy,
    condition: TenantConditions.NetworkPolicy,
    desired: (p) => [...desiredCiliumNetworkPolicies(p.tenant, p.home)],
  },
  {
    type: Resources.NetworkPolicy,
    condition: TenantConditions.NetworkPolicy,
    desired: (p) => [desiredStandardNetworkPolicy(p.tenant, p.home)],
  },
];

const OK: Record<TenantConditionType, string> = {
  NamespaceReady: 'NamespaceApplied',
  QuotaReady: 'QuotaApplied',
  RBACReady: 'RBACApplied',
  NetworkReady: 'NetworkApplied',
  NetworkPolicyReady: 'NetworkPolicyApplied',
  HostnameReady: 'HostnameUnique',
};

/** The Tenant a child belongs to (from its tenant label). */
export function tenantOwnerKey(child: KubeObject): string | undefined {
  return child.metadata?.labels?.[TENANT_LABEL];
}

/**
 * The Tenant controller's wiring: it reconciles Tenants, owns their children (by the
 * tenant label), and looks at every Tenant again when this home's Offer changes (unit
 * size) or a Tenant goes (a younger one may have waited for its peer or hostname).
 */
export function setupTenantController(
  mgr: Manager,
  home: () => Home,
  opts: { instance: string; workers?: number },
): TenantReconciler {
  const reconciler = new TenantReconciler(
    mgr.client,
    (type) => mgr.cache(type, type === Resources.Tenant ? {} : { labelSelector: MANAGED_SELECTOR }),
    new EventRecorder(mgr.client, TENANT_FIELD_MANAGER, opts.instance, mgr.log),
    home,
  );
  const builder = mgr
    .controller(reconciler.name)
    .for<TenantObject>(Resources.Tenant)
    .watches<TenantObject>(Resources.Tenant, (_t, event) => (event === 'delete' ? reconciler.allKeys() : []))
    .watches<OfferObject>(Resources.Offer, (o) => (o.spec?.peer === home().peer ? reconciler.allKeys() : []));
  for (const child of TENANT_CHILDREN)
    builder.owns(child.type, tenantOwnerKey, { labelSelector: MANAGED_SELECTOR });
  builder.withOptions({ ...(opts.workers ? { workers: opts.workers } : {}) }).complete(reconciler);
  return reconciler;
}

export class TenantReconciler implements Reconciler {
  readonly name = 'tenant';

  constructor(
    private readonly client: KubeApi,
    private readonly cache: (type: ResourceType) => ObjectCache<KubeObject>,
    private readonly events: EventRecorder,
    private readonly home: () => Home,
    private readonly now: () => Date = () => new Date(),
  ) {}

  private tenants(): ObjectCache<TenantObject> {
    return this.cache(Resources.Tenant) as ObjectCache<TenantObject>;
  }

  allKeys(): string[] {
    return this.tenants()
      .list()
      .map((t) => t.metadata?.name ?? '');
  }

  async reconcile(key: string, log: Logger): Promise<ReconcileResult | void> {
    const cached = this.tenants().get(key);
    if (!cached) return;
    if (isDeleting(cached)) return this.finalize(cached, log);
    const tenant = await addFinalizer<TenantObject>(this.client, Resources.Tenant, cached, TENANT_FINALIZER);
    const home = this.home();
    const ns = tenantNamespaceName(tenant.spec.peer);
    const namespaces = this.cache(Resources.Namespace);

    const problems: TenantProblem[] = checkConflicts(tenant, this.tenants().list(), home);
    const plan: TenantPlan = {
      tenant,
      home,
      subnet: checkSubnet(tenant, home),
      rates: checkBandwidth(tenant),
      quota: checkQuota(tenant, home.unit),
      network: tenantNetworkStatus(tenant, this.tenants().list(), home.tenantMtu),
    };
    for (const p of [plan.subnet, plan.rates, plan.quota]) if (p instanceof TenantProblem) problems.push(p);

    const gen = tenant.metadata?.generation;
    const conditions = new Map<TenantConditionType, ConditionInput>();
    const fail = (type: TenantConditionType, reason: string, message: string): void => {
      if (!conditions.has(type))
        conditions.set(type, { type, status: 'False', reason, message, observedGeneration: gen });
    };
    const failAll = (reason: string, message: string): void => {
      for (const type of Object.values(TenantConditions)) fail(type, reason, message);
    };
    for (const p of problems) fail(p.condition, p.reason, p.message);

    const duplicatePeer = problems.some((p) => p.reason === 'DuplicatePeer');
    const failures: ChildFailure<TenantConditionType>[] = [];
    let wrote = 0;
    /** Applies and prunes the children whose condition has not failed already. */
    const sync = async (children: typeof TENANT_CHILDREN): Promise<void> => {
      const sets: ChildSet<TenantConditionType>[] = [];
      for (const c of children) {
        const desired = conditions.has(c.condition) ? undefined : c.desired(plan);
        if (desired) sets.push({ type: c.type, condition: c.condition, cache: this.cache(c.type), desired });
      }
      const r = await syncChildren(this.client, TENANT_FIELD_MANAGER, sets, {
        namespace: ns,
        owned: (child) => tenantOwnerKey(child) === key,
        log,
      });
      wrote += r.writes;
      for (const f of r.failures) {
        fail(f.condition, f.reason, f.message);
        log.warn({ kind: f.type.kind, reason: f.reason }, f.message);
        if (f.terminal) await this.events.record(tenant, 'Warning', f.reason, f.message);
      }
      failures.push(...r.failures);
    };

    if (duplicatePeer) {
      failAll('DuplicatePeer', 'another Tenant hosts this peer');
    } else {
      const [namespaceChild, ...inNamespace] = TENANT_CHILDREN;
      await sync([namespaceChild!]);
      if (conditions.has(TenantConditions.Namespace))
        failAll('NamespaceNotReady', `namespace ${ns} is not ready`);
      else if (namespaces.get(ns)?.metadata?.deletionTimestamp)
        failAll('NamespaceTerminating', `namespace ${ns} is still terminating`);
      await sync(inNamespace);
      // Ready never lies: until kube-controller-manager has first computed the quota's
      // status the API server refuses every VM in the namespace ("status unknown for
      // quota"). After a resize the quota stays enforced with its previous limits until
      // recomputed, so only a quota never computed is pending: a running tenant does not
      // flap to not-Ready (and its Assignments with it) each time its units change.
      if (!conditions.has(TenantConditions.Quota) && !(plan.quota instanceof TenantProblem)) {
        // Computed = a usage for every resource it limits: what the API server's quota
        // admission needs (`count/virtualmachines.kubevirt.io` only once the quota
        // controller has discovered the KubeVirt CRD).
        const observed = this.cache(Resources.ResourceQuota).get(QUOTA_NAME, ns)?.status as
          { hard?: Record<string, string>; used?: Record<string, string> } | undefined;
        const hard = Object.keys(observed?.hard ?? {});
        const computed = hard.length > 0 && hard.every((k) => observed?.used?.[k] !== undefined);
        if (!computed) {
          fail(
            TenantConditions.Quota,
            'QuotaPending',
            `ResourceQuota ${QUOTA_NAME} is not yet enforced by the quota controller (VMs are refused until it is)`,
          );
        }
      }
    }

    const children: ConditionInput[] = Object.values(TenantConditions).map(
      (type) =>
        conditions.get(type) ?? {
          type,
          status: 'True',
          reason: OK[type],
          message: `${type.replace(/Ready$/, '')} is in its desired state`,
          observedGeneration: gen,
        },
    );
    for (const p of problems) {
      log.warn({ reason: p.reason }, p.message);
      await this.events.record(tenant, 'Warning', p.reason, p.message);
    }
    // The network the node agents build: only for a Tenant that has one (its own peer and a good subnet).
    const network = duplicatePeer || plan.subnet instanceof TenantProblem ? undefined : plan.network;
    const status = tenantStatus(tenant, duplicatePeer ? undefined : ns, children, this.now(), network);
    if (
      await applyStatusIfChanged(
        this.client,
        Resources.Tenant,
        tenant,
        status as Record<string, unknown>,
        TENANT_FIELD_MANAGER,
      )
    )
      wrote++;
    if (wrote > 0) log.info({ writes: wrote, problems: problems.length }, 'tenant reconciled');
    const retriable = retriableError(failures);
    if (retriable) throw retriable;
    if (conditions.has(TenantConditions.Namespace) || namespaces.get(ns)?.metadata?.deletionTimestamp)
      return { requeueAfterMs: 2000 };
    // A pending quota is not polled: the quota controller's status write comes through the
    // ResourceQuota watch (owns, by the tenant label) and queues this Tenant again.
  }

  /** Delete path: remove the namespace (and with it every child), then the finalizer. */
  private async finalize(tenant: TenantObject, log: Logger): Promise<ReconcileResult | void> {
    if (!(tenant.metadata?.finalizers ?? []).includes(TENANT_FINALIZER)) return;
    const ns = tenantNamespaceName(tenant.spec.peer);
    const live = await this.client.get(Resources.Namespace, ns);
    if (live && live.metadata?.labels?.[TENANT_LABEL] === tenant.metadata?.name) {
      if (!live.metadata?.deletionTimestamp) {
        await this.client.delete(Resources.Namespace, ns, undefined, { uid: live.metadata?.uid });
        log.info({ namespace: ns }, 'deleting tenant namespace');
      }
      return { requeueAfterMs: 1000 };
    }
    await removeFinalizer(this.client, Resources.Tenant, tenant, TENANT_FINALIZER);
    log.info('tenant cleaned up');
  }
}
