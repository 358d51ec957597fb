import { OperatorMetrics, resourceOfPath } from './metrics.js';

test.each([
  ['/api/v1/namespaces/tenant-bob/services/web-0', 'services'],
  ['/api/v1/namespaces/tenant-bob', 'namespaces'],
  ['/api/v1/namespaces', 'namespaces'],
  ['/apis/kubevirt.io/v1/namespaces/tenant-bob/virtualmachines/web-0', 'virtualmachines.kubevirt.io'],
  [
    '/apis/personalcloud.io/v1alpha1/namespaces/federation/assignments/a/status',
    'assignments.personalcloud.io/status',
  ],
  ['/apis/personalcloud.io/v1alpha1/tenants/bob/status', 'tenants.personalcloud.io/status'],
  ['/apis/events.k8s.io/v1/namespaces/default/events', 'events.events.k8s.io'],
])('resourceOfPath(%s) = %s', (path, resource) => {
  expect(resourceOfPath(path)).toBe(resource);
});

test('every request is counted by verb and code; writes also by resource', async () => {
  const m = new OperatorMetrics(false);
  const observe = m.observeRequest();
  observe('GET', 200, '/api/v1/namespaces/x/services');
  observe('PATCH', 201, '/api/v1/namespaces/x/services/a');
  observe('PATCH', 201, '/api/v1/namespaces/y/services/b');
  observe('PATCH', 403, '/apis/kubevirt.io/v1/namespaces/x/virtualmachines/a');
  expect(await m.apiRequestCount()).toBe(4);
  const writes = (await m.apiWrites.get()).values.map((v) => [
    v.labels.verb,
    v.labels.resource,
    v.labels.code,
    v.value,
  ]);
  expect(writes).toEqual([
    ['PATCH', 'services', '201', 2],
    ['PATCH', 'virtualmachines.kubevirt.io', '403', 1],
  ]);
});
