// The personalcloud.io API against a real kube-apiserver: the examples are accepted, invalid objects are
// rejected with a message naming the offending field, defaults are applied, and the status subresource is
// guarded by its own RBAC rule.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiException, CustomObjectsApi } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { ControlPlane, type MintedUser } from '../dev/control-plane.js';
import { repoRoot } from '../dev/paths.js';

const NS = 'home-alice';
const API_VERSION = 'personalcloud.io/v1alpha1';
const SSH_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICPJ+fju75MFGRtafTj7w4XAsJfGmPntDfBDVcGCF292 alice@alice-laptop';

type Obj = Record<string, unknown> & { kind: string; metadata: { name: string } };

// Valid objects; each invalid case below changes exactly one thing, because the API server skips the CEL
// rules of an object that already fails its OpenAPI schema.
const offer = (name: string): Obj => ({
  apiVersion: API_VERSION,
  kind: 'Offer',
  metadata: { name },
  spec: {
    peer: 'alice',
    units: 4,
    unit: { cpu: 2, memory: '4Gi', storage: '20Gi' },
    bandwidth: { ingress: '20M', egress: '5M' },
    excludePeers: ['mallory'],
  },
});
const request = (name: string): Obj => ({
  apiVersion: API_VERSION,
  kind: 'Request',
  metadata: { name },
  spec: {
    peer: 'alice',
    units: 2,
    placement: { spread: false, maxPerPeer: 2, peers: [{ peer: 'bob', max: 2 }] },
    vm: {
      image: 'quay.io/containerdisks/fedora:40',
      sshKeys: [SSH_KEY],
      ports: [
        { name: 'http', port: 80, protocol: 'HTTP' },
        { name: 'https', port: 443, protocol: 'TLS' },
      ],
    },
  },
});
const assignment = (name: string): Obj => ({
  apiVersion: API_VERSION,
  kind: 'Assignment',
  metadata: { name },
  spec: {
    requester: 'alice',
    request: 'alice-website',
    host: 'bob',
    units: 1,
    vm: { image: 'quay.io/containerdisks/fedora:40' },
  },
});
const tenant = (name: string): Obj => ({
  apiVersion: API_VERSION,
  kind: 'Tenant',
  metadata: { name },
  spec: { peer: 'bob', units: 2, network: { subnet: '10.200.0.0/24' }, hostnameSuffix: 'bob.example.net' },
});

/** A deep copy of obj with the value at a dotted path (numbers index arrays) set, or deleted when undefined. */
function withValue(obj: Obj, path: string, value: unknown): Obj {
  const copy = structuredClone(obj);
  const keys = path.split('.');
  const last = keys.pop() as string;
  let node = copy as Record<string, unknown>;
  for (const key of keys) node = node[key] as Record<string, unknown>;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

interface InvalidCase {
  what: string;
  object: Obj;
  /** The field path the error must name, as the API server prints it. */
  field: string;
  /** What the error must say about it. */
  why: RegExp;
  /** How the object is written: server-side apply (default), create, or create and then a status patch. */
  via?: 'apply' | 'create' | { status: Record<string, unknown> };
}

const condition = {
  type: 'Ready',
  status: 'True',
  reason: 'VirtualMachinesRunning',
  message: 'all VMs run',
  lastTransitionTime: '2026-01-01T00:00:00Z',
};

const invalid: InvalidCase[] = [
  {
    what: 'negative units',
    object: withValue(offer('neg-units'), 'spec.units', -1),
    field: 'spec.units',
    why: /greater than or equal to 0/,
  },
  {
    what: 'Request units 0',
    object: withValue(request('zero-units'), 'spec.units', 0),
    field: 'spec.units',
    why: /greater than or equal to 1/,
  },
  {
    what: 'peer name with capitals',
    object: withValue(offer('capitals'), 'spec.peer', 'Alice'),
    field: 'spec.peer',
    why: /should match/,
  },
  {
    what: 'peer name longer than 63 characters',
    object: withValue(request('long-peer'), 'spec.peer', 'a'.repeat(64)),
    field: 'spec.peer',
    why: /may not be more than 63 bytes|Too long/,
  },
  {
    what: 'placement peer with capitals',
    object: withValue(request('capital-placement'), 'spec.placement.peers', [{ peer: 'Bob', max: 1 }]),
    field: 'spec.placement.peers[0].peer',
    why: /should match/,
  },
  {
    what: 'unknown field (strict field validation)',
    object: withValue(offer('unknown-field'), 'spec.colour', 'red'),
    field: 'spec.colour',
    why: /field not declared in schema/,
  },
  {
    what: 'unknown nested field',
    object: withValue(request('unknown-nested'), 'spec.vm.cpuCount', 4),
    field: 'spec.vm.cpuCount',
    why: /field not declared in schema/,
  },
  {
    what: 'spread with maxPerPeer 3',
    object: withValue(request('spread-max'), 'spec.placement', { spread: true, maxPerPeer: 3 }),
    field: 'spec.placement.maxPerPeer',
    why: /must be 0 or 1 when spread is true/,
  },
  {
    what: 'spread with a peer allowed 2 units',
    object: withValue(request('spread-peer-max'), 'spec.placement', {
      spread: true,
      peers: [{ peer: 'bob', max: 2 }],
    }),
    field: 'spec.placement.peers',
    why: /max must be 0 or 1 when spread is true/,
  },
  {
    what: 'a Request naming its own peer in placement.peers',
    object: withValue(request('own-peer'), 'spec.placement.peers', [{ peer: 'alice', max: 1 }]),
    field: 'spec.placement.peers',
    why: /must not name spec.peer/,
  },
  {
    what: 'duplicate placement.peers (create)',
    object: withValue(request('dup-peers'), 'spec.placement.peers', [
      { peer: 'bob', max: 1 },
      { peer: 'bob', max: 2 },
    ]),
    field: 'spec.placement.peers[1]',
    why: /Duplicate value/,
    via: 'create',
  },
  {
    what: 'duplicate placement.peers (server-side apply)',
    object: withValue(request('dup-peers-ssa'), 'spec.placement.peers', [
      { peer: 'bob', max: 1 },
      { peer: 'bob', max: 2 },
    ]),
    field: 'spec.placement.peers',
    why: /duplicate entries for key \[peer="bob"\]/,
  },
  {
    what: 'negative placement max',
    object: withValue(request('neg-max'), 'spec.placement.peers', [{ peer: 'bob', max: -1 }]),
    field: 'spec.placement.peers[0].max',
    why: /greater than or equal to 0/,
  },
  {
    what: 'bad quantity',
    object: withValue(offer('bad-quantity'), 'spec.unit.cpu', 'two'),
    field: 'spec.unit.cpu',
    why: /should match/,
  },
  {
    what: 'negative quantity',
    object: withValue(offer('neg-quantity'), 'spec.unit.memory', '-4Gi'),
    field: 'spec.unit.memory',
    why: /must be a positive quantity/,
  },
  {
    what: 'zero quantity',
    object: withValue(offer('zero-quantity'), 'spec.unit.storage', 0),
    field: 'spec.unit.storage',
    why: /must be a positive quantity/,
  },
  {
    what: 'bad bandwidth string',
    object: withValue(offer('bad-bandwidth'), 'spec.bandwidth.ingress', '10Mbit'),
    field: 'spec.bandwidth.ingress',
    why: /should match/,
  },
  {
    what: 'zero bandwidth',
    object: withValue(tenant('zero-bandwidth'), 'spec.bandwidth', { egress: '0M' }),
    field: 'spec.bandwidth.egress',
    why: /should match/,
  },
  {
    what: 'missing required unit',
    object: withValue(offer('no-unit'), 'spec.unit', undefined),
    field: 'spec.unit',
    why: /Required value/,
  },
  {
    what: 'missing VM image',
    object: withValue(request('no-image'), 'spec.vm.image', undefined),
    field: 'spec.vm.image',
    why: /Required value/,
  },
  {
    what: 'bad VM image reference',
    object: withValue(request('bad-image'), 'spec.vm.image', 'Fedora Latest'),
    field: 'spec.vm.image',
    why: /should match/,
  },
  {
    what: 'bad port protocol',
    object: withValue(request('bad-protocol'), 'spec.vm.ports', [
      { name: 'sctp', port: 9, protocol: 'SCTP' },
    ]),
    field: 'spec.vm.ports[0].protocol',
    why: /Unsupported value: "SCTP"/,
  },
  {
    what: 'port out of range',
    object: withValue(request('big-port'), 'spec.vm.ports', [{ name: 'web', port: 70000 }]),
    field: 'spec.vm.ports[0].port',
    why: /less than or equal to 65535/,
  },
  {
    what: 'duplicate port names (create)',
    object: withValue(request('dup-port-names'), 'spec.vm.ports', [
      { name: 'web', port: 80 },
      { name: 'web', port: 8080 },
    ]),
    field: 'spec.vm.ports[1]',
    why: /Duplicate value/,
    via: 'create',
  },
  {
    what: 'duplicate port names (server-side apply)',
    object: withValue(request('dup-port-names-ssa'), 'spec.vm.ports', [
      { name: 'web', port: 80 },
      { name: 'web', port: 8080 },
    ]),
    field: 'spec.vm.ports',
    why: /duplicate entries for key \[name="web"\]/,
  },
  {
    what: 'one TCP port number used twice',
    object: withValue(request('dup-port-numbers'), 'spec.vm.ports', [
      { name: 'web', port: 8080, protocol: 'HTTP' },
      { name: 'raw', port: 8080, protocol: 'TCP' },
    ]),
    field: 'spec.vm.ports',
    why: /each port number may be used once per transport/,
  },
  {
    what: 'bad ssh key',
    object: withValue(request('bad-ssh-key'), 'spec.vm.sshKeys', ['ssh-rsa not-a-key']),
    field: 'spec.vm.sshKeys[0]',
    why: /should match/,
  },
  {
    what: 'excludePeers containing its own peer',
    object: withValue(offer('exclude-self'), 'spec.excludePeers', ['alice']),
    field: 'spec.excludePeers',
    why: /must not name spec.peer/,
  },
  {
    what: 'duplicate excludePeers (create)',
    object: withValue(offer('dup-exclude'), 'spec.excludePeers', ['bob', 'bob']),
    field: 'spec.excludePeers[1]',
    why: /Duplicate value/,
    via: 'create',
  },
  {
    what: 'Assignment with requester == host',
    object: withValue(assignment('self-hosted'), 'spec.host', 'alice'),
    field: 'spec.host',
    why: /must differ from spec.requester/,
  },
  {
    what: 'Assignment with units 0',
    object: withValue(assignment('zero-assigned'), 'spec.units', 0),
    field: 'spec.units',
    why: /greater than or equal to 1/,
  },
  {
    what: 'bad subnet',
    object: withValue(tenant('bad-subnet'), 'spec.network.subnet', 'banana'),
    field: 'spec.network.subnet',
    why: /must be an IPv4 CIDR/,
  },
  {
    what: 'IPv6 subnet',
    object: withValue(tenant('v6-subnet'), 'spec.network.subnet', 'fd00::/64'),
    field: 'spec.network.subnet',
    why: /must be an IPv4 CIDR/,
  },
  {
    what: 'subnet with host bits set',
    object: withValue(tenant('host-bits'), 'spec.network.subnet', '10.200.0.1/24'),
    field: 'spec.network.subnet',
    why: /host bits must be zero/,
  },
  {
    what: 'subnet too small',
    object: withValue(tenant('small-subnet'), 'spec.network.subnet', '10.200.0.0/30'),
    field: 'spec.network.subnet',
    why: /prefix length must be between 16 and 29/,
  },
  {
    what: 'bad hostnameSuffix',
    object: withValue(tenant('bad-suffix'), 'spec.hostnameSuffix', 'Bob_Home'),
    field: 'spec.hostnameSuffix',
    why: /should match/,
  },
  {
    what: 'bad condition status',
    object: assignment('bad-condition-status'),
    field: 'status.conditions[0].status',
    why: /Unsupported value: "Yes"/,
    via: { status: { conditions: [{ ...condition, status: 'Yes' }] } },
  },
  {
    what: 'bad condition reason',
    object: request('bad-condition-reason'),
    field: 'status.conditions[0].reason',
    why: /should match/,
    via: { status: { conditions: [{ ...condition, reason: 'not camel case!' }] } },
  },
  {
    what: 'bad Assignment phase',
    object: assignment('bad-phase'),
    field: 'status.phase',
    why: /Unsupported value: "Done"/,
    via: { status: { phase: 'Done' } },
  },
  {
    what: 'bad VM address',
    object: assignment('bad-address'),
    field: 'status.vms[0].address',
    why: /must be an IP address/,
    via: { status: { vms: [{ name: 'web-0', address: '10.200.0.300' }] } },
  },
  {
    what: 'negative allocatedUnits',
    object: offer('neg-allocated'),
    field: 'status.allocatedUnits',
    why: /greater than or equal to 0/,
    via: { status: { allocatedUnits: -1 } },
  },
];

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** The field path as the error's subject: `spec.x: ...` or SSA's `.spec.x: ...`, not inside another path. */
const namesField = (field: string): RegExp => new RegExp(`(^|[\\s*.])${escapeRegExp(field)}: `, 'm');
const resourceOf = (obj: Obj): string => `${obj.kind.toLowerCase()}s.personalcloud.io/${obj.metadata.name}`;
const namespaced = (obj: Obj): string[] => (obj.kind === 'Tenant' ? [] : ['-n', NS]);

describe('personalcloud.io/v1alpha1 on a real kube-apiserver', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    cp = await ControlPlane.start({ name: 'api' });
    const ns = await cp.kubectl(['create', 'namespace', NS]);
    expect(ns.stderr).toBe('');
  }, 180_000);

  afterAll(async () => {
    await cp?.stop();
  });

  const apply = (obj: Obj | string, kubeconfig?: string) =>
    cp.kubectl(['apply', '--server-side', '-n', NS, '-f', '-'], {
      input: typeof obj === 'string' ? obj : stringify(obj),
      ...(kubeconfig === undefined ? {} : { kubeconfig }),
    });
  const getJson = async (resource: string, kubeconfig?: string): Promise<Obj> => {
    const res = await cp.kubectl(['get', '-n', NS, resource, '-o', 'json'], kubeconfig ? { kubeconfig } : {});
    expect(res.stderr).toBe('');
    return JSON.parse(res.stdout) as Obj;
  };

  const examples = readdirSync(join(repoRoot, 'examples')).filter((f) => f.endsWith('.yaml'));

  test('examples/ holds an Offer, a spread and an unconstrained Request and a Tenant', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  test.each(examples)('examples/%s is accepted by kubectl apply --server-side', async (file) => {
    const res = await apply(readFileSync(join(repoRoot, 'examples', file), 'utf8'));
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/serverside-applied/);
  });

  test.each(invalid)('rejects $what, naming $field', async ({ object, field, why, via = 'apply' }) => {
    let res;
    if (via === 'apply') {
      res = await apply(object);
    } else if (via === 'create') {
      res = await cp.kubectl(['create', ...namespaced(object), '-f', '-'], { input: stringify(object) });
    } else {
      const created = await apply(object);
      expect(created.stderr).toBe('');
      res = await cp.kubectl([
        'patch',
        ...namespaced(object),
        resourceOf(object),
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status: via.status }),
      ]);
    }
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(namesField(field));
    expect(res.stderr).toMatch(why);
  });

  test('the invalid table covers at least 20 cases', () => {
    expect(invalid.length).toBeGreaterThanOrEqual(20);
  });

  test('defaults: bandwidth 10M, spread false, protocol HTTP, subnet 198.18.0.0/18', async () => {
    const bare = (obj: Obj, drop: string[]) => drop.reduce((o, path) => withValue(o, path, undefined), obj);
    for (const obj of [
      bare(offer('defaults'), ['spec.bandwidth']),
      withValue(bare(request('defaults'), ['spec.placement']), 'spec.vm.ports', [{ name: 'web', port: 80 }]),
      bare(tenant('defaults'), ['spec.network']),
    ]) {
      const res = await apply(obj);
      expect(res.stderr).toBe('');
    }
    const o = (await getJson('offers.personalcloud.io/defaults')) as unknown as {
      spec: { bandwidth: unknown };
    };
    expect(o.spec.bandwidth).toEqual({ ingress: '10M', egress: '10M' });
    const r = (await getJson('requests.personalcloud.io/defaults')) as unknown as {
      spec: { placement: unknown; vm: { ports: unknown } };
    };
    expect(r.spec.placement).toEqual({ spread: false });
    expect(r.spec.vm.ports).toEqual([{ name: 'web', port: 80, protocol: 'HTTP' }]);
    const t = (await getJson('tenants.personalcloud.io/defaults')) as unknown as {
      spec: { network: unknown; bandwidth: unknown };
    };
    expect(t.spec.network).toEqual({ subnet: '198.18.0.0/18' });
    expect(t.spec.bandwidth).toEqual({ ingress: '10M', egress: '10M' });
  });

  test('an Assignment cannot move to another host or requester', async () => {
    expect((await apply(assignment('immutable'))).stderr).toBe('');
    const res = await apply(withValue(assignment('immutable'), 'spec.host', 'carol'));
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(namesField('spec.host'));
    expect(res.stderr).toMatch(/host is immutable/);
  });

  test('kubectl finds the kinds by short name and category and prints their columns', async () => {
    const res = await cp.kubectl(['get', '-n', NS, 'ofr,req,asg']);
    expect(res.stderr).toBe('');
    expect(res.stdout).toMatch(/NAME\s+PEER\s+UNITS\s+ALLOCATED\s+READY\s+AGE/);
    expect(res.stdout).toMatch(/NAME\s+PEER\s+UNITS\s+ASSIGNED\s+READY\s+AGE/);
    expect(res.stdout).toMatch(/NAME\s+REQUESTER\s+HOST\s+UNITS\s+PHASE\s+READY\s+AGE/);
    const tenants = await cp.kubectl(['get', 'tn', 'bob']);
    expect(tenants.stdout).toMatch(
      /NAME\s+PEER\s+UNITS\s+SUBNET\s+NAMESPACE\s+READY\s+AGE\nbob\s+bob\s+2\s+198\.18\.0\.0\/24/,
    );
    const all = await cp.kubectl(['get', 'personalcloud', '-A', '-o', 'name']);
    for (const name of [
      'offer.personalcloud.io/alice-spare-desktops',
      'request.personalcloud.io/alice-website',
      'request.personalcloud.io/alice-devbox',
      'tenant.personalcloud.io/bob',
    ]) {
      expect(all.stdout).toContain(`${name}\n`);
    }
  });

  describe('the status subresource', () => {
    const role = (name: string, resources: string[], verbs: string[]) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name, namespace: NS },
      rules: [{ apiGroups: ['personalcloud.io'], resources, verbs }],
    });
    const binding = (name: string, user: string) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
    });
    let peer: MintedUser;
    let matchmaker: MintedUser;
    const ref = {
      group: 'personalcloud.io',
      version: 'v1alpha1',
      namespace: NS,
      plural: 'requests',
      name: 'rbac',
    };
    /** PUT /status, the way a controller writes status, as the given user. */
    const writeStatus = async (user: MintedUser, status: Record<string, unknown>): Promise<unknown> => {
      const api = user.kubeConfig.makeApiClient(CustomObjectsApi);
      const current = (await api.getNamespacedCustomObject(ref)) as Obj;
      return api.replaceNamespacedCustomObjectStatus({ ...ref, body: { ...current, status } });
    };

    beforeAll(async () => {
      const rbac = [
        role('request-editor', ['requests'], ['get', 'list', 'watch', 'create', 'update', 'patch']),
        binding('request-editor', 'peer-alice'),
        role('request-status-writer', ['requests', 'requests/status'], ['get', 'update', 'patch']),
        binding('request-status-writer', 'matchmaker'),
      ];
      const res = await cp.kubectl(['apply', '--server-side', '-f', '-'], {
        input: rbac.map((o) => stringify(o)).join('---\n'),
      });
      expect(res.stderr).toBe('');
      peer = await cp.mintUser('peer-alice', ['personalcloud:peers']);
      matchmaker = await cp.mintUser('matchmaker', ['personalcloud:matchmakers']);
    });

    test('a user who may update a Request but not its status is Forbidden to write the status', async () => {
      const created = await apply(request('rbac'), peer.kubeconfigPath);
      expect(created.stderr).toBe('');
      const denied = await writeStatus(peer, { assignedUnits: 2 }).catch((err: unknown) => err);
      expect(denied).toBeInstanceOf(ApiException);
      const { code, body } = denied as ApiException<string>;
      expect(code).toBe(403);
      const { message } = JSON.parse(body) as { message: string };
      expect(message).toContain('User "peer-alice" cannot update resource "requests/status"');
    });

    test('status sent through the main resource is ignored', async () => {
      const res = await apply({ ...request('rbac'), status: { assignedUnits: 2 } }, peer.kubeconfigPath);
      expect(res.stderr).toBe('');
      expect((await getJson('requests.personalcloud.io/rbac', peer.kubeconfigPath)).status).toBeUndefined();
    });

    test('a user with rights on requests/status can write it', async () => {
      await writeStatus(matchmaker, {
        assignedUnits: 2,
        observedGeneration: 1,
        placements: [{ peer: 'bob', units: 2, vms: [{ name: 'rbac-0', phase: 'Running' }] }],
        conditions: [condition],
      });
      const got = (await getJson('requests.personalcloud.io/rbac', peer.kubeconfigPath)) as unknown as {
        status: { assignedUnits: number; conditions: { type: string; status: string }[] };
      };
      expect(got.status.assignedUnits).toBe(2);
      expect(got.status.conditions[0]).toMatchObject({ type: 'Ready', status: 'True' });
    });
  });
});
