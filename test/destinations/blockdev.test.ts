/**
 * The blockdev destination on partition images: preallocated files of a
 * fixed size, written through the real addon (O_DIRECT, flock, fsync), the
 * data by capture() from memory images in tmpfs.  Every read-back is
 * compared with the image bytes; every on-disk claim with the raw bytes.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { BlockdevStore, initBlockdev, openBlockdevStore } from '../../agent/src/destinations/blockdev/store';
import type { CaptureSink, Finish, IndexEntry } from '../../agent/src/destinations/types';
import { entryHash, serializeEntry } from '../../agent/src/manifest/chain';
import { capture, closeDestination, openDestination, preallocate } from '../../agent/src/native/binding';
import { sha256 } from '../support/hash';
import { useScratch } from '../support/tmp';

const KiB = 1024;
const MiB = 1024 * KiB;
const scratch = useScratch('bd');
const open: BlockdevStore[] = [];

afterEach(() => {
  for (const s of open.splice(0)) {
    try {
      s.close();
    } catch {
      // closed by the test
    }
  }
});

let counter = 0;

/** A partition image: a preallocated file of exactly `size` zero bytes. */
function device(size: number): string {
  const p = path.join(scratch.work(), `dev-${++counter}.img`);
  const d = openDestination(p, 'create');
  try {
    preallocate(d, BigInt(size));
  } finally {
    closeDestination(d);
  }
  expect(fs.statSync(p).size).toBe(size);
  return p;
}

function store(dev: string, init?: 'if-blank' | 'never' | 'force'): BlockdevStore {
  const s = openBlockdevStore(dev, init ? { init } : undefined);
  open.push(s);
  return s;
}

function memoryImage(size: number): { file: string; data: Buffer } {
  return scratch.image(`mem-${++counter}.bin`, size);
}

function rawBytes(file: string, at: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, at);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

function flipByte(file: string, at: number): void {
  const b = rawBytes(file, at, 1);
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, Buffer.from([b[0] ^ 0x5a]), 0, 1, at);
  } finally {
    fs.closeSync(fd);
  }
}

interface Started {
  sink: CaptureSink;
  id: string;
  started: string;
  images: Array<{ name: string; data: Buffer }>;
}

/** begin(), then each region captured by the engine into its DataFile. */
async function startCapture(s: BlockdevStore, id: string, sizes: number[], smallBytes = 8 * KiB): Promise<Started> {
  const started = new Date().toISOString();
  const sink = s.begin({
    id,
    profile: 'test',
    started,
    dataBytes: BigInt(sizes.reduce((a, b) => a + b, 0)),
    smallBytes,
    intent: Buffer.from(JSON.stringify({ id, profile: 'test', started, trigger: 'manual' })),
  });
  const images: Started['images'] = [];
  for (const [i, size] of sizes.entries()) {
    const img = memoryImage(size);
    const f = sink.openData(`region-${i}.bin`, BigInt(size));
    const result = await capture({
      source: 'image',
      sourcePath: img.file,
      phys: 0n,
      length: BigInt(size),
      dest: f.dest,
      destOffset: f.base,
      truncate: false,
      sync: true,
    });
    expect(result.sha256).toBe(sha256(img.data));
    images.push({ name: f.name, data: img.data });
  }
  return { sink, id, started, images };
}

function finish(c: Started, status: 'complete' | 'failed' = 'complete', error?: string): (previous: string | null) => Finish {
  return (previous) => {
    const manifest = Buffer.from(JSON.stringify({ id: c.id, status, previous, files: c.images.map((i) => ({ name: i.name, sha256: sha256(i.data) })) }));
    const sums = Buffer.from(c.images.map((i) => `${sha256(i.data)}  ${i.name}\n`).join(''));
    const bytes = c.images.reduce((a, i) => a + i.data.length, 0);
    return {
      manifest,
      files: [{ name: 'SHA256SUMS', data: sums }],
      entry: {
        id: c.id,
        profile: 'test',
        status,
        started: c.started,
        finished: new Date().toISOString(),
        bytes,
        manifestSha256: sha256(manifest),
        ...(error ? { error } : {}),
      },
    };
  };
}

async function captureCommitted(s: BlockdevStore, id: string, sizes: number[]): Promise<Started & { entry: IndexEntry }> {
  const c = await startCapture(s, id, sizes);
  return { ...c, entry: c.sink.commit(finish(c)) };
}

/** Reads every data file back through open() in odd-sized pieces, and compares. */
function expectReadsBack(s: BlockdevStore, c: Started): void {
  const r = s.open(c.id);
  try {
    for (const img of c.images) {
      const parts: Buffer[] = [];
      for (let at = 0; at < img.data.length; at += 777 * KiB + 13) parts.push(r.read(img.name, at, 777 * KiB + 13));
      expect(Buffer.concat(parts).equals(img.data)).toBe(true);
    }
    const manifest = JSON.parse(r.readFile('manifest.json').toString()) as { id: string };
    expect(manifest.id).toBe(c.id);
    expect(sha256(r.readFile('manifest.json'))).toBe(r.entry.manifestSha256);
  } finally {
    r.close();
  }
}

const SLOT = (n: number) => 4096 + n * 1024;

describe('initializing a dump area', () => {
  test('if-blank writes a little-endian superblock and an empty index', () => {
    const dev = device(64 * MiB);
    const s = store(dev);
    expect(s.kind).toBe('blockdev');
    expect(s.index()).toEqual({ entries: [], problems: [], head: null, reclaimed: [] });

    const sb = rawBytes(dev, 0, 4096);
    expect(sb.subarray(0, 8).toString('ascii')).toBe('PHYSCAPR');
    expect(sb.readUInt32LE(8)).toBe(1);
    expect(sb.readUInt32LE(12)).toBe(4096);
    expect(sb.readBigUInt64LE(16)).toBe(BigInt(64 * MiB));
    expect(sb.readBigUInt64LE(24)).toBe(4096n);
    expect(sb.readUInt32LE(32)).toBe(1024);
    expect(sb.readUInt32LE(36)).toBe((MiB - 4096) / 1024);
    expect(sb.readBigUInt64LE(40)).toBe(BigInt(MiB));
    expect(sb.readBigUInt64LE(48)).toBe(BigInt(64 * MiB));
    // 1 MiB, little-endian, byte by byte: not the host's order by accident.
    expect([...sb.subarray(40, 48)]).toEqual([0, 0, 0x10, 0, 0, 0, 0, 0]);
    expect(sb.subarray(56, 72).equals(Buffer.alloc(16))).toBe(false); // a random uuid
    expect(sb.subarray(72, 104).toString('hex')).toBe(sha256(sb.subarray(0, 72)));
    expect(sb.subarray(104).equals(Buffer.alloc(4096 - 104))).toBe(true);
  });

  test('a device holding other data is refused and left untouched', () => {
    const dev = device(4 * MiB);
    const junk = crypto.randomBytes(512);
    const fd = fs.openSync(dev, 'r+');
    fs.writeSync(fd, junk, 0, junk.length, 300 * KiB);
    fs.closeSync(fd);
    const before = sha256(fs.readFileSync(dev));
    expect(() => openBlockdevStore(dev)).toThrow(`${dev} is not a physcap dump area (no superblock); initialize it with \`physcap blockdev init ${dev}\``);
    expect(sha256(fs.readFileSync(dev))).toBe(before);
    // The explicit init takes it.
    initBlockdev(dev);
    expect(store(dev, 'never').index().entries).toEqual([]);
  });

  test("'never' refuses a blank device; 'force' reinitializes a used one", async () => {
    const blank = device(4 * MiB);
    expect(() => openBlockdevStore(blank, { init: 'never' })).toThrow(/is not a physcap dump area \(no superblock\)/);
    expect(rawBytes(blank, 0, 8).equals(Buffer.alloc(8))).toBe(true);

    const s = store(blank);
    await captureCommitted(s, 'cap-a', [64 * KiB]);
    const uuid = rawBytes(blank, 56, 16);
    s.close();
    const again = store(blank, 'force');
    expect(again.index().entries).toEqual([]);
    expect(rawBytes(blank, 56, 16).equals(uuid)).toBe(false);
  });

  test('a device too small for a ring is refused with the figures', () => {
    const dev = device(2 * MiB - 4096);
    expect(() => openBlockdevStore(dev)).toThrow(`${dev} is too small for a dump area: ${2 * MiB - 4096} bytes; it needs at least ${2 * MiB}`);
    expect(() => initBlockdev(dev)).toThrow(/too small for a dump area/);
  });

  test('initBlockdev empties the index of a used area', async () => {
    const dev = device(4 * MiB);
    const s = store(dev);
    await captureCommitted(s, 'old', [64 * KiB]);
    s.close();
    initBlockdev(dev);
    expect(store(dev, 'never').index()).toMatchObject({ entries: [], problems: [] });
  });
});

describe('captures through the sink', () => {
  test('begin, openData, capture, commit: the index has the entry and open() reads back every byte', async () => {
    const dev = device(64 * MiB);
    const s = store(dev);
    const c = await startCapture(s, '20250101T000000Z-a1', [3 * MiB, MiB, 5000]);
    expect(c.sink.location).toBe(`${dev}@${MiB}`);
    const entry = c.sink.commit(finish(c));
    expect(entry).toMatchObject({ seq: 1, prev: null, status: 'complete', id: c.id, location: `record@${MiB}`, bytes: 4 * MiB + 5000 });

    const read = s.index();
    expect(read.problems).toEqual([]);
    expect(read.entries).toEqual([entry]);
    expect(read.head).toBe(entryHash(serializeEntry(entry)));

    expectReadsBack(s, c);
    const r = s.open(c.id);
    expect(r.location).toBe(`${dev}@${MiB}`);
    expect(r.files()).toEqual([
      { name: 'region-0.bin', size: 3 * MiB },
      { name: 'region-1.bin', size: MiB },
      { name: 'region-2.bin', size: 5000 },
      { name: 'SHA256SUMS', size: expect.any(Number) },
      { name: 'manifest.json', size: expect.any(Number) },
    ]);
    expect(r.readFile('SHA256SUMS').toString()).toContain(`${sha256(c.images[2].data)}  region-2.bin`);
    expect(r.read('region-2.bin', 4990, 100)).toHaveLength(10); // short only at the file's end
    r.close();
  });

  test('DataFiles sit on 4096-byte boundaries inside the record, in openData() order', async () => {
    const dev = device(8 * MiB);
    const s = store(dev);
    const sink = s.begin({
      id: 'layout',
      profile: 'p',
      started: new Date().toISOString(),
      dataBytes: BigInt(8192 + 100),
      smallBytes: 4096,
      intent: Buffer.from('{}'),
    });
    const a = sink.openData('a', 8192n);
    const b = sink.openData('b', 100n);
    expect([a.base, b.base]).toEqual([BigInt(MiB + 4096), BigInt(MiB + 4096 + 8192)]);
    expect(a.dest).toBe(b.dest);
    expect(() => sink.openData('a', 1n)).toThrow(/data file a exists/);
    expect(() => sink.openData('c', 4097n)).toThrow(/beyond the 12288 data bytes planned at begin\(\)/);
    sink.fail(() => {
      throw new Error('nothing to say');
    });
  });

  test('captures chain: each prev is the hash of the entry before; ids open by unique prefix', async () => {
    const dev = device(64 * MiB);
    const s = store(dev);
    const caps = [];
    for (const id of ['20250101-aaa', '20250102-bbb', '20250102-bcc']) caps.push(await captureCommitted(s, id, [256 * KiB]));
    const { entries, problems, head } = s.index();
    expect(problems).toEqual([]);
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(entries[0].prev).toBeNull();
    expect(entries[1].prev).toBe(entryHash(serializeEntry(entries[0])));
    expect(entries[2].prev).toBe(entryHash(serializeEntry(entries[1])));
    expect(head).toBe(entryHash(serializeEntry(entries[2])));
    // Placed one after another.
    expect(entries.map((e) => e.location)).toEqual([MiB, MiB + 4096 + 256 * KiB + 8192, MiB + 2 * (4096 + 256 * KiB + 8192)].map((o) => `record@${o}`));
    // The manifest saw the head under the lock.
    const r = s.open('20250102-bc');
    expect(JSON.parse(r.readFile('manifest.json').toString()).previous).toBe(entryHash(serializeEntry(entries[1])));
    r.close();
    for (const c of caps) expectReadsBack(s, c);
    expect(() => s.open('20250102')).toThrow(`"20250102" is ambiguous in ${dev}: it matches 20250102-bbb, 20250102-bcc`);
    expect(() => s.open('nope')).toThrow(`no capture "nope" in ${dev}; it holds: 20250101-aaa, 20250102-bbb, 20250102-bcc`);
    expect(() => s.begin({ id: '20250101-aaa', profile: 'p', started: '', dataBytes: 0n, smallBytes: 0, intent: Buffer.from('{}') })).toThrow(
      /already holds a capture 20250101-aaa/,
    );
  });

  test('one writer at a time: a second store gets EBUSY until the first commits', async () => {
    const dev = device(8 * MiB);
    const a = store(dev);
    const b = store(dev);
    const c = await startCapture(a, 'first', [64 * KiB]);
    expect(() => b.begin({ id: 'second', profile: 'p', started: '', dataBytes: 0n, smallBytes: 4096, intent: Buffer.from('{}') })).toThrow(
      expect.objectContaining({ code: 'EBUSY' }),
    );
    expect(() => b.recover({ keep: true, reason: 'x' })).toThrow(/its unfinished capture is alive/);
    c.sink.commit(finish(c));
    await captureCommitted(b, 'second', [64 * KiB]);
    expect(a.index().entries.map((e) => e.id)).toEqual(['first', 'second']);
  });
});

describe('the ring', () => {
  test('wrap-around reclaims the oldest: listed as reclaimed, refused by open(), the newer ones intact', async () => {
    const dev = device(3 * MiB); // ring: 2 MiB, three records of ~612 KiB fit
    const s = store(dev);
    const size = 600 * KiB;
    const record = 4096 + size + 8192;
    const caps = [];
    for (const id of ['c1', 'c2', 'c3']) caps.push(await captureCommitted(s, id, [size]));
    expect(s.index().reclaimed).toEqual([]);

    caps.push(await captureCommitted(s, 'c4', [size]));
    expect(caps[3].entry.location).toBe(`record@${MiB}`); // wrapped to the ring's start
    let read = s.index();
    expect(read.problems).toEqual([]);
    expect(read.reclaimed).toEqual(['c1']);
    // Said once, for the log: no record leaves silently.
    expect(s.takeWarnings()).toEqual(["capture c1 was reclaimed: the ring's oldest data made room for c4 (its index entry stays)"]);
    expect(s.takeWarnings()).toEqual([]);
    expect(read.entries.map((e) => e.id)).toEqual(['c1', 'c2', 'c3', 'c4']); // the chain stays whole
    expect(() => s.open('c1')).toThrow('capture c1 in ' + dev + ': its data was reclaimed by newer captures');
    for (const c of caps.slice(1)) expectReadsBack(s, c);

    caps.push(await captureCommitted(s, 'c5', [size]));
    expect(caps[4].entry.location).toBe(`record@${MiB + record}`);
    read = s.index();
    expect(read.problems).toEqual([]);
    expect(read.reclaimed.sort()).toEqual(['c1', 'c2']);
    for (const c of [caps[2], caps[3], caps[4]]) expectReadsBack(s, c);
    // Nothing ever grew the partition image.
    expect(fs.statSync(dev).size).toBe(3 * MiB);
  });

  test('checkSpace: more than the ring can hold is ENOSPC with the figures', () => {
    const dev = device(64 * MiB);
    const s = store(dev);
    expect(() => s.checkSpace(BigInt(32 * MiB))).not.toThrow();
    let err: (Error & { code?: string }) | undefined;
    try {
      s.checkSpace(BigInt(63 * MiB));
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).toBe('ENOSPC');
    expect(err?.message).toBe(
      `${dev}: a capture of ${63 * MiB} bytes needs a record of ${63 * MiB + 8192} bytes; the ring holds ${63 * MiB} bytes (${MiB}-${64 * MiB})`,
    );
    expect(() => s.begin({ id: 'big', profile: 'p', started: '', dataBytes: BigInt(63 * MiB), smallBytes: 4096, intent: Buffer.from('{}') })).toThrow(
      expect.objectContaining({ code: 'ENOSPC' }),
    );
    expect(s.retain('whatever')).toEqual([]);
  });

  test('when every slot is used, the oldest entry leaves the index and the rest still chains (its prev is the anchor)', async () => {
    const dev = device(3 * MiB);
    const s = store(dev);
    const slots = (MiB - 4096) / 1024;
    const n = slots + 5;
    let last: IndexEntry | undefined;
    for (let i = 1; i <= n; i++) {
      const id = `tiny-${String(i).padStart(5, '0')}`;
      const sink = s.begin({ id, profile: 'p', started: new Date().toISOString(), dataBytes: 0n, smallBytes: 100, intent: Buffer.from('{}') });
      last = sink.commit((previous) => ({
        manifest: Buffer.from(JSON.stringify({ id, previous })),
        files: [],
        entry: { id, profile: 'p', status: 'complete', started: '', finished: '', bytes: 0 },
      }));
    }
    const read = s.index();
    expect(read.problems).toEqual([]);
    expect(read.entries).toHaveLength(slots);
    expect(read.entries[0].seq).toBe(6);
    expect(read.entries[0].prev).not.toBeNull();
    expect(read.head).toBe(entryHash(serializeEntry(last!)));
    expect(() => s.open('tiny-00005')).toThrow(/no capture "tiny-00005"/);
    expect(JSON.parse(s.open(last!.id).readFile('manifest.json').toString()).id).toBe(last!.id);
  }, 120_000);
});

describe('unfinished and failed captures', () => {
  test('crash: begin, data written, no commit; after reopening, recover() appends a failed entry and the chain holds', async () => {
    const dev = device(64 * MiB);
    let s = store(dev);
    const done = await captureCommitted(s, 'before', [128 * KiB]);
    const c = await startCapture(s, 'crashed', [MiB]);
    s.close(); // the process dies: the lock goes with the fd
    s = store(dev);
    expect(s.index().entries.map((e) => e.id)).toEqual(['before']);

    const recovered = s.recover({ keep: true, reason: 'power loss before commit' });
    expect(recovered).toEqual([
      expect.objectContaining({
        seq: 2,
        id: 'crashed',
        profile: 'test',
        status: 'failed',
        started: c.started,
        bytes: 0,
        error: 'power loss before commit',
        recovered: 'power loss before commit',
        prev: entryHash(serializeEntry(done.entry)),
        location: `record@${MiB + 4096 + 128 * KiB + 8192}`,
      }),
    ]);
    expect(s.recover({ keep: false, reason: 'again' })).toEqual([]);
    const after = await captureCommitted(s, 'after', [128 * KiB]);
    expect(after.entry.prev).toBe(entryHash(serializeEntry(recovered[0])));
    const read = s.index();
    expect(read.problems).toEqual([]);
    expect(read.entries.map((e) => `${e.seq}:${e.id}:${e.status}`)).toEqual(['1:before:complete', '2:crashed:failed', '3:after:complete']);
    // The record header was never written: open() says so instead of returning garbage.
    expect(() => s.open('crashed')).toThrow(/capture crashed at .*: no record header/);
    expectReadsBack(s, after);
  });

  test('a begin() after a crash records the orphan itself before taking space', async () => {
    const dev = device(8 * MiB);
    let s = store(dev);
    await startCapture(s, 'orphan', [64 * KiB]);
    s.close();
    s = store(dev);
    await captureCommitted(s, 'next', [64 * KiB]);
    const read = s.index();
    expect(read.problems).toEqual([]);
    expect(read.entries.map((e) => `${e.id}:${e.status}`)).toEqual(['orphan:failed', 'next:complete']);
    expect(read.entries[0].recovered).toMatch(/writer was gone when capture next began/);
  });

  test('fail() records a failed entry with its manifest; a failing build still leaves one; a second fail() is a no-op', async () => {
    const dev = device(16 * MiB);
    const s = store(dev);
    const c = await startCapture(s, 'half', [MiB]);
    const entry = c.sink.fail(finish(c, 'failed', 'source vanished'));
    expect(entry).toMatchObject({ seq: 1, id: 'half', status: 'failed', error: 'source vanished', prev: null });
    expect(c.sink.fail(finish(c, 'failed', 'again'))).toBeUndefined();
    expectReadsBack(s, c); // the data written so far is kept and readable

    const d = await startCapture(s, 'worse', [64 * KiB]);
    const e2 = d.sink.fail(() => {
      throw new Error('manifest builder crashed');
    });
    expect(e2).toMatchObject({ seq: 2, id: 'worse', status: 'failed', prev: entryHash(serializeEntry(entry!)) });
    expect(e2?.error).toMatch(/manifest builder crashed/);
    expect(e2?.manifestSha256).toBeUndefined();
    expect(s.index().problems).toEqual([]);
    const r = s.open('worse');
    expect(r.files().map((f) => f.name)).toEqual(['region-0.bin']);
    expect(r.readFile('region-0.bin').equals(d.images[0].data)).toBe(true);
    r.close();
  });

  test('small files beyond what begin() reserved: commit throws, fail() still records the capture', async () => {
    const dev = device(8 * MiB);
    const s = store(dev);
    const c = await startCapture(s, 'cramped', [64 * KiB], 10);
    const big = (): Finish => ({ ...finish(c)(null), manifest: Buffer.alloc(5000, 0x20) });
    expect(() => c.sink.commit(big)).toThrow(/the small files need \d+ bytes; begin\(\) reserved 4096/);
    const e = c.sink.fail(() => ({ ...finish(c, 'failed', 'commit failed')(null), manifest: Buffer.alloc(5000, 0x20) }));
    expect(e).toMatchObject({ id: 'cramped', status: 'failed' });
    expect(e?.error).toMatch(/^commit failed; /);
    expect(e?.manifestSha256).toBeUndefined();
    expect(e?.error).toMatch(/record not written/);
    expect(s.index().problems).toEqual([]);
  });
});

describe('armed reservations: a record held for the kernel, other captures around it', () => {
  /** begin() as an armed capture does: the intent says `armed`, the data files are placed, then the record is reserved. */
  function reserveArmed(s: BlockdevStore, id: string, size: number): { sink: CaptureSink; started: string; file: { base: bigint; size: bigint } } {
    const started = new Date().toISOString();
    const sink = s.begin({
      id,
      profile: 'armed',
      started,
      dataBytes: BigInt(size),
      smallBytes: 8 * KiB,
      intent: Buffer.from(JSON.stringify({ id, profile: 'armed', started, armed: { cookie: 'c0ffee', watchdogId: 0, bootId: null } })),
    });
    const f = sink.openData('core.elf', BigInt(size));
    sink.reserve!();
    return { sink, started, file: { base: f.base, size: f.size } };
  }

  test('a reservation does not stop other captures; they are placed around it, never over it, even when the ring wraps', async () => {
    const dev = device(8 * MiB); // a 7 MiB ring
    const armedStore = store(dev);
    const a = reserveArmed(armedStore, 'armed-1', 2 * MiB);
    const other = store(dev);
    const reserved = { from: a.file.base, to: a.file.base + a.file.size };
    const placed: Array<{ from: bigint; to: bigint }> = [];
    // Five captures of 1.5 MiB: the ring wraps, and each lands outside the reservation.
    for (let i = 0; i < 5; i++) {
      const c = await captureCommitted(other, `c${i}`, [1536 * KiB]);
      const at = BigInt(c.entry.location.replace('record@', ''));
      placed.push({ from: at, to: at + 4096n + BigInt(1536 * KiB) });
      expectReadsBack(other, c);
    }
    for (const p of placed) expect(p.to <= reserved.from - 4096n || p.from >= reserved.to).toBe(true);
    // Recovery by another store leaves a live reservation alone.
    expect(other.recover({ keep: true, reason: 'start-up' })).toEqual([]);
    expect(other.unfinished().map((u) => u.id)).toEqual(['armed-1']);
    expect(() => other.resume('armed-1')).toThrow(/armed by a running physcap/);
    // The kernel wrote it: the armed store finishes it after waiting its turn.
    const img = memoryImage(2 * MiB);
    const d = openDestination(dev, 'existing');
    try {
      await capture({ source: 'image', sourcePath: img.file, phys: 0n, length: BigInt(2 * MiB), dest: d, destOffset: a.file.base, sync: true });
    } finally {
      closeDestination(d);
    }
    // Ending it waits while another capture holds the writer's lock, and goes on when that one is done.
    const busy = await startCapture(other, 'busy', [64 * KiB]);
    let ready = false;
    const writable = a.sink.writable!().then(() => (ready = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(ready).toBe(false);
    busy.sink.commit(finish(busy));
    await writable;
    const entry = a.sink.commit(finish({ sink: a.sink, id: 'armed-1', started: a.started, images: [{ name: 'core.elf', data: img.data }] }));
    expect(entry).toMatchObject({ id: 'armed-1', status: 'complete', seq: 7 });
    const read = other.index();
    expect(read.problems).toEqual([]);
    expect(read.entries.at(-1)!.id).toBe('armed-1');
    expectReadsBack(other, { sink: a.sink, id: 'armed-1', started: a.started, images: [{ name: 'core.elf', data: img.data }] });
  });

  test('a ring whose room is all reserved refuses a capture with ENOSPC, naming why; nothing reserved is touched', () => {
    const dev = device(8 * MiB);
    const a = reserveArmed(store(dev), 'armed-big', 5 * MiB);
    expect(() =>
      store(dev).begin({ id: 'x', profile: 't', started: a.started, dataBytes: BigInt(3 * MiB), smallBytes: 4096, intent: Buffer.from('{}') }),
    ).toThrow(/no room for a record of \d+ bytes: armed captures hold \d+ bytes at \d+ of the ring .* never overwritten/);
  });

  test('when its agent is gone (kill -9), recovery records the reservation failed; resume() reopens it with its data files where they were', () => {
    const dev = device(8 * MiB);
    const s1 = store(dev);
    const a = reserveArmed(s1, 'armed-dead', MiB);
    s1.close(); // the process dies: the slot's record lock goes with the fd
    const s2 = store(dev);
    const { sink, data } = s2.resume('armed-dead');
    expect(data('core.elf')).toMatchObject({ base: a.file.base, size: a.file.size });
    expect(() => data('nope')).toThrow(/has no data file nope/);
    sink.discard();
    expect(s2.unfinished()).toEqual([]);
    // Another, left unfinished: recover() records it, being dead.
    const s3 = store(dev);
    reserveArmed(s3, 'armed-dead-2', MiB);
    s3.close();
    expect(s2.recover({ keep: true, reason: 'start-up' }).map((e) => `${e.id}:${e.status}`)).toEqual(['armed-dead-2:failed']);
  });
});

describe('corruption is found and named', () => {
  test('a flipped byte in a slot: that slot is reported and skipped, the chain break after it too', async () => {
    const dev = device(8 * MiB);
    const s = store(dev);
    for (const id of ['x1', 'x2', 'x3']) await captureCommitted(s, id, [16 * KiB]);
    flipByte(dev, SLOT(1) + 80);
    const read = s.index();
    expect(read.entries.map((e) => e.id)).toEqual(['x1', 'x3']);
    expect(read.problems).toEqual(['slot 1: corrupt (checksum mismatch); skipped', 'slot 2: chain broken: entry 3 (x3) does not point at the entry before it']);
  });

  test('a flipped byte in a record header: open() refuses it, naming the capture and where', async () => {
    const dev = device(8 * MiB);
    const s = store(dev);
    await captureCommitted(s, 'hdr', [16 * KiB]);
    flipByte(dev, MiB + 60);
    expect(() => s.open('hdr')).toThrow(`capture hdr at ${dev}@${MiB}: record header is corrupt (checksum mismatch)`);
    expect(s.index().problems).toEqual([]); // the index itself is fine
  });

  test('a flipped byte in the superblock: the device is refused, naming it and the field', async () => {
    const dev = device(8 * MiB);
    store(dev).close();
    flipByte(dev, 17); // inside the device size
    for (const init of ['if-blank', 'never'] as const) {
      expect(() => openBlockdevStore(dev, { init })).toThrow(`${dev}: the physcap superblock is invalid: field "checksum" (bytes 72-103) does not match`);
    }
  });
});

describe('byte order', () => {
  test("a slot's fields decode by hand as little-endian at their documented offsets", async () => {
    const dev = device(8 * MiB);
    const s = store(dev);
    const c = await captureCommitted(s, 'le', [64 * KiB]);
    const slot = rawBytes(dev, SLOT(0), 1024);
    expect(slot.subarray(0, 4).toString('ascii')).toBe('PXSL');
    expect(slot.readUInt32LE(4)).toBe(2); // done
    expect(slot.readBigUInt64LE(8)).toBe(1n); // generation
    expect(slot.readBigUInt64LE(16)).toBe(BigInt(MiB)); // record offset
    expect([...slot.subarray(16, 24)]).toEqual([0, 0, 0x10, 0, 0, 0, 0, 0]);
    const length = 4096 + 64 * KiB + 8192;
    expect(slot.readBigUInt64LE(24)).toBe(BigInt(length));
    expect([...slot.subarray(24, 28)]).toEqual([length & 0xff, (length >> 8) & 0xff, (length >> 16) & 0xff, length >>> 24]);
    const textLength = slot.readUInt32LE(32);
    const text = slot.subarray(68, 68 + textLength);
    expect(text.toString('utf8')).toBe(serializeEntry(c.entry));
    expect(slot.subarray(36, 68).toString('hex')).toBe(sha256(Buffer.concat([slot.subarray(0, 36), text])));
    expect(slot.subarray(68 + textLength).equals(Buffer.alloc(1024 - 68 - textLength))).toBe(true);

    // And the record header, likewise.
    const hdr = rawBytes(dev, MiB, 4096);
    expect(hdr.subarray(0, 8).toString('ascii')).toBe('PHYSCAPC');
    expect(hdr.readUInt32LE(8)).toBe(1);
    expect(hdr.readBigUInt64LE(16)).toBe(1n);
    expect(hdr.subarray(24, 40).equals(rawBytes(dev, 56, 16))).toBe(true); // the superblock's uuid
    const idLength = hdr.readUInt32LE(40);
    const tableLength = hdr.readUInt32LE(44);
    expect(hdr.subarray(48, 48 + idLength).toString()).toBe('le');
    const table = JSON.parse(hdr.subarray(48 + idLength, 48 + idLength + tableLength).toString()) as Array<{ name: string; offset: number; size: number }>;
    expect(table[0]).toEqual({ name: 'region-0.bin', offset: 4096, size: 64 * KiB });
    const end = 48 + idLength + tableLength;
    expect(hdr.subarray(end, end + 32).toString('hex')).toBe(sha256(hdr.subarray(0, end)));
  });
});
