/**
 * The compile matrix: physcap.ko and the static C tools (physcap-client,
 * physcap-selftest) for every architecture physcap serves, warning-free (-Werror, and any "warning:"
 * in the build fails it), each built fresh into a temporary directory by
 * scripts/kbuild.js:
 *
 *   x86-64 6.1 and 6.12   Debian's installed headers; modpost links it
 *   arm64, ppc64le        Debian's linux-source 6.1, modules_prepare'd
 *   ppce500               mpc85xx_smp_defconfig: 32-bit, PHYS_64BIT, HIGHMEM
 *   ppce500-board         the emulated board's kernel, fully built: modpost
 *                         proves the module links on a 32-bit kernel (no
 *                         64-bit division helpers it lacks)
 *
 * The trees are prepared (and cached outside the checkout) by
 * scripts/cross/trees.sh, which scripts/build.js runs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { removeDir, tempDir } from '../support/tmp';

const root = path.join(__dirname, '..', '..');
const kbuild = path.join(root, 'scripts', 'kbuild.js');

interface Target {
  target: string;
  full: boolean;
}

const targets = JSON.parse(execFileSync(process.execPath, [kbuild, '--list'], { encoding: 'utf8' })) as Target[];

/** e_machine, class and byte order of an ELF file, and whether it asks for an interpreter (dynamic). */
function elfKind(file: string): { machine: number; bits: number; big: boolean; dynamic: boolean } {
  const b = fs.readFileSync(file);
  const big = b[5] === 2;
  const bits = b[4] === 2 ? 64 : 32;
  const u16 = (o: number) => (big ? b.readUInt16BE(o) : b.readUInt16LE(o));
  const u32 = (o: number) => (big ? b.readUInt32BE(o) : b.readUInt32LE(o));
  const u64 = (o: number) => Number(big ? b.readBigUInt64BE(o) : b.readBigUInt64LE(o));
  const phoff = bits === 64 ? u64(32) : u32(28);
  const phentsize = u16(bits === 64 ? 54 : 42);
  const phnum = u16(bits === 64 ? 56 : 44);
  let dynamic = false;
  for (let i = 0; i < phnum; i++) if (u32(phoff + i * phentsize) === 3) dynamic = true; // PT_INTERP
  return { machine: u16(18), bits, big, dynamic };
}

const EXPECTED: Record<string, { machine: number; bits: number; big: boolean }> = {
  'x86-64-6.1': { machine: 62, bits: 64, big: false },
  'x86-64-6.12': { machine: 62, bits: 64, big: false },
  arm64: { machine: 183, bits: 64, big: false },
  ppc64le: { machine: 21, bits: 64, big: false },
  ppce500: { machine: 20, bits: 32, big: true },
  'ppce500-board': { machine: 20, bits: 32, big: true },
};

describe('compile matrix: physcap.ko, physcap-client and physcap-selftest, warning-free', () => {
  let out: string;
  beforeAll(() => {
    out = tempDir('matrix');
  });
  afterAll(() => removeDir(out));

  test('every target is there: x86-64 6.1 and 6.12, arm64, ppc64le, ppce500, the board', () => {
    expect(targets.map((t) => t.target).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  test.each(targets.map((t) => [t.target, t] as const))(
    '%s',
    (_name, t) => {
      const res = spawnSync(process.execPath, [kbuild, t.target, path.join(out, t.target)], { encoding: 'utf8', maxBuffer: 64 << 20 });
      const line = res.stdout.trim().split('\n').pop() ?? '{}';
      const r = JSON.parse(line) as { ok: boolean; kind: string; error?: string; module?: string; client: string; selftest: string; seconds: number };
      if (!r.ok) throw new Error(`${t.target}: ${r.error}`);
      expect(r.kind).toBe(t.full ? 'link' : 'compile');
      const want = EXPECTED[t.target]!;
      for (const tool of [r.client, r.selftest]) {
        const k = elfKind(tool);
        expect({ machine: k.machine, bits: k.bits, big: k.big, dynamic: k.dynamic }).toEqual({ ...want, dynamic: false });
      }
      if (t.full) {
        const ko = elfKind(r.module!);
        expect({ machine: ko.machine, bits: ko.bits, big: ko.big }).toEqual(want);
      } else {
        // Compile-only trees: every object of the module was compiled for the target.
        for (const o of fs.readdirSync(path.join(out, t.target, 'module')).filter((f) => /^physcap_\w+\.o$/.test(f))) {
          const k = elfKind(path.join(out, t.target, 'module', o));
          expect({ machine: k.machine, bits: k.bits, big: k.big }).toEqual(want);
        }
      }
    },
    10 * 60_000,
  );
});
