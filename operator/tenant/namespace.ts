/** The tenant's namespace: tenant-<peer>, labelled so policies and the Gateway can select it. */
import type { Tenant } from '../../generated/personalcloud.js';
import { PEER_LABEL, TENANT_LABEL, managedLabels, tenantNamespaceName } from '../../api/labels.js';
import { controllerRef } from '../../kube/ownership.js';

export function tenantLabels(t: Tenant): Record<string, string> {
  return { ...managedLabels(), [TENANT_LABEL]: t.metadata?.name ?? '', [PEER_LABEL]: t.spec.peer };
}

/** metadata shared by every namespaced child of a Tenant. */
export function tenantChildMeta(
  t: Tenant,
  name: string,
): {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  ownerReferences: ReturnType<typeof controllerRef>[];
} {
  return {
    name,
    namespace: tenantNamespaceName(t.spec.peer),
    labels: tenantLabels(t),
    ownerReferences: [controllerRef(t)],
  };
}

export function desiredNamespace(t: Tenant) {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: tenantNamespaceName(t.spec.peer),
      labels: {
        ...tenantLabels(t),
        // Tenant VMs need privileged virt-launcher pods only through KubeVirt; plain pods get baseline.
        'pod-security.kubernetes.io/enforce': 'baseline',
      },
      ownerReferences: [controllerRef(t)],
    },
  };
}
