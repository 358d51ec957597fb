// A first run that explains itself (issue 12 item 1), against a real control plane that
// starts bare and is completed step by step, as a new user would: no CRDs, then ours,
// then the third-party ones, then the namespace `pcloud dev up` prepares. Each missing
// piece is one line on stderr and exit code 2. Then, while the operator runs, its
// namespace is deleted and a CRD removed: /readyz says why, one error line and one
// Event per change. Last, the API server goes away: one line, exit 2.
import { jest } from '@jest/globals';
import http from 'node:http';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { pino } from 'pino';
import { OUR_CRD_DIR, THIRD_PARTY_CRD_DIR, ControlPlane } from '../dev/control-plane.js';
import { eventually } from '../dev/eventually.js';
import { OPERATOR_NAMESPACES, prepareForOperator } from '../dev/commands/dev.js';
import { RUNTIME_COMMANDS, runCli } from '../cli/program.js';
import { configFromOptions } from '../cli/config.js';
import { KubeClient, type KubeObject } from '../kube/client.js';
import { Resources } from '../kube/kinds.js';
import { runOperator, type RunningOperator } from './main.js';

let cp: ControlPlane;
let admin: KubeClient;

beforeAll(async () => {
  cp = await ControlPlane.start({ name: 'preconditions', ourCRDs: false, thirdPartyCRDs: false });
  admin = await KubeClient.fromKubeConfig(cp.kubeConfig());
});
afterAll(async () => {
  admin?.close();
  await cp?.stop();
});

/** Waits until the assertions in fn hold (dev/eventually.ts polls every 250 ms, 60 s by default). */
const until = (what: string, fn: () => Promise<void>, timeoutMs = 60_000): Promise<boolean> =>
  eventually(
    what,
    async () => {
      await fn();
      return true;
    },
    { timeoutMs },
  );

/** `pcloud <args>` in this process: exit code and stderr. */
async function pcloud(args: string[]): Promise<{ code: number | undefined; stderr: string }> {
  const chunks: string[] = [];
  const write = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await runCli(['node', 'pcloud', ...args], RUNTIME_COMMANDS);
    return { code: process.exitCode as number | undefined, stderr: chunks.join('') };
  } finally {
    write.mockRestore();
    process.exitCode = before;
  }
}

const operatorArgs = (): string[] => [
  'operator',
  '--kubeconfig',
  cp.kubeconfigPath,
  '--peer',
  'alice',
  '--metrics-port',
  '0',
  '--metrics-host',
  '127.0.0.1',
  '--log-level',
  'silent',
];

function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

test('no CRDs at all: the operator and the matchmaker name ours and how to install them, exit 2', async () => {
  const op = await pcloud(operatorArgs());
  expect(op.code).toBe(2);
  const line = oneLine(op.stderr);
  expect(line.startsWith('pcloud operator: the API server does not serve ')).toBe(true);
  for (const resource of ['offers', 'tenants', 'assignments'])
    expect(line).toContain(`${resource}.personalcloud.io/v1alpha1`);
  expect(line).toContain('virtualmachines.kubevirt.io/v1');
  expect(line).toContain('install the Personal Cloud CRDs: kubectl apply --server-side -f crds/');
  expect(line).toContain('install KubeVirt');

  const mm = await pcloud([
    'matchmaker',
    '--kubeconfig',
    cp.kubeconfigPath,
    '--metrics-port',
    '0',
    '--log-level',
    'silent',
  ]);
  expect(mm.code).toBe(2);
  expect(oneLine(mm.stderr)).toBe(
    'pcloud matchmaker: the API server does not serve offers.personalcloud.io/v1alpha1, requests.personalcloud.io/v1alpha1, ' +
      'assignments.personalcloud.io/v1alpha1 (CRD not installed); install the Personal Cloud CRDs: kubectl apply --server-side -f crds/ ' +
      '(the Helm chart installs them; bin/pcloud dev up has them)',
  );
});

test('our CRDs but no third-party ones: every required third-party resource is named, exit 2', async () => {
  await cp.applyCRDs([OUR_CRD_DIR]);
  const op = await pcloud(operatorArgs());
  expect(op.code).toBe(2);
  const line = oneLine(op.stderr);
  expect(line).not.toContain('personalcloud.io/');
  for (const resource of [
    'virtualmachines.kubevirt.io/v1',
    'virtualmachineinstances.kubevirt.io/v1',
    'network-attachment-definitions.k8s.cni.cncf.io/v1',
    'ciliumnetworkpolicies.cilium.io/v2',
    'httproutes.gateway.networking.k8s.io/v1',
    'gateways.gateway.networking.k8s.io/v1',
  ])
    expect(line).toContain(resource);
  for (const fix of ['install KubeVirt', 'install Multus', 'install Cilium', 'install the Gateway API CRDs'])
    expect(line).toContain(fix);
});

test('CRDs but no namespace: the line names it, what it is for and the flags, exit 2', async () => {
  await cp.applyCRDs([THIRD_PARTY_CRD_DIR]);
  const op = await pcloud(operatorArgs());
  expect(op.code).toBe(2);
  expect(oneLine(op.stderr)).toBe(
    "pcloud operator: namespace personal-cloud (for the leader-election Lease and the home's Gateway, " +
      '--lease-namespace/--gateway-namespace) does not exist; create it (kubectl create namespace personal-cloud) ' +
      'or give an existing one with --lease-namespace/--gateway-namespace',
  );
  const noLease = await pcloud([...operatorArgs(), '--no-leader-elect', '--gateway-namespace', 'gw']);
  expect(noLease.code).toBe(2);
  expect(oneLine(noLease.stderr)).toBe(
    "pcloud operator: namespace gw (for the home's Gateway, --gateway-namespace) does not exist; " +
      'create it (kubectl create namespace gw) or give an existing one with --gateway-namespace',
  );
});

describe('running', () => {
  let op: RunningOperator | undefined;
  const lines: Array<{ level: number; msg: string; reason?: string }> = [];
  const errors = (reason: string): string[] =>
    lines.filter((l) => l.level === 50 && l.reason === reason).map((l) => l.msg);

  function readyz(): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: op!.metricsPort, path: '/readyz' }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
  }

  async function warningEvents(reason: string): Promise<KubeObject[]> {
    return (await admin.list(Resources.Event, { namespace: 'default' })).items.filter(
      (e) => (e as { reason?: string }).reason === reason,
    );
  }

  afterAll(async () => {
    await op?.stop();
  });

  test('pcloud dev up prepares the namespace: the operator starts and is ready', async () => {
    expect(OPERATOR_NAMESPACES).toEqual(['personal-cloud']);
    await prepareForOperator(cp.kubeconfigPath);
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n').filter(Boolean))
          lines.push(JSON.parse(l) as { level: number; msg: string; reason?: string });
        done();
      },
    });
    const config = configFromOptions({
      peer: 'alice',
      metricsPort: '0',
      metricsHost: '127.0.0.1',
      identity: 'preconditions',
      leaseDuration: '4',
      leaseRenewDeadline: '3',
      leaseRetryPeriod: '1',
    });
    op = await runOperator(config, {
      kubeConfig: cp.kubeConfig(),
      log: pino({ level: 'info' }, sink),
      defaultMetrics: false,
    });
    await until('ready', async () => expect(await readyz()).toEqual({ status: 200, body: 'ok (leader)\n' }));
    await until('the Gateway', async () =>
      expect(await admin.get(Resources.Gateway, 'personal-cloud', 'personal-cloud')).toBeDefined(),
    );
  });

  test('its namespace deleted: /readyz not ready with the reason, one error line, one Event', async () => {
    await admin.delete(Resources.Namespace, 'personal-cloud');
    const why =
      "NamespaceMissing: namespace personal-cloud (for the leader-election Lease and the home's Gateway, " +
      '--lease-namespace/--gateway-namespace) is being deleted; create it (kubectl create namespace personal-cloud) ' +
      'or give an existing one with --lease-namespace/--gateway-namespace';
    await until('not ready', async () => expect(await readyz()).toEqual({ status: 503, body: `${why}\n` }));
    // the namespace controller empties it and it goes; the Lease cannot be renewed meanwhile
    await until('namespace gone', async () =>
      expect(await admin.get(Resources.Namespace, 'personal-cloud')).toBeUndefined(),
    );
    await new Promise((r) => setTimeout(r, 6000)); // several lease retry periods and gateway retries
    expect(await readyz()).toEqual({ status: 503, body: `${why}\n` });
    expect(errors('NamespaceMissing')).toHaveLength(1);
    // nothing else repeats per retry: the Lease's 404 is logged once, not once a second
    const leaseFailures = lines.filter((l) => l.msg === 'leader election: lease request failed');
    expect(leaseFailures.length).toBeLessThanOrEqual(3);
    expect(lines.filter((l) => l.level === 50)).toHaveLength(1);
    const events = await warningEvents('NamespaceMissing');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'Warning',
      regarding: { kind: 'Namespace', name: 'personal-cloud' },
      note: why.replace('NamespaceMissing: ', ''),
    });
  });

  test('the namespace made again: ready again, the Gateway back, one line saying so', async () => {
    await prepareForOperator(cp.kubeconfigPath);
    await until('ready', async () => expect(await readyz()).toEqual({ status: 200, body: 'ok (leader)\n' }));
    await until('the Gateway', async () =>
      expect(await admin.get(Resources.Gateway, 'personal-cloud', 'personal-cloud')).toBeDefined(),
    );
    expect(lines.filter((l) => l.msg.startsWith('resolved: namespace personal-cloud'))).toHaveLength(1);
  });

  test('a CRD removed: /readyz names the resource, one error line, one Event; back when it is', async () => {
    await cp.kubectl(['delete', 'crd', 'tlsroutes.gateway.networking.k8s.io']);
    await until('not ready', async () => {
      const r = await readyz();
      expect(r.status).toBe(503);
      expect(r.body).toMatch(
        /^KindNotServed: the API server does not serve tlsroutes\.gateway\.networking\.k8s\.io\/v1alpha\d \(CRD not installed\); install the Gateway API CRDs/,
      );
    });
    await new Promise((r) => setTimeout(r, 5000)); // the informer retries meanwhile
    expect(errors('KindNotServed')).toHaveLength(1);
    expect(await warningEvents('KindNotServed')).toHaveLength(1);
    expect((await warningEvents('KindNotServed'))[0]).toMatchObject({
      regarding: { kind: 'CustomResourceDefinition', name: 'tlsroutes.gateway.networking.k8s.io' },
    });
    await cp.applyCRDs([join(THIRD_PARTY_CRD_DIR, 'gateway-api', 'tlsroutes.yaml')]);
    await until('ready again', async () =>
      expect(await readyz()).toEqual({ status: 200, body: 'ok (leader)\n' }),
    );
  });
});

test('the API server gone: one line naming its address, exit 2', async () => {
  await cp.stopApiServer();
  const op = await pcloud(operatorArgs());
  expect(op.code).toBe(2);
  expect(oneLine(op.stderr)).toBe(
    `pcloud operator: cannot reach the API server at ${cp.server} (connect ECONNREFUSED ${cp.server.replace('https://', '')}); ` +
      'point --kubeconfig (or KUBECONFIG) at a running cluster (in a checkout, bin/pcloud dev up starts a local one)',
  );
});
