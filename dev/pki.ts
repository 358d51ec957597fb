// A tiny PKI for local control planes: one CA that signs the kube-apiserver's serving
// certificate and every client certificate (admin, controllers, minted test users), plus
// the service-account signing key. Everything is ECDSA P-256, generated in memory with
// WebCrypto through @peculiar/x509, and written as PEM.
// @peculiar/x509 2.x resolves its algorithms through tsyringe, which needs a Reflect
// metadata polyfill loaded first and does not depend on one itself.
import 'reflect-metadata';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const VALIDITY_MS = 7 * 24 * 3600 * 1000;

export interface KeyAndCert {
  certPem: string;
  keyPem: string;
}

export interface CertificateAuthority extends KeyAndCert {
  /** Issues a client certificate: CN is the user name, one O per group (how Kubernetes reads them). */
  issueClient(user: string, groups: readonly string[]): Promise<KeyAndCert>;
  /** Issues a serving certificate for the given DNS names and IP addresses. */
  issueServing(dnsNames: readonly string[], ips: readonly string[]): Promise<KeyAndCert>;
}

async function newKeys(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

function validity(): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  // A minute of slack for clock differences between processes.
  return { notBefore: new Date(now - 60_000), notAfter: new Date(now + VALIDITY_MS) };
}

/** Kubernetes reads the user from CN and the groups from O; see the RBAC docs on X509 client certs. */
export function subjectFor(user: string, groups: readonly string[]): x509.JsonName {
  if (user.length === 0) throw new Error('user name must not be empty');
  return [{ CN: [user] }, ...groups.map((g) => ({ O: [g] }))];
}

export async function createCertificateAuthority(commonName: string): Promise<CertificateAuthority> {
  const caKeys = await newKeys();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [commonName] }],
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    ...validity(),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  async function issue(subject: x509.JsonName, extensions: x509.Extension[]): Promise<KeyAndCert> {
    const keys = await newKeys();
    const cert = await x509.X509CertificateGenerator.create({
      subject,
      issuer: caCert.subject,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ALGORITHM,
      ...validity(),
      extensions: [
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
          true,
        ),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ...extensions,
      ],
    });
    return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
  }

  return {
    certPem: caCert.toString('pem'),
    keyPem: await privateKeyPem(caKeys.privateKey),
    issueClient: (user, groups) =>
      issue(subjectFor(user, groups), [
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ]),
    issueServing: (dnsNames, ips) =>
      issue(
        [{ CN: [dnsNames[0] ?? ips[0] ?? 'localhost'] }],
        [
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension([
            ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
            ...ips.map((value) => ({ type: 'ip' as const, value })),
          ]),
        ],
      ),
  };
}

/** The key pair kube-apiserver signs service-account tokens with (and verifies them by). */
export function createServiceAccountKey(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicPem: publicKey, privatePem: privateKey };
}
