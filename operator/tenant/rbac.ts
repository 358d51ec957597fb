/**
 * RBAC for the remote peer's identity in its namespace: see and operate (start,
 * stop, restart, console) its own VMs, nothing else — no editing of the VM specs
 * the operator owns (bandwidth caps and networks are the home's to set).
 */
import type { Tenant } from '../../generated/personalcloud.js';
import { tenantChildMeta } from './namespace.js';

export const ROLE_NAME = 'tenant-vm-operator';

/** The Kubernetes user name a remote peer authenticates as at this home. */
export function peerUserName(peer: string): string {
  return `personalcloud.io:peer:${peer}`;
}

export function desiredRole(t: Tenant) {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: tenantChildMeta(t, ROLE_NAME),
    rules: [
      {
        apiGroups: ['kubevirt.io'],
        resources: ['virtualmachines', 'virtualmachineinstances'],
        verbs: ['get', 'list', 'watch'],
      },
      {
        apiGroups: ['subresources.kubevirt.io'],
        resources: ['virtualmachines/start', 'virtualmachines/stop', 'virtualmachines/restart'],
        verbs: ['update'],
      },
      {
        apiGroups: ['subresources.kubevirt.io'],
        resources: [
          'virtualmachineinstances/console',
          'virtualmachineinstances/vnc',
          'virtualmachineinstances/softreboot',
          'virtualmachineinstances/pause',
          'virtualmachineinstances/unpause',
        ],
        verbs: ['get', 'update'],
      },
      { apiGroups: [''], resources: ['services', 'events'], verbs: ['get', 'list', 'watch'] },
      {
        apiGroups: ['gateway.networking.k8s.io'],
        resources: ['httproutes', 'tlsroutes'],
        verbs: ['get', 'list', 'watch'],
      },
    ],
  };
}

export function desiredRoleBinding(t: Tenant) {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: tenantChildMeta(t, ROLE_NAME),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: ROLE_NAME },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: peerUserName(t.spec.peer) }],
  };
}
