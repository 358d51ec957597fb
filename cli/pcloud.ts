#!/usr/bin/env node
// The Personal Cloud command line (bin/pcloud). Each sub-command lives in
// cli/commands/<name>.ts and registers itself on the root program.
import { Command, CommanderError } from 'commander';
import { registerDemoCommand } from './commands/demo.js';
import { registerDevCommand } from './commands/dev.js';
import { registerFederationCommand } from './commands/federation.js';
import { registerMatchmakerCommand } from './commands/matchmaker.js';
import { registerOperatorCommand } from './commands/operator.js';
import { registerMatchCommand } from './commands/match.js';
import { registerSimulateCommand } from './commands/simulate.js';
import { registerSolveCommand } from './commands/solve.js';
import { EXIT_BAD_INPUT, EXIT_FAILURE } from './exit-codes.js';

export function buildProgram(): Command {
  const program = new Command('pcloud')
    .description('Personal Cloud: federated home clouds on k3s + KubeVirt')
    .showHelpAfterError()
    .exitOverride();
  registerDemoCommand(program);
  registerDevCommand(program);
  registerFederationCommand(program);
  registerMatchmakerCommand(program);
  registerOperatorCommand(program);
  registerSolveCommand(program);
  registerMatchCommand(program);
  registerSimulateCommand(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
      return;
    }
    process.stderr.write(`pcloud: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = EXIT_FAILURE;
  }
}

await main(process.argv);
