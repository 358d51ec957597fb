/**
 * bench-federation: 200 homes against one matchmaker cluster. Each home is a peer
 * namespace made by `federation invite`, driven by a load generator that uses that
 * peer's own token (heartbeat Lease, an Offer, a Request). The matchmaker runs as its
 * own process (the built CLI) with its default debounce, and the bench reports
 *   - time to settle the initial federation,
 *   - Request -> Assignment latency (a new Request until its Assignment exists),
 *   - re-solve after one change (an Offer grows until the matchmaker's pass is done),
 *     with the solver's own share from the matchmaker's metrics,
 *   - the matchmaker's peak RSS (VmHWM).
 * Usage: node dist/bench/federation/run.js [--peers 200] [--samples 20]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { ControlPlane, freePorts } from '../../dev/control-plane.js';
import { repoRoot } from '../../dev/paths.js';
import { peerNamespace } from '../../api/federation.js';
import { invitePeer, renderJoinKubeconfig } from '../../matchmaker/controller/invite.js';
import { KubeClient, type KubeObject } from '../../kube/client.js';
import { Resources as R } from '../../kube/kinds.js';
import { createObject } from '../../kube/apply.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const PEERS = arg('peers', 200);
const SAMPLES = arg('samples', 20);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const micro = (): string => new Date().toISOString().replace('Z', '000Z');

async function pool<T>(
  items: readonly T[],
  n: number,
  fn: (t: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

function stats(xs: number[]): { median: number; p95: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  return { median: q(0.5), p95: q(0.95), max: s[s.length - 1] ?? NaN };
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const cp = await ControlPlane.start({ name: 'bench-federation', thirdPartyCRDs: false });
  const admin = await KubeClient.fromKubeConfig(cp.kubeConfig());
  let mmPid: number | undefined;
  const child = { kill: (): void => {} };
  try {
    const peers = Array.from({ length: PEERS }, (_, i) => `home-${String(i).padStart(3, '0')}`);
    const clients: KubeClient[] = new Array<KubeClient>(PEERS);
    const tInvite = Date.now();
    await pool(peers, 16, async (peer, i) => {
      const kc = new KubeConfig();
      kc.loadFromString(renderJoinKubeconfig(await invitePeer(admin, peer, cp.server, undefined)));
      clients[i] = await KubeClient.fromKubeConfig(kc);
    });
    const inviteS = (Date.now() - tInvite) / 1000;

    const [metricsPort] = await freePorts(1);
    const mm = spawn(
      process.execPath,
      [
        join(repoRoot, 'dist', 'cli', 'pcloud.js'),
        'matchmaker',
        `--kubeconfig=${cp.kubeconfigPath}`,
        `--metrics-port=${metricsPort}`,
        '--metrics-host=127.0.0.1',
        '--peer-grace=60s',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, LOG_LEVEL: 'warn' } },
    );
    mmPid = mm.pid;
    child.kill = () => mm.kill('SIGTERM');
    const beat = async (peer: string, i: number): Promise<void> => {
      const c = clients[i]!;
      const ns = peerNamespace(peer);
      const lease = await c.get<KubeObject & { spec?: Record<string, unknown> }>(R.Lease, 'heartbeat', ns);
      if (!lease)
        await c.create({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: 'heartbeat', namespace: ns, labels: { 'personalcloud.io/heartbeat': 'true' } },
          spec: { holderIdentity: peer, renewTime: micro() },
        });
      else await c.update({ ...lease, spec: { ...lease.spec, renewTime: micro() } }).catch(() => undefined);
    };
    let beating = true;
    const beats = (async () => {
      while (beating) {
        await pool(peers, 8, beat);
        await sleep(10_000);
      }
    })();

    // the load: every home offers 2-4 units and requests 1-3 (a third spread), with its own token;
    // supply exceeds demand so that every new Request can be placed
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const spec = { unit: { cpu: 1, memory: '2Gi', storage: '10Gi' } };
    const vm = { image: 'quay.io/containerdisks/fedora:40' };
    const tLoad = Date.now();
    let requested = 0;
    await pool(peers, 16, async (peer, i) => {
      const c = clients[i]!;
      const ns = peerNamespace(peer);
      await createObject(c, R.Offer, {
        metadata: { name: 'spare', namespace: ns },
        spec: { peer, units: 2 + rand(3), ...spec },
      });
      const units = 1 + rand(3);
      requested += units;
      await createObject(c, R.Request, {
        metadata: { name: 'main', namespace: ns },
        spec: { peer, units, placement: rand(3) === 0 ? { spread: true } : {}, vm },
      });
    });
    const loadS = (Date.now() - tLoad) / 1000;
    // settled: every Request has a status from the current generation and the matchmaker is idle
    const settled = async (): Promise<void> => {
      let quiet = 0;
      let lastPasses = -1;
      for (;;) {
        const reqs = (await admin.list<KubeObject & { status?: { observedGeneration?: number } }>(R.Request))
          .items;
        const done = reqs.every((r) => r.status?.observedGeneration === r.metadata?.generation);
        const passes = await metric(metricsPort!, 'pcloud_matchmaker_pass_seconds_count');
        quiet = done && passes === lastPasses ? quiet + 1 : 0;
        lastPasses = passes;
        if (quiet >= 3) return;
        await sleep(500);
      }
    };
    await settled();
    const settleS = (Date.now() - tLoad) / 1000;
    const assignedInitial = (
      await admin.list<KubeObject & { spec: { units: number } }>(R.Assignment)
    ).items.reduce((t, a) => t + a.spec.units, 0);

    // Request -> Assignment latency: a home asks for one more unit
    const latencies: number[] = [];
    for (let s = 0; s < SAMPLES; s++) {
      const i = rand(PEERS);
      const peer = peers[i]!;
      const name = `extra-${s}`;
      const t = performance.now();
      await createObject(clients[i]!, R.Request, {
        metadata: { name, namespace: peerNamespace(peer) },
        spec: { peer, units: 1, vm },
      });
      for (;;) {
        const list = await admin.request<{ items: unknown[] }>(
          'GET',
          '/apis/personalcloud.io/v1alpha1/assignments',
          {
            query: { labelSelector: `personalcloud.io/requester=${peer},personalcloud.io/request=${name}` },
          },
        );
        if (list.items.length > 0) break;
        await sleep(20);
      }
      latencies.push(performance.now() - t);
    }

    // re-solve after one change: one Offer grows by one unit; until the pass that follows is done
    await settled();
    const resolve: number[] = [];
    const solveShare: number[] = [];
    for (let s = 0; s < SAMPLES; s++) {
      const host = peers[rand(PEERS)]!;
      const passes = await metric(metricsPort!, 'pcloud_matchmaker_pass_seconds_count');
      const solveSum = await metric(metricsPort!, 'pcloud_matchmaker_solve_seconds_sum');
      const solveCount = await metric(metricsPort!, 'pcloud_matchmaker_solve_seconds_count');
      const o = await clients[peers.indexOf(host)]!.get<KubeObject & { spec: { units: number } }>(
        R.Offer,
        'spare',
        peerNamespace(host),
      );
      const t = performance.now();
      await clients[peers.indexOf(host)]!.mergePatch(R.Offer, 'spare', peerNamespace(host), {
        spec: { units: (o?.spec.units ?? 0) + 1 },
      });
      while ((await metric(metricsPort!, 'pcloud_matchmaker_pass_seconds_count')) === passes) await sleep(10);
      resolve.push(performance.now() - t);
      const dc = (await metric(metricsPort!, 'pcloud_matchmaker_solve_seconds_count')) - solveCount;
      if (dc > 0)
        solveShare.push(
          (((await metric(metricsPort!, 'pcloud_matchmaker_solve_seconds_sum')) - solveSum) * 1000) / dc,
        );
      await settled();
    }
    beating = false;
    const status = readFileSync(`/proc/${mmPid}/status`, 'utf8');
    const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    await beats;
    const lat = stats(latencies);
    const res = stats(resolve);
    const sol = stats(solveShare);
    const f = (x: number): string => x.toFixed(0);
    const lines = [
      `bench-federation: ${PEERS} homes (peer namespaces, each driven with its own token), one matchmaker process, debounce 500 ms quiet / 5 s max`,
      `  invite ${PEERS} peers: ${inviteS.toFixed(1)} s; load (Offer + Request each): ${loadS.toFixed(1)} s; initial federation settled after ${settleS.toFixed(1)} s (requested ${requested}, assigned ${assignedInitial})`,
      '',
      '| measure | median | p95 | max |',
      '| --- | --- | --- | --- |',
      `| Request created → its Assignment exists (ms, n=${latencies.length}) | ${f(lat.median)} | ${f(lat.p95)} | ${f(lat.max)} |`,
      `| one Offer changed → matchmaker pass done (ms, n=${resolve.length}) | ${f(res.median)} | ${f(res.p95)} | ${f(res.max)} |`,
      `| of which the solver (ms, n=${solveShare.length}) | ${sol.median.toFixed(1)} | ${sol.p95.toFixed(1)} | ${sol.max.toFixed(1)} |`,
      `| matchmaker peak RSS (MiB) | ${(hwmKb / 1024).toFixed(0)} | | |`,
      '',
      `total wall time ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    for (const c of clients) c?.close();
  } finally {
    child.kill();
    await sleep(500);
    admin.close();
    await cp.stop();
  }
}

await main();
