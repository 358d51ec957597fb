/**
 * What the portal shows and decides, from API objects (pure): a remote user's VMs at
 * this host (only their own home's), the login keys this host holds for a home, and
 * whether a grant request names a declared TCP or UDP port of one of those VMs.
 */
import { isIPv4 } from 'node:net';
import type { AssignmentObject, GrantObject, TenantObject } from './data.js';

export const GRANT_API_VERSION = 'personalcloud.io/v1alpha1';

export interface PortView {
  name: string;
  port: number;
  protocol: 'HTTP' | 'TLS' | 'TCP' | 'UDP';
}

export interface VmView {
  name: string;
  phase: string;
  address?: string;
  hostname?: string;
  request: string;
  ports: PortView[];
}

/** Assignments this host runs for `peer` (a matchmaker in the same cluster leaves two copies: one counts). */
export function hostedFor(
  assignments: readonly AssignmentObject[],
  host: string,
  peer: string,
): AssignmentObject[] {
  return assignments.filter(
    (a) =>
      a.spec.host === host &&
      a.spec.requester === peer &&
      !a.metadata?.deletionTimestamp &&
      a.status?.phase !== 'Lost' &&
      a.status?.phase !== 'Terminating',
  );
}

/** The home's VMs at this host, from its hosted Assignments' status and declared ports. */
export function peerVms(assignments: readonly AssignmentObject[], host: string, peer: string): VmView[] {
  const out = new Map<string, VmView>();
  for (const a of hostedFor(assignments, host, peer)) {
    const ports = (a.spec.vm.ports ?? []).map((p) => ({
      name: p.name,
      port: p.port,
      protocol: p.protocol ?? 'HTTP',
    }));
    for (const v of a.status?.vms ?? []) {
      if (out.has(v.name)) continue;
      out.set(v.name, {
        name: v.name,
        phase: v.phase ?? 'Pending',
        ...(v.address ? { address: v.address } : {}),
        ...(v.hostname ? { hostname: v.hostname } : {}),
        request: a.spec.request,
        ports,
      });
    }
  }
  return [...out.values()].sort((x, y) => x.name.localeCompare(y.name));
}

/** The login keys this host holds for `peer`: those on the Assignments it hosts for it. */
export function loginKeysFor(assignments: readonly AssignmentObject[], host: string, peer: string): string[] {
  return [
    ...new Set(hostedFor(assignments, host, peer).flatMap((a) => (a.spec.loginKey ? [a.spec.loginKey] : []))),
  ];
}

export function tenantOf(tenants: readonly TenantObject[], peer: string): TenantObject | undefined {
  return tenants.find((t) => t.spec.peer === peer && !t.metadata?.deletionTimestamp);
}

/** A grant that is not expired, as far as its spec says (the kernel drops it at expiresAt anyway). */
export function isLive(g: GrantObject, now: Date): boolean {
  return Date.parse(g.spec.expiresAt) > now.getTime() && !g.metadata?.deletionTimestamp;
}

/** An IPv4 client address, or undefined (IPv4-mapped IPv6 is unwrapped). */
export function clientIPv4(ip: string): string | undefined {
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return isIPv4(v4) ? v4 : undefined;
}

export interface GrantAsk {
  vm: string;
  port: string;
  protocol: string;
  seconds: string;
}

export type GrantCheck =
  { ok: true; grant: GrantObject } | { ok: false; reason: string; message: string; status: number };

/**
 * Checks a grant request of `user` of `peer` from `client` and builds the PortalGrant.
 * Refused: a VM that is not the peer's here, a port it does not declare as TCP or UDP, a
 * duration not offered, more live grants than allowed, a client without an IPv4 address.
 */
export function checkGrant(
  ask: Partial<GrantAsk>,
  ctx: {
    vms: readonly VmView[];
    tenant: TenantObject | undefined;
    peer: string;
    user: string;
    client: string;
    liveGrants: number;
    maxGrants: number;
    durations: readonly number[];
    now: Date;
  },
): GrantCheck {
  const refuse = (reason: string, message: string, status = 400): GrantCheck => ({
    ok: false,
    reason,
    message,
    status,
  });
  const vm = ctx.vms.find((v) => v.name === ask.vm);
  if (!vm)
    return refuse('UnknownVm', `vm: ${String(ask.vm)} is not one of ${ctx.peer}'s VMs at this home`, 403);
  const port = Number(ask.port);
  const protocol = String(ask.protocol);
  if (protocol !== 'TCP' && protocol !== 'UDP')
    return refuse(
      'BadProtocol',
      `protocol: only TCP and UDP ports are opened here (HTTP and TLS go by hostname)`,
    );
  if (!vm.ports.some((p) => p.port === port && p.protocol === protocol))
    return refuse(
      'PortNotDeclared',
      `port: ${vm.name} declares no ${protocol} port ${String(ask.port)} in its Request (declared: ${
        vm.ports
          .filter((p) => p.protocol === 'TCP' || p.protocol === 'UDP')
          .map((p) => `${p.protocol}/${p.port}`)
          .join(', ') || 'none'
      })`,
      403,
    );
  const seconds = Number(ask.seconds);
  if (!ctx.durations.includes(seconds))
    return refuse('BadDuration', `seconds: choose one of ${ctx.durations.join(', ')}`);
  const client = clientIPv4(ctx.client);
  if (!client) return refuse('NoIPv4', `your address ${ctx.client} is not IPv4: grants forward IPv4 only`);
  const namespace = ctx.tenant?.status?.namespace;
  if (!namespace) return refuse('NoTenant', `${ctx.peer} has no tenant namespace at this home yet`, 409);
  if (ctx.liveGrants >= ctx.maxGrants)
    return refuse(
      'TooManyGrants',
      `${ctx.peer} already has ${ctx.liveGrants} open grants here (at most ${ctx.maxGrants}): close one first`,
      429,
    );
  const expiresAt = new Date(Math.floor(ctx.now.getTime() / 1000) * 1000 + seconds * 1000)
    .toISOString()
    .replace('.000Z', 'Z');
  return {
    ok: true,
    grant: {
      apiVersion: GRANT_API_VERSION,
      kind: 'PortalGrant',
      metadata: {
        generateName: `${vm.name.slice(0, 40)}-${protocol.toLowerCase()}-${port}-`,
        namespace,
        labels: { 'personalcloud.io/peer': ctx.peer, 'personalcloud.io/vm': vm.name },
      },
      spec: {
        vm: vm.name,
        protocol,
        port,
        clientAddress: client,
        expiresAt,
        user: `${ctx.user}@${ctx.peer}`,
      },
    },
  };
}
