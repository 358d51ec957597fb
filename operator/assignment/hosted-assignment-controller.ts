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
  MANAGED_SELECTOR,
  TENANT_LABEL,
  VM_LABEL,
  tenantNamespaceName,
} from '../../api/labels.js';
import type { Offer } from '../../generated/personalcloud.js';
import { applyIfChanged, applyStatusIfChanged } from '../../kube/apply.js';
import { retriableError, syncChildren, type ChildFailure } from '../../kube/children.js';
import { objectKey, type Manager } from '../../kube/manager.js';
import {
  nextObservedGeneration,
  readySummary,
  setConditions,
  type ConditionInput,
} from '../../kube/conditions.js';
import type { ReconcileResult, Reconciler } from '../../kube/controller.js';
import { EventRecorder } from '../../kube/events.js';
import type { ObjectCache } from '../../kube/informer.js';
import type { KubeApi, KubeObject } from '../../kube/client.js';
import { addFinalizer, isDeleting, removeFinalizer } from '../../kube/ownership.js';
import { Resources, type ResourceType } from '../../kube/kinds.js';
import { CloudInitError } from './cloud-init.js';
import { desiredHTTPRoutes, desiredServices, desiredTLSRoutes } from './routes.js';
import { assignmentPhase, vmStatus, type ObservedVm } from './status.js';
import { CREATED_BY_ASSIGNMENTS, CREATED_BY_ASSIGNMENTS_LABEL, desiredTenant } from './tenant.js';
import { AssignmentProblem, admitAssignments, type AdmissionResult } from './validation.js';
import {
  cloudInitUserData,
  desiredCloudInitSecret,
  desiredVirtualMachines,
  vmNames,
} from './virtual-machines.js';
import { ApiError } from '../../kube/client.js';
import type { EventKind } from '../../kube/manager.js';
import { QUOTA_NAME } from '../tenant/quota.js';

export type AssignmentObject = Assignment & KubeObject;
export type TenantObject = Tenant & KubeObject;
type OfferObject = Offer & KubeObject;

export const AssignmentConditions = {
  Accepted: 'Accepted',
  Tenant: 'TenantReady',
  VirtualMachines: 'VirtualMachinesReady',
  Routes: 'RoutesReady',
} as const;
export type AssignmentConditionType = (typeof AssignmentConditions)[keyof typeof AssignmentConditions];

/** What the child builders need for one admitted Assignment. */
interface AssignmentPlan {
  assignment: AssignmentObject;
  home: Home;
  hostnameSuffix: string;
  virtualMachines: KubeObject[];
  /** The VMs this pass keeps or creates; a child of another VM is left for a later pass. */
  inPass: (child: KubeObject) => boolean;
}

/**
 * At most this many VMs (with their Services and routes) are created per reconcile; the
 * key is requeued for the rest, so a deletion (or a change) is seen between batches
 * instead of after the whole creation pass.
 */
export const VM_BATCH = 50;
/** The most VMs listed in an Assignment's status (counts cover the rest): status stays small. */
export const MAX_STATUS_VMS = 100;
/** A requeue between creation batches: long enough for the informer to see the last batch. */
const NEXT_BATCH_MS = 250;

const vmOf = (child: KubeObject): string => child.metadata?.labels?.[VM_LABEL] ?? child.metadata?.name ?? '';

/**
 * The children of a hosted Assignment, described once: kind, the condition it reports
 * under, and its builder. Deletion walks the list backwards (routes before VMs).
 */
const ASSIGNMENT_CHILDREN: ReadonlyArray<{
  type: ResourceType;
  condition: AssignmentConditionType;
  desired: (p: AssignmentPlan) => KubeObject[];
}> = [
  {
    type: Resources.VirtualMachine,
    condition: AssignmentConditions.VirtualMachines,
    desired: (p) => p.virtualMachines.filter(p.inPass),
  },
  {
    type: Resources.Service,
    condition: AssignmentConditions.Routes,
    desired: (p) => desiredServices(p.assignment).filter(p.inPass),
  },
  {
    type: Resources.HTTPRoute,
    condition: AssignmentConditions.Routes,
    desired: (p) => desiredHTTPRoutes(p.assignment, p.hostnameSuffix, p.home).filter(p.inPass),
  },
  {
    type: Resources.TLSRoute,
    condition: AssignmentConditions.Routes,
    desired: (p) => desiredTLSRoutes(p.assignment, p.hostnameSuffix, p.home).filter(p.inPass),
  },
];

/** Why the requester's Tenant cannot take VMs yet (its Ready condition, with its reason), or undefined. */
export function tenantNotReady(
  tenant: TenantObject | undefined,
  requester: string,
  namespace: string,
): { reason: string; message: string } | undefined {
  if (!tenant) return { reason: 'WaitingForTenant', message: `Tenant ${requester} does not exist yet` };
  const ready = (tenant.status?.conditions ?? []).find((c) => c.type === 'Ready');
  if (tenant.status?.namespace === namespace && ready?.status === 'True') return undefined;
  if (!ready) return { reason: 'WaitingForTenant', message: `Tenant ${requester} is not reconciled yet` };
  const failing = (tenant.status?.conditions ?? [])
    .filter((c) => c.type !== 'Ready' && c.status !== 'True')
    .map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`);
  return {
    reason: 'TenantNotReady',
    message: `Tenant ${requester} is not Ready (${ready.reason}): ${failing.join('; ') || ready.message}`,
  };
}

/**
 * How many more VirtualMachines the namespace's quota lets in now, as the API server's
 * quota admission judges it: nothing until the quota controller has computed a usage
 * for every resource in status.hard (else every create is refused "status unknown for
 * quota" — for `count/virtualmachines.kubevirt.io` that takes until the controller has
 * discovered the KubeVirt CRD), then its status.hard count (which lags spec.hard after a
 * resize until recomputed) less what is used — by its count or by the VMs in our cache,
 * whichever is more (the cache may not have seen the latest usage yet, nor the reverse).
 */
export function quotaRoom(quota: KubeObject | undefined, vmsInNamespace: number): number {
  const status = quota?.status as
    { hard?: Record<string, string>; used?: Record<string, string> } | undefined;
  const hard = status?.hard ?? {};
  const used = status?.used ?? {};
  if (Object.keys(hard).length === 0 || Object.keys(hard).some((k) => used[k] === undefined)) return 0;
  const limit = Number(hard[VM_COUNT_QUOTA]);
  if (!Number.isFinite(limit)) return Infinity; // not limited by this quota
  return Math.max(0, limit - Math.max(Number(used[VM_COUNT_QUOTA]) || 0, vmsInNamespace));
}

const VM_COUNT_QUOTA = 'count/virtualmachines.kubevirt.io';

/** The Assignment key a child belongs to, from its labels. */
export function assignmentOwnerKey(child: KubeObject): string | undefined {
  const labels = child.metadata?.labels ?? {};
  const name = labels[ASSIGNMENT_LABEL];
  const ns = labels[ASSIGNMENT_NAMESPACE_LABEL];
  return name && ns ? `${ns}/${name}` : undefined;
}

/**
 * The hosted Assignment controller's wiring: it reconciles the Assignments hosted here,
 * owns their VMs, Services and routes (by the assignment labels), follows each VM's
 * instance (VMI, named as its VM) for status, and re-admits when Assignments, Tenants
 * or this home's Offer change.
 */
export function setupHostedAssignmentController(
  mgr: Manager,
  home: () => Home,
  opts: { instance: string; workers?: number },
): HostedAssignmentReconciler {
  const managed = { labelSelector: MANAGED_SELECTOR };
  const reconciler = new HostedAssignmentReconciler(
    mgr.client,
    (type) =>
      mgr.cache(
        type,
        [Resources.Assignment, Resources.Tenant, Resources.VirtualMachineInstance].includes(type)
          ? {}
          : managed,
      ),
    new EventRecorder(mgr.client, ASSIGNMENT_FIELD_MANAGER, opts.instance, mgr.log),
    home,
  );
  const vms = mgr.cache(Resources.VirtualMachine, managed);
  const builder = mgr
    .controller(reconciler.name)
    .for<AssignmentObject>(Resources.Assignment, {
      predicate: (a) => reconciler.isHosted(a),
      onEvent: (a, event) => reconciler.observe(a, event),
    })
    // The requester's other Assignments resize its Tenant when one goes.
    .watches<AssignmentObject>(Resources.Assignment, (a, event) =>
      event === 'delete' && reconciler.isHosted(a) ? reconciler.keysForRequester(a.spec.requester) : [],
    )
    .watches<TenantObject>(Resources.Tenant, (t, event) => {
      reconciler.observe(t, event);
      return reconciler.keysForRequester(t.metadata?.name ?? '');
    })
    // New VMs wait for the quota controller to have applied the Tenant's units (a new
    // namespace's quota answers 403 "status unknown", a resized one "exceeded quota"
    // until then): its status.hard changing brings the requester's Assignments back.
    .watches<KubeObject>(
      Resources.ResourceQuota,
      (q, event) => {
        const tenant = q.metadata?.name === QUOTA_NAME ? q.metadata.labels?.[TENANT_LABEL] : undefined;
        return tenant !== undefined && reconciler.quotaChanged(q, event)
          ? reconciler.keysForRequester(tenant)
          : [];
      },
      managed,
    )
    .watches<OfferObject>(Resources.Offer, (o) => {
      if (o.spec?.peer !== home().peer) return [];
      reconciler.invalidate();
      return reconciler.allKeys();
    })
    .watches(Resources.VirtualMachineInstance, (vmi) => {
      const vm = vms.get(vmi.metadata?.name ?? '', vmi.metadata?.namespace);
      const key = vm && assignmentOwnerKey(vm);
      return key ? [key] : [];
    });
  for (const child of ASSIGNMENT_CHILDREN) builder.owns(child.type, assignmentOwnerKey, managed);
  builder.withOptions({ ...(opts.workers ? { workers: opts.workers } : {}) }).complete(reconciler);
  return reconciler;
}

export class HostedAssignmentReconciler implements Reconciler {
  readonly name = 'hosted-assignment';
  private admission: { version: number; result: AdmissionResult } | undefined;
  private cacheVersion = 0;
  /** cloud-init Secrets created (or found) by this process: `<namespace>/<name>/<VM uid>`. */
  private readonly cloudInitSecrets = new Set<string>();
  /** What admission reads of each Assignment and Tenant (by uid): status writes do not recompute it. */
  private readonly admissionInputs = new Map<string, string>();
  /** status.hard and the used resources of each tenant quota (by uid): what wakes the Assignments. */
  private readonly quotaStatus = new Map<string, string>();
  /** Tenant namespaces where an Assignment waits for room in the quota (QuotaPending). */
  private readonly waitingForQuota = new Set<string>();
  /** The hosted Assignments' keys per requester, rebuilt when admission inputs change. */
  private byRequester: { version: number; keys: Map<string, string[]> } | undefined;

  constructor(
    private readonly client: KubeApi,
    private readonly cache: (type: ResourceType) => ObjectCache<KubeObject>,
    private readonly events: EventRecorder,
    private readonly home: () => Home,
    private readonly now: () => Date = () => new Date(),
  ) {}

  private assignments(): ObjectCache<AssignmentObject> {
    return this.cache(Resources.Assignment) as ObjectCache<AssignmentObject>;
  }

  private tenants(): ObjectCache<TenantObject> {
    return this.cache(Resources.Tenant) as ObjectCache<TenantObject>;
  }

  /** Call on every Assignment or Tenant event: admission is recomputed lazily. */
  invalidate(): void {
    this.cacheVersion++;
  }

  /**
   * An Assignment or Tenant event: admission is recomputed (lazily) only when what it
   * reads changed — not for the status writes that make up most events, since admitting
   * costs a pass over every hosted Assignment.
   */
  observe(o: KubeObject, event: EventKind): void {
    const id = `${o.kind ?? ''}/${o.metadata?.uid ?? objectKey(o)}`;
    if (event === 'delete') {
      this.admissionInputs.delete(id);
      this.invalidate();
      return;
    }
    const m = o.metadata ?? {};
    const inputs = JSON.stringify([m.creationTimestamp, m.deletionTimestamp, m.labels, o.spec]);
    if (this.admissionInputs.get(id) === inputs) return;
    this.admissionInputs.set(id, inputs);
    this.invalidate();
  }

  /**
   * Whether a tenant quota's event should wake its requester's Assignments: when the
   * quota controller applied new limits or first computed a resource's usage (status.hard,
   * the set of used resources), or on any usage change while one of them waits for room.
   * Not on each VM's usage update otherwise (one per VM created).
   */
  quotaChanged(q: KubeObject, event: EventKind): boolean {
    const uid = q.metadata?.uid ?? objectKey(q);
    if (event === 'delete') {
      this.quotaStatus.delete(uid);
      return false;
    }
    const status = q.status as { hard?: unknown; used?: Record<string, unknown> } | undefined;
    const sig = JSON.stringify([status?.hard ?? null, Object.keys(status?.used ?? {}).sort()]);
    const changed = this.quotaStatus.get(uid) !== sig;
    this.quotaStatus.set(uid, sig);
    return changed || this.waitingForQuota.has(q.metadata?.namespace ?? '');
  }

  isHosted(a: Assignment): boolean {
    return a.spec?.host === this.home().peer;
  }

  hosted(): AssignmentObject[] {
    return this.assignments()
      .list()
      .filter((a) => this.isHosted(a));
  }

  allKeys(): string[] {
    return this.hosted().map(objectKey);
  }

  keysForRequester(requester: string): string[] {
    if (this.byRequester?.version !== this.cacheVersion) {
      const keys = new Map<string, string[]>();
      for (const a of this.hosted())
        keys.set(a.spec.requester, [...(keys.get(a.spec.requester) ?? []), objectKey(a)]);
      this.byRequester = { version: this.cacheVersion, keys };
    }
    return this.byRequester.keys.get(requester) ?? [];
  }

  private admit(): AdmissionResult {
    if (this.admission?.version === this.cacheVersion) return this.admission.result;
    const tenants = new Map(
      this.tenants()
        .list()
        .map((t) => [t.metadata?.name ?? '', t] as const),
    );
    const result = admitAssignments(
      this.hosted().filter((a) => !isDeleting(a)),
      tenants,
      this.home(),
    );
    this.admission = { version: this.cacheVersion, result };
    return result;
  }

  async reconcile(key: string, log: Logger): Promise<ReconcileResult | void> {
    const [ns = '', name = ''] = key.split('/');
    const cached = this.assignments().get(name, ns);
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
    const tenant = this.tenants().get(requester);
    const suffix = hostnameSuffixFor(home, requester, tenant?.spec.hostnameSuffix);
    const namespace = tenantNamespaceName(requester);
    let problem: AssignmentProblem | undefined = admission.problems.get(key);

    let virtualMachines: KubeObject[] = [];
    let userData = new Map<string, { secretName: string; userData: string }>();
    if (!problem) {
      try {
        userData = cloudInitUserData(a, suffix);
        virtualMachines = desiredVirtualMachines(a, {
          unit: home.unit,
          bandwidth: home.bandwidth,
          hostnameSuffix: suffix,
        });
      } catch (err) {
        if (!(err instanceof CloudInitError)) throw err;
        problem = new AssignmentProblem(err.reason, err.message);
      }
    }
    let failures: ChildFailure<AssignmentConditionType>[] = [];
    let wrote = 0;
    let vmsCreated = 0;
    let moreToCreate = false;
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
      wrote += await this.deleteChildren(a, log);
    } else {
      set(AssignmentConditions.Accepted, 'True', 'Accepted', `hosted in namespace ${namespace}`);
      // TenantReady follows the Tenant's Ready, not only its namespace: VMs go only into a
      // tenant whose quota, network and isolation policy exist, since those are what keep
      // them off the home LAN and inside their units. VMs already there are left alone.
      const tenantProblem = tenantNotReady(tenant, requester, namespace);
      if (tenantProblem) {
        set(AssignmentConditions.Tenant, 'False', tenantProblem.reason, tenantProblem.message);
        set(AssignmentConditions.VirtualMachines, 'Unknown', 'WaitingForTenant', tenantProblem.message);
        set(AssignmentConditions.Routes, 'Unknown', 'WaitingForTenant', tenantProblem.message);
      } else {
        set(
          AssignmentConditions.Tenant,
          'True',
          'TenantReady',
          `Tenant ${requester} hosts namespace ${namespace}`,
        );
        // Deletion wins over creation: this pass keeps every VM that exists and creates at
        // most VM_BATCH more; the key comes back for the rest.
        const vmCache = this.cache(Resources.VirtualMachine);
        // New VMs only as far as the quota controller has applied the Tenant's units:
        // beyond that the API server refuses them, so they wait for the quota's status
        // (watched) instead of failing into the queue's backoff.
        const room = quotaRoom(
          this.cache(Resources.ResourceQuota).get(QUOTA_NAME, namespace),
          vmCache.list(namespace).length,
        );
        const inPass = new Set<string>();
        let missing = 0;
        let waitingForQuota = 0;
        for (const vm of vmNames(a)) {
          if (vmCache.get(vm, namespace)) {
            inPass.add(vm);
            vmsCreated++;
          } else if (missing >= room) {
            waitingForQuota++;
          } else if (missing < VM_BATCH) {
            inPass.add(vm);
            missing++;
          } else moreToCreate = true;
        }
        if (waitingForQuota > 0) this.waitingForQuota.add(namespace);
        else this.waitingForQuota.delete(namespace);
        if (waitingForQuota > 0) {
          const why = `${waitingForQuota} VirtualMachine(s) wait for ResourceQuota ${QUOTA_NAME} to allow them (the quota controller has not applied the Tenant's units yet)`;
          set(AssignmentConditions.VirtualMachines, 'False', 'QuotaPending', why);
          set(AssignmentConditions.Routes, 'False', 'QuotaPending', why);
        }
        const plan: AssignmentPlan = {
          assignment: a,
          home,
          hostnameSuffix: suffix,
          virtualMachines,
          inPass: (child) => inPass.has(vmOf(child)),
        };
        const r = await syncChildren(
          this.client,
          ASSIGNMENT_FIELD_MANAGER,
          ASSIGNMENT_CHILDREN.map((c) => ({
            type: c.type,
            condition: c.condition,
            cache: this.cache(c.type),
            desired: c.desired(plan),
          })),
          { namespace, owned: (child) => assignmentOwnerKey(child) === key, log },
        );
        wrote += r.writes;
        failures = r.failures;
        const secrets = await this.createCloudInitSecrets(a, namespace, userData, inPass);
        wrote += secrets.writes;
        if (secrets.waiting > 0) {
          set(
            AssignmentConditions.VirtualMachines,
            'False',
            'WaitingForCloudInit',
            `${secrets.waiting} VirtualMachine(s) wait for their cloud-init Secret`,
          );
          moreToCreate = true;
        }
        if (secrets.failure) {
          set(AssignmentConditions.VirtualMachines, 'False', 'ApplyFailed', secrets.failure.message);
          failures.push({
            type: Resources.Secret,
            condition: AssignmentConditions.VirtualMachines,
            terminal: false,
            reason: 'ApplyFailed',
            message: secrets.failure.message,
            error: secrets.failure,
          });
        }
        for (const f of failures) {
          set(f.condition, 'False', f.reason, f.message);
          log.warn({ kind: f.type.kind, reason: f.reason }, f.message);
          if (f.terminal) await this.events.record(a, 'Warning', f.reason, f.message);
        }
        if (moreToCreate) {
          const why = `${vmsCreated + missing} of ${a.spec.units} VirtualMachines created so far, ${VM_BATCH} per pass`;
          set(AssignmentConditions.VirtualMachines, 'False', 'Creating', why);
          set(AssignmentConditions.Routes, 'False', 'Creating', why);
        }
        set(
          AssignmentConditions.VirtualMachines,
          'True',
          'VirtualMachinesApplied',
          `${a.spec.units} VirtualMachine(s) in ${namespace}`,
        );
        set(AssignmentConditions.Routes, 'True', 'RoutesApplied', `hostnames under ${suffix}`);
        if (failures.length === 0) vmsCreated += missing;
      }
    }

    const vmCache = this.cache(Resources.VirtualMachine);
    const vmiCache = this.cache(Resources.VirtualMachineInstance);
    const names = problem ? [] : vmNames(a);
    const vms = names.slice(0, MAX_STATUS_VMS).map((vm) =>
      vmStatus(
        {
          name: vm,
          vm: vmCache.get(vm, namespace) as ObservedVm['vm'],
          vmi: vmiCache.get(vm, namespace) as ObservedVm['vmi'],
        },
        `${vm}.${suffix}`,
      ),
    );
    const children = [...conditions.values()];
    const ready = readySummary(children, gen);
    const running = names.filter(
      (vm) =>
        (vmCache.get(vm, namespace) as ObservedVm['vm'])?.status?.printableStatus === 'Running' ||
        (vmiCache.get(vm, namespace) as ObservedVm['vmi'])?.status?.phase === 'Running',
    ).length;
    const status: AssignmentStatus = {
      phase: assignmentPhase(vms, false, problem !== undefined),
      vms,
      virtualMachines: {
        desired: names.length,
        // this pass's creations may not be in the cache yet; VMs left in a Tenant gone un-Ready are
        created: Math.max(vmsCreated, names.filter((vm) => vmCache.get(vm, namespace)).length),
        running,
      },
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
    const retriable = retriableError(failures);
    if (retriable) throw retriable;
    if (moreToCreate) return { requeueAfterMs: NEXT_BATCH_MS };
  }

  /**
   * Creates the Secret with each VM's user data once its VirtualMachine exists (the VM
   * owns it, so the garbage collector removes it with the VM). The operator may create
   * Secrets but not read them (chart RBAC), so what it created is remembered here and an
   * AlreadyExists counts as done. A Secret's name is its content: changed user data is a
   * new Secret, and the VM's reference moves to it.
   */
  private async createCloudInitSecrets(
    a: AssignmentObject,
    namespace: string,
    userData: ReadonlyMap<string, { secretName: string; userData: string }>,
    inPass: ReadonlySet<string>,
  ): Promise<{ writes: number; waiting: number; failure?: Error }> {
    const vmCache = this.cache(Resources.VirtualMachine);
    let writes = 0;
    let waiting = 0;
    for (const vm of inPass) {
      const u = userData.get(vm);
      if (!u) continue;
      const uid = vmCache.get(vm, namespace)?.metadata?.uid;
      if (!uid) {
        waiting++;
        continue;
      }
      // keyed by the VM's uid too: a VM deleted and made again needs its Secret again
      const key = `${namespace}/${u.secretName}/${uid}`;
      if (this.cloudInitSecrets.has(key)) continue;
      try {
        await this.client.create(desiredCloudInitSecret(a, { name: vm, uid }, u.secretName, u.userData));
        writes++;
      } catch (err) {
        if (!(err instanceof ApiError && err.statusCode === 409))
          return { writes, waiting, failure: err instanceof Error ? err : new Error(String(err)) };
      }
      this.cloudInitSecrets.add(key);
    }
    return { writes, waiting };
  }

  /** Creates, resizes or deletes the requester's Tenant (only one this controller created). */
  private async syncTenant(requester: string, units: number, log: Logger): Promise<void> {
    const existing = this.tenants().get(requester);
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

  /** Deletes every child of the Assignment (routes first); every failure is thrown together. */
  private async deleteChildren(a: AssignmentObject, log: Logger): Promise<number> {
    const key = objectKey(a);
    const r = await syncChildren(
      this.client,
      ASSIGNMENT_FIELD_MANAGER,
      [...ASSIGNMENT_CHILDREN].reverse().map((c) => ({
        type: c.type,
        condition: c.condition,
        cache: this.cache(c.type),
        desired: [],
      })),
      {
        namespace: tenantNamespaceName(a.spec.requester),
        owned: (child) => assignmentOwnerKey(child) === key,
        log,
      },
    );
    if (r.failures.length > 0)
      throw new AggregateError(
        r.failures.map((f) => f.error),
        `deleting children failed: ${r.failures.map((f) => f.message).join('; ')}`,
      );
    return r.writes;
  }

  /** Delete path: children first, then the Tenant's size (or the Tenant), then the finalizer. */
  private async finalize(a: AssignmentObject, log: Logger): Promise<ReconcileResult | void> {
    if (!(a.metadata?.finalizers ?? []).includes(ASSIGNMENT_FINALIZER)) return;
    const deleted = await this.deleteChildren(a, log);
    this.invalidate();
    const admission = this.admit();
    await this.syncTenant(a.spec.requester, admission.unitsByRequester.get(a.spec.requester) ?? 0, log);
    await removeFinalizer(this.client, Resources.Assignment, a, ASSIGNMENT_FINALIZER);
    log.info({ deletedChildren: deleted }, 'assignment cleaned up');
  }
}
