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
 *   node dist/bench/operator/run.js --cpu-prof /tmp/prof   (a V8 CPU profile of the operator)
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
import { MANAGED_SELECTOR } from '../../api/labels.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const TENANTS = arg('tenants', 500);
const PER_TENANT = arg('per-tenant', 4);
const TIMEOUT_S = arg('timeout', 3600);
/** HTTP ports per VM (each VM with a port gets a Service with a ClusterIP). */
const PORTS = arg('ports', 1);
/** `--cpu-prof DIR`: the operator process writes a V8 CPU profile there (node --cpu-prof). */
const CPU_PROF = ((i) => (i >= 0 ? process.argv[i + 1] : undefined))(process.argv.indexOf('--cpu-prof'));

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

/** The kinds the operator writes for Tenants and Assignments (labelled managed-by personal-cloud). */
const CHILD_KINDS: ResourceType[] = [
  Resources.Namespace,
  Resources.Role,
  Resources.RoleBinding,
  Resources.ResourceQuota,
  Resources.LimitRange,
  Resources.NetworkAttachmentDefinition,
  Resources.CiliumNetworkPolicy,
  Resources.NetworkPolicy,
  Resources.VirtualMachine,
  Resources.Secret,
  Resources.Service,
  Resources.HTTPRoute,
  Resources.TLSRoute,
  Resources.Gateway,
];

/**
 * The operator's writes (its pcloud_api_writes_total) by verb and resource, against the
 * minimum for the steady state reached: one apply per child object there, one apply of
 * each Tenant (the hosted-assignment controller makes them), one finalizer patch and one
 * status write per Tenant and Assignment (each reaches Ready once; a status written at
 * every change adds the intermediate ones, counted apart).
 */
async function writesAgainstMinimum(client: KubeClient, metrics: string) {
  const writesByVerbAndResource: Record<string, number> = {};
  let writes = 0;
  let events = 0;
  for (const l of metrics.split('\n').filter((x) => x.startsWith('pcloud_api_writes_total{'))) {
    const m = /verb="([^"]+)",resource="([^"]*)",code="([^"]+)"\} (\d+)/.exec(l);
    if (!m) continue;
    const n = Number(m[4]);
    const key = `${m[1]} ${m[2]} ${m[3]}`;
    writesByVerbAndResource[key] = (writesByVerbAndResource[key] ?? 0) + n;
    if (m[2]!.startsWith('events.')) events += n;
    else writes += n;
  }
  let children = 0;
  const childrenByKind: Record<string, number> = {};
  for (const kind of CHILD_KINDS) {
    const n = (await client.list(kind, { labelSelector: MANAGED_SELECTOR })).items.length;
    if (n > 0) childrenByKind[kind.kind] = n;
    children += n;
  }
  const tenants = (await client.list(Resources.Tenant)).items.length;
  const assignments = (await client.list(Resources.Assignment)).items.length;
  const minimum = children + tenants + 2 * (tenants + assignments);
  return {
    childrenByKind,
    minimumWrites: minimum,
    minimumIs:
      'one apply per child object, one apply per Tenant, one finalizer and one status write per Tenant and Assignment',
    writes,
    writesOverMinimum: Number((writes / minimum).toFixed(2)),
    eventWrites: events,
    writesByVerbResourceCode: writesByVerbAndResource,
  };
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
        ...(CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : []),
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
    await new Promise((r) => op.once('exit', r));
    const writes = await writesAgainstMinimum(client, metrics);
    const result = {
      tenants: TENANTS,
      portsPerVm: PORTS,
      assignments: total,
      steadyStateSeconds: Number((steadyMs / 1000).toFixed(1)),
      apiRequests: requests,
      operatorPeakRssMiB: rss,
      requestsByVerbAndCode: byVerb,
      ...writes,
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    client.close();
    await cp.stop();
  }
}

await main();
