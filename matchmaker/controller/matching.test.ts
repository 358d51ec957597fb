import type { Assignment, Offer, Request } from '../../generated/personalcloud.js';
import { solve } from '../solver/index.js';
import { assignmentName } from '../../api/federation.js';
import { boundFor, buildInstance, decodeAnswer, satisfied, trusted } from './matching.js';

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
  it('spread caps every host at one and unbounded stays Infinity', () => {
    expect(
      boundFor(request('a', 'x', 3, { spread: true, peers: [{ peer: 'b', max: 1 }] }), 'c', undefined),
    ).toBe(1);
    expect(boundFor(request('a', 'x', 3), 'c', undefined)).toBe(Infinity);
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
    const s = solve(m.instance, { previous: { assignments: m.previous } });
    const placed = decodeAnswer(
      m,
      Array.from({ length: s.count }, (_, e) => [s.from[e]!, s.to[e]!, s.units[e]!]),
    );
    expect(s.total).toBe(4);
    expect(placed).toEqual(
      expect.arrayContaining([
        { requester: 'alice', request: 'web', host: 'carol', units: 1 },
        { requester: 'alice', request: 'web', host: 'bob', units: 1 },
        { requester: 'carol', request: 'batch', host: 'alice', units: 2 },
      ]),
    );
  });
});

describe('satisfied', () => {
  it.each([
    [3, 3, 'True', 'FullyAssigned'],
    [3, 1, 'False', 'PartiallyAssigned'],
    [3, 0, 'False', 'NoCapacity'],
  ])('%d wanted, %d assigned -> %s %s', (w, a, status, reason) => {
    expect(satisfied(w, a)).toMatchObject({ status, reason });
  });
});

describe('assignmentName', () => {
  it('is <requester>.<request>, hashed down to 63 characters when longer', () => {
    expect(assignmentName('alice', 'web')).toBe('alice.web');
    const long = assignmentName('alice', 'x'.repeat(80));
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toBe(assignmentName('alice', 'x'.repeat(80)));
  });
});

describe('agrees with matchmaker/manifests (pcloud match) on the optimum', () => {
  it('random federations: same total with all peers present', async () => {
    const { matchProblem } = await import('../manifests/match.js');
    const { solveProblem } = await import('../solver/index.js');
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const names = ['a', 'b', 'c', 'd', 'e'];
    for (let t = 0; t < 40; t++) {
      const offers = names
        .filter(() => rand(4) > 0)
        .map((p) => offer(p, rand(4), rand(3) === 0 ? [names[rand(5)]!].filter((x) => x !== p) : []));
      const requests = names.flatMap((p) =>
        Array.from({ length: rand(3) }, (_, k) => {
          const placement: Request['spec']['placement'] =
            rand(3) === 0
              ? { spread: true }
              : rand(2) === 0
                ? {
                    maxPerPeer: 1 + rand(2),
                    peers: [{ peer: names[(names.indexOf(p) + 1) % 5]!, max: rand(3) }],
                  }
                : {};
          return request(p, `r${k}`, 1 + rand(4), placement);
        }),
      );
      const mine = solve(
        buildInstance({ present: new Set(names), offers, requests, assignments: [] }).instance,
      ).total;
      const theirs = solveProblem(matchProblem(offers as never, requests as never).problem).total;
      expect(mine).toBe(theirs);
    }
  });
});
