import type { NodeObject, TenantObject } from './plan.js';
import { planNode, vxlanName } from './plan.js';

function node(name: string, ip?: string, deleting = false): NodeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, ...(deleting ? { deletionTimestamp: new Date() } : {}) },
    status: { addresses: ip ? [{ type: 'InternalIP', address: ip }] : [{ type: 'Hostname', address: name }] },
  };
}

function tenant(
  name: string,
  vni: number | undefined,
  created: string,
  bridge = `pc${name.padEnd(13, '0')}`,
): TenantObject {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name, creationTimestamp: new Date(created) },
    spec: { peer: name, units: 1 },
    ...(vni !== undefined ? { status: { network: { vni, bridge, mtu: 1450 } } } : {}),
  };
}

const nodes = [node('n1', '192.168.1.11'), node('n2', '192.168.1.12'), node('n3', '192.168.1.13')];

describe('planNode', () => {
  it('one segment per Tenant with a network, flooding to every other node', () => {
    const plan = planNode(
      'n2',
      [tenant('a', 7, '2025-01-01T00:00:00Z'), tenant('b', undefined, '2025-01-02T00:00:00Z')],
      nodes,
    );
    expect(plan.localIp).toBe('192.168.1.12');
    expect(plan.problems).toEqual([]);
    expect(plan.segments).toEqual([
      {
        tenant: 'a',
        vni: 7,
        bridge: 'pca000000000000',
        vxlan: 'pcvx7',
        mtu: 1450,
        remotes: ['192.168.1.11', '192.168.1.13'],
      },
    ]);
  });

  it('VXLAN names fit IFNAMSIZ for the largest VNI', () => {
    expect(vxlanName(0xffffff).length).toBeLessThanOrEqual(15);
  });

  it('of two Tenants claiming one VNI or one bridge, the older keeps it and the younger is a NetworkConflict', () => {
    const older = tenant('a', 7, '2025-01-01T00:00:00Z');
    const sameVni = tenant('b', 7, '2025-01-02T00:00:00Z');
    const sameBridge = tenant('c', 9, '2025-01-03T00:00:00Z', older.status!.network!.bridge);
    const plan = planNode('n1', [sameBridge, sameVni, older], nodes);
    expect(plan.segments.map((s) => s.tenant)).toEqual(['a']);
    expect(plan.problems.map((p) => [p.name, p.reason])).toEqual([
      ['b', 'NetworkConflict'],
      ['c', 'NetworkConflict'],
    ]);
    expect(plan.problems[0]!.message).toContain('Tenant a');
  });

  it('a node without an InternalIP is left out of the flood lists and reported', () => {
    const plan = planNode('n1', [tenant('a', 7, '2025-01-01T00:00:00Z')], [...nodes, node('n4')]);
    expect(plan.segments[0]!.remotes).toEqual(['192.168.1.12', '192.168.1.13']);
    expect(plan.problems).toEqual([
      expect.objectContaining({ kind: 'Node', name: 'n4', reason: 'NoInternalIP' }),
    ]);
  });

  it('a node being deleted is dropped from the flood lists', () => {
    const plan = planNode(
      'n1',
      [tenant('a', 7, '2025-01-01T00:00:00Z')],
      [nodes[0]!, nodes[1]!, node('n3', '192.168.1.13', true)],
    );
    expect(plan.segments[0]!.remotes).toEqual(['192.168.1.12']);
  });

  it('without its own InternalIP (or Node) a node builds bridges but no tunnels, and says why', () => {
    const none = planNode('n9', [tenant('a', 7, '2025-01-01T00:00:00Z')], nodes);
    expect(none.localIp).toBeUndefined();
    expect(none.segments[0]!.remotes).toEqual([]);
    expect(none.problems).toEqual([expect.objectContaining({ name: 'n9', reason: 'NodeNotFound' })]);
    const noIp = planNode('n4', [], [...nodes, node('n4')]);
    expect(noIp.problems).toEqual([expect.objectContaining({ name: 'n4', reason: 'NoInternalIP' })]);
  });

  it('a Tenant being deleted gets no segment (its devices are removed)', () => {
    const going = tenant('a', 7, '2025-01-01T00:00:00Z');
    going.metadata = { ...going.metadata, deletionTimestamp: new Date() };
    expect(planNode('n1', [going], nodes).segments).toEqual([]);
  });
});
