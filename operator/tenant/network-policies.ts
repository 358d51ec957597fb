/**
 * CiliumNetworkPolicies that keep a tenant's pods (the VMs' virt-launcher pods) safe
 * for the home and private from each other: deny rules (which win over any allow)
 * for the home LAN, the cluster's control plane and nodes, and every other tenant's
 * namespace; allow rules for DNS, the internet, the tenant's own namespace, and
 * traffic coming in through the Gateway.
 */
import type { CiliumNetworkPolicy, CiliumRule } from '../../generated/cilium.js';
import type { Tenant } from '../../generated/personalcloud.js';
import type { Desired } from '../../kube/client.js';
import { TENANT_LABEL, tenantNamespaceName } from '../../api/labels.js';
import { tenantChildMeta } from './namespace.js';

export const ISOLATION_POLICY = 'tenant-isolation';
export const ALLOW_POLICY = 'tenant-allow';

const POD_NAMESPACE = 'k8s:io.kubernetes.pod.namespace';
const NAMESPACE_TENANT_LABEL = `k8s:io.cilium.k8s.namespace.labels.${TENANT_LABEL}`;

type EndpointSelector = NonNullable<CiliumRule['endpointSelector']>;

export function desiredCiliumNetworkPolicies(
  t: Tenant,
  homeLan: readonly string[],
): readonly [Desired<CiliumNetworkPolicy>, Desired<CiliumNetworkPolicy>] {
  const ns = tenantNamespaceName(t.spec.peer);
  const otherTenants: EndpointSelector = {
    matchExpressions: [
      { key: NAMESPACE_TENANT_LABEL, operator: 'Exists' },
      { key: POD_NAMESPACE, operator: 'NotIn', values: [ns] },
    ],
  };
  const ownNamespace: EndpointSelector = { matchLabels: { [POD_NAMESPACE]: ns } };
  const isolation: Desired<CiliumNetworkPolicy> = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: tenantChildMeta(t, ISOLATION_POLICY),
    spec: {
      description: `Tenant ${t.spec.peer}: never the home LAN, the control plane, the nodes or other tenants`,
      endpointSelector: {},
      egressDeny: [
        ...(homeLan.length ? [{ toCIDRSet: homeLan.map((cidr) => ({ cidr })) }] : []),
        { toEntities: ['kube-apiserver', 'host', 'remote-node'] },
        { toEndpoints: [otherTenants] },
      ],
      ingressDeny: [
        ...(homeLan.length ? [{ fromCIDRSet: homeLan.map((cidr) => ({ cidr })) }] : []),
        { fromEndpoints: [otherTenants] },
      ],
    },
  };
  const allow: Desired<CiliumNetworkPolicy> = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: tenantChildMeta(t, ALLOW_POLICY),
    spec: {
      description: `Tenant ${t.spec.peer}: DNS, the internet, its own namespace, and the home Gateway`,
      endpointSelector: {},
      egress: [
        {
          toEndpoints: [{ matchLabels: { [POD_NAMESPACE]: 'kube-system', 'k8s:k8s-app': 'kube-dns' } }],
          toPorts: [
            {
              ports: [
                { port: '53', protocol: 'UDP' },
                { port: '53', protocol: 'TCP' },
              ],
            },
          ],
        },
        { toEntities: ['world'] },
        { toEndpoints: [ownNamespace] },
      ],
      ingress: [{ fromEndpoints: [ownNamespace] }, { fromEntities: ['ingress'] }],
    },
  };
  return [isolation, allow] as const;
}
