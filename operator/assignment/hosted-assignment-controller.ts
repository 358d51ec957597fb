/**
 * HostedAssignmentReconciler: an Assignment whose spec.host is this home becomes the
 * requester's Tenant (units summed over its hosted Assignments), one VirtualMachine
 * per unit, a Service per VM and hostname routes through the home's Gateway. VM and
 * VMI status flow back into the Assignment's status. A finalizer tears the children
 * down, and the Tenant goes with the requester's last Assignment.
 */
import type { Logger } from 'pino';
import type { Assignment, AssignmentStatus, Tenant } from '../../generated/personalcloud.js';
import { hostnameSuffixFor, type Home } from '../home.js';
import {
  ASSIGNMENT_FIELD_MANAGER,
  ASSIGNMENT_FINALIZER,
  ASSIGNMENT_LABEL,
  ASSIGNMENT_NAMESPACE_LABEL,
  tenantNamespaceName,
} from '../../api/labels.js';
import { applyIfChanged, applyStatusIfChanged, errorMessage, isTerminalApiError } from '../../kube/apply.js';
import {
  isTrue,
  nextObservedGeneration,
  readySummary,
  setConditions,
  type ConditionInput,
} from '../../kube/conditions.js';
import type { ReconcileResult, Reconciler } from '../../kube/controller.js';
import type { EventRecorder } from '../../kube/events.js';
import type { Informer } from '../../kube/informer.js';
import type { KubeClient, KubeObject } from '../../kube/client.js';
import { addFinalizer, isDeleting, pruneChildren, removeFinalizer } from '../../kube/ownership.js';
import { Resources, type ResourceType } from '../../kube/kinds.js';
import { CloudInitError } from './cloud-init.js';
import { desiredGateway, desiredHTTPRoutes, desiredServices, desiredTLSRoutes } from './routes.js';
import { assignmentPhase, vmStatus, type ObservedVm } from './status.js';
import { CREATED_BY_ASSIGNMENTS, CREATED_BY_ASSIGNMENTS_LABEL, desiredTenant } from './tenant.js';
import { AssignmentProblem, admitAssignments, type AdmissionResult } from './validation.js';
import { desiredVirtualMachines, vmNames } from './virtual-machines.js';

export type AssignmentObject = Assignment & KubeObject;
export type TenantObject = Tenant & KubeObject;

export interface AssignmentInformers {
  assignments: Informer<AssignmentObject>;
  tenants: Informer<TenantObject>;
  virtualMachines: Informer<KubeObject>;
  virtualMachineInstances: Informer<KubeObject>;
  services: Informer<KubeObject>;
  httpRoutes: Informer<KubeObject>;
  tlsRoutes: Informer<KubeObject>;
  gateways: Informer<KubeObject>;
}

/** The queue key of the home's Gateway (Assignment keys always contain '/'). */
export const GATEWAY_KEY = 'gateway';

export const AssignmentConditions = {
  Accepted: 'Accepted',
  Tenant: 'TenantReady',
  VirtualMachines: 'VirtualMachinesReady',
  Routes: 'RoutesReady',
} as const;

export class HostedAssignmentReconciler implements Reconciler {
  readonly name = 'hosted-assignment';
  private admission: { version: number; result: AdmissionResult } | undefined;
  private cacheVersion = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly informers: AssignmentInformers,
    private readonly events: EventRecorder,
    private readonly home: () => Home,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Call on every Assignment or Tenant event: admission is recomputed lazily. */
  invalidate(): void {
    this.cacheVersion++;
  }

  isHosted(a: Assignment): boolean {
    return a.spec?.host === this.home().peer;
  }

  hosted(): AssignmentObject[] {
    return this.informers.assignments.list().filter((a) => this.isHosted(a));
  }

  allKeys(): string[] {
    return [
      GATEWAY_KEY,
      ...this.hosted().map((a) => `${a.metadata?.namespace ?? ''}/${a.metadata?.name ?? ''}`),
    ];
  }

  keysForRequester(requester: string): string[] {
    return this.hosted()
      .filter((a) => a.spec.requester === requester)
      .map((a) => `${a.metadata?.namespace ?? ''}/${a.metadata?.name ?? ''}`);
  }

  /** The Assignment key a child belongs to, from its labels. */
  static ownerKey(child: KubeObject): string | undefined {
    const labels = child.metadata?.labels ?? {};
    const name = labels[ASSIGNMENT_LABEL];
    const ns = labels[ASSIGNMENT_NAMESPACE_LABEL];
    return name && ns ? `${ns}/${name}` : undefined;
  }

  private admit(): AdmissionResult {
    if (this.admission?.version === this.cacheVersion) return this.admission.result;
    const tenants = new Map(this.informers.tenants.list().map((t) => [t.metadata?.name ?? '', t] as const));
    const result = admitAssignments(
      this.hosted().filter((a) => !isDeleting(a)),
      tenants,
      this.home(),
    );
    this.admission = { version: this.cacheVersion, result };
    return result;
  }

  async reconcile(key: string, log: Logger): Promise<ReconcileResult | void> {
    if (key === GATEWAY_KEY) {
      const desired = desiredGateway(this.home());
      const observed = this.informers.gateways.get(desired.metadata.name, desired.metadata.namespace);
      if (await applyIfChanged(this.client, ASSIGNMENT_FIELD_MANAGER, desired, observed))
        log.info('gateway applied');
      return;
    }
    const [ns = '', name = ''] = key.split('/');
    const cached = this.informers.assignments.get(name, ns);
    if (!cached || !this.isHosted(cached)) return;
    if (isDeleting(cached)) return this.finalize(cached, log);
    const a = await addFinalizer<AssignmentObject>(
      this.client,
      Resources.Assignment,
      cached,
      ASSIGNMENT_FINALIZER,
    );
    const home = this.home();
    const requester = a.spec.requester;
    const admission = this.admit();
    await this.syncTenant(requester, admission.unitsByRequester.get(requester) ?? 0, log);

    const gen = a.metadata?.generation;
    const conditions = new Map<string, ConditionInput>();
    const set = (
      type: string,
      status: 'True' | 'False' | 'Unknown',
      reason: string,
      message: string,
    ): void => {
      if (!conditions.has(type))
        conditions.set(type, { type, status, reason, message, observedGeneration: gen });
    };
    const tenant = this.informers.tenants.get(requester);
    const suffix = hostnameSuffixFor(home, requester, tenant?.spec.hostnameSuffix);
    const namespace = tenantNamespaceName(requester);
    let problem: AssignmentProblem | undefined = admission.problems.get(key);

    const desired: Array<[ResourceType, Informer<KubeObject>, KubeObject[]]> = [];
    if (!problem) {
      try {
        desired.push([
          Resources.VirtualMachine,
          this.informers.virtualMachines,
          desiredVirtualMachines(a, { unit: home.unit, bandwidth: home.bandwidth, hostnameSuffix: suffix }),
        ]);
      } catch (err) {
        if (!(err instanceof CloudInitError)) throw err;
        problem = new AssignmentProblem(err.reason, err.message);
      }
    }
    let retriable: unknown;
    let wrote = 0;
    if (problem) {
      set(AssignmentConditions.Accepted, 'False', problem.reason, problem.message);
      for (const t of [
        AssignmentConditions.Tenant,
        AssignmentConditions.VirtualMachines,
        AssignmentConditions.Routes,
      ])
        set(t, 'False', 'NotAccepted', 'the Assignment cannot be honoured here');
      log.warn({ reason: problem.reason }, problem.message);
      await this.events.record(a, 'Warning', problem.reason, problem.message);
      // Nothing of a refused Assignment may keep running.
      wrote += await this.deleteChildren(a);
    } else {
      set(AssignmentConditions.Accepted, 'True', 'Accepted', `hosted in namespace ${namespace}`);
      const nsReady =
        tenant !== undefined &&
        tenant.status?.namespace === namespace &&
        isTrue(tenant.status?.conditions, 'NamespaceReady');
      if (!nsReady) {
        const why = tenant
          ? `Tenant ${requester} is not ready yet`
          : `Tenant ${requester} does not exist yet`;
        set(AssignmentConditions.Tenant, 'False', 'WaitingForTenant', why);
        set(AssignmentConditions.VirtualMachines, 'Unknown', 'WaitingForTenant', why);
        set(AssignmentConditions.Routes, 'Unknown', 'WaitingForTenant', why);
      } else {
        set(
          AssignmentConditions.Tenant,
          'True',
          'TenantReady',
          `Tenant ${requester} hosts namespace ${namespace}`,
        );
        desired.push([Resources.Service, this.informers.services, desiredServices(a)]);
        desired.push([Resources.HTTPRoute, this.informers.httpRoutes, desiredHTTPRoutes(a, suffix, home)]);
        desired.push([Resources.TLSRoute, this.informers.tlsRoutes, desiredTLSRoutes(a, suffix, home)]);
        for (const [type, cache, objs] of desired) {
          const cond =
            type.kind === 'VirtualMachine'
              ? AssignmentConditions.VirtualMachines
              : AssignmentConditions.Routes;
          try {
            for (const o of objs) {
              if (
                await applyIfChanged(
                  this.client,
                  ASSIGNMENT_FIELD_MANAGER,
                  o,
                  cache.get(o.metadata?.name ?? '', namespace),
                )
              )
                wrote++;
            }
            const existing = cache
              .list(namespace)
              .filter((c) => HostedAssignmentReconciler.ownerKey(c) === key);
            wrote += (await pruneChildren(this.client, type, existing, objs)).length;
          } catch (err) {
            if (isTerminalApiError(err)) {
              set(cond, 'False', 'ApplyRejected', `${type.kind}: ${err.message}`);
              await this.events.record(a, 'Warning', 'ApplyRejected', `${type.kind}: ${err.message}`);
            } else {
              set(cond, 'False', 'ApplyFailed', `${type.kind}: ${errorMessage(err)}`);
              retriable ??= err;
            }
          }
        }
        set(
          AssignmentConditions.VirtualMachines,
          'True',
          'VirtualMachinesApplied',
          `${a.spec.units} VirtualMachine(s) in ${namespace}`,
        );
        set(AssignmentConditions.Routes, 'True', 'RoutesApplied', `hostnames under ${suffix}`);
      }
    }

    const vms = problem
      ? []
      : vmNames(a).map((vm) =>
          vmStatus(
            {
              name: vm,
              vm: this.informers.virtualMachines.get(vm, namespace) as ObservedVm['vm'],
              vmi: this.informers.virtualMachineInstances.get(vm, namespace) as ObservedVm['vmi'],
            },
            `${vm}.${suffix}`,
          ),
        );
    const children = [...conditions.values()];
    const ready = readySummary(children, gen);
    const status: AssignmentStatus = {
      phase: assignmentPhase(vms, false, problem !== undefined),
      vms,
      conditions: setConditions(a.status?.conditions, [...children, ready], this.now()),
    };
    const og = nextObservedGeneration(a.status?.observedGeneration, gen, ready.status === 'True');
    if (og !== undefined) status.observedGeneration = og;
    if (
      await applyStatusIfChanged(
        this.client,
        Resources.Assignment,
        a,
        status as Record<string, unknown>,
        ASSIGNMENT_FIELD_MANAGER,
      )
    )
      wrote++;
    if (wrote > 0) log.info({ writes: wrote, phase: status.phase }, 'assignment reconciled');
    if (retriable !== undefined)
      throw retriable instanceof Error ? retriable : new Error(errorMessage(retriable));
  }

  /** Creates, resizes or deletes the requester's Tenant (only one this controller created). */
  private async syncTenant(requester: string, units: number, log: Logger): Promise<void> {
    const existing = this.informers.tenants.get(requester);
    const ours =
      !existing || existing.metadata?.labels?.[CREATED_BY_ASSIGNMENTS_LABEL] === CREATED_BY_ASSIGNMENTS;
    if (!ours) return;
    if (units > 0) {
      if (
        await applyIfChanged(
          this.client,
          ASSIGNMENT_FIELD_MANAGER,
          desiredTenant(requester, units, this.home()),
          existing,
        )
      )
        log.info({ tenant: requester, units }, 'tenant applied');
    } else if (existing && !isDeleting(existing)) {
      await this.client.delete(Resources.Tenant, requester, undefined, { uid: existing.metadata?.uid });
      log.info({ tenant: requester }, 'last hosted Assignment of the requester is gone: tenant deleted');
    }
  }

  private async deleteChildren(a: AssignmentObject): Promise<number> {
    const namespace = tenantNamespaceName(a.spec.requester);
    const key = `${a.metadata?.namespace ?? ''}/${a.metadata?.name ?? ''}`;
    let n = 0;
    const kinds: Array<[ResourceType, Informer<KubeObject>]> = [
      [Resources.HTTPRoute, this.informers.httpRoutes],
      [Resources.TLSRoute, this.informers.tlsRoutes],
      [Resources.Service, this.informers.services],
      [Resources.VirtualMachine, this.informers.virtualMachines],
    ];
    for (const [type, cache] of kinds) {
      const mine = cache.list(namespace).filter((c) => HostedAssignmentReconciler.ownerKey(c) === key);
      n += (await pruneChildren(this.client, type, mine, [])).length;
    }
    return n;
  }

  /** Delete path: children first, then the Tenant's size (or the Tenant), then the finalizer. */
  private async finalize(a: AssignmentObject, log: Logger): Promise<ReconcileResult | void> {
    if (!(a.metadata?.finalizers ?? []).includes(ASSIGNMENT_FINALIZER)) return;
    const deleted = await this.deleteChildren(a);
    this.invalidate();
    const admission = this.admit();
    await this.syncTenant(a.spec.requester, admission.unitsByRequester.get(a.spec.requester) ?? 0, log);
    await removeFinalizer(this.client, Resources.Assignment, a, ASSIGNMENT_FINALIZER);
    log.info({ deletedChildren: deleted }, 'assignment cleaned up');
  }
}
