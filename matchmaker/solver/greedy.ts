// The paper's Greedy baseline: walk the requests in peer order and give each unit of a
// request to the first host (in peer order) that still has an offered unit and whose
// bound U(i,j) is not used up. Hosts with nothing left are skipped with a union-find
// "next alive host" structure, so the walk costs O((n + ΣR/k + |bounds|) α(n)).
import { Cells, finalize, type Problem, type Solution } from './problem.js';

export interface GreedyState {
  cells: Cells;
  served: Float64Array;
  used: Float64Array;
}

export function greedyFill(p: Problem, order?: Int32Array): GreedyState {
  const { n, R, O, k } = p;
  const used = new Float64Array(n);
  const served = new Float64Array(n);
  const cells = new Cells(n + 16);
  // next[j] = smallest host >= j that still has units (path-halving union-find)
  const next = new Int32Array(n + 1);
  for (let j = 0; j <= n; j++) next[j] = j < n && O[j] === 0 ? j + 1 : j;
  const find = (x: number): number => {
    while (next[x] !== x) {
      const y = next[x]!;
      next[x] = next[y]!;
      x = y;
    }
    return x;
  };
  for (let q = 0; q < n; q++) {
    const i = order ? order[q]! : q;
    let need = R[i]!;
    if (need === 0) continue;
    const a = p.bStart[i]!;
    const b = p.bStart[i + 1]!;
    if (k === 0) {
      for (let e = a; e < b && need > 0; e++) {
        const j = p.bj[e]!;
        const x = Math.min(need, O[j]! - used[j]!, p.bc[e]!);
        if (x <= 0) continue;
        cells.push(i, j, x);
        need -= x;
        used[j]! += x;
      }
    } else {
      let e = a;
      let j = find(0);
      while (need > 0 && j < n) {
        let c = k;
        while (e < b && p.bj[e]! < j) e++;
        if (e < b && p.bj[e] === j) c = p.bc[e]!;
        if (j === i) c = 0;
        const x = Math.min(need, O[j]! - used[j]!, c);
        if (x > 0) {
          cells.push(i, j, x);
          need -= x;
          used[j]! += x;
          if (used[j] === O[j]) next[j] = j + 1;
        }
        j = find(j + 1);
      }
    }
    served[i] = R[i]! - need;
  }
  return { cells, served, used };
}

export function solveGreedy(p: Problem): Solution {
  return finalize(p.n, greedyFill(p).cells);
}
