import type { Command } from 'commander';

/** `pcloud dev up|down`: a local control plane for a person (filled in by the harness work). */
export function registerDevCommand(program: Command): void {
  program.command('dev').description('start or stop a local control plane (.cache/dev/kubeconfig)');
}
