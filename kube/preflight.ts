/**
 * Preconditions of a controller process, checked once at start and watched while it
 * runs. At start (checkPreconditions) the first thing missing is a PreconditionError:
 * one line naming it and what fixes it, which the command prints before exiting with
 * code 2 — the kubeconfig, the cluster, every kind the process lists and watches (our
 * CRDs and the third-party ones), the namespaces it writes into (its Lease, its
 * Gateway). While it runs (PreconditionMonitor), a condition that retrying cannot heal
 * (a namespace deleted under it, a CRD removed) makes /readyz not ready with the reason,
 * records one Warning Event and logs one error line per change, instead of a warning
 * per retry.
 *
 * Any controller command calls these: `operator` and `matchmaker` today, the node agent
 * and the portal when they exist.
 */
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ApiError, KubeClient, type KubeApi, type KubeObject, type RequestObserver } from './client.js';
import type { EventRecorder } from './events.js';
import { failureStatus, type Informer } from './informer.js';
import { Resources, type ResourceType } from './kinds.js';

/** A precondition that does not hold: what is missing, and what fixes it. */
export class PreconditionError extends Error {
  constructor(
    readonly problem: string,
    readonly fix: string,
  ) {
    super(`${problem}; ${fix}`);
  }
}

/** How a user points a command at its cluster, for the messages (e.g. `--kubeconfig (or KUBECONFIG)`). */
export interface ClusterFlag {
  flag: string;
}

/** A namespace the process writes into. */
export interface RequiredNamespace {
  name: string;
  /** What lives there, e.g. `the leader-election Lease`. */
  usedFor: string;
  /** The flag that names it, e.g. `--lease-namespace`. */
  flag: string;
}

export interface Preconditions {
  /** The flag (and environment variable) that names the kubeconfig. */
  kubeconfigFlag: string;
  /** Every kind the process lists, watches or writes: each must be served. */
  kinds: readonly ResourceType[];
  namespaces: readonly RequiredNamespace[];
}

/** What installs each API group, for the message naming a kind that is not served. */
const INSTALLED_BY: Record<string, string> = {
  'personalcloud.io':
    'install the Personal Cloud CRDs: kubectl apply --server-side -f crds/ (the Helm chart installs them; bin/pcloud dev up has them)',
  'kubevirt.io': 'install KubeVirt (https://kubevirt.io/user-guide/cluster_admin/installation/)',
  'k8s.cni.cncf.io': 'install Multus (its NetworkAttachmentDefinition CRD)',
  'gateway.networking.k8s.io':
    'install the Gateway API CRDs, experimental channel for TLSRoute (https://gateway-api.sigs.k8s.io/guides/)',
  'cilium.io': 'install Cilium (its CiliumNetworkPolicy CRD)',
  'argoproj.io': 'install Argo CD',
};

function groupOf(type: ResourceType): string {
  return type.apiVersion.includes('/') ? type.apiVersion.split('/')[0]! : '';
}

/** `virtualmachines.kubevirt.io/v1`, `services/v1`: how kubectl and CRDs name a resource. */
export function resourceName(type: ResourceType): string {
  const group = groupOf(type);
  const version = type.apiVersion.split('/').pop()!;
  return `${type.plural}${group ? `.${group}` : ''}/${version}`;
}

/** What installs the kind's group. */
export function installHint(type: ResourceType): string {
  const group = groupOf(type);
  return (
    INSTALLED_BY[group] ??
    (group === '' || group.endsWith('.k8s.io')
      ? 'use a Kubernetes version that serves it'
      : `install the CRDs of ${group}`)
  );
}

/** The cause of a failed request in a few words (`connect ECONNREFUSED 127.0.0.1:1`). */
function cause(err: unknown): string {
  if (err instanceof ApiError) return `${err.statusCode} ${err.reason}`;
  const e = err as { code?: string; message?: string };
  return e.message ?? e.code ?? String(err);
}

/**
 * Loads the kubeconfig the way the commands do (a file, else the default chain:
 * KUBECONFIG, ~/.kube/config, in-cluster); unreadable or unusable is a
 * PreconditionError naming the file and the flag.
 */
export function loadKubeConfig(path: string | undefined, flag: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) {
      readFileSync(path); // a clearer error than the YAML loader's for a missing file
      kc.loadFromFile(path);
    } else kc.loadFromDefault();
  } catch (err) {
    throw new PreconditionError(
      `kubeconfig ${path ?? '(default)'} is unreadable (${cause(err)})`,
      `give a readable kubeconfig with ${flag}`,
    );
  }
  if (!kc.getCurrentCluster())
    throw new PreconditionError(
      `kubeconfig ${path ?? '(default)'} has no current cluster`,
      `set its current-context, or give another with ${flag}`,
    );
  return kc;
}

/** The client of a loaded kubeconfig; credentials it cannot read (a missing key file) are a PreconditionError. */
export async function clientFor(
  kc: KubeConfig,
  path: string | undefined,
  flag: string,
  observe?: RequestObserver,
): Promise<KubeClient> {
  try {
    return await KubeClient.fromKubeConfig(kc, observe);
  } catch (err) {
    throw new PreconditionError(
      `kubeconfig ${path ?? '(default)'} has credentials that cannot be read (${cause(err)})`,
      `fix them, or give another kubeconfig with ${flag}`,
    );
  }
}

/**
 * The API server answers and takes our credentials: GET /version (reachability), then
 * GET /api/v1 (discovery needs an authenticated user).
 */
export async function checkCluster(client: KubeApi, server: string, kubeconfigFlag: string): Promise<void> {
  const reach = `point ${kubeconfigFlag} at a running cluster (in a checkout, bin/pcloud dev up starts a local one)`;
  for (const path of ['/version', '/api/v1']) {
    try {
      await client.request('GET', path, { timeoutMs: 10_000 });
    } catch (err) {
      if (!(err instanceof ApiError))
        throw new PreconditionError(`cannot reach the API server at ${server} (${cause(err)})`, reach);
      if (err.statusCode === 401 || err.statusCode === 403)
        throw new PreconditionError(
          `the API server at ${server} refuses the kubeconfig's credentials (${cause(err)} on ${path})`,
          `give working credentials with ${kubeconfigFlag}`,
        );
      throw new PreconditionError(`the API server at ${server} answers ${cause(err)} on ${path}`, reach);
    }
  }
}

interface ApiResourceList {
  resources?: Array<{ name: string }>;
}

/** The kinds the API server does not serve (discovery, one request per group version). */
export async function unservedKinds(
  client: KubeApi,
  kinds: readonly ResourceType[],
): Promise<ResourceType[]> {
  const byVersion = new Map<string, ResourceType[]>();
  for (const k of kinds) byVersion.set(k.apiVersion, [...(byVersion.get(k.apiVersion) ?? []), k]);
  const missing: ResourceType[] = [];
  for (const [apiVersion, types] of byVersion) {
    const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let served = new Set<string>();
    try {
      const list = await client.request<ApiResourceList>('GET', path, { timeoutMs: 10_000 });
      served = new Set((list?.resources ?? []).map((r) => r.name));
    } catch (err) {
      if (!(err instanceof ApiError && err.statusCode === 404)) throw err;
    }
    for (const t of types) if (!served.has(t.plural) && !missing.includes(t)) missing.push(t);
  }
  return missing;
}

/** One line naming every kind not served and what installs each group. */
export function unservedKindsError(missing: readonly ResourceType[]): PreconditionError {
  const hints = [...new Set(missing.map(installHint))];
  return new PreconditionError(
    `the API server does not serve ${missing.map(resourceName).join(', ')} (CRD not installed)`,
    hints.join('; '),
  );
}

/** One entry per namespace: the Lease and the Gateway in one namespace are one requirement (one line). */
export function mergeNamespaces(namespaces: readonly RequiredNamespace[]): RequiredNamespace[] {
  const byName = new Map<string, RequiredNamespace>();
  for (const ns of namespaces) {
    const seen = byName.get(ns.name);
    byName.set(
      ns.name,
      seen
        ? { name: ns.name, usedFor: `${seen.usedFor} and ${ns.usedFor}`, flag: `${seen.flag}/${ns.flag}` }
        : ns,
    );
  }
  return [...byName.values()];
}

/** The line for a namespace that is missing (or being deleted). */
export function namespaceError(ns: RequiredNamespace, terminating = false): PreconditionError {
  return new PreconditionError(
    `namespace ${ns.name} (for ${ns.usedFor}, ${ns.flag}) ${terminating ? 'is being deleted' : 'does not exist'}`,
    `create it (kubectl create namespace ${ns.name}) or give an existing one with ${ns.flag}`,
  );
}

/**
 * Everything a controller process needs before it starts, in the order a user fixes
 * them: the cluster, the kinds, the namespaces. Throws the first PreconditionError.
 */
export async function checkPreconditions(client: KubeApi, server: string, pre: Preconditions): Promise<void> {
  await checkCluster(client, server, pre.kubeconfigFlag);
  const missing = await unservedKinds(client, pre.kinds);
  if (missing.length > 0) throw unservedKindsError(missing);
  for (const ns of mergeNamespaces(pre.namespaces)) {
    const live = await client.get(Resources.Namespace, ns.name);
    if (!live) throw namespaceError(ns);
    if (live.metadata?.deletionTimestamp) throw namespaceError(ns, true);
  }
}

/** What a problem is about, for its Event (cluster-scoped objects: a namespace, a CRD). */
export function regardingNamespace(name: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

export function regardingCrd(type: ResourceType): KubeObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${type.plural}.${groupOf(type)}` },
  };
}

interface Problem {
  error: PreconditionError;
  reason: string;
}

/**
 * Conditions that retrying cannot heal, while the process runs: each is set when it
 * appears and cleared when it goes. A change logs one line (error when it appears, info
 * when it clears) and records one Warning Event; /readyz is not ready while any is set.
 */
export class PreconditionMonitor {
  private readonly problems = new Map<string, Problem>();

  constructor(
    private readonly log: Logger,
    private readonly events?: EventRecorder,
  ) {}

  set(key: string, regarding: KubeObject, reason: string, error: PreconditionError): void {
    const before = this.problems.get(key);
    if (before && before.error.message === error.message) return;
    this.problems.set(key, { error, reason });
    this.log.error({ reason, problem: error.problem, fix: error.fix }, error.message);
    void this.events?.record(regarding, 'Warning', reason, error.message, 'Check');
  }

  clear(key: string): void {
    const before = this.problems.get(key);
    if (!before) return;
    this.problems.delete(key);
    this.log.info({ reason: before.reason }, `resolved: ${before.error.problem}`);
  }

  /**
   * Informer options that report a kind no longer served (its CRD removed: the list or
   * watch answers 404) and clear it when the informer is back.
   */
  informerHooks(type: ResourceType): { onFailure: (err: unknown) => void; onRecovered: () => void } {
    const key = `kind:${resourceName(type)}`;
    return {
      onFailure: (err) => {
        if (failureStatus(err) === 404)
          this.set(key, regardingCrd(type), 'KindNotServed', unservedKindsError([type]));
      },
      onRecovered: () => this.clear(key),
    };
  }

  /** Reports ns missing while the informer (on that one namespace) sees it deleted or terminating. */
  watchNamespace(informer: Pick<Informer<KubeObject>, 'on'>, ns: RequiredNamespace): void {
    const key = `namespace:${ns.name}`;
    // Terminating and gone are one problem (one line): the namespace was deleted.
    const deleted = (): void =>
      this.set(key, regardingNamespace(ns.name), 'NamespaceMissing', namespaceError(ns, true));
    const update = (o: KubeObject): void => {
      if (o.metadata?.deletionTimestamp) deleted();
      else this.clear(key);
    };
    informer.on({ add: update, update, delete: deleted });
  }

  has(key: string): boolean {
    return this.problems.has(key);
  }

  /** The problems' lines, for /readyz. */
  reasons(): string[] {
    return [...this.problems.values()].map((p) => `${p.reason}: ${p.error.message}`);
  }
}
