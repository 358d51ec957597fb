// The paper's simulations: the percentage of random federations in which every request is
// fully met, Max-Flow (MF) vs Greedy (GR), Unconstrained (U = inf) vs Replicated (U = 1).
//   Figure 4: 1..20 users, each user's request and offer uniform in 0..4, modes U and R.
//   Figure 5: up to 100 users, request and offer uniform in 0..31, mode R.
// MF and GR see the same random instance in each trial. Deterministic for a seed.
import { buildProblem } from '../solver/parse.js';
import { solveProblem } from '../solver/solve.js';

export interface SimRow {
  figure: number;
  users: number;
  algorithm: 'MF' | 'GR';
  mode: 'U' | 'R';
  percentMet: number;
  trials: number;
}

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FigureSpec {
  figure: 4 | 5;
  users: number[];
  maxValue: number;
  modes: ('U' | 'R')[];
}

export function figureSpec(figure: 4 | 5): FigureSpec {
  if (figure === 4) {
    return { figure, users: Array.from({ length: 20 }, (_, i) => i + 1), maxValue: 4, modes: ['U', 'R'] };
  }
  const users = [1, 2, 3, 4, 5];
  for (let u = 10; u <= 100; u += 5) users.push(u);
  return { figure, users, maxValue: 31, modes: ['R'] };
}

const NONE = new Int32Array(0);
const NONE_C = new Float64Array(0);

export function simulate(figure: 4 | 5, trials: number, seed: number): SimRow[] {
  const spec = figureSpec(figure);
  const rows: SimRow[] = [];
  for (const users of spec.users) {
    // one stream per point, so adding points never changes the others; every mode and
    // algorithm sees the same random federations (paired comparison)
    const rand = mulberry32((seed * 1000003) ^ (users * 131) ^ (figure << 20));
    const met = new Map<string, number>();
    for (let t = 0; t < trials; t++) {
      const R = new Float64Array(users);
      const O = new Float64Array(users);
      let need = 0;
      for (let i = 0; i < users; i++) {
        R[i] = Math.floor(rand() * (spec.maxValue + 1));
        O[i] = Math.floor(rand() * (spec.maxValue + 1));
        need += R[i]!;
      }
      for (const mode of spec.modes) {
        const p = buildProblem(users, R, O, mode === 'U' ? Infinity : 1, NONE, NONE, NONE_C, null);
        if (solveProblem(p).total === need) met.set(`MF${mode}`, (met.get(`MF${mode}`) ?? 0) + 1);
        if (solveProblem(p, { algorithm: 'greedy' }).total === need) {
          met.set(`GR${mode}`, (met.get(`GR${mode}`) ?? 0) + 1);
        }
      }
    }
    for (const mode of spec.modes) {
      for (const algorithm of ['MF', 'GR'] as const) {
        const k = met.get(`${algorithm}${mode}`) ?? 0;
        rows.push({ figure, users, algorithm, mode, percentMet: (100 * k) / trials, trials });
      }
    }
  }
  return rows;
}

export const CSV_HEADER = 'figure,users,algorithm,mode,percent_met,trials';

export function toCsv(rows: SimRow[]): string {
  const lines = [CSV_HEADER];
  for (const r of rows) {
    lines.push(`${r.figure},${r.users},${r.algorithm},${r.mode},${r.percentMet.toFixed(2)},${r.trials}`);
  }
  return lines.join('\n') + '\n';
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A hand-rolled SVG line chart: percent met against users, one line per algorithm/mode. */
export function toSvg(rows: SimRow[], title: string): string {
  const W = 720;
  const H = 400;
  const L = 60;
  const Rm = 200; // room for the longest legend label at 12px
  const Tm = 40;
  const B = 50;
  const pw = W - L - Rm;
  const ph = H - Tm - B;
  const maxX = Math.max(1, ...rows.map((r) => r.users));
  const x = (u: number): number => L + (pw * (u - 1)) / Math.max(1, maxX - 1);
  const y = (v: number): number => Tm + ph - (ph * v) / 100;
  const colors: Record<string, string> = {
    'MF-U': '#1f77b4',
    'GR-U': '#ff7f0e',
    'MF-R': '#2ca02c',
    'GR-R': '#d62728',
  };
  const dash: Record<string, string> = { 'MF-U': '', 'GR-U': '', 'MF-R': '6 3', 'GR-R': '6 3' };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  for (let v = 0; v <= 100; v += 20) {
    out.push(`<line x1="${L}" y1="${y(v)}" x2="${L + pw}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  out.push(
    `<line x1="${L}" y1="${y(50)}" x2="${L + pw}" y2="${y(50)}" stroke="#888" stroke-dasharray="2 3"/>`,
  );
  const step = maxX <= 20 ? 1 : 10;
  for (let u = step === 1 ? 1 : 0; u <= maxX; u += step) {
    const ux = Math.max(u, 1);
    if (step === 1 && u % 2 === 0 && u !== maxX) continue;
    out.push(`<line x1="${x(ux)}" y1="${Tm + ph}" x2="${x(ux)}" y2="${Tm + ph + 5}" stroke="black"/>`);
    out.push(`<text x="${x(ux)}" y="${Tm + ph + 18}" text-anchor="middle">${ux}</text>`);
  }
  out.push(`<rect x="${L}" y="${Tm}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`);
  out.push(`<text x="${L + pw / 2}" y="${H - 12}" text-anchor="middle">users</text>`);
  out.push(
    `<text x="16" y="${Tm + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${Tm + ph / 2})">% of runs with every request met</text>`,
  );
  const keys = [...new Set(rows.map((r) => `${r.algorithm}-${r.mode}`))];
  keys.forEach((key, idx) => {
    const pts = rows
      .filter((r) => `${r.algorithm}-${r.mode}` === key)
      .map((r) => `${x(r.users).toFixed(1)},${y(r.percentMet).toFixed(1)}`)
      .join(' ');
    const d = dash[key] ? ` stroke-dasharray="${dash[key]}"` : '';
    out.push(
      `<polyline fill="none" stroke="${colors[key] ?? 'black'}" stroke-width="2"${d} points="${pts}"/>`,
    );
    const ly = Tm + 10 + idx * 20;
    out.push(
      `<line x1="${L + pw + 12}" y1="${ly}" x2="${L + pw + 40}" y2="${ly}" stroke="${colors[key] ?? 'black'}" stroke-width="2"${d}/>`,
    );
    const [alg, mode] = key.split('-');
    const label = `${alg === 'MF' ? 'Max-Flow' : 'Greedy'} ${mode === 'U' ? 'Unconstr.' : 'Replicated'}`;
    out.push(`<text x="${L + pw + 46}" y="${ly + 4}">${esc(label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
