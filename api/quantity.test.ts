import {
  bitsPerSecond,
  canonicalQuantity,
  formatBytes,
  multiplyBytes,
  multiplyCpu,
  parseMilli,
  parseWhole,
  QuantityError,
  wholeCores,
} from './quantity.js';

describe('quantities', () => {
  it.each([
    ['1', 1000n],
    ['500m', 500n],
    ['1.5', 1500n],
    ['2k', 2_000_000n],
    ['1Ki', 1_024_000n],
    ['1e3', 1_000_000n],
    ['0.1m', 1n],
  ])('parseMilli(%s) = %p', (q, v) => expect(parseMilli(q)).toBe(v));

  it.each(['', 'ten', '1Q', '-1', '1 Gi'])('rejects %p', (q) =>
    expect(() => parseMilli(q)).toThrow(QuantityError),
  );

  it.each([
    ['2Gi', 3, '6Gi'],
    ['1.5Gi', 1, '1536Mi'],
    ['1000', 2, '2000'],
  ])('multiplyBytes(%s, %p) = %s', (q, n, want) => expect(multiplyBytes(q, n)).toBe(want));

  it.each([
    ['2', 3, '6'],
    ['500m', 3, '1500m'],
  ])('multiplyCpu(%s, %p) = %s', (q, n, want) => expect(multiplyCpu(q, n)).toBe(want));

  it('reports an overflowing quota as a QuantityError', () => {
    expect(() => multiplyBytes('8Ei', 2)).toThrow(QuantityError);
    expect(() => multiplyCpu('1', 2n ** 62n)).toThrow(/overflows/);
  });

  it.each([
    ['10M', 10_000_000],
    ['1Gi', 1_073_741_824],
    ['100k', 100_000],
  ])('bitsPerSecond(%s) = %p', (q, want) => expect(bitsPerSecond(q)).toBe(want));

  it('rejects a zero rate', () => expect(() => bitsPerSecond('0')).toThrow(QuantityError));

  it('rounds cores up to whole vCPUs', () => {
    expect(wholeCores('500m')).toBe(1);
    expect(wholeCores('2')).toBe(2);
    expect(wholeCores('2500m')).toBe(3);
  });

  it('formats bytes and whole units', () => {
    expect(formatBytes(1024n)).toBe('1Ki');
    expect(parseWhole('1500m')).toBe(2n);
  });
});

describe('canonicalQuantity: the form the API server stores', () => {
  it.each([
    ['1000', '1k'],
    ['2000', '2k'],
    ['1500', '1500'],
    ['1500000', '1500k'],
    ['2000m', '2'],
    ['1500m', '1500m'],
    ['0', '0'],
    ['1024Mi', '1Gi'],
    ['3072Gi', '3Ti'],
    ['1536Mi', '1536Mi'],
    ['20Gi', '20Gi'],
    ['64Mi', '64Mi'],
    ['100m', '100m'],
    ['1000000', '1M'],
  ])('%s -> %s', (input, canonical) => {
    expect(canonicalQuantity(input)).toBe(canonical);
  });
});
