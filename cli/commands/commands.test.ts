import { jest } from '@jest/globals';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { matchCommand } from './match.js';
import { simulateCommand } from './simulate.js';
import { runBadInputAware, solveCommand } from './solve.js';
import { CSV_HEADER, simulate } from '../../matchmaker/simulate/simulate.js';
import { InputError } from '../../matchmaker/solver/problem.js';
import { match, matchProblem, parseManifests } from '../../matchmaker/manifests/match.js';

const offer = (
  name: string,
  peer: string,
  units: number,
  extra = '',
): string => `apiVersion: personalcloud.io/v1alpha1
kind: Offer
metadata: {name: ${name}, namespace: ${peer}}
spec: {peer: ${peer}, units: ${units}, unit: {cpu: "1", memory: 2Gi, storage: 10Gi}${extra}}
`;
const request = (
  name: string,
  peer: string,
  units: number,
  placement = '',
): string => `apiVersion: personalcloud.io/v1alpha1
kind: Request
metadata: {name: ${name}, namespace: ${peer}}
spec:
  peer: ${peer}
  units: ${units}
${placement ? `  placement: ${placement}\n` : ''}  vm: {image: img, sshKeys: [k1], ports: [{name: http, port: 80, protocol: HTTP}]}
`;
const docs = (...d: string[]): string => d.join('---\n');

describe('manifests -> assignments', () => {
  test('self-exclusion, excludePeers, spread and the vm copied', () => {
    const text = docs(
      offer('a', 'alice', 2, ', excludePeers: [carol]'),
      offer('b', 'bob', 3),
      request('web', 'carol', 2, '{spread: true}'),
      request('db', 'alice', 2),
    );
    const { offers, requests } = parseManifests(text);
    const out = match(offers, requests);
    const pairs = out.map((a) => [a.spec.request, a.spec.host, a.spec.units]);
    expect(pairs).toEqual([
      ['db', 'bob', 2],
      ['web', 'bob', 1],
    ]);
    expect(out[1]!.spec.vm).toEqual({
      image: 'img',
      sshKeys: ['k1'],
      ports: [{ name: 'http', port: 80, protocol: 'HTTP' }],
    });
    expect(out[1]!.metadata.namespace).toBe('carol');
  });

  test('one peer, two requests with different placement', () => {
    const text = docs(
      offer('a', 'alice', 4),
      offer('b', 'bob', 4),
      offer('c', 'carol', 4),
      request('spread', 'dave', 3, '{spread: true}'),
      request('packed', 'dave', 4, '{peers: [{peer: alice, max: 0}]}'),
      request('capped', 'erin', 4, '{maxPerPeer: 2}'),
    );
    const { offers, requests } = parseManifests(text);
    const out = match(offers, requests);
    const got = new Map<string, number>();
    for (const a of out) got.set(a.spec.request, (got.get(a.spec.request) ?? 0) + a.spec.units);
    expect([...got.values()].reduce((s, x) => s + x, 0)).toBe(11);
    for (const a of out) {
      if (a.spec.request === 'spread') expect(a.spec.units).toBe(1);
      if (a.spec.request === 'packed') expect(a.spec.host).not.toBe('alice');
      if (a.spec.request === 'capped') expect(a.spec.units).toBeLessThanOrEqual(2);
    }
    const { problem } = matchProblem(offers, requests);
    expect(problem.n).toBe(6);
  });

  test.each([
    ['kind: Offer\nmetadata: {name: x}', 'document 1.apiVersion'],
    [
      'apiVersion: personalcloud.io/v1alpha1\nkind: Pod\nmetadata: {name: x}',
      'document 1.kind: expected Offer or Request',
    ],
    [
      'apiVersion: personalcloud.io/v1alpha1\nkind: Offer\nmetadata: {name: x}\nspec: {peer: Alice, units: 1, unit: {cpu: 1, memory: 1, storage: 1}}',
      'spec.peer: "Alice" is not a DNS-1123 label',
    ],
    [
      'apiVersion: personalcloud.io/v1alpha1\nkind: Offer\nmetadata: {name: x}\nspec: {peer: a, units: -1, unit: {cpu: 1, memory: 1, storage: 1}}',
      'document 1.spec.units: expected an integer >= 0, got -1',
    ],
    [
      'apiVersion: personalcloud.io/v1alpha1\nkind: Offer\nmetadata: {name: x}\nspec: {peer: a, units: 1}',
      'document 1.spec.unit: expected an object',
    ],
    [
      'apiVersion: personalcloud.io/v1alpha1\nkind: Request\nmetadata: {name: x}\nspec: {peer: a, units: 1}',
      'document 1.spec.vm: expected an object',
    ],
    [
      'apiVersion: personalcloud.io/v1alpha1\nkind: Request\nmetadata: {name: x}\nspec: {peer: a, units: 1.5, vm: {image: i}}',
      'spec.units: expected an integer >= 1, got 1.5',
    ],
    ['key: [unclosed', 'document 1: bad YAML'],
  ])('bad manifest %#', (text, message) => {
    expect(() => parseManifests(text)).toThrow(message);
  });
});

describe('command functions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcloud-solver-'));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  test('solve prints the answer JSON', () => {
    const f = file('i.json', '{"peers":3,"offers":[1,1,1],"requests":[1,1,1],"defaultBound":1,"bounds":[]}');
    const out = JSON.parse(solveCommand({ instance: f, algorithm: 'maxflow' }).toString()) as {
      total: number;
    };
    expect(out.total).toBe(3);
    const prev = file('p.json', solveCommand({ instance: f, algorithm: 'maxflow' }).toString());
    const again = solveCommand({ instance: f, algorithm: 'maxflow', previous: prev }).toString();
    expect(again).toBe(readFileSync(prev, 'utf8'));
  });

  test.each([
    [{ instance: '/nonexistent/x.json', algorithm: 'maxflow' }, '--instance: cannot read'],
    [{ instance: 'BAD', algorithm: 'maxflow' }, 'instance: not JSON'],
    [{ instance: 'GOOD', algorithm: 'fastest' }, '--algorithm: unknown "fastest"'],
    [{ instance: 'GOOD', algorithm: 'maxflow', previous: 'BAD' }, 'previous: not JSON'],
  ])('solve rejects %#', (opts, message) => {
    const o = { ...opts } as { instance: string; algorithm: string; previous?: string };
    const sub = (v: string): string =>
      v === 'BAD'
        ? file('bad.json', '{nope')
        : v === 'GOOD'
          ? file('g.json', '{"peers":0,"offers":[],"requests":[],"defaultBound":null,"bounds":[]}')
          : v;
    o.instance = sub(o.instance);
    if (o.previous) o.previous = sub(o.previous);
    expect(() => solveCommand(o)).toThrow(InputError);
    expect(() => solveCommand(o)).toThrow(message);
  });

  test('bad input becomes one line on stderr and exit code 2', () => {
    const lines: string[] = [];
    const write = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const before = process.exitCode;
    try {
      runBadInputAware('solve', () => {
        throw new InputError('bounds[0]: i == j (1)\nsecond line');
      });
      expect(process.exitCode).toBe(2);
      expect(lines).toEqual(['pcloud solve: bounds[0]: i == j (1) second line\n']);
    } finally {
      write.mockRestore();
      process.exitCode = before;
    }
    expect(() =>
      runBadInputAware('solve', () => {
        throw new Error('not the caller');
      }),
    ).toThrow('not the caller');
  });

  test('match reads YAML and rejects bad input', () => {
    const f = file('m.yaml', docs(offer('a', 'alice', 1), request('r', 'bob', 1)));
    expect(matchCommand({ file: f })).toContain('kind: Assignment');
    expect(() => matchCommand({ file: file('bad.yaml', 'a: [') })).toThrow('bad YAML');
  });

  test('simulate writes CSV and SVG, deterministic for a seed', () => {
    const [csv, svg] = simulateCommand({ figure: '4', trials: '20', seed: '3', out: join(dir, 'sim') });
    const text = readFileSync(csv!, 'utf8');
    expect(text.split('\n')[0]).toBe(CSV_HEADER);
    expect(text.split('\n')).toHaveLength(1 + 20 * 4 + 1);
    expect(readFileSync(svg!, 'utf8')).toContain('<svg');
    expect(simulate(4, 20, 3)).toEqual(simulate(4, 20, 3));
    expect(() => simulateCommand({ figure: '6', seed: '1', out: dir })).toThrow('--figure: expected 4 or 5');
    expect(() => simulateCommand({ figure: '4', trials: '0', seed: '1', out: dir })).toThrow('--trials');
  });

  test('simulated max flow never does worse than greedy', () => {
    for (const r of simulate(5, 10, 1)) {
      if (r.algorithm !== 'GR') continue;
      const mf = simulate(5, 10, 1).find(
        (x) => x.users === r.users && x.mode === r.mode && x.algorithm === 'MF',
      )!;
      expect(mf.percentMet).toBeGreaterThanOrEqual(r.percentMet);
    }
  });
});
