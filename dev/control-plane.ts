// A real Kubernetes control plane for tests and for `pcloud dev up`: etcd, kube-apiserver
// and (optionally) kube-controller-manager, built from pinned Go modules by `make setup`
// into .cache/bin, started on free loopback ports with the flags controller-runtime's
// envtest uses (generated serving certificate and client CA, RBAC authorization,
// service-account issuer and signing keys, a service CIDR).
//
// kube-controller-manager runs only the controllers a cluster without nodes can use:
// the garbage collector (owner references really cascade), the namespace controller
// (deleted namespaces really go away), service accounts and resource quotas.
//
// Clean-up: stop() kills every process and deletes the data folder. If the test process
// dies first, an exit/signal hook does the same synchronously; if it is SIGKILLed, the
// next start() sweeps folders whose owner process is gone.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { createCertificateAuthority, createServiceAccountKey, type KeyAndCert } from './pki.js';
import { repoRoot } from './paths.js';
import { runCommand, type CommandResult, isAlive } from './run-command.js';

export const BIN_DIR = join(repoRoot, '.cache', 'bin');
export const THIRD_PARTY_CRD_DIR = join(repoRoot, '.cache', 'crds');
export const OUR_CRD_DIR = join(repoRoot, 'crds');
const DIR_PREFIX = 'pcloud-cp-';
// Room for tens of thousands of Services (bench-operator makes one per VM).
const SERVICE_CIDR = '10.96.0.0/16';
const FRONT_PROXY_CLIENT = 'front-proxy-client';
const KUBERNETES_SERVICE_IP = '10.96.0.1';

export interface ControlPlaneOptions {
  /** Used in folder names and logs. */
  name?: string;
  /** Data folder; default a new folder under the OS temp dir. Deleted by stop(). */
  dir?: string;
  /** Install crds/*.yaml (default true). */
  ourCRDs?: boolean;
  /** Install the KubeVirt, Multus, Cilium, Gateway API and Argo CD CRDs from .cache/crds (default true). */
  thirdPartyCRDs?: boolean;
  /** Run kube-controller-manager (garbage collector, namespaces, service accounts, quotas). Default true. */
  controllerManager?: boolean;
  /** Processes outlive this one (for `pcloud dev up`); stop them with ControlPlane.stopDir(dir). */
  detached?: boolean;
  /** How long to wait for each component to become ready (ms). */
  readyTimeoutMs?: number;
  /**
   * The address kube-apiserver listens on and advertises (default 127.0.0.1). Give a
   * non-loopback address of this host to serve clients in network namespaces (node
   * agents on a simulated home LAN); it must exist before start().
   */
  address?: string;
}

export interface MintedUser {
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
}

export type KubectlResult = CommandResult;

type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager';

interface State {
  name: string;
  owner: number;
  detached: boolean;
  server: string;
  pids: Partial<Record<Component, number>>;
}

/** Ports the OS says are free right now (all held open together, so they are distinct). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer();
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      return server;
    }),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('unexpected listen address');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function binary(name: string): string {
  const path = join(BIN_DIR, name);
  if (!existsSync(path)) throw new Error(`${path} is missing: run 'make setup' first`);
  return path;
}

/** True when pid is one of our control-plane binaries (guards against a recycled pid). */
function isOurProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(BIN_DIR);
  } catch {
    return false;
  }
}

function killSync(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (pid !== undefined && isAlive(pid) && isOurProcess(pid)) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

const live = new Set<ControlPlane>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const cp of live) cp.destroySync();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const cp of live) cp.destroySync();
      process.kill(process.pid, signal);
    });
  }
}

/** Removes control planes left behind by test processes that were killed outright. */
function sweepOrphans(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), entry);
    let state: State;
    try {
      state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as State;
    } catch {
      continue; // starting right now, or not ours
    }
    if (state.detached || isAlive(state.owner)) continue;
    for (const pid of Object.values(state.pids)) killSync(pid);
    rmSync(dir, { recursive: true, force: true });
  }
  sweepHomeless();
}

/**
 * Kills etcd, kube-apiserver and kube-controller-manager processes (of any checkout's
 * .cache/bin) whose control-plane folder is gone: a run killed while its folder was
 * being removed, or a harness that removed the folder first, leaves them with no
 * state.json to be found by.
 */
function sweepHomeless(): void {
  const folder = new RegExp(`(${tmpdir().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/${DIR_PREFIX}[^/\0]+)`);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!/\/\.cache\/bin\/(etcd|kube-apiserver|kube-controller-manager)$/.test(argv[0] ?? '')) continue;
    const dir = folder.exec(argv.join('\0'))?.[1];
    if (dir === undefined || existsSync(dir)) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function httpsGet(
  url: string,
  tls: { ca: string; cert: string; key: string },
  timeoutMs = 5000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function kubeconfigYaml(server: string, caPem: string, user: string, client: KeyAndCert): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'pcloud', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    users: [
      {
        name: user,
        user: { 'client-certificate-data': b64(client.certPem), 'client-key-data': b64(client.keyPem) },
      },
    ],
    contexts: [{ name: user, context: { cluster: 'pcloud', user } }],
    'current-context': user,
  });
}

export class ControlPlane {
  readonly name: string;
  readonly dir: string;
  readonly server: string;
  readonly kubeconfigPath: string;
  private readonly ports: { etcdClient: number; etcdPeer: number; apiserver: number; kcm: number };
  private readonly opts: Required<Omit<ControlPlaneOptions, 'dir' | 'name'>>;
  private readonly processes = new Map<Component, ChildProcess>();
  private readonly pids: Partial<Record<Component, number>> = {};
  private ca!: Awaited<ReturnType<typeof createCertificateAuthority>>;
  private admin!: KeyAndCert;
  private stopped = false;

  private constructor(name: string, dir: string, ports: number[], opts: ControlPlaneOptions) {
    const [etcdClient, etcdPeer, apiserver, kcm] = ports as [number, number, number, number];
    this.name = name;
    this.dir = dir;
    this.ports = { etcdClient, etcdPeer, apiserver, kcm };
    this.server = `https://${opts.address ?? '127.0.0.1'}:${apiserver}`;
    this.kubeconfigPath = join(dir, 'kubeconfig');
    this.opts = {
      ourCRDs: opts.ourCRDs ?? true,
      thirdPartyCRDs: opts.thirdPartyCRDs ?? true,
      controllerManager: opts.controllerManager ?? true,
      detached: opts.detached ?? false,
      readyTimeoutMs: opts.readyTimeoutMs ?? 90_000,
      address: opts.address ?? '127.0.0.1',
    };
  }

  /** Starts etcd, kube-apiserver and kube-controller-manager, waits for them, installs CRDs. */
  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const name = options.name ?? 'test';
    if (!/^[a-z0-9-]{1,40}$/.test(name))
      throw new Error(`control plane name ${JSON.stringify(name)} must match [a-z0-9-]{1,40}`);
    sweepOrphans();
    let dir = options.dir;
    if (dir === undefined) dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${name}-`));
    else await mkdir(dir, { recursive: true });
    const cp = new ControlPlane(name, dir, await freePorts(4), options);
    if (!cp.opts.detached) {
      installExitHooks();
      live.add(cp);
    }
    try {
      await cp.boot();
      return cp;
    } catch (err) {
      await cp.stop();
      throw err;
    }
  }

  /** Stops a detached control plane started in dir (used by `pcloud dev down`). */
  static async stopDir(dir: string): Promise<boolean> {
    let state: State;
    try {
      state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as State;
    } catch {
      return false;
    }
    const order: Component[] = ['kube-controller-manager', 'kube-apiserver', 'etcd'];
    for (const component of order) {
      const pid = state.pids[component];
      killSync(pid, 'SIGTERM');
      for (let i = 0; i < 100 && pid !== undefined && isAlive(pid) && isOurProcess(pid); i++)
        await sleep(100);
      killSync(pid);
    }
    rmSync(dir, { recursive: true, force: true });
    return true;
  }

  private async boot(): Promise<void> {
    this.ca = await createCertificateAuthority(`pcloud-${this.name}-ca`);
    const serving = await this.ca.issueServing(
      ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
      [...new Set(['127.0.0.1', this.opts.address, KUBERNETES_SERVICE_IP])],
    );
    this.admin = await this.ca.issueClient('pcloud-admin', ['system:masters']);
    // The API server's identity towards kubelets (kubectl logs, exec, port-forward).
    const kubeletClient = await this.ca.issueClient('kube-apiserver-kubelet-client', ['system:masters']);
    // Its identity towards aggregated API servers (KubeVirt's virt-api), which trust the
    // X-Remote-* headers only from this name.
    const frontProxy = await this.ca.issueClient(FRONT_PROXY_CLIENT, []);
    const sa = createServiceAccountKey();
    const pki = join(this.dir, 'pki');
    await mkdir(pki, { recursive: true });
    await Promise.all([
      writeFile(join(pki, 'ca.crt'), this.ca.certPem),
      writeFile(join(pki, 'ca.key'), this.ca.keyPem, { mode: 0o600 }),
      writeFile(join(pki, 'serving.crt'), serving.certPem),
      writeFile(join(pki, 'serving.key'), serving.keyPem, { mode: 0o600 }),
      writeFile(join(pki, 'kubelet-client.crt'), kubeletClient.certPem),
      writeFile(join(pki, 'kubelet-client.key'), kubeletClient.keyPem, { mode: 0o600 }),
      writeFile(join(pki, 'front-proxy-client.crt'), frontProxy.certPem),
      writeFile(join(pki, 'front-proxy-client.key'), frontProxy.keyPem, { mode: 0o600 }),
      writeFile(join(pki, 'sa.pub'), sa.publicPem),
      writeFile(join(pki, 'sa.key'), sa.privatePem, { mode: 0o600 }),
      writeFile(
        this.kubeconfigPath,
        kubeconfigYaml(this.server, this.ca.certPem, 'pcloud-admin', this.admin),
        {
          mode: 0o600,
        },
      ),
    ]);

    await this.startEtcd();
    await this.startApiServer();
    const crdPaths: string[] = [];
    if (this.opts.ourCRDs) crdPaths.push(OUR_CRD_DIR);
    if (this.opts.thirdPartyCRDs) {
      if (!existsSync(THIRD_PARTY_CRD_DIR))
        throw new Error(`${THIRD_PARTY_CRD_DIR} is missing: run 'make setup'`);
      crdPaths.push(THIRD_PARTY_CRD_DIR);
    }
    if (crdPaths.length > 0) await this.applyCRDs(crdPaths);
    // The CRDs first, as in a real home (installed long before anything uses them): the
    // quota controller then counts `count/virtualmachines.kubevirt.io` from its first
    // discovery instead of up to 30 s later, when a quota limiting it is "status unknown".
    if (this.opts.controllerManager) await this.startControllerManager();
  }

  private async writeState(): Promise<void> {
    const state: State = {
      name: this.name,
      owner: process.pid,
      detached: this.opts.detached,
      server: this.server,
      pids: this.pids,
    };
    await writeFile(join(this.dir, 'state.json'), JSON.stringify(state, null, 2));
  }

  private async spawnComponent(component: Component, args: string[]): Promise<ChildProcess> {
    const logPath = join(this.dir, `${component}.log`);
    const fd = openSync(logPath, 'a');
    const child = spawn(binary(component), args, {
      stdio: ['ignore', fd, fd],
      detached: this.opts.detached,
    });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`${component} did not start`);
    if (this.opts.detached) child.unref();
    this.processes.set(component, child);
    this.pids[component] = child.pid;
    child.once('exit', () => {
      if (this.processes.get(component) === child) this.processes.delete(component);
    });
    await this.writeState();
    return child;
  }

  /** The last lines of a component's log, for error messages. */
  logTail(component: Component, lines = 30): string {
    try {
      return readFileSync(join(this.dir, `${component}.log`), 'utf8')
        .trimEnd()
        .split('\n')
        .slice(-lines)
        .join('\n');
    } catch {
      return '(no log)';
    }
  }

  private async waitFor(component: Component, probe: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + this.opts.readyTimeoutMs;
    while (Date.now() < deadline) {
      if (!this.processes.has(component)) {
        throw new Error(`${component} of control plane ${this.name} exited:\n${this.logTail(component)}`);
      }
      if (await probe().catch(() => false)) return;
      await sleep(100);
    }
    throw new Error(
      `${component} of control plane ${this.name} not ready after ${this.opts.readyTimeoutMs} ms:\n${this.logTail(component)}`,
    );
  }

  private async startEtcd(): Promise<void> {
    const { etcdClient, etcdPeer } = this.ports;
    const client = `http://127.0.0.1:${etcdClient}`;
    const peer = `http://127.0.0.1:${etcdPeer}`;
    await this.spawnComponent('etcd', [
      `--name=${this.name}`,
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=${this.name}=${peer}`,
      '--unsafe-no-fsync=true', // test data: durability across power loss is not needed
      '--log-level=warn',
    ]);
    await this.waitFor('etcd', async () => {
      const res = await fetch(`${client}/health`);
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    });
  }

  private apiServerArgs(): string[] {
    const pki = join(this.dir, 'pki');
    return [
      `--etcd-servers=http://127.0.0.1:${this.ports.etcdClient}`,
      `--bind-address=${this.opts.address}`,
      `--advertise-address=${this.opts.address}`,
      `--secure-port=${this.ports.apiserver}`,
      `--cert-dir=${join(this.dir, 'apiserver-certs')}`,
      `--tls-cert-file=${join(pki, 'serving.crt')}`,
      `--tls-private-key-file=${join(pki, 'serving.key')}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=${this.server}`,
      `--service-account-key-file=${join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--allow-privileged=true',
      // Real nodes (dev/home-cluster.ts) are reached at their InternalIP: their hostnames
      // resolve nowhere.
      '--kubelet-preferred-address-types=InternalIP,Hostname',
      `--kubelet-client-certificate=${join(pki, 'kubelet-client.crt')}`,
      `--kubelet-client-key=${join(pki, 'kubelet-client.key')}`,
      // The aggregation layer (KubeVirt's subresources API), as kubeadm sets it up; one CA
      // signs both sides here, the allowed name keeps other client certificates out.
      `--requestheader-client-ca-file=${join(pki, 'ca.crt')}`,
      `--requestheader-allowed-names=${FRONT_PROXY_CLIENT}`,
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${join(pki, 'front-proxy-client.crt')}`,
      `--proxy-client-key-file=${join(pki, 'front-proxy-client.key')}`,
      // Webhooks and aggregated APIs are called at their endpoints' addresses, not their
      // Service's: this host has no kube-proxy; a home cluster routes it to its pods.
      '--enable-aggregator-routing=true',
      // Beta and on in 1.34: pod conditions gain observedGeneration. KubeVirt v1.5 (built
      // for Kubernetes 1.30-1.32) patches launcher pod conditions with a JSON-patch "test"
      // of the conditions as its older types decode them (without the field): the test
      // never matches once kubelet has written them, and the VMI stays Pending.
      '--feature-gates=PodObservedGenerationTracking=false',
      '--profiling=false',
      '--v=1',
    ];
  }

  private async startApiServer(): Promise<void> {
    await this.spawnComponent('kube-apiserver', this.apiServerArgs());
    await this.waitFor('kube-apiserver', async () => {
      const res = await this.get('/readyz');
      return res.status === 200;
    });
  }

  private async startControllerManager(): Promise<void> {
    const pki = join(this.dir, 'pki');
    await this.spawnComponent('kube-controller-manager', [
      `--kubeconfig=${this.kubeconfigPath}`,
      '--controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,resourcequota-controller',
      `--service-account-private-key-file=${join(pki, 'sa.key')}`,
      `--root-ca-file=${join(pki, 'ca.crt')}`,
      '--use-service-account-credentials=false',
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${this.ports.kcm}`,
      `--cert-dir=${join(this.dir, 'kcm-certs')}`,
      // Quota and garbage collection react in seconds instead of the production defaults.
      '--resource-quota-sync-period=10s',
      '--v=1',
    ]);
  }

  /** GET a path on the API server as the admin. */
  async get(path: string): Promise<{ status: number; body: string }> {
    return httpsGet(`${this.server}${path}`, {
      ca: this.ca.certPem,
      cert: this.admin.certPem,
      key: this.admin.keyPem,
    });
  }

  /** A fresh client-node KubeConfig for the admin (system:masters). */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    return kc;
  }

  /** A client-certificate identity with the given groups; it can do only what RBAC grants it. */
  async mintUser(user: string, groups: readonly string[] = []): Promise<MintedUser> {
    const client = await this.ca.issueClient(user, groups);
    const usersDir = join(this.dir, 'users');
    await mkdir(usersDir, { recursive: true });
    const kubeconfigPath = join(usersDir, `${encodeURIComponent(user)}.kubeconfig`);
    await writeFile(kubeconfigPath, kubeconfigYaml(this.server, this.ca.certPem, user, client), {
      mode: 0o600,
    });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);
    return { kubeconfigPath, kubeConfig };
  }

  /** Runs the pinned kubectl against this control plane (as the admin unless kubeconfig is given). */
  kubectl(
    args: readonly string[],
    opts: { input?: string; kubeconfig?: string } = {},
  ): Promise<KubectlResult> {
    return runCommand(
      binary('kubectl'),
      [`--kubeconfig=${opts.kubeconfig ?? this.kubeconfigPath}`, ...args],
      {
        input: opts.input,
      },
    );
  }

  /** kubectl as the admin; its output, or an error naming the command and kubectl's stderr. */
  async kubectlOutput(args: readonly string[], input?: string): Promise<string> {
    const r = await this.kubectl(args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  /** Server-side applies CRD files or folders (recursively) and waits until they are served. */
  async applyCRDs(paths: readonly string[]): Promise<void> {
    const args = ['apply', '--server-side', '--force-conflicts', '-o', 'name'];
    for (const path of paths) args.push('-R', '-f', path);
    const applied = await this.kubectl(args);
    if (applied.code !== 0) throw new Error(`installing CRDs failed: ${applied.stderr}`);
    const names = applied.stdout
      .split('\n')
      .filter((l) => l.startsWith('customresourcedefinition.apiextensions.k8s.io/'))
      .map((l) => l.slice(l.indexOf('/') + 1));
    const established = await this.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      ...names.map((n) => `crd/${n}`),
    ]);
    if (established.code !== 0) throw new Error(`CRDs not established: ${established.stderr}`);
    // Established is set before discovery always lists the resource; wait for discovery
    // so the first kubectl apply of a custom object does not see "no matches for kind".
    const crds = JSON.parse((await this.kubectl(['get', 'crd', '-o', 'json', ...names])).stdout) as {
      items?: {
        spec: { group: string; names: { plural: string }; versions: { name: string; served: boolean }[] };
      }[];
    };
    const items = crds.items ?? [];
    await Promise.all(
      items.flatMap((crd) =>
        crd.spec.versions
          .filter((v) => v.served)
          .map((v) =>
            this.waitFor('kube-apiserver', async () => {
              const res = await this.get(`/apis/${crd.spec.group}/${v.name}`);
              return res.status === 200 && res.body.includes(`"name":"${crd.spec.names.plural}"`);
            }),
          ),
      ),
    );
  }

  /** Stops kube-apiserver and starts it again on the same port and etcd data (recovery tests). */
  async restartApiServer(): Promise<void> {
    await this.stopComponent('kube-apiserver');
    await this.startApiServer();
  }

  /** Stops only kube-apiserver (the "home's control plane is gone" case); start it with restartApiServer(). */
  async stopApiServer(): Promise<void> {
    await this.stopComponent('kube-apiserver');
  }

  // kube-apiserver drains long-running watches on SIGTERM for many seconds; tests gain
  // nothing from that wait, so it gets a short grace before SIGKILL.
  private async stopComponent(component: Component, graceMs = 3_000): Promise<void> {
    const child = this.processes.get(component);
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      killSync(this.pids[component]);
      return;
    }
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Stops every process and deletes the data folder. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    if (this.opts.detached) {
      await ControlPlane.stopDir(this.dir);
      return;
    }
    for (const component of ['kube-controller-manager', 'kube-apiserver', 'etcd'] as const) {
      await this.stopComponent(component);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous last-resort clean-up for process exit. */
  destroySync(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const pid of Object.values(this.pids)) killSync(pid);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
