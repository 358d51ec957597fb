// The compact flow network of an instance:
//   s -> r_i (R_i) -> o_j (U(i,j), i != j) -> t (O_j)
// Listed bounds are explicit arcs. An unbounded default ("every peer but i and but the
// listed ones") is a segment tree over the hosts with infinite arcs from each node to
// its two children: r_i links to the O(log n) tree nodes covering each gap between its
// excluded hosts, so the graph has O((n + |bounds|) log n) arcs, never n².
// A finite default k > 0 is a per-pair capacity, which no shared gadget can express; it
// is expanded pair by pair here only for the min-cost modes (previous/weights) and in
// tests; plain max flow with finite k uses the implicit engine in implicit.ts.
import { capOf, Cells, finalize, type Problem, type Solution } from './problem.js';
import { FlowGraph } from './graph.js';
import type { Previous } from './parse.js';

export interface NetworkOptions {
  /** cost per unit on every requester->host arc that is not a kept previous unit */
  moveCost?: number;
  /** cost per unit on s -> r_i */
  sourceCost?: Float64Array;
  /** previous answer: units on these pairs cost 0 (up to their capacity) */
  previous?: Previous;
  /** expand a finite default into pair arcs (O(n²)); otherwise it must be 0 or infinite */
  expandFinite?: boolean;
}

interface Built {
  g: FlowGraph;
  /** first arc id after the s/t arcs */
  firstPairArc: number;
  /** arcs r_i -> o_j (pairs) are marked with their requester, tree arcs with -1 */
  arcKind: Int8Array;
  treeNodes: number;
  sArc: Int32Array;
  tArc: Int32Array;
}

const S = 0;
const T = 1;
/** "Infinite" capacity: exact in doubles, and f = BIG - residual stays exact. */
const BIG = 2 ** 52;

export function buildNetwork(p: Problem, opt: NetworkOptions = {}): Built {
  const { n, R, O, k } = p;
  const withCost = opt.moveCost !== undefined || opt.sourceCost !== undefined;
  const move = opt.moveCost ?? 0;
  const base = 2 + 2 * n;
  const finite = Number.isFinite(k) && k > 0;
  if (finite && !opt.expandFinite) throw new Error('buildNetwork: finite default needs expandFinite');
  // segment tree over hosts (only for an infinite default): pre-order, parents first
  const useTree = k === Infinity && n > 1;
  const cap2 = useTree ? 2 * n : 0;
  const treeLo = new Int32Array(cap2);
  const treeHi = new Int32Array(cap2);
  const treeLeft = new Int32Array(cap2);
  const treeRight = new Int32Array(cap2);
  let treeNodes = 0;
  const nodeOf = (lo: number, hi: number): number => {
    // a range of one host is the host node itself
    if (hi - lo === 1) return 2 + n + lo;
    const id = treeNodes++;
    treeLo[id] = lo;
    treeHi[id] = hi;
    return id;
  };
  if (useTree) {
    const stack: number[] = [nodeOf(0, n)];
    while (stack.length > 0) {
      const id = stack.pop()!;
      const lo = treeLo[id]!;
      const hi = treeHi[id]!;
      const mid = (lo + hi) >> 1;
      const l = nodeOf(lo, mid);
      const r = nodeOf(mid, hi);
      // a child is a tree id when its range has two or more hosts, else a host node
      treeLeft[id] = l;
      treeRight[id] = r;
      if (mid - lo > 1) stack.push(l);
      if (hi - mid > 1) stack.push(r);
    }
  }
  // tree node id -> graph node base + id
  const N = base + treeNodes;
  const g = new FlowGraph(N, 2 * n + p.bi.length + (useTree ? 4 * n : 0) + 16, withCost);
  const sArc = new Int32Array(n).fill(-1);
  const tArc = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const sc = opt.sourceCost ? opt.sourceCost[i]! : 0;
    if (R[i]! > 0) sArc[i] = g.addArc(S, 2 + i, R[i]!, sc);
  }
  for (let j = 0; j < n; j++) if (O[j]! > 0) tArc[j] = g.addArc(2 + n + j, T, O[j]!, 0);
  const firstPairArc = g.arcs;
  const kinds: number[] = [];
  if (useTree) {
    for (let id = 0; id < treeNodes; id++) {
      const lo = treeLo[id]!;
      const hi = treeHi[id]!;
      const mid = (lo + hi) >> 1;
      const l = treeLeft[id]!;
      const r = treeRight[id]!;
      g.addArc(base + id, mid - lo === 1 ? l : base + l, BIG, 0);
      g.addArc(base + id, hi - mid === 1 ? r : base + r, BIG, 0);
      kinds.push(-2, -2);
    }
  }
  // kept previous units per pair (capped by U)
  const kept = new Map<number, number>();
  if (opt.previous) {
    const pv = opt.previous;
    for (let e = 0; e < pv.from.length; e++) {
      const key = pv.from[e]! * n + pv.to[e]!;
      kept.set(key, (kept.get(key) ?? 0) + pv.units[e]!);
    }
    for (const [key, u] of kept) {
      const i = Math.floor(key / n);
      const j = key - i * n;
      const c = Math.min(u, capOf(p, i, j), R[i]!, O[j]!);
      if (c > 0) {
        g.addArc(2 + i, 2 + n + j, c, 0);
        kinds.push(1);
      }
      kept.set(key, c);
    }
  }
  const range: number[] = [];
  const cover = (lo: number, hi: number, out: number[]): void => {
    // decompose [lo, hi) into tree nodes, walking down from the root
    const st: number[] = [0];
    while (st.length > 0) {
      const id = st.pop()!;
      const a = treeLo[id]!;
      const b = treeHi[id]!;
      if (hi <= a || b <= lo) continue;
      if (lo <= a && b <= hi) {
        out.push(base + id);
        continue;
      }
      const mid = (a + b) >> 1;
      const l = treeLeft[id]!;
      const r = treeRight[id]!;
      if (mid - a === 1) {
        if (lo <= a && a < hi) out.push(l);
      } else st.push(l);
      if (b - mid === 1) {
        if (lo <= mid && mid < hi) out.push(r);
      } else st.push(r);
    }
  };
  for (let i = 0; i < n; i++) {
    if (R[i]! === 0) continue;
    const a = p.bStart[i]!;
    const b = p.bStart[i + 1]!;
    for (let e = a; e < b; e++) {
      const j = p.bj[e]!;
      let c = p.bc[e]!;
      const kk = kept.get(i * n + j);
      if (kk !== undefined) c -= kk;
      if (c > 0 && O[j]! > 0) {
        g.addArc(2 + i, 2 + n + j, c, move);
        kinds.push(1);
      }
    }
    if (useTree) {
      // gaps between excluded hosts {i} ∪ listed
      range.length = 0;
      let prev = 0;
      let e = a;
      const emit = (x: number): void => {
        if (x > prev) cover(prev, x, range);
        prev = x + 1;
      };
      for (; e < b && p.bj[e]! < i; e++) emit(p.bj[e]!);
      emit(i);
      for (; e < b; e++) emit(p.bj[e]!);
      if (prev < n) cover(prev, n, range);
      for (const v of range) {
        g.addArc(2 + i, v, BIG, move);
        kinds.push(v >= base ? -1 : 1);
      }
    } else if (Number.isFinite(k) && k > 0) {
      let e = a;
      for (let j = 0; j < n; j++) {
        while (e < b && p.bj[e]! < j) e++;
        if (j === i || (e < b && p.bj[e] === j) || O[j]! === 0) continue;
        const kk = kept.get(i * n + j) ?? 0;
        if (k - kk > 0) {
          g.addArc(2 + i, 2 + n + j, k - kk, move);
          kinds.push(1);
        }
      }
    }
  }
  const arcKind = new Int8Array(kinds.length);
  for (let x = 0; x < kinds.length; x++) arcKind[x] = kinds[x]!;
  return { g, firstPairArc, arcKind, treeNodes, sArc, tArc };
}

/** Turns arc flows into (requester, host, units) cells, splitting tree flow by origin. */
export function decompose(p: Problem, b: Built): Solution {
  const { n } = p;
  const { g, firstPairArc, arcKind, treeNodes } = b;
  const base = 2 + 2 * n;
  const cells = new Cells(2 * n + 16);
  // packets waiting at each tree node: [origin, units, origin, units, ...]
  const packets: number[][] = new Array<number[]>(treeNodes);
  for (let id = 0; id < treeNodes; id++) packets[id] = [];
  // the tree's arcs come first: node id's children are arcs firstPairArc + 2 id (+1)
  for (let x = 0; x < arcKind.length; x++) {
    const e = firstPairArc + x;
    const kind = arcKind[x]!;
    if (kind === -2) continue;
    const f = g.flow(e);
    if (f <= 0) continue;
    const i = g.tail(e) - 2;
    const v = g.headOf(e);
    if (kind === 1) cells.push(i, v - 2 - n, f);
    else packets[v - base]!.push(i, f);
  }
  for (let id = 0; id < treeNodes; id++) {
    const list = packets[id]!;
    if (list.length === 0) continue;
    let q = 0;
    let left = list[1] ?? 0;
    for (let c = 0; c < 2; c++) {
      const e = firstPairArc + 2 * id + c;
      let f = g.flow(e);
      const v = g.headOf(e);
      while (f > 0) {
        const d = Math.min(f, left);
        const origin = list[q]!;
        if (v >= base) packets[v - base]!.push(origin, d);
        else cells.push(origin, v - 2 - n, d);
        f -= d;
        left -= d;
        if (left === 0) {
          q += 2;
          left = list[q + 1] ?? 0;
        }
      }
    }
    packets[id] = [];
  }
  return finalize(n, cells);
}

/**
 * Greedy feasible flow along the requester->host pair arcs (first fit), so that Dinic
 * only has to repair what the greedy got wrong. Any feasible start keeps Dinic exact.
 */
function warmStart(p: Problem, b: Built): void {
  const { g, firstPairArc, arcKind, sArc, tArc } = b;
  const n = p.n;
  for (let x = 0; x < arcKind.length; x++) {
    if (arcKind[x] !== 1) continue;
    const e = firstPairArc + x;
    const i = g.tail(e) - 2;
    const j = g.headOf(e) - 2 - n;
    const se = sArc[i]!;
    const te = tArc[j]!;
    if (se < 0 || te < 0) continue;
    const f = Math.min(g.residual(se), g.residual(e), g.residual(te));
    if (f <= 0) continue;
    g.push(se, f);
    g.push(e, f);
    g.push(te, f);
  }
}

/** Exact max flow on the compact network (default null or 0, or expanded finite k). */
export function solveNetwork(p: Problem, expandFinite = false): Solution {
  const b = buildNetwork(p, { expandFinite });
  warmStart(p, b);
  b.g.maxflow(S, T);
  return decompose(p, b);
}

/**
 * Max flow with the least cost: `moveCost` per unit not kept from `previous`, and
 * `sourceCost[i]` per unit served to requester i.
 */
export function solveNetworkMinCost(p: Problem, opt: NetworkOptions): Solution {
  const b = buildNetwork(p, { ...opt, expandFinite: true });
  b.g.minCostMaxFlow(S, T);
  return decompose(p, b);
}
