import { stringify } from 'yaml';
import { InputError } from '../solver/problem.js';
import { matchManifests, parseManifests } from './match.js';
import { CEL_RULES, celRules, crdSchema, manifestErrors, validateManifest } from './validate.js';

const API_VERSION = 'personalcloud.io/v1alpha1';
const SSH_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICPJ+fju75MFGRtafTj7w4XAsJfGmPntDfBDVcGCF292 alice@alice-laptop';
type Obj = Record<string, unknown>;

// The valid objects of crds/api.int.test.ts; each case below changes one thing.
const offer = (): Obj => ({
  apiVersion: API_VERSION,
  kind: 'Offer',
  metadata: { name: 'o' },
  spec: {
    peer: 'alice',
    units: 4,
    unit: { cpu: 2, memory: '4Gi', storage: '20Gi' },
    bandwidth: { ingress: '20M', egress: '5M' },
    excludePeers: ['mallory'],
  },
});
const request = (): Obj => ({
  apiVersion: API_VERSION,
  kind: 'Request',
  metadata: { name: 'r' },
  spec: {
    peer: 'alice',
    units: 2,
    placement: { spread: false, maxPerPeer: 2, peers: [{ peer: 'bob', max: 2 }] },
    vm: {
      image: 'quay.io/containerdisks/fedora:40',
      sshKeys: [SSH_KEY],
      ports: [
        { name: 'http', port: 80, protocol: 'HTTP' },
        { name: 'https', port: 443, protocol: 'TLS' },
      ],
    },
  },
});

function withValue(obj: Obj, path: string, value: unknown): Obj {
  const copy = structuredClone(obj);
  const keys = path.split('.');
  const last = keys.pop()!;
  let node = copy;
  for (const key of keys) node = node[key] as Obj;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

// Field and wording as crds/api.int.test.ts asserts them for the real API server
// (the create form for duplicates: `field[i]: Duplicate value`).
const invalid: [string, Obj, string, RegExp][] = [
  ['negative units', withValue(offer(), 'spec.units', -1), 'spec.units', /greater than or equal to 0/],
  ['Request units 0', withValue(request(), 'spec.units', 0), 'spec.units', /greater than or equal to 1/],
  ['units not an integer', withValue(request(), 'spec.units', 1.5), 'spec.units', /must be of type integer/],
  ['units a string', withValue(offer(), 'spec.units', 'four'), 'spec.units', /must be of type integer/],
  ['peer with capitals', withValue(offer(), 'spec.peer', 'Alice'), 'spec.peer', /should match/],
  ['peer too long', withValue(request(), 'spec.peer', 'a'.repeat(64)), 'spec.peer', /Too long/],
  [
    'placement peer with capitals',
    withValue(request(), 'spec.placement.peers', [{ peer: 'Bob', max: 1 }]),
    'spec.placement.peers[0].peer',
    /should match/,
  ],
  ['unknown field', withValue(offer(), 'spec.colour', 'red'), 'spec.colour', /field not declared in schema/],
  [
    'unknown nested field',
    withValue(request(), 'spec.vm.cpuCount', 4),
    'spec.vm.cpuCount',
    /field not declared in schema/,
  ],
  [
    'spread with maxPerPeer 3',
    withValue(request(), 'spec.placement', { spread: true, maxPerPeer: 3 }),
    'spec.placement.maxPerPeer',
    /Forbidden: must be 0 or 1 when spread is true/,
  ],
  [
    'spread with a peer allowed 2 units',
    withValue(request(), 'spec.placement', { spread: true, peers: [{ peer: 'bob', max: 2 }] }),
    'spec.placement.peers',
    /Forbidden: max must be 0 or 1 when spread is true/,
  ],
  [
    'a Request naming its own peer',
    withValue(request(), 'spec.placement.peers', [{ peer: 'alice', max: 1 }]),
    'spec.placement.peers',
    /must not name spec.peer/,
  ],
  [
    'duplicate placement.peers',
    withValue(request(), 'spec.placement.peers', [
      { peer: 'bob', max: 1 },
      { peer: 'bob', max: 2 },
    ]),
    'spec.placement.peers[1]',
    /Duplicate value/,
  ],
  [
    'negative placement max',
    withValue(request(), 'spec.placement.peers', [{ peer: 'bob', max: -1 }]),
    'spec.placement.peers[0].max',
    /greater than or equal to 0/,
  ],
  ['bad quantity', withValue(offer(), 'spec.unit.cpu', 'two'), 'spec.unit.cpu', /should match/],
  [
    'quantity neither int nor string',
    withValue(offer(), 'spec.unit.cpu', true),
    'spec.unit.cpu',
    /integer or a string/,
  ],
  [
    'negative quantity',
    withValue(offer(), 'spec.unit.memory', '-4Gi'),
    'spec.unit.memory',
    /must be a positive quantity/,
  ],
  [
    'zero quantity',
    withValue(offer(), 'spec.unit.storage', 0),
    'spec.unit.storage',
    /must be a positive quantity/,
  ],
  [
    'bad bandwidth',
    withValue(offer(), 'spec.bandwidth.ingress', '10Mbit'),
    'spec.bandwidth.ingress',
    /should match/,
  ],
  ['missing unit', withValue(offer(), 'spec.unit', undefined), 'spec.unit', /Required value/],
  ['missing VM image', withValue(request(), 'spec.vm.image', undefined), 'spec.vm.image', /Required value/],
  ['bad VM image', withValue(request(), 'spec.vm.image', 'Fedora Latest'), 'spec.vm.image', /should match/],
  [
    'bad port protocol',
    withValue(request(), 'spec.vm.ports', [{ name: 'sctp', port: 9, protocol: 'SCTP' }]),
    'spec.vm.ports[0].protocol',
    /Unsupported value: "SCTP"/,
  ],
  [
    'port out of range',
    withValue(request(), 'spec.vm.ports', [{ name: 'web', port: 70000 }]),
    'spec.vm.ports[0].port',
    /less than or equal to 65535/,
  ],
  [
    'duplicate port names',
    withValue(request(), 'spec.vm.ports', [
      { name: 'web', port: 80 },
      { name: 'web', port: 8080 },
    ]),
    'spec.vm.ports[1]',
    /Duplicate value/,
  ],
  [
    'one TCP port number twice',
    withValue(request(), 'spec.vm.ports', [
      { name: 'web', port: 8080, protocol: 'HTTP' },
      { name: 'raw', port: 8080, protocol: 'TCP' },
    ]),
    'spec.vm.ports',
    /each port number may be used once per transport/,
  ],
  [
    'bad ssh key',
    withValue(request(), 'spec.vm.sshKeys', ['ssh-rsa not-a-key']),
    'spec.vm.sshKeys[0]',
    /should match/,
  ],
  [
    'excludePeers naming its own peer',
    withValue(offer(), 'spec.excludePeers', ['alice']),
    'spec.excludePeers',
    /Forbidden: must not name spec.peer/,
  ],
  [
    'duplicate excludePeers',
    withValue(offer(), 'spec.excludePeers', ['bob', 'bob']),
    'spec.excludePeers[1]',
    /Duplicate value/,
  ],
  ['no name', withValue(offer(), 'metadata', {}), 'metadata.name', /Required value/],
  ['bad name', withValue(offer(), 'metadata', { name: 'Web_1' }), 'metadata.name', /RFC 1123 subdomain/],
  [
    'bad namespace',
    withValue(offer(), 'metadata', { name: 'o', namespace: 'a.b' }),
    'metadata.namespace',
    /RFC 1123 label/,
  ],
  [
    'unknown metadata field',
    withValue(offer(), 'metadata', { name: 'o', colour: 1 }),
    'metadata.colour',
    /not declared/,
  ],
];

describe('manifests are checked against crds/ as the API server checks them', () => {
  it.each(invalid.map(([what, object, field, why]) => ({ what, object, field, why })))(
    'rejects $what, naming $field',
    ({ object, field, why }) => {
      const { errors } = manifestErrors(object);
      expect(errors.length).toBeGreaterThan(0);
      const named = errors.filter((e) => e.startsWith(`${field}: `));
      expect(named).toHaveLength(1);
      expect(named[0]).toMatch(why);
    },
  );

  it('accepts the valid objects and applies the schema defaults', () => {
    expect(manifestErrors(offer()).errors).toEqual([]);
    const r = withValue(request(), 'spec.placement', undefined);
    (r.spec as { vm: { ports: unknown } }).vm.ports = [{ name: 'web', port: 80 }];
    const o = withValue(offer(), 'spec.bandwidth', undefined);
    expect((manifestErrors(r).object as { spec: unknown }).spec).toMatchObject({
      placement: { spread: false },
      vm: { ports: [{ name: 'web', port: 80, protocol: 'HTTP' }] },
    });
    expect((manifestErrors(o).object as { spec: unknown }).spec).toMatchObject({
      bandwidth: { ingress: '10M', egress: '10M' },
    });
  });

  it('ignores status, as the API server does on create', () => {
    expect(manifestErrors({ ...offer(), status: { allocatedUnits: -1 } }).errors).toEqual([]);
  });

  it('handles every CEL rule of the Offer and Request CRDs, and names the transition rules', () => {
    const rules = [...celRules(crdSchema('Offer')), ...celRules(crdSchema('Request'))];
    expect(rules.length).toBeGreaterThan(0);
    for (const { path, rule } of rules) {
      const known = CEL_RULES[rule.rule];
      expect([path, known]).toEqual([path, expect.anything()]);
      if (rule.rule === 'self == oldSelf') expect(known!.transition).toBe(true);
      else expect(known!.check).toBeInstanceOf(Function);
    }
  });

  it('names the document, kind and name in one line', () => {
    expect(() => validateManifest('document 2', withValue(offer(), 'spec.units', -1))).toThrow(
      new InputError(
        'document 2 (Offer o): spec.units: Invalid value: -1: spec.units in body should be greater than or equal to 0',
      ),
    );
    expect(() => validateManifest('document 1', { ...offer(), kind: 'Pod' })).toThrow(
      'document 1: kind: Unsupported value: "Pod"',
    );
    expect(() => validateManifest('document 1', { ...offer(), apiVersion: 'v1' })).toThrow(
      'document 1: apiVersion: Unsupported value: "v1"',
    );
  });
});

describe('parseManifests and matchManifests', () => {
  const docs = (...objs: Obj[]): string => objs.map((o) => stringify(o)).join('---\n');
  const named = (o: Obj, name: string, peer: string, namespace?: string): Obj => ({
    ...o,
    metadata: { name, ...(namespace ? { namespace } : {}) },
    spec: { ...(o.spec as Obj), peer, excludePeers: [] },
  });

  it('refuses two manifests that would be one mirrored object', () => {
    const text = docs(named(offer(), 'o', 'bob', 'home'), named(offer(), 'o', 'bob', 'other'));
    expect(() => parseManifests(text)).toThrow('document 2: Offer bob/o is also document 1');
  });

  it('bad YAML and empty documents', () => {
    expect(() => parseManifests('key: [unclosed')).toThrow('document 1: bad YAML');
    expect(parseManifests('---\n---\n')).toEqual({ offers: [], requests: [] });
  });

  it('names Assignments <requester>.<request> in the host namespace, whatever the home namespace', () => {
    const r = request();
    const text = docs(named(offer(), 'o', 'bob', 'default'), {
      ...r,
      metadata: { name: 'web', namespace: 'home' },
    });
    const [a, ...rest] = matchManifests(parseManifests(text));
    expect(rest).toEqual([]);
    expect(a!.metadata).toEqual({
      name: 'alice.web',
      namespace: 'peer-bob',
      labels: {
        'personalcloud.io/requester': 'alice',
        'personalcloud.io/request': 'web',
        'personalcloud.io/host': 'bob',
      },
    });
    expect(a!.spec).toEqual({
      requester: 'alice',
      request: 'web',
      host: 'bob',
      units: 2,
      vm: (r.spec as { vm: unknown }).vm,
    });
  });
});
