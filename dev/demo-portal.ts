/**
 * The demo's portal (issue 11 item 6): one requester home gets a signing key, its public
 * key goes into its Requests (and through the federation onto its hosts' Assignments),
 * and the portal of one of its hosts runs on localhost; the demo prints the portal's URL,
 * a sign-in link for a user of the requester, and the host owner's token.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Assignment, Request } from '../generated/personalcloud.js';
import type { KubeObject } from '../kube/client.js';
import { Resources } from '../kube/kinds.js';
import { ensureSigningKey, loginLink } from '../portal/keys.js';
import { eventually } from './eventually.js';
import { CLI, type LocalFederation } from './federation-harness.js';

const SYSTEM_NAMESPACE = 'personal-cloud-system';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface DemoPortal {
  url: string;
  link: string;
  ownerToken: string;
  requester: string;
  host: string;
  stop(): Promise<void>;
}

export async function startDemoPortal(fed: LocalFederation, requester: string): Promise<DemoPortal> {
  const home = fed.home(requester);
  const requests = (await home.client.list<Request & KubeObject>(Resources.Request)).items.filter(
    (r) => r.spec.peer === requester,
  );
  const host = requests.flatMap((r) => r.status?.placements ?? []).find((p) => p.units > 0)?.peer;
  if (!host) throw new Error(`none of ${requester}'s Requests is placed: no host to sign in at`);
  const { key } = await ensureSigningKey(home.client, SYSTEM_NAMESPACE);
  for (const r of requests)
    await home.client.mergePatch(Resources.Request, r.metadata!.name!, r.metadata!.namespace, {
      spec: { loginKey: key.publicKey },
    });
  const hostClient = fed.home(host).client;
  await eventually(
    `${requester}'s login key on ${host}'s Assignments`,
    async () =>
      (await hostClient.list<Assignment & KubeObject>(Resources.Assignment)).items.some(
        (a) => a.spec.requester === requester && a.spec.host === host && a.spec.loginKey === key.publicKey,
      ),
    { timeoutMs: 60_000, intervalMs: 500 },
  );

  const port = await freePort();
  const ownerToken = randomBytes(18).toString('base64url');
  const log = createWriteStream(join(fed.logDir, `portal-${host}.log`), { flags: 'a' });
  const child: ChildProcess = spawn(
    process.execPath,
    [
      CLI,
      'portal',
      'serve',
      `--kubeconfig=${fed.home(host).cp.kubeconfigPath}`,
      `--peer=${host}`,
      '--listen-host=127.0.0.1',
      `--listen-port=${port}`,
      '--public-address=127.0.0.1',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Secrets by environment, as the chart passes them (not on the command line).
      env: {
        ...process.env,
        PCLOUD_COOKIE_SECRET: randomBytes(36).toString('base64url'),
        PCLOUD_OWNER_TOKEN: ownerToken,
      },
    },
  );
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  // Browsers keep Secure cookies on http://localhost (a secure context).
  const url = `http://localhost:${port}`;
  await eventually(
    `the portal of ${host} on ${url}`,
    async () => {
      if (child.exitCode !== null)
        throw new Error(`the portal exited (${child.exitCode}); see ${fed.logDir}`);
      try {
        return (await fetch(`${url}/healthz`)).ok;
      } catch {
        return false;
      }
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  return {
    url,
    link: loginLink(url, key, { home: requester, user: 'demo', host, ttlSeconds: 600, now: new Date() }),
    ownerToken,
    requester,
    host,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
