// Instance and answer parsing and validation. Every error is an InputError whose one-line
// message names the field and the offending value.
import { InputError, type Instance, type Problem } from './problem.js';

const MAX_PEERS = 0x7fffffff;
/** Sums of units must stay exact in doubles, with room for arithmetic on them. */
const MAX_TOTAL = 2 ** 50;

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  let s: string;
  try {
    s = JSON.stringify(v) ?? typeof v;
  } catch {
    s = typeof v;
  }
  return s.length > 40 ? s.slice(0, 37) + '...' : s;
}

function checkCount(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new InputError(`${field}: expected a non-negative integer, got ${show(v)}`);
  }
  return v;
}

function numberArray(field: string, v: unknown, n: number): Float64Array {
  if (!Array.isArray(v)) throw new InputError(`${field}: expected an array of ${n} integers, got ${show(v)}`);
  if (v.length !== n) throw new InputError(`${field}: expected ${n} entries (one per peer), got ${v.length}`);
  const out = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    out[i] = checkCount(`${field}[${i}]`, v[i]);
    total += out[i]!;
  }
  if (total > MAX_TOTAL) throw new InputError(`${field}: sum ${total} is too large (max 2^50)`);
  return out;
}

/** Validates a parsed JSON instance (or an {@link Instance} built in code). */
export function toProblem(raw: unknown, label = 'instance'): Problem {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InputError(`${label}: expected a JSON object, got ${show(raw)}`);
  }
  const o = raw as Record<string, unknown>;
  for (const key of ['peers', 'offers', 'requests', 'defaultBound', 'bounds']) {
    if (!(key in o)) throw new InputError(`${key}: missing field`);
  }
  const n = checkCount('peers', o.peers);
  if (n > MAX_PEERS) throw new InputError(`peers: ${n} is too many (max ${MAX_PEERS})`);
  const O = numberArray('offers', toPlainArray(o.offers), n);
  const R = numberArray('requests', toPlainArray(o.requests), n);
  let k: number;
  if (o.defaultBound === null) k = Infinity;
  else k = checkCount('defaultBound', o.defaultBound);
  const bounds = toPlainArray(o.bounds);
  if (!Array.isArray(bounds))
    throw new InputError(`bounds: expected an array of [i, j, cap], got ${show(bounds)}`);
  const m = bounds.length;
  const bi = new Int32Array(m);
  const bj = new Int32Array(m);
  const bc = new Float64Array(m);
  for (let e = 0; e < m; e++) {
    const t = toPlainArray(bounds[e]);
    if (!Array.isArray(t) || t.length !== 3) {
      throw new InputError(`bounds[${e}]: expected [i, j, cap], got ${show(bounds[e])}`);
    }
    const i = checkCount(`bounds[${e}][0]`, t[0]);
    const j = checkCount(`bounds[${e}][1]`, t[1]);
    const c = checkCount(`bounds[${e}][2]`, t[2]);
    bi[e] = i;
    bj[e] = j;
    bc[e] = c;
  }
  let weights: Float64Array | null = null;
  if (o.weights !== undefined && o.weights !== null)
    weights = numberArray('weights', toPlainArray(o.weights), n);
  return buildProblem(n, R, O, k, bi, bj, bc, weights);
}

function toPlainArray(v: unknown): unknown {
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<number>);
  return v;
}

/** Sorts and checks the bounds (range, i != j, duplicates) and builds the CSR index. */
export function buildProblem(
  n: number,
  R: Float64Array,
  O: Float64Array,
  k: number,
  bi: Int32Array,
  bj: Int32Array,
  bc: Float64Array,
  weights: Float64Array | null,
): Problem {
  const m = bi.length;
  const bStart = new Int32Array(n + 1);
  for (let e = 0; e < m; e++) {
    const i = bi[e]!;
    const j = bj[e]!;
    if (i >= n) throw new InputError(`bounds[${e}][0]: peer ${i} out of range 0..${n - 1}`);
    if (j >= n) throw new InputError(`bounds[${e}][1]: peer ${j} out of range 0..${n - 1}`);
    if (i === j) throw new InputError(`bounds[${e}]: i == j (${i}); a peer never hosts its own request`);
    bStart[i + 1]!++;
  }
  for (let i = 0; i < n; i++) bStart[i + 1]! += bStart[i]!;
  // two stable counting sorts (by host, then by requester): O(n + m), sorted by (i, j)
  const byJ = new Int32Array(n + 1);
  for (let e = 0; e < m; e++) byJ[bj[e]! + 1]!++;
  for (let j = 0; j < n; j++) byJ[j + 1]! += byJ[j]!;
  const first = new Int32Array(m);
  for (let e = 0; e < m; e++) first[byJ[bj[e]!]!++] = e;
  const fill = bStart.slice(0, n);
  const order = new Int32Array(m);
  for (let x = 0; x < m; x++) {
    const e = first[x]!;
    order[fill[bi[e]!]!++] = e;
  }
  const si = new Int32Array(m);
  const sj = new Int32Array(m);
  const sc = new Float64Array(m);
  for (let p = 0; p < m; p++) {
    const e = order[p]!;
    si[p] = bi[e]!;
    sj[p] = bj[e]!;
    sc[p] = bc[e]!;
    if (p > 0 && si[p - 1] === si[p] && sj[p - 1] === sj[p]) {
      throw new InputError(`bounds[${Math.max(e, order[p - 1]!)}]: duplicate pair (${si[p]}, ${sj[p]})`);
    }
  }
  return { n, R, O, k, bi: si, bj: sj, bc: sc, bStart, weights };
}

/** Builds a Problem from an in-code instance object. */
export function problemOf(instance: Instance): Problem {
  return toProblem(instance);
}

// ---------------------------------------------------------------------------------------
// Fast path for large files: a scanner for exactly the contract's shape that fills typed
// arrays directly. Anything unexpected (other keys, floats, negative numbers, odd layout)
// makes it give up, and the generic JSON.parse + toProblem path produces the error.

class GiveUp extends Error {}

class Scanner {
  pos = 0;
  constructor(readonly b: Uint8Array) {}
  ws(): void {
    const b = this.b;
    let p = this.pos;
    for (;;) {
      const c = b[p];
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.pos = p;
  }
  peek(): number {
    this.ws();
    return this.b[this.pos] ?? -1;
  }
  expect(c: number): void {
    if (this.peek() !== c) throw new GiveUp();
    this.pos++;
  }
  int(): number {
    this.ws();
    const b = this.b;
    let p = this.pos;
    let v = 0;
    const s = p;
    for (;;) {
      const c = b[p];
      if (c === undefined || c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
      p++;
    }
    if (p === s || p - s > 15) throw new GiveUp();
    const c = b[p];
    if (c === 0x2e || c === 0x65 || c === 0x45) throw new GiveUp();
    this.pos = p;
    return v;
  }
  key(): string {
    this.expect(0x22);
    const s = this.pos;
    while (this.pos < this.b.length && this.b[this.pos] !== 0x22) {
      if (this.b[this.pos] === 0x5c) throw new GiveUp();
      this.pos++;
    }
    const k = Buffer.from(this.b.buffer, this.b.byteOffset + s, this.pos - s).toString('latin1');
    this.pos++;
    this.expect(0x3a);
    return k;
  }
  intArray(): Float64Array {
    this.expect(0x5b);
    let out = new Float64Array(1024);
    let len = 0;
    if (this.peek() === 0x5d) {
      this.pos++;
      return out.subarray(0, 0);
    }
    for (;;) {
      if (len === out.length) {
        const g = new Float64Array(len * 2);
        g.set(out);
        out = g;
      }
      out[len++] = this.int();
      const c = this.peek();
      this.pos++;
      if (c === 0x5d) break;
      if (c !== 0x2c) throw new GiveUp();
    }
    return out.subarray(0, len);
  }
  triples(): Float64Array {
    this.expect(0x5b);
    let out = new Float64Array(3 * 1024);
    let len = 0;
    if (this.peek() === 0x5d) {
      this.pos++;
      return out.subarray(0, 0);
    }
    for (;;) {
      if (len + 3 > out.length) {
        const g = new Float64Array(out.length * 2);
        g.set(out);
        out = g;
      }
      this.expect(0x5b);
      out[len++] = this.int();
      this.expect(0x2c);
      out[len++] = this.int();
      this.expect(0x2c);
      out[len++] = this.int();
      this.expect(0x5d);
      const c = this.peek();
      this.pos++;
      if (c === 0x5d) break;
      if (c !== 0x2c) throw new GiveUp();
    }
    return out.subarray(0, len);
  }
}

function fastProblem(b: Uint8Array): Problem {
  const s = new Scanner(b);
  s.expect(0x7b);
  let n: number | undefined;
  let O: Float64Array | undefined;
  let R: Float64Array | undefined;
  let k: number | undefined;
  let t: Float64Array | undefined;
  let w: Float64Array | null = null;
  const seen = new Set<string>();
  if (s.peek() === 0x7d) throw new GiveUp();
  for (;;) {
    const key = s.key();
    if (seen.has(key)) throw new GiveUp();
    seen.add(key);
    if (key === 'peers') n = s.int();
    else if (key === 'offers') O = s.intArray();
    else if (key === 'requests') R = s.intArray();
    else if (key === 'defaultBound') {
      if (s.peek() === 0x6e) {
        if (b[s.pos + 1] !== 0x75 || b[s.pos + 2] !== 0x6c || b[s.pos + 3] !== 0x6c) throw new GiveUp();
        s.pos += 4;
        k = Infinity;
      } else k = s.int();
    } else if (key === 'bounds') t = s.triples();
    else if (key === 'weights') w = s.intArray();
    else throw new GiveUp();
    const c = s.peek();
    s.pos++;
    if (c === 0x7d) break;
    if (c !== 0x2c) throw new GiveUp();
  }
  if (s.peek() !== -1) throw new GiveUp();
  if (n === undefined || O === undefined || R === undefined || k === undefined || t === undefined) {
    throw new GiveUp();
  }
  if (O.length !== n || R.length !== n || (w !== null && w.length !== n) || n > MAX_PEERS) throw new GiveUp();
  let so = 0;
  let sr = 0;
  for (let i = 0; i < n; i++) {
    so += O[i]!;
    sr += R[i]!;
  }
  if (so > MAX_TOTAL || sr > MAX_TOTAL) throw new GiveUp();
  const m = t.length / 3;
  const bi = new Int32Array(m);
  const bj = new Int32Array(m);
  const bc = new Float64Array(m);
  for (let e = 0; e < m; e++) {
    const i = t[3 * e]!;
    const j = t[3 * e + 1]!;
    if (i >= n || j >= n) throw new GiveUp();
    bi[e] = i;
    bj[e] = j;
    bc[e] = t[3 * e + 2]!;
  }
  return buildProblem(n, R.slice(), O.slice(), k, bi, bj, bc, w === null ? null : w.slice());
}

/** Parses instance JSON text (or bytes) into a validated Problem. */
export function parseInstance(text: string | Uint8Array): Problem {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  try {
    return fastProblem(bytes);
  } catch (err) {
    if (!(err instanceof GiveUp)) throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(typeof text === 'string' ? text : Buffer.from(text).toString('utf8'));
  } catch (err) {
    throw new InputError(`instance: not JSON (${(err as Error).message.split('\n')[0]})`);
  }
  return toProblem(raw);
}

/** A previous answer, as pairs; validated against the instance's peers. */
export interface Previous {
  from: Int32Array;
  to: Int32Array;
  units: Float64Array;
}

export function parsePrevious(text: string, n: number): Previous {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InputError(`previous: not JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InputError(`previous: expected an answer object {"total", "assignments"}, got ${show(raw)}`);
  }
  const a = (raw as Record<string, unknown>).assignments;
  return previousOf(a, n);
}

export function previousOf(a: unknown, n: number): Previous {
  if (!Array.isArray(a)) throw new InputError(`previous.assignments: expected an array, got ${show(a)}`);
  const from = new Int32Array(a.length);
  const to = new Int32Array(a.length);
  const units = new Float64Array(a.length);
  for (let e = 0; e < a.length; e++) {
    const t: unknown = a[e];
    const f = `previous.assignments[${e}]`;
    if (!Array.isArray(t) || t.length !== 3)
      throw new InputError(`${f}: expected [i, j, units], got ${show(t)}`);
    const i = checkCount(`${f}[0]`, t[0]);
    const j = checkCount(`${f}[1]`, t[1]);
    units[e] = checkCount(`${f}[2]`, t[2]);
    if (i >= n) throw new InputError(`${f}[0]: peer ${i} out of range 0..${n - 1}`);
    if (j >= n) throw new InputError(`${f}[1]: peer ${j} out of range 0..${n - 1}`);
    if (i === j) throw new InputError(`${f}: i == j (${i})`);
    from[e] = i;
    to[e] = j;
  }
  return { from, to, units };
}
