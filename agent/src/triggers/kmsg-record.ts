/**
 * /dev/kmsg records and the patterns that make them triggers.
 *
 * A record is "PRIO,SEQ,USEC,FLAGS[,...];MESSAGE" followed by optional
 * continuation lines " KEY=value" (Documentation/ABI/testing/dev-kmsg).
 * PRIO is facility * 8 + level; MESSAGE escapes non-printables as \xNN.
 */
import { compileLinear } from '../core/linear-regexp';

export interface KmsgRecord {
  level: number;
  facility: number;
  seq: number;
  /** Microseconds since boot. */
  usec: number;
  /** The first line of a multi-line message ends without "c" in FLAGS. */
  continued: boolean;
  message: string;
  dict: Record<string, string>;
}

function unescape(s: string): string {
  return s.replace(/\\x([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

/** One record as one read(2) of /dev/kmsg returns it; undefined if malformed. */
export function parseKmsgRecord(raw: string): KmsgRecord | undefined {
  const semi = raw.indexOf(';');
  if (semi < 0) return undefined;
  const [prio, seq, usec, flags] = raw.slice(0, semi).split(',');
  if (prio === undefined || seq === undefined || usec === undefined) return undefined;
  const p = Number(prio);
  if (!Number.isInteger(p) || !/^\d+$/.test(seq) || !/^\d+$/.test(usec)) return undefined;
  const [first, ...rest] = raw
    .slice(semi + 1)
    .replace(/\n$/, '')
    .split('\n');
  const dict: Record<string, string> = {};
  for (const line of rest) {
    const m = /^ ([^=]+)=(.*)$/.exec(line);
    if (m) dict[m[1]!] = unescape(m[2]!);
  }
  return {
    level: p & 7,
    facility: p >> 3,
    seq: Number(seq),
    usec: Number(usec),
    continued: flags === 'c',
    message: unescape(first ?? ''),
    dict,
  };
}

/**
 * The presets' patterns, as the kernel prints these events (6.1-6.12).
 * The watchdog one is the noop pretimeout governor's line.
 */
export const KMSG_PRESETS: Readonly<Record<string, RegExp>> = Object.freeze({
  watchdog_pretimeout: /^watchdog\d*: pretimeout event$/,
  soft_lockup: /^watchdog: BUG: soft lockup - CPU#\d+ stuck for \d+s!/,
  hard_lockup: /Watchdog detected hard LOCKUP on cpu \d+/,
  hung_task: /^INFO: task .+:\d+ blocked for more than \d+ seconds\./,
  rcu_stall: /^rcu: INFO: rcu_\w+ (detected stalls on CPUs\/tasks|self-detected stall on CPU)/,
  oops: /^Oops: /,
  bug: /^(BUG: |kernel BUG at )/,
});

export interface KmsgMatch {
  /** The preset's name, or "pattern:N" for the profile's own patterns. */
  rule: string;
  message: string;
}

/** A profile's kmsg trigger, compiled once. */
export class KmsgMatcher {
  private readonly rules: Array<{ rule: string; re: RegExp }>;

  constructor(
    presets: readonly string[],
    patterns: readonly string[],
    private readonly maxLevel = 7,
  ) {
    this.rules = [
      ...presets.map((name) => {
        const re = KMSG_PRESETS[name];
        if (!re) throw new Error(`unknown kmsg preset "${name}"`);
        return { rule: name, re };
      }),
      // Any user can put text in the kernel log: linear time, so no line stalls the agent.
      ...patterns.map((p, i) => ({ rule: `pattern:${i}`, re: compileLinear(p) })),
    ];
  }

  match(record: KmsgRecord): KmsgMatch | undefined {
    if (record.level > this.maxLevel) return undefined;
    const hit = this.rules.find((r) => r.re.test(record.message));
    return hit && { rule: hit.rule, message: record.message };
  }
}
