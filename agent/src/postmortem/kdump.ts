/**
 * The kdump-compressed export: a capture of kernel memory, filtered and
 * compressed by Debian's (or any distribution's) makedumpfile, the tool
 * kdump itself uses.  Pages the dump level excludes (zeros, page cache,
 * user data, free pages) are dropped using the kernel's own structures,
 * which makedumpfile reads through the core's VMCOREINFO: the emulated
 * board's 1 GiB capture becomes 20-35 MB that crash and drgn open.
 *
 * makedumpfile reads an ELF file: the stored core.elf itself where it is a
 * file of its own (a dir destination), else (a dump partition) an ELF
 * export written beside the output first and removed after.  The output is
 * written under a temporary name and linked into place, so an existing
 * file is never overwritten and a failed run leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { fileSha256 } from '../core/file-sha256';
import type { CaptureReader } from '../destinations/types';
import type { Manifest } from '../manifest/types';
import type { ElfTarget } from '../container/elf';
import { exportCapture, ExportResult, storedElfCore } from './export';
import { CoreContents, describeCore } from '../container/kernel-dump';

export type KdumpCompression = 'zlib' | 'lzo' | 'none';

export interface KdumpOptions {
  reader: CaptureReader;
  manifest: Manifest;
  out: string;
  /** makedumpfile -d: a sum of 1 zero, 2 cache, 4 cache private, 8 user data, 16 free pages; default: defaultDumpLevel(). */
  dumpLevel?: number;
  compression: KdumpCompression;
  /** The ELF export's machine and byte order, when one must be written first. */
  target?: ElfTarget;
  /** makedumpfile's binary (tests, unusual installs). */
  makedumpfile?: string;
  onProgress?: (done: number, total: number) => void;
}

/** kdump's own default (Debian's kdump-tools: MAKEDUMP_ARGS="-c -d 31"). */
export const DEFAULT_DUMP_LEVEL = 31;
/** Dump level bit 8: user data pages. */
const USER_DATA = 8;

const versionOf = (text: string | undefined): number[] => (/(\d+)\.(\d+)(?:\.(\d+))?/.exec(text ?? '') ?? []).slice(1, 4).map((x) => Number(x ?? 0));
const older = (a: number[], b: number[]) => {
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0);
  return false;
};

/**
 * Why user pages (bit 8) must stay in, or null.  makedumpfile before 1.7.3
 * takes some slab pages of kernels from 6.2 on for user pages (struct
 * slab's fields moved; fixed by makedumpfile commit 5f17bdd, "Fix wrong
 * exclusion of slab pages on Linux 6.2-rc1"): with -d 8 the dump loses
 * kernel objects, and drgn and crash fail on them ("Excluded page").
 */
export function userPagesCaveat(makedumpfileVersion: string, osrelease: string | undefined): string | null {
  const tool = versionOf(makedumpfileVersion);
  const kernel = versionOf(osrelease);
  if (!tool.length || !kernel.length || !older(tool, [1, 7, 3]) || older(kernel, [6, 2, 0])) return null;
  return `makedumpfile ${tool.join('.')} mistakes some slab pages of Linux ${kernel.slice(0, 2).join('.')} for user pages (fixed in makedumpfile 1.7.3)`;
}

/** kdump's default, less user pages (bit 8) where the installed makedumpfile would drop kernel objects with them. */
export function defaultDumpLevel(makedumpfileVersion: string, osrelease: string | undefined): number {
  return userPagesCaveat(makedumpfileVersion, osrelease) ? DEFAULT_DUMP_LEVEL & ~USER_DATA : DEFAULT_DUMP_LEVEL;
}

const COMPRESSION_FLAG: Record<KdumpCompression, string[]> = { zlib: ['-c'], lzo: ['-l'], none: [] };

export function parseDumpLevel(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 31)
    throw new Error(`--dump-level must be an integer from 0 to 31 (a sum of 1 zero, 2 cache, 4 cache private, 8 user data, 16 free pages), not "${text}"`);
  return n;
}

/** The capture's core as the post-mortem tools see it; throws why it cannot become a kdump file. */
function kernelDumpOf(reader: CaptureReader, manifest: Manifest): CoreContents {
  const refuse = (why: string) => Object.assign(new Error(`export: capture ${manifest.id} ${why}`), { code: 'EINVAL' });
  if (manifest.format !== 'elf') throw refuse('is in raw format; a kdump file is made from an ELF capture of kernel memory');
  let contents;
  try {
    contents = describeCore(storedElfCore(reader, manifest)!);
  } catch (err) {
    throw refuse(`cannot be read: ${(err as Error).message}`);
  }
  if (!contents.kernelDump) {
    throw refuse(
      "holds no kernel memory (no region the kernel maps, or no VMCOREINFO): it is a capture of physical ranges, not a kernel dump, and makedumpfile, crash and drgn need the kernel's own memory. Export it with --format raw or --format lime instead",
    );
  }
  return contents;
}

/** Runs makedumpfile; resolves with its output, rejects with its last lines. */
function runMakedumpfile(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      reject(err);
      return;
    }
    let text = '';
    const take = (b: Buffer) => {
      text += b.toString('utf8');
      if (text.length > 1 << 20) text = text.slice(-(64 << 10));
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? Object.assign(
              new Error(`${bin} is not installed: install makedumpfile (Debian/Ubuntu: apt-get install makedumpfile; Fedora/RHEL: dnf install makedumpfile)`),
              { code: 'ENOENT' },
            )
          : err,
      );
    });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(text);
      const last = text.trim().split('\n').slice(-8).join('\n');
      reject(new Error(`makedumpfile ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${last}`));
    });
  });
}

export async function exportKdump(o: KdumpOptions): Promise<ExportResult & { dumpLevel: number; warnings: string[]; makedumpfile: string }> {
  const contents = kernelDumpOf(o.reader, o.manifest);
  const out = path.resolve(o.out);
  if (fs.existsSync(out)) throw Object.assign(new Error(`export: ${out} already exists; not overwriting it`), { code: 'EEXIST' });
  const bin = o.makedumpfile ?? 'makedumpfile';
  // "makedumpfile: version 1.7.2 (released on 20 Oct 2022)", then the compressions built in.
  const version = (await runMakedumpfile(bin, ['-v'])).split('\n')[0] ?? '';
  const caveat = userPagesCaveat(version, contents.release);
  const dumpLevel = o.dumpLevel ?? defaultDumpLevel(version, contents.release);
  const warnings =
    caveat && dumpLevel & USER_DATA
      ? [`dump level ${dumpLevel} leaves out user pages, but ${caveat}: kernel objects may be lost; dump level ${dumpLevel & ~USER_DATA} keeps them`]
      : [];
  const tag = `${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const partial = path.join(path.dirname(out), `.${path.basename(out)}.${tag}.partial`);
  const file = o.manifest.regions[0]!.file;
  const where = o.reader.locate(file);
  let source = where.path;
  let temporaryElf: string | undefined;
  try {
    const st = fs.statSync(where.path);
    if (where.base !== 0n || !st.isFile() || st.size !== where.size) {
      // A record on a dump partition: makedumpfile needs a file of its own.
      temporaryElf = path.join(path.dirname(out), `.${path.basename(out)}.${tag}.elf`);
      await exportCapture({ reader: o.reader, manifest: o.manifest, format: 'elf', out: temporaryElf, target: o.target, onProgress: o.onProgress });
      source = temporaryElf;
    }
    const args = [...COMPRESSION_FLAG[o.compression], '-d', String(dumpLevel), source, partial];
    const log = await runMakedumpfile(bin, args);
    const fd = fs.openSync(partial, 'r');
    try {
      fs.fsyncSync(fd); // on disk before it has its name
    } finally {
      fs.closeSync(fd);
    }
    // link(2) never replaces: an output that appeared meanwhile is kept.
    try {
      fs.linkSync(partial, out);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw Object.assign(new Error(`export: ${out} already exists; not overwriting it`), { code: 'EEXIST' });
      throw err;
    }
    return { files: [{ path: out, size: fs.statSync(out).size, sha256: await fileSha256(out) }], dumpLevel, warnings, makedumpfile: log };
  } finally {
    fs.rmSync(partial, { force: true });
    if (temporaryElf) fs.rmSync(temporaryElf, { force: true });
  }
}
