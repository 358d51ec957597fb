/**
 * One KubeVirt VirtualMachine per assigned unit, in the requester's tenant namespace:
 * CPU, memory and a scratch disk from the unit size; the containerDisk image and
 * cloud-init (with the ssh keys) from spec.vm; the pod network (masquerade) plus the
 * tenant's private L2 network through Multus; and the bandwidth caps as
 * kubernetes.io/{ingress,egress}-bandwidth on the template, which KubeVirt carries to
 * the virt-launcher pod.
 */
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import type { VirtualMachine } from '../../generated/kubevirt.js';
import type { Assignment } from '../../generated/personalcloud.js';
import type { Desired } from '../../kube/client.js';
import type { UnitSize } from '../config.js';
import {
  ASSIGNMENT_LABEL,
  ASSIGNMENT_NAMESPACE_LABEL,
  PEER_LABEL,
  VM_LABEL,
  dnsLabel,
  managedLabels,
  tenantNamespaceName,
} from '../../api/labels.js';
import { wholeCores } from '../../api/quantity.js';
import { TENANT_NETWORK_NAME } from '../tenant/network.js';
import { CloudInitError, renderUserData } from './cloud-init.js';

/**
 * The most user data one VM gets. KubeVirt refuses inline user data over 2048 bytes, so
 * it goes in a Secret, which the API server caps at 1 MiB; 64 KiB is what common clouds
 * allow (Azure custom data 64 KiB, EC2 16 KiB) and is far more than a #cloud-config
 * with its keys needs (the schema allows 32 KiB of cloud-config plus 32 keys of 8 KiB,
 * 288 KiB in all), while a Secret per VM stays small.
 */
export const MAX_USER_DATA_BYTES = 64 * 1024;

/** Each VM's user data and the Secret that holds it (named by its content: Secrets are create-only). */
export function cloudInitUserData(
  a: Assignment,
  hostnameSuffix: string,
): Map<string, { secretName: string; userData: string }> {
  const out = new Map<string, { secretName: string; userData: string }>();
  for (const vm of vmNames(a)) {
    const userData = renderUserData(a.spec.vm, `${vm}.${hostnameSuffix}`);
    const bytes = Buffer.byteLength(userData);
    if (bytes > MAX_USER_DATA_BYTES)
      throw new CloudInitError(
        'CloudInitTooLarge',
        `user data of VM ${vm} (spec.vm.cloudInit with spec.vm.sshKeys) is ${bytes} bytes; this home takes at most ${MAX_USER_DATA_BYTES} bytes (64 KiB)`,
      );
    const hash = createHash('sha256').update(userData).digest('hex').slice(0, 10);
    out.set(vm, { secretName: `${vm}-cloudinit-${hash}`, userData });
  }
  return out;
}

/**
 * The Secret holding one VM's user data, owned by its VirtualMachine (so the garbage
 * collector removes it with the VM) and immutable (its name is its content).
 */
export function desiredCloudInitSecret(
  a: Assignment,
  vm: { name: string; uid: string },
  secretName: string,
  userData: string,
): Desired<V1Secret> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: secretName,
      namespace: tenantNamespaceName(a.spec.requester),
      labels: { ...assignmentLabels(a), [VM_LABEL]: vm.name },
      ownerReferences: [
        {
          apiVersion: 'kubevirt.io/v1',
          kind: 'VirtualMachine',
          name: vm.name,
          uid: vm.uid,
          controller: true,
        },
      ],
    },
    type: 'Opaque',
    immutable: true,
    data: { userdata: Buffer.from(userData).toString('base64') },
  };
}

/** The VM names of an Assignment: <request>-<i>, as DNS labels. */
export function vmNames(a: Assignment): string[] {
  const base = dnsLabel(a.spec.request, 56);
  return Array.from({ length: a.spec.units }, (_, i) => dnsLabel(`${base}-${i}`));
}

/** Labels that tie a child to its Assignment (two labels: values cannot hold '/'). */
export function assignmentLabels(a: Assignment): Record<string, string> {
  return {
    ...managedLabels(),
    [ASSIGNMENT_LABEL]: a.metadata?.name ?? '',
    [ASSIGNMENT_NAMESPACE_LABEL]: a.metadata?.namespace ?? '',
    [PEER_LABEL]: a.spec.requester,
  };
}

export interface VmContext {
  unit: UnitSize;
  bandwidth: { ingress: string; egress: string };
  hostnameSuffix: string;
}

export function desiredVirtualMachines(a: Assignment, ctx: VmContext): Desired<VirtualMachine>[] {
  const namespace = tenantNamespaceName(a.spec.requester);
  const ports = a.spec.vm.ports ?? [];
  const cpu = String(ctx.unit.cpu);
  const memory = String(ctx.unit.memory);
  const userData = cloudInitUserData(a, ctx.hostnameSuffix);
  return vmNames(a).map((name): Desired<VirtualMachine> => ({
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name, namespace, labels: { ...assignmentLabels(a), [VM_LABEL]: name } },
    spec: {
      runStrategy: 'Always',
      template: {
        metadata: {
          labels: { ...assignmentLabels(a), [VM_LABEL]: name },
          annotations: {
            'kubernetes.io/ingress-bandwidth': ctx.bandwidth.ingress,
            'kubernetes.io/egress-bandwidth': ctx.bandwidth.egress,
          },
        },
        spec: {
          hostname: name,
          domain: {
            cpu: { cores: wholeCores(cpu) },
            memory: { guest: memory },
            resources: { requests: { cpu, memory } },
            devices: {
              disks: [
                { name: 'rootdisk', disk: { bus: 'virtio' } },
                { name: 'scratch', disk: { bus: 'virtio' } },
                { name: 'cloudinit', disk: { bus: 'virtio' } },
              ],
              interfaces: [
                {
                  name: 'default',
                  masquerade: {},
                  ...(ports.length
                    ? {
                        ports: ports.map((p) => ({
                          name: p.name,
                          port: p.port,
                          protocol: p.protocol === 'UDP' ? 'UDP' : 'TCP',
                        })),
                      }
                    : {}),
                },
                { name: 'tenant', bridge: {} },
              ],
            },
          },
          networks: [
            { name: 'default', pod: {} },
            { name: 'tenant', multus: { networkName: TENANT_NETWORK_NAME } },
          ],
          volumes: [
            { name: 'rootdisk', containerDisk: { image: a.spec.vm.image } },
            { name: 'scratch', emptyDisk: { capacity: String(ctx.unit.storage) } },
            {
              name: 'cloudinit',
              cloudInitNoCloud: { secretRef: { name: userData.get(name)?.secretName ?? '' } },
            },
          ],
        },
      },
    },
  }));
}
