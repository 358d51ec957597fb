// Deterministic instance generator for the solver benchmark.
// node dist/bench/solver/gen.js CASE OUT.json   (cases listed in CASES)
import { createWriteStream } from 'node:fs';
import { mulberry32 } from '../../matchmaker/simulate/simulate.js';

export interface BenchCase {
  name: string;
  n: number;
  maxValue: number;
  defaultBound: number | null;
  bounds: number;
  note: string;
}

export const CASES: BenchCase[] = [
  {
    name: 'unbounded-1e4',
    n: 1e4,
    maxValue: 31,
    defaultBound: null,
    bounds: 0,
    note: 'U = inf, R,O in 0..31',
  },
  {
    name: 'unbounded-1e5',
    n: 1e5,
    maxValue: 31,
    defaultBound: null,
    bounds: 0,
    note: 'U = inf, R,O in 0..31',
  },
  {
    name: 'unbounded-1e6',
    n: 1e6,
    maxValue: 31,
    defaultBound: null,
    bounds: 0,
    note: 'U = inf, R,O in 0..31',
  },
  { name: 'replicated-1e4', n: 1e4, maxValue: 31, defaultBound: 1, bounds: 0, note: 'U = 1, R,O in 0..31' },
  { name: 'replicated-1e5', n: 1e5, maxValue: 31, defaultBound: 1, bounds: 0, note: 'U = 1, R,O in 0..31' },
  { name: 'replicated-1e6', n: 1e6, maxValue: 4, defaultBound: 1, bounds: 0, note: 'U = 1, R,O in 0..4' },
  {
    name: 'replicated-dense-3000',
    n: 3000,
    maxValue: 1000,
    defaultBound: 1,
    bounds: 0,
    note: 'U = 1, R,O in 0..1000',
  },
  {
    name: 'explicit-1e5',
    n: 1e5,
    maxValue: 31,
    defaultBound: 0,
    bounds: 2e6,
    note: 'U = 0 except 2e6 listed pairs, cap 1..5',
  },
];

function write(c: BenchCase, out: string): void {
  const rand = mulberry32(0xc0ffee ^ c.n ^ (c.bounds | 0));
  const int = (m: number): number => Math.floor(rand() * m);
  const ws = createWriteStream(out);
  const chunks: string[] = [];
  const flush = (): void => {
    ws.write(chunks.join(''));
    chunks.length = 0;
  };
  const arr = (name: string): void => {
    chunks.push(`"${name}":[`);
    for (let i = 0; i < c.n; i++) {
      chunks.push((i ? ',' : '') + int(c.maxValue + 1));
      if (chunks.length > 65536) flush();
    }
    chunks.push('],');
  };
  chunks.push(`{"peers":${c.n},`);
  arr('offers');
  arr('requests');
  chunks.push(`"defaultBound":${c.defaultBound === null ? 'null' : c.defaultBound},"bounds":[`);
  // distinct random pairs: per requester, a random set of distinct hosts
  const seen = new Set<number>();
  let written = 0;
  while (written < c.bounds) {
    const i = int(c.n);
    const j = int(c.n);
    if (i === j) continue;
    const key = i * c.n + j;
    if (seen.has(key)) continue;
    seen.add(key);
    chunks.push(`${written ? ',' : ''}[${i},${j},${1 + int(5)}]`);
    written++;
    if (chunks.length > 65536) flush();
  }
  chunks.push(']}\n');
  flush();
  ws.end();
}

const [name, out] = process.argv.slice(2);
const c = CASES.find((x) => x.name === name);
if (name === '--list') {
  for (const x of CASES)
    process.stdout.write(`${x.name}\t${x.n}\t${x.defaultBound ?? 'null'}\t${x.bounds}\t${x.note}\n`);
} else if (!c || !out) {
  process.stderr.write(`usage: gen.js CASE OUT.json | --list\n`);
  process.exitCode = 2;
} else write(c, out);
