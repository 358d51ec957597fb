/**
 * The portal's HTTP server (Fastify): remote users sign in with an assertion from their
 * own home and open declared TCP/UDP ports of their VMs for their address; the owner
 * signs in with the chart's token and sees the dashboard.
 *
 * Sessions are a signed cookie {role, peer, user, client address, expiry}: short (15 min
 * by default), `Secure; HttpOnly; SameSite=Strict; Path=/` with the `__Host-` prefix,
 * bound to the address the user signed in from (a change ends the session). Every form
 * carries a CSRF token (@fastify/csrf-protection, secret in its own signed cookie);
 * sign-ins and grant requests are rate limited per client address (@fastify/rate-limit).
 * Every value on a page is escaped (html.ts); pages carry a strict Content-Security-Policy
 * and no scripts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import formbody from '@fastify/formbody';
import rateLimit from '@fastify/rate-limit';
import type { Logger } from 'pino';
import type { KubeObject } from '../kube/client.js';
import { NonceStore, verifyAssertion, type LoginRefusal } from './assertion.js';
import type { GrantObject, PortalData, TenantObject } from './data.js';
import { escape, type Html } from './html.js';
import { checkGrant, clientIPv4, isLive, loginKeysFor, peerVms, tenantOf, type GrantAsk } from './model.js';
import { CSS, confirmLogin, landing, message, ownerPage, page, vmsPage, type Sample } from './pages.js';

export interface RateLimit {
  max: number;
  windowMs: number;
}

export interface PortalOptions {
  /** This home's peer name: the audience of sign-in assertions. */
  peer: string;
  data: PortalData;
  /** Signs session and CSRF cookies (at least 32 characters). */
  cookieSecret: string;
  /** The owner's sign-in token; unset: no owner sign-in. */
  ownerToken?: string;
  /** This home's own login public key, shown on the dashboard. */
  ownLoginKey?: () => Promise<string | undefined>;
  /** What users connect to (the home's public address or name); default the chief's address. */
  publicAddress?: string;
  /** Durations a user may choose for a grant, in seconds. */
  grantDurations: number[];
  maxGrantsPerPeer: number;
  sessionSeconds: number;
  loginRateLimit: RateLimit;
  grantRateLimit: RateLimit;
  /** false only for plain-HTTP development: cookies then lose Secure and the __Host- prefix. */
  secureCookies: boolean;
  /** Addresses of proxies (the Gateway) whose X-Forwarded-For is believed. */
  trustProxy?: string[];
  https?: { key: string; cert: string };
  /** What Events about unknown homes are recorded against (e.g. the portal's namespace). */
  eventTarget?: KubeObject;
  log?: Logger;
  now?: () => Date;
  sampleIntervalMs?: number;
}

interface Session {
  r: 'user' | 'owner';
  p: string;
  u: string;
  ip: string;
  exp: number;
}

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly title: string,
    message: string,
    readonly back = '/',
  ) {
    super(message);
  }
}

const LOGIN_REASON_STATUS: Record<LoginRefusal, number> = {
  Malformed: 400,
  UnknownIssuer: 403,
  BadSignature: 403,
  WrongAudience: 403,
  Expired: 401,
  NotYetValid: 401,
  TooLongLived: 403,
  Replayed: 401,
};

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export interface Portal {
  app: FastifyInstance;
  /** Records one sample of units offered/allocated and VMs hosted (the dashboard's chart). */
  sample(): Promise<void>;
  samples: Sample[];
}

export async function buildPortal(o: PortalOptions): Promise<Portal> {
  if (o.cookieSecret.length < 32) throw new Error('the cookie secret must be at least 32 characters');
  const now = o.now ?? (() => new Date());
  const nonces = new NonceStore();
  const samples: Sample[] = [];
  const secure = o.secureCookies;
  const SESSION = secure ? '__Host-pcloud-session' : 'pcloud-session';
  const CSRF = secure ? '__Host-pcloud-csrf' : 'pcloud-csrf';
  const cookieOpts = { path: '/', httpOnly: true, secure, sameSite: 'strict' as const, signed: true };

  // https and a pino logger each change Fastify's generic types; the routes use neither.
  const fastifyOptions: Record<string, unknown> = {
    ...(o.log ? { loggerInstance: o.log } : { logger: false }),
    ...(o.https ? { https: o.https } : {}),
    trustProxy: o.trustProxy && o.trustProxy.length > 0 ? o.trustProxy : false,
    bodyLimit: 16 * 1024,
  };
  const app = Fastify(fastifyOptions) as unknown as FastifyInstance;
  await app.register(cookie, { secret: o.cookieSecret });
  await app.register(formbody);
  await app.register(csrf, { cookieKey: CSRF, cookieOpts, sessionPlugin: '@fastify/cookie' });
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) =>
      new HttpError(429, 'Slow down', `too many attempts from your address: try again in ${ctx.after}`),
  });

  const event = async (
    peer: string | undefined,
    type: 'Normal' | 'Warning',
    reason: string,
    note: string,
  ) => {
    const tenant = peer ? tenantOf(await o.data.tenants().catch(() => []), peer) : undefined;
    const target = tenant ?? o.eventTarget;
    if (target) await o.data.event(target, type, reason, note);
  };

  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header(
      'Content-Security-Policy',
      "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('Cache-Control', 'no-store');
    reply.header('X-Frame-Options', 'DENY');
    return payload;
  });

  app.setErrorHandler(async (err: Error & { statusCode?: number; code?: string }, req, reply) => {
    let status = err.statusCode ?? 500;
    let title = 'Something went wrong';
    let text = 'The portal could not do that.';
    let back = '/';
    if (err instanceof HttpError) {
      title = err.title;
      text = err.message;
      back = err.back;
    } else if (err.code?.startsWith('FST_CSRF')) {
      status = 403;
      title = 'Form refused';
      text =
        'This form did not come from this portal or has expired (CSRF token missing or wrong): reload the page and try again.';
    } else if (status < 500) {
      title = 'Bad request';
      text = err.message;
    } else {
      req.log.error({ err }, 'portal request failed');
    }
    if (status === 429) {
      const s = readSession(req);
      await event(
        s?.p,
        'Warning',
        'RateLimited',
        `${req.method} ${req.url.split('?')[0]} from ${req.ip}: ${text}`,
      );
    }
    return reply
      .code(status)
      .type('text/html; charset=utf-8')
      .send(page({ title, body: message('error', title, text, back) }));
  });

  function readSession(req: FastifyRequest): Session | undefined {
    const raw = req.cookies[SESSION];
    if (!raw) return undefined;
    const u = req.unsignCookie(raw);
    if (!u.valid || !u.value) return undefined;
    try {
      const s = JSON.parse(Buffer.from(u.value, 'base64url').toString('utf8')) as Session;
      if (typeof s.exp !== 'number' || s.exp * 1000 <= now().getTime()) return undefined;
      return s;
    } catch {
      return undefined;
    }
  }

  function startSession(reply: FastifyReply, s: Omit<Session, 'exp'>): void {
    const exp = Math.floor(now().getTime() / 1000) + o.sessionSeconds;
    reply.setCookie(SESSION, Buffer.from(JSON.stringify({ ...s, exp })).toString('base64url'), {
      ...cookieOpts,
      maxAge: o.sessionSeconds,
    });
  }

  /** The signed-in session of role, from the address it was opened from; throws otherwise. */
  async function require(req: FastifyRequest, reply: FastifyReply, role: Session['r']): Promise<Session> {
    const s = readSession(req);
    if (!s || s.r !== role)
      throw new HttpError(401, 'Not signed in', 'Your session is missing or has ended: sign in again.');
    if (s.ip !== req.ip) {
      reply.clearCookie(SESSION, { path: '/' });
      await event(
        s.r === 'user' ? s.p : undefined,
        'Warning',
        'ClientAddressChanged',
        `session of ${s.u}@${s.p} opened from ${s.ip} was used from ${req.ip}: ended`,
      );
      throw new HttpError(
        403,
        'Your address changed',
        `You signed in from ${s.ip} but this request comes from ${req.ip}. Grants are tied to one address: the session has ended, sign in again from here.`,
      );
    }
    return s;
  }

  const send = (reply: FastifyReply, title: string, body: Html, s?: Session, status = 200): FastifyReply =>
    reply
      .code(status)
      .type('text/html; charset=utf-8')
      .send(
        page({
          title,
          body,
          ...(s
            ? { who: s.r === 'owner' ? `owner of ${o.peer}` : `${s.u}@${s.p}`, csrf: reply.generateCsrf() }
            : {}),
        }),
      );

  const csrfCheck = app.csrfProtection.bind(app);
  const loginLimit = { rateLimit: { max: o.loginRateLimit.max, timeWindow: o.loginRateLimit.windowMs } };
  const grantLimit = { rateLimit: { max: o.grantRateLimit.max, timeWindow: o.grantRateLimit.windowMs } };

  app.get('/portal.css', async (_req, reply) => reply.type('text/css; charset=utf-8').send(CSS));
  app.get('/healthz', async (_req, reply) => reply.type('text/plain').send('ok'));

  app.get('/', async (req, reply) => {
    const s = readSession(req);
    if (s?.r === 'user') return reply.redirect('/vms', 303);
    if (s?.r === 'owner') return reply.redirect('/owner', 303);
    return send(reply, o.peer, landing(reply.generateCsrf(), o.peer));
  });

  /** The link from the user's home: shows who they sign in as; the POST signs in. */
  app.get<{ Querystring: { assertion?: string } }>('/login', { config: loginLimit }, async (req, reply) => {
    const assertion = req.query.assertion ?? '';
    // Checked without consuming the nonce: the POST from this page consumes it.
    const v = verifyAssertion(assertion, { audience: o.peer, keysFor: await keysNow(), now: now() });
    if (!v.ok) return refuseLogin(req, reply, v.reason, v.message, v.claims?.iss);
    return send(
      reply,
      'Sign in',
      confirmLogin(reply.generateCsrf(), assertion, v.claims.sub, v.claims.iss, o.peer),
    );
  });

  /** The login keys this host holds now, per home (from the Assignments it hosts). */
  async function keysNow(): Promise<(home: string) => string[]> {
    const assignments = await o.data.assignments();
    return (home) => loginKeysFor(assignments, o.peer, home);
  }

  async function refuseLogin(
    req: FastifyRequest,
    reply: FastifyReply,
    reason: LoginRefusal,
    text: string,
    home: string | undefined,
  ): Promise<FastifyReply> {
    req.log.warn({ reason, home, client: req.ip }, 'sign-in refused');
    await event(
      home,
      'Warning',
      `Login${reason}`,
      `sign-in from ${req.ip}${home ? ` as a user of ${home}` : ''} refused: ${text}`,
    );
    return send(
      reply,
      'Sign-in refused',
      message('error', 'Sign-in refused', text),
      undefined,
      LOGIN_REASON_STATUS[reason],
    );
  }

  app.post<{ Body: { assertion?: string } }>(
    '/login',
    { config: loginLimit, preHandler: csrfCheck },
    async (req, reply) => {
      // Before the assertion is consumed: a client that cannot be granted anything keeps its link.
      if (!clientIPv4(req.ip))
        throw new HttpError(400, 'IPv4 only', `your address ${req.ip} is not IPv4: grants forward IPv4 only`);
      const v = verifyAssertion(String(req.body?.assertion ?? ''), {
        audience: o.peer,
        keysFor: await keysNow(),
        now: now(),
        nonces,
      });
      if (!v.ok) return refuseLogin(req, reply, v.reason, v.message, v.claims?.iss);
      startSession(reply, { r: 'user', p: v.claims.iss, u: v.claims.sub, ip: req.ip });
      req.log.info({ home: v.claims.iss, user: v.claims.sub, client: req.ip }, 'signed in');
      await event(
        v.claims.iss,
        'Normal',
        'SignedIn',
        `${v.claims.sub}@${v.claims.iss} signed in from ${req.ip}`,
      );
      return reply.redirect('/vms', 303);
    },
  );

  app.post<{ Body: { token?: string } }>(
    '/owner/login',
    { config: loginLimit, preHandler: csrfCheck },
    async (req, reply) => {
      const token = String(req.body?.token ?? '');
      if (!o.ownerToken || !timingSafeEqual(digest(token), digest(o.ownerToken))) {
        await event(
          undefined,
          'Warning',
          'OwnerLoginRefused',
          `owner sign-in from ${req.ip} refused: wrong token`,
        );
        throw new HttpError(401, 'Sign-in refused', 'That is not the owner token of this home.');
      }
      startSession(reply, { r: 'owner', p: o.peer, u: 'owner', ip: req.ip });
      return reply.redirect('/owner', 303);
    },
  );

  app.post('/logout', { preHandler: csrfCheck }, async (_req, reply) => {
    reply.clearCookie(SESSION, { path: '/' });
    return reply.redirect('/', 303);
  });

  async function userView(
    peer: string,
  ): Promise<{ tenant?: TenantObject; vms: ReturnType<typeof peerVms>; grants: GrantObject[] }> {
    const [assignments, tenants] = await Promise.all([o.data.assignments(), o.data.tenants()]);
    const tenant = tenantOf(tenants, peer);
    const ns = tenant?.status?.namespace;
    const grants = ns ? (await o.data.grants(ns)).filter((g) => g.metadata?.namespace === ns) : [];
    return { ...(tenant ? { tenant } : {}), vms: peerVms(assignments, o.peer, peer), grants };
  }

  app.get<{ Querystring: { opened?: string } }>('/vms', async (req, reply) => {
    const s = await require(req, reply, 'user');
    const v = await userView(s.p);
    const t = now();
    return send(
      reply,
      'Your VMs',
      vmsPage({
        peer: s.p,
        host: o.peer,
        client: s.ip,
        vms: v.vms,
        grants: v.grants.filter((g) => isLive(g, t)),
        csrf: reply.generateCsrf(),
        durations: o.grantDurations,
        ...(o.publicAddress ? { publicAddress: o.publicAddress } : {}),
        now: t,
      }),
      s,
    );
  });

  app.post<{ Body: Partial<GrantAsk> }>(
    '/grants',
    { config: grantLimit, preHandler: csrfCheck },
    async (req, reply) => {
      const s = await require(req, reply, 'user');
      const v = await userView(s.p);
      const t = now();
      const check = checkGrant(req.body ?? {}, {
        vms: v.vms,
        tenant: v.tenant,
        peer: s.p,
        user: s.u,
        client: s.ip,
        liveGrants: v.grants.filter((g) => isLive(g, t)).length,
        maxGrants: o.maxGrantsPerPeer,
        durations: o.grantDurations,
        now: t,
      });
      if (!check.ok) {
        await event(s.p, 'Warning', `Grant${check.reason}`, `${s.u}@${s.p} from ${s.ip}: ${check.message}`);
        throw new HttpError(check.status, 'Not opened', check.message, '/vms');
      }
      const made = await o.data.createGrant(check.grant);
      req.log.info({ grant: made.metadata?.name, spec: made.spec }, 'grant created');
      await event(
        s.p,
        'Normal',
        'GrantCreated',
        `${s.u}@${s.p} opened ${made.spec.protocol}/${made.spec.port} of ${made.spec.vm} to ${made.spec.clientAddress} until ${made.spec.expiresAt}`,
      );
      // Old expired grants of this peer are cleaned up here: nothing else needs them.
      for (const g of v.grants.filter(
        (g) => !isLive(g, t) && Date.parse(g.spec.expiresAt) < t.getTime() - 3600_000,
      ))
        await o.data.deleteGrant(g.metadata!.namespace!, g.metadata!.name!).catch(() => undefined);
      return reply.redirect('/vms', 303);
    },
  );

  app.post<{ Params: { name: string } }>(
    '/grants/:name/delete',
    { config: grantLimit, preHandler: csrfCheck },
    async (req, reply) => {
      const s = await require(req, reply, 'user');
      const v = await userView(s.p);
      const g = v.grants.find((x) => x.metadata?.name === req.params.name);
      if (!g)
        throw new HttpError(
          404,
          'No such grant',
          `${escape(req.params.name)} is not one of your grants`,
          '/vms',
        );
      await o.data.deleteGrant(g.metadata!.namespace!, g.metadata!.name!);
      await event(
        s.p,
        'Normal',
        'GrantRevoked',
        `${s.u}@${s.p} closed ${g.spec.protocol}/${g.spec.port} of ${g.spec.vm}`,
      );
      return reply.redirect('/vms', 303);
    },
  );

  async function sample(): Promise<void> {
    const [offers, assignments] = await Promise.all([o.data.offers(), o.data.assignments()]);
    const mine = offers.filter((x) => x.spec.peer === o.peer);
    const hosted = assignments
      .filter((a) => a.spec.host === o.peer && a.status?.phase !== 'Lost')
      .reduce((n, a) => n + (a.status?.vms?.length ?? 0), 0);
    samples.push({
      t: now().getTime(),
      offered: mine.reduce((n, x) => n + x.spec.units, 0),
      allocated: mine.reduce((n, x) => n + (x.status?.allocatedUnits ?? 0), 0),
      hosted,
    });
    if (samples.length > 1440) samples.splice(0, samples.length - 1440);
  }

  app.get('/owner', async (req, reply) => {
    const s = await require(req, reply, 'owner');
    const t = now();
    const last = samples[samples.length - 1];
    if (!last || t.getTime() - last.t >= (o.sampleIntervalMs ?? 60_000)) await sample();
    const [offers, requests, tenants, assignments, grants, loginKey] = await Promise.all([
      o.data.offers(),
      o.data.requests(),
      o.data.tenants(),
      o.data.assignments(),
      o.data.grants(),
      o.ownLoginKey?.() ?? Promise.resolve(undefined),
    ]);
    return send(
      reply,
      `Dashboard of ${o.peer}`,
      ownerPage({
        peer: o.peer,
        offers: offers.filter((x) => x.spec.peer === o.peer),
        requests: requests.filter((x) => x.spec.peer === o.peer),
        tenants: tenants.map((tenant) => ({
          tenant,
          vms: peerVms(assignments, o.peer, tenant.spec.peer),
          grants: grants.filter((g) => g.metadata?.namespace === tenant.status?.namespace && isLive(g, t)),
        })),
        samples,
        ...(loginKey ? { loginKey } : {}),
        now: t,
      }),
      s,
    );
  });

  return { app, sample, samples };
}
