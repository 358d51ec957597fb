/**
 * Traefik as the home's Gateway API implementation, with a real data path (issue 9,
 * item 3): on a two-node home cluster, the Gateway API CRDs and the other CRDs the
 * operator needs, Traefik installed as k3s has it (dev/traefik.ts: kube-system, the
 * Kubernetes Gateway provider with its experimental channel, GatewayClass `traefik`, a
 * LoadBalancer Service at the nodes' addresses), then the chart with `helm install` as
 * docs/install.md says (dev/chart-install.ts). The operator writes the home's Gateway;
 * a hosted Assignment gets its Service, HTTPRoute and TLSRoute; requests from a client on
 * the home LAN (the NAS's network namespace) to a node's address reach the backend by
 * hostname, over HTTP and TLS passthrough, also once kube-router (k3s's network policy
 * controller) enforces the tenant's NetworkPolicy, which then refuses a pod of another
 * namespace; the portal's HTTPS Gateway terminates TLS with its certificate and reaches
 * the portal pod; deleting the Assignment makes the name 404 again.
 *
 * THE BACKEND IS A STAND-IN: KubeVirt does not run VMs on this machine yet (another part
 * of issue 9), so a pod carrying the label the operator's Service selects
 * (`vm.kubevirt.io/name: <vm>`, in the tenant's namespace, as virt-launcher pods carry it)
 * answers in the VM's place: busybox httpd on port 80 and a Node.js TLS server on 443,
 * each answering with the pod's hostname. Replace it with the real VM when KubeVirt runs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import {
  RELEASE_NAMESPACE,
  applyThirdPartyCRDs,
  diagnoseRelease,
  installChart,
  podReady,
  releasePods,
  type Pod,
} from '../dev/chart-install.js';
import { eventually } from '../dev/eventually.js';
import { HomeCluster, sweepHomeClusters } from '../dev/home-cluster.js';
import { BUSYBOX_IMAGE } from '../dev/images.js';
import { KubeRouterFirewalls } from '../dev/kube-router.js';
import { createCertificateAuthority, type CertificateAuthority } from '../dev/pki.js';
import {
  TRAEFIK_CONTROLLER,
  TRAEFIK_ENTRYPOINTS,
  installTraefik,
  traefikLog,
  type Traefik,
} from '../dev/traefik.js';
import { repoRoot } from '../dev/paths.js';

jest.setTimeout(900_000);

const NODES = ['n1', 'n2'];
/** This test's home LAN, apart from the other home-cluster tests' (.213, .214, .216, .217). */
const LAN_PREFIX = '192.168.215';
const GATEWAY_NS = 'personal-cloud-gateway';
const GATEWAY = 'personal-cloud';
const PORTAL_HOST = 'portal.alice.example.org';
const PORTAL_TLS_SECRET = 'personal-cloud-portal-tls';
/** The hosted Assignment: bob's request `web`, one VM with an HTTP and a TLS port. */
const ASSIGNMENT_NS = 'default';
const ASSIGNMENT = 'bob-web';
const TENANT_NS = 'tenant-bob';
const VM = 'web-0';
/** <vm>.<peer>.<homeDomain> (the chart's homeDomain alice.example.org). */
const VM_HOST = `${VM}.bob.alice.example.org`;
const STAND_IN = 'web-0-stand-in';

/** A pod of the home's own in another namespace: the NetworkPolicy control. */
const NEIGHBOUR: [string, string] = ['default', 'neighbour'];

let hc: HomeCluster;
let fw: KubeRouterFirewalls;
let traefik: Traefik;
let ca: CertificateAuthority;
let certDir: string;
let operatorImageRef = '';
const timings: Record<string, number> = {};

const kubectl = (args: string[], input?: string): Promise<string> =>
  hc.controlPlane.kubectlOutput(args, input);

async function getJson<T>(args: string[]): Promise<T | undefined> {
  const r = await hc.controlPlane.kubectl([...args, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  observedGeneration?: number;
}
const condition = (conditions: Condition[] | undefined, type: string): Condition | undefined =>
  (conditions ?? []).find((c) => c.type === type);

interface Response {
  status: number;
  body: string;
}

/**
 * curl from the NAS (a LAN host) to a node's address with the given Host; HTTPS with
 * SNI = host through `--resolve`, trusting only this test's CA.
 */
async function request(
  address: string,
  host: string,
  opts: { https?: boolean; path?: string } = {},
): Promise<Response> {
  const args = ['-sS', '--max-time', '10', '-o', '-', '-w', '\n%{http_code}'];
  let url: string;
  if (opts.https) {
    args.push('--cacert', join(certDir, 'ca.pem'), '--resolve', `${host}:443:${address}`);
    url = `https://${host}${opts.path ?? '/'}`;
  } else {
    args.push('-H', `Host: ${host}`);
    url = `http://${address}${opts.path ?? '/'}`;
  }
  const r = await hc.lab.run('nas', 'curl', [...args, url]);
  if (r.code !== 0) throw new Error(`curl ${url} (Host ${host}) failed (${r.code}): ${r.stderr.trim()}`);
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
}

/** Whether the neighbour pod gets the stand-in's answer straight from its pod address (no Traefik). */
async function neighbourReaches(ip: string): Promise<boolean> {
  const r = await hc.controlPlane.kubectl([
    '-n',
    NEIGHBOUR[0],
    'exec',
    NEIGHBOUR[1],
    '--',
    // Debian's busybox 1.35 wget segfaults with -T: busybox's timeout bounds it.
    '/bin/busybox',
    'timeout',
    '5',
    'wget',
    '-q',
    '-O',
    '-',
    `http://${ip}/`,
  ]);
  if (/error: |Error from server/.test(r.stderr)) throw new Error(`kubectl exec: ${r.stderr}`);
  return r.code === 0 && r.stdout.trim() === STAND_IN;
}

async function diagnose(): Promise<string> {
  const r = await hc.controlPlane.kubectl([
    'get',
    'gateways,httproutes,tlsroutes,services,pods',
    '-A',
    '-o',
    'wide',
  ]);
  return `${r.stdout}${r.stderr}\n--- traefik log (tail) ---\n${(await traefikLog(hc)).split('\n').slice(-30).join('\n')}`;
}

beforeAll(async () => {
  sweepHomeClusters();
  hc = await HomeCluster.start({
    nodes: NODES,
    lanPrefix: LAN_PREFIX,
    controlPlane: { ourCRDs: false, thirdPartyCRDs: false },
  });
  timings.clusterStart = hc.startupMs;
  let t = Date.now();
  await applyThirdPartyCRDs(hc);
  timings.thirdPartyCRDs = Date.now() - t;
  traefik = await installTraefik(hc);
  for (const [k, v] of Object.entries(traefik.timings)) timings[`traefik.${k}`] = v;
  // The chart's defaults (gateway.className traefik, listeners on 8000 and 8443).
  const installed = await installChart(hc);
  operatorImageRef = installed.imageRef;
  Object.assign(timings, installed.timings);
  // The portal's certificate, as cert-manager would put it in the Gateway's namespace
  // (the chart made the namespace).
  ca = await createCertificateAuthority('home test CA');
  certDir = mkdtempSync(join(tmpdir(), 'pcloud-gateway-test-'));
  writeFileSync(join(certDir, 'ca.pem'), ca.certPem);
  const portalCert = await ca.issueServing([PORTAL_HOST], []);
  writeFileSync(join(certDir, 'portal.crt'), portalCert.certPem);
  writeFileSync(join(certDir, 'portal.key'), portalCert.keyPem);
  await kubectl([
    '-n',
    GATEWAY_NS,
    'create',
    'secret',
    'tls',
    PORTAL_TLS_SECRET,
    `--cert=${join(certDir, 'portal.crt')}`,
    `--key=${join(certDir, 'portal.key')}`,
  ]);
  t = Date.now();
  await eventually(
    'the operator pods Ready',
    async () => {
      const p = await releasePods(hc, 'operator');
      return p.length === 2 && p.every(podReady);
    },
    { timeoutMs: 300_000, intervalMs: 1000 },
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await diagnoseRelease(hc)}`);
  });
  timings.operatorReady = Date.now() - t;
  await kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: NEIGHBOUR[1], namespace: NEIGHBOUR[0] },
      spec: {
        containers: [
          { name: 'sh', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sleep', '3600'] },
        ],
      },
    }),
  );
  fw = new KubeRouterFirewalls(hc, { serviceCidr: '10.96.0.0/16' });
});

afterAll(async () => {
  console.log(`gateway timings (ms): ${JSON.stringify(timings)}`);
  if (certDir) rmSync(certDir, { recursive: true, force: true });
  await fw?.stop();
  await hc?.stop();
});

describe('Traefik as the Gateway API implementation of a real home', () => {
  it('accepts the GatewayClass traefik', async () => {
    const gc = await eventually(
      'GatewayClass traefik Accepted',
      async () => {
        const g = await getJson<{ spec: { controllerName: string }; status?: { conditions?: Condition[] } }>([
          'get',
          'gatewayclass',
          'traefik',
        ]);
        return condition(g?.status?.conditions, 'Accepted')?.status === 'True' ? g : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(gc.spec.controllerName).toBe(TRAEFIK_CONTROLLER);
  });

  it("programs the operator's Gateway: Accepted and Programmed, both listeners, the home's addresses", async () => {
    interface GatewayObject {
      metadata: { generation: number; labels?: Record<string, string> };
      spec: { gatewayClassName: string; listeners: { name: string; port: number; protocol: string }[] };
      status?: {
        conditions?: Condition[];
        addresses?: { type?: string; value: string }[];
        listeners?: { name: string; conditions?: Condition[]; attachedRoutes?: number }[];
      };
    }
    const gw = await eventually(
      'the Gateway Programmed by Traefik',
      async () => {
        const g = await getJson<GatewayObject>(['-n', GATEWAY_NS, 'get', 'gateway', GATEWAY]);
        return condition(g?.status?.conditions, 'Programmed')?.status === 'True' ? g : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose()}`);
    });
    // Written by the operator, on k3s's Traefik entryPoint ports (the chart's defaults).
    expect(gw.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('personal-cloud');
    expect(gw.spec.gatewayClassName).toBe('traefik');
    expect(gw.spec.listeners.map((l) => [l.name, l.protocol, l.port])).toEqual([
      ['http', 'HTTP', TRAEFIK_ENTRYPOINTS.web],
      ['tls', 'TLS', TRAEFIK_ENTRYPOINTS.websecure],
    ]);
    // Traefik's verdict, for this generation.
    for (const type of ['Accepted', 'Programmed']) {
      const c = condition(gw.status?.conditions, type);
      expect(c).toMatchObject({ status: 'True', reason: type, observedGeneration: gw.metadata.generation });
    }
    expect(gw.status?.listeners?.map((l) => l.name).sort()).toEqual(['http', 'tls']);
    for (const l of gw.status?.listeners ?? [])
      for (const type of ['Accepted', 'ResolvedRefs', 'Programmed'])
        expect(condition(l.conditions, type)?.status).toBe('True');
    // The LoadBalancer Service's addresses, copied by Traefik (statusAddress.service).
    expect((gw.status?.addresses ?? []).map((a) => a.value).sort()).toEqual([...traefik.addresses].sort());
  });

  it('refuses a listener on a port no entryPoint has (why the chart listens on 8000/8443)', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'port-80', namespace: 'default' },
        spec: {
          gatewayClassName: 'traefik',
          listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }],
        },
      }),
    );
    const gw = await eventually(
      'Traefik verdict on a port-80 listener',
      async () => {
        const g = await getJson<{
          status?: { conditions?: Condition[]; listeners?: { conditions?: Condition[] }[] };
        }>(['-n', 'default', 'get', 'gateway', 'port-80']);
        return g?.status?.listeners?.length ? g : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(condition(gw.status?.conditions, 'Accepted')).toMatchObject({
      status: 'False',
      reason: 'ListenersNotValid',
    });
    expect(condition(gw.status?.listeners?.[0]?.conditions, 'Accepted')).toMatchObject({
      status: 'False',
      reason: 'PortUnavailable',
    });
    await kubectl(['-n', 'default', 'delete', 'gateway', 'port-80']);
  });

  it('routes a hosted VM hostname to its backend over HTTP and TLS passthrough; others get 404', async () => {
    const [address, other] = traefik.addresses as [string, string];
    // Before: Traefik answers, nothing is routed by that name.
    expect((await request(address, VM_HOST)).status).toBe(404);

    // This home offers (examples/offer.yaml: peer alice, the chart's peer), then hosts an
    // Assignment of bob's.
    await kubectl(['apply', '-n', ASSIGNMENT_NS, '-f', join(repoRoot, 'examples', 'offer.yaml')]);
    const applied = Date.now();
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'personalcloud.io/v1alpha1',
        kind: 'Assignment',
        metadata: { name: ASSIGNMENT, namespace: ASSIGNMENT_NS },
        spec: {
          requester: 'bob',
          request: 'web',
          host: 'alice',
          units: 1,
          vm: {
            image: 'quay.io/containerdisks/fedora:40',
            ports: [
              { name: 'http', port: 80, protocol: 'HTTP' },
              { name: 'https', port: 443, protocol: 'TLS' },
            ],
          },
        },
      }),
    );

    // The operator's Service for the VM: what it selects is what the VM's pod carries.
    const svc = await eventually(
      `Service ${TENANT_NS}/${VM}`,
      () => getJson<{ spec: { selector: Record<string, string> } }>(['-n', TENANT_NS, 'get', 'service', VM]),
      { timeoutMs: 120_000, intervalMs: 500 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose()}`);
    });
    expect(svc.spec.selector).toEqual({ 'vm.kubevirt.io/name': VM });
    timings.assignmentToService = Date.now() - applied;

    // THE STAND-IN for the VM (KubeVirt does not run VMs here yet): the Service's
    // selector, HTTP on 80 (busybox httpd) and TLS on 443 (Node.js, with the VM's own
    // certificate, so a passthrough is told from a termination), answering its hostname.
    const vmCert = await ca.issueServing([VM_HOST], []);
    const tlsServer = [
      "const https = require('node:https');",
      "const os = require('node:os');",
      'https.createServer({ key: process.env.TLS_KEY, cert: process.env.TLS_CERT },',
      "  (req, res) => res.end('tls ' + os.hostname() + '\\n')).listen(443);",
    ].join('\n');
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: STAND_IN,
          namespace: TENANT_NS,
          labels: { ...svc.spec.selector, 'personalcloud.io/test': 'stand-in-for-a-kubevirt-vm' },
        },
        spec: {
          containers: [
            {
              name: 'http',
              image: BUSYBOX_IMAGE,
              imagePullPolicy: 'Never',
              command: [
                '/bin/sh',
                '-c',
                'mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www',
              ],
              ports: [{ containerPort: 80 }],
              readinessProbe: { tcpSocket: { port: 80 }, periodSeconds: 1 },
            },
            {
              name: 'https',
              image: operatorImageRef,
              command: ['node', '-e', tlsServer],
              env: [
                { name: 'TLS_KEY', value: vmCert.keyPem },
                { name: 'TLS_CERT', value: vmCert.certPem },
              ],
              // Root in the stand-in for port 443 (the tenant namespace enforces the baseline Pod Security level).
              securityContext: { runAsUser: 0 },
              ports: [{ containerPort: 443 }],
              readinessProbe: { tcpSocket: { port: 443 }, periodSeconds: 1 },
            },
          ],
        },
      }),
    );
    const standIn = await eventually(
      'the stand-in Ready',
      async () => {
        const p = await getJson<Pod>(['-n', TENANT_NS, 'get', 'pod', STAND_IN]);
        return p && podReady(p) ? p : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 500 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose()}`);
    });
    timings.assignmentToStandInReady = Date.now() - applied;

    // HTTP through the home's address: the backend's own answer.
    const answer = await eventually(
      `${VM_HOST} answering through Traefik`,
      async () => {
        const r = await request(address, VM_HOST);
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose()}`);
    });
    timings.assignmentToHttpAnswer = Date.now() - applied;
    expect(answer.body.trim()).toBe(standIn.metadata.name);
    // Through the other node's address too (kube-proxy carries it to the Traefik pod's node).
    expect(await request(other, VM_HOST)).toEqual({ status: 200, body: `${STAND_IN}\n` });
    // Another name: Traefik's 404.
    const unknown = await request(address, `nobody.bob.alice.example.org`);
    expect(unknown.status).toBe(404);

    // TLS passthrough: the VM's own certificate (curl trusts only the test CA and checks
    // the name), answered by the backend.
    const tls = await eventually(
      `${VM_HOST}:443 answering through Traefik's TLS passthrough`,
      async () => {
        const r = await request(address, VM_HOST, { https: true });
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose()}`);
    });
    timings.assignmentToTlsAnswer = Date.now() - applied;
    expect(tls.body).toBe(`tls ${STAND_IN}\n`);
  });

  it("still routes with the tenant's NetworkPolicy enforced by kube-router, as on k3s, which refuses a neighbour", async () => {
    const [address] = traefik.addresses as [string];
    const standIn = (await getJson<Pod>(['-n', TENANT_NS, 'get', 'pod', STAND_IN]))!;
    const ip = standIn.status.podIP!;
    await eventually('the neighbour pod Ready', async () => {
      const p = await getJson<Pod>(['-n', NEIGHBOUR[0], 'get', 'pod', NEIGHBOUR[1]]);
      return p !== undefined && podReady(p);
    });
    // The control: without an enforcer, the policy is only words and the neighbour gets in.
    expect(await neighbourReaches(ip)).toBe(true);
    // k3s's own network policy controller (kube-router's firewall) on both nodes.
    const t = Date.now();
    await fw.start();
    await eventually('the neighbour refused', async () => !(await neighbourReaches(ip)), {
      timeoutMs: 120_000,
      intervalMs: 1000,
    });
    timings.kubeRouterEnforcing = Date.now() - t;
    // Traefik's pod is in kube-system, which the tenant's policy admits (by namespace).
    expect(await request(address, VM_HOST)).toEqual({ status: 200, body: `${STAND_IN}\n` });
    expect((await request(address, VM_HOST, { https: true })).body).toBe(`tls ${STAND_IN}\n`);
    expect(await neighbourReaches(ip)).toBe(false);
  });

  it("reports the routes' status: Accepted and ResolvedRefs by Traefik on the Gateway's listeners", async () => {
    interface Route {
      metadata: { generation: number };
      spec: { hostnames: string[] };
      status?: {
        parents?: {
          parentRef: { name: string; namespace?: string; sectionName?: string };
          controllerName: string;
          conditions?: Condition[];
        }[];
      };
    }
    for (const [kind, name, section] of [
      ['httproute', `${VM}-http`, 'http'],
      ['tlsroute', `${VM}-https`, 'tls'],
    ] as const) {
      const route = await eventually(
        `${kind} ${name} accepted`,
        async () => {
          const r = await getJson<Route>(['-n', TENANT_NS, 'get', kind, name]);
          return condition(r?.status?.parents?.[0]?.conditions, 'Accepted')?.status === 'True'
            ? r
            : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      expect(route.spec.hostnames).toEqual([VM_HOST]);
      expect(route.status?.parents).toHaveLength(1);
      const parent = route.status!.parents![0]!;
      expect(parent.controllerName).toBe(TRAEFIK_CONTROLLER);
      expect(parent.parentRef).toMatchObject({ name: GATEWAY, namespace: GATEWAY_NS, sectionName: section });
      for (const type of ['Accepted', 'ResolvedRefs'])
        expect(condition(parent.conditions, type)).toMatchObject({
          status: 'True',
          observedGeneration: route.metadata.generation,
        });
    }
    // The Assignment says its routes are ready.
    const a = await getJson<{ status?: { conditions?: Condition[] } }>([
      '-n',
      ASSIGNMENT_NS,
      'get',
      'assignment',
      ASSIGNMENT,
    ]);
    expect(condition(a?.status?.conditions, 'RoutesReady')?.status).toBe('True');
  });

  it('reaches the portal pod at https://portal.<homeDomain>, TLS terminated by Traefik with its certificate', async () => {
    const [address] = traefik.addresses as [string];
    const portal = await eventually(
      'the portal pod Ready',
      async () => {
        const p = await releasePods(hc, 'portal');
        return p.length === 1 && podReady(p[0]!) ? p[0] : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 1000 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnoseRelease(hc)}`);
    });
    expect(portal.metadata.namespace ?? RELEASE_NAMESPACE).toBe(RELEASE_NAMESPACE);
    const health = await eventually(
      `${PORTAL_HOST} answering`,
      async () => {
        const r = await request(address, PORTAL_HOST, { https: true, path: '/healthz' });
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose()}`);
    });
    expect(health.body).toBe('ok');
    // The portal's own page (its sign-in), not a default backend's.
    const page = await request(address, PORTAL_HOST, { https: true });
    expect(page.body).toContain('· Personal Cloud</title>');
    // Only over HTTPS: the HTTP entryPoint has no route for the portal's name.
    expect((await request(address, PORTAL_HOST)).status).toBe(404);
  });

  it('drops the hostname when the Assignment is deleted', async () => {
    const [address] = traefik.addresses as [string];
    const t = Date.now();
    await kubectl(['-n', ASSIGNMENT_NS, 'delete', 'assignment', ASSIGNMENT, '--wait=false']);
    // 404, not 503: the route is gone (a route without a backend would answer 503).
    await eventually(`${VM_HOST} 404 again`, async () => (await request(address, VM_HOST)).status === 404, {
      timeoutMs: 120_000,
      intervalMs: 200,
    }).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose()}`);
    });
    timings.deleteToNotFound = Date.now() - t;
    await eventually(
      'the routes deleted',
      async () =>
        (await getJson(['-n', TENANT_NS, 'get', 'httproute', `${VM}-http`])) === undefined &&
        (await getJson(['-n', TENANT_NS, 'get', 'tlsroute', `${VM}-https`])) === undefined,
      { timeoutMs: 60_000, intervalMs: 500 },
    );
  });
});
