/**
 * The manager of a controller process, after controller-runtime's: one shared informer
 * per (kind, namespace, selector), controllers that declare what they reconcile, own
 * and watch, leader election, and the /metrics, /healthz and /readyz server.
 *
 *   mgr.controller('tenant')
 *     .for(Resources.Tenant)                                  // the primary kind: key = its name
 *     .owns(Resources.Namespace, byLabel(TENANT_LABEL))      // a child's event queues its owner
 *     .watches(Resources.Offer, (offer) => reconciler.allKeys())
 *     .complete(reconciler);
 *
 * Events only name keys; reconcilers re-read the caches (`mgr.cache(...)`). The
 * informers run all the time, so a standby's caches are warm; the controllers' workers
 * run only while this process holds the Lease (or always, without leader election).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeClient, KubeObject } from './client.js';
import { Controller, type Reconciler } from './controller.js';
import { cacheReadiness, startHealthServer, type HealthServer } from './health-server.js';
import type { EventRecorder } from './events.js';
import { Informer } from './informer.js';
import { Resources, type ResourceType } from './kinds.js';
import { LeaderElector, type LeaderElectionConfig } from './leader-election.js';
import type { OperatorMetrics } from './metrics.js';
import {
  PreconditionMonitor,
  checkPreconditions,
  mergeNamespaces,
  type RequiredNamespace,
} from './preflight.js';

export type EventKind = 'add' | 'update' | 'delete';

export interface CacheOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** Where a builder's events come from: the host's shared cache, or an informer given outright. */
export interface SourceOptions<T extends KubeObject = KubeObject> extends CacheOptions {
  /** Watch this informer (e.g. another cluster's) instead of the host's shared one. */
  informer?: Informer<T>;
}

/** What a ControllerBuilder needs: shared caches, somewhere to register, logs and metrics. */
export interface ControllerHost {
  readonly log: Logger;
  readonly metrics: OperatorMetrics;
  readonly defaultWorkers?: number;
  cache<T extends KubeObject>(type: ResourceType, opts?: CacheOptions): Informer<T>;
  add(controller: Controller): void;
}

export interface ForOptions<T extends KubeObject> extends SourceOptions<T> {
  /** Which objects of the kind this controller reconciles (default: all). */
  predicate?: (obj: T) => boolean;
  /**
   * Called on every event of the kind before the key is queued, for reconcilers that
   * keep derived state over all objects (e.g. an admission result to recompute).
   */
  onEvent?: (obj: T, event: EventKind) => void;
}

/** `namespace/name`, or `name` for cluster-scoped objects: the queue key of an object. */
export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

/** The parts of an object whose change is worth a reconcile (not its status: our own writes). */
function specSignature(o: KubeObject): string {
  const m = o.metadata ?? {};
  return JSON.stringify([m.generation, m.deletionTimestamp, m.finalizers, m.labels]);
}

type Wiring = (controller: Controller) => void;

export class ControllerBuilder {
  private readonly wirings: Wiring[] = [];
  private options: { workers?: number; resyncMs?: number } = {};

  constructor(
    private readonly host: ControllerHost,
    private readonly name: string,
  ) {}

  private source<T extends KubeObject>(type: ResourceType, opts: SourceOptions<T>): Informer<T> {
    return opts.informer ?? this.host.cache<T>(type, opts);
  }

  /**
   * The kind the controller reconciles. Its key is objectKey(obj). Updates that change
   * neither generation, labels, finalizers nor deletion are skipped (status writes).
   */
  for<T extends KubeObject>(type: ResourceType, opts: ForOptions<T> = {}): this {
    const inf = this.source<T>(type, opts);
    this.wirings.push((c) => {
      const seen = new Map<string, string>();
      const handle = (event: EventKind) => (o: T) => {
        opts.onEvent?.(o, event);
        if (opts.predicate && !opts.predicate(o)) return;
        const uid = o.metadata?.uid ?? objectKey(o);
        if (event === 'delete') {
          seen.delete(uid);
        } else {
          const sig = specSignature(o);
          if (event === 'update' && seen.get(uid) === sig) return;
          seen.set(uid, sig);
        }
        c.enqueue(objectKey(o));
      };
      inf.on({ add: handle('add'), update: handle('update'), delete: handle('delete') });
    });
    return this;
  }

  /** A child kind: any event of a child queues the owner's key (undefined: not ours). */
  owns<T extends KubeObject>(
    type: ResourceType,
    ownerKey: (child: T) => string | undefined,
    opts: SourceOptions<T> = {},
  ): this {
    return this.watches<T>(
      type,
      (child) => {
        const k = ownerKey(child);
        return k === undefined ? [] : [k];
      },
      opts,
    );
  }

  /** Any other kind: an event maps to the keys to reconcile. */
  watches<T extends KubeObject>(
    type: ResourceType,
    map: (obj: T, event: EventKind) => Iterable<string>,
    opts: SourceOptions<T> = {},
  ): this {
    const inf = this.source<T>(type, opts);
    this.wirings.push((c) => {
      const handle = (event: EventKind) => (o: T) => {
        for (const k of map(o, event)) c.enqueue(k);
      };
      inf.on({ add: handle('add'), update: handle('update'), delete: handle('delete') });
    });
    return this;
  }

  withOptions(options: { workers?: number; resyncMs?: number }): this {
    this.options = { ...this.options, ...options };
    return this;
  }

  complete(reconciler: Reconciler): Controller {
    if (reconciler.name !== this.name)
      throw new Error(`controller ${this.name} completed with reconciler ${reconciler.name}`);
    const controller = new Controller(reconciler, this.host.log, this.host.metrics, {
      workers: this.options.workers ?? this.host.defaultWorkers,
      ...(this.options.resyncMs !== undefined ? { resyncMs: this.options.resyncMs } : {}),
    });
    for (const wire of this.wirings) wire(controller);
    this.host.add(controller);
    return controller;
  }
}

export interface ManagerOptions {
  /** Without it, this process leads from the start (one replica). */
  leaderElection?: LeaderElectionConfig;
  /** Default workers per controller. */
  workers?: number;
  metricsPort: number;
  metricsHost?: string;
}

export class Manager implements ControllerHost {
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private readonly controllers: Controller[] = [];
  private readonly leadershipListeners: Array<(leading: boolean) => void> = [];
  private elector: LeaderElector | undefined;
  private server: HealthServer | undefined;
  private leading = false;
  private term = 0;
  private requirements: { kubeconfigFlag: string; namespaces: readonly RequiredNamespace[] } | undefined;
  private monitor: PreconditionMonitor;

  constructor(
    readonly kubeConfig: KubeConfig,
    readonly client: KubeClient,
    readonly log: Logger,
    readonly metrics: OperatorMetrics,
    readonly options: ManagerOptions,
  ) {
    this.monitor = new PreconditionMonitor(log);
  }

  /**
   * What this process needs besides what it caches (kubeconfig flag for the messages,
   * the namespaces it writes into). start() then checks them and every cached kind
   * first (a PreconditionError: one line, exit 2), and afterwards a namespace deleted
   * or a kind no longer served makes /readyz not ready, with one error line and one
   * Warning Event per change.
   */
  require(pre: {
    kubeconfigFlag: string;
    namespaces: readonly RequiredNamespace[];
    events?: EventRecorder;
  }): void {
    this.requirements = { kubeconfigFlag: pre.kubeconfigFlag, namespaces: pre.namespaces };
    this.monitor = new PreconditionMonitor(this.log, pre.events);
    for (const ns of mergeNamespaces(pre.namespaces))
      this.monitor.watchNamespace(this.namespaceCache(ns.name), ns);
  }

  /** The one namespace's informer (metadata.name field selector), shared with controllers that wait for it. */
  namespaceCache(name: string): Informer<KubeObject> {
    return this.cache(Resources.Namespace, { fieldSelector: `metadata.name=${name}` });
  }

  /** The kinds this process caches (each must be served). */
  cachedTypes(): ResourceType[] {
    const types: ResourceType[] = [];
    for (const inf of this.informers.values()) if (!types.includes(inf.type)) types.push(inf.type);
    return types;
  }

  get defaultWorkers(): number | undefined {
    return this.options.workers;
  }

  /** The shared informer of a kind (one per kind, namespace and selectors). */
  cache<T extends KubeObject>(type: ResourceType, opts: CacheOptions = {}): Informer<T> {
    const id = JSON.stringify([
      type.apiVersion,
      type.kind,
      opts.namespace,
      opts.labelSelector,
      opts.fieldSelector,
    ]);
    let inf = this.informers.get(id);
    if (!inf) {
      inf = new Informer<KubeObject>(this.kubeConfig, this.client, type, this.log, {
        ...(opts.namespace ? { namespace: opts.namespace } : {}),
        ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}),
        ...(opts.fieldSelector ? { fieldSelector: opts.fieldSelector } : {}),
        onConnect: () => this.metrics.apiRequests.labels('WATCH', '200').inc(),
        // A kind that stops being served (its CRD removed) cannot come back by retrying.
        onFailure: (err) => this.monitor.informerHooks(type).onFailure(err),
        onRecovered: () => this.monitor.informerHooks(type).onRecovered(),
      });
      this.informers.set(id, inf);
    }
    return inf as unknown as Informer<T>;
  }

  controller(name: string): ControllerBuilder {
    return new ControllerBuilder(this, name);
  }

  /** Registered by ControllerBuilder.complete. */
  add(controller: Controller): void {
    if (this.controllers.some((c) => c.name === controller.name))
      throw new Error(`two controllers named ${controller.name}`);
    this.controllers.push(controller);
  }

  /** Called with true when this process starts leading and false when it stops. */
  onLeadership(listener: (leading: boolean) => void): void {
    this.leadershipListeners.push(listener);
  }

  isLeader(): boolean {
    return this.leading;
  }

  hasSynced(): boolean {
    return [...this.informers.values()].every((i) => i.hasSynced());
  }

  /** Keys queued or in flight over every controller. */
  busy(): number {
    return this.controllers.reduce((n, c) => n + c.busy(), 0);
  }

  /** Queue every key of every controller again (what a new leader does). */
  resyncAll(): void {
    for (const c of this.controllers) c.resync();
  }

  /**
   * Checks the preconditions (when require() named them; throws a PreconditionError
   * before anything starts), then starts the informers, the health server and leader
   * election; returns the metrics port.
   */
  async start(): Promise<number> {
    if (this.requirements)
      await checkPreconditions(this.client, this.kubeConfig.getCurrentCluster()?.server ?? '', {
        kubeconfigFlag: this.requirements.kubeconfigFlag,
        kinds: this.cachedTypes(),
        namespaces: this.requirements.namespaces,
      });
    for (const inf of this.informers.values()) inf.start();
    const election = this.options.leaderElection;
    if (election) {
      this.elector = new LeaderElector(
        this.client,
        election,
        {
          onStartedLeading: () => this.setLeading(true),
          onStoppedLeading: () => this.setLeading(false),
        },
        this.log,
      );
      this.elector.start();
    } else {
      this.setLeading(true);
    }
    const caches = cacheReadiness([...this.informers.values()], () => this.leading);
    this.server = await startHealthServer(
      this.options.metricsPort,
      this.metrics,
      () => {
        const reasons = this.monitor.reasons();
        return reasons.length > 0 ? { ok: false, detail: reasons.join('\n') } : caches();
      },
      this.options.metricsHost,
    );
    return this.server.port;
  }

  async stop(): Promise<void> {
    await this.elector?.stop();
    if (this.leading) this.setLeading(false);
    await this.stopControllers();
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    await this.server?.close();
    this.server = undefined;
  }

  private setLeading(leading: boolean): void {
    this.leading = leading;
    this.metrics.leader.set(leading ? 1 : 0);
    for (const l of this.leadershipListeners) l(leading);
    if (leading) void this.startControllers();
    else void this.stopControllers();
  }

  private async startControllers(): Promise<void> {
    const myTerm = ++this.term;
    await Promise.all([...this.informers.values()].map((i) => i.waitForSync()));
    if (!this.leading || myTerm !== this.term) return;
    for (const c of this.controllers) c.start();
  }

  private async stopControllers(): Promise<void> {
    this.term++;
    await Promise.all(this.controllers.map((c) => c.stop()));
  }
}
