/**
 * Kubernetes Events (events.k8s.io/v1) about the objects the operator reconciles.
 * The same (object, reason, message) is recorded once per window so a level-based
 * loop that keeps finding the same problem does not flood the API server.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { KubeApi, KubeObject } from './client.js';

export type EventType = 'Normal' | 'Warning';

export class EventRecorder {
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly client: KubeApi,
    private readonly controller: string,
    private readonly instance: string,
    private readonly log: Logger,
    /** Namespace for events about cluster-scoped objects. */
    private readonly clusterScopedNamespace = 'default',
    private readonly dedupeWindowMs = 10 * 60_000,
  ) {}

  /** Records the event; never throws (an event is best effort). */
  async record(
    regarding: KubeObject,
    type: EventType,
    reason: string,
    note: string,
    action = 'Reconcile',
  ): Promise<void> {
    const meta = regarding.metadata ?? {};
    const dedupeKey = `${meta.uid ?? ''}|${reason}|${note}`;
    const now = Date.now();
    const last = this.recent.get(dedupeKey);
    if (last !== undefined && now - last < this.dedupeWindowMs) return;
    this.recent.set(dedupeKey, now);
    if (this.recent.size > 10_000) {
      for (const [k, t] of this.recent) if (now - t >= this.dedupeWindowMs) this.recent.delete(k);
    }
    const namespace = meta.namespace ?? this.clusterScopedNamespace;
    const name = `${meta.name ?? 'object'}.${now.toString(16)}${randomBytes(3).toString('hex')}`
      .slice(-253)
      .replace(/^[.-]+/, '');
    try {
      await this.client.create({
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name, namespace },
        eventTime: new Date(now).toISOString().replace('Z', '000Z'),
        reportingController: `personalcloud.io/${this.controller}`,
        reportingInstance: this.instance.slice(0, 128),
        action,
        reason,
        note: note.slice(0, 1024),
        type,
        regarding: {
          apiVersion: regarding.apiVersion,
          kind: regarding.kind,
          name: meta.name,
          namespace: meta.namespace,
          uid: meta.uid,
          resourceVersion: meta.resourceVersion,
        },
      });
    } catch (err) {
      this.recent.delete(dedupeKey);
      this.log.warn(
        { err: err instanceof Error ? err.message : String(err), reason },
        'could not record event',
      );
    }
  }
}
