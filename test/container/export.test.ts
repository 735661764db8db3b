/** Exports of captures held in real files, read through a small CaptureReader over a directory. */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { NOTE_PHYSCAP, NOTE_VMCOREINFO, PT_LOAD, hostElfTarget, layoutElfCore, parseElfCore } from '../../agent/src/container/elf';
import { exportCapture } from '../../agent/src/postmortem/export';
import { parseLime } from '../../agent/src/container/lime';
import type { CaptureReader, IndexEntry } from '../../agent/src/destinations/types';
import type { Manifest, ManifestRegion } from '../../agent/src/manifest/types';
import { sha256 } from '../support/hash';
import { removeDir, tempDir } from '../support/tmp';

let dir: string;
beforeEach(() => {
  dir = tempDir('export');
});
afterEach(() => {
  removeDir(dir);
});

/** A CaptureReader over a directory of files: what the dir destination hands the export verb. */
class DirReader implements CaptureReader {
  readonly entry: IndexEntry;
  constructor(readonly location: string) {
    this.entry = { seq: 1, id: path.basename(location), profile: 'board', status: 'complete', started: '', finished: '', bytes: 0, prev: null, location };
  }
  files() {
    return fs.readdirSync(this.location).map((name) => ({ name, size: fs.statSync(path.join(this.location, name)).size }));
  }
  readFile(name: string) {
    return fs.readFileSync(path.join(this.location, name));
  }
  locate(name: string) {
    return { path: path.join(this.location, name), base: 0n, size: fs.statSync(path.join(this.location, name)).size, nofollow: true };
  }
  read(name: string, offset: number, length: number) {
    const fd = fs.openSync(path.join(this.location, name), 'r');
    try {
      const b = Buffer.alloc(length);
      return b.subarray(0, fs.readSync(fd, b, 0, length, offset));
    } finally {
      fs.closeSync(fd);
    }
  }
  close() {}
}

function manifestOf(regions: ManifestRegion[], format: Manifest['format'] = 'raw'): Manifest {
  return {
    apiVersion: 'physcap.dev/v1',
    kind: 'CaptureManifest',
    id: '20240601T120000Z-board',
    status: 'complete',
    profile: { name: 'board', file: '/etc/physcap/profiles.d/board.yaml', sha256: 'ab'.repeat(32) },
    labels: {},
    triggers: [],
    host: { hostname: 'h', machineId: null, bootId: null, kernelRelease: '6.1.0', arch: process.arch },
    versions: { agent: '0.1.0', addon: null, moduleAbi: null },
    format,
    byteOrder: 'little',
    regions,
    files: [],
    timing: { started: '', finished: '', seconds: 1, bytesPerSecond: 1 },
    previous: null,
  };
}

function region(name: string, phys: bigint, data: Buffer, file: string, offset: number): ManifestRegion {
  return {
    name,
    phys: `0x${phys.toString(16)}`,
    size: data.length,
    source: 'image',
    mode: 'copy',
    bytesZeroCopy: 0,
    bytesCopied: data.length,
    bytesBounced: 0,
    bytesPoisoned: 0,
    memory: 'quiescent',
    digest: 'read-back',
    file,
    offset,
    sha256: sha256(data),
    chunkSize: 0,
    chunks: [],
  };
}

interface Capture {
  reader: DirReader;
  manifest: Manifest;
  data: Map<string, Buffer>;
  phys: Map<string, bigint>;
}

/**
 * A raw capture whose manifest lists regions out of physical order: one
 * spanning several 4 MiB pieces, one sharing a file at a non-zero offset.
 */
function rawCapture(): Capture {
  const capDir = path.join(dir, 'capture');
  fs.mkdirSync(capDir);
  const high = crypto.randomBytes(9 * 1024 * 1024 + 123);
  const low = crypto.randomBytes(0x9_f000);
  const mid = crypto.randomBytes(5000);
  fs.writeFileSync(path.join(capDir, 'high.raw'), high);
  fs.writeFileSync(path.join(capDir, 'low.raw'), low);
  fs.writeFileSync(path.join(capDir, 'shared.bin'), Buffer.concat([crypto.randomBytes(8192), mid, crypto.randomBytes(100)]));
  const regions = [
    region('high', 0x1_0000_0000n, high, 'high.raw', 0),
    region('low', 0x1000n, low, 'low.raw', 0),
    region('mid', 0x2000_0000n, mid, 'shared.bin', 8192),
  ];
  fs.writeFileSync(path.join(capDir, 'manifest.json'), JSON.stringify(manifestOf(regions)));
  return {
    reader: new DirReader(capDir),
    manifest: manifestOf(regions),
    data: new Map([
      ['high', high],
      ['low', low],
      ['mid', mid],
    ]),
    phys: new Map(regions.map((r) => [r.name, BigInt(r.phys)])),
  };
}

const PHYSICAL_ORDER = ['low', 'mid', 'high'];

function readelf(file: string) {
  const r = spawnSync('/usr/bin/readelf', ['-h', '-l', '-n', '-W', file], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

test('lime: a header before each region, in physical-address order, then the region bytes', async () => {
  const c = rawCapture();
  const out = path.join(dir, 'mem.lime');
  const result = await exportCapture({ reader: c.reader, manifest: c.manifest, format: 'lime', out });
  const bytes = fs.readFileSync(out);
  expect(result.files).toEqual([{ path: out, size: bytes.length, sha256: sha256(bytes) }]);
  expect(bytes.length).toBe(3 * 32 + [...c.data.values()].reduce((s, d) => s + d.length, 0));
  const ranges = parseLime((o, l) => bytes.subarray(o, o + l), bytes.length);
  expect(ranges.map((r) => r.start)).toEqual(PHYSICAL_ORDER.map((n) => c.phys.get(n)));
  ranges.forEach((r, i) => {
    const data = c.data.get(PHYSICAL_ORDER[i])!;
    expect(r.endInclusive).toBe(r.start + BigInt(data.length) - 1n);
    expect(bytes.subarray(r.dataOffset, r.dataOffset + data.length).equals(data)).toBe(true);
  });
});

test("raw: a new directory with <region>.raw per region, each the region's bytes", async () => {
  const c = rawCapture();
  const out = path.join(dir, 'raw');
  const result = await exportCapture({ reader: c.reader, manifest: c.manifest, format: 'raw', out });
  expect(fs.readdirSync(out).sort()).toEqual(['high.raw', 'low.raw', 'mid.raw']);
  expect(result.files).toHaveLength(3);
  for (const [name, data] of c.data) {
    const file = path.join(out, `${name}.raw`);
    expect(fs.readFileSync(file).equals(data)).toBe(true);
    expect(result.files).toContainEqual({ path: file, size: data.length, sha256: sha256(data) });
  }
});

test("raw with a region: one file holding that region's bytes", async () => {
  const c = rawCapture();
  const out = path.join(dir, 'mid.bin');
  const result = await exportCapture({ reader: c.reader, manifest: c.manifest, format: 'raw', out, region: 'mid' });
  expect(fs.readFileSync(out).equals(c.data.get('mid')!)).toBe(true);
  expect(result.files).toEqual([{ path: out, size: 5000, sha256: c.manifest.regions[2].sha256 }]);
  await expect(exportCapture({ reader: c.reader, manifest: c.manifest, format: 'raw', out: path.join(dir, 'x'), region: 'nope' })).rejects.toThrow(
    'has no region "nope" (it has: high, low, mid)',
  );
  expect(fs.existsSync(path.join(dir, 'x'))).toBe(false);
});

test('elf: an ELF core that parseElfCore and readelf read, LOADs in physical order over the region bytes, a PHYSCAP note', async () => {
  const c = rawCapture();
  const out = path.join(dir, 'core.elf');
  const target = { machine: 183, bigEndian: false };
  const progress: Array<[number, number]> = [];
  const result = await exportCapture({ reader: c.reader, manifest: c.manifest, format: 'elf', out, target, onProgress: (d, t) => progress.push([d, t]) });
  const bytes = fs.readFileSync(out);
  expect(result.files).toEqual([{ path: out, size: bytes.length, sha256: sha256(bytes) }]);

  const core = parseElfCore((o, l) => bytes.subarray(o, o + l), bytes.length);
  expect(core.target).toEqual(target);
  const loads = core.segments.filter((s) => s.type === PT_LOAD);
  expect(loads.map((s) => s.paddr)).toEqual(PHYSICAL_ORDER.map((n) => c.phys.get(n)));
  loads.forEach((s, i) => {
    expect(s.offset % 4096n).toBe(0n);
    expect(s.align).toBe(0n); // as /proc/vmcore: crash types p_align != 0 as netdump
    expect(bytes.subarray(Number(s.offset), Number(s.offset + s.filesz)).equals(c.data.get(PHYSICAL_ORDER[i])!)).toBe(true);
  });
  expect(bytes.length % 4096).toBe(0);
  expect(core.notes.map((n) => n.name)).toEqual(['PHYSCAP']); // a raw capture has no VMCOREINFO to carry
  const meta = JSON.parse(core.notes[0].desc.toString('utf8'));
  expect(core.notes[0].type).toBe(NOTE_PHYSCAP.type);
  expect(meta).toEqual({
    id: c.manifest.id,
    profile: c.manifest.profile,
    regions: PHYSICAL_ORDER.map((n) => {
      const r = c.manifest.regions.find((x) => x.name === n)!;
      return { name: n, phys: r.phys, size: r.size, sha256: r.sha256 };
    }),
  });

  const text = readelf(out);
  expect(text).toMatch(/Type:\s+CORE/);
  expect(text).toMatch(/Machine:\s+AArch64/);
  expect(text).toMatch(/LOAD\s+0x[0-9a-f]+\s+0x0+\s+0x0000000100000000\s+0x90007b\s/);
  expect(text).toMatch(/^\s+PHYSCAP\s/m);

  // Bytes count the regions only; the last report is the total.
  const total = [...c.data.values()].reduce((s, d) => s + d.length, 0);
  expect(progress.at(-1)).toEqual([total, total]);
  progress.forEach(([d, t], i) => {
    expect(t).toBe(total);
    if (i > 0) expect(d).toBeGreaterThanOrEqual(progress[i - 1][0]);
  });
});

test('elf by default targets the host', async () => {
  const c = rawCapture();
  const out = path.join(dir, 'core.elf');
  await exportCapture({ reader: c.reader, manifest: c.manifest, format: 'elf', out, region: 'low' });
  const bytes = fs.readFileSync(out);
  const core = parseElfCore((o, l) => bytes.subarray(o, o + l), bytes.length);
  expect(core.target).toEqual(hostElfTarget());
  expect(core.segments.filter((s) => s.type === PT_LOAD).map((s) => s.paddr)).toEqual([0x1000n]);
});

test('elf from an ELF capture keeps its VMCOREINFO, and converts its byte order', async () => {
  // The stored capture: a little-endian core.elf as the engine writes it.
  const capDir = path.join(dir, 'capture');
  fs.mkdirSync(capDir);
  const data = [crypto.randomBytes(0x3000), crypto.randomBytes(777)];
  const vmcoreinfo = Buffer.from('OSRELEASE=6.1.0\nPAGESIZE=4096\n');
  const stored = layoutElfCore({
    target: { machine: 62, bigEndian: false },
    align: 4096,
    regions: [
      { paddr: 0x10_0000n, size: 0x3000n },
      { paddr: 0x2000n, size: 777n },
    ],
    notes: [
      { ...NOTE_PHYSCAP, desc: Buffer.from('{}') },
      { ...NOTE_VMCOREINFO, desc: vmcoreinfo },
    ],
  });
  const fd = fs.openSync(path.join(capDir, 'core.elf'), 'wx');
  fs.writeSync(fd, stored.header, 0, stored.header.length, 0);
  data.forEach((d, i) => fs.writeSync(fd, d, 0, d.length, Number(stored.regionOffsets[i])));
  fs.ftruncateSync(fd, Number(stored.fileSize));
  fs.closeSync(fd);
  const manifest = manifestOf(
    [
      region('ram', 0x10_0000n, data[0], 'core.elf', Number(stored.regionOffsets[0])),
      region('low', 0x2000n, data[1], 'core.elf', Number(stored.regionOffsets[1])),
    ],
    'elf',
  );

  const out = path.join(dir, 'ppc.elf');
  await exportCapture({ reader: new DirReader(capDir), manifest, format: 'elf', out, target: { machine: 20, bigEndian: true } });
  const bytes = fs.readFileSync(out);
  const core = parseElfCore((o, l) => bytes.subarray(o, o + l), bytes.length);
  expect(core.target).toEqual({ machine: 20, bigEndian: true });
  expect(core.notes.map((n) => n.name)).toEqual(['PHYSCAP', 'VMCOREINFO']);
  expect(core.notes[1].desc.equals(vmcoreinfo)).toBe(true);
  const loads = core.segments.filter((s) => s.type === PT_LOAD);
  expect(loads.map((s) => s.paddr)).toEqual([0x2000n, 0x10_0000n]);
  expect(bytes.subarray(Number(loads[0].offset), Number(loads[0].offset) + 777).equals(data[1])).toBe(true);
  expect(bytes.subarray(Number(loads[1].offset), Number(loads[1].offset) + 0x3000).equals(data[0])).toBe(true);
  const text = readelf(out);
  expect(text).toMatch(/Data:\s+2's complement, big endian/);
  expect(text).toMatch(/^\s+VMCOREINFO\s/m);
});

describe('never overwrites', () => {
  test.each(['lime', 'elf', 'raw'] as const)('%s: an existing output file is refused and left untouched', async (format) => {
    const c = rawCapture();
    const out = path.join(dir, 'precious');
    fs.writeFileSync(out, 'keep me');
    await expect(exportCapture({ reader: c.reader, manifest: c.manifest, format, out, region: format === 'raw' ? 'mid' : undefined })).rejects.toThrow(
      `export: ${out} already exists; not overwriting it`,
    );
    expect(fs.readFileSync(out, 'utf8')).toBe('keep me');
  });

  test('raw: an existing directory is refused and left untouched', async () => {
    const c = rawCapture();
    const out = path.join(dir, 'raw');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'low.raw'), 'keep me');
    await expect(exportCapture({ reader: c.reader, manifest: c.manifest, format: 'raw', out })).rejects.toThrow('already exists');
    expect(fs.readdirSync(out)).toEqual(['low.raw']);
    expect(fs.readFileSync(path.join(out, 'low.raw'), 'utf8')).toBe('keep me');
  });
});

describe('a failure half-way removes the half-written output and says why', () => {
  /** Fails reading the big region's second 4 MiB piece: output has been written by then. */
  class FailingReader extends DirReader {
    override read(name: string, offset: number, length: number) {
      if (name === 'high.raw' && offset > 0) throw new Error('EIO: i/o error, read');
      return super.read(name, offset, length);
    }
  }
  const failingReader = (c: Capture) => new FailingReader(c.reader.location);

  test.each(['lime', 'elf'] as const)('%s', async (format) => {
    const c = rawCapture();
    const out = path.join(dir, `out.${format}`);
    await expect(exportCapture({ reader: failingReader(c), manifest: c.manifest, format, out })).rejects.toThrow(
      `export to ${out} failed (EIO: i/o error, read); the partial output was removed`,
    );
    expect(fs.existsSync(out)).toBe(false);
  });

  test('raw directory', async () => {
    const c = rawCapture();
    const out = path.join(dir, 'raw');
    await expect(exportCapture({ reader: failingReader(c), manifest: c.manifest, format: 'raw', out })).rejects.toThrow(
      `export to ${out} failed (high.raw: EIO: i/o error, read); the partial output directory was removed`,
    );
    expect(fs.existsSync(out)).toBe(false);
  });

  test('a region past the end of its data file is refused before any output exists', async () => {
    const c = rawCapture();
    fs.truncateSync(path.join(c.reader.location, 'shared.bin'), 9000);
    const out = path.join(dir, 'mem.lime');
    await expect(exportCapture({ reader: c.reader, manifest: c.manifest, format: 'lime', out })).rejects.toThrow(
      `export: region mid: 5000 bytes at offset 8192 run past the end of "shared.bin" (9000 bytes)`,
    );
    expect(fs.existsSync(out)).toBe(false);
  });
});
