import type { Command } from 'commander';
import { nodeAgentConfigFromOptions, nodeAgentOptions } from '../config.js';
import { runNodeAgent } from '../../node-agent/main.js';
import { controllerAction } from './controller-action.js';

/** `pcloud node-agent`: one node's tenant segments (bridge + VXLAN) and guard rails. */
export function registerNodeAgentCommand(program: Command): void {
  const cmd = program
    .command('node-agent')
    .description(
      "run the node agent: joins each Tenant's bridge to the other nodes' with a VXLAN device and keeps tenant bridges out of the node with nftables (needs CAP_NET_ADMIN and the host network)",
    );
  for (const o of nodeAgentOptions()) cmd.addOption(o);
  cmd.action(
    controllerAction('node-agent', nodeAgentConfigFromOptions, (config, log) =>
      runNodeAgent(config, { log }),
    ),
  );
}
