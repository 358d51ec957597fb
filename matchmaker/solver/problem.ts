// The solver's internal, validated form of an instance (DESIGN.md "Instance and answer JSON").
// Everything is held in typed arrays so that a million peers cost a few megabytes.

/** A bad instance, answer or manifest. The message names the field and the value. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** A validated instance. Bounds are sorted by (requester, host) and unique. */
export interface Problem {
  n: number;
  /** requests R(i) */
  R: Float64Array;
  /** offers O(j) */
  O: Float64Array;
  /** U(i,j) for pairs not listed: Infinity (null in JSON), 0, or k. */
  k: number;
  /** listed pairs: bi[e] -> bj[e] with cap bc[e]; sorted by (bi, bj) */
  bi: Int32Array;
  bj: Int32Array;
  bc: Float64Array;
  /** CSR over requesters: bounds of i are bStart[i]..bStart[i+1]-1 */
  bStart: Int32Array;
  /** optional fairness weights, one per peer */
  weights: Float64Array | null;
}

/** The instance JSON of the contract (plus the optional `weights`). */
export interface Instance {
  peers: number;
  offers: ArrayLike<number>;
  requests: ArrayLike<number>;
  defaultBound: number | null;
  bounds: ArrayLike<ArrayLike<number>>;
  weights?: ArrayLike<number> | null;
}

/** A solution: each (requester, host) pair at most once, sorted by requester then host. */
export interface Solution {
  total: number;
  count: number;
  from: Int32Array;
  to: Int32Array;
  units: Float64Array;
}

/** The answer JSON of the contract. */
export interface Answer {
  total: number;
  assignments: [number, number, number][];
}

export function toAnswer(s: Solution): Answer {
  const assignments: [number, number, number][] = new Array<[number, number, number]>(s.count);
  for (let e = 0; e < s.count; e++) assignments[e] = [s.from[e]!, s.to[e]!, s.units[e]!];
  return { total: s.total, assignments };
}

/** Serialises an answer straight into bytes, without millions of small strings. */
export function formatAnswerBytes(s: Solution): Buffer {
  let buf = Buffer.allocUnsafe(64 + s.count * 24);
  let p = 0;
  const ensure = (extra: number): void => {
    if (p + extra <= buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(buf.length * 2, p + extra));
    buf.copy(b, 0, 0, p);
    buf = b;
  };
  const ascii = (t: string): void => {
    ensure(t.length);
    p += buf.write(t, p, 'latin1');
  };
  const int = (v: number): void => {
    if (v >= 2 ** 31) {
      ascii(String(v));
      return;
    }
    if (v < 10) {
      buf[p++] = 48 + v;
      return;
    }
    let d = 0;
    for (let x = v; x > 0; x = (x / 10) | 0) d++;
    let q = p + d;
    p = q;
    for (let x = v; x > 0; x = (x / 10) | 0) buf[--q] = 48 + (x % 10);
  };
  ascii('{"total":' + s.total + ',"assignments":[');
  for (let e = 0; e < s.count; e++) {
    ensure(40);
    if (e > 0) buf[p++] = 44;
    buf[p++] = 91;
    int(s.from[e]!);
    buf[p++] = 44;
    int(s.to[e]!);
    buf[p++] = 44;
    int(s.units[e]!);
    buf[p++] = 93;
  }
  ascii(']}');
  return buf.subarray(0, p);
}

/** The answer JSON as a string. */
export function formatAnswer(s: Solution): string {
  return formatAnswerBytes(s).toString('latin1');
}

/** Growable list of (i, j, units) cells used by every engine before {@link finalize}. */
export class Cells {
  i: Int32Array;
  j: Int32Array;
  u: Float64Array;
  length = 0;
  constructor(capacity = 16) {
    this.i = new Int32Array(Math.max(capacity, 16));
    this.j = new Int32Array(Math.max(capacity, 16));
    this.u = new Float64Array(Math.max(capacity, 16));
  }
  push(i: number, j: number, u: number): void {
    if (u <= 0) return;
    if (this.length === this.i.length) {
      const c = this.length * 2;
      const ni = new Int32Array(c);
      ni.set(this.i);
      const nj = new Int32Array(c);
      nj.set(this.j);
      const nu = new Float64Array(c);
      nu.set(this.u);
      this.i = ni;
      this.j = nj;
      this.u = nu;
    }
    this.i[this.length] = i;
    this.j[this.length] = j;
    this.u[this.length] = u;
    this.length++;
  }
}

/**
 * Groups cells by requester (counting sort, O(n + m)), sorts each row by host, merges
 * duplicate pairs and drops empty ones.
 */
export function finalize(n: number, cells: Cells): Solution {
  const m = cells.length;
  const start = new Int32Array(n + 1);
  for (let e = 0; e < m; e++) if (cells.u[e]! > 0) start[cells.i[e]! + 1]!++;
  for (let i = 0; i < n; i++) start[i + 1]! += start[i]!;
  const fill = start.slice(0, n);
  const to = new Int32Array(start[n]!);
  const units = new Float64Array(start[n]!);
  for (let e = 0; e < m; e++) {
    const u = cells.u[e]!;
    if (u <= 0) continue;
    const p = fill[cells.i[e]!]!++;
    to[p] = cells.j[e]!;
    units[p] = u;
  }
  const outFrom = new Int32Array(start[n]!);
  const outTo = new Int32Array(start[n]!);
  const outUnits = new Float64Array(start[n]!);
  let count = 0;
  let total = 0;
  const idx: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = start[i]!;
    const b = start[i + 1]!;
    if (a === b) continue;
    let sorted = true;
    for (let p = a + 1; p < b; p++) if (to[p - 1]! >= to[p]!) sorted = false;
    if (sorted) {
      for (let p = a; p < b; p++) {
        outFrom[count] = i;
        outTo[count] = to[p]!;
        outUnits[count] = units[p]!;
        total += units[p]!;
        count++;
      }
      continue;
    }
    if (b - a <= 32) {
      // short rows (the usual case): insertion sort in place
      for (let p = a + 1; p < b; p++) {
        const tj = to[p]!;
        const tu = units[p]!;
        let q = p - 1;
        while (q >= a && to[q]! > tj) {
          to[q + 1] = to[q]!;
          units[q + 1] = units[q]!;
          q--;
        }
        to[q + 1] = tj;
        units[q + 1] = tu;
      }
      for (let p = a; p < b; p++) {
        total += units[p]!;
        if (count > 0 && outFrom[count - 1] === i && outTo[count - 1] === to[p]) {
          outUnits[count - 1]! += units[p]!;
        } else {
          outFrom[count] = i;
          outTo[count] = to[p]!;
          outUnits[count] = units[p]!;
          count++;
        }
      }
      continue;
    }
    idx.length = 0;
    for (let p = a; p < b; p++) idx.push(p);
    idx.sort((x, y) => to[x]! - to[y]!);
    for (const p of idx) {
      total += units[p]!;
      if (count > 0 && outFrom[count - 1] === i && outTo[count - 1] === to[p]) {
        outUnits[count - 1]! += units[p]!;
      } else {
        outFrom[count] = i;
        outTo[count] = to[p]!;
        outUnits[count] = units[p]!;
        count++;
      }
    }
  }
  return {
    total,
    count,
    from: outFrom.subarray(0, count),
    to: outTo.subarray(0, count),
    units: outUnits.subarray(0, count),
  };
}

/** U(i,j) for one pair (binary search in the requester's sorted bounds). */
export function capOf(p: Problem, i: number, j: number): number {
  if (i === j) return 0;
  let lo = p.bStart[i]!;
  let hi = p.bStart[i + 1]! - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = p.bj[mid]!;
    if (v === j) return p.bc[mid]!;
    if (v < j) lo = mid + 1;
    else hi = mid - 1;
  }
  return p.k;
}

export function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}
