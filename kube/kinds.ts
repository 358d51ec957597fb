/**
 * The kinds the operator reads and writes, with their REST paths. A static table
 * instead of discovery: the operator only ever touches these, and a missing CRD then
 * shows up as a clear 404 on that kind rather than as a discovery failure.
 */
export interface ResourceType {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

function rt(apiVersion: string, kind: string, plural: string, namespaced: boolean): ResourceType {
  return { apiVersion, kind, plural, namespaced };
}

export const Resources = {
  Namespace: rt('v1', 'Namespace', 'namespaces', false),
  Service: rt('v1', 'Service', 'services', true),
  ResourceQuota: rt('v1', 'ResourceQuota', 'resourcequotas', true),
  LimitRange: rt('v1', 'LimitRange', 'limitranges', true),
  CoreEvent: rt('v1', 'Event', 'events', true),
  Event: rt('events.k8s.io/v1', 'Event', 'events', true),
  Role: rt('rbac.authorization.k8s.io/v1', 'Role', 'roles', true),
  RoleBinding: rt('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings', true),
  Lease: rt('coordination.k8s.io/v1', 'Lease', 'leases', true),
  Tenant: rt('personalcloud.io/v1alpha1', 'Tenant', 'tenants', false),
  Assignment: rt('personalcloud.io/v1alpha1', 'Assignment', 'assignments', true),
  Offer: rt('personalcloud.io/v1alpha1', 'Offer', 'offers', true),
  Request: rt('personalcloud.io/v1alpha1', 'Request', 'requests', true),
  Secret: rt('v1', 'Secret', 'secrets', true),
  ServiceAccount: rt('v1', 'ServiceAccount', 'serviceaccounts', true),
  VirtualMachine: rt('kubevirt.io/v1', 'VirtualMachine', 'virtualmachines', true),
  VirtualMachineInstance: rt('kubevirt.io/v1', 'VirtualMachineInstance', 'virtualmachineinstances', true),
  NetworkAttachmentDefinition: rt(
    'k8s.cni.cncf.io/v1',
    'NetworkAttachmentDefinition',
    'network-attachment-definitions',
    true,
  ),
  CiliumNetworkPolicy: rt('cilium.io/v2', 'CiliumNetworkPolicy', 'ciliumnetworkpolicies', true),
  Gateway: rt('gateway.networking.k8s.io/v1', 'Gateway', 'gateways', true),
  HTTPRoute: rt('gateway.networking.k8s.io/v1', 'HTTPRoute', 'httproutes', true),
  TLSRoute: rt('gateway.networking.k8s.io/v1alpha3', 'TLSRoute', 'tlsroutes', true),
} as const satisfies Record<string, ResourceType>;

export function resourceOf(apiVersion: string, kind: string): ResourceType {
  for (const r of Object.values(Resources)) {
    if (r.apiVersion === apiVersion && r.kind === kind) return r;
  }
  throw new Error(`unknown kind ${apiVersion} ${kind}`);
}

/** `/api/v1/namespaces/ns/services` or `/apis/group/version/plural`, optionally one object. */
export function resourcePath(type: ResourceType, namespace?: string, name?: string): string {
  const base = type.apiVersion.includes('/') ? `/apis/${type.apiVersion}` : `/api/${type.apiVersion}`;
  const ns = type.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const one = name ? `/${encodeURIComponent(name)}` : '';
  return `${base}${ns}/${type.plural}${one}`;
}
