/**
 * The chart installed into a HomeCluster as docs/install.md tells a k3s user, for the
 * tests that need a real install (e2e/home-install, e2e/gateway): the third-party CRDs
 * first, as their projects' installers put them; the operator image built without a
 * Docker engine (dev/images.ts) and pushed to the cluster's registry; then step 3's
 * `helm install` verbatim plus `image.repository` and the caller's values.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { BIN_DIR, THIRD_PARTY_CRD_DIR } from './control-plane.js';
import type { HomeCluster } from './home-cluster.js';
import { operatorImage } from './images.js';
import { repoRoot } from './paths.js';
import { runCommand } from './run-command.js';

export const CHART = join(repoRoot, 'charts', 'personal-cloud');
export const RELEASE = 'personal-cloud';
export const RELEASE_NAMESPACE = 'personal-cloud-system';
export const APP_VERSION = (parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { appVersion: string })
  .appVersion;

/**
 * The CRDs the operator refuses to start without (exit 2), each from .cache/crds as its
 * project's installer would apply it. Cilium itself cannot run here; its CRDs are what
 * its installer would put in the cluster. Gateway API's folder has the experimental
 * TLSRoute and TCPRoute (what experimental-install.yaml installs).
 */
export const OPERATOR_PREREQUISITE_CRDS = ['kubevirt', 'multus', 'gateway-api', 'cilium'];

export async function applyThirdPartyCRDs(
  hc: HomeCluster,
  folders = OPERATOR_PREREQUISITE_CRDS,
): Promise<void> {
  await hc.controlPlane.applyCRDs(folders.map((d) => join(THIRD_PARTY_CRD_DIR, d)));
}

export interface ChartInstall {
  /** The operator image the nodes pull (registry/personal-cloud/personal-cloud:<appVersion>). */
  imageRef: string;
  timings: { imageBuild: number; push: number; helmInstall: number };
}

/**
 * Builds and pushes the operator image, then `helm install` with docs/install.md's step 3
 * values (peer alice, homeDomain alice.example.org, homeLAN 192.168.1.0/24), the image
 * from the registry, and `set` (extra `--set` arguments) last.
 */
export async function installChart(hc: HomeCluster, set: readonly string[] = []): Promise<ChartInstall> {
  let t = Date.now();
  const image = await operatorImage(`pcloud.local/personal-cloud:${APP_VERSION}`);
  const imageBuild = Date.now() - t;
  t = Date.now();
  const imageRef = await hc.pushImage(image, `personal-cloud/personal-cloud:${APP_VERSION}`);
  const push = Date.now() - t;
  t = Date.now();
  const helm = await runCommand(join(BIN_DIR, 'helm'), [
    `--kubeconfig=${hc.controlPlane.kubeconfigPath}`,
    'install',
    RELEASE,
    CHART,
    '--namespace',
    RELEASE_NAMESPACE,
    '--create-namespace',
    '--set',
    'peer=alice',
    '--set',
    'homeDomain=alice.example.org',
    '--set',
    'homeLAN={192.168.1.0/24}',
    '--set',
    `image.repository=${imageRef.slice(0, imageRef.lastIndexOf(':'))}`,
    ...set.flatMap((s) => ['--set', s]),
  ]);
  if (helm.code !== 0) throw new Error(`helm install: ${helm.stderr}`);
  return { imageRef, timings: { imageBuild, push, helmInstall: Date.now() - t } };
}

export interface Pod {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: {
    nodeName?: string;
    serviceAccountName?: string;
    hostNetwork?: boolean;
    containers: { name: string; image: string }[];
  };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { ready: boolean; restartCount: number; imageID?: string }[];
  };
}

export const podReady = (p: Pod): boolean =>
  p.status.phase === 'Running' &&
  (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** The release's pods whose (first) container is `container`: operator, node-agent, portal. */
export async function releasePods(hc: HomeCluster, container: string): Promise<Pod[]> {
  const r = await hc.controlPlane.kubectl([
    '-n',
    RELEASE_NAMESPACE,
    'get',
    'pods',
    '-l',
    `app.kubernetes.io/instance=${RELEASE}`,
    '-o',
    'json',
  ]);
  if (r.code !== 0) throw new Error(`kubectl get pods: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { items: Pod[] }).items.filter(
    (p) => p.spec.containers[0]?.name === container,
  );
}

/** The release namespace's pods and events, for a timeout's message. */
export async function diagnoseRelease(hc: HomeCluster): Promise<string> {
  const r = await hc.controlPlane.kubectl(['-n', RELEASE_NAMESPACE, 'get', 'pods,events', '-o', 'wide']);
  return r.stdout + r.stderr;
}
