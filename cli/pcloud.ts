#!/usr/bin/env node
// The Personal Cloud command line (bin/pcloud). Each sub-command lives in
// cli/commands/<name>.ts and registers itself on the root program.
//
// Command modules are loaded lazily: `pcloud solve` must not pay for importing the
// Kubernetes client and the controllers (about 0.9 s of CPU), so only the module of the
// command being run is imported; help and unknown commands load them all.
import { Command, CommanderError } from 'commander';
import { EXIT_BAD_INPUT, EXIT_FAILURE } from './exit-codes.js';

type Register = (program: Command) => void;

const COMMANDS: Record<string, () => Promise<Register>> = {
  demo: async () => (await import('./commands/demo.js')).registerDemoCommand,
  dev: async () => (await import('./commands/dev.js')).registerDevCommand,
  federation: async () => (await import('./commands/federation.js')).registerFederationCommand,
  matchmaker: async () => (await import('./commands/matchmaker.js')).registerMatchmakerCommand,
  operator: async () => (await import('./commands/operator.js')).registerOperatorCommand,
  solve: async () => (await import('./commands/solve.js')).registerSolveCommand,
  match: async () => (await import('./commands/match.js')).registerMatchCommand,
  simulate: async () => (await import('./commands/simulate.js')).registerSimulateCommand,
};

/** The program with the given commands registered (all of them by default). */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command('pcloud')
    .description('Personal Cloud: federated home clouds on k3s + KubeVirt')
    .showHelpAfterError()
    .exitOverride();
  const names = only !== undefined && only in COMMANDS ? [only] : Object.keys(COMMANDS);
  const registers = await Promise.all(names.map((name) => COMMANDS[name]!()));
  for (const register of registers) register(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    const program = await buildProgram(argv[2]);
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
