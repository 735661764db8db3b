/**
 * The blockdev destination: a raw partition (an embedded board's dump
 * partition) or a fixed-size partition image used as a ring of captures.
 * This module is its public face (openBlockdevStore, initBlockdev) and the
 * store, which decides in what order the bytes reach the disk, and who may
 * write.  The other jobs have their own modules:
 *   blockdev-format.ts  the on-disk format, as bytes (no I/O)
 *   blockdev-device.ts  the device: reads, O_DIRECT writes, fsync, the lock
 *   blockdev-index.ts   the index as state: slots, the chain, where records go
 *   blockdev-sink.ts    one capture being written
 *   blockdev-reader.ts  one stored capture being read
 *   blockdev-util.ts    coded errors and the clock
 *
 * Crash safety comes from the order of writes, each step fsynced before
 * the next: records that a new one will overwrite are marked reclaimed,
 * then its slot says "writing", then the data, small files and record
 * header are written, and only then does the slot say "done".  A slot left
 * "writing" is what recover() finds after a crash.
 *
 * One writer at a time: the exclusive flock on the device is taken by
 * begin() (without waiting: the capture pipeline must not block) and held
 * until commit() or fail().  Readers take no lock: a slot is rewritten by
 * one aligned write, so a reader racing it sees either version or a
 * checksum failure (reported as a problem), never a wrong entry.
 */
import * as crypto from 'node:crypto';

import { lockRange, rangeLockedElsewhere, unlockRange } from '../../native/binding';
import { Device } from './device';
import {
  BLOCK,
  decodeRecordHeader,
  decodeSuperblock,
  encodeSlot,
  encodeSuperblock,
  FormatError,
  INDEX_OFFSET,
  planSuperblock,
  RECORD_HEADER_SIZE,
  RecordFile,
  roundUp,
  Slot,
  SLOT_SIZE,
  SlotState,
  Superblock,
} from './format';
import {
  BlockdevIndexRead,
  ChainEnd,
  chooseSlot,
  fitEntry,
  hasEntry,
  IndexState,
  intentText,
  isReservation,
  overlaps,
  parseIntent,
  placeRecord,
  readIndexState,
  SlotView,
} from './index-slots';
import { RecordReader } from './reader';
import { PlacedFile, Sink } from './sink';
import { coded, now } from './util';

/**
 * Where an unfinished record's data files are: an armed reservation's
 * `files` (placed), or a durable note's `files` (names and sizes, placed
 * one after another from the record header as the sink placed them).
 */
function placedFiles(text: string): PlacedFile[] | undefined {
  let o: { files?: unknown; durable?: { files?: unknown } };
  try {
    o = JSON.parse(text) as typeof o;
  } catch {
    return undefined;
  }
  const list = Array.isArray(o.files) ? o.files : Array.isArray(o.durable?.files) ? o.durable.files : undefined;
  if (!list) return undefined;
  const out: PlacedFile[] = [];
  let next = BigInt(RECORD_HEADER_SIZE);
  for (const f of list as Array<Record<string, unknown>>) {
    if (typeof f?.name !== 'string' || !Number.isSafeInteger(f.size) || (f.size as number) < 0) return undefined;
    const offset = typeof f.offset === 'number' ? f.offset : Number(next);
    if (!Number.isSafeInteger(offset) || offset < RECORD_HEADER_SIZE) return undefined;
    out.push({ name: f.name, offset, size: f.size as number });
    next = BigInt(offset) + roundUp(BigInt(f.size as number));
  }
  return out;
}
import type { BeginRequest, CaptureReader, CaptureSink, CaptureStore, DataFile, IndexEntry } from '../types';

export type { BlockdevIndexRead } from './index-slots';

export type InitMode = 'if-blank' | 'never' | 'force';

export interface BlockdevStore extends CaptureStore {
  index(): BlockdevIndexRead;
  takeWarnings(): string[];
}

/** Opens a dump area; `init` says what to do with a device that has no superblock (default 'if-blank'). */
export function openBlockdevStore(device: string, o: { init?: InitMode } = {}): BlockdevStore {
  const init = o.init ?? 'if-blank';
  const dev = new Device(device);
  try {
    planSuperblock(dev.size, Buffer.alloc(16), device); // refuses a device too small, before anything else
    let sb = init === 'force' ? initialize(dev) : readSuperblock(dev);
    if (!sb) {
      if (init === 'never' || !isBlank(dev)) throw notDumpArea(device);
      // Under the lock, look again: another process may have initialized it meanwhile.
      sb = initialize(dev, () => readSuperblock(dev) === null && isBlank(dev)) ?? readSuperblock(dev);
      if (!sb) throw notDumpArea(device);
    }
    if (sb.ringEnd > dev.size) {
      throw new FormatError(
        `${device}: the physcap superblock is invalid: field "ringEnd" (${sb.ringEnd}) is beyond the device's end (${dev.size}): was it shrunk?`,
        'ringEnd',
      );
    }
    return new Store(dev, sb);
  } catch (err) {
    dev.close();
    throw err;
  }
}

/** Writes a fresh superblock and an empty index, whatever was there (the CLI's explicit init). */
export function initBlockdev(device: string): void {
  const dev = new Device(device);
  try {
    initialize(dev);
  } finally {
    dev.close();
  }
}

// ---------------------------------------------------------------- errors

function notDumpArea(device: string): Error {
  return coded('ENODEV', `${device} is not a physcap dump area (no superblock); initialize it with \`physcap blockdev init ${device}\``);
}

// ---------------------------------------------------------------- the superblock

function readSuperblock(dev: Device): Superblock | null {
  return decodeSuperblock(dev.read(0n, 4096), dev.path);
}

/** 'if-blank' means the first MiB (superblock and index) is all zero: nothing anyone wrote is overwritten. */
function isBlank(dev: Device): boolean {
  const head = dev.read(0n, 1 << 20);
  return head.equals(Buffer.alloc(head.length));
}

/**
 * Writes an empty index, then the superblock, each fsynced: a crash
 * between them leaves no superblock, never one over a stale index.
 * `stillWanted`, checked under the lock, lets a racing opener back off;
 * then null is returned.
 */
function initialize(dev: Device): Superblock;
function initialize(dev: Device, stillWanted: () => boolean): Superblock | null;
function initialize(dev: Device, stillWanted?: () => boolean): Superblock | null {
  const sb = planSuperblock(dev.size, crypto.randomBytes(16), dev.path);
  if (!dev.tryLock()) throw coded('EBUSY', `${dev.path} is being written by another physcap (it holds the lock): not initializing it`);
  try {
    if (stillWanted && !stillWanted()) return null;
    dev.write(INDEX_OFFSET, Buffer.alloc(Number(sb.ringStart - INDEX_OFFSET)));
    dev.sync();
    dev.write(0n, encodeSuperblock(sb));
    dev.sync();
    return sb;
  } finally {
    dev.unlock();
  }
}

// ---------------------------------------------------------------- the store

class Store implements BlockdevStore {
  readonly kind = 'blockdev' as const;
  readonly location: string;
  private active?: Sink;
  /** Records a new one overwrote (begin()), said once through takeWarnings(). */
  private warnings: string[] = [];

  constructor(
    private readonly dev: Device,
    private readonly sb: Superblock,
  ) {
    this.location = dev.path;
  }

  index(): BlockdevIndexRead {
    return this.state().index;
  }

  open(id: string): CaptureReader {
    const withEntries = this.state().views.filter(hasEntry);
    const exact = withEntries.filter((v) => v.entry.id === id);
    const matches = exact.length > 0 ? exact : withEntries.filter((v) => v.entry.id.startsWith(id));
    const ids = (vs: typeof withEntries) => vs.map((v) => v.entry.id).join(', ');
    if (matches.length === 0) throw coded('ENOENT', `no capture "${id}" in ${this.location}; it holds: ${ids(withEntries) || 'none'}`);
    if (matches.length > 1) throw coded('EINVAL', `"${id}" is ambiguous in ${this.location}: it matches ${ids(matches)}`);
    const { slot, entry } = matches[0];
    if (slot.state === SlotState.Reclaimed) throw coded('ENOENT', `capture ${entry.id} in ${this.location}: its data was reclaimed by newer captures`);
    const location = `${this.location}@${slot.recordOffset}`;
    let files: RecordFile[];
    try {
      const header = decodeRecordHeader(this.dev.read(slot.recordOffset, RECORD_HEADER_SIZE));
      if (header.id !== entry.id || header.generation !== slot.generation || !header.uuid.equals(this.sb.uuid)) {
        throw new Error(`the record header there belongs to another record (${header.id}, generation ${header.generation})`);
      }
      for (const f of header.files) {
        if (!(f.offset >= RECORD_HEADER_SIZE && f.size >= 0 && BigInt(f.offset + f.size) <= slot.recordLength))
          throw new Error(`file ${f.name} lies outside the record`);
      }
      files = header.files;
    } catch (err) {
      throw coded('EBADMSG', `capture ${entry.id} at ${location}: ${(err as Error).message}`);
    }
    return new RecordReader(entry, location, this.location, slot.recordOffset, files);
  }

  checkSpace(bytes: bigint): void {
    // A record is its header, the data, and at least one block for the small files.
    const need = BigInt(RECORD_HEADER_SIZE) + roundUp(bytes) + BigInt(BLOCK);
    const ring = this.sb.ringEnd - this.sb.ringStart;
    if (need > ring) {
      throw coded(
        'ENOSPC',
        `${this.location}: a capture of ${bytes} bytes needs a record of ${need} bytes; the ring holds ${ring} bytes (${this.sb.ringStart}-${this.sb.ringEnd})`,
      );
    }
  }

  begin(req: BeginRequest): CaptureSink {
    if (this.active) throw coded('EBUSY', `${this.location}: capture ${this.active.id} is still being written through this store`);
    if (req.dataBytes < 0n || !(req.smallBytes >= 0)) throw coded('EINVAL', `${this.location}: dataBytes and smallBytes must be >= 0`);
    if (!this.dev.tryLock()) throw coded('EBUSY', `${this.location} is being written by another physcap (it holds the lock)`);
    try {
      // We hold the lock, so a slot still "writing" has no writer left: record it before reusing its space.
      // An armed capture's reservation is not ours to end: its agent
      // finishes it, or recovers it at start-up, once it knows from the
      // kernel whether it was written.
      let state = this.state();
      if (state.views.some((v) => v.slot?.state === SlotState.Writing && !isReservation(v.slot))) {
        this.recoverStale(`unfinished: its writer was gone when capture ${req.id} began`, 'all');
        state = this.state();
      }
      const { views, maxGeneration } = state;
      if (views.some((v) => v.entry?.id === req.id)) throw coded('EEXIST', `${this.location} already holds a capture ${req.id}`);

      const dataArea = roundUp(req.dataBytes);
      const length = BigInt(RECORD_HEADER_SIZE) + dataArea + roundUp(BigInt(req.smallBytes));
      const ring = this.sb.ringEnd - this.sb.ringStart;
      if (length > ring) throw coded('ENOSPC', `${this.location}: capture ${req.id} needs a record of ${length} bytes; the ring holds ${ring} bytes`);
      const reserved = views.filter((v) => isReservation(v.slot)).map((v) => ({ offset: v.slot!.recordOffset, length: v.slot!.recordLength }));
      const offset = placeRecord(views, length, this.sb, reserved, this.location);

      // Before a byte of the new record is written, nothing may still claim the space.
      let reclaimed = false;
      for (const v of views) {
        if (v.slot?.state === SlotState.Done && overlaps({ offset: v.slot.recordOffset, length: v.slot.recordLength }, { offset, length })) {
          v.slot = { ...v.slot, state: SlotState.Reclaimed };
          this.writeSlot(v.n, v.slot);
          reclaimed = true;
          this.warnings.push(
            `capture ${v.entry?.id ?? `of generation ${v.slot.generation}`} was reclaimed: the ring's oldest data made room for ${req.id} (its index entry stays)`,
          );
        }
      }
      if (reclaimed) this.dev.sync();

      const n = chooseSlot(views, this.location);
      const slot: Slot = { state: SlotState.Writing, generation: maxGeneration + 1n, recordOffset: offset, recordLength: length, text: intentText(req) };
      this.writeSlot(n, slot);
      this.dev.sync();
      // The chain's end as it is now: no one else can append while we hold the lock.
      this.active = new Sink(this, req, n, slot, dataArea, { head: state.index.head, maxSeq: state.maxSeq });
      return this.active;
    } catch (err) {
      this.dev.unlock();
      throw err;
    }
  }

  /**
   * Every "writing" slot becomes "done" with a failed entry.  `keep` is
   * moot for a ring: the record stays where it is either way, and is
   * reclaimed when newer captures need its space, like any other.
   */
  recover(o: { keep: boolean; reason: string }): IndexEntry[] {
    if (this.active) throw coded('EBUSY', `${this.location}: capture ${this.active.id} is being written through this store; it is not unfinished`);
    if (!this.dev.tryLock())
      throw coded('EBUSY', `${this.location} is being written by another physcap (it holds the lock): its unfinished capture is alive, not left by a crash`);
    try {
      // A reservation whose agent is alive (it holds its slot's record lock) is armed, not unfinished.
      return this.recoverStale(o.reason, 'dead');
    } finally {
      this.dev.unlock();
    }
  }

  retain(): string[] {
    return []; // a ring reclaims on write: begin() makes the room
  }

  takeWarnings(): string[] {
    return this.warnings.splice(0);
  }

  where(entry: IndexEntry): string {
    return `${this.location}#${entry.location}`;
  }

  close(): void {
    this.active?.abandon();
    this.active = undefined;
    this.dev.close();
  }

  // ---- for the sink and recovery (all under the lock)

  state(): IndexState {
    return readIndexState(this.dev, this.sb);
  }

  writeSlot(n: number, slot: Slot): void {
    this.dev.patch(this.sb.indexOffset + BigInt(n * SLOT_SIZE), encodeSlot(slot));
  }

  get device(): Device {
    return this.dev;
  }

  get uuid(): Buffer {
    return this.sb.uuid;
  }

  /** Appends a "done" entry in the slot after `end` (the chain's end, read under the lock); fsynced. */
  finishSlot(n: number, slot: Slot, partial: Omit<IndexEntry, 'seq' | 'prev' | 'location'>, end: ChainEnd): IndexEntry {
    const { entry, text } = fitEntry({ ...partial, seq: end.maxSeq + 1, prev: end.head, location: `record@${slot.recordOffset}` });
    this.writeSlot(n, { ...slot, state: SlotState.Done, text });
    this.dev.sync();
    return entry;
  }

  rewriteSlot(n: number, slot: Slot): void {
    this.writeSlot(n, slot);
    this.dev.sync();
  }

  freeSlot(n: number, slot: Slot): void {
    this.writeSlot(n, { ...slot, state: SlotState.Free, text: '' });
    this.dev.sync();
  }

  unfinished(): Array<{ id: string; intent: Buffer }> {
    return this.state()
      .views.filter((v) => v.slot?.state === SlotState.Writing)
      .map((v) => ({ id: parseIntent(v.slot!.text).id ?? `unknown-generation-${v.slot!.generation}`, intent: Buffer.from(v.slot!.text) }));
  }

  /**
   * Reopens an unfinished record to finish it: an armed capture the kernel
   * wrote while its agent was down, or a durable one whose digests a crash
   * cut short.  Its data files are where begin()'s sink placed them, one
   * after another from the record header: the intent names them (an armed
   * reservation's `files`, a durable note's `files`).
   */
  resume(id: string): { sink: CaptureSink; data(name: string): DataFile } {
    if (this.active) throw coded('EBUSY', `${this.location}: capture ${this.active.id} is being written through this store`);
    if (!this.dev.tryLock()) throw coded('EBUSY', `${this.location} is being written by another physcap (it holds the lock)`);
    try {
      const state = this.state();
      const v = state.views.find((x) => x.slot?.state === SlotState.Writing && parseIntent(x.slot.text).id === id);
      if (!v) throw coded('ENOENT', `${this.location} has no unfinished capture ${id}`);
      if (this.reservedElsewhere(v.n)) throw coded('EBUSY', `${this.location}: capture ${id} is armed by a running physcap (it holds its reservation)`);
      const slot = v.slot!;
      const files = placedFiles(slot.text);
      if (!files) throw coded('EINVAL', `${this.location}: capture ${id}: its record does not say where its data files are`);
      const dataEnd = files.reduce(
        (end, f) => (BigInt(f.offset) + roundUp(BigInt(f.size)) > end ? BigInt(f.offset) + roundUp(BigInt(f.size)) : end),
        BigInt(RECORD_HEADER_SIZE),
      );
      if (dataEnd > slot.recordLength) throw coded('EINVAL', `${this.location}: capture ${id}: its data files lie beyond its record`);
      const intent = parseIntent(slot.text);
      const req: BeginRequest = {
        id,
        profile: intent.profile ?? 'unknown',
        started: intent.started ?? now(),
        dataBytes: dataEnd - BigInt(RECORD_HEADER_SIZE),
        smallBytes: 0,
        intent: Buffer.from(slot.text),
      };
      const sink = new Sink(this, req, v.n, slot, dataEnd - BigInt(RECORD_HEADER_SIZE), { head: state.index.head, maxSeq: state.maxSeq }, files);
      this.active = sink;
      return { sink, data: (name) => sink.reopenData(name) };
    } catch (err) {
      this.dev.unlock();
      throw err;
    }
  }

  released(sink: Sink, holdsLock: boolean): void {
    if (this.active === sink) this.active = undefined;
    if (holdsLock) this.dev.unlock();
  }

  // ---- reservations (armed captures): a shared record lock on the slot, held while the arming process lives

  private slotRange(n: number): [bigint, bigint] {
    return [this.sb.indexOffset + BigInt(n * SLOT_SIZE), BigInt(SLOT_SIZE)];
  }

  /** The sink's record becomes a reservation: other writers may go on (the flock is dropped). */
  reserve(sink: Sink, n: number): void {
    if (!lockRange(this.dev.fd, ...this.slotRange(n), 'shared')) {
      throw coded('EBUSY', `${this.location}: slot ${n} is locked by another process`);
    }
    if (this.active === sink) this.active = undefined;
    this.dev.unlock();
  }

  /** The reservation's writer lock again, without waiting; false when another writer holds it. */
  relock(sink: Sink): ChainEnd | undefined {
    if (this.active && this.active !== sink) return undefined;
    if (!this.dev.tryLock()) return undefined;
    try {
      const state = this.state();
      this.active = sink;
      return { head: state.index.head, maxSeq: state.maxSeq };
    } catch (err) {
      this.dev.unlock();
      throw err;
    }
  }

  unreserve(n: number): void {
    unlockRange(this.dev.fd, ...this.slotRange(n));
  }

  private reservedElsewhere(n: number): boolean {
    return rangeLockedElsewhere(this.dev.fd, ...this.slotRange(n));
  }

  /**
   * Records "writing" slots as failed: 'all' of them (begin(): the lock is
   * ours, so their writers are gone; reservations are skipped by the
   * caller), or the 'dead' ones (recover(): a reservation whose arming
   * process still holds it is alive).
   */
  private recoverStale(reason: string, which: 'all' | 'dead'): IndexEntry[] {
    const stale = (v: SlotView) =>
      v.slot?.state === SlotState.Writing && (which === 'all' ? !isReservation(v.slot) : !(isReservation(v.slot) && this.reservedElsewhere(v.n)));
    const writing = this.state().views.filter(stale);
    writing.sort((a, b) => (a.slot!.generation < b.slot!.generation ? -1 : 1));
    return writing.map((v) => {
      const intent = parseIntent(v.slot!.text);
      const finished = now();
      // One at a time, each fsynced, each after the chain's end as it is on disk.
      const { index, maxSeq } = this.state();
      return this.finishSlot(
        v.n,
        v.slot!,
        {
          id: intent.id ?? `unknown-generation-${v.slot!.generation}`,
          profile: intent.profile ?? 'unknown',
          status: 'failed',
          started: intent.started ?? finished,
          finished,
          bytes: 0,
          error: reason,
          recovered: reason,
        },
        { head: index.head, maxSeq },
      );
    });
  }
}
