/**
 * Traefik as the Gateway API implementation of a HomeCluster, installed the way k3s has
 * it: a Deployment `traefik` in kube-system running the pinned Traefik (tools/traefik,
 * v3.6.12) from the cluster's registry, its ServiceAccount and a ClusterRole with what
 * the Kubernetes Gateway provider reads and writes, the GatewayClass `traefik`, and a
 * LoadBalancer Service `traefik` (80 → entryPoint web :8000, 443 → websecure :8443).
 *
 * The entryPoints are those of the Traefik Helm chart k3s deploys (web :8000, websecure
 * :8443 with TLS, traefik :8080 for /ping), with the Kubernetes Gateway provider enabled
 * and its experimental channel (TLSRoute, which the operator's TLS passthrough listener
 * needs) as docs/install.md's HelmChartConfig does. Traefik attaches a Gateway listener
 * only to an entryPoint of the same port, so the chart's Gateways listen on 8000 and 8443
 * (values gateway.httpPort / gateway.tlsPort).
 *
 * The home's address: k3s's ServiceLB (klipper-lb) runs a pod per node that forwards the
 * node's ports 80 and 443 to the Service and publishes the nodes' addresses in the
 * Service's status.loadBalancer. There is no ServiceLB here; this harness plays its
 * controller's part and writes that status itself, with every node's LAN address, and the
 * nodes' kube-proxy (nftables) carries traffic to those addresses to the Traefik pod, on
 * whichever node it runs. Traefik stays an ordinary pod on the pod network, as on k3s, so
 * what reaches a tenant comes from a kube-system pod (what the tenants' NetworkPolicy
 * admits) rather than from a node address (hostNetwork would be that).
 *
 * Traefik reaches the API server through the in-cluster environment (the `kubernetes`
 * Service, which kube-proxy carries to the host) and resolves no names: no CoreDNS.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN_DIR } from './control-plane.js';
import { eventually } from './eventually.js';
import type { HomeCluster } from './home-cluster.js';
import { buildImage, type BuiltImage } from './images.js';
import { repoRoot } from './paths.js';

const NAMESPACE = 'kube-system';
const NAME = 'traefik';
/** The GatewayClass k3s's Traefik chart creates, and the chart's default gateway.className. */
export const TRAEFIK_GATEWAY_CLASS = 'traefik';
export const TRAEFIK_CONTROLLER = 'traefik.io/gateway-controller';
/** k3s's Traefik entryPoints (the Traefik Helm chart's defaults). */
export const TRAEFIK_ENTRYPOINTS = { web: 8000, websecure: 8443, traefik: 8080 } as const;

/** The Traefik version tools/traefik pins (its go.mod). */
export function traefikVersion(): string {
  const mod = readFileSync(join(repoRoot, 'tools', 'traefik', 'go.mod'), 'utf8');
  const m = /github\.com\/traefik\/traefik\/v3 (v\S+)/.exec(mod);
  if (!m) throw new Error('tools/traefik/go.mod does not require github.com/traefik/traefik/v3');
  return m[1]!;
}

/**
 * The Traefik image: the static binary (CGO_ENABLED=0, from tools/traefik) alone, as
 * /usr/local/bin/traefik, with /tmp and /data for what it writes; user 65532 as the
 * Helm chart runs it. No CA certificates: nothing here talks TLS to the outside (no ACME).
 */
export function traefikImage(): Promise<BuiltImage> {
  return buildImage({
    tag: `pcloud.local/traefik:${traefikVersion()}`,
    files: { '/usr/local/bin/traefik': join(BIN_DIR, 'traefik') },
    dirs: ['/tmp', '/data', '/etc'],
    entrypoint: ['/usr/local/bin/traefik'],
    user: '65532:65532',
  });
}

/**
 * What the Kubernetes Gateway provider reads and writes: Traefik's own RBAC for it
 * (docs/content/reference/dynamic-configuration/kubernetes-gateway-rbac.yml of v3.6),
 * without `get` on pods, which only its OpenTelemetry attributes use.
 */
const GATEWAY_KINDS = [
  'gatewayclasses',
  'gateways',
  'httproutes',
  'grpcroutes',
  'tcproutes',
  'tlsroutes',
  'referencegrants',
  'backendtlspolicies',
];
export const TRAEFIK_CLUSTER_ROLE_RULES = [
  { apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] },
  { apiGroups: [''], resources: ['services', 'secrets', 'configmaps'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
  { apiGroups: ['gateway.networking.k8s.io'], resources: GATEWAY_KINDS, verbs: ['get', 'list', 'watch'] },
  {
    apiGroups: ['gateway.networking.k8s.io'],
    resources: GATEWAY_KINDS.map((k) => `${k}/status`),
    verbs: ['update'],
  },
];

const LABELS = { 'app.kubernetes.io/name': 'traefik', 'app.kubernetes.io/instance': 'traefik-kube-system' };

function manifests(image: string): unknown[] {
  const e = TRAEFIK_ENTRYPOINTS;
  return [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: NAME, namespace: NAMESPACE, labels: LABELS },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'traefik-kube-system', labels: LABELS },
      rules: TRAEFIK_CLUSTER_ROLE_RULES,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'traefik-kube-system', labels: LABELS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'traefik-kube-system' },
      subjects: [{ kind: 'ServiceAccount', name: NAME, namespace: NAMESPACE }],
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: TRAEFIK_GATEWAY_CLASS, labels: LABELS },
      spec: { controllerName: TRAEFIK_CONTROLLER },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: NAME, namespace: NAMESPACE, labels: LABELS },
      spec: {
        replicas: 1,
        selector: { matchLabels: LABELS },
        template: {
          metadata: { labels: LABELS },
          spec: {
            serviceAccountName: NAME,
            terminationGracePeriodSeconds: 10,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 65532,
              runAsGroup: 65532,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: 'traefik',
                image,
                imagePullPolicy: 'IfNotPresent',
                args: [
                  '--global.checknewversion=false',
                  '--global.sendanonymoususage=false',
                  `--entryPoints.web.address=:${e.web}/tcp`,
                  `--entryPoints.websecure.address=:${e.websecure}/tcp`,
                  '--entryPoints.websecure.http.tls=true',
                  `--entryPoints.traefik.address=:${e.traefik}/tcp`,
                  '--ping=true',
                  '--providers.kubernetesgateway=true',
                  // TLSRoute (the operator's TLS passthrough listener) is experimental in v1.4.
                  '--providers.kubernetesgateway.experimentalchannel=true',
                  // The Gateways' status.addresses: the Service's load-balancer addresses.
                  `--providers.kubernetesgateway.statusaddress.service.name=${NAME}`,
                  `--providers.kubernetesgateway.statusaddress.service.namespace=${NAMESPACE}`,
                  '--log.level=INFO',
                ],
                ports: [
                  { name: 'web', containerPort: e.web, protocol: 'TCP' },
                  { name: 'websecure', containerPort: e.websecure, protocol: 'TCP' },
                  { name: 'traefik', containerPort: e.traefik, protocol: 'TCP' },
                ],
                readinessProbe: {
                  httpGet: { path: '/ping', port: 'traefik' },
                  periodSeconds: 2,
                  failureThreshold: 1,
                },
                livenessProbe: {
                  httpGet: { path: '/ping', port: 'traefik' },
                  periodSeconds: 10,
                  failureThreshold: 3,
                },
                resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '256Mi' } },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [
                  { name: 'tmp', mountPath: '/tmp' },
                  { name: 'data', mountPath: '/data' },
                ],
              },
            ],
            volumes: [
              { name: 'tmp', emptyDir: {} },
              { name: 'data', emptyDir: {} },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: NAME, namespace: NAMESPACE, labels: LABELS },
      spec: {
        type: 'LoadBalancer',
        selector: LABELS,
        ports: [
          { name: 'web', port: 80, targetPort: 'web', protocol: 'TCP' },
          { name: 'websecure', port: 443, targetPort: 'websecure', protocol: 'TCP' },
        ],
      },
    },
  ];
}

export interface Traefik {
  /** The image reference the nodes pulled (the cluster's registry). */
  image: string;
  /** The home's addresses: every node's LAN address (ports 80 and 443), as ServiceLB publishes them. */
  addresses: string[];
  /** The node the Traefik pod runs on. */
  node: string;
  /** The pod's name. */
  pod: string;
  /** Milliseconds: image build, push, and from apply to the pod Ready. */
  timings: { imageBuild: number; push: number; ready: number };
}

interface PodList {
  items: {
    metadata: { name: string };
    spec: { nodeName?: string };
    status: { phase?: string; conditions?: { type: string; status: string }[] };
  }[];
}

/**
 * Installs Traefik into hc (the Gateway API CRDs must be there: the provider never
 * starts without them, TCPRoute's included) and waits for its pod to be Ready.
 */
export async function installTraefik(
  hc: HomeCluster,
  opts: { readyTimeoutMs?: number } = {},
): Promise<Traefik> {
  let t = Date.now();
  const built = await traefikImage();
  const imageBuild = Date.now() - t;
  t = Date.now();
  const image = await hc.pushImage(built, `traefik/traefik:${traefikVersion()}`);
  const push = Date.now() - t;
  t = Date.now();
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const r = await hc.controlPlane.kubectl(args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  await kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests(image) }),
  );
  // ServiceLB's part: the nodes' addresses as the Service's load-balancer ingress.
  const addresses = [...hc.nodes.values()].map((n) => n.ip);
  await kubectl([
    '-n',
    NAMESPACE,
    'patch',
    'service',
    NAME,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { loadBalancer: { ingress: addresses.map((ip) => ({ ip, ipMode: 'VIP' })) } } }),
  ]);
  const selector = Object.entries(LABELS)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const pod = await eventually(
    'the Traefik pod Ready',
    async () => {
      const list = JSON.parse(
        await kubectl(['-n', NAMESPACE, 'get', 'pods', '-l', selector, '-o', 'json']),
      ) as PodList;
      return list.items.find(
        (p) =>
          p.status.phase === 'Running' &&
          (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
      );
    },
    { timeoutMs: opts.readyTimeoutMs ?? 240_000, intervalMs: 500 },
  ).catch(async (err: Error) => {
    const r = await hc.controlPlane.kubectl(['-n', NAMESPACE, 'get', 'pods,events', '-o', 'wide']);
    throw new Error(`${err.message}\n${r.stdout}${r.stderr}`);
  });
  return {
    image,
    addresses,
    node: pod.spec.nodeName!,
    pod: pod.metadata.name,
    timings: { imageBuild, push, ready: Date.now() - t },
  };
}

/** Traefik's log, through the API server. */
export async function traefikLog(hc: HomeCluster): Promise<string> {
  const r = await hc.controlPlane.kubectl(['-n', NAMESPACE, 'logs', `deployment/${NAME}`]);
  return r.stdout + r.stderr;
}
