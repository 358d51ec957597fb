import { createHash } from 'node:crypto';
import { parse } from 'yaml';
import type { VirtualMachine, VirtualMachineInstanceSpec } from '../../generated/kubevirt.js';
import type { Assignment, AssignmentSpec } from '../../generated/personalcloud.js';
import { CloudInitError } from './cloud-init.js';
import {
  assignmentLabels,
  cloudInitUserData,
  desiredCloudInitSecret,
  desiredVirtualMachines,
  vmNames,
  type VmContext,
} from './virtual-machines.js';

function assignment(spec: Partial<AssignmentSpec> = {}, name = 'bob-web-alice'): Assignment {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Assignment',
    metadata: { name, namespace: 'matchmaker', uid: `uid-${name}`, generation: 1 },
    spec: {
      requester: 'bob',
      request: 'web',
      host: 'alice',
      units: 2,
      vm: { image: 'quay.io/containerdisks/fedora:40' },
      ...spec,
    },
  };
}
const ctx: VmContext = {
  unit: { cpu: '2', memory: '4Gi', storage: '20Gi' },
  bandwidth: { ingress: '10M', egress: '5M' },
  hostnameSuffix: 'bob.home.example.net',
};
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJvYg bob@laptop';

/** The only VM of a one-unit Assignment. */
function onlyVm(spec: Partial<AssignmentSpec> = {}, c: VmContext = ctx) {
  const vms = desiredVirtualMachines(assignment({ units: 1, ...spec }), c);
  expect(vms).toHaveLength(1);
  return vms[0]!;
}

/** The instance spec of a VM's template (every desired VM has one). */
function vmiSpec(vm: VirtualMachine): VirtualMachineInstanceSpec {
  const spec = vm.spec.template.spec;
  if (!spec) throw new Error(`VM ${vm.metadata?.name} has no template spec`);
  return spec;
}

describe('vmNames', () => {
  it.each([
    ['web', 1, ['web-0']],
    ['web', 3, ['web-0', 'web-1', 'web-2']],
    // A Request name is a DNS subdomain: dots become dashes in the VM's DNS label.
    ['shop.frontend', 2, ['shop-frontend-0', 'shop-frontend-1']],
    ['1db', 1, ['1db-0']],
  ])('request %p × %p units', (request, units, want) => {
    expect(vmNames(assignment({ request, units }))).toEqual(want);
  });

  it('shorten a long request name to a 56-character base: a prefix and 8 hex of its sha256', () => {
    const request = 'r'.repeat(200);
    const hash = createHash('sha256').update(request).digest('hex').slice(0, 8);
    const base = `${'r'.repeat(56 - 9)}-${hash}`;
    expect(vmNames(assignment({ request, units: 3 }))).toEqual([`${base}-0`, `${base}-1`, `${base}-2`]);
  });

  it('keep a long request name within a DNS label, unique per index and per request', () => {
    const long = `${'a'.repeat(120)}.example.com`;
    const names = vmNames(assignment({ request: long, units: 10000 }));
    expect(names).toHaveLength(10000);
    expect(new Set(names).size).toBe(10000);
    for (const n of names) expect(n).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    expect(names[9999]).toMatch(/^a+-[0-9a-f]{8}-9999$/);
    // Two long requests sharing a 56-character prefix still get different VM names.
    const other = vmNames(assignment({ request: `${'a'.repeat(120)}.example.org`, units: 1 }));
    expect(other[0]).not.toBe(names[0]);
  });
});

describe('assignmentLabels', () => {
  it('tie a child to its Assignment by name, namespace and requester', () => {
    expect(assignmentLabels(assignment())).toEqual({
      'app.kubernetes.io/managed-by': 'personal-cloud',
      'personalcloud.io/assignment': 'bob-web-alice',
      'personalcloud.io/assignment-namespace': 'matchmaker',
      'personalcloud.io/peer': 'bob',
    });
  });
});

describe('desiredVirtualMachines', () => {
  it('one VM per unit, named <request>-<i>, in the tenant namespace', () => {
    const vms = desiredVirtualMachines(assignment({ units: 3 }), ctx);
    expect(vms.map((v) => [v.apiVersion, v.kind, v.metadata.namespace, v.metadata.name])).toEqual([
      ['kubevirt.io/v1', 'VirtualMachine', 'tenant-bob', 'web-0'],
      ['kubevirt.io/v1', 'VirtualMachine', 'tenant-bob', 'web-1'],
      ['kubevirt.io/v1', 'VirtualMachine', 'tenant-bob', 'web-2'],
    ]);
    for (const v of vms) {
      expect(v.spec.runStrategy).toBe('Always');
      expect(vmiSpec(v).hostname).toBe(v.metadata.name);
    }
  });

  it('labels the VM and its template with the Assignment and the VM name, without owner references', () => {
    const vm = onlyVm();
    const want = {
      'app.kubernetes.io/managed-by': 'personal-cloud',
      'personalcloud.io/assignment': 'bob-web-alice',
      'personalcloud.io/assignment-namespace': 'matchmaker',
      'personalcloud.io/peer': 'bob',
      'personalcloud.io/vm': 'web-0',
    };
    expect(vm.metadata.labels).toEqual(want);
    expect(vm.spec.template.metadata?.labels).toEqual(want);
    // The Assignment lives in another namespace, where an owner reference cannot point:
    // the labels (and the Assignment's finalizer) are the ownership.
    expect(vm.metadata).not.toHaveProperty('ownerReferences');
  });

  it.each([
    [{ cpu: '2', memory: '4Gi', storage: '20Gi' }, 2],
    [{ cpu: '500m', memory: '512Mi', storage: '1Gi' }, 1],
    [{ cpu: '1500m', memory: '3Gi', storage: '100Gi' }, 2],
    [{ cpu: '16', memory: '64Gi', storage: '2Ti' }, 16],
  ])('sizes cpu, memory and the scratch disk from unit %p', (unit, cores) => {
    const vm = onlyVm({}, { ...ctx, unit });
    const { domain, volumes } = vmiSpec(vm);
    expect(domain.cpu).toEqual({ cores });
    expect(domain.memory).toEqual({ guest: unit.memory });
    expect(domain.resources).toEqual({ requests: { cpu: unit.cpu, memory: unit.memory } });
    expect(volumes?.find((v) => v.name === 'scratch')).toEqual({
      name: 'scratch',
      emptyDisk: { capacity: unit.storage },
    });
  });

  it('boots the containerDisk image, with a scratch and a cloud-init disk, all virtio', () => {
    const vm = onlyVm({ vm: { image: 'registry.example.com/os/debian@sha256:abc' } });
    const { domain, volumes } = vmiSpec(vm);
    expect(volumes?.[0]).toEqual({
      name: 'rootdisk',
      containerDisk: { image: 'registry.example.com/os/debian@sha256:abc' },
    });
    expect(domain.devices.disks).toEqual([
      { name: 'rootdisk', disk: { bus: 'virtio' } },
      { name: 'scratch', disk: { bus: 'virtio' } },
      { name: 'cloudinit', disk: { bus: 'virtio' } },
    ]);
    // Every disk has a volume of the same name.
    expect(volumes?.map((v) => v.name)).toEqual(domain.devices.disks?.map((d) => d.name));
  });

  it('carries the bandwidth caps on the template (for the virt-launcher pod), not on the VM', () => {
    const vm = onlyVm({}, { ...ctx, bandwidth: { ingress: '100M', egress: '1G' } });
    expect(vm.spec.template.metadata?.annotations).toEqual({
      'kubernetes.io/ingress-bandwidth': '100M',
      'kubernetes.io/egress-bandwidth': '1G',
    });
    expect(vm.metadata).not.toHaveProperty('annotations');
  });

  it('attaches the pod network (masquerade) and the tenant network (bridge over Multus)', () => {
    const vm = onlyVm();
    expect(vmiSpec(vm).networks).toEqual([
      { name: 'default', pod: {} },
      { name: 'tenant', multus: { networkName: 'tenant-network' } },
    ]);
    expect(vmiSpec(vm).domain.devices.interfaces).toEqual([
      { name: 'default', masquerade: {} },
      { name: 'tenant', bridge: {} },
    ]);
  });

  it('forwards every declared port through masquerade: UDP as UDP, HTTP/TLS/TCP as TCP', () => {
    const vm = onlyVm({
      vm: {
        image: 'img',
        ports: [
          { name: 'web', port: 8080 },
          { name: 'api', port: 8443, protocol: 'HTTP' },
          { name: 'tls', port: 443, protocol: 'TLS' },
          { name: 'ssh', port: 22, protocol: 'TCP' },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      },
    });
    expect(vmiSpec(vm).domain.devices.interfaces?.[0]).toEqual({
      name: 'default',
      masquerade: {},
      ports: [
        { name: 'web', port: 8080, protocol: 'TCP' },
        { name: 'api', port: 8443, protocol: 'TCP' },
        { name: 'tls', port: 443, protocol: 'TCP' },
        { name: 'ssh', port: 22, protocol: 'TCP' },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
    });
  });

  it('puts cloud-init (ssh keys, VM hostname) in a Secret per VM that the cloudinit volume references', () => {
    const a = assignment({
      units: 2,
      vm: { image: 'img', cloudInit: '#cloud-config\npackages: [nginx]\n', sshKeys: [KEY] },
    });
    const vms = desiredVirtualMachines(a, ctx);
    const userData = cloudInitUserData(a, ctx.hostnameSuffix);
    for (const [i, vm] of vms.entries()) {
      const v = vmiSpec(vm).volumes?.find((x) => x.name === 'cloudinit');
      expect(Object.keys(v ?? {})).toEqual(['name', 'cloudInitNoCloud']);
      const u = userData.get(`web-${i}`)!;
      expect(v?.cloudInitNoCloud).toEqual({ secretRef: { name: u.secretName } });
      expect(u.secretName).toMatch(new RegExp(`^web-${i}-cloudinit-[0-9a-f]{10}$`));
      expect(u.userData.startsWith('#cloud-config\n')).toBe(true);
      expect(parse(u.userData)).toEqual({
        hostname: `web-${i}.bob.home.example.net`,
        packages: ['nginx'],
        ssh_authorized_keys: [KEY],
      });
      const secret = desiredCloudInitSecret(a, { name: `web-${i}`, uid: 'u1' }, u.secretName, u.userData);
      expect(secret).toMatchObject({
        type: 'Opaque',
        immutable: true,
        metadata: { ownerReferences: [{ kind: 'VirtualMachine', name: `web-${i}`, uid: 'u1' }] },
      });
      expect(Buffer.from(secret.data!.userdata!, 'base64').toString()).toBe(u.userData);
    }
  });

  it('uses the hostname suffix it is given (a Tenant spec.hostnameSuffix)', () => {
    const u = cloudInitUserData(assignment({}), 'vms.bob.example.org').get('web-0');
    expect(parse(u?.userData ?? '')).toEqual({ hostname: 'web-0.vms.bob.example.org' });
  });

  it('refuses user data over 64 KiB with CloudInitTooLarge naming the size', () => {
    const keys = Array.from({ length: 9 }, (_, i) => `ssh-ed25519 AAAA${String(i).repeat(8000)} k${i}`);
    const a = assignment({ vm: { image: 'img', sshKeys: keys } });
    let thrown: unknown;
    try {
      desiredVirtualMachines(a, ctx);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(CloudInitError);
    expect((thrown as CloudInitError).reason).toBe('CloudInitTooLarge');
    expect(() => desiredVirtualMachines(a, ctx)).toThrow(/is 72\d{3} bytes; this home takes at most 65536/);
  });

  it.each([
    ['UnsupportedCloudInit', '#!/bin/sh\necho hi\n'],
    ['InvalidCloudInit', '#cloud-config\npackages: [nginx\n'],
  ])('refuses with %s instead of writing a VM', (reason, cloudInit) => {
    const a = assignment({ vm: { image: 'img', cloudInit, sshKeys: [KEY] } });
    let thrown: unknown;
    try {
      desiredVirtualMachines(a, ctx);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(CloudInitError);
    expect((thrown as CloudInitError).reason).toBe(reason);
  });

  it('puts a long peer in its hashed tenant namespace', () => {
    const requester = 'p'.repeat(63);
    const [vm] = desiredVirtualMachines(assignment({ requester, units: 1 }), ctx);
    expect(vm?.metadata.namespace).toMatch(/^tenant-p+-[0-9a-f]{8}$/);
    expect(vm?.metadata.namespace?.length).toBeLessThanOrEqual(63);
    expect(vm?.metadata.labels).toMatchObject({ 'personalcloud.io/peer': requester });
  });

  it('does not share objects between VMs (a caller may mutate one safely)', () => {
    const [a, b] = desiredVirtualMachines(assignment({ units: 2 }), ctx);
    expect(a?.metadata.labels).not.toBe(b?.metadata.labels);
    expect(a?.spec.template.spec?.volumes).not.toBe(b?.spec.template.spec?.volumes);
  });
});
