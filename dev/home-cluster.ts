/**
 * A home cluster with real nodes (issue 9, item 1): a ControlPlane listening on a
 * simulated home LAN (HomeLab), kube-controller-manager and kube-scheduler on the host,
 * and per node, inside that node's network namespace, a private containerd (Debian's,
 * with runc; its own root, state, socket and config) and a kubelet built from the pinned
 * k8s.io/kubernetes module, registered with the node's LAN address as InternalIP.
 *
 * Pods get their sandbox from a locally built pause image (dev/images.ts) imported into
 * each node's containerd; their network is the CNI bridge + host-local plugins with a
 * /24 per node, and each node routes the other nodes' pod subnets via their LAN address
 * (pods' traffic to the host is masqueraded to the node's address, as flannel does).
 * kube-proxy (nftables mode) runs beside each kubelet, so pods reach the API server
 * through the `kubernetes` Service. A registry (distribution's, plain HTTP) listens on
 * the host's LAN address; every node's containerd pulls from it (hosts.toml), and
 * pushImage() puts a locally built image there.
 *
 * Isolation from the host and from other runs:
 * - containerd runs in the node's network namespace and a private (slave) mount
 *   namespace of its own; kubelet joins that same mount and network namespace (nsenter), so every
 *   mount they make (volumes, container root filesystems, pod network namespaces, which
 *   live under containerd's state dir) is invisible to the host and goes when they go.
 * - kubelet's cgroups live under /pcloud-hc-<pid>-<node> in each hierarchy, removed on stop.
 * - kubelet changes host sysctls at start (vm.overcommit_memory, kernel.panic,
 *   kernel.panic_on_oops): the values found before the first harness started are kept
 *   in a file and written back when the last harness stops.
 * Clean-up: stop() stops everything in order; an exit/signal hook does it synchronously;
 * after a SIGKILL the next start() sweeps what a dead run left: processes whose command
 * line names its folder (kubelet, containerd, shims, scheduler, controller manager),
 * containers in its cgroups, the cgroups, shim sockets, the folder, and the sysctls.
 * HomeLab and ControlPlane sweep their own leftovers the same way.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { BIN_DIR, ControlPlane, freePorts, type ControlPlaneOptions } from './control-plane.js';
import { busyboxImage, pauseImage, pushImage, PAUSE_IMAGE, type BuiltImage } from './images.js';
import { CNI_BIN, HomeLab } from './netlab.js';
import { runCommand, type CommandResult, isAlive } from './run-command.js';

const DIR_PREFIX = 'pcloud-hc-';
const CGROUP_FS = '/sys/fs/cgroup';
/** What the first harness found on the host, restored when the last one stops. */
const HOST_STATE_FILE = join(tmpdir(), 'pcloud-hc-host-state.json');
/** The sysctls kubelet's setupKernelTunables may change (pkg/kubelet/cm). */
const KUBELET_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];
/** containerd's shims put their sockets here whatever its state dir is. */
const SHIM_SOCKET_DIR = '/run/containerd/s';
const CONTAINERD = '/usr/bin/containerd';
const CTR = '/usr/bin/ctr';
/** The user the nodes' CNI plugins act as. */
const CNI_USER = 'pcloud-cni';
/** ControlPlane's service CIDR's first address. */
const KUBERNETES_SERVICE_IP = '10.96.0.1';

export interface HomeClusterOptions {
  /** Node names, one network namespace each. */
  nodes: readonly string[];
  /** The LAN's /24 as three octets (default 192.168.214, apart from HomeLab's default). */
  lanPrefix?: string;
  /** Passed to ControlPlane.start (CRDs; name). */
  controlPlane?: Pick<ControlPlaneOptions, 'name' | 'ourCRDs' | 'thirdPartyCRDs'>;
  /** Extra images imported into every node's containerd. */
  images?: BuiltImage[];
  /** How long to wait for each node to be Ready (ms). */
  readyTimeoutMs?: number;
}

interface State {
  owner: number;
  pids: Record<string, number>;
  cgroupRoots: string[];
}

interface HostState {
  sysctls: Record<string, string>;
  runContainerdExisted: boolean;
}

/** The direct children of pid (nsenter --pid and unshare --fork run the command as one). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Stops a process started in a node's namespaces: SIGTERM to it and to its children (nsenter
 * does not pass signals on to the command it forked into the node's PID namespace), SIGKILL
 * after graceMs; resolves when it has exited.
 */
export async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const pids = [...childPids(child.pid), child.pid];
  const exited = once(child, 'exit');
  for (const pid of pids) kill(pid, 'SIGTERM');
  const timer = setTimeout(() => {
    for (const pid of pids) kill(pid, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Pids of processes whose command line mentions dir (our config paths are in every one). */
function processesUsing(dir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

function kill(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** The cgroup hierarchies mounted under /sys/fs/cgroup (v1 controllers, name=systemd, unified). */
function hierarchies(): string[] {
  if (!existsSync(CGROUP_FS)) return [];
  return readdirSync(CGROUP_FS)
    .map((h) => join(CGROUP_FS, h))
    .filter((p) => {
      try {
        return statSync(p).isDirectory() && existsSync(join(p, 'cgroup.procs'));
      } catch {
        return false;
      }
    });
}

/** Every cgroup directory under root in every hierarchy, deepest first. */
function cgroupDirs(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(join(d, e.name));
    out.push(d);
  };
  for (const h of hierarchies()) {
    const d = join(h, root);
    if (existsSync(d)) walk(d);
  }
  return out;
}

/** Kills every process in the cgroups under root and removes the cgroups. */
function removeCgroupTree(root: string): void {
  for (let attempt = 0; attempt < 50; attempt++) {
    const dirs = cgroupDirs(root);
    if (dirs.length === 0) return;
    for (const d of dirs) {
      try {
        for (const pid of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean))
          kill(Number(pid));
      } catch {
        // removed meanwhile
      }
    }
    for (const d of dirs) {
      try {
        rmdirSync(d);
      } catch {
        // still has processes (dying) or children; next round
      }
    }
    if (cgroupDirs(root).length === 0) return;
    sleepSync(100);
  }
}

function readSysctls(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of KUBELET_SYSCTLS) {
    try {
      out[s] = readFileSync(`/proc/sys/${s}`, 'utf8').trim();
    } catch {
      // not on this kernel
    }
  }
  return out;
}

/** Records what the host looks like before the first kubelet of any live harness starts. */
function recordHostState(): void {
  const state: HostState = { sysctls: readSysctls(), runContainerdExisted: existsSync('/run/containerd') };
  try {
    writeFileSync(HOST_STATE_FILE, JSON.stringify(state, null, 2), { flag: 'wx' });
  } catch {
    // another live harness recorded it first: its values are the host's own
  }
}

/** Live harnesses other than `except` (their folders hold a state with a live owner). */
function liveHarnesses(exceptDir?: string): string[] {
  return readdirSync(tmpdir())
    .filter((e) => e.startsWith(DIR_PREFIX))
    .map((e) => join(tmpdir(), e))
    .filter((dir) => {
      if (dir === exceptDir) return false;
      try {
        const s = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as State;
        return isAlive(s.owner);
      } catch {
        return false;
      }
    });
}

/** Writes back the sysctls found by the first harness, once no harness runs any more. */
function restoreHostState(exceptDir?: string): void {
  if (liveHarnesses(exceptDir).length > 0 || !existsSync(HOST_STATE_FILE)) return;
  let state: HostState;
  try {
    state = JSON.parse(readFileSync(HOST_STATE_FILE, 'utf8')) as HostState;
  } catch {
    return;
  }
  for (const [name, value] of Object.entries(state.sysctls)) {
    try {
      if (readFileSync(`/proc/sys/${name}`, 'utf8').trim() !== value)
        writeFileSync(`/proc/sys/${name}`, value);
    } catch {
      // leave it; the doc says which ones kubelet touches
    }
  }
  if (!state.runContainerdExisted) {
    for (const d of [SHIM_SOCKET_DIR, '/run/containerd']) {
      try {
        rmdirSync(d);
      } catch {
        // not empty (someone else's containerd) or gone
      }
    }
  }
  rmSync(HOST_STATE_FILE, { force: true });
}

/** Shim sockets of a run's containerds (each task dir records its shim's address). */
function removeShimSockets(dir: string): void {
  let nodes: string[];
  try {
    nodes = readdirSync(dir);
  } catch {
    return;
  }
  for (const node of nodes) {
    const tasks = join(dir, node, 'containerd', 'state', 'io.containerd.runtime.v2.task');
    if (!existsSync(tasks)) continue;
    for (const ns of readdirSync(tasks)) {
      for (const id of readdirSync(join(tasks, ns))) {
        try {
          const address = readFileSync(join(tasks, ns, id, 'address'), 'utf8').trim();
          const path = address.replace(/^unix:\/\//, '');
          if (path.startsWith(`${SHIM_SOCKET_DIR}/`)) unlinkSync(path);
        } catch {
          // no address, or the shim removed its socket
        }
      }
    }
  }
}

/** Mounts visible on the host under dir (none expected: they live in the nodes' mount namespaces). */
function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m]);
}

/** Everything a run left in dir and its cgroups; synchronous so exit hooks can use it. */
function teardownSync(dir: string, state: State | undefined, ownerPid: number): void {
  for (const pid of Object.values(state?.pids ?? {})) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) kill(pid);
    } catch {
      // gone
    }
  }
  for (const pid of processesUsing(dir)) kill(pid);
  const roots = new Set(state?.cgroupRoots ?? []);
  for (const h of hierarchies()) {
    for (const e of readdirSync(h)) if (e.startsWith(`${DIR_PREFIX}${ownerPid}-`)) roots.add(`/${e}`);
  }
  for (const root of roots) removeCgroupTree(root);
  for (const pid of processesUsing(dir)) kill(pid);
  removeShimSockets(dir);
  unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** Removes what harnesses killed outright left behind (their owner process is gone). */
export function sweepHomeClusters(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(DIR_PREFIX) || entry === 'pcloud-hc-host-state.json') continue;
    const dir = join(tmpdir(), entry);
    const owner = Number(/^pcloud-hc-(\d+)-/.exec(entry)?.[1]);
    if (!owner || isAlive(owner)) continue;
    let state: State | undefined;
    try {
      state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as State;
    } catch {
      state = undefined;
    }
    teardownSync(dir, state, owner);
  }
  // cgroups of runs killed before their folder held a state
  for (const h of hierarchies()) {
    for (const e of readdirSync(h)) {
      const m = /^pcloud-hc-(\d+)-/.exec(e);
      if (m && !isAlive(Number(m[1]))) removeCgroupTree(`/${e}`);
    }
  }
  restoreHostState();
}

const live = new Set<HomeCluster>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const hc of live) hc.destroySync();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const hc of live) hc.destroySync();
      process.kill(process.pid, signal);
    });
  }
}

export interface HomeNode {
  name: string;
  ip: string;
  podSubnet: string;
  dir: string;
  socket: string;
  cgroupRoot: string;
}

export class HomeCluster {
  readonly dir: string;
  readonly nodes = new Map<string, HomeNode>();
  lab!: HomeLab;
  controlPlane!: ControlPlane;
  /** The registry every node pulls from: host:port on the LAN (plain HTTP). */
  registry = '';
  /**
   * Every node's pod subnet is a /24 of this: 10.<the LAN's third octet>.0.0/16, so that
   * clusters on different LANs never share pod addresses and the host can route to each
   * one's pods (the API server calls webhooks and aggregated APIs at their pods).
   */
  podCidr = '';
  /** The kubeconfig of the nodes' CNI plugins (Multus, whereabouts). */
  cniKubeconfig = '';
  /** Milliseconds from start() to every node Ready. */
  startupMs = 0;
  private readonly processes = new Map<string, ChildProcess>();
  private readonly state: State = { owner: process.pid, pids: {}, cgroupRoots: [] };
  private stopped = false;

  private constructor(private readonly opts: HomeClusterOptions) {
    this.dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  }

  static async start(opts: HomeClusterOptions): Promise<HomeCluster> {
    const began = Date.now();
    sweepHomeClusters();
    const images = [await pauseImage(), await busyboxImage(), ...(opts.images ?? [])];
    const hc = new HomeCluster(opts);
    installExitHooks();
    live.add(hc);
    try {
      await hc.boot(images);
      hc.startupMs = Date.now() - began;
      return hc;
    } catch (err) {
      await hc.stop();
      throw err;
    }
  }

  private writeState(): void {
    writeFileSync(join(this.dir, 'state.json'), JSON.stringify(this.state, null, 2));
  }

  private async boot(images: BuiltImage[]): Promise<void> {
    this.writeState();
    this.lab = await HomeLab.start({
      nodes: this.opts.nodes,
      lanPrefix: this.opts.lanPrefix ?? '192.168.214',
    });
    this.controlPlane = await ControlPlane.start({
      name: 'home',
      ...this.opts.controlPlane,
      address: this.lab.hostIp,
      controllerManager: false,
    });
    // Nodes act with the rights of the built-in system:node role (no Node authorizer here).
    const bound = await this.controlPlane.kubectl([
      'create',
      'clusterrolebinding',
      'pcloud-nodes',
      '--clusterrole=system:node',
      '--group=system:nodes',
    ]);
    if (bound.code !== 0) throw new Error(`binding system:node failed: ${bound.stderr}`);
    await this.mintCniUser();
    await this.startControllerManager();
    await this.startScheduler();
    await this.startRegistry();
    recordHostState();
    const octet = this.lab.lanPrefix.split('.')[2]!;
    this.podCidr = `10.${octet}.0.0/16`;
    for (const [i, name] of this.opts.nodes.entries()) {
      const node: HomeNode = {
        name,
        ip: this.lab.nodeIp(name),
        podSubnet: `10.${octet}.${i + 1}.0/24`,
        dir: join(this.dir, name),
        socket: join(this.dir, name, 'containerd.sock'),
        cgroupRoot: `/${DIR_PREFIX}${process.pid}-${name}`,
      };
      this.nodes.set(name, node);
    }
    // Each node reaches the other nodes' pods through their LAN address.
    for (const a of this.nodes.values())
      for (const b of this.nodes.values())
        if (a !== b) await this.lab.exec(a.name, 'ip', ['route', 'add', b.podSubnet, 'via', b.ip]);
    // The host reaches the pods too (kube-apiserver → webhooks, aggregated APIs: it resolves
    // them to pod addresses, --enable-aggregator-routing). The routes go with the LAN's host
    // interface, so stop or the next start's sweep removes them with it.
    for (const node of this.nodes.values()) {
      const r = await runCommand('ip', ['route', 'replace', node.podSubnet, 'via', node.ip]);
      if (r.code !== 0) throw new Error(`host route to ${node.podSubnet}: ${r.stderr}`);
    }
    // Pods' traffic to the host (the API server behind the `kubernetes` Service, the
    // registry) leaves the node masqueraded, as k3s's flannel masquerades pod traffic
    // leaving the cluster network: the host has no route to the pod subnets (concurrent
    // clusters use the same ones). Only to the host's address, so every other flow keeps
    // the pods' own addresses. The node's own nftables table, gone with its namespace.
    for (const node of this.nodes.values())
      await this.lab.exec(
        node.name,
        'nft',
        ['-f', '-'],
        [
          'table ip pcloud-hc {',
          '  chain postrouting {',
          '    type nat hook postrouting priority srcnat; policy accept;',
          `    ip saddr ${this.podCidr} ip daddr ${this.lab.hostIp} masquerade`,
          '  }',
          '}',
          '',
        ].join('\n'),
      );
    for (const node of this.nodes.values()) await this.startContainerd(node, images);
    for (const node of this.nodes.values()) await this.startKubelet(node);
    await Promise.all([...this.nodes.keys()].map((n) => this.waitNodeReady(n)));
    // The first node is the home's k3s server: k3s labels it so (kubelet may not label
    // itself with node-role.kubernetes.io/*), and KubeVirt places its control plane there.
    const server = this.opts.nodes[0]!;
    const labelled = await this.controlPlane.kubectl([
      'label',
      'node',
      server,
      'node-role.kubernetes.io/control-plane=true',
      'node-role.kubernetes.io/master=true',
    ]);
    if (labelled.code !== 0) throw new Error(`labelling ${server}: ${labelled.stderr}`);
    for (const node of this.nodes.values()) await this.startKubeProxy(node);
  }

  private spawnLogged(key: string, file: string, args: string[]): ChildProcess {
    const fd = openSync(join(this.dir, `${key}.log`), 'a');
    const child = spawn(file, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`${key} did not start`);
    this.processes.set(key, child);
    this.state.pids[key] = child.pid;
    child.once('exit', () => {
      if (this.processes.get(key) === child) this.processes.delete(key);
    });
    this.writeState();
    return child;
  }

  /** The last lines of a process's log (key: kubelet-<node>, containerd-<node>, kube-scheduler, ...). */
  logTail(key: string, lines = 40): string {
    try {
      return readFileSync(join(this.dir, `${key}.log`), 'utf8')
        .trimEnd()
        .split('\n')
        .slice(-lines)
        .join('\n');
    } catch {
      return '(no log)';
    }
  }

  private async waitFor(key: string, what: string, probe: () => Promise<boolean>, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.processes.has(key)) throw new Error(`${key} exited before ${what}:\n${this.logTail(key)}`);
      if (await probe().catch(() => false)) return;
      await sleep(200);
    }
    throw new Error(`${key}: no ${what} after ${timeoutMs} ms:\n${this.logTail(key)}`);
  }

  private async startControllerManager(): Promise<void> {
    const pki = join(this.controlPlane.dir, 'pki');
    const [port] = await freePorts(1);
    this.spawnLogged('kube-controller-manager', join(BIN_DIR, 'kube-controller-manager'), [
      `--kubeconfig=${this.controlPlane.kubeconfigPath}`,
      // ControlPlane's set, plus what nodes and pods need: the not-ready taint lifted
      // from Ready nodes, the kube-root-ca.crt ConfigMap of service-account volumes,
      // EndpointSlices, Deployments, DaemonSets (a chart's node agents), and pods of
      // deleted nodes collected.
      '--controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,resourcequota-controller,node-lifecycle-controller,root-ca-certificate-publisher-controller,endpointslice-controller,deployment-controller,replicaset-controller,daemonset-controller,job-controller,pod-garbage-collector-controller',
      `--service-account-private-key-file=${join(pki, 'sa.key')}`,
      `--root-ca-file=${join(pki, 'ca.crt')}`,
      '--use-service-account-credentials=false',
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(this.dir, 'kcm-certs')}`,
      '--v=1',
    ]);
    await this.waitFor('kube-controller-manager', 'healthz', () => localHealthz(port!));
  }

  private async startScheduler(): Promise<void> {
    const [port] = await freePorts(1);
    this.spawnLogged('kube-scheduler', join(BIN_DIR, 'kube-scheduler'), [
      `--kubeconfig=${this.controlPlane.kubeconfigPath}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(this.dir, 'scheduler-certs')}`,
      '--v=1',
    ]);
    await this.waitFor('kube-scheduler', 'healthz', () => localHealthz(port!));
  }

  /**
   * distribution's registry on the host's LAN address, storage in the run's folder (its
   * command line names the folder, so a killed run's registry is swept with the rest).
   */
  private async startRegistry(): Promise<void> {
    const [port] = await freePorts(1);
    this.registry = `${this.lab.hostIp}:${port}`;
    const dir = join(this.dir, 'registry');
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(
      join(dir, 'config.yml'),
      stringify({
        version: 0.1,
        log: { level: 'warn', accesslog: { disabled: true } },
        storage: { filesystem: { rootdirectory: join(dir, 'data') }, delete: { enabled: true } },
        http: { addr: this.registry },
      }),
    );
    // No trace exporter: nothing collects the registry's OpenTelemetry spans here.
    this.spawnLogged('registry', 'env', [
      'OTEL_TRACES_EXPORTER=none',
      join(BIN_DIR, 'registry'),
      'serve',
      join(dir, 'config.yml'),
    ]);
    await this.waitFor('registry', 'the /v2/ API', async () => {
      const res = await fetch(`http://${this.registry}/v2/`);
      return res.status === 200;
    });
  }

  /** Pushes an image to the cluster's registry as repo:tag; returns the reference nodes pull. */
  async pushImage(image: BuiltImage, repoAndTag: string): Promise<string> {
    const ref = `${this.registry}/${repoAndTag}`;
    await pushImage(image, ref);
    return ref;
  }

  /**
   * The identity of the nodes' CNI plugins (Multus reads pods and their
   * NetworkAttachmentDefinitions and writes their network-status; whereabouts keeps its
   * IPPools), with the rights their upstream manifests give their ServiceAccounts.
   */
  private async mintCniUser(): Promise<void> {
    const rbac = [
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: CNI_USER },
        rules: [
          { apiGroups: ['k8s.cni.cncf.io'], resources: ['*'], verbs: ['*'] },
          {
            apiGroups: [''],
            resources: ['pods', 'pods/status'],
            verbs: ['get', 'list', 'watch', 'update', 'patch'],
          },
          { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch', 'update'] },
          { apiGroups: ['whereabouts.cni.cncf.io'], resources: ['*'], verbs: ['*'] },
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['*'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: CNI_USER },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CNI_USER },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: CNI_USER }],
      },
    ];
    const r = await this.controlPlane.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }),
    });
    if (r.code !== 0) throw new Error(`the CNI plugins' ClusterRole: ${r.stderr}`);
    this.cniKubeconfig = (await this.controlPlane.mintUser(CNI_USER)).kubeconfigPath;
  }

  private async startContainerd(node: HomeNode, images: BuiltImage[]): Promise<void> {
    const d = node.dir;
    for (const sub of ['containerd/root', 'containerd/state', 'net.d', 'cni-ipam', 'opt'])
      mkdirSync(join(d, sub), { recursive: true });
    // Multus (thin) is the CNI containerd calls: the pod network below for every pod, and
    // the networks a pod's k8s.v1.cni.cncf.io/networks annotation names, from their
    // NetworkAttachmentDefinitions (KubeVirt's virt-launcher pods of tenant VMs).
    writeFileSync(
      join(d, 'net.d', '00-multus.conf'),
      JSON.stringify(
        {
          cniVersion: '0.3.1',
          name: 'multus-cni-network',
          type: 'multus',
          kubeconfig: this.cniKubeconfig,
          clusterNetwork: join(d, 'net.d', '10-pcloud-pods.conf'),
          binDir: CNI_BIN,
        },
        null,
        2,
      ),
    );
    // whereabouts (the tenant networks' IPAM) reads its datastore from a fixed path in
    // /etc: the node's own /etc overlay (below).
    mkdirSync(join(d, 'etc', 'upper', 'cni', 'net.d', 'whereabouts.d'), { recursive: true });
    writeFileSync(
      join(d, 'etc', 'upper', 'cni', 'net.d', 'whereabouts.d', 'whereabouts.conf'),
      JSON.stringify({ datastore: 'kubernetes', kubernetes: { kubeconfig: this.cniKubeconfig } }),
    );
    // A single-plugin .conf, not a .conflist: Multus v4.3.0 caches a conflist re-encoded
    // through its own types (the plugin's own keys, bridge and ipam ranges, are lost), and
    // its DEL then fails (`plugin type="bridge" failed (delete): no IP ranges specified`).
    writeFileSync(
      join(d, 'net.d', '10-pcloud-pods.conf'),
      JSON.stringify(
        {
          cniVersion: '0.4.0',
          name: 'pcloud-pods',
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: node.podSubnet }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: join(d, 'cni-ipam'),
          },
        },
        null,
        2,
      ),
    );
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    writeFileSync(
      join(d, 'containerd.toml'),
      [
        'version = 2',
        `root = "${join(d, 'containerd', 'root')}"`,
        `state = "${join(d, 'containerd', 'state')}"`,
        'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]',
        '[grpc]',
        `  address = "${node.socket}"`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${join(d, 'opt')}"`,
        `[${cri}]`,
        `  sandbox_image = "${PAUSE_IMAGE}"`,
        // root here lacks CAP_SYS_RESOURCE: runc cannot raise oom_score_adj (REAL-PARTS.md).
        '  restrict_oom_score_adj = true',
        // Pod network namespaces are mounted under the state dir, not the host's /run/netns.
        '  netns_mounts_under_state_dir = true',
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        `[${cri}.containerd]`,
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        `[${cri}.containerd.runtimes.runc]`,
        '  runtime_type = "io.containerd.runc.v2"',
        `[${cri}.containerd.runtimes.runc.options]`,
        '  SystemdCgroup = false',
        `  Root = "${join(d, 'runc')}"`,
        // Registries' hosts.toml files (the home cluster's own: plain HTTP).
        `[${cri}.registry]`,
        `  config_path = "${join(d, 'certs.d')}"`,
        `[${cri}.cni]`,
        `  bin_dir = "${CNI_BIN}"`,
        `  conf_dir = "${join(d, 'net.d')}"`,
        '',
      ].join('\n'),
    );
    mkdirSync(join(d, 'certs.d', this.registry), { recursive: true });
    writeFileSync(
      join(d, 'certs.d', this.registry, 'hosts.toml'),
      [
        `server = "http://${this.registry}"`,
        `[host."http://${this.registry}"]`,
        '  capabilities = ["pull", "resolve"]',
        '',
      ].join('\n'),
    );
    const key = `containerd-${node.name}`;
    // containerd in the node's network namespace and a mount namespace of its own
    // (slave: host mounts show through, its mounts stay inside). Not `ip netns exec`:
    // it remounts /sys, and the cgroup hierarchies under /sys/fs/cgroup go with it.
    // /var is an overlay whose upper layer is the node's folder: kubelet writes fixed
    // paths there (/var/lib/kubelet/device-plugins, /var/log/containers), and so does
    // the CNI library's cache (/var/lib/cni); on the host they would be shared by the
    // nodes and left behind.
    // /etc is an overlay too (the CNI plugins' own configuration, e.g. whereabouts', lives
    // at fixed paths under /etc/cni/net.d), and /run a tmpfs of the node's own, as on a
    // machine: KubeVirt keeps its sockets under /var/run/kubevirt*, containerd its shims'.
    // The node has a PID namespace of its own with containerd as its PID 1 and /proc
    // mounted for it: host-PID pods (virt-handler) find the node's root and mount
    // namespace at /proc/1, not the host's. --kill-child: the namespace dies with unshare.
    const overlays = ['var', 'etc']
      .map((dir) => {
        mkdirSync(join(d, dir, 'upper'), { recursive: true });
        mkdirSync(join(d, dir, 'work'), { recursive: true });
        const opts = `lowerdir=/${dir},upperdir=${join(d, dir, 'upper')},workdir=${join(d, dir, 'work')}`;
        return `mount -t overlay overlay -o ${opts} /${dir}`;
      })
      .join(' && ');
    this.spawnLogged(key, 'unshare', [
      '--mount',
      '--propagation=slave',
      '--pid',
      '--fork',
      '--mount-proc',
      '--kill-child=SIGKILL',
      'nsenter',
      `--net=/run/netns/${this.lab.ns(node.name)}`,
      'sh',
      '-c',
      // /var shared: kubelet's pods folder is in it, and virt-handler mounts into it with
      // Bidirectional propagation.
      `mount -t tmpfs -o mode=0755 tmpfs /run && ${overlays} && mount --make-rshared /var && ` +
        `exec ${CONTAINERD} --config ${join(d, 'containerd.toml')}`,
    ]);
    const unsharePid = this.state.pids[key]!;
    await this.waitFor(key, 'the node PID namespace', () => {
      const init = childPids(unsharePid)[0];
      if (init !== undefined) this.state.pids[`init-${node.name}`] = init;
      return Promise.resolve(init !== undefined);
    });
    this.writeState();
    await this.waitFor(key, 'CRI', async () => (await this.ctr(node.name, ['version'])).code === 0, 30_000);
    for (const image of images) {
      const r = await this.ctr(node.name, ['-n', 'k8s.io', 'images', 'import', image.path]);
      if (r.code !== 0) throw new Error(`ctr images import ${image.path} on ${node.name}: ${r.stderr}`);
    }
  }

  /**
   * nsenter options that put a command in a node's network and mount namespaces, where
   * kubelet and kube-proxy run (dev/kube-router.ts runs kube-router there too).
   */
  nodeNamespaces(node: string): string[] {
    const pid = this.state.pids[`init-${node}`];
    if (pid === undefined) throw new Error(`no containerd on ${node}`);
    return [`--target=${pid}`, '--mount', '--net', '--pid'];
  }

  /** Runs Debian's ctr against a node's containerd. */
  ctr(node: string, args: readonly string[]): Promise<CommandResult> {
    return runCommand(CTR, ['--address', this.nodes.get(node)!.socket, ...args]);
  }

  private async startKubelet(node: HomeNode): Promise<void> {
    const d = node.dir;
    const pki = join(this.controlPlane.dir, 'pki');
    for (const sub of ['pod-logs', 'volume-plugins', 'kubelet-pki'])
      mkdirSync(join(d, sub), { recursive: true });
    // kubelet refuses a cgroup root that does not exist in every hierarchy.
    for (const h of hierarchies()) {
      const c = join(h, node.cgroupRoot);
      mkdirSync(c, { recursive: true });
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        const own = join(c, f);
        if (existsSync(own) && readFileSync(own, 'utf8').trim() === '')
          writeFileSync(own, readFileSync(join(h, f), 'utf8'));
      }
    }
    this.state.cgroupRoots.push(node.cgroupRoot);
    this.writeState();
    const user = await this.controlPlane.mintUser(`system:node:${node.name}`, ['system:nodes']);
    const config = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // This machine's cgroup layout is v1 (hybrid); kubelet 1.31+ refuses it unless told.
      failCgroupV1: false,
      // As the API server's (dev/control-plane.ts): KubeVirt v1.5 predates the field.
      featureGates: { PodObservedGenerationTracking: false },
      failSwapOn: false,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: node.cgroupRoot,
      containerRuntimeEndpoint: `unix://${node.socket}`,
      address: node.ip,
      port: 10250,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: 10248,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: join(pki, 'ca.crt') },
      },
      authorization: { mode: 'Webhook' },
      podLogsDir: join(d, 'pod-logs'),
      volumePluginDir: join(d, 'volume-plugins'),
      staticPodPath: '',
      rotateCertificates: false,
      // A loaded shared disk must not taint the node with disk pressure or evict our images.
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      syncFrequency: '10s',
      nodeStatusUpdateFrequency: '5s',
    };
    writeFileSync(join(d, 'kubelet.yaml'), stringify(config));
    const key = `kubelet-${node.name}`;
    this.spawnLogged(key, 'nsenter', [
      ...this.nodeNamespaces(node.name),
      join(BIN_DIR, 'kubelet'),
      `--config=${join(d, 'kubelet.yaml')}`,
      `--kubeconfig=${user.kubeconfigPath}`,
      // The usual root, in the node's own /var: virt-handler mounts its pods folder by this path.
      '--root-dir=/var/lib/kubelet',
      `--cert-dir=${join(d, 'kubelet-pki')}`,
      `--hostname-override=${node.name}`,
      `--node-ip=${node.ip}`,
      '--v=1',
    ]);
  }

  /**
   * kube-proxy in nftables mode (there is no iptables binary here), in the node's
   * network and mount namespaces like kubelet, as the built-in `system:kube-proxy` user
   * (bound to system:node-proxier by default). Conntrack sysctls are left alone: they are
   * the host's. Returns when the node's nftables carry the `kubernetes` Service.
   */
  private async startKubeProxy(node: HomeNode): Promise<void> {
    const d = node.dir;
    const user = await this.controlPlane.mintUser('system:kube-proxy');
    const config = {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      mode: 'nftables',
      clientConnection: { kubeconfig: user.kubeconfigPath },
      hostnameOverride: node.name,
      clusterCIDR: this.podCidr,
      bindAddress: node.ip,
      healthzBindAddress: '127.0.0.1:10256',
      metricsBindAddress: '127.0.0.1:10249',
      // 0: leave the (host-wide) conntrack table size and timeouts as they are.
      conntrack: {
        maxPerCore: 0,
        min: 0,
        tcpEstablishedTimeout: '0s',
        tcpCloseWaitTimeout: '0s',
        udpTimeout: '0s',
        udpStreamTimeout: '0s',
      },
      // root here lacks CAP_SYS_RESOURCE: it cannot lower its own oom_score_adj.
      oomScoreAdj: 0,
      syncPeriod: '10s',
    };
    writeFileSync(join(d, 'kube-proxy.yaml'), stringify(config));
    const key = `kube-proxy-${node.name}`;
    this.spawnLogged(key, 'nsenter', [
      ...this.nodeNamespaces(node.name),
      join(BIN_DIR, 'kube-proxy'),
      `--config=${join(d, 'kube-proxy.yaml')}`,
      '--v=1',
    ]);
    await this.waitFor(key, 'the kubernetes Service in nftables', async () => {
      const r = await this.lab.run(node.name, 'nft', ['list', 'table', 'ip', 'kube-proxy']);
      return r.code === 0 && r.stdout.includes(KUBERNETES_SERVICE_IP);
    });
  }

  private async waitNodeReady(name: string): Promise<void> {
    const timeoutMs = this.opts.readyTimeoutMs ?? 120_000;
    await this.waitFor(
      `kubelet-${name}`,
      'Ready Node',
      async () => {
        const r = await this.controlPlane.get(`/api/v1/nodes/${name}`);
        if (r.status !== 200) return false;
        const node = JSON.parse(r.body) as {
          spec?: { taints?: { key: string }[] };
          status?: { conditions?: { type: string; status: string }[] };
        };
        const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        const notReadyTaint = node.spec?.taints?.some((t) => t.key === 'node.kubernetes.io/not-ready');
        return ready === true && !notReadyTaint;
      },
      timeoutMs,
    );
  }

  /**
   * A container's log as kubelet stored it on the node (CRI format: time, stream, tag,
   * text per line), as plain text; `kubectl logs` serves the same through the API server.
   */
  podLog(node: string, namespace: string, pod: string, container: string): string {
    const logs = join(this.nodes.get(node)!.dir, 'pod-logs');
    const podDir = readdirSync(logs).find((e) => e.startsWith(`${namespace}_${pod}_`));
    if (podDir === undefined) throw new Error(`no logs of ${namespace}/${pod} on ${node}`);
    const dir = join(logs, podDir, container);
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.log'))
      .sort();
    return readFileSync(join(dir, files[files.length - 1]!), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(' ').slice(3).join(' '))
      .join('\n');
  }

  private async stopProcess(key: string, graceMs = 5_000): Promise<void> {
    const child = this.processes.get(key);
    if (child !== undefined) await terminate(child, graceMs);
  }

  /** Stops kubelets, pods, containerds, scheduler, controller manager, control plane and LAN. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const node of this.nodes.values()) await this.stopProcess(`kubelet-${node.name}`);
    for (const node of this.nodes.values()) await this.stopProcess(`kube-proxy-${node.name}`);
    // Containers first (kubelet leaves them running when it exits), then their shims.
    for (const node of this.nodes.values()) removeCgroupTree(node.cgroupRoot);
    for (const node of this.nodes.values()) await this.stopProcess(`containerd-${node.name}`);
    await this.stopProcess('registry');
    await this.stopProcess('kube-scheduler');
    await this.stopProcess('kube-controller-manager');
    await this.controlPlane?.stop();
    await this.lab?.stop();
    teardownSync(this.dir, this.state, process.pid);
    live.delete(this);
    restoreHostState(this.dir);
  }

  /** Synchronous last-resort clean-up for process exit; the LAN is swept at the next start. */
  destroySync(): void {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    teardownSync(this.dir, this.state, process.pid);
    restoreHostState(this.dir);
  }
}

async function localHealthz(port: number): Promise<boolean> {
  const { request } = await import('node:https');
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
