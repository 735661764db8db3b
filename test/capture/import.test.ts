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
import * as fs from 'node:fs';
import * as path from 'node:path';

import { importCore } from '../../agent/src/capture/import';
import { layoutElfCore, NOTE_PHYSCAP, NOTE_VMCOREINFO, parseElfCoreFile, PT_LOAD } from '../../agent/src/container/elf';
import { DirStore } from '../../agent/src/destinations/dir/store';
import { MiB } from '../support/capture';
import { physcap } from '../support/cli';
import { chunkSha256s, sha256 } from '../support/hash';
import { removeDir, tempDir } from '../support/tmp';

const EM_PPC = 20;

interface Made {
  file: string;
  regions: Array<{ name: string; phys: bigint; bytes: Buffer }>;
}

/** A core as the board's client lays it out (kernel/tools/elfcore.c), big-endian. */
function boardCore(dir: string): Made {
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
  const file = path.join(dir, 'board.core');
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, layout.header, 0, layout.header.length, 0);
  regions.forEach((r, i) => fs.writeSync(fd, r.bytes, 0, r.bytes.length, Number(layout.regionOffsets[i])));
  fs.ftruncateSync(fd, Number(layout.fileSize));
  fs.closeSync(fd);
  return { file, regions };
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
