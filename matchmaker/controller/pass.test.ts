/**
 * The matchmaker's pass and its work-queue reconciler against a small fake of the
 * client interface (the integration and e2e tests run them against real API servers),
 * and the agreement of `pcloud match` with the pass on generated federations.
 */
import fc from 'fast-check';
import pino from 'pino';
import { stringify } from 'yaml';
import type { Offer, Request } from '../../generated/personalcloud.js';
import type { KubeApi, KubeObject } from '../../kube/client.js';
import type { ResourceType } from '../../kube/kinds.js';
import { LOST_ANNOTATION } from '../../api/federation.js';
import { Matcher } from '../matching/index.js';
import { matchManifests, parseManifests } from '../manifests/match.js';
import { runPass, type AssignmentObject, type OfferObject, type RequestObject } from './pass.js';
import { Presence } from './presence.js';
import { MatchmakerReconciler, PASS_KEY } from './reconciler.js';

const T0 = Date.parse('2026-03-01T12:00:00Z');

interface Call {
  verb: 'apply' | 'status' | 'delete';
  kind: string;
  ref: string;
  obj?: KubeObject;
}

/** A client that records writes; `fail(ref)` says which writes throw. */
function fakeClient(fail: (c: Call) => boolean = () => false): { client: KubeApi; calls: Call[] } {
  const calls: Call[] = [];
  const record = (c: Call): void => {
    calls.push(c);
    if (fail(c)) throw new Error(`injected failure for ${c.ref}`);
  };
  const fake = {
    get: () => Promise.resolve(undefined),
    apply: (obj: KubeObject, _fm: string, opts: { subresource?: string } = {}) => {
      record({
        verb: opts.subresource ? 'status' : 'apply',
        kind: obj.kind ?? '',
        ref: `${obj.metadata?.namespace}/${obj.metadata?.name}`,
        obj,
      });
      return Promise.resolve(obj);
    },
    delete: (type: ResourceType, name: string, namespace?: string) => {
      record({ verb: 'delete', kind: type.kind, ref: `${namespace}/${name}` });
      return Promise.resolve(true);
    },
  };
  return { client: fake as unknown as KubeApi, calls };
}

function logCapture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  return { log, lines };
}

function presentPeers(peers: readonly string[], now: () => number, graceMs = 30_000): Presence {
  const p = new Presence(graceMs, now, pino({ level: 'silent' }));
  for (const peer of peers)
    p.observe({
      metadata: { name: 'heartbeat', namespace: `peer-${peer}` },
      spec: { renewTime: new Date(now()).toISOString() },
    });
  return p;
}

interface World {
  offers: OfferObject[];
  requests: RequestObject[];
  assignments: AssignmentObject[];
}

function passDeps(world: World, presence: Presence, client: KubeApi, log = pino({ level: 'silent' })) {
  return {
    client,
    caches: {
      offers: () => world.offers,
      requests: () => world.requests,
      assignments: () => world.assignments,
      namespaces: () => [],
    },
    presence,
    matcher: new Matcher(),
    now: () => T0,
    peerGraceMs: 30_000,
    writeConcurrency: 4,
    maxObjectBytes: 65_536,
    log,
  };
}

// --- generated federations -----------------------------------------------------------

const PEERS = ['alice', 'bob', 'carol', 'dave'] as const;
type Peer = (typeof PEERS)[number];

interface GenRequest {
  peer: Peer;
  name: string;
  units: number;
  placement: NonNullable<Request['spec']['placement']>;
  homeNamespace: string | undefined;
}
interface GenOffer {
  peer: Peer;
  name: string;
  units: number;
  excludePeers: Peer[];
  homeNamespace: string | undefined;
}

const homeNamespace = fc.constantFrom(undefined, 'default', 'home', 'federation');
const genPlacement = (peer: Peer): fc.Arbitrary<NonNullable<Request['spec']['placement']>> =>
  fc.boolean().chain((spread) =>
    fc.record(
      {
        spread: fc.constant(spread),
        // the CRD allows 0 or 1 with spread: the cases pcloud match and the controller used to differ on
        maxPerPeer: spread ? fc.constantFrom(0, 1) : fc.integer({ min: 0, max: 4 }),
        peers: fc.uniqueArray(
          fc.record({
            peer: fc.constantFrom(...PEERS.filter((p) => p !== peer)),
            max: spread ? fc.constantFrom(0, 1) : fc.integer({ min: 0, max: 4 }),
          }),
          { selector: (p) => p.peer, maxLength: 3 },
        ),
      },
      { requiredKeys: ['spread'] },
    ),
  );
const genRequest: fc.Arbitrary<GenRequest> = fc.constantFrom(...PEERS).chain((peer) =>
  fc.record({
    peer: fc.constant(peer),
    // long names exercise the hashed Assignment names
    name: fc.constantFrom('web', 'db', 'batch', `build-${'x'.repeat(60)}`),
    units: fc.integer({ min: 1, max: 5 }),
    placement: genPlacement(peer),
    homeNamespace,
  }),
);
const genOffer: fc.Arbitrary<GenOffer> = fc.constantFrom(...PEERS).chain((peer) =>
  fc.record({
    peer: fc.constant(peer),
    name: fc.constantFrom('spare', 'desktops'),
    units: fc.integer({ min: 0, max: 5 }),
    excludePeers: fc.uniqueArray(fc.constantFrom(...PEERS.filter((p) => p !== peer)), { maxLength: 2 }),
    homeNamespace,
  }),
);
const genFederation = fc.record({
  offers: fc.uniqueArray(genOffer, { selector: (o) => `${o.peer}/${o.name}`, maxLength: 6 }),
  requests: fc.uniqueArray(genRequest, { selector: (r) => `${r.peer}/${r.name}`, maxLength: 6 }),
});

const VM = {
  image: 'quay.io/containerdisks/fedora:40',
  ports: [{ name: 'web', port: 80, protocol: 'HTTP' as const }],
};
const offerObject = (o: GenOffer, namespace: string | undefined): Offer => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Offer',
  metadata: { name: o.name, ...(namespace ? { namespace } : {}) },
  spec: {
    peer: o.peer,
    units: o.units,
    unit: { cpu: 1, memory: '1Gi', storage: '10Gi' },
    bandwidth: { ingress: '10M', egress: '10M' },
    excludePeers: o.excludePeers,
  },
});
const requestObject = (r: GenRequest, namespace: string | undefined): Request => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Request',
  metadata: { name: r.name, ...(namespace ? { namespace } : {}) },
  spec: { peer: r.peer, units: r.units, placement: r.placement, vm: VM },
});

const assignmentShape = (a: {
  metadata?: { namespace?: string; name?: string; labels?: unknown };
  spec?: unknown;
}): string => JSON.stringify([a.metadata?.namespace, a.metadata?.name, a.metadata?.labels, a.spec]);

describe('pcloud match agrees with the matchmaker pass', () => {
  it('on generated federations: the same Assignments (names, namespaces, labels, spec)', async () => {
    let spreadWithMax = 0;
    await fc.assert(
      fc.asyncProperty(genFederation, async (fed) => {
        spreadWithMax += fed.requests.filter(
          (r) => r.placement.spread && r.placement.maxPerPeer !== undefined,
        ).length;
        // pcloud match: the manifests as written at home, in any namespace
        const text = [
          ...fed.offers.map((o) => offerObject(o, o.homeNamespace)),
          ...fed.requests.map((r) => requestObject(r, r.homeNamespace)),
        ]
          .map((o) => stringify(o))
          .join('---\n');
        const fromMatch = matchManifests(parseManifests(text)).map(assignmentShape);

        // the controller: the same objects mirrored into peer-<peer>, every peer present
        const world: World = {
          offers: fed.offers.map((o) => offerObject(o, `peer-${o.peer}`) as OfferObject),
          requests: fed.requests.map(
            (r) =>
              ({
                ...requestObject(r, `peer-${r.peer}`),
                spec: { ...requestObject(r, undefined).spec, placement: { spread: false, ...r.placement } },
              }) as RequestObject,
          ),
          assignments: [],
        };
        const { client, calls } = fakeClient();
        const { failures } = await runPass(
          passDeps(
            world,
            presentPeers(PEERS, () => T0),
            client,
          ),
        );
        expect(failures).toEqual([]);
        const fromPass = calls
          .filter((c) => c.verb === 'apply' && c.kind === 'Assignment')
          .map((c) => assignmentShape(c.obj!));
        expect(fromPass.sort()).toEqual([...fromMatch].sort());
      }),
      { numRuns: Number(process.env.SOLVER_PROPERTY_RUNS ?? 300) },
    );
    expect(spreadWithMax).toBeGreaterThan(0);
  });
});

// --- the pass ----------------------------------------------------------------------------

const mirrored = (o: GenOffer | GenRequest): OfferObject | RequestObject =>
  ('excludePeers' in o
    ? offerObject(o, `peer-${o.peer}`)
    : requestObject(o, `peer-${o.peer}`)) as OfferObject;

describe('the pass', () => {
  const world = (): World => ({
    offers: [
      mirrored({
        peer: 'bob',
        name: 'spare',
        units: 2,
        excludePeers: [],
        homeNamespace: undefined,
      }) as OfferObject,
      mirrored({
        peer: 'carol',
        name: 'spare',
        units: 2,
        excludePeers: [],
        homeNamespace: undefined,
      }) as OfferObject,
    ],
    requests: [
      mirrored({
        peer: 'alice',
        name: 'web',
        units: 2,
        placement: { spread: true },
        homeNamespace: undefined,
      }) as RequestObject,
    ],
    assignments: [],
  });

  it('collects every failed write, logs each with its object, and still does the others', async () => {
    const w = world();
    const { log, lines } = logCapture();
    const { client, calls } = fakeClient(
      (c) =>
        c.ref === 'peer-bob/alice.web' ||
        (c.verb === 'status' && c.kind === 'Offer' && c.ref === 'peer-carol/spare'),
    );
    const { result, failures } = await runPass(
      passDeps(
        w,
        presentPeers(['alice', 'bob', 'carol'], () => T0),
        client,
        log,
      ),
    );
    expect(failures.map((e) => e.message)).toEqual([
      'Assignment peer-bob/alice.web: injected failure for peer-bob/alice.web',
      'Offer peer-carol/spare status: injected failure for peer-carol/spare',
    ]);
    expect(result.errors).toBe(2);
    // the others went out: carol's Assignment, the Request's and bob's Offer's status
    expect(calls.map((c) => `${c.verb} ${c.kind} ${c.ref}`).sort()).toEqual([
      'apply Assignment peer-bob/alice.web',
      'apply Assignment peer-carol/alice.web',
      'status Offer peer-bob/spare',
      'status Offer peer-carol/spare',
      'status Request peer-alice/web',
    ]);
    expect(lines.filter((l) => l.msg === 'matchmaker write failed').map((l) => l.object)).toEqual([
      'Assignment peer-bob/alice.web',
      'Offer peer-carol/spare status',
    ]);
  });

  it('keeps the Assignments of an away host as Lost instead of deleting them', async () => {
    const w = world();
    w.assignments.push({
      apiVersion: 'personalcloud.io/v1alpha1',
      kind: 'Assignment',
      metadata: { name: 'alice.web', namespace: 'peer-dave', labels: {} },
      spec: { requester: 'alice', request: 'web', host: 'dave', units: 1, vm: VM },
    });
    const { client, calls } = fakeClient();
    await runPass(
      passDeps(
        w,
        presentPeers(['alice', 'bob', 'carol'], () => T0),
        client,
      ),
    );
    const onDave = calls.filter((c) => c.ref === 'peer-dave/alice.web');
    expect(onDave.map((c) => c.verb)).toEqual(['apply', 'status']);
    expect(onDave[0]!.obj?.metadata?.annotations).toEqual({ [LOST_ANNOTATION]: new Date(T0).toISOString() });
    expect(onDave[1]!.obj?.status).toEqual({ phase: 'Lost' });
    const status = calls.find((c) => c.kind === 'Request')!.obj!.status as {
      placements: { peer: string; vms: { phase: string }[] }[];
    };
    expect(status.placements.map((p) => [p.peer, p.vms[0]!.phase])).toEqual([
      ['bob', 'Pending'],
      ['carol', 'Pending'],
      ['dave', 'Lost'],
    ]);
  });
});

// --- the reconciler: debounce on the work queue ------------------------------------------

describe('the reconciler', () => {
  function reconciler(fail = false) {
    let t = T0;
    const queued: number[] = [];
    const { client } = fakeClient(() => fail);
    const w: World = {
      offers: [
        mirrored({
          peer: 'bob',
          name: 'spare',
          units: 1,
          excludePeers: [],
          homeNamespace: undefined,
        }) as OfferObject,
      ],
      requests: [],
      assignments: [],
    };
    const presence = presentPeers(['bob'], () => t);
    const r = new MatchmakerReconciler({
      ...passDeps(w, presence, client),
      now: () => t,
      debounceQuietMs: 500,
      debounceMaxMs: 5_000,
      waitForSync: () => Promise.resolve(true),
      enqueueAfter: (key, ms) => {
        expect(key).toBe(PASS_KEY);
        queued.push(ms);
      },
    });
    return { r, queued, at: (ms: number) => (t = T0 + ms), log: pino({ level: 'silent' }) };
  }

  it('queues the key after the quiet time and waits while a burst goes on, at most debounce-max', async () => {
    const { r, queued, at, log } = reconciler();
    r.changed();
    expect(queued).toEqual([500]);
    at(400);
    r.changed();
    at(500); // the first timer fires: 100 ms after the last change, not quiet yet
    expect(await r.reconcile(PASS_KEY, log)).toEqual({ requeueAfterMs: 400 });
    expect(r.lastPass()).toBeUndefined();
    for (let ms = 800; ms <= 4_800; ms += 400) {
      at(ms);
      r.changed();
    }
    at(4_900);
    expect(await r.reconcile(PASS_KEY, log)).toEqual({ requeueAfterMs: 100 }); // debounce-max at 5000
    at(5_000);
    expect(await r.reconcile(PASS_KEY, log)).toBeUndefined();
    expect(r.lastPass()).toMatchObject({ present: ['bob'], offered: 1, errors: 0 });
    // the pass queued the key for the moment bob's heartbeat lapses (renewed at 0, grace 30 s)
    expect(queued.at(-1)).toBe(30_000 - 5_000 + 50);
  });

  it('with no change pending it runs the pass at once; failed writes throw one AggregateError', async () => {
    const { r, log } = reconciler(true);
    const err = await r.reconcile(PASS_KEY, log).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AggregateError);
    expect((err as AggregateError).errors).toHaveLength(1); // bob's Offer status
    expect(r.lastPass()?.errors).toBe(1);
  });
});
