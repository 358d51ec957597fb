/** Applying desired children: skip when the cache already shows them, sort failures. */
import { ApiError, type KubeClient, type KubeObject } from './kube-client.js';
import { containsDesired, firstDifference } from './ownership.js';

/**
 * Server-side applies desired unless observed (from the informer cache) already
 * contains every field of it. Returns true when a request was made.
 */
export async function applyIfChanged(
  client: KubeClient,
  fieldManager: string,
  desired: KubeObject,
  observed: KubeObject | undefined,
): Promise<boolean> {
  if (observed && !observed.metadata?.deletionTimestamp && containsDesired(observed, desired)) return false;
  if (observed && process.env.PCLOUD_DEBUG_APPLY)
    process.stderr.write(
      `apply ${desired.kind}/${desired.metadata?.name}: ${firstDifference(observed, desired)}\n`,
    );
  await client.apply(desired, fieldManager);
  return true;
}

/** Status through /status, only when it differs from what the cache shows. */
export async function applyStatusIfChanged(
  client: KubeClient,
  fieldManager: string,
  obj: KubeObject,
  status: Record<string, unknown>,
): Promise<boolean> {
  if (containsDesired(obj.status, status) && containsDesired(status, obj.status ?? {})) return false;
  await client.applyStatus(
    {
      apiVersion: obj.apiVersion,
      kind: obj.kind,
      metadata: {
        name: obj.metadata?.name,
        ...(obj.metadata?.namespace ? { namespace: obj.metadata.namespace } : {}),
      },
      status,
    },
    fieldManager,
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
