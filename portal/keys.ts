/**
 * The home's portal signing key (Secret `portal-signing-key`: `privateKey` PKCS#8 PEM,
 * `publicKey` base64url) and the login links made with it. `pcloud portal keygen` makes
 * it once; the public key goes into the home's Requests as `spec.loginKey`, and the
 * matchmaker carries it to the hosts' Assignments.
 */
import type { V1Secret } from '@kubernetes/client-node';
import type { Request } from '../generated/personalcloud.js';
import type { KubeApi, KubeObject } from '../kube/client.js';
import { isNotFound } from '../kube/client.js';
import { Resources } from '../kube/kinds.js';
import { generateSigningKey, loginClaims, publicKeyOf, signAssertion, type SigningKey } from './assertion.js';

export const SIGNING_KEY_SECRET = 'portal-signing-key';

type SecretObject = V1Secret & KubeObject;

export async function readSigningKey(
  client: Pick<KubeApi, 'get'>,
  namespace: string,
  name = SIGNING_KEY_SECRET,
): Promise<SigningKey | undefined> {
  const s = await client.get<SecretObject>(Resources.Secret, name, namespace);
  const pem = s?.data?.privateKey ? Buffer.from(s.data.privateKey, 'base64').toString('utf8') : undefined;
  if (!pem) return undefined;
  return { privateKeyPem: pem, publicKey: publicKeyOf(pem) };
}

/** Returns the key in the Secret, creating the Secret with a new key when it is missing. */
export async function ensureSigningKey(
  client: Pick<KubeApi, 'get' | 'create'>,
  namespace: string,
  name = SIGNING_KEY_SECRET,
): Promise<{ key: SigningKey; created: boolean }> {
  const have = await readSigningKey(client, namespace, name);
  if (have) return { key: have, created: false };
  const key = generateSigningKey();
  try {
    await client.create<SecretObject>({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'personal-cloud' } },
      type: 'Opaque',
      stringData: { privateKey: key.privateKeyPem, publicKey: key.publicKey },
    });
  } catch (err) {
    if (isNotFound(err))
      throw new Error(`namespace ${namespace} does not exist: create it, or give --namespace`);
    throw err;
  }
  return { key, created: true };
}

/**
 * The host's portal URL from this home's Requests: a VM there is `<vm>.<me>.<domain>`,
 * its portal `https://portal.<domain>`.
 */
export function portalUrlFromRequests(
  requests: readonly Request[],
  me: string,
  host: string,
): string | undefined {
  for (const r of requests)
    for (const p of r.status?.placements ?? [])
      if (p.peer === host)
        for (const v of p.vms ?? []) {
          const marker = `.${me}.`;
          const i = v.hostname?.indexOf(marker) ?? -1;
          if (v.hostname && i > 0) return `https://portal.${v.hostname.slice(i + marker.length)}`;
        }
  return undefined;
}

export function loginLink(
  portalUrl: string,
  key: SigningKey,
  o: { home: string; user: string; host: string; ttlSeconds: number; now: Date },
): string {
  const token = signAssertion(loginClaims(o.home, o.user, o.host, o.ttlSeconds, o.now), key.privateKeyPem);
  return `${portalUrl.replace(/\/+$/, '')}/login?assertion=${token}`;
}
