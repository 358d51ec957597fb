/**
 * The matchmaker cluster with real per-peer credentials: `federation invite` makes a
 * namespace, account, Role and token per peer; each peer can write only its own
 * namespace (proved with its own token against the real API server); the matchmaker
 * controller turns the peers' Offers and Requests into optimal Assignments in the
 * hosts' namespaces and writes Offer and Request status.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { matchmakerConfigFromOptions } from '../cli/config.js';
import { ControlPlane } from '../dev/control-plane.js';
import { createLogger } from '../kube/logger.js';
import { ApiError, KubeClient, type KubeObject } from '../kube/client.js';
import { solve } from '../matchmaker/solver/index.js';
import { peerNamespace } from '../api/federation.js';
import { invitePeer, renderJoinKubeconfig } from '../matchmaker/controller/invite.js';
import { buildInstance } from '../matchmaker/matching/index.js';
import { runMatchmaker, type RunningMatchmaker } from '../matchmaker/controller/matchmaker-controller.js';
import { parseJoinKubeconfig } from '../operator/federation/join.js';
import { eventually as pollUntil } from '../dev/eventually.js';
import { Resources as R } from '../kube/kinds.js';

let cp: ControlPlane;
let admin: KubeClient;
let mm: RunningMatchmaker | undefined;
const peers = ['alice', 'bob', 'carol'] as const;
const as: Record<string, KubeClient> = {};
const joinFiles: Record<string, string> = {};

/** Polls with this file's defaults (60 s, every 200 ms); see dev/eventually.ts. */
const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) =>
  pollUntil(what, fn, { timeoutMs, intervalMs: 200 });

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof ApiError) return err.statusCode;
    throw err;
  }
}

const offer = (peer: string, units: number, excludePeers: string[] = []): KubeObject => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Offer',
  metadata: { name: `${peer}-offer`, namespace: peerNamespace(peer) },
  spec: { peer, units, unit: { cpu: 1, memory: '1Gi', storage: '5Gi' }, excludePeers },
});
const request = (
  peer: string,
  name: string,
  units: number,
  placement: Record<string, unknown> = {},
): KubeObject => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Request',
  metadata: { name, namespace: peerNamespace(peer) },
  spec: { peer, units, placement, vm: { image: 'quay.io/containerdisks/fedora:40' } },
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

beforeAll(async () => {
  cp = await ControlPlane.start({ name: 'matchmaker-int' });
  admin = await KubeClient.fromKubeConfig(cp.kubeConfig());
  for (const peer of peers) {
    const creds = await invitePeer(admin, peer, cp.server, undefined, { domain: `${peer}.example` });
    joinFiles[peer] = renderJoinKubeconfig(creds);
    const kc = new KubeConfig();
    kc.loadFromString(joinFiles[peer]);
    as[peer] = await KubeClient.fromKubeConfig(kc);
  }
});

afterAll(async () => {
  await mm?.stop();
  for (const c of Object.values(as)) c.close();
  admin?.close();
  await cp?.stop();
});

describe('federation invite', () => {
  it('is idempotent: inviting again keeps the same token', async () => {
    const again = await invitePeer(admin, 'alice', cp.server, undefined, { domain: 'alice.example' });
    expect(renderJoinKubeconfig(again)).toBe(joinFiles.alice);
  });

  it('prints a join kubeconfig that the join check accepts', () => {
    expect(parseJoinKubeconfig(joinFiles.bob!)).toMatchObject({
      peer: 'bob',
      namespace: 'peer-bob',
      server: cp.server,
    });
  });
});

describe('RBAC: each peer only in its own namespace (real tokens, real API server)', () => {
  it('lets a peer write its own Offers, Requests and heartbeat Lease', async () => {
    for (const peer of peers) {
      await as[peer]!.create(heartbeat(peer));
    }
    await as.alice!.create(offer('alice', 2));
    await as.bob!.create(offer('bob', 3, ['carol']));
    await as.carol!.create(offer('carol', 2));
    await as.alice!.request('POST', `/apis/personalcloud.io/v1alpha1/namespaces/peer-alice/requests`, {
      body: request('alice', 'web', 2, { spread: true }),
    });
    await as.carol!.request('POST', `/apis/personalcloud.io/v1alpha1/namespaces/peer-carol/requests`, {
      body: request('carol', 'batch', 4),
    });
    expect(await status(as.alice!.get(R.Offer, 'alice-offer', 'peer-alice'))).toBe(200);
  });

  it("refuses everything in another peer's namespace and anything cluster-wide", async () => {
    const a = as.alice!;
    const base = '/apis/personalcloud.io/v1alpha1';
    const refused = [
      a.get(R.Offer, 'bob-offer', 'peer-bob'),
      a.list(R.Offer, { namespace: 'peer-bob' }),
      a.list(R.Request, { namespace: 'peer-carol' }),
      a.list(R.Assignment, { namespace: 'peer-bob' }),
      a.request('GET', `${base}/offers`),
      a.request('GET', `${base}/requests`),
      a.request('GET', `${base}/assignments`),
      a.request('GET', '/api/v1/namespaces'),
      a.create({ ...offer('bob', 9), metadata: { name: 'forged', namespace: 'peer-bob' } }),
      a.request('PATCH', `${base}/namespaces/peer-bob/offers/bob-offer`, {
        body: { spec: { units: 0 } },
        contentType: 'application/merge-patch+json',
      }),
      a.delete(R.Offer, 'bob-offer', 'peer-bob'),
      a.update({ ...heartbeat('bob') }),
      // in its own namespace: no Assignments of its own making, no status of its Requests, no Secrets
      a.create({
        apiVersion: 'personalcloud.io/v1alpha1',
        kind: 'Assignment',
        metadata: { name: 'self', namespace: 'peer-alice' },
        spec: { requester: 'bob', request: 'x', host: 'alice', units: 1, vm: { image: 'x' } },
      }),
      a.request('PATCH', `${base}/namespaces/peer-alice/requests/web/status`, {
        body: { status: { assignedUnits: 99 } },
        contentType: 'application/merge-patch+json',
      }),
      a.request('GET', '/api/v1/namespaces/peer-alice/secrets'),
    ];
    const codes = await Promise.all(refused.map(status));
    expect(codes).toEqual(refused.map(() => 403));
  });
});

describe('matchmaker controller', () => {
  it('writes optimal Assignments into the hosts namespaces and status on Offers and Requests', async () => {
    mm = await runMatchmaker(
      matchmakerConfigFromOptions({
        identity: 'int',
        metricsPort: '0',
        metricsHost: '127.0.0.1',
        peerGrace: '120s',
        debounce: '200ms',
      }),
      {
        kubeConfig: cp.kubeConfig(),
        log: createLogger(process.env.LOG_LEVEL ?? 'warn'),
        defaultMetrics: false,
      },
    );
    // alice: web 2 spread; carol: batch 4. Offers: alice 2, bob 3 (excludes carol), carol 2.
    // web can go to bob and carol (1 each); batch only to alice (2) -> total 4 of 6.
    const listAll = async (): Promise<KubeObject[]> => (await admin.list(R.Assignment)).items;
    const assignments = await eventually('assignments', async () => {
      const items = await listAll();
      return items.reduce((t, a) => t + Number((a.spec as { units: number }).units), 0) === 4
        ? items
        : undefined;
    });
    const offers = (
      await admin.list<KubeObject & { spec: { peer: string; units: number; excludePeers?: string[] } }>(
        R.Offer,
      )
    ).items;
    const requests = (await admin.list<KubeObject & { spec: { peer: string; units: number } }>(R.Request))
      .items;
    const m = buildInstance({
      present: new Set(peers),
      offers: offers as never,
      requests: requests as never,
      assignments: [],
    });
    expect(solve(m.instance).total).toBe(4);
    const where = assignments
      .map((a) => `${a.metadata?.namespace}/${a.metadata?.name}:${(a.spec as { units: number }).units}`)
      .sort();
    expect(where).toEqual(['peer-alice/carol.batch:2', 'peer-bob/alice.web:1', 'peer-carol/alice.web:1']);

    const web = await eventually('web status', async () => {
      const r = await as.alice!.get<KubeObject & { status?: { assignedUnits?: number } }>(
        R.Request,
        'web',
        'peer-alice',
      );
      return r?.status?.assignedUnits === 2 ? r : undefined;
    });
    expect(web.status).toMatchObject({
      placements: [
        { peer: 'bob', units: 1 },
        { peer: 'carol', units: 1 },
      ],
      conditions: expect.arrayContaining([
        expect.objectContaining({ type: 'Satisfied', status: 'True', reason: 'FullyAssigned' }),
      ]) as unknown,
    });
    const batch = await eventually('batch status', async () => {
      const r = await as.carol!.get<KubeObject & { status?: { assignedUnits?: number } }>(
        R.Request,
        'batch',
        'peer-carol',
      );
      return r?.status?.assignedUnits === 2 ? r : undefined;
    });
    expect(batch.status).toMatchObject({
      conditions: expect.arrayContaining([
        expect.objectContaining({ type: 'Satisfied', status: 'False', reason: 'PartiallyAssigned' }),
      ]) as unknown,
    });
    const aliceOffer = await eventually('offer status', async () => {
      const o = await as.alice!.get<KubeObject & { status?: { allocatedUnits?: number } }>(
        R.Offer,
        'alice-offer',
        'peer-alice',
      );
      return o?.status?.allocatedUnits === 2 ? o : undefined;
    });
    expect(aliceOffer.status?.allocatedUnits).toBe(2);
  });

  it('lets a host read its Assignments and report their status, but nobody else', async () => {
    const a = await as.bob!.get(R.Assignment, 'alice.web', 'peer-bob');
    expect(a?.spec).toMatchObject({ requester: 'alice', host: 'bob', units: 1 });
    expect(await status(as.alice!.get(R.Assignment, 'alice.web', 'peer-bob'))).toBe(403);
    expect(
      await status(
        as.bob!.request(
          'PATCH',
          '/apis/personalcloud.io/v1alpha1/namespaces/peer-bob/assignments/alice.web/status',
          {
            body: {
              status: {
                phase: 'Provisioning',
                vms: [{ name: 'web-0', phase: 'Provisioning', hostname: 'web-0.alice.bob.example' }],
              },
            },
            contentType: 'application/merge-patch+json',
          },
        ),
      ),
    ).toBe(200);
    // the requester sees the host's report in its own Request's status
    await eventually('vm hostname in the requester status', async () => {
      const r = await as.alice!.get<
        KubeObject & { status?: { placements?: { peer: string; vms?: { hostname?: string }[] }[] } }
      >(R.Request, 'web', 'peer-alice');
      return (
        r?.status?.placements?.find((p) => p.peer === 'bob')?.vms?.[0]?.hostname === 'web-0.alice.bob.example'
      );
    });
    expect(
      await status(
        as.bob!.request(
          'PATCH',
          '/apis/personalcloud.io/v1alpha1/namespaces/peer-bob/assignments/alice.web',
          {
            body: { spec: { units: 3 } },
            contentType: 'application/merge-patch+json',
          },
        ),
      ),
    ).toBe(403);
  });

  it('withdrawing a Request deletes its Assignments', async () => {
    await as.carol!.delete(R.Request, 'batch', 'peer-carol');
    await eventually(
      'carol.batch gone',
      async () => (await admin.get(R.Assignment, 'carol.batch', 'peer-alice')) === undefined,
    );
  });
});
