import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BIN_DIR, ControlPlane } from '../../e2e/control-plane.js';
import { repoRoot } from '../../e2e/paths.js';

export const EXAMPLES_DIR = join(repoRoot, 'examples');

interface DemoOptions {
  once?: boolean;
}

async function kubectlOrThrow(cp: ControlPlane, args: string[]): Promise<string> {
  const res = await cp.kubectl(args);
  if (res.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed:\n${res.stderr}`);
  return res.stdout;
}

/**
 * `pcloud demo`: the main job on an embedded default. Today it starts one real local
 * control plane with every CRD, applies examples/ and shows what the API server made of
 * them; the federation (matchmaker + several homes) grows into it with the federation work.
 */
export async function runDemo(opts: DemoOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const say = (line = ''): void => void out.write(`${line}\n`);
  say('Starting a local control plane (etcd, kube-apiserver, kube-controller-manager) ...');
  const started = Date.now();
  const cp = await ControlPlane.start({ name: 'demo' });
  try {
    say(`Ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${cp.server}`);
    const files = readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith('.yaml'));
    say(`\nApplying examples/ (${files.join(', ')}) with kubectl apply --server-side:`);
    say((await kubectlOrThrow(cp, ['apply', '--server-side', '-f', EXAMPLES_DIR])).trimEnd());
    say('\nkubectl get personalcloud -A');
    say((await kubectlOrThrow(cp, ['get', 'personalcloud', '-A'])).trimEnd());
    const interactive = opts.once !== true && process.stdin.isTTY === true;
    if (!interactive) return;
    say(`\nThe control plane keeps running until Ctrl-C. In another shell:`);
    say(`  export KUBECONFIG=${cp.kubeconfigPath} PATH=${BIN_DIR}:$PATH`);
    say('  kubectl get personalcloud -A');
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    say('\nStopping ...');
  } finally {
    await cp.stop();
  }
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('start a local Personal Cloud, apply examples/ and show the result (Ctrl-C stops it)')
    .option('--once', 'exit after showing the result (the default when stdin is not a terminal)')
    .action((opts: DemoOptions) => runDemo(opts));
}
