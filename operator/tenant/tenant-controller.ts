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
  TENANT_FIELD_MANAGER,
  TENANT_FINALIZER,
  TENANT_LABEL,
  tenantNamespaceName,
} from '../../api/labels.js';
import { applyIfChanged, applyStatusIfChanged, errorMessage, isTerminalApiError } from '../../kube/apply.js';
import type { ConditionInput } from '../../kube/conditions.js';
import type { ReconcileResult, Reconciler } from '../../kube/controller.js';
import type { EventRecorder } from '../../kube/events.js';
import type { Informer } from '../../kube/informer.js';
import type { KubeClient, KubeObject } from '../../kube/client.js';
import { addFinalizer, isDeleting, pruneChildren, removeFinalizer } from '../../kube/ownership.js';
import { Resources, type ResourceType } from '../../kube/kinds.js';
import { desiredNamespace } from './namespace.js';
import { desiredCiliumNetworkPolicies } from './network-policies.js';
import { desiredNetworkAttachmentDefinition } from './network.js';
import { desiredLimitRange, desiredResourceQuota } from './quota.js';
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
} from './validation.js';

export interface TenantInformers {
  tenants: Informer<Tenant & KubeObject>;
  namespaces: Informer<KubeObject>;
  resourceQuotas: Informer<KubeObject>;
  limitRanges: Informer<KubeObject>;
  roles: Informer<KubeObject>;
  roleBindings: Informer<KubeObject>;
  networks: Informer<KubeObject>;
  networkPolicies: Informer<KubeObject>;
}

/** Which informer caches which child kind. */
function cacheFor(inf: TenantInformers, type: ResourceType): Informer<KubeObject> {
  switch (type.kind) {
    case 'Namespace':
      return inf.namespaces;
    case 'ResourceQuota':
      return inf.resourceQuotas;
    case 'LimitRange':
      return inf.limitRanges;
    case 'Role':
      return inf.roles;
    case 'RoleBinding':
      return inf.roleBindings;
    case 'NetworkAttachmentDefinition':
      return inf.networks;
    default:
      return inf.networkPolicies;
  }
}

const OK: Record<TenantConditionType, string> = {
  NamespaceReady: 'NamespaceApplied',
  QuotaReady: 'QuotaApplied',
  RBACReady: 'RBACApplied',
  NetworkReady: 'NetworkApplied',
  NetworkPolicyReady: 'NetworkPolicyApplied',
  HostnameReady: 'HostnameUnique',
};

export class TenantReconciler implements Reconciler {
  readonly name = 'tenant';

  constructor(
    private readonly client: KubeClient,
    private readonly informers: TenantInformers,
    private readonly events: EventRecorder,
    private readonly home: () => Home,
    private readonly now: () => Date = () => new Date(),
  ) {}

  allKeys(): string[] {
    return this.informers.tenants.list().map((t) => t.metadata?.name ?? '');
  }

  /** The Tenant key a child belongs to (from its tenant label). */
  static ownerKey(child: KubeObject): string | undefined {
    return child.metadata?.labels?.[TENANT_LABEL];
  }

  async reconcile(key: string, log: Logger): Promise<ReconcileResult | void> {
    const cached = this.informers.tenants.get(key);
    if (!cached) return;
    if (isDeleting(cached)) return this.finalize(cached, log);
    const tenant = await addFinalizer<Tenant & KubeObject>(
      this.client,
      Resources.Tenant,
      cached,
      TENANT_FINALIZER,
    );
    const home = this.home();
    const ns = tenantNamespaceName(tenant.spec.peer);

    const problems: TenantProblem[] = checkConflicts(tenant, this.informers.tenants.list(), home);
    const subnet = checkSubnet(tenant, home);
    const rates = checkBandwidth(tenant);
    const quota = checkQuota(tenant, home.unit);
    for (const p of [subnet, rates, quota]) if (p instanceof TenantProblem) problems.push(p);

    const gen = tenant.metadata?.generation;
    const conditions = new Map<TenantConditionType, ConditionInput>();
    const fail = (type: TenantConditionType, reason: string, message: string): void => {
      if (!conditions.has(type))
        conditions.set(type, { type, status: 'False', reason, message, observedGeneration: gen });
    };
    for (const p of problems) fail(p.condition, p.reason, p.message);

    const duplicatePeer = problems.some((p) => p.reason === 'DuplicatePeer');
    const retriable: unknown[] = [];
    let wrote = 0;
    const ensure = async (
      type: TenantConditionType,
      objs: KubeObject[],
      kind: ResourceType,
    ): Promise<void> => {
      if (conditions.has(type)) return;
      try {
        const cache = cacheFor(this.informers, kind);
        for (const o of objs) {
          if (
            await applyIfChanged(
              this.client,
              TENANT_FIELD_MANAGER,
              o,
              cache.get(o.metadata?.name ?? '', o.metadata?.namespace),
            )
          )
            wrote++;
        }
        if (kind.namespaced) {
          const existing = cache.list(ns).filter((c) => c.metadata?.labels?.[TENANT_LABEL] === key);
          wrote += (await pruneChildren(this.client, kind, existing, objs)).length;
        }
      } catch (err) {
        if (isTerminalApiError(err)) {
          fail(type, 'ApplyRejected', `${kind.kind}: ${err.message}`);
          await this.events.record(tenant, 'Warning', 'ApplyRejected', `${kind.kind}: ${err.message}`);
        } else {
          fail(type, 'ApplyFailed', `${kind.kind}: ${errorMessage(err)}`);
          retriable.push(err);
        }
      }
    };

    if (duplicatePeer) {
      for (const type of Object.values(TenantConditions))
        fail(type, 'DuplicatePeer', 'another Tenant hosts this peer');
    } else {
      await ensure(TenantConditions.Namespace, [desiredNamespace(tenant)], Resources.Namespace);
      if (conditions.has(TenantConditions.Namespace)) {
        for (const type of Object.values(TenantConditions))
          fail(type, 'NamespaceNotReady', `namespace ${ns} is not ready`);
      } else if (this.informers.namespaces.get(ns)?.metadata?.deletionTimestamp) {
        for (const type of Object.values(TenantConditions))
          fail(type, 'NamespaceTerminating', `namespace ${ns} is still terminating`);
      }
      await ensure(TenantConditions.RBAC, [desiredRole(tenant)], Resources.Role);
      await ensure(TenantConditions.RBAC, [desiredRoleBinding(tenant)], Resources.RoleBinding);
      if (!(quota instanceof TenantProblem)) {
        await ensure(TenantConditions.Quota, [desiredResourceQuota(tenant, quota)], Resources.ResourceQuota);
        await ensure(TenantConditions.Quota, [desiredLimitRange(tenant, home.unit)], Resources.LimitRange);
      }
      if (!(subnet instanceof TenantProblem) && !(rates instanceof TenantProblem)) {
        await ensure(
          TenantConditions.Network,
          [desiredNetworkAttachmentDefinition(tenant, subnet, rates)],
          Resources.NetworkAttachmentDefinition,
        );
      }
      await ensure(
        TenantConditions.NetworkPolicy,
        [...desiredCiliumNetworkPolicies(tenant, home.homeLan)],
        Resources.CiliumNetworkPolicy,
      );
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
    const status = tenantStatus(tenant, duplicatePeer ? undefined : ns, children, this.now());
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
    if (retriable.length > 0)
      throw new Error(`${retriable.length} child(ren) failed: ${errorMessage(retriable[0])}`);
    if (
      conditions.has(TenantConditions.Namespace) ||
      this.informers.namespaces.get(ns)?.metadata?.deletionTimestamp
    )
      return { requeueAfterMs: 2000 };
  }

  /** Delete path: remove the namespace (and with it every child), then the finalizer. */
  private async finalize(tenant: Tenant & KubeObject, log: Logger): Promise<ReconcileResult | void> {
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
