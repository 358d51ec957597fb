// Starting flow for a uniform cap k (Replicated is k = 1) and no listed bounds, in the
// spirit of the constructive Kleitman–Wang proof of the Fulkerson–Chen–Anstee theorem:
// requesters in decreasing request order each take min(k, left) units from the hosts with
// the most units left (itself excluded). Hosts sit in buckets by units left, so a
// requester costs O(R_i / 1 + buckets skipped). Greedy rules like this are not optimal
// for every instance (for k > 1 in particular), so the result is only the start of the
// implicit augmenting engine, which makes it optimal and proves it.
import { Cells, type Problem } from './problem.js';

export function uniformStart(p: Problem): Cells {
  const { n, R, O, k } = p;
  const left = new Float64Array(n);
  let maxV = 0;
  for (let j = 0; j < n; j++) {
    // a host never gives more than k to one requester, nor more than (n-1)k in all
    left[j] = Math.min(O[j]!, k * Math.max(0, n - 1));
    maxV = Math.max(maxV, left[j]!);
  }
  const cells = new Cells(n + 16);
  if (maxV > 4 * n + 1024) return cells; // huge values: let the engine start from empty
  const head = new Int32Array(maxV + 1).fill(-1);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const put = (j: number): void => {
    const v = left[j]!;
    prev[j] = -1;
    next[j] = head[v]!;
    if (head[v]! >= 0) prev[head[v]!] = j;
    head[v] = j;
  };
  const take = (j: number): void => {
    const v = left[j]!;
    if (prev[j]! >= 0) next[prev[j]!] = next[j]!;
    else head[v] = next[j]!;
    if (next[j]! >= 0) prev[next[j]!] = prev[j]!;
  };
  for (let j = 0; j < n; j++) if (left[j]! > 0) put(j);
  let top = maxV;
  // requesters by decreasing request (counting sort when small, else a normal sort)
  let maxR = 0;
  for (let i = 0; i < n; i++) maxR = Math.max(maxR, R[i]!);
  let order: Int32Array;
  if (maxR <= 4 * n + 1024) {
    const cnt = new Int32Array(maxR + 2);
    for (let i = 0; i < n; i++) cnt[maxR - R[i]! + 1]!++;
    for (let v = 0; v <= maxR; v++) cnt[v + 1]! += cnt[v]!;
    order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[cnt[maxR - R[i]!]!++] = i;
  } else order = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => R[b]! - R[a]! || a - b);
  const taken: number[] = [];
  for (const i of order) {
    let need = R[i]!;
    if (need === 0) continue;
    taken.length = 0;
    let v = top;
    while (need > 0 && v > 0) {
      let j = head[v]!;
      while (j >= 0 && need > 0) {
        const nj = next[j]!;
        if (j !== i) {
          const x = Math.min(k, v, need);
          take(j);
          left[j] = v - x;
          need -= x;
          cells.push(i, j, x);
          taken.push(j);
        }
        j = nj;
      }
      v--;
    }
    for (const j of taken) if (left[j]! > 0) put(j);
    while (top > 0 && head[top]! < 0) top--;
  }
  return cells;
}
