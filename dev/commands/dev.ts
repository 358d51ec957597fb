import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BIN_DIR, ControlPlane } from '../control-plane.js';
import { repoRoot } from '../paths.js';

export const DEV_DIR = join(repoRoot, '.cache', 'dev');

/** The server of the running dev control plane, or undefined when none is running. */
async function runningServer(): Promise<string | undefined> {
  const statePath = join(DEV_DIR, 'state.json');
  if (!existsSync(statePath)) return undefined;
  const { server } = JSON.parse(readFileSync(statePath, 'utf8')) as { server: string };
  try {
    // Any HTTP answer (401 without credentials) means the API server is listening.
    await fetch(`${server}/readyz`, { signal: AbortSignal.timeout(2000) }).catch((err: unknown) => {
      // Node's fetch rejects the self-signed certificate; that still proves a TLS listener.
      if (String((err as { cause?: unknown }).cause).includes('certificate')) return;
      throw err;
    });
    return server;
  } catch {
    return undefined;
  }
}

function usage(server: string): string {
  const kubeconfig = join(DEV_DIR, 'kubeconfig');
  return [
    `Local control plane is up at ${server} (etcd, kube-apiserver, kube-controller-manager;`,
    'Personal Cloud CRDs plus KubeVirt, Multus, Cilium, Gateway API and Argo CD CRDs installed).',
    '',
    'Use it:',
    `  export KUBECONFIG=${kubeconfig}`,
    `  export PATH=${BIN_DIR}:$PATH`,
    `  kubectl apply --server-side -f ${join(repoRoot, 'examples')}`,
    '  kubectl get personalcloud -A',
    '',
    'Stop it and delete its data: bin/pcloud dev down',
  ].join('\n');
}

/** `pcloud dev up|down`: a local control plane for a person, kubeconfig in .cache/dev/kubeconfig. */
export function registerDevCommand(program: Command): void {
  const dev = program
    .command('dev')
    .description('start or stop a local control plane (.cache/dev/kubeconfig)');
  dev
    .command('up')
    .description('start etcd, kube-apiserver and kube-controller-manager with every CRD installed')
    .action(async () => {
      const existing = await runningServer();
      if (existing !== undefined) {
        process.stdout.write(`${usage(existing)}\n(it was already running)\n`);
        return;
      }
      await ControlPlane.stopDir(DEV_DIR); // leftovers of a dead one (e.g. after a reboot)
      const cp = await ControlPlane.start({ name: 'dev', dir: DEV_DIR, detached: true });
      process.stdout.write(`${usage(cp.server)}\n`);
    });
  dev
    .command('down')
    .description('stop the local control plane and delete its data')
    .action(async () => {
      const stopped = await ControlPlane.stopDir(DEV_DIR);
      process.stdout.write(
        stopped
          ? 'Local control plane stopped and its data deleted.\n'
          : 'No local control plane was running.\n',
      );
    });
}
