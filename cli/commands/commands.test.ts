import { jest } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { matchCommand } from './match.js';
import { simulateCommand } from './simulate.js';
import { runBadInputAware, solveCommand } from './solve.js';
import { CSV_HEADER, simulate } from '../../matchmaker/simulate/simulate.js';
import { InputError } from '../../matchmaker/solver/problem.js';
import { parse, parseAllDocuments } from 'yaml';
import { repoRoot } from '../../dev/paths.js';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { Assignment } from '../../generated/personalcloud.js';

describe('command functions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcloud-solver-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
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

  test('match prints the Assignments the matchmaker would write for examples/', () => {
    const examples = ['offer.yaml', 'request-web.yaml', 'request-devbox.yaml'].map((f) =>
      readFileSync(join(repoRoot, 'examples', f), 'utf8'),
    );
    // bob and carol offer what the demo's ring gives them: alice's example Offer as theirs
    const offerOf = (peer: string): string =>
      examples[0]!
        .replace('name: alice-spare-desktops', `name: ${peer}-spare`)
        .replace('peer: alice', `peer: ${peer}`);
    const f = file('m.yaml', [...examples, offerOf('bob'), offerOf('carol')].join('\n---\n'));
    const out = parseAllDocuments(matchCommand({ file: f })).map(
      (d) => d.toJS() as Assignment & { metadata: V1ObjectMeta },
    );
    expect(out.map((a) => [a.metadata.namespace, a.metadata.name, a.spec.units, a.metadata.labels])).toEqual([
      // alice-devbox: 2 units, at most 2 per home, never carol: both on bob
      [
        'peer-bob',
        'alice.alice-devbox',
        2,
        {
          'personalcloud.io/requester': 'alice',
          'personalcloud.io/request': 'alice-devbox',
          'personalcloud.io/host': 'bob',
        },
      ],
      // alice-website: spread, 3 units, two other homes: one each
      [
        'peer-bob',
        'alice.alice-website',
        1,
        {
          'personalcloud.io/requester': 'alice',
          'personalcloud.io/request': 'alice-website',
          'personalcloud.io/host': 'bob',
        },
      ],
      [
        'peer-carol',
        'alice.alice-website',
        1,
        {
          'personalcloud.io/requester': 'alice',
          'personalcloud.io/request': 'alice-website',
          'personalcloud.io/host': 'carol',
        },
      ],
    ]);
    // the VM is copied from the Request
    const web = parse(examples[1]!) as { spec: { vm: unknown } };
    expect(out[1]!.spec.vm).toEqual(web.spec.vm);
  });

  test('match: bad input is one line naming the document and the field, exit code 2', () => {
    const bad = file(
      'bad-units.yaml',
      readFileSync(join(repoRoot, 'examples', 'offer.yaml'), 'utf8').replace('units: 4', 'units: -1'),
    );
    const lines: string[] = [];
    const write = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const before = process.exitCode;
    try {
      runBadInputAware('match', () => matchCommand({ file: bad }));
      expect(process.exitCode).toBe(2);
      expect(lines).toEqual([
        'pcloud match: document 1 (Offer alice-spare-desktops): spec.units: Invalid value: -1: spec.units in body should be greater than or equal to 0\n',
      ]);
    } finally {
      write.mockRestore();
      process.exitCode = before;
    }
    expect(() => matchCommand({ file: file('bad.yaml', 'a: [') })).toThrow('document 1: bad YAML');
    expect(() => matchCommand({ file: '/nonexistent/m.yaml' })).toThrow('-f: cannot read');
  });

  test('simulate writes CSV and SVG, deterministic for a seed', () => {
    const [csv, svg] = simulateCommand({ figure: '4', trials: '20', seed: '3', out: join(dir, 'sim') });
    const text = readFileSync(csv!, 'utf8');
    expect(text.split('\n')[0]).toBe(CSV_HEADER);
    expect(text.split('\n')).toHaveLength(1 + 20 * 4 + 1);
    expect(readFileSync(svg!, 'utf8')).toContain('<svg');
    // The seed decides the runs: the same seed repeats them, another seed does not.
    const again = simulate(4, 20, 3);
    expect(again).toEqual(simulate(4, 20, 3));
    expect(simulate(4, 20, 4)).not.toEqual(again);
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
