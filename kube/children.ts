/**
 * Children described once: each child kind of a controller is (kind, the condition it
 * reports under, the informer that caches it, the desired objects). One loop applies
 * what is desired, prunes what is owned and no longer desired, and — with nothing
 * desired — deletes. A failing kind never stops the others: every failure comes back
 * with its condition, so each shows in the owner's status, and the retriable ones are
 * thrown together (AggregateError) for the queue's backoff.
 */
import type { Logger } from 'pino';
import { applyIfChanged, errorMessage, isTerminalApiError } from './apply.js';
import type { KubeApi, KubeObject } from './client.js';
import type { ObjectCache } from './informer.js';
import type { ResourceType } from './kinds.js';
import { pruneChildren } from './ownership.js';

export interface ChildSet<C extends string> {
  type: ResourceType;
  condition: C;
  cache: ObjectCache<KubeObject>;
  desired: readonly KubeObject[];
}

export interface ChildFailure<C extends string> {
  type: ResourceType;
  condition: C;
  /** True when retrying cannot help (the API server refused the object: 400/422). */
  terminal: boolean;
  reason: 'ApplyRejected' | 'ApplyFailed';
  message: string;
  error: unknown;
}

export interface ChildSyncResult<C extends string> {
  writes: number;
  failures: ChildFailure<C>[];
}

/**
 * Applies and prunes each set in order. owned(child) says whether a cached object of
 * the set's kind (in namespace) belongs to this owner; only those are pruned.
 */
export async function syncChildren<C extends string>(
  client: KubeApi,
  fieldManager: string,
  sets: readonly ChildSet<C>[],
  opts: { namespace: string; owned: (child: KubeObject) => boolean; log?: Logger },
): Promise<ChildSyncResult<C>> {
  const result: ChildSyncResult<C> = { writes: 0, failures: [] };
  for (const set of sets) {
    try {
      for (const o of set.desired) {
        const observed = set.cache.get(o.metadata?.name ?? '', o.metadata?.namespace);
        if (await applyIfChanged(client, fieldManager, o, observed, opts.log)) result.writes++;
      }
      if (set.type.namespaced) {
        const existing = set.cache.list(opts.namespace).filter(opts.owned);
        result.writes += (await pruneChildren(client, set.type, existing, set.desired)).length;
      }
    } catch (err) {
      const terminal = isTerminalApiError(err);
      result.failures.push({
        type: set.type,
        condition: set.condition,
        terminal,
        reason: terminal ? 'ApplyRejected' : 'ApplyFailed',
        message: `${set.type.kind}: ${errorMessage(err)}`,
        error: err,
      });
    }
  }
  return result;
}

/** The retriable failures as one error for the work queue, or undefined when there are none. */
export function retriableError<C extends string>(failures: readonly ChildFailure<C>[]): Error | undefined {
  const retriable = failures.filter((f) => !f.terminal);
  if (retriable.length === 0) return undefined;
  return new AggregateError(
    retriable.map((f) => (f.error instanceof Error ? f.error : new Error(f.message))),
    `${retriable.length} child kind(s) failed: ${retriable.map((f) => f.message).join('; ')}`,
  );
}
