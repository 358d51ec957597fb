/** ResourceQuota and LimitRange: what units × unit size allows the tenant to run. */
import type { Tenant } from '../../generated/personalcloud.js';
import type { Home } from '../home.js';
import { tenantChildMeta } from './namespace.js';
import type { TenantQuota } from './validation.js';
import { canonicalQuantity } from '../../api/quantity.js';

/**
 * Quantities in the form the API server stores them (`2000` comes back as `2k`), so the
 * cached quota contains the desired one and a steady state re-applies nothing.
 */
const canonical = (values: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(values).map(([k, v]) => [k, canonicalQuantity(v)]));

export const QUOTA_NAME = 'tenant-quota';
export const LIMIT_RANGE_NAME = 'tenant-limits';

export function desiredResourceQuota(t: Tenant, quota: TenantQuota) {
  const units = String(t.spec.units);
  return {
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: tenantChildMeta(t, QUOTA_NAME),
    spec: {
      hard: canonical({
        'count/virtualmachines.kubevirt.io': units,
        'requests.cpu': quota.cpu,
        'requests.memory': quota.memory,
        'requests.storage': quota.storage,
        persistentvolumeclaims: units,
        services: units,
        'services.loadbalancers': '0',
        'services.nodeports': '0',
      }),
    },
  };
}

export function desiredLimitRange(t: Tenant, unit: Home['unit']) {
  return {
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: tenantChildMeta(t, LIMIT_RANGE_NAME),
    spec: {
      limits: [
        // Pods without requests still count against the quota.
        { type: 'Container', defaultRequest: { cpu: '100m', memory: '64Mi' } },
        // No single disk larger than one unit's storage.
        { type: 'PersistentVolumeClaim', max: { storage: canonicalQuantity(String(unit.storage)) } },
      ],
    },
  };
}
