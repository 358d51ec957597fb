/**
 * What the chief node forwards for the portal's grants (pure). A PortalGrant opens one
 * declared TCP or UDP port of one VM to one client address until its deadline. The plan
 * checks each grant against what the API says about the VM — never against what the
 * portal wrote alone — and gives every live grant a public port from the range, keeping
 * the one it already has:
 *
 * - the grant's namespace is a Tenant's namespace (status.namespace);
 * - the VM has a VirtualMachineInstance in that namespace with an address on the pod
 *   network (the `default` interface: where the Gateway reaches it too);
 * - the VM declares the port with that protocol on that interface (the ports KubeVirt's
 *   masquerade binding forwards, copied from the Request);
 * - the grant has not expired; it lasts at most maxSeconds from now.
 *
 * Anything else is Refused with a message naming the field, and nothing is opened.
 */
import { isIPv4 } from 'node:net';
import type { PortalGrant, Tenant } from '../generated/personalcloud.js';
import type { VirtualMachineInstance } from '../generated/kubevirt.js';
import type { KubeObject } from '../kube/client.js';

export type GrantObject = PortalGrant & KubeObject;
export type VmiObject = VirtualMachineInstance & KubeObject;

export interface PortRange {
  first: number;
  last: number;
}

export interface ForwardRule {
  /** namespace/name of the grant. */
  key: string;
  protocol: 'tcp' | 'udp';
  client: string;
  publicPort: number;
  target: string;
  targetPort: number;
  /** Whole seconds the kernel keeps the rule. */
  timeoutSeconds: number;
}

export type GrantVerdict =
  | { key: string; phase: 'Active'; rule: ForwardRule }
  | { key: string; phase: 'Expired' | 'Refused' | 'Pending'; reason: string; message: string };

export interface GrantPlan {
  rules: ForwardRule[];
  verdicts: GrantVerdict[];
  /** Milliseconds until the next grant expires (to refresh its status then). */
  nextExpiryMs?: number;
}

export function parsePortRange(s: string): PortRange | undefined {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(s.trim());
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (first < 1 || last > 65535 || first > last) return undefined;
  return { first, last };
}

function key(g: KubeObject): string {
  return `${g.metadata?.namespace ?? ''}/${g.metadata?.name ?? ''}`;
}

/** The VM's pod-network address and the ports it declares there. */
export function vmTarget(vmi: VmiObject | undefined): {
  address?: string;
  ports: { port: number; protocol: string }[];
} {
  const status = vmi?.status?.interfaces ?? [];
  const fromStatus = status.find((i) => i.name === 'default')?.ipAddress?.split('/')[0];
  const spec = vmi?.spec?.domain?.devices?.interfaces?.find((i) => i.name === 'default');
  return {
    ...(fromStatus && isIPv4(fromStatus) ? { address: fromStatus } : {}),
    ports: (spec?.ports ?? []).map((p) => ({ port: p.port, protocol: (p.protocol ?? 'TCP').toUpperCase() })),
  };
}

export function planGrants(
  grants: readonly GrantObject[],
  tenants: readonly (Tenant & KubeObject)[],
  vmis: readonly VmiObject[],
  range: PortRange,
  now: Date,
  maxSeconds: number,
): GrantPlan {
  const tenantNamespaces = new Set(tenants.map((t) => t.status?.namespace).filter(Boolean));
  const vmiByKey = new Map(vmis.map((v) => [key(v), v]));
  const verdicts: GrantVerdict[] = [];
  const live: { g: GrantObject; target: string; seconds: number }[] = [];
  let nextExpiryMs: number | undefined;
  // Oldest first: on a full range, the older grants keep their ports.
  const ordered = [...grants]
    .filter((g) => !g.metadata?.deletionTimestamp)
    .sort(
      (a, b) =>
        String(a.metadata?.creationTimestamp ?? '').localeCompare(
          String(b.metadata?.creationTimestamp ?? ''),
        ) || key(a).localeCompare(key(b)),
    );
  for (const g of ordered) {
    const k = key(g);
    const refuse = (reason: string, message: string): void => {
      verdicts.push({ key: k, phase: 'Refused', reason, message });
    };
    const expires = Date.parse(g.spec.expiresAt);
    if (Number.isNaN(expires)) {
      refuse('InvalidExpiry', `spec.expiresAt ${JSON.stringify(g.spec.expiresAt)} is not a time`);
      continue;
    }
    const seconds = Math.min(Math.floor((expires - now.getTime()) / 1000), maxSeconds);
    if (seconds <= 0) {
      verdicts.push({
        key: k,
        phase: 'Expired',
        reason: 'Expired',
        message: `expired at ${g.spec.expiresAt}`,
      });
      continue;
    }
    if (!tenantNamespaces.has(g.metadata?.namespace)) {
      refuse(
        'NotATenant',
        `namespace ${g.metadata?.namespace} belongs to no Tenant: grants live in a tenant's namespace`,
      );
      continue;
    }
    if (!isIPv4(g.spec.clientAddress)) {
      refuse('InvalidClient', `spec.clientAddress ${g.spec.clientAddress} is not an IPv4 address`);
      continue;
    }
    const vmi = vmiByKey.get(`${g.metadata?.namespace}/${g.spec.vm}`);
    const t = vmTarget(vmi);
    if (!vmi) {
      verdicts.push({
        key: k,
        phase: 'Pending',
        reason: 'VmNotRunning',
        message: `spec.vm: VM ${g.spec.vm} has no running instance in ${g.metadata?.namespace}`,
      });
      continue;
    }
    if (!t.ports.some((p) => p.port === g.spec.port && p.protocol === g.spec.protocol)) {
      refuse(
        'PortNotDeclared',
        `spec.port: VM ${g.spec.vm} declares no ${g.spec.protocol} port ${g.spec.port} (declared: ${
          t.ports.map((p) => `${p.protocol}/${p.port}`).join(', ') || 'none'
        })`,
      );
      continue;
    }
    if (!t.address) {
      verdicts.push({
        key: k,
        phase: 'Pending',
        reason: 'NoAddress',
        message: `spec.vm: VM ${g.spec.vm} has no pod-network address yet`,
      });
      continue;
    }
    live.push({ g, target: t.address, seconds });
    const ms = expires - now.getTime();
    nextExpiryMs = nextExpiryMs === undefined ? ms : Math.min(nextExpiryMs, ms);
  }

  // Public ports: a grant keeps the port in its status when it is in range and not taken
  // by an older grant of the same protocol; the others take the lowest free one.
  const taken = { tcp: new Set<number>(), udp: new Set<number>() };
  const wants = live.map(({ g }) => {
    const proto = g.spec.protocol === 'UDP' ? 'udp' : 'tcp';
    const had = g.status?.publicPort;
    if (had !== undefined && had >= range.first && had <= range.last && !taken[proto].has(had)) {
      taken[proto].add(had);
      return had;
    }
    return undefined;
  });
  const rules: ForwardRule[] = [];
  live.forEach(({ g, target, seconds }, i) => {
    const proto = g.spec.protocol === 'UDP' ? 'udp' : 'tcp';
    let port = wants[i];
    if (port === undefined) {
      for (let p = range.first; p <= range.last; p++)
        if (!taken[proto].has(p)) {
          port = p;
          break;
        }
      if (port === undefined) {
        verdicts.push({
          key: key(g),
          phase: 'Refused',
          reason: 'NoFreePort',
          message: `all ${range.last - range.first + 1} public ${g.spec.protocol} ports (${range.first}-${range.last}) are in use`,
        });
        return;
      }
      taken[proto].add(port);
    }
    const rule: ForwardRule = {
      key: key(g),
      protocol: proto,
      client: g.spec.clientAddress,
      publicPort: port,
      target,
      targetPort: g.spec.port,
      timeoutSeconds: seconds,
    };
    rules.push(rule);
    verdicts.push({ key: key(g), phase: 'Active', rule });
  });
  return { rules, verdicts, ...(nextExpiryMs !== undefined ? { nextExpiryMs } : {}) };
}
