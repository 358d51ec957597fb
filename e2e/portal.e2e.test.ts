/**
 * The portal end to end (issue 11): a guest signs in through the real sign-in flow in
 * Debian's Chromium (driven by playwright-core, running inside a client's network
 * namespace on the home LAN), sees exactly their VMs, opens a TCP and a UDP port, and
 * real packets from that client reach the VM (a namespace behind the chief node, as a
 * pod sits behind its node) through the chief's nftables; a second client address is
 * refused, and so is the first once the grant expires. Another home's user sees none of
 * it; a forged and an expired sign-in are refused. A real control plane, the real
 * operator (Tenants and VirtualMachines from hosted Assignments), `pcloud node-agent` on
 * the chief, `pcloud portal keygen|login-link` at the guest's home. Screenshots go to
 * docs/figures/portal-*.png.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { chromium, type Browser, type Page } from 'playwright-core';
import { configFromOptions } from '../cli/config.js';
import { ControlPlane } from '../dev/control-plane.js';
import { eventually } from '../dev/eventually.js';
import { HomeLab } from '../dev/netlab.js';
import { repoRoot } from '../dev/paths.js';
import { createCertificateAuthority } from '../dev/pki.js';
import { runCommand } from '../dev/run-command.js';
import type { PortalGrant } from '../generated/personalcloud.js';
import { KubeClient, type KubeObject } from '../kube/client.js';
import { Resources } from '../kube/kinds.js';
import { createLogger } from '../kube/logger.js';
import { runOperator, type RunningOperator } from '../operator/main.js';
import { generateSigningKey, loginClaims, signAssertion } from '../portal/assertion.js';
import { runPortal, type PortalConfig, type RunningPortal } from '../portal/main.js';

jest.setTimeout(600_000);

const HOST = 'carol';
const DOMAIN = 'carol.example';
const CLI = join(repoRoot, 'dist', 'cli', 'pcloud.js');
const FIGURES = join(repoRoot, 'docs', 'figures');
const SHORT = 40; // seconds: the grants whose expiry the test waits for
const OWNER_TOKEN = 'owner-token-for-the-e2e-test-0123';
const VM_POD_IP = '10.42.7.5';
const DB_POD_IP = '10.42.7.9';

let lab: HomeLab;
let cp: ControlPlane;
let client: KubeClient;
let op: RunningOperator | undefined;
let portal: RunningPortal | undefined;
let portalConfig: PortalConfig;
let browser: Browser;
let ann: Page;
let vmServer: ChildProcess;
let chiefIp: string;
const vmLog: string[] = [];

const wait = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) =>
  eventually(what, fn, { timeoutMs, intervalMs: 500 });

async function pcloud(args: string[]): Promise<string> {
  const r = await runCommand(process.execPath, [CLI, ...args]);
  if (r.code !== 0) throw new Error(`pcloud ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The VM's services: TCP 22 and UDP 27015 answer with what they got and from where. */
const VM_SERVER = `
const net = require('node:net'), dgram = require('node:dgram');
net.createServer((s) => s.once('data', (d) => {
  const t = d.toString().trim(); console.log('tcp ' + s.remoteAddress + ' ' + t); s.end('vm got ' + t + '\\n');
})).listen(22, '0.0.0.0');
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => { const t = m.toString().trim(); console.log('udp ' + r.address + ' ' + t); u.send('vm got ' + t, r.port, r.address); });
u.bind(27015, '0.0.0.0', () => console.log('ready'));
`;

/** One TCP exchange or UDP datagram from a client namespace; prints what came back. */
const PROBE = `
const [proto, host, port, token] = process.argv.slice(1);
const done = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
if (proto === 'tcp') {
  const s = require('node:net').connect({ host, port: Number(port) });
  s.setTimeout(3000, () => done({ ok: false, error: 'timeout' }));
  s.on('connect', () => s.write(token + '\\n'));
  s.on('data', (d) => done({ ok: true, reply: d.toString().trim() }));
  s.on('error', (e) => done({ ok: false, error: e.code }));
} else {
  const u = require('node:dgram').createSocket('udp4');
  u.on('message', (m) => done({ ok: true, reply: m.toString() }));
  u.send(token, Number(port), host);
  setTimeout(() => done({ ok: false, error: 'no reply' }), 3000);
}
`;

async function probe(
  from: string,
  proto: 'tcp' | 'udp',
  port: number,
  token: string,
): Promise<{ ok: boolean; reply?: string; error?: string }> {
  const out = await lab.exec(from, process.execPath, ['-e', PROBE, proto, chiefIp, String(port), token]);
  return JSON.parse(out) as { ok: boolean; reply?: string; error?: string };
}

async function putNode(name: string): Promise<void> {
  await client.create({ apiVersion: 'v1', kind: 'Node', metadata: { name } });
  const node = (await client.get(Resources.Node, name))!;
  await client.request('PUT', `/api/v1/nodes/${name}/status`, {
    body: { ...node, status: { addresses: [{ type: 'InternalIP', address: lab.nodeIp(name) }] } },
  });
}

function assignment(requester: string, request: string, loginKey: string, ports: unknown[]): KubeObject {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Assignment',
    metadata: { name: `${requester}.${request}`, namespace: 'federation' },
    spec: {
      requester,
      request,
      host: HOST,
      units: 1,
      loginKey,
      vm: { image: 'quay.io/containerdisks/fedora:40', ports },
    },
  };
}

/** Stands in for KubeVirt: the VM Running and its instance, with the VM's own spec and a pod address. */
async function runVm(namespace: string, podIp: string, tenantIp: string): Promise<string> {
  const vm = await wait(
    `VirtualMachine in ${namespace}`,
    async () => (await client.list(Resources.VirtualMachine, { namespace })).items[0],
  );
  const name = vm.metadata!.name!;
  await client.request(
    'PATCH',
    `/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachines/${name}/status`,
    {
      body: { status: { printableStatus: 'Running', ready: true } },
      contentType: 'application/merge-patch+json',
    },
  );
  const template = (vm as { spec: { template: { spec: unknown } } }).spec.template.spec;
  await client.create({
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: { name, namespace },
    spec: template,
    status: {
      phase: 'Running',
      interfaces: [
        { name: 'default', ipAddress: podIp },
        { name: 'tenant', ipAddress: tenantIp },
      ],
    },
  });
  return name;
}

async function grants(namespace: string): Promise<(PortalGrant & KubeObject)[]> {
  return (await client.list<PortalGrant & KubeObject>(Resources.PortalGrant, { namespace })).items;
}

async function startPortal(): Promise<void> {
  portal = await runPortal(portalConfig, { log: createLogger('warn') });
}

/** A page in a context of its own: its own cookies, like another person's browser (all in client1's namespace). */
async function newPage(): Promise<Page> {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1200, height: 800 },
  });
  return context.newPage();
}

async function attrs(page: Page, selector: string, attr: string): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for (const el of await page.locator(selector).all()) out.push(await el.getAttribute(attr));
  return out;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(FIGURES, `portal-${name}.png`), fullPage: true });
}

/** Reloads /vms until every open grant shows where to connect; returns the endpoints by port. */
async function endpoints(page: Page, want: number): Promise<Record<string, number>> {
  return wait(`${want} grants with endpoints on the page`, async () => {
    await page.goto(`${portal!.url}/vms`);
    const rows: [string | null, string | null][] = [];
    for (const tr of await page.locator('#grants tr[data-grant]').all())
      rows.push([await tr.getAttribute('data-port'), await tr.locator('.endpoint').textContent()]);
    const out: Record<string, number> = {};
    for (const [port, ep] of rows) if (ep && port) out[port] = Number(ep.split(':').pop());
    return Object.keys(out).length === want ? out : undefined;
  });
}

beforeAll(async () => {
  lab = await HomeLab.start({ nodes: ['chief'] });
  chiefIp = lab.nodeIp('chief');
  await lab.addLanClient('client1', `${lab.lanPrefix}.50`);
  await lab.addLanClient('client2', `${lab.lanPrefix}.51`);
  await lab.addPod('vmweb', 'chief', VM_POD_IP, '10.42.7.1');
  await lab.addPod('vmdb', 'chief', DB_POD_IP, '10.42.7.2');
  vmServer = spawn('ip', ['netns', 'exec', lab.ns('vmweb'), process.execPath, '-e', VM_SERVER], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  vmServer.stdout!.on('data', (d: Buffer) => vmLog.push(...d.toString().split('\n').filter(Boolean)));
  await wait('VM services', () => Promise.resolve(vmLog.includes('ready')));

  cp = await ControlPlane.start({ name: 'portal', address: lab.hostIp });
  client = await KubeClient.fromKubeConfig(cp.kubeConfig());
  for (const ns of ['personal-cloud', 'personal-cloud-system', 'federation', 'bob-home', 'dave-home'])
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'test');
  await putNode('chief');
  await client.create({
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Offer',
    metadata: { name: HOST, namespace: 'federation' },
    spec: { peer: HOST, units: 4, unit: { cpu: '1', memory: '2Gi', storage: '20Gi' } },
  });
  op = await runOperator(
    configFromOptions({
      peer: HOST,
      homeDomain: DOMAIN,
      homeLan: [lab.lanCidr],
      metricsPort: '0',
      metricsHost: '127.0.0.1',
      leaderElect: false,
    }),
    { kubeConfig: cp.kubeConfig(), log: createLogger('warn'), defaultMetrics: false },
  );

  // The guests' homes make their keys (here: their namespaces of the same API server).
  const bobKey = await pcloud([
    'portal',
    'keygen',
    '--kubeconfig',
    cp.kubeconfigPath,
    '--namespace',
    'bob-home',
  ]);
  const daveKey = await pcloud([
    'portal',
    'keygen',
    '--kubeconfig',
    cp.kubeconfigPath,
    '--namespace',
    'dave-home',
  ]);
  expect(
    await pcloud(['portal', 'keygen', '--kubeconfig', cp.kubeconfigPath, '--namespace', 'bob-home']),
  ).toBe(bobKey);
  await client.create(
    assignment('bob', 'web', bobKey, [
      { name: 'ssh', port: 22, protocol: 'TCP' },
      { name: 'game', port: 27015, protocol: 'UDP' },
      { name: 'www', port: 80, protocol: 'HTTP' },
    ]),
  );
  await client.create(assignment('dave', 'db', daveKey, [{ name: 'pg', port: 5432, protocol: 'TCP' }]));
  await runVm('tenant-bob', VM_POD_IP, '198.18.0.2');
  await runVm('tenant-dave', DB_POD_IP, '198.18.0.2');
  await wait('both Assignments Running with addresses', async () => {
    const list = (await client.list(Resources.Assignment, { namespace: 'federation' })).items as {
      status?: { phase?: string; vms?: { address?: string }[] };
    }[];
    return (
      list.length === 2 && list.every((a) => a.status?.phase === 'Running' && a.status.vms?.[0]?.address)
    );
  });

  lab.startAgent('chief', cp.kubeconfigPath, [
    '--chief-node',
    'chief',
    '--grant-ports',
    '40000-40099',
    '--metrics-port',
    '0',
  ]);

  const ca = await createCertificateAuthority('portal-test-ca');
  const tls = await ca.issueServing([`portal.${DOMAIN}`], [lab.hostIp]);
  portalConfig = {
    kubeconfig: cp.kubeconfigPath,
    peer: HOST,
    namespace: 'personal-cloud-system',
    signingKeySecret: 'portal-signing-key',
    host: lab.hostIp,
    port: 0,
    tls: { cert: tls.certPem, key: tls.keyPem },
    secureCookies: true,
    cookieSecret: 'c'.repeat(48),
    ownerToken: OWNER_TOKEN,
    grantDurations: [SHORT, 900],
    maxGrantsPerPeer: 5,
    sessionSeconds: 900,
    loginRateLimit: { max: 30, windowMs: 60_000 },
    grantRateLimit: { max: 30, windowMs: 60_000 },
    trustProxy: [],
    sampleIntervalMs: 2_000,
    logLevel: 'warn',
  };
  await startPortal();
  // The restarted portal must come back on the same port (the browser's pages point there).
  portalConfig.port = portal!.port;

  // Chromium runs in client1's namespace: the portal sees client1's address.
  const wrapper = join(lab.dir, 'chromium-client1');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${lab.ns('client1')} /usr/bin/chromium "$@"\n`);
  chmodSync(wrapper, 0o755);
  browser = await chromium.launch({ executablePath: wrapper, args: ['--no-sandbox', '--disable-gpu'] });
  ann = await newPage();
});

afterAll(async () => {
  await browser?.close();
  await portal?.stop();
  await op?.stop();
  vmServer?.kill();
  client?.close();
  await lab?.stop();
  await cp?.stop();
});

describe('a guest signs in through their own home', () => {
  it('follows the login link from pcloud portal login-link and sees exactly their VMs', async () => {
    const link = await pcloud([
      'portal',
      'login-link',
      '--kubeconfig',
      cp.kubeconfigPath,
      '--namespace',
      'bob-home',
      '--peer',
      'bob',
      '--user',
      'ann',
      '--host',
      HOST,
      '--portal-url',
      portal!.url,
    ]);
    expect(link).toMatch(new RegExp(`^${portal!.url}/login\\?assertion=[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`));
    await ann.goto(link);
    await shot(ann, 'sign-in');
    await ann.click('#continue');
    await ann.waitForURL(`${portal!.url}/vms`);
    const cookies = await ann.context().cookies();
    expect(cookies.find((c) => c.name === '__Host-pcloud-session')).toMatchObject({
      secure: true,
      httpOnly: true,
      sameSite: 'Strict',
    });
    expect(await ann.locator('#client').textContent()).toBe(`${lab.lanPrefix}.50`);
    const vms = await attrs(ann, '#vms tr[data-vm]', 'data-vm');
    expect(vms).toHaveLength(1);
    expect(vms[0]).toMatch(/^web/);
    expect(await ann.content()).not.toMatch(/data-vm="db/);
    expect(await ann.locator('#vms').textContent()).toContain(`.bob.${DOMAIN}`);
    // The link is single use: following it again is refused.
    const again = await newPage();
    await again.goto(link);
    await again.click('#continue');
    expect(await again.locator('[role=alert]').textContent()).toContain('already used');
    await again.context().close();
  });
});

describe('stage two: a declared TCP and UDP port for the guest address only', () => {
  let tcpPort: number;
  let udpPort: number;

  it('opens TCP 22 and UDP 27015 from the page, and the chief forwards them', async () => {
    for (const port of ['TCP/22', 'UDP/27015']) {
      const form = ann.locator(`form[data-port="${port}"]`);
      await form.locator('select[name=seconds]').selectOption(String(SHORT));
      await form.locator('button').click();
      await ann.waitForURL(`${portal!.url}/vms`);
    }
    const eps = await endpoints(ann, 2);
    tcpPort = eps['TCP/22']!;
    udpPort = eps['UDP/27015']!;
    expect(tcpPort).toBeGreaterThanOrEqual(40000);
    await shot(ann, 'vms');
    const list = await grants('tenant-bob');
    expect(list.map((g) => [g.spec.protocol, g.spec.port, g.spec.clientAddress, g.status?.phase])).toEqual(
      expect.arrayContaining([
        ['TCP', 22, `${lab.lanPrefix}.50`, 'Active'],
        ['UDP', 27015, `${lab.lanPrefix}.50`, 'Active'],
      ]),
    );
    // The kernel holds the grant with its own deadline.
    const map = await lab.exec('chief', 'nft', ['list', 'map', 'ip', 'personalcloud_portal', 'tcp_grants']);
    expect(map).toMatch(
      new RegExp(
        `${lab.lanPrefix}\\.50 \\. ${tcpPort} timeout \\d+s expires \\d+s.* : ${VM_POD_IP.replace(/\./g, '\\.')} \\. 22`,
      ),
    );
  });

  it('a real TCP connection and UDP datagram from the client reach the VM', async () => {
    expect(await probe('client1', 'tcp', tcpPort, 'tcp-client1')).toEqual({
      ok: true,
      reply: 'vm got tcp-client1',
    });
    expect(await probe('client1', 'udp', udpPort, 'udp-client1')).toEqual({
      ok: true,
      reply: 'vm got udp-client1',
    });
    expect(vmLog.filter((l) => l.endsWith('tcp-client1') || l.endsWith('udp-client1'))).toHaveLength(2);
  });

  it('a second client address is refused, and nothing of it reaches the VM', async () => {
    expect(await probe('client2', 'tcp', tcpPort, 'tcp-client2')).toEqual({
      ok: false,
      error: 'ECONNREFUSED',
    });
    expect(await probe('client2', 'udp', udpPort, 'udp-client2')).toMatchObject({ ok: false });
    // other ports of the range are closed to client1 as well
    expect(await probe('client1', 'tcp', tcpPort + 1, 'tcp-other-port')).toEqual({
      ok: false,
      error: 'ECONNREFUSED',
    });
    expect(vmLog.some((l) => /client2|other-port/.test(l))).toBe(false);
  });

  it("another home's user sees none of it", async () => {
    const link = await pcloud([
      'portal',
      'login-link',
      '--kubeconfig',
      cp.kubeconfigPath,
      '--namespace',
      'dave-home',
      '--peer',
      'dave',
      '--user',
      'eve',
      '--host',
      HOST,
      '--portal-url',
      portal!.url,
    ]);
    const eve = await newPage();
    await eve.goto(link);
    await eve.click('#continue');
    await eve.waitForURL(`${portal!.url}/vms`);
    const vms = await attrs(eve, '#vms tr[data-vm]', 'data-vm');
    expect(vms).toHaveLength(1);
    expect(vms[0]).toMatch(/^db/);
    expect(await eve.content()).not.toMatch(/data-vm="web|TCP\/22|27015/);
    expect(await eve.locator('#no-grants').count()).toBe(1);
    await eve.context().close();
  });

  it('a forged or expired sign-in is refused, with an Event at the host', async () => {
    const forged = signAssertion(
      loginClaims('bob', 'mallory', HOST, 300, new Date()),
      generateSigningKey().privateKeyPem,
    );
    const page = await newPage();
    await page.goto(`${portal!.url}/login?assertion=${forged}`);
    expect(await page.locator('[role=alert]').textContent()).toContain("not signed by bob's login key");
    await shot(page, 'refused');
    const secret = (await client.get<KubeObject & { data: Record<string, string> }>(
      Resources.Secret,
      'portal-signing-key',
      'bob-home',
    ))!;
    const bobPem = Buffer.from(secret.data.privateKey!, 'base64').toString();
    const expired = signAssertion(
      loginClaims('bob', 'ann', HOST, 60, new Date(Date.now() - 400_000)),
      bobPem,
    );
    await page.goto(`${portal!.url}/login?assertion=${expired}`);
    expect(await page.locator('[role=alert]').textContent()).toContain('expired');
    await page.context().close();
    const reasons = await wait('refusal Events', async () => {
      const list = await client.request<{ items: { reason: string }[] }>(
        'GET',
        '/apis/events.k8s.io/v1/events',
      );
      const r = list.items.map((e) => e.reason);
      return r.includes('LoginBadSignature') && r.includes('LoginExpired') ? r : undefined;
    });
    expect(reasons).toEqual(expect.arrayContaining(['LoginReplayed', 'SignedIn', 'GrantCreated']));
  });

  it('after expiry the first client is refused too, even by the kernel alone', async () => {
    const left =
      Math.max(...(await grants('tenant-bob')).map((g) => Date.parse(g.spec.expiresAt))) - Date.now();
    // The agent is stopped first: the kernel's timeout closes the grant by itself.
    await lab.stopAgent('chief');
    await new Promise((r) => setTimeout(r, Math.max(0, left) + 1500));
    expect(await probe('client1', 'tcp', tcpPort, 'tcp-late')).toEqual({ ok: false, error: 'ECONNREFUSED' });
    expect(await probe('client1', 'udp', udpPort, 'udp-late')).toMatchObject({ ok: false });
    expect(vmLog.some((l) => l.endsWith('-late'))).toBe(false);
    lab.startAgent('chief', cp.kubeconfigPath, [
      '--chief-node',
      'chief',
      '--grant-ports',
      '40000-40099',
      '--metrics-port',
      '0',
    ]);
    await wait('grants Expired in status', async () => {
      const list = await grants('tenant-bob');
      return list.length === 2 && list.every((x) => x.status?.phase === 'Expired');
    });
    await ann.goto(`${portal!.url}/vms`);
    expect(await ann.locator('#no-grants').count()).toBe(1);
  });
});

describe('grants outlive the portal and the operator, and can be revoked', () => {
  let port: number;

  it('an open grant keeps forwarding while the portal and the operator are down', async () => {
    const form = ann.locator('form[data-port="TCP/22"]');
    await form.locator('select[name=seconds]').selectOption('900');
    await form.locator('button').click();
    port = (await endpoints(ann, 1))['TCP/22']!;
    // The owner's dashboard shows it among the live grants.
    const owner = await newPage();
    await owner.goto(portal!.url);
    await owner.fill('input[name=token]', OWNER_TOKEN);
    await owner.click('form[action="/owner/login"] button');
    await owner.waitForURL(`${portal!.url}/owner`);
    expect(await owner.locator('tr[data-tenant="bob"]').textContent()).toContain(`${lab.lanPrefix}.50`);
    expect(await owner.locator('tr[data-tenant="dave"]').count()).toBe(1);
    expect(await owner.locator('#stat-grants').textContent()).toBe('1');
    // No matchmaker runs in this test: the dashboard must not claim the federation is fine.
    expect(await owner.locator('#federation-health').textContent()).toBe('not heard back');
    await shot(owner, 'owner');
    await owner.context().close();

    await portal!.stop();
    portal = undefined;
    await op!.stop();
    op = undefined;
    expect(await probe('client1', 'tcp', port, 'tcp-portal-down')).toEqual({
      ok: true,
      reply: 'vm got tcp-portal-down',
    });
    await startPortal();
  });

  it('the restarted portal still shows it, and Close revokes it at once', async () => {
    await ann.goto(`${portal!.url}/vms`);
    expect(await ann.locator('#grants tr[data-grant]').count()).toBe(1);
    await ann.locator('#grants tr[data-grant] button').click();
    await ann.waitForURL(`${portal!.url}/vms`);
    expect(await grants('tenant-bob')).toHaveLength(2); // the two expired ones remain as records
    await wait('the element gone from the kernel', async () => {
      const map = await lab.exec('chief', 'nft', ['list', 'map', 'ip', 'personalcloud_portal', 'tcp_grants']);
      return !map.includes(`. ${port} `);
    });
    expect(await probe('client1', 'tcp', port, 'tcp-revoked')).toEqual({ ok: false, error: 'ECONNREFUSED' });
    expect(vmLog.some((l) => l.endsWith('tcp-revoked'))).toBe(false);
  });
});
