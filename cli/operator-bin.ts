#!/usr/bin/env node
/**
 * The operator alone (`node dist/cli/operator-bin.js operator [flags]`), for tests and the
 * benchmark that spawn operator processes: the same command as `bin/pcloud operator`
 * without loading the other sub-commands.
 */
import { Command } from 'commander';
import { registerOperatorCommand } from './commands/operator.js';

const program = new Command('pcloud').showHelpAfterError();
registerOperatorCommand(program);
await program.parseAsync(process.argv);
