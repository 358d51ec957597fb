/**
 * A local federation for tests, the demo and the benchmark: one matchmaker control
 * plane and one control plane per home, all started in parallel, each home invited
 * (`federation invite`) and joined (`federation join`), and every controller a
 * separate process of the built CLI (`node dist/cli/pcloud.js matchmaker|operator`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { invitePeer, renderJoinKubeconfig } from '../matchmaker/controller/invite.js';
import { storeJoinSecret } from '../operator/federation/join.js';
import { KubeClient } from '../kube/client.js';
import { ControlPlane } from './control-plane.js';
import { repoRoot } from './paths.js';
import { Resources as R } from '../kube/kinds.js';
import { applyObject } from '../kube/apply.js';

/** The shipped CLI (what the image runs): the controllers' processes. */
export const CLI = join(repoRoot, 'dist', 'cli', 'pcloud.js');
/** A checkout's CLI (bin/pcloud's entry): the shipped commands plus `dev` and `demo`. */
export const DEV_CLI = join(repoRoot, 'dist', 'dev', 'pcloud-dev.js');

/** A test home's domain: its operator's --home-domain, recorded at invite. */
export const homeDomain = (home: string): string => `${home}.pcloud.test`;

export interface FederationOptions {
  homes: readonly string[];
  /** --peer-grace of the matchmaker, e.g. '6s'. */
  peerGrace?: string;
  /** PCLOUD_HEARTBEAT_INTERVAL of the homes, seconds. */
  heartbeatSeconds?: number;
  /** Keep controller logs here (default: a temp folder removed by stop()). */
  logDir?: string;
  logLevel?: string;
  /** Called as parts come up (the demo prints it). */
  progress?: (line: string) => void;
}

export interface Home {
  name: string;
  cp: ControlPlane;
  client: KubeClient;
  /** The join kubeconfig this home received (its credentials at the matchmaker). */
  joinKubeconfig: string;
  /** A client with exactly those credentials. */
  asPeer: KubeClient;
  operator?: ChildProcess;
}

export class LocalFederation {
  matchmakerProcess: ChildProcess | undefined;
  private readonly children = new Set<ChildProcess>();
  private stopped = false;

  private constructor(
    readonly matchmaker: ControlPlane,
    readonly mmClient: KubeClient,
    readonly homes: Map<string, Home>,
    readonly logDir: string,
    private readonly ownLogDir: boolean,
    private readonly opts: FederationOptions,
  ) {}

  static async start(opts: FederationOptions): Promise<LocalFederation> {
    const say = opts.progress ?? (() => {});
    const ownLogDir = opts.logDir === undefined;
    const logDir = opts.logDir ?? mkdtempSync(join(tmpdir(), 'pcloud-federation-logs-'));
    const started: ControlPlane[] = [];
    const t0 = Date.now();
    const boot = async (name: string): Promise<ControlPlane> => {
      const cp = await ControlPlane.start({ name });
      started.push(cp);
      say(`  ${name} ready at ${cp.server} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      return cp;
    };
    try {
      const [matchmaker, ...homeCps] = await Promise.all([
        boot('matchmaker'),
        ...opts.homes.map((h) => boot(`home-${h}`)),
      ]);
      const mmClient = await KubeClient.fromKubeConfig(matchmaker.kubeConfig());
      const homes = new Map<string, Home>();
      await Promise.all(
        opts.homes.map(async (name, i) => {
          const cp = homeCps[i]!;
          const creds = await invitePeer(mmClient, name, matchmaker.server, undefined, {
            domain: homeDomain(name),
          });
          const joinKubeconfig = renderJoinKubeconfig(creds);
          const client = await KubeClient.fromKubeConfig(cp.kubeConfig());
          await applyObject(client, R.Namespace, { metadata: { name: 'personal-cloud' } }, 'pcloud-demo');
          await storeJoinSecret(client, joinKubeconfig);
          const kc = new KubeConfig();
          kc.loadFromString(joinKubeconfig);
          homes.set(name, { name, cp, client, joinKubeconfig, asPeer: await KubeClient.fromKubeConfig(kc) });
        }),
      );
      say(`  ${opts.homes.length} homes invited at the matchmaker and joined`);
      const fed = new LocalFederation(matchmaker, mmClient, homes, logDir, ownLogDir, opts);
      fed.startMatchmaker();
      for (const h of homes.values()) fed.startOperator(h.name);
      return fed;
    } catch (err) {
      await Promise.all(started.map((cp) => cp.stop()));
      if (ownLogDir) rmSync(logDir, { recursive: true, force: true });
      throw err;
    }
  }

  home(name: string): Home {
    const h = this.homes.get(name);
    if (!h) throw new Error(`no home ${name}`);
    return h;
  }

  private spawnCli(logName: string, args: string[], env: Record<string, string> = {}): ChildProcess {
    const log = createWriteStream(join(this.logDir, `${logName}.log`), { flags: 'a' });
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: this.opts.logLevel ?? 'info', ...env },
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  startMatchmaker(): void {
    this.matchmakerProcess = this.spawnCli('matchmaker', [
      'matchmaker',
      `--kubeconfig=${this.matchmaker.kubeconfigPath}`,
      `--peer-grace=${this.opts.peerGrace ?? '30s'}`,
      '--debounce=300ms',
      '--metrics-port=0',
      '--metrics-host=127.0.0.1',
      '--identity=matchmaker-0',
    ]);
  }

  startOperator(name: string): void {
    const h = this.home(name);
    h.operator = this.spawnCli(
      `operator-${name}`,
      [
        'operator',
        `--kubeconfig=${h.cp.kubeconfigPath}`,
        `--peer=${name}`,
        `--home-domain=${homeDomain(name)}`,
        '--metrics-port=0',
        '--metrics-host=127.0.0.1',
        `--identity=operator-${name}`,
        '--lease-duration=6',
        '--lease-renew-deadline=4',
        '--lease-retry-period=1',
      ],
      { PCLOUD_HEARTBEAT_INTERVAL: String(this.opts.heartbeatSeconds ?? 2) },
    );
  }

  async stopProcess(child: ChildProcess | undefined): Promise<void> {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([...this.children].map((c) => this.stopProcess(c)));
    for (const h of this.homes.values()) {
      h.client.close();
      h.asPeer.close();
    }
    this.mmClient.close();
    await Promise.all([this.matchmaker.stop(), ...[...this.homes.values()].map((h) => h.cp.stop())]);
    if (this.ownLogDir) rmSync(this.logDir, { recursive: true, force: true });
  }
}
