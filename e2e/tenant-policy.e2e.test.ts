/**
 * The standard NetworkPolicy the operator writes (`tenant-isolation-standard`), enforced
 * by a real enforcer (issue 10, item 5, the pod-network half): kube-router's network
 * policy controller, as k3s embeds it, built from its module (tools/kube-router), on a
 * two-node home cluster (dev/home-cluster.ts: real kubelets, containerd, kube-proxy).
 *
 * The operator runs in-process against the cluster with this home's LAN and the
 * cluster's pod and Service CIDRs, so the policy is exactly the one it writes. Pods in
 * tenant-a stand in for virt-launcher pods (a VM's pod-network side). Targets serve HTTP
 * (busybox httpd) and answer with their own name, so a probe succeeds only when the
 * answer arrived. The simulated internet is a namespace behind the lab's router on
 * 203.0.113.0/24 (TEST-NET-3): the router itself is on the home LAN (a home's router is),
 * so it must stay out of reach.
 *
 * Order: the probes first run with the policy in place and no enforcer (what a home
 * without a policy controller gets: everything reachable, so the test can fail), then
 * with kube-router on both nodes, then with it stopped (its rules stay) and cleaned up.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { configFromOptions } from '../cli/config.js';
import { eventually } from '../dev/eventually.js';
import { HomeCluster, sweepHomeClusters } from '../dev/home-cluster.js';
import { BUSYBOX_IMAGE } from '../dev/images.js';
import { KubeRouterFirewalls } from '../dev/kube-router.js';
import { runCommand } from '../dev/run-command.js';
import { KubeClient } from '../kube/client.js';
import { createLogger } from '../kube/logger.js';
import { runOperator, type RunningOperator } from '../operator/main.js';

jest.setTimeout(900_000);

const NODES = ['n1', 'n2'];
/** Apart from the other home-cluster tests' 192.168.214. */
const LAN_PREFIX = '192.168.216';
const SERVICE_CIDR = '10.96.0.0/16';
const KUBERNETES_SERVICE_IP = '10.96.0.1';
const INTERNET_IP = '203.0.113.10';
const INTERNET_GW = '203.0.113.1';
const PORT = 8080;

let hc: HomeCluster;
let fw: KubeRouterFirewalls;
let op: RunningOperator | undefined;
let client: KubeClient | undefined;
let internetNs = '';
let apiPort = 0;
const ips: Record<string, string> = {};
const timings: Record<string, number> = {};
let hostBefore: { iptables: string; ipsets: string; xtablesLock: boolean };

const wait = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 120_000) =>
  eventually(what, fn, { timeoutMs, intervalMs: 500 });

const kubectl = (args: string[], input?: string): Promise<string> =>
  hc.controlPlane.kubectlOutput(args, input);

/** The host's own filter state, to compare after the run (counters and dates dropped). */
async function hostFirewall(): Promise<typeof hostBefore> {
  const ipt = await runCommand('iptables-save', []);
  const sets = await runCommand('ipset', ['list', '-n']);
  return {
    iptables: ipt.stdout
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/g, ''))
      .join('\n'),
    ipsets: sets.stdout,
    xtablesLock: existsSync('/run/xtables.lock'),
  };
}

/** A busybox httpd answering `name` on ip:PORT inside a lab namespace (files in the run's folder). */
function serveIn(ns: string, name: string, ip: string): void {
  const www = join(hc.dir, 'www', name);
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, 'index.html'), `${name}\n`);
  // The command line names the run's folder: a killed run's servers are swept with it.
  void runCommand('ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-f', '-p', `${ip}:${PORT}`, '-h', www]);
}

/** The simulated internet: a namespace behind the router on 203.0.113.0/24. */
async function addInternet(): Promise<void> {
  const lab = hc.lab;
  internetNs = `${lab.prefix}-inet`;
  const must = async (file: string, args: string[]) => {
    const r = await runCommand(file, args);
    if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr}`);
  };
  await must('ip', ['netns', 'add', internetNs]);
  const router = lab.ns('router');
  await must('ip', [
    'link',
    'add',
    'inet0',
    'netns',
    router,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    internetNs,
  ]);
  const inRouter = (args: string[]) => must('ip', ['netns', 'exec', router, ...args]);
  const inInternet = (args: string[]) => must('ip', ['netns', 'exec', internetNs, ...args]);
  await inRouter(['ip', 'address', 'add', `${INTERNET_GW}/24`, 'dev', 'inet0']);
  await inRouter(['ip', 'link', 'set', 'inet0', 'up']);
  await inRouter(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  // The router knows the pods behind each node (a home's router with the nodes' routes;
  // k3s would masquerade instead: the policy is checked before either).
  for (const node of hc.nodes.values())
    await inRouter(['ip', 'route', 'add', node.podSubnet, 'via', node.ip]);
  await inInternet(['ip', 'link', 'set', 'lo', 'up']);
  await inInternet(['ip', 'address', 'add', `${INTERNET_IP}/24`, 'dev', 'eth0']);
  await inInternet(['ip', 'link', 'set', 'eth0', 'up']);
  await inInternet(['ip', 'route', 'add', 'default', 'via', INTERNET_GW]);
  serveIn(internetNs, 'internet', INTERNET_IP);
}

function pod(name: string, namespace: string, node: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': node },
      dnsPolicy: 'Default',
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'main',
          image: BUSYBOX_IMAGE,
          imagePullPolicy: 'Never',
          command: [
            '/bin/sh',
            '-c',
            `mkdir -p /tmp/www && echo ${name} > /tmp/www/index.html && exec httpd -f -p ${PORT} -h /tmp/www`,
          ],
        },
      ],
    },
  });
}

async function runPod(name: string, namespace: string, node: string): Promise<void> {
  await kubectl(['apply', '-f', '-'], pod(name, namespace, node));
  ips[name] = await wait(`pod ${namespace}/${name} Running`, async () => {
    const p = JSON.parse(await kubectl(['-n', namespace, 'get', 'pod', name, '-o', 'json'])) as {
      status: { phase?: string; podIP?: string };
    };
    return p.status.phase === 'Running' && p.status.podIP ? p.status.podIP : undefined;
  });
}

interface Target {
  /** HTTP: the answer must carry this name. TCP: a connect is enough (TLS servers). */
  http?: string;
  ip: string;
  port: number;
}

/** Runs the probe inside `from` (kubectl exec): true when the target answered. */
async function reaches(from: [string, string], t: Target): Promise<boolean> {
  // Debian's busybox 1.35 wget segfaults with -T: the timeout below bounds it instead.
  // nc takes -e after host and port; /bin/echo answers and closes once connected.
  const cmd = t.http
    ? `wget -q -O - http://${t.ip}:${t.port}/`
    : `/bin/busybox nc -w 3 ${t.ip} ${t.port} -e /bin/echo`;
  const r = await hc.controlPlane.kubectl([
    '-n',
    from[0],
    'exec',
    from[1],
    '--',
    // The image links a few applets only; busybox itself has the rest (timeout, nc).
    '/bin/busybox',
    'timeout',
    '5',
    'sh',
    '-c',
    cmd,
  ]);
  if (/error: |Error from server/.test(r.stderr))
    throw new Error(`kubectl exec ${from.join('/')}: ${r.stderr}`);
  return r.code === 0 && (t.http === undefined || r.stdout.trim() === t.http);
}

const A1: [string, string] = ['tenant-a', 'a1'];
const APP: [string, string] = ['home-apps', 'app'];

/** What a tenant pod must never reach (on a home without an enforcer, it does). */
function forbidden(): Record<string, Target> {
  return {
    'the NAS (home LAN)': { http: 'nas', ip: hc.lab.nasIp, port: PORT },
    "its node's LAN address": { http: 'node-n1', ip: hc.nodes.get('n1')!.ip, port: PORT },
    "its node's kubelet": { ip: hc.nodes.get('n1')!.ip, port: 10250 },
    "the other node's kubelet": { ip: hc.nodes.get('n2')!.ip, port: 10250 },
    'the API server on the LAN': { ip: hc.lab.hostIp, port: apiPort },
    'the API server through the kubernetes Service': { ip: KUBERNETES_SERVICE_IP, port: 443 },
    'the tenant-b pod (other node)': { http: 'b1', ip: ips.b1!, port: PORT },
    'the home app pod (same node)': { http: 'app', ip: ips.app!, port: PORT },
  };
}

function allowed(): Record<string, Target> {
  return {
    'the simulated internet': { http: 'internet', ip: INTERNET_IP, port: PORT },
    'its own namespace (a2, other node)': { http: 'a2', ip: ips.a2!, port: PORT },
  };
}

async function probeAll(
  from: [string, string],
  targets: Record<string, Target>,
): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  for (const [name, t] of Object.entries(targets)) out[name] = await reaches(from, t);
  return out;
}

const all = (targets: Record<string, Target>, value: boolean): Record<string, boolean> =>
  Object.fromEntries(Object.keys(targets).map((k) => [k, value]));

/** An nftables netdev counter on the NAS's eth0 for packets from a1. */
async function nasCounter(): Promise<number> {
  const out = await hc.lab.exec('nas', 'nft', ['-j', 'list', 'table', 'netdev', 'test_from_a1']);
  return (
    JSON.parse(out) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] }
  ).nftables
    .flatMap((i) => i.rule?.expr ?? [])
    .reduce((n, e) => n + (e.counter?.packets ?? 0), 0);
}

/** Packets kube-router's chains rejected for a1 on n1 (iptables counters of its pod chain). */
async function rejectedForA1(): Promise<number> {
  const save = await runCommand('nsenter', [
    ...hc.nodeNamespaces('n1'),
    'iptables-save',
    '-c',
    '-t',
    'filter',
  ]);
  const chains = new Set(
    [...save.stdout.matchAll(/-A \S+ .*POD name:a1 namespace: tenant-a.* -j (KUBE-POD-FW-\S+)/g)].map(
      (m) => m[1]!,
    ),
  );
  let n = 0;
  for (const m of save.stdout.matchAll(/^\[(\d+):\d+\] -A (KUBE-POD-FW-\S+) .*-j REJECT/gm))
    if (chains.has(m[2]!)) n += Number(m[1]);
  return n;
}

beforeAll(async () => {
  sweepHomeClusters();
  hostBefore = await hostFirewall();
  let t = Date.now();
  hc = await HomeCluster.start({ nodes: NODES, lanPrefix: LAN_PREFIX });
  timings.clusterStart = Date.now() - t;
  apiPort = Number(new URL(hc.controlPlane.server).port);
  fw = new KubeRouterFirewalls(hc, { serviceCidr: SERVICE_CIDR });
  await addInternet();
  serveIn(hc.lab.ns('nas'), 'nas', hc.lab.nasIp);
  serveIn(hc.lab.ns('n1'), 'node-n1', hc.nodes.get('n1')!.ip);
  await hc.lab.exec(
    'nas',
    'nft',
    ['-f', '-'],
    'table netdev test_from_a1 {\n chain c {\n type filter hook ingress device "eth0" priority -500; policy accept;\n }\n}\n',
  );

  t = Date.now();
  client = await KubeClient.fromKubeConfig(hc.controlPlane.kubeConfig());
  // The operator's own namespace (its default --gateway-namespace), as the chart makes it.
  await kubectl(['create', 'namespace', 'personal-cloud']);
  op = await runOperator(
    configFromOptions({
      peer: 'home',
      homeLan: [hc.lab.lanCidr],
      clusterCidr: [hc.podCidr, SERVICE_CIDR],
      metricsPort: '0',
      metricsHost: '127.0.0.1',
      leaderElect: false,
    }),
    { kubeConfig: hc.controlPlane.kubeConfig(), log: createLogger('warn'), defaultMetrics: false },
  );
  for (const peer of ['a', 'b']) {
    await client.create({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Tenant',
      metadata: { name: peer },
      spec: { peer, units: 2 },
    });
  }
  for (const peer of ['a', 'b'])
    await wait(`the operator's policy and limits in tenant-${peer}`, async () => {
      const r = await hc.controlPlane.kubectl([
        '-n',
        `tenant-${peer}`,
        'get',
        'networkpolicy/tenant-isolation-standard',
        'limitrange/tenant-limits',
        '-o',
        'name',
      ]);
      return r.code === 0 && r.stdout.trim().split('\n').length === 2;
    });
  timings.operatorPolicies = Date.now() - t;
  await kubectl(['create', 'namespace', 'home-apps']);

  t = Date.now();
  await runPod('a1', 'tenant-a', 'n1');
  await runPod('a2', 'tenant-a', 'n2');
  await runPod('b1', 'tenant-b', 'n2');
  await runPod('app', 'home-apps', 'n1');
  timings.pods = Date.now() - t;
  await hc.lab.exec('nas', 'nft', [
    'add',
    'rule',
    'netdev',
    'test_from_a1',
    'c',
    'ip',
    'saddr',
    ips.a1!,
    'counter',
  ]);
});

afterAll(async () => {
  console.log(`tenant policy timings (ms): ${JSON.stringify(timings)}`);
  await op?.stop();
  client?.close();
  await fw?.stop();
  if (internetNs) await runCommand('ip', ['netns', 'delete', internetNs]);
  await hc?.stop();
});

describe('the policy the operator wrote', () => {
  it('closes the home LAN and both cluster CIDRs to the tenant, and opens the rest', async () => {
    const np = JSON.parse(
      await kubectl(['-n', 'tenant-a', 'get', 'networkpolicy', 'tenant-isolation-standard', '-o', 'json']),
    ) as { spec: { egress: { to: { ipBlock?: { cidr: string; except: string[] } }[] }[] } };
    const block = np.spec.egress.flatMap((e) => e.to).find((p) => p.ipBlock)?.ipBlock;
    expect(block).toEqual({
      cidr: '0.0.0.0/0',
      except: expect.arrayContaining([
        hc.lab.lanCidr,
        hc.podCidr,
        SERVICE_CIDR,
        '169.254.0.0/16',
      ]) as string[],
    });
  });
});

describe('without an enforcer (the control: the probes can fail)', () => {
  it('the tenant pod reaches everything, and the NAS counts its packets', async () => {
    expect(await probeAll(A1, forbidden())).toEqual(all(forbidden(), true));
    expect(await probeAll(A1, allowed())).toEqual(all(allowed(), true));
    expect(await reaches(APP, { http: 'a1', ip: ips.a1!, port: PORT })).toBe(true);
    expect(await nasCounter()).toBeGreaterThan(0);
  });
});

describe("with kube-router's firewall on both nodes", () => {
  let nasBefore = 0;
  beforeAll(async () => {
    const t = Date.now();
    await fw.start();
    // Synced once a1's own chain is hooked on its node.
    await wait('kube-router hooks a1 on n1', async () =>
      (await fw.iptablesSave('n1')).stdout.includes('POD name:a1 namespace: tenant-a'),
    );
    timings.kubeRouterSynced = Date.now() - t;
    nasBefore = await nasCounter();
  });

  it('the tenant pod reaches none of the home LAN, its node, the API server, the other tenant or the home app', async () => {
    const rejectedBefore = await rejectedForA1();
    expect(await probeAll(A1, forbidden())).toEqual(all(forbidden(), false));
    // Not one packet reached the NAS; kube-router's reject rule for a1 counted them.
    expect(await nasCounter()).toBe(nasBefore);
    expect(await rejectedForA1()).toBeGreaterThanOrEqual(rejectedBefore + Object.keys(forbidden()).length);
  });

  it('it still reaches the simulated internet and its own namespace on the other node', async () => {
    expect(await probeAll(A1, allowed())).toEqual(all(allowed(), true));
  });

  it('a pod of another namespace cannot reach it (ingress)', async () => {
    expect(await reaches(APP, { http: 'a1', ip: ips.a1!, port: PORT })).toBe(false);
    // ...and the home app itself is not restricted (no policy in its namespace).
    expect(await reaches(APP, { http: 'nas', ip: hc.lab.nasIp, port: PORT })).toBe(true);
  });
});

describe('kube-router stopped', () => {
  it('its rules stay in the node: the tenant stays shut out (it fails closed)', async () => {
    await fw.stop();
    expect(await reaches(A1, { http: 'nas', ip: hc.lab.nasIp, port: PORT })).toBe(false);
    expect(await reaches(A1, { http: 'internet', ip: INTERNET_IP, port: PORT })).toBe(true);
    expect((await fw.iptablesSave('n1')).stdout).toContain('KUBE-ROUTER-FORWARD');
    expect((await fw.ipsets('n1')).length).toBeGreaterThan(0);
  });

  it('stopping the cluster takes its iptables and ipsets with the nodes; the host firewall is untouched', async () => {
    const { dir, lab } = hc;
    await op?.stop();
    op = undefined;
    await runCommand('ip', ['netns', 'delete', internetNs]);
    internetNs = '';
    await hc.stop();
    expect(await hostFirewall()).toEqual(hostBefore);
    expect((await runCommand('ip', ['netns', 'list'])).stdout).not.toContain(lab.prefix);
    const ps = await runCommand('ps', ['-eo', 'args']);
    expect(ps.stdout).not.toContain(dir);
    expect(existsSync(dir)).toBe(false);
  });
});
