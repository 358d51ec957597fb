/**
 * Owner references, labels every child carries, finalizers and pruning of children
 * that are no longer desired.
 */
import type { KubeApi, KubeObject } from './client.js';
import type { ResourceType } from './kinds.js';

export interface OwnerLike {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; uid?: string };
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
}

/** The controller owner reference to put on a child of owner. */
export function controllerRef(owner: OwnerLike): OwnerReference {
  const { apiVersion, kind } = owner;
  const name = owner.metadata?.name;
  const uid = owner.metadata?.uid;
  if (!apiVersion || !kind || !name || !uid) throw new Error('owner needs apiVersion, kind, name and uid');
  return { apiVersion, kind, name, uid, controller: true, blockOwnerDeletion: true };
}

export function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return (obj.metadata?.finalizers ?? []).includes(finalizer);
}

export function isDeleting(obj: KubeObject): boolean {
  return Boolean(obj.metadata?.deletionTimestamp);
}

/**
 * Adds the finalizer with a JSON patch guarded by the resourceVersion (so a
 * concurrent writer's list is never overwritten). Returns the patched object.
 */
export async function addFinalizer<T extends KubeObject>(
  client: KubeApi,
  type: ResourceType,
  obj: T,
  finalizer: string,
): Promise<T> {
  if (hasFinalizer(obj, finalizer)) return obj;
  const ops = obj.metadata?.finalizers
    ? [
        { op: 'test', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion },
        { op: 'add', path: '/metadata/finalizers/-', value: finalizer },
      ]
    : [
        { op: 'test', path: '/metadata/resourceVersion', value: obj.metadata?.resourceVersion },
        { op: 'add', path: '/metadata/finalizers', value: [finalizer] },
      ];
  return client.jsonPatch<T>(type, obj.metadata?.name ?? '', obj.metadata?.namespace, ops);
}

/** Removes the finalizer (after clean-up succeeded); a vanished object is fine. */
export async function removeFinalizer(
  client: KubeApi,
  type: ResourceType,
  obj: KubeObject,
  finalizer: string,
): Promise<void> {
  const list = obj.metadata?.finalizers ?? [];
  const i = list.indexOf(finalizer);
  if (i < 0) return;
  try {
    await client.jsonPatch(type, obj.metadata?.name ?? '', obj.metadata?.namespace, [
      { op: 'test', path: `/metadata/finalizers/${i}`, value: finalizer },
      { op: 'remove', path: `/metadata/finalizers/${i}` },
    ]);
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return;
    throw err;
  }
}

/**
 * Deletes the existing children (as the informer cache sees them) that are not in the
 * desired set. Returns the names deleted.
 */
export async function pruneChildren(
  client: KubeApi,
  type: ResourceType,
  existing: readonly KubeObject[],
  desired: readonly KubeObject[],
): Promise<string[]> {
  const want = new Set(desired.map((d) => `${d.metadata?.namespace ?? ''}/${d.metadata?.name ?? ''}`));
  const pruned: string[] = [];
  for (const obj of existing) {
    const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    if (want.has(key) || isDeleting(obj)) continue;
    await client.delete(type, obj.metadata?.name ?? '', obj.metadata?.namespace, { uid: obj.metadata?.uid });
    pruned.push(key);
  }
  return pruned;
}

/** Label selector string from a label map. */
export function selectorOf(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/**
 * True when every field of desired is present and equal in observed (extra fields in
 * observed, e.g. defaults and status, are ignored). Lets a reconcile skip an apply
 * that would change nothing; when unsure it says false and the apply happens (a
 * server-side apply of identical intent is itself a no-op that keeps the
 * resourceVersion).
 */
export function containsDesired(observed: unknown, desired: unknown): boolean {
  if (desired === null || typeof desired !== 'object') return observed === desired;
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed) || observed.length !== desired.length) return false;
    return desired.every((d, i) => containsDesired(observed[i], d));
  }
  if (observed === null || typeof observed !== 'object' || Array.isArray(observed)) return false;
  const o = observed as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(
    ([k, v]) => v === undefined || containsDesired(o[k], v),
  );
}

/** The first path where observed does not contain desired (for debug logs). */
export function firstDifference(observed: unknown, desired: unknown, path = ''): string | undefined {
  if (desired === null || typeof desired !== 'object')
    return observed === desired
      ? undefined
      : `${path}: ${JSON.stringify(observed)} != ${JSON.stringify(desired)}`;
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed) || observed.length !== desired.length) return `${path}: array length`;
    for (let i = 0; i < desired.length; i++) {
      const d = firstDifference(observed[i], desired[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (observed === null || typeof observed !== 'object') return `${path}: missing`;
  for (const [k, v] of Object.entries(desired as Record<string, unknown>)) {
    if (v === undefined) continue;
    const d = firstDifference((observed as Record<string, unknown>)[k], v, `${path}.${k}`);
    if (d) return d;
  }
  return undefined;
}

/**
 * Older first (creationTimestamp, then name): which of two objects claiming one thing
 * keeps it. Timestamps are compared as instants, whether they came as strings (JSON)
 * or Dates.
 */
export function ageOrder(a: { metadata?: OwnerMeta }, b: { metadata?: OwnerMeta }): number {
  const ta = a.metadata?.creationTimestamp ? new Date(a.metadata.creationTimestamp).getTime() : 0;
  const tb = b.metadata?.creationTimestamp ? new Date(b.metadata.creationTimestamp).getTime() : 0;
  return ta - tb || (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');
}
type OwnerMeta = { name?: string; creationTimestamp?: Date | string };
