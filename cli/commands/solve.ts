import { readFileSync, writeSync } from 'node:fs';
import type { Command } from 'commander';
import { EXIT_BAD_INPUT } from '../exit-codes.js';
import {
  formatAnswerBytes,
  InputError,
  parseInstance,
  parsePrevious,
  solveProblem,
} from '../../matchmaker/solver/index.js';

/** Reads a file, or standard input for '-'; a missing file is bad input. */
export function readInput(field: string, path: string): Buffer {
  try {
    return readFileSync(path === '-' ? 0 : path);
  } catch (err) {
    throw new InputError(`${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Writes to stdout synchronously, so the whole answer is out before the process exits. */
export function writeAll(data: Buffer | string): void {
  const b = typeof data === 'string' ? Buffer.from(data) : data;
  let off = 0;
  while (off < b.length) {
    try {
      off += writeSync(1, b, off, b.length - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw err;
    }
  }
}

/** Runs a command body; an InputError becomes one line on stderr and exit code 2. */
export function runBadInputAware(command: string, body: () => void): void {
  try {
    body();
  } catch (err) {
    if (err instanceof InputError) {
      process.stderr.write(`pcloud ${command}: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
      process.exitCode = EXIT_BAD_INPUT;
      return;
    }
    throw err;
  }
}

export function solveCommand(opts: { instance: string; algorithm: string; previous?: string }): Buffer {
  if (opts.algorithm !== 'maxflow' && opts.algorithm !== 'greedy') {
    throw new InputError(`--algorithm: unknown "${opts.algorithm}" (maxflow|greedy)`);
  }
  const problem = parseInstance(readInput('--instance', opts.instance));
  const previous =
    opts.previous === undefined
      ? undefined
      : parsePrevious(readInput('--previous', opts.previous).toString('utf8'), problem.n);
  if (previous && opts.algorithm === 'greedy')
    throw new InputError('--previous: only with --algorithm maxflow');
  return formatAnswerBytes(solveProblem(problem, { algorithm: opts.algorithm, previous }));
}

/** `pcloud solve --instance FILE|- [--algorithm maxflow|greedy] [--previous FILE]` */
export function registerSolveCommand(program: Command): void {
  program
    .command('solve')
    .description('solve one matchmaking instance (JSON; - reads stdin) and print the answer JSON')
    .requiredOption('--instance <file>', 'instance JSON file, or - for standard input')
    .option('--algorithm <name>', 'maxflow (request-optimal) or greedy (the paper baseline)', 'maxflow')
    .option('--previous <file>', 'previous answer: keep as many of its units in place as possible')
    .action((opts: { instance: string; algorithm: string; previous?: string }) => {
      runBadInputAware('solve', () => {
        const out = solveCommand(opts);
        writeAll(Buffer.concat([out, Buffer.from('\n')]));
      });
    });
}
