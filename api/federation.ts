/**
 * The contract between the matchmaker cluster and the homes' federation controllers:
 * one namespace `peer-<name>` per peer holding that peer's Offers, Requests and
 * heartbeat Lease, and the Assignments it hosts. Names, labels and field managers
 * both sides share live here.
 */
import { createHash } from 'node:crypto';

import { GROUP } from './labels.js';

export { GROUP };
export const PEER_NAMESPACE_PREFIX = 'peer-';
export const HEARTBEAT_LEASE = 'heartbeat';
export const HEARTBEAT_LABEL = `${GROUP}/heartbeat`;
export const REQUESTER_LABEL = `${GROUP}/requester`;
export const REQUEST_LABEL = `${GROUP}/request`;
export const HOST_LABEL = `${GROUP}/host`;
/** On an Assignment whose host's heartbeat lapsed: the matchmaker no longer counts it. */
export const LOST_ANNOTATION = `${GROUP}/lost-since`;
/** On objects the federation controller mirrors (up: Offers, Requests; down: Assignments). */
export const MIRRORED_LABEL = `${GROUP}/federation`;
export const MIRRORED_FROM_ANNOTATION = `${GROUP}/mirrored-from`;

export const MATCHMAKER_FIELD_MANAGER = 'matchmaker';
export const FEDERATION_FIELD_MANAGER = 'federation';

/** The home's namespace holding the join Secret. */
export const SYSTEM_NAMESPACE = 'personal-cloud-system';
export const JOIN_SECRET = 'federation-join';
/** The home's namespace the pulled (hosted) Assignments are written to. */
export const LOCAL_ASSIGNMENT_NAMESPACE = 'federation';

/**
 * On the namespace `peer-<name>`, set by `federation invite --domain` (the matchmaker's
 * operator, not the peer, writes it): the DNS domain the peer's Gateway serves. The
 * matchmaker shows a host's VM hostnames to a requester only under
 * `<requester>.<that domain>`.
 */
export const HOME_DOMAIN_ANNOTATION = `${GROUP}/home-domain`;
/**
 * On an Assignment the host refused (Accepted=False): the Request's metadata.generation
 * at the refusal. The matchmaker keeps the Assignment as the record and places those
 * units elsewhere until the Request's generation changes.
 */
export const REFUSED_GENERATION_ANNOTATION = `${GROUP}/refused-at-generation`;

/** The VM phases a host may report (KubeVirt's printableStatus and VMI phases, and Pending). */
export const VM_PHASES: ReadonlySet<string> = new Set([
  'Pending',
  'Provisioning',
  'Scheduling',
  'Scheduled',
  'Starting',
  'Running',
  'Paused',
  'Migrating',
  'Stopping',
  'Stopped',
  'Terminating',
  'Succeeded',
  'Failed',
  'Unknown',
  'CrashLoopBackOff',
  'ErrorUnschedulable',
  'ErrImagePull',
  'ImagePullBackOff',
  'ErrorPvcNotFound',
  'DataVolumeError',
  'WaitingForVolumeBinding',
  'WaitingForReceiver',
]);

/** The ServiceAccount, Role and RoleBinding of a peer in its namespace. */
export const PEER_ACCOUNT = 'peer';
export const PEER_TOKEN_SECRET = 'peer-token';

const PEER = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** `peer-<name>` must be a namespace name (a DNS-1123 label of at most 63 characters). */
export const PEER_NAME_MAX = 63 - PEER_NAMESPACE_PREFIX.length;

/**
 * The one rule for a peer name, used by `federation invite` and the operator's --peer:
 * a DNS-1123 label short enough that its namespace `peer-<name>` is one too. Returns
 * what is wrong, or undefined when the name is good.
 */
export function peerNameProblem(s: string): string | undefined {
  if (!PEER.test(s)) return `peer name ${JSON.stringify(s)} must be a DNS-1123 label (a-z, 0-9, '-')`;
  if (s.length > PEER_NAME_MAX)
    return `peer name ${JSON.stringify(s)} has ${s.length} characters; at most ${PEER_NAME_MAX} (its namespace ${PEER_NAMESPACE_PREFIX}<name> is a DNS-1123 label)`;
  return undefined;
}

export function isPeerName(s: string): boolean {
  return peerNameProblem(s) === undefined;
}

export function peerNamespace(peer: string): string {
  return `${PEER_NAMESPACE_PREFIX}${peer}`;
}

/** The peer a namespace belongs to, or undefined for any other namespace. */
export function peerOfNamespace(ns: string | undefined): string | undefined {
  if (!ns?.startsWith(PEER_NAMESPACE_PREFIX)) return undefined;
  const peer = ns.slice(PEER_NAMESPACE_PREFIX.length);
  return isPeerName(peer) ? peer : undefined;
}

/**
 * The Assignment of one Request on one host (in the host's namespace): deterministic,
 * `<requester>.<request>`, so that re-solving updates it in place. It is also a label
 * value at the host, so it stays within 63 characters (prefix + hash when longer).
 */
export function assignmentName(requester: string, request: string): string {
  const name = `${requester}.${request}`;
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 10);
  return `${name.slice(0, 52).replace(/[-.]+$/, '')}-${hash}`;
}

/**
 * A label value for any name (label values are at most 63 characters): the name itself
 * when it fits, else a prefix plus a hash of the whole. Selectors on these labels are
 * hints; the spec (requester, request, host) is what the controllers read.
 */
export function labelValue(s: string): string {
  if (s.length <= 63) return s;
  const hash = createHash('sha256').update(s).digest('hex').slice(0, 10);
  return `${s.slice(0, 52).replace(/[-._]+$/, '')}-${hash}`;
}
