// Exact max flow for a finite default bound k > 0 (Replicated is k = 1), without ever
// listing the n² default pairs. The residual graph is implicit:
//   r_i -> o_j  when f(i,j) < U(i,j)        (U = k unless listed; U(i,i) = 0)
//   o_j -> r_i  when f(i,j) > 0             (only pairs that carry flow are stored)
// A BFS from every requester with unmet demand keeps the hosts not yet reached in one
// list; scanning it from r_i either reaches a host (removed from the list) or skips a host
// that i cannot use (a saturated or listed pair, or i itself), so one BFS costs
// O(n + pairs in use + |bounds|). Every host with spare units reached by the BFS ends a
// path in the BFS forest; all of them are augmented (re-checking the bottleneck, as paths
// share prefixes) before the next BFS. It stops when no augmenting path exists, which
// proves the flow maximum (max-flow min-cut), whatever the starting flow was.
import { Cells, finalize, type Problem, type Solution } from './problem.js';

export interface ImplicitStats {
  rounds: number;
}

export function solveImplicit(p: Problem, start?: Cells, stats?: ImplicitStats): Solution {
  const { n, R, O, k } = p;
  const served = new Float64Array(n);
  const used = new Float64Array(n);
  // pair pool with row and column doubly linked lists
  let cap = Math.max(16, start ? start.length * 2 : 2 * n);
  let pi = new Int32Array(cap);
  let pj = new Int32Array(cap);
  let pf = new Float64Array(cap);
  let rNext = new Int32Array(cap);
  let rPrev = new Int32Array(cap);
  let cNext = new Int32Array(cap);
  let cPrev = new Int32Array(cap);
  let pairs = 0;
  const freeList: number[] = [];
  const deferred: number[] = [];
  const rowHead = new Int32Array(n).fill(-1);
  const colHead = new Int32Array(n).fill(-1);
  const growI = (a: Int32Array): Int32Array<ArrayBuffer> => {
    const b = new Int32Array(cap);
    b.set(a);
    return b;
  };
  const addPair = (i: number, j: number, f: number): number => {
    let id: number;
    if (freeList.length > 0) id = freeList.pop()!;
    else {
      if (pairs === cap) {
        cap *= 2;
        pi = growI(pi);
        pj = growI(pj);
        rNext = growI(rNext);
        rPrev = growI(rPrev);
        cNext = growI(cNext);
        cPrev = growI(cPrev);
        const nf = new Float64Array(cap);
        nf.set(pf);
        pf = nf;
      }
      id = pairs++;
    }
    pi[id] = i;
    pj[id] = j;
    pf[id] = f;
    rPrev[id] = -1;
    rNext[id] = rowHead[i]!;
    if (rowHead[i]! >= 0) rPrev[rowHead[i]!] = id;
    rowHead[i] = id;
    cPrev[id] = -1;
    cNext[id] = colHead[j]!;
    if (colHead[j]! >= 0) cPrev[colHead[j]!] = id;
    colHead[j] = id;
    return id;
  };
  const removePair = (id: number): void => {
    const i = pi[id]!;
    const j = pj[id]!;
    if (rPrev[id]! >= 0) rNext[rPrev[id]!] = rNext[id]!;
    else rowHead[i] = rNext[id]!;
    if (rNext[id]! >= 0) rPrev[rNext[id]!] = rPrev[id]!;
    if (cPrev[id]! >= 0) cNext[cPrev[id]!] = cNext[id]!;
    else colHead[j] = cNext[id]!;
    if (cNext[id]! >= 0) cPrev[cNext[id]!] = cPrev[id]!;
    pi[id] = -1;
    deferred.push(id);
  };
  if (start) {
    // merge duplicate cells of the start through a per-row stamp
    const seenStamp = new Int32Array(n).fill(-1);
    const seenId = new Int32Array(n);
    const byRow = finalize(n, start);
    for (let e = 0; e < byRow.count; e++) {
      const i = byRow.from[e]!;
      const j = byRow.to[e]!;
      const u = byRow.units[e]!;
      served[i]! += u;
      used[j]! += u;
      if (seenStamp[j] === i) pf[seenId[j]!]! += u;
      else {
        seenStamp[j] = i;
        seenId[j] = addPair(i, j, u);
      }
    }
  }
  // BFS state
  const rStamp = new Int32Array(n).fill(-1);
  const parentR = new Int32Array(n); // host that reached r_i, -1 for a root
  const parentPairR = new Int32Array(n);
  const parentO = new Int32Array(n); // requester that reached o_j
  const parentPairO = new Int32Array(n);
  const parentCapO = new Float64Array(n);
  const mark = new Int32Array(n).fill(-1);
  const markPair = new Int32Array(n);
  const exMark = new Int32Array(n).fill(-1);
  const exCap = new Float64Array(n);
  const unv = new Int32Array(n);
  const queue = new Int32Array(n);
  const ends: number[] = [];
  let stamp = 0;
  let markStamp = 0;
  let rounds = 0;
  for (;;) {
    rounds++;
    stamp++;
    let unvLen = 0;
    for (let j = 0; j < n; j++) if (O[j]! > 0) unv[unvLen++] = j;
    let qh = 0;
    let qt = 0;
    for (let i = 0; i < n; i++) {
      if (served[i]! < R[i]!) {
        rStamp[i] = stamp;
        parentR[i] = -1;
        queue[qt++] = i;
      }
    }
    ends.length = 0;
    while (qh < qt && unvLen > 0) {
      const i = queue[qh++]!;
      markStamp++;
      for (let id = rowHead[i]!; id >= 0; id = rNext[id]!) {
        mark[pj[id]!] = markStamp;
        markPair[pj[id]!] = id;
      }
      for (let e = p.bStart[i]!, eb = p.bStart[i + 1]!; e < eb; e++) {
        exMark[p.bj[e]!] = markStamp;
        exCap[p.bj[e]!] = p.bc[e]!;
      }
      let x = 0;
      while (x < unvLen) {
        const j = unv[x]!;
        if (j === i) {
          x++;
          continue;
        }
        const c = exMark[j] === markStamp ? exCap[j]! : k;
        const has = mark[j] === markStamp;
        const f = has ? pf[markPair[j]!]! : 0;
        if (f >= c) {
          x++;
          continue;
        }
        unv[x] = unv[--unvLen]!;
        parentO[j] = i;
        parentPairO[j] = has ? markPair[j]! : -1;
        parentCapO[j] = c;
        if (used[j]! < O[j]!) {
          ends.push(j);
          continue;
        }
        for (let id = colHead[j]!; id >= 0; id = cNext[id]!) {
          const r = pi[id]!;
          if (rStamp[r] === stamp) continue;
          rStamp[r] = stamp;
          parentR[r] = j;
          parentPairR[r] = id;
          queue[qt++] = r;
        }
      }
    }
    if (ends.length === 0) break;
    for (const j0 of ends) {
      // bottleneck
      let b = O[j0]! - used[j0]!;
      let j = j0;
      for (;;) {
        const i = parentO[j]!;
        const id = parentPairO[j]!;
        const f = id >= 0 && pi[id] === i && pj[id] === j ? pf[id]! : 0;
        b = Math.min(b, parentCapO[j]! - f);
        if (parentR[i] === -1) {
          b = Math.min(b, R[i]! - served[i]!);
          break;
        }
        const bid = parentPairR[i]!;
        b = Math.min(b, pi[bid] === i ? pf[bid]! : 0);
        j = parentR[i]!;
      }
      if (b <= 0) continue;
      used[j0]! += b;
      j = j0;
      for (;;) {
        const i = parentO[j]!;
        const id = parentPairO[j]!;
        if (id >= 0 && pi[id] === i && pj[id] === j) pf[id]! += b;
        else parentPairO[j] = addPair(i, j, b);
        if (parentR[i] === -1) {
          served[i]! += b;
          break;
        }
        const bid = parentPairR[i]!;
        pf[bid]! -= b;
        if (pf[bid] === 0) removePair(bid);
        j = parentR[i]!;
      }
    }
    while (deferred.length > 0) freeList.push(deferred.pop()!);
  }
  if (stats) stats.rounds = rounds;
  const cells = new Cells(pairs);
  for (let id = 0; id < pairs; id++) if (pi[id]! >= 0 && pf[id]! > 0) cells.push(pi[id]!, pj[id]!, pf[id]!);
  return finalize(n, cells);
}
