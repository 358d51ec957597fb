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
 */
import { stringify } from 'yaml';
import type { KubeClient, KubeObject } from '../../kube/client.js';
import { PEER_ACCOUNT, PEER_TOKEN_SECRET, isPeerName, peerNamespace } from '../../api/federation.js';
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

/** The objects of one peer, in apply order. */
export function peerObjects(peer: string): KubeObject[] {
  const namespace = peerNamespace(peer);
  const labels = { 'personalcloud.io/peer': peer, 'app.kubernetes.io/managed-by': 'personal-cloud' };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels } },
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

/** Creates (or re-applies) the peer's namespace, account, RBAC and token; returns the credentials. */
export async function invitePeer(
  client: KubeClient,
  peer: string,
  server: string,
  fallbackCaPem: string | undefined,
  timeoutMs = 60_000,
): Promise<JoinCredentials> {
  if (!isPeerName(peer))
    throw new Error(`peer name ${JSON.stringify(peer)} must be a DNS-1123 label of at most 58 characters`);
  const types = [R.Namespace, R.ServiceAccount, R.Role, R.RoleBinding, R.Secret];
  const objs = peerObjects(peer);
  for (let i = 0; i < objs.length; i++) {
    const obj = objs[i]!;
    const type = types[i]!;
    if (type === R.Secret) {
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
