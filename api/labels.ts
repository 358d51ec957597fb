/** Labels, finalizers, field managers and names of personalcloud.io objects and their children. */
import { createHash } from 'node:crypto';

export const GROUP = 'personalcloud.io';
/** On every object Personal Cloud writes: what pruning and the informers select on. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'personal-cloud';
export const TENANT_LABEL = `${GROUP}/tenant`;
export const PEER_LABEL = `${GROUP}/peer`;
export const ASSIGNMENT_LABEL = `${GROUP}/assignment`;
export const ASSIGNMENT_NAMESPACE_LABEL = `${GROUP}/assignment-namespace`;
export const VM_LABEL = `${GROUP}/vm`;
export const COMPONENT_LABEL = 'app.kubernetes.io/component';

export const TENANT_FINALIZER = `${GROUP}/tenant-cleanup`;
export const ASSIGNMENT_FINALIZER = `${GROUP}/hosted-assignment-cleanup`;

export const TENANT_FIELD_MANAGER = 'tenant-controller';
export const ASSIGNMENT_FIELD_MANAGER = 'hosted-assignment-controller';
export const GATEWAY_FIELD_MANAGER = 'gateway-controller';

export const managedLabels = (): Record<string, string> => ({ [MANAGED_BY_LABEL]: MANAGED_BY });
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

export function shortHash(s: string, n = 8): string {
  return createHash('sha256').update(s).digest('hex').slice(0, n);
}

/**
 * A DNS-1123 label of at most max characters derived from s: dots and other
 * characters become '-', and a too-long name keeps a prefix plus a hash of the whole.
 */
export function dnsLabel(s: string, max = 63): string {
  const clean = s
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '');
  if (clean.length <= max && clean === s) return clean;
  if (clean.length <= max && clean.length > 0) return clean;
  const h = shortHash(s);
  return `${clean.slice(0, max - h.length - 1).replace(/-+$/, '')}-${h}`;
}

/** The namespace of a peer's tenancy: tenant-<peer> (hashed when the peer name is long). */
export function tenantNamespaceName(peer: string): string {
  return dnsLabel(`tenant-${peer}`);
}
