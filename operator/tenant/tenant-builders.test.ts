import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { Tenant } from '../../generated/personalcloud.js';
import { parseCidr } from '../network-address.js';
import { desiredNamespace } from './namespace.js';
import { desiredCiliumNetworkPolicies, desiredStandardNetworkPolicy } from './network-policies.js';
import {
  VNI_MAX,
  allocateVni,
  desiredNetworkAttachmentDefinition,
  preferredVni,
  tenantBridgeName,
} from './network.js';
import { desiredLimitRange, desiredResourceQuota } from './quota.js';
import { desiredRole, desiredRoleBinding, peerUserName } from './rbac.js';
import {
  DEFAULT_SUBNET,
  TenantProblem,
  checkBandwidth,
  checkConflicts,
  checkQuota,
  checkSubnet,
  type TenantQuota,
  type TenantRates,
} from './validation.js';

function tenant(name: string, spec: Partial<Tenant['spec']> = {}, created = '2025-01-01T00:00:00Z'): Tenant {
  return {
    apiVersion: 'personalcloud.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name, uid: `uid-${name}`, generation: 1, creationTimestamp: new Date(created) },
    spec: { peer: name, units: 3, ...spec },
  };
}
const home = { homeLan: ['192.168.0.0/16'], homeDomain: 'home.example.net' };
const unit = { cpu: '2', memory: '4Gi', storage: '20Gi' };

describe('desiredNamespace', () => {
  it('is tenant-<peer>, labelled and owned by the Tenant', () => {
    const ns = desiredNamespace(tenant('bob'));
    expect(ns.metadata.name).toBe('tenant-bob');
    expect(ns.metadata.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'personal-cloud',
      'personalcloud.io/tenant': 'bob',
      'personalcloud.io/peer': 'bob',
    });
    expect(ns.metadata.ownerReferences).toEqual([
      {
        apiVersion: 'personalcloud.io/v1alpha1',
        kind: 'Tenant',
        name: 'bob',
        uid: 'uid-bob',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
  });

  it('keeps long peer names within 63 characters', () => {
    const peer = 'p'.repeat(63);
    const name = desiredNamespace(tenant('long', { peer })).metadata.name;
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^tenant-p+-[0-9a-f]{8}$/);
  });
});

describe('quota', () => {
  it.each([
    [1, { cpu: '2050m', memory: '4608Mi', storage: '20Gi' }],
    [3, { cpu: '6150m', memory: '13824Mi', storage: '60Gi' }],
    [0, { cpu: '0', memory: '0', storage: '0' }],
  ])('units %p × unit size', (units, want) => {
    expect(checkQuota(tenant('bob', { units }), unit)).toEqual(want);
  });

  it('reports a unit size that overflows the quota as QuotaOverflow', () => {
    const p = checkQuota(tenant('bob', { units: 10000 }), { cpu: '1', memory: '1Pi', storage: '1Gi' });
    expect(p).toBeInstanceOf(TenantProblem);
    expect(p).toMatchObject({ condition: 'QuotaReady', reason: 'QuotaOverflow' });
  });

  it('writes the hard limits and VM count', () => {
    const q = desiredResourceQuota(tenant('bob'), checkQuota(tenant('bob'), unit) as TenantQuota);
    expect(q.metadata.namespace).toBe('tenant-bob');
    expect(q.spec.hard).toMatchObject({
      'count/virtualmachines.kubevirt.io': '3',
      'requests.cpu': '6150m',
      'services.nodeports': '0',
    });
    expect(desiredLimitRange(tenant('bob'), unit).spec.limits[1]).toEqual({
      type: 'PersistentVolumeClaim',
      max: { storage: '20Gi' },
    });
  });
});

describe('RBAC', () => {
  it('binds the peer identity to a role that operates VMs but cannot edit them', () => {
    const role = desiredRole(tenant('bob'));
    const kubevirt = role.rules.find((r) => r.apiGroups.includes('kubevirt.io'));
    expect(kubevirt?.verbs).toEqual(['get', 'list', 'watch']);
    expect(role.rules.flatMap((r) => r.verbs)).not.toContain('delete');
    expect(desiredRoleBinding(tenant('bob')).subjects).toEqual([
      { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: peerUserName('bob') },
    ]);
  });
});

describe('network', () => {
  it.each([
    ['10.200.0.0/24', home.homeLan, undefined],
    ['192.168.4.0/24', home.homeLan, 'SubnetOverlapsHomeLAN'],
    ['10.0.0.1/24', [], 'InvalidSubnet'],
    ['not-a-cidr', [], 'InvalidSubnet'],
    // a /30 has two usable addresses: too few for the 3 units of tenant('bob')
    ['10.200.0.0/30', [], 'SubnetTooSmall'],
    ['10.200.0.0/29', [], undefined],
  ])('subnet %s', (subnet, homeLan, reason) => {
    const r = checkSubnet(tenant('bob', { network: { subnet } }), { homeLan });
    if (reason) expect(r).toMatchObject({ reason, condition: 'NetworkReady' });
    else expect(r).not.toBeInstanceOf(TenantProblem);
  });

  it('bridge names are unique per peer and fit IFNAMSIZ', () => {
    const names = ['a', 'b', 'x'.repeat(63)].map(tenantBridgeName);
    expect(new Set(names).size).toBe(3);
    for (const n of names) expect(n.length).toBeLessThanOrEqual(15);
  });

  it('renders bridge (tunnel MTU) + whereabouts + bandwidth in bits per second', () => {
    const t = tenant('bob', { bandwidth: { ingress: '10M', egress: '5M' } });
    const nad = desiredNetworkAttachmentDefinition(
      t,
      parseCidr('10.200.0.0/24')!,
      checkBandwidth(t) as TenantRates,
      1450,
    );
    const config = JSON.parse(nad.spec?.config ?? '') as { plugins: Record<string, unknown>[] };
    expect(config.plugins[0]).toMatchObject({
      type: 'bridge',
      // 'pc' + 13 hex of sha256('bridge:bob'): 15 characters, Linux's limit for an interface name.
      bridge: 'pc799003ed0bade',
      isGateway: false,
      ipMasq: false,
      mtu: 1450,
      ipam: {
        type: 'whereabouts',
        range: '10.200.0.0/24',
        network_name: 'tenant-bob',
        enable_overlapping_ranges: false,
      },
    });
    expect(config.plugins[1]).toMatchObject({
      type: 'bandwidth',
      ingressRate: 10_000_000,
      egressRate: 5_000_000,
    });
  });
});

describe('VNI allocation', () => {
  const withVni = (t: Tenant, vni: number): Tenant => ({
    ...t,
    status: { network: { vni, bridge: tenantBridgeName(t.spec.peer), mtu: 1450 } },
  });

  it('starts at a hash of the peer, in 1..2^24-1', () => {
    const v = preferredVni('bob');
    expect(v).toBeGreaterThanOrEqual(1);
    expect(v).toBeLessThanOrEqual(VNI_MAX);
    expect(allocateVni(tenant('bob'), [tenant('bob')])).toBe(v);
  });

  it('skips VNIs other Tenants hold and keeps its own', () => {
    const bob = tenant('bob');
    const taken = withVni(tenant('carol', {}, '2024-01-01T00:00:00Z'), preferredVni('bob'));
    const got = allocateVni(bob, [taken, bob]);
    expect(got).not.toBe(preferredVni('bob'));
    expect(got).toBe((preferredVni('bob') % VNI_MAX) + 1);
    const settled = withVni(bob, got);
    expect(allocateVni(settled, [taken, settled])).toBe(got);
  });

  it('of two Tenants that raced to one VNI, the older keeps it and the younger moves', () => {
    const older = withVni(tenant('alice', {}, '2024-01-01T00:00:00Z'), 42);
    const younger = withVni(tenant('bob', {}, '2025-01-01T00:00:00Z'), 42);
    expect(allocateVni(older, [older, younger])).toBe(42);
    expect(allocateVni(younger, [older, younger])).not.toBe(42);
  });

  it('a Tenant being deleted frees its VNI', () => {
    const going = withVni(tenant('carol', {}, '2024-01-01T00:00:00Z'), preferredVni('bob'));
    going.metadata = { ...going.metadata, deletionTimestamp: new Date() };
    expect(allocateVni(tenant('bob'), [going])).toBe(preferredVni('bob'));
  });
});

describe('network policies', () => {
  it('the standard NetworkPolicy allows own namespace, the Gateway, DNS and the internet but the home LAN and cluster', () => {
    const np = desiredStandardNetworkPolicy(tenant('bob'), {
      homeLan: ['192.168.0.0/16'],
      clusterCidrs: ['10.42.0.0/16', '10.43.0.0/16'],
      gateway: {
        namespace: 'personal-cloud',
        name: 'gw',
        className: 'traefik',
        httpPort: 8000,
        tlsPort: 8443,
      },
    });
    expect(np.metadata.namespace).toBe('tenant-bob');
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec.egress).toContainEqual({
      to: [
        {
          ipBlock: {
            cidr: '0.0.0.0/0',
            except: ['192.168.0.0/16', '10.42.0.0/16', '10.43.0.0/16', '169.254.0.0/16'],
          },
        },
      ],
    });
    expect(np.spec.egress).toContainEqual({ to: [{ podSelector: {} }] });
    expect(JSON.stringify(np.spec.egress)).toContain('"k8s-app":"kube-dns"');
    expect(JSON.stringify(np.spec.ingress)).toContain('["kube-system","personal-cloud"]');
  });

  it('deny the home LAN, the control plane and other tenants; allow DNS and the internet', () => {
    const [isolation, allow] = desiredCiliumNetworkPolicies(tenant('bob'), {
      homeLan: ['192.168.0.0/16', '10.1.0.0/16'],
      gateway: {
        namespace: 'personal-cloud',
        name: 'gw',
        className: 'traefik',
        httpPort: 8000,
        tlsPort: 8443,
      },
    });
    expect(isolation.spec?.egressDeny).toEqual(
      expect.arrayContaining([
        { toCIDRSet: [{ cidr: '192.168.0.0/16' }, { cidr: '10.1.0.0/16' }] },
        { toEntities: ['kube-apiserver', 'host', 'remote-node'] },
      ]),
    );
    expect(JSON.stringify(isolation.spec?.egressDeny)).toContain('"NotIn","values":["tenant-bob"]');
    expect(allow.spec?.egress).toEqual(expect.arrayContaining([{ toEntities: ['world'] }]));
    expect(JSON.stringify(allow.spec?.egress)).toContain('"port":"53"');
  });

  it("admit the Gateway's proxies: Cilium's own (ingress) and pods of kube-system (k3s's Traefik) and the Gateway's namespace", () => {
    const [, allow] = desiredCiliumNetworkPolicies(tenant('bob'), {
      homeLan: ['192.168.0.0/16'],
      gateway: {
        namespace: 'personal-cloud-gateway',
        name: 'gw',
        className: 'traefik',
        httpPort: 8000,
        tlsPort: 8443,
      },
    });
    const ns = 'k8s:io.kubernetes.pod.namespace';
    expect(allow.spec?.ingress).toEqual([
      { fromEndpoints: [{ matchLabels: { [ns]: 'tenant-bob' } }] },
      { fromEntities: ['ingress'] },
      {
        fromEndpoints: [
          { matchLabels: { [ns]: 'kube-system' } },
          { matchLabels: { [ns]: 'personal-cloud-gateway' } },
        ],
      },
    ]);
  });
});

describe('conflicts', () => {
  it('the younger of two Tenants for one peer gets DuplicatePeer; the older none', () => {
    const old = tenant('bob', {}, '2025-01-01T00:00:00Z');
    const young = tenant('bob-again', { peer: 'bob' }, '2025-02-01T00:00:00Z');
    expect(checkConflicts(old, [old, young], home)).toEqual([]);
    expect(checkConflicts(young, [old, young], home).map((p) => p.reason)).toEqual([
      'DuplicatePeer',
      'DuplicateHostname',
    ]);
  });

  it('a hostname suffix used by an older Tenant is a DuplicateHostname', () => {
    const old = tenant('alice', { hostnameSuffix: 'shared.example.net' });
    const young = tenant('carol', { hostnameSuffix: 'shared.example.net' }, '2025-03-01T00:00:00Z');
    expect(checkConflicts(young, [old, young], home)).toEqual([
      expect.objectContaining({ reason: 'DuplicateHostname', condition: 'HostnameReady' }),
    ]);
  });
});

describe('the defaults can host (issue 13, item 1)', () => {
  const root = process.cwd(); // jest runs from the repository root
  const chartHomeLan = (
    parse(readFileSync(join(root, 'charts', 'personal-cloud', 'values.yaml'), 'utf8')) as {
      homeLAN: string[];
    }
  ).homeLAN;
  const crdDefault = (/subnet:[\s\S]*?default: (\S+)/.exec(
    readFileSync(join(root, 'crds', 'tenants.yaml'), 'utf8'),
  ) ?? [])[1];

  it("the CRD's default tenant subnet is the operator's, and outside the chart's default homeLAN", () => {
    expect(crdDefault).toBe(DEFAULT_SUBNET);
    const t: Tenant = {
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Tenant',
      metadata: { name: 'x' },
      spec: { peer: 'x', units: 1 },
    };
    const r = checkSubnet(t, { homeLan: chartHomeLan });
    expect(r instanceof TenantProblem ? r.message : r.text).toBe(DEFAULT_SUBNET);
  });
});
