/**
 * The typed facade over physcap.node: the only importer of the addon.  It
 * validates arguments, turns AbortSignals into cancellation, and gives
 * native errors a JavaScript stack.  Captured memory never passes through
 * JavaScript: the addon's threads move it from the source to the disk.
 */
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as path from 'node:path';

export type SourceKind = 'kernel' | 'devmem' | 'image';
export type HashMode = 'none' | 'source' | 'readback';

/** An open O_DIRECT destination: a regular file or a block device. */
export interface Destination {
  readonly path: string;
  readonly fd: number;
  readonly isBlockDevice: boolean;
  /** Block device: its size. File: its size when opened. */
  readonly size: number;
  /** Direct-I/O alignment of buffer addresses and of offsets/lengths. */
  readonly memAlign: number;
  readonly offsetAlign: number;
}

export interface CaptureProgress {
  bytesWritten: number;
  bytesHashed: number;
  seconds: number;
  bytesPerSecond: number;
}

export interface CaptureOptions {
  source: SourceKind;
  /** image: the image file; kernel/devmem: the device (default /dev/physcap, /dev/mem). */
  sourcePath?: string;
  /** Physical address of the range. */
  phys: bigint;
  /** image: the physical address of the image's first byte (default 0). */
  imageBase?: bigint;
  /** image: the file offset of imageBase's byte (default 0): an ELF core's p_offset. */
  imageOffset?: bigint;
  length: bigint;
  /** kernel: read device (MMIO) ranges; reads there can have side effects. */
  allowMmio?: boolean;
  /** kernel: fail rather than let the CPU copy any byte. */
  noBounce?: boolean;
  dest: Destination;
  destOffset?: bigint;
  /** Regular files: make the file end where the range ends (default false). */
  truncate?: boolean;
  /** One fsync of the destination at the end (default true). */
  sync?: boolean;
  /** source (default): hash the memory as it is written; readback: hash what reached the disk. */
  hash?: HashMode;
  /**
   * The range's own SHA-256 (default true).  An ELF core's region can do
   * without: the file's digest and the region's chunk digests cover its
   * bytes, and every in-order digest costs a core of its own.
   */
  whole?: boolean;
  /** Per-chunk digests every chunkSize bytes (default 4 MiB; 0 for none). */
  chunkSize?: number;
  /** Bytes each thread maps at once (default 8 MiB): bounds RSS. */
  window?: number;
  /**
   * Also feed this capture's bytes, in order, into a whole-file hash (the ELF
   * container's SHA256SUMS line). Requires hash 'source' or 'readback'. The
   * caller must not touch it until the capture settles (it is refused with
   * ERR_INVALID_STATE meanwhile). If the capture fails or is aborted, how much
   * of the range was fed is undefined: the hash is still safe to digest() or
   * drop, but its digest means nothing.
   */
  fileHash?: FileHash;
  onProgress?: (progress: CaptureProgress) => void;
  /**
   * Once the range is on the disk (written, and synced with sync), before
   * the digests may be done: the write's figures.  Never dropped, and
   * before the promise settles.
   */
  onDurable?: (written: DurableWrite) => void;
  /** Progress at most this often (default 250 ms). */
  progressMs?: number;
  signal?: AbortSignal;
}

/** A capture's write, final once it is durable (CaptureOptions.onDurable). */
export type DurableWrite = Pick<
  CaptureResult,
  'source' | 'mode' | 'bytesWritten' | 'bytesZeroCopy' | 'bytesCopied' | 'bytesBounced' | 'bytesPoisoned' | 'writeSeconds' | 'durableSeconds'
>;

export interface CaptureResult {
  source: SourceKind;
  /** zero-copy: no byte copied by the CPU; copy: some were. */
  mode: 'zero-copy' | 'copy';
  bytesWritten: number;
  bytesZeroCopy: number;
  bytesCopied: number;
  bytesBounced: number;
  bytesPoisoned: number;
  hashMode: HashMode;
  sha256?: string;
  chunkSha256: string[];
  seconds: number;
  writeSeconds: number;
  hashSeconds: number;
  /** From the start: the bytes were on the disk (written and, with sync, synced). */
  durableSeconds: number;
  /** From the start: the digests were done too (they trail the writer). */
  digestSeconds: number;
}

/** What every native failure looks like (Node's fs error shape). */
export interface NativeError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  path?: string;
  /** Captures: what had been done when it stopped. */
  partial?: CaptureResult;
}

/** A running SHA-256 of a whole file whose parts are fed in file order: headers and padding from JavaScript, region bytes by capture() on its native threads. */
export interface FileHash {
  update(data: Buffer): void;
  /** n zero bytes (padding between aligned parts), without allocating n bytes. */
  updateZeros(n: bigint): void;
  /** Hex digest; the hash cannot be used afterwards. */
  digest(): string;
}

export interface StoredRegion {
  /** Offset of the region in the file (relative to base). */
  offset: bigint;
  length: bigint;
  /** Chunk digests every chunkSize bytes of the region; 0 for none. */
  chunkSize: number;
  /** The region's own SHA-256 (default true); without, its sha256 is ''. */
  whole?: boolean;
}

export interface StoredDigests {
  /** Bytes actually read (less than size if the file is shorter). */
  size: number;
  /** SHA-256 of those bytes ('' when whole was false). */
  sha256: string;
  /** SHA-256 of the bytes outside the regions, in order ('' unless gaps was true). */
  gapsSha256: string;
  /** Per region, in order: its SHA-256 and chunk digests (regions beyond the end: digests of what exists). */
  regions: Array<{ sha256: string; chunkSha256: string[] }>;
}

export interface DeviceInfo {
  abiVersion: number;
  pageSize: number;
  features: bigint;
  physLimit: bigint;
  batchPages: number;
}

/**
 * Where the running kernel maps physical memory (physcap.ko's KERNEL_MAP,
 * ABI 3): RAM at p in [directMapStart, directMapEnd) is at directMapVirt +
 * (p - directMapStart); the kernel image's byte at p is at p + imageOffset
 * (mod 2^64).
 */
export interface KernelMap {
  directMapVirt: bigint;
  directMapStart: bigint;
  directMapEnd: bigint;
  imageOffset: bigint;
}

/**
 * The constants of kernel/physcap_uapi.h, without their PHYSCAP_ prefix, as
 * the addon was built with them (from the header's own macros): feature
 * bits as bigints, to test DeviceInfo.features with; the rest numbers.
 */
export interface Uapi {
  readonly ABI_VERSION: number;
  readonly DEVICE_NAME: string;
  /** INFO feature bits. */
  readonly FEAT_ZERO_COPY: bigint;
  readonly FEAT_BOUNCE: bigint;
  readonly FEAT_MMIO: bigint;
  readonly FEAT_MMAP: bigint;
  readonly FEAT_HWPOISON: bigint;
  readonly FEAT_BLOCKDEV: bigint;
  readonly FEAT_ADOPT: bigint;
  readonly FEAT_ARM: bigint;
  /** The "physcap" watchdog pretimeout governor is registered. */
  readonly FEAT_PRETIMEOUT_GOV: bigint;
  readonly FEAT_KERNEL_MAP: bigint;
  /** ARM takes a stamp offset: the capture's record of how it ended, on its destination (ABI 4). */
  readonly FEAT_ARM_STAMP: bigint;
  /** WRITE flags. */
  readonly WRITE_ALLOW_MMIO: number;
  readonly WRITE_NO_BOUNCE: number;
  readonly WRITE_FLAGS_ALL: number;
  /** ARM limits and flags. */
  readonly ARM_MAX_RANGES: number;
  readonly ARM_MAX_PER_WATCHDOG: number;
  readonly ARM_MAX_WATCHDOG_ID: number;
  readonly ARM_THEN_PANIC: number;
  readonly ARM_FLAGS_ALL: number;
  /** ARM_STATUS states (ArmStatus.state names them). */
  readonly ARM_STATE_ARMED: number;
  readonly ARM_STATE_FIRING: number;
  readonly ARM_STATE_DONE: number;
  readonly ARM_STATE_FAILED: number;
  /** Event records (PhyscapEvent.type names the types). */
  readonly EVENT_VERSION: number;
  /** How many records the module keeps. */
  readonly EVENT_RING: number;
  readonly EVENT_PRETIMEOUT: number;
  readonly EVENT_CAPTURE_DONE: number;
  readonly EVENT_CAPTURE_FAILED: number;
}

/** The addon's FileHash class: only ever seen by this module. */
interface NativeFileHash {
  update(data: Buffer): void;
  updateZeros(n: bigint): void;
  digest(): string;
}

interface Addon {
  deviceInfo(): DeviceInfo;
  kernelMap(): KernelMap;
  openDestination(path: string, mode: 'create' | 'existing'): Omit<Destination, 'path'>;
  openDestinationAt(dirFd: number, name: string, mode: 'create' | 'existing', displayPath: string): Omit<Destination, 'path'>;
  preallocate(dest: Destination, path: string, length: bigint): void;
  writeAligned(dest: Destination, path: string, offset: bigint, data: Buffer): void;
  closeFd(fd: number, what?: string): void;
  openDir(dirPath: string, nofollow: boolean): number;
  openDirAt(dirFd: number, name: string, displayPath: string): number;
  mkdirAt(dirFd: number, name: string, mode: number, displayPath: string): void;
  writeFileAt(dirFd: number, name: string, data: Buffer, displayPath: string): void;
  renameAt(oldDirFd: number, oldName: string, newDirFd: number, newName: string, displayPath: string): void;
  fsyncFd(fd: number, displayPath: string): void;
  lockFd(fd: number, exclusive: boolean, wait: boolean): boolean;
  unlockFd(fd: number): void;
  lockRange(fd: number, offset: bigint, length: bigint, exclusive: boolean): boolean;
  unlockRange(fd: number, offset: bigint, length: bigint): void;
  rangeLockedElsewhere(fd: number, offset: bigint, length: bigint): boolean;
  FileHash: new () => NativeFileHash;
  capture(request: Record<string, unknown>, onProgress: (p: CaptureProgress) => void, progressMs: number): { promise: Promise<CaptureResult>; cancel(): void };
  sdNotify(socketPath: string, message: string): void;
  kmsgOpen(path: string, onItem: (kind: 'record' | 'gap' | 'end', value: unknown) => void): { close(): void };
  physcapOpen(path: string, onItem: (kind: 'event' | 'end', value: unknown) => void): NativeArmDevice;
  physcapReadEvents(path: string): PhyscapEvent[];
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  hashStored(
    request: Record<string, unknown>,
    onProgress: (bytesHashed: number) => void,
    progressMs: number,
  ): { promise: Promise<StoredDigests>; cancel(): void };
  readPhysical(phys: bigint, length: number, device: string | undefined): Buffer;
  uapi: Uapi;
}

let addon: Addon | undefined;

function findAddon(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'native', 'build', 'Release', 'physcap.node');
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) break;
  }
  throw Object.assign(new Error('physcap.node is not built: run "npm run build"'), { code: 'ERR_NATIVE_MISSING' });
}

/** Where the built addon is (its digest goes into manifests). */
export function addonPath(): string {
  return findAddon();
}

function load(): Addon {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  addon ??= require(findAddon()) as Addon;
  return addon;
}

/** Native errors carry the native side's stack only: add the caller's. */
function withCallerStack<T>(callerStack: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw restack(err, callerStack);
  }
}

function restack(err: unknown, callerStack: string | undefined): unknown {
  // Not instanceof: errors made by the addon may come from another realm (jest).
  if (typeof err === 'object' && err !== null && 'message' in err && callerStack) {
    const e = err as Error;
    e.stack = `${e.name}: ${e.message}\n${callerStack.split('\n').slice(1).join('\n')}`;
  }
  return err;
}

function invalid(message: string): Error {
  return Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG_VALUE' });
}

/** kernel/physcap_uapi.h's constants (a frozen object; loads the addon). */
export function uapi(): Uapi {
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().uapi);
}

export function deviceInfo(): DeviceInfo {
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().deviceInfo());
}

/** physcap.ko's KERNEL_MAP; throws (ENOTTY from a module older than ABI 3, ENOENT without one). */
export function kernelMap(): KernelMap {
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().kernelMap());
}

/**
 * Opens a capture destination for direct I/O.  'create' makes a new file
 * and never overwrites (O_EXCL); 'existing' writes an existing file or a
 * block device in place.  Symlinks are refused (O_NOFOLLOW).
 */
export function openDestination(filePath: string, mode: 'create' | 'existing'): Destination {
  const stack = new Error().stack;
  const d = withCallerStack(stack, () => load().openDestination(filePath, mode));
  return { path: filePath, ...d };
}

export function closeDestination(dest: Destination): void {
  const stack = new Error().stack;
  withCallerStack(stack, () => load().closeFd(dest.fd, 'closing a capture destination'));
}

function checkFd(fd: number, what = 'fd'): void {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw invalid(`${what} must be an open file descriptor, not ${fd}`);
}

function checkPath(p: string, what: string): void {
  if (typeof p !== 'string' || p === '' || p.includes('\0')) throw invalid(`${what} must be a non-empty string without NUL bytes`);
}

/**
 * A name in an open directory: one component.  A slash would walk
 * intermediate directories that O_NOFOLLOW does not protect, and '..'
 * would leave the directory.
 */
function checkName(name: string): void {
  checkPath(name, 'name');
  if (name.includes('/') || name === '.' || name === '..') {
    throw invalid(`name must be a single path component, not ${JSON.stringify(name)}`);
  }
}

/** Opens a directory for the *at calls (O_DIRECTORY|O_CLOEXEC, read-only so it can be fsynced). nofollow: refuse (ELOOP/ENOTDIR) if the last component is a symlink. */
export function openDir(dirPath: string, opts?: { nofollow?: boolean }): number {
  checkPath(dirPath, 'dirPath');
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().openDir(dirPath, opts?.nofollow ?? false));
}

/** A subdirectory of an open directory, never through a symlink (O_NOFOLLOW). displayPath is used in error messages only. */
export function openDirAt(dirFd: number, name: string, displayPath: string): number {
  checkFd(dirFd, 'dirFd');
  checkName(name);
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().openDirAt(dirFd, name, String(displayPath)));
}

/** mkdirat; EEXIST when anything (a symlink too) is already there. */
export function mkdirAt(dirFd: number, name: string, mode: number, displayPath: string): void {
  checkFd(dirFd, 'dirFd');
  checkName(name);
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw invalid(`mode must be a permission mode, not ${mode}`);
  const stack = new Error().stack;
  withCallerStack(stack, () => load().mkdirAt(dirFd, name, mode, String(displayPath)));
}

/** Like openDestination, but relative to dirFd and never through a symlink (openat with O_NOFOLLOW|O_DIRECT; 'create' adds O_CREAT|O_EXCL, mode 0640). The returned Destination.path is displayPath. */
export function openDestinationAt(dirFd: number, name: string, mode: 'create' | 'existing', displayPath: string): Destination {
  checkFd(dirFd, 'dirFd');
  checkName(name);
  if (mode !== 'create' && mode !== 'existing') throw invalid(`mode must be 'create' or 'existing', not ${String(mode)}`);
  const stack = new Error().stack;
  const d = withCallerStack(stack, () => load().openDestinationAt(dirFd, name, mode, String(displayPath)));
  return { path: displayPath, ...d };
}

/**
 * A small file written whole: openat O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW 0640, write all (retrying short
 * writes/EINTR), fsync, close. Never overwrites (EEXIST). If it fails after the create, the name is
 * unlinked again: the file is there whole or not at all.
 */
export function writeFileAt(dirFd: number, name: string, data: Buffer, displayPath: string): void {
  checkFd(dirFd, 'dirFd');
  checkName(name);
  if (!Buffer.isBuffer(data)) throw invalid('data must be a Buffer');
  const stack = new Error().stack;
  withCallerStack(stack, () => load().writeFileAt(dirFd, name, data, String(displayPath)));
}

/** renameat2(..., RENAME_NOREPLACE): EEXIST if the new name exists; never replaces anything. */
export function renameAt(oldDirFd: number, oldName: string, newDirFd: number, newName: string, displayPath: string): void {
  checkFd(oldDirFd, 'oldDirFd');
  checkFd(newDirFd, 'newDirFd');
  checkName(oldName);
  checkName(newName);
  const stack = new Error().stack;
  withCallerStack(stack, () => load().renameAt(oldDirFd, oldName, newDirFd, newName, String(displayPath)));
}

/** fsync(2) of any fd (a directory after renames, a file). */
export function fsyncFd(fd: number, displayPath: string): void {
  checkFd(fd);
  const stack = new Error().stack;
  withCallerStack(stack, () => load().fsyncFd(fd, String(displayPath)));
}

/** close(2). */
export function closeFd(fd: number): void {
  checkFd(fd);
  const stack = new Error().stack;
  withCallerStack(stack, () => load().closeFd(fd));
}

/**
 * flock(2): exclusive or shared; wait=false returns false instead of blocking when it is held elsewhere.
 * wait=true blocks the event loop until the lock is free: for locks held briefly.
 */
export function lockFd(fd: number, mode: 'exclusive' | 'shared', wait: boolean): boolean {
  checkFd(fd);
  if (mode !== 'exclusive' && mode !== 'shared') throw invalid(`mode must be 'exclusive' or 'shared', not ${String(mode)}`);
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().lockFd(fd, mode === 'exclusive', wait === true));
}

export function unlockFd(fd: number): void {
  checkFd(fd);
  const stack = new Error().stack;
  withCallerStack(stack, () => load().unlockFd(fd));
}

function checkRange(offset: bigint, length: bigint): void {
  if (!isCount(offset) || !isCount(length) || length === 0n || offset + length > OFF_MAX) {
    throw invalid('offset and length must be bigints >= 0, length > 0, and offset + length must fit in a file offset');
  }
}

/**
 * A record lock on [offset, offset+length) of fd's open file description
 * (fcntl F_OFD_SETLK): held until unlockRange or until the description is
 * closed (its process dying closes it), independent of lockFd's flock.
 * Never waits: false when a conflicting lock is held elsewhere.
 */
export function lockRange(fd: number, offset: bigint, length: bigint, mode: 'exclusive' | 'shared'): boolean {
  checkFd(fd);
  checkRange(offset, length);
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().lockRange(fd, offset, length, mode === 'exclusive'));
}

export function unlockRange(fd: number, offset: bigint, length: bigint): void {
  checkFd(fd);
  checkRange(offset, length);
  const stack = new Error().stack;
  withCallerStack(stack, () => load().unlockRange(fd, offset, length));
}

/** Whether another open file description (this process's or any other's) holds a record lock on the range (F_OFD_GETLK). */
export function rangeLockedElsewhere(fd: number, offset: bigint, length: bigint): boolean {
  checkFd(fd);
  checkRange(offset, length);
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().rangeLockedElsewhere(fd, offset, length));
}

function invalidState(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_INVALID_STATE' });
}

/** Not exported: capture() knows a FileHash of its own by this class. */
class FileHashImpl implements FileHash {
  /** A capture's threads are feeding it: JavaScript must not (the addon refuses too). */
  capturing = false;
  digested = false;

  constructor(readonly native: NativeFileHash) {}

  /** Why it cannot be fed or digested now, if it cannot. */
  unusable(): Error | undefined {
    if (this.capturing) return invalidState('The file hash is in use by a capture that has not settled');
    if (this.digested) return invalidState('The file hash was already digested');
    return undefined;
  }

  update(data: Buffer): void {
    if (!Buffer.isBuffer(data)) throw invalid('data must be a Buffer');
    const why = this.unusable();
    if (why) throw why;
    const stack = new Error().stack;
    withCallerStack(stack, () => this.native.update(data));
  }

  updateZeros(n: bigint): void {
    if (typeof n !== 'bigint' || n < 0n || n >= 1n << 64n) throw invalid(`n must be a bigint in [0, 2^64), not ${String(n)}`);
    const why = this.unusable();
    if (why) throw why;
    const stack = new Error().stack;
    withCallerStack(stack, () => this.native.updateZeros(n));
  }

  digest(): string {
    const why = this.unusable();
    if (why) throw why;
    const stack = new Error().stack;
    const hex = withCallerStack(stack, () => this.native.digest());
    this.digested = true;
    return hex;
  }
}

export function createFileHash(): FileHash {
  const stack = new Error().stack;
  return new FileHashImpl(withCallerStack(stack, () => new (load().FileHash)()));
}

/** Allocates the destination's space up front: ENOSPC now, not half-way. */
export function preallocate(dest: Destination, length: bigint): void {
  const stack = new Error().stack;
  withCallerStack(stack, () => load().preallocate(dest, dest.path, length));
}

/** Writes a small header at an aligned offset with direct I/O (zero-padded). */
export function writeAligned(dest: Destination, offset: bigint, data: Buffer): void {
  if (offset % BigInt(dest.offsetAlign) !== 0n) {
    throw invalid(`offset ${offset} is not a multiple of ${dest.offsetAlign}`);
  }
  const stack = new Error().stack;
  withCallerStack(stack, () => load().writeAligned(dest, dest.path, offset, data));
}

function abortError(partial?: CaptureResult): NativeError {
  return Object.assign(new Error('The capture was aborted'), { name: 'AbortError', code: 'ABORT_ERR', partial });
}

/** Captures one physical range into the destination, off the event loop. */
export function capture(o: CaptureOptions): Promise<CaptureResult> {
  const stack = new Error().stack;
  if (o.length <= 0n) return Promise.reject(invalid('length must be positive'));
  if (o.phys < 0n || (o.destOffset ?? 0n) < 0n) return Promise.reject(invalid('addresses and offsets must be >= 0'));
  if (o.source === 'image' && !o.sourcePath) return Promise.reject(invalid('the image source needs sourcePath'));
  if (o.signal?.aborted) return Promise.reject(abortError());
  const fileHash = o.fileHash;
  if (fileHash !== undefined) {
    if (!(fileHash instanceof FileHashImpl)) return Promise.reject(invalid('fileHash must come from createFileHash()'));
    if ((o.hash ?? 'source') === 'none') {
      return Promise.reject(invalid("fileHash needs the capture's bytes hashed: hash 'source' or 'readback', not 'none'"));
    }
    const why = fileHash.unusable();
    if (why) return Promise.reject(why);
  }

  const request = {
    source: o.source,
    sourcePath: o.sourcePath ?? '',
    phys: o.phys,
    imageBase: o.imageBase ?? 0n,
    imageOffset: o.imageOffset ?? 0n,
    length: o.length,
    kernelFlags: BigInt((o.allowMmio ? uapi().WRITE_ALLOW_MMIO : 0) | (o.noBounce ? uapi().WRITE_NO_BOUNCE : 0)),
    dest: o.dest,
    destPath: o.dest.path,
    destOffset: o.destOffset ?? 0n,
    truncate: o.truncate ?? false,
    sync: o.sync ?? true,
    hash: o.hash ?? 'source',
    whole: o.whole ?? true,
    chunkSize: BigInt(o.chunkSize ?? 4 << 20),
    window: BigInt(o.window ?? 8 << 20),
    fileHash: fileHash?.native,
  };
  const handle = withCallerStack(stack, () =>
    load().capture(
      request,
      (p: CaptureProgress | (DurableWrite & { durable: true })) => ('durable' in p ? o.onDurable?.(p) : o.onProgress?.(p)),
      o.progressMs ?? 250,
    ),
  );
  if (fileHash) fileHash.capturing = true;
  const onAbort = () => handle.cancel();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  return handle.promise.then(
    (result) => {
      o.signal?.removeEventListener('abort', onAbort);
      if (fileHash) fileHash.capturing = false;
      return result;
    },
    (err: unknown) => {
      o.signal?.removeEventListener('abort', onAbort);
      if (fileHash) fileHash.capturing = false;
      throw restack(err, stack);
    },
  );
}

/** Offsets the native side can pass to pread/mmap (off_t is signed 64-bit). */
const OFF_MAX = (1n << 63n) - 1n;

function isCount(v: unknown): v is bigint {
  return typeof v === 'bigint' && v >= 0n && v <= OFF_MAX;
}

/** Why regions cannot be hashed in [0, size), if they cannot. */
function badRegions(regions: unknown, size: bigint): string | undefined {
  if (!Array.isArray(regions)) return 'regions must be an array';
  let end = 0n;
  for (const [i, r] of (regions as StoredRegion[]).entries()) {
    if (typeof r !== 'object' || r === null) return `regions[${i}] must be an object`;
    if (!isCount(r.offset) || !isCount(r.length)) return `regions[${i}]: offset and length must be bigints >= 0`;
    if (!Number.isSafeInteger(r.chunkSize) || r.chunkSize < 0) return `regions[${i}]: chunkSize must be an integer >= 0, not ${String(r.chunkSize)}`;
    if (r.offset + r.length > size) return `regions[${i}] (${r.offset}+${r.length}) does not fit in the ${size} bytes hashed`;
    if (r.offset < end)
      return `regions[${i}] at ${r.offset} overlaps or precedes the region before it (which ends at ${end}): regions must be sorted and must not overlap`;
    end = r.offset + r.length;
  }
  return undefined;
}

/**
 * Re-hashes a stored capture file, or a byte range of a device (a dump
 * partition's record: base = its absolute offset): the SHA-256 of
 * [base, base+size) (whole, default true), the SHA-256 of the bytes
 * outside the regions (gaps), and each region's SHA-256 and chunk digests,
 * in one promise.  One read of the range on native threads feeds every
 * digest: the in-order ones on a thread each, the chunk digests on every
 * core left.
 * nofollow: refuse a symlink at path (capture directories); false for
 * device paths.
 */
export function hashStored(o: {
  path: string;
  base?: bigint;
  size: bigint;
  regions: StoredRegion[];
  nofollow?: boolean;
  /** The whole range's SHA-256 (default true). */
  whole?: boolean;
  /** The SHA-256 of the bytes outside the regions (default false). */
  gaps?: boolean;
  /** Bytes of the range every thread is past (only grows; ends at the result's size). */
  onProgress?: (bytesHashed: number) => void;
  /** Progress at most this often (default 250 ms). */
  progressMs?: number;
  signal?: AbortSignal;
}): Promise<StoredDigests> {
  const stack = new Error().stack;
  try {
    checkPath(o.path, 'path');
  } catch (err) {
    return Promise.reject(err);
  }
  const base = o.base ?? 0n;
  if (!isCount(base) || !isCount(o.size) || base + o.size > OFF_MAX) {
    return Promise.reject(invalid('base and size must be bigints >= 0, and base + size must fit in a file offset'));
  }
  const why = badRegions(o.regions, o.size);
  if (why) return Promise.reject(invalid(why));
  const progressMs = o.progressMs ?? 250;
  if (!Number.isInteger(progressMs) || progressMs < 1 || progressMs > 0x7fffffff) {
    return Promise.reject(invalid(`progressMs must be a positive integer, not ${progressMs}`));
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') return Promise.reject(invalid('onProgress must be a function'));
  if (o.signal?.aborted) return Promise.reject(hashAbortError());

  const request = {
    path: o.path,
    base,
    size: o.size,
    nofollow: o.nofollow ?? false,
    whole: o.whole ?? true,
    gaps: o.gaps ?? false,
    regions: o.regions.map((r) => ({ offset: r.offset, length: r.length, chunkSize: BigInt(r.chunkSize), whole: r.whole ?? true })),
  };
  const handle = withCallerStack(stack, () => load().hashStored(request, o.onProgress ?? (() => undefined), progressMs));
  const onAbort = () => handle.cancel();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  return handle.promise.then(
    (result) => {
      o.signal?.removeEventListener('abort', onAbort);
      return result;
    },
    (err: unknown) => {
      o.signal?.removeEventListener('abort', onAbort);
      throw restack(err, stack);
    },
  );
}

function hashAbortError(): NativeError {
  return Object.assign(new Error('The hashing was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}

/** At most this much through readPhysical: it copies on the event loop. */
const READ_PHYSICAL_MAX = 1 << 20;

/**
 * Reads a small physical range of memory through /dev/physcap's read-only
 * mapping into a Buffer (the kernel's VMCOREINFO note, a few KiB; at most
 * 1 MiB): no temporary file, any destination.  Needs physcap.ko (or pass
 * device: a file standing in for it in tests, mapped the same way at the
 * physical address as file offset).
 */
export function readPhysical(phys: bigint, length: number, device?: string): Buffer {
  if (!Number.isInteger(length) || length < 1 || length > READ_PHYSICAL_MAX) {
    throw invalid(`length must be an integer from 1 to ${READ_PHYSICAL_MAX}, not ${length}`);
  }
  if (!isCount(phys) || phys + BigInt(length) > OFF_MAX) throw invalid(`phys must be a bigint >= 0 with phys + length in a file offset, not ${String(phys)}`);
  if (device !== undefined) checkPath(device, 'device');
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().readPhysical(phys, length, device));
}

export interface KmsgHandlers {
  /** One raw record, as one read(2) of /dev/kmsg returned it. */
  record(raw: string): void;
  /** The kernel's ring overwrote records not yet read; overruns so far. */
  gap(overruns: number): void;
  /** The reader stopped: after close(), or with the error that ended it. */
  end(err: NativeError | null): void;
}

/**
 * Reads new kernel log records on a native thread blocked in poll(2):
 * nothing old, no polling, no libuv pool thread.  close() stops it; end()
 * follows.
 */
export function openKmsg(handlers: KmsgHandlers, path = '/dev/kmsg'): { close(): void } {
  const stack = new Error().stack;
  return withCallerStack(stack, () =>
    load().kmsgOpen(path, (kind, value) => {
      if (kind === 'record') handlers.record(value as string);
      else if (kind === 'gap') handlers.gap(value as number);
      else handlers.end(value as NativeError | null);
    }),
  );
}

export interface ArmRange {
  phys: bigint;
  length: bigint;
  destOffset: bigint;
}

export interface PhyscapEvent {
  type: 'pretimeout' | 'capture-done' | 'capture-failed' | 'unknown';
  /** 1, 2, 3...: a gap means the module's ring overwrote records before they were read. */
  seq: bigint;
  watchdogId: number;
  /** CAPTURE_FAILED: the errno name (EIO, ENOSPC...); undefined otherwise. */
  code?: string;
  /** Negative, as in Node's errors (-5 for EIO); 0 when there is none. */
  errno: number;
  timeRealNs: bigint;
  timeMonoNs: bigint;
  cookie: bigint;
  armId: bigint;
  bytesWritten: number;
  bytesZeroCopy: number;
  bytesBounced: number;
  firstByteLatencyNs: number;
  durationNs: number;
}

export interface ArmStatus {
  state: 'armed' | 'firing' | 'done' | 'failed';
  /** failed: the errno name (EIO, ENOSPC...); undefined otherwise. */
  code?: string;
  /** Negative, as in Node's errors; 0 unless failed. */
  errno: number;
  bytesWritten: number;
  bytesTotal: number;
  cookie: bigint;
  watchdogId: number;
  thenPanic: boolean;
  firstByteLatencyNs: number;
  durationNs: number;
}

export interface ArmRequest {
  watchdogId: number;
  dest: Destination;
  cookie: bigint;
  ranges: ArmRange[];
  thenPanic?: boolean;
  /**
   * Where the module writes the capture's stamp (uapi struct
   * physcap_arm_stamp, one page) once it has ended, after the ranges are
   * synced: how it ended, readable from the destination after a reset.
   * Needs FEAT_ARM_STAMP (ABI 4); aligned, outside every range.
   */
  stampOffset?: bigint;
}

export interface PhyscapDevice {
  /** Arms an in-kernel capture on a watchdog's pretimeout (PHYSCAP_IOC_ARM); returns the arm id.  The arm lives until disarm(), close(), or the module's unload. */
  arm(o: ArmRequest): bigint;
  disarm(armId: bigint): void;
  status(armId: bigint): ArmStatus;
  /** Stops the event reader and closes the device: every arm made through it is released by the module. */
  close(): void;
}

interface NativeArmDevice {
  arm(request: Record<string, unknown>): bigint;
  disarm(armId: bigint): void;
  status(armId: bigint): ArmStatus;
  close(): void;
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * The block an arm's stamp takes on its destination: the module writes a
 * page; 4096 is every supported board's page, and the stamp is read from
 * its start whatever follows.
 */
export const STAMP_BLOCK = 4096;

/** Why an arm request cannot be passed to the module, if it cannot. */
function badArm(o: unknown): string | undefined {
  if (typeof o !== 'object' || o === null) return 'the arm request must be an object';
  const a = o as { watchdogId?: unknown; dest?: unknown; cookie?: unknown; ranges?: unknown; thenPanic?: unknown; stampOffset?: unknown };
  const { ARM_MAX_WATCHDOG_ID, ARM_MAX_RANGES } = uapi();
  if (!Number.isInteger(a.watchdogId) || (a.watchdogId as number) < 0 || (a.watchdogId as number) > ARM_MAX_WATCHDOG_ID) {
    return `watchdogId must be an integer from 0 to ${ARM_MAX_WATCHDOG_ID}, not ${String(a.watchdogId)}`;
  }
  const dest = a.dest as Partial<Destination> | null | undefined;
  if (typeof dest !== 'object' || dest === null) return 'dest must be an open Destination';
  if (!Number.isInteger(dest.fd) || (dest.fd as number) < 0 || (dest.fd as number) > 0x7fffffff) {
    return `dest.fd must be an open file descriptor, not ${String(dest.fd)}`;
  }
  if (typeof a.cookie !== 'bigint' || a.cookie < 0n || a.cookie > U64_MAX) return `cookie must be a bigint in [0, 2^64), not ${String(a.cookie)}`;
  if (a.thenPanic !== undefined && typeof a.thenPanic !== 'boolean') return `thenPanic must be a boolean, not ${String(a.thenPanic)}`;
  if (!Array.isArray(a.ranges) || a.ranges.length < 1 || a.ranges.length > ARM_MAX_RANGES) {
    return `ranges must be an array of 1 to ${ARM_MAX_RANGES} ranges, not ${Array.isArray(a.ranges) ? a.ranges.length : String(a.ranges)}`;
  }
  const align = Number.isInteger(dest.offsetAlign) && (dest.offsetAlign as number) > 0 ? BigInt(dest.offsetAlign as number) : 1n;
  const ranges = a.ranges as ArmRange[];
  for (const [i, r] of ranges.entries()) {
    if (typeof r !== 'object' || r === null) return `ranges[${i}] must be an object`;
    if (!isCount(r.phys) || !isCount(r.length) || !isCount(r.destOffset))
      return `ranges[${i}]: phys, length and destOffset must be bigints >= 0 (and below 2^63)`;
    if (r.length === 0n) return `ranges[${i}]: length must be positive`;
    if (r.phys + r.length > U64_MAX + 1n) return `ranges[${i}] (${r.phys}+${r.length}) wraps past the end of the physical address space`;
    if (r.destOffset + r.length > OFF_MAX) return `ranges[${i}]: destOffset + length must fit in a file offset`;
    if (r.destOffset % align !== 0n || r.length % align !== 0n) {
      return `ranges[${i}]: destOffset and length must be multiples of the destination's ${align}-byte direct-I/O alignment`;
    }
    for (const [j, q] of ranges.slice(0, i).entries()) {
      if (r.destOffset < q.destOffset + q.length && q.destOffset < r.destOffset + r.length) {
        return `ranges[${i}] (destination ${r.destOffset}+${r.length}) overlaps ranges[${j}] (${q.destOffset}+${q.length}) in the destination`;
      }
    }
  }
  if (a.stampOffset !== undefined) {
    const at = a.stampOffset;
    const page = BigInt(STAMP_BLOCK);
    if (!isCount(at) || at + page > OFF_MAX) return `stampOffset must be a bigint >= 0 that fits in a file offset, not ${String(at)}`;
    if (at % align !== 0n) return `stampOffset must be a multiple of the destination's ${align}-byte direct-I/O alignment`;
    const hit = ranges.findIndex((r) => at < r.destOffset + r.length && r.destOffset < at + page);
    if (hit >= 0) return `stampOffset (${at}+${page}) overlaps ranges[${hit}] in the destination`;
  }
  return undefined;
}

function checkArmId(armId: bigint): void {
  if (typeof armId !== 'bigint' || armId < 1n || armId > U64_MAX) throw invalid(`armId must be a bigint in [1, 2^64), not ${String(armId)}`);
}

/**
 * Opens /dev/physcap (read-write) for arming, and reads its event records on a native
 * thread blocked in poll(2), from the oldest record the module still keeps (so an agent
 * restarted after a pretimeout still sees it).  handlers.end follows close(), or an error
 * that ended the reader.
 */
export function openPhyscapDevice(handlers: { event(e: PhyscapEvent): void; end(err: NativeError | null): void }, path = '/dev/physcap'): PhyscapDevice {
  if (typeof handlers !== 'object' || handlers === null || typeof handlers.event !== 'function' || typeof handlers.end !== 'function') {
    throw invalid('handlers must have event() and end() functions');
  }
  checkPath(path, 'path');
  const stack = new Error().stack;
  const native = withCallerStack(stack, () =>
    load().physcapOpen(path, (kind, value) => {
      if (kind === 'event') handlers.event(value as PhyscapEvent);
      else handlers.end(restack(value, stack) as NativeError | null);
    }),
  );
  let closed = false;
  const usable = () => {
    if (closed) throw invalidState('The physcap device was closed');
  };
  return {
    arm(o) {
      const why = badArm(o);
      if (why) throw invalid(why);
      usable();
      const request = {
        watchdogId: o.watchdogId,
        destFd: o.dest.fd,
        destPath: String(o.dest.path),
        cookie: o.cookie,
        thenPanic: o.thenPanic ?? false,
        stampOffset: o.stampOffset,
        ranges: o.ranges.map((r) => ({ phys: r.phys, length: r.length, destOffset: r.destOffset })),
      };
      const callerStack = new Error().stack;
      return withCallerStack(callerStack, () => native.arm(request));
    },
    disarm(armId) {
      checkArmId(armId);
      usable();
      const callerStack = new Error().stack;
      withCallerStack(callerStack, () => native.disarm(armId));
    },
    status(armId) {
      checkArmId(armId);
      usable();
      const callerStack = new Error().stack;
      return withCallerStack(callerStack, () => native.status(armId));
    },
    close() {
      if (closed) return;
      closed = true;
      native.close();
    },
  };
}

/**
 * The event records the module keeps now (at most PHYSCAP_EVENT_RING), oldest first,
 * read without waiting for more through a read-only descriptor of their own (which holds
 * no arms): for an agent starting up, to learn what happened while it was not running.
 * Errors as openPhyscapDevice's end() gets them.
 */
export function readPhyscapEvents(path = '/dev/physcap'): PhyscapEvent[] {
  checkPath(path, 'path');
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().physcapReadEvents(path));
}

/** sd_notify(3): one datagram to $NOTIFY_SOCKET; a no-op outside systemd. */
export function sdNotify(message: string, socketPath = process.env.NOTIFY_SOCKET): boolean {
  if (!socketPath) return false;
  const stack = new Error().stack;
  withCallerStack(stack, () => load().sdNotify(socketPath, message));
  return true;
}

/** Who is at the other end of a connected unix socket. */
export function peerCredentials(socket: net.Socket): { pid: number; uid: number; gid: number } {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw invalid('the socket has no file descriptor (not a connected unix socket?)');
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().peerCredentials(fd));
}
