/**
 * The join Secret controller: runs the federation controller inside the operator
 * process once this home has joined. It watches the one join Secret
 * (`--join-secret`, default `personal-cloud-system/federation-join`, written by
 * `pcloud federation join`) — a list/watch confined to that name, so RBAC can grant
 * that Secret only — starts the federation controller with the credentials inside,
 * restarts it when the Secret changes and stops it when the Secret goes or this
 * replica stops leading.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { errorMessage } from '../../kube/apply.js';
import { KubeClient, type KubeObject } from '../../kube/client.js';
import type { ReconcileResult, Reconciler } from '../../kube/controller.js';
import type { Informer } from '../../kube/informer.js';
import { Resources } from '../../kube/kinds.js';
import type { Manager } from '../../kube/manager.js';
import type { OperatorMetrics } from '../../kube/metrics.js';
import { FederationController } from './federation-controller.js';
import { JoinFileError, parseJoinKubeconfig } from './join.js';

export interface JoinOptions {
  peer: string;
  secret: { namespace: string; name: string };
  heartbeatMs: number;
}

type SecretObject = KubeObject & { data?: Record<string, string> };

export function setupJoinController(mgr: Manager, o: JoinOptions): JoinSecretReconciler {
  const selector = { namespace: o.secret.namespace, fieldSelector: `metadata.name=${o.secret.name}` };
  const reconciler = new JoinSecretReconciler(
    o,
    mgr.cache<SecretObject>(Resources.Secret, selector),
    mgr.kubeConfig,
    mgr.client,
    mgr.metrics,
  );
  mgr
    .controller(reconciler.name)
    .for(Resources.Secret, selector)
    .withOptions({ workers: 1 })
    .complete(reconciler);
  // A standby must not run the federation controller (two would fight over upstream).
  mgr.onLeadership((leading) => {
    if (!leading) void reconciler.halt(mgr.log);
  });
  return reconciler;
}

export class JoinSecretReconciler implements Reconciler {
  readonly name = 'federation-join';
  private current: { version: string; controller: FederationController; upstream: KubeClient } | undefined;
  private reported = '';

  constructor(
    private readonly o: JoinOptions,
    private readonly secrets: Informer<SecretObject>,
    private readonly kubeConfig: KubeConfig,
    private readonly client: KubeClient,
    private readonly metrics: OperatorMetrics,
  ) {}

  allKeys(): string[] {
    return [`${this.o.secret.namespace}/${this.o.secret.name}`];
  }

  running(): boolean {
    return this.current !== undefined;
  }

  async reconcile(_key: string, log: Logger): Promise<ReconcileResult | void> {
    const secret = this.secrets.get(this.o.secret.name, this.o.secret.namespace);
    const version = secret?.metadata?.resourceVersion ?? '';
    if (this.current && this.current.version === version) return;
    await this.halt(log);
    if (!secret) return;
    const text = Buffer.from(secret.data?.kubeconfig ?? '', 'base64').toString('utf8');
    try {
      const join = parseJoinKubeconfig(
        text,
        `Secret ${this.o.secret.namespace}/${this.o.secret.name} key kubeconfig`,
      );
      if (join.peer !== this.o.peer)
        throw new JoinFileError(`the join Secret is for peer ${join.peer}, but this home is ${this.o.peer}`);
      const kc = new KubeConfig();
      kc.loadFromString(text);
      const upstream = await KubeClient.fromKubeConfig(kc);
      const controller = new FederationController({
        peer: this.o.peer,
        local: { kubeConfig: this.kubeConfig, client: this.client },
        upstream: { kubeConfig: kc, client: upstream },
        log: log.child({ controller: 'federation' }),
        metrics: this.metrics,
        heartbeatMs: this.o.heartbeatMs,
      });
      controller.start();
      this.current = { version, controller, upstream };
      this.reported = '';
      log.info({ matchmaker: join.server, namespace: join.namespace }, 'federation controller started');
    } catch (err) {
      // Terminal until the Secret changes (which queues this key again): no retry.
      const msg = errorMessage(err);
      if (msg !== this.reported) log.error({ err: msg }, 'join Secret unusable; federation not started');
      this.reported = msg;
    }
  }

  async halt(log: Logger): Promise<void> {
    const c = this.current;
    this.current = undefined;
    if (!c) return;
    await c.controller.stop();
    c.upstream.close();
    log.info('federation controller stopped');
  }
}
