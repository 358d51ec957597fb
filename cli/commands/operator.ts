import type { Command } from 'commander';
import { configFromOptions, operatorOptions } from '../config.js';
import { runOperator } from '../../operator/main.js';
import { controllerAction } from './controller-action.js';

/** `pcloud operator`: run the home operator (Tenant and hosted Assignment controllers). */
export function registerOperatorCommand(program: Command): void {
  const cmd = program
    .command('operator')
    .description(
      'run the home operator: Tenants and hosted Assignments become namespaces, private networks, KubeVirt VMs and routes (every flag also reads the environment variable shown)',
    );
  for (const o of operatorOptions()) cmd.addOption(o);
  cmd.action(controllerAction('operator', configFromOptions, (config, log) => runOperator(config, { log })));
}
