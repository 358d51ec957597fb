/**
 * kube-router's network policy controller (the enforcer k3s embeds) on a HomeCluster's
 * nodes: one `kube-router --run-firewall` per node, built from the pinned module
 * (tools/kube-router), running in the node's network and mount namespaces as kubelet and
 * kube-proxy do, as the user `system:kube-router` with read access to what it watches.
 * It only programs the node's iptables (filter table, KUBE-ROUTER-* and KUBE-POD-FW-*
 * chains) and ipsets, which belong to the node's network namespace and go with it.
 *
 * Clean-up: stop() sends SIGTERM; kube-router leaves its rules in place on exit, as on a
 * real node, and they go with the node's namespace when the cluster stops. Its files (kubeconfig, log) are in the HomeCluster's folder, so a killed
 * run's kube-router is swept with the rest of the run (its command line names the
 * folder), and its iptables and ipsets vanish with the node's namespace.
 *
 * kube-router v2.1.0 is the only version the module proxy serves, and security reports
 * are filed against it: it is the test enforcer here, never part of what we ship.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN_DIR } from './control-plane.js';
import { terminate, type HomeCluster } from './home-cluster.js';
import { runCommand, type CommandResult } from './run-command.js';

export const KUBE_ROUTER = join(BIN_DIR, 'kube-router');
const USER = 'system:kube-router';

/** What kube-router's informers watch (its upstream DaemonSet's ClusterRole, read-only). */
const RBAC = [
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'pcloud-test-kube-router' },
    rules: [
      {
        apiGroups: [''],
        resources: ['namespaces', 'pods', 'services', 'nodes', 'endpoints'],
        verbs: ['list', 'get', 'watch'],
      },
      { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['list', 'get', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'get', 'watch'] },
    ],
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'pcloud-test-kube-router' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'pcloud-test-kube-router' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: USER }],
  },
];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface KubeRouterOptions {
  /** The Service CIDR kube-router lets through unfiltered (before kube-proxy's DNAT). */
  serviceCidr: string;
}

/** kube-router's firewall on every node of a HomeCluster. */
export class KubeRouterFirewalls {
  private readonly children = new Map<string, ChildProcess>();
  private readonly dir: string;
  private kubeconfig = '';

  constructor(
    private readonly hc: HomeCluster,
    private readonly opts: KubeRouterOptions,
  ) {
    this.dir = join(hc.dir, 'kube-router');
  }

  /** Its ClusterRole and user (once), then kube-router on each node, up and syncing. */
  async start(nodes: readonly string[] = [...this.hc.nodes.keys()]): Promise<void> {
    if (this.kubeconfig === '') {
      mkdirSync(this.dir, { recursive: true });
      const r = await this.hc.controlPlane.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: RBAC }),
      });
      if (r.code !== 0) throw new Error(`kube-router RBAC: ${r.stderr}`);
      const user = await this.hc.controlPlane.mintUser(USER);
      // In the run's folder: the command line then names it, and a sweep finds it.
      this.kubeconfig = join(this.dir, 'kubeconfig');
      copyFileSync(user.kubeconfigPath, this.kubeconfig);
    }
    for (const node of nodes) await this.startOn(node);
  }

  private async startOn(node: string): Promise<void> {
    if (this.children.has(node)) return;
    const log = this.logPath(node);
    const fd = openSync(log, 'a');
    const child = spawn(
      'nsenter',
      [
        ...this.hc.nodeNamespaces(node),
        KUBE_ROUTER,
        `--kubeconfig=${this.kubeconfig}`,
        `--hostname-override=${node}`,
        '--run-firewall=true',
        '--run-router=false',
        '--run-service-proxy=false',
        `--service-cluster-ip-range=${this.opts.serviceCidr}`,
        // The health endpoint listens on the node's addresses only (its own namespace).
        '--health-port=20244',
        '--metrics-port=0',
        '--v=1',
      ],
      { stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    this.children.set(node, child);
    child.once('exit', () => {
      if (this.children.get(node) === child) this.children.delete(node);
    });
    // Up once its top-level chains hook the filter table's FORWARD chain.
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!this.children.has(node)) throw new Error(`kube-router on ${node} exited:\n${this.logTail(node)}`);
      const s = await this.iptablesSave(node);
      if (s.code === 0 && s.stdout.includes('-A FORWARD -m comment --comment "kube-router netpol')) return;
      if (Date.now() > deadline)
        throw new Error(`kube-router on ${node}: no chains after 60 s\n${this.logTail(node)}`);
      await sleep(300);
    }
  }

  /** The node's filter table as iptables-save prints it (in the node's namespaces). */
  iptablesSave(node: string): Promise<CommandResult> {
    return runCommand('nsenter', [...this.hc.nodeNamespaces(node), 'iptables-save', '-t', 'filter']);
  }

  /** The names of the node's ipsets. */
  async ipsets(node: string): Promise<string[]> {
    const r = await runCommand('nsenter', [...this.hc.nodeNamespaces(node), 'ipset', 'list', '-n']);
    if (r.code !== 0) throw new Error(`ipset list on ${node}: ${r.stderr}`);
    return r.stdout.split('\n').filter(Boolean);
  }

  /**
   * Stops kube-router on the nodes (SIGTERM, SIGKILL after 10 s). Its rules and ipsets
   * stay in the node's namespace, as on a real node (it does not remove them on exit):
   * they go with the namespace. kube-router v2.1.0's own `--cleanup-config` removes
   * nothing of the firewall (it cleans up with an unconfigured controller, whose lists of
   * iptables and ipset handlers are empty, then panics in the service proxy's clean-up;
   * docs/network.md), so it is not offered here.
   */
  async stop(nodes: readonly string[] = [...this.children.keys()]): Promise<void> {
    for (const node of nodes) {
      const child = this.children.get(node);
      if (child !== undefined) await terminate(child, 10_000);
    }
  }

  logPath(node: string): string {
    return join(this.dir, `${node}.log`);
  }

  logTail(node: string, lines = 30): string {
    try {
      return readFileSync(this.logPath(node), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}
