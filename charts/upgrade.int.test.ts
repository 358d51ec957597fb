// `helm upgrade` from the previous chart version against a real control plane: every
// Tenant, Assignment and VirtualMachine survives, the CRDs are upgraded by the documented
// explicit step (Helm never upgrades a chart's crds/ folder), and the new chart version
// and image tag are package.json's.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN_DIR, ControlPlane } from '../dev/control-plane.js';
import { repoRoot } from '../dev/paths.js';
import { runCommand, type CommandResult } from '../dev/run-command.js';
import { KubeClient, type KubeObject } from '../kube/client.js';
import { Resources, type ResourceType } from '../kube/kinds.js';

/** The previous release: chart 0.1.0 as it was at this commit. */
const PREVIOUS = { version: '0.1.0', commit: '1b1eabd' };
const CHART = join(repoRoot, 'charts', 'personal-cloud');
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;
const NS = 'personal-cloud-system';
const VALUES = ['--set', 'peer=alice', '--set', 'homeDomain=alice.example.org'];

let cp: ControlPlane;
let client: KubeClient;
let work: string;

function helm(args: string[]): Promise<CommandResult> {
  return runCommand(join(BIN_DIR, 'helm'), [...args, `--kubeconfig=${cp.kubeconfigPath}`], {
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(work, 'cache'),
      HELM_CONFIG_HOME: join(work, 'config'),
      HELM_DATA_HOME: join(work, 'data'),
    },
  });
}

async function must(p: Promise<CommandResult>): Promise<CommandResult> {
  const r = await p;
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r;
}

const objects: { type: ResourceType; name: string; namespace?: string; uid?: string }[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pcloud-upgrade-'));
  // The previous chart from Git: what a user who installed 0.1.0 has.
  const present = await runCommand('git', ['-C', repoRoot, 'cat-file', '-e', `${PREVIOUS.commit}^{commit}`]);
  if (present.code !== 0)
    throw new Error(
      `commit ${PREVIOUS.commit} (chart ${PREVIOUS.version}) is not in this clone: clone with history`,
    );
  await must(
    runCommand('sh', [
      '-c',
      `git -C '${repoRoot}' archive ${PREVIOUS.commit} charts/personal-cloud | tar -x -C '${work}'`,
    ]),
  );
  cp = await ControlPlane.start({ name: 'upgrade', ourCRDs: false });
  client = await KubeClient.fromKubeConfig(cp.kubeConfig());
});

afterAll(async () => {
  client?.close();
  await cp?.stop();
  rmSync(work, { recursive: true, force: true });
});

test(`the previous chart (${PREVIOUS.version}) installs, and the home gets Tenants, Assignments and VMs`, async () => {
  const old = join(work, 'charts', 'personal-cloud');
  expect(readFileSync(join(old, 'Chart.yaml'), 'utf8')).toContain(`version: ${PREVIOUS.version}`);
  await must(
    helm(['install', 'personal-cloud', old, '-n', NS, '--create-namespace', ...VALUES, '--wait=false']),
  );
  for (const ns of ['federation', 'tenant-bob'])
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'test');
  const made = [
    await client.create({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Tenant',
      metadata: { name: 'bob' },
      spec: { peer: 'bob', units: 2 },
    }),
    await client.create({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Assignment',
      metadata: { name: 'bob-web', namespace: 'federation' },
      spec: {
        requester: 'bob',
        request: 'web',
        host: 'alice',
        units: 2,
        vm: { image: 'quay.io/containerdisks/fedora:40' },
      },
    }),
    await client.create({
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      metadata: { name: 'web-0', namespace: 'tenant-bob' },
      spec: { runStrategy: 'Halted', template: { spec: { domain: { devices: {} } } } },
    }),
  ];
  const types = [Resources.Tenant, Resources.Assignment, Resources.VirtualMachine];
  made.forEach((o: KubeObject, i) =>
    objects.push({
      type: types[i]!,
      name: o.metadata!.name!,
      ...(o.metadata?.namespace ? { namespace: o.metadata.namespace } : {}),
      uid: o.metadata!.uid!,
    }),
  );
  // 0.1.0's Tenant schema has no status.network: the new operator could not record the VNI
  expect(
    JSON.stringify(await cp.kubectl(['get', 'crd', 'tenants.personalcloud.io', '-o', 'json'])),
  ).not.toContain('VXLAN network identifier');
});

test('helm upgrade alone leaves the CRDs as they were (Helm never upgrades crds/)', async () => {
  await must(helm(['upgrade', 'personal-cloud', CHART, '-n', NS, ...VALUES, '--wait=false']));
  const crd = await cp.kubectl([
    'get',
    'crd',
    'tenants.personalcloud.io',
    '-o',
    'jsonpath={.spec.versions[0].schema.openAPIV3Schema.properties.status.properties}',
  ]);
  expect(crd.stdout).not.toContain('"network"');
});

test('the documented CRD step upgrades them in place, and every object survives with its uid', async () => {
  // docs/install.md "Upgrading": CRDs first, then the chart.
  await must(cp.kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(CHART, 'crds')]));
  await must(helm(['upgrade', 'personal-cloud', CHART, '-n', NS, ...VALUES, '--wait=false']));
  for (const o of objects) {
    const live = await client.get(o.type, o.name, o.namespace);
    expect(live?.metadata?.uid).toBe(o.uid);
  }
  // the Tenant keeps the subnet it was defaulted to under 0.1.0 (defaults fill only what is missing)
  const bob = await client.get(Resources.Tenant, 'bob');
  expect((bob?.spec as { network?: { subnet?: string } }).network?.subnet).toBe('198.18.0.0/24');
  // and now takes the new status field the operator writes
  await client.request('PUT', '/apis/personalcloud.io/v1alpha1/tenants/bob/status', {
    body: { ...bob, status: { network: { vni: 42, bridge: 'pc0123456789abc', mtu: 1450 } } },
  });
  const after = await client.get(Resources.Tenant, 'bob');
  expect((after?.status as { network?: { vni?: number } }).network?.vni).toBe(42);
});

test("the upgraded release is package.json's version, chart and image tag alike", async () => {
  const history = await must(helm(['history', 'personal-cloud', '-n', NS, '-o', 'json']));
  const revisions = JSON.parse(history.stdout) as { chart: string; status: string }[];
  expect(revisions.map((r) => r.chart)).toEqual([
    `personal-cloud-${PREVIOUS.version}`,
    `personal-cloud-${VERSION}`,
    `personal-cloud-${VERSION}`,
  ]);
  expect(revisions.at(-1)?.status).toBe('deployed');
  const image = await cp.kubectl([
    'get',
    'deployment',
    'personal-cloud',
    '-n',
    NS,
    '-o',
    'jsonpath={.spec.template.spec.containers[0].image}',
  ]);
  expect(image.stdout).toBe(`ghcr.io/personal-cloud/personal-cloud:${VERSION}`);
  expect(VERSION).not.toBe(PREVIOUS.version);
});
