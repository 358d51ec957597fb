/**
 * The federation controller of one home: the link between the home cluster and its
 * namespace `peer-<me>` in the matchmaker cluster, reached with the join credentials.
 *
 *   up    local Offers and Requests (spec.peer == me) are mirrored into peer-<me>; the
 *         local object is the truth: upstream drift is repaired, local deletion deletes
 *         the upstream copy;
 *   beat  the Lease `heartbeat` in peer-<me> is renewed every heartbeat interval;
 *   down  Assignments in peer-<me> with spec.host == me are copied into the local
 *         namespace `federation`, where the hosted Assignment controller provisions
 *         them; a copy whose upstream is gone is deleted (which tears its VMs down); the
 *         local copy's spec is the upstream one (fields added at home are replaced);
 *   back  the local copies' status (phase, VMs, Ready and Accepted) is pushed to the
 *         upstream /status, and the upstream status of this home's Requests and Offers
 *         (placements, VM hostnames, allocated units) is copied into the local objects'
 *         status.
 *
 * Nothing is torn down because the matchmaker is unreachable: the upstream caches keep
 * their last state while the watches reconnect, and deletions are acted on only when
 * a successful relist says the object is gone.
 *
 * One reconciler per kind, each its own controller keyed by object name: the Offer
 * mirror, the Request mirror (one MirrorReconciler class, two kinds) and the Assignment
 * puller. Each declares its sources on both sides; every reconcile re-reads both
 * sides from the informer caches.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Assignment, Offer, Request } from '../../generated/personalcloud.js';
import {
  FEDERATION_FIELD_MANAGER,
  HEARTBEAT_LABEL,
  HEARTBEAT_LEASE,
  LOCAL_ASSIGNMENT_NAMESPACE,
  MIRRORED_FROM_ANNOTATION,
  MIRRORED_LABEL,
  peerNamespace,
} from '../../api/federation.js';
import { errorMessage } from '../../kube/apply.js';
import type { Controller, ReconcileResult, Reconciler } from '../../kube/controller.js';
import { ControllerBuilder, type CacheOptions, type ControllerHost } from '../../kube/manager.js';
import { Informer } from '../../kube/informer.js';
import { isConflict, type KubeClient, type KubeObject } from '../../kube/client.js';
import { microTime } from '../../kube/leader-election.js';
import type { OperatorMetrics } from '../../kube/metrics.js';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../../api/labels.js';
import { containsDesired } from '../../kube/ownership.js';
import { resourcePath, type ResourceType } from '../../kube/kinds.js';
import { Resources as R } from '../../kube/kinds.js';
import { applyObject, sameContent } from '../../kube/apply.js';

type OfferObject = Offer & KubeObject;
type RequestObject = Request & KubeObject;
type AssignmentObject = Assignment & KubeObject;
type Mirrored = OfferObject | RequestObject;

export interface FederationOptions {
  peer: string;
  local: { kubeConfig: KubeConfig; client: KubeClient };
  upstream: { kubeConfig: KubeConfig; client: KubeClient };
  log: Logger;
  metrics: OperatorMetrics;
  heartbeatMs: number;
  workers?: number;
}

const mirroredLabels = { [MIRRORED_LABEL]: 'true', [MANAGED_BY_LABEL]: MANAGED_BY };
/** The hosted Assignment's conditions reported to the matchmaker. */
const PUSHED_CONDITIONS = ['Ready', 'Accepted'] as const;

/** The informers of both sides, shared by the three reconcilers. */
interface FederationCaches {
  localOffers: Informer<OfferObject>;
  localRequests: Informer<RequestObject>;
  localAssignments: Informer<AssignmentObject>;
  upOffers: Informer<OfferObject>;
  upRequests: Informer<RequestObject>;
  upAssignments: Informer<AssignmentObject>;
}

/** Up (and status back): this home's Offers or Requests mirrored into peer-<me>. Key: name. */
export class MirrorReconciler<T extends Mirrored> implements Reconciler {
  readonly name: string;

  constructor(
    private readonly o: FederationOptions,
    private readonly type: ResourceType,
    private readonly local: Informer<T>,
    private readonly upstream: Informer<T>,
  ) {
    this.name = `federation-${type.plural}`;
  }

  /** Whether a local object is this home's to mirror. */
  mine(x: T): boolean {
    return x.spec?.peer === this.o.peer;
  }

  allKeys(): string[] {
    const keys = new Set<string>();
    for (const x of this.local.list()) if (this.mine(x)) keys.add(x.metadata?.name ?? '');
    for (const x of this.upstream.list()) keys.add(x.metadata?.name ?? '');
    return [...keys];
  }

  reconcile(name: string, log: Logger): Promise<void> {
    return mirror(this.o, this.type, this.local, this.upstream, name, log);
  }
}

/** Down (and status up): Assignments this home hosts, pulled from peer-<me>. Key: name. */
export class AssignmentPullReconciler implements Reconciler {
  readonly name = 'federation-assignments';

  constructor(
    private readonly o: FederationOptions,
    private readonly local: Informer<AssignmentObject>,
    private readonly upstream: Informer<AssignmentObject>,
  ) {}

  allKeys(): string[] {
    const keys = new Set<string>();
    for (const x of [...this.upstream.list(), ...this.local.list()]) keys.add(x.metadata?.name ?? '');
    return [...keys];
  }

  reconcile(name: string, log: Logger): Promise<ReconcileResult | void> {
    return pull(this.o, this.local, this.upstream, name, log);
  }
}

/** The local object of that name that this home owns (the oldest when namespaces repeat a name). */
function localOf<T extends Mirrored>(peer: string, cache: Informer<T>, name: string): T | undefined {
  return cache
    .list()
    .filter((x) => x.metadata?.name === name && x.spec?.peer === peer && !x.metadata?.deletionTimestamp)
    .sort((a, b) =>
      String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)),
    )[0];
}

async function mirror<T extends Mirrored>(
  o: FederationOptions,
  type: ResourceType,
  localCache: Informer<T>,
  upCache: Informer<T>,
  name: string,
  log: Logger,
): Promise<void> {
  const up = o.upstream.client;
  const upNs = peerNamespace(o.peer);
  const local = localOf(o.peer, localCache, name);
  let remote = upCache.get(name, upNs);
  if (!local) {
    if (
      remote &&
      remote.metadata?.labels?.[MIRRORED_LABEL] === 'true' &&
      !remote.metadata.deletionTimestamp
    ) {
      await up.delete(type, name, upNs, { uid: remote.metadata.uid });
      log.info({ kind: type.kind }, 'local object gone: upstream copy deleted');
    }
    return;
  }
  const desired = {
    metadata: {
      name,
      namespace: upNs,
      labels: mirroredLabels,
      annotations: { [MIRRORED_FROM_ANNOTATION]: `${local.metadata?.namespace ?? ''}/${name}` },
    },
    spec: local.spec,
  };
  if (!remote || !sameContent(remote.spec, local.spec) || !containsDesired(remote, desired)) {
    remote = await applyObject<T>(up, type, desired, FEDERATION_FIELD_MANAGER);
    if (!sameContent(remote.spec, local.spec)) {
      // fields another manager added upstream: replace the spec outright
      remote = await up.request<T>('PUT', resourcePath(type, upNs, name), {
        body: { ...remote, spec: local.spec },
      });
    }
    log.info({ kind: type.kind }, 'mirrored to the matchmaker');
  }
  // Status back: what the matchmaker found for this object.
  const s = (remote.status ?? {}) as Record<string, unknown> & {
    conditions?: Array<Record<string, unknown>>;
  };
  const gen = local.metadata?.generation;
  const conditions = (s.conditions ?? []).map((c) => ({
    ...c,
    ...(gen !== undefined ? { observedGeneration: gen } : {}),
  }));
  const status: Record<string, unknown> =
    type.kind === 'Request'
      ? {
          ...(s.assignedUnits !== undefined ? { assignedUnits: s.assignedUnits } : {}),
          ...(s.placements !== undefined ? { placements: s.placements } : {}),
          ...(conditions.length ? { conditions } : {}),
        }
      : {
          ...(s.allocatedUnits !== undefined ? { allocatedUnits: s.allocatedUnits } : {}),
          ...(conditions.length ? { conditions } : {}),
        };
  if (Object.keys(status).length === 0) return;
  if (gen !== undefined && remote.status?.observedGeneration === remote.metadata?.generation)
    status.observedGeneration = gen;
  const current = Object.fromEntries(
    Object.keys(status).map((k) => [k, (local.status as Record<string, unknown> | undefined)?.[k]]),
  );
  if (sameContent(current, status)) return;
  await applyObject(
    o.local.client,
    type,
    { metadata: { name, namespace: local.metadata?.namespace }, status },
    FEDERATION_FIELD_MANAGER,
    'status',
  );
}

async function pull(
  o: FederationOptions,
  localCache: Informer<AssignmentObject>,
  upCache: Informer<AssignmentObject>,
  name: string,
  log: Logger,
): Promise<ReconcileResult | void> {
  const upNs = peerNamespace(o.peer);
  const remote = upCache.get(name, upNs);
  let local = localCache.get(name, LOCAL_ASSIGNMENT_NAMESPACE);
  const ours = local?.metadata?.labels?.[MIRRORED_LABEL] === 'true';
  if (!remote || remote.spec?.host !== o.peer || remote.metadata?.deletionTimestamp) {
    if (local && ours && !local.metadata?.deletionTimestamp) {
      await o.local.client.delete(R.Assignment, name, LOCAL_ASSIGNMENT_NAMESPACE, {
        uid: local.metadata?.uid,
      });
      log.info('assignment withdrawn by the matchmaker: local copy deleted');
    }
    return;
  }
  if (local && !ours) {
    log.warn('a local Assignment of that name was not written by the federation controller; left alone');
    return;
  }
  if (local?.metadata?.deletionTimestamp) return { requeueAfterMs: 1000 };
  const desired = {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Assignment',
    metadata: {
      name,
      namespace: LOCAL_ASSIGNMENT_NAMESPACE,
      labels: { ...mirroredLabels, ...(remote.metadata?.labels ?? {}) },
      annotations: { [MIRRORED_FROM_ANNOTATION]: `${upNs}/${name}` },
    },
    spec: remote.spec,
  };
  if (!local || !sameContent(local.spec, remote.spec) || !containsDesired(local, desired)) {
    local = await applyObject<AssignmentObject>(
      o.local.client,
      R.Assignment,
      desired,
      FEDERATION_FIELD_MANAGER,
    );
    if (!sameContent(local.spec, remote.spec)) {
      // fields added to the local copy by another manager (e.g. spec.vm.sshKeys by hand):
      // the upstream spec is the truth, replace the local spec outright
      local = await o.local.client.request<AssignmentObject>(
        'PUT',
        resourcePath(R.Assignment, LOCAL_ASSIGNMENT_NAMESPACE, name),
        { body: { ...local, spec: remote.spec } },
      );
      log.warn('local copy had fields the matchmaker did not write: spec replaced by the upstream one');
    }
    log.info({ units: remote.spec.units }, 'hosted assignment pulled from the matchmaker');
  }
  // Provisioning status up to the matchmaker: phase, VMs, and the Ready and Accepted
  // conditions (a refusal must reach the matchmaker, which re-solves elsewhere). A
  // condition computed for the local copy's current generation is for the upstream
  // spec it equals, so it carries the upstream generation.
  const ls = local.status;
  if (!ls?.phase) return;
  const current = sameContent(local.spec, remote.spec);
  const upCondition = (c: NonNullable<typeof ls.conditions>[number]): Record<string, unknown> => ({
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message,
    lastTransitionTime: c.lastTransitionTime,
    ...(current &&
    c.observedGeneration !== undefined &&
    c.observedGeneration === local.metadata?.generation &&
    remote.metadata?.generation !== undefined
      ? { observedGeneration: remote.metadata.generation }
      : {}),
  });
  const pick = (list: typeof ls.conditions): NonNullable<typeof ls.conditions> =>
    PUSHED_CONDITIONS.flatMap((t) => list?.filter((c) => c.type === t) ?? []);
  const mine = pick(ls.conditions);
  const push: Record<string, unknown> = {
    phase: ls.phase,
    vms: ls.vms ?? [],
    ...(mine.length ? { conditions: mine.map(upCondition) } : {}),
  };
  const rs = remote.status ?? {};
  const theirs = pick(rs.conditions).filter((c) => mine.some((m) => m.type === c.type));
  const seen = {
    phase: rs.phase,
    vms: rs.vms ?? [],
    ...(mine.length
      ? {
          conditions: theirs.map((c) => ({
            type: c.type,
            status: c.status,
            reason: c.reason,
            message: c.message,
            lastTransitionTime: c.lastTransitionTime,
            ...(c.observedGeneration !== undefined ? { observedGeneration: c.observedGeneration } : {}),
          })),
        }
      : {}),
  };
  if (sameContent(seen, push)) return;
  await applyObject(
    o.upstream.client,
    R.Assignment,
    { metadata: { name, namespace: upNs }, status: push },
    FEDERATION_FIELD_MANAGER,
    'status',
  );
}

/**
 * The three federation controllers, their informers on both sides, and the heartbeat.
 * A ControllerHost for the local side (its own caches: this runs only while the home
 * is joined, and stops with the join Secret); upstream informers are given outright.
 */
export class FederationController implements ControllerHost {
  private readonly informers: Informer<KubeObject>[] = [];
  private readonly controllers: Controller[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly log: Logger;
  readonly metrics: OperatorMetrics;
  readonly defaultWorkers: number;

  constructor(private readonly o: FederationOptions) {
    this.log = o.log;
    this.metrics = o.metrics;
    this.defaultWorkers = o.workers ?? 4;
    const upNs = peerNamespace(o.peer);
    const upstream = <T extends KubeObject>(type: ResourceType): Informer<T> =>
      this.informer<T>('upstream', type, upNs);
    const caches: FederationCaches = {
      localOffers: this.cache<OfferObject>(R.Offer),
      localRequests: this.cache<RequestObject>(R.Request),
      localAssignments: this.cache<AssignmentObject>(R.Assignment, { namespace: LOCAL_ASSIGNMENT_NAMESPACE }),
      upOffers: upstream<OfferObject>(R.Offer),
      upRequests: upstream<RequestObject>(R.Request),
      upAssignments: upstream<AssignmentObject>(R.Assignment),
    };
    const byName = (x: KubeObject): string[] => [x.metadata?.name ?? ''];
    // Every change on either side counts, status included (it is copied across).
    const mirror = <T extends Mirrored>(type: ResourceType, local: Informer<T>, up: Informer<T>): void => {
      const m = new MirrorReconciler(o, type, local, up);
      new ControllerBuilder(this, m.name)
        .watches(type, byName, { informer: local })
        .watches(type, byName, { informer: up })
        .complete(m);
    };
    mirror(R.Offer, caches.localOffers, caches.upOffers);
    mirror(R.Request, caches.localRequests, caches.upRequests);
    const pull = new AssignmentPullReconciler(o, caches.localAssignments, caches.upAssignments);
    new ControllerBuilder(this, pull.name)
      .watches(R.Assignment, byName, { informer: caches.localAssignments })
      .watches(R.Assignment, byName, { informer: caches.upAssignments })
      .complete(pull);
  }

  /** ControllerHost: a local-side informer. */
  cache<T extends KubeObject>(type: ResourceType, opts: CacheOptions = {}): Informer<T> {
    return this.informer<T>('local', type, opts.namespace);
  }

  /** ControllerHost: a controller built on this host. */
  add(controller: Controller): void {
    this.controllers.push(controller);
  }

  private informer<T extends KubeObject>(
    side: 'local' | 'upstream',
    type: ResourceType,
    namespace?: string,
  ): Informer<T> {
    const { kubeConfig, client } = this.o[side];
    const inf = new Informer<T>(kubeConfig, client, type, this.o.log.child({ side }), {
      backoffMaxMs: 10_000,
      namespace,
    });
    this.informers.push(inf);
    return inf;
  }

  busy(): number {
    return this.controllers.reduce((n, c) => n + c.busy(), 0);
  }

  start(): void {
    void (async () => {
      await this.o.local.client
        .create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: LOCAL_ASSIGNMENT_NAMESPACE } })
        .catch(() => undefined);
      for (const i of this.informers) i.start();
      this.beat();
      await Promise.all(this.informers.map((i) => i.waitForSync()));
      if (!this.stopped) for (const c of this.controllers) c.start();
    })();
  }

  private beat(): void {
    if (this.stopped) return;
    void this.renewHeartbeat()
      .catch((err: unknown) => this.o.log.warn({ err: errorMessage(err) }, 'heartbeat failed'))
      .finally(() => {
        if (!this.stopped) this.heartbeatTimer = setTimeout(() => this.beat(), this.o.heartbeatMs);
      });
  }

  /**
   * The heartbeat says "this home can host": it is renewed only while the home's own
   * API server answers, so a home whose control plane is down lapses and its units
   * are re-solved elsewhere.
   */
  async renewHeartbeat(): Promise<void> {
    await this.o.local.client.request('GET', '/readyz');
    const up = this.o.upstream.client;
    const namespace = peerNamespace(this.o.peer);
    const now = microTime(new Date());
    const spec = {
      holderIdentity: this.o.peer,
      leaseDurationSeconds: Math.max(1, Math.ceil((this.o.heartbeatMs * 3) / 1000)),
      renewTime: now,
    };
    const lease = await up.get<KubeObject & { spec?: Record<string, unknown> }>(
      R.Lease,
      HEARTBEAT_LEASE,
      namespace,
    );
    if (!lease) {
      await up.create({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: HEARTBEAT_LEASE, namespace, labels: { [HEARTBEAT_LABEL]: 'true' } },
        spec: { ...spec, acquireTime: now },
      });
      return;
    }
    try {
      await up.update({
        ...lease,
        metadata: {
          ...lease.metadata,
          labels: { ...(lease.metadata?.labels ?? {}), [HEARTBEAT_LABEL]: 'true' },
        },
        spec: { ...lease.spec, ...spec },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    await Promise.all(this.controllers.map((c) => c.stop()));
    await Promise.all(this.informers.map((i) => i.stop()));
  }
}
