/** What the controllers know about this home (from the config and this home's Offer). */
import type { UnitSize } from './config.js';

/** Per-VM bandwidth cap (each way) when neither the Tenant nor this home's Offer says. */
export const DEFAULT_VM_BANDWIDTH = '10M';

export interface Home {
  peer: string;
  homeDomain: string;
  homeLan: readonly string[];
  unit: UnitSize;
  /**
   * Units this home offers: the sum of spec.units over its Offers (spec.peer == peer),
   * the same sum the matchmaker solves with; undefined when it has no Offer, and then
   * it hosts nothing.
   */
  offeredUnits?: number;
  /** Per-VM caps used for Tenants the hosted Assignment controller creates. */
  bandwidth: { ingress: string; egress: string };
  /**
   * The home's one Gateway. Its listeners' ports are the ports the Gateway
   * implementation listens on: Traefik attaches a listener only to an entryPoint of the
   * same port (k3s's Traefik: web :8000, websecure :8443, behind its Service's 80 and 443).
   */
  gateway: { namespace: string; name: string; className: string; httpPort: number; tlsPort: number };
  /** MTU of the tenant networks: the home LAN's less the VXLAN overhead (50 bytes). */
  tenantMtu: number;
  /** The cluster's pod and Service CIDRs, never reachable from a tenant but through DNS. */
  clusterCidrs: readonly string[];
}

/** A 1500-byte home LAN less VXLAN's 50 bytes of outer headers. */
export const DEFAULT_TENANT_MTU = 1450;
/** k3s's default pod and Service CIDRs. */
export const DEFAULT_CLUSTER_CIDRS = ['10.42.0.0/16', '10.43.0.0/16'];

/** The DNS suffix of a tenant's VMs: <peer>.<home domain>, unless the Tenant sets one. */
export function hostnameSuffixFor(home: Pick<Home, 'homeDomain'>, peer: string, explicit?: string): string {
  return explicit ?? `${peer}.${home.homeDomain}`;
}
