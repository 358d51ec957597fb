/** Prometheus metrics of one operator process (its own registry, so tests can run several). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: 'pcloud_reconcile_total',
    help: 'Reconciles run, by controller and result (success, error, requeue).',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'pcloud_reconcile_errors_total',
    help: 'Reconciles that failed with a retriable error and were requeued with backoff.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'pcloud_workqueue_depth',
    help: 'Keys waiting in the work queue.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'pcloud_reconcile_duration_seconds',
    help: 'Time one reconcile took.',
    labelNames: ['controller'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly apiRequests = new Counter({
    name: 'pcloud_api_requests_total',
    help: 'Requests made to the Kubernetes API, by verb and HTTP status code (0 = no response). Watches count as GET code 200.',
    labelNames: ['verb', 'code'] as const,
    registers: [this.registry],
  });
  readonly apiWrites = new Counter({
    name: 'pcloud_api_writes_total',
    help: 'Writes (POST, PUT, PATCH, DELETE) to the Kubernetes API, by verb, resource (plural.group, /status for the subresource) and HTTP status code.',
    labelNames: ['verb', 'resource', 'code'] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'pcloud_leader',
    help: '1 while this process holds the leader Lease.',
    registers: [this.registry],
  });

  constructor(defaultMetrics = true) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The KubeClient observer that counts every request (and each write by resource). */
  observeRequest(): (verb: string, code: number, path: string) => void {
    return (verb, code, path) => {
      this.apiRequests.labels(verb, String(code)).inc();
      if (verb !== 'GET') this.apiWrites.labels(verb, resourceOfPath(path), String(code)).inc();
    };
  }

  async apiRequestCount(): Promise<number> {
    const m = await this.apiRequests.get();
    return m.values.reduce((s, v) => s + v.value, 0);
  }
}

/**
 * `services`, `virtualmachines.kubevirt.io`, `tenants.personalcloud.io/status` from an
 * API path (`/api/v1/namespaces/ns/services/x`, `/apis/group/version/.../plural/name/status`).
 */
export function resourceOfPath(path: string): string {
  const parts = path.split('/').filter(Boolean);
  const core = parts[0] === 'api';
  const group = core ? '' : (parts[1] ?? '');
  let rest = parts.slice(core ? 2 : 3);
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  const [plural = '', , sub] = rest;
  return `${plural}${group ? `.${group}` : ''}${sub ? `/${sub}` : ''}`;
}
