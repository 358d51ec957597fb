import type { Assignment, Offer, Request } from '../../generated/personalcloud.js';
import { assignmentName } from '../../api/federation.js';
import {
  Matcher,
  boundFor,
  buildInstance,
  checkHostReport,
  desiredAssignment,
  match,
  offerStatuses,
  requestStatus,
  satisfied,
  trusted,
} from './index.js';

const offer = (peer: string, units: number, excludePeers: string[] = [], ns = `peer-${peer}`): Offer => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Offer',
  metadata: { name: 'o', namespace: ns },
  spec: { peer, units, unit: { cpu: 1, memory: '1Gi', storage: '1Gi' }, excludePeers },
});
const request = (
  peer: string,
  name: string,
  units: number,
  placement: Request['spec']['placement'] = {},
): Request => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Request',
  metadata: { name, namespace: `peer-${peer}` },
  spec: { peer, units, placement, vm: { image: 'img' } },
});
const assignment = (requester: string, request: string, host: string, units: number): Assignment => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Assignment',
  metadata: { name: assignmentName(requester, request), namespace: `peer-${host}` },
  spec: { requester, request, host, units, vm: { image: 'img' } },
});

describe('boundFor: a Request placement and the host Offer become U(request, host)', () => {
  const r = request('alice', 'r', 5, {
    maxPerPeer: 2,
    peers: [
      { peer: 'bob', max: 4 },
      { peer: 'carol', max: 0 },
    ],
  });
  it.each([
    ['alice', undefined, 0], // never on its own home
    ['bob', undefined, 4], // explicit entry overrides maxPerPeer
    ['carol', undefined, 0],
    ['dave', undefined, 2],
    ['dave', new Set(['alice']), 0], // the host excludes the requester
  ])('host %s, excluded %p -> %d', (host, excluded, cap) => {
    expect(boundFor(r, host, excluded)).toBe(cap);
  });

  it.each([
    [{ spread: true }, 'c', 1],
    [{ spread: true, maxPerPeer: 0 }, 'c', 0], // spread and maxPerPeer 0: only the listed peers
    [{ spread: true, maxPerPeer: 0, peers: [{ peer: 'b', max: 1 }] }, 'b', 1],
    [{ spread: true, maxPerPeer: 1 }, 'c', 1],
    // the CRD refuses these; objects written before that rule still count as U = 1
    [{ spread: true, maxPerPeer: 3 }, 'c', 1],
    [{ spread: true, peers: [{ peer: 'c', max: 2 }] }, 'c', 1],
    [{ spread: false, maxPerPeer: 3 }, 'c', 3],
    [{}, 'c', Infinity],
  ])('spread means U <= 1: placement %j, host %s -> %d', (placement, host, cap) => {
    expect(boundFor(request('a', 'x', 3, placement), host, undefined)).toBe(cap);
  });
});

describe('buildInstance', () => {
  it('only trusts objects whose spec.peer matches their namespace', () => {
    expect(trusted([offer('alice', 2), offer('bob', 2, [], 'peer-alice')])).toHaveLength(1);
  });

  it('solves per-Request bounds, absent hosts offer nothing, and previous keeps what runs', () => {
    const input = {
      present: new Set(['alice', 'bob', 'carol']),
      offers: [offer('alice', 2), offer('bob', 3, ['carol']), offer('carol', 2), offer('dave', 9)],
      requests: [request('alice', 'web', 2, { spread: true }), request('carol', 'batch', 4)],
      assignments: [assignment('alice', 'web', 'carol', 1), assignment('alice', 'web', 'dave', 1)],
    };
    const m = buildInstance(input);
    expect(m.hosts).toEqual(['alice', 'bob', 'carol']);
    expect(m.previous).toEqual([[3, 2, 1]]); // dave is away: not previous
    const { placed, assignments } = match(input);
    expect(placed).toEqual([
      { requester: 'alice', request: 'web', host: 'bob', units: 1 },
      { requester: 'alice', request: 'web', host: 'carol', units: 1 },
      { requester: 'carol', request: 'batch', host: 'alice', units: 2 },
    ]);
    expect(assignments.map((a) => `${a.metadata.namespace}/${a.metadata.name}:${a.spec.units}`)).toEqual([
      'peer-bob/alice.web:1',
      'peer-carol/alice.web:1',
      'peer-alice/carol.batch:2',
    ]);
  });

  it('a Matcher reuses the answer of an unchanged instance', () => {
    const matcher = new Matcher();
    const input = {
      present: new Set(['a', 'b']),
      offers: [offer('b', 2)],
      requests: [request('a', 'r', 1)],
      assignments: [],
    };
    expect(matcher.match(input).solved).toBe(true);
    const again = matcher.match(input);
    expect(again.solved).toBe(false);
    expect(again.placed).toEqual([{ requester: 'a', request: 'r', host: 'b', units: 1 }]);
    matcher.reset();
    expect(matcher.match(input).solved).toBe(true);
  });
});

describe('status builders', () => {
  it.each([
    [3, 3, 'True', 'FullyAssigned'],
    [3, 1, 'False', 'PartiallyAssigned'],
    [3, 0, 'False', 'NoCapacity'],
  ])('satisfied: %d wanted, %d assigned -> %s %s', (w, a, status, reason) => {
    expect(satisfied(w, a)).toMatchObject({ status, reason });
  });

  const now = new Date('2026-01-02T03:04:05.678Z');
  it('a Request shows live placements with the host report, and lost ones as Lost', () => {
    const r = {
      ...request('alice', 'web', 3, { spread: true }),
      metadata: { name: 'web', namespace: 'peer-alice', generation: 4 },
    };
    const onBob = {
      ...assignment('alice', 'web', 'bob', 1),
      status: {
        vms: [{ name: 'web-0', phase: 'Running', hostname: 'web-0.alice.bob.example', address: '10.0.0.1' }],
      },
    };
    const status = requestStatus(
      r,
      [{ requester: 'alice', request: 'web', host: 'bob', units: 1 }],
      [{ requester: 'alice', request: 'web', host: 'dave', units: 1 }],
      new Map([['bob/alice.web', onBob]]),
      now,
      { homeDomains: new Map([['bob', 'bob.example']]), refusals: [] },
    );
    expect(status).toEqual({
      observedGeneration: 4,
      assignedUnits: 1,
      placements: [
        {
          peer: 'bob',
          units: 1,
          vms: [{ name: 'web-0', phase: 'Running', hostname: 'web-0.alice.bob.example' }],
        },
        { peer: 'dave', units: 1, vms: [{ name: 'web-0', phase: 'Lost' }] },
      ],
      conditions: [
        {
          type: 'Satisfied',
          status: 'False',
          reason: 'PartiallyAssigned',
          message: '1 of 3 unit(s) placed; the federation has no room for the rest',
          observedGeneration: 4,
          lastTransitionTime: '2026-01-02T03:04:05Z',
        },
        {
          type: 'Ready',
          status: 'False',
          reason: 'PartiallyAssigned',
          message: '1 of 3 unit(s) placed; the federation has no room for the rest',
          observedGeneration: 4,
          lastTransitionTime: '2026-01-02T03:04:05Z',
        },
        {
          type: 'HostsAccepted',
          status: 'True',
          reason: 'Accepted',
          message: 'no host refused this Request',
          observedGeneration: 4,
          lastTransitionTime: '2026-01-02T03:04:05Z',
        },
        {
          type: 'HostReports',
          status: 'True',
          reason: 'Verified',
          message: "hosts' reports checked: VM counts, phases, hostnames under <requester>.<host domain>",
          observedGeneration: 4,
          lastTransitionTime: '2026-01-02T03:04:05Z',
        },
      ],
    });
  });

  it("checks a host's report before the requester sees it: count, phases, hostnames under the host's domain", () => {
    const vm = (name: string, phase: string, hostname?: string) => ({
      name,
      phase,
      ...(hostname ? { hostname } : {}),
    });
    expect(
      checkHostReport('alice', 'bob', 2, 'bob.example', [
        vm('web-0', 'Running', 'web-0.alice.bob.example'),
        vm('web-1', 'Running', 'login.yourbank.example'),
        vm('web-2', 'Running', 'web-2.alice.bob.example'),
      ]),
    ).toEqual({
      vms: [vm('web-0', 'Running', 'web-0.alice.bob.example'), vm('web-1', 'Running')],
      problems: [
        'reported 3 VMs for 2 unit(s); only the first 2 shown',
        'VM web-1: hostname login.yourbank.example is not under alice.bob.example',
      ],
    });
    expect(checkHostReport('alice', 'bob', 2, 'bob.example', [vm('a', 'Hacked')]).vms).toEqual([]);
    // a hostname that nests deeper, or a host that declared no domain, is not shown either
    expect(
      checkHostReport('alice', 'bob', 1, 'bob.example', [vm('a', 'Running', 'x.y.alice.bob.example')]).vms,
    ).toEqual([vm('a', 'Running')]);
    expect(
      checkHostReport('alice', 'bob', 1, undefined, [vm('a', 'Running', 'a.alice.bob.example')]).vms,
    ).toEqual([vm('a', 'Running')]);
  });

  it("a peer's allocated units fill its Offers oldest first; an away peer's Offers are PeerAway", () => {
    const older = {
      ...offer('bob', 2),
      metadata: { name: 'b', namespace: 'peer-bob', creationTimestamp: new Date('2026-01-01') },
    };
    const newer = {
      ...offer('bob', 5),
      metadata: { name: 'a', namespace: 'peer-bob', creationTimestamp: new Date('2026-01-02') },
    };
    const present = offerStatuses('bob', [newer, older], 3, true, 30_000, now);
    expect(
      present.map(({ offer: o, status }) => [
        o.metadata?.name,
        status.allocatedUnits,
        status.conditions?.[0]?.reason,
      ]),
    ).toEqual([
      ['b', 2, 'Matched'],
      ['a', 1, 'Matched'],
    ]);
    const away = offerStatuses('bob', [older], 0, false, 30_000, now);
    expect(away[0]!.status.conditions?.[0]).toMatchObject({
      status: 'False',
      reason: 'PeerAway',
      message: 'no heartbeat from bob within 30s: not offered',
    });
  });
});

describe('assignmentName', () => {
  it('is <requester>.<request>, hashed down to 63 characters when longer', () => {
    expect(assignmentName('alice', 'web')).toBe('alice.web');
    const long = assignmentName('alice', 'x'.repeat(80));
    expect(long).toMatch(/^alice\.x{46}-[0-9a-f]{10}$/);
    expect(long).not.toBe(assignmentName('alice', 'x'.repeat(81)));
  });
});

describe('desiredAssignment', () => {
  it("carries the requester's portal login key to the host, and no key when the Request has none", () => {
    const key = 'A'.repeat(42) + 'E';
    const withKey: Request = {
      ...request('alice', 'web', 1),
      spec: { ...request('alice', 'web', 1).spec, loginKey: key },
    };
    const placed = { requester: 'alice', request: 'web', host: 'bob', units: 1 };
    expect(desiredAssignment(placed, withKey).spec.loginKey).toBe(key);
    expect(desiredAssignment(placed, request('alice', 'web', 1)).spec).not.toHaveProperty('loginKey');
  });
});
