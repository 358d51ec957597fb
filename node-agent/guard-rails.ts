/**
 * nftables guard rails that hold even if the CNI configuration or the NetworkPolicies
 * are wrong: nothing from a tenant bridge reaches the node itself (input), nothing is
 * routed out of or into a tenant bridge (forward), and the node sends nothing into one
 * (output), for IP (inet) and ARP alike. Matching is by interface name against one set,
 * the tenant bridges this agent manages, so the rules never go stale with the devices.
 *
 * Bridged traffic is not touched: a tenant's own VM-to-VM frames are switched by the
 * bridge, and with bridge-nf-call-iptables=1 they also traverse the inet forward hook
 * with the bridge as both input and output device, which `oifname != @tenant_bridges`
 * lets through (a blanket "from a tenant bridge: drop" there would cut a tenant off from
 * itself). This kernel has no nft bridge-meta support (`meta ibrname`), so the bridge
 * family is not used.
 */
import type { HostNetwork } from './host-network.js';

export const GUARD_TABLE = 'personalcloud';
const SET = 'tenant_bridges';

const TABLES = `
table inet ${GUARD_TABLE} {
  comment "Personal Cloud node agent: tenant segments never reach this node and are never routed (managed, do not edit)"
  set ${SET} {
    type ifname
  }
  chain input {
    type filter hook input priority -200; policy accept;
    iifname @${SET} counter drop comment "tenant packets to this node"
  }
  chain forward {
    type filter hook forward priority -200; policy accept;
    iifname @${SET} oifname != @${SET} counter drop comment "tenant packets routed out"
    oifname @${SET} iifname != @${SET} counter drop comment "packets routed into a tenant"
  }
  chain output {
    type filter hook output priority -200; policy accept;
    oifname @${SET} counter drop comment "this node into a tenant segment"
  }
}
table arp ${GUARD_TABLE} {
  comment "Personal Cloud node agent (managed, do not edit)"
  set ${SET} {
    type ifname
  }
  chain input {
    type filter hook input priority -200; policy accept;
    iifname @${SET} counter drop comment "tenant ARP to this node"
  }
  chain output {
    type filter hook output priority -200; policy accept;
    oifname @${SET} counter drop comment "this node's ARP into a tenant segment"
  }
}
`;

const FAMILIES = ['inet', 'arp'] as const;

/** Packets each guard rule dropped, keyed `family/chain`. */
export type GuardCounters = Record<string, number>;

interface RuleJson {
  rule?: { family: string; chain: string; expr: { counter?: { packets: number } }[] };
}

export class GuardRails {
  constructor(private readonly host: HostNetwork) {}

  /**
   * Creates the tables when missing (once: re-creating them would zero the counters)
   * and sets the bridge set to exactly `bridges`, in one transaction.
   */
  async apply(bridges: readonly string[]): Promise<void> {
    const missing = (await Promise.all(FAMILIES.map((f) => this.host.nftTable(f, GUARD_TABLE)))).some(
      (t) => t === undefined,
    );
    const lines: string[] = [];
    if (missing) {
      // Start from nothing so a half-made or hand-edited table is replaced whole.
      for (const f of FAMILIES) lines.push(`table ${f} ${GUARD_TABLE}`, `delete table ${f} ${GUARD_TABLE}`);
      lines.push(TABLES);
    }
    const elements = bridges.map((b) => JSON.stringify(b)).join(', ');
    for (const f of FAMILIES) {
      lines.push(`flush set ${f} ${GUARD_TABLE} ${SET}`);
      if (bridges.length > 0) lines.push(`add element ${f} ${GUARD_TABLE} ${SET} { ${elements} }`);
    }
    await this.host.nft(lines.join('\n') + '\n');
  }

  async counters(): Promise<GuardCounters> {
    const out: GuardCounters = {};
    for (const f of FAMILIES) {
      for (const item of ((await this.host.nftTable(f, GUARD_TABLE)) ?? []) as RuleJson[]) {
        if (!item.rule) continue;
        const packets = item.rule.expr.reduce((n, e) => n + (e.counter?.packets ?? 0), 0);
        const key = `${f}/${item.rule.chain}`;
        out[key] = (out[key] ?? 0) + packets;
      }
    }
    return out;
  }

  /** Removes the tables (`pcloud node-agent --uninstall`). */
  async remove(): Promise<void> {
    const lines = FAMILIES.flatMap((f) => [`table ${f} ${GUARD_TABLE}`, `delete table ${f} ${GUARD_TABLE}`]);
    await this.host.nft(lines.join('\n') + '\n');
  }
}
