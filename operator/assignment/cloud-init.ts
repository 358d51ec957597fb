/** cloud-init NoCloud user data: the requester's document with its ssh keys merged in. */
import { parse, stringify } from 'yaml';
import type { VmSpec } from '../../generated/personalcloud.js';

export class CloudInitError extends Error {
  constructor(
    readonly reason: 'UnsupportedCloudInit' | 'InvalidCloudInit' | 'CloudInitTooLarge',
    message: string,
  ) {
    super(message);
  }
}

/**
 * cloud-init reads user data with PyYAML, which speaks YAML 1.1: `0644` is octal and
 * `yes` is a boolean there. Parsing and writing in 1.1 keeps the document's meaning
 * (in 1.2 `permissions: 0644` would come back as decimal 644).
 */
const CLOUD_INIT_YAML = { version: '1.1' } as const;

/**
 * A `#cloud-config` document for the VM: the given one (when it is cloud-config)
 * with `ssh_authorized_keys` extended by spec.vm.sshKeys and `hostname` defaulted. A
 * non-cloud-config user data (a script, a MIME archive) is passed through untouched
 * when there are no keys to add, and rejected when there are.
 */
export function renderUserData(vm: VmSpec, hostname: string): string {
  const keys = vm.sshKeys ?? [];
  const given = vm.cloudInit?.trim();
  let doc: Record<string, unknown> = {};
  if (given) {
    if (!given.startsWith('#cloud-config')) {
      if (keys.length === 0) return vm.cloudInit ?? '';
      throw new CloudInitError(
        'UnsupportedCloudInit',
        'spec.vm.cloudInit is not a #cloud-config document, so spec.vm.sshKeys cannot be added to it',
      );
    }
    let parsed: unknown;
    try {
      parsed = parse(given, CLOUD_INIT_YAML);
    } catch (err) {
      throw new CloudInitError(
        'InvalidCloudInit',
        `spec.vm.cloudInit is not valid YAML: ${(err as Error).message.split('\n')[0]}`,
      );
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new CloudInitError('InvalidCloudInit', 'spec.vm.cloudInit must be a #cloud-config mapping');
    }
    doc = (parsed ?? {}) as Record<string, unknown>;
  }
  const existing = Array.isArray(doc.ssh_authorized_keys)
    ? (doc.ssh_authorized_keys as unknown[]).map(String)
    : [];
  const merged = [...existing, ...keys.filter((k) => !existing.includes(k))];
  const out: Record<string, unknown> = { hostname, ...doc };
  if (merged.length > 0) out.ssh_authorized_keys = merged;
  return `#cloud-config\n${stringify(out, { ...CLOUD_INIT_YAML, lineWidth: 0 })}`;
}
