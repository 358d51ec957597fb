/**
 * A home LAN of network namespaces for tests with real packets: a LAN switch, a router
 * and a NAS at home-LAN addresses, nodes (each a namespace with its own eth0 on the
 * LAN), and "VMs" (namespaces) attached to a node by the real CNI plugins called as a
 * container runtime calls them (cnitool, inside the node's namespace), with the
 * configuration the operator wrote. The host gets one veth on the LAN so the node
 * agents and whereabouts reach a control plane listening on hostIp.
 *
 * Every name starts with `pcl<pid>`: a later start deletes what a killed run left
 * (namespaces, the host veth, processes inside them) when that pid is gone. Nothing on
 * the host is changed but that one veth; the sysctls set are the namespaces' own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './paths.js';
import { runCommand, type CommandResult, isAlive } from './run-command.js';

export const CNI_BIN = join(repoRoot, '.cache', 'cni', 'bin');
const CLI = join(repoRoot, 'dist', 'cli', 'pcloud.js');

export interface HomeLabOptions {
  nodes: readonly string[];
  /** The LAN's /24, as three octets (default 192.168.213). */
  lanPrefix?: string;
}

export interface Vm {
  name: string;
  node: string;
  netns: string;
  ip: string;
  mac: string;
}

async function must(file: string, args: readonly string[], input?: string): Promise<string> {
  const r = await runCommand(file, args, input !== undefined ? { input } : {});
  if (r.code !== 0)
    throw new Error(`${file} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** Deletes namespaces, host veths and folders of runs whose process is gone (killed, crashed). */
export async function sweepHomeLabs(): Promise<void> {
  const list = await runCommand('ip', ['netns', 'list']);
  for (const line of list.stdout.split('\n')) {
    const m = /^(pcl(\d+)-\S+)/.exec(line);
    if (!m || isAlive(Number(m[2]))) continue;
    await deleteNamespace(m[1]!);
  }
  for (const entry of readdirSync(tmpdir())) {
    const m = /^pcl(\d+)-/.exec(entry);
    if (m && !isAlive(Number(m[1]))) rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
  const links = await runCommand('ip', ['-o', 'link', 'show']);
  for (const m of links.stdout.matchAll(/^\d+: (pcl(\d+)h)[@:]/gm)) {
    if (!isAlive(Number(m[2]))) await runCommand('ip', ['link', 'delete', m[1]!]);
  }
}

async function deleteNamespace(ns: string): Promise<void> {
  const pids = await runCommand('ip', ['netns', 'pids', ns]);
  for (const p of pids.stdout.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await runCommand('ip', ['netns', 'delete', ns]);
}

export class HomeLab {
  readonly prefix = `pcl${process.pid}`;
  readonly dir: string;
  readonly lanPrefix: string;
  readonly hostIp: string;
  readonly routerIp: string;
  readonly nasIp: string;
  private readonly namespaces: string[] = [];
  private readonly agents = new Map<string, ChildProcess>();
  private nodeIndex = new Map<string, number>();

  private constructor(readonly opts: HomeLabOptions) {
    this.lanPrefix = opts.lanPrefix ?? '192.168.213';
    this.hostIp = `${this.lanPrefix}.254`;
    this.routerIp = `${this.lanPrefix}.1`;
    this.nasIp = `${this.lanPrefix}.20`;
    this.dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
  }

  get lanCidr(): string {
    return `${this.lanPrefix}.0/24`;
  }

  ns(name: string): string {
    return `${this.prefix}-${name}`;
  }

  nodeIp(node: string): string {
    return `${this.lanPrefix}.${10 + this.nodeIndex.get(node)!}`;
  }

  /** The LAN, router, NAS and nodes, and the host's veth on the LAN. */
  static async start(opts: HomeLabOptions): Promise<HomeLab> {
    await sweepHomeLabs();
    const lab = new HomeLab(opts);
    try {
      await lab.build();
      return lab;
    } catch (err) {
      await lab.stop();
      throw err;
    }
  }

  private async build(): Promise<void> {
    const lan = await this.addNamespace('lan');
    await this.exec('lan', 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    await this.exec('lan', 'ip', ['link', 'set', 'br0', 'up']);
    const host = `${this.prefix}h`;
    await must('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', 'host', 'netns', lan]);
    await this.exec('lan', 'ip', ['link', 'set', 'host', 'master', 'br0', 'up']);
    await must('ip', ['address', 'add', `${this.hostIp}/24`, 'dev', host]);
    await must('ip', ['link', 'set', host, 'up']);
    await this.addLanHost('router', this.routerIp);
    await this.addLanHost('nas', this.nasIp);
    for (const [i, node] of this.opts.nodes.entries()) {
      this.nodeIndex.set(node, i + 1);
      await this.addLanHost(node, this.nodeIp(node));
      // As on a k3s node (REAL-PARTS.md): bridged frames also pass the IP hooks.
      await this.exec(node, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=1']);
      this.writeWhereaboutsFlatFile(node);
    }
  }

  private async addNamespace(name: string): Promise<string> {
    const ns = this.ns(name);
    await must('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    await this.exec(name, 'ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** A namespace with eth0 on the LAN switch at ip. */
  private async addLanHost(name: string, ip: string): Promise<void> {
    const ns = await this.addNamespace(name);
    const port = `p-${name}`.slice(0, 15);
    await must('ip', [
      'link',
      'add',
      port,
      'netns',
      this.ns('lan'),
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns,
    ]);
    await this.exec('lan', 'ip', ['link', 'set', port, 'master', 'br0', 'up']);
    await this.exec(name, 'ip', ['address', 'add', `${ip}/24`, 'dev', 'eth0']);
    await this.exec(name, 'ip', ['link', 'set', 'eth0', 'up']);
    if (name !== 'router') await this.exec(name, 'ip', ['route', 'add', 'default', 'via', this.routerIp]);
  }

  /**
   * Another machine on the home LAN at ip (default route via the router), e.g. a guest's
   * client: it reaches the nodes and the host's address like anything on the LAN.
   */
  async addLanClient(name: string, ip: string): Promise<void> {
    await this.addLanHost(name, ip);
  }

  /**
   * A namespace behind `node` on a point-to-point veth, as a pod on the cluster network
   * sits behind its node: `ip` inside (default route via `gateway`), `gateway` on the
   * node's side, and forwarding on in the node. Returns the node side's interface name.
   */
  async addPod(name: string, node: string, ip: string, gateway: string): Promise<string> {
    const ns = await this.addNamespace(name);
    const hostSide = `pp-${name}`.slice(0, 15);
    await must('ip', [
      'link',
      'add',
      hostSide,
      'netns',
      this.ns(node),
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns,
    ]);
    await this.exec(node, 'ip', ['address', 'add', `${gateway}/32`, 'dev', hostSide]);
    await this.exec(node, 'ip', ['link', 'set', hostSide, 'up']);
    await this.exec(node, 'ip', ['route', 'add', `${ip}/32`, 'dev', hostSide]);
    await this.exec(node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await this.exec(name, 'ip', ['address', 'add', `${ip}/32`, 'dev', 'eth0']);
    await this.exec(name, 'ip', ['link', 'set', 'eth0', 'up']);
    await this.exec(name, 'ip', ['route', 'add', gateway, 'dev', 'eth0']);
    await this.exec(name, 'ip', ['route', 'add', 'default', 'via', gateway]);
    return hostSide;
  }

  /** Runs a command in the namespace `name`. */
  exec(name: string, file: string, args: readonly string[], input?: string): Promise<string> {
    return must('ip', ['netns', 'exec', this.ns(name), file, ...args], input);
  }

  /** Like exec, but returns the result whatever the exit code. */
  run(name: string, file: string, args: readonly string[]): Promise<CommandResult> {
    return runCommand('ip', ['netns', 'exec', this.ns(name), file, ...args]);
  }

  /** Each node's own /etc/cni/net.d/whereabouts.d, as whereabouts' installer writes it on a real node. */
  private writeWhereaboutsFlatFile(node: string): void {
    const d = join(this.dir, node, 'etc', 'cni', 'net.d', 'whereabouts.d');
    mkdirSync(d, { recursive: true });
    mkdirSync(join(this.dir, node, 'work'), { recursive: true });
    writeFileSync(
      join(d, 'whereabouts.conf'),
      JSON.stringify({
        datastore: 'kubernetes',
        kubernetes: { kubeconfig: join(this.dir, 'whereabouts.kubeconfig') },
      }),
    );
  }

  /** The kubeconfig whereabouts uses on every node (its context namespace holds the IP pools). */
  setWhereaboutsKubeconfig(yaml: string): void {
    writeFileSync(join(this.dir, 'whereabouts.kubeconfig'), yaml, { mode: 0o600 });
  }

  /**
   * Runs cnitool in the node's namespace with the node's own /etc (an overlay of the
   * host's with its whereabouts.d), as a container runtime on that node would.
   */
  private async cni(
    node: string,
    verb: 'add' | 'del',
    conflist: string,
    vm: string,
    podNamespace: string,
  ): Promise<string> {
    const net = JSON.parse(conflist) as { name: string };
    const confDir = join(this.dir, 'net.d', vm);
    mkdirSync(confDir, { recursive: true });
    writeFileSync(join(confDir, `${net.name}.conflist`), conflist);
    const overlay = `lowerdir=/etc,upperdir=${join(this.dir, node, 'etc')},workdir=${join(this.dir, node, 'work')}`;
    const env = [
      `CNI_PATH=${CNI_BIN}`,
      `NETCONFPATH=${confDir}`,
      'CNI_IFNAME=net1',
      `CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=${podNamespace};K8S_POD_NAME=${vm}`,
    ];
    return this.exec(node, 'unshare', [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount -t overlay overlay -o ${overlay} /etc && exec env ${env.map((e) => `'${e}'`).join(' ')} ${CNI_BIN}/cnitool ${verb} '${net.name}' /run/netns/${this.ns(vm)}`,
    ]);
  }

  /** A VM: a namespace attached to node's tenant bridge by the CNI plugins of conflist. */
  async addVm(vm: string, node: string, conflist: string, podNamespace: string): Promise<Vm> {
    await this.addNamespace(vm);
    const out = await this.cni(node, 'add', conflist, vm, podNamespace);
    const result = JSON.parse(out) as {
      ips?: { address: string }[];
      interfaces?: { name: string; mac: string; sandbox?: string }[];
    };
    const ip = result.ips?.[0]?.address.split('/')[0];
    const mac = result.interfaces?.find((i) => i.sandbox)?.mac;
    if (!ip || !mac) throw new Error(`cnitool add ${vm}: no address in ${out}`);
    return { name: vm, node, netns: this.ns(vm), ip, mac };
  }

  /** The runtime's CNI DEL (releases the address), then the namespace goes. */
  async deleteVm(vm: Vm, conflist: string, podNamespace: string): Promise<void> {
    await this.cni(vm.node, 'del', conflist, vm.name, podNamespace);
    const ns = this.ns(vm.name);
    await deleteNamespace(ns);
    this.namespaces.splice(this.namespaces.indexOf(ns), 1);
  }

  /** Starts `pcloud node-agent` inside the node's namespace (the host network of that node). */
  startAgent(node: string, kubeconfig: string, extra: string[] = []): ChildProcess {
    const logFile = createWriteStream(join(this.dir, `agent-${node}.log`));
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.ns(node),
        process.execPath,
        CLI,
        'node-agent',
        '--node-name',
        node,
        '--kubeconfig',
        kubeconfig,
        '--metrics-host',
        '127.0.0.1',
        ...extra,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.pipe(logFile);
    child.stderr?.pipe(logFile);
    this.agents.set(node, child);
    return child;
  }

  agentLog(node: string): string {
    return join(this.dir, `agent-${node}.log`);
  }

  async stopAgent(node: string): Promise<void> {
    const child = this.agents.get(node);
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
    this.agents.delete(node);
  }

  async stop(): Promise<void> {
    for (const node of [...this.agents.keys()]) await this.stopAgent(node);
    for (const ns of [...this.namespaces].reverse()) await deleteNamespace(ns);
    this.namespaces.length = 0;
    await runCommand('ip', ['link', 'delete', `${this.prefix}h`]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
