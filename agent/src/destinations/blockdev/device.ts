/**
 * The device under a blockdev dump area: the partition (or partition
 * image) opened once for reading and, on first need, once for O_DIRECT
 * writing; its size; reads at absolute positions; aligned writes and
 * patches; fsync; and the exclusive flock that makes one writer at a time.
 * It knows nothing of the format: blockdev-format.ts says what the bytes
 * mean, the other blockdev modules what to read and write.
 */
import * as fs from 'node:fs';

import { closeDestination, Destination, fsyncFd, lockFd, openDestination, unlockFd, writeAligned } from '../../native/binding';
import { BLOCK, roundUp } from './format';
import { coded } from './util';

/**
 * The device opened twice: a plain read-only fd for reading at absolute
 * positions (O_DIRECT would want aligned buffers Node does not give), and
 * the O_DIRECT destination for every write, opened on first need so that
 * read-only verbs work on a device they may only read.  The page cache
 * stays coherent: a direct write invalidates the cached pages it covers.
 */
export class Device {
  readonly fd: number;
  readonly size: bigint;
  /** The device node itself. */
  readonly path: string;
  private dest?: Destination;

  constructor(configured: string) {
    // Stable names (/dev/disk/by-partlabel/dump) are symlinks by design, and
    // the configured name is the administrator's: resolve it once, then
    // open the node itself, never through a link.
    this.path = fs.realpathSync(configured);
    this.fd = fs.openSync(this.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const st = fs.fstatSync(this.fd);
      if (st.isFile()) this.size = BigInt(st.size);
      else if (st.isBlockDevice()) this.size = blockDeviceSize(st) ?? BigInt(this.writer().size);
      else throw coded('EINVAL', `${configured} is neither a block device nor a regular file`);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  read(pos: bigint, length: number): Buffer {
    const b = Buffer.alloc(length);
    for (let got = 0; got < length;) {
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
