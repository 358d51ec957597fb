// The Helm chart against a real control plane: it installs (CRDs included), its RBAC
// lets the operator do its work and nothing more, bad values are refused with a message
// naming the value, and the Argo CD Application that deploys it is valid.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN_DIR, ControlPlane } from '../dev/control-plane.js';
import { repoRoot } from '../dev/paths.js';
import { runCommand, type CommandResult } from '../dev/run-command.js';
import { desiredRole } from '../operator/tenant/rbac.js';
import type { Tenant } from '../generated/personalcloud.js';

const CHART = join(repoRoot, 'charts', 'personal-cloud');
const NS = 'personal-cloud-system';
const SA = `system:serviceaccount:${NS}:personal-cloud`;

let cp: ControlPlane;
let helmHome: string;

function helm(args: string[]): Promise<CommandResult> {
  return runCommand(join(BIN_DIR, 'helm'), [...args, `--kubeconfig=${cp.kubeconfigPath}`], {
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    },
  });
}

beforeAll(async () => {
  helmHome = mkdtempSync(join(tmpdir(), 'pcloud-helm-'));
  // Our CRDs come from the chart here, so the harness does not install them.
  cp = await ControlPlane.start({ name: 'chart', ourCRDs: false });
});
afterAll(async () => {
  await cp?.stop();
  rmSync(helmHome, { recursive: true, force: true });
});

test('helm install creates the CRDs, RBAC and the operator Deployment', async () => {
  const res = await helm([
    'install',
    'personal-cloud',
    CHART,
    '--namespace',
    NS,
    '--create-namespace',
    '--set',
    'peer=alice',
    '--set',
    'homeDomain=alice.example.org',
    '--wait=false',
  ]);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  // the operator does not create the namespaces it works in (docs/operator.md "First run"): the chart does
  const gatewayNs = await cp.kubectl(['get', 'namespace', 'personal-cloud-gateway', '-o', 'name']);
  expect(gatewayNs.stdout.trim()).toBe('namespace/personal-cloud-gateway');
  const crds = await cp.kubectl(['get', 'crd', '-o', 'name']);
  for (const kind of ['offers', 'requests', 'assignments', 'tenants']) {
    expect(crds.stdout).toContain(`customresourcedefinition.apiextensions.k8s.io/${kind}.personalcloud.io\n`);
  }
  const deploy = await cp.kubectl(['get', 'deployment', 'personal-cloud', '-n', NS, '-o', 'json']);
  expect(deploy.code).toBe(0);
  const env = (
    JSON.parse(deploy.stdout) as {
      spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
    }
  ).spec.template.spec.containers[0]?.env;
  expect(env).toEqual(
    expect.arrayContaining([
      { name: 'PCLOUD_PEER', value: 'alice' },
      { name: 'PCLOUD_HOME_DOMAIN', value: 'alice.example.org' },
      { name: 'PCLOUD_HOME_LAN', value: '10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16' },
    ]),
  );
});

test.each([
  ['create', 'virtualmachines.kubevirt.io', 'tenant-bob', 'yes'],
  ['create', 'network-attachment-definitions.k8s.cni.cncf.io', 'tenant-bob', 'yes'],
  ['create', 'ciliumnetworkpolicies.cilium.io', 'tenant-bob', 'yes'],
  ['create', 'networkpolicies.networking.k8s.io', 'tenant-bob', 'yes'],
  ['create', 'httproutes.gateway.networking.k8s.io', 'tenant-bob', 'yes'],
  ['create', 'tlsroutes.gateway.networking.k8s.io', 'tenant-bob', 'yes'],
  ['update', 'tenants.personalcloud.io/status', '', 'yes'],
  ['update', 'assignments.personalcloud.io/status', 'default', 'yes'],
  ['create', 'namespaces', '', 'yes'],
  ['update', 'leases.coordination.k8s.io', NS, 'yes'],
  ['get', 'secrets/federation-join', NS, 'yes'],
  ['list', 'secrets/federation-join', NS, 'yes'],
  ['watch', 'secrets/federation-join', NS, 'yes'],
  // cloud-init Secrets of hosted VMs: create only (and the admission policy below narrows it)
  ['create', 'secrets', 'tenant-bob', 'yes'],
  // Least privilege: nothing it does not need.
  ['get', 'secrets', 'tenant-bob', 'no'],
  ['list', 'secrets', 'tenant-bob', 'no'],
  ['patch', 'secrets', 'tenant-bob', 'no'],
  ['delete', 'secrets', 'tenant-bob', 'no'],
  ['get', 'secrets/other', NS, 'no'],
  ['list', 'secrets', NS, 'no'],
  ['watch', 'secrets', NS, 'no'],
  ['create', 'pods', 'tenant-bob', 'no'],
  ['update', 'leases.coordination.k8s.io', 'kube-system', 'no'],
  ['create', 'clusterroles.rbac.authorization.k8s.io', '', 'no'],
  ['escalate', 'roles.rbac.authorization.k8s.io', 'tenant-bob', 'no'],
])('the operator ServiceAccount: can-i %s %s in %p -> %s', async (verb, resource, namespace, answer) => {
  const args = ['auth', 'can-i', verb, resource, `--as=${SA}`];
  if (namespace !== '') args.push('-n', namespace);
  const res = await cp.kubectl(args);
  expect(res.stdout.trim()).toBe(answer);
});

test('the node agent DaemonSet: host network, its node name, CAP_NET_ADMIN and nothing else', async () => {
  const res = await cp.kubectl(['get', 'daemonset', 'personal-cloud-node-agent', '-n', NS, '-o', 'json']);
  expect(res.code).toBe(0);
  const spec = (
    JSON.parse(res.stdout) as {
      spec: {
        template: {
          spec: {
            hostNetwork: boolean;
            containers: {
              args: string[];
              env: { name: string; valueFrom?: unknown }[];
              securityContext: {
                capabilities: { add: string[]; drop: string[] };
                readOnlyRootFilesystem: boolean;
              };
            }[];
          };
        };
      };
    }
  ).spec.template.spec;
  expect(spec.hostNetwork).toBe(true);
  const c = spec.containers[0]!;
  expect(c.args).toEqual(['node-agent']);
  expect(c.env).toContainEqual({
    name: 'PCLOUD_NODE_NAME',
    valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'spec.nodeName' } },
  });
  expect(c.securityContext.capabilities).toEqual({ add: ['NET_ADMIN'], drop: ['ALL'] });
  expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
});

const NODE_AGENT_SA = `system:serviceaccount:${NS}:personal-cloud-node-agent`;
test.each([
  ['watch', 'tenants.personalcloud.io', '', 'yes'],
  ['watch', 'nodes', '', 'yes'],
  ['create', 'events.events.k8s.io', 'default', 'yes'],
  // on the chief: the portal's grants and the VM instances they name; their status only
  ['watch', 'portalgrants.personalcloud.io', '', 'yes'],
  ['update', 'portalgrants.personalcloud.io --subresource=status', 'tenant-bob', 'yes'],
  ['watch', 'virtualmachineinstances.kubevirt.io', '', 'yes'],
  ['update', 'portalgrants.personalcloud.io', 'tenant-bob', 'no'],
  ['create', 'portalgrants.personalcloud.io', 'tenant-bob', 'no'],
  // read-only on the API: it changes nothing but its node's kernel state
  ['update', 'tenants.personalcloud.io/status', '', 'no'],
  ['patch', 'nodes', '', 'no'],
  ['get', 'secrets', NS, 'no'],
  ['list', 'pods', '', 'no'],
])('the node agent ServiceAccount: can-i %s %s in %p -> %s', async (verb, resource, namespace, answer) => {
  const args = ['auth', 'can-i', verb, ...resource.split(' '), `--as=${NODE_AGENT_SA}`];
  if (namespace !== '') args.push('-n', namespace);
  const res = await cp.kubectl(args);
  expect(res.stdout.trim()).toBe(answer);
});

// The portal writes PortalGrants and Events, reads what it shows and its own signing key.
const PORTAL_SA = `system:serviceaccount:${NS}:personal-cloud-portal`;
test.each([
  ['list', 'assignments.personalcloud.io', '', 'yes'],
  ['list', 'tenants.personalcloud.io', '', 'yes'],
  ['list', 'offers.personalcloud.io', 'default', 'yes'],
  ['list', 'requests.personalcloud.io', 'default', 'yes'],
  ['create', 'portalgrants.personalcloud.io', 'tenant-bob', 'yes'],
  ['delete', 'portalgrants.personalcloud.io', 'tenant-bob', 'yes'],
  ['create', 'events.events.k8s.io', 'default', 'yes'],
  ['get', 'secrets/portal-signing-key', NS, 'yes'],
  // Least privilege: it never realises a grant itself, nor touches what it shows.
  ['update', 'portalgrants.personalcloud.io --subresource=status', 'tenant-bob', 'no'],
  ['update', 'portalgrants.personalcloud.io', 'tenant-bob', 'no'],
  ['update', 'assignments.personalcloud.io', 'federation', 'no'],
  ['update', 'tenants.personalcloud.io', '', 'no'],
  ['create', 'requests.personalcloud.io', 'default', 'no'],
  ['watch', 'assignments.personalcloud.io', '', 'no'],
  ['get', 'secrets/personal-cloud-portal', NS, 'no'],
  ['get', 'secrets/federation-join', NS, 'no'],
  ['list', 'secrets', NS, 'no'],
  ['create', 'pods', 'tenant-bob', 'no'],
  ['get', 'virtualmachineinstances.kubevirt.io', 'tenant-bob', 'no'],
])('the portal ServiceAccount: can-i %s %s in %p -> %s', async (verb, resource, namespace, answer) => {
  const args = ['auth', 'can-i', verb, ...resource.split(' '), `--as=${PORTAL_SA}`];
  if (namespace !== '') args.push('-n', namespace);
  const res = await cp.kubectl(args);
  expect(res.stdout.trim()).toBe(answer);
});

test('the portal: one replica behind its own HTTPS listener at portal.<homeDomain>, secrets kept across upgrades', async () => {
  const get = async <T>(args: string[]): Promise<T> => {
    const res = await cp.kubectl(['get', ...args, '-o', 'json']);
    expect(res.stderr).toBe('');
    return JSON.parse(res.stdout) as T;
  };
  const deploy = await get<{
    spec: {
      replicas: number;
      template: {
        spec: {
          containers: { args: string[]; env: { name: string; value?: string; valueFrom?: unknown }[] }[];
        };
      };
    };
  }>(['deployment', 'personal-cloud-portal', '-n', NS]);
  expect(deploy.spec.replicas).toBe(1);
  const c = deploy.spec.template.spec.containers[0]!;
  expect(c.args).toEqual(['portal', 'serve']);
  expect(c.env).toEqual(
    expect.arrayContaining([
      { name: 'PCLOUD_PEER', value: 'alice' },
      {
        name: 'PCLOUD_COOKIE_SECRET',
        valueFrom: { secretKeyRef: { name: 'personal-cloud-portal', key: 'cookieSecret' } },
      },
      {
        name: 'PCLOUD_OWNER_TOKEN',
        valueFrom: { secretKeyRef: { name: 'personal-cloud-portal', key: 'ownerToken' } },
      },
    ]),
  );
  const route = await get<{
    spec: { hostnames: string[]; parentRefs: { name: string; sectionName: string }[] };
  }>(['httproute', 'personal-cloud-portal', '-n', NS]);
  expect(route.spec.hostnames).toEqual(['portal.alice.example.org']);
  expect(route.spec.parentRefs[0]).toMatchObject({ name: 'personal-cloud-portal', sectionName: 'portal' });
  const gw = await get<{
    spec: { listeners: { protocol: string; port: number; hostname: string; tls: { mode: string } }[] };
  }>(['gateway', 'personal-cloud-portal', '-n', 'personal-cloud-gateway']);
  expect(gw.spec.listeners).toEqual([
    expect.objectContaining({
      protocol: 'HTTPS',
      // k3s's Traefik websecure entryPoint (gateway.tlsPort).
      port: 8443,
      hostname: 'portal.alice.example.org',
      tls: expect.objectContaining({ mode: 'Terminate' }) as unknown,
    }),
  ]);
  const secret = async () =>
    (await get<{ data: Record<string, string> }>(['secret', 'personal-cloud-portal', '-n', NS])).data;
  const before = await secret();
  expect(Buffer.from(before.cookieSecret!, 'base64').toString()).toHaveLength(48);
  expect(Buffer.from(before.ownerToken!, 'base64').toString()).toHaveLength(32);
  const up = await helm([
    'upgrade',
    'personal-cloud',
    CHART,
    '--namespace',
    NS,
    '--set',
    'peer=alice',
    '--set',
    'homeDomain=alice.example.org',
    '--set',
    'portal.chiefNode=n1',
    '--wait=false',
  ]);
  expect(up.stderr).toBe('');
  expect(await secret()).toEqual(before);
  // The chief's agent gets the grant settings; the others do not need them (one DaemonSet: all get them, only n1 acts).
  const ds = await get<{
    spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
  }>(['daemonset', 'personal-cloud-node-agent', '-n', NS]);
  expect(ds.spec.template.spec.containers[0]!.env).toEqual(
    expect.arrayContaining([
      { name: 'PCLOUD_CHIEF_NODE', value: 'n1' },
      { name: 'PCLOUD_GRANT_PORTS', value: '40000-40999' },
    ]),
  );
});

test('the operator ServiceAccount may grant the tenant Role (it holds every permission in it)', async () => {
  const tenant = {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name: 'bob', uid: '00000000-0000-0000-0000-000000000001', generation: 1 },
    spec: { peer: 'bob', units: 1, network: { subnet: '10.200.0.0/24' } },
  } as unknown as Tenant;
  const role = desiredRole(tenant);
  expect((await cp.kubectl(['create', 'namespace', 'tenant-bob'])).code).toBe(0);
  // No owner references here: the Tenant object does not exist in this cluster.
  const manifest = JSON.stringify({
    ...role,
    metadata: { name: role.metadata.name, namespace: 'tenant-bob' },
  });
  const res = await cp.kubectl(['create', `--as=${SA}`, '-f', '-'], { input: manifest });
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
});

test('the operator ServiceAccount creates only Opaque Secrets owned by a VM, only in tenant namespaces', async () => {
  expect(
    (await cp.kubectl(['create', 'namespace', 'tenant-zed'])).code +
      (await cp.kubectl(['label', 'namespace', 'tenant-zed', 'personalcloud.io/tenant=zed'])).code,
  ).toBe(0);
  const secret = (name: string, namespace: string, extra: Record<string, unknown> = {}): string =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace,
        ownerReferences: [
          {
            apiVersion: 'kubevirt.io/v1',
            kind: 'VirtualMachine',
            name: 'web-0',
            uid: '00000000-0000-0000-0000-000000000002',
          },
        ],
      },
      type: 'Opaque',
      data: { userdata: Buffer.from('#cloud-config\n').toString('base64') },
      ...extra,
    });
  const create = (manifest: string) => cp.kubectl(['create', `--as=${SA}`, '-f', '-'], { input: manifest });
  // the policy takes a moment to be enforced after install: wait for a refusal first
  const deadline = Date.now() + 30_000;
  let outside = await create(secret('probe', 'default'));
  while (outside.code === 0 && Date.now() < deadline) {
    await cp.kubectl(['delete', 'secret', 'probe', '-n', 'default']);
    await new Promise((r) => setTimeout(r, 500));
    outside = await create(secret('probe', 'default'));
  }
  expect(outside.stderr).toContain('only in tenant namespaces');
  const token = await create(
    secret('admin-token', 'tenant-zed', {
      type: 'kubernetes.io/service-account-token',
      data: undefined,
    }).replace('"metadata":{', '"metadata":{"annotations":{"kubernetes.io/service-account.name":"default"},'),
  );
  expect(token.stderr).toContain('only Opaque Secrets');
  const ok = await create(secret('web-0-cloudinit-0123456789', 'tenant-zed'));
  expect(ok.stderr).toBe('');
  expect(ok.code).toBe(0);
});

test.each([
  [['--set', 'homeDomain=alice.example.org'], 'peer is required'],
  [['--set', 'peer=alice'], 'homeDomain is required'],
  [['--set', 'peer=Alice', '--set', 'homeDomain=a.org'], "at '/peer': 'Alice' does not match pattern"],
  [['--set', 'peer=alice', '--set', 'homeDomain=a.org', '--set', 'homeLAN={192.168.1.0}'], "at '/homeLAN/0'"],
  // An empty home LAN would drop the home-LAN deny from every tenant's policy.
  [['--set', 'peer=alice', '--set', 'homeDomain=a.org', '--set', 'homeLAN=null'], 'homeLAN'],
  [['--set', 'peer=alice', '--set', 'homeDomain=a.org', '--set-json', 'homeLAN=[]'], "at '/homeLAN'"],
  [
    ['--set', 'peer=alice', '--set', 'homeDomain=a.org', '--set', 'leaderElection.enabled=false'],
    'replicaCount > 1 needs leaderElection.enabled=true',
  ],
  [
    ['--set', 'peer=alice', '--set', 'homeDomain=a.org', '--set', 'tenantNetwork.mtu=1500000'],
    "at '/tenantNetwork/mtu'",
  ],
  [
    ['--set', 'peer=alice', '--set', 'homeDomain=a.org', '--set-json', 'clusterCIDRs=[]'],
    "at '/clusterCIDRs'",
  ],
  [
    ['--set', 'peer=alice', '--set', 'homeDomain=a.org', '--set', 'portal.grantPorts=40000'],
    "at '/portal/grantPorts'",
  ],
  [
    ['--set', 'peer=alice', '--set', 'homeDomain=a.org', '--set', 'portal.chiefNode=Chief'],
    "at '/portal/chiefNode'",
  ],
])('bad values %j are refused naming the value', async (values, message) => {
  const res = await helm(['template', 'pc', CHART, ...values]);
  expect(res.code).not.toBe(0);
  expect(res.stderr).toContain(message);
});

test("the Argo CD Applications that deploy the chart (and the root one) are valid under Argo CD's real schema", async () => {
  expect((await cp.kubectl(['create', 'namespace', 'argocd'])).code).toBe(0);
  const res = await cp.kubectl([
    'apply',
    '--server-side',
    '--validate=strict',
    '-f',
    join(repoRoot, 'deploy', 'argocd', 'personal-cloud.yaml'),
    '-f',
    join(repoRoot, 'deploy', 'argocd-root.yaml'),
  ]);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
});

test('with portal.existingSecret (Argo CD: helm template has no lookup) the chart makes no portal Secret and uses that one', async () => {
  const res = await helm([
    'template',
    'pc',
    CHART,
    '--set',
    'peer=alice',
    '--set',
    'homeDomain=a.org',
    '--set',
    'portal.existingSecret=my-portal-secret',
  ]);
  expect(res.code).toBe(0);
  expect(res.stdout).not.toMatch(/kind: Secret\n(.*\n){0,3}\s+name: pc-personal-cloud-portal\n/);
  expect(res.stdout).toContain('secretKeyRef: {name: my-portal-secret, key: ownerToken}');
  expect(res.stdout).toContain('secretKeyRef: {name: my-portal-secret, key: cookieSecret}');
  const own = await helm(['template', 'pc', CHART, '--set', 'peer=alice', '--set', 'homeDomain=a.org']);
  expect(own.stdout).toMatch(/kind: Secret\n(.*\n){0,3}\s+name: pc-personal-cloud-portal\n/);
});
