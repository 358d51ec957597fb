import type { Command } from 'commander';
import { runMatchmaker } from '../../matchmaker/controller/matchmaker-controller.js';
import { matchmakerConfigFromOptions, matchmakerOptions } from '../config.js';
import { controllerAction } from './controller-action.js';

/** `pcloud matchmaker`: run the matchmaker controller against the matchmaker cluster. */
export function registerMatchmakerCommand(program: Command): void {
  const cmd = program
    .command('matchmaker')
    .description(
      "run the matchmaker: solve every peer-* namespace's Offers and Requests and write Assignments (every flag also reads the environment variable shown)",
    );
  for (const o of matchmakerOptions()) cmd.addOption(o);
  cmd.action(
    controllerAction('matchmaker', matchmakerConfigFromOptions, (config, log) =>
      runMatchmaker(config, { log }),
    ),
  );
}
