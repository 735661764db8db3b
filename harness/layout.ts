import { ReservedRange } from './board';

const MiB = 2 ** 20;

/**
 * The board's reserved ranges, as a board's firmware would reserve a crash
 * log and trace buffers.  Sizes chosen to cover the awkward cases: one not
 * a multiple of 1 MiB, one that shares its sparsemem sections with System
 * RAM (so it has struct pages from boot), and one of 256 MiB that fills
 * whole sections (so the kernel gives it no struct pages at all).
 */
export const BOARD_RANGES: ReservedRange[] = [
  { name: 'crashlog', start: 0x2000_0000, size: 3 * MiB + 20 * 1024 },
  { name: 'trace', start: 0x2100_0000, size: 16 * MiB },
  { name: 'big', start: 0x2800_0000, size: 256 * MiB },
];

/** Where each range goes on the raw disk: 1 MiB-aligned, one after another. */
export function rawOffsets(ranges: ReservedRange[]): Map<string, number> {
  const offsets = new Map<string, number>();
  let next = 0;
  for (const r of ranges) {
    offsets.set(r.name, next);
    next += Math.ceil(r.size / MiB) * MiB;
  }
  return offsets;
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
