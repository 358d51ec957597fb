import fc from 'fast-check';
import {
  buildProblem,
  formatAnswer,
  parseInstance,
  parsePrevious,
  solve,
  solveProblem,
  solveGreedy,
  solveImplicit,
  solveNetwork,
  solveUnbounded,
  toAnswer,
  toProblem,
  unboundedTotal,
  type Instance,
  type Problem,
  type Solution,
} from './index.js';
import { capOf } from './problem.js';

// ---------------------------------------------------------------------------------------
// Independent oracles on the explicit graph (adjacency matrix), written for the tests only.

function pairCap(inst: Instance, i: number, j: number): number {
  if (i === j) return 0;
  for (const b of Array.from(inst.bounds)) if (b[0] === i && b[1] === j) return b[2]!;
  return inst.defaultBound === null ? Infinity : inst.defaultBound;
}

/** Edmonds–Karp on s, r_0..r_{n-1}, o_0..o_{n-1}, t. */
function oracleMaxFlow(inst: Instance): number {
  const n = inst.peers;
  const N = 2 * n + 2;
  const s = 2 * n;
  const t = 2 * n + 1;
  const big = 1e9;
  const c: number[][] = Array.from({ length: N }, () => new Array<number>(N).fill(0));
  for (let i = 0; i < n; i++) {
    c[s]![i] = inst.requests[i]!;
    c[n + i]![t] = inst.offers[i]!;
    for (let j = 0; j < n; j++) c[i]![n + j] = Math.min(pairCap(inst, i, j), big);
  }
  let flow = 0;
  for (;;) {
    const prev = new Array<number>(N).fill(-1);
    prev[s] = s;
    const q = [s];
    while (q.length > 0 && prev[t] === -1) {
      const u = q.shift()!;
      for (let v = 0; v < N; v++) {
        if (prev[v] === -1 && c[u]![v]! > 0) {
          prev[v] = u;
          q.push(v);
        }
      }
    }
    if (prev[t] === -1) return flow;
    let b = Infinity;
    for (let v = t; v !== s; v = prev[v]!) b = Math.min(b, c[prev[v]!]![v]!);
    for (let v = t; v !== s; v = prev[v]!) {
      c[prev[v]!]![v]! -= b;
      c[v]![prev[v]!]! += b;
    }
    flow += b;
  }
}

/** Bellman–Ford successive shortest paths; cost(i,j) per unit, sourceCost(i) per unit. */
function oracleMinCost(
  inst: Instance,
  keep: Map<string, number>,
  sourceCost: (i: number) => number,
  moveCost = 1,
): { flow: number; cost: number } {
  const n = inst.peers;
  type Arc = { to: number; cap: number; cost: number; rev: number };
  const N = 2 * n + 2;
  const s = 2 * n;
  const t = 2 * n + 1;
  const g: Arc[][] = Array.from({ length: N }, () => []);
  const add = (u: number, v: number, cap: number, cost: number): void => {
    g[u]!.push({ to: v, cap, cost, rev: g[v]!.length });
    g[v]!.push({ to: u, cap: 0, cost: -cost, rev: g[u]!.length - 1 });
  };
  for (let i = 0; i < n; i++) {
    add(s, i, inst.requests[i]!, sourceCost(i));
    add(n + i, t, inst.offers[i]!, 0);
    for (let j = 0; j < n; j++) {
      const u = Math.min(pairCap(inst, i, j), 1e9);
      if (u === 0) continue;
      const kept = Math.min(keep.get(`${i},${j}`) ?? 0, u);
      if (kept > 0) add(i, n + j, kept, 0);
      if (u - kept > 0) add(i, n + j, u - kept, moveCost);
    }
  }
  let flow = 0;
  let cost = 0;
  for (;;) {
    const dist = new Array<number>(N).fill(Infinity);
    const pv = new Array<number>(N).fill(-1);
    const pa = new Array<number>(N).fill(-1);
    dist[s] = 0;
    for (let round = 0; round < N; round++) {
      let changed = false;
      for (let u = 0; u < N; u++) {
        if (dist[u] === Infinity) continue;
        g[u]!.forEach((a, idx) => {
          if (a.cap > 0 && dist[u]! + a.cost < dist[a.to]!) {
            dist[a.to] = dist[u]! + a.cost;
            pv[a.to] = u;
            pa[a.to] = idx;
            changed = true;
          }
        });
      }
      if (!changed) break;
    }
    if (dist[t] === Infinity) return { flow, cost };
    let b = Infinity;
    for (let v = t; v !== s; v = pv[v]!) b = Math.min(b, g[pv[v]!]![pa[v]!]!.cap);
    for (let v = t; v !== s; v = pv[v]!) {
      const a = g[pv[v]!]![pa[v]!]!;
      a.cap -= b;
      g[v]![a.rev]!.cap += b;
    }
    flow += b;
    cost += b * dist[t]!;
  }
}

function checkFeasible(inst: Instance, sol: Solution): void {
  const n = inst.peers;
  const rows = new Array<number>(n).fill(0);
  const cols = new Array<number>(n).fill(0);
  const seen = new Set<string>();
  let total = 0;
  for (let e = 0; e < sol.count; e++) {
    const i = sol.from[e]!;
    const j = sol.to[e]!;
    const u = sol.units[e]!;
    expect(i).not.toBe(j);
    expect(Number.isInteger(u) && u > 0).toBe(true);
    const key = `${i},${j}`;
    expect(seen.has(key)).toBe(false);
    seen.add(key);
    expect(u).toBeLessThanOrEqual(pairCap(inst, i, j));
    rows[i]! += u;
    cols[j]! += u;
    total += u;
    if (e > 0) {
      const ordered = sol.from[e - 1]! < i || (sol.from[e - 1] === i && sol.to[e - 1]! < j);
      expect(ordered).toBe(true);
    }
  }
  for (let i = 0; i < n; i++) {
    expect(rows[i]).toBeLessThanOrEqual(inst.requests[i]!);
    expect(cols[i]).toBeLessThanOrEqual(inst.offers[i]!);
  }
  expect(sol.total).toBe(total);
}

// ---------------------------------------------------------------------------------------
// Instance generators: every bound kind, plus skewed and adversarial shapes.

const boundKind = fc.constantFrom<null | number>(null, 0, 1, 2, 5);

function instanceArb(opts: { maxN?: number; maxV?: number; bounds?: boolean } = {}): fc.Arbitrary<Instance> {
  const maxN = opts.maxN ?? 7;
  const maxV = opts.maxV ?? 8;
  return fc
    .record({
      n: fc.integer({ min: 0, max: maxN }),
      k: boundKind,
      shape: fc.constantFrom('uniform', 'huge-request', 'huge-offer', 'zero-rows', 'small'),
      seedVals: fc.array(fc.integer({ min: 0, max: maxV }), { minLength: 2 * maxN, maxLength: 2 * maxN }),
      pairs: fc.array(
        fc.tuple(
          fc.integer({ min: 0, max: maxN - 1 }),
          fc.integer({ min: 0, max: maxN - 1 }),
          fc.integer({ min: 0, max: 6 }),
        ),
        { maxLength: opts.bounds === false ? 0 : 20 },
      ),
    })
    .map(({ n, k, shape, seedVals, pairs }) => {
      const requests = seedVals.slice(0, n);
      const offers = seedVals.slice(maxN, maxN + n);
      if (n > 0 && shape === 'huge-request') requests[0] = 40 * maxV;
      if (n > 0 && shape === 'huge-offer') offers[n - 1] = 40 * maxV;
      if (shape === 'zero-rows') for (let i = 0; i < n; i += 2) requests[i] = 0;
      if (shape === 'zero-rows') for (let i = 1; i < n; i += 3) offers[i] = 0;
      if (shape === 'small') for (let i = 0; i < n; i++) requests[i] = requests[i]! % 2;
      const seen = new Set<string>();
      const bounds: [number, number, number][] = [];
      for (const [i, j, c] of pairs) {
        if (i >= n || j >= n || i === j || seen.has(`${i},${j}`)) continue;
        seen.add(`${i},${j}`);
        bounds.push([i, j, c]);
      }
      return { peers: n, offers, requests, defaultBound: k, bounds };
    });
}

const RUNS = Number(process.env.SOLVER_PROPERTY_RUNS ?? 1000);

describe('exact solver against an independent Edmonds–Karp', () => {
  test('every bound kind: feasible and optimal', () => {
    fc.assert(
      fc.property(instanceArb(), (inst) => {
        const sol = solve(inst);
        checkFeasible(inst, sol);
        expect(sol.total).toBe(oracleMaxFlow(inst));
      }),
      { numRuns: RUNS, seed: 1 },
    );
  });

  test('requests and offers up to 31, caps 1 and 5, no listed bounds', () => {
    fc.assert(
      fc.property(
        instanceArb({ maxV: 31, bounds: false }).map((i) => ({
          ...i,
          defaultBound: i.defaultBound === 2 ? 5 : i.defaultBound,
        })),
        (inst) => {
          const sol = solve(inst);
          checkFeasible(inst, sol);
          expect(sol.total).toBe(oracleMaxFlow(inst));
        },
      ),
      { numRuns: RUNS, seed: 2 },
    );
  });

  test('every fast path gives the same total as the general engines', () => {
    fc.assert(
      fc.property(instanceArb({ maxN: 9, maxV: 12 }), (inst) => {
        const p = toProblem(inst);
        const auto = solveProblem(p);
        const network = solveNetwork(p, true); // finite default expanded pair by pair
        const implicit = solveImplicit(p); // from an empty flow
        checkFeasible(inst, network);
        checkFeasible(inst, implicit);
        expect(network.total).toBe(auto.total);
        expect(implicit.total).toBe(auto.total);
        if (inst.defaultBound === null && inst.bounds.length === 0) {
          expect(solveUnbounded(p).total).toBe(network.total);
          expect(unboundedTotal(inst.requests, inst.offers)).toBe(network.total);
        }
      }),
      { numRuns: RUNS, seed: 3 },
    );
  });

  test('a default written out as explicit bounds gives the same total', () => {
    fc.assert(
      fc.property(instanceArb({ maxN: 8, maxV: 31, bounds: false }), (inst) => {
        if (inst.defaultBound === null) return;
        const bounds: [number, number, number][] = [];
        for (let i = 0; i < inst.peers; i++)
          for (let j = 0; j < inst.peers; j++) if (i !== j) bounds.push([i, j, inst.defaultBound]);
        const explicit = { ...inst, defaultBound: 0, bounds };
        expect(solve(explicit).total).toBe(solve(inst).total);
      }),
      { numRuns: 500, seed: 4 },
    );
  });

  test('larger random instances: fast paths agree with the network engine', () => {
    for (let seed = 0; seed < 16; seed++) {
      let x = seed * 2654435761 + 1;
      const rnd = (m: number): number => {
        x = (x * 1103515245 + 12345) % 2147483648;
        return x % m;
      };
      const n = 50 + rnd(150);
      const maxV = [4, 31][seed % 2]!;
      const requests = Array.from({ length: n }, () => rnd(maxV + 1));
      const offers = Array.from({ length: n }, () => rnd(maxV + 1));
      for (const k of [null, 1, 3, 5]) {
        const inst = { peers: n, offers, requests, defaultBound: k, bounds: [] };
        const p = toProblem(inst);
        const a = solveProblem(p);
        const b = solveNetwork(p, true);
        checkFeasible(inst, a);
        expect(a.total).toBe(b.total);
      }
    }
  });
});

describe('greedy baseline', () => {
  test('feasible, never better than max flow', () => {
    fc.assert(
      fc.property(instanceArb(), (inst) => {
        const g = solve(inst, { algorithm: 'greedy' });
        checkFeasible(inst, g);
        expect(g.total).toBeLessThanOrEqual(solve(inst).total);
      }),
      { numRuns: RUNS, seed: 5 },
    );
  });

  test('walks requests in order, first available offer', () => {
    const inst = { peers: 3, offers: [1, 1, 0], requests: [0, 1, 1], defaultBound: null, bounds: [] };
    // peer 1 takes host 0 first; peer 2 then takes host 1: both met
    expect(toAnswer(solve(inst, { algorithm: 'greedy' }))).toEqual({
      total: 2,
      assignments: [
        [1, 0, 1],
        [2, 1, 1],
      ],
    });
    // the paper's failure mode: peer 0 takes host 1, the only host peer 1 could use
    const bad = { peers: 3, offers: [0, 1, 1], requests: [1, 0, 1], defaultBound: null, bounds: [] };
    // peer 0 -> host 1 (first), peer 2 -> host 1? exhausted; host 2 is itself: unmet
    expect(solve(bad, { algorithm: 'greedy' }).total).toBe(1);
    expect(solve(bad).total).toBe(2);
  });
});

describe('known answers', () => {
  test('unbounded closed form', () => {
    // one peer dominates: the others can only trade with it
    const inst = { peers: 3, offers: [10, 1, 1], requests: [10, 1, 1], defaultBound: null, bounds: [] };
    expect(solve(inst).total).toBe(4);
    expect(unboundedTotal([10, 1, 1], [10, 1, 1])).toBe(4);
  });

  test('replicated: one unit per host', () => {
    const inst = { peers: 4, offers: [3, 3, 3, 3], requests: [3, 3, 3, 3], defaultBound: 1, bounds: [] };
    const sol = solve(inst);
    expect(sol.total).toBe(12);
    for (let e = 0; e < sol.count; e++) expect(sol.units[e]).toBe(1);
  });

  test('caps above 1: water-filling by largest offer is not optimal, the solver is', () => {
    // k = 2: peer 0 wants 4 and must use two hosts at 2 each
    const inst = { peers: 3, offers: [0, 2, 4], requests: [4, 2, 0], defaultBound: 2, bounds: [] };
    const sol = solve(inst);
    expect(sol.total).toBe(oracleMaxFlow(inst));
    expect(sol.total).toBe(6);
  });

  test('explicit bounds only', () => {
    const inst = {
      peers: 3,
      offers: [5, 5, 5],
      requests: [5, 5, 5],
      defaultBound: 0,
      bounds: [
        [0, 1, 2],
        [1, 2, 3],
      ] as [number, number, number][],
    };
    expect(toAnswer(solve(inst))).toEqual({
      total: 5,
      assignments: [
        [0, 1, 2],
        [1, 2, 3],
      ],
    });
  });

  test('no peers, and nothing offered', () => {
    expect(solve({ peers: 0, offers: [], requests: [], defaultBound: null, bounds: [] }).total).toBe(0);
    expect(solve({ peers: 2, offers: [0, 0], requests: [3, 3], defaultBound: null, bounds: [] }).total).toBe(
      0,
    );
  });

  test('a single peer never hosts itself', () => {
    expect(solve({ peers: 1, offers: [5], requests: [5], defaultBound: null, bounds: [] }).total).toBe(0);
  });

  test('formatAnswer is the JSON of toAnswer', () => {
    const inst = { peers: 4, offers: [1, 2, 3, 4], requests: [4, 3, 2, 1], defaultBound: null, bounds: [] };
    const sol = solve(inst);
    expect(JSON.parse(formatAnswer(sol))).toEqual(toAnswer(sol));
  });
});

// ---------------------------------------------------------------------------------------

function movedUnits(prev: Solution, next: Solution): number {
  const now = new Map<string, number>();
  for (let e = 0; e < next.count; e++) now.set(`${next.from[e]},${next.to[e]}`, next.units[e]!);
  let moved = 0;
  for (let e = 0; e < prev.count; e++) {
    moved += Math.max(0, prev.units[e]! - (now.get(`${prev.from[e]},${prev.to[e]}`) ?? 0));
  }
  return moved;
}

function keepMap(sol: Solution): Map<string, number> {
  const m = new Map<string, number>();
  for (let e = 0; e < sol.count; e++) m.set(`${sol.from[e]},${sol.to[e]}`, sol.units[e]!);
  return m;
}

describe('stability (previous answer)', () => {
  test('an unchanged instance moves nothing', () => {
    fc.assert(
      fc.property(instanceArb(), (inst) => {
        const first = solve(inst);
        const again = solve(inst, { previous: toAnswer(first) });
        checkFeasible(inst, again);
        expect(again.total).toBe(first.total);
        expect(movedUnits(first, again)).toBe(0);
      }),
      { numRuns: 500, seed: 6 },
    );
  });

  test('after a change: optimal total, and the fewest moved units (oracle min-cost flow)', () => {
    fc.assert(
      fc.property(instanceArb({ maxN: 6 }), fc.nat(), fc.integer({ min: 0, max: 8 }), (inst, who, v) => {
        if (inst.peers === 0) return;
        const first = solve(inst, { algorithm: 'greedy' });
        const changed = { ...inst, offers: [...Array.from(inst.offers)] };
        changed.offers[who % inst.peers] = v;
        // an answer whose units may no longer fit is still a valid "previous"
        const next = solve(changed, { previous: toAnswer(first) });
        checkFeasible(changed, next);
        expect(next.total).toBe(oracleMaxFlow(changed));
        const keep = keepMap(first);
        const oracle = oracleMinCost(changed, keep, () => 0);
        // oracle cost = units not on a kept pair = total - kept
        let kept = 0;
        const now = keepMap(next);
        for (const [key, u] of keep) {
          const [i, j] = key.split(',').map(Number) as [number, number];
          kept += Math.min(u, now.get(key) ?? 0, pairCap(changed, i, j));
        }
        expect(next.total - kept).toBe(oracle.cost);
      }),
      { numRuns: 400, seed: 7 },
    );
  });

  test('one peer leaving moves only its own units', () => {
    const n = 6;
    const inst = {
      peers: n,
      offers: [3, 3, 3, 3, 3, 3],
      requests: [2, 2, 2, 2, 2, 2],
      defaultBound: 1,
      bounds: [],
    };
    const first = solve(inst);
    const gone = { ...inst, offers: [3, 3, 3, 3, 3, 0], requests: [2, 2, 2, 2, 2, 0] };
    const next = solve(gone, { previous: toAnswer(first) });
    expect(next.total).toBe(10);
    // units hosted by, or requested by, peer 5 had to go; everything else stays
    let lost = 0;
    for (let e = 0; e < first.count; e++)
      if (first.from[e] === 5 || first.to[e] === 5) lost += first.units[e]!;
    const hostedBy5 = Array.from({ length: first.count }, (_, e) => e).filter((e) => first.to[e] === 5);
    const must = hostedBy5.reduce((s, e) => s + first.units[e]!, 0);
    const moved = movedUnits(first, next);
    expect(moved).toBeLessThanOrEqual(lost);
    expect(moved).toBeGreaterThanOrEqual(must);
    expect(moved).toBe(oracleMinCostMoved(gone, first));
  });
});

function oracleMinCostMoved(inst: Instance, prev: Solution): number {
  const keep = keepMap(prev);
  const r = oracleMinCost(inst, keep, () => 0);
  let prevTotal = 0;
  for (const u of keep.values()) prevTotal += u;
  // moved = previous units not kept = prevTotal - (total - cost)
  return prevTotal - (r.flow - r.cost);
}

describe('fairness (weights)', () => {
  test('optimal total, and the largest weighted service (oracle)', () => {
    fc.assert(
      fc.property(
        instanceArb({ maxN: 6 }),
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 7, maxLength: 7 }),
        (inst, w) => {
          const weights = w.slice(0, inst.peers);
          const sol = solve({ ...inst, weights });
          checkFeasible(inst, sol);
          expect(sol.total).toBe(oracleMaxFlow(inst));
          const wmax = Math.max(0, ...weights);
          const oracle = oracleMinCost(inst, new Map(), (i) => wmax - weights[i]!, 0);
          let got = 0;
          for (let e = 0; e < sol.count; e++) got += (wmax - weights[sol.from[e]!]!) * sol.units[e]!;
          expect(got).toBe(oracle.cost);
        },
      ),
      { numRuns: 400, seed: 8 },
    );
  });

  test('the heavier peer is served when supply is short', () => {
    const inst = {
      peers: 3,
      offers: [0, 0, 2],
      requests: [2, 2, 0],
      defaultBound: null,
      bounds: [],
      weights: [1, 5, 0],
    };
    expect(toAnswer(solve(inst)).assignments).toEqual([[1, 2, 2]]);
    expect(toAnswer(solve({ ...inst, weights: [5, 1, 0] })).assignments).toEqual([[0, 2, 2]]);
  });
});

describe('bad input names the field', () => {
  const good = '{"peers":2,"offers":[1,2],"requests":[2,1],"defaultBound":null,"bounds":[[0,1,1]]}';
  test.each([
    ['not json', 'instance: not JSON'],
    ['[1,2]', 'instance: expected a JSON object'],
    ['{"offers":[1],"requests":[1],"defaultBound":null,"bounds":[]}', 'peers: missing'],
    [
      '{"peers":-1,"offers":[],"requests":[],"defaultBound":null,"bounds":[]}',
      'peers: expected a non-negative integer, got -1',
    ],
    [
      '{"peers":2,"offers":[1],"requests":[1,1],"defaultBound":null,"bounds":[]}',
      'offers: expected 2 entries',
    ],
    [
      '{"peers":2,"offers":[1,-3],"requests":[1,1],"defaultBound":null,"bounds":[]}',
      'offers[1]: expected a non-negative integer, got -3',
    ],
    [
      '{"peers":2,"offers":[1,1],"requests":[1,1.5],"defaultBound":null,"bounds":[]}',
      'requests[1]: expected a non-negative integer, got 1.5',
    ],
    [
      '{"peers":2,"offers":[1,1],"requests":[1,1],"defaultBound":"x","bounds":[]}',
      'defaultBound: expected a non-negative integer',
    ],
    [
      '{"peers":2,"offers":[1,1],"requests":[1,1],"defaultBound":null,"bounds":[[1,1,1]]}',
      'bounds[0]: i == j (1)',
    ],
    [
      '{"peers":2,"offers":[1,1],"requests":[1,1],"defaultBound":null,"bounds":[[0,2,1]]}',
      'bounds[0][1]: peer 2 out of range 0..1',
    ],
    [
      '{"peers":2,"offers":[1,1],"requests":[1,1],"defaultBound":null,"bounds":[[0,1]]}',
      'bounds[0]: expected [i, j, cap]',
    ],
    [
      '{"peers":2,"offers":[1,1],"requests":[1,1],"defaultBound":null,"bounds":[[0,1,1],[0,1,2]]}',
      'bounds[1]: duplicate pair (0, 1)',
    ],
    [
      '{"peers":2,"offers":[1,1],"requests":[1,1],"defaultBound":null,"bounds":[],"weights":[1]}',
      'weights: expected 2 entries',
    ],
  ])('%s', (text, message) => {
    expect(() => parseInstance(text)).toThrow(message);
  });

  test('the fast scanner and JSON.parse agree on a good instance', () => {
    const a = parseInstance(good);
    const b = toProblem(JSON.parse(good));
    expect(Array.from(a.R)).toEqual(Array.from(b.R));
    expect(Array.from(a.bc)).toEqual(Array.from(b.bc));
    expect(a.k).toBe(b.k);
  });

  test('previous answers are checked too', () => {
    expect(() => parsePrevious('{"total":1,"assignments":[[0,0,1]]}', 2)).toThrow(
      'previous.assignments[0]: i == j',
    );
    expect(() => parsePrevious('{"total":1,"assignments":[[0,5,1]]}', 2)).toThrow('out of range');
    expect(() => parsePrevious('nope', 2)).toThrow('previous: not JSON');
  });

  test('unknown algorithm', () => {
    const p = parseInstance(good);
    expect(() => solveProblem(p, { algorithm: 'magic' as 'greedy' })).toThrow('algorithm: unknown "magic"');
  });
});

test('capOf and buildProblem agree with the listed bounds', () => {
  const p: Problem = buildProblem(
    3,
    new Float64Array([1, 1, 1]),
    new Float64Array([1, 1, 1]),
    2,
    new Int32Array([2, 0]),
    new Int32Array([0, 1]),
    new Float64Array([7, 0]),
    null,
  );
  expect(capOf(p, 2, 0)).toBe(7);
  expect(capOf(p, 0, 1)).toBe(0);
  expect(capOf(p, 1, 2)).toBe(2);
  expect(capOf(p, 1, 1)).toBe(0);
  expect(solveGreedy(p).total).toBeLessThanOrEqual(3);
});
