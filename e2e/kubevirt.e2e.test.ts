/**
 * KubeVirt on a home with real nodes (issue 9, item 3): installed as its users install it
 * (upstream's kubevirt-operator.yaml, then a `KubeVirt` with useEmulation: this machine
 * has no hardware virtualisation), from images built here (dev/kubevirt.ts), and a VM that
 * really boots: the test guest (hack/guest-image.sh) as a containerDisk, under QEMU's
 * software emulation inside a virt-launcher pod, answering HTTP on port 80 with its own
 * name, reached at its pod address through KubeVirt's masquerade binding.
 */
import { jest } from '@jest/globals';
import { join } from 'node:path';
import { THIRD_PARTY_CRD_DIR } from '../dev/control-plane.js';
import { eventually } from '../dev/eventually.js';
import { HomeCluster, sweepHomeClusters } from '../dev/home-cluster.js';
import { guestImage, installKubeVirt, KUBEVIRT_NAMESPACE } from '../dev/kubevirt.js';

jest.setTimeout(1_800_000);

const NODES = ['n1', 'n2'];
/** Apart from the other home-cluster tests' LANs, should Jest run them side by side. */
const LAN_PREFIX = '192.168.219';

let hc: HomeCluster;
let guestRef = '';
const timings: Record<string, number> = {};

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await hc.controlPlane.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function diagnose(ns: string): Promise<string> {
  const r = await hc.controlPlane.kubectl(['-n', ns, 'get', 'pods,vmi,events', '-o', 'wide']);
  return r.stdout + r.stderr;
}

interface Vmi {
  status?: {
    phase?: string;
    nodeName?: string;
    interfaces?: { name?: string; ipAddress?: string }[];
    conditions?: { type: string; status: string }[];
  };
}

beforeAll(async () => {
  sweepHomeClusters();
  // virt-operator installs KubeVirt's CRDs itself (and refuses ones it did not make).
  hc = await HomeCluster.start({
    nodes: NODES,
    lanPrefix: LAN_PREFIX,
    controlPlane: { thirdPartyCRDs: false },
    readyTimeoutMs: 300_000,
  });
  timings.clusterStart = hc.startupMs;
  await hc.controlPlane.applyCRDs(['multus', 'whereabouts'].map((d) => join(THIRD_PARTY_CRD_DIR, d)));
  const t = Date.now();
  const kv = await installKubeVirt(hc);
  timings.kubevirtInstall = Date.now() - t;
  timings.kubevirtDeploy = kv.deployMs;
  guestRef = await hc.pushImage(await guestImage(), 'personal-cloud/test-guest:1');
});

afterAll(async () => {
  console.log(`kubevirt timings (ms): ${JSON.stringify(timings)}`);
  await hc?.stop();
});

describe('KubeVirt on a home with real nodes', () => {
  it('deploys with useEmulation: virt-handler Ready on every node, which KubeVirt marks schedulable', async () => {
    const kv = JSON.parse(
      await kubectl(['-n', KUBEVIRT_NAMESPACE, 'get', 'kubevirt', 'kubevirt', '-o', 'json']),
    ) as {
      spec: { configuration?: { developerConfiguration?: { useEmulation?: boolean } } };
      status: { phase?: string; conditions?: { type: string; status: string }[] };
    };
    expect(kv.spec.configuration?.developerConfiguration?.useEmulation).toBe(true);
    expect(kv.status.phase).toBe('Deployed');
    expect(kv.status.conditions?.find((c) => c.type === 'Available')?.status).toBe('True');
    const handlers = JSON.parse(
      await kubectl([
        '-n',
        KUBEVIRT_NAMESPACE,
        'get',
        'pods',
        '-l',
        'kubevirt.io=virt-handler',
        '-o',
        'json',
      ]),
    ) as {
      items: { spec: { nodeName?: string }; status: { conditions?: { type: string; status: string }[] } }[];
    };
    const readyOn = handlers.items
      .filter((p) => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
      .map((p) => p.spec.nodeName)
      .sort();
    expect(readyOn).toEqual(NODES);
    for (const node of NODES) {
      const labels = JSON.parse(
        await kubectl(['get', 'node', node, '-o', 'jsonpath={.metadata.labels}']),
      ) as Record<string, string>;
      expect(labels['kubevirt.io/schedulable']).toBe('true');
    }
  });

  it('boots the test guest from a containerDisk under emulation; it answers HTTP with its own name', async () => {
    const t = Date.now();
    const vmi = {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstance',
      metadata: { name: 'guest1', namespace: 'default' },
      spec: {
        hostname: 'guest1',
        domain: {
          cpu: { cores: 1 },
          memory: { guest: '256Mi' },
          resources: { requests: { memory: '256Mi', cpu: '100m' } },
          devices: {
            disks: [{ name: 'rootdisk', disk: { bus: 'virtio' } }],
            interfaces: [{ name: 'default', masquerade: {} }],
          },
        },
        networks: [{ name: 'default', pod: {} }],
        volumes: [{ name: 'rootdisk', containerDisk: { image: guestRef } }],
      },
    };
    await kubectl(['apply', '-f', '-'], JSON.stringify(vmi));
    const running = await eventually(
      'the VMI Running with an address',
      async () => {
        const v = JSON.parse(await kubectl(['-n', 'default', 'get', 'vmi', 'guest1', '-o', 'json'])) as Vmi;
        const ip = v.status?.interfaces?.[0]?.ipAddress;
        return v.status?.phase === 'Running' && ip ? { ...v, ip } : undefined;
      },
      { timeoutMs: 600_000, intervalMs: 2000 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose('default')}`);
    });
    timings.vmiRunning = Date.now() - t;
    expect(NODES).toContain(running.status?.nodeName);
    // The guest's own HTTP server, through the launcher pod's masquerade (the host routes
    // to the home's pod addresses). Its answer is the hostname KubeVirt's DHCP gave it.
    const body = await eventually(
      "the guest's HTTP answer",
      async () => {
        try {
          const res = await fetch(`http://${running.ip}/`, { signal: AbortSignal.timeout(3000) });
          return res.ok ? (await res.text()).trim() : undefined;
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 300_000, intervalMs: 2000 },
    );
    timings.vmiAnswers = Date.now() - t;
    expect(body).toBe('guest1');
    // Software emulation: the domain libvirt runs is of type qemu (TCG), not kvm.
    const pod = (
      await kubectl(['-n', 'default', 'get', 'pods', '-l', 'kubevirt.io/domain=guest1', '-o', 'name'])
    ).trim();
    const xml = await kubectl([
      '-n',
      'default',
      'exec',
      pod,
      '-c',
      'compute',
      '--',
      'virsh',
      '-r',
      'dumpxml',
      '1',
    ]);
    expect(xml).toMatch(/<domain type=['"]qemu['"]/);
  });
});
