/** /metrics, /healthz (the process serves) and /readyz (informers synced). */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OperatorMetrics } from './metrics.js';

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

/** /readyz for a controller process: ready once every informer has synced its cache. */
export function cacheReadiness(
  informers: readonly { hasSynced(): boolean; type: { kind: string } }[],
  isLeader: () => boolean,
): () => { ok: boolean; detail: string } {
  return () => {
    const pending = informers.filter((i) => !i.hasSynced()).map((i) => i.type.kind);
    return pending.length === 0
      ? { ok: true, detail: `ok (${isLeader() ? 'leader' : 'standby'})` }
      : { ok: false, detail: `waiting for caches: ${pending.join(', ')}` };
  };
}

export async function startHealthServer(
  port: number,
  metrics: OperatorMetrics,
  ready: () => { ok: boolean; detail: string },
  host = '0.0.0.0',
): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/livez') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const r = ready();
      res.writeHead(r.ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(`${r.detail}\n`);
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
