/**
 * The home operator against a real kube-apiserver with the real KubeVirt, Multus,
 * Cilium and Gateway API CRDs: every object it writes must pass their schemas.
 * No kubelet: the test writes VM/VMI status itself to see status flow back.
 */
import { isDeepStrictEqual } from 'node:util';
import { jest } from '@jest/globals';
import type { KubeConfig } from '@kubernetes/client-node';
import { ControlPlane } from '../dev/control-plane.js';
import { configFromOptions } from '../cli/config.js';
import { runOperator, type RunningOperator } from './main.js';
import { createLogger } from '../kube/logger.js';
import { KubeClient, type KubeObject } from '../kube/client.js';
import { Resources, type ResourceType } from '../kube/kinds.js';
import { eventually as pollUntil } from '../dev/eventually.js';

jest.setTimeout(180_000);

let cp: ControlPlane;
let kc: KubeConfig;
let client: KubeClient;
let op: RunningOperator;

const HOME = 'home';
const NS = 'federation';

/** Polls with this file's defaults (60 s, every 250 ms); see dev/eventually.ts. */
const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) =>
  pollUntil(what, fn, { timeoutMs, intervalMs: 250 });

function assignment(name: string, requester: string, units: number, ports: unknown[] = [], request = name) {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Assignment',
    metadata: { name, namespace: NS },
    spec: {
      requester,
      request,
      host: HOME,
      units,
      vm: {
        image: 'quay.io/containerdisks/fedora:40',
        cloudInit: '#cloud-config\npackages: [nginx]\n',
        sshKeys: [
          'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop',
        ],
        ports,
      },
    },
  };
}

const condition = (
  o: KubeObject | undefined,
  type: string,
): { status?: string; reason?: string } | undefined =>
  (
    (o?.status as { conditions?: Array<{ type: string; status: string; reason: string }> } | undefined)
      ?.conditions ?? []
  ).find((c) => c.type === type);

async function ready(type: ResourceType, name: string, namespace?: string): Promise<KubeObject> {
  let last: unknown;
  try {
    return await eventually(`${type.kind} ${name} Ready`, async () => {
      const o = await client.get(type, name, namespace);
      last = o?.status;
      return condition(o, 'Ready')?.status === 'True' ? o : undefined;
    });
  } catch (err) {
    throw new Error(`${String(err)}; last status ${JSON.stringify(last)}`);
  }
}

async function idle(): Promise<void> {
  // settled: nothing queued or in flight for a while
  let quiet = 0;
  await eventually('operator idle', () => {
    quiet = op.busy() === 0 ? quiet + 1 : 0;
    return Promise.resolve(quiet >= 8);
  });
}

async function managedObjects(namespace: string): Promise<Map<string, string>> {
  const rvs = new Map<string, string>();
  // (ResourceQuota is left out: kube-controller-manager writes its status; the write
  // counter below covers the operator's own requests to it.)
  const kinds = [
    Resources.LimitRange,
    Resources.Role,
    Resources.RoleBinding,
    Resources.NetworkAttachmentDefinition,
    Resources.CiliumNetworkPolicy,
    Resources.VirtualMachine,
    Resources.Service,
    Resources.HTTPRoute,
    Resources.TLSRoute,
  ];
  for (const k of kinds) {
    for (const o of (await client.list(k, { namespace })).items)
      rvs.set(`${k.kind}/${o.metadata?.name}`, o.metadata?.resourceVersion ?? '');
  }
  return rvs;
}

async function writes(): Promise<number> {
  const m = await op.metrics.apiRequests.get();
  // PUT is left out: only the leader-election Lease renewals use it.
  return m.values
    .filter((v) => ['PATCH', 'POST', 'DELETE'].includes(String(v.labels.verb)))
    .reduce((s, v) => s + v.value, 0);
}

async function events(reason: string): Promise<KubeObject[]> {
  const list = await client.request<{ items: KubeObject[] }>('GET', '/apis/events.k8s.io/v1/events');
  return list.items.filter((e) => e.reason === reason);
}

beforeAll(async () => {
  cp = await ControlPlane.start({ name: 'operator' });
  kc = cp.kubeConfig();
  client = await KubeClient.fromKubeConfig(kc);
  for (const ns of ['personal-cloud', NS])
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'test');
  // A host hosts only what its Offer offers (operator/trust.int.test.ts tests the cap).
  await client.create({
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Offer',
    metadata: { name: 'home', namespace: NS },
    spec: { peer: HOME, units: 100, unit: { cpu: '1', memory: '2Gi', storage: '20Gi' } },
  });
  const config = configFromOptions({
    peer: HOME,
    homeDomain: 'alice.example.net',
    homeLan: ['192.168.0.0/16'],
    metricsPort: '0',
    metricsHost: '127.0.0.1',
    leaseDuration: '4',
    leaseRenewDeadline: '3',
    leaseRetryPeriod: '1',
    identity: 'in-process',
    logLevel: process.env.LOG_LEVEL ?? 'warn',
  });
  op = await runOperator(config, {
    kubeConfig: kc,
    log: createLogger(config.logLevel),
    defaultMetrics: false,
  });
}, 180_000);

afterAll(async () => {
  await op?.stop();
  client?.close();
  await cp?.stop();
});

describe('hosted Assignment → Tenant → namespace, network, VMs and routes', () => {
  const ports = [
    { name: 'web', port: 8080, protocol: 'HTTP' },
    { name: 'secure', port: 8443, protocol: 'TLS' },
    { name: 'ssh', port: 22, protocol: 'TCP' },
  ];

  it('writes every child, all accepted by the real schemas, and reports Ready', async () => {
    await client.create(assignment('bob-web', 'bob', 2, ports));
    const a = await ready(Resources.Assignment, 'bob-web', NS);
    const tenant = await ready(Resources.Tenant, 'bob');
    expect(tenant.spec).toMatchObject({ peer: 'bob', units: 2 });
    expect(tenant.status).toMatchObject({
      namespace: 'tenant-bob',
      observedGeneration: tenant.metadata?.generation,
    });
    const ns = 'tenant-bob';
    const vm = await client.get(Resources.VirtualMachine, 'bob-web-0', ns);
    expect(vm?.spec).toMatchObject({
      template: {
        metadata: {
          annotations: { 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '10M' },
        },
        spec: {
          networks: [
            { name: 'default', pod: {} },
            { name: 'tenant', multus: { networkName: 'tenant-network' } },
          ],
        },
      },
    });
    expect(await client.get(Resources.VirtualMachine, 'bob-web-1', ns)).toBeDefined();
    expect(await client.get(Resources.Service, 'bob-web-0', ns)).toBeDefined();
    const http = await client.get(Resources.HTTPRoute, 'bob-web-0-web', ns);
    expect(http?.spec).toMatchObject({ hostnames: ['bob-web-0.bob.alice.example.net'] });
    expect(await client.get(Resources.TLSRoute, 'bob-web-1-secure', ns)).toBeDefined();
    expect(await client.get(Resources.NetworkAttachmentDefinition, 'tenant-network', ns)).toBeDefined();
    expect((await client.list(Resources.CiliumNetworkPolicy, { namespace: ns })).items).toHaveLength(2);
    expect(await client.get(Resources.Gateway, 'personal-cloud', 'personal-cloud')).toBeDefined();
    expect(a.status).toMatchObject({
      phase: 'Provisioning',
      vms: [
        { name: 'bob-web-0', hostname: 'bob-web-0.bob.alice.example.net' },
        { name: 'bob-web-1', hostname: 'bob-web-1.bob.alice.example.net' },
      ],
    });
  });

  it('lets the remote peer operate its VMs and nothing else', async () => {
    const peer = await cp.mintUser('personalcloud.io:peer:bob');
    const can = async (...args: string[]): Promise<string> =>
      (await cp.kubectl(['auth', 'can-i', ...args], { kubeconfig: peer.kubeconfigPath })).stdout.trim();
    expect(await can('get', 'virtualmachines.kubevirt.io', '-n', 'tenant-bob')).toBe('yes');
    // KubeVirt's start/stop/restart are subresources of the subresources.kubevirt.io group, which
    // only virt-api serves, so kubectl auth can-i cannot name them here: ask the API server
    // directly with a SelfSubjectAccessReview as the peer.
    const review = async (subresource: string, namespace: string): Promise<boolean> => {
      const ssar = {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: {
          resourceAttributes: {
            group: 'subresources.kubevirt.io',
            resource: 'virtualmachines',
            subresource,
            verb: 'update',
            namespace,
            name: 'web-0',
          },
        },
      };
      const r = await cp.kubectl(
        ['create', '--validate=false', '-f', '-', '-o', 'jsonpath={.status.allowed}'],
        {
          kubeconfig: peer.kubeconfigPath,
          input: JSON.stringify(ssar),
        },
      );
      if (r.code !== 0) throw new Error(r.stderr);
      return r.stdout.trim() === 'true';
    };
    for (const sub of ['start', 'stop', 'restart']) expect(await review(sub, 'tenant-bob')).toBe(true);
    expect(await review('migrate', 'tenant-bob')).toBe(false);
    expect(await review('start', 'default')).toBe(false);
    expect(await can('delete', 'virtualmachines.kubevirt.io', '-n', 'tenant-bob')).toBe('no');
    expect(await can('get', 'virtualmachines.kubevirt.io', '-n', 'default')).toBe('no');
  });

  it('a second reconcile writes nothing: resourceVersions stay', async () => {
    await idle();
    const before = await managedObjects('tenant-bob');
    const tenantRv = (await client.get(Resources.Tenant, 'bob'))?.metadata?.resourceVersion;
    const assignmentRv = (await client.get(Resources.Assignment, 'bob-web', NS))?.metadata?.resourceVersion;
    const writesBefore = await writes();
    op.resyncAll();
    await idle();
    expect(await managedObjects('tenant-bob')).toEqual(before);
    expect((await client.get(Resources.Tenant, 'bob'))?.metadata?.resourceVersion).toBe(tenantRv);
    expect((await client.get(Resources.Assignment, 'bob-web', NS))?.metadata?.resourceVersion).toBe(
      assignmentRv,
    );
    expect(await writes()).toBe(writesBefore);
  });

  it('status flows back from the VM and VMI', async () => {
    for (const vm of ['bob-web-0', 'bob-web-1']) {
      await client.mergePatch(Resources.VirtualMachine, vm, 'tenant-bob', {});
      await client.request(
        'PATCH',
        `/apis/kubevirt.io/v1/namespaces/tenant-bob/virtualmachines/${vm}/status`,
        {
          body: { status: { printableStatus: 'Running', ready: true } },
          contentType: 'application/merge-patch+json',
        },
      );
      // The VMI kind has no status subresource: its status is written with the object.
      await client.create({
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachineInstance',
        metadata: { name: vm, namespace: 'tenant-bob' },
        spec: { domain: { devices: {} } },
        status: {
          phase: 'Running',
          interfaces: [{ name: 'tenant', ipAddress: vm.endsWith('0') ? '10.200.0.10' : '10.200.0.11' }],
        },
      });
    }
    const expected = [
      {
        name: 'bob-web-0',
        phase: 'Running',
        address: '10.200.0.10',
        hostname: 'bob-web-0.bob.alice.example.net',
      },
      {
        name: 'bob-web-1',
        phase: 'Running',
        address: '10.200.0.11',
        hostname: 'bob-web-1.bob.alice.example.net',
      },
    ];
    // The VM statuses can make the Assignment Running before the second VMI (with its
    // address) is observed, so wait for the whole expected status, then assert it.
    const a = await eventually('Assignment Running with both VMs addressed', async () => {
      const o = await client.get(Resources.Assignment, 'bob-web', NS);
      const status = o?.status as { phase?: string; vms?: unknown[] } | undefined;
      return status?.phase === 'Running' && isDeepStrictEqual(status.vms, expected) ? o : undefined;
    });
    expect((a.status as { phase: string }).phase).toBe('Running');
    expect((a.status as { vms: unknown[] }).vms).toEqual(expected);
  });

  it('repairs a deleted or edited child', async () => {
    await client.delete(Resources.Service, 'bob-web-0', 'tenant-bob');
    await client.mergePatch(Resources.VirtualMachine, 'bob-web-1', 'tenant-bob', {
      spec: { template: { metadata: { annotations: { 'kubernetes.io/egress-bandwidth': '1G' } } } },
    });
    await client.delete(Resources.CiliumNetworkPolicy, 'tenant-isolation', 'tenant-bob');
    await eventually('service back', () => client.get(Resources.Service, 'bob-web-0', 'tenant-bob'));
    await eventually('policy back', () =>
      client.get(Resources.CiliumNetworkPolicy, 'tenant-isolation', 'tenant-bob'),
    );
    await eventually('bandwidth restored', async () => {
      const vm = await client.get(Resources.VirtualMachine, 'bob-web-1', 'tenant-bob');
      const ann = (vm?.spec as { template: { metadata: { annotations: Record<string, string> } } }).template
        .metadata.annotations;
      return ann['kubernetes.io/egress-bandwidth'] === '10M';
    });
  });

  it('sums units over a requester’s Assignments into its Tenant', async () => {
    await client.create(assignment('bob-db', 'bob', 1));
    await ready(Resources.Assignment, 'bob-db', NS);
    await eventually(
      'tenant units 3',
      async () => ((await client.get(Resources.Tenant, 'bob'))?.spec as { units: number }).units === 3,
    );
    const quota = await eventually('quota for 3 units', async () => {
      const q = await client.get(Resources.ResourceQuota, 'tenant-quota', 'tenant-bob');
      return (q?.spec as { hard: Record<string, string> }).hard['count/virtualmachines.kubevirt.io'] === '3'
        ? q
        : undefined;
    });
    expect(quota).toBeDefined();
  });
});

describe('objects the schema accepts but the operator cannot honour', () => {
  it('a Tenant subnet overlapping the home LAN: NetworkReady False, Event, other children fine', async () => {
    await client.create({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Tenant',
      metadata: { name: 'carol' },
      spec: { peer: 'carol', units: 1, network: { subnet: '192.168.10.0/24' } },
    });
    const t = await eventually('carol NetworkReady False', async () => {
      const o = await client.get(Resources.Tenant, 'carol');
      return condition(o, 'NetworkReady')?.status === 'False' ? o : undefined;
    });
    expect(condition(t, 'NetworkReady')?.reason).toBe('SubnetOverlapsHomeLAN');
    expect(condition(t, 'Ready')?.status).toBe('False');
    expect(condition(t, 'NamespaceReady')?.status).toBe('True');
    expect(
      await client.get(Resources.NetworkAttachmentDefinition, 'tenant-network', 'tenant-carol'),
    ).toBeUndefined();
    await eventually(
      'SubnetOverlapsHomeLAN event',
      async () => (await events('SubnetOverlapsHomeLAN')).length > 0,
    );
  });

  it('two HTTP ports on one hostname, and a duplicate VM name: DuplicateHostname; the first keeps working', async () => {
    await client.create(
      assignment('dave-two-http', 'dave', 1, [
        { name: 'a', port: 80, protocol: 'HTTP' },
        { name: 'b', port: 81, protocol: 'HTTP' },
      ]),
    );
    // same requester and request as bob-web: same VM names
    await client.create(assignment('bob-web-again', 'bob', 1, [], 'bob-web'));
    for (const name of ['dave-two-http', 'bob-web-again']) {
      const a = await eventually(`${name} refused`, async () => {
        const o = await client.get(Resources.Assignment, name, NS);
        return condition(o, 'Ready')?.status === 'False' && condition(o, 'Accepted')?.status === 'False'
          ? o
          : undefined;
      });
      expect(condition(a, 'Accepted')?.reason).toBe('DuplicateHostname');
      expect((a.status as { phase: string }).phase).toBe('Pending');
    }
    await eventually('DuplicateHostname event', async () => (await events('DuplicateHostname')).length >= 2);
    // the original is untouched and still Ready
    expect(condition(await client.get(Resources.Assignment, 'bob-web', NS), 'Ready')?.status).toBe('True');
  });

  it("a unit size that overflows the Tenant's quota: QuotaReady False QuotaOverflow", async () => {
    await client.create({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Tenant',
      metadata: { name: 'erin' },
      spec: { peer: 'erin', units: 10000 },
    });
    // 10000 × this home's unit memory must not exceed what a quota can hold
    await client.mergePatch(Resources.Offer, 'home', NS, { spec: { unit: { memory: '1Pi' } } });
    const t = await eventually('erin QuotaReady False', async () => {
      const o = await client.get(Resources.Tenant, 'erin');
      return condition(o, 'QuotaReady')?.status === 'False' ? o : undefined;
    });
    expect(condition(t, 'QuotaReady')?.reason).toBe('QuotaOverflow');
    await eventually('QuotaOverflow event', async () => (await events('QuotaOverflow')).length > 0);
    await client.mergePatch(Resources.Offer, 'home', NS, { spec: { unit: { memory: '2Gi' } } });
    await client.delete(Resources.Tenant, 'erin');
    await client.delete(Resources.Tenant, 'carol');
  });

  it('keeps reconciling other objects meanwhile', async () => {
    await client.create(assignment('frank-web', 'frank', 1, [{ name: 'web', port: 80 }]));
    await ready(Resources.Assignment, 'frank-web', NS);
  });
});

describe('recovery and clean-up', () => {
  it('recovers when the kube-apiserver restarts mid-run', async () => {
    await cp.restartApiServer();
    await client.create(assignment('gina-web', 'gina', 1, [{ name: 'web', port: 80 }]));
    await ready(Resources.Assignment, 'gina-web', NS);
    await ready(Resources.Tenant, 'gina');
  });

  it('deleting an Assignment removes its children; the last one takes the Tenant and namespace', async () => {
    await client.delete(Resources.Assignment, 'bob-web-again', NS);
    await client.delete(Resources.Assignment, 'bob-db', NS);
    await eventually(
      'bob-db VM gone',
      async () => !(await client.get(Resources.VirtualMachine, 'bob-db-0', 'tenant-bob')),
    );
    await eventually(
      'tenant units back to 2',
      async () => ((await client.get(Resources.Tenant, 'bob'))?.spec as { units: number }).units === 2,
    );
    await client.delete(Resources.Assignment, 'bob-web', NS);
    await eventually('assignment gone', async () => !(await client.get(Resources.Assignment, 'bob-web', NS)));
    await eventually('tenant gone', async () => !(await client.get(Resources.Tenant, 'bob')), 120_000);
    await eventually(
      'namespace gone',
      async () => !(await client.get(Resources.Namespace, 'tenant-bob')),
      120_000,
    );
  });
});
