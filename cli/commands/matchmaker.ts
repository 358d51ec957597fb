import type { Command } from 'commander';
import { runMatchmaker, type MatchmakerConfig } from '../../matchmaker/controller/matchmaker-controller.js';
import { createLogger } from '../../kube/logger.js';
import { PreconditionError } from '../../kube/preflight.js';
import { ConfigError, matchmakerConfigFromOptions, matchmakerOptions } from '../config.js';
import { EXIT_BAD_INPUT } from '../exit-codes.js';

/** `pcloud matchmaker`: run the matchmaker controller against the matchmaker cluster. */
export function registerMatchmakerCommand(program: Command): void {
  const cmd = program
    .command('matchmaker')
    .description(
      "run the matchmaker: solve every peer-* namespace's Offers and Requests and write Assignments (every flag also reads the environment variable shown)",
    );
  for (const o of matchmakerOptions()) cmd.addOption(o);
  cmd.action(async (raw: Record<string, unknown>) => {
    let config: MatchmakerConfig;
    try {
      config = matchmakerConfigFromOptions(raw);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`pcloud matchmaker: ${err.message}\n`);
      process.exitCode = EXIT_BAD_INPUT;
      return;
    }
    const log = createLogger(config.logLevel);
    let mm;
    try {
      mm = await runMatchmaker(config, { log });
    } catch (err) {
      if (!(err instanceof PreconditionError)) throw err;
      process.stderr.write(`pcloud matchmaker: ${err.message}\n`);
      process.exitCode = EXIT_BAD_INPUT;
      log.flush();
      return;
    }
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    });
    await mm.stop();
    log.flush();
  });
}
