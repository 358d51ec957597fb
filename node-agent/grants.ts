/**
 * The portal's grants on the chief node: every live PortalGrant becomes one element of an
 * nftables map `client address . public port : VM address . VM port`, DNATed in
 * prerouting, with the grant's remaining time as the element's `timeout`, so the kernel
 * drops it at the deadline even when the agent, the portal and the operator are all down.
 * A parallel set of `client . public port` keys with the same timeouts guards the forward
 * path: a connection that was DNATed to a public port of the range passes only while its
 * key is live, so an expired or revoked grant also cuts established flows (conntrack would
 * otherwise keep them). Replies leave through the chief (masquerade), wherever the VM runs.
 *
 * One reconcile key: the whole table is computed from all grants, Tenants and VM instances
 * and written in one nft transaction on every change, on the next expiry and on resync.
 * Stopping the agent removes nothing: live grants keep working until they expire.
 */
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import type { KubeApi } from '../kube/client.js';
import type { Reconciler, ReconcileResult } from '../kube/controller.js';
import { setCondition, type Condition } from '../kube/conditions.js';
import type { EventRecorder } from '../kube/events.js';
import type { ObjectCache } from '../kube/informer.js';
import { Resources } from '../kube/kinds.js';
import type { Manager } from '../kube/manager.js';
import type { OperatorMetrics } from '../kube/metrics.js';
import {
  planGrants,
  type ForwardRule,
  type GrantObject,
  type PortRange,
  type VmiObject,
} from './grant-plan.js';
import { HostNetwork } from './host-network.js';
import { internalIp, type NodeObject, type TenantObject } from './plan.js';

export const GRANT_TABLE = 'personalcloud_portal';
export const GRANT_FIELD_MANAGER = 'node-agent-grants';
const KEY = 'grants';

/** The whole table for one public address and port range (elements added separately). */
export function grantTable(publicIp: string, range: PortRange): string {
  const ports = `${range.first}-${range.last}`;
  const maps = ['tcp', 'udp']
    .map(
      (p) => `
  map ${p}_grants {
    type ipv4_addr . inet_service : ipv4_addr . inet_service
    flags timeout
  }
  set ${p}_live {
    type ipv4_addr . inet_service
    flags timeout
  }`,
    )
    .join('');
  return `
table ip ${GRANT_TABLE} {
  comment "Personal Cloud portal grants: one client address to one VM port until a deadline (managed, do not edit)"${maps}
  chain prerouting {
    type nat hook prerouting priority dstnat - 5; policy accept;
    ip daddr ${publicIp} tcp dport ${ports} dnat ip to ip saddr . tcp dport map @tcp_grants
    ip daddr ${publicIp} udp dport ${ports} dnat ip to ip saddr . udp dport map @udp_grants
  }
  chain forward {
    type filter hook forward priority -210; policy accept;
    ct status dnat ct original ip daddr ${publicIp} meta l4proto tcp ct original proto-dst ${ports} ct original ip saddr . ct original proto-dst != @tcp_live counter drop comment "grant expired or revoked"
    ct status dnat ct original ip daddr ${publicIp} meta l4proto udp ct original proto-dst ${ports} ct original ip saddr . ct original proto-dst != @udp_live counter drop comment "grant expired or revoked"
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat ct original ip daddr ${publicIp} meta l4proto { tcp, udp } ct original proto-dst ${ports} masquerade
  }
}
`;
}

/** The elements of the rules: flushed and re-added in one transaction with the remaining time. */
export function grantElements(rules: readonly ForwardRule[]): string[] {
  const lines: string[] = [];
  for (const p of ['tcp', 'udp'] as const) {
    lines.push(`flush map ip ${GRANT_TABLE} ${p}_grants`, `flush set ip ${GRANT_TABLE} ${p}_live`);
    const mine = rules.filter((r) => r.protocol === p);
    if (mine.length === 0) continue;
    const map = mine.map(
      (r) => `${r.client} . ${r.publicPort} timeout ${r.timeoutSeconds}s : ${r.target} . ${r.targetPort}`,
    );
    const live = mine.map((r) => `${r.client} . ${r.publicPort} timeout ${r.timeoutSeconds}s`);
    lines.push(`add element ip ${GRANT_TABLE} ${p}_grants { ${map.join(', ')} }`);
    lines.push(`add element ip ${GRANT_TABLE} ${p}_live { ${live.join(', ')} }`);
  }
  return lines;
}

interface TableJson {
  table?: { comment?: string };
  chain?: { name: string };
  rule?: { chain: string; expr: unknown[] };
}

export interface GrantOptions {
  nodeName: string;
  range: PortRange;
  maxSeconds: number;
}

export class GrantReconciler implements Reconciler {
  readonly name = 'portal-grants';
  private installedFor: string | undefined;
  private readonly gauge: Gauge<'phase'>;

  constructor(
    private readonly o: GrantOptions,
    private readonly grants: ObjectCache<GrantObject>,
    private readonly tenants: ObjectCache<TenantObject>,
    private readonly vmis: ObjectCache<VmiObject>,
    private readonly nodes: ObjectCache<NodeObject>,
    private readonly client: Pick<KubeApi, 'applyStatus'>,
    private readonly host: HostNetwork,
    private readonly events: EventRecorder | undefined,
    metrics: OperatorMetrics,
  ) {
    this.gauge = new Gauge({
      name: 'pcloud_node_agent_grants',
      help: 'Portal grants on this chief node, by phase.',
      labelNames: ['phase'],
      registers: [metrics.registry],
    });
  }

  allKeys(): string[] {
    return [KEY];
  }

  async reconcile(_key: string, log: Logger): Promise<ReconcileResult | void> {
    const self = this.nodes.get(this.o.nodeName);
    const publicIp = self ? internalIp(self) : undefined;
    if (!publicIp) {
      log.warn({ node: this.o.nodeName }, 'no InternalIP on this node: portal grants wait for it');
      return { requeueAfterMs: 10_000 };
    }
    const now = new Date();
    const plan = planGrants(
      this.grants.list(),
      this.tenants.list(),
      this.vmis.list(),
      this.o.range,
      now,
      this.o.maxSeconds,
    );
    const script: string[] = [];
    const want = `${publicIp} ${this.o.range.first}-${this.o.range.last}`;
    if (this.installedFor !== want || !(await this.tableIntact(publicIp))) {
      script.push(
        `table ip ${GRANT_TABLE}`,
        `delete table ip ${GRANT_TABLE}`,
        grantTable(publicIp, this.o.range),
      );
      this.installedFor = want;
    }
    script.push(...grantElements(plan.rules));
    await this.host.nft(script.join('\n') + '\n');

    this.gauge.reset();
    for (const v of plan.verdicts) {
      this.gauge.labels(v.phase).inc();
      const [ns, name] = v.key.split('/') as [string, string];
      const g = this.grants.get(name, ns);
      if (!g) continue;
      const ready: Omit<Condition, 'lastTransitionTime'> =
        v.phase === 'Active'
          ? {
              type: 'Ready',
              status: 'True',
              reason: 'Forwarding',
              message: `${v.rule.client} → ${publicIp}:${v.rule.publicPort}/${v.rule.protocol} → ${v.rule.target}:${v.rule.targetPort} for ${v.rule.timeoutSeconds}s`,
              observedGeneration: g.metadata?.generation,
            }
          : {
              type: 'Ready',
              status: 'False',
              reason: v.reason,
              message: v.message,
              observedGeneration: g.metadata?.generation,
            };
      const status = {
        observedGeneration: g.metadata?.generation,
        phase: v.phase,
        node: this.o.nodeName,
        ...(v.phase === 'Active'
          ? { publicPort: v.rule.publicPort, endpoint: `${publicIp}:${v.rule.publicPort}` }
          : {}),
        conditions: setCondition(g.status?.conditions, ready, now),
      };
      const before = JSON.stringify({ ...g.status, conditions: undefined });
      const after = JSON.stringify({ ...status, conditions: undefined });
      const condBefore = g.status?.conditions?.find((c) => c.type === 'Ready');
      if (before === after && condBefore?.reason === ready.reason && condBefore.message === ready.message)
        continue;
      if (v.phase === 'Refused') {
        log.warn({ grant: v.key, reason: v.reason }, v.message);
        await this.events?.record(g, 'Warning', v.reason, v.message);
      } else if (v.phase === 'Active') {
        log.info({ grant: v.key, rule: v.rule }, 'grant forwarding');
      }
      try {
        await this.client.applyStatus(
          {
            apiVersion: Resources.PortalGrant.apiVersion,
            kind: 'PortalGrant',
            metadata: { name: g.metadata!.name!, namespace: g.metadata!.namespace! },
            status,
          },
          GRANT_FIELD_MANAGER,
        );
      } catch (err) {
        // The grant may have been deleted meanwhile; the next event reconciles again.
        log.warn({ grant: v.key, err: (err as Error).message }, 'grant status not written');
      }
    }
    return plan.nextExpiryMs !== undefined ? { requeueAfterMs: plan.nextExpiryMs + 500 } : undefined;
  }

  /** The table exists with our chains (a hand-deleted or half-made one is rebuilt whole). */
  private async tableIntact(publicIp: string): Promise<boolean> {
    const items = (await this.host.nftTable('ip', GRANT_TABLE)) as TableJson[] | undefined;
    if (!items) return false;
    const chains = new Set(items.filter((i) => i.chain).map((i) => i.chain!.name));
    const rules = items.filter((i) => i.rule).length;
    return (
      ['prerouting', 'forward', 'postrouting'].every((c) => chains.has(c)) &&
      rules === 5 &&
      JSON.stringify(items).includes(publicIp)
    );
  }
}

/** Wires the grant reconciler (chief node only): grants, Tenants, VM instances and this Node. */
export function setupGrants(
  mgr: Manager,
  opts: GrantOptions & { resyncMs: number; events?: EventRecorder; host?: HostNetwork },
): GrantReconciler {
  const grants = mgr.cache<GrantObject>(Resources.PortalGrant);
  const tenants = mgr.cache<TenantObject>(Resources.Tenant);
  const vmis = mgr.cache<VmiObject>(Resources.VirtualMachineInstance);
  const nodes = mgr.cache<NodeObject>(Resources.Node);
  const reconciler = new GrantReconciler(
    opts,
    grants,
    tenants,
    vmis,
    nodes,
    mgr.client,
    opts.host ?? new HostNetwork(),
    opts.events,
    mgr.metrics,
  );
  mgr
    .controller(reconciler.name)
    .watches<GrantObject>(Resources.PortalGrant, () => [KEY])
    .watches<TenantObject>(Resources.Tenant, () => [KEY])
    .watches<VmiObject>(Resources.VirtualMachineInstance, () => [KEY])
    .watches<NodeObject>(Resources.Node, (n) => (n.metadata?.name === opts.nodeName ? [KEY] : []))
    .withOptions({ workers: 1, resyncMs: opts.resyncMs })
    .complete(reconciler);
  return reconciler;
}
