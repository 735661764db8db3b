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
import { capture, CaptureResult, createFileHash, FileHash, writeAligned } from '../native/binding';
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

/** What one region's capture produced, in manifest form, plus its sidecar if any. */
function regionRecord(r: PlannedRegion, res: CaptureResult | undefined, source: CaptureResult['source'], file: string, offset: bigint, chunkSize: number): { region: ManifestRegion; sidecar?: { name: string; data: Buffer } } {
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

/** One capture being written: the layout, the per-region records, and the manifest at the end. */
export class CaptureRun {
  readonly regions: ManifestRegion[] = [];
  readonly sidecars: Array<{ name: string; data: Buffer }> = [];
  readonly files: ManifestFile[] = [];
  byteOrder: 'little' | 'big' = 'little';
  /** Where each region goes (ELF: its offset in core.elf), known once laid out. */
  private readonly placement = new Map<string, { file: string; offset: bigint }>();
  bytesDone = 0;
  failedRegion?: string;

  constructor(
    readonly plan: CapturePlan,
    readonly sink: CaptureSink,
    readonly o: CaptureOptions,
  ) {}

  get total(): number {
    return this.plan.regions.reduce((a, r) => a + Number(r.size), 0);
  }

  private hashMode(r: PlannedRegion): 'source' | 'readback' {
    const rb = this.plan.profile.hash.readback;
    return rb === 'always' || (rb === 'auto' && r.live) ? 'readback' : 'source';
  }

  /** One region into a data file at an offset; the file hash (ELF) gets its bytes too. */
  private async region(r: PlannedRegion, data: DataFile, offset: bigint, truncate: boolean, fileHash?: FileHash): Promise<CaptureResult> {
    const p = this.plan.profile;
    const before = this.bytesDone;
    this.failedRegion = r.name;
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
      hash: this.hashMode(r),
      chunkSize: Number(p.hash.chunkSize),
      fileHash,
      signal: this.o.signal,
      onProgress: (pr) => this.o.onProgress?.(before + pr.bytesWritten, this.total),
    });
    this.failedRegion = undefined;
    this.bytesDone = before + Number(r.size);
    this.o.onProgress?.(this.bytesDone, this.total);
    return res;
  }

  record(r: PlannedRegion, res: CaptureResult | undefined, file: string, offset: bigint): void {
    const { region, sidecar } = regionRecord(r, res, this.plan.source, file, offset, Number(this.plan.profile.hash.chunkSize));
    this.regions.push(region);
    if (sidecar) this.sidecars.push(sidecar);
  }

  async raw(): Promise<void> {
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

  /**
   * The ELF container laid out: core.elf preallocated, its header written,
   * each region's offset known.  The regions are written next, by the
   * engine (elf()) or by the kernel on a watchdog pretimeout (armed.ts).
   */
  layoutElf(vmcoreinfo: string | null): { data: DataFile; layout: ElfLayout } {
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
    const data = this.sink.openData(ELF_FILE, layout.fileSize);
    if (BigInt(align) % BigInt(data.dest.offsetAlign) !== 0n) {
      throw Object.assign(new Error(`${data.dest.path}: direct I/O needs ${data.dest.offsetAlign}-byte alignment, more than the container's ${align}`), { code: 'EINVAL' });
    }
    writeAligned(data.dest, data.base, layout.header);
    return { data, layout };
  }

  async elf(vmcoreinfo: string | null): Promise<void> {
    const { data, layout } = this.layoutElf(vmcoreinfo);
    const name = ELF_FILE;
    const fileHash = createFileHash();
    fileHash.update(layout.header);
    let pos = BigInt(layout.header.length);
    for (const [i, r] of this.plan.regions.entries()) {
      const offset = layout.regionOffsets[i]!;
      fileHash.updateZeros(offset - pos);
      let res: CaptureResult;
      try {
        res = await this.region(r, data, offset, false, fileHash);
      } catch (err) {
        this.record(r, (err as { partial?: CaptureResult }).partial, name, offset);
        throw err;
      }
      this.record(r, res, name, offset);
      pos = offset + r.size;
      // The gap to the next aligned offset must read as zeros on any
      // destination (a block device's ring holds older data there): the
      // engine zero-pads to the device's block, this pads the rest.
      const next = i + 1 < this.plan.regions.length ? layout.regionOffsets[i + 1]! : layout.fileSize;
      const block = BigInt(data.dest.offsetAlign);
      const padFrom = ((pos + block - 1n) / block) * block;
      if (padFrom < next) writeAligned(data.dest, data.base + padFrom, Buffer.alloc(Number(next - padFrom)));
    }
    fileHash.updateZeros(layout.fileSize - pos);
    this.files.push({ name, size: Number(layout.fileSize), sha256: fileHash.digest() });
  }

  /** The manifest and the files beside it, for commit or fail. */
  finish(previous: string | null, status: 'complete' | 'failed', error?: { code?: string; message: string }, key?: crypto.KeyObject): Finish {
    const p = this.plan.profile;
    const finished = new Date();
    const seconds = (finished.getTime() - this.plan.started.getTime()) / 1000;
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
      triggers: triggersOf(this.o.events ?? []),
      host: hostInfo(),
      versions: versions(this.plan.source === 'kernel'),
      format: this.plan.format,
      byteOrder: this.byteOrder,
      regions: this.regions,
      files: [...this.files, ...this.sidecars.map((s) => ({ name: s.name, size: s.data.length, sha256: sha256(s.data) }))],
      timing: { started: this.plan.started.toISOString(), finished: finished.toISOString(), seconds, bytesPerSecond: seconds > 0 ? Math.round(bytes / seconds) : 0 },
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
    const summed = [...manifest.files, ...extra.filter((f) => f.name === SIGNATURE_FILE).map((f) => ({ name: f.name, sha256: sha256(f.data) })), { name: 'manifest.json', sha256: sha256(text) }];
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

/**
 * Runs one capture to the end.  Resolves with the outcome whether it
 * completed or failed (a failure is recorded, not thrown); rejects only if
 * it failed before anything was written (plan, space, destination).
 */
export async function runCapture(input: RunInput, o: CaptureOptions = {}): Promise<CaptureOutcome> {
  const t0 = Date.now();
  const p = input.profile;
  const plan = o.plan ?? planCapture(p, { id: o.id });
  const log = o.log;
  let key: crypto.KeyObject | undefined;
  if (p.signingKey) {
    try {
      key = loadPrivateKey(p.signingKey);
    } catch (err) {
      // Evidence first: the capture is still taken, unsigned, and the log says why.
      log?.error({ profile: p.name, err: (err as Error).message }, 'manifest will not be signed');
    }
  }
  const store = o.store ?? openStore(p.destination);
  try {
    store.checkSpace(plan.dataBytes + BigInt(plan.smallBytes));
    const vmcoreinfo = o.vmcoreinfo !== undefined ? o.vmcoreinfo : plan.format === 'elf' && plan.source === 'kernel' ? readVmcoreinfo() : null;
    const sink = store.begin({
      id: plan.id,
      profile: p.name,
      started: plan.started.toISOString(),
      dataBytes: plan.dataBytes,
      smallBytes: plan.smallBytes,
      intent: Buffer.from(`${JSON.stringify({ id: plan.id, profile: p.name, started: plan.started.toISOString(), regions: plan.regions.map((r) => ({ name: r.name, phys: hex(r.start), size: Number(r.size) })) })}\n`),
    });
    const run = new CaptureRun(plan, sink, { ...o, events: input.events });
    log?.info({ capture: plan.id, profile: p.name, location: sink.location, source: plan.source, format: plan.format, regions: plan.regions.length }, 'capture started');
    if (plan.kernelViewMissing) log?.warn({ capture: plan.id, why: plan.kernelViewMissing }, 'physcap.ko does not say where the kernel maps memory (ABI 3); the core carries physical addresses only, which crash, drgn and gdb cannot read by symbol');
    try {
      await (plan.format === 'elf' ? run.elf(vmcoreinfo) : run.raw());
    } catch (err) {
      const error = errorOf(err);
      const entry = sink.fail((prev) => run.finish(prev, 'failed', error, key));
      const out: CaptureOutcome = { id: plan.id, status: 'failed', location: entry ? sink.location.replace(/\.partial$/, '.failed') : sink.location, entry, bytes: run.bytesDone, seconds: (Date.now() - t0) / 1000, error, removed: [] };
      log?.error({ capture: plan.id, profile: p.name, location: out.location, error }, 'capture failed');
      return out;
    }
    let finish: Finish | undefined;
    let entry: IndexEntry;
    try {
      entry = sink.commit((prev) => (finish = run.finish(prev, 'complete', undefined, key)));
    } catch (err) {
      const error = errorOf(err);
      const failed = sink.fail((prev) => run.finish(prev, 'failed', { ...error, message: `publishing failed: ${error.message}` }, key));
      // Without an index entry the capture stays .partial: the next start records it.
      const location = failed ? sink.location.replace(/\.partial$/, '.failed') : sink.location;
      log?.error({ capture: plan.id, profile: p.name, location, error, recorded: Boolean(failed) }, 'capture failed while publishing');
      return { id: plan.id, status: 'failed', location, entry: failed, bytes: run.bytesDone, seconds: (Date.now() - t0) / 1000, error, removed: [] };
    }
    for (const w of store.takeWarnings?.() ?? []) log?.warn({ capture: plan.id }, w);
    const manifest = JSON.parse(finish!.manifest.toString('utf8')) as Manifest;
    let removed: string[] = [];
    try {
      removed = store.retain(entry.location);
    } catch (err) {
      log?.error({ capture: plan.id, err: (err as Error).message }, 'retention failed; nothing more was removed');
    }
    const location = p.destination.kind === 'dir' ? `${p.destination.path}/${entry.location}` : `${store.location}#${entry.location}`;
    // indexHead: the witness kept outside the destination (the journal); `verify --head SEQ:HASH` checks it.
    const head = headOf(entry);
    log?.info({ capture: plan.id, profile: p.name, location, bytes: entry.bytes, seconds: manifest.timing.seconds, removed, indexHead: `${head.seq}:${head.head}` }, 'capture complete');
    return { id: plan.id, status: 'complete', location, entry, manifest, bytes: entry.bytes, seconds: (Date.now() - t0) / 1000, removed };
  } finally {
    if (!o.store) store.close();
  }
}
