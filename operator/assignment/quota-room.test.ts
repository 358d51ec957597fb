// quotaRoom: how many more VMs a tenant namespace's quota lets in, as the API server's
// quota admission judges it (status, not spec; a usage for every limited resource).
import { quotaRoom } from './hosted-assignment-controller.js';

const quota = (hard: Record<string, string>, used?: Record<string, string>) => ({
  metadata: { name: 'tenant-quota', namespace: 'tenant-bob' },
  spec: { hard: { 'count/virtualmachines.kubevirt.io': '9' } }, // spec is not what is enforced
  status: { hard, ...(used ? { used } : {}) },
});
const VMS = 'count/virtualmachines.kubevirt.io';

test.each([
  ['no quota in the cache', undefined, 0, 0],
  ['never computed (no status.hard)', quota({}), 0, 0],
  ['hard but no usage yet: status unknown', quota({ [VMS]: '4', services: '4' }), 0, 0],
  [
    'a limited resource without usage (CRD not yet discovered by the quota controller)',
    quota({ [VMS]: '4', services: '4' }, { services: '0' }),
    0,
    0,
  ],
  ['computed, none used', quota({ [VMS]: '4', services: '4' }, { [VMS]: '0', services: '0' }), 0, 4],
  ['computed, 3 used', quota({ [VMS]: '4' }, { [VMS]: '3' }), 3, 1],
  ['the cache knows more VMs than the usage yet', quota({ [VMS]: '4' }, { [VMS]: '1' }), 3, 1],
  ['the usage knows more than the cache', quota({ [VMS]: '4' }, { [VMS]: '4' }), 2, 0],
  ['after a resize, before recomputation: the old hard counts', quota({ [VMS]: '2' }, { [VMS]: '2' }), 2, 0],
  ['no VM limit at all', quota({ services: '4' }, { services: '0' }), 5, Infinity],
])('%s', (_what, q, vms, room) => {
  expect(quotaRoom(q, vms)).toBe(room);
});
