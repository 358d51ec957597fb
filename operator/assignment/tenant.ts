/** The Tenant a requester needs here: units summed over its admitted hosted Assignments. */
import type { Home } from '../home.js';
import { managedLabels } from '../../api/labels.js';

export const CREATED_BY_ASSIGNMENTS_LABEL = 'personalcloud.io/created-by';
export const CREATED_BY_ASSIGNMENTS = 'hosted-assignment-controller';

export function desiredTenant(requester: string, units: number, home: Pick<Home, 'bandwidth'>) {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Tenant',
    metadata: {
      name: requester,
      labels: { ...managedLabels(), [CREATED_BY_ASSIGNMENTS_LABEL]: CREATED_BY_ASSIGNMENTS },
    },
    spec: {
      peer: requester,
      units,
      bandwidth: { ingress: home.bandwidth.ingress, egress: home.bandwidth.egress },
    },
  };
}
