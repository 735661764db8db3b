/**
 * Plan → run → finish: one capture, from a profile and the events that
 * asked for it, to a published capture and its index entry.
 *
 * The data is written by the native engine (zero-copy where the source
 * allows) into the destination's data files; the ELF container's headers
 * go first, in one aligned write.  The manifest is built last, under the
 * destination's lock, chained to the index, optionally signed, and only
 * then is the capture published as complete.  Any failure after the first
 * byte leaves a failed capture with a manifest that says what happened;
 * nothing is ever shown complete that is not.
 */
import * as crypto from 'node:crypto';

import type { Profile } from '../config/profile';
import type { Logger } from '../core/logger';
import { validators } from '../config/schemas';
import { hostElfTarget, layoutElfCore, NOTE_PHYSCAP, NOTE_VMCOREINFO } from '../container/elf';
import type { ElfLayout, ElfNote } from '../container/elf';
import { openStore } from '../destinations/registry';
import type { CaptureSink, CaptureStore, DataFile, Finish, IndexEntry } from '../destinations/types';
import { headOf, signHead } from '../manifest/head';
import { hostInfo, versions } from '../manifest/host';
import { loadPrivateKey, sign, signerId, SIGNATURE_FILE } from '../manifest/sign';
import { SUMS_FILE, sumsFile } from '../manifest/sums';
import type { Manifest, ManifestFile, ManifestRegion } from '../manifest/types';
import { capture, CaptureResult, createFileHash, DurableWrite, FileHash, hashStored, writeAligned } from '../native/binding';
import type { TriggerEvent } from '../triggers/event';
import { CapturePlan, DATA_ALIGN, planCapture, PlannedRegion } from './plan';
import { readVmcoreinfo } from './vmcoreinfo';

export const ELF_FILE = 'core.elf';

/** Chunk digests beyond this many go to a sidecar file instead of the manifest. */
const INLINE_CHUNKS = 64;

export interface CaptureOutcome {
  id: string;
  status: 'complete' | 'failed';
  /** Where it is: the capture's directory, or device@record. */
  location: string;
  entry?: IndexEntry;
  manifest?: Manifest;
  bytes: number;
  seconds: number;
  error?: { code?: string; message: string };
  /** Captures retention removed after this one completed. */
  removed: string[];
}

export interface CaptureOptions {
  signal?: AbortSignal;
  log?: Logger;
  /** Bytes written so far of all regions, and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Tests: a plan made elsewhere (fixed id, iomem file). */
  plan?: CapturePlan;
  /** The capture's id (the agent's scheduler names it first); default: a new one. */
  id?: string;
  /** Tests: an already open store. */
  store?: CaptureStore;
  /** Set by runCapture from its input. */
  events?: readonly TriggerEvent[];
  /** The VMCOREINFO note's text to carry (an import's); default: the running kernel's, for kernel-source ELF captures. */
  vmcoreinfo?: string | null;
  /** More for the PHYSCAP note (an import's provenance). */
  note?: Record<string, unknown>;
}

const hex = (n: bigint) => `0x${n.toString(16)}`;

function errorOf(err: unknown): { code?: string; message: string } {
  const e = err as { code?: string; message?: string };
  return { code: typeof e?.code === 'string' ? e.code : undefined, message: e?.message ?? String(err) };
}

function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

function triggersOf(events: readonly TriggerEvent[]): Manifest['triggers'] {
  return events.map((e, i) => ({
    kind: e.kind,
    time: new Date(e.time).toISOString(),
    ...(e.reason ? { reason: e.reason } : {}),
    ...(e.detail ? { detail: e.detail } : {}),
    coalesced: i > 0,
  }));
}

/**
 * What a durable capture's record adds to its intent (CaptureSink.markDurable):
 * enough to finish it from its data alone after a crash (capture/durable.ts).
 */
export interface DurableNote {
  /** When every byte was on the disk. */
  at: string;
  format: 'elf' | 'raw';
  byteOrder: 'little' | 'big';
  source: CaptureResult['source'];
  /** The chunk digests' size the capture was made with (0: none). */
  chunkSize: number;
  triggers: Manifest['triggers'];
  /** Each region as its manifest entry will be, without digests. */
  regions: Array<Omit<ManifestRegion, 'sha256' | 'chunkSize' | 'chunks' | 'digest'>>;
  files: Array<{ name: string; size: number }>;
}

function noteOf(r: ManifestRegion): DurableNote['regions'][number] {
  const { sha256: _s, chunkSize: _c, chunks: _k, digest: _d, ...rest } = r;
  return rest;
}

/** What one region's capture produced, in manifest form, plus its sidecar if any. */
function regionRecord(
  r: PlannedRegion,
  res: CaptureResult | undefined,
  source: CaptureResult['source'],
  file: string,
  offset: bigint,
  chunkSize: number,
): { region: ManifestRegion; sidecar?: { name: string; data: Buffer } } {
  const chunks = res?.chunkSha256 ?? [];
  let sidecar: { name: string; data: Buffer } | undefined;
  let chunkField: ManifestRegion['chunks'] = chunks;
  if (chunks.length > INLINE_CHUNKS) {
    const data = Buffer.from(chunks.map((c) => `${c}\n`).join(''));
    sidecar = { name: `${r.name}.chunks`, data };
    chunkField = { file: sidecar.name, count: chunks.length, sha256: sha256(data) };
  }
  return {
    region: {
      name: r.name,
      phys: hex(r.start),
      size: Number(r.size),
      source: res?.source ?? source,
      // A region never reached says so; the counts say how many bytes moved and how.
      mode: res?.mode ?? 'none',
      // An opt-in to read what is not known to be RAM is part of the record.
      ...(r.allowDevice ? { allowDevice: true as const } : {}),
      bytesZeroCopy: res?.bytesZeroCopy ?? 0,
      bytesCopied: res?.bytesCopied ?? 0,
      bytesBounced: res?.bytesBounced ?? 0,
      bytesPoisoned: res?.bytesPoisoned ?? 0,
      memory: r.live ? 'live' : 'quiescent',
      digest: res?.hashMode === 'readback' ? 'read-back' : 'concurrent',
      file,
      offset: Number(offset),
      sha256: res?.sha256 ?? '',
      chunkSize: res ? chunkSize : 0,
      chunks: chunkField,
    },
    sidecar,
  };
}

/**
 * What computes the digests: OpenSSL's SHA-256 (the one linked into Node,
 * which uses the CPU's SHA extensions where it has them), in physcap.node's
 * threads.
 */
function digestEngine(): string {
  return `OpenSSL ${process.versions.openssl} (user space)`;
}

/** One capture being written: the layout, the per-region records, and the manifest at the end. */
export class CaptureRun {
  readonly regions: ManifestRegion[] = [];
  readonly sidecars: Array<{ name: string; data: Buffer }> = [];
  private readonly files: ManifestFile[] = [];
  byteOrder: 'little' | 'big' = 'little';
  /** Where each region goes (ELF: its offset in core.elf), known once laid out. */
  private readonly placement = new Map<string, { file: string; offset: bigint }>();
  bytesDone = 0;
  failedRegion?: string;
  /** The record's intent (Capture.begin): the durable note extends it. */
  intent: Record<string, unknown> = {};
  private elfSize = 0n;
  /** When the last region's bytes were on the disk, and when its digests were done. */
  private durable?: Date;
  private digested?: Date;

  private events: readonly TriggerEvent[];
  private started: Date;

  constructor(
    readonly plan: CapturePlan,
    readonly sink: CaptureSink,
    private readonly o: CaptureOptions,
  ) {
    this.events = o.events ?? [];
    this.started = plan.started;
  }

  /**
   * What set it off, when it is known only later (an armed capture: the
   * pretimeout the kernel reports); its start is then the first event's time.
   */
  firedBy(events: readonly TriggerEvent[]): void {
    this.events = events;
    if (events[0]) this.started = new Date(events[0].time);
  }

  /**
   * Every byte is on the disk, the digests may still run: the record says
   * so, with what finishing it needs (capture/durable.ts), so a crash from
   * here on loses no capture.  A record that cannot say so is logged: the
   * capture goes on and ends the same way.
   */
  private durableNow(r: PlannedRegion, w: DurableWrite, file: string, offset: bigint): void {
    const note: DurableNote = {
      at: new Date().toISOString(),
      format: this.plan.format,
      byteOrder: this.byteOrder,
      source: this.plan.source,
      chunkSize: Number(this.plan.profile.hash.chunkSize),
      triggers: triggersOf(this.events),
      regions: [
        ...this.regions.map(noteOf),
        noteOf(
          regionRecord(r, { ...w, hashMode: 'none', chunkSha256: [], seconds: 0, hashSeconds: 0, digestSeconds: 0 }, this.plan.source, file, offset, 0).region,
        ),
      ],
      files:
        this.plan.format === 'elf'
          ? [{ name: ELF_FILE, size: Number(this.elfSize) }]
          : this.plan.regions.map((x) => ({ name: `${x.name}.raw`, size: Number(x.size) })),
    };
    try {
      this.sink.markDurable(Buffer.from(`${JSON.stringify({ ...this.intent, durable: note })}\n`));
    } catch (err) {
      this.o.log?.warn(
        { capture: this.plan.id, err: (err as Error).message },
        'the capture is durable but its record could not say so; a crash before its digests are done records it failed',
      );
    }
  }

  /**
   * A part of the capture reached the disk (durable) and was hashed
   * (digested): the capture's times are its last part's.
   */
  reached(durable: Date, digested: Date): void {
    if (!this.durable || durable > this.durable) this.durable = durable;
    if (!this.digested || digested > this.digested) this.digested = digested;
  }

  /** A file the capture's data went to that was written outside the run (by the kernel), with its digest. */
  addFile(file: ManifestFile): void {
    this.files.push(file);
  }

  get total(): number {
    return this.plan.regions.reduce((a, r) => a + Number(r.size), 0);
  }

  private hashMode(r: PlannedRegion): 'source' | 'readback' {
    const rb = this.plan.profile.hash.readback;
    return rb === 'always' || (rb === 'auto' && r.live) ? 'readback' : 'source';
  }

  /**
   * Every region is to be hashed as it reads back from the disk: then all
   * of them are written first, with no digest beside the writer, and hashed
   * after, in one pass over the stored file (hashStored, as verify does).
   * A capture is durable when its last region is, so hashing region by
   * region behind the writer made a capture of many ranges wait for every
   * range's digests but the last before it was safe; and a live range is
   * read from memory over a shorter window when no hashing thread competes
   * with the writer for the CPU.
   */
  private get digestsAfterWrite(): boolean {
    return this.plan.regions.every((r) => this.hashMode(r) === 'readback');
  }

  /**
   * Hashes what one data file holds, from the disk, and records its regions
   * with their write figures and those digests.  `placed`: the regions in
   * the file, in file order, with what their writes did.
   */
  private async digestStored(
    data: DataFile,
    size: bigint,
    placed: ReadonlyArray<{ r: PlannedRegion; offset: bigint; write: CaptureResult }>,
    elf: boolean,
  ): Promise<ManifestFile> {
    const chunkSize = Number(this.plan.profile.hash.chunkSize);
    // As a capture hashed behind its writer: an ELF core's regions by their chunks and the gaps, a raw region by its file's digest.
    const covered = elf && chunkSize > 0;
    const digests = await hashStored({
      path: data.dest.path,
      base: data.base,
      size,
      nofollow: true,
      gaps: covered,
      regions: placed.map(({ offset, r }) => ({ offset, length: r.size, chunkSize, whole: elf && chunkSize === 0 })),
      signal: this.o.signal,
    });
    if (BigInt(digests.size) !== size) {
      throw Object.assign(new Error(`${data.name}: ${digests.size} of its ${size} bytes read back from the disk`), { code: 'EIO' });
    }
    placed.forEach(({ r, offset, write }, i) => {
      const d = digests.regions[i]!;
      const sha = elf ? d.sha256 : digests.sha256;
      this.record(r, { ...write, hashMode: 'readback', ...(sha ? { sha256: sha } : {}), chunkSha256: d.chunkSha256 }, data.name, offset);
    });
    return { name: data.name, size: Number(size), sha256: digests.sha256, ...(covered ? { gapsSha256: digests.gapsSha256 } : {}) };
  }

  /** One region into a data file at an offset; the file hash (ELF) gets its bytes too. */
  private async region(r: PlannedRegion, data: DataFile, offset: bigint, truncate: boolean, fileHash?: FileHash): Promise<CaptureResult> {
    const p = this.plan.profile;
    // The last region's data reaching the disk makes the whole capture durable.
    const last = r === this.plan.regions[this.plan.regions.length - 1];
    const before = this.bytesDone;
    this.failedRegion = r.name;
    const began = Date.now();
    const chunkSize = Number(p.hash.chunkSize);
    const res = await capture({
      source: this.plan.source,
      sourcePath: this.plan.source === 'image' ? p.source.imagePath : undefined,
      ...(r.imageOffset !== undefined ? { imageBase: r.start, imageOffset: r.imageOffset } : { imageBase: p.source.imageBase }),
      phys: r.start,
      length: r.size,
      allowMmio: r.allowDevice,
      dest: data.dest,
      destOffset: data.base + offset,
      truncate,
      hash: this.digestsAfterWrite ? 'none' : this.hashMode(r),
      // In a file of its own the region's digest is the file's; in an ELF
      // core its chunk digests and the core's digest cover it, and a third
      // in-order digest of the same bytes would cost a core.
      whole: fileHash === undefined || chunkSize === 0,
      chunkSize: this.digestsAfterWrite ? 0 : chunkSize,
      fileHash,
      ...(last ? { onDurable: (w: DurableWrite) => this.durableNow(r, w, data.name, offset) } : {}),
      signal: this.o.signal,
      onProgress: (pr) => this.o.onProgress?.(before + pr.bytesWritten, this.total),
    });
    this.failedRegion = undefined;
    this.reached(new Date(began + res.durableSeconds * 1000), new Date(began + res.digestSeconds * 1000));
    this.bytesDone = before + Number(r.size);
    this.o.onProgress?.(this.bytesDone, this.total);
    return res;
  }

  /** A region's record; one recorded before (its write, then its digests) is replaced in place. */
  record(r: PlannedRegion, res: CaptureResult | undefined, file: string, offset: bigint): void {
    const { region, sidecar } = regionRecord(r, res, this.plan.source, file, offset, Number(this.plan.profile.hash.chunkSize));
    const before = this.regions.findIndex((x) => x.name === r.name);
    if (before >= 0) this.regions[before] = region;
    else this.regions.push(region);
    if (sidecar) this.sidecars.push(sidecar);
  }

  async raw(): Promise<void> {
    if (this.digestsAfterWrite) return this.rawThenDigests();
    for (const r of this.plan.regions) {
      const name = `${r.name}.raw`;
      this.failedRegion = r.name;
      const data = this.sink.openData(name, r.size);
      // A file ends where its region ends; a block device record keeps its planned extent.
      let res: CaptureResult | undefined;
      try {
        res = await this.region(r, data, 0n, data.base === 0n, undefined);
      } catch (err) {
        this.record(r, (err as { partial?: CaptureResult }).partial, name, 0n);
        throw err;
      }
      this.record(r, res, name, 0n);
      this.files.push({ name, size: Number(r.size), sha256: res.sha256 ?? '' });
    }
  }

  /** raw(), every file written before any is hashed (digestsAfterWrite). */
  private async rawThenDigests(): Promise<void> {
    const written: Array<{ r: PlannedRegion; data: DataFile; write: CaptureResult }> = [];
    for (const r of this.plan.regions) {
      const data = this.sink.openData(`${r.name}.raw`, r.size);
      const write = await this.writeOnly(r, data, 0n, data.base === 0n);
      written.push({ r, data, write });
    }
    for (const { r, data, write } of written) {
      this.files.push(await this.digestStored(data, r.size, [{ r, offset: 0n, write }], false));
    }
    this.reached(this.durable ?? new Date(), new Date());
  }

  /**
   * One region written with no digest (digestsAfterWrite) and recorded with
   * its write's figures, so a failure from here on, and the durable note,
   * say what reached the disk; digestStored() records it again with its digests.
   */
  private async writeOnly(r: PlannedRegion, data: DataFile, offset: bigint, truncate: boolean): Promise<CaptureResult> {
    let write: CaptureResult;
    try {
      write = await this.region(r, data, offset, truncate, undefined);
    } catch (err) {
      this.record(r, (err as { partial?: CaptureResult }).partial, data.name, offset);
      throw err;
    }
    this.record(r, write, data.name, offset);
    return write;
  }

  /**
   * The ELF container laid out: core.elf preallocated, its header written,
   * each region's offset known.  The regions are written next, by the
   * engine (elf()) or by the kernel on a watchdog pretimeout (armed.ts).
   */
  layoutElf(vmcoreinfo: string | null, o: { trailer?: number } = {}): { data: DataFile; layout: ElfLayout; trailerAt?: bigint } {
    const target = this.plan.target ?? hostElfTarget();
    this.byteOrder = target.bigEndian ? 'big' : 'little';
    const p = this.plan.profile;
    const meta = {
      id: this.plan.id,
      profile: p.name,
      regions: this.plan.regions.map((r) => ({ name: r.name, phys: hex(r.start), size: Number(r.size) })),
      ...this.o.note,
    };
    const notes: ElfNote[] = [{ ...NOTE_PHYSCAP, desc: Buffer.from(JSON.stringify(meta)) }];
    if (vmcoreinfo) notes.push({ ...NOTE_VMCOREINFO, desc: Buffer.from(vmcoreinfo) });
    const align = Math.max(Number(DATA_ALIGN), this.sink.align);
    const kernel = this.plan.kernel;
    const layout = layoutElfCore({
      target,
      regions: this.plan.regions.map((r, i) => ({ paddr: r.start, size: r.size, vaddr: kernel?.vaddrs[i] ?? 0n })),
      aliases: kernel?.aliases,
      notes,
      align,
    });
    this.plan.regions.forEach((r, i) => this.placement.set(r.name, { file: ELF_FILE, offset: layout.regionOffsets[i]! }));
    // A trailer (an armed capture's stamp block) goes after the last region,
    // aligned; ELF readers stop at the last segment, and the file's digest covers it.
    const trailerAt = o.trailer ? ((layout.fileSize + BigInt(align) - 1n) / BigInt(align)) * BigInt(align) : undefined;
    const data = this.sink.openData(ELF_FILE, trailerAt !== undefined ? trailerAt + BigInt(o.trailer!) : layout.fileSize);
    if (BigInt(align) % BigInt(data.dest.offsetAlign) !== 0n) {
      throw Object.assign(new Error(`${data.dest.path}: direct I/O needs ${data.dest.offsetAlign}-byte alignment, more than the container's ${align}`), {
        code: 'EINVAL',
      });
    }
    writeAligned(data.dest, data.base, layout.header);
    if (trailerAt !== undefined) {
      // Zeros from the last region's last block to the trailer's end: a
      // ring's old bytes there must never read as padding, or as a stamp.
      const block = BigInt(data.dest.offsetAlign);
      const from = ((layout.fileSize + block - 1n) / block) * block;
      writeAligned(data.dest, data.base + from, Buffer.alloc(Number(trailerAt + BigInt(o.trailer!) - from)));
    }
    return { data, layout, ...(trailerAt !== undefined ? { trailerAt } : {}) };
  }

  /**
   * The gap after region i must read as zeros on any destination (a block
   * device's ring holds older data there): the engine zero-pads to the
   * device's block, this pads the rest, before the region is written, so
   * the region's sync makes it durable with the region.
   */
  private padAfter(i: number, data: DataFile, layout: ElfLayout): void {
    const r = this.plan.regions[i]!;
    const offset = layout.regionOffsets[i]!;
    const next = i + 1 < this.plan.regions.length ? layout.regionOffsets[i + 1]! : layout.fileSize;
    const block = BigInt(data.dest.offsetAlign);
    const padFrom = ((offset + r.size + block - 1n) / block) * block;
    if (padFrom < next) writeAligned(data.dest, data.base + padFrom, Buffer.alloc(Number(next - padFrom)));
  }

  async elf(vmcoreinfo: string | null): Promise<void> {
    const { data, layout } = this.layoutElf(vmcoreinfo);
    this.elfSize = layout.fileSize;
    if (this.digestsAfterWrite) return this.elfThenDigests(data, layout);
    const name = ELF_FILE;
    const fileHash = createFileHash();
    // The bytes outside the regions (headers, notes, padding), in file order:
    // with the regions' chunk digests they cover every byte (ManifestFile.gapsSha256).
    const gaps = createFileHash();
    fileHash.update(layout.header);
    gaps.update(layout.header);
    let pos = BigInt(layout.header.length);
    for (const [i, r] of this.plan.regions.entries()) {
      const offset = layout.regionOffsets[i]!;
      fileHash.updateZeros(offset - pos);
      gaps.updateZeros(offset - pos);
      this.padAfter(i, data, layout);
      let res: CaptureResult;
      try {
        res = await this.region(r, data, offset, false, fileHash);
      } catch (err) {
        this.record(r, (err as { partial?: CaptureResult }).partial, name, offset);
        throw err;
      }
      this.record(r, res, name, offset);
      pos = offset + r.size;
    }
    fileHash.updateZeros(layout.fileSize - pos);
    gaps.updateZeros(layout.fileSize - pos);
    const covered = this.plan.profile.hash.chunkSize > 0n;
    this.files.push({ name, size: Number(layout.fileSize), sha256: fileHash.digest(), ...(covered ? { gapsSha256: gaps.digest() } : {}) });
  }

  /** elf(), every region written before the stored core is hashed in one pass (digestsAfterWrite). */
  private async elfThenDigests(data: DataFile, layout: ElfLayout): Promise<void> {
    const written: Array<{ r: PlannedRegion; offset: bigint; write: CaptureResult }> = [];
    for (const [i, r] of this.plan.regions.entries()) {
      const offset = layout.regionOffsets[i]!;
      this.padAfter(i, data, layout);
      written.push({ r, offset, write: await this.writeOnly(r, data, offset, false) });
    }
    this.files.push(await this.digestStored(data, layout.fileSize, written, true));
    this.reached(this.durable ?? new Date(), new Date());
  }

  /** The manifest and the files beside it, for commit or fail. */
  finish(previous: string | null, status: 'complete' | 'failed', error?: { code?: string; message: string }, key?: crypto.KeyObject): Finish {
    const p = this.plan.profile;
    const finished = new Date();
    const seconds = (finished.getTime() - this.started.getTime()) / 1000;
    if (status === 'failed') {
      // Every planned region is in the record; those never reached say so (no digest, no bytes).
      const recorded = new Set(this.regions.map((r) => r.name));
      for (const r of this.plan.regions) {
        if (recorded.has(r.name)) continue;
        const at = this.placement.get(r.name) ?? { file: this.plan.format === 'raw' ? `${r.name}.raw` : 'core.elf', offset: 0n };
        this.record(r, undefined, at.file, at.offset);
      }
    }
    const bytes = this.regions.reduce((a, r) => a + (status === 'complete' ? r.size : r.bytesZeroCopy + r.bytesCopied + r.bytesBounced), 0);
    const manifest: Manifest = {
      apiVersion: 'physcap.dev/v1',
      kind: 'CaptureManifest',
      id: this.plan.id,
      status,
      ...(error ? { error: { ...error, ...(this.failedRegion ? { region: this.failedRegion } : {}) } } : {}),
      profile: { name: p.name, file: p.file, sha256: p.textSha256 },
      labels: { ...p.labels },
      triggers: triggersOf(this.events),
      host: hostInfo(),
      versions: versions(this.plan.source === 'kernel'),
      format: this.plan.format,
      byteOrder: this.byteOrder,
      regions: this.regions,
      files: [...this.files, ...this.sidecars.map((s) => ({ name: s.name, size: s.data.length, sha256: sha256(s.data) }))],
      timing: {
        started: this.started.toISOString(),
        finished: finished.toISOString(),
        seconds,
        bytesPerSecond: seconds > 0 ? Math.round(bytes / seconds) : 0,
        ...(status === 'complete' && this.durable && this.digested ? { durable: this.durable.toISOString(), digested: this.digested.toISOString() } : {}),
      },
      digestEngine: digestEngine(),
      previous,
      ...(key ? { signature: { algorithm: 'ed25519' as const, keyId: signerId(key), file: SIGNATURE_FILE } } : {}),
    };
    const validate = validators().manifest;
    if (!validate(manifest)) {
      // A bug, not bad input: say exactly what, and never publish it as complete.
      throw new Error(`internal error: the manifest does not match its schema: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
    }
    const text = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    const extra = [...this.sidecars];
    if (key) extra.push({ name: SIGNATURE_FILE, data: sign(text, key) });
    const summed = [
      ...manifest.files,
      ...extra.filter((f) => f.name === SIGNATURE_FILE).map((f) => ({ name: f.name, sha256: sha256(f.data) })),
      { name: 'manifest.json', sha256: sha256(text) },
    ];
    extra.push({ name: SUMS_FILE, data: sumsFile(summed) });
    return {
      manifest: text,
      files: extra,
      ...(key ? { signHead: (e: IndexEntry) => signHead(e, key) } : {}),
      entry: {
        id: this.plan.id,
        profile: p.name,
        status,
        started: manifest.timing.started,
        finished: manifest.timing.finished,
        bytes,
        manifestSha256: sha256(text),
        ...(error ? { error: `${error.code ? `${error.code}: ` : ''}${error.message}` } : {}),
      },
    };
  }
}

export interface RunInput {
  profile: Profile;
  /** The events that asked for it; the first started it. */
  events: readonly TriggerEvent[];
}

/** The signing key, or undefined (logged) when it cannot be loaded: evidence first, the capture is still taken. */
function signingKey(p: Profile, log: Logger | undefined): crypto.KeyObject | undefined {
  if (!p.signingKey) return undefined;
  try {
    return loadPrivateKey(p.signingKey);
  } catch (err) {
    log?.error({ profile: p.name, err: (err as Error).message }, 'manifest will not be signed');
    return undefined;
  }
}

/** How a capture ended, in words for the log and the outcome. */
interface EndOptions {
  /** The log line's message. */
  message?: string;
  /** More fields for the log line. */
  fields?: Record<string, unknown>;
  /** Why it is finished now and not when it was written (start-up recovery): kept in its index entry. */
  recovered?: string;
  /** The outcome's figures when they are not the run's own (an armed capture: the kernel's). */
  bytes?: number;
  seconds?: number;
}

/**
 * One capture from its begin to its end, whoever writes its bytes: the
 * engine (a triggered capture, an import) or physcap.ko (an armed one).
 * begin() checks space and starts the destination's record with an
 * intent; complete() and fail() publish it, apply retention and say what
 * happened, the same way for every capture.
 */
export class Capture {
  private readonly t0 = Date.now();
  private closed = false;

  private constructor(
    readonly plan: CapturePlan,
    readonly store: CaptureStore,
    readonly sink: CaptureSink,
    readonly run: CaptureRun,
    private readonly key: crypto.KeyObject | undefined,
    private readonly log: Logger | undefined,
    private readonly ownStore: boolean,
  ) {}

  /**
   * Starts a capture: the store opened (unless given), space checked, the
   * record begun with its intent (`intent` adds fields to it).  Throws,
   * leaving nothing behind, when it cannot start.
   */
  static begin(plan: CapturePlan, o: CaptureOptions & { intent?: Record<string, unknown> } = {}): Capture {
    const p = plan.profile;
    const key = signingKey(p, o.log);
    const store = o.store ?? openStore(p.destination);
    try {
      store.checkSpace(plan.dataBytes + BigInt(plan.smallBytes));
      const intent = {
        id: plan.id,
        profile: p.name,
        started: plan.started.toISOString(),
        regions: plan.regions.map((r) => ({ name: r.name, phys: hex(r.start), size: Number(r.size) })),
        ...o.intent,
      };
      const sink = store.begin({
        id: plan.id,
        profile: p.name,
        started: plan.started.toISOString(),
        dataBytes: plan.dataBytes,
        smallBytes: plan.smallBytes,
        intent: Buffer.from(`${JSON.stringify(intent)}\n`),
      });
      const run = new CaptureRun(plan, sink, o);
      run.intent = intent;
      return new Capture(plan, store, sink, run, key, o.log, !o.store);
    } catch (err) {
      if (!o.store) store.close();
      throw err;
    }
  }

  /** A capture a crash left unfinished, reopened to be finished (store.resume()). */
  static resume(plan: CapturePlan, store: CaptureStore, sink: CaptureSink, o: CaptureOptions = {}): Capture {
    return new Capture(plan, store, sink, new CaptureRun(plan, sink, o), signingKey(plan.profile, o.log), o.log, false);
  }

  private outcome(status: 'complete' | 'failed', entry: IndexEntry | undefined, o: EndOptions, extra: Partial<CaptureOutcome>): CaptureOutcome {
    return {
      id: this.plan.id,
      status,
      location: entry ? this.store.where(entry) : this.sink.location,
      entry,
      bytes: o.bytes ?? (status === 'complete' ? (entry?.bytes ?? 0) : this.run.bytesDone),
      seconds: o.seconds ?? (Date.now() - this.t0) / 1000,
      removed: [],
      ...extra,
    };
  }

  /**
   * Publishes the capture as complete.  A failure to publish is recorded
   * as a failed capture (never thrown): its outcome says why.
   */
  complete(o: EndOptions = {}): CaptureOutcome {
    const p = this.plan.profile;
    let finish: Finish | undefined;
    let entry: IndexEntry;
    try {
      entry = this.sink.commit((prev) => {
        finish = this.run.finish(prev, 'complete', undefined, this.key);
        return o.recovered ? { ...finish, entry: { ...finish.entry, recovered: o.recovered } } : finish;
      });
    } catch (err) {
      const error = errorOf(err);
      return this.fail({ ...error, message: `publishing failed: ${error.message}` }, { ...o, message: 'capture failed while publishing' });
    }
    for (const w of this.store.takeWarnings?.() ?? []) this.log?.warn({ capture: this.plan.id }, w);
    const manifest = JSON.parse(finish!.manifest.toString('utf8')) as Manifest;
    let removed: string[] = [];
    try {
      removed = this.store.retain(entry.location);
    } catch (err) {
      this.log?.error({ capture: this.plan.id, err: (err as Error).message }, 'retention failed; nothing more was removed');
    }
    const out = this.outcome('complete', entry, o, { manifest, removed });
    // indexHead: the witness kept outside the destination (the journal); `verify --head SEQ:HASH` checks it.
    const head = headOf(entry);
    this.log?.info(
      {
        capture: this.plan.id,
        profile: p.name,
        location: out.location,
        bytes: entry.bytes,
        seconds: manifest.timing.seconds,
        removed,
        indexHead: `${head.seq}:${head.head}`,
        ...(o.recovered ? { recovered: o.recovered } : {}),
        ...o.fields,
      },
      o.message ?? 'capture complete',
    );
    return out;
  }

  /**
   * Records the capture as failed: the data written so far kept, a
   * manifest that says why, an index entry.  Without one (the index could
   * not be written) the record stays unfinished and the next start
   * records it.
   */
  fail(error: { code?: string; message: string }, o: EndOptions = {}): CaptureOutcome {
    const entry = this.sink.fail((prev) => {
      const f = this.run.finish(prev, 'failed', error, this.key);
      return o.recovered ? { ...f, entry: { ...f.entry, recovered: o.recovered } } : f;
    });
    const out = this.outcome('failed', entry, o, { error });
    this.log?.error(
      { capture: this.plan.id, profile: this.plan.profile.name, location: out.location, error, recorded: Boolean(entry), ...o.fields },
      o.message ?? 'capture failed',
    );
    return out;
  }

  /** Nothing was captured (an armed capture disarmed): the record is removed, no index entry. */
  discard(): void {
    this.sink.discard();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ownStore) this.store.close();
  }
}

/**
 * Runs one capture to the end.  Resolves with the outcome whether it
 * completed or failed (a failure is recorded, not thrown); rejects only if
 * it failed before anything was written (plan, space, destination).
 */
export async function runCapture(input: RunInput, o: CaptureOptions = {}): Promise<CaptureOutcome> {
  const p = input.profile;
  const plan = o.plan ?? planCapture(p, { id: o.id });
  const log = o.log;
  const c = Capture.begin(plan, { ...o, events: input.events });
  try {
    const vmcoreinfo = o.vmcoreinfo !== undefined ? o.vmcoreinfo : plan.format === 'elf' && plan.source === 'kernel' ? readVmcoreinfo() : null;
    log?.info(
      { capture: plan.id, profile: p.name, location: c.sink.location, source: plan.source, format: plan.format, regions: plan.regions.length },
      'capture started',
    );
    if (plan.kernelViewMissing)
      log?.warn(
        { capture: plan.id, why: plan.kernelViewMissing },
        'physcap.ko does not say where the kernel maps memory (ABI 3); the core carries physical addresses only, which crash, drgn and gdb cannot read by symbol',
      );
    try {
      await (plan.format === 'elf' ? c.run.elf(vmcoreinfo) : c.run.raw());
    } catch (err) {
      return c.fail(errorOf(err));
    }
    return c.complete();
  } finally {
    c.close();
  }
}
