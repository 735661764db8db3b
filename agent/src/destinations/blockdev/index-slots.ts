/**
 * The index of a blockdev dump area as state: reading every slot, checking
 * the entries as a hash chain (with the anchor rule a ring needs), choosing
 * the slot and the ring position for a new record, and the text a slot
 * holds (a fitted index entry, or a writing capture's intent).  It reads
 * and decides but never writes: the store (blockdev.ts) does the writes,
 * in the order that makes them crash safe.
 */
import { entryHash, parseEntry, serializeEntry } from '../../manifest/chain';
import type { Device } from './device';
import { decodeSlot, Slot, SLOT_SIZE, SLOT_TEXT_MAX, SlotState, Superblock } from './format';
import { coded } from './util';
import type { BeginRequest, IndexEntry, IndexRead } from '../types';

/**
 * IndexRead plus what only a ring has: the ids whose entries stay in the
 * chain but whose data newer captures overwrote.  (IndexEntry has no field
 * for it, and the entry text cannot change without breaking the chain.)
 */
export interface BlockdevIndexRead extends IndexRead {
  reclaimed: string[];
}

/** One slot as read: a decoded slot, free, or corrupt; done/reclaimed ones with their entry. */
export interface SlotView {
  n: number;
  slot?: Slot;
  corrupt?: string;
  entry?: IndexEntry;
}

export interface IndexState {
  views: SlotView[];
  index: BlockdevIndexRead;
  maxSeq: number;
  maxGeneration: bigint;
}

/** Where the next entry goes: after `head`, with seq maxSeq + 1. */
export interface ChainEnd {
  head: string | null;
  maxSeq: number;
}

export const hasEntry = (v: SlotView): v is SlotView & { slot: Slot; entry: IndexEntry } => v.entry !== undefined;

/**
 * Checks entries (ordered by seq) as a hash chain, like readChain in
 * chain.ts, with one rule a ring needs: once slots are reused, the oldest
 * surviving entry's prev points at an entry that is gone.  It is accepted
 * as the chain's anchor when that entry is not the first ever (seq > 1).
 */
function checkChain(items: Array<{ text: string; entry: IndexEntry; where: string }>): { problems: string[]; head: string | null } {
  const problems: string[] = [];
  let head: string | null = null;
  items.forEach(({ text, entry, where }, i) => {
    if (i === 0 && entry.seq > 1 && entry.prev !== null) head = entry.prev;
    if (entry.prev !== head) problems.push(`${where}: chain broken: entry ${entry.seq} (${entry.id}) does not point at the entry before it`);
    head = entryHash(text);
  });
  return { problems, head };
}

export function readIndexState(dev: Device, sb: Superblock): IndexState {
  const raw = dev.read(sb.indexOffset, sb.slotCount * SLOT_SIZE);
  const problems: string[] = [];
  const views: SlotView[] = [];
  const chained: Array<{ text: string; entry: IndexEntry; where: string }> = [];
  let maxGeneration = 0n;
  for (let n = 0; n < sb.slotCount; n++) {
    const d = decodeSlot(raw.subarray(n * SLOT_SIZE, (n + 1) * SLOT_SIZE));
    if (d.kind === 'free') {
      views.push({ n });
      continue;
    }
    if (d.kind === 'corrupt') {
      problems.push(`slot ${n}: corrupt (${d.why}); skipped`);
      views.push({ n, corrupt: d.why });
      continue;
    }
    const v: SlotView = { n, slot: d.slot };
    if (d.slot.generation > maxGeneration) maxGeneration = d.slot.generation;
    if (d.slot.state === SlotState.Done || d.slot.state === SlotState.Reclaimed) {
      try {
        v.entry = parseEntry(d.slot.text);
        chained.push({ text: d.slot.text, entry: v.entry, where: `slot ${n}` });
      } catch (err) {
        problems.push(`slot ${n}: corrupt entry (${(err as Error).message})`);
      }
    }
    views.push(v);
  }
  chained.sort((a, b) => a.entry.seq - b.entry.seq);
  for (let i = 1; i < chained.length; i++) {
    if (chained[i].entry.seq === chained[i - 1].entry.seq) problems.push(`${chained[i].where}: seq ${chained[i].entry.seq} is also in ${chained[i - 1].where}`);
  }
  const chain = checkChain(chained);
  const reclaimed = views.filter((v) => v.entry && v.slot?.state === SlotState.Reclaimed).map((v) => v.entry!.id);
  return {
    views,
    index: { entries: chained.map((c) => c.entry), problems: [...problems, ...chain.problems], head: chain.head, reclaimed },
    maxSeq: chained.reduce((m, c) => Math.max(m, c.entry.seq), 0),
    maxGeneration,
  };
}

/**
 * An entry's text as it will be stored, shortened to fit a slot: the
 * free-text fields (error, recovered) give way; the entry stays honest
 * and parseable.
 */
export function fitEntry(entry: IndexEntry): { entry: IndexEntry; text: string } {
  let e = entry;
  let text = serializeEntry(e);
  for (const field of ['error', 'recovered'] as const) {
    for (let excess = Buffer.byteLength(text) - SLOT_TEXT_MAX; excess > 0 && (e[field]?.length ?? 0) > 1; excess = Buffer.byteLength(text) - SLOT_TEXT_MAX) {
      const value = e[field]!;
      e = { ...e, [field]: `${value.slice(0, Math.max(0, value.length - excess - 2))}…` };
      text = serializeEntry(e);
    }
  }
  if (Buffer.byteLength(text) > SLOT_TEXT_MAX) throw new Error(`index entry for ${e.id} is ${Buffer.byteLength(text)} bytes; a slot holds ${SLOT_TEXT_MAX}`);
  return { entry: e, text };
}

/**
 * What a writing slot keeps: the intent JSON, naming the capture so that
 * recovery can.  An intent that is not a JSON object, lacks the names or
 * does not fit a slot is replaced by a stand-in that has them.
 */
export function intentText(req: BeginRequest): string {
  const names = { id: req.id, profile: req.profile, started: req.started };
  const raw = req.intent.toString('utf8');
  let candidate: string | undefined;
  try {
    const o = JSON.parse(raw) as unknown;
    if (o !== null && typeof o === 'object' && !Array.isArray(o)) {
      const r = o as Record<string, unknown>;
      candidate = r.id === req.id && r.profile === req.profile && r.started === req.started ? raw : JSON.stringify({ ...r, ...names });
    }
  } catch {
    // not JSON: the stand-in below
  }
  if (candidate !== undefined && Buffer.byteLength(candidate) <= SLOT_TEXT_MAX) return candidate;
  return JSON.stringify({ ...names, intent: `not kept (${Buffer.byteLength(raw)} bytes: not a JSON object, or too long for a slot)` });
}

export function parseIntent(text: string): { id?: string; profile?: string; started?: string } {
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
    const started = str('started');
    return { id: str('id'), profile: str('profile'), started: started !== undefined && !Number.isNaN(Date.parse(started)) ? started : undefined };
  } catch {
    return {};
  }
}

// ---------------------------------------------------------------- placement

export interface Extent {
  offset: bigint;
  length: bigint;
}

export const overlaps = (a: Extent, b: Extent) => a.offset < b.offset + b.length && b.offset < a.offset + a.length;

/** Whether a "writing" slot is an armed capture's reservation (its intent says `armed`). */
export function isReservation(slot: Slot | undefined): boolean {
  if (slot?.state !== SlotState.Writing) return false;
  try {
    const o = JSON.parse(slot.text) as { armed?: unknown };
    return o.armed !== undefined && o.armed !== null;
  } catch {
    return false;
  }
}

/**
 * Right after the newest record (by generation), or at the ring's start
 * when it does not fit before the end; never over `reserved` (armed
 * captures the kernel may write at any moment): then right after one of
 * them.  Throws ENOSPC when the ring has no such room.
 */
export function placeRecord(views: SlotView[], length: bigint, sb: Superblock, reserved: Extent[] = [], where = 'the ring'): bigint {
  let newest: Slot | undefined;
  for (const v of views) {
    if (v.slot && v.slot.state !== SlotState.Free && v.slot.recordLength > 0n && (!newest || v.slot.generation > newest.generation)) newest = v.slot;
  }
  const candidates = [newest ? newest.recordOffset + newest.recordLength : sb.ringStart, sb.ringStart, ...reserved.map((r) => r.offset + r.length)];
  const fits = (at: bigint) => at >= sb.ringStart && at + length <= sb.ringEnd && !reserved.some((r) => overlaps(r, { offset: at, length }));
  const at = candidates.find(fits);
  if (at === undefined) {
    throw coded(
      'ENOSPC',
      `${where}: no room for a record of ${length} bytes: armed captures hold ${reserved.map((r) => `${r.length} bytes at ${r.offset}`).join(', ')} of the ring (${sb.ringStart}-${sb.ringEnd}), and they are never overwritten`,
    );
  }
  return at;
}

/**
 * The slot for a new record: a free one, else the one holding the chain's
 * first surviving entry (lowest seq; normally the oldest-generation
 * reclaimed slot).  Taking the first entry, not any reclaimed one, keeps
 * the surviving chain unbroken: only its anchor moves.
 */
export function chooseSlot(views: SlotView[], where: string): number {
  const free = views.find((v) => !v.slot && !v.corrupt);
  if (free) return free.n;
  const oldest = views.filter(hasEntry).sort((a, b) => a.entry.seq - b.entry.seq)[0];
  if (!oldest) throw coded('ENOSPC', `${where}: every index slot is unfinished or corrupt; run recovery, or initialize the dump area again`);
  return oldest.n;
}
