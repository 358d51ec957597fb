import type { AssignmentPhase, AssignmentVmStatus } from '../../generated/personalcloud.js';
import { assignmentPhase, vmStatus, type ObservedVm } from './status.js';

const HOST = 'web-0.bob.home.example.net';
type Ifaces = NonNullable<NonNullable<ObservedVm['vmi']>['status']>['interfaces'];
const vmi = (phase?: string, interfaces?: Ifaces): ObservedVm['vmi'] => ({
  status: { ...(phase ? { phase } : {}), ...(interfaces ? { interfaces } : {}) },
});

describe('vmStatus: phase', () => {
  it.each<[string, Omit<ObservedVm, 'name'>, string]>([
    ['neither VM nor VMI yet', {}, 'Pending'],
    ['a VM without status', { vm: {} }, 'Provisioning'],
    ['a VM with an empty status', { vm: { status: {} } }, 'Provisioning'],
    ['the VM printableStatus', { vm: { status: { printableStatus: 'Starting' } } }, 'Starting'],
    [
      'printableStatus before the VMI phase',
      { vm: { status: { printableStatus: 'Running' } }, vmi: vmi('Scheduling') },
      'Running',
    ],
    [
      'the VMI phase when the VM has no printableStatus',
      { vm: { status: {} }, vmi: vmi('Scheduled') },
      'Scheduled',
    ],
    ['the VMI phase when the VM is not cached yet', { vmi: vmi('Running') }, 'Running'],
    ['a VMI without phase under a VM', { vm: {}, vmi: vmi() }, 'Provisioning'],
    ['CrashLoopBackOff', { vm: { status: { printableStatus: 'CrashLoopBackOff' } } }, 'CrashLoopBackOff'],
    // Only a CamelCase word reaches the status (it becomes a printer column and a phase).
    ['a status with spaces becomes Unknown', { vm: { status: { printableStatus: 'Not Ready' } } }, 'Unknown'],
    [
      'a status with punctuation becomes Unknown',
      { vm: { status: { printableStatus: 'Err: x' } } },
      'Unknown',
    ],
    ['a VMI phase with digits becomes Unknown', { vmi: vmi('Phase2') }, 'Unknown'],
  ])('%s', (_, observed, phase) => {
    expect(vmStatus({ name: 'web-0', ...observed }, HOST)).toEqual({ name: 'web-0', phase, hostname: HOST });
  });
});

describe('vmStatus: address', () => {
  it.each<[string, Ifaces, string | undefined]>([
    ['no interfaces', [], undefined],
    [
      'the tenant network first',
      [
        { name: 'default', ipAddress: '10.244.1.7' },
        { name: 'tenant', ipAddress: '10.200.0.5' },
      ],
      '10.200.0.5',
    ],
    [
      'else the pod network',
      [{ name: 'default', ipAddress: '10.244.1.7' }, { name: 'tenant' }],
      '10.244.1.7',
    ],
    [
      'else any interface with an IP',
      [
        { name: 'other', ipAddress: 'not-an-ip' },
        { name: 'extra', ipAddress: '172.16.0.9' },
      ],
      '172.16.0.9',
    ],
    ['a prefix length is dropped', [{ name: 'tenant', ipAddress: '10.200.0.5/24' }], '10.200.0.5'],
    ['IPv6', [{ name: 'tenant', ipAddress: 'fd00:200::5/64' }], 'fd00:200::5'],
    [
      'an invalid tenant address falls back to the pod network',
      [
        { name: 'tenant', ipAddress: '10.200.0.999' },
        { name: 'default', ipAddress: '10.244.1.7' },
      ],
      '10.244.1.7',
    ],
    ['an empty address is none', [{ name: 'tenant', ipAddress: '' }], undefined],
    ['garbage only is none', [{ name: 'tenant', ipAddress: 'fe80::zz' }, { ipAddress: 'x' }], undefined],
  ])('%s', (_, interfaces, address) => {
    const s = vmStatus(
      { name: 'web-0', vm: { status: { printableStatus: 'Running' } }, vmi: vmi('Running', interfaces) },
      HOST,
    );
    expect(s).toEqual({ name: 'web-0', phase: 'Running', hostname: HOST, ...(address ? { address } : {}) });
    // The schema requires an IP when address is set: never an empty string.
    if (!address) expect(s).not.toHaveProperty('address');
  });

  it('carries the hostname it is given (a Tenant hostnameSuffix variant)', () => {
    expect(vmStatus({ name: 'web-0' }, 'web-0.vms.bob.example.org').hostname).toBe(
      'web-0.vms.bob.example.org',
    );
  });
});

describe('assignmentPhase', () => {
  const vm = (phase?: string): AssignmentVmStatus => ({ name: 'x', ...(phase ? { phase } : {}) });
  it.each<[string, AssignmentVmStatus[], boolean, boolean, AssignmentPhase]>([
    ['deleting wins over everything', [vm('Running')], true, true, 'Terminating'],
    ['deleting, not blocked', [vm('CrashLoopBackOff')], true, false, 'Terminating'],
    ['refused (blocked) is Pending', [vm('Running')], false, true, 'Pending'],
    ['refused with no VMs', [], false, true, 'Pending'],
    ['no VMs yet', [], false, false, 'Provisioning'],
    ['all Running', [vm('Running'), vm('Running'), vm('Running')], false, false, 'Running'],
    ['one still Starting', [vm('Running'), vm('Starting')], false, false, 'Provisioning'],
    ['one without phase', [vm('Running'), vm()], false, false, 'Provisioning'],
    ['Pending VMs', [vm('Pending'), vm('Pending')], false, false, 'Provisioning'],
    ['one failed among running', [vm('Running'), vm('Failed')], false, false, 'Degraded'],
    ['a failure wins over provisioning', [vm('Provisioning'), vm('ErrImagePull')], false, false, 'Degraded'],
    ['Stopped (runStrategy is Always)', [vm('Stopped')], false, false, 'Degraded'],
    ['Unknown', [vm('Running'), vm('Unknown')], false, false, 'Degraded'],
    ['ErrorUnschedulable', [vm('ErrorUnschedulable')], false, false, 'Degraded'],
    ['ImagePullBackOff', [vm('ImagePullBackOff')], false, false, 'Degraded'],
    ['ErrorPvcNotFound', [vm('ErrorPvcNotFound')], false, false, 'Degraded'],
    ['DataVolumeError', [vm('DataVolumeError')], false, false, 'Degraded'],
    ['CrashLoopBackOff', [vm('CrashLoopBackOff')], false, false, 'Degraded'],
  ])('%s', (_, vms, deleting, blocked, phase) => {
    expect(assignmentPhase(vms, deleting, blocked)).toBe(phase);
  });

  it('derives from vmStatus end to end', () => {
    const observed: ObservedVm[] = [
      { name: 'web-0', vm: { status: { printableStatus: 'Running' } } },
      { name: 'web-1', vmi: vmi('Running') },
    ];
    expect(
      assignmentPhase(
        observed.map((o) => vmStatus(o, `${o.name}.x`)),
        false,
        false,
      ),
    ).toBe('Running');
    observed.push({ name: 'web-2' });
    expect(
      assignmentPhase(
        observed.map((o) => vmStatus(o, `${o.name}.x`)),
        false,
        false,
      ),
    ).toBe('Provisioning');
    observed.push({ name: 'web-3', vm: { status: { printableStatus: '???' } } });
    expect(
      assignmentPhase(
        observed.map((o) => vmStatus(o, `${o.name}.x`)),
        false,
        false,
      ),
    ).toBe('Degraded');
  });
});
