/**
 * The Tenant reconciler's error paths against a small fake of the client interface
 * (the integration tests against a real API server cover the rest): one child kind
 * failing, retriably or for good, must not stop the others, must show in its own
 * condition, and every retriable failure must reach the queue.
 */
import { pino } from 'pino';
import type { Tenant } from '../../generated/personalcloud.js';
import { ApiError, type KubeApi, type KubeObject } from '../../kube/client.js';
import { EventRecorder } from '../../kube/events.js';
import type { ObjectCache } from '../../kube/informer.js';
import { Resources, type ResourceType } from '../../kube/kinds.js';
import type { Home } from '../home.js';
import { desiredResourceQuota } from './quota.js';
import { TenantReconciler } from './tenant-controller.js';
import { TenantProblem, checkQuota } from './validation.js';

const log = pino({ level: 'silent' });
const home: Home = {
  peer: 'alice',
  homeDomain: 'alice.example.org',
  homeLan: ['192.168.1.0/24'],
  unit: { cpu: '1', memory: '2Gi', storage: '10Gi' },
  bandwidth: { ingress: '10M', egress: '10M' },
  gateway: {
    namespace: 'personal-cloud',
    name: 'personal-cloud',
    className: 'cilium',
    httpPort: 80,
    tlsPort: 443,
  },
  tenantMtu: 1450,
  clusterCidrs: ['10.42.0.0/16', '10.43.0.0/16'],
};

const tenant: Tenant & KubeObject = {
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Tenant',
  metadata: {
    name: 'bob',
    uid: 'uid-bob',
    generation: 1,
    resourceVersion: '1',
    finalizers: ['personalcloud.io/tenant-cleanup'],
  },
  spec: { peer: 'bob', units: 2, network: { subnet: '10.200.0.0/24' } },
};

/** A cache holding fixed objects. */
function cacheOf(objs: KubeObject[]): ObjectCache<KubeObject> {
  return {
    get: (name, namespace) =>
      objs.find((o) => o.metadata?.name === name && (o.metadata?.namespace ?? undefined) === namespace),
    list: (namespace) => objs.filter((o) => namespace === undefined || o.metadata?.namespace === namespace),
  };
}

/** Records every write; apply of a kind in failOn throws that kind's error. */
class FakeClient implements KubeApi {
  readonly applied: KubeObject[] = [];
  readonly statuses: KubeObject[] = [];
  readonly events: KubeObject[] = [];
  constructor(private readonly failOn: Map<string, ApiError>) {}
  apply<T extends KubeObject>(obj: T, _fm: string, opts: { subresource?: 'status' } = {}): Promise<T> {
    if (opts.subresource === 'status') {
      this.statuses.push(obj);
      return Promise.resolve(obj);
    }
    const err = this.failOn.get(obj.kind ?? '');
    if (err) return Promise.reject(err);
    this.applied.push(obj);
    return Promise.resolve(obj);
  }
  applyStatus<T extends KubeObject>(obj: T, fm: string): Promise<T> {
    return this.apply(obj, fm, { subresource: 'status' });
  }
  create<T extends KubeObject>(obj: T): Promise<T> {
    this.events.push(obj);
    return Promise.resolve(obj);
  }
  // Not part of these paths: a call fails the test.
  get = unexpected('get');
  list = unexpected('list');
  update = unexpected('update');
  delete = unexpected('delete');
  jsonPatch = unexpected('jsonPatch');
  mergePatch = unexpected('mergePatch');
  request = unexpected('request');
}

function unexpected(verb: string): () => never {
  return () => {
    throw new Error(`unexpected ${verb}`);
  };
}

/** The tenant's ResourceQuota as kube-controller-manager leaves it once it enforces it. */
function enforcedQuota(): KubeObject {
  const quota = checkQuota(tenant, home.unit);
  if (quota instanceof TenantProblem) throw new Error(quota.message);
  const q = desiredResourceQuota(tenant, quota);
  // status only: the fake has not seen the spec applied yet, so the reconcile still applies it.
  // The quota controller writes a usage for every resource it limits (here: none used yet).
  const used = Object.fromEntries(Object.keys(q.spec.hard).map((k) => [k, '0']));
  return {
    apiVersion: q.apiVersion,
    kind: q.kind,
    metadata: q.metadata,
    status: { hard: q.spec.hard, used },
  };
}

function reconcilerWith(client: FakeClient, quotas: KubeObject[] = [enforcedQuota()]): TenantReconciler {
  const caches = new Map<ResourceType, ObjectCache<KubeObject>>([
    [Resources.Tenant, cacheOf([tenant])],
    [Resources.Namespace, cacheOf([])],
    [Resources.ResourceQuota, cacheOf(quotas)],
  ]);
  return new TenantReconciler(
    client,
    (type) => caches.get(type) ?? cacheOf([]),
    new EventRecorder(client, 'tenant-controller', 'test', log),
    () => home,
    () => new Date('2026-01-01T00:00:00Z'),
  );
}

type Condition = { type: string; status: string; reason: string };
const conditionsOf = (client: FakeClient): Condition[] =>
  ((client.statuses.at(-1)?.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).map(
    ({ type, status, reason }) => ({ type, status, reason }),
  );

describe('TenantReconciler error paths (fake client)', () => {
  it('applies every child when nothing fails, and reports Ready', async () => {
    const client = new FakeClient(new Map());
    await expect(reconcilerWith(client).reconcile('bob', log)).resolves.toBeUndefined();
    expect(client.applied.map((o) => o.kind)).toEqual([
      'Namespace',
      'Role',
      'RoleBinding',
      'ResourceQuota',
      'LimitRange',
      'NetworkAttachmentDefinition',
      'CiliumNetworkPolicy',
      'CiliumNetworkPolicy',
      'NetworkPolicy',
    ]);
    expect(conditionsOf(client)).toContainEqual({ type: 'Ready', status: 'True', reason: 'Reconciled' });
  });

  it('is not Ready while the quota controller has not computed the quota (VMs would be refused)', async () => {
    const client = new FakeClient(new Map());
    // no polling: the ResourceQuota watch queues the Tenant when the quota controller writes its status
    await expect(reconcilerWith(client, []).reconcile('bob', log)).resolves.toBeUndefined();
    expect(conditionsOf(client)).toContainEqual({
      type: 'QuotaReady',
      status: 'False',
      reason: 'QuotaPending',
    });
    expect(conditionsOf(client)).toContainEqual({ type: 'Ready', status: 'False', reason: 'QuotaPending' });
  });

  it('is not Ready while a limited resource has no usage yet (the API server answers "status unknown for quota")', async () => {
    // as a quota looks before the quota controller has discovered the KubeVirt CRD
    const q = enforcedQuota();
    const status = q.status as { hard: Record<string, string>; used: Record<string, string> };
    delete status.used['count/virtualmachines.kubevirt.io'];
    const client = new FakeClient(new Map());
    await expect(reconcilerWith(client, [q]).reconcile('bob', log)).resolves.toBeUndefined();
    expect(conditionsOf(client)).toContainEqual({
      type: 'QuotaReady',
      status: 'False',
      reason: 'QuotaPending',
    });
    expect(conditionsOf(client)).toContainEqual({ type: 'Ready', status: 'False', reason: 'QuotaPending' });
  });

  it('keeps going past failing kinds, shows each in its condition, and throws every retriable one', async () => {
    const unavailable = new ApiError(503, 'ServiceUnavailable', 'etcd is slow', 'PATCH', '/x');
    const conflict = new ApiError(500, 'InternalError', 'quota admission', 'PATCH', '/y');
    const rejected = new ApiError(422, 'Invalid', 'spec.endpointSelector: Required value', 'PATCH', '/z');
    const client = new FakeClient(
      new Map([
        ['NetworkAttachmentDefinition', unavailable],
        ['ResourceQuota', conflict],
        ['CiliumNetworkPolicy', rejected],
      ]),
    );
    const err: unknown = await reconcilerWith(client)
      .reconcile('bob', log)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // Both retriable failures reach the queue, the terminal one does not.
    expect(err).toBeInstanceOf(AggregateError);
    expect((err as AggregateError).errors).toEqual([conflict, unavailable]);
    // The kinds after a failing one were still applied.
    expect(client.applied.map((o) => o.kind)).toEqual([
      'Namespace',
      'Role',
      'RoleBinding',
      'LimitRange',
      'NetworkPolicy',
    ]);
    const conditions = conditionsOf(client);
    expect(conditions).toEqual(
      expect.arrayContaining([
        { type: 'NamespaceReady', status: 'True', reason: 'NamespaceApplied' },
        { type: 'RBACReady', status: 'True', reason: 'RBACApplied' },
        { type: 'QuotaReady', status: 'False', reason: 'ApplyFailed' },
        { type: 'NetworkReady', status: 'False', reason: 'ApplyFailed' },
        { type: 'NetworkPolicyReady', status: 'False', reason: 'ApplyRejected' },
        // Ready carries the first failing child's reason (QuotaReady comes first).
        { type: 'Ready', status: 'False', reason: 'ApplyFailed' },
      ]),
    );
    // The rejection (will not heal by retrying) is a Warning Event naming the field.
    expect(client.events.map((e) => [e.reason, e.type])).toEqual([['ApplyRejected', 'Warning']]);
    expect(String(client.events[0]?.note)).toContain('spec.endpointSelector');
  });
});
