/**
 * A board's digest file (physcap-client's FILE.digest, kernel/tools/digest.h):
 * the SHA-256 of the core as the board read it back from its disk, and
 * what computed it.  `physcap import` checks the core it is given against
 * it before anything is written, so a core damaged on its way off the
 * board is refused rather than imported with fresh digests of the damage.
 *
 * A core the board's client armed (arm --core) has its header written at
 * arm time; the kernel's stamp after its last segment says whether the
 * kernel then wrote it.  Such a core is imported only with a stamp of its
 * arm saying done.
 */
import * as fs from 'node:fs';

import { parseStamp } from './arm-stamp';

export interface BoardDigest {
  file: string;
  bytes: number;
  sha256: string;
  /** /proc/crypto's driver name, or physcap-sha256-c. */
  driver: string;
  via: 'af_alg' | 'builtin';
  /** Why the kernel's driver was not used, or null. */
  fallback: string | null;
  durableSeconds: number;
  digestSeconds: number;
}

function fail(file: string, what: string, code = 'EINVAL'): never {
  throw Object.assign(new Error(`${file}: ${what}`), { code });
}

/** The digest file at `file`, its fields checked; throws naming the file and the field. */
export function readBoardDigest(file: string): BoardDigest {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    fail(file, e.code ? `cannot read the digest file: ${e.message}` : `not JSON: ${e.message}`, e.code ?? 'EINVAL');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) fail(file, 'not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.format !== 'physcap-digest' || o.version !== 1) fail(file, 'format: not a physcap-digest version 1 file');
  if (o.algorithm !== 'sha256') fail(file, `algorithm: ${String(o.algorithm)}: only sha256 is known`);
  if (typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256)) fail(file, 'sha256: not 64 lowercase hex digits');
  if (typeof o.bytes !== 'number' || !Number.isSafeInteger(o.bytes) || o.bytes < 0) fail(file, 'bytes: not a byte count');
  if (o.covers !== 'file') fail(file, `covers: ${String(o.covers)}: only digests of the file are known`);
  if (typeof o.driver !== 'string' || !o.driver) fail(file, 'driver: missing');
  if (o.via !== 'af_alg' && o.via !== 'builtin') fail(file, 'via: neither af_alg nor builtin');
  if (o.fallback !== null && typeof o.fallback !== 'string') fail(file, 'fallback: neither null nor text');
  return {
    file,
    bytes: o.bytes,
    sha256: o.sha256,
    driver: o.driver,
    via: o.via,
    fallback: o.fallback,
    durableSeconds: typeof o.durable_seconds === 'number' ? o.durable_seconds : 0,
    digestSeconds: typeof o.digest_seconds === 'number' ? o.digest_seconds : 0,
  };
}

/** Throws (EBADMSG) unless the core has the size and SHA-256 the board recorded. */
export function checkBoardDigest(d: BoardDigest, core: string, size: number, sha256: string): void {
  if (size !== d.bytes) fail(core, `${size} bytes, but the board's digest file ${d.file} says ${d.bytes}: not the core the board wrote`, 'EBADMSG');
  if (sha256 !== d.sha256)
    fail(core, `SHA-256 ${sha256}, but the board's digest file ${d.file} says ${d.sha256}: the core changed after the board read it back`, 'EBADMSG');
}

/**
 * The PHYSCAP note's armed member, when the board's client armed the core;
 * throws when it is there but unreadable (its stamp could not be checked).
 */
export function armedOf(core: string, note: Record<string, unknown> | undefined): { cookie: bigint; stampOffset: number } | undefined {
  if (note?.armed === undefined) return undefined;
  const a = note.armed as Record<string, unknown> | null;
  const hex = /^0x[0-9a-f]{1,16}$/;
  if (!a || typeof a !== 'object' || typeof a.cookie !== 'string' || !hex.test(a.cookie) || typeof a.stamp_offset !== 'string' || !hex.test(a.stamp_offset))
    fail(core, 'PHYSCAP note: armed: not a cookie and a stamp offset in hex: the stamp cannot be checked');
  return { cookie: BigInt(a.cookie), stampOffset: Number(BigInt(a.stamp_offset)) };
}

/**
 * The armed core's stamp, read from the file: the capture's end as the
 * kernel recorded it.  Throws unless the kernel wrote the capture and it is done.
 */
export function checkArmedStamp(core: string, armed: { cookie: bigint; stampOffset: number }): { armId: bigint; bytesWritten: number; timeRealNs: bigint } {
  const block = Buffer.alloc(4096);
  const fd = fs.openSync(core, 'r');
  let got: number;
  try {
    got = fs.readSync(fd, block, 0, block.length, armed.stampOffset);
  } finally {
    fs.closeSync(fd);
  }
  const stamp = got >= 120 ? parseStamp(block.subarray(0, got), armed.cookie) : undefined;
  if (!stamp)
    fail(
      core,
      `an armed core without its arm's stamp at byte ${armed.stampOffset}: the kernel never wrote this capture (or the copy stops short of the stamp)`,
      'ENODATA',
    );
  if (stamp.type !== 'capture-done') fail(core, `an armed core whose capture the kernel reports failed (${stamp.code ?? stamp.errno})`, 'EIO');
  return { armId: stamp.armId, bytesWritten: stamp.bytesWritten, timeRealNs: stamp.timeRealNs };
}
