/**
 * The chart installed with `helm install` on a home with real nodes (issue 9, items 2
 * and 4): the operator image built from Debian packages, Node and dist/ (no Docker
 * engine), pushed to the home's registry, pulled by each node's containerd; the
 * KubeVirt, Multus, Gateway API and Cilium CRDs applied first as their projects install them;
 * then the chart exactly as docs/install.md tells a k3s user, with image.repository
 * pointing at the registry. Assertions are on what happened in the cluster and on the
 * nodes: the operator pods Ready under the chart's ServiceAccount with in-cluster config
 * (through the `kubernetes` Service, which kube-proxy carries), one of them holding the
 * Lease, a Tenant reconciled from inside the cluster into its namespace and network,
 * the node agents Ready and the tenant's bridge and VXLAN device in every node's
 * network namespace, and `kubectl logs` of the operator.
 */
import { join } from 'node:path';
import { jest } from '@jest/globals';
import {
  RELEASE,
  RELEASE_NAMESPACE as NS,
  applyThirdPartyCRDs,
  diagnoseRelease,
  installChart,
  podReady as ready,
  releasePods,
} from '../dev/chart-install.js';
import { eventually } from '../dev/eventually.js';
import { HomeCluster, sweepHomeClusters } from '../dev/home-cluster.js';
import { repoRoot } from '../dev/paths.js';

jest.setTimeout(900_000);

const NODES = ['n1', 'n2'];
/** Apart from the other home-cluster tests' LANs (192.168.214, .216), should Jest run them side by side. */
const LAN_PREFIX = '192.168.217';

let hc: HomeCluster;
let imageRef = '';
const timings: Record<string, number> = {};

const kubectl = (args: string[], input?: string): Promise<string> =>
  hc.controlPlane.kubectlOutput(args, input);

const pods = (container: string) => releasePods(hc, container);
const diagnose = () => diagnoseRelease(hc);

const OPERATOR = 'operator';
const AGENT = 'node-agent';

beforeAll(async () => {
  sweepHomeClusters();
  // The chart brings our CRDs; the third-party ones come first, as a user installs them.
  hc = await HomeCluster.start({
    nodes: NODES,
    lanPrefix: LAN_PREFIX,
    controlPlane: { ourCRDs: false, thirdPartyCRDs: false },
  });
  timings.clusterStart = hc.startupMs;
  const t = Date.now();
  // The operator refuses to start without them (exit 2).
  await applyThirdPartyCRDs(hc);
  timings.thirdPartyCRDs = Date.now() - t;
  // docs/install.md step 3, with the image from this home's registry.
  const installed = await installChart(hc);
  imageRef = installed.imageRef;
  Object.assign(timings, installed.timings);
});

afterAll(async () => {
  console.log(`home install timings (ms): ${JSON.stringify(timings)}`);
  await hc?.stop();
});

describe('helm install on a home with real nodes', () => {
  it('runs the operator pods from the registry image, Ready, under the chart ServiceAccount', async () => {
    const t = Date.now();
    const ops = await eventually(
      'two operator pods Running and Ready',
      async () => {
        const p = await pods(OPERATOR);
        return p.length === 2 && p.every(ready) ? p : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 1000 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose()}`);
    });
    timings.operatorReady = Date.now() - t;
    for (const p of ops) {
      expect(p.spec.serviceAccountName).toBe(RELEASE);
      expect(p.spec.containers[0]!.image).toBe(imageRef);
      expect(p.status.containerStatuses?.[0]?.ready).toBe(true);
      // Started once: no exit for a missing precondition, no liveness kill of a slow start.
      expect(p.status.containerStatuses?.[0]?.restartCount).toBe(0);
    }
    // Pulled from the registry by the nodes' containerd (the image was never imported).
    for (const node of new Set(ops.map((p) => p.spec.nodeName!))) {
      const images = await hc.ctr(node, ['-n', 'k8s.io', 'images', 'ls', '-q']);
      expect(images.stdout.split('\n')).toContain(imageRef);
    }
  });

  it('elects one of them leader on the chart Lease', async () => {
    const names = (await pods(OPERATOR)).map((p) => p.metadata.name);
    const lease = await eventually(
      'the Lease held',
      async () => {
        const r = await hc.controlPlane.kubectl(['-n', NS, 'get', 'lease', RELEASE, '-o', 'json']);
        if (r.code !== 0) return undefined;
        const l = JSON.parse(r.stdout) as { spec: { holderIdentity?: string } };
        return l.spec.holderIdentity ? l : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    expect(names).toContain(lease.spec.holderIdentity);
  });

  it('runs a node agent on every node, Ready, in the node network namespace', async () => {
    const agents = await eventually(
      'a Ready node agent per node',
      async () => {
        const p = await pods(AGENT);
        return p.length === NODES.length && p.every(ready) ? p : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose()}`);
    });
    expect(agents.map((p) => p.spec.nodeName).sort()).toEqual(NODES);
    for (const p of agents) {
      expect(p.spec.hostNetwork).toBe(true);
      expect(p.status.containerStatuses?.[0]?.restartCount).toBe(0);
    }
  });

  it('reconciles a Tenant from inside the cluster: namespace, network, and the node agents build it on every node', async () => {
    await kubectl(['apply', '-f', join(repoRoot, 'examples', 'tenant-bob.yaml')]);
    const tenant = await eventually(
      'Tenant bob network in status',
      async () => {
        const t = JSON.parse(await kubectl(['get', 'tenant', 'bob', '-o', 'json'])) as {
          status?: { namespace?: string; network?: { vni: number; bridge: string; mtu: number } };
        };
        return t.status?.network && t.status.namespace ? t.status : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(JSON.parse(await kubectl(['get', 'namespace', tenant.namespace!, '-o', 'json']))).toMatchObject({
      metadata: { labels: expect.objectContaining({ 'personalcloud.io/tenant': 'bob' }) as unknown },
    });
    const nads = JSON.parse(
      await kubectl(['-n', tenant.namespace!, 'get', 'network-attachment-definitions', '-o', 'json']),
    ) as { items: unknown[] };
    expect(nads.items.length).toBe(1);

    const { vni, bridge, mtu } = tenant.network!;
    for (const node of NODES) {
      const links = await eventually(
        `bridge ${bridge} and pcvx${vni} on ${node}`,
        async () => {
          const out = await hc.lab.exec(node, 'ip', ['-j', '-d', 'link', 'show']);
          const l = JSON.parse(out) as {
            ifname: string;
            master?: string;
            mtu: number;
            linkinfo?: { info_kind?: string; info_data?: { id?: number } };
          }[];
          const br = l.find((x) => x.ifname === bridge);
          const vx = l.find((x) => x.ifname === `pcvx${vni}`);
          return br && vx?.master === bridge ? { br, vx } : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      expect(links.br.linkinfo?.info_kind).toBe('bridge');
      expect(links.vx.linkinfo?.info_kind).toBe('vxlan');
      expect(links.vx.linkinfo?.info_data?.id).toBe(vni);
      expect(links.vx.mtu).toBe(mtu);
      // Flooding to the other node's InternalIP.
      const fdb = await hc.lab.exec(node, 'bridge', ['fdb', 'show', 'dev', `pcvx${vni}`]);
      for (const other of NODES.filter((n) => n !== node))
        expect(fdb).toContain(`00:00:00:00:00:00 dst ${hc.nodes.get(other)!.ip}`);
    }
  });

  it('serves the operator log through the API server (kubectl logs)', async () => {
    const lease = JSON.parse(await kubectl(['-n', NS, 'get', 'lease', RELEASE, '-o', 'json'])) as {
      spec: { holderIdentity: string };
    };
    const log = await kubectl(['-n', NS, 'logs', lease.spec.holderIdentity]);
    const lines = log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; identity?: string; peer?: string; leading?: boolean });
    expect(lines.find((l) => l.msg === 'operator started')).toMatchObject({
      identity: lease.spec.holderIdentity,
      peer: 'alice',
    });
    expect(lines.find((l) => l.msg === 'became leader')).toMatchObject({
      identity: lease.spec.holderIdentity,
      leading: true,
    });
  });

  it('hands the Lease to the other replica when the leader pod is deleted', async () => {
    const holder = async (): Promise<string | undefined> => {
      const r = await hc.controlPlane.kubectl(['-n', NS, 'get', 'lease', RELEASE, '-o', 'json']);
      return r.code === 0
        ? (JSON.parse(r.stdout) as { spec: { holderIdentity?: string } }).spec.holderIdentity
        : undefined;
    };
    const leader = (await holder())!;
    const other = (await pods(OPERATOR)).map((p) => p.metadata.name).find((n) => n !== leader)!;
    const t = Date.now();
    await kubectl(['-n', NS, 'delete', 'pod', leader, '--wait=false']);
    await eventually(
      'the other replica holds the Lease',
      async () => ((await holder()) === other ? true : undefined),
      {
        timeoutMs: 90_000,
        intervalMs: 500,
      },
    );
    timings.failover = Date.now() - t;
    // It reconciles: a second Tenant gets its namespace from the new leader.
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'personalcloud.io/v1alpha1',
        kind: 'Tenant',
        metadata: { name: 'carol' },
        spec: { peer: 'carol', units: 1 },
      }),
    );
    await eventually(
      'Tenant carol reconciled by the new leader',
      async () => {
        const r = await hc.controlPlane.kubectl([
          'get',
          'tenant',
          'carol',
          '-o',
          'jsonpath={.status.namespace}',
        ]);
        return r.stdout !== '' ? r.stdout : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const log = await kubectl(['-n', NS, 'logs', other]);
    expect(log).toContain('"msg":"became leader"');
  });
});
