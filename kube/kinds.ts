/**
 * The kinds the operator reads and writes, with their REST paths. A static table
 * instead of discovery: the operator only ever touches these, and a missing CRD then
 * shows up as a clear 404 on that kind rather than as a discovery failure. The
 * Kubernetes kinds are written here; ours and the third-party ones come from the
 * registry entries generated from their CRDs (generated/, `make gen`).
 */
import { RESOURCES as ArgoCD } from '../generated/argocd.js';
import { RESOURCES as Cilium } from '../generated/cilium.js';
import { RESOURCES as GatewayAPI } from '../generated/gateway.js';
import { RESOURCES as KubeVirt } from '../generated/kubevirt.js';
import { RESOURCES as Multus } from '../generated/multus.js';
import { RESOURCES as PersonalCloud } from '../generated/personalcloud.js';

export interface ResourceType {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

function rt(apiVersion: string, kind: string, plural: string, namespaced: boolean): ResourceType {
  return { apiVersion, kind, plural, namespaced };
}

/** A generated registry, its entries seen as ResourceType like the rows written here. */
function generated<K extends string>(entries: Record<K, ResourceType>): Record<K, ResourceType> {
  return entries;
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
  Secret: rt('v1', 'Secret', 'secrets', true),
  ServiceAccount: rt('v1', 'ServiceAccount', 'serviceaccounts', true),
  Node: rt('v1', 'Node', 'nodes', false),
  NetworkPolicy: rt('networking.k8s.io/v1', 'NetworkPolicy', 'networkpolicies', true),
  ...generated(PersonalCloud),
  ...generated(KubeVirt),
  ...generated(Multus),
  ...generated(Cilium),
  ...generated(GatewayAPI),
  ...generated(ArgoCD),
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
