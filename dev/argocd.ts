/**
 * A real Argo CD against a ControlPlane (issue 12, item 3): the application controller and
 * the repo server, both the multi-call binary built from the pinned
 * github.com/argoproj/argo-cd/v3 module (tools/argocd, `make setup`), and the Redis they
 * share as their cache (Debian's redis-server). They run on the host as Argo CD's own
 * development setup runs them (`make start-local`): plaintext gRPC between them on
 * loopback, the controller's "in-cluster" destination faked from a kubeconfig
 * (ARGOCD_FAKE_IN_CLUSTER).
 *
 * What start() puts in the cluster is what Argo CD's install manifests would, less the
 * Deployments: the `argocd` namespace, the argocd-cm, argocd-rbac-cm ConfigMaps and the
 * argocd-secret Secret (labelled app.kubernetes.io/part-of=argocd, which Argo CD's
 * settings informers select on), the `default` AppProject (argocd-server creates it in a
 * real install; it does not run here) and the controller's identity: a client
 * certificate for the user `argocd-application-controller` bound to cluster-admin (the
 * upstream ClusterRole allows every verb on every resource too). The Application and AppProject CRDs come from
 * the ControlPlane's third-party CRDs (tools/crds, the same Argo CD version).
 *
 * Not run: argocd-server (API and UI; nothing here needs them), the ApplicationSet,
 * notifications, commit and dex servers. The repo server renders Helm charts with the
 * pinned helm in .cache/bin (on its PATH), and clones with Debian's git.
 *
 * Isolation: every port is a free loopback port (the controller's metrics port is bound on
 * all addresses: Argo CD has no flag for its address), TMPDIR, HOME (git and helm state)
 * and the repo server's askpass socket live in the run's folder, GnuPG is off.
 *
 * Clean-up: stop() stops the three processes and deletes the folder; an exit/signal hook
 * does it synchronously; after a SIGKILL the next start() (or sweepArgoCD()) kills every
 * process whose command line names a folder `pcloud-argocd-<pid>-*` of a dead owner pid
 * (the argocd processes are started with argv[0] inside the folder, Redis with its config
 * file there and set-proc-title off) and deletes those folders.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  closeSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN_DIR, freePorts, type ControlPlane } from './control-plane.js';
import { isAlive, runCommand } from './run-command.js';

export const ARGOCD_BINARY = join(BIN_DIR, 'argocd');
const REDIS_SERVER = '/usr/bin/redis-server';
const DIR_PREFIX = 'pcloud-argocd-';
export const ARGOCD_NAMESPACE = 'argocd';
const CONTROLLER_USER = 'argocd-application-controller';

type Component = 'redis' | 'argocd-repo-server' | 'argocd-application-controller';

interface State {
  owner: number;
  pids: Partial<Record<Component, number>>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function kill(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

const FOLDER = new RegExp(`${tmpdir().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/${DIR_PREFIX}(\\d+)-`);

/** Processes whose command line names a folder of this harness, with that folder's owner pid. */
function harnessProcesses(): { pid: number; owner: number; cmdline: string }[] {
  const out: { pid: number; owner: number; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const m = FOLDER.exec(cmdline);
    if (m) out.push({ pid: Number(entry), owner: Number(m[1]), cmdline });
  }
  return out;
}

/**
 * Removes what runs killed outright left: their processes (found by the folder their
 * command line names, also when the folder is already gone) and their folders.
 */
export function sweepArgoCD(): void {
  for (const p of harnessProcesses()) if (!isAlive(p.owner)) kill(p.pid);
  for (const entry of readdirSync(tmpdir())) {
    const owner = Number(new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(entry)?.[1]);
    if (!owner || isAlive(owner)) continue;
    rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

const live = new Set<ArgoCD>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const a of live) a.destroySync();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const a of live) a.destroySync();
      process.kill(process.pid, signal);
    });
  }
}

/** Sends PING to a Redis server and resolves true on +PONG. */
function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      answer += d.toString('utf8');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

export interface ArgoCDOptions {
  /**
   * How often the controller re-compares every Application with Git, and how long the repo
   * server caches what a branch points at (ARGOCD_RECONCILIATION_TIMEOUT, seconds; Argo CD's
   * default is 120 s plus up to 60 s of jitter, which is 0 here). Without a webhook, this
   * bounds how late a commit is seen.
   */
  reconciliationSeconds?: number;
  /** How long to wait for each component to become ready (ms). */
  readyTimeoutMs?: number;
}

export class ArgoCD {
  readonly dir: string;
  readonly namespace = ARGOCD_NAMESPACE;
  private readonly processes = new Map<Component, ChildProcess>();
  private readonly state: State = { owner: process.pid, pids: {} };
  private ports = { redis: 0, repoServer: 0, repoServerMetrics: 0, controllerMetrics: 0 };
  private readonly opts: Required<ArgoCDOptions>;
  private stopped = false;
  /** Milliseconds from start() until all three processes were ready. */
  startupMs = 0;

  private constructor(
    private readonly cp: ControlPlane,
    opts: ArgoCDOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    this.opts = {
      reconciliationSeconds: opts.reconciliationSeconds ?? 10,
      readyTimeoutMs: opts.readyTimeoutMs ?? 180_000,
    };
  }

  /** Argo CD's objects in the cluster, then Redis, the repo server and the application controller, ready. */
  static async start(cp: ControlPlane, opts: ArgoCDOptions = {}): Promise<ArgoCD> {
    sweepArgoCD();
    const argocd = new ArgoCD(cp, opts);
    installExitHooks();
    live.add(argocd);
    try {
      const t = Date.now();
      await argocd.boot();
      argocd.startupMs = Date.now() - t;
      return argocd;
    } catch (err) {
      await argocd.stop();
      throw err;
    }
  }

  private async boot(): Promise<void> {
    for (const sub of ['tmp', 'home']) mkdirSync(join(this.dir, sub), { recursive: true });
    const [redis, repoServer, repoServerMetrics, controllerMetrics] = (await freePorts(4)) as [
      number,
      number,
      number,
      number,
    ];
    this.ports = { redis, repoServer, repoServerMetrics, controllerMetrics };
    await this.installClusterObjects();
    await this.startRedis();
    await this.startRepoServer();
    await this.startController();
  }

  private async kubectlApply(objects: unknown[]): Promise<void> {
    const r = await this.cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
    });
    if (r.code !== 0) throw new Error(`argocd: kubectl apply: ${r.stderr}`);
  }

  private async installClusterObjects(): Promise<void> {
    const ns = this.namespace;
    const labels = { 'app.kubernetes.io/part-of': 'argocd' };
    await this.kubectlApply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }]);
    await this.kubectlApply([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: 'argocd-cm',
          namespace: ns,
          labels: { ...labels, 'app.kubernetes.io/name': 'argocd-cm' },
        },
        data: {},
      },
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: 'argocd-rbac-cm',
          namespace: ns,
          labels: { ...labels, 'app.kubernetes.io/name': 'argocd-rbac-cm' },
        },
        data: {},
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: 'argocd-secret',
          namespace: ns,
          labels: { ...labels, 'app.kubernetes.io/name': 'argocd-secret' },
        },
        type: 'Opaque',
        // argocd-server would generate it at its first start; the settings manager wants it.
        data: { 'server.secretkey': randomBytes(32).toString('base64') },
      },
      {
        // What argocd-server creates at its first start.
        apiVersion: 'argoproj.io/v1alpha1',
        kind: 'AppProject',
        metadata: { name: 'default', namespace: ns },
        spec: {
          sourceRepos: ['*'],
          destinations: [{ server: '*', namespace: '*' }],
          clusterResourceWhitelist: [{ group: '*', kind: '*' }],
        },
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'pcloud-test-argocd-application-controller' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: CONTROLLER_USER }],
      },
    ]);
    const user = await this.cp.mintUser(CONTROLLER_USER);
    copyFileSync(user.kubeconfigPath, join(this.dir, 'kubeconfig'));
  }

  /** The environment both Argo CD processes get: all their state in the run's folder. */
  private env(component: Component): NodeJS.ProcessEnv {
    return {
      PATH: `${BIN_DIR}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: join(this.dir, 'home'),
      TMPDIR: join(this.dir, 'tmp'),
      ARGOCD_BINARY_NAME: component,
      ARGOCD_GPG_ENABLED: 'false',
      ARGOCD_ASK_PASS_SOCK: join(this.dir, 'askpass.sock'),
      ARGOCD_RECONCILIATION_TIMEOUT: `${this.opts.reconciliationSeconds}s`,
      ARGOCD_RECONCILIATION_JITTER: '0s',
      // The "in-cluster" destination (https://kubernetes.default.svc) from this kubeconfig.
      ARGOCD_FAKE_IN_CLUSTER: 'true',
      KUBECONFIG: join(this.dir, 'kubeconfig'),
    };
  }

  private async spawnComponent(
    component: Component,
    file: string,
    args: string[],
    argv0?: string,
  ): Promise<void> {
    const fd = openSync(this.logPath(component), 'a');
    const child = spawn(file, args, {
      stdio: ['ignore', fd, fd],
      env: component === 'redis' ? { PATH: process.env.PATH } : this.env(component),
      cwd: this.dir,
      ...(argv0 === undefined ? {} : { argv0 }),
    });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`argocd: ${component} did not start`);
    this.processes.set(component, child);
    this.state.pids[component] = child.pid;
    child.once('exit', () => {
      if (this.processes.get(component) === child) this.processes.delete(component);
    });
    await writeFile(join(this.dir, 'state.json'), JSON.stringify(this.state));
  }

  private async waitFor(component: Component, probe: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + this.opts.readyTimeoutMs;
    while (Date.now() < deadline) {
      if (!this.processes.has(component))
        throw new Error(`argocd: ${component} exited:\n${this.logTail(component)}`);
      if (await probe().catch(() => false)) return;
      await sleep(250);
    }
    throw new Error(
      `argocd: ${component} not ready after ${this.opts.readyTimeoutMs} ms:\n${this.logTail(component)}`,
    );
  }

  private async startRedis(): Promise<void> {
    // As Argo CD's manifests run it: a cache only, nothing saved to disk.
    const conf = join(this.dir, 'redis.conf');
    await writeFile(
      conf,
      [
        'bind 127.0.0.1',
        `port ${this.ports.redis}`,
        'protected-mode yes',
        `dir ${this.dir}`,
        'save ""',
        'appendonly no',
        'daemonize no',
        // Keep the command line (it names this folder: the sweep finds it by that).
        'set-proc-title no',
        'loglevel warning',
        '',
      ].join('\n'),
    );
    await this.spawnComponent('redis', REDIS_SERVER, [conf]);
    await this.waitFor('redis', () => redisPing(this.ports.redis));
  }

  private async startRepoServer(): Promise<void> {
    const { repoServer, repoServerMetrics, redis } = this.ports;
    await this.spawnComponent(
      'argocd-repo-server',
      ARGOCD_BINARY,
      [
        '--address=127.0.0.1',
        `--port=${repoServer}`,
        '--metrics-address=127.0.0.1',
        `--metrics-port=${repoServerMetrics}`,
        '--disable-tls',
        `--redis=127.0.0.1:${redis}`,
        '--logformat=text',
      ],
      join(this.dir, 'argocd-repo-server'),
    );
    // ?full=true makes it call its own gRPC health service.
    await this.waitFor('argocd-repo-server', async () => {
      const res = await fetch(`http://127.0.0.1:${repoServerMetrics}/healthz?full=true`);
      return res.ok;
    });
  }

  private async startController(): Promise<void> {
    const { repoServer, controllerMetrics, redis } = this.ports;
    await this.spawnComponent(
      'argocd-application-controller',
      ARGOCD_BINARY,
      [
        `--kubeconfig=${join(this.dir, 'kubeconfig')}`,
        `--namespace=${this.namespace}`,
        `--repo-server=127.0.0.1:${repoServer}`,
        '--repo-server-plaintext',
        `--redis=127.0.0.1:${redis}`,
        `--metrics-port=${controllerMetrics}`,
        // Two cores shared with other work: fewer workers than the defaults (20 and 10).
        '--status-processors=4',
        '--operation-processors=2',
        // Each child's health in the Application's status (off by default since Argo CD
        // 2.x, which keeps it in Redis only), so that tests can read what is not Healthy.
        '--persist-resource-health',
        '--logformat=text',
      ],
      join(this.dir, 'argocd-application-controller'),
    );
    await this.waitFor('argocd-application-controller', async () => {
      const res = await fetch(`http://127.0.0.1:${controllerMetrics}/healthz`);
      return res.ok;
    });
  }

  logPath(component: Component): string {
    return join(this.dir, `${component}.log`);
  }

  /** The last lines of a component's log, for error messages. */
  logTail(component: Component, lines = 40): string {
    try {
      return readFileSync(this.logPath(component), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Stops the controller, the repo server and Redis (SIGTERM, SIGKILL after 10 s) and deletes the folder. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    for (const component of ['argocd-application-controller', 'argocd-repo-server', 'redis'] as const) {
      const child = this.processes.get(component);
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    // git or helm children of the repo server, if it was killed in the middle of a call
    for (const p of harnessProcesses()) if (p.cmdline.includes(this.dir)) kill(p.pid);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous last-resort clean-up for process exit. */
  destroySync(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of harnessProcesses()) if (p.cmdline.includes(this.dir)) kill(p.pid);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A Git repository on disk that Argo CD reads as `file://<dir>/<name>.git` (a bare
 * repository, as a forge serves it), with a work tree beside it to commit from. Both live
 * in a folder the caller owns (ArgoCD.dir suits: it goes with the harness).
 */
export class LocalGitRepository {
  readonly bare: string;
  readonly work: string;
  readonly url: string;

  constructor(
    folder: string,
    name: string,
    readonly branch = 'main',
  ) {
    this.bare = join(folder, `${name}.git`);
    this.work = join(folder, `${name}-work`);
    this.url = `file://${this.bare}`;
  }

  private async git(args: string[], cwd = this.work): Promise<string> {
    const r = await runCommand('git', args, {
      cwd,
      env: {
        PATH: process.env.PATH,
        HOME: cwd,
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_AUTHOR_NAME: 'Home Owner',
        GIT_AUTHOR_EMAIL: 'owner@home.test',
        GIT_COMMITTER_NAME: 'Home Owner',
        GIT_COMMITTER_EMAIL: 'owner@home.test',
      },
    });
    if (r.code !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  }

  /** Creates the bare repository and the work tree. */
  async init(): Promise<void> {
    mkdirSync(this.work, { recursive: true });
    await this.git(['init', '--quiet', '--bare', `--initial-branch=${this.branch}`, this.bare], this.work);
    await this.git(['init', '--quiet', `--initial-branch=${this.branch}`]);
    await this.git(['remote', 'add', 'origin', this.bare]);
  }

  /** Commits everything in the work tree and pushes it; returns the new commit's SHA. */
  async commitAll(message: string): Promise<string> {
    await this.git(['add', '--all']);
    await this.git(['commit', '--quiet', '-m', message]);
    await this.git(['push', '--quiet', 'origin', this.branch]);
    return this.git(['rev-parse', 'HEAD']);
  }
}
