/**
 * export --format kdump without a kernel: what is refused and how, and
 * that nothing is left behind or overwritten.  The real conversion (a
 * guest's System RAM through Debian's makedumpfile, opened by crash and
 * drgn) is in test/postmortem/postmortem.vm.test.ts.  Also: a kdump-style
 * core imported from elsewhere keeps its addresses and its kernel-image
 * alias, verifies, and exports to ELF with them.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { defaultDumpLevel, exportKdump, userPagesCaveat } from '../../agent/src/postmortem/kdump';
import { layoutElfCore, NOTE_PHYSCAP, NOTE_VMCOREINFO, parseElfCoreFile, splitLoads } from '../../agent/src/container/elf';
import { DirStore } from '../../agent/src/destinations/dir/store';
import type { Manifest } from '../../agent/src/manifest/types';
import { captureNow, imageProfile, makeImage, MiB, writeProfile } from '../support/capture';
import { physcap } from '../support/cli';
import { chunkSha256s, regionChunks } from '../support/hash';
import { removeDir, tempDir } from '../support/tmp';

const PAGE_OFFSET = 0xffff_8880_0000_0000n;
const IMAGE = { vaddr: 0xffff_ffff_8100_0000n, paddr: 0x10_0000n, size: 0x10_0000n };

/** A core shaped like a kdump vmcore of a small x86-64 machine: RAM at 0..4 MiB with the "image" in it. */
function vmcoreLike(dir: string): { file: string; bytes: Buffer } {
  const bytes = crypto.randomBytes(4 * MiB);
  const layout = layoutElfCore({
    target: { machine: 62, bigEndian: false },
    regions: [{ paddr: 0n, size: BigInt(bytes.length), vaddr: PAGE_OFFSET }],
    aliases: [{ vaddr: IMAGE.vaddr, paddr: IMAGE.paddr, size: IMAGE.size }],
    notes: [
      { ...NOTE_PHYSCAP, desc: Buffer.from('{"tool":"elsewhere"}') },
      { ...NOTE_VMCOREINFO, desc: Buffer.from('OSRELEASE=6.1.0-57-amd64\nPAGESIZE=4096\nKERNELOFFSET=0\n') },
    ],
    align: 4096,
  });
  const file = path.join(dir, 'vmcore');
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, layout.header, 0, layout.header.length, 0);
  fs.writeSync(fd, bytes, 0, bytes.length, Number(layout.regionOffsets[0]));
  fs.ftruncateSync(fd, Number(layout.fileSize));
  fs.closeSync(fd);
  return { file, bytes };
}

describe('export --format kdump', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('kdump');
  });
  afterAll(() => removeDir(dir));

  test('a capture of physical ranges only is refused, saying what it is; nothing is written', async () => {
    const img = makeImage(dir, 2 * MiB);
    const dest = path.join(dir, 'ranges');
    const p = writeProfile(dir, 'ranges', imageProfile({ image: img.file, dest, regions: [['fwlog', 0x10_0000, MiB]] }));
    const c = await captureNow(p);
    expect(c.status).toBe('complete');
    const show = await physcap(['show', c.id, '--dest', dest]);
    expect(show.stdout).toMatch(/contents: physical ranges only \(no region the kernel maps\); not a kernel dump/);
    const out = path.join(dir, 'ranges.kdump');
    const r = await physcap(['export', c.id, '--dest', dest, '--format', 'kdump', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`capture ${c.id} holds no kernel memory`);
    expect(r.stderr).toMatch(/--format raw or --format lime instead/);
    expect(fs.readdirSync(dir).filter((n) => n.includes('ranges.kdump'))).toEqual([]);
  });

  test('bad options are refused before anything is read', async () => {
    for (const [args, why] of [
      [['--dump-level', '32'], /--dump-level must be an integer from 0 to 31/],
      [['--dump-level', 'x'], /--dump-level must be an integer/],
      [['--compress', 'zstd'], /--compress must be zlib, lzo or none/],
    ] as const) {
      const r = await physcap(['export', 'whatever', '--dest', dir, '--format', 'kdump', '-o', path.join(dir, 'x'), ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(why);
    }
    const r = await physcap(['export', 'whatever', '--dest', dir, '--format', 'raw', '-o', path.join(dir, 'x'), '--dump-level', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--dump-level and --compress are for --format kdump/);
  });

  describe('a kdump-style core from elsewhere, imported', () => {
    let dest: string;
    let id: string;
    let made: { file: string; bytes: Buffer };
    beforeAll(async () => {
      made = vmcoreLike(dir);
      dest = path.join(dir, 'imported');
      const imp = await physcap(['import', made.file, '--dest', dest, '--json']);
      expect(imp.stderr).toBe('');
      id = (JSON.parse(imp.stdout) as { id: string }).id;
    });

    test('one region (the alias is not imported twice), verified; the addresses and the alias kept', async () => {
      const m = JSON.parse(fs.readFileSync(path.join(dest, id, 'manifest.json'), 'utf8')) as Manifest;
      expect(m.regions).toHaveLength(1);
      expect(m.regions[0]).toMatchObject({ phys: '0x0', size: made.bytes.length });
      expect(regionChunks(path.join(dest, id), m.regions[0]!)).toEqual(chunkSha256s(made.bytes, m.regions[0]!.chunkSize));
      const v = await physcap(['verify', id, '--dest', dest]);
      expect(v.code).toBe(0);
      expect(v.stdout).toMatch(/ELF core headers match the 1 regions \(and 1 alias segment\(s\) of their bytes\)/);
      const { data, aliases } = splitLoads(parseElfCoreFile(path.join(dest, id, 'core.elf')));
      expect(data.map((s) => s.vaddr)).toEqual([PAGE_OFFSET]);
      expect(aliases.map((s) => [s.vaddr, s.paddr, s.filesz])).toEqual([[IMAGE.vaddr, IMAGE.paddr, IMAGE.size]]);
      const show = await physcap(['show', id, '--dest', dest]);
      expect(show.stdout).toMatch(/contents: kernel dump of Linux 6\.1\.0-57-amd64, KASLR offset 0x0; 4\.0 MiB the kernel maps/);
    });

    test('export --format elf keeps the addresses and the alias; the alias points at the same bytes', async () => {
      const out = path.join(dir, 'again.elf');
      expect((await physcap(['export', id, '--dest', dest, '--format', 'elf', '-o', out])).code).toBe(0);
      const core = parseElfCoreFile(out);
      const { data, aliases } = splitLoads(core);
      expect(data.map((s) => s.vaddr)).toEqual([PAGE_OFFSET]);
      expect(aliases).toHaveLength(1);
      const bytes = fs.readFileSync(out);
      const at = Number(aliases[0]!.offset);
      expect(bytes.subarray(at, at + Number(IMAGE.size)).equals(made.bytes.subarray(Number(IMAGE.paddr), Number(IMAGE.paddr + IMAGE.size)))).toBe(true);
    });

    test('without makedumpfile: a clear error naming the package; nothing is written', async () => {
      const store = new DirStore(dest);
      const reader = store.open(id);
      try {
        const manifest = JSON.parse(reader.readFile('manifest.json').toString('utf8')) as Manifest;
        const out = path.join(dir, 'missing.kdump');
        await expect(exportKdump({ reader, manifest, out, compression: 'zlib', makedumpfile: path.join(dir, 'no-such-makedumpfile') })).rejects.toThrow(
          /is not installed: install makedumpfile \(Debian\/Ubuntu: apt-get install makedumpfile/,
        );
        expect(fs.readdirSync(dir).filter((n) => n.includes('missing.kdump'))).toEqual([]);
      } finally {
        reader.close();
        store.close();
      }
    });

    test("makedumpfile's own refusal (random bytes are no kernel) comes through with its words; nothing is left behind", async () => {
      const out = path.join(dir, 'random.kdump');
      const r = await physcap(['export', id, '--dest', dest, '--format', 'kdump', '-o', out]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/makedumpfile -c -d 31 .* failed \(exit \d+\):\n/);
      expect(fs.readdirSync(dir).filter((n) => n.includes('random.kdump'))).toEqual([]);
    });

    test('an existing output is never overwritten', async () => {
      const out = path.join(dir, 'exists.kdump');
      fs.writeFileSync(out, 'mine');
      const r = await physcap(['export', id, '--dest', dest, '--format', 'kdump', '-o', out]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/exists\.kdump already exists; not overwriting it/);
      expect(fs.readFileSync(out, 'utf8')).toBe('mine');
    });
  });
});

test("the default dump level leaves user pages in where makedumpfile predates the kernel's slab layout", () => {
  expect(defaultDumpLevel('makedumpfile: version 1.7.2 (released on 20 Oct 2022)', '6.1.0-57-amd64')).toBe(31);
  expect(defaultDumpLevel('makedumpfile: version 1.7.2 (released on 20 Oct 2022)', '6.12.117+deb12-amd64')).toBe(23);
  expect(defaultDumpLevel('makedumpfile: version 1.7.3', '6.12.117+deb12-amd64')).toBe(31);
  expect(defaultDumpLevel('makedumpfile: version 1.7.2', undefined)).toBe(31);
  expect(userPagesCaveat('makedumpfile: version 1.7.2', '6.2.0')).toMatch(
    /mistakes some slab pages of Linux 6\.2 for user pages \(fixed in makedumpfile 1\.7\.3\)/,
  );
});
