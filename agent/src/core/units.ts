/**
 * Readable units in profiles: sizes ("64MiB", "4K", 4096), durations
 * ("30s", "1h30m", 90) and physical addresses ("0x20000000", kept as
 * bigint: JSON numbers lose precision above 2^53).  The schema checks the
 * shape; these turn a valid value into a number and say why one is not.
 */
const SIZE_UNITS: Record<string, bigint> = {
  '': 1n,
  B: 1n,
  K: 1n << 10n,
  KB: 1n << 10n,
  KI: 1n << 10n,
  KIB: 1n << 10n,
  M: 1n << 20n,
  MB: 1n << 20n,
  MI: 1n << 20n,
  MIB: 1n << 20n,
  G: 1n << 30n,
  GB: 1n << 30n,
  GI: 1n << 30n,
  GIB: 1n << 30n,
  T: 1n << 40n,
  TB: 1n << 40n,
  TI: 1n << 40n,
  TIB: 1n << 40n,
};

const MAX_U64 = (1n << 64n) - 1n;

/** Bytes, or an Error saying what is wrong.  Units are binary: 1 KiB = 1 K = 1024. */
export function parseSize(value: unknown): bigint | Error {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return BigInt(value);
    // YAML hands an unquoted 99999999999999999999999 over as the double
    // 1e+23: say what was written, not what the double prints as.
    if (Number.isInteger(value) && value > 0) {
      const digits = BigInt(value).toString().length;
      return new Error(
        value >= 2 ** 64
          ? `a ${digits}-digit number does not fit in 64 bits`
          : `a ${digits}-digit unquoted number is not exact in YAML (beyond 2^53); quote it, or use units such as "16GiB"`,
      );
    }
    return new Error(`${value} is not a whole number of bytes`);
  }
  if (typeof value !== 'string') return new Error('a size must be a number or a string such as "64MiB"');
  const m = /^\s*([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z]*)\s*$/.exec(value);
  const unit = m ? SIZE_UNITS[(m[3] ?? '').toUpperCase()] : undefined;
  if (!m || unit === undefined) return new Error(`"${value}" is not a size (expected e.g. 4096, "64KiB", "1.5GiB")`);
  const whole = BigInt(m[1]!) * unit;
  let bytes = whole;
  if (m[2]) {
    const frac = BigInt(m[2]);
    const scale = 10n ** BigInt(m[2].length);
    if ((frac * unit) % scale !== 0n) return new Error(`"${value}" is not a whole number of bytes`);
    bytes += (frac * unit) / scale;
  }
  return bytes > MAX_U64 ? new Error(`"${value}" does not fit in 64 bits`) : bytes;
}

const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, or an Error.  A plain number means seconds. */
export function parseDuration(value: unknown): number | Error {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? withinRange(value * 1000, String(value)) : new Error(`${value} is not a duration`);
  }
  if (typeof value !== 'string') return new Error('a duration must be a number of seconds or a string such as "30s"');
  const parts = [...value.matchAll(/([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*/g)];
  const rebuilt = parts.map((p) => p[0]).join('');
  if (!parts.length || rebuilt.trim() !== value.trim()) {
    return new Error(`"${value}" is not a duration (expected e.g. 30s, 5m, 1h30m)`);
  }
  return withinRange(
    parts.reduce((ms, p) => ms + Number(p[1]) * DURATION_MS[p[2]!]!, 0),
    JSON.stringify(value),
  );
}

/** Timers stay exact to the millisecond up to 2^53 ms (285,000 years); past that, an error rather than a surprise. */
function withinRange(ms: number, text: string): number | Error {
  return Number.isFinite(ms) && ms <= Number.MAX_SAFE_INTEGER
    ? ms
    : new Error(`${text} is too long a duration (at most ${Math.floor(Number.MAX_SAFE_INTEGER / 86_400_000)}d)`);
}

/** A physical address from its hex string. */
export function parseAddress(value: unknown): bigint | Error {
  if (typeof value !== 'string' || !/^0[xX][0-9a-fA-F]{1,16}$/.test(value)) {
    return new Error(`${JSON.stringify(value)} is not a physical address (expected a hex string such as "0x20000000")`);
  }
  return BigInt(value);
}

export function formatSize(bytes: bigint): string {
  for (const [unit, scale] of [
    ['TiB', 1n << 40n],
    ['GiB', 1n << 30n],
    ['MiB', 1n << 20n],
    ['KiB', 1n << 10n],
  ] as const) {
    if (bytes >= scale && bytes % scale === 0n) return `${bytes / scale}${unit}`;
  }
  return `${bytes}`;
}
