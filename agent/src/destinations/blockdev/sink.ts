/**
 * One capture being written to a blockdev dump area (the CaptureSink).
 * The store's begin() has taken the lock, marked the space's old records
 * reclaimed and the slot "writing"; the sink places the data files in the
 * record, then on commit() or fail() writes the small files and the record
 * header, fsynced, before the store flips the slot to "done".  Ending it
 * (a commit() that succeeds, or fail()) releases the lock.
 */
import type { Device } from './device';
import { BLOCK, encodeRecordHeader, RECORD_HEADER_SIZE, RecordFile, roundUp, Slot } from './format';
import { ChainEnd, intentText } from './index-slots';
import { coded, now } from './util';
import type { BeginRequest, CaptureSink, DataFile, Finish, IndexEntry } from '../types';

/** The durable intent's own moment, or now: what a slot too small for the whole intent keeps. */
function durableAt(intent: Buffer): { at: string } {
  try {
    const d = (JSON.parse(intent.toString('utf8')) as { durable?: { at?: unknown } }).durable;
    if (typeof d?.at === 'string') return { at: d.at };
  } catch {
    /* not JSON: now */
  }
  return { at: now() };
}

/** What a sink needs of its store (Store in blockdev.ts); called under the lock the store took in begin(). */
export interface SinkStore {
  readonly location: string;
  readonly device: Device;
  readonly uuid: Buffer;
  /** Appends a "done" entry in the slot after `end` (the chain's end, read under the lock); fsynced. */
  finishSlot(n: number, slot: Slot, partial: Omit<IndexEntry, 'seq' | 'prev' | 'location'>, end: ChainEnd): IndexEntry;
  /** The capture ended: drops the lock (when it holds it). */
  released(sink: Sink, holdsLock: boolean): void;
  /** The record becomes a reservation: a record lock on slot n kept, the writer's lock dropped. */
  reserve(sink: Sink, n: number): void;
  /** The writer's lock again for a reservation, with the chain's end as it is now; undefined while another writer holds it. */
  relock(sink: Sink): ChainEnd | undefined;
  /** Drops slot n's record lock. */
  unreserve(n: number): void;
  /** Frees a "writing" slot whose capture never happened; fsynced. */
  freeSlot(n: number, slot: Slot): void;
  /** Rewrites a "writing" slot in place (its intent); fsynced. */
  rewriteSlot(n: number, slot: Slot): void;
}

/** A data file placed in a record: its offset from the record's start. */
export type PlacedFile = RecordFile;

/** How often writable() tries for the writer's lock a reservation gave up. */
const RELOCK_MS = 50;

export class Sink implements CaptureSink {
  readonly id: string;
  readonly location: string;
  readonly align: number;
  private readonly files: RecordFile[] = [];
  /** Where the next data file goes, from the record's start. */
  private nextData = BigInt(RECORD_HEADER_SIZE);
  private ended = false;
  /** A reservation (reserve()): whether it holds the writer's lock again (writable()). */
  private reserved = false;
  private locked = true;

  constructor(
    private readonly store: SinkStore,
    private readonly req: BeginRequest,
    private readonly slotNumber: number,
    private readonly slot: Slot,
    private readonly dataArea: bigint,
    private chainEnd: ChainEnd,
    /** A resumed record's data files, where its first sink placed them. */
    placed: PlacedFile[] = [],
  ) {
    this.id = req.id;
    this.location = `${store.location}@${slot.recordOffset}`;
    this.align = store.device.writer().offsetAlign;
    for (const f of placed) {
      this.files.push(f);
      const end = BigInt(f.offset) + roundUp(BigInt(f.size));
      if (end > this.nextData) this.nextData = end;
    }
  }

  /** A data file a resumed record already has. */
  reopenData(name: string): DataFile {
    this.assertOpen();
    const f = this.files.find((x) => x.name === name);
    if (!f) throw coded('ENOENT', `${this.location}: capture ${this.id} has no data file ${name}`);
    return Object.freeze({ name, dest: this.store.device.writer(), base: this.slot.recordOffset + BigInt(f.offset), size: BigInt(f.size) });
  }

  /**
   * The record becomes a reservation: its slot's intent names its data
   * files (so a restarted agent can finish it: resume()), the slot keeps a
   * record lock while this process lives, and the device's writer lock is
   * dropped so that other captures go on meanwhile, placed around it.
   */
  reserve(): void {
    this.assertOpen();
    if (this.reserved) return;
    let intent: Record<string, unknown>;
    try {
      intent = JSON.parse(this.slot.text) as Record<string, unknown>;
    } catch {
      throw coded('EINVAL', `${this.location}: capture ${this.id}: its intent is not JSON; it cannot be a reservation`);
    }
    const text = intentText({ ...this.req, intent: Buffer.from(JSON.stringify({ ...intent, files: this.files })) });
    if (!Array.isArray((JSON.parse(text) as { files?: unknown }).files)) {
      throw coded('E2BIG', `${this.location}: capture ${this.id}: its data files do not fit its slot's intent`);
    }
    this.store.rewriteSlot(this.slotNumber, { ...this.slot, text });
    this.store.reserve(this, this.slotNumber);
    this.reserved = true;
    this.locked = false;
  }

  async writable(signal?: AbortSignal): Promise<void> {
    this.assertOpen();
    while (!this.locked) {
      if (signal?.aborted) throw coded('ABORT_ERR', `${this.location}: waiting for the writer's lock was aborted`);
      const end = this.store.relock(this);
      if (end) {
        this.chainEnd = end;
        this.locked = true;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, RELOCK_MS));
    }
  }

  /** A reservation ended without writable(): one try for the lock, or a clear error. */
  private mustHoldLock(): void {
    if (this.locked) return;
    const end = this.store.relock(this);
    if (!end) throw coded('EBUSY', `${this.location}: capture ${this.id}: another capture holds the device's writer lock; try again`);
    this.chainEnd = end;
    this.locked = true;
  }

  /**
   * The slot, still "writing", takes the durable intent: one 4 KiB write,
   * so a crash leaves the old text or the new.  An intent too long for a
   * slot keeps what recovery needs most (names, when it was durable).
   */
  markDurable(intent: Buffer): void {
    this.assertOpen();
    const text = intentText({ ...this.req, intent });
    const fitted = text.includes('"durable"') ? text : JSON.stringify({ ...JSON.parse(text), durable: durableAt(intent) });
    this.store.rewriteSlot(this.slotNumber, { ...this.slot, text: fitted });
  }

  openData(name: string, size: bigint): DataFile {
    this.assertOpen();
    if (typeof name !== 'string' || name === '') throw coded('EINVAL', `${this.location}: a data file needs a name`);
    if (this.files.some((f) => f.name === name)) throw coded('EEXIST', `${this.location}: data file ${name} exists`);
    if (size < 0n) throw coded('EINVAL', `${this.location}: data file ${name}: size ${size} is negative`);
    const end = this.nextData + roundUp(size);
    if (end > BigInt(RECORD_HEADER_SIZE) + this.dataArea) {
      throw coded(
        'ENOSPC',
        `${this.location}: data file ${name} (${size} bytes, placed on a ${BLOCK}-byte boundary) goes beyond the ${this.dataArea} data bytes planned at begin()`,
      );
    }
    const file = { name, offset: Number(this.nextData), size: Number(size) };
    this.files.push(file);
    this.nextData = end;
    return Object.freeze({ name, dest: this.store.device.writer(), base: this.slot.recordOffset + BigInt(file.offset), size });
  }

  commit(build: (previous: string | null) => Finish): IndexEntry {
    this.assertOpen();
    this.mustHoldLock();
    const finish = build(this.chainEnd.head);
    this.writeRecord(this.smallFiles(finish));
    const entry = this.store.finishSlot(this.slotNumber, this.slot, finish.entry, this.chainEnd);
    this.end();
    return entry;
  }

  fail(build: (previous: string | null) => Finish): IndexEntry | undefined {
    if (this.ended) return undefined;
    try {
      this.mustHoldLock();
    } catch {
      // The record stays as it is (a reservation with its data): recovery records it.
      this.end();
      return undefined;
    }
    const notes: string[] = [];
    try {
      let finish: Finish | undefined;
      try {
        finish = build(this.chainEnd.head);
      } catch (err) {
        notes.push(`no manifest: ${(err as Error).message}`);
      }
      let entry: Omit<IndexEntry, 'seq' | 'prev' | 'location'> = finish?.entry ?? {
        id: this.req.id,
        profile: this.req.profile,
        status: 'failed' as const,
        started: this.req.started,
        finished: now(),
        bytes: 0,
      };
      try {
        this.writeRecord(finish ? this.smallFiles(finish) : []);
      } catch (err) {
        // The manifest is not in the record: the entry must not claim one.
        notes.push(`record not written: ${(err as Error).message}`);
        entry = { ...entry, manifestSha256: undefined };
      }
      // Whatever build said, a capture ended by fail() did not complete.
      entry = { ...entry, status: 'failed' };
      if (notes.length > 0) entry = { ...entry, error: [entry.error, ...notes].filter(Boolean).join('; ') };
      try {
        return this.store.finishSlot(this.slotNumber, this.slot, entry, this.chainEnd);
      } catch {
        return undefined; // the slot stays "writing": recovery will record it
      }
    } finally {
      this.end();
    }
  }

  discard(): void {
    if (this.ended) return;
    this.mustHoldLock();
    try {
      this.store.freeSlot(this.slotNumber, this.slot);
    } finally {
      this.end();
    }
  }

  /** The store was closed under us: the lock went with the fd. */
  abandon(): void {
    this.ended = true;
  }

  private smallFiles(finish: Finish): Array<{ name: string; data: Buffer }> {
    return [...finish.files, { name: 'manifest.json', data: finish.manifest }];
  }

  /**
   * The small files, packed one after another into the small area in one
   * zero-padded write, then the record header naming every file, then an
   * fsync: after it the slot may say "done".
   */
  private writeRecord(small: Array<{ name: string; data: Buffer }>): void {
    const dev = this.store.device;
    const smallStart = BigInt(RECORD_HEADER_SIZE) + this.dataArea;
    const table = [...this.files];
    let at = 0;
    for (const f of small) {
      if (table.some((t) => t.name === f.name)) throw coded('EEXIST', `${this.location}: file ${f.name} is written twice`);
      table.push({ name: f.name, offset: Number(smallStart) + at, size: f.data.length });
      at += f.data.length;
    }
    const room = this.slot.recordLength - smallStart;
    if (BigInt(at) > room) throw coded('ENOSPC', `${this.location}: the small files need ${at} bytes; begin() reserved ${room}`);
    const header = encodeRecordHeader({ generation: this.slot.generation, uuid: this.store.uuid, id: this.id, files: table });
    if (at > 0) dev.write(this.slot.recordOffset + smallStart, Buffer.concat(small.map((f) => f.data)));
    dev.write(this.slot.recordOffset, header);
    dev.sync();
  }

  private assertOpen(): void {
    if (this.ended) throw coded('ERR_INVALID_STATE', `${this.location}: capture ${this.id} has ended`);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    try {
      if (this.reserved) this.store.unreserve(this.slotNumber);
    } finally {
      this.store.released(this, this.locked);
    }
  }
}
