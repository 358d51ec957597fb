import type { Assignment } from '../generated/personalcloud.js';
import type { KubeObject } from '../kube/client.js';
import { generateSigningKey, loginClaims, signAssertion, verifyAssertion, NonceStore } from './assertion.js';
import type {
  AssignmentObject,
  GrantObject,
  OfferObject,
  PortalData,
  RequestObject,
  TenantObject,
} from './data.js';
import { html } from './html.js';
import { ownerPage } from './pages.js';
import { buildPortal, type Portal, type PortalOptions } from './server.js';

const HOST = 'carol';
const bobKey = generateSigningKey();
const daveKey = generateSigningKey();
const evilKey = generateSigningKey();
let clock = new Date('2026-12-02T10:00:00Z');

const assignment = (
  requester: string,
  request: string,
  vms: { name: string; address: string; hostname: string }[],
  ports: NonNullable<Assignment['spec']['vm']['ports']>,
  loginKey?: string,
): AssignmentObject => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Assignment',
  metadata: { name: `${requester}.${request}`, namespace: 'federation' },
  spec: {
    requester,
    request,
    host: HOST,
    units: vms.length,
    ...(loginKey ? { loginKey } : {}),
    vm: { image: 'img', ports },
  },
  status: { phase: 'Running', vms: vms.map((v) => ({ ...v, phase: 'Running' })) },
});

const tenant = (peer: string): TenantObject => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Tenant',
  metadata: { name: peer, uid: `uid-${peer}` },
  spec: { peer, units: 2, bandwidth: { ingress: '10M', egress: '10M' } },
  status: { namespace: `tenant-${peer}` },
});

class FakeData implements PortalData {
  grantList: GrantObject[] = [];
  events: { regarding: string; type: string; reason: string; message: string }[] = [];
  private n = 0;
  constructor(
    readonly assignmentList: AssignmentObject[],
    readonly tenantList: TenantObject[],
  ) {}
  assignments = (): Promise<AssignmentObject[]> => Promise.resolve(this.assignmentList);
  tenants = (): Promise<TenantObject[]> => Promise.resolve(this.tenantList);
  grants = (ns?: string): Promise<GrantObject[]> =>
    Promise.resolve(this.grantList.filter((g) => !ns || g.metadata?.namespace === ns));
  createGrant = (g: GrantObject): Promise<GrantObject> => {
    const made = { ...g, metadata: { ...g.metadata, name: `${g.metadata?.generateName}${++this.n}` } };
    this.grantList.push(made);
    return Promise.resolve(made);
  };
  deleteGrant = (ns: string, name: string): Promise<void> => {
    this.grantList = this.grantList.filter(
      (g) => !(g.metadata?.namespace === ns && g.metadata?.name === name),
    );
    return Promise.resolve();
  };
  offers = (): Promise<OfferObject[]> => Promise.resolve([]);
  requests = (): Promise<RequestObject[]> => Promise.resolve([]);
  event = (regarding: KubeObject, type: string, reason: string, message: string): Promise<void> => {
    this.events.push({ regarding: `${regarding.kind}/${regarding.metadata?.name}`, type, reason, message });
    return Promise.resolve();
  };
}

function data(): FakeData {
  return new FakeData(
    [
      assignment(
        'bob',
        'web',
        [
          { name: 'web-0', address: '198.18.0.2', hostname: 'web-0.bob.carol.example' },
          { name: 'web-1', address: '198.18.0.3', hostname: 'web-1.bob.carol.example' },
        ],
        [
          { name: 'ssh', port: 22, protocol: 'TCP' },
          { name: 'game', port: 27015, protocol: 'UDP' },
          { name: 'www', port: 80, protocol: 'HTTP' },
        ],
        bobKey.publicKey,
      ),
      assignment(
        'dave',
        'db',
        [{ name: 'db-0', address: '198.18.0.2', hostname: 'db-0.dave.carol.example' }],
        [{ name: 'pg', port: 5432, protocol: 'TCP' }],
        daveKey.publicKey,
      ),
      // An Assignment of bob at another host carries nothing this host may use.
      {
        ...assignment('bob', 'elsewhere', [], [], evilKey.publicKey),
        spec: { ...assignment('bob', 'elsewhere', [], []).spec, host: 'erin', loginKey: evilKey.publicKey },
      },
    ],
    [tenant('bob'), tenant('dave')],
  );
}

async function portal(d: PortalData, extra: Partial<PortalOptions> = {}): Promise<Portal> {
  return buildPortal({
    peer: HOST,
    data: d,
    cookieSecret: 's'.repeat(40),
    ownerToken: 'owner-token-0123456789',
    grantDurations: [60, 900],
    maxGrantsPerPeer: 3,
    sessionSeconds: 900,
    loginRateLimit: { max: 5, windowMs: 60_000 },
    grantRateLimit: { max: 30, windowMs: 60_000 },
    secureCookies: true,
    publicAddress: 'home.carol.example',
    eventTarget: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'personal-cloud-system' } },
    now: () => clock,
    ...extra,
  });
}

/** A browser in miniature: keeps cookies, comes from one address. */
class Browser {
  cookies: Record<string, string> = {};
  setCookies: string[] = [];
  constructor(
    private readonly p: Portal,
    public ip = '203.0.113.7',
  ) {}
  async request(method: 'GET' | 'POST', url: string, form?: Record<string, string>) {
    const res = await this.p.app.inject({
      method,
      url,
      remoteAddress: this.ip,
      cookies: this.cookies,
      ...(form
        ? {
            payload: new URLSearchParams(form).toString(),
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
          }
        : {}),
    });
    const raw = res.headers['set-cookie'];
    this.setCookies = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    for (const c of res.cookies) {
      if (c.value === '' || c.maxAge === 0 || (c.expires && c.expires.getTime() < Date.now()))
        delete this.cookies[c.name];
      else this.cookies[c.name] = c.value;
    }
    return res;
  }
  /** The CSRF token of the last page. */
  static csrf(body: string): string {
    const m = /name="_csrf" value="([^"]+)"/.exec(body);
    if (!m) throw new Error(`no CSRF token in ${body.slice(0, 200)}`);
    return m[1]!;
  }
  async signIn(assertion: string) {
    const confirm = await this.request('GET', `/login?assertion=${encodeURIComponent(assertion)}`);
    if (confirm.statusCode !== 200) return confirm;
    return this.request('POST', '/login', { _csrf: Browser.csrf(confirm.body), assertion });
  }
}

const assertionFor = (home: string, user: string, key = bobKey, ttl = 300, host = HOST): string =>
  signAssertion(loginClaims(home, user, host, ttl, clock), key.privateKeyPem);

beforeEach(() => {
  clock = new Date('2026-12-02T10:00:00Z');
});

describe('sign-in assertions', () => {
  const keys = (home: string): string[] => (home === 'bob' ? [bobKey.publicKey] : []);
  it('accepts a fresh assertion from the home once', () => {
    const nonces = new NonceStore();
    const a = assertionFor('bob', 'ann');
    expect(verifyAssertion(a, { audience: HOST, keysFor: keys, now: clock, nonces })).toMatchObject({
      ok: true,
      claims: { iss: 'bob', sub: 'ann', aud: HOST },
    });
    expect(verifyAssertion(a, { audience: HOST, keysFor: keys, now: clock, nonces })).toMatchObject({
      ok: false,
      reason: 'Replayed',
    });
  });
  it('refuses tampering, another key, another audience, expiry, long lives and garbage', () => {
    const v = (t: string, now = clock) => verifyAssertion(t, { audience: HOST, keysFor: keys, now });
    const a = assertionFor('bob', 'ann');
    const [payload, sig] = a.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const tampered = `${Buffer.from(JSON.stringify({ ...claims, sub: 'root' })).toString('base64url')}.${sig}`;
    expect(v(tampered)).toMatchObject({ ok: false, reason: 'BadSignature' });
    expect(v(assertionFor('bob', 'ann', evilKey))).toMatchObject({ ok: false, reason: 'BadSignature' });
    expect(v(assertionFor('dave', 'ann', daveKey))).toMatchObject({ ok: false, reason: 'UnknownIssuer' });
    expect(v(assertionFor('bob', 'ann', bobKey, 300, 'erin'))).toMatchObject({
      ok: false,
      reason: 'WrongAudience',
    });
    expect(v(a, new Date(clock.getTime() + 331_000))).toMatchObject({ ok: false, reason: 'Expired' });
    expect(v(a, new Date(clock.getTime() + 329_000))).toMatchObject({ ok: true });
    expect(v(assertionFor('bob', 'ann', bobKey, 3600))).toMatchObject({ ok: false, reason: 'TooLongLived' });
    expect(v(a, new Date(clock.getTime() - 60_000))).toMatchObject({ ok: false, reason: 'NotYetValid' });
    expect(v('x.y')).toMatchObject({ ok: false, reason: 'Malformed' });
    expect(v(`${Buffer.from('{"v":1,"iss":"Bob!"}').toString('base64url')}.${sig}`)).toMatchObject({
      ok: false,
      reason: 'Malformed',
      message: expect.stringContaining('iss must be a peer name') as string,
    });
  });
});

describe('portal handlers', () => {
  it('signs a user in with Secure, HttpOnly, SameSite=Strict cookies and shows exactly their VMs', async () => {
    const d = data();
    const p = await portal(d);
    const b = new Browser(p);
    const res = await b.signIn(assertionFor('bob', 'ann'));
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/vms');
    const session = b.setCookies.find((c) => c.startsWith('__Host-pcloud-session='));
    expect(session).toMatch(/; Max-Age=900; Path=\/; HttpOnly; Secure; SameSite=Strict/);
    const vms = await b.request('GET', '/vms');
    expect(vms.statusCode).toBe(200);
    expect(vms.body).toContain('data-vm="web-0"');
    expect(vms.body).toContain('data-vm="web-1"');
    expect(vms.body).not.toContain('db-0');
    expect(vms.body).toContain('web-0.bob.carol.example');
    expect(vms.headers['content-security-policy']).toContain("default-src 'none'");
    // Only TCP and UDP ports get an Open form; HTTP goes by hostname.
    expect(vms.body).toContain('data-port="TCP/22"');
    expect(vms.body).toContain('data-port="UDP/27015"');
    expect(vms.body).not.toContain('data-port="HTTP/80"');
    expect(d.events.map((e) => [e.regarding, e.reason])).toContainEqual(['Tenant/bob', 'SignedIn']);
    await p.app.close();
  });

  it('refuses a replayed, expired, forged or foreign assertion with a message and an Event', async () => {
    const d = data();
    const p = await portal(d);
    const a = assertionFor('bob', 'ann');
    expect((await new Browser(p).signIn(a)).statusCode).toBe(303);
    const replay = await new Browser(p).signIn(a);
    expect(replay.statusCode).toBe(401);
    expect(replay.body).toContain('already used');
    const forged = await new Browser(p).signIn(assertionFor('bob', 'ann', evilKey));
    expect(forged.statusCode).toBe(403);
    expect(forged.body).toContain('not signed by bob&#39;s login key');
    const old = assertionFor('bob', 'ann');
    clock = new Date(clock.getTime() + 400_000);
    const expired = await new Browser(p).signIn(old);
    expect(expired.statusCode).toBe(401);
    expect(expired.body).toContain('expired');
    const unknown = await new Browser(p).signIn(assertionFor('zed', 'ann', evilKey));
    expect(unknown.statusCode).toBe(403);
    expect(d.events.filter((e) => e.type === 'Warning').map((e) => [e.regarding, e.reason])).toEqual([
      ['Tenant/bob', 'LoginReplayed'],
      ['Namespace/personal-cloud-system', 'LoginBadSignature'],
      ['Tenant/bob', 'LoginExpired'],
      ['Namespace/personal-cloud-system', 'LoginUnknownIssuer'],
    ]);
    await p.app.close();
  });

  it('needs the CSRF token of this session on every form', async () => {
    const d = data();
    const p = await portal(d);
    const b = new Browser(p);
    await b.signIn(assertionFor('bob', 'ann'));
    const form = { vm: 'web-0', port: '22', protocol: 'TCP', seconds: '60' };
    const none = await b.request('POST', '/grants', form);
    expect(none.statusCode).toBe(403);
    expect(none.body).toContain('CSRF');
    // A token minted for another browser's secret does not fit this one.
    const other = new Browser(p);
    const otherToken = Browser.csrf((await other.request('GET', '/')).body);
    expect((await b.request('POST', '/grants', { ...form, _csrf: otherToken })).statusCode).toBe(403);
    // A login POST without the token from the confirmation page is refused too (login CSRF).
    const c = new Browser(p);
    expect((await c.request('POST', '/login', { assertion: assertionFor('bob', 'ann') })).statusCode).toBe(
      403,
    );
    expect(d.grantList).toEqual([]);
    const ok = await b.request('POST', '/grants', {
      ...form,
      _csrf: Browser.csrf((await b.request('GET', '/vms')).body),
    });
    expect(ok.statusCode).toBe(303);
    expect(d.grantList).toHaveLength(1);
    await p.app.close();
  });

  it('rate limits sign-ins per address, with an Event', async () => {
    const d = data();
    const p = await portal(d);
    const codes: number[] = [];
    for (let i = 0; i < 7; i++)
      codes.push((await new Browser(p, '203.0.113.50').request('GET', `/login?assertion=x.y`)).statusCode);
    expect(codes).toEqual([400, 400, 400, 400, 400, 429, 429]);
    const last = await new Browser(p, '203.0.113.50').request('GET', '/login?assertion=x.y');
    expect(last.body).toContain('too many attempts');
    // Another address is not affected.
    expect((await new Browser(p, '203.0.113.51').request('GET', '/login?assertion=x.y')).statusCode).toBe(
      400,
    );
    expect(d.events.some((e) => e.reason === 'RateLimited')).toBe(true);
    await p.app.close();
  });

  it("opens only a declared TCP/UDP port of the user's own VM, for their address, and lets them close it", async () => {
    const d = data();
    const p = await portal(d);
    const b = new Browser(p);
    await b.signIn(assertionFor('bob', 'ann'));
    const post = async (form: Record<string, string>) =>
      b.request('POST', '/grants', { ...form, _csrf: Browser.csrf((await b.request('GET', '/vms')).body) });
    const tcp = await post({ vm: 'web-0', port: '22', protocol: 'TCP', seconds: '60' });
    expect(tcp.statusCode).toBe(303);
    expect(d.grantList[0]).toMatchObject({
      metadata: { namespace: 'tenant-bob' },
      spec: {
        vm: 'web-0',
        protocol: 'TCP',
        port: 22,
        clientAddress: '203.0.113.7',
        expiresAt: '2026-12-02T10:01:00Z',
        user: 'ann@bob',
      },
    });
    const refused = [
      [{ vm: 'db-0', port: '5432', protocol: 'TCP', seconds: '60' }, 403, "not one of bob's VMs"],
      [{ vm: 'web-0', port: '23', protocol: 'TCP', seconds: '60' }, 403, 'declares no TCP port 23'],
      [{ vm: 'web-0', port: '22', protocol: 'UDP', seconds: '60' }, 403, 'declares no UDP port 22'],
      [{ vm: 'web-0', port: '80', protocol: 'HTTP', seconds: '60' }, 400, 'only TCP and UDP'],
      [{ vm: 'web-0', port: '22', protocol: 'TCP', seconds: '86400' }, 400, 'seconds: choose one of 60, 900'],
    ] as const;
    for (const [form, code, text] of refused) {
      const r = await post(form);
      expect([r.statusCode, r.body.includes(escapeText(text))]).toEqual([code, true]);
    }
    expect(d.grantList).toHaveLength(1);
    expect(
      d.events.filter((e) => e.reason.startsWith('Grant') && e.type === 'Warning').map((e) => e.reason),
    ).toEqual([
      'GrantUnknownVm',
      'GrantPortNotDeclared',
      'GrantPortNotDeclared',
      'GrantBadProtocol',
      'GrantBadDuration',
    ]);
    const udp = await post({ vm: 'web-1', port: '27015', protocol: 'UDP', seconds: '900' });
    expect(udp.statusCode).toBe(303);
    await post({ vm: 'web-1', port: '22', protocol: 'TCP', seconds: '60' });
    const flood = await post({ vm: 'web-0', port: '22', protocol: 'TCP', seconds: '60' });
    expect(flood.statusCode).toBe(429);
    expect(flood.body).toContain('already has 3 open grants');
    const page = (await b.request('GET', '/vms')).body;
    expect(page.match(/data-grant="/g)).toHaveLength(3);
    const name = d.grantList[0]!.metadata!.name!;
    const del = await b.request('POST', `/grants/${name}/delete`, { _csrf: Browser.csrf(page) });
    expect(del.statusCode).toBe(303);
    expect(d.grantList.map((g) => g.metadata?.name)).not.toContain(name);
    await p.app.close();
  });

  it("another home's user sees only theirs and cannot close bob's grants", async () => {
    const d = data();
    const p = await portal(d);
    const ann = new Browser(p);
    await ann.signIn(assertionFor('bob', 'ann'));
    await ann.request('POST', '/grants', {
      vm: 'web-0',
      port: '22',
      protocol: 'TCP',
      seconds: '60',
      _csrf: Browser.csrf((await ann.request('GET', '/vms')).body),
    });
    const eve = new Browser(p, '198.51.100.9');
    expect((await eve.signIn(assertionFor('dave', 'eve', daveKey))).statusCode).toBe(303);
    const page = (await eve.request('GET', '/vms')).body;
    expect(page).toContain('data-vm="db-0"');
    expect(page).not.toContain('web-0');
    expect(page).toContain('Nothing is open.');
    const steal = await eve.request('POST', `/grants/${d.grantList[0]!.metadata!.name!}/delete`, {
      _csrf: Browser.csrf(page),
    });
    expect(steal.statusCode).toBe(404);
    expect(d.grantList).toHaveLength(1);
    await p.app.close();
  });

  it('ends a session used from another address, with an Event', async () => {
    const d = data();
    const p = await portal(d);
    const b = new Browser(p);
    await b.signIn(assertionFor('bob', 'ann'));
    b.ip = '203.0.113.99';
    const r = await b.request('GET', '/vms');
    expect(r.statusCode).toBe(403);
    expect(r.body).toContain('You signed in from 203.0.113.7 but this request comes from 203.0.113.99');
    expect(d.events.map((e) => e.reason)).toContain('ClientAddressChanged');
    b.ip = '203.0.113.7';
    expect((await b.request('GET', '/vms')).statusCode).toBe(401);
    await p.app.close();
  });

  it('ends sessions after their time', async () => {
    const p = await portal(data());
    const b = new Browser(p);
    await b.signIn(assertionFor('bob', 'ann'));
    clock = new Date(clock.getTime() + 901_000);
    expect((await b.request('GET', '/vms')).statusCode).toBe(401);
    await p.app.close();
  });

  it('signs the owner in with the token only, and shows the hosted tenants with their grants', async () => {
    const d = data();
    const p = await portal(d);
    const b = new Browser(p, '192.168.1.5');
    const csrf = Browser.csrf((await b.request('GET', '/')).body);
    expect((await b.request('POST', '/owner/login', { _csrf: csrf, token: 'guess' })).statusCode).toBe(401);
    expect((await b.request('GET', '/owner')).statusCode).toBe(401);
    const ok = await b.request('POST', '/owner/login', { _csrf: csrf, token: 'owner-token-0123456789' });
    expect(ok.statusCode).toBe(303);
    const dash = await b.request('GET', '/owner');
    expect(dash.statusCode).toBe(200);
    expect(dash.body).toContain('data-tenant="bob"');
    expect(dash.body).toContain('data-tenant="dave"');
    expect(dash.body).toMatch(/<svg\s+id="units-chart"/);
    // A user session is not an owner session.
    const ann = new Browser(p);
    await ann.signIn(assertionFor('bob', 'ann'));
    expect((await ann.request('GET', '/owner')).statusCode).toBe(401);
    await p.app.close();
  });
});

describe('html', () => {
  it('escapes every interpolated value', () => {
    const evil = '<script>alert("x")</script>\'`&';
    expect(html`<p title="${evil}">${evil}</p>`.text).toBe(
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&#96;&amp;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&#96;&amp;</p>',
    );
    expect(html`<div>${html`<b>${evil}</b>`}</div>`.text).toContain('<b>&lt;script&gt;');
  });
});

function escapeText(s: string): string {
  return s.replace(/'/g, '&#39;');
}

describe("the owner's federation health", () => {
  const offer = (conditions?: { type: string; status: 'True' | 'False'; reason: string }[]): OfferObject => ({
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Offer',
    metadata: { name: 'spare', namespace: 'default' },
    spec: { peer: HOST, units: 2, unit: { cpu: 1, memory: '1Gi', storage: '1Gi' } },
    ...(conditions
      ? {
          status: {
            conditions: conditions.map((c) => ({
              ...c,
              message: '',
              lastTransitionTime: '2026-12-02T10:00:00Z',
            })),
          },
        }
      : {}),
  });
  const health = (offers: OfferObject[]): string =>
    /id="federation-health">([^<]+)</.exec(
      ownerPage({ peer: HOST, offers, requests: [], tenants: [], samples: [], now: clock }).text,
    )![1]!;
  it('says present only when the matchmaker has answered, away when it says so, and idle without objects', () => {
    expect(health([])).toBe('idle');
    expect(health([offer()])).toBe('not heard back');
    expect(health([offer([{ type: 'Ready', status: 'False', reason: 'PeerAway' }])])).toBe('away');
    expect(health([offer([{ type: 'Ready', status: 'True', reason: 'Matched' }])])).toBe('present');
  });
});
