// The Personal Cloud command line. Each sub-command lives in cli/commands/<name>.ts
// and registers itself on the root program.
//
// Command modules are loaded lazily: `pcloud solve` must not pay for importing the
// Kubernetes client and the controllers (about 0.9 s of CPU), so only the module of the
// command being run is imported; help and unknown commands load them all.
//
// The shipped entry (cli/pcloud.ts, the image's) has the runtime commands only; a
// source checkout's bin/pcloud runs dev/pcloud-dev.ts, which adds `dev` and `demo`
// (the control-plane harness and its certificate libraries stay out of the image).
import { Command, CommanderError } from 'commander';
import { EXIT_BAD_INPUT, EXIT_FAILURE } from './exit-codes.js';

export type Register = (program: Command) => void;
export type CommandLoaders = Record<string, () => Promise<Register>>;

export const RUNTIME_COMMANDS: CommandLoaders = {
  federation: async () => (await import('./commands/federation.js')).registerFederationCommand,
  matchmaker: async () => (await import('./commands/matchmaker.js')).registerMatchmakerCommand,
  operator: async () => (await import('./commands/operator.js')).registerOperatorCommand,
  'node-agent': async () => (await import('./commands/node-agent.js')).registerNodeAgentCommand,
  portal: async () => (await import('./commands/portal.js')).registerPortalCommand,
  solve: async () => (await import('./commands/solve.js')).registerSolveCommand,
  match: async () => (await import('./commands/match.js')).registerMatchCommand,
  simulate: async () => (await import('./commands/simulate.js')).registerSimulateCommand,
};

/** The program with the given commands registered (all of them, unless only names one). */
export async function buildProgram(commands: CommandLoaders, only?: string): Promise<Command> {
  const program = new Command('pcloud')
    .description('Personal Cloud: federated home clouds on k3s + KubeVirt')
    .showHelpAfterError()
    .exitOverride();
  const names = only !== undefined && only in commands ? [only] : Object.keys(commands);
  const registers = await Promise.all(names.map((name) => commands[name]!()));
  for (const register of registers) register(program);
  return program;
}

/** Parses argv against commands; sets the exit code (2 for bad input, 1 for failure). */
export async function runCli(argv: string[], commands: CommandLoaders): Promise<void> {
  try {
    const program = await buildProgram(commands, argv[2]);
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
