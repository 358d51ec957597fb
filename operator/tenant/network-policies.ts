/**
 * Two sets of policies with one intent, so a tenant is contained whichever policy
 * engine the home runs: CiliumNetworkPolicies (Cilium homes) and a standard
 * NetworkPolicy (k3s's default kube-router enforces those; Cilium does too).
 *
 * CiliumNetworkPolicies that keep a tenant's pods (the VMs' virt-launcher pods) safe
 * for the home and private from each other: deny rules (which win over any allow)
 * for the home LAN, the cluster's control plane and nodes, and every other tenant's
 * namespace; allow rules for DNS, the internet, the tenant's own namespace, and
 * traffic coming in through the Gateway: from Cilium's own Gateway (the `ingress`
 * entity), and from the pods of kube-system and of the Gateway's namespace, where
 * other implementations' proxies run (k3s's Traefik is a pod in kube-system: to Cilium
 * it is a cluster endpoint, not `ingress`, and without the namespace rule its hostname
 * routes would be dropped at the tenant; the standard NetworkPolicy admits the same two
 * namespaces).
 */
import type { CiliumNetworkPolicy, CiliumRule } from '../../generated/cilium.js';
import type { Tenant } from '../../generated/personalcloud.js';
import type { Home } from '../home.js';
import type { Desired } from '../../kube/client.js';
import { TENANT_LABEL, tenantNamespaceName } from '../../api/labels.js';
import { tenantChildMeta } from './namespace.js';

export const ISOLATION_POLICY = 'tenant-isolation';
export const ALLOW_POLICY = 'tenant-allow';
export const STANDARD_POLICY = 'tenant-isolation-standard';

const POD_NAMESPACE = 'k8s:io.kubernetes.pod.namespace';
const NAMESPACE_TENANT_LABEL = `k8s:io.cilium.k8s.namespace.labels.${TENANT_LABEL}`;

type EndpointSelector = NonNullable<CiliumRule['endpointSelector']>;

export function desiredCiliumNetworkPolicies(
  t: Tenant,
  home: Pick<Home, 'homeLan' | 'gateway'>,
): readonly [Desired<CiliumNetworkPolicy>, Desired<CiliumNetworkPolicy>] {
  const { homeLan } = home;
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
      ingress: [
        { fromEndpoints: [ownNamespace] },
        { fromEntities: ['ingress'] },
        {
          fromEndpoints: [...new Set(['kube-system', home.gateway.namespace])].map((n) => ({
            matchLabels: { [POD_NAMESPACE]: n },
          })),
        },
      ],
    },
  };
  return [isolation, allow] as const;
}

/**
 * networking.k8s.io/v1 NetworkPolicy as it travels on the wire. (@kubernetes/client-node's
 * V1NetworkPolicy names `from` as `_from` and needs its serializer; we send plain JSON.)
 */
interface PolicyPeer {
  podSelector?: { matchLabels?: Record<string, string> };
  namespaceSelector?: {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: 'In'; values: string[] }[];
  };
  ipBlock?: { cidr: string; except?: string[] };
}
interface PolicyPort {
  protocol: 'TCP' | 'UDP';
  port: number;
}
export interface NetworkPolicy {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata?: Record<string, unknown>;
  spec: {
    podSelector: Record<string, never>;
    policyTypes: ('Ingress' | 'Egress')[];
    ingress: { from: PolicyPeer[]; ports?: PolicyPort[] }[];
    egress: { to: PolicyPeer[]; ports?: PolicyPort[] }[];
  };
}

/** Never reachable from a tenant's pods either (cloud-style metadata and link-local services). */
const LINK_LOCAL = '169.254.0.0/16';

/**
 * The standard NetworkPolicy with the same intent. NetworkPolicy has no deny rules, so
 * it says what is allowed and everything else is refused: in, the tenant's own
 * namespace and the namespaces of the Gateway (its proxies; k3s runs Traefik in
 * kube-system); out, the tenant's own namespace, DNS (kube-dns on 53), and any address
 * but the home LAN (which holds the nodes and, behind the `kubernetes` Service, the API
 * server), the cluster's pod and Service CIDRs (other tenants, the home's own apps)
 * and link-local.
 */
export function desiredStandardNetworkPolicy(
  t: Tenant,
  home: Pick<Home, 'homeLan' | 'clusterCidrs' | 'gateway'>,
): Desired<NetworkPolicy> {
  const namespaces = (names: string[]): PolicyPeer => ({
    namespaceSelector: {
      matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: [...new Set(names)] }],
    },
  });
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: tenantChildMeta(t, STANDARD_POLICY),
    spec: {
      podSelector: {},
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: {} }, namespaces(['kube-system', home.gateway.namespace])] }],
      egress: [
        { to: [{ podSelector: {} }] },
        {
          to: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
              podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
            },
          ],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
        {
          to: [
            {
              ipBlock: {
                cidr: '0.0.0.0/0',
                except: [...new Set([...home.homeLan, ...home.clusterCidrs, LINK_LOCAL])],
              },
            },
          ],
        },
      ],
    },
  };
}
