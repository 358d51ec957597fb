/**
 * GitOps with a real Argo CD (issue 12, item 3): Argo CD's application controller and repo
 * server, built from the pinned argo-cd module (tools/argocd), with their Redis, against a
 * real control plane (dev/argocd.ts), syncing a home's fork of this repository from a
 * Git repository on disk (a bare repository read through file://).
 *
 * The fork is what docs/install.md, section 4 tells a home owner to make: the chart and
 * deploy/ as they are in this repository, with repoURL pointing at the fork. The owner
 * applies deploy/argocd-root.yaml once; from then on Git is the only input:
 * - the root Application syncs deploy/argocd/, whose Application installs the chart
 *   (its CRDs, RBAC, Deployments, DaemonSet, Services, Gateway, ...), all Synced at the
 *   fork's commit;
 * - a commit that changes values (replicaCount, logLevel) is rolled out, and both
 *   Applications report that commit;
 * - drift is healed: a deleted child comes back (with a new uid), a hand-scaled
 *   Deployment is scaled back;
 * - a broken commit (a value the chart's schema refuses) leaves the running home as it
 *   was and is reported on the Application, naming the value; fixing it in Git recovers.
 *
 * With a control plane alone no pod runs, so the chart's Deployments and DaemonSet never
 * become available, and no Gateway controller accepts its Gateway: Argo CD reports the
 * chart's Application Progressing, not Healthy, and the test asserts exactly which
 * children wait and that all others are Healthy. Pods are not what this test is about
 * (home-install.e2e runs the chart's pods on real nodes).
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { parse, stringify } from 'yaml';
import { ArgoCD, LocalGitRepository } from '../dev/argocd.js';
import { ControlPlane } from '../dev/control-plane.js';
import { consistently, eventually } from '../dev/eventually.js';
import { repoRoot } from '../dev/paths.js';

jest.setTimeout(900_000);

const NS = 'personal-cloud-system';
const APP = 'personal-cloud';
const ROOT_APP = 'personal-cloud-root';
const EXAMPLE_URL = 'https://github.com/example-home/personal-cloud.git';
/** Commits are seen within ARGOCD_RECONCILIATION_TIMEOUT (10 s here) on a loaded machine. */
const WAIT = { timeoutMs: 240_000, intervalMs: 500 };

let cp: ControlPlane;
let argocd: ArgoCD;
let repo: LocalGitRepository;
const figures: Record<string, number> = {};

interface Application {
  metadata: { name: string };
  spec: { source: { repoURL: string; helm?: { valuesObject?: Record<string, unknown> } } };
  status?: {
    sync?: { status?: string; revision?: string };
    health?: { status?: string; message?: string };
    conditions?: { type: string; message: string }[];
    /** Each child's sync status, and health (the harness runs the controller with --persist-resource-health). */
    resources?: {
      kind: string;
      name: string;
      status?: string;
      health?: { status?: string; message?: string };
    }[];
    operationState?: { phase?: string; message?: string; syncResult?: { revision?: string } };
  };
}

interface KubeObject {
  kind: string;
  metadata: {
    name: string;
    managedFields?: { manager: string; operation: string }[];
    uid: string;
    resourceVersion: string;
    generation?: number;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
}

const kubectl = (args: string[], input?: string): Promise<string> => cp.kubectlOutput(args, input);

async function getJson<T>(args: string[]): Promise<T | undefined> {
  const r = await cp.kubectl(['get', ...args, '-o', 'json', '--show-managed-fields']);
  if (r.code !== 0) {
    if (r.stderr.includes('NotFound')) return undefined;
    throw new Error(`kubectl get ${args.join(' ')}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as T;
}

const application = (name: string): Promise<Application | undefined> =>
  getJson<Application>(['-n', argocd.namespace, 'application', name]);

/** The Application once it is Synced at revision (and its last sync operation succeeded). */
async function syncedAt(name: string, revision: string): Promise<Application | false> {
  const app = await application(name);
  return (
    app?.status?.sync?.status === 'Synced' &&
    app.status.sync.revision === revision &&
    app.status.operationState?.phase === 'Succeeded' &&
    app.status.operationState.syncResult?.revision === revision &&
    app
  );
}

async function diagnose(): Promise<string> {
  const apps = await cp.kubectl(['-n', argocd.namespace, 'get', 'applications', '-o', 'yaml']);
  return [
    apps.stdout,
    '--- application controller',
    argocd.logTail('argocd-application-controller'),
    '--- repo server',
    argocd.logTail('argocd-repo-server'),
  ].join('\n');
}

/** Runs a wait and, when it times out, adds what Argo CD says and logs to the error. */
async function explained<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await diagnose()}`);
  }
}

/** Reads, changes and writes back a YAML file of the fork's work tree. */
function editYaml<T>(path: string, edit: (doc: T) => void): void {
  const file = join(repo.work, path);
  const doc = parse(readFileSync(file, 'utf8')) as T;
  edit(doc);
  writeFileSync(file, stringify(doc));
}

const editHomeValues = (edit: (values: Record<string, unknown>) => void): void =>
  editYaml<Application>('deploy/argocd/personal-cloud.yaml', (app) => {
    const values = app.spec.source.helm?.valuesObject;
    if (values === undefined) throw new Error('deploy/argocd/personal-cloud.yaml has no helm.valuesObject');
    edit(values);
  });

interface Deployment extends KubeObject {
  spec: {
    replicas: number;
    template: {
      spec: {
        containers: {
          name: string;
          env?: {
            name: string;
            value?: string;
            valueFrom?: { secretKeyRef?: { name: string; key: string } };
          }[];
        }[];
      };
    };
  };
}

const operatorDeployment = (): Promise<Deployment | undefined> =>
  getJson<Deployment>(['-n', NS, 'deployment', APP]);

const logLevelOf = (d: Deployment): string | undefined =>
  d.spec.template.spec.containers[0]?.env?.find((e) => e.name === 'LOG_LEVEL')?.value;

let forkCommit = '';
let rootAppliedAt = 0;
let ownerSecretUid = '';

beforeAll(async () => {
  const t = Date.now();
  // The chart brings our CRDs (Argo CD applies them); the third-party ones, Argo CD's own
  // among them, are installed first as on a home.
  cp = await ControlPlane.start({ name: 'argocd', ourCRDs: false });
  figures.controlPlaneStart = Date.now() - t;
  argocd = await ArgoCD.start(cp, { reconciliationSeconds: 10 });
  figures.argocdStart = argocd.startupMs;

  // The home owner's fork: the chart and deploy/ as in this repository, repoURL pointing at it.
  repo = new LocalGitRepository(join(argocd.dir, 'git'), 'personal-cloud');
  await repo.init();
  cpSync(join(repoRoot, 'charts', 'personal-cloud'), join(repo.work, 'charts', 'personal-cloud'), {
    recursive: true,
  });
  mkdirSync(join(repo.work, 'deploy'), { recursive: true });
  cpSync(join(repoRoot, 'deploy', 'argocd'), join(repo.work, 'deploy', 'argocd'), { recursive: true });
  cpSync(join(repoRoot, 'deploy', 'argocd-root.yaml'), join(repo.work, 'deploy', 'argocd-root.yaml'));
  for (const file of ['deploy/argocd-root.yaml', 'deploy/argocd/personal-cloud.yaml']) {
    editYaml<Application>(file, (app) => {
      expect(app.spec.source.repoURL).toBe(EXAMPLE_URL);
      app.spec.source.repoURL = repo.url;
    });
  }
  forkCommit = await repo.commitAll('personal-cloud for this home');

  // What the owner does by hand, once (docs/install.md, section 4): the portal's Secret,
  // then the root Application.
  await kubectl(['create', 'namespace', NS]);
  await kubectl([
    '-n',
    NS,
    'create',
    'secret',
    'generic',
    'personal-cloud-portal',
    '--from-literal=cookieSecret=0123456789abcdef0123456789abcdef0123456789abcdef',
    '--from-literal=ownerToken=owner-token-of-this-test-home-00',
  ]);
  ownerSecretUid = (await getJson<KubeObject>(['-n', NS, 'secret', 'personal-cloud-portal']))!.metadata.uid;
  rootAppliedAt = Date.now();
  await kubectl(['apply', '-f', join(repo.work, 'deploy', 'argocd-root.yaml')]);
});

afterAll(async () => {
  console.log(`argocd figures (ms): ${JSON.stringify(figures)}`);
  await argocd?.stop();
  await cp?.stop();
});

describe('Argo CD syncs a home from Git', () => {
  it('installs the chart: the root Application syncs deploy/argocd/, whose Application installs the chart at the fork commit', async () => {
    const root = await explained(
      eventually('the root Application Synced', () => syncedAt(ROOT_APP, forkCommit), WAIT),
    );
    expect(root.status?.health?.status).toBe('Healthy');
    const app = await explained(
      eventually('the chart Application Synced', () => syncedAt(APP, forkCommit), WAIT),
    );
    figures.applyToChartSynced = Date.now() - rootAppliedAt;
    expect(app.spec.source.repoURL).toBe(repo.url);
    // Every child Healthy (or without a health check), except what waits for what a control
    // plane alone does not run: the workloads for nodes, the Gateway and its route for a
    // Gateway controller (Traefik on k3s). Right after the sync, the new CRDs may still be
    // "not established" (Degraded) for a moment.
    const unhealthy = await explained(
      eventually(
        'the chart Application Progressing only on what needs nodes or a Gateway controller',
        async () => {
          const a = await application(APP);
          const waiting = (a?.status?.resources ?? [])
            .filter((r) => r.health !== undefined && r.health.status !== 'Healthy')
            .map((r) => `${r.kind}/${r.name}: ${r.health!.status}`)
            .sort();
          return a?.status?.health?.status === 'Progressing' && waiting;
        },
        WAIT,
      ),
    );
    expect(unhealthy).toEqual([
      `DaemonSet/${APP}-node-agent: Progressing`,
      `Deployment/${APP}-portal: Progressing`,
      `Deployment/${APP}: Progressing`,
      `Gateway/${APP}-portal: Progressing`,
      `HTTPRoute/${APP}-portal: Progressing`,
    ]);

    // The chart's objects, server-side applied by Argo CD (field manager argocd-controller)
    // and listed as the Application's Synced children. All but CRDs carry its tracking
    // annotation (Argo CD does not mark CRDs, so that it never prunes a CRD's objects).
    const children = new Set(
      (app.status?.resources ?? []).filter((r) => r.status === 'Synced').map((r) => `${r.kind}/${r.name}`),
    );
    const tracked = async (args: string[]): Promise<KubeObject> => {
      const o = await getJson<KubeObject>(args);
      expect(o).toBeDefined();
      expect(o!.metadata.managedFields).toContainEqual(
        expect.objectContaining({ manager: 'argocd-controller', operation: 'Apply' }),
      );
      expect(children).toContain(`${o!.kind}/${o!.metadata.name}`);
      if (o!.kind !== 'CustomResourceDefinition')
        expect(o!.metadata.annotations?.['argocd.argoproj.io/tracking-id']).toMatch(new RegExp(`^${APP}:`));
      return o!;
    };
    for (const crd of ['tenants', 'assignments', 'offers', 'requests', 'portalgrants']) {
      await tracked(['crd', `${crd}.personalcloud.io`]);
    }
    const deployment = (await tracked(['-n', NS, 'deployment', APP])) as Deployment;
    expect(deployment.spec.replicas).toBe(2);
    expect(logLevelOf(deployment)).toBe('info');
    await tracked(['-n', NS, 'daemonset', `${APP}-node-agent`]);
    await tracked(['-n', NS, 'deployment', `${APP}-portal`]);
    await tracked(['-n', NS, 'serviceaccount', APP]);
    await tracked(['-n', NS, 'service', `${APP}-metrics`]);
    await tracked(['clusterrole', APP]);
    await tracked(['clusterrolebinding', APP]);
    await tracked(['-n', NS, 'role', `${APP}-leader-election`]);
    await tracked(['namespace', 'personal-cloud-gateway']);
    await tracked(['-n', 'personal-cloud-gateway', 'gateway', `${APP}-portal`]);
    await tracked(['validatingadmissionpolicy', `${APP}-tenant-secrets`]);
    // The portal Secret is the owner's (portal.existingSecret): the portal reads it, and
    // Argo CD neither made nor touched it.
    const portal = (await getJson<Deployment>(['-n', NS, 'deployment', `${APP}-portal`]))!;
    const ownerToken = portal.spec.template.spec.containers[0]?.env?.find(
      (e) => e.name === 'PCLOUD_OWNER_TOKEN',
    );
    expect(ownerToken?.valueFrom?.secretKeyRef).toEqual({ name: 'personal-cloud-portal', key: 'ownerToken' });
    const secret = (await getJson<KubeObject>(['-n', NS, 'secret', 'personal-cloud-portal']))!;
    expect(secret.metadata.uid).toBe(ownerSecretUid);
    expect(secret.metadata.annotations?.['argocd.argoproj.io/tracking-id']).toBeUndefined();
    // The Application object itself came from Git, through the root Application.
    const child = (await getJson<KubeObject>(['-n', argocd.namespace, 'application', APP]))!;
    expect(child.metadata.annotations?.['argocd.argoproj.io/tracking-id']).toMatch(
      new RegExp(`^${ROOT_APP}:`),
    );
  });

  it('rolls out a commit that changes values, and both Applications report that commit', async () => {
    const before = (await operatorDeployment())!;
    editHomeValues((v) => {
      v.replicaCount = 1;
      v.logLevel = 'debug';
    });
    const commit = await repo.commitAll('one operator replica, debug logs');
    const t = Date.now();
    const after = await explained(
      eventually(
        'the Deployment rolled out with the new values',
        async () => {
          const d = await operatorDeployment();
          return d?.spec.replicas === 1 && logLevelOf(d) === 'debug' && d;
        },
        WAIT,
      ),
    );
    figures.commitToRollout = Date.now() - t;
    expect(after.metadata.uid).toBe(before.metadata.uid); // updated in place, not recreated
    expect(after.metadata.generation).toBeGreaterThan(before.metadata.generation!);
    await explained(
      eventually('the chart Application Synced at the new commit', () => syncedAt(APP, commit), WAIT),
    );
    await explained(
      eventually('the root Application Synced at the new commit', () => syncedAt(ROOT_APP, commit), WAIT),
    );
    figures.commitToSynced = Date.now() - t;
    forkCommit = commit;
  });

  it('heals drift: a deleted child comes back, a hand-scaled Deployment is scaled back', async () => {
    const service = (await getJson<KubeObject>(['-n', NS, 'service', `${APP}-metrics`]))!;
    let t = Date.now();
    await kubectl(['-n', NS, 'delete', 'service', `${APP}-metrics`, '--wait=true']);
    const back = await explained(
      eventually(
        'the deleted Service recreated',
        async () => {
          const s = await getJson<KubeObject>(['-n', NS, 'service', `${APP}-metrics`]);
          return s !== undefined && s.metadata.uid !== service.metadata.uid && s;
        },
        WAIT,
      ),
    );
    figures.deleteToHealed = Date.now() - t;
    expect(back.metadata.annotations?.['argocd.argoproj.io/tracking-id']).toMatch(new RegExp(`^${APP}:`));

    t = Date.now();
    await kubectl(['-n', NS, 'scale', 'deployment', APP, '--replicas=3']);
    await explained(
      eventually(
        'the hand-scaled Deployment scaled back to the value in Git',
        async () => {
          const d = await operatorDeployment();
          return d?.spec.replicas === 1;
        },
        WAIT,
      ),
    );
    figures.scaleToHealed = Date.now() - t;
    await explained(eventually('the chart Application Synced again', () => syncedAt(APP, forkCommit), WAIT));
  });

  it('a broken commit leaves the running home untouched and is reported naming the value; the fix recovers', async () => {
    const before = (await operatorDeployment())!;
    editHomeValues((v) => {
      v.peer = 'Not_A_Label';
    });
    const broken = await repo.commitAll('a peer name the chart refuses');
    // The root syncs the new Application spec; the chart then fails to render.
    await explained(
      eventually('the root Application at the broken commit', () => syncedAt(ROOT_APP, broken), WAIT),
    );
    const app = await explained(
      eventually(
        'the chart Application reporting the failure',
        async () => {
          const a = await application(APP);
          const error = a?.status?.conditions?.find((c) => c.type === 'ComparisonError');
          return error !== undefined && a!.status?.sync?.status !== 'Synced' && { app: a!, error };
        },
        WAIT,
      ),
    );
    expect(app.error.message).toContain("at '/peer'");
    // Nothing of the running home changed while the broken commit was current.
    await consistently(
      'the operator Deployment as it was',
      async () => (await operatorDeployment())?.metadata.resourceVersion === before.metadata.resourceVersion,
      { forMs: 25_000, intervalMs: 1000 },
    );

    editHomeValues((v) => {
      v.peer = 'alice';
      v.logLevel = 'warn';
    });
    const fixed = await repo.commitAll('peer name fixed');
    await explained(eventually('the chart Application Synced at the fix', () => syncedAt(APP, fixed), WAIT));
    const after = (await operatorDeployment())!;
    expect(logLevelOf(after)).toBe('warn');
    expect((await application(APP))?.status?.conditions ?? []).not.toContainEqual(
      expect.objectContaining({ type: 'ComparisonError' }),
    );
  });
});
