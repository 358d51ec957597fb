/**
 * `pcloud federation invite <peer>`: everything a peer needs in the matchmaker
 * cluster, and the join kubeconfig that carries its credentials.
 *
 * RBAC is one Role in the peer's own namespace and nothing cluster-wide, so a peer's
 * token can touch only `peer-<name>`: its Offers, Requests and Lease (read-write),
 * the Assignments it hosts (read, plus their /status to report provisioning), and
 * the status the matchmaker writes on its Offers and Requests (read).
 *
 * The token is a legacy ServiceAccount token Secret, filled in by the token
 * controller: it does not expire (a home may be offline for weeks and must still be
 * able to reconnect), it is revoked by deleting the Secret (or the namespace), and
 * inviting again prints the same token, so invite is idempotent. A TokenRequest
 * token would need a refresh path that a home behind NAT cannot rely on.
 *
 * One peer must not exhaust the shared cluster: a ResourceQuota `peer` bounds how many
 * objects its namespace holds (Offers, Requests, Leases, Secrets, ConfigMaps), so a
 * token creating objects in a loop gets 403 "exceeded quota" at the bound; the
 * matchmaker bounds each object's size (`--max-object-bytes`). Inviting again with
 * other limits adjusts them.
 *
 * `--domain` records the peer's home domain on its namespace (annotation
 * `personalcloud.io/home-domain`, which the peer cannot write): the matchmaker shows a
 * host's VM hostnames to a requester only when they end in `.<requester>.<domain>`.
 */
import { stringify } from 'yaml';
import type { KubeClient, KubeObject } from '../../kube/client.js';
import {
  HOME_DOMAIN_ANNOTATION,
  PEER_ACCOUNT,
  PEER_TOKEN_SECRET,
  peerNameProblem,
  peerNamespace,
} from '../../api/federation.js';
import { Resources as R } from '../../kube/kinds.js';
import { applyObject, createObject } from '../../kube/apply.js';

export const INVITE_FIELD_MANAGER = 'pcloud-federation-invite';
const ALL = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];

export function peerRole(peer: string): KubeObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: PEER_ACCOUNT, namespace: peerNamespace(peer) },
    rules: [
      { apiGroups: ['personalcloud.io'], resources: ['offers', 'requests'], verbs: ALL },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ALL },
      { apiGroups: ['personalcloud.io'], resources: ['assignments'], verbs: ['get', 'list', 'watch'] },
      {
        apiGroups: ['personalcloud.io'],
        resources: ['assignments/status'],
        verbs: ['get', 'update', 'patch'],
      },
      { apiGroups: ['personalcloud.io'], resources: ['offers/status', 'requests/status'], verbs: ['get'] },
    ],
  };
}

/** How many objects of each kind a peer's namespace may hold (the ResourceQuota `peer`). */
export interface PeerLimits {
  offers: number;
  requests: number;
  leases: number;
  secrets: number;
  configmaps: number;
}

/**
 * Defaults: a home needs one heartbeat Lease and a handful of Offers and Requests; the
 * namespace holds one token Secret and the API server's `kube-root-ca.crt` ConfigMap.
 */
export const DEFAULT_PEER_LIMITS: PeerLimits = {
  offers: 10,
  requests: 20,
  leases: 2,
  secrets: 2,
  configmaps: 2,
};

export function peerQuota(peer: string, limits: PeerLimits = DEFAULT_PEER_LIMITS): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: { name: PEER_ACCOUNT, namespace: peerNamespace(peer) },
    spec: {
      hard: {
        'count/offers.personalcloud.io': String(limits.offers),
        'count/requests.personalcloud.io': String(limits.requests),
        'count/leases.coordination.k8s.io': String(limits.leases),
        secrets: String(limits.secrets),
        configmaps: String(limits.configmaps),
      },
    },
  };
}

export interface InviteOptions {
  /** The peer's home domain, recorded on its namespace (HOME_DOMAIN_ANNOTATION). */
  domain?: string;
  limits?: Partial<PeerLimits>;
  /** How long to wait for the token controller. */
  timeoutMs?: number;
}

/** The objects of one peer, in apply order. */
export function peerObjects(peer: string, opts: Pick<InviteOptions, 'domain' | 'limits'> = {}): KubeObject[] {
  const namespace = peerNamespace(peer);
  const labels = { 'personalcloud.io/peer': peer, 'app.kubernetes.io/managed-by': 'personal-cloud' };
  const quota = peerQuota(peer, { ...DEFAULT_PEER_LIMITS, ...opts.limits });
  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: namespace,
        labels,
        ...(opts.domain ? { annotations: { [HOME_DOMAIN_ANNOTATION]: opts.domain } } : {}),
      },
    },
    // before anything the peer could create: the quota bounds it from the first object
    { ...quota, metadata: { ...quota.metadata, labels } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: PEER_ACCOUNT, namespace, labels } },
    { ...peerRole(peer), metadata: { name: PEER_ACCOUNT, namespace, labels } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: PEER_ACCOUNT, namespace, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: PEER_ACCOUNT },
      subjects: [{ kind: 'ServiceAccount', name: PEER_ACCOUNT, namespace }],
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: PEER_TOKEN_SECRET,
        namespace,
        labels,
        annotations: { 'kubernetes.io/service-account.name': PEER_ACCOUNT },
      },
      type: 'kubernetes.io/service-account-token',
    },
  ];
}

/** A bad peer name, domain or limit: the command line reports it and exits 2. */
export class InviteError extends Error {}

const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export interface JoinCredentials {
  peer: string;
  server: string;
  caPem: string;
  token: string;
}

export const JOIN_CONTEXT = 'pcloud-federation';

export function renderJoinKubeconfig(c: JoinCredentials): string {
  const user = `peer-${c.peer}`;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'pcloud-matchmaker',
        cluster: { server: c.server, 'certificate-authority-data': Buffer.from(c.caPem).toString('base64') },
      },
    ],
    users: [{ name: user, user: { token: c.token } }],
    contexts: [
      {
        name: JOIN_CONTEXT,
        context: { cluster: 'pcloud-matchmaker', user, namespace: peerNamespace(c.peer) },
      },
    ],
    'current-context': JOIN_CONTEXT,
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Until the quota controller has counted the namespace, the API server refuses every
 * object the quota covers ("status unknown for quota"): wait for it before the token
 * Secret, and so before the peer's first write.
 */
async function quotaCounting(client: KubeClient, peer: string, deadline: number): Promise<void> {
  for (;;) {
    const q = await client.get<
      KubeObject & { status?: { hard?: Record<string, string>; used?: Record<string, string> } }
    >(R.ResourceQuota, PEER_ACCOUNT, peerNamespace(peer));
    const want = Object.keys((q?.spec as { hard?: Record<string, string> } | undefined)?.hard ?? {});
    if (want.every((k) => q?.status?.hard?.[k] !== undefined && q.status.used?.[k] !== undefined)) return;
    if (Date.now() > deadline)
      throw new Error(
        `the quota controller did not count ResourceQuota ${peerNamespace(peer)}/${PEER_ACCOUNT} in time (is kube-controller-manager running?)`,
      );
    await sleep(100);
  }
}

/** Creates (or re-applies) the peer's namespace, account, RBAC and token; returns the credentials. */
export async function invitePeer(
  client: KubeClient,
  peer: string,
  server: string,
  fallbackCaPem: string | undefined,
  opts: InviteOptions = {},
): Promise<JoinCredentials> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const problem = peerNameProblem(peer);
  if (problem) throw new InviteError(problem);
  if (opts.domain !== undefined && !DNS_SUBDOMAIN.test(opts.domain))
    throw new InviteError(`--domain ${JSON.stringify(opts.domain)} must be a DNS subdomain`);
  for (const [k, v] of Object.entries(opts.limits ?? {}))
    if (!Number.isInteger(v) || v < 0) throw new InviteError(`limit ${k} must be an integer >= 0, got ${v}`);
  const types = [R.Namespace, R.ResourceQuota, R.ServiceAccount, R.Role, R.RoleBinding, R.Secret];
  const objs = peerObjects(peer, opts);
  for (let i = 0; i < objs.length; i++) {
    const obj = objs[i]!;
    const type = types[i]!;
    if (type === R.Secret) {
      await quotaCounting(client, peer, Date.now() + timeoutMs);
      // a token Secret's data belongs to the token controller: create it once, never apply over it
      const have = await client.get(R.Secret, PEER_TOKEN_SECRET, peerNamespace(peer));
      if (!have) await createObject(client, R.Secret, obj);
    } else {
      await applyObject(client, type, obj, INVITE_FIELD_MANAGER);
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await client.get<KubeObject & { data?: Record<string, string> }>(
      R.Secret,
      PEER_TOKEN_SECRET,
      peerNamespace(peer),
    );
    const token = s?.data?.token;
    if (token) {
      const ca = s.data?.['ca.crt']
        ? Buffer.from(s.data['ca.crt'], 'base64').toString('utf8')
        : fallbackCaPem;
      if (!ca) throw new Error('the token Secret has no ca.crt and the kubeconfig has no CA to pass on');
      return { peer, server, caPem: ca, token: Buffer.from(token, 'base64').toString('utf8') };
    }
    if (Date.now() > deadline)
      throw new Error(
        `the token controller did not fill Secret ${peerNamespace(peer)}/${PEER_TOKEN_SECRET} within ${timeoutMs / 1000}s (is kube-controller-manager running with the serviceaccount-token controller?)`,
      );
    await sleep(250);
  }
}
