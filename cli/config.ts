/**
 * The one configuration module: every flag of the controller commands, its
 * environment variable and its default are declared here, once; this is the only
 * code that reads the environment (through commander's Option.env). Commands turn
 * the parsed options into the plain config objects the controllers take
 * (OperatorConfig, MatchmakerConfig) and never read process.env themselves. Tests build
 * configs through the same functions, so a default is never restated elsewhere.
 */
import { hostname } from 'node:os';
import { Option } from 'commander';
import { JOIN_SECRET, SYSTEM_NAMESPACE, peerNameProblem } from '../api/federation.js';
import { parseMilli, QuantityError } from '../api/quantity.js';
import type { MatchmakerConfig } from '../matchmaker/controller/matchmaker-controller.js';
import type { OperatorConfig } from '../operator/config.js';
import type { NodeAgentConfig } from '../node-agent/main.js';
import type { PortalConfig } from '../portal/main.js';
import { parsePortRange, type PortRange } from '../node-agent/grant-plan.js';
import { parseCidr } from '../operator/network-address.js';
import { DEFAULT_CLUSTER_CIDRS } from '../operator/home.js';

export class ConfigError extends Error {}

/** One flag: `--name <arg>`, the environment variable that also sets it, its default. */
interface Flag {
  flags: string;
  description: string;
  env?: string;
  default?: string;
  parser?: (value: string, previous: string[] | undefined) => string[];
}

type FlagTable = Record<string, Flag>;

const collect = (v: string, prev: string[] | undefined): string[] => [
  ...(prev ?? []),
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

function optionOf(f: Flag): Option {
  const o = new Option(f.flags, f.description);
  if (f.env) o.env(f.env);
  if (f.default !== undefined) o.default(f.default);
  if (f.parser) o.argParser(f.parser);
  return o;
}

/** The operator's flags, keyed by commander's camelCase attribute name. */
export const OPERATOR_FLAGS = {
  kubeconfig: {
    flags: '--kubeconfig <path>',
    description: 'kubeconfig of the home cluster (in-cluster config when unset)',
    env: 'KUBECONFIG',
  },
  peer: {
    flags: '--peer <name>',
    description: "this home's peer name; Assignments with spec.host == peer are hosted here",
    env: 'PCLOUD_PEER',
  },
  homeDomain: {
    flags: '--home-domain <domain>',
    description: "DNS domain of the home's Gateway; VMs are <vm>.<peer>.<home-domain>",
    env: 'PCLOUD_HOME_DOMAIN',
    default: 'pcloud.home.arpa',
  },
  homeLan: {
    flags: '--home-lan <cidr>',
    description:
      'home LAN CIDR tenants must never reach (repeatable, or comma-separated; default 192.168.0.0/16)',
    env: 'PCLOUD_HOME_LAN',
    parser: collect,
  },
  tenantMtu: {
    flags: '--tenant-mtu <bytes>',
    description:
      "MTU of the tenants' private networks: the home LAN's MTU less 50 bytes of VXLAN (1450 on a 1500-byte LAN)",
    env: 'PCLOUD_TENANT_MTU',
    default: '1450',
  },
  clusterCidr: {
    flags: '--cluster-cidr <cidr>',
    description:
      "the cluster's pod and Service CIDRs, closed to tenants but for DNS (repeatable, or comma-separated; default k3s's 10.42.0.0/16,10.43.0.0/16)",
    env: 'PCLOUD_CLUSTER_CIDR',
    parser: collect,
  },
  unitCpu: {
    flags: '--unit-cpu <quantity>',
    description: "CPU of one unit (VM) when this home's Offer does not say",
    env: 'PCLOUD_UNIT_CPU',
    default: '1',
  },
  unitMemory: {
    flags: '--unit-memory <quantity>',
    description: "memory of one unit when this home's Offer does not say",
    env: 'PCLOUD_UNIT_MEMORY',
    default: '2Gi',
  },
  unitStorage: {
    flags: '--unit-storage <quantity>',
    description: "disk of one unit when this home's Offer does not say",
    env: 'PCLOUD_UNIT_STORAGE',
    default: '10Gi',
  },
  metricsPort: {
    flags: '--metrics-port <port>',
    description: 'port of /metrics, /healthz and /readyz (0 picks a free one)',
    env: 'PCLOUD_METRICS_PORT',
    default: '8080',
  },
  metricsHost: {
    flags: '--metrics-host <address>',
    description: 'address the metrics server listens on',
    env: 'PCLOUD_METRICS_HOST',
    default: '0.0.0.0',
  },
  leaderElect: {
    flags: '--no-leader-elect',
    description: 'run the controllers without a Lease (one replica only)',
  },
  leaseNamespace: {
    flags: '--lease-namespace <ns>',
    description: 'namespace of the leader-election Lease',
    env: 'PCLOUD_LEASE_NAMESPACE',
    default: 'personal-cloud',
  },
  leaseName: {
    flags: '--lease-name <name>',
    description: 'name of the leader-election Lease',
    env: 'PCLOUD_LEASE_NAME',
    default: 'personal-cloud-operator',
  },
  leaseDuration: {
    flags: '--lease-duration <seconds>',
    description: 'how long a standby waits after the last renewal before taking over',
    env: 'PCLOUD_LEASE_DURATION',
    default: '15',
  },
  leaseRenewDeadline: {
    flags: '--lease-renew-deadline <seconds>',
    description: 'how long the leader keeps trying to renew before it steps down',
    env: 'PCLOUD_LEASE_RENEW_DEADLINE',
    default: '10',
  },
  leaseRetryPeriod: {
    flags: '--lease-retry-period <seconds>',
    description: 'interval between Lease acquire/renew attempts',
    env: 'PCLOUD_LEASE_RETRY_PERIOD',
    default: '2',
  },
  identity: {
    flags: '--identity <id>',
    description: 'leader-election identity of this process (default <hostname>-<pid>)',
    env: 'PCLOUD_IDENTITY',
  },
  gatewayNamespace: {
    flags: '--gateway-namespace <ns>',
    description: "namespace of the home's Gateway",
    env: 'PCLOUD_GATEWAY_NAMESPACE',
    default: 'personal-cloud',
  },
  gatewayName: {
    flags: '--gateway-name <name>',
    description: "name of the home's Gateway",
    env: 'PCLOUD_GATEWAY_NAME',
    default: 'personal-cloud',
  },
  gatewayClass: {
    flags: '--gateway-class <class>',
    description: 'GatewayClass of the Gateway',
    env: 'PCLOUD_GATEWAY_CLASS',
    default: 'cilium',
  },
  gatewayHttpPort: {
    flags: '--gateway-http-port <port>',
    description:
      "port of the Gateway's HTTP listener (Traefik attaches a listener only to an entryPoint of that port: 8000 on k3s)",
    env: 'PCLOUD_GATEWAY_HTTP_PORT',
    default: '80',
  },
  gatewayTlsPort: {
    flags: '--gateway-tls-port <port>',
    description: "port of the Gateway's TLS passthrough listener (8443 for k3s's Traefik)",
    env: 'PCLOUD_GATEWAY_TLS_PORT',
    default: '443',
  },
  joinSecret: {
    flags: '--join-secret <namespace/name>',
    description: 'the join Secret `pcloud federation join` writes; the federation runs while it exists',
    env: 'PCLOUD_JOIN_SECRET',
    default: `${SYSTEM_NAMESPACE}/${JOIN_SECRET}`,
  },
  heartbeatInterval: {
    flags: '--heartbeat-interval <seconds>',
    description:
      "how often the federation heartbeat is renewed; keep it well below the matchmaker's --peer-grace",
    env: 'PCLOUD_HEARTBEAT_INTERVAL',
    default: '10',
  },
  workers: {
    flags: '--workers <n>',
    description: 'concurrent reconciles per controller',
    env: 'PCLOUD_WORKERS',
    default: '4',
  },
  logLevel: {
    flags: '--log-level <level>',
    description: 'pino log level',
    env: 'LOG_LEVEL',
    default: 'info',
  },
} as const satisfies FlagTable;

/** A repeatable CIDR flag: the default when not given, an error naming the flag when empty or bad. */
function cidrList(value: unknown, fallback: readonly string[], flag: string): string[] {
  const list = Array.isArray(value)
    ? value.map(String)
    : typeof value === 'string'
      ? collect(value, [])
      : [...fallback];
  if (list.length === 0) throw new ConfigError(`${flag} is empty: give at least one IPv4 CIDR`);
  for (const c of list) if (!parseCidr(c)) throw new ConfigError(`${flag}: ${c} is not an IPv4 CIDR`);
  return list;
}

/** The home LAN when --home-lan is not given at all. */
export const DEFAULT_HOME_LAN = ['192.168.0.0/16'];

/** The options of `pcloud operator`, each with its environment variable. */
export function operatorOptions(): Option[] {
  return Object.values(OPERATOR_FLAGS).map(optionOf);
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Reads options against one command's flag table; every default comes from the table. */
class Options<T extends FlagTable> {
  constructor(
    private readonly table: T,
    private readonly o: Record<string, unknown>,
  ) {}

  /** The value as parsed, or the declared default (when parsing did not run, e.g. in tests). */
  value(key: keyof T & string): unknown {
    return this.o[key] ?? this.table[key]!.default;
  }

  text(key: keyof T & string): string {
    const v = this.value(key);
    return typeof v === 'string' ? v : '';
  }

  flag(key: keyof T & string): string {
    return this.table[key]!.flags.split(' ')[0]!;
  }

  seconds(key: keyof T & string): number {
    const v = this.value(key);
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0)
      throw new ConfigError(`${this.flag(key)} must be a positive number of seconds, got ${String(v)}`);
    return Math.round(n * 1000);
  }

  /** "30s", "500ms", "2m" or a bare number of seconds, in milliseconds. */
  duration(key: keyof T & string): number {
    const v = this.value(key);
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(v).trim());
    if (!m)
      throw new ConfigError(`${this.flag(key)} must be a duration like 30s, 500ms or 2m, got ${String(v)}`);
    const n = Number(m[1]);
    const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
    if (!(ms > 0)) throw new ConfigError(`${this.flag(key)} must be positive, got ${String(v)}`);
    return Math.round(ms);
  }

  positiveInteger(key: keyof T & string): number {
    const v = this.value(key);
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      throw new ConfigError(`${this.flag(key)} must be a positive integer, got ${String(v)}`);
    return n;
  }

  quantity(key: keyof T & string): string {
    const s = this.text(key);
    try {
      if (parseMilli(s) <= 0n) throw new ConfigError(`${this.flag(key)} must be positive, got ${s}`);
    } catch (err) {
      if (err instanceof QuantityError) throw new ConfigError(`${this.flag(key)}: ${err.message}`);
      throw err;
    }
    return s;
  }

  /** A namespace name (a DNS label), e.g. --lease-namespace. */
  dnsLabel(key: keyof T & string): string {
    const s = this.text(key);
    if (!DNS_LABEL.test(s) || s.length > 63)
      throw new ConfigError(`${this.flag(key)} must be a namespace name (a DNS-1123 label), got ${s}`);
    return s;
  }

  /** `namespace/name`: a DNS label and a DNS subdomain. */
  namespacedName(key: keyof T & string): { namespace: string; name: string } {
    const s = this.text(key);
    const [namespace = '', name = '', ...rest] = s.split('/');
    if (rest.length > 0 || !DNS_LABEL.test(namespace) || !DNS_SUBDOMAIN.test(name))
      throw new ConfigError(`${this.flag(key)} must be <namespace>/<name>, got ${s}`);
    return { namespace, name };
  }

  port(key: keyof T & string): number {
    const v = this.value(key);
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new ConfigError(`${this.flag(key)} must be a port number, got ${String(v)}`);
    return n;
  }

  /** A Gateway listener's port: 1-65535 (the Gateway API's PortNumber). */
  listenerPort(key: keyof T & string): number {
    const n = this.port(key);
    if (n === 0) throw new ConfigError(`${this.flag(key)} must be a port number from 1 to 65535, got 0`);
    return n;
  }

  identity(key: keyof T & string): string {
    return this.text(key) || `${hostname()}-${process.pid}`;
  }
}

/** Validates the parsed options (commander's camelCase keys) into the operator's config. */
export function configFromOptions(raw: Record<string, unknown>): OperatorConfig {
  const o = new Options(OPERATOR_FLAGS, raw);
  const peer = o.text('peer');
  if (!peer) throw new ConfigError('--peer (or PCLOUD_PEER) is required');
  const peerProblem = peerNameProblem(peer);
  if (peerProblem) throw new ConfigError(`--peer must be a DNS-1123 label, got ${peer}: ${peerProblem}`);
  const homeDomain = o.text('homeDomain');
  if (!DNS_SUBDOMAIN.test(homeDomain) || homeDomain.length > 200)
    throw new ConfigError(`--home-domain must be a DNS subdomain, got ${homeDomain}`);
  const homeLanRaw = raw.homeLan;
  const homeLan = Array.isArray(homeLanRaw)
    ? homeLanRaw.map(String)
    : typeof homeLanRaw === 'string'
      ? collect(homeLanRaw, [])
      : DEFAULT_HOME_LAN;
  // An empty list would silently drop the home-LAN deny from every tenant's policy.
  if (homeLan.length === 0)
    throw new ConfigError(
      '--home-lan (or PCLOUD_HOME_LAN) is empty: give at least one CIDR tenants must never reach, e.g. 192.168.0.0/16',
    );
  for (const c of homeLan) {
    if (!parseCidr(c)) throw new ConfigError(`--home-lan: ${c} is not an IPv4 CIDR`);
  }
  const clusterCidrs = cidrList(raw.clusterCidr, DEFAULT_CLUSTER_CIDRS, '--cluster-cidr');
  const tenantMtu = o.positiveInteger('tenantMtu');
  if (tenantMtu < 576 || tenantMtu > 9000)
    throw new ConfigError(`--tenant-mtu must be between 576 and 9000 bytes, got ${tenantMtu}`);
  const leaseDurationMs = o.seconds('leaseDuration');
  const leaseRenewDeadlineMs = o.seconds('leaseRenewDeadline');
  const leaseRetryPeriodMs = o.seconds('leaseRetryPeriod');
  if (!(leaseDurationMs > leaseRenewDeadlineMs && leaseRenewDeadlineMs > leaseRetryPeriodMs))
    throw new ConfigError('need --lease-duration > --lease-renew-deadline > --lease-retry-period');
  const gatewayHttpPort = o.listenerPort('gatewayHttpPort');
  const gatewayTlsPort = o.listenerPort('gatewayTlsPort');
  if (gatewayHttpPort === gatewayTlsPort)
    throw new ConfigError(
      `--gateway-http-port and --gateway-tls-port must differ (an HTTP and a TLS listener cannot share a port), both are ${gatewayHttpPort}`,
    );
  return {
    kubeconfig: o.text('kubeconfig') || undefined,
    peer,
    homeDomain,
    homeLan,
    tenantMtu,
    clusterCidrs,
    unit: {
      cpu: o.quantity('unitCpu'),
      memory: o.quantity('unitMemory'),
      storage: o.quantity('unitStorage'),
    },
    metricsPort: o.port('metricsPort'),
    metricsHost: o.text('metricsHost'),
    leaderElect: raw.leaderElect !== false,
    leaseNamespace: o.dnsLabel('leaseNamespace'),
    leaseName: o.text('leaseName'),
    leaseDurationMs,
    leaseRenewDeadlineMs,
    leaseRetryPeriodMs,
    identity: o.identity('identity'),
    gatewayNamespace: o.dnsLabel('gatewayNamespace'),
    gatewayName: o.text('gatewayName'),
    gatewayClass: o.text('gatewayClass'),
    gatewayHttpPort,
    gatewayTlsPort,
    joinSecret: o.namespacedName('joinSecret'),
    heartbeatMs: o.seconds('heartbeatInterval'),
    workers: o.positiveInteger('workers'),
    logLevel: o.text('logLevel'),
  };
}

/** The matchmaker's flags, keyed by commander's camelCase attribute name. */
export const MATCHMAKER_FLAGS = {
  kubeconfig: {
    flags: '--kubeconfig <path>',
    description: 'kubeconfig of the matchmaker cluster',
    env: 'KUBECONFIG',
  },
  peerGrace: {
    flags: '--peer-grace <duration>',
    description: 'a peer is away when its heartbeat is older than this',
    env: 'PCLOUD_PEER_GRACE',
    default: '30s',
  },
  debounce: {
    flags: '--debounce <duration>',
    description: 'quiet time after a change before solving',
    env: 'PCLOUD_DEBOUNCE',
    default: '500ms',
  },
  debounceMax: {
    flags: '--debounce-max <duration>',
    description: 'longest a burst of changes delays a solve',
    env: 'PCLOUD_DEBOUNCE_MAX',
    default: '5s',
  },
  metricsPort: {
    flags: '--metrics-port <port>',
    description: 'port of /metrics, /healthz and /readyz (0 picks a free one)',
    env: 'PCLOUD_METRICS_PORT',
    default: '8081',
  },
  metricsHost: {
    flags: '--metrics-host <address>',
    description: 'address the metrics server listens on',
    default: '0.0.0.0',
  },
  leaderElect: { flags: '--no-leader-elect', description: 'run without a Lease (one replica only)' },
  leaseNamespace: {
    flags: '--lease-namespace <ns>',
    description: 'namespace of the leader-election Lease',
    default: 'personal-cloud-system',
  },
  leaseName: {
    flags: '--lease-name <name>',
    description: 'name of the leader-election Lease',
    default: 'matchmaker',
  },
  identity: {
    flags: '--identity <id>',
    description: 'leader-election identity of this process (default <hostname>-<pid>)',
    env: 'PCLOUD_IDENTITY',
  },
  writeConcurrency: {
    flags: '--write-concurrency <n>',
    description: 'concurrent API writes per pass',
    env: 'PCLOUD_WRITE_CONCURRENCY',
    default: '16',
  },
  maxObjectBytes: {
    flags: '--max-object-bytes <n>',
    description: 'Offers and Requests whose spec is larger (JSON bytes) are ignored (Ready=False TooLarge)',
    env: 'PCLOUD_MAX_OBJECT_BYTES',
    default: '65536',
  },
  logLevel: {
    flags: '--log-level <level>',
    description: 'pino log level',
    env: 'LOG_LEVEL',
    default: 'info',
  },
} as const satisfies FlagTable;

export function matchmakerOptions(): Option[] {
  return Object.values(MATCHMAKER_FLAGS).map(optionOf);
}

/** Validates the parsed options into the matchmaker's config (every default from MATCHMAKER_FLAGS). */
export function matchmakerConfigFromOptions(raw: Record<string, unknown>): MatchmakerConfig {
  const o = new Options(MATCHMAKER_FLAGS, raw);
  return {
    kubeconfig: o.text('kubeconfig') || undefined,
    peerGraceMs: o.duration('peerGrace'),
    debounceQuietMs: o.duration('debounce'),
    debounceMaxMs: o.duration('debounceMax'),
    metricsPort: o.port('metricsPort'),
    metricsHost: o.text('metricsHost'),
    leaderElect: raw.leaderElect !== false,
    leaseNamespace: o.dnsLabel('leaseNamespace'),
    leaseName: o.text('leaseName'),
    identity: o.identity('identity'),
    writeConcurrency: o.positiveInteger('writeConcurrency'),
    maxObjectBytes: o.positiveInteger('maxObjectBytes'),
    logLevel: o.text('logLevel'),
  };
}

/** The node agent's flags, keyed by commander's camelCase attribute name. */
export const NODE_AGENT_FLAGS = {
  kubeconfig: {
    flags: '--kubeconfig <path>',
    description: 'kubeconfig of the home cluster (in-cluster config when unset)',
    env: 'KUBECONFIG',
  },
  nodeName: {
    flags: '--node-name <name>',
    description: 'the Node this agent runs on (the chart passes spec.nodeName)',
    env: 'PCLOUD_NODE_NAME',
  },
  resyncInterval: {
    flags: '--resync-interval <seconds>',
    description: 'how often the node is compared with the API even without a change (repairs drift)',
    env: 'PCLOUD_RESYNC_INTERVAL',
    default: '30',
  },
  metricsPort: {
    flags: '--metrics-port <port>',
    description: 'port of /metrics, /healthz and /readyz (0 picks a free one)',
    env: 'PCLOUD_METRICS_PORT',
    default: '8081',
  },
  metricsHost: {
    flags: '--metrics-host <address>',
    description: 'address the metrics server listens on',
    env: 'PCLOUD_METRICS_HOST',
    default: '0.0.0.0',
  },
  chiefNode: {
    flags: '--chief-node <name>',
    description:
      "the home's chief node (where the router forwards the portal's public ports): the agent on it realises the portal's grants as nftables DNAT",
    env: 'PCLOUD_CHIEF_NODE',
  },
  grantPorts: {
    flags: '--grant-ports <first-last>',
    description: "public ports the chief hands out to the portal's grants",
    env: 'PCLOUD_GRANT_PORTS',
    default: '40000-40999',
  },
  grantMaxSeconds: {
    flags: '--grant-max-seconds <seconds>',
    description: 'the longest the chief keeps a grant open, whatever its expiresAt says',
    env: 'PCLOUD_GRANT_MAX_SECONDS',
    default: '3600',
  },
  logLevel: {
    flags: '--log-level <level>',
    description: 'pino log level',
    env: 'LOG_LEVEL',
    default: 'info',
  },
} as const satisfies FlagTable;

export function nodeAgentOptions(): Option[] {
  return Object.values(NODE_AGENT_FLAGS).map(optionOf);
}

/** Validates the parsed options into the node agent's config (every default from NODE_AGENT_FLAGS). */
export function nodeAgentConfigFromOptions(raw: Record<string, unknown>): NodeAgentConfig {
  const o = new Options(NODE_AGENT_FLAGS, raw);
  const nodeName = o.text('nodeName');
  if (!nodeName)
    throw new ConfigError('--node-name (or PCLOUD_NODE_NAME) is required: the Node this agent runs on');
  if (!DNS_SUBDOMAIN.test(nodeName) || nodeName.length > 253)
    throw new ConfigError(`--node-name must be a Node name (a DNS subdomain), got ${nodeName}`);
  return {
    kubeconfig: o.text('kubeconfig') || undefined,
    nodeName,
    resyncMs: o.seconds('resyncInterval'),
    metricsPort: o.port('metricsPort'),
    metricsHost: o.text('metricsHost'),
    logLevel: o.text('logLevel'),
    ...(o.text('chiefNode') === nodeName ? { grants: grantConfig(o) } : {}),
  };
}

function grantConfig(o: Options<typeof NODE_AGENT_FLAGS>): { range: PortRange; maxSeconds: number } {
  const range = parsePortRange(o.text('grantPorts'));
  if (!range)
    throw new ConfigError(
      `--grant-ports must be a port range such as 40000-40999, got ${o.text('grantPorts')}`,
    );
  return { range, maxSeconds: o.seconds('grantMaxSeconds') / 1000 };
}

/** `pcloud portal serve`'s flags. */
export const PORTAL_FLAGS = {
  kubeconfig: {
    flags: '--kubeconfig <path>',
    description: 'kubeconfig of the home cluster (in-cluster config when unset)',
    env: 'KUBECONFIG',
  },
  peer: {
    flags: '--peer <name>',
    description: "this home's peer name: sign-in assertions must be addressed to it",
    env: 'PCLOUD_PEER',
  },
  namespace: {
    flags: '--namespace <name>',
    description: "the portal's namespace: its signing key Secret, and Events about unknown homes",
    env: 'PCLOUD_NAMESPACE',
    default: SYSTEM_NAMESPACE,
  },
  signingKeySecret: {
    flags: '--signing-key-secret <name>',
    description: "Secret with this home's portal signing key (pcloud portal keygen makes it)",
    env: 'PCLOUD_SIGNING_KEY_SECRET',
    default: 'portal-signing-key',
  },
  listenHost: {
    flags: '--listen-host <address>',
    description: 'address the portal listens on',
    env: 'PCLOUD_LISTEN_HOST',
    default: '0.0.0.0',
  },
  listenPort: {
    flags: '--listen-port <port>',
    description: 'port the portal listens on (0 picks a free one)',
    env: 'PCLOUD_LISTEN_PORT',
    default: '8080',
  },
  tlsCert: {
    flags: '--tls-cert <file>',
    description:
      'serve HTTPS with this certificate (PEM); unset: plain HTTP behind a TLS-terminating Gateway',
    env: 'PCLOUD_TLS_CERT',
  },
  tlsKey: {
    flags: '--tls-key <file>',
    description: 'the private key of --tls-cert (PEM)',
    env: 'PCLOUD_TLS_KEY',
  },
  insecureCookies: {
    flags: '--insecure-cookies <bool>',
    description: 'development only: cookies without Secure (a browser drops Secure cookies on plain http)',
    env: 'PCLOUD_INSECURE_COOKIES',
    default: 'false',
  },
  cookieSecret: {
    flags: '--cookie-secret <secret>',
    description:
      'signs session and CSRF cookies, at least 32 characters (the chart passes a generated Secret)',
    env: 'PCLOUD_COOKIE_SECRET',
  },
  ownerToken: {
    flags: '--owner-token <token>',
    description:
      "the owner's sign-in token for the dashboard (the chart passes a generated Secret); unset: no owner sign-in",
    env: 'PCLOUD_OWNER_TOKEN',
  },
  publicAddress: {
    flags: '--public-address <host>',
    description:
      "what guests connect to for an open port: the home's public address or name (the router forwards the grant ports to the chief node)",
    env: 'PCLOUD_PUBLIC_ADDRESS',
  },
  grantDurations: {
    flags: '--grant-durations <seconds,...>',
    description: 'how long a guest may open a port for, in seconds (the choices on the page)',
    env: 'PCLOUD_GRANT_DURATIONS',
    default: '900,3600',
  },
  maxGrants: {
    flags: '--max-grants <n>',
    description: 'open grants one home may have here at once',
    env: 'PCLOUD_MAX_GRANTS',
    default: '10',
  },
  sessionSeconds: {
    flags: '--session-seconds <seconds>',
    description: 'how long a sign-in lasts',
    env: 'PCLOUD_SESSION_SECONDS',
    default: '900',
  },
  loginRate: {
    flags: '--login-rate <n/seconds>',
    description: 'sign-in attempts allowed per client address and window',
    env: 'PCLOUD_LOGIN_RATE',
    default: '10/60',
  },
  grantRate: {
    flags: '--grant-rate <n/seconds>',
    description: 'grant requests allowed per client address and window',
    env: 'PCLOUD_GRANT_RATE',
    default: '20/60',
  },
  trustProxy: {
    flags: '--trust-proxy <cidr>',
    description:
      "proxies (the Gateway's) whose X-Forwarded-For names the client (repeatable, or comma-separated)",
    env: 'PCLOUD_TRUST_PROXY',
    parser: collect,
  },
  sampleInterval: {
    flags: '--sample-interval <seconds>',
    description: "how often the dashboard's chart samples units offered and used",
    env: 'PCLOUD_SAMPLE_INTERVAL',
    default: '60',
  },
  logLevel: {
    flags: '--log-level <level>',
    description: 'pino log level',
    env: 'LOG_LEVEL',
    default: 'info',
  },
} as const satisfies FlagTable;

export function portalOptions(): Option[] {
  return Object.values(PORTAL_FLAGS).map(optionOf);
}

function rate(
  o: Options<typeof PORTAL_FLAGS>,
  key: 'loginRate' | 'grantRate',
): { max: number; windowMs: number } {
  const m = /^(\d+)\/(\d+)$/.exec(o.text(key));
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
    throw new ConfigError(`${o.flag(key)} must be <attempts>/<seconds> such as 10/60, got ${o.text(key)}`);
  return { max: Number(m[1]), windowMs: Number(m[2]) * 1000 };
}

/** Validates the parsed options into the portal's config (every default from PORTAL_FLAGS). */
export function portalConfigFromOptions(
  raw: Record<string, unknown>,
  readFile: (path: string) => string,
): PortalConfig {
  const o = new Options(PORTAL_FLAGS, raw);
  const peer = o.text('peer');
  const problem = peerNameProblem(peer);
  if (!peer) throw new ConfigError('--peer (or PCLOUD_PEER) is required: this home in the federation');
  if (problem) throw new ConfigError(`--peer: ${problem}`);
  const cookieSecret = o.text('cookieSecret');
  if (cookieSecret.length < 32)
    throw new ConfigError('--cookie-secret (or PCLOUD_COOKIE_SECRET) must be at least 32 characters');
  const durations = o
    .text('grantDurations')
    .split(',')
    .map((s) => Number(s.trim()));
  if (durations.length === 0 || durations.some((d) => !Number.isInteger(d) || d < 1 || d > 86400))
    throw new ConfigError(
      `--grant-durations must be whole seconds between 1 and 86400, comma-separated, got ${o.text('grantDurations')}`,
    );
  const certFile = o.text('tlsCert');
  const keyFile = o.text('tlsKey');
  if (Boolean(certFile) !== Boolean(keyFile)) throw new ConfigError('--tls-cert and --tls-key go together');
  const insecure = o.text('insecureCookies');
  if (insecure !== 'true' && insecure !== 'false')
    throw new ConfigError(`--insecure-cookies must be true or false, got ${insecure}`);
  const listenPort = Number(o.text('listenPort'));
  if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 65535)
    throw new ConfigError(`--listen-port must be a port number, got ${o.text('listenPort')}`);
  const readPem = (flag: string, path: string): string => {
    try {
      return readFile(path);
    } catch (err) {
      throw new ConfigError(`${flag} ${path} is unreadable: ${(err as Error).message}`);
    }
  };
  return {
    kubeconfig: o.text('kubeconfig') || undefined,
    peer,
    namespace: o.dnsLabel('namespace'),
    signingKeySecret: o.text('signingKeySecret'),
    host: o.text('listenHost'),
    port: listenPort,
    ...(certFile
      ? { tls: { cert: readPem('--tls-cert', certFile), key: readPem('--tls-key', keyFile) } }
      : {}),
    secureCookies: insecure !== 'true',
    cookieSecret,
    ...(o.text('ownerToken') ? { ownerToken: o.text('ownerToken') } : {}),
    ...(o.text('publicAddress') ? { publicAddress: o.text('publicAddress') } : {}),
    grantDurations: durations,
    maxGrantsPerPeer: o.positiveInteger('maxGrants'),
    sessionSeconds: o.seconds('sessionSeconds') / 1000,
    loginRateLimit: rate(o, 'loginRate'),
    grantRateLimit: rate(o, 'grantRate'),
    trustProxy: (o.value('trustProxy') as string[] | undefined) ?? [],
    sampleIntervalMs: o.seconds('sampleInterval'),
    logLevel: o.text('logLevel'),
  };
}
