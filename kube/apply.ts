/** Applying desired children: skip when the cache already shows them, sort failures. */
import type { Logger } from 'pino';
import { ApiError, type KubeApi, type KubeObject } from './client.js';
import type { ResourceType } from './kinds.js';
import { containsDesired, firstDifference } from './ownership.js';

/**
 * Server-side applies desired unless observed (from the informer cache) already
 * contains every field of it. Returns true when a request was made.
 */
export async function applyIfChanged(
  client: KubeApi,
  fieldManager: string,
  desired: KubeObject,
  observed: KubeObject | undefined,
  log?: Logger,
): Promise<boolean> {
  if (observed && !observed.metadata?.deletionTimestamp && containsDesired(observed, desired)) return false;
  if (observed && log?.isLevelEnabled('debug'))
    log.debug(
      { kind: desired.kind, name: desired.metadata?.name, difference: firstDifference(observed, desired) },
      'applying a changed child',
    );
  await client.apply(desired, fieldManager);
  return true;
}

/** Equal as far as JSON goes, with undefined members ignored. */
export function sameContent(a: unknown, b: unknown): boolean {
  return containsDesired(a, b) && containsDesired(b, a);
}

/**
 * Server-side apply of obj as kind type (objects read from a list carry no apiVersion
 * or kind; the type supplies them). The one apply path: KubeClient.apply.
 */
export async function applyObject<T extends KubeObject>(
  client: KubeApi,
  type: ResourceType,
  obj: KubeObject,
  fieldManager: string,
  subresource?: 'status',
): Promise<T> {
  return client.apply<T>(
    { ...obj, apiVersion: type.apiVersion, kind: type.kind } as T,
    fieldManager,
    subresource ? { subresource } : {},
  );
}

/** POST of obj as kind type. */
export async function createObject<T extends KubeObject>(
  client: KubeApi,
  type: ResourceType,
  obj: KubeObject,
): Promise<T> {
  return client.create<T>({ ...obj, apiVersion: type.apiVersion, kind: type.kind } as T);
}

/** Status through /status, only when it differs from what the cache shows (observed). */
export async function applyStatusIfChanged(
  client: KubeApi,
  type: ResourceType,
  observed: KubeObject,
  status: Record<string, unknown>,
  fieldManager: string,
): Promise<boolean> {
  if (sameContent(observed.status ?? {}, status)) return false;
  await applyObject(
    client,
    type,
    {
      metadata: {
        name: observed.metadata?.name,
        ...(observed.metadata?.namespace ? { namespace: observed.metadata.namespace } : {}),
      },
      status,
    },
    fieldManager,
    'status',
  );
  return true;
}

/**
 * A failure the API server will repeat however often we retry (the object is
 * invalid, or forbidden): report it in a condition instead of retrying hot.
 */
export function isTerminalApiError(err: unknown): err is ApiError {
  return err instanceof ApiError && [400, 422].includes(err.statusCode);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
