/**
 * Server-side apply for any kind (the runtime's KubeClient.apply only knows the kinds
 * in its own table; Requests, Secrets and ServiceAccounts are not there).
 */
import type { KubeClient, KubeObject } from '../../operator/runtime/kube-client.js';
import { containsDesired } from '../../operator/runtime/ownership.js';
import { resourcePath, type ResourceType } from '../../operator/runtime/resources.js';

export async function applyObject<T extends KubeObject>(
  client: KubeClient,
  type: ResourceType,
  obj: KubeObject,
  fieldManager: string,
  subresource?: 'status',
): Promise<T> {
  const name = obj.metadata?.name;
  if (!name) throw new Error(`apply ${type.kind}: no name`);
  const path =
    resourcePath({ ...type, namespaced: true }, obj.metadata?.namespace, name) +
    (subresource ? `/${subresource}` : '');
  return client.request<T>('PATCH', path, {
    query: { fieldManager, force: true },
    body: { apiVersion: type.apiVersion, kind: type.kind, ...obj },
    contentType: 'application/apply-patch+yaml',
  });
}

/** Equal as far as JSON goes, with undefined members ignored. */
export function sameContent(a: unknown, b: unknown): boolean {
  return containsDesired(a, b) && containsDesired(b, a);
}

/** Applies status through /status unless the observed object already shows exactly it. */
export async function applyStatusIfChanged(
  client: KubeClient,
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
      metadata: { name: observed.metadata?.name, namespace: observed.metadata?.namespace },
      status,
    },
    fieldManager,
    'status',
  );
  return true;
}

/** POST for any kind (the runtime's KubeClient.create only knows the kinds in its table). */
export async function createObject<T extends KubeObject>(
  client: KubeClient,
  type: ResourceType,
  obj: KubeObject,
): Promise<T> {
  return client.request<T>('POST', resourcePath({ ...type, namespaced: true }, obj.metadata?.namespace), {
    body: { apiVersion: type.apiVersion, kind: type.kind, ...obj },
  });
}
