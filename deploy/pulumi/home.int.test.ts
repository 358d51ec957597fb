/**
 * deploy/pulumi against a real kube-apiserver, through Pulumi's Automation API: the pulumi
 * CLI and the Kubernetes provider built from their Go modules by `make setup`, a file
 * backend and a PULUMI_HOME of the test's own (dev/pulumi.ts), and the home's program
 * (program.ts's homeProgram, what index.ts runs) as an inline program, run in a Node
 * process of its own (dev/pulumi-inline.ts says why not in Jest's). The project and
 * stack files are the ones users get (Pulumi.yaml, Pulumi.alice.yaml), plus the test's
 * cluster, a join kubeconfig, and waitForReady=false: this control plane has no nodes, so
 * the chart's pods never start (e2e/home-install.e2e.test.ts runs them on real nodes).
 *
 * Asserted in the API server, step by step: `up` creates the chart's objects, the join
 * Secret, the Offer and the Request as configured; a change of units and a new Request
 * update the Offer and add the Request without touching anything else (same uids, the
 * Helm release still at revision 1); a chart value upgrades the release in place; a
 * preview then has nothing to do; `destroy` removes everything but the CRDs (Helm's rule).
 * A bad config fails with the fields named, before anything reaches the cluster.
 */
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { LocalWorkspace, type Stack } from '@pulumi/pulumi/automation/index.js';
import type { InlineResult } from '../../dev/pulumi-inline.js';
import { parse, stringify } from 'yaml';
import { ControlPlane } from '../../dev/control-plane.js';
import { createCertificateAuthority } from '../../dev/pki.js';
import { KUBERNETES_PROVIDER_VERSION, PulumiWorkspace } from '../../dev/pulumi.js';
import { repoRoot } from '../../dev/paths.js';

jest.setTimeout(900_000);

const PROJECT = 'personal-cloud-home';
const NS = 'personal-cloud-system';
const HERE = join(repoRoot, 'deploy', 'pulumi');
const PROGRAM = { module: join(HERE, 'program.ts'), export: 'homeProgram' };
const JOIN_TOKEN = `pcloud-join.${Date.now().toString(36)}-secret`;

let cp: ControlPlane;
let ws: PulumiWorkspace;
let stack: Stack;
let joinKubeconfig = '';
let caPem = '';
const timings: Record<string, number> = {};
/** uids after `up`, by object. */
const uids: Record<string, string> = {};

interface KubeObject {
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    generation?: number;
    labels?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

async function get(args: string[]): Promise<KubeObject | undefined> {
  const r = await cp.kubectl(['get', ...args, '-o', 'json']);
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get ${args.join(' ')}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as KubeObject;
}
async function mustGet(args: string[]): Promise<KubeObject> {
  const o = await get(args);
  if (!o) throw new Error(`${args.join(' ')} not found`);
  return o;
}
async function names(args: string[]): Promise<string[]> {
  const r = await cp.kubectl(['get', ...args, '-o', 'jsonpath={.items[*].metadata.name}']);
  if (r.code !== 0) throw new Error(`kubectl get ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.split(' ').filter(Boolean);
}

/** A join kubeconfig as `pcloud federation invite <peer>` writes it. */
function joinFile(peer: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'matchmaker',
        cluster: {
          server: 'https://matchmaker.example.org:6443',
          'certificate-authority-data': Buffer.from(caPem).toString('base64'),
        },
      },
    ],
    users: [{ name: peer, user: { token: JOIN_TOKEN } }],
    contexts: [
      { name: 'federation', context: { cluster: 'matchmaker', user: peer, namespace: `peer-${peer}` } },
    ],
    'current-context': 'federation',
  });
}

/** Runs op on a stack with the home's program; `timing` records its wall time. */
async function pulumi(
  op: 'up' | 'preview' | 'destroy',
  stackName: string,
  timing?: string,
): Promise<InlineResult> {
  const start = Date.now();
  const res = await ws.run(op, { stackName, projectName: PROJECT }, PROGRAM);
  if (timing) timings[timing] = Date.now() - start;
  return res;
}
/** The same, expecting success. */
async function ok(op: 'up' | 'preview' | 'destroy', stackName: string, timing?: string) {
  const res = await pulumi(op, stackName, timing);
  if (!res.ok) throw new Error(`pulumi ${op} ${stackName} failed: ${res.error}`);
  return res;
}
/** The same, expecting failure: its error. */
async function fails(op: 'up' | 'preview' | 'destroy', stackName: string): Promise<string> {
  const res = await pulumi(op, stackName);
  if (res.ok) throw new Error(`pulumi ${op} ${stackName} succeeded; expected it to fail`);
  return res.error;
}

/** The objects that are not to change when only the Offer and Requests do. */
const UNTOUCHED: [string, string[]][] = [
  ['namespace', ['namespace', NS]],
  ['deployment', ['deployment', 'personal-cloud', '-n', NS]],
  ['node-agent', ['daemonset', 'personal-cloud-node-agent', '-n', NS]],
  ['clusterrole', ['clusterrole', 'personal-cloud']],
  ['join-secret', ['secret', 'federation-join', '-n', NS]],
  ['request', ['request', 'alice-website', '-n', NS]],
];

beforeAll(async () => {
  // Our CRDs come from the chart (Helm installs its crds/), as on a user's cluster.
  cp = await ControlPlane.start({ name: 'pulumi', ourCRDs: false });
  ws = await PulumiWorkspace.create('home');
  caPem = (await createCertificateAuthority('matchmaker')).certPem;
  joinKubeconfig = joinFile('alice');
  // The files a user has: the project (less `main`, the compiled index.js the CLI would
  // stat: an inline program runs homeProgram, which is what index.js runs), and Alice's
  // stack config.
  const project = parse(readFileSync(join(HERE, 'Pulumi.yaml'), 'utf8')) as Record<string, unknown>;
  expect(project.main).toBe('../../dist/deploy/pulumi/index.js');
  delete project.main;
  writeFileSync(join(ws.workDir, 'Pulumi.yaml'), stringify(project));
  copyFileSync(join(HERE, 'Pulumi.alice.yaml'), join(ws.workDir, 'Pulumi.alice.yaml'));
  stack = await LocalWorkspace.createOrSelectStack({ stackName: 'alice', workDir: ws.workDir }, ws.options());
  await stack.setAllConfig({
    'kubernetes:kubeconfig': { value: cp.kubeconfigPath },
    [`${PROJECT}:waitForReady`]: { value: 'false' },
    [`${PROJECT}:joinKubeconfig`]: { value: joinKubeconfig, secret: true },
  });
});

afterAll(async () => {
  console.log(`pulumi timings (ms): ${JSON.stringify(timings)}`);
  await cp?.stop();
  ws?.dispose();
});

test('the Kubernetes provider is the one built at setup, at the version @pulumi/kubernetes asks for', async () => {
  expect(KUBERNETES_PROVIDER_VERSION).toBe('4.25.0');
  expect(await ws.plugins()).toEqual([
    expect.objectContaining({ name: 'kubernetes', kind: 'resource', version: KUBERNETES_PROVIDER_VERSION }),
  ]);
});

test('a bad config fails naming the fields, and nothing reaches the cluster', async () => {
  const bad = await LocalWorkspace.createOrSelectStack(
    { stackName: 'bad', workDir: ws.workDir },
    ws.options(),
  );
  await bad.setAllConfig({
    'kubernetes:kubeconfig': { value: cp.kubeconfigPath },
    [`${PROJECT}:peer`]: { value: 'Alice' },
    [`${PROJECT}:domain`]: { value: 'alice.example.org' },
    [`${PROJECT}:units`]: { value: '-1' },
    [`${PROJECT}:requests`]: { value: JSON.stringify({ web: { units: 0, vm: { image: 'fedora:40' } } }) },
  });
  const err = await fails('up', 'bad');
  // Every problem, each naming its field, as the CLI prints them.
  expect(err).toContain('invalid Personal Cloud home config:');
  expect(err).toContain('- peer: peer name "Alice" must be a DNS-1123 label');
  expect(err).toContain('- units: Invalid value: -1');
  expect(err).toContain('- requests.web.units: Invalid value: 0');
  // A key of the wrong type is refused by Pulumi itself, naming the key (Pulumi.yaml declares it).
  await bad.setConfig(`${PROJECT}:units`, { value: 'four' });
  expect(await fails('preview', 'bad')).toContain(
    "Stack 'bad' with configuration key 'units' must be of type 'integer'",
  );
  expect(await get(['namespace', NS])).toBeUndefined();
  expect(await names(['crd'])).not.toContain('offers.personalcloud.io');
  // The failed update declared no Kubernetes object (only the stack itself is in the state).
  const badState = (await bad.exportStack()).deployment as { resources?: { type: string }[] };
  expect((badState.resources ?? []).filter((r) => r.type.startsWith('kubernetes:'))).toEqual([]);
  await bad.workspace.removeStack('bad', { force: true });
});

test('up installs the chart, stores the join Secret, and creates the Offer and the Request', async () => {
  const res = await ok('up', 'alice', 'up');
  // (the summary does not count the default provider)
  expect(res.resourceChanges).toEqual({ create: 7 });
  const exported = await stack.exportStack();
  const types = (exported.deployment as { resources: { type: string }[] }).resources.map((r) => r.type);
  expect(types.sort()).toEqual(
    [
      'pulumi:pulumi:Stack',
      'personalcloud:index:Home',
      'pulumi:providers:kubernetes',
      'kubernetes:core/v1:Namespace',
      'kubernetes:core/v1:Secret',
      'kubernetes:helm.sh/v3:Release',
      'kubernetes:personalcloud.io/v1alpha1:Request',
      'kubernetes:personalcloud.io/v1alpha1:Offer',
    ].sort(),
  );
  expect(res.outputs.offer).toBe('alice');
  expect(res.outputs.requests).toEqual(['alice-website']);
  expect(res.outputs.release).toEqual({ name: 'personal-cloud', revision: 1, status: 'deployed' });

  // The chart: CRDs, the operator and node agent with this home's values, RBAC.
  expect(await names(['crd'])).toEqual(
    expect.arrayContaining([
      'offers.personalcloud.io',
      'requests.personalcloud.io',
      'tenants.personalcloud.io',
    ]),
  );
  const deploy = (await mustGet(['deployment', 'personal-cloud', '-n', NS])) as KubeObject & {
    spec: {
      replicas: number;
      template: { spec: { containers: { env: { name: string; value?: string }[] }[] } };
    };
  };
  expect(deploy.spec.replicas).toBe(2);
  expect(deploy.spec.template.spec.containers[0]?.env).toEqual(
    expect.arrayContaining([
      { name: 'PCLOUD_PEER', value: 'alice' },
      { name: 'PCLOUD_HOME_DOMAIN', value: 'alice.example.org' },
      { name: 'PCLOUD_HOME_LAN', value: '192.168.1.0/24' },
      { name: 'PCLOUD_UNIT_CPU', value: '2' },
      { name: 'PCLOUD_UNIT_MEMORY', value: '4Gi' },
    ]),
  );
  await mustGet(['daemonset', 'personal-cloud-node-agent', '-n', NS]);
  await mustGet(['clusterrole', 'personal-cloud']);
  // An ordinary Helm release (helm's storage), so `helm status/upgrade` work on it.
  expect(await names(['secret', '-n', NS, '-l', 'owner=helm,name=personal-cloud,status=deployed'])).toEqual([
    'sh.helm.release.v1.personal-cloud.v1',
  ]);

  // The join Secret, as `pcloud federation join` stores it.
  const secret = await mustGet(['secret', 'federation-join', '-n', NS]);
  expect(Buffer.from(secret.data?.kubeconfig ?? '', 'base64').toString()).toBe(joinKubeconfig);
  expect(Buffer.from(secret.data?.peer ?? '', 'base64').toString()).toBe('alice');
  expect(secret.metadata.labels).toMatchObject({ 'personalcloud.io/peer': 'alice' });

  // The Offer and the Request, as Pulumi.alice.yaml says (with the API server's defaults).
  const offer = await mustGet(['offer', 'alice', '-n', NS]);
  expect(offer.spec).toEqual({
    peer: 'alice',
    units: 4,
    unit: { cpu: 2, memory: '4Gi', storage: '20Gi' },
    bandwidth: { ingress: '20M', egress: '5M' },
    excludePeers: ['mallory'],
  });
  const request = await mustGet(['request', 'alice-website', '-n', NS]);
  expect(request.spec).toEqual({
    peer: 'alice',
    units: 3,
    placement: { spread: true },
    vm: {
      image: 'quay.io/containerdisks/fedora:40',
      sshKeys: [
        'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICPJ+fju75MFGRtafTj7w4XAsJfGmPntDfBDVcGCF292 alice@alice-laptop',
      ],
      ports: [
        { name: 'http', port: 80, protocol: 'HTTP' },
        { name: 'https', port: 443, protocol: 'TLS' },
      ],
    },
  });

  // The join token is a secret in the state: encrypted, never in plain text.
  expect(JSON.stringify(exported)).not.toContain(JOIN_TOKEN);
  const stateDir = join(ws.backendDir, '.pulumi', 'stacks', PROJECT);
  const state = readdirSync(stateDir)
    .filter((f) => f.startsWith('alice.json'))
    .map((f) => readFileSync(join(stateDir, f), 'utf8'))
    .join('\n');
  expect(state).toContain('federation-join');
  expect(state).not.toContain(JOIN_TOKEN);

  for (const [key, args] of [...UNTOUCHED, ['offer', ['offer', 'alice', '-n', NS]] as [string, string[]]])
    uids[key] = (await mustGet(args)).metadata.uid;
});

test('a bad config on the running home fails the update and changes nothing', async () => {
  const before: Record<string, string> = {};
  const all: [string, string[]][] = [...UNTOUCHED, ['offer', ['offer', 'alice', '-n', NS]]];
  for (const [key, args] of all) before[key] = (await mustGet(args)).metadata.resourceVersion;
  // Bob's join file at Alice's home, and a negative number of units.
  await stack.setConfig(`${PROJECT}:joinKubeconfig`, { value: joinFile('bob'), secret: true });
  await stack.setConfig(`${PROJECT}:units`, { value: '-2' });
  const err = await fails('up', 'alice');
  expect(err).toContain('- joinKubeconfig: it joins the federation as peer bob, but peer is alice');
  expect(err).toContain('- units: Invalid value: -2');
  // Nothing was deleted or written, though the failed program declared no resource.
  for (const [key, args] of all) {
    const now = await mustGet(args);
    expect({ key, uid: now.metadata.uid, rv: now.metadata.resourceVersion }).toEqual({
      key,
      uid: uids[key],
      rv: before[key],
    });
  }
  await stack.setConfig(`${PROJECT}:joinKubeconfig`, { value: joinKubeconfig, secret: true });
  await stack.setConfig(`${PROJECT}:units`, { value: '4' });
  expect((await ok('preview', 'alice')).resourceChanges).toEqual({ same: 7 });
});

test('more units and a new Request: the Offer is updated, the Request added, nothing else touched', async () => {
  const before: Record<string, string> = {};
  for (const [key, args] of UNTOUCHED) before[key] = (await mustGet(args)).metadata.resourceVersion;
  await stack.setConfig(`${PROJECT}:units`, { value: '6' });
  await stack.setConfig(`${PROJECT}:requests`, {
    value: JSON.stringify({
      'alice-website': {
        units: 3,
        placement: { spread: true },
        vm: {
          image: 'quay.io/containerdisks/fedora:40',
          sshKeys: [
            'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICPJ+fju75MFGRtafTj7w4XAsJfGmPntDfBDVcGCF292 alice@alice-laptop',
          ],
          ports: [
            { name: 'http', port: 80, protocol: 'HTTP' },
            { name: 'https', port: 443, protocol: 'TLS' },
          ],
        },
      },
      'alice-devbox': {
        units: 2,
        placement: { maxPerPeer: 2, peers: [{ peer: 'carol', max: 0 }] },
        vm: {
          image: 'quay.io/containerdisks/fedora:40',
          ports: [{ name: 'ssh', port: 22, protocol: 'TCP' }],
        },
      },
    }),
  });
  const res = await ok('up', 'alice', 'up (change)');
  expect(res.resourceChanges).toEqual({ same: 6, update: 1, create: 1 });
  expect(res.outputs.requests).toEqual(['alice-website', 'alice-devbox']);
  expect(res.outputs.release).toMatchObject({ revision: 1 });

  const offer = await mustGet(['offer', 'alice', '-n', NS]);
  expect(offer.spec?.units).toBe(6);
  expect(offer.metadata.generation).toBe(2);
  expect(offer.metadata.uid).toBe(uids.offer);
  const devbox = await mustGet(['request', 'alice-devbox', '-n', NS]);
  expect(devbox.spec).toEqual({
    peer: 'alice',
    units: 2,
    placement: { spread: false, maxPerPeer: 2, peers: [{ peer: 'carol', max: 0 }] },
    vm: { image: 'quay.io/containerdisks/fedora:40', ports: [{ name: 'ssh', port: 22, protocol: 'TCP' }] },
  });
  // Not replaced, not even written: same uid and resourceVersion; the release not upgraded.
  for (const [key, args] of UNTOUCHED) {
    const now = await mustGet(args);
    expect({ key, uid: now.metadata.uid, rv: now.metadata.resourceVersion }).toEqual({
      key,
      uid: uids[key],
      rv: before[key],
    });
  }
  expect(await names(['secret', '-n', NS, '-l', 'owner=helm,name=personal-cloud'])).toEqual([
    'sh.helm.release.v1.personal-cloud.v1',
  ]);
});

test('a chart value: the release is upgraded in place', async () => {
  await stack.setConfig(`${PROJECT}:chartValues`, {
    value: JSON.stringify({ gateway: { className: 'traefik' }, replicaCount: 1 }),
  });
  const res = await ok('up', 'alice', 'up (chart value)');
  expect(res.resourceChanges).toEqual({ same: 7, update: 1 });
  expect(res.outputs.release).toEqual({ name: 'personal-cloud', revision: 2, status: 'deployed' });
  const deploy = (await mustGet(['deployment', 'personal-cloud', '-n', NS])) as KubeObject & {
    spec: { replicas: number };
  };
  expect(deploy.spec.replicas).toBe(1);
  expect(deploy.metadata.uid).toBe(uids.deployment);
  expect((await mustGet(['offer', 'alice', '-n', NS])).metadata.uid).toBe(uids.offer);
  expect(await names(['secret', '-n', NS, '-l', 'owner=helm,name=personal-cloud,status=deployed'])).toEqual([
    'sh.helm.release.v1.personal-cloud.v2',
  ]);
});

test('preview after up has nothing to do', async () => {
  const res = await ok('preview', 'alice', 'preview');
  expect(res.resourceChanges).toEqual({ same: 8 });
});

test('destroy removes the release, the Secret, the Offer and the Requests, and keeps the CRDs', async () => {
  const res = await ok('destroy', 'alice', 'destroy');
  expect(res.resourceChanges).toEqual({ delete: 8 });
  expect(await get(['namespace', NS])).toBeUndefined();
  expect(await names(['offers', '-A'])).toEqual([]);
  expect(await names(['requests', '-A'])).toEqual([]);
  expect(await get(['clusterrole', 'personal-cloud'])).toBeUndefined();
  expect(await get(['namespace', 'personal-cloud-gateway'])).toBeUndefined();
  expect(await names(['secret', '-A', '-l', 'owner=helm,name=personal-cloud'])).toEqual([]);
  // As `helm uninstall`: a CRD's deletion would delete every Tenant and Assignment.
  expect(await names(['crd'])).toEqual(
    expect.arrayContaining(['offers.personalcloud.io', 'tenants.personalcloud.io']),
  );
  await stack.workspace.removeStack('alice');
});
