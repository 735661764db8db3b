/**
 * physcap import: a big-endian 32-bit PowerPC board's ELF core (laid out
 * as physcap-client writes it: the board's own byte order and e_machine,
 * a PHYSCAP note naming the regions, VMCOREINFO, one range above 4 GiB)
 * becomes a capture the post-mortem verbs work on, and every byte order
 * physcap writes afterwards is the right one: ELF exports stay the
 * board's, LiME is little-endian as its readers assume.
 * (The board itself writes such a core in test/kernel/ppc-board.vm.test.ts.)
 */
import * as crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { importCore } from '../../agent/src/capture/import';
import { layoutElfCore, NOTE_PHYSCAP, NOTE_VMCOREINFO, parseElfCoreFile, PT_LOAD } from '../../agent/src/container/elf';
import { DirStore } from '../../agent/src/destinations/dir/store';
import { MiB } from '../support/capture';
import { physcap } from '../support/cli';
import { repoRoot } from '../../harness/paths';
import { stamp } from '../support/stamp';
import { chunkSha256s, sha256 } from '../support/hash';
import { removeDir, tempDir } from '../support/tmp';

const EM_PPC = 20;

interface Made {
  file: string;
  /** Where an armed core's stamp block is. */
  stampAt: number;
  regions: Array<{ name: string; phys: bigint; bytes: Buffer }>;
}

/** A core as the board's client lays it out (kernel/tools/elfcore.c), big-endian. */
function boardCore(dir: string, o: { name?: string; armed?: { cookie: bigint }; armedNote?: unknown } = {}): Made {
  const regions = [
    { name: 'crashlog', phys: 0x0800_0000n, bytes: crypto.randomBytes(3 * MiB + 20 * 1024) },
    { name: 'high', phys: 0x1_0800_0000n, bytes: crypto.randomBytes(1 * MiB) },
  ];
  const note = {
    tool: 'physcap-client',
    machine: 'ppc',
    release: '6.1.192',
    node: 'board',
    time: 1764000000,
    regions: regions.map((r) => ({ name: r.name, phys: `0x${r.phys.toString(16)}`, size: r.bytes.length })),
    // arm --core: the stamp block right after the last segment (fixed width, as the client writes it).
    ...(o.armed ? { armed: { cookie: `0x${o.armed.cookie.toString(16).padStart(16, '0')}`, stamp_offset: '0x0000000000000000' } } : {}),
    ...(o.armedNote !== undefined ? { armed: o.armedNote } : {}),
  };

  const layout = layoutElfCore({
    target: { machine: EM_PPC, bigEndian: true },
    regions: regions.map((r) => ({ paddr: r.phys, size: BigInt(r.bytes.length) })),
    notes: [
      { ...NOTE_PHYSCAP, desc: Buffer.from(JSON.stringify(note)) },
      { ...NOTE_VMCOREINFO, desc: Buffer.from('OSRELEASE=6.1.192\nPAGESIZE=4096\n') },
    ],
    align: 4096,
  });
  const file = path.join(dir, o.name ?? 'board.core');
  const fd = fs.openSync(file, 'w');
  if (o.armed) {
    // The client's placeholder, now that the layout says where the core ends.
    const at = layout.header.indexOf('"stamp_offset":"0x0000000000000000"') + '"stamp_offset":"'.length;
    layout.header.write(`0x${layout.fileSize.toString(16).padStart(16, '0')}`, at, 'latin1');
  }
  fs.writeSync(fd, layout.header, 0, layout.header.length, 0);
  regions.forEach((r, i) => fs.writeSync(fd, r.bytes, 0, r.bytes.length, Number(layout.regionOffsets[i])));
  // An armed core's zeroed stamp block, as arm --core leaves it until the kernel writes it.
  fs.ftruncateSync(fd, Number(layout.fileSize) + (o.armed ? 4096 : 0));
  fs.closeSync(fd);
  return { file, regions, stampAt: Number(layout.fileSize) };
}

describe('physcap import of a big-endian board core', () => {
  let dir: string;
  let made: Made;
  beforeAll(() => {
    dir = tempDir('import');
    made = boardCore(dir);
  });
  afterAll(() => removeDir(dir));

  test('becomes a complete capture that keeps the board: names, byte order, machine, VMCOREINFO, provenance', async () => {
    const dest = path.join(dir, 'store-a');
    fs.mkdirSync(dest);
    const store = new DirStore(dest);
    const out = await importCore({ file: made.file, store, name: 'board', chunkSize: 256n * 1024n });
    store.close();
    expect(out.status).toBe('complete');
    const m = out.manifest!;
    expect(m.byteOrder).toBe('big');
    expect(m.regions.map((r) => [r.name, r.phys, r.size, r.chunks])).toEqual(
      made.regions.map((r) => [r.name, `0x${r.phys.toString(16)}`, r.bytes.length, chunkSha256s(r.bytes, 256 * 1024)]),
    );
    expect(m.profile.sha256).toBe(sha256(fs.readFileSync(made.file)));
    expect(m.triggers[0]).toMatchObject({ kind: 'import', detail: { file: made.file, note: { tool: 'physcap-client', machine: 'ppc' } } });

    const stored = parseElfCoreFile(path.join(out.location, 'core.elf'));
    expect(stored.target).toEqual({ machine: EM_PPC, bigEndian: true });
    const loads = stored.segments.filter((s) => s.type === PT_LOAD);
    expect(loads.map((s) => s.paddr)).toEqual(made.regions.map((r) => r.phys));
    expect(stored.notes.find((n) => n.name === 'VMCOREINFO')?.desc.toString()).toContain('OSRELEASE=6.1.192');
    const note = JSON.parse(stored.notes.find((n) => n.name === 'PHYSCAP')!.desc.toString()) as { importedFrom: { note: { node: string } } };
    expect(note.importedFrom.note.node).toBe('board');
  });

  test('verify passes; export elf keeps the board byte order and machine; LiME is little-endian with the same bytes', async () => {
    const dest = path.join(dir, 'store-b');
    const imp = await physcap(['import', made.file, '--dest', dest, '--name', 'board', '--json']);
    expect(imp.stderr).toBe('');
    expect(imp.code).toBe(0);
    const { id, byteOrder } = JSON.parse(imp.stdout) as { id: string; byteOrder: string };
    expect(byteOrder).toBe('big');

    const verify = await physcap(['verify', id, '--dest', dest]);
    expect(verify.code).toBe(0);

    const elfOut = path.join(dir, 'export.elf');
    expect((await physcap(['export', id, '--dest', dest, '--format', 'elf', '-o', elfOut, '--json'])).code).toBe(0);
    const exported = parseElfCoreFile(elfOut);
    expect(exported.target).toEqual({ machine: EM_PPC, bigEndian: true });
    expect(fs.readFileSync(elfOut).subarray(0, 6)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 2])); // ELFCLASS64, ELFDATA2MSB

    const limeOut = path.join(dir, 'export.lime');
    expect((await physcap(['export', id, '--dest', dest, '--format', 'lime', '-o', limeOut, '--json'])).code).toBe(0);
    const lime = fs.readFileSync(limeOut);
    let at = 0;
    for (const r of made.regions) {
      expect(lime.readUInt32LE(at)).toBe(0x4c694d45); // "EMiL" read little-endian
      expect(lime.readUInt32LE(at + 4)).toBe(1);
      expect(lime.readBigUInt64LE(at + 8)).toBe(r.phys);
      expect(lime.readBigUInt64LE(at + 16)).toBe(r.phys + BigInt(r.bytes.length) - 1n);
      expect(sha256(lime.subarray(at + 32, at + 32 + r.bytes.length))).toBe(sha256(r.bytes));
      at += 32 + r.bytes.length;
    }
    expect(at).toBe(lime.length);
  });

  test('a file that is not an ELF core is refused, naming the file; nothing is written', async () => {
    const bad = path.join(dir, 'not-a-core');
    fs.writeFileSync(bad, 'hello, board\n'.repeat(10));
    const dest = path.join(dir, 'store-c');
    const res = await physcap(['import', bad, '--dest', dest]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(bad);
    expect(res.stderr).toMatch(/bad magic|shorter than an ELF64 header/);
    expect(fs.readdirSync(dest).filter((f) => !f.startsWith('.') && f !== 'index.jsonl')).toEqual([]);
  });
});

/*
 * The board's digest file as physcap-client writes it: made here by the
 * real client's digest verb (its portable SHA-256 where this machine's
 * kernel crypto API is out of reach), checked by import.
 */
describe("physcap import checks the board's digest file and an armed core's stamp", () => {
  const client = path.join(repoRoot(), 'build', 'bin', 'physcap-client');
  let dir: string;
  beforeAll(() => {
    dir = tempDir('import-digest');
  });
  afterAll(() => removeDir(dir));

  /** The client's digest file for file (all of it), as it writes one after a capture. */
  function boardDigest(file: string): { sha256: string; driver: string } {
    const bytes = fs.statSync(file).size;
    const run = spawnSync(client, ['digest', file, '--bytes', String(bytes)], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    const out = JSON.parse(run.stdout) as { digest: { ok: boolean; sha256: string; driver: string; file: string } };
    expect(out.digest).toMatchObject({ ok: true, file: `${file}.digest` });
    expect(out.digest.sha256).toBe(sha256(fs.readFileSync(file)));
    return out.digest;
  }

  function storedCaptures(dest: string): string[] {
    return fs.existsSync(dest) ? fs.readdirSync(dest).filter((f) => !f.startsWith('.') && f !== 'index.jsonl') : [];
  }

  test("a core with its board's digest file is imported, and the manifest says what the board's digest was and what made it", async () => {
    const made = boardCore(dir, { name: 'good.core' });
    const digest = boardDigest(made.file);
    const dest = path.join(dir, 'store-good');
    const res = await physcap(['import', made.file, '--dest', dest, '--json']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const { id } = JSON.parse(res.stdout) as { id: string };
    const shown = await physcap(['show', id, '--dest', dest, '--json']);
    const m = JSON.parse(shown.stdout) as { triggers: Array<{ detail: { boardDigest: Record<string, unknown> } }> };
    expect(m.triggers[0].detail.boardDigest).toMatchObject({ sha256: digest.sha256, driver: digest.driver, matched: true });
  });

  test('a core changed after the board read it back is refused, naming both digests; nothing is written', async () => {
    const made = boardCore(dir, { name: 'damaged.core' });
    const digest = boardDigest(made.file);
    const fd = fs.openSync(made.file, 'r+');
    fs.writeSync(fd, Buffer.from([0x55]), 0, 1, fs.statSync(made.file).size - 4096 - 100);
    fs.closeSync(fd);
    const dest = path.join(dir, 'store-damaged');
    const res = await physcap(['import', made.file, '--dest', dest]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(made.file);
    expect(res.stderr).toContain(digest.sha256);
    expect(res.stderr).toContain('changed after the board read it back');
    expect(storedCaptures(dest)).toEqual([]);
  });

  test('a digest file that is not one is refused, naming the file and the field', async () => {
    const made = boardCore(dir, { name: 'badsum.core' });
    fs.writeFileSync(`${made.file}.digest`, JSON.stringify({ format: 'physcap-digest', version: 1, algorithm: 'sha256', sha256: 'xyz' }));
    const res = await physcap(['import', made.file, '--dest', path.join(dir, 'store-badsum')]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`${made.file}.digest: sha256: not 64 lowercase hex digits`);
  });

  test('an armed core whose note does not say where its stamp is is refused, naming the file and the field', async () => {
    const made = boardCore(dir, { name: 'armed-bad.core', armedNote: { cookie: 'zz' } });
    const res = await physcap(['import', made.file, '--dest', path.join(dir, 'store-armed-bad')]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`${made.file}: PHYSCAP note: armed: not a cookie and a stamp offset in hex`);
  });

  test("an armed core is imported only once its arm's stamp says the kernel wrote it", async () => {
    const cookie = 0x0123456789abcdefn;
    const made = boardCore(dir, { name: 'armed.core', armed: { cookie } });
    const dest = path.join(dir, 'store-armed');
    const never = await physcap(['import', made.file, '--dest', dest]);
    expect(never.code).not.toBe(0);
    expect(never.stderr).toContain('the kernel never wrote this capture');
    expect(storedCaptures(dest)).toEqual([]);

    const fd = fs.openSync(made.file, 'r+');
    fs.writeSync(fd, stamp({ cookie: cookie + 1n }), 0, 4096, made.stampAt);
    fs.closeSync(fd);
    const other = await physcap(['import', made.file, '--dest', dest]);
    expect(other.stderr).toContain('the kernel never wrote this capture');

    const fd2 = fs.openSync(made.file, 'r+');
    fs.writeSync(fd2, stamp({ cookie, state: 4, error: -5 }), 0, 4096, made.stampAt);
    fs.closeSync(fd2);
    const failed = await physcap(['import', made.file, '--dest', dest]);
    expect(failed.stderr).toContain('the kernel reports failed (EIO)');

    const fd3 = fs.openSync(made.file, 'r+');
    fs.writeSync(fd3, stamp({ cookie }), 0, 4096, made.stampAt);
    fs.closeSync(fd3);
    boardDigest(made.file);
    const ok = await physcap(['import', made.file, '--dest', dest, '--json']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const { id } = JSON.parse(ok.stdout) as { id: string };
    const shown = JSON.parse((await physcap(['show', id, '--dest', dest, '--json'])).stdout) as { triggers: Array<{ detail: { stamp: unknown } }> };
    expect(shown.triggers[0].detail.stamp).toMatchObject({ armId: '7' });
  });
});
