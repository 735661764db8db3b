/**
 * The blockdev destination: a raw partition (an embedded board's dump
 * partition) or a fixed-size partition image used as a ring of captures.
 * The format is in blockdev-format.ts; this module decides where records
 * go, in what order the bytes reach the disk, and who may write.
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
import * as fs from 'node:fs';

import { entryHash, parseEntry, serializeEntry } from '../manifest/chain';
import { closeDestination, Destination, fsyncFd, lockFd, openDestination, unlockFd, writeAligned } from '../native/binding';
import {
  BLOCK,
  decodeRecordHeader,
  decodeSlot,
  decodeSuperblock,
  encodeRecordHeader,
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
  SLOT_TEXT_MAX,
  SlotState,
  Superblock,
} from './blockdev-format';
import type { BeginRequest, CaptureReader, CaptureSink, CaptureStore, DataFile, Finish, IndexEntry, IndexRead } from './types';

export type InitMode = 'if-blank' | 'never' | 'force';

/**
 * IndexRead plus what only a ring has: the ids whose entries stay in the
 * chain but whose data newer captures overwrote.  (IndexEntry has no field
 * for it, and the entry text cannot change without breaking the chain.)
 */
export interface BlockdevIndexRead extends IndexRead {
  reclaimed: string[];
}

export interface BlockdevStore extends CaptureStore {
  index(): BlockdevIndexRead;
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
      throw new FormatError(`${device}: the physcap superblock is invalid: field "ringEnd" (${sb.ringEnd}) is beyond the device's end (${dev.size}): was it shrunk?`, 'ringEnd');
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

function coded(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

function notDumpArea(device: string): Error {
  return coded('ENODEV', `${device} is not a physcap dump area (no superblock); initialize it with \`physcap blockdev init ${device}\``);
}

const now = () => new Date().toISOString();

// ---------------------------------------------------------------- the device

/**
 * The device opened twice: a plain read-only fd for reading at absolute
 * positions (O_DIRECT would want aligned buffers Node does not give), and
 * the O_DIRECT destination for every write, opened on first need so that
 * read-only verbs work on a device they may only read.  The page cache
 * stays coherent: a direct write invalidates the cached pages it covers.
 */
class Device {
  readonly fd: number;
  readonly size: bigint;
  private dest?: Destination;

  constructor(readonly path: string) {
    this.fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const st = fs.fstatSync(this.fd);
      if (st.isFile()) this.size = BigInt(st.size);
      else if (st.isBlockDevice()) this.size = blockDeviceSize(st) ?? BigInt(this.writer().size);
      else throw coded('EINVAL', `${path} is neither a block device nor a regular file`);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  read(pos: bigint, length: number): Buffer {
    const b = Buffer.alloc(length);
    for (let got = 0; got < length; ) {
      const n = fs.readSync(this.fd, b, got, length - got, pos + BigInt(got));
      if (n === 0) throw coded('EIO', `${this.path}: unexpected end of device reading ${length} bytes at ${pos}`);
      got += n;
    }
    return b;
  }

  writer(): Destination {
    if (!this.dest) {
      const d = openDestination(this.path, 'existing');
      // Every structure sits on a 4096 boundary; a coarser device could not write them in place.
      if (BLOCK % d.offsetAlign !== 0) {
        closeDestination(d);
        throw coded('EINVAL', `${this.path}: direct I/O alignment ${d.offsetAlign} does not divide ${BLOCK}`);
      }
      this.dest = d;
    }
    return this.dest;
  }

  /** An aligned write (writeAligned zero-pads the tail to the alignment). */
  write(pos: bigint, data: Buffer): void {
    writeAligned(this.writer(), pos, data);
  }

  /** Rewrites a range that may be smaller than the alignment: the blocks around it are read and written back whole. */
  patch(pos: bigint, data: Buffer): void {
    const align = BigInt(this.writer().offsetAlign);
    const start = (pos / align) * align;
    const end = roundUp(pos + BigInt(data.length), align);
    const block = this.read(start, Number(end - start));
    data.copy(block, Number(pos - start));
    this.write(start, block);
  }

  sync(): void {
    fsyncFd(this.writer().fd, this.path);
  }

  /** The exclusive lock, without waiting: false when another writer holds it. */
  tryLock(): boolean {
    return lockFd(this.writer().fd, 'exclusive', false);
  }

  unlock(): void {
    unlockFd(this.writer().fd);
  }

  close(): void {
    // Closing the destination also drops its flock.
    if (this.dest) closeDestination(this.dest);
    this.dest = undefined;
    fs.closeSync(this.fd);
  }
}

/** A block device's size without opening it for writing: sysfs, by device number. */
function blockDeviceSize(st: fs.Stats): bigint | undefined {
  // glibc's major()/minor() of a dev_t.
  const dev = BigInt(st.rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  try {
    return BigInt(fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim()) * 512n;
  } catch {
    return undefined;
  }
}

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

// ---------------------------------------------------------------- the index

/** One slot as read: a decoded slot, free, or corrupt; done/reclaimed ones with their entry. */
interface SlotView {
  n: number;
  slot?: Slot;
  corrupt?: string;
  entry?: IndexEntry;
}

interface IndexState {
  views: SlotView[];
  index: BlockdevIndexRead;
  maxSeq: number;
  maxGeneration: bigint;
}

/** Where the next entry goes: after `head`, with seq maxSeq + 1. */
interface ChainEnd {
  head: string | null;
  maxSeq: number;
}

const hasEntry = (v: SlotView): v is SlotView & { slot: Slot; entry: IndexEntry } => v.entry !== undefined;

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

function readIndexState(dev: Device, sb: Superblock): IndexState {
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
function fitEntry(entry: IndexEntry): { entry: IndexEntry; text: string } {
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
function intentText(req: BeginRequest): string {
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

function parseIntent(text: string): { id?: string; profile?: string; started?: string } {
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

interface Extent {
  offset: bigint;
  length: bigint;
}

const overlaps = (a: Extent, b: Extent) => a.offset < b.offset + b.length && b.offset < a.offset + a.length;

/** Right after the newest record (by generation), or at the ring's start when it does not fit before the end. */
function placeRecord(views: SlotView[], length: bigint, sb: Superblock): bigint {
  let newest: Slot | undefined;
  for (const v of views) {
    if (v.slot && v.slot.state !== SlotState.Free && v.slot.recordLength > 0n && (!newest || v.slot.generation > newest.generation)) newest = v.slot;
  }
  const next = newest ? newest.recordOffset + newest.recordLength : sb.ringStart;
  return next >= sb.ringStart && next + length <= sb.ringEnd ? next : sb.ringStart;
}

/**
 * The slot for a new record: a free one, else the one holding the chain's
 * first surviving entry (lowest seq; normally the oldest-generation
 * reclaimed slot).  Taking the first entry, not any reclaimed one, keeps
 * the surviving chain unbroken: only its anchor moves.
 */
function chooseSlot(views: SlotView[], where: string): number {
  const free = views.find((v) => !v.slot && !v.corrupt);
  if (free) return free.n;
  const oldest = views.filter(hasEntry).sort((a, b) => a.entry.seq - b.entry.seq)[0];
  if (!oldest) throw coded('ENOSPC', `${where}: every index slot is unfinished or corrupt; run recovery, or initialize the dump area again`);
  return oldest.n;
}

// ---------------------------------------------------------------- the store

class Store implements BlockdevStore {
  readonly kind = 'blockdev' as const;
  readonly location: string;
  private active?: Sink;

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
        if (!(f.offset >= RECORD_HEADER_SIZE && f.size >= 0 && BigInt(f.offset + f.size) <= slot.recordLength)) throw new Error(`file ${f.name} lies outside the record`);
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
      throw coded('ENOSPC', `${this.location}: a capture of ${bytes} bytes needs a record of ${need} bytes; the ring holds ${ring} bytes (${this.sb.ringStart}-${this.sb.ringEnd})`);
    }
  }

  begin(req: BeginRequest): CaptureSink {
    if (this.active) throw coded('EBUSY', `${this.location}: capture ${this.active.id} is still being written through this store`);
    if (req.dataBytes < 0n || !(req.smallBytes >= 0)) throw coded('EINVAL', `${this.location}: dataBytes and smallBytes must be >= 0`);
    if (!this.dev.tryLock()) throw coded('EBUSY', `${this.location} is being written by another physcap (it holds the lock)`);
    try {
      // We hold the lock, so a slot still "writing" has no writer left: record it before reusing its space.
      let state = this.state();
      if (state.views.some((v) => v.slot?.state === SlotState.Writing)) {
        this.recoverStale(`unfinished: its writer was gone when capture ${req.id} began`);
        state = this.state();
      }
      const { views, maxGeneration } = state;
      if (views.some((v) => v.entry?.id === req.id)) throw coded('EEXIST', `${this.location} already holds a capture ${req.id}`);

      const dataArea = roundUp(req.dataBytes);
      const length = BigInt(RECORD_HEADER_SIZE) + dataArea + roundUp(BigInt(req.smallBytes));
      const ring = this.sb.ringEnd - this.sb.ringStart;
      if (length > ring) throw coded('ENOSPC', `${this.location}: capture ${req.id} needs a record of ${length} bytes; the ring holds ${ring} bytes`);
      const offset = placeRecord(views, length, this.sb);

      // Before a byte of the new record is written, nothing may still claim the space.
      let reclaimed = false;
      for (const v of views) {
        if (v.slot?.state === SlotState.Done && overlaps({ offset: v.slot.recordOffset, length: v.slot.recordLength }, { offset, length })) {
          v.slot = { ...v.slot, state: SlotState.Reclaimed };
          this.writeSlot(v.n, v.slot);
          reclaimed = true;
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
    if (!this.dev.tryLock()) throw coded('EBUSY', `${this.location} is being written by another physcap (it holds the lock): its unfinished capture is alive, not left by a crash`);
    try {
      return this.recoverStale(o.reason);
    } finally {
      this.dev.unlock();
    }
  }

  retain(): string[] {
    return []; // a ring reclaims on write: begin() makes the room
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

  released(sink: Sink): void {
    if (this.active === sink) this.active = undefined;
    this.dev.unlock();
  }

  private recoverStale(reason: string): IndexEntry[] {
    const writing = this.state().views.filter((v) => v.slot?.state === SlotState.Writing);
    writing.sort((a, b) => (a.slot!.generation < b.slot!.generation ? -1 : 1));
    return writing.map((v) => {
      const intent = parseIntent(v.slot!.text);
      const finished = now();
      // One at a time, each fsynced, each after the chain's end as it is on disk.
      const { index, maxSeq } = this.state();
      return this.finishSlot(v.n, v.slot!, {
        id: intent.id ?? `unknown-generation-${v.slot!.generation}`,
        profile: intent.profile ?? 'unknown',
        status: 'failed',
        started: intent.started ?? finished,
        finished,
        bytes: 0,
        error: reason,
        recovered: reason,
      }, { head: index.head, maxSeq });
    });
  }
}

// ---------------------------------------------------------------- one capture

class Sink implements CaptureSink {
  readonly id: string;
  readonly location: string;
  readonly align: number;
  private readonly files: RecordFile[] = [];
  /** Where the next data file goes, from the record's start. */
  private nextData = BigInt(RECORD_HEADER_SIZE);
  private ended = false;

  constructor(
    private readonly store: Store,
    private readonly req: BeginRequest,
    private readonly slotNumber: number,
    private readonly slot: Slot,
    private readonly dataArea: bigint,
    private readonly chainEnd: ChainEnd,
  ) {
    this.id = req.id;
    this.location = `${store.location}@${slot.recordOffset}`;
    this.align = store.device.writer().offsetAlign;
  }

  openData(name: string, size: bigint): DataFile {
    this.assertOpen();
    if (typeof name !== 'string' || name === '') throw coded('EINVAL', `${this.location}: a data file needs a name`);
    if (this.files.some((f) => f.name === name)) throw coded('EEXIST', `${this.location}: data file ${name} exists`);
    if (size < 0n) throw coded('EINVAL', `${this.location}: data file ${name}: size ${size} is negative`);
    const end = this.nextData + roundUp(size);
    if (end > BigInt(RECORD_HEADER_SIZE) + this.dataArea) {
      throw coded('ENOSPC', `${this.location}: data file ${name} (${size} bytes, placed on a ${BLOCK}-byte boundary) goes beyond the ${this.dataArea} data bytes planned at begin()`);
    }
    const file = { name, offset: Number(this.nextData), size: Number(size) };
    this.files.push(file);
    this.nextData = end;
    return Object.freeze({ name, dest: this.store.device.writer(), base: this.slot.recordOffset + BigInt(file.offset), size });
  }

  commit(build: (previous: string | null) => Finish): IndexEntry {
    this.assertOpen();
    const finish = build(this.chainEnd.head);
    this.writeRecord(this.smallFiles(finish));
    const entry = this.store.finishSlot(this.slotNumber, this.slot, finish.entry, this.chainEnd);
    this.end();
    return entry;
  }

  fail(build: (previous: string | null) => Finish): IndexEntry | undefined {
    if (this.ended) return undefined;
    const notes: string[] = [];
    try {
      let finish: Finish | undefined;
      try {
        finish = build(this.chainEnd.head);
      } catch (err) {
        notes.push(`no manifest: ${(err as Error).message}`);
      }
      let entry: Omit<IndexEntry, 'seq' | 'prev' | 'location'> = finish?.entry ?? {
        id: this.req.id, profile: this.req.profile, status: 'failed' as const, started: this.req.started, finished: now(), bytes: 0,
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
    this.store.released(this);
  }
}

// ---------------------------------------------------------------- reading a record

class RecordReader implements CaptureReader {
  private readonly fd: number;

  constructor(
    readonly entry: IndexEntry,
    readonly location: string,
    devicePath: string,
    private readonly recordOffset: bigint,
    private readonly table: RecordFile[],
  ) {
    // Its own fd: a reader outlives nothing, but need not die with the store either.
    this.fd = fs.openSync(devicePath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  }

  files(): Array<{ name: string; size: number }> {
    return this.table.map((f) => ({ name: f.name, size: f.size }));
  }

  readFile(name: string): Buffer {
    return this.read(name, 0, this.file(name).size);
  }

  read(name: string, offset: number, length: number): Buffer {
    const f = this.file(name);
    if (offset < 0 || length < 0) throw coded('EINVAL', `${this.location}: ${name}: offset and length must be >= 0`);
    const n = Math.max(0, Math.min(length, f.size - offset));
    const b = Buffer.alloc(n);
    const at = this.recordOffset + BigInt(f.offset + offset);
    for (let got = 0; got < n; ) {
      const r = fs.readSync(this.fd, b, got, n - got, at + BigInt(got));
      if (r === 0) throw coded('EIO', `${this.location}: ${name}: unexpected end of device`);
      got += r;
    }
    return b;
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  private file(name: string): RecordFile {
    const f = this.table.find((t) => t.name === name);
    if (!f) throw coded('ENOENT', `${this.location}: capture ${this.entry.id} has no file ${name}`);
    return f;
  }
}
