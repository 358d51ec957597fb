/**
 * Kubernetes resource quantities (`500m`, `2Gi`, `10M`) as exact integers, so that
 * "units × unit size" is computed without floating-point drift and an overflow is a
 * typed error rather than a silently wrong quota.
 */
const SUFFIX: Record<string, bigint> = {
  '': 1n,
  k: 10n ** 3n,
  M: 10n ** 6n,
  G: 10n ** 9n,
  T: 10n ** 12n,
  P: 10n ** 15n,
  E: 10n ** 18n,
  Ki: 2n ** 10n,
  Mi: 2n ** 20n,
  Gi: 2n ** 30n,
  Ti: 2n ** 40n,
  Pi: 2n ** 50n,
  Ei: 2n ** 60n,
};

/** The largest quantity Kubernetes stores without losing precision (int64). */
export const MAX_QUANTITY = 2n ** 63n - 1n;

const QUANTITY = /^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$/;

export class QuantityError extends Error {
  constructor(
    readonly input: string,
    why: string,
  ) {
    super(`${JSON.stringify(input)} ${why}`);
  }
}

/** A quantity in thousandths of its base unit (millicores, millibytes), rounded up. */
export function parseMilli(input: string | number): bigint {
  const s = String(input).trim();
  const m = QUANTITY.exec(s);
  if (!m) throw new QuantityError(s, 'is not a Kubernetes quantity');
  const [, mantissa = '0', suffix = ''] = m;
  const [whole = '0', frac = ''] = mantissa.split('.');
  const digits = BigInt((whole || '0') + frac);
  let num = digits * 1000n; // value * 1000 * 10^frac.length
  let den = 10n ** BigInt(frac.length);
  if (suffix === 'm') den *= 1000n;
  else if (/^[eE][+-]?[0-9]/.test(suffix)) {
    const exp = Number(suffix.slice(1));
    if (exp >= 0) num *= 10n ** BigInt(exp);
    else den *= 10n ** BigInt(-exp);
  } else num *= SUFFIX[suffix] ?? 1n;
  return (num + den - 1n) / den;
}

/** A quantity in whole base units (cores, bytes, bits/s), rounded up. */
export function parseWhole(input: string | number): bigint {
  return (parseMilli(input) + 999n) / 1000n;
}

/** CPU from millicores: `2`, `1500m`. */
export function formatCpu(milli: bigint): string {
  return milli % 1000n === 0n ? String(milli / 1000n) : `${milli}m`;
}

/** Bytes with the largest binary suffix that divides them: `6Gi`, `1536Mi`, `1000`. */
export function formatBytes(bytes: bigint): string {
  for (const s of ['Ei', 'Pi', 'Ti', 'Gi', 'Mi', 'Ki'] as const) {
    const f = SUFFIX[s]!;
    if (bytes >= f && bytes % f === 0n) return `${bytes / f}${s}`;
  }
  return String(bytes);
}

/** `n` × a CPU quantity, or a QuantityError when it exceeds what Kubernetes can store. */
export function multiplyCpu(q: string, n: number | bigint): string {
  const v = parseMilli(q) * BigInt(n);
  if (v > MAX_QUANTITY) throw new QuantityError(q, `× ${n} overflows a Kubernetes quantity`);
  return formatCpu(v);
}

/** `n` × a byte quantity, or a QuantityError when it exceeds what Kubernetes can store. */
export function multiplyBytes(q: string, n: number | bigint): string {
  const v = parseWhole(q) * BigInt(n);
  if (v > MAX_QUANTITY) throw new QuantityError(q, `× ${n} overflows a Kubernetes quantity`);
  return formatBytes(v);
}

/** A rate such as `10M` (bits per second, the kubernetes.io/*-bandwidth convention). */
export function bitsPerSecond(rate: string): number {
  const v = parseWhole(rate);
  if (v <= 0n) throw new QuantityError(rate, 'must be a positive rate');
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new QuantityError(rate, 'is too large a rate');
  return Number(v);
}

/** Whole vCPUs for a VM's domain.cpu.cores (at least 1). */
export function wholeCores(cpu: string): number {
  const milli = parseMilli(cpu);
  return Math.max(1, Number((milli + 999n) / 1000n));
}

const DECIMAL_SUFFIXES = ['E', 'P', 'T', 'G', 'M', 'k', ''] as const;

/**
 * The form the API server stores a quantity in (its canonical form), so a desired object
 * compares equal to what comes back and a steady state makes no writes: `2000` comes
 * back as `2k`, `2000m` as `2`, `1024Mi` as `1Gi`. Binary suffixes stay binary when the
 * value is a whole multiple of 1024 (the largest dividing suffix), otherwise the value
 * is written in decimal SI with the largest suffix that keeps it whole.
 */
export function canonicalQuantity(input: string | number): string {
  const s = String(input).trim();
  const m = QUANTITY.exec(s);
  if (!m) throw new QuantityError(s, 'is not a Kubernetes quantity');
  const milli = parseMilli(s);
  if (/i$/.test(m[2] ?? '') && milli % 1000n === 0n) {
    const bytes = milli / 1000n;
    if (bytes >= 1024n && bytes % 1024n === 0n) return formatBytes(bytes);
  }
  if (milli === 0n) return '0';
  for (const suffix of DECIMAL_SUFFIXES) {
    const f = SUFFIX[suffix]! * 1000n;
    if (milli % f === 0n) return `${milli / f}${suffix}`;
  }
  return `${milli}m`;
}
