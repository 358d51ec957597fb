/**
 * The tenant's private L2 network (the paper's per-user Virtual Private Cloud): a
 * Multus NetworkAttachmentDefinition of a Linux bridge of its own, addresses from
 * host-local IPAM over spec.network.subnet, and the bandwidth plugin chained with the
 * tenant's caps (bits per second; burst of one second's worth).
 */
import type { NetworkAttachmentDefinition } from '../../generated/multus.js';
import type { Tenant } from '../../generated/personalcloud.js';
import type { Desired } from '../../kube/client.js';
import { shortHash } from '../../api/labels.js';
import type { Cidr } from '../network-address.js';
import { tenantChildMeta } from './namespace.js';
import type { TenantRates } from './validation.js';

export const TENANT_NETWORK_NAME = 'tenant-network';

/** Linux interface names are at most 15 characters: `pc` + 13 hex of a hash of the peer. */
export function tenantBridgeName(peer: string): string {
  return `pc${shortHash(`bridge:${peer}`, 13)}`;
}

export function renderTenantNetworkConfig(t: Tenant, subnet: Cidr, rates: TenantRates): string {
  return JSON.stringify({
    cniVersion: '0.3.1',
    name: `tenant-${t.spec.peer}`,
    plugins: [
      {
        type: 'bridge',
        bridge: tenantBridgeName(t.spec.peer),
        isGateway: false,
        ipMasq: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: subnet.text }]] },
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
): Desired<NetworkAttachmentDefinition> {
  return {
    apiVersion: 'k8s.cni.cncf.io/v1',
    kind: 'NetworkAttachmentDefinition',
    metadata: tenantChildMeta(t, TENANT_NETWORK_NAME),
    spec: { config: renderTenantNetworkConfig(t, subnet, rates) },
  };
}
