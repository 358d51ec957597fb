import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { OPERATOR_FLAGS } from '../../cli/config.js';
import { applyObject } from '../../kube/apply.js';
import { KubeClient } from '../../kube/client.js';
import { Resources } from '../../kube/kinds.js';
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

/**
 * What `pcloud operator`'s defaults need besides the CRDs, which the operator does not
 * create itself (docs/operator.md "First run"): the namespace of its Lease and Gateway.
 */
export const OPERATOR_NAMESPACES = [
  ...new Set([OPERATOR_FLAGS.leaseNamespace.default, OPERATOR_FLAGS.gatewayNamespace.default]),
];

/** Prepares a fresh control plane for the docs' next command, `bin/pcloud operator --peer ...`. */
export async function prepareForOperator(kubeconfigPath: string): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const client = await KubeClient.fromKubeConfig(kc);
  try {
    for (const name of OPERATOR_NAMESPACES)
      await applyObject(client, Resources.Namespace, { metadata: { name } }, 'pcloud-dev');
  } finally {
    client.close();
  }
}

function usage(server: string): string {
  const kubeconfig = join(DEV_DIR, 'kubeconfig');
  return [
    `Local control plane is up at ${server} (etcd, kube-apiserver, kube-controller-manager;`,
    'Personal Cloud CRDs plus KubeVirt, Multus, Cilium, Gateway API and Argo CD CRDs installed;',
    `namespace ${OPERATOR_NAMESPACES.join(', ')} for the operator's Lease and Gateway).`,
    '',
    'Use it:',
    `  export KUBECONFIG=${kubeconfig}`,
    `  export PATH=${BIN_DIR}:$PATH`,
    `  kubectl apply --server-side -f ${join(repoRoot, 'examples')}`,
    '  kubectl get personalcloud -A',
    '  bin/pcloud operator --peer alice --metrics-port 0   # a home operator against it (docs/operator.md)',
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
      await prepareForOperator(cp.kubeconfigPath);
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
