/**
 * Status flowing back to the Assignment: per VM its phase (KubeVirt's
 * printableStatus, else the VMI phase), its address on the tenant network (else the
 * pod network) and its hostname; the Assignment's phase summarises them.
 */
import { isIP } from 'node:net';
import type { VirtualMachine, VirtualMachineInstance } from '../../generated/kubevirt.js';
import type { AssignmentPhase, AssignmentVmStatus } from '../../generated/personalcloud.js';

/** A VM's name and what the caches hold of it: its VirtualMachine and VirtualMachineInstance. */
export interface ObservedVm {
  name: string;
  vm?: Pick<VirtualMachine, 'status'>;
  vmi?: Pick<VirtualMachineInstance, 'status'>;
}

const FAILED = new Set([
  'Failed',
  'CrashLoopBackOff',
  'ErrorUnschedulable',
  'ErrImagePull',
  'ImagePullBackOff',
  'ErrorPvcNotFound',
  'DataVolumeError',
  'Unknown',
  'Stopped',
]);

export function vmStatus(o: ObservedVm, hostname: string): AssignmentVmStatus {
  const raw = o.vm?.status?.printableStatus ?? o.vmi?.status?.phase ?? (o.vm ? 'Provisioning' : 'Pending');
  const phase = /^[A-Za-z]+$/.test(raw) ? raw : 'Unknown';
  const ifaces = o.vmi?.status?.interfaces ?? [];
  const address = [
    ifaces.find((i) => i.name === 'tenant'),
    ifaces.find((i) => i.name === 'default'),
    ...ifaces,
  ]
    .map((i) => i?.ipAddress?.split('/')[0])
    .find((ip): ip is string => ip !== undefined && isIP(ip) !== 0);
  return { name: o.name, phase, ...(address ? { address } : {}), hostname };
}

export function assignmentPhase(
  vms: readonly AssignmentVmStatus[],
  deleting: boolean,
  blocked: boolean,
): AssignmentPhase {
  if (deleting) return 'Terminating';
  if (blocked) return 'Pending';
  if (vms.length > 0 && vms.every((v) => v.phase === 'Running')) return 'Running';
  if (vms.some((v) => v.phase !== undefined && FAILED.has(v.phase))) return 'Degraded';
  return 'Provisioning';
}
