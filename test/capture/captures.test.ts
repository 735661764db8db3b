/**
 * Captures on disk, end to end on the host with the image source: the ELF
 * container and raw files, the manifest and its schema, SHA256SUMS, the
 * index chain, signatures, and the post-mortem verbs as real processes —
 * checked against the image's true bytes and against the tools analysts
 * already use (readelf, sha256sum).
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { parseLime } from '../../agent/src/container/lime';
import { validators } from '../../agent/src/config/schemas';
import { DirStore } from '../../agent/src/destinations/dir/store';
import { entryHash, parseEntry, serializeEntry } from '../../agent/src/manifest/chain';
import { sumsFile } from '../../agent/src/manifest/sums';
import type { Manifest } from '../../agent/src/manifest/types';
import { verifyCapture } from '../../agent/src/postmortem/verify';
import { physcapCli } from '../../harness/agent';
import { captureNow, imageProfile, makeImage, manifestOf, MiB, writeProfile } from '../support/capture';
import { physcap } from '../support/cli';
import { chunkSha256s, regionChunks, sha256 } from '../support/hash';
import { removeDir, tempDir } from '../support/tmp';

let work: string;
let img: ReturnType<typeof makeImage>;

beforeAll(() => {
  work = tempDir('captures');
  img = makeImage(work, 16 * MiB);
});
afterAll(() => removeDir(work));

const REGIONS: Array<[string, number, number]> = [
  ['crashlog', 0x100000, 3 * MiB + 20 * 1024],
  ['trace', 0x600000, 4 * MiB],
];

describe('an ELF capture into a dir destination', () => {
  let dest: string;
  let dir: string;
  let m: Manifest;

  beforeAll(async () => {
    dest = path.join(work, 'elf');
    const p = writeProfile(work, 'elfcap', imageProfile({ image: img.file, dest, regions: REGIONS, extra: 'labels:\n  case: "42"\n' }));
    const outcome = await captureNow(p, {}, 'the first one');
    expect(outcome).toMatchObject({ status: 'complete', removed: [] });
    dir = outcome.location;
    m = manifestOf(dir);
  });

  test('the directory holds core.elf, manifest.json and SHA256SUMS, nothing half-written', () => {
    expect(fs.readdirSync(dir).sort()).toEqual(['SHA256SUMS', 'core.elf', 'manifest.json']);
    expect(fs.readdirSync(dest).sort()).toEqual([path.basename(dir), 'index.jsonl'].sort());
  });

  test('the manifest matches its schema and says what, why, how and the digests', () => {
    expect(validators().manifest(m)).toBe(true);
    expect(m).toMatchObject({
      status: 'complete',
      format: 'elf',
      byteOrder: 'little',
      labels: { case: '42' },
      profile: { name: 'elfcap' },
      triggers: [{ kind: 'control', reason: 'the first one', coalesced: false }],
      host: { hostname: os.hostname(), kernelRelease: os.release(), arch: process.arch },
      previous: null,
    });
    expect(m.versions.addon).toMatch(/^\d+\.\d+\.\d+\+sha256\.[0-9a-f]{12}$/);
    for (const [i, [name, start, size]] of REGIONS.entries()) {
      const r = m.regions[i]!;
      expect(r).toMatchObject({
        name,
        phys: `0x${start.toString(16)}`,
        size,
        source: 'image',
        mode: 'zero-copy',
        memory: 'quiescent',
        digest: 'concurrent',
        file: 'core.elf',
        chunkSize: 65536,
      });
      // An ELF core's region: its chunk digests and the core's digest cover it.
      expect(r.sha256).toBe('');
      expect(regionChunks(dir, r)).toEqual(chunkSha256s(img.range(start, size), 65536));
      expect(r.offset % 4096).toBe(0);
    }
  });

  test('the region bytes in core.elf are the true bytes, and the gaps are zeros', () => {
    const core = fs.readFileSync(path.join(dir, 'core.elf'));
    for (const r of m.regions) expect(sha256(core.subarray(r.offset, r.offset + r.size))).toBe(sha256(img.range(Number(r.phys), r.size)));
    const first = m.regions[0]!;
    expect(core.subarray(first.offset + first.size, m.regions[1]!.offset).every((b) => b === 0)).toBe(true);
    // The gaps digest: every byte of core.elf outside the regions, in order.
    const sorted = [...m.regions].sort((a, b) => a.offset - b.offset);
    const outside: Buffer[] = [];
    let pos = 0;
    for (const r of sorted) {
      outside.push(core.subarray(pos, r.offset));
      pos = r.offset + r.size;
    }
    outside.push(core.subarray(pos));
    expect(m.files).toEqual([{ name: 'core.elf', size: core.length, sha256: sha256(core), gapsSha256: sha256(...outside) }]);
    expect(m.timing.durable! <= m.timing.digested! && m.timing.digested! <= m.timing.finished).toBe(true);
    expect(m.digestEngine).toMatch(/^OpenSSL \d/);
  });

  test('readelf reads the container: ET_CORE for this machine, one PT_LOAD per region at its physical address', () => {
    const out = execFileSync('readelf', ['-h', '-l', '-n', '-W', path.join(dir, 'core.elf')], { encoding: 'utf8' });
    expect(out).toMatch(/Type:\s+CORE/);
    expect(out).toMatch(/Machine:\s+Advanced Micro Devices X86-64/);
    const loads = [...out.matchAll(/^\s+LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)/gm)];
    expect(loads.map((l) => [Number(l[1]), Number(l[3]), Number(l[4])])).toEqual(m.regions.map((r) => [r.offset, Number(r.phys), r.size]));
    expect(out).toMatch(/PHYSCAP/);
  });

  test('sha256sum -c SHA256SUMS passes inside the capture directory', () => {
    const out = execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir, encoding: 'utf8' });
    expect(out).toBe('core.elf: OK\nmanifest.json: OK\n');
  });

  test('physcap verify re-hashes everything and exits 0', async () => {
    const r = await physcap(['verify', dir]);
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/OK\s+region crashlog: 3166208 bytes at 0x100000, 49 chunk digests match/);
    expect(r.stdout).toMatch(/OK\s+core.elf: \d+ bytes, every byte under a chunk or gap digest that matches/);
    expect(r.stdout).toMatch(/OK\s+core.elf: ELF core headers match the 2 regions/);
    expect(r.stdout).toMatch(/verified\n$/);
  });

  test('export --format raw gives the true bytes of each region; export refuses to overwrite', async () => {
    const out = path.join(work, 'raw-export');
    const r = await physcap(['export', m.id, '--dest', dest, '--format', 'raw', '-o', out]);
    expect(r).toMatchObject({ code: 0 });
    for (const [name, start, size] of REGIONS) expect(sha256(fs.readFileSync(path.join(out, `${name}.raw`)))).toBe(sha256(img.range(start, size)));
    const again = await physcap(['export', m.id, '--dest', dest, '--format', 'raw', '-o', out]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/EEXIST|exists/);
  });

  test('export --format lime: 32-byte little-endian headers, magic 0x4C694D45, version 1, inclusive end', async () => {
    const out = path.join(work, 'capture.lime');
    expect(await physcap(['export', m.id.slice(0, 20), '--dest', dest, '--format', 'lime', '-o', out])).toMatchObject({ code: 0 });
    const lime = fs.readFileSync(out);
    let off = 0;
    for (const [, start, size] of REGIONS) {
      const h = lime.subarray(off, off + 32);
      expect(h.subarray(0, 4)).toEqual(Buffer.from([0x45, 0x4d, 0x69, 0x4c]));
      expect(h.readUInt32LE(4)).toBe(1);
      expect(h.readBigUInt64LE(8)).toBe(BigInt(start));
      expect(h.readBigUInt64LE(16)).toBe(BigInt(start + size - 1));
      expect(h.subarray(24, 32).every((b) => b === 0)).toBe(true);
      expect(sha256(lime.subarray(off + 32, off + 32 + size))).toBe(sha256(img.range(start, size)));
      off += 32 + size;
    }
    expect(off).toBe(lime.length);
    expect(parseLime((o, n) => lime.subarray(o, o + n), lime.length)).toHaveLength(2);
  });

  test('show and list describe it; list --json has the index entry', async () => {
    const show = await physcap(['show', m.id, '--dest', dest]);
    expect(show.stdout).toMatch(/status:\s+complete/);
    expect(show.stdout).toMatch(/region:\s+trace 0x600000 4.0 MiB image\/zero-copy/);
    const list = await physcap(['list', '--dest', dest, '--json']);
    const j = JSON.parse(list.stdout) as { captures: Array<{ id: string; status: string; data: string }>; problems: string[] };
    expect(j.problems).toEqual([]);
    expect(j.captures).toEqual([expect.objectContaining({ id: m.id, status: 'complete', data: 'present' })]);
  });

  test('a reader that goes away (show | head) ends the output quietly, as for any Unix tool', async () => {
    // The pipe's read end is closed before physcap writes: its write gets EPIPE.
    const child = spawn(process.execPath, [physcapCli, 'show', m.id, '--dest', dest], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});

describe('read-back captures of several ranges: written first, then hashed from the disk in one pass', () => {
  test.each(['elf', 'raw'] as const)('%s: every digest is of the bytes on the disk; durable before digested; verify passes', async (format) => {
    const dest = path.join(work, `readback-${format}`);
    const p = writeProfile(work, `rb${format}`, imageProfile({ image: img.file, dest, regions: REGIONS, format, readback: 'always' }));
    const outcome = await captureNow(p);
    expect(outcome.status).toBe('complete');
    const dir = outcome.location;
    const m = manifestOf(dir);
    expect(validators().manifest(m)).toBe(true);
    for (const [i, [name, start, size]] of REGIONS.entries()) {
      const r = m.regions[i]!;
      expect(r).toMatchObject({ name, size, mode: 'zero-copy', bytesZeroCopy: size, digest: 'read-back', chunkSize: 65536 });
      expect(regionChunks(dir, r)).toEqual(chunkSha256s(img.range(start, size), 65536));
      // A raw region's digest is its file's; an ELF core's region is covered by its chunks and the core's digests.
      expect(r.sha256).toBe(format === 'raw' ? sha256(img.range(start, size)) : '');
    }
    const onDisk = m.files.filter((f) => !f.name.endsWith('.chunks'));
    expect(onDisk.map((f) => f.name)).toEqual(format === 'elf' ? ['core.elf'] : REGIONS.map(([n]) => `${n}.raw`));
    for (const f of onDisk) expect(f.sha256).toBe(sha256(fs.readFileSync(path.join(dir, f.name))));
    if (format === 'elf') expect(onDisk[0]!.gapsSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(m.timing.durable! <= m.timing.digested! && m.timing.digested! <= m.timing.finished).toBe(true);
    const v = await physcap(['verify', dir]);
    expect(v).toMatchObject({ code: 0 });
    expect(v.stdout).toMatch(/verified\n$/);
  });
});

describe('the index chain, raw format, retention and diff', () => {
  test('three captures chain: each manifest and entry points at the entry before it', async () => {
    const dest = path.join(work, 'chain');
    const p = writeProfile(work, 'chain', imageProfile({ image: img.file, dest, regions: [['low', 0, MiB]], format: 'raw' }));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await captureNow(p)).id);
    const lines = fs.readFileSync(path.join(dest, 'index.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(JSON.parse(lines[0]!)).toMatchObject({ seq: 1, prev: null, status: 'complete', id: ids[0] });
    for (let i = 1; i < 3; i++) {
      expect(JSON.parse(lines[i]!)).toMatchObject({ seq: i + 1, prev: entryHash(lines[i - 1]!) });
      expect(manifestOf(path.join(dest, ids[i]!)).previous).toBe(entryHash(lines[i - 1]!));
    }
    // raw: one file per region, its digest the region's.
    expect(fs.readdirSync(path.join(dest, ids[0]!)).sort()).toEqual(['SHA256SUMS', 'low.raw', 'manifest.json']);
    expect(sha256(fs.readFileSync(path.join(dest, ids[0]!, 'low.raw')))).toBe(sha256(img.range(0, MiB)));
    execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: path.join(dest, ids[2]!) });
  });

  test('retention by count removes the oldest after a capture completes, never the new one', async () => {
    const dest = path.join(work, 'retain');
    const p = writeProfile(
      work,
      'retain',
      imageProfile({ image: img.file, dest, regions: [['low', 0, MiB]] }).replace(
        'retention: { count: 0, keep_free: 0 }',
        'retention: { count: 2, keep_free: 0 }',
      ),
    );
    const a = await captureNow(p);
    const b = await captureNow(p);
    const c = await captureNow(p);
    expect(c.removed).toEqual([a.id]);
    expect(
      fs
        .readdirSync(dest)
        .filter((d) => d !== 'index.jsonl')
        .sort(),
    ).toEqual([b.id, c.id].sort());
    // The index keeps the record; list says the data is gone.
    const list = JSON.parse((await physcap(['list', '--dest', dest, '--json'])).stdout) as { captures: Array<{ id: string; data: string }> };
    expect(list.captures.map((x) => [x.id, x.data])).toEqual([
      [a.id, 'removed'],
      [b.id, 'present'],
      [c.id, 'present'],
    ]);
  });

  test('diff names the changed chunks from the digests alone', async () => {
    const dest = path.join(work, 'diff');
    const mem = makeImage(work, 2 * MiB, 'diff.img');
    const p = writeProfile(work, 'diffcap', imageProfile({ image: mem.file, dest, regions: [['ram', 0, 2 * MiB]], chunk: '256KiB' }));
    const a = await captureNow(p);
    const fd = fs.openSync(mem.file, 'r+');
    fs.writeSync(fd, Buffer.from([0xff ^ mem.bytes[0x90000]!]), 0, 1, 0x90000); // chunk 2
    fs.writeSync(fd, Buffer.from([0xff ^ mem.bytes[0x1fffff]!]), 0, 1, 0x1fffff); // chunk 7, its last byte
    fs.closeSync(fd);
    const b = await captureNow(p);
    // The data is not reread: remove it and diff still answers.
    fs.rmSync(path.join(dest, a.id, 'core.elf'));
    fs.rmSync(path.join(dest, b.id, 'core.elf'));
    const r = await physcap(['diff', a.id, b.id, '--dest', dest]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('ram (0x0): 2 of 8 chunks changed\n  chunk 2: 0x80000-0xbffff\n  chunk 7: 0x1c0000-0x1fffff\n');
  });
});

describe('signatures', () => {
  test('keygen, a signed capture, verify with the pinned key; a different pinned key fails', async () => {
    const keys = path.join(work, 'keys');
    fs.mkdirSync(keys);
    const k = await physcap(['keygen', '-o', path.join(keys, 'site')]);
    expect(k).toMatchObject({ code: 0 });
    expect(fs.statSync(path.join(keys, 'site.key')).mode & 0o777).toBe(0o600);
    expect((await physcap(['keygen', '-o', path.join(keys, 'site')])).code).not.toBe(0); // never overwrites a key
    await physcap(['keygen', '-o', path.join(keys, 'other')]);

    const dest = path.join(work, 'signed');
    const p = writeProfile(
      work,
      'signed',
      imageProfile({ image: img.file, dest, regions: [['low', 0, MiB]], extra: `signing:\n  key: ${path.join(keys, 'site.key')}\n` }),
    );
    const o = await captureNow(p);
    expect(fs.readdirSync(o.location).sort()).toEqual(['SHA256SUMS', 'core.elf', 'manifest.json', 'manifest.json.sig']);
    expect(manifestOf(o.location).signature).toMatchObject({ algorithm: 'ed25519', file: 'manifest.json.sig' });
    const good = await physcap(['verify', o.location, '--key', path.join(keys, 'site.pub')]);
    expect(good).toMatchObject({ code: 0 });
    expect(good.stdout).toMatch(/OK\s+signature: ed25519 by key [0-9a-f]{64} \(the pinned key\)/);
    const bad = await physcap(['verify', o.location, '--key', path.join(keys, 'other.pub')]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/FAIL\s+signed by key [0-9a-f]{64}, not by the pinned key/);
    execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: o.location });
  });

  test('a forgery without the key (bytes rewritten, every digest, the sums and the chain redone, the signature removed) fails verify --key', async () => {
    const keys = path.join(work, 'forge-keys');
    fs.mkdirSync(keys);
    await physcap(['keygen', '-o', path.join(keys, 'site')]);
    const dest = path.join(work, 'forged');
    const p = writeProfile(
      work,
      'forged',
      imageProfile({ image: img.file, dest, regions: [['low', 0, MiB]], chunk: '256KiB', extra: `signing:\n  key: ${path.join(keys, 'site.key')}\n` }),
    );
    const o = await captureNow(p);
    const pub = path.join(keys, 'site.pub');
    expect((await physcap(['verify', o.location, '--key', pub])).code).toBe(0);

    // The attacker: new bytes in the region, then everything that describes them made to agree.
    const m = manifestOf(o.location);
    const core = path.join(o.location, 'core.elf');
    const bytes = fs.readFileSync(core);
    const r = m.regions[0]!;
    bytes.write('forged!', r.offset + 1000, 'latin1');
    fs.writeFileSync(core, bytes);
    const region = bytes.subarray(r.offset, r.offset + r.size);
    r.sha256 = sha256(region);
    r.chunks = Array.from({ length: r.size / r.chunkSize }, (_, i) => sha256(region.subarray(i * r.chunkSize, (i + 1) * r.chunkSize)));
    m.files[0]!.sha256 = sha256(bytes);
    delete m.signature;
    const text = `${JSON.stringify(m, null, 2)}\n`;
    fs.writeFileSync(path.join(o.location, 'manifest.json'), text);
    fs.rmSync(path.join(o.location, 'manifest.json.sig'));
    fs.writeFileSync(path.join(o.location, 'SHA256SUMS'), sumsFile([...m.files, { name: 'manifest.json', sha256: sha256(Buffer.from(text)) }]));
    const lines = fs.readFileSync(path.join(dest, 'index.jsonl'), 'utf8').trim().split('\n');
    let prev: string | null = null;
    const rechained = lines.map((line) => {
      const e = parseEntry(line);
      const forged = serializeEntry({ ...e, prev, ...(e.id === m.id ? { manifestSha256: sha256(Buffer.from(text)) } : {}) });
      prev = entryHash(forged);
      return forged;
    });
    fs.writeFileSync(path.join(dest, 'index.jsonl'), `${rechained.join('\n')}\n`);

    // Everything a forger can make agree does: only the missing signature gives it away.
    execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: o.location });
    expect((await physcap(['verify', o.location])).code).toBe(0);
    const pinned = await physcap(['verify', o.location, '--key', pub]);
    expect(pinned.code).toBe(1);
    expect(pinned.stdout).toMatch(/FAIL\s+the capture is not signed, but a key is pinned \(--key\)/);
  });

  test('a file planted in a capture directory is reported by verify', async () => {
    const dest = path.join(work, 'planted');
    const o = await captureNow(writeProfile(work, 'planted', imageProfile({ image: img.file, dest, regions: [['low', 0, 64 * 1024]] })));
    fs.writeFileSync(path.join(o.location, 'README.txt'), 'trust me\n');
    const v = await physcap(['verify', o.location]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/FAIL\s+README\.txt is not part of the capture \(the manifest does not list it\)/);
  });
});

describe('verify catches a single flipped bit at 100 random positions', () => {
  test('data, ELF headers, manifest, signature and sums: every flip is caught and named', async () => {
    const keyDir = path.join(work, 'flipkeys');
    fs.mkdirSync(keyDir);
    await physcap(['keygen', '-o', path.join(keyDir, 'k')]);
    const dest = path.join(work, 'flips');
    const p = writeProfile(
      work,
      'flips',
      imageProfile({
        image: img.file,
        dest,
        regions: [
          ['a', 0x100000, MiB + 8192],
          ['b', 0x400000, 512 * 1024],
        ],
        chunk: '64KiB',
        extra: `signing:\n  key: ${path.join(keyDir, 'k.key')}\n`,
      }),
    );
    const o = await captureNow(p);
    const m = manifestOf(o.location);
    const store = new DirStore(dest);
    try {
      expect((await verifyCapture(store, o.id)).problems).toEqual([]);
      const core = fs.statSync(path.join(o.location, 'core.elf')).size;
      const headerEnd = m.regions[0]!.offset;
      // Where to flip: [file, from, to) and how many times.
      const targets: Array<[string, number, number, number]> = [
        ['core.elf', m.regions[0]!.offset, m.regions[0]!.offset + m.regions[0]!.size, 25],
        ['core.elf', m.regions[1]!.offset, m.regions[1]!.offset + m.regions[1]!.size, 15],
        ['core.elf', 0, headerEnd, 20],
        ['core.elf', m.regions[1]!.offset + m.regions[1]!.size, core, 0],
        ['manifest.json', 0, fs.statSync(path.join(o.location, 'manifest.json')).size, 20],
        ['manifest.json.sig', 0, fs.statSync(path.join(o.location, 'manifest.json.sig')).size, 12],
        ['SHA256SUMS', 0, fs.statSync(path.join(o.location, 'SHA256SUMS')).size, 8],
      ];
      let flips = 0;
      let seed = 12345;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      for (const [file, from, to, count] of targets) {
        for (let i = 0; i < count; i++) {
          const pos = from + rand(to - from);
          const bit = 1 << rand(8);
          const f = path.join(o.location, file);
          const fd = fs.openSync(f, 'r+');
          const b = Buffer.alloc(1);
          fs.readSync(fd, b, 0, 1, pos);
          fs.writeSync(fd, Buffer.from([b[0]! ^ bit]), 0, 1, pos);
          try {
            const rep = await verifyCapture(store, o.id);
            expect({ file, pos, ok: rep.ok }).toEqual({ file, pos, ok: false });
            const region = m.regions.find((r) => r.file === file && pos >= r.offset && pos < r.offset + r.size);
            if (region) {
              const chunk = Math.floor((pos - region.offset) / region.chunkSize);
              expect(rep.problems).toContain(
                rep.problems.find((x) => x.startsWith(`region ${region.name}: chunk ${chunk} (`)) ??
                  `region ${region.name}: chunk ${chunk} ... (missing for ${file}@${pos})`,
              );
            } else {
              expect(rep.problems.length).toBeGreaterThan(0);
            }
          } finally {
            fs.writeSync(fd, b, 0, 1, pos);
            fs.closeSync(fd);
          }
          flips++;
        }
      }
      expect(flips).toBe(100);
      expect((await verifyCapture(store, o.id)).ok).toBe(true);
    } finally {
      store.close();
    }
  }, 120_000);
});

describe('physcap capture and regions from the command line', () => {
  test('on a terminal: a progress bar, then the summary; the capture verifies', async () => {
    const dest = path.join(work, 'tty');
    writeProfile(work, 'tty', imageProfile({ image: img.file, dest, regions: REGIONS }));
    // script(1) gives the command a pseudo-terminal, as a user at a shell would have.
    const cmd = `${process.execPath} ${physcapCli} capture ${path.join(work, 'tty.yaml')}`;
    const out = execFileSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8' });
    expect(out).toMatch(/tty \[=+\] 100% \| 7\/7 MiB/);
    expect(out).toMatch(/tty-\d{8}T\d{6}Z-[0-9a-f]{6}: complete, 7.0 MiB in/);
    const id = /(tty-\d{8}T\d{6}Z-[0-9a-f]{6})/.exec(out)![1]!;
    expect((await physcap(['verify', id, '--dest', dest])).code).toBe(0);
  });

  test('without a terminal, --json: one JSON line, no progress bar', async () => {
    const dest = path.join(work, 'json');
    writeProfile(work, 'jsoncap', imageProfile({ image: img.file, dest, regions: REGIONS }));
    const r = await physcap(['capture', path.join(work, 'jsoncap.yaml'), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { status: string; location: string; regions: Array<{ name: string; sha256: string; mode: string }> };
    expect(j.status).toBe('complete');
    expect(j.regions.map((x) => [x.name, x.sha256, x.mode])).toEqual(REGIONS.map(([n]) => [n, '', 'zero-copy']));
    const m = JSON.parse(fs.readFileSync(path.join(j.location, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.regions.map((x) => regionChunks(j.location, x))).toEqual(REGIONS.map(([, s, z], i) => chunkSha256s(img.range(s, z), m.regions[i]!.chunkSize)));
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
  });

  test('a bad profile: exit 78 and the error with file:line:col; nothing written', async () => {
    const dest = path.join(work, 'badcap');
    const file = path.join(work, 'badcap.yaml');
    fs.writeFileSync(
      file,
      `apiVersion: physcap.dev/v1\nkind: CaptureProfile\nname: badcap\nregions:\n  - name: a\n    start: "0x0"\n    size: 3000\ntriggers: [{ kind: control }]\ndestination: { kind: dir, path: ${dest} }\n`,
    );
    const r = await physcap(['capture', file]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`${file}:7:11  /regions/0/size`);
    expect(fs.existsSync(dest)).toBe(false);
  });

  test('physcap regions resolves iomem names (inclusive ends) and says what each range is', async () => {
    const iomem = path.join(work, 'iomem');
    fs.writeFileSync(
      iomem,
      '00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n00100000-1fffffff : System RAM\n  01000000-01ffffff : Kernel code\n20000000-2030ffff : Reserved\n',
    );
    writeProfile(
      work,
      'res',
      `regions:\n  - name: res\n    iomem: Reserved\ntriggers: [{ kind: control }]\ndestination: { kind: dir, path: ${path.join(work, 'res-out')} }\nsource: { kind: image, image_path: ${img.file} }\n`,
    );
    const r = await physcap(['regions', path.join(work, 'res.yaml'), '--iomem', iomem, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { regions: Array<{ name: string; start: string; end: string; size: number; iomem: string }> };
    expect(j.regions).toEqual([
      { name: 'res-0', start: '0x0', end: '0xfff', size: 4096, iomem: 'Reserved', memory: 'quiescent' },
      { name: 'res-1', start: '0x20000000', end: '0x2030ffff', size: 0x310000, iomem: 'Reserved', memory: 'quiescent' },
    ]);
  });
});
