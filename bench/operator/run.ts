/**
 * bench-operator: 500 Tenants / 2000 hosted Assignments driven to steady state by one
 * `pcloud operator` process against one real kube-apiserver.
 *
 * All Assignments are created first; then the operator starts (cold) and we time it
 * until every Assignment and Tenant reports Ready. Reported: time to steady state, API
 * requests the operator made (its pcloud_api_requests_total, watches included), and
 * its peak RSS (VmHWM of the process).
 *
 *   make bench-operator          (= node dist/bench/operator/run.js)
 *   node dist/bench/operator/run.js --tenants 50 --per-tenant 4   (smaller run)
 *   node dist/bench/operator/run.js --ports 0   (no Services/routes: the test control plane's
 *     service CIDR is a /24, so more than ~250 ClusterIP Services cannot be allocated)
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { ControlPlane } from '../../dev/control-plane.js';
import { repoRoot } from '../../dev/paths.js';
import { KubeClient, type KubeObject } from '../../kube/client.js';
import { Resources, type ResourceType } from '../../kube/kinds.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const TENANTS = arg('tenants', 500);
const PER_TENANT = arg('per-tenant', 4);
const TIMEOUT_S = arg('timeout', 3600);
/** HTTP ports per VM (each VM with a port gets a Service with a ClusterIP). */
const PORTS = arg('ports', 1);

function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++] as T);
    }),
  );
}

const ready = (o: KubeObject): boolean =>
  ((o.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? []).some(
    (c) => c.type === 'Ready' && c.status === 'True',
  );

async function countReady(client: KubeClient, type: ResourceType): Promise<number> {
  return (await client.list(type)).items.filter(ready).length;
}

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function main(): Promise<void> {
  const total = TENANTS * PER_TENANT;
  process.stderr.write(`bench-operator: ${TENANTS} tenants, ${total} assignments\n`);
  const cp = await ControlPlane.start({ name: 'bench-operator' });
  const client = await KubeClient.fromKubeConfig(cp.kubeConfig());
  try {
    for (const ns of ['personal-cloud', 'federation'])
      await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'bench');
    const specs = Array.from({ length: total }, (_, i) => ({
      requester: `peer-${String(i % TENANTS).padStart(4, '0')}`,
      name: `a-${String(i).padStart(5, '0')}`,
    }));
    // A host hosts no more than its Offer (and nothing without one): offer every unit.
    await client.create({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Offer',
      metadata: { name: 'home', namespace: 'federation' },
      spec: { peer: 'home', units: total, unit: { cpu: '1', memory: '2Gi', storage: '20Gi' } },
    });
    const t0 = Date.now();
    await pool(specs, 16, async (s) => {
      await client.create({
        apiVersion: 'personalcloud.io/v1alpha1',
        kind: 'Assignment',
        metadata: { name: s.name, namespace: 'federation' },
        spec: {
          requester: s.requester,
          request: s.name,
          host: 'home',
          units: 1,
          vm: {
            image: 'quay.io/containerdisks/fedora:40',
            ports: Array.from({ length: PORTS }, (_, p) => ({
              name: `web${p}`,
              port: 80 + p,
              protocol: 'HTTP',
            })),
          },
        },
      });
    });
    process.stderr.write(
      `created ${total} assignments in ${((Date.now() - t0) / 1000).toFixed(1)} s; starting the operator\n`,
    );

    const metricsPort = 19000 + Math.floor(Math.random() * 1000);
    const start = Date.now();
    const op = spawn(
      process.execPath,
      [
        join(repoRoot, 'dist', 'cli', 'operator-bin.js'),
        'operator',
        '--kubeconfig',
        cp.kubeconfigPath,
        '--peer',
        'home',
        '--no-leader-elect',
        '--metrics-port',
        String(metricsPort),
        '--metrics-host',
        '127.0.0.1',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    let steadyMs = NaN;
    for (;;) {
      await new Promise((r) => setTimeout(r, 3000));
      const [a, t] = [
        await countReady(client, Resources.Assignment),
        await countReady(client, Resources.Tenant),
      ];
      process.stderr.write(
        `  ${((Date.now() - start) / 1000).toFixed(0)} s: ${a}/${total} assignments, ${t}/${TENANTS} tenants Ready\n`,
      );
      if (a === total && t === TENANTS) {
        steadyMs = Date.now() - start;
        break;
      }
      if (Date.now() - start > TIMEOUT_S * 1000) break;
    }
    // let the tail of status events drain, then read the counters
    await new Promise((r) => setTimeout(r, 5000));
    const metrics = await get(metricsPort, '/metrics');
    const requests = metrics
      .split('\n')
      .filter((l) => l.startsWith('pcloud_api_requests_total{'))
      .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
    const byVerb = metrics
      .split('\n')
      .filter((l) => l.startsWith('pcloud_api_requests_total{'))
      .map((l) => l.replace('pcloud_api_requests_total', ''))
      .join(', ');
    const rss = peakRssMiB(op.pid ?? 0);
    op.kill('SIGTERM');
    const result = {
      tenants: TENANTS,
      portsPerVm: PORTS,
      assignments: total,
      steadyStateSeconds: Number((steadyMs / 1000).toFixed(1)),
      apiRequests: requests,
      operatorPeakRssMiB: rss,
      requestsByVerbAndCode: byVerb,
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    client.close();
    await cp.stop();
  }
}

await main();
