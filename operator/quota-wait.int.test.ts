// No blind waiting on quota (issue 12 item 2), against a real kube-apiserver and
// kube-controller-manager (whose quota controller computes status.hard): a new tenant's
// VMs are created once its quota is computed, and a resized tenant's new VMs once the
// quota controller has applied the new units — each time woken by the ResourceQuota
// watch, never by a refused request and the queue's backoff. Asserted: no 403 from the
// API server, no failed reconcile, and the VMs there.
import { ControlPlane } from '../dev/control-plane.js';
import { eventually } from '../dev/eventually.js';
import { configFromOptions } from '../cli/config.js';
import { KubeClient, type KubeObject } from '../kube/client.js';
import { createLogger } from '../kube/logger.js';
import { Resources } from '../kube/kinds.js';
import { runOperator, type RunningOperator } from './main.js';

const NS = 'federation';
let cp: ControlPlane;
let client: KubeClient;
let op: RunningOperator;

beforeAll(async () => {
  cp = await ControlPlane.start({ name: 'quota-wait' });
  client = await KubeClient.fromKubeConfig(cp.kubeConfig());
  for (const ns of ['personal-cloud', NS])
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'test');
  await client.create({
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Offer',
    metadata: { name: 'home', namespace: NS },
    spec: { peer: 'home', units: 10, unit: { cpu: '1', memory: '2Gi', storage: '20Gi' } },
  });
  const config = configFromOptions({
    peer: 'home',
    metricsPort: '0',
    metricsHost: '127.0.0.1',
    leaderElect: false,
    identity: 'quota-wait',
    logLevel: process.env.LOG_LEVEL ?? 'warn',
  });
  op = await runOperator(config, {
    kubeConfig: cp.kubeConfig(),
    log: createLogger(config.logLevel),
    defaultMetrics: false,
  });
}, 180_000);

afterAll(async () => {
  await op?.stop();
  client?.close();
  await cp?.stop();
});

async function assignment(name: string, units: number): Promise<void> {
  await client.create({
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Assignment',
    metadata: { name, namespace: NS },
    spec: {
      requester: 'bob',
      request: name,
      host: 'home',
      units,
      vm: { image: 'quay.io/containerdisks/fedora:40' },
    },
  });
}

const ready = (o: KubeObject | undefined): boolean =>
  (
    (o?.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? []
  ).some((c) => c.type === 'Ready' && c.status === 'True');

async function vms(): Promise<string[]> {
  return (await client.list(Resources.VirtualMachine, { namespace: 'tenant-bob' })).items
    .map((v) => v.metadata?.name ?? '')
    .sort();
}

/** Requests the operator made that the API server refused with 403, and reconciles that failed. */
async function refusals(): Promise<{ forbidden: number; failedReconciles: number }> {
  const requests = await op.metrics.apiRequests.get();
  const errors = await op.metrics.reconcileErrors.get();
  return {
    forbidden: requests.values.filter((v) => v.labels.code === '403').reduce((s, v) => s + v.value, 0),
    failedReconciles: errors.values.reduce((s, v) => s + v.value, 0),
  };
}

test("a new tenant's VMs wait for its quota to be computed, woken by the quota's status", async () => {
  await assignment('web', 2);
  await eventually('Assignment web Ready', async () =>
    ready(await client.get(Resources.Assignment, 'web', NS)),
  );
  expect(await vms()).toEqual(['web-0', 'web-1']);
  const quota = await client.get(Resources.ResourceQuota, 'tenant-quota', 'tenant-bob');
  expect((quota?.status as { hard: Record<string, string> }).hard['count/virtualmachines.kubevirt.io']).toBe(
    '2',
  );
  expect(await refusals()).toEqual({ forbidden: 0, failedReconciles: 0 });
});

test("a resized tenant's new VMs wait for the quota controller to apply the new units", async () => {
  await assignment('db', 3);
  await eventually('Assignment db Ready', async () =>
    ready(await client.get(Resources.Assignment, 'db', NS)),
  );
  expect(await vms()).toEqual(['db-0', 'db-1', 'db-2', 'web-0', 'web-1']);
  const quota = await client.get(Resources.ResourceQuota, 'tenant-quota', 'tenant-bob');
  expect((quota?.status as { hard: Record<string, string> }).hard['count/virtualmachines.kubevirt.io']).toBe(
    '5',
  );
  expect(await refusals()).toEqual({ forbidden: 0, failedReconciles: 0 });
  expect(ready(await client.get(Resources.Assignment, 'web', NS))).toBe(true);
});
