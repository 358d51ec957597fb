/**
 * Issue 13, the host's side of the trust boundaries, against a real kube-apiserver,
 * kube-controller-manager and the real third-party CRDs: the chart's defaults can host;
 * nothing reports Ready that is not; a host hosts no more than its own Offer; deletion
 * wins over creation; cloud-init lives in a bounded Secret; a steady state makes no
 * writes; an empty home LAN is a configuration error.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { parse } from 'yaml';
import { ControlPlane } from '../dev/control-plane.js';
import { repoRoot } from '../dev/paths.js';
import { configFromOptions } from '../cli/config.js';
import { runOperator, type RunningOperator } from './main.js';
import { createLogger } from '../kube/logger.js';
import { KubeClient, type KubeObject } from '../kube/client.js';
import { Resources } from '../kube/kinds.js';
import { eventually as pollUntil } from '../dev/eventually.js';

jest.setTimeout(240_000);

let cp: ControlPlane;
let client: KubeClient;
let op: RunningOperator;

const HOME = 'home';
const NS = 'federation';
/** The chart's default home LAN, as a home owner who sets nothing gets it. */
const CHART_HOME_LAN = (
  parse(readFileSync(join(repoRoot, 'charts', 'personal-cloud', 'values.yaml'), 'utf8')) as {
    homeLAN: string[];
  }
).homeLAN;
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop';

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) =>
  pollUntil(what, fn, { timeoutMs, intervalMs: 100 });

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
const condition = (o: KubeObject | undefined, type: string): Condition | undefined =>
  ((o?.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((c) => c.type === type);

function assignment(
  name: string,
  requester: string,
  units: number,
  vm: Record<string, unknown> = {},
): KubeObject {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Assignment',
    metadata: { name, namespace: NS },
    spec: {
      requester,
      request: name,
      host: HOME,
      units,
      vm: { image: 'quay.io/containerdisks/fedora:40', ...vm },
    },
  };
}

async function idle(): Promise<void> {
  let quiet = 0;
  await eventually('operator idle', () => {
    quiet = op.busy() === 0 ? quiet + 1 : 0;
    return Promise.resolve(quiet >= 8);
  });
}

async function writes(): Promise<number> {
  const m = await op.metrics.apiRequests.get();
  return m.values
    .filter((v) => ['PATCH', 'POST', 'DELETE'].includes(String(v.labels.verb)))
    .reduce((s, v) => s + v.value, 0);
}

const vmCount = async (namespace: string): Promise<number> =>
  (await client.list(Resources.VirtualMachine, { namespace })).items.length;

/** Waits until the Assignment carries an Accepted condition and the operator is idle. */
async function settled(name: string): Promise<KubeObject> {
  await eventually(`${name} reconciled`, async () =>
    condition(await client.get(Resources.Assignment, name, NS), 'Accepted'),
  );
  await idle();
  return (await client.get(Resources.Assignment, name, NS))!;
}

const describeStatus = (o: KubeObject | undefined): string =>
  JSON.stringify(
    ((o?.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).map(
      (c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`,
    ),
  );

beforeAll(async () => {
  cp = await ControlPlane.start({ name: 'trust' });
  client = await KubeClient.fromKubeConfig(cp.kubeConfig());
  for (const ns of ['personal-cloud', NS])
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'test');
  await client.create({
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Offer',
    metadata: { name: 'home', namespace: NS },
    spec: { peer: HOME, units: 4, unit: { cpu: '1', memory: '1Gi', storage: '5Gi' } },
  });
  const config = configFromOptions({
    peer: HOME,
    homeDomain: 'home.example.net',
    homeLan: CHART_HOME_LAN,
    metricsPort: '0',
    metricsHost: '127.0.0.1',
    leaseDuration: '4',
    leaseRenewDeadline: '3',
    leaseRetryPeriod: '1',
    identity: 'trust',
    logLevel: process.env.LOG_LEVEL ?? 'warn',
  });
  op = await runOperator(config, { kubeConfig: cp.kubeConfig(), log: createLogger(config.logLevel) });
}, 240_000);

afterAll(async () => {
  await op?.stop();
  client?.close();
  await cp?.stop();
});

describe('item 1: the chart defaults host, and Ready follows the Tenant', () => {
  it("with the chart's default homeLAN, a hosted Assignment's Tenant gets its private network and is Ready", async () => {
    await client.create(assignment('alice-web', 'alice', 1));
    await settled('alice-web');
    const tenant = await eventually('Tenant alice settled', async () => {
      const t = await client.get(Resources.Tenant, 'alice');
      // settled also means kube-controller-manager has computed the quota: the operator
      // waits for that through its ResourceQuota watch (QuotaPending), idle, not polling
      return condition(t, 'NetworkReady') && condition(t, 'QuotaReady')?.reason !== 'QuotaPending'
        ? t
        : undefined;
    });
    expect(`NetworkReady ${condition(tenant, 'NetworkReady')?.reason}`).toBe('NetworkReady NetworkApplied');
    expect(condition(tenant, 'Ready')?.status).toBe('True');
    expect(
      await client.get(Resources.NetworkAttachmentDefinition, 'tenant-network', 'tenant-alice'),
    ).toBeDefined();
    const a = await eventually('alice-web Ready', async () => {
      const o = await client.get(Resources.Assignment, 'alice-web', NS);
      return condition(o, 'Ready')?.status === 'True' ? o : undefined;
    });
    expect(condition(a, 'TenantReady')?.status).toBe('True');
  });

  it('an Assignment whose Tenant is not Ready is not Ready either, and gets no VMs', async () => {
    // A Tenant made by hand whose subnet overlaps the home LAN: NetworkReady=False.
    await client.create({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Tenant',
      metadata: { name: 'dana' },
      spec: { peer: 'dana', units: 1, network: { subnet: '192.168.5.0/24' } },
    });
    await eventually('dana NetworkReady False', async () => {
      const t = await client.get(Resources.Tenant, 'dana');
      return (
        condition(t, 'NetworkReady')?.status === 'False' && condition(t, 'NamespaceReady')?.status === 'True'
      );
    });
    await client.create(assignment('dana-web', 'dana', 1));
    const a = await settled('dana-web');
    const seen = `${describeStatus(a)}; VMs in tenant-dana: ${await vmCount('tenant-dana')}`;
    expect({
      tenantReady: condition(a, 'TenantReady')?.status,
      ready: condition(a, 'Ready')?.status,
      seen,
    }).toEqual({ tenantReady: 'False', ready: 'False', seen });
    expect(condition(a, 'TenantReady')?.reason).toBe('TenantNotReady');
    expect(condition(a, 'TenantReady')?.message).toContain('SubnetOverlapsHomeLAN');
    expect(await vmCount('tenant-dana')).toBe(0);
  });
});

describe('item 3: a host hosts no more than its own Offer; deletion wins; status stays small', () => {
  it('refuses the units beyond the Offer with ExceedsOffer, older Assignments first', async () => {
    // alice-web (1) and dana-web (1) are older: 2 of the Offer's 4 units are taken.
    await client.create(assignment('eve-big', 'eve', 40));
    const a = await settled('eve-big');
    const vms = await vmCount('tenant-eve');
    const seen = `${describeStatus(a)}; VMs in tenant-eve: ${vms}`;
    expect({ accepted: condition(a, 'Accepted')?.reason, seen }).toEqual({ accepted: 'ExceedsOffer', seen });
    expect(condition(a, 'Accepted')?.status).toBe('False');
    expect(condition(a, 'Accepted')?.message).toMatch(/40 units.*2 of .*4/);
    expect(vms).toBe(0);
    expect(condition(await client.get(Resources.Assignment, 'alice-web', NS), 'Accepted')?.status).toBe(
      'True',
    );
  });

  it('a large Assignment is created in bounded batches; its status holds counts and at most 100 VMs', async () => {
    await client.mergePatch(Resources.Offer, 'home', NS, { spec: { units: 400 } });
    // eve-big (40) is admitted now that the Offer grew; then 150 more.
    await client.create(assignment('gus-many', 'gus', 150));
    const a = await eventually(
      'gus-many: 150 VMs',
      async () => {
        const o = await client.get(Resources.Assignment, 'gus-many', NS);
        return condition(o, 'VirtualMachinesReady')?.status === 'True' ? o : undefined;
      },
      180_000,
    );
    expect(await vmCount('tenant-gus')).toBe(150);
    const status = a.status as { vms?: unknown[]; virtualMachines?: Record<string, number> };
    expect(status.vms?.length).toBe(100);
    expect(status.virtualMachines).toMatchObject({ desired: 150, created: 150 });
  });

  it('deleting an Assignment stops its creation pass within one batch', async () => {
    await client.create(assignment('ivy-many', 'ivy', 150));
    await eventually('first VM of ivy-many', async () => (await vmCount('tenant-ivy')) > 0, 120_000);
    await client.delete(Resources.Assignment, 'ivy-many', NS);
    let most = 0;
    await eventually('ivy-many gone with its VMs', async () => {
      most = Math.max(most, await vmCount('tenant-ivy'));
      return !(await client.get(Resources.Assignment, 'ivy-many', NS)) && (await vmCount('tenant-ivy')) === 0;
    });
    // One batch is 50 VMs: the pass in flight may finish its batch, no more.
    expect(`at most ${most} VMs existed`).toBe(`at most ${Math.min(most, 50)} VMs existed`);
  });
});

describe('item 9: cloud-init lives in a Secret, bounded', () => {
  it('user data goes into a Secret in the tenant namespace that the VM references', async () => {
    await client.create(
      assignment('jo-web', 'jo', 1, { cloudInit: '#cloud-config\npackages: [nginx]\n', sshKeys: [KEY] }),
    );
    await settled('jo-web');
    const vm = await eventually('VM jo-web-0', () =>
      client.get(Resources.VirtualMachine, 'jo-web-0', 'tenant-jo'),
    );
    const volumes = (vm.spec as { template: { spec: { volumes: Array<Record<string, unknown>> } } }).template
      .spec.volumes;
    const ci = volumes.find((v) => v.name === 'cloudinit')?.cloudInitNoCloud as {
      secretRef?: { name: string };
      userData?: string;
    };
    expect(ci.userData).toBeUndefined();
    expect(ci.secretRef?.name).toMatch(/^jo-web-0-cloudinit-[0-9a-f]{10}$/);
    const secret = await eventually('the cloud-init Secret', () =>
      client.get(Resources.Secret, ci.secretRef?.name ?? '', 'tenant-jo'),
    );
    expect(secret.metadata?.ownerReferences).toMatchObject([
      { kind: 'VirtualMachine', name: 'jo-web-0', uid: vm.metadata?.uid },
    ]);
    const userdata = Buffer.from((secret?.data as { userdata: string }).userdata, 'base64').toString();
    expect(userdata).toContain('#cloud-config');
    expect(userdata).toContain(KEY);
    // The peer operates its VMs but reads no Secret, its own or another tenant's.
    const peer = await cp.mintUser('personalcloud.io:peer:jo');
    const can = async (...args: string[]): Promise<string> =>
      (await cp.kubectl(['auth', 'can-i', ...args], { kubeconfig: peer.kubeconfigPath })).stdout.trim();
    expect(await can('get', 'secrets', '-n', 'tenant-jo')).toBe('no');
    expect(await can('get', 'secrets', '-n', 'tenant-alice')).toBe('no');
  });

  it('user data over 64 KiB is refused with CloudInitTooLarge naming the size', async () => {
    const big = `#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: "${'x'.repeat(30_000)}"\n`;
    const keys = Array.from({ length: 6 }, (_, i) => `ssh-ed25519 AAAA${String(i).repeat(8000)} key${i}`);
    await client.create(assignment('kim-web', 'kim', 1, { cloudInit: big, sshKeys: keys }));
    const a = await settled('kim-web');
    const seen = `${describeStatus(a)}; VMs in tenant-kim: ${await vmCount('tenant-kim')}`;
    expect({ accepted: condition(a, 'Accepted')?.reason, seen }).toEqual({
      accepted: 'CloudInitTooLarge',
      seen,
    });
    expect(condition(a, 'Accepted')?.message).toMatch(/\d+ bytes.*65536/);
    expect(await vmCount('tenant-kim')).toBe(0);
  });
});

describe('item 10: a steady state makes no writes', () => {
  it('a Tenant of 2000 units: its ResourceQuota is not re-applied on reconciles', async () => {
    await client.create({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Tenant',
      metadata: { name: 'lou' },
      spec: { peer: 'lou', units: 2000 },
    });
    await eventually(
      'lou Ready',
      async () => condition(await client.get(Resources.Tenant, 'lou'), 'Ready')?.status === 'True',
    );
    // the quota controller writes the quota's status; wait for it to have done so
    await eventually('quota status computed', async () => {
      const q = await client.get(Resources.ResourceQuota, 'tenant-quota', 'tenant-lou');
      return (q?.status as { hard?: unknown } | undefined)?.hard !== undefined;
    });
    // Steady state: nothing else converging (earlier tests' Tenants and namespaces gone).
    await eventually(
      'no Tenant or namespace being deleted',
      async () =>
        (await client.list(Resources.Tenant)).items.every((t) => !t.metadata?.deletionTimestamp) &&
        (await client.list(Resources.Namespace)).items.every(
          (n) => (n.status as { phase?: string } | undefined)?.phase !== 'Terminating',
        ),
      120_000,
    );
    await idle();
    const rv = (await client.get(Resources.ResourceQuota, 'tenant-quota', 'tenant-lou'))?.metadata
      ?.resourceVersion;
    const before = await writes();
    for (let i = 0; i < 3; i++) {
      op.resyncAll();
      await idle();
    }
    expect(
      (await client.get(Resources.ResourceQuota, 'tenant-quota', 'tenant-lou'))?.metadata?.resourceVersion,
    ).toBe(rv);
    expect(`${(await writes()) - before} writes`).toBe('0 writes');
  });
});

describe('item 7 (host side): a Tenant refused as DuplicatePeer', () => {
  it('its Assignment is refused with Accepted=False DuplicatePeer (so the refusal can flow back), not left waiting', async () => {
    // An older Tenant made by hand already hosts peer frank in namespace tenant-frank.
    await client.create({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Tenant',
      metadata: { name: 'frank-by-hand' },
      spec: { peer: 'frank', units: 1, network: { subnet: '198.18.0.0/24' } },
    });
    await eventually('frank-by-hand has its namespace', async () => {
      const t = await client.get(Resources.Tenant, 'frank-by-hand');
      return condition(t, 'NamespaceReady')?.status === 'True';
    });
    await client.create(assignment('frank-web', 'frank', 1));
    const a = await eventually('frank-web refused', async () => {
      const x = await client.get(Resources.Assignment, 'frank-web', NS);
      return condition(x, 'Accepted')?.status === 'False' ? x : undefined;
    });
    expect(condition(a, 'Accepted')).toMatchObject({
      reason: 'DuplicatePeer',
      message: 'peer frank is already hosted here by the older Tenant frank-by-hand',
    });
    expect(condition(a, 'Ready')?.status).toBe('False');
    // No younger, doomed Tenant was made for it, and nothing runs for it.
    expect(await client.get(Resources.Tenant, 'frank')).toBeUndefined();
    expect(await vmCount('tenant-frank')).toBe(0);
  });
});

describe('without an Offer nothing is hosted', () => {
  it('deleting the Offer refuses every Assignment with NoOffer and removes their VMs', async () => {
    await client.delete(Resources.Offer, 'home', NS);
    const a = await eventually('alice-web refused', async () => {
      const o = await client.get(Resources.Assignment, 'alice-web', NS);
      return condition(o, 'Accepted')?.status === 'False' ? o : undefined;
    });
    expect(condition(a, 'Accepted')?.reason).toBe('NoOffer');
    await eventually('alice VMs gone', async () => (await vmCount('tenant-alice')) === 0);
  });
});

describe('item 2: an empty home LAN is a configuration error', () => {
  beforeAll(() => {
    const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'ignore' });
    if (build.error) throw build.error;
  }, 240_000);
  it.each([
    ['--home-lan ""', ['--home-lan', ''], {}],
    ['PCLOUD_HOME_LAN=', [], { PCLOUD_HOME_LAN: '' }],
  ])('%s: the operator exits 2 with one line naming --home-lan', (_what, args, env) => {
    const r = spawnSync(
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
        '0',
        ...args,
      ],
      { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 15_000 },
    );
    expect({ code: r.status, stderr: r.stderr }).toMatchObject({ code: 2 });
    expect(r.stderr).toMatch(/^pcloud operator: --home-lan[^\n]*\n$/);
  });
});
