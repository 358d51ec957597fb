/**
 * The join kubeconfig a home receives from `pcloud federation invite`, checked
 * before it is stored as the Secret `personal-cloud-system/federation-join` (key
 * `kubeconfig`), where the federation controller finds it.
 */
import { X509Certificate } from 'node:crypto';
import { parse } from 'yaml';
import { JOIN_SECRET, SYSTEM_NAMESPACE, peerOfNamespace } from '../../api/federation.js';
import type { KubeClient } from '../../kube/client.js';
import { Resources as R } from '../../kube/kinds.js';
import { applyObject } from '../../kube/apply.js';

export class JoinFileError extends Error {}

export interface JoinFile {
  peer: string;
  namespace: string;
  server: string;
  token: string;
}

type Named<T> = { name?: string } & T;

/** Validates a join kubeconfig; the error names what is wrong. */
export function parseJoinKubeconfig(text: string, source = 'join file'): JoinFile {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new JoinFileError(`${source}: not YAML (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof doc !== 'object' || doc === null) throw new JoinFileError(`${source}: not a kubeconfig`);
  const kc = doc as {
    kind?: string;
    'current-context'?: string;
    contexts?: Named<{ context?: { cluster?: string; user?: string; namespace?: string } }>[];
    clusters?: Named<{ cluster?: { server?: string; 'certificate-authority-data'?: string } }>[];
    users?: Named<{ user?: { token?: string } }>[];
  };
  if (kc.kind !== 'Config') throw new JoinFileError(`${source}: kind must be Config, got ${String(kc.kind)}`);
  const ctxName = kc['current-context'];
  if (!ctxName) throw new JoinFileError(`${source}: current-context is missing`);
  const ctx = kc.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx) throw new JoinFileError(`${source}: contexts has no context named ${ctxName}`);
  const namespace = ctx.namespace ?? '';
  const peer = peerOfNamespace(namespace);
  if (!peer)
    throw new JoinFileError(
      `${source}: context ${ctxName}: namespace must be peer-<name> (the peer's namespace at the matchmaker), got ${JSON.stringify(namespace)}`,
    );
  const cluster = kc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster) throw new JoinFileError(`${source}: clusters has no cluster named ${String(ctx.cluster)}`);
  let url: URL;
  try {
    url = new URL(cluster.server ?? '');
  } catch {
    throw new JoinFileError(
      `${source}: clusters[${String(ctx.cluster)}].server is not a URL: ${String(cluster.server)}`,
    );
  }
  if (url.protocol !== 'https:')
    throw new JoinFileError(
      `${source}: clusters[${String(ctx.cluster)}].server must be https, got ${url.href}`,
    );
  const ca = cluster['certificate-authority-data'];
  if (!ca)
    throw new JoinFileError(
      `${source}: clusters[${String(ctx.cluster)}].certificate-authority-data is missing`,
    );
  try {
    new X509Certificate(Buffer.from(ca, 'base64'));
  } catch {
    throw new JoinFileError(
      `${source}: clusters[${String(ctx.cluster)}].certificate-authority-data is not a base64 PEM certificate`,
    );
  }
  const token = kc.users?.find((u) => u.name === ctx.user)?.user?.token;
  if (!token) throw new JoinFileError(`${source}: users[${String(ctx.user)}].user.token is missing`);
  if (!/^[A-Za-z0-9._-]+$/.test(token))
    throw new JoinFileError(`${source}: users[${String(ctx.user)}].user.token is not a bearer token`);
  return { peer, namespace, server: url.href.replace(/\/$/, ''), token };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Stores the (validated) join kubeconfig at the home. */
export async function storeJoinSecret(client: KubeClient, text: string): Promise<JoinFile> {
  const join = parseJoinKubeconfig(text);
  await applyObject(
    client,
    R.Namespace,
    { metadata: { name: SYSTEM_NAMESPACE, labels: { 'app.kubernetes.io/managed-by': 'personal-cloud' } } },
    'pcloud-federation-join',
  );
  await applyObject(
    client,
    R.Secret,
    {
      metadata: {
        name: JOIN_SECRET,
        namespace: SYSTEM_NAMESPACE,
        labels: { 'app.kubernetes.io/managed-by': 'personal-cloud', 'personalcloud.io/peer': join.peer },
      },
      type: 'Opaque',
      data: { kubeconfig: b64(text), peer: b64(join.peer) },
    },
    'pcloud-federation-join',
  );
  return join;
}
