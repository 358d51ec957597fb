import { grantElements, grantTable } from './grants.js';
import { parsePortRange, planGrants, type GrantObject, type VmiObject } from './grant-plan.js';
import type { TenantObject } from './plan.js';

const now = new Date('2026-12-02T10:00:00Z');
const range = { first: 40000, last: 40001 };
const tenant = (peer: string): TenantObject => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Tenant',
  metadata: { name: peer },
  spec: { peer, units: 2 },
  status: { namespace: `tenant-${peer}` },
});
const vmi = (
  ns: string,
  name: string,
  ip: string | undefined,
  ports = [{ port: 22 }, { port: 53, protocol: 'UDP' }],
): VmiObject =>
  ({
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: { name, namespace: ns },
    spec: { domain: { devices: { interfaces: [{ name: 'default', masquerade: {}, ports }] } } },
    status: ip ? { interfaces: [{ name: 'default', ipAddress: ip }] } : {},
  }) as unknown as VmiObject;
const grant = (
  name: string,
  spec: Partial<GrantObject['spec']> = {},
  extra: { ns?: string; created?: string; publicPort?: number } = {},
): GrantObject =>
  ({
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'PortalGrant',
    metadata: {
      name,
      namespace: extra.ns ?? 'tenant-bob',
      creationTimestamp: extra.created ?? '2026-12-02T09:59:00Z',
    },
    spec: {
      vm: 'web-0',
      protocol: 'TCP',
      port: 22,
      clientAddress: '203.0.113.7',
      expiresAt: '2026-12-02T10:10:00Z',
      ...spec,
    },
    ...(extra.publicPort ? { status: { publicPort: extra.publicPort } } : {}),
  }) as unknown as GrantObject;

describe('planGrants: what the chief forwards', () => {
  const tenants = [tenant('bob'), tenant('carol')];
  const vmis = [vmi('tenant-bob', 'web-0', '10.42.0.5'), vmi('tenant-carol', 'db-0', '10.42.0.9')];

  it('forwards a declared TCP and UDP port for the remaining time, to the pod-network address', () => {
    const p = planGrants(
      [grant('a'), grant('b', { protocol: 'UDP', port: 53 })],
      tenants,
      vmis,
      range,
      now,
      3600,
    );
    expect(p.rules).toEqual([
      {
        key: 'tenant-bob/a',
        protocol: 'tcp',
        client: '203.0.113.7',
        publicPort: 40000,
        target: '10.42.0.5',
        targetPort: 22,
        timeoutSeconds: 600,
      },
      {
        key: 'tenant-bob/b',
        protocol: 'udp',
        client: '203.0.113.7',
        publicPort: 40000,
        target: '10.42.0.5',
        targetPort: 53,
        timeoutSeconds: 600,
      },
    ]);
    expect(p.nextExpiryMs).toBe(600_000);
  });

  it('caps the time at the maximum, and an expired grant opens nothing', () => {
    const p = planGrants(
      [
        grant('a', { expiresAt: '2026-12-03T10:00:00Z' }),
        grant('old', { expiresAt: '2026-12-02T09:59:59Z' }),
      ],
      tenants,
      vmis,
      range,
      now,
      900,
    );
    expect(p.rules.map((r) => [r.key, r.timeoutSeconds])).toEqual([['tenant-bob/a', 900]]);
    expect(p.verdicts.find((v) => v.key === 'tenant-bob/old')?.phase).toBe('Expired');
  });

  it('refuses an undeclared port, a VM of another tenant and a namespace that is no tenant, naming the field', () => {
    const p = planGrants(
      [
        grant('undeclared', { port: 23 }),
        grant('wrongproto', { protocol: 'UDP', port: 22 }),
        grant('other', { vm: 'db-0' }),
        grant('stray', {}, { ns: 'default' }),
      ],
      tenants,
      [...vmis, vmi('default', 'web-0', '10.42.0.7')],
      range,
      now,
      3600,
    );
    expect(p.rules).toEqual([]);
    const by = Object.fromEntries(p.verdicts.map((v) => [v.key, v]));
    expect(by['tenant-bob/undeclared']).toMatchObject({ phase: 'Refused', reason: 'PortNotDeclared' });
    expect((by['tenant-bob/undeclared'] as { message: string }).message).toMatch(
      /^spec\.port: .*TCP\/22, UDP\/53/,
    );
    expect(by['tenant-bob/wrongproto']).toMatchObject({ phase: 'Refused', reason: 'PortNotDeclared' });
    // db-0 runs in tenant-carol: a grant in tenant-bob cannot reach it.
    expect(by['tenant-bob/other']).toMatchObject({ phase: 'Pending', reason: 'VmNotRunning' });
    expect(by['default/stray']).toMatchObject({ phase: 'Refused', reason: 'NotATenant' });
  });

  it('keeps a public port across passes, and refuses when the range is full', () => {
    const p = planGrants(
      [
        grant('a', {}, { created: '2026-12-02T09:00:00Z', publicPort: 40001 }),
        grant('b', { clientAddress: '203.0.113.8' }, { created: '2026-12-02T09:01:00Z' }),
        grant('c', { clientAddress: '203.0.113.9' }, { created: '2026-12-02T09:02:00Z' }),
      ],
      tenants,
      vmis,
      range,
      now,
      3600,
    );
    expect(p.rules.map((r) => [r.key, r.publicPort])).toEqual([
      ['tenant-bob/a', 40001],
      ['tenant-bob/b', 40000],
    ]);
    expect(p.verdicts.find((v) => v.key === 'tenant-bob/c')).toMatchObject({
      phase: 'Refused',
      reason: 'NoFreePort',
    });
  });

  it('waits for the VM address', () => {
    const p = planGrants([grant('a')], tenants, [vmi('tenant-bob', 'web-0', undefined)], range, now, 3600);
    expect(p.verdicts[0]).toMatchObject({ phase: 'Pending', reason: 'NoAddress' });
  });
});

describe('nftables script', () => {
  it('parses port ranges', () => {
    expect(parsePortRange('40000-40999')).toEqual({ first: 40000, last: 40999 });
    expect(parsePortRange('5-4')).toBeUndefined();
    expect(parsePortRange('0-10')).toBeUndefined();
    expect(parsePortRange('x')).toBeUndefined();
  });

  it('matches only the client address and the public port, and elements carry their timeout', () => {
    expect(grantTable('192.168.1.10', range)).toContain(
      'ip daddr 192.168.1.10 tcp dport 40000-40001 dnat ip to ip saddr . tcp dport map @tcp_grants',
    );
    const lines = grantElements([
      {
        key: 'k',
        protocol: 'udp',
        client: '203.0.113.7',
        publicPort: 40000,
        target: '10.42.0.5',
        targetPort: 53,
        timeoutSeconds: 30,
      },
    ]);
    expect(lines).toContain(
      'add element ip personalcloud_portal udp_grants { 203.0.113.7 . 40000 timeout 30s : 10.42.0.5 . 53 }',
    );
    expect(lines).toContain(
      'add element ip personalcloud_portal udp_live { 203.0.113.7 . 40000 timeout 30s }',
    );
    expect(lines).toContain('flush map ip personalcloud_portal tcp_grants');
  });
});
