import type { Assignment, AssignmentSpec, Tenant, VmPort } from '../../generated/personalcloud.js';
import { CREATED_BY_ASSIGNMENTS, CREATED_BY_ASSIGNMENTS_LABEL, desiredTenant } from './tenant.js';
import {
  AssignmentProblem,
  MAX_TENANT_UNITS,
  admitAssignments,
  assignmentKey,
  byAge,
  claimsOf,
} from './validation.js';

function assignment(
  name: string,
  spec: Partial<AssignmentSpec> = {},
  created = '2025-01-01T00:00:00Z',
  namespace = 'matchmaker',
): Assignment {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Assignment',
    metadata: { name, namespace, uid: `uid-${name}`, generation: 1, creationTimestamp: new Date(created) },
    spec: { requester: 'bob', request: name, host: 'alice', units: 1, vm: { image: 'img' }, ...spec },
  };
}
function ports(...p: VmPort[]): Pick<AssignmentSpec, 'vm'> {
  return { vm: { image: 'img', ports: p } };
}
function tenant(peer: string, hostnameSuffix?: string): Tenant {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name: peer },
    spec: { peer, units: 1, ...(hostnameSuffix ? { hostnameSuffix } : {}) },
  };
}
// An Offer large enough not to matter, except in the ExceedsOffer tests.
const home = { homeDomain: 'home.example.net', offeredUnits: 1_000_000 };
const none = new Map<string, Tenant>();
const reasons = (r: ReturnType<typeof admitAssignments>) =>
  Object.fromEntries([...r.problems].map(([k, p]) => [k, p.reason]));

describe('assignmentKey and byAge', () => {
  it('keys an Assignment by namespace/name', () => {
    expect(assignmentKey(assignment('x'))).toBe('matchmaker/x');
  });

  it('orders oldest first, then by key', () => {
    const list = [
      assignment('c', {}, '2025-03-01T00:00:00Z'),
      assignment('b', {}, '2025-01-01T00:00:00Z'),
      assignment('a', {}, '2025-02-01T00:00:00Z'),
      assignment('a', {}, '2025-01-01T00:00:00Z', 'other'),
    ];
    expect([...list].sort(byAge).map(assignmentKey)).toEqual([
      'matchmaker/b',
      'other/a',
      'matchmaker/a',
      'matchmaker/c',
    ]);
  });
});

describe('claimsOf', () => {
  it('claims each VM, Service and route name in the tenant namespace and one hostname per HTTP/TLS port; TCP/UDP claim no route', () => {
    const a = assignment('web', {
      units: 2,
      ...ports(
        { name: 'web', port: 80 },
        { name: 'tls', port: 443, protocol: 'TLS' },
        { name: 'ssh', port: 22, protocol: 'TCP' },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ),
    });
    const H = 'DuplicateHostname';
    const N = 'DuplicateName';
    expect(claimsOf(a, 'bob.home.example.net')).toEqual([
      { key: 'vm:tenant-bob/web-0', what: 'VM web-0', reason: H },
      { key: 'service:tenant-bob/web-0', what: 'Service web-0 (VM web-0)', reason: N },
      {
        key: 'http:web-0.bob.home.example.net',
        what: 'hostname web-0.bob.home.example.net (HTTP port web)',
        reason: H,
      },
      { key: 'httproute:tenant-bob/web-0-web', what: 'HTTPRoute web-0-web (VM web-0, port web)', reason: N },
      {
        key: 'tls:web-0.bob.home.example.net',
        what: 'hostname web-0.bob.home.example.net (TLS port tls)',
        reason: H,
      },
      { key: 'tlsroute:tenant-bob/web-0-tls', what: 'TLSRoute web-0-tls (VM web-0, port tls)', reason: N },
      { key: 'vm:tenant-bob/web-1', what: 'VM web-1', reason: H },
      { key: 'service:tenant-bob/web-1', what: 'Service web-1 (VM web-1)', reason: N },
      {
        key: 'http:web-1.bob.home.example.net',
        what: 'hostname web-1.bob.home.example.net (HTTP port web)',
        reason: H,
      },
      { key: 'httproute:tenant-bob/web-1-web', what: 'HTTPRoute web-1-web (VM web-1, port web)', reason: N },
      {
        key: 'tls:web-1.bob.home.example.net',
        what: 'hostname web-1.bob.home.example.net (TLS port tls)',
        reason: H,
      },
      { key: 'tlsroute:tenant-bob/web-1-tls', what: 'TLSRoute web-1-tls (VM web-1, port tls)', reason: N },
    ]);
  });
});

describe('admitAssignments: DuplicateHostname', () => {
  it('admits one HTTP and one TLS port on a VM hostname (different listeners)', () => {
    const a = assignment(
      'web',
      ports({ name: 'web', port: 80 }, { name: 'tls', port: 443, protocol: 'TLS' }),
    );
    expect(admitAssignments([a], none, home).problems.size).toBe(0);
  });

  it('admits any number of TCP and UDP ports', () => {
    const a = assignment(
      'web',
      ports(
        { name: 'web', port: 80 },
        { name: 'a', port: 1, protocol: 'TCP' },
        { name: 'b', port: 2, protocol: 'TCP' },
        { name: 'c', port: 1, protocol: 'UDP' },
      ),
    );
    expect(admitAssignments([a], none, home).problems.size).toBe(0);
  });

  it.each<[string, VmPort[], string]>([
    [
      'two HTTP ports',
      [
        { name: 'a', port: 80 },
        { name: 'b', port: 81, protocol: 'HTTP' },
      ],
      'HTTP port b',
    ],
    [
      'two TLS ports',
      [
        { name: 'a', port: 443, protocol: 'TLS' },
        { name: 'b', port: 8443, protocol: 'TLS' },
      ],
      'TLS port b',
    ],
  ])('refuses %s on one VM hostname within an Assignment', (_, p, what) => {
    const r = admitAssignments([assignment('web', { units: 3, ...ports(...p) })], none, home);
    const problem = r.problems.get('matchmaker/web');
    expect(problem).toBeInstanceOf(AssignmentProblem);
    expect(problem?.reason).toBe('DuplicateHostname');
    expect(problem?.message).toBe(
      `hostname web-0.bob.home.example.net (${what}) is claimed twice by this Assignment: one hostname routes to one HTTP and one TLS port`,
    );
    // A refused Assignment adds nothing to its requester's Tenant.
    expect(r.unitsByRequester.get('bob')).toBeUndefined();
  });

  it('refuses the younger of two Assignments whose requests map to one VM name', () => {
    // Dots become dashes: both requests yield VM shop-web-0 in tenant-bob.
    const old = assignment('a', { request: 'shop.web' }, '2025-01-01T00:00:00Z');
    const young = assignment('b', { request: 'shop-web' }, '2025-02-01T00:00:00Z');
    for (const order of [
      [old, young],
      [young, old],
    ]) {
      const r = admitAssignments(order, none, home);
      expect(reasons(r)).toEqual({ 'matchmaker/b': 'DuplicateHostname' });
      expect(r.problems.get('matchmaker/b')?.message).toBe(
        'VM shop-web-0 is already used by Assignment matchmaker/a',
      );
      expect(r.unitsByRequester).toEqual(new Map([['bob', 1]]));
    }
  });

  it('breaks a creation-time tie by key', () => {
    const a = assignment('a', { request: 'x' });
    const b = assignment('b', { request: 'x' });
    expect(reasons(admitAssignments([b, a], none, home))).toEqual({ 'matchmaker/b': 'DuplicateHostname' });
  });

  it('lets one request name be used by different requesters (separate namespaces and hostnames)', () => {
    const bob = assignment('a', { requester: 'bob', request: 'web', ...ports({ name: 'web', port: 80 }) });
    const carol = assignment('b', {
      requester: 'carol',
      request: 'web',
      ...ports({ name: 'web', port: 80 }),
    });
    const r = admitAssignments([bob, carol], none, home);
    expect(r.problems.size).toBe(0);
    expect(r.unitsByRequester).toEqual(
      new Map([
        ['bob', 1],
        ['carol', 1],
      ]),
    );
  });

  it('refuses a hostname another requester’s Tenant suffix already routes', () => {
    // carol's Tenant chose bob's default suffix: web-0.bob.home.example.net twice.
    const tenants = new Map([['carol', tenant('carol', 'bob.home.example.net')]]);
    const bob = assignment('a', { requester: 'bob', request: 'web', ...ports({ name: 'web', port: 80 }) });
    const carol = assignment(
      'b',
      { requester: 'carol', request: 'web', ...ports({ name: 'web', port: 80 }) },
      '2025-02-01T00:00:00Z',
    );
    const r = admitAssignments([carol, bob], tenants, home);
    expect(reasons(r)).toEqual({ 'matchmaker/b': 'DuplicateHostname' });
    expect(r.problems.get('matchmaker/b')?.message).toBe(
      'hostname web-0.bob.home.example.net (HTTP port web) is already used by Assignment matchmaker/a',
    );
  });

  it('does not count a TCP port against an HTTP hostname of another Assignment', () => {
    const tenants = new Map([['carol', tenant('carol', 'bob.home.example.net')]]);
    const bob = assignment('a', { requester: 'bob', request: 'web', ...ports({ name: 'web', port: 80 }) });
    const carol = assignment('b', {
      requester: 'carol',
      request: 'web',
      ...ports({ name: 'ssh', port: 22, protocol: 'TCP' }),
    });
    expect(admitAssignments([bob, carol], tenants, home).problems.size).toBe(0);
  });

  it('frees the names of a refused Assignment for younger ones', () => {
    // b is refused (two HTTP ports), so its VM name web-0 stays free for c.
    const a = assignment('a', { request: 'other' }, '2025-01-01T00:00:00Z');
    const b = assignment(
      'b',
      { request: 'web', ...ports({ name: 'x', port: 1 }, { name: 'y', port: 2 }) },
      '2025-02-01T00:00:00Z',
    );
    const c = assignment('c', { request: 'web' }, '2025-03-01T00:00:00Z');
    const r = admitAssignments([c, b, a], none, home);
    expect(reasons(r)).toEqual({ 'matchmaker/b': 'DuplicateHostname' });
    expect(r.unitsByRequester.get('bob')).toBe(2);
  });

  it('does not conflict an Assignment with itself when listed twice (same key)', () => {
    const a = assignment('a', ports({ name: 'web', port: 80 }));
    expect(admitAssignments([a, a], none, home).problems.size).toBe(0);
  });
});

describe('admitAssignments: QuotaExceeded and units', () => {
  it('sums units per requester over admitted Assignments', () => {
    const r = admitAssignments(
      [
        assignment('a', { units: 3 }),
        assignment('b', { units: 4 }),
        assignment('c', { requester: 'carol', units: 2 }),
      ],
      none,
      home,
    );
    expect(r.problems.size).toBe(0);
    expect(r.unitsByRequester).toEqual(
      new Map([
        ['bob', 7],
        ['carol', 2],
      ]),
    );
  });

  it('is empty for no Assignments', () => {
    expect(admitAssignments([], none, home)).toEqual({ problems: new Map(), unitsByRequester: new Map() });
  });

  it('admits exactly the Tenant maximum', () => {
    const r = admitAssignments(
      [assignment('a', { units: 6000 }), assignment('b', { units: MAX_TENANT_UNITS - 6000 })],
      none,
      home,
    );
    expect(r.problems.size).toBe(0);
    expect(r.unitsByRequester.get('bob')).toBe(10000);
  });

  it('refuses, oldest first, the Assignment that would exceed it; a smaller younger one still fits', () => {
    const r = admitAssignments(
      [
        assignment('c', { units: 4000 }, '2025-03-01T00:00:00Z'),
        assignment('b', { units: 5000 }, '2025-02-01T00:00:00Z'),
        assignment('a', { units: 6000 }, '2025-01-01T00:00:00Z'),
        assignment('d', { requester: 'carol', units: 10000 }, '2025-04-01T00:00:00Z'),
      ],
      none,
      home,
    );
    expect(reasons(r)).toEqual({ 'matchmaker/b': 'QuotaExceeded' });
    expect(r.problems.get('matchmaker/b')?.message).toBe(
      'requester bob would have 11000 units here; a Tenant holds at most 10000',
    );
    expect(r.unitsByRequester).toEqual(
      new Map([
        ['bob', 10000],
        ['carol', 10000],
      ]),
    );
  });

  it('reports DuplicateHostname rather than QuotaExceeded when both apply', () => {
    const r = admitAssignments(
      [
        assignment('a', { units: 10000 }),
        assignment(
          'b',
          { units: 1, ...ports({ name: 'x', port: 1 }, { name: 'y', port: 2 }) },
          '2025-02-01T00:00:00Z',
        ),
      ],
      none,
      home,
    );
    expect(reasons(r)).toEqual({ 'matchmaker/b': 'DuplicateHostname' });
  });
});

describe('desiredTenant', () => {
  it('is the requester’s Tenant with the summed units and the home’s bandwidth, marked as ours', () => {
    expect(desiredTenant('bob', 7, { bandwidth: { ingress: '10M', egress: '5M' } })).toEqual({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Tenant',
      metadata: {
        name: 'bob',
        labels: {
          'app.kubernetes.io/managed-by': 'personal-cloud',
          'personalcloud.io/created-by': 'hosted-assignment-controller',
        },
      },
      spec: { peer: 'bob', units: 7, bandwidth: { ingress: '10M', egress: '5M' } },
    });
    expect([CREATED_BY_ASSIGNMENTS_LABEL, CREATED_BY_ASSIGNMENTS]).toEqual([
      'personalcloud.io/created-by',
      'hosted-assignment-controller',
    ]);
  });

  it('takes its units from admission', () => {
    const r = admitAssignments(
      [
        assignment('a', { units: 2 }),
        assignment('b', { units: 3 }),
        assignment('c', { request: 'a', units: 9 }, '2025-05-01T00:00:00Z'),
      ],
      none,
      home,
    );
    // c repeats a's VM names and is refused: it adds nothing.
    expect(reasons(r)).toEqual({ 'matchmaker/c': 'DuplicateHostname' });
    const t = desiredTenant('bob', r.unitsByRequester.get('bob') ?? 0, {
      bandwidth: { ingress: '1G', egress: '1G' },
    });
    expect(t.spec.units).toBe(5);
  });
});

describe('object names two Assignments of one requester would share', () => {
  const withPorts = (
    name: string,
    request: string,
    units: number,
    port: string,
    created: string,
  ): Assignment => ({
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Assignment',
    metadata: { name, namespace: 'federation', creationTimestamp: new Date(created) },
    spec: {
      requester: 'bob',
      request,
      host: 'alice',
      units,
      vm: { image: 'img', ports: [{ name: port, port: 80 }] },
    },
  });

  it.each([
    // VM a-1 port "0-web" and VM a-1-0 port "web" both make HTTPRoute a-1-0-web
    [
      'an HTTPRoute',
      withPorts('a', 'a', 2, '0-web', '2025-01-01T00:00:00Z'),
      withPorts('b', 'a-1', 1, 'web', '2025-02-01T00:00:00Z'),
      'HTTPRoute a-1-0-web',
    ],
    // VM 1web-0 gets Service vm-1web-0, which is also VM vm-1web-0's own name
    [
      'a Service',
      withPorts('a', '1web', 1, 'web', '2025-01-01T00:00:00Z'),
      withPorts('b', 'vm-1web', 1, 'web', '2025-02-01T00:00:00Z'),
      'Service vm-1web-0',
    ],
  ])(
    '%s: the younger Assignment is refused with DuplicateName naming the object',
    (_, older, younger, object) => {
      const { problems } = admitAssignments([younger, older], new Map(), {
        homeDomain: 'h.example',
        offeredUnits: 100,
      });
      expect(problems.has('federation/a')).toBe(false);
      const problem = problems.get('federation/b');
      expect(problem?.reason).toBe('DuplicateName');
      expect(problem?.message).toContain(`${object} `);
      expect(problem?.message).toContain('already used by Assignment federation/a');
    },
  );
});

describe('admitAssignments: the host caps what it hosts by its own Offer', () => {
  it('admits oldest first up to the Offer and refuses the rest with ExceedsOffer, naming the numbers', () => {
    const r = admitAssignments(
      [
        assignment('young', { requester: 'carol', units: 40 }, '2025-03-01T00:00:00Z'),
        assignment('old', { units: 2 }, '2025-01-01T00:00:00Z'),
        assignment('fits', { requester: 'dave', units: 2 }, '2025-04-01T00:00:00Z'),
      ],
      none,
      { ...home, offeredUnits: 4 },
    );
    expect(reasons(r)).toEqual({ 'matchmaker/young': 'ExceedsOffer' });
    expect(r.problems.get('matchmaker/young')?.message).toBe(
      "40 units would exceed this home's Offer: 2 of 4 units are taken by older Assignments",
    );
    expect(r.unitsByRequester).toEqual(
      new Map([
        ['bob', 2],
        ['dave', 2],
      ]),
    );
  });

  it('hosts nothing without an Offer: NoOffer', () => {
    const r = admitAssignments([assignment('a')], none, { homeDomain: 'home.example.net' });
    expect(reasons(r)).toEqual({ 'matchmaker/a': 'NoOffer' });
    expect(r.unitsByRequester.size).toBe(0);
  });
});

describe('admitAssignments: a peer already hosted by another, older Tenant', () => {
  const stamped = (t: Tenant, name: string, created: string): Tenant => ({
    ...t,
    metadata: { name, creationTimestamp: new Date(created) },
  });
  it('refuses the Assignment with DuplicatePeer, naming that Tenant, and counts none of its units', () => {
    const byHand = stamped(tenant('bob'), 'bob-by-hand', '2024-01-01T00:00:00Z');
    const r = admitAssignments([assignment('web', { units: 2 })], new Map([['bob-by-hand', byHand]]), home);
    expect(reasons(r)).toEqual({ 'matchmaker/web': 'DuplicatePeer' });
    expect(r.problems.get('matchmaker/web')?.message).toBe(
      'peer bob is already hosted here by the older Tenant bob-by-hand',
    );
    expect(r.unitsByRequester.get('bob') ?? 0).toBe(0);
  });
  it('admits it when the requester’s own Tenant is the older one', () => {
    const own = stamped(tenant('bob'), 'bob', '2024-01-01T00:00:00Z');
    const younger = stamped(tenant('bob'), 'bob-by-hand', '2025-06-01T00:00:00Z');
    const r = admitAssignments(
      [assignment('web')],
      new Map([
        ['bob', own],
        ['bob-by-hand', younger],
      ]),
      home,
    );
    expect(r.problems.size).toBe(0);
  });
});
