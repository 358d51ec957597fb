/** `pcloud node-agent`: the node agent of one node, against the home's API server. */
import type { Logger } from 'pino';
import { clientFor, loadKubeConfig } from '../kube/preflight.js';
import { EventRecorder } from '../kube/events.js';
import { createLogger } from '../kube/logger.js';
import { Manager } from '../kube/manager.js';
import { OperatorMetrics } from '../kube/metrics.js';
import { setupNodeAgent } from './node-agent.js';
import { setupGrants } from './grants.js';
import type { PortRange } from './grant-plan.js';

const KUBECONFIG_FLAG = '--kubeconfig (or KUBECONFIG)';

export interface NodeAgentConfig {
  kubeconfig?: string;
  /** The Node this agent runs on (the DaemonSet passes spec.nodeName). */
  nodeName: string;
  resyncMs: number;
  metricsPort: number;
  metricsHost: string;
  logLevel: string;
  /** Set on the chief node: realise the portal's grants here (docs/portal.md). */
  grants?: { range: PortRange; maxSeconds: number };
}

export interface RunningNodeAgent {
  metrics: OperatorMetrics;
  metricsPort: number;
  hasSynced(): boolean;
  stop(): Promise<void>;
}

export async function runNodeAgent(
  config: NodeAgentConfig,
  opts: { log?: Logger; defaultMetrics?: boolean } = {},
): Promise<RunningNodeAgent> {
  const log = (opts.log ?? createLogger(config.logLevel)).child({ node: config.nodeName });
  const kc = loadKubeConfig(config.kubeconfig, KUBECONFIG_FLAG);
  const metrics = new OperatorMetrics(opts.defaultMetrics ?? true);
  const client = await clientFor(kc, config.kubeconfig, KUBECONFIG_FLAG, (verb, code) =>
    metrics.apiRequests.labels(verb, String(code)).inc(),
  );
  // No leader election: every node runs its own agent, each the only writer of its node.
  const mgr = new Manager(kc, client, log, metrics, {
    metricsPort: config.metricsPort,
    metricsHost: config.metricsHost,
  });
  const events = new EventRecorder(client, 'node-agent', config.nodeName, log);
  setupNodeAgent(mgr, { nodeName: config.nodeName, resyncMs: config.resyncMs, events });
  if (config.grants)
    setupGrants(mgr, { nodeName: config.nodeName, resyncMs: config.resyncMs, events, ...config.grants });
  mgr.require({ kubeconfigFlag: KUBECONFIG_FLAG, namespaces: [], events });
  let metricsPort: number;
  try {
    metricsPort = await mgr.start();
  } catch (err) {
    client.close();
    throw err;
  }
  log.info({ metricsPort }, 'node agent started');
  return {
    metrics,
    metricsPort,
    hasSynced: () => mgr.hasSynced(),
    stop: async () => {
      // Links and guard rails stay: VMs keep their network while the agent restarts.
      await mgr.stop();
      client.close();
      log.info('node agent stopped');
    },
  };
}
