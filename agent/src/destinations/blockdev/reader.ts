/**
 * Reading one stored capture of a blockdev dump area: its record's files,
 * by the table in the record header that the store checked when it opened
 * the capture (blockdev.ts, Store.open).  Reads go straight to the device
 * at the record's offset; locate() gives the same place for native
 * re-hashing.
 */
import * as fs from 'node:fs';

import type { RecordFile } from './format';
import { coded } from './util';
import type { CaptureReader, IndexEntry } from '../types';

export class RecordReader implements CaptureReader {
  private readonly fd: number;

  constructor(
    readonly entry: IndexEntry,
    readonly location: string,
    private readonly devicePath: string,
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

  locate(name: string): { path: string; base: bigint; size: number; nofollow: boolean } {
    const f = this.file(name);
    return { path: this.devicePath, base: this.recordOffset + BigInt(f.offset), size: f.size, nofollow: true };
  }

  read(name: string, offset: number, length: number): Buffer {
    const f = this.file(name);
    if (offset < 0 || length < 0) throw coded('EINVAL', `${this.location}: ${name}: offset and length must be >= 0`);
    const n = Math.max(0, Math.min(length, f.size - offset));
    const b = Buffer.alloc(n);
    const at = this.recordOffset + BigInt(f.offset + offset);
    for (let got = 0; got < n;) {
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
