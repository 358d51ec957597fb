/**
 * A home cluster with real nodes (issue 9, item 1): two nodes, each a network namespace
 * on a simulated home LAN running Debian's containerd + runc and a kubelet built from
 * the pinned module, a real scheduler, pods from locally built images. Assertions are
 * on what happened: Node objects and their conditions, pod phases, the containers' own
 * output as kubelet stored it on the node, their addresses, an HTTP answer across nodes,
 * and the host's sysctls, cgroups, namespaces and processes after stop.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { jest } from '@jest/globals';
import { eventually } from '../dev/eventually.js';
import { HomeCluster, sweepHomeClusters } from '../dev/home-cluster.js';
import { BUSYBOX_IMAGE } from '../dev/images.js';
import { runCommand } from '../dev/run-command.js';

jest.setTimeout(600_000);

const SYSCTLS = ['vm/overcommit_memory', 'kernel/panic', 'kernel/panic_on_oops'];
const readSysctls = (): string[] => SYSCTLS.map((s) => readFileSync(`/proc/sys/${s}`, 'utf8').trim());

// Paths kubelet and the CNI library write whatever their configuration says.
const FIXED_PATHS = ['/var/lib/kubelet', '/var/log/containers', '/run/containerd'];
let hc: HomeCluster;
let sysctlsBefore: string[];
let fixedPathsBefore: boolean[];

interface Pod {
  spec: { nodeName?: string };
  status: { phase?: string; podIP?: string; hostIP?: string };
}

const kubectl = (args: string[], input?: string): Promise<string> =>
  hc.controlPlane.kubectlOutput(args, input);

async function getPod(name: string): Promise<Pod> {
  return JSON.parse(await kubectl(['get', 'pod', name, '-o', 'json'])) as Pod;
}

function pod(name: string, script: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels: { app: name } },
    spec: {
      restartPolicy: 'Never',
      dnsPolicy: 'Default',
      containers: [
        { name: 'main', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['/bin/sh', '-c', script] },
      ],
      ...extra,
    },
  });
}

async function phase(name: string, want: string): Promise<Pod> {
  return eventually(
    `pod ${name} ${want}`,
    async () => {
      const p = await getPod(name);
      if (p.status.phase === 'Failed' && want !== 'Failed') throw new Error(`${name} Failed`);
      return p.status.phase === want ? p : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

function inSubnet(ip: string, subnet: string): boolean {
  return ip.startsWith(subnet.replace(/0\/24$/, ''));
}

beforeAll(async () => {
  // The host as found: after what a killed earlier run left (its sysctls too) is swept.
  sweepHomeClusters();
  sysctlsBefore = readSysctls();
  fixedPathsBefore = FIXED_PATHS.map((p) => existsSync(p));
  hc = await HomeCluster.start({
    nodes: ['n1', 'n2'],
    controlPlane: { name: 'home-e2e', ourCRDs: false, thirdPartyCRDs: false },
  });
  console.log(`home cluster with 2 Ready nodes in ${hc.startupMs} ms`);
});

afterAll(async () => {
  await hc?.stop();
});

test('both nodes register with their LAN address and become Ready', async () => {
  const nodes = JSON.parse(await kubectl(['get', 'nodes', '-o', 'json'])) as {
    items: {
      metadata: { name: string };
      status: {
        addresses: { type: string; address: string }[];
        conditions: { type: string; status: string }[];
        nodeInfo: { containerRuntimeVersion: string; kubeletVersion: string };
      };
    }[];
  };
  expect(nodes.items.map((n) => n.metadata.name).sort()).toEqual(['n1', 'n2']);
  for (const n of nodes.items) {
    expect(n.status.addresses).toContainEqual({
      type: 'InternalIP',
      address: hc.lab.nodeIp(n.metadata.name),
    });
    expect(n.status.conditions).toContainEqual(expect.objectContaining({ type: 'Ready', status: 'True' }));
    expect(n.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/1\.6\./);
    expect(n.status.nodeInfo.kubeletVersion).toBe('v1.34.4');
  }
});

test('the scheduler places a pod, it runs from the local image and its output is on its node', async () => {
  await kubectl(
    ['apply', '-f', '-'],
    pod(
      'hello',
      'echo "hello from $(hostname)"; ip -o -4 addr show dev eth0; ls /var/run/secrets/kubernetes.io/serviceaccount',
    ),
  );
  const p = await phase('hello', 'Succeeded');
  const node = hc.nodes.get(p.spec.nodeName!)!;
  expect(node).toBeDefined();
  expect(p.status.hostIP).toBe(node.ip);
  expect(inSubnet(p.status.podIP!, node.podSubnet)).toBe(true);
  const log = hc.podLog(node.name, 'default', 'hello', 'main');
  expect(log).toContain('hello from hello');
  // The address the container saw on its own eth0 is the one the API reports.
  expect(log).toMatch(new RegExp(`inet ${p.status.podIP!.replace(/\./g, '\\.')}/24`));
  // The service-account volume was mounted (token + kube-root-ca.crt from the controllers).
  expect(log).toContain('ca.crt');
  expect(log).toContain('token');
});

test('a pod on one node answers HTTP to a pod on the other', async () => {
  await kubectl(
    ['apply', '-f', '-'],
    pod(
      'server',
      'mkdir -p /tmp/www && echo "served by $(hostname)" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www',
      { restartPolicy: 'Always', nodeSelector: { 'kubernetes.io/hostname': 'n1' } },
    ),
  );
  const server = await phase('server', 'Running');
  expect(server.spec.nodeName).toBe('n1');
  await kubectl(
    ['apply', '-f', '-'],
    pod(
      'client',
      `for i in 1 2 3 4 5; do wget -q -O - http://${server.status.podIP}:8080/ && exit 0; sleep 1; done; exit 1`,
      {
        nodeSelector: { 'kubernetes.io/hostname': 'n2' },
      },
    ),
  );
  const client = await phase('client', 'Succeeded');
  expect(client.spec.nodeName).toBe('n2');
  expect(inSubnet(client.status.podIP!, hc.nodes.get('n2')!.podSubnet)).toBe(true);
  expect(hc.podLog('n2', 'default', 'client', 'main')).toContain('served by server');
});

test('stop leaves the host as it was found', async () => {
  const dir = hc.dir;
  const prefix = hc.lab.prefix;
  const roots = [...hc.nodes.values()].map((n) => n.cgroupRoot);
  // While it runs, kubelet holds the host's sysctls at its own values (pkg/kubelet/cm).
  expect(readSysctls()).toEqual(['1', '10', '1']);
  await hc.stop();
  expect(readSysctls()).toEqual(sysctlsBefore);
  expect(existsSync(dir) ? readdirSync(dir, { recursive: true }) : 'gone').toBe('gone');
  for (const h of readdirSync('/sys/fs/cgroup'))
    for (const r of roots) expect(existsSync(`/sys/fs/cgroup/${h}${r}`)).toBe(false);
  const netns = await runCommand('ip', ['netns', 'list']);
  expect(netns.stdout).not.toContain(prefix);
  const ps = await runCommand('ps', ['-eo', 'args']);
  expect(ps.stdout).not.toContain(dir);
  expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
  expect(readdirSync(tmpdir()).filter((e) => e === 'pcloud-hc-host-state.json')).toEqual([]);
  expect(FIXED_PATHS.map((p) => existsSync(p))).toEqual(fixedPathsBefore);
});
