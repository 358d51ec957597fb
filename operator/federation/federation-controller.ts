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
 *         them; a copy whose upstream is gone is deleted (which tears its VMs down);
 *   back  the local copies' status (phase, VMs) is pushed to the upstream /status, and
 *         the upstream status of this home's Requests and Offers (placements, VM
 *         hostnames, allocated units) is copied into the local objects' status.
 *
 * Nothing is torn down because the matchmaker is unreachable: the upstream caches keep
 * their last state while the watches reconnect, and deletions are acted on only when
 * a successful relist says the object is gone.
 *
 * Keys: `offer/<name>`, `request/<name>`, `assignment/<name>`; every reconcile re-reads
 * both sides from the informer caches.
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
import { Controller, type ReconcileResult, type Reconciler } from '../../kube/controller.js';
import { Informer } from '../../kube/informer.js';
import { isConflict, type KubeClient, type KubeObject } from '../../kube/client.js';
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

function microTime(d: Date): string {
  return d.toISOString().replace('Z', '000Z');
}

export class FederationReconciler implements Reconciler {
  readonly name = 'federation';
  readonly upNs: string;

  constructor(
    private readonly o: FederationOptions,
    private readonly inf: {
      localOffers: Informer<OfferObject>;
      localRequests: Informer<RequestObject>;
      localAssignments: Informer<AssignmentObject>;
      upOffers: Informer<OfferObject>;
      upRequests: Informer<RequestObject>;
      upAssignments: Informer<AssignmentObject>;
    },
  ) {
    this.upNs = peerNamespace(o.peer);
  }

  allKeys(): string[] {
    const keys = new Set<string>();
    const mine = (x: Mirrored): boolean => x.spec?.peer === this.o.peer;
    for (const x of this.inf.localOffers.list()) if (mine(x)) keys.add(`offer/${x.metadata?.name}`);
    for (const x of this.inf.upOffers.list()) keys.add(`offer/${x.metadata?.name}`);
    for (const x of this.inf.localRequests.list()) if (mine(x)) keys.add(`request/${x.metadata?.name}`);
    for (const x of this.inf.upRequests.list()) keys.add(`request/${x.metadata?.name}`);
    for (const x of this.inf.upAssignments.list()) keys.add(`assignment/${x.metadata?.name}`);
    for (const x of this.inf.localAssignments.list()) keys.add(`assignment/${x.metadata?.name}`);
    return [...keys];
  }

  async reconcile(key: string, log: Logger): Promise<ReconcileResult | void> {
    const i = key.indexOf('/');
    const kind = key.slice(0, i);
    const name = key.slice(i + 1);
    if (kind === 'offer') return this.mirror(R.Offer, this.inf.localOffers, this.inf.upOffers, name, log);
    if (kind === 'request')
      return this.mirror(R.Request, this.inf.localRequests, this.inf.upRequests, name, log);
    if (kind === 'assignment') return this.pull(name, log);
  }

  /** The local object of that name that this home owns (the oldest when namespaces repeat a name). */
  private localOf<T extends Mirrored>(cache: Informer<T>, name: string): T | undefined {
    return cache
      .list()
      .filter(
        (x) => x.metadata?.name === name && x.spec?.peer === this.o.peer && !x.metadata?.deletionTimestamp,
      )
      .sort((a, b) =>
        String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)),
      )[0];
  }

  private async mirror<T extends Mirrored>(
    type: ResourceType,
    localCache: Informer<T>,
    upCache: Informer<T>,
    name: string,
    log: Logger,
  ): Promise<void> {
    const up = this.o.upstream.client;
    const local = this.localOf(localCache, name);
    let remote = upCache.get(name, this.upNs);
    if (!local) {
      if (
        remote &&
        remote.metadata?.labels?.[MIRRORED_LABEL] === 'true' &&
        !remote.metadata.deletionTimestamp
      ) {
        await up.delete(type, name, this.upNs, { uid: remote.metadata.uid });
        log.info({ kind: type.kind }, 'local object gone: upstream copy deleted');
      }
      return;
    }
    const desired = {
      metadata: {
        name,
        namespace: this.upNs,
        labels: mirroredLabels,
        annotations: { [MIRRORED_FROM_ANNOTATION]: `${local.metadata?.namespace ?? ''}/${name}` },
      },
      spec: local.spec,
    };
    if (!remote || !sameContent(remote.spec, local.spec) || !containsDesired(remote, desired)) {
      remote = await applyObject<T>(up, type, desired, FEDERATION_FIELD_MANAGER);
      if (!sameContent(remote.spec, local.spec)) {
        // fields another manager added upstream: replace the spec outright
        remote = await up.request<T>('PUT', resourcePath(type, this.upNs, name), {
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
      this.o.local.client,
      type,
      { metadata: { name, namespace: local.metadata?.namespace }, status },
      FEDERATION_FIELD_MANAGER,
      'status',
    );
  }

  private async pull(name: string, log: Logger): Promise<ReconcileResult | void> {
    const remote = this.inf.upAssignments.get(name, this.upNs);
    let local = this.inf.localAssignments.get(name, LOCAL_ASSIGNMENT_NAMESPACE);
    const ours = local?.metadata?.labels?.[MIRRORED_LABEL] === 'true';
    if (!remote || remote.spec?.host !== this.o.peer || remote.metadata?.deletionTimestamp) {
      if (local && ours && !local.metadata?.deletionTimestamp) {
        await this.o.local.client.delete(R.Assignment, name, LOCAL_ASSIGNMENT_NAMESPACE, {
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
        annotations: { [MIRRORED_FROM_ANNOTATION]: `${this.upNs}/${name}` },
      },
      spec: remote.spec,
    };
    if (!local || !containsDesired(local, desired)) {
      local = await applyObject<AssignmentObject>(
        this.o.local.client,
        R.Assignment,
        desired,
        FEDERATION_FIELD_MANAGER,
      );
      log.info({ units: remote.spec.units }, 'hosted assignment pulled from the matchmaker');
    }
    // Provisioning status up to the matchmaker.
    const ls = local.status;
    if (!ls?.phase) return;
    const ready = ls.conditions?.find((c) => c.type === 'Ready');
    const push: Record<string, unknown> = {
      phase: ls.phase,
      vms: ls.vms ?? [],
      ...(ready
        ? {
            conditions: [
              {
                type: 'Ready',
                status: ready.status,
                reason: ready.reason,
                message: ready.message,
                lastTransitionTime: ready.lastTransitionTime,
              },
            ],
          }
        : {}),
    };
    const rs = remote.status ?? {};
    const remoteReady = rs.conditions?.find((c) => c.type === 'Ready');
    const seen = {
      phase: rs.phase,
      vms: rs.vms ?? [],
      ...(ready && remoteReady
        ? {
            conditions: [
              {
                type: 'Ready',
                status: remoteReady.status,
                reason: remoteReady.reason,
                message: remoteReady.message,
                lastTransitionTime: remoteReady.lastTransitionTime,
              },
            ],
          }
        : {}),
    };
    if (sameContent(seen, push)) return;
    await applyObject(
      this.o.upstream.client,
      R.Assignment,
      { metadata: { name, namespace: this.upNs }, status: push },
      FEDERATION_FIELD_MANAGER,
      'status',
    );
  }
}

/** The controller plus its informers and heartbeat. */
export class FederationController {
  private readonly informers: Informer<KubeObject>[] = [];
  private readonly controller: Controller;
  private readonly reconciler: FederationReconciler;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: FederationOptions) {
    const upNs = peerNamespace(o.peer);
    const make = <T extends KubeObject>(
      side: 'local' | 'upstream',
      type: ResourceType,
      namespace?: string,
    ): Informer<T> => {
      const { kubeConfig, client } = o[side];
      const inf = new Informer<T>(kubeConfig, client, type, o.log.child({ side }), {
        backoffMaxMs: 10_000,
        namespace,
      });
      this.informers.push(inf);
      return inf;
    };
    const inf = {
      localOffers: make<OfferObject>('local', R.Offer),
      localRequests: make<RequestObject>('local', R.Request),
      localAssignments: make<AssignmentObject>('local', R.Assignment, LOCAL_ASSIGNMENT_NAMESPACE),
      upOffers: make<OfferObject>('upstream', R.Offer, upNs),
      upRequests: make<RequestObject>('upstream', R.Request, upNs),
      upAssignments: make<AssignmentObject>('upstream', R.Assignment, upNs),
    };
    this.reconciler = new FederationReconciler(o, inf);
    this.controller = new Controller(this.reconciler, o.log, o.metrics, { workers: o.workers ?? 4 });
    const by = (kind: string) => (x: KubeObject) =>
      this.controller.enqueue(`${kind}/${x.metadata?.name ?? ''}`);
    for (const [kind, i] of [
      ['offer', inf.localOffers],
      ['offer', inf.upOffers],
      ['request', inf.localRequests],
      ['request', inf.upRequests],
      ['assignment', inf.localAssignments],
      ['assignment', inf.upAssignments],
    ] as const) {
      const h = by(kind);
      (i as Informer<KubeObject>).on({ add: h, update: h, delete: h });
    }
  }

  busy(): number {
    return this.controller.busy();
  }

  start(): void {
    void (async () => {
      await this.o.local.client
        .create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: LOCAL_ASSIGNMENT_NAMESPACE } })
        .catch(() => undefined);
      for (const i of this.informers) i.start();
      this.beat();
      await Promise.all(this.informers.map((i) => i.waitForSync()));
      if (!this.stopped) this.controller.start();
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
    await this.controller.stop();
    await Promise.all(this.informers.map((i) => i.stop()));
  }
}
