/**
 * Sign-in without shared passwords or a central identity provider: a user's own home
 * vouches for them. Each home holds an Ed25519 key pair (Secret `portal-signing-key`);
 * its public key travels with its Requests through the federation onto the Assignments
 * its hosts pull (`spec.loginKey`). The home hands its user a short-lived assertion
 *
 *     base64url(JSON claims) "." base64url(Ed25519 signature over "pcloud-login-v1." + first part)
 *
 * with claims {v: 1, iss: the user's home, sub: the user, aud: the host, iat, exp, nonce},
 * and a host's portal accepts it once: the signature verifies under a key the host holds
 * for `iss`, `aud` is this host, it is neither expired nor too long-lived, and its nonce
 * was never seen. Pure apart from node:crypto; the nonce memory is a small class.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';

export const CONTEXT = 'pcloud-login-v1.';
/** The longest an assertion may live (exp - iat), whatever its issuer says. */
export const MAX_LIFETIME_SECONDS = 600;
/** Clock difference tolerated between the two homes. */
export const CLOCK_SKEW_SECONDS = 30;
const MAX_TOKEN_LENGTH = 2048;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const USER = /^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$/;
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
/** An Ed25519 public key: 32 bytes, base64url without padding (as in Request spec.loginKey). */
export const PUBLIC_KEY = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

export interface LoginClaims {
  v: 1;
  /** The user's home (a peer name). */
  iss: string;
  /** The user, as their home names them. */
  sub: string;
  /** The host whose portal may accept it. */
  aud: string;
  iat: number;
  exp: number;
  nonce: string;
}

export type Verdict =
  | { ok: true; claims: LoginClaims }
  | { ok: false; reason: LoginRefusal; message: string; claims?: LoginClaims };

export type LoginRefusal =
  | 'Malformed'
  | 'UnknownIssuer'
  | 'BadSignature'
  | 'WrongAudience'
  | 'Expired'
  | 'NotYetValid'
  | 'TooLongLived'
  | 'Replayed';

export interface SigningKey {
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** Raw 32 bytes, base64url. */
  publicKey: string;
}

export function generateSigningKey(): SigningKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { privateKeyPem, publicKey: publicKeyOf(privateKeyPem) };
}

export function publicKeyOf(privateKeyPem: string): string {
  const jwk = createPublicKey(createPrivateKey(privateKeyPem)).export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || !jwk.x) throw new Error('the signing key is not an Ed25519 key');
  return jwk.x;
}

export function newNonce(): string {
  return randomBytes(18).toString('base64url');
}

export function signAssertion(claims: LoginClaims, privateKeyPem: string): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const sig = sign(null, Buffer.from(CONTEXT + payload), createPrivateKey(privateKeyPem));
  return `${payload}.${sig.toString('base64url')}`;
}

/** Claims for `user` of `home` to sign in at `host`, valid for ttlSeconds from now. */
export function loginClaims(
  home: string,
  user: string,
  host: string,
  ttlSeconds: number,
  now: Date,
): LoginClaims {
  const iat = Math.floor(now.getTime() / 1000);
  return { v: 1, iss: home, sub: user, aud: host, iat, exp: iat + ttlSeconds, nonce: newNonce() };
}

function malformed(message: string): Verdict {
  return { ok: false, reason: 'Malformed', message: `malformed sign-in assertion: ${message}` };
}

function parseClaims(payload: string): LoginClaims | string {
  let c: unknown;
  try {
    c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return 'the claims are not base64url JSON';
  }
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'the claims are not an object';
  const o = c as Record<string, unknown>;
  if (o.v !== 1) return 'v must be 1';
  for (const f of ['iss', 'aud'] as const)
    if (typeof o[f] !== 'string' || !DNS_LABEL.test(o[f]) || o[f].length > 63)
      return `${f} must be a peer name (a DNS-1123 label)`;
  if (typeof o.sub !== 'string' || !USER.test(o.sub) || o.sub.length > 64)
    return 'sub must be a user name (lower-case letters, digits, ".", "_", "-"; at most 64)';
  for (const f of ['iat', 'exp'] as const)
    if (typeof o[f] !== 'number' || !Number.isInteger(o[f])) return `${f} must be an integer (seconds)`;
  if (typeof o.nonce !== 'string' || !NONCE.test(o.nonce))
    return 'nonce must be 16 to 64 base64url characters';
  return o as unknown as LoginClaims;
}

export interface VerifyOptions {
  /** This host's peer name. */
  audience: string;
  /** The public keys this host holds for a home (from its Assignments' spec.loginKey). */
  keysFor: (home: string) => readonly string[];
  now: Date;
  nonces?: NonceStore;
}

/**
 * Checks an assertion: format, then the signature (so that a forgery learns nothing and
 * burns no nonce), then audience, times and, last, the nonce (consumed on success only).
 */
export function verifyAssertion(token: string, o: VerifyOptions): Verdict {
  if (typeof token !== 'string' || token.length === 0) return malformed('empty');
  if (token.length > MAX_TOKEN_LENGTH) return malformed(`longer than ${MAX_TOKEN_LENGTH} characters`);
  const parts = token.split('.');
  if (parts.length !== 2 || !/^[A-Za-z0-9_-]+$/.test(parts[0]!) || !/^[A-Za-z0-9_-]+$/.test(parts[1]!))
    return malformed('expected two base64url parts separated by "."');
  const [payload, sigText] = parts as [string, string];
  const claims = parseClaims(payload);
  if (typeof claims === 'string') return malformed(claims);
  const sig = Buffer.from(sigText, 'base64url');
  if (sig.length !== 64) return malformed('the signature must be 64 bytes');
  const keys = o.keysFor(claims.iss).filter((k) => PUBLIC_KEY.test(k));
  if (keys.length === 0)
    return {
      ok: false,
      reason: 'UnknownIssuer',
      message: `this home hosts nothing for ${claims.iss} that carries a login key: no sign-in for its users here`,
    };
  const signed = Buffer.from(CONTEXT + payload);
  const good = keys.some((k) => {
    try {
      return verify(
        null,
        signed,
        createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k }, format: 'jwk' }),
        sig,
      );
    } catch {
      return false;
    }
  });
  if (!good)
    return {
      ok: false,
      reason: 'BadSignature',
      message: `the assertion is not signed by ${claims.iss}'s login key (forged or tampered)`,
    };
  if (claims.aud !== o.audience)
    return {
      ok: false,
      reason: 'WrongAudience',
      message: `the assertion is for ${claims.aud}, this is ${o.audience}`,
      claims,
    };
  const now = Math.floor(o.now.getTime() / 1000);
  if (claims.exp - claims.iat > MAX_LIFETIME_SECONDS)
    return {
      ok: false,
      reason: 'TooLongLived',
      message: `the assertion lives ${claims.exp - claims.iat}s; at most ${MAX_LIFETIME_SECONDS}s are accepted`,
      claims,
    };
  if (now > claims.exp + CLOCK_SKEW_SECONDS)
    return {
      ok: false,
      reason: 'Expired',
      message: `the assertion expired at ${new Date(claims.exp * 1000).toISOString()}: ask your home for a new link`,
      claims,
    };
  if (claims.iat > now + CLOCK_SKEW_SECONDS)
    return { ok: false, reason: 'NotYetValid', message: 'the assertion was issued in the future', claims };
  if (o.nonces && !o.nonces.consume(`${claims.iss}/${claims.nonce}`, claims.exp + CLOCK_SKEW_SECONDS, now))
    return {
      ok: false,
      reason: 'Replayed',
      message: 'this sign-in link was already used: ask your home for a new one',
      claims,
    };
  return { ok: true, claims };
}

/**
 * Nonces seen, until their assertion could no longer be accepted anyway. Bounded: past
 * `max` live entries new sign-ins are refused (as replays) rather than memory growing.
 */
export class NonceStore {
  private readonly seen = new Map<string, number>();

  constructor(private readonly max = 100_000) {}

  /** True the first time a nonce is seen before `until` (epoch seconds). */
  consume(nonce: string, until: number, now: number): boolean {
    if (this.seen.size >= this.max) for (const [k, t] of this.seen) if (t < now) this.seen.delete(k);
    if (this.seen.has(nonce) || this.seen.size >= this.max) return false;
    this.seen.set(nonce, until);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}
