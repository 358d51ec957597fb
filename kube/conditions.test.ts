import { kubeTime, nextObservedGeneration, readySummary, setCondition, setConditions } from './conditions.js';

const t0 = new Date('2025-01-01T00:00:00.123Z');
const t1 = new Date('2025-01-01T01:00:00Z');

describe('setCondition', () => {
  it('appends a new type with the current time at second precision', () => {
    const cs = setCondition(
      undefined,
      { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'ok' },
      t0,
    );
    expect(cs).toEqual([
      {
        type: 'Ready',
        status: 'True',
        reason: 'Reconciled',
        message: 'ok',
        lastTransitionTime: '2025-01-01T00:00:00Z',
      },
    ]);
  });

  it.each([
    ['same status keeps the transition time', 'True', '2025-01-01T00:00:00Z'],
    ['new status moves it', 'False', '2025-01-01T01:00:00Z'],
  ] as const)('%s', (_name, status, expected) => {
    const before = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'A', message: 'a' }, t0);
    const after = setCondition(
      before,
      { type: 'Ready', status, reason: 'B', message: 'b', observedGeneration: 3 },
      t1,
    );
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({
      status,
      reason: 'B',
      message: 'b',
      observedGeneration: 3,
      lastTransitionTime: expected,
    });
  });

  it('keeps the order of existing types and does not mutate its input', () => {
    const before = setConditions(
      [],
      [
        { type: 'A', status: 'True', reason: 'R', message: '' },
        { type: 'B', status: 'True', reason: 'R', message: '' },
      ],
      t0,
    );
    const copy = structuredClone(before);
    const after = setCondition(before, { type: 'A', status: 'False', reason: 'X', message: 'x' }, t1);
    expect(after.map((c) => c.type)).toEqual(['A', 'B']);
    expect(before).toEqual(copy);
  });
});

describe('readySummary', () => {
  it('is True when every child is', () => {
    expect(readySummary([{ type: 'A', status: 'True', reason: 'R', message: '' }], 4)).toMatchObject({
      status: 'True',
      observedGeneration: 4,
    });
  });
  it('takes the first failing reason and every failing message', () => {
    expect(
      readySummary([
        { type: 'A', status: 'True', reason: 'R', message: '' },
        { type: 'B', status: 'False', reason: 'InvalidSubnet', message: 'bad' },
        { type: 'C', status: 'False', reason: 'ApplyFailed', message: 'boom' },
      ]),
    ).toMatchObject({ status: 'False', reason: 'InvalidSubnet', message: 'B: bad; C: boom' });
  });
});

describe('nextObservedGeneration', () => {
  it.each([
    [1, 2, true, 2],
    [1, 2, false, 1],
    [undefined, 5, false, undefined],
  ])('previous %p generation %p success %p -> %p', (prev, gen, ok, want) => {
    expect(nextObservedGeneration(prev, gen, ok)).toBe(want);
  });
});

it('kubeTime drops milliseconds', () => {
  expect(kubeTime(t0)).toBe('2025-01-01T00:00:00Z');
});
