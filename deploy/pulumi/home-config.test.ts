import { stringify } from 'yaml';
import { createCertificateAuthority } from '../../dev/pki.js';
import { coalesceValues, HomeConfigError, validateHomeConfig, type HomeConfig } from './home-config.js';

let caPem = '';
beforeAll(async () => {
  caPem = (await createCertificateAuthority('matchmaker')).certPem;
});

/** A join kubeconfig as `pcloud federation invite <peer>` writes it. */
function joinFile(peer: string, server = 'https://matchmaker.example.org:6443'): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: 'm', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } },
    ],
    users: [{ name: 'u', user: { token: 'abc.def' } }],
    contexts: [{ name: 'c', context: { cluster: 'm', user: 'u', namespace: `peer-${peer}` } }],
    'current-context': 'c',
  });
}

const good: HomeConfig = {
  peer: 'alice',
  domain: 'alice.example.org',
  homeLan: ['192.168.1.0/24'],
  units: 4,
  requests: {
    web: { units: 2, vm: { image: 'quay.io/containerdisks/fedora:40' } },
  },
};

function problems(config: Partial<HomeConfig> & Record<string, unknown>): string[] {
  try {
    validateHomeConfig({ ...good, ...config });
  } catch (err) {
    if (err instanceof HomeConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('validateHomeConfig', () => {
  it('plans the chart values, the Offer and the Requests of a good config', () => {
    const plan = validateHomeConfig(good);
    expect(plan.chartValues).toEqual({
      peer: 'alice',
      homeDomain: 'alice.example.org',
      homeLAN: ['192.168.1.0/24'],
      unit: { cpu: '1', memory: '2Gi', storage: '20Gi' }, // the chart's default unit
    });
    expect(plan.offer).toEqual({
      name: 'alice',
      spec: { peer: 'alice', units: 4, unit: { cpu: '1', memory: '2Gi', storage: '20Gi' } },
    });
    expect(plan.requests).toEqual([
      { name: 'web', spec: { peer: 'alice', units: 2, vm: { image: 'quay.io/containerdisks/fedora:40' } } },
    ]);
    expect(plan.waitForReady).toBe(true);
    expect(plan.chartPath).toMatch(/charts\/personal-cloud$/);
  });

  it('takes a join kubeconfig of this peer', () => {
    expect(validateHomeConfig({ ...good, joinKubeconfig: joinFile('alice') }).joinKubeconfig).toBe(
      joinFile('alice'),
    );
  });

  it.each<[string, () => string, RegExp]>([
    [
      'of another peer',
      () => joinFile('bob'),
      /^joinKubeconfig: it joins the federation as peer bob, but peer is alice$/,
    ],
    [
      'with a plain-HTTP server',
      () => joinFile('alice', 'http://m:6443'),
      /^joinKubeconfig: clusters\[m\].server must be https/,
    ],
    ['that is no kubeconfig', () => 'hello', /^joinKubeconfig: /],
  ])('refuses a join kubeconfig %s', (_what, text, message) => {
    expect(problems({ joinKubeconfig: text() })).toEqual([expect.stringMatching(message)]);
  });

  it('keeps the chart default home LAN when homeLan is not given', () => {
    const { homeLan: _omitted, ...rest } = good;
    expect(validateHomeConfig(rest).chartValues).not.toHaveProperty('homeLAN');
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a peer that is no DNS label', { peer: 'Alice' }, /^peer: peer name "Alice" must be a DNS-1123 label/],
    ['no peer', { peer: '' }, /^peer: required/],
    ['a domain that is no DNS name', { domain: 'alice_home' }, /^domain: must be a DNS subdomain/],
    ['an empty home LAN', { homeLan: [] }, /^homeLan: may not be empty/],
    [
      'a home LAN entry with host bits',
      { homeLan: ['192.168.1.0/24', '10.0.0.1/8'] },
      /^homeLan\[1\]: "10.0.0.1\/8" is not an IPv4 CIDR/,
    ],
    [
      'negative units',
      { units: -1 },
      /^units: Invalid value: -1: spec.units in body should be greater than or equal to 0/,
    ],
    ['fractional units', { units: 1.5 }, /^units: Invalid value: .*must be of type integer/],
    ['no units', { units: undefined }, /^units: required/],
    [
      'a unit size that is no quantity',
      { unit: { cpu: 'two', memory: '4Gi', storage: '20Gi' } },
      /^unit.cpu: Invalid value: "two"/,
    ],
    ['a bandwidth in the wrong unit', { bandwidth: { ingress: '20Mbit' } }, /^bandwidth.ingress: /],
    ['excluding itself', { excludePeers: ['alice'] }, /^excludePeers: .*must not name spec.peer/],
    [
      'a Request without units',
      { requests: { web: { units: 0, vm: { image: 'quay.io/containerdisks/fedora:40' } } } },
      /^requests.web.units: Invalid value: 0: spec.units in body should be greater than or equal to 1/,
    ],
    [
      'a Request with an unknown field',
      { requests: { web: { units: 1, vm: { image: 'quay.io/containerdisks/fedora:40' }, replicas: 2 } } },
      /^requests.web.replicas: field not declared in schema/,
    ],
    [
      'a Request that names a peer',
      { requests: { web: { peer: 'bob', units: 1, vm: { image: 'quay.io/containerdisks/fedora:40' } } } },
      /^requests.web.peer: not allowed/,
    ],
    [
      'a Request placing units on its own home',
      {
        requests: {
          web: {
            units: 1,
            placement: { peers: [{ peer: 'alice', max: 1 }] },
            vm: { image: 'quay.io/containerdisks/fedora:40' },
          },
        },
      },
      /^requests.web.placement.peers: .*must not name spec.peer/,
    ],
    [
      'a Request name that is no Kubernetes name',
      { requests: { Web: { units: 1, vm: { image: 'quay.io/containerdisks/fedora:40' } } } },
      /^requests.Web: metadata.name: Invalid value: "Web"/,
    ],
    [
      'requests as a list',
      { requests: [{ units: 1 }] },
      /^requests: must be a map from Request name to its spec/,
    ],
    [
      'a chart value the config owns',
      { chartValues: { peer: 'bob' } },
      /^chartValues.peer: set it with the peer config instead/,
    ],
    [
      'a chart value of the wrong type',
      { chartValues: { replicaCount: 'two' } },
      /^chartValues.replicaCount: must be integer/,
    ],
    [
      'a chart folder that is not one',
      { chartPath: '/nonexistent' },
      /^chartPath: \/nonexistent has no values.yaml/,
    ],
    ['waitForReady as text', { waitForReady: 'yes' }, /^waitForReady: must be true or false/],
  ])('refuses %s, naming the field', (_what, config, message) => {
    const found = problems(config);
    expect(found).toEqual([expect.stringMatching(message)]);
  });

  it('reports every bad field at once', () => {
    const found = problems({ peer: 'Alice', domain: '', units: -1 });
    expect(found).toEqual([
      expect.stringMatching(/^peer: /),
      expect.stringMatching(/^domain: required/),
      expect.stringMatching(/^units: /),
    ]);
    expect(() => validateHomeConfig({ ...good, peer: 'Alice' })).toThrow(
      /invalid Personal Cloud home config:\n {2}- peer: /,
    );
  });
});

describe('coalesceValues (as Helm merges values)', () => {
  it('merges maps key by key, replaces lists and scalars, deletes on null', () => {
    expect(
      coalesceValues(
        { a: { b: 1, c: 2 }, list: [1, 2], x: 1, gone: { y: 1 } },
        { a: { c: 3 }, list: [3], x: 2, gone: null },
      ),
    ).toEqual({ a: { b: 1, c: 3 }, list: [3], x: 2 });
  });
});
