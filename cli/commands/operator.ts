import type { Command } from 'commander';
import { ConfigError, configFromOptions, operatorOptions } from '../config.js';
import { runOperator } from '../../operator/main.js';
import { createLogger } from '../../kube/logger.js';
import { PreconditionError } from '../../kube/preflight.js';
import { EXIT_BAD_INPUT } from '../exit-codes.js';

/** `pcloud operator`: run the home operator (Tenant and hosted Assignment controllers). */
export function registerOperatorCommand(program: Command): void {
  const cmd = program
    .command('operator')
    .description(
      'run the home operator: Tenants and hosted Assignments become namespaces, private networks, KubeVirt VMs and routes (every flag also reads the environment variable shown)',
    );
  for (const o of operatorOptions()) cmd.addOption(o);
  cmd.action(async (raw: Record<string, unknown>) => {
    let config;
    try {
      config = configFromOptions(raw);
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`pcloud operator: ${err.message}\n`);
        process.exitCode = EXIT_BAD_INPUT;
        return;
      }
      throw err;
    }
    const log = createLogger(config.logLevel);
    let op;
    try {
      op = await runOperator(config, { log });
    } catch (err) {
      if (!(err instanceof PreconditionError)) throw err;
      // Not the caller's typo but the same fix: one line naming what is missing, exit 2.
      process.stderr.write(`pcloud operator: ${err.message}\n`);
      process.exitCode = EXIT_BAD_INPUT;
      log.flush();
      return;
    }
    await new Promise<void>((resolve) => {
      const shutdown = (signal: string): void => {
        log.info({ signal }, 'shutting down');
        resolve();
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
    await op.stop();
    log.flush();
  });
}
