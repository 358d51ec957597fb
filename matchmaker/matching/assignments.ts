/**
 * The Assignments a matching wants (pure): one per (Request, host) pair with units, named
 * `assignmentName(requester, request)` in the host's namespace `peer-<host>` (the host
 * must read the whole spec to provision; api/federation.ts), labelled with requester,
 * request and host (values hashed down to 63 characters when longer), `spec.vm` and
 * `spec.loginKey` copied from the Request.
 */
import type { Assignment, Request } from '../../generated/personalcloud.js';
import {
  HOST_LABEL,
  REQUESTER_LABEL,
  REQUEST_LABEL,
  assignmentName,
  labelValue,
  peerNamespace,
} from '../../api/federation.js';
import type { Placed } from './instance.js';

export const API_VERSION = 'personalcloud.io/v1alpha1';

/** An Assignment as the matchmaker writes it: name, namespace and labels always set. */
export type DesiredAssignment = Assignment & {
  metadata: { name: string; namespace: string; labels: Record<string, string> };
};

/** `host/name`: where a placement's Assignment lives (the same key as `assignmentKeyOf`). */
export function placementKey(p: { requester: string; request: string; host: string }): string {
  return `${p.host}/${assignmentName(p.requester, p.request)}`;
}

export function desiredAssignment(p: Placed, request: Request): DesiredAssignment {
  return {
    apiVersion: API_VERSION,
    kind: 'Assignment',
    metadata: {
      name: assignmentName(p.requester, p.request),
      namespace: peerNamespace(p.host),
      labels: {
        [REQUESTER_LABEL]: p.requester,
        [REQUEST_LABEL]: labelValue(p.request),
        [HOST_LABEL]: p.host,
      },
    },
    spec: {
      requester: p.requester,
      request: p.request,
      host: p.host,
      units: p.units,
      // The requester's portal login key travels with its VMs to the host (docs/portal.md).
      ...(request.spec.loginKey ? { loginKey: request.spec.loginKey } : {}),
      vm: request.spec.vm,
    },
  };
}
