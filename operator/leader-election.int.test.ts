/**
 * Two operator processes (`pcloud operator`) with leader election on one Lease: only
 * the holder reconciles; SIGKILL it and the standby takes over after the lease
 * expires. Uses the built CLI in dist/ (built in beforeAll).
 */
import { jest } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ControlPlane } from '../dev/control-plane.js';
import { repoRoot } from '../dev/paths.js';
import { KubeClient, type KubeObject } from '../kube/client.js';
import { Resources } from '../kube/kinds.js';
import { eventually as pollUntil } from '../dev/eventually.js';

jest.setTimeout(240_000);

let cp: ControlPlane;
let client: KubeClient;
const procs = new Map<string, ChildProcess>();

/** Polls with this file's defaults (90 s, every 250 ms); see dev/eventually.ts. */
const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 90_000) =>
  pollUntil(what, fn, { timeoutMs, intervalMs: 250 });

function startOperator(identity: string): void {
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, 'dist', 'cli', 'operator-bin.js'),
      'operator',
      '--kubeconfig',
      cp.kubeconfigPath,
      '--peer',
      'home',
      '--identity',
      identity,
      '--metrics-port',
      '0',
      '--metrics-host',
      '127.0.0.1',
      '--lease-duration',
      '4',
      '--lease-renew-deadline',
      '3',
      '--lease-retry-period',
      '1',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  procs.set(identity, child);
}

function assignment(name: string) {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Assignment',
    metadata: { name, namespace: 'federation' },
    spec: {
      requester: name,
      request: 'web',
      host: 'home',
      units: 1,
      vm: { image: 'quay.io/containerdisks/fedora:40' },
    },
  };
}

const isReady = (o: KubeObject | undefined): boolean =>
  (
    (o?.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? []
  ).some((c) => c.type === 'Ready' && c.status === 'True');

async function holder(): Promise<string | undefined> {
  const lease = await client.get(Resources.Lease, 'personal-cloud-operator', 'personal-cloud');
  return (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity ?? undefined;
}

beforeAll(async () => {
  const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'ignore' });
  if (build.error) throw build.error;
  cp = await ControlPlane.start({ name: 'operator-leader' });
  client = await KubeClient.fromKubeConfig(cp.kubeConfig());
  for (const ns of ['personal-cloud', 'federation'])
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'test');
  // A host hosts only what its Offer offers.
  await client.create({
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Offer',
    metadata: { name: 'home', namespace: 'federation' },
    spec: { peer: 'home', units: 4, unit: { cpu: '1', memory: '1Gi', storage: '5Gi' } },
  });
  startOperator('operator-a');
  startOperator('operator-b');
}, 240_000);

afterAll(async () => {
  for (const p of procs.values()) if (p.exitCode === null) p.kill('SIGTERM');
  client?.close();
  await cp?.stop();
});

it('only the leader reconciles; killing it hands over to the standby', async () => {
  const first = await eventually('a leader', holder);
  expect(['operator-a', 'operator-b']).toContain(first);
  await client.create(assignment('before'));
  await eventually('before Ready', async () =>
    isReady(await client.get(Resources.Assignment, 'before', 'federation')),
  );
  const managers = ((await client.get(Resources.Assignment, 'before', 'federation'))?.metadata
    ?.managedFields ?? []) as Array<{ manager?: string }>;
  expect(managers.map((m) => m.manager)).toContain('hosted-assignment-controller');

  const killedAt = Date.now();
  procs.get(first)?.kill('SIGKILL');
  await client.create(assignment('after'));
  await eventually('after Ready', async () =>
    isReady(await client.get(Resources.Assignment, 'after', 'federation')),
  );
  const second = await holder();
  expect(second).not.toBe(first);
  expect(['operator-a', 'operator-b']).toContain(second);
  // Reported, not asserted: speed depends on the machine.
  process.stderr.write(
    `standby reconciled ${Date.now() - killedAt} ms after the leader was killed (lease 4 s)\n`,
  );
});
