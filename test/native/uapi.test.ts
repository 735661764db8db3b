/**
 * The addon's uapi object: every constant of kernel/physcap_uapi.h that the
 * agent uses, with the value the header's macro has (read here from the
 * header's text, independently of the compiler), and frozen.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Uapi, uapi } from '../../agent/src/native/binding';

const header = fs.readFileSync(path.join(__dirname, '..', '..', 'kernel', 'physcap_uapi.h'), 'utf8');

/** The header's #define NAME value, evaluated: numbers, (1ULL << n), (1U << n), A | B of earlier macros. */
function macros(): Map<string, bigint | string> {
  const out = new Map<string, bigint | string>();
  // Continuation lines joined, comments dropped.
  const text = header.replace(/\\\n/g, ' ').replace(/\/\*[\s\S]*?\*\//g, '');
  for (const m of text.matchAll(/^#define\s+PHYSCAP_(\w+)\s+(.+)$/gm)) {
    const [, name, raw] = m as unknown as [string, string, string];
    const expr = raw.trim();
    if (/^".*"$/.test(expr)) {
      out.set(name, expr.slice(1, -1));
      continue;
    }
    const value = (term: string): bigint | undefined => {
      const t = term
        .trim()
        .replace(/^\((.*)\)$/, '$1')
        .trim();
      const shift = /^(\d+)U?L*L?\s*<<\s*(\d+)$/.exec(t);
      if (shift) return BigInt(shift[1]!) << BigInt(shift[2]!);
      if (/^(0x[0-9a-fA-F]+|\d+)$/.test(t)) return BigInt(t);
      const prior = out.get(t.replace(/^PHYSCAP_/, ''));
      return typeof prior === 'bigint' ? prior : undefined;
    };
    const terms = expr
      .replace(/^\((.*)\)$/, '$1')
      .split('|')
      .map(value);
    if (terms.every((t) => t !== undefined))
      out.set(
        name,
        terms.reduce((a, b) => a! | b!, 0n)!,
      );
  }
  return out;
}

test('every constant has the value of its macro in kernel/physcap_uapi.h', () => {
  const u = uapi();
  const defined = macros();
  const names = Object.keys(u) as Array<keyof Uapi>;
  expect(names.length).toBeGreaterThanOrEqual(29);
  for (const name of names) {
    const want = defined.get(name);
    expect([name, want]).not.toEqual([name, undefined]);
    const got = u[name];
    if (typeof want === 'string') expect([name, got]).toEqual([name, want]);
    else if (typeof got === 'bigint') expect([name, got]).toEqual([name, want]);
    else expect([name, got]).toEqual([name, Number(want)]);
  }
  // The ones the agent relies on, by type: feature bits test a bigint.
  expect(u.FEAT_PRETIMEOUT_GOV).toBe(1n << 8n);
  expect(u.ARM_MAX_WATCHDOG_ID).toBe(31);
  expect(u.ARM_MAX_RANGES).toBe(16);
  expect(u.EVENT_RING).toBe(64);
  expect([u.WRITE_ALLOW_MMIO, u.WRITE_NO_BOUNCE]).toEqual([1, 2]);
});

test('the object is frozen and the same on every call', () => {
  const u = uapi();
  expect(Object.isFrozen(u)).toBe(true);
  expect(uapi()).toBe(u);
  expect(() => {
    (u as { ARM_MAX_RANGES: number }).ARM_MAX_RANGES = 99;
  }).toThrow(TypeError);
  expect(u.ARM_MAX_RANGES).toBe(16);
});
