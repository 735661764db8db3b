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
  /** Per-chunk digests every chunkSize bytes (default 4 MiB; 0 for none). */
  chunkSize?: number;
  /** Bytes each thread maps at once (default 8 MiB): bounds RSS. */
  window?: number;
  onProgress?: (progress: CaptureProgress) => void;
  /** Progress at most this often (default 250 ms). */
  progressMs?: number;
  signal?: AbortSignal;
}

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

export interface DeviceInfo {
  abiVersion: number;
  pageSize: number;
  features: bigint;
  physLimit: bigint;
  batchPages: number;
}

interface Addon {
  deviceInfo(): DeviceInfo;
  openDestination(path: string, mode: 'create' | 'existing'): Omit<Destination, 'path'>;
  preallocate(dest: Destination, path: string, length: bigint): void;
  writeAligned(dest: Destination, path: string, offset: bigint, data: Buffer): void;
  closeFd(fd: number): void;
  capture(
    request: Record<string, unknown>,
    onProgress: (p: CaptureProgress) => void,
    progressMs: number,
  ): { promise: Promise<CaptureResult>; cancel(): void };
  sdNotify(socketPath: string, message: string): void;
  kmsgOpen(path: string, onItem: (kind: 'record' | 'gap' | 'end', value: unknown) => void): { close(): void };
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
}

const KERNEL_ALLOW_MMIO = 1;
const KERNEL_NO_BOUNCE = 2;

let addon: Addon | undefined;

function findAddon(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'native', 'build', 'Release', 'physcap.node');
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) break;
  }
  throw Object.assign(new Error('physcap.node is not built: run "npm run build"'), { code: 'ERR_NATIVE_MISSING' });
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

export function deviceInfo(): DeviceInfo {
  const stack = new Error().stack;
  return withCallerStack(stack, () => load().deviceInfo());
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
  withCallerStack(stack, () => load().closeFd(dest.fd));
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

  const request = {
    source: o.source,
    sourcePath: o.sourcePath ?? '',
    phys: o.phys,
    imageBase: o.imageBase ?? 0n,
    length: o.length,
    kernelFlags: BigInt((o.allowMmio ? KERNEL_ALLOW_MMIO : 0) | (o.noBounce ? KERNEL_NO_BOUNCE : 0)),
    dest: o.dest,
    destPath: o.dest.path,
    destOffset: o.destOffset ?? 0n,
    truncate: o.truncate ?? false,
    sync: o.sync ?? true,
    hash: o.hash ?? 'source',
    chunkSize: BigInt(o.chunkSize ?? 4 << 20),
    window: BigInt(o.window ?? 8 << 20),
  };
  const handle = withCallerStack(stack, () =>
    load().capture(request, o.onProgress ?? (() => undefined), o.progressMs ?? 250),
  );
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
