/**
 * `pcloud match`'s validation against the real API server's: generated Offers and
 * Requests, each a valid object with one or two fields changed to a value from a pool
 * of troublemakers, are created with `dryRun=All&fieldValidation=Strict` (kubectl's
 * default) and checked by validate.ts. Both must accept or both reject; every field the
 * validator names must be named by the API server; an accepted object is defaulted the
 * same way.
 */
import fc from 'fast-check';
import { ControlPlane } from '../../dev/control-plane.js';
import { ApiError, KubeClient, type KubeObject } from '../../kube/client.js';
import { manifestErrors } from './validate.js';

const NS = 'home';
const SSH_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICPJ+fju75MFGRtafTj7w4XAsJfGmPntDfBDVcGCF292 alice@alice-laptop';
type Obj = Record<string, unknown>;

const offer = (): Obj => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Offer',
  metadata: { name: 'o', namespace: NS },
  spec: {
    peer: 'alice',
    units: 4,
    unit: { cpu: 2, memory: '4Gi', storage: '20Gi' },
    bandwidth: { ingress: '20M', egress: '5M' },
    excludePeers: ['mallory', 'bob'],
  },
});
const request = (): Obj => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Request',
  metadata: { name: 'r', namespace: NS },
  spec: {
    peer: 'alice',
    units: 2,
    placement: {
      spread: false,
      maxPerPeer: 2,
      peers: [
        { peer: 'bob', max: 1 },
        { peer: 'carol', max: 0 },
      ],
    },
    vm: {
      image: 'quay.io/containerdisks/fedora:40',
      cloudInit: '#cloud-config\n',
      sshKeys: [SSH_KEY],
      ports: [
        { name: 'http', port: 80, protocol: 'HTTP' },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
    },
  },
});

const OFFER_PATHS = [
  'spec.peer',
  'spec.units',
  'spec.unit',
  'spec.unit.cpu',
  'spec.unit.memory',
  'spec.unit.storage',
  'spec.bandwidth',
  'spec.bandwidth.ingress',
  'spec.bandwidth.egress',
  'spec.excludePeers',
  'spec.excludePeers.0',
  'spec.excludePeers.1',
  'spec.colour',
  'metadata.name',
];
const REQUEST_PATHS = [
  'spec.peer',
  'spec.units',
  'spec.placement',
  'spec.placement.spread',
  'spec.placement.maxPerPeer',
  'spec.placement.peers',
  'spec.placement.peers.0',
  'spec.placement.peers.0.peer',
  'spec.placement.peers.0.max',
  'spec.placement.peers.1.peer',
  'spec.vm',
  'spec.vm.image',
  'spec.vm.sshKeys.0',
  'spec.vm.ports',
  'spec.vm.ports.0.name',
  'spec.vm.ports.0.port',
  'spec.vm.ports.0.protocol',
  'spec.vm.ports.1.port',
  'spec.vm.ports.1.protocol',
  'spec.vm.extra',
  'metadata.name',
];
const VALUES: unknown[] = [
  undefined, // delete the field
  -1,
  0,
  1,
  2,
  3,
  1.5,
  80,
  70000,
  '',
  '0',
  '-4Gi',
  '500m',
  '10Mbit',
  'alice',
  'bob',
  'Alice',
  'a'.repeat(64),
  'TCP',
  'SCTP',
  'HTTP',
  'UDP',
  true,
  false,
  null,
  [],
  ['alice'],
  ['bob', 'bob'],
  [{ peer: 'bob', max: 2 }],
  [{ peer: 'alice', max: 1 }],
  [
    { name: 'a', port: 80 },
    { name: 'a', port: 81 },
  ],
  [
    { name: 'a', port: 80 },
    { name: 'b', port: 80, protocol: 'TCP' },
  ],
  {},
  { spread: true, maxPerPeer: 3 },
  { spread: true, maxPerPeer: 1 },
  { spread: true, peers: [{ peer: 'bob', max: 2 }] },
];

function withValue(obj: Obj, path: string, value: unknown): Obj {
  const keys = path.split('.');
  const last = keys.pop()!;
  let node: unknown = obj;
  for (const key of keys) {
    if (typeof node !== 'object' || node === null) return obj;
    node = (node as Obj)[key];
  }
  if (typeof node !== 'object' || node === null) return obj;
  if (value === undefined) delete (node as Obj)[last];
  else (node as Obj)[last] = structuredClone(value);
  return obj;
}

let cp: ControlPlane;
let client: KubeClient;

beforeAll(async () => {
  cp = await ControlPlane.start({ name: 'validate', thirdPartyCRDs: false, controllerManager: false });
  client = await KubeClient.fromKubeConfig(cp.kubeConfig());
  await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
}, 180_000);

afterAll(async () => {
  client?.close();
  await cp?.stop();
});

/** The API server's verdict: the stored (defaulted) object, or its error message. */
async function dryRunCreate(obj: Obj): Promise<{ object?: KubeObject; message?: string }> {
  const plural = `${String(obj.kind).toLowerCase()}s`;
  try {
    const object = await client.request<KubeObject>(
      'POST',
      `/apis/personalcloud.io/v1alpha1/namespaces/${NS}/${plural}`,
      {
        query: { dryRun: 'All', fieldValidation: 'Strict' },
        body: obj,
      },
    );
    return { object };
  } catch (err) {
    if (err instanceof ApiError && [400, 422].includes(err.statusCode)) return { message: err.message };
    throw err;
  }
}

/**
 * The field an error names: the part before the first ': ' (`spec.vm.ports[0].port`); a
 * metadata field of the wrong type is named by its Go field (`ObjectMeta.name`) when the
 * API server fails to decode the body.
 */
const fieldOf = (e: string): RegExp => {
  const field = e.slice(0, e.indexOf(': '));
  const escaped = field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(field.startsWith('metadata.') ? `${escaped}|ObjectMeta\\.${field.slice(9)}` : escaped);
};

describe('pcloud match validates like the API server', () => {
  it.each([
    ['Offer', offer, OFFER_PATHS],
    ['Request', request, REQUEST_PATHS],
  ] as const)('%s with generated changes', async (_kind, valid, paths) => {
    let rejected = 0;
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(...paths), fc.constantFrom(...VALUES)), {
          minLength: 1,
          maxLength: 2,
        }),
        async (changes) => {
          const obj = changes.reduce((o, [path, value]) => withValue(o, path, value), valid());
          const server = await dryRunCreate(obj);
          const mine = manifestErrors(obj);
          if (server.object) {
            accepted++;
            expect(mine.errors).toEqual([]);
            expect((mine.object as unknown as Obj).spec).toEqual(server.object.spec);
          } else {
            rejected++;
            expect(mine.errors).not.toEqual([]);
            for (const e of mine.errors)
              expect([e, server.message]).toEqual([e, expect.stringMatching(fieldOf(e))]);
          }
        },
      ),
      // A fixed seed: the same 150 cases every run, so the coverage floor below cannot flake.
      { numRuns: 150, seed: 20261202 },
    );
    expect(accepted).toBeGreaterThan(5);
    expect(rejected).toBeGreaterThan(5);
  });
});
