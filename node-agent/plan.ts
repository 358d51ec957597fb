/**
 * What one node should carry for the home's Tenants, computed from the API alone (pure):
 * for every Tenant with a network in its status, the bridge the NetworkAttachmentDefinition
 * names and a VXLAN device with the Tenant's VNI whose flood list is every other node's
 * InternalIP. Two Tenants that claim one VNI or one bridge (a race, or a hand-edited
 * status) are a conflict: the older keeps its network, the younger gets none here.
 */
import type { Tenant } from '../generated/personalcloud.js';
import type { KubeObject } from '../kube/client.js';
import { ageOrder } from '../kube/ownership.js';

/** Node objects as far as the agent reads them. */
export interface NodeObject extends KubeObject {
  status?: { addresses?: { type: string; address: string }[] };
}
export type TenantObject = Tenant & KubeObject;

/** The marker in an interface's alias (`ip link set ... alias`) that says we made it, and for whom. */
export const ALIAS_PREFIX = 'personalcloud:';

export interface TenantSegment {
  tenant: string;
  vni: number;
  bridge: string;
  vxlan: string;
  mtu: number;
  /** InternalIPs of the other nodes: the VXLAN's head-end replication list. */
  remotes: string[];
}

export interface Problem {
  /** `Tenant/<name>` or `Node/<name>`: what the Warning Event is about. */
  kind: 'Tenant' | 'Node';
  name: string;
  reason: string;
  message: string;
}

export interface NodePlan {
  /** This node's InternalIP (the VXLAN source); undefined: no tunnels can be built here. */
  localIp?: string;
  segments: TenantSegment[];
  problems: Problem[];
}

/** `pcvx` + the VNI in decimal: at most 12 characters (Linux allows 15). */
export function vxlanName(vni: number): string {
  return `pcvx${vni}`;
}

export function internalIp(node: NodeObject): string | undefined {
  return node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
}

export function planNode(
  nodeName: string,
  tenants: readonly TenantObject[],
  nodes: readonly NodeObject[],
): NodePlan {
  const problems: Problem[] = [];
  const self = nodes.find((n) => n.metadata?.name === nodeName);
  const localIp = self ? internalIp(self) : undefined;
  if (!self) {
    problems.push({
      kind: 'Node',
      name: nodeName,
      reason: 'NodeNotFound',
      message: `Node ${nodeName} does not exist: check the node agent's --node-name`,
    });
  } else if (!localIp) {
    problems.push({
      kind: 'Node',
      name: nodeName,
      reason: 'NoInternalIP',
      message: `Node ${nodeName} has no InternalIP: its tenant networks cannot be joined to the other nodes`,
    });
  }
  const remotes: string[] = [];
  for (const n of nodes) {
    const name = n.metadata?.name ?? '';
    if (name === nodeName || n.metadata?.deletionTimestamp) continue;
    const ip = internalIp(n);
    if (ip) remotes.push(ip);
    else
      problems.push({
        kind: 'Node',
        name,
        reason: 'NoInternalIP',
        message: `Node ${name} has no InternalIP: tenant networks do not reach it`,
      });
  }
  remotes.sort();

  const segments: TenantSegment[] = [];
  const byVni = new Map<number, string>();
  const byBridge = new Map<string, string>();
  const live = tenants.filter((t) => !t.metadata?.deletionTimestamp && t.status?.network).sort(ageOrder);
  for (const t of live) {
    const name = t.metadata?.name ?? '';
    const net = t.status!.network!;
    const holder = byVni.get(net.vni) ?? byBridge.get(net.bridge);
    if (holder !== undefined) {
      problems.push({
        kind: 'Tenant',
        name,
        reason: 'NetworkConflict',
        message: `Tenant ${name} claims VNI ${net.vni} / bridge ${net.bridge}, already Tenant ${holder}'s: no network for it on node ${nodeName}`,
      });
      continue;
    }
    byVni.set(net.vni, name);
    byBridge.set(net.bridge, name);
    segments.push({
      tenant: name,
      vni: net.vni,
      bridge: net.bridge,
      vxlan: vxlanName(net.vni),
      mtu: net.mtu,
      remotes: localIp ? remotes : [],
    });
  }
  return { ...(localIp ? { localIp } : {}), segments, problems };
}
