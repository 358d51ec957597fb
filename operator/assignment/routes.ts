/**
 * Reaching hosted VMs by hostname (the paper's one-stage demultiplexing): a Service
 * per VM, an HTTPRoute per HTTP port and a TLSRoute (SNI passthrough) per TLS port,
 * hostnames <vm>.<peer>.<home domain>, all attached to the home's one Gateway.
 */
import type { V1Service } from '@kubernetes/client-node';
import type { Gateway, HTTPRoute, Listener, ParentReference, TLSRoute } from '../../generated/gateway.js';
import type { Assignment } from '../../generated/personalcloud.js';
import type { Desired } from '../../kube/client.js';
import type { Home } from '../home.js';
import { PEER_LABEL, VM_LABEL, dnsLabel, managedLabels, tenantNamespaceName } from '../../api/labels.js';
import { assignmentLabels, vmNames } from './virtual-machines.js';

/** Service names are DNS-1035 labels (they start with a letter). */
/** The HTTPRoute or TLSRoute of one port of one VM. Admission refuses clashes (validation.ts). */
export function routeName(vm: string, port: string): string {
  return dnsLabel(`${vm}-${port}`);
}

export function serviceName(vm: string): string {
  return /^[a-z]/.test(vm) ? vm : dnsLabel(`vm-${vm}`);
}

export function desiredServices(a: Assignment): Desired<V1Service>[] {
  const ports = a.spec.vm.ports ?? [];
  if (ports.length === 0) return [];
  const namespace = tenantNamespaceName(a.spec.requester);
  return vmNames(a).map((vm): Desired<V1Service> => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: serviceName(vm), namespace, labels: { ...assignmentLabels(a), [VM_LABEL]: vm } },
    spec: {
      type: 'ClusterIP',
      selector: { 'vm.kubevirt.io/name': vm },
      ports: ports.map((p) => ({
        name: p.name,
        port: p.port,
        targetPort: p.port,
        protocol: p.protocol === 'UDP' ? 'UDP' : 'TCP',
      })),
    },
  }));
}

function gatewayRef(home: Pick<Home, 'gateway'>, sectionName: 'http' | 'tls'): ParentReference {
  return {
    group: 'gateway.networking.k8s.io',
    kind: 'Gateway',
    namespace: home.gateway.namespace,
    name: home.gateway.name,
    sectionName,
  };
}

export function desiredHTTPRoutes(
  a: Assignment,
  hostnameSuffix: string,
  home: Pick<Home, 'gateway'>,
): Desired<HTTPRoute>[] {
  const namespace = tenantNamespaceName(a.spec.requester);
  const http = (a.spec.vm.ports ?? []).filter((p) => (p.protocol ?? 'HTTP') === 'HTTP');
  return vmNames(a).flatMap((vm) =>
    http.map((p): Desired<HTTPRoute> => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: {
        name: routeName(vm, p.name),
        namespace,
        labels: { ...assignmentLabels(a), [VM_LABEL]: vm },
      },
      spec: {
        parentRefs: [gatewayRef(home, 'http')],
        hostnames: [`${vm}.${hostnameSuffix}`],
        rules: [{ backendRefs: [{ group: '', kind: 'Service', name: serviceName(vm), port: p.port }] }],
      },
    })),
  );
}

export function desiredTLSRoutes(
  a: Assignment,
  hostnameSuffix: string,
  home: Pick<Home, 'gateway'>,
): Desired<TLSRoute>[] {
  const namespace = tenantNamespaceName(a.spec.requester);
  const tls = (a.spec.vm.ports ?? []).filter((p) => p.protocol === 'TLS');
  return vmNames(a).flatMap((vm) =>
    tls.map((p): Desired<TLSRoute> => ({
      apiVersion: 'gateway.networking.k8s.io/v1alpha3',
      kind: 'TLSRoute',
      metadata: {
        name: routeName(vm, p.name),
        namespace,
        labels: { ...assignmentLabels(a), [VM_LABEL]: vm },
      },
      spec: {
        parentRefs: [gatewayRef(home, 'tls')],
        hostnames: [`${vm}.${hostnameSuffix}`],
        rules: [{ backendRefs: [{ group: '', kind: 'Service', name: serviceName(vm), port: p.port }] }],
      },
    })),
  );
}

/**
 * The home's one Gateway: an HTTP listener and a TLS passthrough listener on the home's
 * ports, accepting routes only from tenant namespaces.
 */
export function desiredGateway(home: Pick<Home, 'gateway'>): Desired<Gateway> {
  const allowedFrom: Listener['allowedRoutes'] = {
    namespaces: {
      from: 'Selector',
      selector: { matchExpressions: [{ key: PEER_LABEL, operator: 'Exists' }] },
    },
  };
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: home.gateway.name, namespace: home.gateway.namespace, labels: managedLabels() },
    spec: {
      gatewayClassName: home.gateway.className,
      listeners: [
        {
          name: 'http',
          protocol: 'HTTP',
          port: home.gateway.httpPort,
          allowedRoutes: { ...allowedFrom, kinds: [{ kind: 'HTTPRoute' }] },
        },
        {
          name: 'tls',
          protocol: 'TLS',
          port: home.gateway.tlsPort,
          tls: { mode: 'Passthrough' },
          allowedRoutes: { ...allowedFrom, kinds: [{ kind: 'TLSRoute' }] },
        },
      ],
    },
  };
}
