// The precondition messages and the runtime monitor's one-line-per-change rule. Error
// paths of discovery use a small fake of the client's request/get (no API server is
// needed to answer 404 or 401); the unreachable cluster is a real closed port.
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ApiError, KubeClient, type KubeApi, type KubeObject } from './client.js';
import { Resources } from './kinds.js';
import {
  PreconditionError,
  PreconditionMonitor,
  checkCluster,
  checkPreconditions,
  loadKubeConfig,
  regardingNamespace,
  namespaceError,
} from './preflight.js';
import { KubeConfig } from '@kubernetes/client-node';

const FLAG = '--kubeconfig (or KUBECONFIG)';

/** A fake client: discovery answers from `served` (group version -> plurals), namespaces from `namespaces`. */
function fakeApi(opts: {
  served: Record<string, string[]>;
  namespaces?: Record<string, KubeObject>;
  status?: number;
}): KubeApi {
  const request = (method: string, path: string): Promise<unknown> => {
    if (opts.status) return Promise.reject(new ApiError(opts.status, 'Unauthorized', 'no', method, path));
    if (path === '/version') return Promise.resolve({ gitVersion: 'v1.34.0' });
    const gv = path.replace(/^\/apis?\//, '');
    const plurals = opts.served[gv];
    if (!plurals) return Promise.reject(new ApiError(404, 'NotFound', 'not found', method, path));
    return Promise.resolve({ resources: plurals.map((name) => ({ name })) });
  };
  return {
    request,
    get: (_type: unknown, name: string) => Promise.resolve(opts.namespaces?.[name]),
  } as unknown as KubeApi;
}

const CORE = { v1: ['namespaces', 'services'] };
const pre = (kinds = [Resources.Namespace, Resources.Tenant, Resources.VirtualMachine]) => ({
  kubeconfigFlag: FLAG,
  kinds,
  namespaces: [{ name: 'personal-cloud', usedFor: 'the leader-election Lease', flag: '--lease-namespace' }],
});

async function failure(p: Promise<unknown>): Promise<PreconditionError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PreconditionError) return err;
    throw err;
  }
  throw new Error('expected a PreconditionError');
}

describe('preconditions at start', () => {
  test('an unreadable kubeconfig names the file and the flag', () => {
    expect(() => loadKubeConfig('/nonexistent/kubeconfig', FLAG)).toThrow(
      'kubeconfig /nonexistent/kubeconfig is unreadable (ENOENT: no such file or directory',
    );
    expect(() => loadKubeConfig('/nonexistent/kubeconfig', FLAG)).toThrow(
      `; give a readable kubeconfig with ${FLAG}`,
    );
  });

  test('an unreachable API server (a closed port) names the address and how to point at a cluster', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const client = await KubeClient.fromKubeConfig(kc);
    try {
      const err = await failure(checkCluster(client, `https://127.0.0.1:${port}`, FLAG));
      expect(err.message).toBe(
        `cannot reach the API server at https://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port}); ` +
          `point ${FLAG} at a running cluster (in a checkout, bin/pcloud dev up starts a local one)`,
      );
    } finally {
      client.close();
    }
  });

  test('refused credentials name the flag', async () => {
    const err = await failure(
      checkPreconditions(fakeApi({ served: {}, status: 401 }), 'https://h:6443', pre()),
    );
    expect(err.message).toBe(
      `the API server at https://h:6443 refuses the kubeconfig's credentials (401 Unauthorized on /version); give working credentials with ${FLAG}`,
    );
  });

  test('our CRDs not installed: one line naming the resource and how to install it', async () => {
    const api = fakeApi({ served: { ...CORE, 'kubevirt.io/v1': ['virtualmachines'] } });
    const err = await failure(checkPreconditions(api, 's', pre()));
    expect(err.message).not.toContain('\n');
    expect(err.message).toBe(
      'the API server does not serve tenants.personalcloud.io/v1alpha1 (CRD not installed); ' +
        'install the Personal Cloud CRDs: kubectl apply --server-side -f crds/ (the Helm chart installs them; bin/pcloud dev up has them)',
    );
  });

  test('third-party CRDs not installed: every missing resource and each group’s fix, on one line', async () => {
    const api = fakeApi({
      served: {
        ...CORE,
        'personalcloud.io/v1alpha1': ['tenants'],
        'gateway.networking.k8s.io/v1': ['gateways'],
      },
    });
    const err = await failure(
      checkPreconditions(
        api,
        's',
        pre([
          Resources.Tenant,
          Resources.VirtualMachine,
          Resources.VirtualMachineInstance,
          Resources.HTTPRoute,
        ]),
      ),
    );
    expect(err.message).not.toContain('\n');
    expect(err.problem).toBe(
      'the API server does not serve virtualmachines.kubevirt.io/v1, virtualmachineinstances.kubevirt.io/v1, httproutes.gateway.networking.k8s.io/v1 (CRD not installed)',
    );
    expect(err.fix).toContain('install KubeVirt');
    expect(err.fix).toContain('install the Gateway API CRDs');
  });

  test('a missing namespace names it, what it is for, and the flag', async () => {
    const api = fakeApi({
      served: { ...CORE, 'personalcloud.io/v1alpha1': ['tenants'], 'kubevirt.io/v1': ['virtualmachines'] },
    });
    const err = await failure(checkPreconditions(api, 's', pre()));
    expect(err.message).toBe(
      'namespace personal-cloud (for the leader-election Lease, --lease-namespace) does not exist; ' +
        'create it (kubectl create namespace personal-cloud) or give an existing one with --lease-namespace',
    );
    const terminating = fakeApi({
      served: { ...CORE, 'personalcloud.io/v1alpha1': ['tenants'], 'kubevirt.io/v1': ['virtualmachines'] },
      namespaces: {
        'personal-cloud': { metadata: { name: 'personal-cloud', deletionTimestamp: new Date() } },
      },
    });
    expect((await failure(checkPreconditions(terminating, 's', pre()))).problem).toContain(
      'is being deleted',
    );
  });

  test('everything present: no error', async () => {
    const api = fakeApi({
      served: { ...CORE, 'personalcloud.io/v1alpha1': ['tenants'], 'kubevirt.io/v1': ['virtualmachines'] },
      namespaces: { 'personal-cloud': { metadata: { name: 'personal-cloud' } } },
    });
    await expect(checkPreconditions(api, 's', pre())).resolves.toBeUndefined();
  });
});

describe('PreconditionMonitor', () => {
  function capture(): { lines: Array<{ level: number; msg: string }>; monitor: PreconditionMonitor } {
    const lines: Array<{ level: number; msg: string }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
        done();
      },
    });
    return { lines, monitor: new PreconditionMonitor(pino({ level: 'debug' }, sink)) };
  }
  const ns = { name: 'personal-cloud', usedFor: "the home's Gateway", flag: '--gateway-namespace' };

  test('one error line per change, not per report; readiness carries the reason until it clears', async () => {
    const { lines, monitor } = capture();
    for (let i = 0; i < 5; i++)
      monitor.set(
        'namespace:personal-cloud',
        regardingNamespace('personal-cloud'),
        'NamespaceMissing',
        namespaceError(ns, true),
      );
    await new Promise((r) => setImmediate(r));
    expect(lines.filter((l) => l.level === 50)).toHaveLength(1);
    expect(lines[0]?.msg).toBe(namespaceError(ns, true).message);
    expect(monitor.reasons()).toEqual([`NamespaceMissing: ${namespaceError(ns, true).message}`]);
    monitor.clear('namespace:personal-cloud');
    monitor.clear('namespace:personal-cloud');
    await new Promise((r) => setImmediate(r));
    expect(monitor.reasons()).toEqual([]);
    expect(lines.map((l) => l.level)).toEqual([50, 30]);
    monitor.set(
      'namespace:personal-cloud',
      regardingNamespace('personal-cloud'),
      'NamespaceMissing',
      namespaceError(ns, true),
    );
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => l.level)).toEqual([50, 30, 50]);
  });

  test('an informer failing with 404 reports its kind; other failures do not; recovery clears it', () => {
    const { monitor } = capture();
    const hooks = monitor.informerHooks(Resources.TLSRoute);
    hooks.onFailure(new Error('ECONNREFUSED'));
    expect(monitor.reasons()).toEqual([]);
    hooks.onFailure(Object.assign(new Error('Not Found'), { statusCode: 404 }));
    hooks.onFailure(
      new ApiError(404, 'NotFound', 'the server could not find the requested resource', 'GET', '/x'),
    );
    expect(monitor.reasons()).toHaveLength(1);
    expect(monitor.reasons()[0]).toMatch(
      /^KindNotServed: the API server does not serve tlsroutes\.gateway\.networking\.k8s\.io\/v1alpha\d \(CRD not installed\); install the Gateway API CRDs/,
    );
    hooks.onRecovered();
    expect(monitor.reasons()).toEqual([]);
  });
});
