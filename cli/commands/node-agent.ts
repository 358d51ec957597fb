import type { Command } from 'commander';
import { ConfigError, nodeAgentConfigFromOptions, nodeAgentOptions } from '../config.js';
import { runNodeAgent } from '../../node-agent/main.js';
import { createLogger } from '../../kube/logger.js';
import { PreconditionError } from '../../kube/preflight.js';
import { EXIT_BAD_INPUT } from '../exit-codes.js';

/** `pcloud node-agent`: one node's tenant segments (bridge + VXLAN) and guard rails. */
export function registerNodeAgentCommand(program: Command): void {
  const cmd = program
    .command('node-agent')
    .description(
      "run the node agent: joins each Tenant's bridge to the other nodes' with a VXLAN device and keeps tenant bridges out of the node with nftables (needs CAP_NET_ADMIN and the host network)",
    );
  for (const o of nodeAgentOptions()) cmd.addOption(o);
  cmd.action(async (raw: Record<string, unknown>) => {
    let config;
    try {
      config = nodeAgentConfigFromOptions(raw);
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`pcloud node-agent: ${err.message}\n`);
        process.exitCode = EXIT_BAD_INPUT;
        return;
      }
      throw err;
    }
    const log = createLogger(config.logLevel);
    let agent;
    try {
      agent = await runNodeAgent(config, { log });
    } catch (err) {
      if (!(err instanceof PreconditionError)) throw err;
      process.stderr.write(`pcloud node-agent: ${err.message}\n`);
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
    await agent.stop();
    log.flush();
  });
}
