/**
 * One KubeVirt VirtualMachine per assigned unit, in the requester's tenant namespace:
 * CPU, memory and a scratch disk from the unit size; the containerDisk image and
 * cloud-init (with the ssh keys) from spec.vm; the pod network (masquerade) plus the
 * tenant's private L2 network through Multus; and the bandwidth caps as
 * kubernetes.io/{ingress,egress}-bandwidth on the template, which KubeVirt carries to
 * the virt-launcher pod.
 */
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
import { renderUserData } from './cloud-init.js';

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
              cloudInitNoCloud: { userData: renderUserData(a.spec.vm, `${name}.${ctx.hostnameSuffix}`) },
            },
          ],
        },
      },
    },
  }));
}
