/** The Tenant's status: its namespace, one condition per child, Ready summarising them. */
import type { Tenant, TenantStatus } from '../../generated/personalcloud.js';
import {
  nextObservedGeneration,
  readySummary,
  setConditions,
  type ConditionInput,
} from '../../kube/conditions.js';

export function tenantStatus(
  t: Tenant,
  namespace: string | undefined,
  children: readonly ConditionInput[],
  now: Date,
  network?: TenantStatus['network'],
): TenantStatus {
  const ready = readySummary(children, t.metadata?.generation);
  const conditions = setConditions(t.status?.conditions, [...children, ready], now);
  const observedGeneration = nextObservedGeneration(
    t.status?.observedGeneration,
    t.metadata?.generation,
    ready.status === 'True',
  );
  return {
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
    ...(namespace ? { namespace } : {}),
    ...(network ? { network } : {}),
    conditions,
  };
}
