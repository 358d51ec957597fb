/**
 * Runs the federation controller inside the operator process once this home has
 * joined: it looks for the join Secret (`personal-cloud-system/federation-join`, or
 * PCLOUD_JOIN_SECRET=<namespace>/<name>) every few seconds, starts the controller
 * with the credentials inside, restarts it when the Secret changes and stops it when
 * the Secret goes or this replica stops leading.
 *
 * PCLOUD_HEARTBEAT_INTERVAL (seconds, default 10) sets how often the heartbeat Lease
 * is renewed; keep it well below the matchmaker's --peer-grace.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { JOIN_SECRET, SYSTEM_NAMESPACE } from '../../api/federation.js';
import { errorMessage } from '../../kube/apply.js';
import { KubeClient, type KubeObject } from '../../kube/client.js';
import type { OperatorMetrics } from '../../kube/metrics.js';
import { FederationController } from './federation-controller.js';
import { JoinFileError, parseJoinKubeconfig } from './join.js';
import { Resources as R } from '../../kube/kinds.js';

export interface FederationHookOptions {
  peer: string;
  kubeConfig: KubeConfig;
  client: KubeClient;
  log: Logger;
  metrics: OperatorMetrics;
  isLeader?: () => boolean;
  pollMs?: number;
}

export interface FederationHandle {
  running(): boolean;
  stop(): Promise<void>;
}

export function heartbeatIntervalMs(): number {
  const v = Number(process.env.PCLOUD_HEARTBEAT_INTERVAL ?? 10);
  return Number.isFinite(v) && v > 0 ? Math.round(v * 1000) : 10_000;
}

export function startFederationWhenJoined(o: FederationHookOptions): FederationHandle {
  const log = o.log.child({ controller: 'federation' });
  const [secretNs, secretName] = (
    process.env.PCLOUD_JOIN_SECRET ?? `${SYSTEM_NAMESPACE}/${JOIN_SECRET}`
  ).split('/');
  let current: { version: string; controller: FederationController; upstream: KubeClient } | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> = Promise.resolve();
  let reported = '';

  const halt = async (): Promise<void> => {
    const c = current;
    current = undefined;
    if (!c) return;
    await c.controller.stop();
    c.upstream.close();
    log.info('federation controller stopped');
  };

  const tick = async (): Promise<void> => {
    const leading = o.isLeader?.() ?? true;
    let secret: (KubeObject & { data?: Record<string, string> }) | undefined;
    try {
      secret = leading ? await o.client.get(R.Secret, secretName ?? JOIN_SECRET, secretNs) : undefined;
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'could not read the join Secret');
      return;
    }
    const version = secret?.metadata?.resourceVersion ?? '';
    if (current && current.version === version) return;
    await halt();
    if (!secret) return;
    const text = Buffer.from(secret.data?.kubeconfig ?? '', 'base64').toString('utf8');
    try {
      const join = parseJoinKubeconfig(text, `Secret ${secretNs}/${secretName} key kubeconfig`);
      if (join.peer !== o.peer)
        throw new JoinFileError(`the join Secret is for peer ${join.peer}, but this home is ${o.peer}`);
      const kc = new KubeConfig();
      kc.loadFromString(text);
      const upstream = await KubeClient.fromKubeConfig(kc);
      const controller = new FederationController({
        peer: o.peer,
        local: { kubeConfig: o.kubeConfig, client: o.client },
        upstream: { kubeConfig: kc, client: upstream },
        log,
        metrics: o.metrics,
        heartbeatMs: heartbeatIntervalMs(),
      });
      controller.start();
      current = { version, controller, upstream };
      reported = '';
      log.info({ matchmaker: join.server, namespace: join.namespace }, 'federation controller started');
    } catch (err) {
      const msg = errorMessage(err);
      if (msg !== reported) log.error({ err: msg }, 'join Secret unusable; federation not started');
      reported = msg;
    }
  };

  const loop = (): void => {
    if (stopped) return;
    ticking = tick().finally(() => {
      if (!stopped) timer = setTimeout(loop, o.pollMs ?? 3_000);
    });
  };
  loop();
  return {
    running: () => current !== undefined,
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await ticking;
      await halt();
    },
  };
}
