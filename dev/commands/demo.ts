import { startDemoPortal, type DemoPortal } from '../demo-portal.js';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { parseAllDocuments, stringify } from 'yaml';
import { BIN_DIR } from '../control-plane.js';
import { LocalFederation } from '../federation-harness.js';
import { repoRoot } from '../paths.js';
import type { Assignment, Offer, Request } from '../../generated/personalcloud.js';
import { LOST_ANNOTATION } from '../../api/federation.js';
import { buildInstance } from '../../matchmaker/matching/index.js';
import { solve } from '../../matchmaker/solver/index.js';
import type { KubeObject } from '../../kube/client.js';
import { Resources as R } from '../../kube/kinds.js';

export const EXAMPLES_DIR = join(repoRoot, 'examples');
export const DEMO_HOMES = ['alice', 'bob', 'carol'];

interface DemoOptions {
  once?: boolean;
  json?: boolean;
  homes?: string;
}

export interface DemoPlacement {
  requester: string;
  request: string;
  host: string;
  units: number;
  vms: { name: string; hostname: string; phase: string }[];
}

export interface DemoResult {
  peers: string[];
  offered: number;
  requested: number;
  assigned: number;
  optimal: number;
  placements: DemoPlacement[];
}

/**
 * examples/ as one home would write them: the examples are alice's; at home i, alice
 * becomes homes[i] and the peers she names (bob, carol) the next homes around the
 * ring, so every home offers and requests the same shapes. Tenants are left out: at a
 * home they are made by the operator from the Assignments it hosts.
 */
export function examplesFor(
  homes: readonly string[],
  i: number,
  files: readonly { name: string; text: string }[],
): KubeObject[] {
  const n = homes.length;
  const rename: Record<string, string> = {
    alice: homes[i]!,
    bob: homes[(i + 1) % n]!,
    carol: homes[(i + 2) % n]!,
  };
  const peer = (p: string): string => rename[p] ?? p;
  const out: KubeObject[] = [];
  for (const f of files) {
    for (const doc of parseAllDocuments(f.text)) {
      const o = doc.toJS() as (KubeObject & { spec?: Record<string, unknown> }) | null;
      if (!o || (o.kind !== 'Offer' && o.kind !== 'Request')) continue;
      const spec = o.spec ?? {};
      spec.peer = peer(String(spec.peer));
      const placement = spec.placement as { peers?: { peer: string; max: number }[] } | undefined;
      // a ring of fewer than three homes would name the home itself: drop such entries
      if (placement?.peers)
        placement.peers = placement.peers
          .map((p) => ({ ...p, peer: peer(p.peer) }))
          .filter((p) => p.peer !== spec.peer);
      o.metadata = {
        ...o.metadata,
        name: String(o.metadata?.name).replace(/^alice/, homes[i]!),
        namespace: 'default',
      };
      out.push(o);
    }
  }
  return out;
}

type A = Assignment & KubeObject;

/** The federation as the matchmaker sees it, and the solver's optimum on the same Offers and Requests. */
export async function snapshot(fed: LocalFederation, peers: readonly string[]): Promise<DemoResult> {
  const offers = (await fed.mmClient.list<Offer & KubeObject>(R.Offer)).items;
  const requests = (await fed.mmClient.list<Request & KubeObject>(R.Request)).items;
  const assignments = (await fed.mmClient.list<A>(R.Assignment)).items.filter(
    (a) => a.metadata?.annotations?.[LOST_ANNOTATION] === undefined && !a.metadata?.deletionTimestamp,
  );
  const m = buildInstance({ present: new Set(peers), offers, requests, assignments: [] });
  const placements = assignments
    .map((a) => ({
      requester: a.spec.requester,
      request: a.spec.request,
      host: a.spec.host,
      units: a.spec.units,
      vms: (a.status?.vms ?? []).map((v) => ({
        name: v.name,
        hostname: v.hostname ?? '',
        phase: v.phase ?? a.status?.phase ?? 'Pending',
      })),
    }))
    .sort(
      (x, y) =>
        x.requester.localeCompare(y.requester) ||
        x.request.localeCompare(y.request) ||
        x.host.localeCompare(y.host),
    );
  return {
    peers: [...peers],
    offered: offers.reduce((t, o) => t + o.spec.units, 0),
    requested: requests.reduce((t, r) => t + r.spec.units, 0),
    assigned: placements.reduce((t, p) => t + p.units, 0),
    optimal: solve(m.instance).total,
    placements,
  };
}

/** Steady: the optimum is assigned, every VM reports a hostname, and each home's Requests show it. */
async function steady(fed: LocalFederation, peers: readonly string[]): Promise<DemoResult | undefined> {
  const s = await snapshot(fed, peers);
  if (s.requested === 0 || s.assigned !== s.optimal) return undefined;
  if (s.placements.some((p) => p.vms.length !== p.units || p.vms.some((v) => !v.hostname))) return undefined;
  for (const peer of peers) {
    const local = (await fed.home(peer).client.list<Request & KubeObject>(R.Request)).items;
    const want = s.placements.filter((p) => p.requester === peer);
    for (const r of local) {
      const units = want.filter((p) => p.request === r.metadata?.name).reduce((t, p) => t + p.units, 0);
      const vms = (r.status?.placements ?? []).flatMap((p) => p.vms ?? []);
      if (r.status?.assignedUnits !== units || vms.length !== units || vms.some((v) => !v.hostname))
        return undefined;
    }
  }
  return s;
}

export function formatTable(s: DemoResult): string {
  const rows = [['REQUESTER', 'REQUEST', 'HOST', 'UNITS', 'PHASE', 'VM HOSTNAMES']];
  for (const p of s.placements) {
    const phases = [...new Set(p.vms.map((v) => v.phase))].join(',');
    rows.push([
      p.requester,
      p.request,
      p.host,
      String(p.units),
      phases,
      p.vms.map((v) => v.hostname).join(' '),
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) =>
    r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '),
  );
  lines.push('');
  lines.push(
    `peers ${s.peers.join(', ')}: offered ${s.offered}, requested ${s.requested}, assigned ${s.assigned}, optimal ${s.optimal}` +
      (s.assigned === s.optimal ? ' (request-optimal)' : ''),
  );
  return lines.join('\n');
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `the demo did not reach ${what} in ${timeoutMs / 1000}s${last instanceof Error ? `: ${last.message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * `pcloud demo`: a local federation — a matchmaker and several homes, each a real
 * control plane with its controllers as separate processes — with examples/ applied
 * at every home; prints who hosts what and the matchmaking summary.
 */
export async function runDemo(opts: DemoOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const homes = (opts.homes ?? DEMO_HOMES.join(','))
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  if (homes.length < 2) throw new Error('--homes needs at least two homes');
  const log = opts.json ? process.stderr : out;
  const say = (line = ''): void => void log.write(`${line}\n`);
  const started = Date.now();
  say(
    `Starting a matchmaker and ${homes.length} homes (${homes.join(', ')}), each its own control plane ...`,
  );
  const fed = await LocalFederation.start({
    homes,
    peerGrace: '20s',
    heartbeatSeconds: 3,
    progress: say,
    logLevel: 'warn',
  });
  let stopping = false;
  let portal: DemoPortal | undefined;
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
  };
  process.once('SIGINT', onSignal);
  try {
    const files = readdirSync(EXAMPLES_DIR)
      .filter((f) => f.endsWith('.yaml'))
      .sort()
      .map((f) => ({ name: f, text: readFileSync(join(EXAMPLES_DIR, f), 'utf8') }));
    say(
      `Controllers running (matchmaker + one operator per home). Applying examples/ at each home (peer names rewritten):`,
    );
    await Promise.all(
      homes.map(async (h, i) => {
        const objs = examplesFor(homes, i, files);
        const res = await fed.home(h).cp.kubectl(['apply', '--server-side', '-f', '-'], {
          input: objs.map((o) => stringify(o)).join('---\n'),
        });
        if (res.code !== 0) throw new Error(`kubectl apply at ${h} failed:\n${res.stderr}`);
        say(`  ${h}: ${objs.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ')}`);
      }),
    );
    say('Waiting for the matchmaker, the hosts and the requesters to settle ...');
    const result = await waitFor('a steady state', () => steady(fed, homes), 240_000);
    say(`Steady after ${((Date.now() - started) / 1000).toFixed(1)} s.\n`);
    if (opts.json) out.write(`${JSON.stringify(result)}\n`);
    else {
      say(formatTable(result));
      say(
        '\n(No KubeVirt runs in these local control planes: VMs are written and admitted, but nothing boots them.)',
      );
    }
    const interactive = opts.once !== true && process.stdin.isTTY === true;
    if (!interactive) return;
    try {
      portal = await startDemoPortal(fed, homes[0]!);
      say(`\nThe portal of ${portal.host} (docs/portal.md): ${portal.url}`);
      say(`  sign in as demo@${portal.requester} (valid 10 minutes, once): ${portal.link}`);
      say(
        `  a fresh link: bin/pcloud portal login-link --kubeconfig ${fed.home(portal.requester).cp.kubeconfigPath} \\`,
      );
      say(`      --peer ${portal.requester} --user demo --host ${portal.host} --portal-url ${portal.url}`);
      say(`  the owner of ${portal.host} signs in with the token ${portal.ownerToken}`);
      say('  (no VM boots here, so opening a port stays Pending: there is no VM instance to forward to)');
    } catch (err) {
      say(`\n(The portal did not start: ${err instanceof Error ? err.message : String(err)})`);
    }
    say('\nThe federation keeps running until Ctrl-C. In another shell:');
    say(`  export PATH=${BIN_DIR}:$PATH`);
    say(
      `  kubectl --kubeconfig ${fed.matchmaker.kubeconfigPath} get offers,requests,assignments -A   # the matchmaker`,
    );
    for (const h of homes)
      say(`  kubectl --kubeconfig ${fed.home(h).cp.kubeconfigPath} get requests,vms -A   # ${h}'s home`);
    say(`  controller logs: ${fed.logDir}`);
    await new Promise<void>((resolve) => {
      if (stopping) resolve();
      process.once('SIGINT', () => resolve());
    });
  } finally {
    process.removeListener('SIGINT', onSignal);
    say('Stopping the controllers and control planes ...');
    await portal?.stop();
    await fed.stop();
  }
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'start a local federation (a matchmaker and several homes, each a real control plane), apply examples/ at every home and show who hosts what (Ctrl-C stops it)',
    )
    .option('--once', 'exit after showing the result (the default when stdin is not a terminal)')
    .option('--json', 'print the result as one JSON object on stdout (progress goes to stderr)')
    .option('--homes <names>', 'comma-separated home names (at least two)', DEMO_HOMES.join(','))
    .action((opts: DemoOptions) => runDemo(opts));
}
