/**
 * Strict field validation against a real kube-apiserver with the real third-party
 * CRDs: every write of KubeClient (create, update, merge and JSON patch, server-side
 * apply, apply of status) asks for `fieldValidation=Strict`, so a misspelled field in a
 * child object is a 400/422 that names the field instead of being dropped; what the
 * desired-state builders write passes, without a warning; and the API server's
 * Warning headers reach the client's onWarning callback.
 */
import type { NetworkAttachmentDefinition } from '../generated/multus.js';
import type { VirtualMachine } from '../generated/kubevirt.js';
import type { Assignment, Tenant } from '../generated/personalcloud.js';
import { ControlPlane } from '../dev/control-plane.js';
import { ApiError, KubeClient, type ApiWarning, type Desired, type KubeObject } from '../kube/client.js';
import { isTerminalApiError } from '../kube/apply.js';
import { Resources } from '../kube/kinds.js';
import { parseCidr } from './network-address.js';
import { desiredGateway, desiredHTTPRoutes, desiredServices, desiredTLSRoutes } from './assignment/routes.js';
import { desiredVirtualMachines } from './assignment/virtual-machines.js';
import { desiredNamespace } from './tenant/namespace.js';
import { desiredCiliumNetworkPolicies } from './tenant/network-policies.js';
import { desiredNetworkAttachmentDefinition } from './tenant/network.js';

const FIELD_MANAGER = 'strict-validation-test';
const NS = 'tenant-bob';

let cp: ControlPlane;
let client: KubeClient;
const warnings: ApiWarning[] = [];

const tenant: Tenant = {
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Tenant',
  metadata: { name: 'bob', uid: '5b4c1c7e-0000-4000-8000-000000000001' },
  spec: { peer: 'bob', units: 2, network: { subnet: '10.200.0.0/24' } },
};
const assignment: Assignment = {
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Assignment',
  metadata: { name: 'bob-web-alice', namespace: 'matchmaker' },
  spec: {
    requester: 'bob',
    request: 'web',
    host: 'alice',
    units: 1,
    vm: {
      image: 'quay.io/containerdisks/fedora:40',
      ports: [
        { name: 'http', port: 80, protocol: 'HTTP' },
        { name: 'https', port: 443, protocol: 'TLS' },
      ],
    },
  },
};
const home = {
  gateway: { namespace: 'gateway-system', name: 'home', className: 'cilium', httpPort: 80, tlsPort: 443 },
};

function desiredVm(name: string): Desired<VirtualMachine> {
  const [vm] = desiredVirtualMachines(assignment, {
    unit: { cpu: '1', memory: '1Gi', storage: '1Gi' },
    bandwidth: { ingress: '10M', egress: '10M' },
    hostnameSuffix: 'bob.alice.example.org',
  });
  if (!vm) throw new Error('no VM');
  return { ...vm, metadata: { ...vm.metadata, name } };
}

function desiredNad(name: string): Desired<NetworkAttachmentDefinition> {
  const subnet = parseCidr('10.200.0.0/24');
  if (!subnet) throw new Error('bad CIDR');
  const nad = desiredNetworkAttachmentDefinition(
    tenant,
    subnet,
    {
      ingressBps: 10_000_000,
      egressBps: 10_000_000,
      ingress: '10M',
      egress: '10M',
    },
    1450,
  );
  // The owner (the Tenant) does not exist here, and no garbage collector runs.
  return { ...nad, metadata: { name, namespace: NS } };
}

/** `obj` with `spec.<from>` renamed to `spec.<to>`: a misspelling the schema does not know. */
function misspelled<T extends { spec?: object }>(obj: T, from: string, to: string): T {
  const spec = { ...obj.spec } as Record<string, unknown>;
  spec[to] = spec[from];
  delete spec[from];
  return { ...obj, spec };
}

/** The error a write failed with; fails the test when it succeeded. */
async function rejection(write: () => Promise<unknown>): Promise<ApiError> {
  try {
    await write();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('the write succeeded');
}

beforeAll(async () => {
  cp = await ControlPlane.start({ name: 'strict', controllerManager: false });
  client = await KubeClient.fromKubeConfig(cp.kubeConfig(), undefined, {
    onWarning: (w) => warnings.push(w),
  });
  for (const name of [NS, 'gateway-system'])
    await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
});

afterAll(async () => {
  client?.close();
  await cp?.stop();
});

beforeEach(() => {
  warnings.length = 0;
});

describe('what the builders write passes strict validation', () => {
  it('applies the Tenant children and the hosted Assignment children without error or warning', async () => {
    const children: KubeObject[] = [
      { ...desiredNamespace(tenant), metadata: { name: NS } },
      desiredNad('tenant-network'),
      ...desiredCiliumNetworkPolicies(tenant, { homeLan: ['192.168.0.0/16'], gateway: home.gateway }),
      desiredVm('web-0'),
      ...desiredServices(assignment),
      ...desiredHTTPRoutes(assignment, 'bob.alice.example.org', home),
      ...desiredTLSRoutes(assignment, 'bob.alice.example.org', home),
      desiredGateway(home),
    ];
    expect(children.map((c) => c.kind)).toEqual([
      'Namespace',
      'NetworkAttachmentDefinition',
      'CiliumNetworkPolicy',
      'CiliumNetworkPolicy',
      'VirtualMachine',
      'Service',
      'HTTPRoute',
      'TLSRoute',
      'Gateway',
    ]);
    for (const child of children) await client.apply(child, FIELD_MANAGER);
    expect(warnings).toEqual([]);
    const vm = await client.get<Desired<VirtualMachine>>(Resources.VirtualMachine, 'web-0', NS);
    expect(vm?.spec.runStrategy).toBe('Always');
  });
});

describe('a misspelled field in a child is an error naming the field, on every kind of write', () => {
  // Without fieldValidation=Strict the API server accepts a create, update or patch with an unknown field,
  // drops the field and says so only in a Warning header. A server-side apply with one has always failed,
  // but as a 500 (kubernetes/kubernetes#122480), which KubeClient reports as the 400 it is.
  const cases: Array<{
    what: string;
    name: string;
    write: (name: string) => Promise<unknown>;
    field: RegExp;
  }> = [
    {
      what: 'server-side apply of a VirtualMachine with spec.runStrategyy',
      name: 'typo-apply',
      write: (name) =>
        client.apply(misspelled(desiredVm(name), 'runStrategy', 'runStrategyy'), FIELD_MANAGER),
      field: /\.spec\.runStrategyy: field not declared in schema/,
    },
    {
      what: 'create (POST) of a VirtualMachine with spec.runStrategyy',
      name: 'typo-create',
      write: (name) => client.create(misspelled(desiredVm(name), 'runStrategy', 'runStrategyy')),
      field: /strict decoding error: unknown field "spec\.runStrategyy"/,
    },
    {
      what: 'server-side apply of a VirtualMachine with a disk bus spelled buss, deep in the template',
      name: 'typo-deep',
      write: (name) =>
        client.apply(
          JSON.parse(
            JSON.stringify(desiredVm(name)).replace('"bus":"virtio"', '"buss":"virtio"'),
          ) as KubeObject,
          FIELD_MANAGER,
        ),
      field: /\.spec\.template\.spec\.domain\.devices\.disks\[0\]\.disk\.buss: field not declared/,
    },
    {
      what: 'server-side apply of a NetworkAttachmentDefinition with spec.configg',
      name: 'typo-nad-apply',
      write: (name) => client.apply(misspelled(desiredNad(name), 'config', 'configg'), FIELD_MANAGER),
      field: /\.spec\.configg: field not declared in schema/,
    },
    {
      what: 'create (POST) of a NetworkAttachmentDefinition with spec.configg',
      name: 'typo-nad-create',
      write: (name) => client.create(misspelled(desiredNad(name), 'config', 'configg')),
      field: /strict decoding error: unknown field "spec\.configg"/,
    },
  ];

  it.each(cases)('$what', async ({ name, write, field }) => {
    const err = await rejection(() => write(name));
    expect({ statusCode: err.statusCode, reason: err.reason, invalid: isTerminalApiError(err) }).toEqual({
      statusCode: 400,
      reason: 'BadRequest',
      invalid: true,
    });
    expect(err.message).toMatch(field);
    expect(await client.get(Resources.VirtualMachine, name, NS)).toBeUndefined();
    expect(await client.get(Resources.NetworkAttachmentDefinition, name, NS)).toBeUndefined();
  });

  it('update (PUT), merge patch and JSON patch of an existing NetworkAttachmentDefinition', async () => {
    const created = await client.create(desiredNad('typo-nad-patch'));
    const before = created.spec?.config;
    expect(before).toEqual(expect.any(String));
    // The status code is the API server's: 400 for PUT, 422 for a patch.
    const writes: Array<[string, number, () => Promise<unknown>]> = [
      ['PUT', 400, () => client.update({ ...created, spec: { ...created.spec, configg: 'x' } })],
      [
        'merge patch',
        422,
        () =>
          client.mergePatch(Resources.NetworkAttachmentDefinition, 'typo-nad-patch', NS, {
            spec: { configg: 'x' },
          }),
      ],
      [
        'JSON patch',
        422,
        () =>
          client.jsonPatch(Resources.NetworkAttachmentDefinition, 'typo-nad-patch', NS, [
            { op: 'add', path: '/spec/configg', value: 'x' },
          ]),
      ],
    ];
    for (const [what, statusCode, write] of writes) {
      const err = await rejection(write);
      expect({ what, statusCode: err.statusCode, message: err.message }).toEqual({
        what,
        statusCode,
        message: expect.stringMatching(/unknown field "spec\.configg"/) as unknown,
      });
    }
    const after = await client.get<Desired<NetworkAttachmentDefinition>>(
      Resources.NetworkAttachmentDefinition,
      'typo-nad-patch',
      NS,
    );
    expect(after?.spec).toEqual({ config: before });
  });

  it('server-side apply of a VirtualMachine status with status.printableStatuss', async () => {
    await client.apply(desiredVm('typo-status'), FIELD_MANAGER);
    const err = await rejection(() =>
      client.applyStatus(
        {
          apiVersion: 'kubevirt.io/v1',
          kind: 'VirtualMachine',
          metadata: { name: 'typo-status', namespace: NS },
          status: { printableStatuss: 'Running' },
        },
        FIELD_MANAGER,
      ),
    );
    expect(err.statusCode).toBe(400);
    expect(err.message).toMatch(/\.status\.printableStatuss: field not declared in schema/);
    expect(err.path).toBe(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines/typo-status/status`);
  });
});

describe('Warning headers reach onWarning', () => {
  it('a finalizer without a domain: the warning names the field, with its quotes unescaped', async () => {
    const nad = desiredNad('warned');
    await client.create({ ...nad, metadata: { ...nad.metadata, finalizers: ['cleanup'] } });
    expect(warnings).toEqual([
      {
        method: 'POST',
        path: `/apis/k8s.cni.cncf.io/v1/namespaces/${NS}/network-attachment-definitions`,
        code: 299,
        text: expect.stringMatching(
          /^metadata\.finalizers: "cleanup": prefer a domain-qualified finalizer name/,
        ) as unknown,
      },
    ]);
  });

  it('a read of a deprecated version (kubevirt.io/v1alpha3)', async () => {
    await client.request('GET', `/apis/kubevirt.io/v1alpha3/namespaces/${NS}/virtualmachines`);
    expect(warnings).toEqual([
      {
        method: 'GET',
        path: `/apis/kubevirt.io/v1alpha3/namespaces/${NS}/virtualmachines`,
        code: 299,
        text: 'kubevirt.io/v1alpha3 is now deprecated and will be removed in a future release.',
      },
    ]);
  });
});
