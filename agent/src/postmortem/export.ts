/**
 * Exports a stored capture to a format other tools read: LiME (Volatility
 * and friends), raw (one file per region, for anything) or an ELF core
 * (crash, drgn, gdb).  Reads only through CaptureReader, so a capture on a
 * block device exports as one in a directory does.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { CaptureReader } from '../destinations/types';
import type { Manifest } from '../manifest/types';
import { ElfAlias, ElfCore, ElfNote, ElfTarget, NOTE_PHYSCAP, NOTE_VMCOREINFO, hostElfTarget, layoutElfCore, parseElfCore, splitLoads } from '../container/elf';
import { limeHeader } from '../container/lime';

export type ExportFormat = 'lime' | 'raw' | 'elf';

export interface ExportResult {
  files: Array<{ path: string; size: number; sha256: string }>;
}

/** Memory stays bounded by this whatever the capture's size. */
const PIECE_BYTES = 4 * 1024 * 1024;
const PROGRESS_INTERVAL_MS = 250;
const ELF_ALIGN = 4096;

/** A manifest region checked against the capture's files, its address parsed. */
interface SourceRegion {
  name: string;
  phys: bigint;
  size: number;
  file: string;
  offset: number;
  sha256: string;
}

/**
 * lime: one file at `out` (a LiME header before each region, in physical-address order).
 * raw: a directory `out` (created; must not exist) with one `<region>.raw` per region, or, if `region` is given, one file `out` with that region's bytes.
 * elf: one file `out` with an ELF core of the regions (layoutElfCore with target hostElfTarget() unless given, align 4096) and a PHYSCAP note carrying {id, profile, regions} from the manifest.
 * Never overwrites: outputs are created exclusively (flag 'wx'); on failure, a half-written output is removed and the error says why.
 * Reads in 4 MiB pieces (bounded memory, big captures work), computes each output file's SHA-256 while writing. onProgress(bytesDone, bytesTotal) at most every 250 ms.
 */
export async function exportCapture(o: {
  reader: CaptureReader;
  manifest: Manifest;
  format: ExportFormat;
  out: string;
  region?: string;
  target?: ElfTarget;
  onProgress?: (done: number, total: number) => void;
}): Promise<ExportResult> {
  const regions = sourceRegions(o.reader, o.manifest, o.region);
  const progress = throttledProgress(
    regions.reduce((sum, r) => sum + r.size, 0),
    o.onProgress,
  );
  switch (o.format) {
    case 'lime':
      return { files: [await exportLime(o.reader, regions, o.out, progress)] };
    case 'elf':
      return { files: [await exportElf(o.reader, o.manifest, regions, o.target ?? hostElfTarget(), o.out, progress)] };
    case 'raw':
      return o.region !== undefined
        ? { files: [await writeOutput(o.out, (f) => copyRegion(o.reader, regions[0], f, progress))] }
        : { files: await exportRawDir(o.reader, regions, o.out, progress) };
    default:
      throw new Error(`export: unknown format "${String(o.format)}" (lime, raw, elf)`);
  }
}

/** The regions to export, each checked to lie inside its data file before any output exists. */
function sourceRegions(reader: CaptureReader, manifest: Manifest, only?: string): SourceRegion[] {
  const sizes = new Map(reader.files().map((f) => [f.name, f.size]));
  let picked = manifest.regions;
  if (only !== undefined) {
    picked = manifest.regions.filter((r) => r.name === only);
    if (picked.length === 0) {
      throw new Error(`export: capture ${manifest.id} has no region "${only}" (it has: ${manifest.regions.map((r) => r.name).join(', ') || 'none'})`);
    }
  }
  if (picked.length === 0) throw new Error(`export: capture ${manifest.id} has no regions`);
  return picked.map((r) => {
    if (!/^0x[0-9a-f]+$/i.test(r.phys)) throw new Error(`export: region ${r.name}: phys "${r.phys}" is not a 0x-prefixed hex address`);
    const fileSize = sizes.get(r.file);
    if (fileSize === undefined) throw new Error(`export: region ${r.name}: its data file "${r.file}" is not in ${reader.location}`);
    if (r.offset + r.size > fileSize) {
      throw new Error(
        `export: region ${r.name}: ${r.size} bytes at offset ${r.offset} run past the end of "${r.file}" (${fileSize} bytes) in ${reader.location}`,
      );
    }
    return { name: r.name, phys: BigInt(r.phys), size: r.size, file: r.file, offset: r.offset, sha256: r.sha256 };
  });
}

const byPhysicalAddress = (a: SourceRegion, b: SourceRegion) => (a.phys < b.phys ? -1 : a.phys > b.phys ? 1 : 0);

async function exportLime(reader: CaptureReader, regions: SourceRegion[], out: string, progress: Progress) {
  return writeOutput(out, async (f) => {
    for (const r of [...regions].sort(byPhysicalAddress)) {
      await f.write(limeHeader(r.phys, BigInt(r.size)));
      await copyRegion(reader, r, f, progress);
    }
  });
}

async function exportRawDir(reader: CaptureReader, regions: SourceRegion[], out: string, progress: Progress) {
  const names = new Set<string>();
  for (const r of regions) {
    // The name becomes a file name: refuse anything that would land outside `out`.
    if (r.name === '' || r.name === '.' || r.name === '..' || /[/\0]/.test(r.name))
      throw new Error(`export: region name ${JSON.stringify(r.name)} cannot be a file name`);
    if (names.has(r.name)) throw new Error(`export: two regions are named "${r.name}"`);
    names.add(r.name);
  }
  try {
    await fs.promises.mkdir(out);
  } catch (err) {
    throw refusal(out, err);
  }
  const files: ExportResult['files'] = [];
  try {
    for (const r of regions) files.push(await writeOutput(path.join(out, `${r.name}.raw`), (f) => copyRegion(reader, r, f, progress)));
  } catch (err) {
    // The directory is ours (mkdir created it): nothing in it predates us.
    await fs.promises.rm(out, { recursive: true, force: true });
    const why = err instanceof OutputFailed ? `${path.basename(err.file)}: ${err.reason}` : (err as Error).message;
    throw new Error(`export to ${out} failed (${why}); the partial output directory was removed`, { cause: err });
  }
  return files;
}

async function exportElf(reader: CaptureReader, manifest: Manifest, regions: SourceRegion[], target: ElfTarget, out: string, progress: Progress) {
  const ordered = [...regions].sort(byPhysicalAddress);
  const physcap = {
    id: manifest.id,
    profile: manifest.profile,
    // Not file/offset: those locate the bytes in the stored capture, not in this file.
    regions: ordered.map((r) => ({ name: r.name, phys: `0x${r.phys.toString(16)}`, size: r.size, sha256: r.sha256 })),
  };
  const stored = storedCore(reader, manifest);
  const notes: ElfNote[] = [{ ...NOTE_PHYSCAP, desc: Buffer.from(JSON.stringify(physcap), 'utf8') }, ...(stored?.vmcoreinfo ?? [])];
  // The kernel's addresses as the stored core has them: an export opens in crash and drgn as the capture does.
  const layout = layoutElfCore({
    target,
    regions: ordered.map((r) => ({ paddr: r.phys, size: BigInt(r.size), vaddr: stored?.vaddrOf(r) ?? 0n })),
    aliases: stored?.aliases,
    notes,
    align: ELF_ALIGN,
  });
  return writeOutput(out, async (f) => {
    await f.write(layout.header);
    for (let i = 0; i < ordered.length; i++) {
      await f.zeros(Number(layout.regionOffsets[i]) - f.size);
      await copyRegion(reader, ordered[i], f, progress);
    }
    await f.zeros(Number(layout.fileSize) - f.size);
  });
}

/**
 * The core of an ELF capture, headers and notes, read through the
 * capture's reader (a directory or a dump partition alike); undefined for
 * raw captures.  Throws what parseElfCore says is wrong.
 */
export function storedElfCore(reader: CaptureReader, manifest: Manifest): ElfCore | undefined {
  if (manifest.format !== 'elf' || !manifest.regions.length) return undefined;
  const file = manifest.regions[0]!.file;
  const size = reader.files().find((f) => f.name === file)?.size ?? 0;
  return parseElfCore((offset, length) => reader.read(file, offset, length), size);
}

/**
 * The machine and byte order an ELF capture was stored in (its core's
 * header): what an ELF export of it must keep.  A capture imported from a
 * big-endian board was made on a little-endian host, so the manifest's
 * host cannot say.  Undefined for raw captures.
 */
export function capturedElfTarget(reader: CaptureReader, manifest: Manifest): ElfTarget | undefined {
  try {
    return storedElfCore(reader, manifest)?.target;
  } catch {
    return undefined;
  }
}

/**
 * What an ELF capture's own core says beyond its bytes: the kernel's
 * VMCOREINFO (crash and drgn need it to find their way), where the kernel
 * maps each region, and the aliases (the kernel image's segment).  An
 * export keeps all three.  Undefined for raw captures.
 */
function storedCore(
  reader: CaptureReader,
  manifest: Manifest,
): { vmcoreinfo: ElfNote[]; vaddrOf: (r: SourceRegion) => bigint; aliases: ElfAlias[] } | undefined {
  let core;
  try {
    core = storedElfCore(reader, manifest);
  } catch (err) {
    throw new Error(`export: reading the headers of the capture's ELF core "${manifest.regions[0]!.file}": ${(err as Error).message}`, { cause: err });
  }
  if (!core) return undefined;
  const { data, aliases } = splitLoads(core);
  return {
    vmcoreinfo: core.notes.filter((n) => n.name === NOTE_VMCOREINFO.name && n.type === NOTE_VMCOREINFO.type),
    vaddrOf: (r) => data.find((s) => s.paddr === r.phys && s.filesz === BigInt(r.size) && s.offset === BigInt(r.offset))?.vaddr ?? 0n,
    aliases: aliases.map((a) => ({ vaddr: a.vaddr, paddr: a.paddr, size: a.filesz })),
  };
}

async function copyRegion(reader: CaptureReader, r: SourceRegion, f: OutputFile, progress: Progress) {
  for (let done = 0; done < r.size;) {
    const want = Math.min(PIECE_BYTES, r.size - done);
    const piece = reader.read(r.file, r.offset + done, want);
    if (piece.length !== want) {
      throw new Error(`region ${r.name}: short read from "${r.file}" at offset ${r.offset + done} (${piece.length} of ${want} bytes) in ${reader.location}`);
    }
    await f.write(piece);
    done += want;
    progress(want);
  }
}

/** One output file: created exclusively, written front to back, hashed as written. */
class OutputFile {
  size = 0;
  private readonly hash = crypto.createHash('sha256');
  private zeroBlock = Buffer.alloc(0);

  constructor(
    readonly path: string,
    private readonly handle: fs.promises.FileHandle,
  ) {}

  async write(buf: Buffer): Promise<void> {
    let written = 0;
    while (written < buf.length) {
      const { bytesWritten } = await this.handle.write(buf, written, buf.length - written, this.size + written);
      written += bytesWritten;
    }
    this.hash.update(buf);
    this.size += buf.length;
  }

  /** Padding: written, not left as a hole, so the hash covers exactly the file's bytes. */
  async zeros(n: number): Promise<void> {
    while (n > 0) {
      if (this.zeroBlock.length === 0) this.zeroBlock = Buffer.alloc(ELF_ALIGN);
      const len = Math.min(n, this.zeroBlock.length);
      await this.write(this.zeroBlock.subarray(0, len));
      n -= len;
    }
  }

  async close(): Promise<{ path: string; size: number; sha256: string }> {
    await this.handle.sync();
    await this.handle.close();
    return { path: this.path, size: this.size, sha256: this.hash.digest('hex') };
  }

  async discard(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await fs.promises.rm(this.path, { force: true });
  }
}

/** Creates `file` (never over an existing one), fills it, and removes it again if filling fails. */
async function writeOutput(file: string, fill: (f: OutputFile) => Promise<void>) {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'wx');
  } catch (err) {
    throw refusal(file, err);
  }
  const f = new OutputFile(file, handle);
  try {
    await fill(f);
    return await f.close();
  } catch (err) {
    await f.discard();
    throw new OutputFailed(file, (err as Error).message);
  }
}

class OutputFailed extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`export to ${file} failed (${reason}); the partial output was removed`);
  }
}

function refusal(out: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EEXIST') return new Error(`export: ${out} already exists; not overwriting it`);
  return new Error(`export: cannot create ${out}: ${e.message}`);
}

type Progress = (bytes: number) => void;

/** Counts bytes; reports at most every 250 ms, and always once at the end (done === total). */
function throttledProgress(total: number, onProgress?: (done: number, total: number) => void): Progress {
  let done = 0;
  let last = Date.now();
  return (bytes) => {
    done += bytes;
    if (!onProgress) return;
    const now = Date.now();
    if (done === total || now - last >= PROGRESS_INTERVAL_MS) {
      last = now;
      onProgress(done, total);
    }
  };
}
