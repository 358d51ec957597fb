/**
 * The life of a long-running command (operator, matchmaker, node-agent, portal serve):
 * flags to config (a ConfigError is one line and exit 2), start (a PreconditionError —
 * something missing in the cluster — is one line and exit 2 too), run until SIGTERM or
 * SIGINT, stop.
 */
import type { Logger } from 'pino';
import { createLogger } from '../../kube/logger.js';
import { PreconditionError } from '../../kube/preflight.js';
import { ConfigError } from '../config.js';
import { EXIT_BAD_INPUT } from '../exit-codes.js';

export function controllerAction<C extends { logLevel: string }>(
  name: string,
  parse: (raw: Record<string, unknown>) => C,
  run: (config: C, log: Logger) => Promise<{ stop(): Promise<void> }>,
): (raw: Record<string, unknown>) => Promise<void> {
  const fail = (message: string): void => {
    process.stderr.write(`pcloud ${name}: ${message}\n`);
    process.exitCode = EXIT_BAD_INPUT;
  };
  return async (raw) => {
    let config: C;
    try {
      config = parse(raw);
    } catch (err) {
      if (err instanceof ConfigError) return fail(err.message);
      throw err;
    }
    const log = createLogger(config.logLevel);
    let running;
    try {
      running = await run(config, log);
    } catch (err) {
      if (!(err instanceof PreconditionError)) throw err;
      log.flush();
      return fail(err.message);
    }
    await new Promise<void>((resolve) => {
      const shutdown = (signal: string): void => {
        log.info({ signal }, 'shutting down');
        resolve();
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
    await running.stop();
    log.flush();
  };
}
