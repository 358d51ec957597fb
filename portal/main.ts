/** `pcloud portal serve`: the portal of one home, against its API server. */
import type { Logger } from 'pino';
import { EventRecorder } from '../kube/events.js';
import { createLogger } from '../kube/logger.js';
import { clientFor, loadKubeConfig } from '../kube/preflight.js';
import { KubePortalData } from './data.js';
import { readSigningKey } from './keys.js';
import { buildPortal, type RateLimit } from './server.js';

const KUBECONFIG_FLAG = '--kubeconfig (or KUBECONFIG)';

export interface PortalConfig {
  kubeconfig?: string;
  peer: string;
  /** Where the portal's Secrets are and Events about unknown homes go. */
  namespace: string;
  signingKeySecret: string;
  host: string;
  port: number;
  tls?: { cert: string; key: string };
  secureCookies: boolean;
  cookieSecret: string;
  ownerToken?: string;
  publicAddress?: string;
  grantDurations: number[];
  maxGrantsPerPeer: number;
  sessionSeconds: number;
  loginRateLimit: RateLimit;
  grantRateLimit: RateLimit;
  trustProxy: string[];
  sampleIntervalMs: number;
  logLevel: string;
}

export interface RunningPortal {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function runPortal(config: PortalConfig, opts: { log?: Logger } = {}): Promise<RunningPortal> {
  const log = (opts.log ?? createLogger(config.logLevel)).child({ component: 'portal' });
  const kc = loadKubeConfig(config.kubeconfig, KUBECONFIG_FLAG);
  const client = await clientFor(kc, config.kubeconfig, KUBECONFIG_FLAG);
  // Events about cluster-scoped objects (Tenants, the portal's Namespace) live in "default", as the API requires.
  const events = new EventRecorder(client, 'portal', config.peer, log);
  const portal = await buildPortal({
    peer: config.peer,
    data: new KubePortalData(client, events),
    cookieSecret: config.cookieSecret,
    ...(config.ownerToken ? { ownerToken: config.ownerToken } : {}),
    ownLoginKey: async () =>
      (await readSigningKey(client, config.namespace, config.signingKeySecret).catch(() => undefined))
        ?.publicKey,
    ...(config.publicAddress ? { publicAddress: config.publicAddress } : {}),
    grantDurations: config.grantDurations,
    maxGrantsPerPeer: config.maxGrantsPerPeer,
    sessionSeconds: config.sessionSeconds,
    loginRateLimit: config.loginRateLimit,
    grantRateLimit: config.grantRateLimit,
    secureCookies: config.secureCookies,
    trustProxy: config.trustProxy,
    ...(config.tls ? { https: config.tls } : {}),
    eventTarget: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: config.namespace } },
    log,
    sampleIntervalMs: config.sampleIntervalMs,
  });
  const timer = setInterval(() => {
    portal.sample().catch((err: Error) => log.warn({ err: err.message }, 'sample failed'));
  }, config.sampleIntervalMs);
  timer.unref();
  await portal.sample().catch(() => undefined);
  let address: string;
  try {
    address = await portal.app.listen({ host: config.host, port: config.port });
  } catch (err) {
    clearInterval(timer);
    client.close();
    throw err;
  }
  const port = Number(new URL(address).port);
  const scheme = config.tls ? 'https' : 'http';
  const url = `${scheme}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  log.info({ url }, 'portal listening');
  return {
    url,
    port,
    stop: async () => {
      clearInterval(timer);
      await portal.app.close();
      client.close();
      log.info('portal stopped');
    },
  };
}
