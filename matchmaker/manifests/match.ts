// Offer and Request manifests -> matchmaking problem -> Assignment manifests. Pure: no
// Kubernetes client, so the matchmaker controller and `pcloud match` share it.
//
// A peer may have several Requests with different placement, so the internal problem has
// one requester node per Request (tagged with its peer) and one host node per offering
// peer (its Offers merged: units summed, excludePeers united). U(request q, host h):
//   0                     if h is q's own peer, or h's Offers exclude q's peer
//   placement.peers[h].max if listed
//   placement.maxPerPeer   if set
//   1                      if placement.spread
//   unbounded otherwise (written as q's units)
// These pairs are listed explicitly (defaultBound 0): O(Requests x hosts), which is the
// size a matchmaker holds in objects anyway.
import { parseAllDocuments } from 'yaml';
import { buildProblem } from '../solver/parse.js';
import { InputError, type Solution } from '../solver/problem.js';
import { solveProblem, type SolveOptions } from '../solver/solve.js';

export const API_VERSION = 'personalcloud.io/v1alpha1';

export interface Port {
  name: string;
  port: number;
  protocol: 'HTTP' | 'TLS' | 'TCP' | 'UDP';
}
export interface VmSpec {
  image: string;
  cloudInit?: string;
  sshKeys?: string[];
  ports?: Port[];
}
export interface OfferSpec {
  peer: string;
  units: number;
  unit: { cpu: string; memory: string; storage: string };
  bandwidth?: { ingress: string; egress: string };
  excludePeers?: string[];
}
export interface RequestSpec {
  peer: string;
  units: number;
  placement?: { spread?: boolean; maxPerPeer?: number; peers?: { peer: string; max: number }[] };
  vm: VmSpec;
}
export interface Meta {
  name: string;
  namespace?: string;
  [k: string]: unknown;
}
export interface Offer {
  apiVersion: string;
  kind: 'Offer';
  metadata: Meta;
  spec: OfferSpec;
}
export interface Request {
  apiVersion: string;
  kind: 'Request';
  metadata: Meta;
  spec: RequestSpec;
}
export interface Assignment {
  apiVersion: string;
  kind: 'Assignment';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: { requester: string; request: string; host: string; units: number; vm: VmSpec };
}

const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function obj(field: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new InputError(`${field}: expected an object`);
  return v as Record<string, unknown>;
}
function str(field: string, v: unknown): string {
  if (typeof v !== 'string' || v === '')
    throw new InputError(`${field}: expected a non-empty string, got ${JSON.stringify(v) ?? 'nothing'}`);
  return v;
}
function peerName(field: string, v: unknown): string {
  const s = str(field, v);
  if (s.length > 63 || !DNS1123.test(s)) throw new InputError(`${field}: "${s}" is not a DNS-1123 label`);
  return s;
}
function int(field: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new InputError(`${field}: expected an integer >= ${min}, got ${JSON.stringify(v) ?? 'nothing'}`);
  }
  return v;
}
function quantity(field: string, v: unknown): string {
  if (typeof v === 'number' && v >= 0) return String(v);
  return str(field, v);
}

function checkOffer(at: string, d: Record<string, unknown>): Offer {
  const meta = obj(`${at}.metadata`, d.metadata);
  str(`${at}.metadata.name`, meta.name);
  const spec = obj(`${at}.spec`, d.spec);
  const unit = obj(`${at}.spec.unit`, spec.unit);
  const out: OfferSpec = {
    peer: peerName(`${at}.spec.peer`, spec.peer),
    units: int(`${at}.spec.units`, spec.units, 0),
    unit: {
      cpu: quantity(`${at}.spec.unit.cpu`, unit.cpu),
      memory: quantity(`${at}.spec.unit.memory`, unit.memory),
      storage: quantity(`${at}.spec.unit.storage`, unit.storage),
    },
  };
  if (spec.bandwidth !== undefined) {
    const bw = obj(`${at}.spec.bandwidth`, spec.bandwidth);
    out.bandwidth = {
      ingress: quantity(`${at}.spec.bandwidth.ingress`, bw.ingress),
      egress: quantity(`${at}.spec.bandwidth.egress`, bw.egress),
    };
  }
  if (spec.excludePeers !== undefined) {
    if (!Array.isArray(spec.excludePeers))
      throw new InputError(`${at}.spec.excludePeers: expected a list of peers`);
    out.excludePeers = spec.excludePeers.map((p: unknown, x) => peerName(`${at}.spec.excludePeers[${x}]`, p));
  }
  return { apiVersion: API_VERSION, kind: 'Offer', metadata: meta as Meta, spec: out };
}

function checkRequest(at: string, d: Record<string, unknown>): Request {
  const meta = obj(`${at}.metadata`, d.metadata);
  str(`${at}.metadata.name`, meta.name);
  const spec = obj(`${at}.spec`, d.spec);
  const vm = obj(`${at}.spec.vm`, spec.vm);
  const out: RequestSpec = {
    peer: peerName(`${at}.spec.peer`, spec.peer),
    units: int(`${at}.spec.units`, spec.units, 1),
    vm: { ...(vm as object), image: str(`${at}.spec.vm.image`, vm.image) },
  };
  if (vm.ports !== undefined) {
    if (!Array.isArray(vm.ports)) throw new InputError(`${at}.spec.vm.ports: expected a list`);
    vm.ports.forEach((p: unknown, x) => {
      const po = obj(`${at}.spec.vm.ports[${x}]`, p);
      str(`${at}.spec.vm.ports[${x}].name`, po.name);
      int(`${at}.spec.vm.ports[${x}].port`, po.port, 1);
      if (!['HTTP', 'TLS', 'TCP', 'UDP'].includes(po.protocol as string)) {
        throw new InputError(
          `${at}.spec.vm.ports[${x}].protocol: expected HTTP|TLS|TCP|UDP, got ${JSON.stringify(po.protocol) ?? 'nothing'}`,
        );
      }
    });
  }
  if (spec.placement !== undefined) {
    const pl = obj(`${at}.spec.placement`, spec.placement);
    const placement: NonNullable<RequestSpec['placement']> = {};
    if (pl.spread !== undefined) {
      if (typeof pl.spread !== 'boolean')
        throw new InputError(`${at}.spec.placement.spread: expected true or false`);
      placement.spread = pl.spread;
    }
    if (pl.maxPerPeer !== undefined)
      placement.maxPerPeer = int(`${at}.spec.placement.maxPerPeer`, pl.maxPerPeer, 0);
    if (pl.peers !== undefined) {
      if (!Array.isArray(pl.peers)) throw new InputError(`${at}.spec.placement.peers: expected a list`);
      placement.peers = pl.peers.map((p: unknown, x) => {
        const po = obj(`${at}.spec.placement.peers[${x}]`, p);
        return {
          peer: peerName(`${at}.spec.placement.peers[${x}].peer`, po.peer),
          max: int(`${at}.spec.placement.peers[${x}].max`, po.max, 0),
        };
      });
    }
    out.placement = placement;
  }
  return { apiVersion: API_VERSION, kind: 'Request', metadata: meta as Meta, spec: out };
}

/** Parses multi-document YAML into Offers and Requests; any bad field is an InputError. */
export function parseManifests(text: string): { offers: Offer[]; requests: Request[] } {
  const docs = parseAllDocuments(text);
  const offers: Offer[] = [];
  const requests: Request[] = [];
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, x) => {
    const at = `document ${x + 1}`;
    if (doc.errors.length > 0)
      throw new InputError(`${at}: bad YAML (${doc.errors[0]!.message.split('\n')[0]})`);
    const v: unknown = doc.toJS();
    if (v === null || v === undefined) return;
    const d = obj(at, v);
    if (d.apiVersion !== API_VERSION) {
      throw new InputError(
        `${at}.apiVersion: expected ${API_VERSION}, got ${JSON.stringify(d.apiVersion) ?? 'nothing'}`,
      );
    }
    if (d.kind === 'Offer') offers.push(checkOffer(at, d));
    else if (d.kind === 'Request') requests.push(checkRequest(at, d));
    else
      throw new InputError(
        `${at}.kind: expected Offer or Request, got ${JSON.stringify(d.kind) ?? 'nothing'}`,
      );
  });
  return { offers, requests };
}

/** The per-request problem behind a set of manifests (exported for the controller and tests). */
export function matchProblem(offers: Offer[], requests: Request[]) {
  const ns = (m: Meta): string => m.namespace ?? 'default';
  const reqs = [...requests].sort(
    (a, b) => ns(a.metadata).localeCompare(ns(b.metadata)) || a.metadata.name.localeCompare(b.metadata.name),
  );
  const hostNames = [...new Set(offers.map((o) => o.spec.peer))].sort();
  const hostIndex = new Map(hostNames.map((h, x) => [h, x]));
  const hostUnits = new Array<number>(hostNames.length).fill(0);
  const excluded = hostNames.map(() => new Set<string>());
  for (const o of offers) {
    const h = hostIndex.get(o.spec.peer)!;
    hostUnits[h]! += o.spec.units;
    for (const p of o.spec.excludePeers ?? []) excluded[h]!.add(p);
  }
  const m = reqs.length;
  const n = m + hostNames.length;
  const R = new Float64Array(n);
  const O = new Float64Array(n);
  reqs.forEach((q, x) => (R[x] = q.spec.units));
  hostUnits.forEach((u, h) => (O[m + h] = u));
  const bi: number[] = [];
  const bj: number[] = [];
  const bc: number[] = [];
  reqs.forEach((q, x) => {
    const pl = q.spec.placement ?? {};
    const listed = new Map((pl.peers ?? []).map((p) => [p.peer, p.max]));
    const dflt = pl.maxPerPeer ?? (pl.spread ? 1 : q.spec.units);
    hostNames.forEach((h, y) => {
      if (h === q.spec.peer || excluded[y]!.has(q.spec.peer)) return;
      const cap = Math.min(listed.get(h) ?? dflt, q.spec.units);
      if (cap <= 0) return;
      bi.push(x);
      bj.push(m + y);
      bc.push(cap);
    });
  });
  const problem = buildProblem(
    n,
    R,
    O,
    0,
    Int32Array.from(bi),
    Int32Array.from(bj),
    Float64Array.from(bc),
    null,
  );
  return { problem, requests: reqs, hosts: hostNames };
}

function assignmentName(request: string, host: string): string {
  let name = `${request}-${host}`.toLowerCase().replace(/[^a-z0-9.-]/g, '-');
  if (name.length > 253) name = name.slice(0, 253);
  return name;
}

/** Offers + Requests -> Assignments (one per (Request, host) pair with units). */
export function match(offers: Offer[], requests: Request[], options: SolveOptions = {}): Assignment[] {
  const { problem, requests: reqs, hosts } = matchProblem(offers, requests);
  const sol: Solution = solveProblem(problem, options);
  const m = reqs.length;
  const out: Assignment[] = [];
  for (let e = 0; e < sol.count; e++) {
    const q = reqs[sol.from[e]!]!;
    const host = hosts[sol.to[e]! - m]!;
    out.push({
      apiVersion: API_VERSION,
      kind: 'Assignment',
      metadata: {
        name: assignmentName(q.metadata.name, host),
        namespace: q.metadata.namespace ?? 'default',
        labels: { 'personalcloud.io/requester': q.spec.peer, 'personalcloud.io/host': host },
      },
      spec: { requester: q.spec.peer, request: q.metadata.name, host, units: sol.units[e]!, vm: q.spec.vm },
    });
  }
  return out;
}
