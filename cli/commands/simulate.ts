import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../../matchmaker/solver/problem.js';
import { simulate, toCsv, toSvg } from '../../matchmaker/simulate/simulate.js';
import { runBadInputAware, writeAll } from './solve.js';

function intOption(field: string, v: string, min: number): number {
  if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) {
    throw new InputError(`${field}: expected an integer >= ${min}, got "${v}"`);
  }
  return Number(v);
}

export function simulateCommand(opts: {
  figure: string;
  trials?: string;
  seed: string;
  out: string;
}): string[] {
  if (opts.figure !== '4' && opts.figure !== '5')
    throw new InputError(`--figure: expected 4 or 5, got "${opts.figure}"`);
  const figure = Number(opts.figure) as 4 | 5;
  const trials = intOption('--trials', opts.trials ?? (figure === 4 ? '1000' : '400'), 1);
  const seed = intOption('--seed', opts.seed, 0);
  const rows = simulate(figure, trials, seed);
  try {
    mkdirSync(opts.out, { recursive: true });
  } catch (err) {
    throw new InputError(
      `--out: cannot create ${opts.out} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const csv = join(opts.out, `figure${figure}.csv`);
  const svg = join(opts.out, `figure${figure}.svg`);
  const title =
    figure === 4
      ? `Figure 4: requests and offers in 0..4 (${trials} runs per point, seed ${seed})`
      : `Figure 5: Replicated, requests and offers in 0..31 (${trials} runs, seed ${seed})`;
  writeFileSync(csv, toCsv(rows));
  writeFileSync(svg, toSvg(rows, title));
  return [csv, svg];
}

/** `pcloud simulate --figure 4|5 [--trials N] [--seed S] [--out DIR]` */
export function registerSimulateCommand(program: Command): void {
  program
    .command('simulate')
    .description("the paper's simulations (Max-Flow vs Greedy, Unconstrained vs Replicated): CSV and SVG out")
    .requiredOption(
      '--figure <n>',
      '4 (1..20 users, 0..4 units) or 5 (up to 100 users, 0..31 units, Replicated)',
    )
    .option('--trials <n>', 'random federations per point (default 1000 for figure 4, 400 for figure 5)')
    .option('--seed <s>', 'random seed', '1')
    .option('--out <dir>', 'output directory', '.')
    .action((opts: { figure: string; trials?: string; seed: string; out: string }) => {
      runBadInputAware('simulate', () => {
        for (const f of simulateCommand(opts)) writeAll(f + '\n');
      });
    });
}
