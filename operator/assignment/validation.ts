/**
 * What an Assignment's schema lets through but this home cannot honour: two VMs or
 * routes claiming one hostname, two Assignments whose VM, Service or route object names
 * collide in the tenant namespace, cloud-init we cannot add the ssh keys to, or more
 * units for one requester than a Tenant can hold. Typed problems become a False
 * condition with a CamelCase reason and a Warning Event.
 */
import type { Assignment, Tenant } from '../../generated/personalcloud.js';
import { hostnameSuffixFor, type Home } from '../home.js';
import { tenantNamespaceName } from '../../api/labels.js';
import { routeName, serviceName } from './routes.js';
import { vmNames } from './virtual-machines.js';
import { ageOrder } from '../../kube/ownership.js';

export const AssignmentReasons = {
  DuplicateHostname: 'DuplicateHostname',
  DuplicateName: 'DuplicateName',
  UnsupportedCloudInit: 'UnsupportedCloudInit',
  InvalidCloudInit: 'InvalidCloudInit',
  QuotaExceeded: 'QuotaExceeded',
  ExceedsOffer: 'ExceedsOffer',
  NoOffer: 'NoOffer',
  CloudInitTooLarge: 'CloudInitTooLarge',
  DuplicatePeer: 'DuplicatePeer',
} as const;
export type AssignmentReason = (typeof AssignmentReasons)[keyof typeof AssignmentReasons];

export class AssignmentProblem {
  constructor(
    readonly reason: AssignmentReason,
    readonly message: string,
  ) {}
}

/** The most units a Tenant can hold (its schema's maximum). */
export const MAX_TENANT_UNITS = 10000;

export function assignmentKey(a: Assignment): string {
  return `${a.metadata?.namespace ?? ''}/${a.metadata?.name ?? ''}`;
}

function created(a: Assignment): number {
  return a.metadata?.creationTimestamp ? new Date(a.metadata.creationTimestamp).getTime() : 0;
}

/** Oldest first, ties by key: who keeps a contested name. */
export function byAge(a: Assignment, b: Assignment): number {
  return created(a) - created(b) || assignmentKey(a).localeCompare(assignmentKey(b));
}

export interface HostnameClaim {
  /** `http:<host>`, `tls:<host>`, or `<kind>:<namespace>/<name>` for an object name. */
  key: string;
  what: string;
  reason: AssignmentReason;
}

/**
 * Everything an Assignment would own exclusively at this home: its hostnames, and the
 * names of its VMs, Services and routes in the tenant namespace. Names are built by
 * joining with dashes (`<request>-<i>`, `<vm>-<port>`, `vm-<vm>`), so two Assignments
 * of one requester can arrive at the same object name; claiming the names makes the
 * younger one refused instead of the two overwriting each other's objects.
 */
export function claimsOf(a: Assignment, suffix: string): HostnameClaim[] {
  const ns = tenantNamespaceName(a.spec.requester);
  const claims: HostnameClaim[] = [];
  const ports = a.spec.vm.ports ?? [];
  const name = (kind: string, object: string, what: string): HostnameClaim => ({
    key: `${kind}:${ns}/${object}`,
    what,
    reason: AssignmentReasons.DuplicateName,
  });
  for (const vm of vmNames(a)) {
    const host = `${vm}.${suffix}`;
    claims.push({ ...name('vm', vm, `VM ${vm}`), reason: AssignmentReasons.DuplicateHostname });
    if (ports.length > 0)
      claims.push(name('service', serviceName(vm), `Service ${serviceName(vm)} (VM ${vm})`));
    for (const p of ports) {
      const protocol = p.protocol ?? 'HTTP';
      const route = routeName(vm, p.name);
      if (protocol === 'HTTP') {
        claims.push({
          key: `http:${host}`,
          what: `hostname ${host} (HTTP port ${p.name})`,
          reason: AssignmentReasons.DuplicateHostname,
        });
        claims.push(name('httproute', route, `HTTPRoute ${route} (VM ${vm}, port ${p.name})`));
      }
      if (protocol === 'TLS') {
        claims.push({
          key: `tls:${host}`,
          what: `hostname ${host} (TLS port ${p.name})`,
          reason: AssignmentReasons.DuplicateHostname,
        });
        claims.push(name('tlsroute', route, `TLSRoute ${route} (VM ${vm}, port ${p.name})`));
      }
    }
  }
  return claims;
}

export interface AdmissionResult {
  problems: Map<string, AssignmentProblem>;
  /** Units per requester over the admitted Assignments. */
  unitsByRequester: Map<string, number>;
}

/**
 * Decides, over every hosted Assignment, which ones this home can honour: the oldest
 * claim to a name wins; a requester's units are admitted oldest first up to the
 * Tenant maximum; and all units together, oldest first, up to what this home's Offer
 * offers (a host trusts its own Offer, not the matchmaker's arithmetic). With no Offer
 * nothing is hosted.
 */
/**
 * An older Tenant, other than the requester's own, whose namespace is the requester's.
 * byNamespace: the live Tenants per namespace, oldest first (built once per admission,
 * so admitting n Assignments over m Tenants costs n + m log m, not n × m).
 */
function duplicatePeerTenant(
  requester: string,
  own: Tenant | undefined,
  byNamespace: ReadonlyMap<string, readonly Tenant[]>,
): Tenant | undefined {
  return (byNamespace.get(tenantNamespaceName(requester)) ?? []).find(
    (o) => o.metadata?.name !== requester && (own === undefined || ageOrder(o, own) < 0),
  );
}

/** The live Tenants of each namespace, oldest first. */
function tenantsByNamespace(tenants: ReadonlyMap<string, Tenant>): Map<string, Tenant[]> {
  const out = new Map<string, Tenant[]>();
  for (const t of tenants.values()) {
    if (t.metadata?.deletionTimestamp) continue;
    const ns = tenantNamespaceName(t.spec.peer);
    out.set(ns, [...(out.get(ns) ?? []), t]);
  }
  for (const list of out.values()) list.sort(ageOrder);
  return out;
}

export function admitAssignments(
  assignments: readonly Assignment[],
  tenants: ReadonlyMap<string, Tenant>,
  home: Pick<Home, 'homeDomain' | 'offeredUnits'>,
): AdmissionResult {
  const problems = new Map<string, AssignmentProblem>();
  const unitsByRequester = new Map<string, number>();
  const owner = new Map<string, string>();
  let hosted = 0;
  const byNamespace = tenantsByNamespace(tenants);
  for (const a of [...assignments].sort(byAge)) {
    const key0 = assignmentKey(a);
    // Another, older Tenant already hosts this peer (made by hand): the requester's Tenant
    // would be refused as DuplicatePeer and never get a namespace, so the Assignment is
    // refused now and its units go elsewhere (issue 13 item 7).
    const occupant = duplicatePeerTenant(a.spec.requester, tenants.get(a.spec.requester), byNamespace);
    if (occupant) {
      problems.set(
        key0,
        new AssignmentProblem(
          AssignmentReasons.DuplicatePeer,
          `peer ${a.spec.requester} is already hosted here by the older Tenant ${occupant.metadata?.name ?? ''}`,
        ),
      );
      continue;
    }
    if (home.offeredUnits === undefined) {
      problems.set(
        key0,
        new AssignmentProblem(
          AssignmentReasons.NoOffer,
          'this home has no Offer (spec.peer = this home), so it hosts nothing; apply an Offer to host',
        ),
      );
      continue;
    }
    if (hosted + a.spec.units > home.offeredUnits) {
      problems.set(
        key0,
        new AssignmentProblem(
          AssignmentReasons.ExceedsOffer,
          `${a.spec.units} units would exceed this home's Offer: ${hosted} of ${home.offeredUnits} units are taken by older Assignments`,
        ),
      );
      continue;
    }
    const key = assignmentKey(a);
    const tenant = tenants.get(a.spec.requester);
    const suffix = hostnameSuffixFor(home, a.spec.requester, tenant?.spec.hostnameSuffix);
    const mine = new Set<string>();
    let problem: AssignmentProblem | undefined;
    for (const c of claimsOf(a, suffix)) {
      const holder = owner.get(c.key);
      if (mine.has(c.key)) {
        const hint =
          c.reason === AssignmentReasons.DuplicateHostname
            ? ': one hostname routes to one HTTP and one TLS port'
            : '';
        problem = new AssignmentProblem(c.reason, `${c.what} is claimed twice by this Assignment${hint}`);
        break;
      }
      if (holder !== undefined && holder !== key) {
        problem = new AssignmentProblem(c.reason, `${c.what} is already used by Assignment ${holder}`);
        break;
      }
      mine.add(c.key);
    }
    const sum = unitsByRequester.get(a.spec.requester) ?? 0;
    if (!problem && sum + a.spec.units > MAX_TENANT_UNITS) {
      problem = new AssignmentProblem(
        AssignmentReasons.QuotaExceeded,
        `requester ${a.spec.requester} would have ${sum + a.spec.units} units here; a Tenant holds at most ${MAX_TENANT_UNITS}`,
      );
    }
    if (problem) {
      problems.set(key, problem);
      continue;
    }
    for (const k of mine) owner.set(k, key);
    unitsByRequester.set(a.spec.requester, sum + a.spec.units);
    hosted += a.spec.units;
  }
  return { problems, unitsByRequester };
}
