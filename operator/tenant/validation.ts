/**
 * What the Tenant schema lets through but the operator cannot honour. Each problem is
 * a typed value naming the condition it fails and a CamelCase reason; the controller
 * turns it into a False condition and a Warning Event and keeps reconciling the rest.
 */
import { ageOrder } from '../../kube/ownership.js';
import type { Tenant } from '../../generated/personalcloud.js';
import type { Home } from '../home.js';
import { DEFAULT_VM_BANDWIDTH, hostnameSuffixFor } from '../home.js';
import { overlaps, parseCidr, type Cidr } from '../network-address.js';
import {
  bitsPerSecond,
  multiplyBytes,
  multiplyCpu,
  parseMilli,
  parseWhole,
  QuantityError,
} from '../../api/quantity.js';
import { tenantNamespaceName } from '../../api/labels.js';

export const TenantReasons = {
  InvalidSubnet: 'InvalidSubnet',
  SubnetTooSmall: 'SubnetTooSmall',
  SubnetOverlapsHomeLAN: 'SubnetOverlapsHomeLAN',
  InvalidBandwidth: 'InvalidBandwidth',
  QuotaOverflow: 'QuotaOverflow',
  DuplicatePeer: 'DuplicatePeer',
  DuplicateHostname: 'DuplicateHostname',
} as const;
export type TenantReason = (typeof TenantReasons)[keyof typeof TenantReasons];

/** The per-child conditions of a Tenant (Ready summarises them). */
export const TenantConditions = {
  Namespace: 'NamespaceReady',
  Quota: 'QuotaReady',
  RBAC: 'RBACReady',
  Network: 'NetworkReady',
  NetworkPolicy: 'NetworkPolicyReady',
  Hostname: 'HostnameReady',
} as const;
export type TenantConditionType = (typeof TenantConditions)[keyof typeof TenantConditions];

export class TenantProblem {
  constructor(
    readonly condition: TenantConditionType,
    readonly reason: TenantReason,
    readonly message: string,
  ) {}
}

/**
 * The CRD's default subnet (crds/tenants.yaml): 198.18.0.0/15 is IANA's benchmarking
 * range (RFC 2544), used by no home router, so it overlaps none of the private ranges a
 * home LAN deny lists (the chart denies 10/8, 172.16/12, 192.168/16 and 169.254/16).
 */
export const DEFAULT_SUBNET = '198.18.0.0/18';

export function tenantSubnet(t: Tenant): string {
  return t.spec.network?.subnet ?? DEFAULT_SUBNET;
}

/** The subnet as a Cidr, or a TenantProblem. */
export function checkSubnet(t: Tenant, home: Pick<Home, 'homeLan'>): Cidr | TenantProblem {
  const subnet = tenantSubnet(t);
  const cidr = parseCidr(subnet);
  if (!cidr || cidr.prefix < 8 || cidr.prefix > 30) {
    return new TenantProblem(
      TenantConditions.Network,
      TenantReasons.InvalidSubnet,
      `spec.network.subnet ${JSON.stringify(subnet)} is not an IPv4 CIDR with zero host bits and a prefix of /8 to /30`,
    );
  }
  // whereabouts hands out every address but the network and broadcast ones; each unit is a VM.
  const usable = 2 ** (32 - cidr.prefix) - 2;
  if (usable < t.spec.units) {
    return new TenantProblem(
      TenantConditions.Network,
      TenantReasons.SubnetTooSmall,
      `spec.network.subnet ${cidr.text} has ${usable} addresses for ${t.spec.units} units; give a shorter prefix`,
    );
  }
  for (const lan of home.homeLan) {
    const l = parseCidr(lan);
    if (l && overlaps(cidr, l)) {
      return new TenantProblem(
        TenantConditions.Network,
        TenantReasons.SubnetOverlapsHomeLAN,
        `spec.network.subnet ${cidr.text} overlaps the home LAN ${l.text}; pick a range outside it`,
      );
    }
  }
  return cidr;
}

export interface TenantRates {
  ingressBps: number;
  egressBps: number;
  ingress: string;
  egress: string;
}

export function checkBandwidth(t: Tenant): TenantRates | TenantProblem {
  const ingress = t.spec.bandwidth?.ingress ?? DEFAULT_VM_BANDWIDTH;
  const egress = t.spec.bandwidth?.egress ?? DEFAULT_VM_BANDWIDTH;
  try {
    return { ingress, egress, ingressBps: bitsPerSecond(ingress), egressBps: bitsPerSecond(egress) };
  } catch (err) {
    if (err instanceof QuantityError)
      return new TenantProblem(
        TenantConditions.Network,
        TenantReasons.InvalidBandwidth,
        `spec.bandwidth: ${err.message}`,
      );
    throw err;
  }
}

export interface TenantQuota {
  cpu: string;
  memory: string;
  storage: string;
}

/** Memory KubeVirt's virt-launcher pod needs on top of the guest's, counted in the quota. */
export const LAUNCHER_MEMORY_OVERHEAD = '512Mi';
/**
 * CPU the virt-launcher pod requests on top of the guest's: measured with KubeVirt v1.5.0,
 * 1m per containerDisk container and 5m for the serial console's log (1006m for a
 * one-core VM); a quota of exactly the guest's cores refused every launcher pod.
 */
export const LAUNCHER_CPU_OVERHEAD = '50m';

/** units × unit size (CPU and memory plus launcher overhead), or QuotaOverflow. */
export function checkQuota(t: Tenant, unit: Home['unit']): TenantQuota | TenantProblem {
  const units = t.spec.units;
  try {
    const perVmMemory = parseWhole(unit.memory) + parseWhole(LAUNCHER_MEMORY_OVERHEAD);
    const perVmCpu = parseMilli(String(unit.cpu)) + parseMilli(LAUNCHER_CPU_OVERHEAD);
    return {
      cpu: multiplyCpu(`${perVmCpu}m`, units),
      memory: multiplyBytes(perVmMemory.toString(), units),
      storage: multiplyBytes(String(unit.storage), units),
    };
  } catch (err) {
    if (err instanceof QuantityError) {
      return new TenantProblem(
        TenantConditions.Quota,
        TenantReasons.QuotaOverflow,
        `spec.units ${units} × unit size (cpu ${unit.cpu}, memory ${unit.memory}, storage ${unit.storage}) does not fit a Kubernetes quota: ${err.message}`,
      );
    }
    throw err;
  }
}

/** Oldest first (creation time, then name): the older of two conflicting Tenants wins. */

/**
 * Conflicts with other Tenants: the same peer (so the same namespace), or the same
 * hostname suffix. The oldest Tenant keeps the name; younger ones get the problem.
 */
export function checkConflicts(
  t: Tenant,
  all: readonly Tenant[],
  home: Pick<Home, 'homeDomain'>,
): TenantProblem[] {
  const problems: TenantProblem[] = [];
  const others = all.filter((o) => o.metadata?.name !== t.metadata?.name && !o.metadata?.deletionTimestamp);
  const older = (o: Tenant): boolean => ageOrder(o, t) < 0;
  const ns = tenantNamespaceName(t.spec.peer);
  const samePeer = others.find((o) => older(o) && tenantNamespaceName(o.spec.peer) === ns);
  if (samePeer) {
    problems.push(
      new TenantProblem(
        TenantConditions.Namespace,
        TenantReasons.DuplicatePeer,
        `peer ${t.spec.peer} is already hosted by Tenant ${samePeer.metadata?.name ?? ''} (namespace ${ns})`,
      ),
    );
  }
  const suffix = hostnameSuffixFor(home, t.spec.peer, t.spec.hostnameSuffix);
  const sameSuffix = others.find(
    (o) => older(o) && hostnameSuffixFor(home, o.spec.peer, o.spec.hostnameSuffix) === suffix,
  );
  if (sameSuffix) {
    problems.push(
      new TenantProblem(
        TenantConditions.Hostname,
        TenantReasons.DuplicateHostname,
        `hostname suffix ${suffix} is already used by Tenant ${sameSuffix.metadata?.name ?? ''}`,
      ),
    );
  }
  return problems;
}
