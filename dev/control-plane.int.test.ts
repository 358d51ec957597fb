// The harness itself, against the real binaries: start, CRDs, identities, KubeVirt's
// schema, controller-manager, restarts, side-by-side planes and clean-up when the owning
// process is interrupted or killed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlPlane } from './control-plane.js';
import { repoRoot } from './paths.js';

const vm = (name: string, extraSpec = ''): string => `
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: ${name}, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        devices: {disks: [{name: root, disk: {bus: virtio}}]}
        resources: {requests: {memory: 1Gi}}
      volumes: [{name: root, containerDisk: {image: quay.io/containerdisks/fedora:40}}]
${extraSpec}`;

describe('ControlPlane', () => {
  let cp: ControlPlane;
  beforeAll(async () => {
    cp = await ControlPlane.start({ name: 'harness' });
  });
  afterAll(async () => {
    await cp?.stop();
  });

  test('serves a real, stamped Kubernetes version', async () => {
    const res = await cp.get('/version');
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body) as { gitVersion: string }).gitVersion).toMatch(/^v1\.34\.\d+$/);
  });

  test('installs our CRDs and every third-party CRD', async () => {
    const res = await cp.kubectl(['get', 'crd', '-o', 'name']);
    expect(res.code).toBe(0);
    for (const crd of [
      'offers.personalcloud.io',
      'requests.personalcloud.io',
      'assignments.personalcloud.io',
      'tenants.personalcloud.io',
      'virtualmachines.kubevirt.io',
      'virtualmachineinstances.kubevirt.io',
      'network-attachment-definitions.k8s.cni.cncf.io',
      'ciliumnetworkpolicies.cilium.io',
      'ciliumclusterwidenetworkpolicies.cilium.io',
      'gateways.gateway.networking.k8s.io',
      'httproutes.gateway.networking.k8s.io',
      'tlsroutes.gateway.networking.k8s.io',
      'applications.argoproj.io',
      'appprojects.argoproj.io',
    ]) {
      expect(res.stdout).toContain(`customresourcedefinition.apiextensions.k8s.io/${crd}\n`);
    }
  });

  test("KubeVirt's real schema accepts a valid VirtualMachine", async () => {
    const res = await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: vm('good') });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
  });

  test("KubeVirt's real schema rejects a VirtualMachine without spec.template.spec.domain.devices", async () => {
    const bad = `
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: no-devices, namespace: default}
spec:
  template:
    spec:
      domain: {resources: {requests: {memory: 1Gi}}}
`;
    const res = await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: bad });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('spec.template.spec.domain.devices: Required value');
  });

  test("KubeVirt's real schema rejects an unknown field under strict validation", async () => {
    const res = await cp.kubectl(['apply', '--server-side', '--validate=strict', '-f', '-'], {
      input: vm('typo', '  runStratgy: Always\n'),
    });
    expect(res.code).not.toBe(0);
    // Server-side apply reports unknown fields through the structured-merge-diff schema.
    expect(res.stderr).toContain('.spec.runStratgy: field not declared in schema');
  });

  test('a minted identity is denied what RBAC does not grant, and allowed what it does', async () => {
    const alice = await cp.mintUser('alice', ['personalcloud:peers']);
    const denied = await cp.kubectl(['get', 'virtualmachines', '-n', 'default'], {
      kubeconfig: alice.kubeconfigPath,
    });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('User "alice" cannot list resource "virtualmachines"');

    const grant = `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: vm-reader, namespace: default}
rules: [{apiGroups: [kubevirt.io], resources: [virtualmachines], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: vm-reader, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: vm-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: 'personalcloud:peers'}]
`;
    expect((await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: grant })).code).toBe(0);
    const allowed = await cp.kubectl(['get', 'virtualmachines', '-n', 'default', '-o', 'name'], {
      kubeconfig: alice.kubeconfigPath,
    });
    expect(allowed.stderr).toBe('');
    expect(allowed.stdout).toContain('virtualmachine.kubevirt.io/good');
    // Still nothing beyond the grant: no writes, no other namespaces.
    const write = await cp.kubectl(['delete', 'virtualmachine', 'good', '-n', 'default'], {
      kubeconfig: alice.kubeconfigPath,
    });
    expect(write.stderr).toContain('cannot delete resource "virtualmachines"');
    const other = await cp.kubectl(['get', 'virtualmachines', '-n', 'kube-system'], {
      kubeconfig: alice.kubeconfigPath,
    });
    expect(other.stderr).toContain('cannot list resource "virtualmachines"');
  });

  test('kube-controller-manager garbage-collects children through owner references', async () => {
    const parent = await cp.kubectl([
      'create',
      'configmap',
      'parent',
      '-n',
      'default',
      '-o',
      'jsonpath={.metadata.uid}',
    ]);
    expect(parent.code).toBe(0);
    const child = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: child
  namespace: default
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: parent, uid: ${parent.stdout}}]
`;
    expect((await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: child })).code).toBe(0);
    expect((await cp.kubectl(['delete', 'configmap', 'parent', '-n', 'default'])).code).toBe(0);
    const gone = await cp.kubectl([
      'wait',
      '--for=delete',
      'configmap/child',
      '-n',
      'default',
      '--timeout=60s',
    ]);
    expect(gone.stderr).not.toContain('timed out');
    expect((await cp.kubectl(['get', 'configmap', 'child', '-n', 'default'])).stderr).toContain('NotFound');
  });

  test('restarting kube-apiserver keeps the data in etcd', async () => {
    await cp.restartApiServer();
    const res = await cp.kubectl(['get', 'virtualmachine', 'good', '-n', 'default', '-o', 'name']);
    expect(res.stdout.trim()).toBe('virtualmachine.kubevirt.io/good');
  });
});

describe('several control planes', () => {
  test('run side by side with separate data, and stop() removes processes and data', async () => {
    const [a, b] = await Promise.all([
      ControlPlane.start({ name: 'side-a', thirdPartyCRDs: false, controllerManager: false }),
      ControlPlane.start({ name: 'side-b', thirdPartyCRDs: false, controllerManager: false }),
    ]);
    try {
      expect(a.server).not.toBe(b.server);
      expect((await a.kubectl(['create', 'namespace', 'only-in-a'])).code).toBe(0);
      expect((await b.kubectl(['get', 'namespace', 'only-in-a'])).stderr).toContain('NotFound');
      expect((await a.kubectl(['get', 'namespace', 'only-in-a'])).code).toBe(0);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    expect(existsSync(a.dir)).toBe(false);
    expect(existsSync(b.dir)).toBe(false);
    await a.stop(); // idempotent
  });
});

describe('clean-up when the owning process dies', () => {
  const holder = join(repoRoot, 'dist', 'dev', 'fixtures', 'hold-control-plane.js');
  beforeAll(() => {
    // The holder runs as its own node process, from the compiled output.
    const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, encoding: 'utf8' });
    expect(build.status).toBe(0);
  });

  /** Starts a process that holds a control plane; resolves with its state once ready. */
  async function startHolder(): Promise<{
    child: ReturnType<typeof spawn>;
    dir: string;
    pids: number[];
  }> {
    const child = spawn(process.execPath, [holder], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) resolve(out.split('\n')[0] ?? '');
      });
      child.on('exit', (code) => reject(new Error(`holder exited early with ${code}`)));
    });
    const { dir } = JSON.parse(line) as { dir: string };
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as {
      pids: Record<string, number>;
    };
    return { child, dir, pids: Object.values(state.pids) };
  }

  async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
    for (const deadline = Date.now() + timeoutMs; !condition() && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Running (a zombie waiting for a reaper counts as gone: it holds no port, memory or files). */
  const alive = (pid: number): boolean => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  };

  test('SIGINT to the owner stops etcd and kube-apiserver and deletes the data', async () => {
    const { child, dir, pids } = await startHolder();
    expect(pids.length).toBe(2);
    expect(pids.every(alive)).toBe(true);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGINT');
    await exited;
    // The owner SIGKILLs its children on the way out; the kernel finishes them a moment later.
    await waitUntil(() => pids.filter(alive).length === 0);
    expect(pids.filter(alive)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  test('after SIGKILL of the owner, the next start() sweeps the orphans', async () => {
    const { child, dir, pids } = await startHolder();
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    expect(pids.every(alive)).toBe(true); // nothing could clean up yet
    const next = await ControlPlane.start({
      name: 'sweeper',
      ourCRDs: false,
      thirdPartyCRDs: false,
      controllerManager: false,
    });
    await next.stop();
    await waitUntil(() => pids.filter(alive).length === 0);
    expect(pids.filter(alive)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });
});
