/**
 * The node agent: one per node (a DaemonSet, host network). It makes each Tenant's
 * network one L2 segment across the home's nodes: on this node, the bridge the
 * NetworkAttachmentDefinition names plus a VXLAN device with the Tenant's VNI (from
 * Tenant status), flooding to every other node's InternalIP (unicast head-end
 * replication: no multicast needed on a home LAN); and the nftables guard rails.
 *
 * Everything on the node is one reconcile key: the whole node's state is computed from
 * all Tenants and Nodes and compared with what the kernel has, on every change and on a
 * resync (drift: a device deleted by hand comes back). It only ever changes interfaces
 * whose alias carries our marker; a bridge of our name without an alias is adopted (the
 * CNI bridge plugin makes it when a VM lands before the agent); anything else of our
 * name is left alone and reported.
 */
import type { Logger } from 'pino';
import { Gauge, Counter } from 'prom-client';
import type { KubeObject } from '../kube/client.js';
import type { Reconciler, ReconcileResult } from '../kube/controller.js';
import type { EventRecorder } from '../kube/events.js';
import type { ObjectCache } from '../kube/informer.js';
import { Resources } from '../kube/kinds.js';
import type { Manager } from '../kube/manager.js';
import type { OperatorMetrics } from '../kube/metrics.js';
import { GuardRails } from './guard-rails.js';
import { CommandError, HostNetwork, type Link } from './host-network.js';
import {
  ALIAS_PREFIX,
  planNode,
  type NodeObject,
  type Problem,
  type TenantObject,
  type TenantSegment,
} from './plan.js';

/** Outer IPv4 + UDP + VXLAN + inner Ethernet headers. */
export const VXLAN_OVERHEAD = 50;
const KEY = 'node';

export class NodeAgentMetrics {
  readonly segments: Gauge;
  readonly floodEntries: Gauge<'tenant'>;
  readonly problems: Gauge<'reason'>;
  readonly guardDrops: Gauge<'rule'>;
  readonly addressesRemoved: Counter;
  readonly changes: Counter<'action'>;

  constructor(m: OperatorMetrics) {
    const registers = [m.registry];
    this.segments = new Gauge({
      name: 'pcloud_node_agent_segments',
      help: 'Tenant segments (bridge + VXLAN) this node carries.',
      registers,
    });
    this.floodEntries = new Gauge({
      name: 'pcloud_node_agent_flood_entries',
      help: "Other nodes a tenant's VXLAN floods to.",
      labelNames: ['tenant'],
      registers,
    });
    this.problems = new Gauge({
      name: 'pcloud_node_agent_problems',
      help: 'Problems found in the last reconcile, by reason (each also a Warning Event).',
      labelNames: ['reason'],
      registers,
    });
    this.guardDrops = new Gauge({
      name: 'pcloud_node_agent_guard_dropped_packets',
      help: 'Packets the nftables guard rails dropped, by family/chain.',
      labelNames: ['rule'],
      registers,
    });
    this.addressesRemoved = new Counter({
      name: 'pcloud_node_agent_addresses_removed_total',
      help: 'Times a tenant bridge was found carrying an address and flushed.',
      registers,
    });
    this.changes = new Counter({
      name: 'pcloud_node_agent_changes_total',
      help: 'Changes made to the node, by action.',
      labelNames: ['action'],
      registers,
    });
  }
}

export class NodeAgentReconciler implements Reconciler {
  readonly name = 'node-agent';
  private readonly guard: GuardRails;

  constructor(
    private readonly nodeName: string,
    private readonly tenants: ObjectCache<TenantObject>,
    private readonly nodes: ObjectCache<NodeObject>,
    private readonly host: HostNetwork,
    private readonly events: EventRecorder | undefined,
    private readonly metrics: NodeAgentMetrics,
  ) {
    this.guard = new GuardRails(host);
  }

  allKeys(): string[] {
    return [KEY];
  }

  async reconcile(_key: string, log: Logger): Promise<ReconcileResult | void> {
    const plan = planNode(this.nodeName, this.tenants.list(), this.nodes.list());
    const problems: Problem[] = [...plan.problems];
    const links = new Map((await this.host.links()).map((l) => [l.name, l]));
    const uplink = plan.localIp
      ? [...links.values()].find((l) => l.addresses.includes(plan.localIp!))
      : undefined;
    const managed: string[] = [];
    const errors: Error[] = [];
    for (const seg of plan.segments) {
      try {
        if (await this.ensureSegment(seg, links, plan.localIp, uplink, problems, log))
          managed.push(seg.bridge);
      } catch (err) {
        errors.push(err as Error);
        log.error({ tenant: seg.tenant, err: (err as Error).message }, 'tenant segment failed');
        // A half-built segment is still ours: keep it inside the guard rails.
        if (links.get(seg.bridge)?.alias?.startsWith(ALIAS_PREFIX)) managed.push(seg.bridge);
      }
    }
    await this.removeStale(plan.segments, links, managed, log);
    await this.guard.apply(managed);

    const counters = await this.guard.counters();
    this.metrics.guardDrops.reset();
    for (const [rule, n] of Object.entries(counters)) this.metrics.guardDrops.labels(rule).set(n);
    this.metrics.segments.set(plan.segments.filter((s) => managed.includes(s.bridge)).length);
    this.metrics.problems.reset();
    for (const p of problems) {
      this.metrics.problems.labels(p.reason).inc();
      log.warn({ [p.kind.toLowerCase()]: p.name, reason: p.reason }, p.message);
      await this.events?.record(this.regarding(p), 'Warning', p.reason, p.message);
    }
    if (errors.length > 0) throw new AggregateError(errors, `${errors.length} tenant segment(s) failed`);
  }

  private regarding(p: Problem): KubeObject {
    const found = p.kind === 'Tenant' ? this.tenants.get(p.name) : this.nodes.get(p.name);
    return (
      found ?? {
        apiVersion: p.kind === 'Tenant' ? Resources.Tenant.apiVersion : 'v1',
        kind: p.kind,
        metadata: { name: p.name },
      }
    );
  }

  /** Returns whether the segment's bridge is ours (managed) after this pass. */
  private async ensureSegment(
    seg: TenantSegment,
    links: Map<string, Link>,
    localIp: string | undefined,
    uplink: Link | undefined,
    problems: Problem[],
    log: Logger,
  ): Promise<boolean> {
    const alias = `${ALIAS_PREFIX}${seg.tenant}`;
    const inUse = (name: string, what: string): false => {
      problems.push({
        kind: 'Tenant',
        name: seg.tenant,
        reason: 'InterfaceInUse',
        message: `interface ${name} on node ${this.nodeName} is ${what}, not made by Personal Cloud: left alone, Tenant ${seg.tenant} has no network on this node`,
      });
      return false;
    };
    const br = links.get(seg.bridge);
    if (!br) {
      await this.host.addBridge(seg.bridge, seg.mtu, alias);
      this.change('bridge-created', log, { bridge: seg.bridge });
    } else if (br.kind !== 'bridge') {
      return inUse(seg.bridge, `a ${br.kind ?? 'physical device'}`);
    } else if (br.alias !== undefined && !br.alias.startsWith(ALIAS_PREFIX)) {
      return inUse(seg.bridge, `a bridge with alias ${JSON.stringify(br.alias)}`);
    } else {
      if (br.alias !== alias || br.mtu !== seg.mtu || !br.up) {
        await this.host.set(seg.bridge, { alias, mtu: seg.mtu, up: true });
        this.change(br.alias === undefined ? 'bridge-adopted' : 'bridge-repaired', log, {
          bridge: seg.bridge,
        });
      }
      if (br.addresses.length > 0) {
        // A tenant bridge is a switch, never a router: an address would make it one.
        await this.host.disableAddresses(seg.bridge);
        this.metrics.addressesRemoved.inc();
        this.change('bridge-addresses-removed', log, { bridge: seg.bridge, addresses: br.addresses });
      }
    }
    for (const port of links.values()) {
      if (port.master !== seg.bridge || port.name === seg.vxlan) continue;
      if (port.kind !== 'veth')
        problems.push({
          kind: 'Tenant',
          name: seg.tenant,
          reason: 'ForeignPort',
          message: `${port.name} (${port.kind ?? 'physical device'}) is a port of Tenant ${seg.tenant}'s bridge ${seg.bridge} on node ${this.nodeName}: only VM interfaces belong there; remove it`,
        });
    }
    if (!localIp) return true;

    const tunnelMtu = uplink ? uplink.mtu - VXLAN_OVERHEAD : seg.mtu;
    if (seg.mtu > tunnelMtu)
      problems.push({
        kind: 'Tenant',
        name: seg.tenant,
        reason: 'MtuTooLarge',
        message: `Tenant ${seg.tenant}'s MTU ${seg.mtu} exceeds what node ${this.nodeName}'s uplink ${uplink?.name} carries through VXLAN (${tunnelMtu}): set the operator's --tenant-mtu to at most ${tunnelMtu}`,
      });
    let vx = links.get(seg.vxlan);
    if (vx && (vx.kind !== 'vxlan' || !vx.alias?.startsWith(ALIAS_PREFIX)))
      return inUse(
        seg.vxlan,
        vx.kind === 'vxlan' ? 'a VXLAN device of someone else' : `a ${vx.kind ?? 'device'}`,
      );
    if (vx && (vx.vni !== seg.vni || vx.local !== localIp)) {
      await this.host.deleteLink(seg.vxlan);
      this.change('vxlan-replaced', log, { vxlan: seg.vxlan, vni: vx.vni, local: vx.local });
      vx = undefined;
    }
    if (!vx) {
      await this.host.addVxlan(seg.vxlan, seg.vni, localIp, tunnelMtu, alias);
      this.change('vxlan-created', log, { vxlan: seg.vxlan, vni: seg.vni });
    }
    if (!vx || vx.master !== seg.bridge || !vx.up || vx.alias !== alias || vx.mtu !== tunnelMtu)
      await this.host.set(seg.vxlan, { master: seg.bridge, alias, mtu: tunnelMtu, up: true });

    const have = await this.host.floodList(seg.vxlan);
    for (const ip of seg.remotes)
      if (!have.includes(ip)) {
        await this.host.addFlood(seg.vxlan, ip);
        this.change('flood-added', log, { vxlan: seg.vxlan, dst: ip });
      }
    for (const ip of have)
      if (!seg.remotes.includes(ip)) {
        await this.host.deleteFlood(seg.vxlan, ip);
        this.change('flood-removed', log, { vxlan: seg.vxlan, dst: ip });
      }
    this.metrics.floodEntries.labels(seg.tenant).set(seg.remotes.length);
    return true;
  }

  /**
   * Deletes our VXLAN devices that no Tenant wants (gone, or its VNI changed), and our
   * bridges of Tenants that are gone once no VM is attached any more (until then they
   * stay inside the guard rails).
   */
  private async removeStale(
    segments: readonly TenantSegment[],
    links: Map<string, Link>,
    managed: string[],
    log: Logger,
  ): Promise<void> {
    const wanted = new Set(segments.flatMap((s) => [s.bridge, s.vxlan]));
    const ours = [...links.values()].filter((l) => l.alias?.startsWith(ALIAS_PREFIX) && !wanted.has(l.name));
    for (const l of ours.filter((l) => l.kind === 'vxlan')) {
      await this.ignoreGone(this.host.deleteLink(l.name));
      this.change('vxlan-deleted', log, { vxlan: l.name });
      this.metrics.floodEntries.remove(l.alias!.slice(ALIAS_PREFIX.length));
    }
    for (const b of ours.filter((l) => l.kind === 'bridge')) {
      const ports = [...links.values()].filter(
        (p) => p.master === b.name && !(p.kind === 'vxlan' && ours.includes(p)),
      );
      if (ports.length > 0) {
        managed.push(b.name);
        continue;
      }
      await this.ignoreGone(this.host.deleteLink(b.name));
      this.change('bridge-deleted', log, { bridge: b.name });
    }
  }

  private async ignoreGone(p: Promise<void>): Promise<void> {
    try {
      await p;
    } catch (err) {
      if (!(err instanceof CommandError && /Cannot find device/.test(err.stderr))) throw err;
    }
  }

  private change(action: string, log: Logger, fields: Record<string, unknown>): void {
    this.metrics.changes.labels(action).inc();
    log.info(fields, action);
  }
}

export interface NodeAgentOptions {
  nodeName: string;
  resyncMs: number;
  events?: EventRecorder;
  host?: HostNetwork;
}

/** The node agent's wiring: every Tenant and Node event reconciles the node. */
export function setupNodeAgent(mgr: Manager, opts: NodeAgentOptions): NodeAgentReconciler {
  const tenants = mgr.cache<TenantObject>(Resources.Tenant);
  const nodes = mgr.cache<NodeObject>(Resources.Node);
  const reconciler = new NodeAgentReconciler(
    opts.nodeName,
    tenants,
    nodes,
    opts.host ?? new HostNetwork(),
    opts.events,
    new NodeAgentMetrics(mgr.metrics),
  );
  mgr
    .controller(reconciler.name)
    .watches<TenantObject>(Resources.Tenant, () => [KEY])
    .watches<NodeObject>(Resources.Node, () => [KEY])
    .withOptions({ workers: 1, resyncMs: opts.resyncMs })
    .complete(reconciler);
  return reconciler;
}
