/**
 * /proc/iomem, parsed correctly: its end addresses are inclusive (a tool
 * that reads them as exclusive loses the last byte of every range).
 */
import * as fs from 'node:fs';

export interface IomemRange {
  name: string;
  start: bigint;
  /** Inclusive. */
  end: bigint;
  depth: number;
}

export function parseIomem(text: string): IomemRange[] {
  const out: IomemRange[] = [];
  for (const line of text.split('\n')) {
    const m = /^( *)([0-9a-f]+)-([0-9a-f]+) : (.+)$/.exec(line);
    if (!m) continue;
    out.push({ depth: m[1]!.length / 2, start: BigInt(`0x${m[2]}`), end: BigInt(`0x${m[3]}`), name: m[4]!.trim() });
  }
  return out;
}

/** Every top-level range of that name (System RAM, Reserved, ...). */
export function resolveIomem(name: string, file = '/proc/iomem'): Array<{ start: bigint; size: bigint }> {
  return parseIomem(fs.readFileSync(file, 'utf8'))
    .filter((r) => r.depth === 0 && r.name === name)
    .map((r) => ({ start: r.start, size: r.end - r.start + 1n }));
}
