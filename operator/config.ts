/**
 * The operator's configuration: every setting is a command-line flag and an
 * environment variable (the flag wins). `bin/pcloud operator --help` prints the
 * descriptions written here.
 */
import { hostname } from 'node:os';
import { Option } from 'commander';
import { parseCidr } from './network-address.js';
import { parseMilli, QuantityError } from '../api/quantity.js';

export interface UnitSize {
  cpu: string;
  memory: string;
  storage: string;
}

export interface OperatorConfig {
  kubeconfig?: string;
  /** This home's peer name: hosted Assignments are those with spec.host == peer. */
  peer: string;
  homeDomain: string;
  homeLan: string[];
  unit: UnitSize;
  metricsPort: number;
  metricsHost: string;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  leaseDurationMs: number;
  leaseRenewDeadlineMs: number;
  leaseRetryPeriodMs: number;
  identity: string;
  gatewayNamespace: string;
  gatewayName: string;
  gatewayClass: string;
  workers: number;
  logLevel: string;
}

export class ConfigError extends Error {}

const collect = (v: string, prev: string[] | undefined): string[] => [
  ...(prev ?? []),
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

/** The options of `pcloud operator`, each with its environment variable. */
export function operatorOptions(): Option[] {
  return [
    new Option('--kubeconfig <path>', 'kubeconfig of the home cluster (in-cluster config when unset)').env(
      'KUBECONFIG',
    ),
    new Option(
      '--peer <name>',
      "this home's peer name; Assignments with spec.host == peer are hosted here",
    ).env('PCLOUD_PEER'),
    new Option(
      '--home-domain <domain>',
      "DNS domain of the home's Gateway; VMs are <vm>.<peer>.<home-domain>",
    )
      .env('PCLOUD_HOME_DOMAIN')
      .default('pcloud.home.arpa'),
    new Option('--home-lan <cidr>', 'home LAN CIDR tenants must never reach (repeatable, or comma-separated)')
      .env('PCLOUD_HOME_LAN')
      .argParser(collect),
    new Option('--unit-cpu <quantity>', "CPU of one unit (VM) when this home's Offer does not say")
      .env('PCLOUD_UNIT_CPU')
      .default('1'),
    new Option('--unit-memory <quantity>', "memory of one unit when this home's Offer does not say")
      .env('PCLOUD_UNIT_MEMORY')
      .default('2Gi'),
    new Option('--unit-storage <quantity>', "disk of one unit when this home's Offer does not say")
      .env('PCLOUD_UNIT_STORAGE')
      .default('10Gi'),
    new Option('--metrics-port <port>', 'port of /metrics, /healthz and /readyz (0 picks a free one)')
      .env('PCLOUD_METRICS_PORT')
      .default('8080'),
    new Option('--metrics-host <address>', 'address the metrics server listens on')
      .env('PCLOUD_METRICS_HOST')
      .default('0.0.0.0'),
    new Option('--no-leader-elect', 'run the controllers without a Lease (one replica only)'),
    new Option('--lease-namespace <ns>', 'namespace of the leader-election Lease')
      .env('PCLOUD_LEASE_NAMESPACE')
      .default('personal-cloud'),
    new Option('--lease-name <name>', 'name of the leader-election Lease')
      .env('PCLOUD_LEASE_NAME')
      .default('personal-cloud-operator'),
    new Option(
      '--lease-duration <seconds>',
      'how long a standby waits after the last renewal before taking over',
    )
      .env('PCLOUD_LEASE_DURATION')
      .default('15'),
    new Option(
      '--lease-renew-deadline <seconds>',
      'how long the leader keeps trying to renew before it steps down',
    )
      .env('PCLOUD_LEASE_RENEW_DEADLINE')
      .default('10'),
    new Option('--lease-retry-period <seconds>', 'interval between Lease acquire/renew attempts')
      .env('PCLOUD_LEASE_RETRY_PERIOD')
      .default('2'),
    new Option('--identity <id>', 'leader-election identity of this process').env('PCLOUD_IDENTITY'),
    new Option('--gateway-namespace <ns>', "namespace of the home's Gateway")
      .env('PCLOUD_GATEWAY_NAMESPACE')
      .default('personal-cloud'),
    new Option('--gateway-name <name>', "name of the home's Gateway")
      .env('PCLOUD_GATEWAY_NAME')
      .default('personal-cloud'),
    new Option('--gateway-class <class>', 'GatewayClass of the Gateway')
      .env('PCLOUD_GATEWAY_CLASS')
      .default('cilium'),
    new Option('--workers <n>', 'concurrent reconciles per controller').env('PCLOUD_WORKERS').default('4'),
    new Option('--log-level <level>', 'pino log level').env('LOG_LEVEL').default('info'),
  ];
}

const str = (v: unknown, def: string): string => (typeof v === 'string' ? v : def);

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function seconds(name: string, v: unknown): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new ConfigError(`--${name} must be a positive number of seconds, got ${String(v)}`);
  return Math.round(n * 1000);
}

function quantity(name: string, v: unknown): string {
  const s = String(v);
  try {
    if (parseMilli(s) <= 0n) throw new ConfigError(`--${name} must be positive, got ${s}`);
  } catch (err) {
    if (err instanceof QuantityError) throw new ConfigError(`--${name}: ${err.message}`);
    throw err;
  }
  return s;
}

/** Validates the parsed options (commander's camelCase keys) into a config. */
export function configFromOptions(o: Record<string, unknown>): OperatorConfig {
  const peer = typeof o.peer === 'string' ? o.peer : '';
  if (!peer) throw new ConfigError('--peer (or PCLOUD_PEER) is required');
  if (!DNS_LABEL.test(peer) || peer.length > 63)
    throw new ConfigError(`--peer must be a DNS-1123 label, got ${peer}`);
  const homeDomain = str(o.homeDomain, '');
  if (!DNS_SUBDOMAIN.test(homeDomain) || homeDomain.length > 200)
    throw new ConfigError(`--home-domain must be a DNS subdomain, got ${homeDomain}`);
  const homeLanRaw = o.homeLan;
  const homeLan = Array.isArray(homeLanRaw)
    ? homeLanRaw.map(String)
    : typeof homeLanRaw === 'string'
      ? collect(homeLanRaw, [])
      : ['192.168.0.0/16'];
  for (const c of homeLan) {
    if (!parseCidr(c)) throw new ConfigError(`--home-lan: ${c} is not an IPv4 CIDR`);
  }
  const metricsPort = Number(o.metricsPort ?? 8080);
  if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535)
    throw new ConfigError(`--metrics-port must be a port number, got ${String(o.metricsPort)}`);
  const workers = Number(o.workers ?? 4);
  if (!Number.isInteger(workers) || workers < 1)
    throw new ConfigError(`--workers must be a positive integer`);
  const leaseDurationMs = seconds('lease-duration', o.leaseDuration ?? 15);
  const leaseRenewDeadlineMs = seconds('lease-renew-deadline', o.leaseRenewDeadline ?? 10);
  const leaseRetryPeriodMs = seconds('lease-retry-period', o.leaseRetryPeriod ?? 2);
  if (!(leaseDurationMs > leaseRenewDeadlineMs && leaseRenewDeadlineMs > leaseRetryPeriodMs))
    throw new ConfigError('need --lease-duration > --lease-renew-deadline > --lease-retry-period');
  return {
    kubeconfig: typeof o.kubeconfig === 'string' && o.kubeconfig ? o.kubeconfig : undefined,
    peer,
    homeDomain,
    homeLan,
    unit: {
      cpu: quantity('unit-cpu', o.unitCpu ?? '1'),
      memory: quantity('unit-memory', o.unitMemory ?? '2Gi'),
      storage: quantity('unit-storage', o.unitStorage ?? '10Gi'),
    },
    metricsPort,
    metricsHost: str(o.metricsHost, '0.0.0.0'),
    leaderElect: o.leaderElect !== false,
    leaseNamespace: str(o.leaseNamespace, 'personal-cloud'),
    leaseName: str(o.leaseName, 'personal-cloud-operator'),
    leaseDurationMs,
    leaseRenewDeadlineMs,
    leaseRetryPeriodMs,
    identity: typeof o.identity === 'string' && o.identity ? o.identity : `${hostname()}-${process.pid}`,
    gatewayNamespace: str(o.gatewayNamespace, 'personal-cloud'),
    gatewayName: str(o.gatewayName, 'personal-cloud'),
    gatewayClass: str(o.gatewayClass, 'cilium'),
    workers,
    logLevel: str(o.logLevel, 'info'),
  };
}
