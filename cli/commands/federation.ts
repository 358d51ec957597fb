import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import type { Command } from 'commander';
import {
  DEFAULT_PEER_LIMITS,
  InviteError,
  invitePeer,
  renderJoinKubeconfig,
  type PeerLimits,
} from '../../matchmaker/controller/invite.js';
import { JoinFileError, storeJoinSecret } from '../../operator/federation/join.js';
import { KubeClient } from '../../kube/client.js';
import { EXIT_BAD_INPUT } from '../exit-codes.js';

function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

function caOf(kc: KubeConfig): string | undefined {
  const c = kc.getCurrentCluster();
  if (c?.caData) return Buffer.from(c.caData, 'base64').toString('utf8');
  if (c?.caFile) return readFileSync(c.caFile, 'utf8');
  return undefined;
}

const LIMIT_KEYS = Object.keys(DEFAULT_PEER_LIMITS) as (keyof PeerLimits)[];

/** `pcloud federation invite|join`: let a home into the federation. */
export function registerFederationCommand(program: Command): void {
  const fed = program.command('federation').description('invite homes to a matchmaker cluster and join them');
  const invite = fed
    .command('invite <peer>')
    .description(
      'run against the matchmaker cluster: create namespace peer-<peer>, its ServiceAccount, Role, RoleBinding and token, and print a join kubeconfig (idempotent)',
    )
    .option(
      '--kubeconfig <path>',
      'kubeconfig of the matchmaker cluster (default: $KUBECONFIG or ~/.kube/config)',
    )
    .option('--server <url>', 'API server URL the home will reach (default: the one in the kubeconfig)')
    .option(
      '--domain <domain>',
      "the peer's home domain (its operator's --home-domain): the matchmaker shows its VM hostnames to requesters only under <requester>.<domain>",
    );
  for (const k of LIMIT_KEYS)
    invite.option(
      `--max-${k} <n>`,
      `how many ${k} the peer's namespace may hold (ResourceQuota peer)`,
      String(DEFAULT_PEER_LIMITS[k]),
    );
  invite.action(
    async (
      peer: string,
      o: { kubeconfig?: string; server?: string; domain?: string } & Record<string, string>,
    ) => {
      const kc = loadKubeConfig(o.kubeconfig);
      const server = o.server ?? kc.getCurrentCluster()?.server;
      if (!server) {
        process.stderr.write('pcloud federation invite: no --server and no cluster in the kubeconfig\n');
        process.exitCode = EXIT_BAD_INPUT;
        return;
      }
      const client = await KubeClient.fromKubeConfig(kc);
      try {
        const limits: Partial<PeerLimits> = {};
        for (const k of LIMIT_KEYS) {
          const v = o[`max${k[0]!.toUpperCase()}${k.slice(1)}`];
          if (v !== undefined) limits[k] = /^\d+$/.test(v) ? Number(v) : NaN;
        }
        const creds = await invitePeer(client, peer, server, caOf(kc), {
          limits,
          ...(o.domain !== undefined ? { domain: o.domain } : {}),
        });
        process.stdout.write(renderJoinKubeconfig(creds));
      } catch (err) {
        if (err instanceof InviteError) {
          process.stderr.write(`pcloud federation invite: ${err.message}\n`);
          process.exitCode = EXIT_BAD_INPUT;
          return;
        }
        throw err;
      } finally {
        client.close();
      }
    },
  );
  fed
    .command('join <file>')
    .description(
      'run at the home: check the join kubeconfig and store it as Secret personal-cloud-system/federation-join for the federation controller (`-` reads stdin)',
    )
    .option('--kubeconfig <path>', 'kubeconfig of the home cluster (default: $KUBECONFIG or ~/.kube/config)')
    .action(async (file: string, o: { kubeconfig?: string }) => {
      let text: string;
      try {
        text = readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (err) {
        process.stderr.write(`pcloud federation join: cannot read ${file}: ${(err as Error).message}\n`);
        process.exitCode = EXIT_BAD_INPUT;
        return;
      }
      const client = await KubeClient.fromKubeConfig(loadKubeConfig(o.kubeconfig));
      try {
        const join = await storeJoinSecret(client, text);
        process.stdout.write(
          `joined as peer ${join.peer} (matchmaker ${join.server}, namespace ${join.namespace}); Secret personal-cloud-system/federation-join stored\n`,
        );
      } catch (err) {
        if (err instanceof JoinFileError) {
          process.stderr.write(`pcloud federation join: ${err.message.replace(/^join file/, file)}\n`);
          process.exitCode = EXIT_BAD_INPUT;
          return;
        }
        throw err;
      } finally {
        client.close();
      }
    });
}
