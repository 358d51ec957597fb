/**
 * The tenant's private L2 network (the paper's per-user Virtual Private Cloud): a
 * Multus NetworkAttachmentDefinition of a Linux bridge of its own, one address space
 * across the whole home from whereabouts (cluster-wide IPAM: host-local kept its state
 * per node and gave the first VM on every node the same address), and the bandwidth
 * plugin chained with the tenant's caps (bits per second; burst of one second's worth).
 *
 * The node agent joins the bridges of all nodes into one segment with a VXLAN device
 * per tenant; its VNI is allocated here, by the one operator that writes Tenant status,
 * and recorded there for the agents (status.network).
 */
import type { NetworkAttachmentDefinition } from '../../generated/multus.js';
import type { Tenant, TenantStatus } from '../../generated/personalcloud.js';
import type { Desired } from '../../kube/client.js';
import { shortHash } from '../../api/labels.js';
import { ageOrder } from '../../kube/ownership.js';
import type { Cidr } from '../network-address.js';
import { tenantChildMeta } from './namespace.js';
import type { TenantRates } from './validation.js';

export const TENANT_NETWORK_NAME = 'tenant-network';
export type TenantNetworkStatus = NonNullable<TenantStatus['network']>;

/** VXLAN network identifiers are 24 bits; 0 is not used. */
export const VNI_MAX = 0xffffff;

/** Linux interface names are at most 15 characters: `pc` + 13 hex of a hash of the peer. */
export function tenantBridgeName(peer: string): string {
  return `pc${shortHash(`bridge:${peer}`, 13)}`;
}

/** Where the search for a Tenant's VNI starts: a hash of its peer, so it is stable across re-creation. */
export function preferredVni(peer: string): number {
  return 1 + (parseInt(shortHash(`vni:${peer}`, 8), 16) % VNI_MAX);
}

/**
 * The Tenant's VNI, unique among the home's Tenants: the one in its status unless an
 * older Tenant holds the same (two reconciles raced on stale caches; the younger moves),
 * else the first free one from its preferred VNI on.
 */
export function allocateVni(t: Tenant, all: readonly Tenant[]): number {
  const others = all.filter((o) => o.metadata?.name !== t.metadata?.name && !o.metadata?.deletionTimestamp);
  const own = t.status?.network?.vni;
  if (own !== undefined && !others.some((o) => o.status?.network?.vni === own && ageOrder(o, t) < 0))
    return own;
  const taken = new Set(others.map((o) => o.status?.network?.vni).filter((v) => v !== undefined));
  let vni = preferredVni(t.spec.peer);
  while (taken.has(vni)) vni = (vni % VNI_MAX) + 1;
  return vni;
}

export function tenantNetworkStatus(t: Tenant, all: readonly Tenant[], mtu: number): TenantNetworkStatus {
  return { vni: allocateVni(t, all), bridge: tenantBridgeName(t.spec.peer), mtu };
}

export function renderTenantNetworkConfig(t: Tenant, subnet: Cidr, rates: TenantRates, mtu: number): string {
  return JSON.stringify({
    cniVersion: '0.3.1',
    name: `tenant-${t.spec.peer}`,
    plugins: [
      {
        type: 'bridge',
        bridge: tenantBridgeName(t.spec.peer),
        // No address on the bridge and no masquerade: the segment is never routed.
        isGateway: false,
        ipMasq: false,
        // The VXLAN that joins the nodes costs 50 bytes: a 1500-byte frame from a VM
        // would be dropped silently between nodes.
        mtu,
        ipam: {
          type: 'whereabouts',
          range: subnet.text,
          // Pools are named per tenant, so tenants may use the same range; and an
          // address of one tenant must not be reserved for all of them.
          network_name: `tenant-${t.spec.peer}`,
          enable_overlapping_ranges: false,
        },
      },
      {
        type: 'bandwidth',
        capabilities: { bandwidth: true },
        ingressRate: rates.ingressBps,
        ingressBurst: rates.ingressBps,
        egressRate: rates.egressBps,
        egressBurst: rates.egressBps,
      },
    ],
  });
}

export function desiredNetworkAttachmentDefinition(
  t: Tenant,
  subnet: Cidr,
  rates: TenantRates,
  mtu: number,
): Desired<NetworkAttachmentDefinition> {
  return {
    apiVersion: 'k8s.cni.cncf.io/v1',
    kind: 'NetworkAttachmentDefinition',
    metadata: tenantChildMeta(t, TENANT_NETWORK_NAME),
    spec: { config: renderTenantNetworkConfig(t, subnet, rates, mtu) },
  };
}
