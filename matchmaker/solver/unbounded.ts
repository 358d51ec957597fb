// Unbounded default and no listed bounds: U(i,j) = infinity for every i != j.
//
// Optimal total T = min(ΣR, ΣO, ΣR + ΣO − max_k(R_k + O_k)): a transportation problem
// without its diagonal is feasible for margins R', O' (ΣR' = ΣO' = T) iff R'_k + O'_k <= T
// for every k (row k and column k together can only meet T units: the cut {r_k, o_k}).
//
// Construction, O(n): (1) truncate the margins to sum T while keeping R'_k + O'_k <= T,
// cutting first from peers above T; (2) north-west-corner fill in peer order; (3) swap away
// each diagonal cell (k,k) against cells (i,j) with i != k, j != k: x(k,k), x(i,j) ->
// x(k,j), x(i,k). Enough such mass exists because row k and column k hold at most
// R'_k + O'_k − x(k,k) <= T − x(k,k).
import { Cells, finalize, type Problem, type Solution } from './problem.js';

export function unboundedTotal(R: ArrayLike<number>, O: ArrayLike<number>): number {
  let sr = 0;
  let so = 0;
  let mx = 0;
  for (let i = 0; i < R.length; i++) {
    sr += R[i]!;
    so += O[i]!;
    mx = Math.max(mx, R[i]! + O[i]!);
  }
  return Math.min(sr, so, sr + so - mx);
}

export function solveUnbounded(p: Problem): Solution {
  const { n } = p;
  const T = unboundedTotal(p.R, p.O);
  const R = p.R.slice();
  const O = p.O.slice();
  let sr = 0;
  let so = 0;
  for (let i = 0; i < n; i++) {
    sr += R[i]!;
    so += O[i]!;
  }
  let cutR = sr - T;
  let cutO = so - T;
  // (1) peers above T first, then whatever is left of the budgets
  for (let i = 0; i < n; i++) {
    let e = R[i]! + O[i]! - T;
    if (e <= 0) continue;
    const a = Math.min(e, R[i]!, cutR);
    R[i]! -= a;
    cutR -= a;
    e -= a;
    const b = Math.min(e, O[i]!, cutO);
    O[i]! -= b;
    cutO -= b;
    e -= b;
    if (e > 0) throw new Error('unbounded: truncation failed (internal error)');
  }
  for (let i = 0; i < n && cutR > 0; i++) {
    const a = Math.min(R[i]!, cutR);
    R[i]! -= a;
    cutR -= a;
  }
  for (let i = 0; i < n && cutO > 0; i++) {
    const a = Math.min(O[i]!, cutO);
    O[i]! -= a;
    cutO -= a;
  }
  // (2) north-west corner
  const cells = new Cells(2 * n + 16);
  let j = 0;
  let leftJ = n > 0 ? O[0]! : 0;
  for (let i = 0; i < n; i++) {
    let need = R[i]!;
    while (need > 0) {
      while (leftJ === 0) leftJ = O[++j]!;
      const x = Math.min(need, leftJ);
      cells.push(i, j, x);
      need -= x;
      leftJ -= x;
    }
  }
  // (3) swaps. The pool is a stack of cell indices; cells touching k are set aside.
  const m0 = cells.length;
  const pool: number[] = [];
  for (let e = m0 - 1; e >= 0; e--) pool.push(e);
  const aside: number[] = [];
  for (let e = 0; e < m0; e++) {
    const k = cells.i[e]!;
    if (cells.j[e] !== k) continue;
    let x = cells.u[e]!;
    while (x > 0) {
      const q = pool.pop();
      if (q === undefined) throw new Error('unbounded: no cell to swap with (internal error)');
      const qi = cells.i[q]!;
      const qj = cells.j[q]!;
      const y = cells.u[q]!;
      if (y === 0) continue;
      if (qi === k || qj === k) {
        aside.push(q);
        continue;
      }
      const d = Math.min(x, y);
      x -= d;
      cells.u[q] = y - d;
      cells.u[e] = x;
      cells.push(k, qj, d);
      pool.push(cells.length - 1);
      cells.push(qi, k, d);
      pool.push(cells.length - 1);
      if (y - d > 0) pool.push(q);
    }
    while (aside.length > 0) pool.push(aside.pop()!);
  }
  const sol = finalize(n, cells);
  if (sol.total !== T) throw new Error('unbounded: construction lost units (internal error)');
  return sol;
}
