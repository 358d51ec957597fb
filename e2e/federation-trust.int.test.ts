/**
 * Trust boundaries at the matchmaker (issue 13), against a real kube-apiserver with each
 * peer's own token: a peer cannot exhaust the shared cluster (quota on counts, a bound
 * on size), a long legal Request name does not break the pass, a host's report is
 * checked before the requester sees it, a host's refusal reaches the requester and its
 * units are placed elsewhere, and one rule decides which peer names are good.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { Assignment, Request } from '../generated/personalcloud.js';
import { configFromOptions, matchmakerConfigFromOptions } from '../cli/config.js';
import { ControlPlane } from '../dev/control-plane.js';
import { createLogger } from '../kube/logger.js';
import { ApiError, KubeClient, type KubeObject } from '../kube/client.js';
import { REFUSED_GENERATION_ANNOTATION, assignmentName, peerNamespace } from '../api/federation.js';
import { invitePeer, renderJoinKubeconfig } from '../matchmaker/controller/invite.js';
import { runMatchmaker, type RunningMatchmaker } from '../matchmaker/controller/matchmaker-controller.js';
import { eventually as pollUntil } from '../dev/eventually.js';
import { Resources as R } from '../kube/kinds.js';

let cp: ControlPlane;
let admin: KubeClient;
let mm: RunningMatchmaker | undefined;
const as: Record<string, KubeClient> = {};
const BASE = '/apis/personalcloud.io/v1alpha1';

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) =>
  pollUntil(what, fn, { timeoutMs, intervalMs: 200 });

type Req = Request & KubeObject;
type Asg = Assignment & KubeObject;

async function code(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
    return { code: 200, message: '' };
  } catch (err) {
    if (err instanceof ApiError) return { code: err.statusCode, message: err.message };
    throw err;
  }
}

async function join(peer: string, opts: Parameters<typeof invitePeer>[4] = {}): Promise<KubeClient> {
  const creds = await invitePeer(admin, peer, cp.server, undefined, opts);
  const kc = new KubeConfig();
  kc.loadFromString(renderJoinKubeconfig(creds));
  return (as[peer] = await KubeClient.fromKubeConfig(kc));
}

const offer = (peer: string, units: number): KubeObject => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Offer',
  metadata: { name: 'spare', namespace: peerNamespace(peer) },
  spec: { peer, units, unit: { cpu: 1, memory: '1Gi', storage: '5Gi' } },
});
const request = (
  peer: string,
  name: string,
  units: number,
  vm: Record<string, unknown> = {},
): KubeObject => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Request',
  metadata: { name, namespace: peerNamespace(peer) },
  spec: { peer, units, placement: {}, vm: { image: 'quay.io/containerdisks/fedora:40', ...vm } },
});
const heartbeat = (peer: string): KubeObject => ({
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: {
    name: 'heartbeat',
    namespace: peerNamespace(peer),
    labels: { 'personalcloud.io/heartbeat': 'true' },
  },
  spec: { holderIdentity: peer, renewTime: new Date().toISOString().replace('Z', '000Z') },
});
const createRequest = (peer: string, obj: KubeObject) =>
  as[peer]!.request('POST', `${BASE}/namespaces/${peerNamespace(peer)}/requests`, { body: obj });
const getRequest = (peer: string, name: string) => as[peer]!.get<Req>(R.Request, name, peerNamespace(peer));
const condition = (r: Req | undefined, type: string) => r?.status?.conditions?.find((c) => c.type === type);
const hostsOf = async (requester: string, request: string): Promise<Asg[]> =>
  (await admin.list<Asg>(R.Assignment)).items.filter(
    (a) => a.spec.requester === requester && a.spec.request === request && !a.metadata?.deletionTimestamp,
  );

beforeAll(async () => {
  cp = await ControlPlane.start({ name: 'federation-trust' });
  admin = await KubeClient.fromKubeConfig(cp.kubeConfig());
  // alice requests; bob and carol host (their home domains recorded at invite)
  await join('alice', { domain: 'alice.example' });
  await join('bob', { domain: 'bob.example' });
  await join('carol', { domain: 'carol.example' });
  for (const p of ['alice', 'bob', 'carol']) await as[p]!.create(heartbeat(p));
  await as.bob!.create(offer('bob', 4));
  mm = await runMatchmaker(
    matchmakerConfigFromOptions({
      identity: 'trust',
      metricsPort: '0',
      metricsHost: '127.0.0.1',
      peerGrace: '600s',
      debounce: '200ms',
      maxObjectBytes: '16384',
    }),
    {
      kubeConfig: cp.kubeConfig(),
      log: createLogger(process.env.LOG_LEVEL ?? 'warn'),
      defaultMetrics: false,
    },
  );
});

afterAll(async () => {
  await mm?.stop();
  for (const c of Object.values(as)) c.close();
  admin?.close();
  await cp?.stop();
});

describe('item 11: one rule for peer names, invite and the operator', () => {
  const name = (n: number): string => 'p'.repeat(n);
  it.each([59, 60, 63])('a %d-character peer name is refused by both', async (n) => {
    await expect(invitePeer(admin, name(n), cp.server, undefined)).rejects.toThrow(/at most 58/);
    expect(() => configFromOptions({ peer: name(n) })).toThrow(/--peer must be .*at most 58/);
  });
  it('a 58-character peer name is accepted by both', async () => {
    expect(configFromOptions({ peer: name(58) }).peer).toBe(name(58));
    const creds = await invitePeer(admin, name(58), cp.server, undefined);
    expect(creds.peer).toBe(name(58));
  });
});

describe("item 4: one peer cannot exhaust the matchmaker's cluster", () => {
  // the floods out of the way of the next tests (bob's few units), pass or fail
  afterAll(async () => {
    for (const peer of ['mallory', 'trent'])
      await admin.request('DELETE', `${BASE}/namespaces/${peerNamespace(peer)}/requests`);
  });

  it('a peer token cannot create more Requests than its quota (403 exceeded quota)', async () => {
    await join('mallory');
    const results = [];
    for (let i = 0; i < 40; i++)
      results.push(await code(createRequest('mallory', request('mallory', `flood-${i}`, 1))));
    const created = results.filter((r) => r.code === 200).length;
    expect(created).toBe(20); // the default bound
    const refused = results.filter((r) => r.code !== 200);
    expect(refused.map((r) => r.code)).toEqual(Array(20).fill(403));
    expect(refused[0]!.message).toMatch(/exceeded quota/);
    expect((await admin.list(R.Request, { namespace: peerNamespace('mallory') })).items).toHaveLength(20);
  });

  it('the bound is adjustable by inviting again', async () => {
    await join('trent', { limits: { requests: 3, offers: 1 } });
    const codes = [];
    for (let i = 0; i < 5; i++)
      codes.push((await code(createRequest('trent', request('trent', `r-${i}`, 1)))).code);
    expect(codes).toEqual([200, 200, 200, 403, 403]);
    expect((await code(as.trent!.create(offer('trent', 1)))).code).toBe(200);
    expect(
      (
        await code(
          as.trent!.create({
            ...offer('trent', 1),
            metadata: { name: 'two', namespace: peerNamespace('trent') },
          }),
        )
      ).code,
    ).toBe(403);
  });

  it('a Request over the size bound is ignored, with a condition naming the bound', async () => {
    const big = request('alice', 'huge', 1, { cloudInit: `#cloud-config\n# ${'x'.repeat(30_000)}\n` });
    expect((await code(createRequest('alice', big))).code).toBe(200);
    const r = await eventually('huge flagged', async () => {
      const o = await getRequest('alice', 'huge');
      return condition(o, 'Ready')?.reason === 'TooLarge' ? o : undefined;
    });
    expect(condition(r, 'Ready')).toMatchObject({ status: 'False', reason: 'TooLarge' });
    expect(condition(r, 'Ready')?.message).toMatch(/over the matchmaker's bound of 16384/);
    expect(await hostsOf('alice', 'huge')).toEqual([]);
  });
});

describe('item 5: a 200-character Request name does not break the pass', () => {
  it('the pass succeeds: Assignment created, Request status written, other peers unaffected', async () => {
    const long = `r${'x'.repeat(198)}a`;
    expect(long).toHaveLength(200);
    expect((await code(createRequest('alice', request('alice', long, 1)))).code).toBe(200);
    expect((await code(createRequest('carol', request('carol', 'small', 1)))).code).toBe(200);
    const [a] = await eventually('the long Request placed', async () => {
      const list = await hostsOf('alice', long);
      return list.length === 1 ? list : undefined;
    });
    expect(a!.metadata?.name).toBe(assignmentName('alice', long));
    expect(a!.metadata?.name?.length).toBeLessThanOrEqual(63);
    const r = await eventually('the long Request status', async () => {
      const o = await getRequest('alice', long);
      return o?.status?.assignedUnits === 1 ? o : undefined;
    });
    expect(r.status?.placements?.[0]).toMatchObject({ peer: 'bob', units: 1 });
    expect(condition(r, 'Satisfied')).toMatchObject({ status: 'True', reason: 'FullyAssigned' });
    await eventually('carol/small placed and reported', async () => {
      const o = await getRequest('carol', 'small');
      return o?.status?.assignedUnits === 1;
    });
    expect(mm!.lastPass()?.errors).toBe(0);
  });
});

describe("item 6: a host's report is checked before the requester sees it", () => {
  it('a hostname outside <requester>.<host domain>, a bad phase and extra VMs are not shown', async () => {
    expect((await code(createRequest('alice', request('alice', 'web', 1)))).code).toBe(200);
    const [a] = await eventually('alice/web placed on bob', async () => {
      const list = await hostsOf('alice', 'web');
      return list.length === 1 && list[0]!.spec.host === 'bob' ? list : undefined;
    });
    const patch = (vms: unknown[]) =>
      as.bob!.request('PATCH', `${BASE}/namespaces/peer-bob/assignments/${a!.metadata?.name}/status`, {
        body: { status: { phase: 'Running', vms } },
        contentType: 'application/merge-patch+json',
      });
    await patch([
      { name: 'web-0', phase: 'Running', hostname: 'login.yourbank.example' },
      { name: 'web-1', phase: 'Owned', hostname: 'web-1.alice.bob.example' },
    ]);
    const r = await eventually('the report checked', async () => {
      const o = await getRequest('alice', 'web');
      return condition(o, 'HostReports')?.status === 'False' ? o : undefined;
    });
    expect(JSON.stringify(r.status?.placements)).not.toContain('yourbank');
    expect(JSON.stringify(r.status?.placements)).not.toContain('Owned');
    expect(r.status?.placements).toEqual([
      { peer: 'bob', units: 1, vms: [{ name: 'web-0', phase: 'Running' }] },
    ]);
    expect(condition(r, 'HostReports')).toMatchObject({ reason: 'HostReportRejected' });
    expect(condition(r, 'HostReports')?.message).toContain(
      'host bob: VM web-0: hostname login.yourbank.example is not under alice.bob.example',
    );
    expect(condition(r, 'HostReports')?.message).toContain('host bob: reported 2 VMs for 1 unit(s)');
    // an honest report is shown as it is
    await as.bob!.request('PATCH', `${BASE}/namespaces/peer-bob/assignments/${a!.metadata?.name}/status`, {
      body: { status: { vms: null } },
      contentType: 'application/merge-patch+json',
    });
    await patch([{ name: 'web-0', phase: 'Running', hostname: 'web-0.alice.bob.example' }]);
    const ok = await eventually('the honest report shown', async () => {
      const o = await getRequest('alice', 'web');
      return condition(o, 'HostReports')?.status === 'True' ? o : undefined;
    });
    expect(ok.status?.placements).toEqual([
      {
        peer: 'bob',
        units: 1,
        vms: [{ name: 'web-0', phase: 'Running', hostname: 'web-0.alice.bob.example' }],
      },
    ]);
  });
});

describe("item 7: a host's refusal reaches the requester and its units go elsewhere", () => {
  it('Accepted=False at bob: shown with reason and host, re-solved on carol, bob excluded until the Request changes', async () => {
    expect((await code(createRequest('alice', request('alice', 'db', 1)))).code).toBe(200);
    const [a] = await eventually('alice/db placed on bob', async () => {
      const list = await hostsOf('alice', 'db');
      return list.length === 1 && list[0]!.spec.host === 'bob' ? list : undefined;
    });
    // carol offers only now, so that the first placement was on bob
    await as.carol!.create(offer('carol', 2));
    await as.bob!.request('PATCH', `${BASE}/namespaces/peer-bob/assignments/${a!.metadata?.name}/status`, {
      body: {
        status: {
          phase: 'Pending',
          conditions: [
            {
              type: 'Accepted',
              status: 'False',
              reason: 'DuplicateHostname',
              message: 'VM db-0 is claimed by Assignment default/squatter',
              lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
              observedGeneration: a!.metadata?.generation,
            },
          ],
        },
      },
      contentType: 'application/merge-patch+json',
    });
    const r = await eventually('refusal shown and re-solved', async () => {
      const o = await getRequest('alice', 'db');
      return condition(o, 'HostsAccepted')?.status === 'False' &&
        o?.status?.assignedUnits === 1 &&
        o.status.placements?.[0]?.peer === 'carol'
        ? o
        : undefined;
    });
    expect(condition(r, 'HostsAccepted')).toMatchObject({ reason: 'DuplicateHostname' });
    expect(condition(r, 'HostsAccepted')?.message).toContain('host bob refused: DuplicateHostname');
    expect(r.status?.placements).toEqual([expect.objectContaining({ peer: 'carol', units: 1 })]);
    const hosts = await hostsOf('alice', 'db');
    const onBob = hosts.find((x) => x.spec.host === 'bob');
    expect(onBob?.metadata?.annotations?.[REFUSED_GENERATION_ANNOTATION]).toBe(
      String(r.metadata?.generation),
    );
    // the Request changes: the refusal no longer holds, its record goes
    await as.alice!.request('PATCH', `${BASE}/namespaces/peer-alice/requests/db`, {
      body: { spec: { vm: { image: 'quay.io/containerdisks/fedora:41' } } },
      contentType: 'application/merge-patch+json',
    });
    await eventually('the refusal record gone after the Request changed', async () => {
      const o = await getRequest('alice', 'db');
      const list = await hostsOf('alice', 'db');
      return (
        condition(o, 'HostsAccepted')?.status === 'True' &&
        list.every((x) => x.metadata?.annotations?.[REFUSED_GENERATION_ANNOTATION] === undefined)
      );
    });
  });
});
