import { Resources, resourceOf, resourcePath } from './kinds.js';

describe('Resources', () => {
  test('no two entries name the same kind (a generated registry never shadows another row)', () => {
    const keys = Object.values(Resources).map((r) => `${r.apiVersion} ${r.kind}`);
    expect(keys.length - new Set(keys).size).toBe(0);
    for (const r of Object.values(Resources)) expect(resourceOf(r.apiVersion, r.kind)).toBe(r);
  });

  test('holds the generated third-party and personalcloud.io entries under their kind names', () => {
    expect(Resources.VirtualMachine).toEqual({
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      plural: 'virtualmachines',
      namespaced: true,
    });
    expect(resourcePath(Resources.NetworkAttachmentDefinition, 'tenant-bob', 'tenant-network')).toBe(
      '/apis/k8s.cni.cncf.io/v1/namespaces/tenant-bob/network-attachment-definitions/tenant-network',
    );
    expect(resourcePath(Resources.TLSRoute, 'tenant-bob')).toBe(
      '/apis/gateway.networking.k8s.io/v1alpha3/namespaces/tenant-bob/tlsroutes',
    );
    expect(resourcePath(Resources.CiliumClusterwideNetworkPolicy, 'ignored', 'x')).toBe(
      '/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies/x',
    );
    expect(resourcePath(Resources.Tenant, undefined, 'bob')).toBe(
      '/apis/personalcloud.io/v1alpha1/tenants/bob',
    );
    expect(() => resourceOf('kubevirt.io/v1alpha3', 'VirtualMachine')).toThrow(/unknown kind/);
  });
});
