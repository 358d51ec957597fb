import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Request } from '../../generated/personalcloud.js';
import { SYSTEM_NAMESPACE, peerNameProblem } from '../../api/federation.js';
import type { KubeObject } from '../../kube/client.js';
import { Resources } from '../../kube/kinds.js';
import { clientFor, loadKubeConfig } from '../../kube/preflight.js';
import { MAX_LIFETIME_SECONDS } from '../../portal/assertion.js';
import {
  SIGNING_KEY_SECRET,
  ensureSigningKey,
  loginLink,
  portalUrlFromRequests,
  readSigningKey,
} from '../../portal/keys.js';
import { runPortal } from '../../portal/main.js';
import { portalConfigFromOptions, portalOptions } from '../config.js';
import { controllerAction } from './controller-action.js';
import { EXIT_BAD_INPUT } from '../exit-codes.js';

const USER = /^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$/;

function fail(message: string): void {
  process.stderr.write(`pcloud portal: ${message}\n`);
  process.exitCode = EXIT_BAD_INPUT;
}

async function client(kubeconfig: string | undefined) {
  const kc = loadKubeConfig(kubeconfig, '--kubeconfig');
  return clientFor(kc, kubeconfig, '--kubeconfig');
}

/** `pcloud portal serve|keygen|login-link`: the web portal, its signing key, and sign-in links. */
export function registerPortalCommand(program: Command): void {
  const portal = program
    .command('portal')
    .description(
      "the web portal: guests open their VMs' TCP/UDP ports for their address; the owner's dashboard",
    );

  const serve = portal
    .command('serve', { isDefault: true })
    .description('run the portal (the chart runs it behind the Gateway at portal.<home domain>)');
  for (const o of portalOptions()) serve.addOption(o);
  serve.action(
    controllerAction(
      'portal',
      (raw) => portalConfigFromOptions(raw, (p) => readFileSync(p, 'utf8')),
      (config, log) => runPortal(config, { log }),
    ),
  );

  portal
    .command('keygen')
    .description(
      "make this home's portal signing key (Secret portal-signing-key) if it has none, and print its public key: put it in your Requests as spec.loginKey",
    )
    .option('--kubeconfig <path>', 'kubeconfig of this home (default: $KUBECONFIG or ~/.kube/config)')
    .option('--namespace <name>', 'namespace of the Secret', SYSTEM_NAMESPACE)
    .option('--secret <name>', 'name of the Secret', SIGNING_KEY_SECRET)
    .action(async (o: { kubeconfig?: string; namespace: string; secret: string }) => {
      const c = await client(o.kubeconfig);
      try {
        const { key, created } = await ensureSigningKey(c, o.namespace, o.secret);
        process.stderr.write(
          created
            ? `created Secret ${o.namespace}/${o.secret}\n`
            : `Secret ${o.namespace}/${o.secret} exists\n`,
        );
        process.stdout.write(`${key.publicKey}\n`);
      } catch (err) {
        fail((err as Error).message);
      } finally {
        c.close();
      }
    });

  portal
    .command('login-link')
    .description("print a one-time sign-in link for a user of this home at a host's portal")
    .requiredOption('--user <name>', 'the user (lower-case letters, digits, ".", "_", "-")')
    .requiredOption('--host <peer>', 'the home whose portal the link is for')
    .requiredOption('--peer <name>', "this home's peer name (the user's home)")
    .option(
      '--portal-url <url>',
      "the host's portal (default: https://portal.<domain> from this home's Request placements)",
    )
    .option('--ttl <seconds>', `how long the link is valid (at most ${MAX_LIFETIME_SECONDS})`, '300')
    .option('--kubeconfig <path>', 'kubeconfig of this home (default: $KUBECONFIG or ~/.kube/config)')
    .option('--namespace <name>', 'namespace of the signing key Secret', SYSTEM_NAMESPACE)
    .option('--secret <name>', 'name of the signing key Secret', SIGNING_KEY_SECRET)
    .action(
      async (o: {
        user: string;
        host: string;
        peer: string;
        portalUrl?: string;
        ttl: string;
        kubeconfig?: string;
        namespace: string;
        secret: string;
      }) => {
        const peer = o.peer;
        const peerProblem = peerNameProblem(peer);
        if (peerProblem) return fail(`--peer: ${peerProblem}`);
        if (!USER.test(o.user) || o.user.length > 64)
          return fail(
            `--user must be lower-case letters, digits, ".", "_" or "-" (at most 64), got ${o.user}`,
          );
        const hostProblem = peerNameProblem(o.host);
        if (hostProblem) return fail(`--host: ${hostProblem}`);
        const ttl = Number(o.ttl);
        if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_LIFETIME_SECONDS)
          return fail(`--ttl must be whole seconds from 1 to ${MAX_LIFETIME_SECONDS}, got ${o.ttl}`);
        const c = await client(o.kubeconfig);
        try {
          const key = await readSigningKey(c, o.namespace, o.secret);
          if (!key)
            return fail(
              `no signing key in Secret ${o.namespace}/${o.secret}: run pcloud portal keygen first`,
            );
          let url = o.portalUrl;
          if (!url) {
            const requests = (await c.list<Request & KubeObject>(Resources.Request)).items;
            url = portalUrlFromRequests(requests, peer, o.host);
            if (!url)
              return fail(`none of this home's VMs runs at ${o.host} with a hostname yet: give --portal-url`);
          }
          process.stdout.write(
            `${loginLink(url, key, { home: peer, user: o.user, host: o.host, ttlSeconds: ttl, now: new Date() })}\n`,
          );
        } finally {
          c.close();
        }
      },
    );
}
