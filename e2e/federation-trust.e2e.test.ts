/**
 * Trust boundaries across real control planes (issue 13, items 7 and 8): a matchmaker
 * and three homes, every controller its own process. A host's refusal of an
 * Assignment travels up (federation controller), reaches the requester's Request at
 * home with the reason and the host, and the units are placed elsewhere; fields added
 * by hand to a host's local copy of an Assignment are replaced by the upstream spec
 * and never reach a VM.
 */
import { execFileSync } from 'node:child_process';
import { stringify } from 'yaml';
import type { Assignment, Request } from '../generated/personalcloud.js';
import { REFUSED_GENERATION_ANNOTATION } from '../api/federation.js';
import type { KubeObject } from '../kube/client.js';
import { LocalFederation } from '../dev/federation-harness.js';
import { repoRoot } from '../dev/paths.js';
import { consistently, eventually as pollUntil } from '../dev/eventually.js';
import { Resources as R } from '../kube/kinds.js';

let fed: LocalFederation;
const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 120_000) =>
  pollUntil(what, fn, { timeoutMs, intervalMs: 300 });

type A = Assignment & KubeObject;
type Req = Request & KubeObject;
const IMAGE = 'quay.io/containerdisks/fedora:40';
const offer = (peer: string, units: number) => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Offer',
  metadata: { name: `${peer}-spare`, namespace: 'default' },
  spec: { peer, units, unit: { cpu: 1, memory: '1Gi', storage: '5Gi' } },
});

async function kubectl(home: string, args: string[], input?: string): Promise<string> {
  const res = await fed.home(home).cp.kubectl(args, input !== undefined ? { input } : {});
  if (res.code !== 0) throw new Error(res.stderr);
  return res.stdout;
}
const apply = (home: string, objs: unknown[]) =>
  kubectl(home, ['apply', '--server-side', '-f', '-'], objs.map((o) => stringify(o)).join('---\n'));
const condition = (o: { status?: { conditions?: { type: string }[] } } | undefined, type: string) =>
  o?.status?.conditions?.find((c) => c.type === type) as
    { type: string; status: string; reason: string; message: string } | undefined;

/**
 * What a requester's VMs at a home are given: each VirtualMachine, and the Secrets they
 * reference (user data lives there), as text by object.
 */
async function vmInputs(home: string, requester: string): Promise<Map<string, string>> {
  const c = fed.home(home).client;
  const ns = `tenant-${requester}`;
  const out = new Map<string, string>();
  const vms = await c.list(R.VirtualMachine, { namespace: ns });
  for (const vm of vms.items) {
    const text = JSON.stringify(vm);
    out.set(`VirtualMachine ${vm.metadata?.name}`, text);
    for (const m of text.matchAll(/"secretRef":\{"name":"([^"]+)"/g)) {
      const s = await c.get<KubeObject & { data?: Record<string, string> }>(R.Secret, m[1]!, ns);
      out.set(
        `Secret ${m[1]} (of ${vm.metadata?.name})`,
        Object.values(s?.data ?? {})
          .map((v) => Buffer.from(v, 'base64').toString('utf8'))
          .join('\n'),
      );
    }
  }
  return out;
}

/** The VM inputs that contain any of the needles. */
async function carrying(home: string, requester: string, needles: string[]): Promise<string[]> {
  const objs = await vmInputs(home, requester);
  if (![...objs.keys()].some((k) => k.startsWith('VirtualMachine ')))
    throw new Error(`no VM in tenant-${requester} at ${home}`);
  return [...objs].filter(([, text]) => needles.some((n) => text.includes(n))).map(([k]) => k);
}

beforeAll(async () => {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'inherit' });
  fed = await LocalFederation.start({
    homes: ['alice', 'bob', 'carol'],
    peerGrace: '6s',
    heartbeatSeconds: 1,
    logDir: process.env.PCLOUD_E2E_LOGS,
  });
});

afterAll(async () => {
  await fed?.stop();
});

describe('trust across real control planes', () => {
  it("item 7: a host's refusal reaches the requester's Request at home, and the units go elsewhere", async () => {
    await apply('bob', [offer('bob', 2)]);
    // bob's owner already hosts alice's "web" by hand: the pulled Assignment is the younger claim
    await apply('bob', [
      {
        apiVersion: 'personalcloud.io/v1alpha1',
        kind: 'Assignment',
        metadata: { name: 'squatter', namespace: 'default' },
        spec: { requester: 'alice', request: 'web', host: 'bob', units: 1, vm: { image: IMAGE } },
      },
    ]);
    await eventually('the hand-made Assignment accepted at bob', async () => {
      const a = await fed.home('bob').client.get<A>(R.Assignment, 'squatter', 'default');
      return condition(a, 'Accepted')?.status === 'True';
    });
    await apply('alice', [
      {
        apiVersion: 'personalcloud.io/v1alpha1',
        kind: 'Request',
        metadata: { name: 'web', namespace: 'default' },
        spec: { peer: 'alice', units: 1, placement: {}, vm: { image: IMAGE } },
      },
    ]);
    const refusedAtBob = await eventually('bob refuses the pulled copy', async () => {
      const a = await fed.home('bob').client.get<A>(R.Assignment, 'alice.web', 'federation');
      return condition(a, 'Accepted')?.status === 'False' ? a : undefined;
    });
    expect(condition(refusedAtBob, 'Accepted')?.reason).toBe('DuplicateHostname');
    // ... and alice sees it at home, with the reason and the host
    const r = await eventually(
      "the refusal in alice's Request status",
      async () => {
        const o = await fed.home('alice').client.get<Req>(R.Request, 'web', 'default');
        return condition(o, 'HostsAccepted')?.status === 'False' ? o : undefined;
      },
      60_000,
    );
    expect(condition(r, 'HostsAccepted')?.reason).toBe('DuplicateHostname');
    expect(condition(r, 'HostsAccepted')?.message).toContain('host bob refused: DuplicateHostname');
    expect(condition(r, 'Satisfied')).toMatchObject({ status: 'False', reason: 'NoCapacity' });
    // carol offers: the units go there, bob stays excluded for this Request
    await apply('carol', [offer('carol', 2)]);
    const placed = await eventually('web re-solved on carol', async () => {
      const o = await fed.home('alice').client.get<Req>(R.Request, 'web', 'default');
      return o?.status?.assignedUnits === 1 && o.status.placements?.[0]?.peer === 'carol' ? o : undefined;
    });
    expect(placed.status?.placements?.map((p) => p.peer)).toEqual(['carol']);
    expect(condition(placed, 'Satisfied')).toMatchObject({ status: 'True', reason: 'FullyAssigned' });
    const upstream = (await fed.mmClient.list<A>(R.Assignment)).items.filter((a) => a.spec.request === 'web');
    const upstreamRequest = await fed.mmClient.get<Req>(R.Request, 'web', 'peer-alice');
    // the refused Assignment stays at bob as the record of the refusal for this generation
    expect(
      upstream.map((a) => [a.spec.host, a.metadata?.annotations?.[REFUSED_GENERATION_ANNOTATION]]).sort(),
    ).toEqual([
      ['bob', String(upstreamRequest?.metadata?.generation)],
      ['carol', undefined],
    ]);
    await eventually('the VM at carol', async () => {
      const vm = await fed.home('carol').client.get(R.VirtualMachine, 'web-0', 'tenant-alice');
      return vm !== undefined;
    });
  });

  it('item 8: fields added by hand to the local copy at the host are replaced and never reach a VM', async () => {
    // its own Request, placed on carol (bob excluded by the placement), so this test stands alone
    await apply('carol', [offer('carol', 2)]);
    await apply('alice', [
      {
        apiVersion: 'personalcloud.io/v1alpha1',
        kind: 'Request',
        metadata: { name: 'db', namespace: 'default' },
        spec: {
          peer: 'alice',
          units: 1,
          placement: { peers: [{ peer: 'bob', max: 0 }] },
          vm: { image: IMAGE },
        },
      },
    ]);
    await eventually('alice.db hosted at carol', async () => {
      const vm = await fed.home('carol').client.get(R.VirtualMachine, 'db-0', 'tenant-alice');
      return vm !== undefined;
    });
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIntruderIntruderIntruderIntruderXX intruder@evil';
    await kubectl('carol', [
      'patch',
      'assignment',
      'alice.db',
      '-n',
      'federation',
      '--type=merge',
      '-p',
      JSON.stringify({
        spec: { vm: { sshKeys: [key], cloudInit: '#cloud-config\nruncmd: [touch /pwned]\n' } },
      }),
    ]);
    await eventually(
      'the local copy repaired',
      async () => {
        const a = await fed.home('carol').client.get<A>(R.Assignment, 'alice.db', 'federation');
        return a !== undefined && a.spec.vm.sshKeys === undefined && a.spec.vm.cloudInit === undefined;
      },
      30_000,
    );
    await eventually(
      'no trace at the VM',
      async () => {
        const found = await carrying('carol', 'alice', ['intruder', 'pwned']);
        if (found.length > 0) throw new Error(`still in ${found.join(', ')}`);
        return true;
      },
      30_000,
    );
    await consistently(
      'the local copy and the VM stay clean',
      async () => {
        const a = await fed.home('carol').client.get<A>(R.Assignment, 'alice.db', 'federation');
        const found = await carrying('carol', 'alice', ['intruder', 'pwned']);
        return a?.spec.vm.sshKeys === undefined && found.length === 0;
      },
      { forMs: 5_000 },
    );
  });
});
