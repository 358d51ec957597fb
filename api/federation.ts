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

/** The ServiceAccount, Role and RoleBinding of a peer in its namespace. */
export const PEER_ACCOUNT = 'peer';
export const PEER_TOKEN_SECRET = 'peer-token';

const PEER = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isPeerName(s: string): boolean {
  return s.length <= 58 && PEER.test(s);
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
