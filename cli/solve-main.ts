// A lean entry for `solve` alone: the same command as `pcloud solve`, without loading the
// rest of the CLI (the Kubernetes client costs about a second of start-up).
//   node dist/cli/solve-main.js --instance FILE|- [--algorithm A] [--previous FILE]
import { Command, CommanderError } from 'commander';
import { registerSolveCommand } from './commands/solve.js';
import { EXIT_BAD_INPUT } from './exit-codes.js';

const program = new Command('pcloud').exitOverride();
registerSolveCommand(program);
try {
  program.parse(['node', 'pcloud', 'solve', ...process.argv.slice(2)]);
} catch (err) {
  if (!(err instanceof CommanderError)) throw err;
  process.exitCode = err.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
}
