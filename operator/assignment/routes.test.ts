import type { Assignment, AssignmentSpec, VmPort } from '../../generated/personalcloud.js';
import {
  desiredGateway,
  desiredHTTPRoutes,
  desiredServices,
  desiredTLSRoutes,
  serviceName,
} from './routes.js';

function assignment(spec: Partial<AssignmentSpec> = {}, name = 'bob-web-alice'): Assignment {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Assignment',
    metadata: { name, namespace: 'matchmaker', uid: `uid-${name}`, generation: 1 },
    spec: { requester: 'bob', request: 'web', host: 'alice', units: 2, vm: { image: 'img' }, ...spec },
  };
}
function withPorts(ports: VmPort[], spec: Partial<AssignmentSpec> = {}): Assignment {
  return assignment({ ...spec, vm: { image: 'img', ports } });
}
const home = {
  gateway: {
    namespace: 'personal-cloud',
    name: 'personal-cloud',
    className: 'cilium',
    httpPort: 80,
    tlsPort: 443,
  },
};
const SUFFIX = 'bob.home.example.net';
const labels = (vm: string) => ({
  'app.kubernetes.io/managed-by': 'personal-cloud',
  'personalcloud.io/assignment': 'bob-web-alice',
  'personalcloud.io/assignment-namespace': 'matchmaker',
  'personalcloud.io/peer': 'bob',
  'personalcloud.io/vm': vm,
});

const ALL: VmPort[] = [
  { name: 'web', port: 8080 },
  { name: 'admin', port: 9090, protocol: 'HTTP' },
  { name: 'tls', port: 8443, protocol: 'TLS' },
  { name: 'ssh', port: 22, protocol: 'TCP' },
  { name: 'dns', port: 53, protocol: 'UDP' },
];

describe('serviceName', () => {
  it.each([
    ['web-0', 'web-0'],
    ['a-12', 'a-12'],
    // A Service name must start with a letter (DNS-1035).
    ['1db-0', 'vm-1db-0'],
    ['0-0', 'vm-0-0'],
  ])('%p → %p', (vm, want) => {
    expect(serviceName(vm)).toBe(want);
  });

  it('stays a DNS-1035 label for the longest VM names', () => {
    const vm = `9${'x'.repeat(56)}-9999`; // 62 characters
    const s = serviceName(vm);
    expect(s.length).toBeLessThanOrEqual(63);
    expect(s).toMatch(/^[a-z]([-a-z0-9]*[a-z0-9])?$/);
  });
});

describe('desiredServices', () => {
  it('is none when the VM declares no ports', () => {
    expect(desiredServices(assignment())).toEqual([]);
    expect(desiredServices(withPorts([]))).toEqual([]);
  });

  it('is one ClusterIP Service per VM, selecting that VM, with every port', () => {
    const services = desiredServices(withPorts(ALL));
    expect(services).toHaveLength(2);
    for (const [i, s] of services.entries()) {
      const vm = `web-${i}`;
      expect(s).toEqual({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: vm, namespace: 'tenant-bob', labels: labels(vm) },
        spec: {
          type: 'ClusterIP',
          selector: { 'vm.kubevirt.io/name': vm },
          ports: [
            { name: 'web', port: 8080, targetPort: 8080, protocol: 'TCP' },
            { name: 'admin', port: 9090, targetPort: 9090, protocol: 'TCP' },
            { name: 'tls', port: 8443, targetPort: 8443, protocol: 'TCP' },
            { name: 'ssh', port: 22, targetPort: 22, protocol: 'TCP' },
            { name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' },
          ],
        },
      });
    }
  });

  it('allows one port number on TCP and UDP', () => {
    const [s] = desiredServices(
      withPorts(
        [
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
          { name: 'dns-udp', port: 53, protocol: 'UDP' },
        ],
        { units: 1 },
      ),
    );
    expect(s?.spec?.ports?.map((p) => `${p.port}/${p.protocol}`)).toEqual(['53/TCP', '53/UDP']);
  });

  it('names a Service of a VM starting with a digit vm-<vm>, still selecting the VM', () => {
    const [s] = desiredServices(withPorts([{ name: 'web', port: 80 }], { request: '1db', units: 1 }));
    expect(s?.metadata.name).toBe('vm-1db-0');
    expect(s?.spec?.selector).toEqual({ 'vm.kubevirt.io/name': '1db-0' });
    expect(s?.metadata.labels?.['personalcloud.io/vm']).toBe('1db-0');
  });
});

describe('desiredHTTPRoutes', () => {
  it('is one HTTPRoute per VM and HTTP port (protocol HTTP or unset), hostname <vm>.<suffix>', () => {
    const routes = desiredHTTPRoutes(withPorts(ALL), SUFFIX, home);
    expect(routes.map((r) => [r.metadata.name, r.spec.hostnames])).toEqual([
      ['web-0-web', ['web-0.bob.home.example.net']],
      ['web-0-admin', ['web-0.bob.home.example.net']],
      ['web-1-web', ['web-1.bob.home.example.net']],
      ['web-1-admin', ['web-1.bob.home.example.net']],
    ]);
    expect(routes[0]).toEqual({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'web-0-web', namespace: 'tenant-bob', labels: labels('web-0') },
      spec: {
        parentRefs: [
          {
            group: 'gateway.networking.k8s.io',
            kind: 'Gateway',
            namespace: 'personal-cloud',
            name: 'personal-cloud',
            sectionName: 'http',
          },
        ],
        hostnames: ['web-0.bob.home.example.net'],
        rules: [{ backendRefs: [{ group: '', kind: 'Service', name: 'web-0', port: 8080 }] }],
      },
    });
    expect(routes[3]?.spec.rules).toEqual([
      { backendRefs: [{ group: '', kind: 'Service', name: 'web-1', port: 9090 }] },
    ]);
  });

  it('uses a Tenant hostnameSuffix when given one', () => {
    const routes = desiredHTTPRoutes(withPorts([{ name: 'web', port: 80 }]), 'vms.bob.example.org', home);
    expect(routes.flatMap((r) => r.spec.hostnames)).toEqual([
      'web-0.vms.bob.example.org',
      'web-1.vms.bob.example.org',
    ]);
  });

  it('attaches to the configured Gateway', () => {
    const gw = { gateway: { namespace: 'edge', name: 'public', className: 'x', httpPort: 80, tlsPort: 443 } };
    const [r] = desiredHTTPRoutes(withPorts([{ name: 'web', port: 80 }]), SUFFIX, gw);
    expect(r?.spec.parentRefs).toEqual([
      {
        group: 'gateway.networking.k8s.io',
        kind: 'Gateway',
        namespace: 'edge',
        name: 'public',
        sectionName: 'http',
      },
    ]);
  });

  it('routes to vm-<vm> when the VM name starts with a digit', () => {
    const [r] = desiredHTTPRoutes(
      withPorts([{ name: 'web', port: 80 }], { request: '1db', units: 1 }),
      SUFFIX,
      home,
    );
    expect(r?.metadata.name).toBe('1db-0-web');
    expect(r?.spec.hostnames).toEqual(['1db-0.bob.home.example.net']);
    expect(r?.spec.rules?.[0]?.backendRefs?.[0]?.name).toBe('vm-1db-0');
  });

  it.each<[string, VmPort[]]>([
    ['no ports', []],
    [
      'TLS, TCP and UDP ports only',
      ALL.filter((p) => p.protocol === 'TLS' || p.protocol === 'TCP' || p.protocol === 'UDP'),
    ],
  ])('is none for %s', (_, ports) => {
    expect(desiredHTTPRoutes(withPorts(ports), SUFFIX, home)).toEqual([]);
  });

  it('keeps long route names within a DNS label', () => {
    const routes = desiredHTTPRoutes(
      withPorts([{ name: 'a-long-port-nam', port: 80 }], { request: 'r'.repeat(100), units: 1 }),
      SUFFIX,
      home,
    );
    expect(routes[0]?.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
  });
});

describe('desiredTLSRoutes', () => {
  it('is one v1alpha3 TLSRoute per VM and TLS port, on the passthrough listener', () => {
    const routes = desiredTLSRoutes(withPorts(ALL), SUFFIX, home);
    expect(routes).toEqual(
      ['web-0', 'web-1'].map((vm) => ({
        apiVersion: 'gateway.networking.k8s.io/v1alpha3',
        kind: 'TLSRoute',
        metadata: { name: `${vm}-tls`, namespace: 'tenant-bob', labels: labels(vm) },
        spec: {
          parentRefs: [
            {
              group: 'gateway.networking.k8s.io',
              kind: 'Gateway',
              namespace: 'personal-cloud',
              name: 'personal-cloud',
              sectionName: 'tls',
            },
          ],
          hostnames: [`${vm}.bob.home.example.net`],
          rules: [{ backendRefs: [{ group: '', kind: 'Service', name: vm, port: 8443 }] }],
        },
      })),
    );
  });

  it('uses a Tenant hostnameSuffix when given one', () => {
    const [r] = desiredTLSRoutes(
      withPorts([{ name: 's', port: 443, protocol: 'TLS' }]),
      'vms.bob.example.org',
      home,
    );
    expect(r?.spec.hostnames).toEqual(['web-0.vms.bob.example.org']);
  });

  it.each<[string, VmPort[]]>([
    ['no ports', []],
    ['HTTP (explicit or default), TCP and UDP ports only', ALL.filter((p) => p.protocol !== 'TLS')],
  ])('is none for %s', (_, ports) => {
    expect(desiredTLSRoutes(withPorts(ports), SUFFIX, home)).toEqual([]);
  });
});

describe('TCP and UDP ports', () => {
  it('get a Service port but no route of any kind', () => {
    const a = withPorts([
      { name: 'ssh', port: 22, protocol: 'TCP' },
      { name: 'dns', port: 53, protocol: 'UDP' },
    ]);
    expect(desiredHTTPRoutes(a, SUFFIX, home)).toEqual([]);
    expect(desiredTLSRoutes(a, SUFFIX, home)).toEqual([]);
    expect(desiredServices(a).map((s) => s.spec?.ports?.length)).toEqual([2, 2]);
  });
});

describe('desiredGateway', () => {
  it('has an HTTP :80 and a TLS passthrough :443 listener, for routes from tenant namespaces only', () => {
    const onlyTenants = {
      namespaces: {
        from: 'Selector',
        selector: { matchExpressions: [{ key: 'personalcloud.io/peer', operator: 'Exists' }] },
      },
    };
    expect(desiredGateway(home)).toEqual({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: {
        name: 'personal-cloud',
        namespace: 'personal-cloud',
        labels: { 'app.kubernetes.io/managed-by': 'personal-cloud' },
      },
      spec: {
        gatewayClassName: 'cilium',
        listeners: [
          {
            name: 'http',
            protocol: 'HTTP',
            port: 80,
            allowedRoutes: { ...onlyTenants, kinds: [{ kind: 'HTTPRoute' }] },
          },
          {
            name: 'tls',
            protocol: 'TLS',
            port: 443,
            tls: { mode: 'Passthrough' },
            allowedRoutes: { ...onlyTenants, kinds: [{ kind: 'TLSRoute' }] },
          },
        ],
      },
    });
  });

  it('takes its name, namespace and class from the home', () => {
    const gw = desiredGateway({
      gateway: { namespace: 'edge', name: 'public', className: 'istio', httpPort: 80, tlsPort: 443 },
    });
    expect([gw.metadata.namespace, gw.metadata.name, gw.spec.gatewayClassName]).toEqual([
      'edge',
      'public',
      'istio',
    ]);
  });

  it("listens on the home's ports: k3s's Traefik attaches listeners only to its entryPoints' ports", () => {
    const gw = desiredGateway({
      gateway: {
        namespace: 'kube-system',
        name: 'home',
        className: 'traefik',
        httpPort: 8000,
        tlsPort: 8443,
      },
    });
    expect(gw.spec.listeners.map((l) => [l.name, l.protocol, l.port])).toEqual([
      ['http', 'HTTP', 8000],
      ['tls', 'TLS', 8443],
    ]);
  });

  it('has listener names matching the routes’ sectionNames', () => {
    const a = withPorts([
      { name: 'web', port: 80 },
      { name: 'tls', port: 443, protocol: 'TLS' },
    ]);
    const sections = [...desiredHTTPRoutes(a, SUFFIX, home), ...desiredTLSRoutes(a, SUFFIX, home)].map(
      (r) => r.spec.parentRefs?.[0]?.sectionName,
    );
    const listeners = desiredGateway(home).spec.listeners.map((l) => l.name);
    for (const s of sections) expect(listeners).toContain(s);
  });
});
