import type { Command } from 'commander';
import { stringify } from 'yaml';
import { matchManifests, parseManifests } from '../../matchmaker/manifests/match.js';
import { readInput, runBadInputAware, writeAll } from './solve.js';

export function matchCommand(opts: { file: string }): string {
  const assignments = matchManifests(parseManifests(readInput('-f', opts.file).toString('utf8')));
  return assignments.map((a) => stringify(a)).join('---\n');
}

/** `pcloud match -f FILE`: Offer and Request manifests in, Assignment manifests out. */
export function registerMatchCommand(program: Command): void {
  program
    .command('match')
    .description(
      'Offer and Request manifests (multi-document YAML) in, the Assignments the matchmaker would write out',
    )
    .requiredOption('-f, --file <file>', 'manifests file, or - for standard input')
    .action((opts: { file: string }) => {
      runBadInputAware('match', () => writeAll(matchCommand(opts)));
    });
}
