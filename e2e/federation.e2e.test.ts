/**
 * The federation end to end: a matchmaker cluster and three homes, each its own
 * kube-apiserver, every controller its own process. Offers and Requests are applied
 * with kubectl at the homes; the matchmaker's Assignments are optimal (the solver's
 * total on the same objects), the hosts run the VMs, the requesters see where and
 * under which hostname in their local Request status. Then churn: a home's control
 * plane dies (its heartbeat lapses: Lost, re-solved elsewhere, nothing else moves),
 * it returns (nothing that runs moves), the matchmaker is cut off (hosts keep their
 * VMs) and catches up, and a withdrawn Request is torn down at every host.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Assignment, Offer, Request } from '../generated/personalcloud.js';
import { LOST_ANNOTATION, peerNamespace } from '../api/federation.js';
import { buildInstance } from '../matchmaker/matching/index.js';
import { solve } from '../matchmaker/solver/index.js';
import { ApiError, type KubeClient, type KubeObject } from '../kube/client.js';
import { CLI, LocalFederation } from '../dev/federation-harness.js';
import { repoRoot } from '../dev/paths.js';
import { consistently, eventually as pollUntil } from '../dev/eventually.js';
import { Resources as R } from '../kube/kinds.js';

const HOMES = ['alice', 'bob', 'carol'] as const;
/** The matchmaker's --peer-grace and the homes' --heartbeat-interval, in seconds. */
const PEER_GRACE_S = 6;
const HEARTBEAT_S = 1;
let fed: LocalFederation;

/** Polls with this file's defaults (120 s, every 300 ms); see dev/eventually.ts. */
const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 120_000) =>
  pollUntil(what, fn, { timeoutMs, intervalMs: 300 });

const offer = (peer: string, units: number) => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Offer',
  metadata: { name: `${peer}-spare`, namespace: 'default' },
  spec: { peer, units, unit: { cpu: 1, memory: '1Gi', storage: '5Gi' } },
});
const request = (peer: string, name: string, units: number, placement: Record<string, unknown>) => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Request',
  metadata: { name, namespace: 'default' },
  spec: {
    peer,
    units,
    placement,
    vm: { image: 'quay.io/containerdisks/fedora:40', ports: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
  },
});

type A = Assignment & KubeObject;
const upstreamAssignments = async (): Promise<A[]> => (await fed.mmClient.list<A>(R.Assignment)).items;
const live = (as: A[]): A[] => as.filter((a) => a.metadata?.annotations?.[LOST_ANNOTATION] === undefined);
const total = (as: A[]): number => as.reduce((t, a) => t + a.spec.units, 0);
const summary = (as: A[]): string[] =>
  as
    .map(
      (a) =>
        `${a.spec.host}:${a.metadata?.name}:${a.spec.units}${a.metadata?.annotations?.[LOST_ANNOTATION] ? ':lost' : ''}`,
    )
    .sort();

/** The solver's optimum on the objects in the matchmaker cluster, over the present peers. */
async function optimum(present: readonly string[]): Promise<number> {
  const offers = (await fed.mmClient.list<Offer & KubeObject>(R.Offer)).items;
  const requests = (await fed.mmClient.list<Request & KubeObject>(R.Request)).items;
  return solve(buildInstance({ present: new Set(present), offers, requests, assignments: [] }).instance)
    .total;
}

async function vmsAt(host: string, requester: string): Promise<string[]> {
  const h = fed.home(host);
  const list = await h.client
    .list(R.VirtualMachine, { namespace: `tenant-${requester}` })
    .catch(() => ({ items: [] }));
  return list.items
    .filter((v) => !v.metadata?.deletionTimestamp)
    .map((v) => v.metadata?.name ?? '')
    .sort();
}

async function kubectlApply(home: string, objs: unknown[]): Promise<void> {
  const res = await fed.home(home).cp.kubectl(['apply', '--server-side', '-f', '-'], {
    input: objs.map((o) => stringify(o)).join('---\n'),
  });
  if (res.code !== 0) throw new Error(res.stderr);
}

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof ApiError) return err.statusCode;
    throw err;
  }
}

/** Every live Assignment at the matchmaker has its VMs at its host. */
async function vmsMatch(as: A[]): Promise<boolean> {
  for (const a of live(as)) {
    const vms = await vmsAt(a.spec.host, a.spec.requester);
    const mine = vms.filter((v) => v.startsWith(`${a.spec.request}-`));
    if (mine.length !== a.spec.units) return false;
  }
  return true;
}

beforeAll(async () => {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'inherit' });
  fed = await LocalFederation.start({
    homes: HOMES,
    peerGrace: `${PEER_GRACE_S}s`,
    heartbeatSeconds: HEARTBEAT_S,
    logDir: process.env.PCLOUD_E2E_LOGS,
  });
});

afterAll(async () => {
  await fed?.stop();
});

describe('federation across real control planes', () => {
  let before: A[] = [];

  it('turns Offers and Requests applied at the homes into optimal Assignments, VMs and endpoints', async () => {
    await kubectlApply('alice', [offer('alice', 2), request('alice', 'batch', 2, {})]);
    await kubectlApply('bob', [offer('bob', 2)]);
    await kubectlApply('carol', [offer('carol', 2), request('carol', 'web', 2, { spread: true })]);
    await eventually('Offers and Requests mirrored', async () => {
      return (
        (await fed.mmClient.list(R.Request)).items.length === 2 &&
        (await fed.mmClient.list(R.Offer)).items.length === 3
      );
    });
    const best = await optimum(HOMES);
    expect(best).toBe(4);
    before = await eventually('optimal assignments with their VMs', async () => {
      const as = await upstreamAssignments();
      return total(live(as)) === best && (await vmsMatch(as)) ? as : undefined;
    });
    // each requester sees where its VMs run and their hostnames, at home
    for (const [home, name] of [
      ['alice', 'batch'],
      ['carol', 'web'],
    ] as const) {
      const r = await eventually(`${home}/${name} placements at home`, async () => {
        const o = await fed.home(home).client.get<Request & KubeObject>(R.Request, name, 'default');
        const vms = (o?.status?.placements ?? []).flatMap((p) => p.vms ?? []);
        return o?.status?.assignedUnits === 2 && vms.length === 2 && vms.every((v) => v.hostname)
          ? o
          : undefined;
      });
      for (const p of r.status?.placements ?? [])
        for (const vm of p.vms ?? []) expect(vm.hostname).toBe(`${vm.name}.${home}.${p.peer}.pcloud.test`);
      expect(r.status?.conditions?.find((c) => c.type === 'Satisfied')).toMatchObject({
        status: 'True',
        reason: 'FullyAssigned',
      });
    }
    const kubectlView = await fed.home('carol').cp.kubectl(['get', 'requests', '-A']);
    expect(kubectlView.stdout).toContain('web');
  });

  it("refuses each peer's credentials outside its own namespace", async () => {
    for (const me of HOMES) {
      const c: KubeClient = fed.home(me).asPeer;
      for (const other of HOMES.filter((h) => h !== me)) {
        expect(await code(c.list(R.Offer, { namespace: peerNamespace(other) }))).toBe(403);
        expect(await code(c.list(R.Request, { namespace: peerNamespace(other) }))).toBe(403);
        expect(await code(c.list(R.Assignment, { namespace: peerNamespace(other) }))).toBe(403);
      }
      expect(await code(c.list(R.Assignment))).toBe(403);
      expect(await code(c.list(R.Offer))).toBe(403);
      expect(await code(c.list(R.Assignment, { namespace: peerNamespace(me) }))).toBe(200);
    }
  });

  let away = '';
  it("re-solves a dead home's units elsewhere with minimal moves and marks its Assignments Lost", async () => {
    // the busiest host goes away
    const byHost = new Map<string, number>();
    for (const a of live(before)) byHost.set(a.spec.host, (byHost.get(a.spec.host) ?? 0) + a.spec.units);
    away = [...byHost].sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]))[0]![0];
    await fed.home(away).cp.stopApiServer();
    const remaining = HOMES.filter((h) => h !== away);
    const best = await optimum(remaining);
    const after = await eventually(`re-solve without ${away}`, async () => {
      const as = await upstreamAssignments();
      const lostOk = as
        .filter((a) => a.spec.host === away)
        .every((a) => a.metadata?.annotations?.[LOST_ANNOTATION] && a.status?.phase === 'Lost');
      return lostOk &&
        total(live(as)) === best &&
        live(as).every((a) => a.spec.host !== away) &&
        (await vmsMatch(as))
        ? as
        : undefined;
    });
    // nothing that ran on a present host moved or shrank
    for (const a of live(before).filter((x) => x.spec.host !== away)) {
      const now = after.find((x) => x.metadata?.name === a.metadata?.name && x.spec.host === a.spec.host);
      expect(now?.spec.units ?? 0).toBeGreaterThanOrEqual(a.spec.units);
    }
    expect(after.filter((a) => a.spec.host === away).length).toBeGreaterThan(0);
  });

  it('takes the home back without moving anything that runs', async () => {
    const running = live(await upstreamAssignments());
    await fed.home(away).cp.restartApiServer();
    const best = await optimum(HOMES);
    const after = await eventually(`${away} back and settled`, async () => {
      const as = await upstreamAssignments();
      const noLost = as.every((a) => a.metadata?.annotations?.[LOST_ANNOTATION] === undefined);
      return noLost && total(as) === best && (await vmsMatch(as)) ? as : undefined;
    });
    for (const a of running) {
      const now = after.find((x) => x.metadata?.name === a.metadata?.name && x.spec.host === a.spec.host);
      expect(now?.spec.units).toBe(a.spec.units);
    }
    // what the returning home ran and is no longer wanted is gone there too
    for (const a of before.filter((x) => x.spec.host === away)) {
      const still = after.find((x) => x.spec.host === away && x.metadata?.name === a.metadata?.name);
      await eventually(`VMs of ${a.metadata?.name} at ${away}`, async () => {
        const vms = (await vmsAt(away, a.spec.requester)).filter((v) => v.startsWith(`${a.spec.request}-`));
        return vms.length === (still?.spec.units ?? 0);
      });
    }
    before = after;
  });

  it('keeps hosted VMs while the matchmaker is unreachable, then catches up: a withdrawn Request goes at every host', async () => {
    const hosts = live(before)
      .filter((a) => a.spec.requester === 'carol')
      .map((a) => a.spec.host);
    expect(hosts.length).toBe(2);
    const vmCount = async (): Promise<number> => {
      let n = 0;
      for (const h of HOMES) n += (await vmsAt(h, 'alice')).length + (await vmsAt(h, 'carol')).length;
      return n;
    };
    const vmsBefore = await vmCount();
    await fed.matchmaker.stopApiServer();
    // Longer than the peer grace: were the homes to act on the outage, they would have by then.
    await consistently(
      'hosted VMs kept while the matchmaker is down',
      async () => (await vmCount()) === vmsBefore,
      {
        forMs: PEER_GRACE_S * 1500,
      },
    );
    // withdraw while cut off: the home deletes its Request; the upstream copy follows on reconnect
    const del = await fed
      .home('carol')
      .cp.kubectl(['delete', 'request', 'web', '-n', 'default', '--wait=false']);
    expect(del.code).toBe(0);
    await consistently(
      'hosted VMs kept while the withdrawal cannot reach the matchmaker',
      async () => (await vmCount()) === vmsBefore,
      {
        forMs: HEARTBEAT_S * 2000,
      },
    );
    await fed.matchmaker.restartApiServer();
    await eventually('web withdrawn everywhere', async () => {
      const as = await upstreamAssignments();
      if (as.some((a) => a.spec.request === 'web')) return false;
      for (const h of hosts) if ((await vmsAt(h, 'carol')).length > 0) return false;
      return true;
    });
    // alice's batch is untouched
    const as = await upstreamAssignments();
    expect(summary(as.filter((a) => a.spec.requester === 'alice'))).toEqual(
      summary(before.filter((a) => a.spec.requester === 'alice')),
    );
  });

  it('the CLI: invite is idempotent and its token works only in its namespace; join checks the file', () => {
    const pcloud = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    const first = pcloud('federation', 'invite', 'dave', `--kubeconfig=${fed.matchmaker.kubeconfigPath}`);
    expect(first.status).toBe(0);
    const again = pcloud('federation', 'invite', 'dave', `--kubeconfig=${fed.matchmaker.kubeconfigPath}`);
    expect(again.stdout).toBe(first.stdout);
    const file = join(fed.logDir, 'dave-join.kubeconfig');
    writeFileSync(file, first.stdout);
    const kubectl = (args: string[]) =>
      spawnSync(join(repoRoot, '.cache', 'bin', 'kubectl'), [`--kubeconfig=${file}`, ...args], {
        encoding: 'utf8',
      });
    expect(kubectl(['get', 'offers', '-n', 'peer-dave']).status).toBe(0);
    const denied = kubectl(['get', 'offers', '-n', 'peer-alice']);
    expect(denied.status).not.toBe(0);
    expect(denied.stderr).toContain('forbidden');
    // join: a good file is stored (re-joining alice changes nothing), a bad one is refused by name
    const aliceFile = join(fed.logDir, 'alice-join.kubeconfig');
    writeFileSync(aliceFile, fed.home('alice').joinKubeconfig);
    const joined = pcloud(
      'federation',
      'join',
      aliceFile,
      `--kubeconfig=${fed.home('alice').cp.kubeconfigPath}`,
    );
    expect(joined.stdout).toContain('joined as peer alice');
    const bad = join(fed.logDir, 'bad.kubeconfig');
    writeFileSync(bad, first.stdout.replace('namespace: peer-dave', 'namespace: default'));
    const refused = pcloud('federation', 'join', bad, `--kubeconfig=${fed.home('alice').cp.kubeconfigPath}`);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('namespace must be peer-<name>');
  });
});
