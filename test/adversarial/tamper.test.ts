/**
 * Adversarial: tampering with stored captures.  One destination of three
 * signed captures is made once; each case copies it, changes one thing —
 * a bit flipped, a file truncated, extended or deleted in every file of a
 * capture, index lines edited, the newest capture removed with its line,
 * forgeries with and without the key — and `physcap verify --key` must
 * fail, naming what changed.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { entryHash, parseEntry, serializeEntry } from '../../agent/src/manifest/chain';
import { headOf } from '../../agent/src/manifest/head';
import { sign } from '../../agent/src/manifest/sign';
import { sumsFile } from '../../agent/src/manifest/sums';
import type { Manifest } from '../../agent/src/manifest/types';
import { captureNow, imageProfile, indexOf, makeImage, MiB, writeProfile } from '../support/capture';
import { sha256 } from '../support/hash';
import { cli, scratch } from './kit';

let s: ReturnType<typeof scratch>;
let base: string;
let ids: string[];
let pub: string;
let otherKey: string;
let headAfterSecond: Buffer;
beforeAll(async () => {
  s = scratch('tamper');
  const img = makeImage(s.dir, 4 * MiB);
  const keys = path.join(s.dir, 'keys');
  fs.mkdirSync(keys);
  expect((await cli(['keygen', '-o', path.join(keys, 'site')])).code).toBe(0);
  expect((await cli(['keygen', '-o', path.join(keys, 'other')])).code).toBe(0);
  pub = path.join(keys, 'site.pub');
  otherKey = path.join(keys, 'other.key');
  base = path.join(s.dir, 'base');
  // 2 MiB in 16 KiB chunks: 128 chunk digests, so they go to a sidecar file.
  const p = writeProfile(
    s.dir,
    'tamper',
    imageProfile({
      image: img.file,
      dest: base,
      regions: [
        ['ram', 0, 2 * MiB],
        ['log', 3 * MiB, 64 * 1024],
      ],
      chunk: '16KiB',
      extra: `signing:\n  key: ${path.join(keys, 'site.key')}\n`,
    }),
  );
  ids = [];
  for (let i = 0; i < 3; i++) {
    ids.push((await captureNow(p)).id);
    if (i === 1) headAfterSecond = fs.readFileSync(path.join(base, 'index.head'));
  }
  for (const id of ids) expect((await cli(['verify', id, '--dest', base, '--key', pub])).code).toBe(0);
}, 60_000);
afterAll(() => s.done());

let n = 0;
/** A fresh copy of the destination for one case. */
function copy(): string {
  const d = path.join(s.dir, `case-${++n}`);
  execFileSync('cp', ['-a', base, d]);
  return d;
}
const newest = () => ids[2]!;
async function verifyFails(dest: string, id: string, why: RegExp, extra: string[] = []): Promise<void> {
  const r = await cli(['verify', id, '--dest', dest, '--key', pub, ...extra]);
  expect(r.code).toBe(1);
  expect(r.out).not.toMatch(/: verified$/m);
  expect(r.out).toMatch(why);
}

const FILES: Array<[string, RegExp]> = [
  ['core.elf', /FAIL {2}(core\.elf|region|chunk)/],
  ['manifest.json', /FAIL {2}.*manifest\.json/],
  ['SHA256SUMS', /FAIL {2}SHA256SUMS/],
  ['manifest.json.sig', /FAIL {2}.*(manifest\.json\.sig|signature)/],
  ['ram.chunks', /FAIL {2}.*(ram\.chunks|chunk)/],
];
const OPS: Array<[string, (f: string) => void]> = [
  ['a bit flipped in its first byte', (f) => flip(f, 0)],
  ['a bit flipped in its middle', (f) => flip(f, Math.floor(fs.statSync(f).size / 2))],
  ['a bit flipped in its last byte', (f) => flip(f, fs.statSync(f).size - 1)],
  ['cut short by one byte', (f) => fs.truncateSync(f, fs.statSync(f).size - 1)],
  ['one byte appended', (f) => fs.appendFileSync(f, Buffer.from([0]))],
  ['deleted', (f) => fs.rmSync(f)],
];
function flip(file: string, at: number): void {
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0]! ^= 0x10;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);
}

describe('[tamper] every file of a capture', () => {
  const rows = FILES.flatMap(([file, why]) => OPS.map(([op, fn]) => [file, op, fn, why] as const));
  test.each(rows)('[tamper] %s %s: verify --key fails naming it', async (file, _op, fn, why) => {
    const d = copy();
    fn(path.join(d, newest(), file));
    await verifyFails(d, newest(), why);
    // The other captures are not affected by it.
    expect((await cli(['verify', ids[0]!, '--dest', d, '--key', pub])).code).toBe(0);
  });
});

describe('[tamper] the index and its head', () => {
  const lines = (d: string) => fs.readFileSync(path.join(d, 'index.jsonl'), 'utf8').split('\n').filter(Boolean);
  const writeLines = (d: string, l: string[]) => fs.writeFileSync(path.join(d, 'index.jsonl'), `${l.join('\n')}\n`);

  test('[tamper] a bit flipped in the first index line: the line is named, verify fails', async () => {
    const d = copy();
    flip(path.join(d, 'index.jsonl'), 10);
    await verifyFails(d, newest(), /FAIL {2}index: .*index\.jsonl:[12]: /);
  });

  test('[tamper] the middle index line deleted: chain broken at the next line', async () => {
    const d = copy();
    const l = lines(d);
    writeLines(d, [l[0]!, l[2]!]);
    await verifyFails(d, newest(), /FAIL {2}index: .*chain broken: entry 3/);
  });

  test('[tamper] two index lines swapped: chain broken', async () => {
    const d = copy();
    const l = lines(d);
    writeLines(d, [l[1]!, l[0]!, l[2]!]);
    await verifyFails(d, newest(), /chain broken/);
  });

  test('[tamper] index.jsonl deleted: the capture is not found, exit 1', async () => {
    const d = copy();
    fs.rmSync(path.join(d, 'index.jsonl'));
    const r = await cli(['verify', newest(), '--dest', d, '--key', pub]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no capture/);
  });

  test('[tamper] the newest capture removed with its index line: the signed head says the index was cut back', async () => {
    const d = copy();
    fs.rmSync(path.join(d, newest()), { recursive: true });
    writeLines(d, lines(d).slice(0, 2));
    await verifyFails(
      d,
      ids[1]!,
      /FAIL {2}index: index\.head \(signed .*\) vouches for entry 3 \(.*\), but the index ends at entry 2: newer captures and their index lines were removed/,
    );
  });

  test('[tamper] the newest capture removed with its line and index.head deleted too: verify --key says there is no signed head', async () => {
    const d = copy();
    fs.rmSync(path.join(d, newest()), { recursive: true });
    writeLines(d, lines(d).slice(0, 2));
    fs.rmSync(path.join(d, 'index.head'));
    await verifyFails(d, ids[1]!, /FAIL {2}index: no signed head \(index\.head\) although a key is pinned/);
  });

  test('[tamper] the newest capture removed and an older signed head put back: --key alone cannot tell (documented), the head from the journal (--head) can', async () => {
    const d = copy();
    const witness = headOf(parseEntry(lines(d)[2]!));
    fs.rmSync(path.join(d, newest()), { recursive: true });
    writeLines(d, lines(d).slice(0, 2));
    fs.writeFileSync(path.join(d, 'index.head'), headAfterSecond);
    expect((await cli(['verify', ids[1]!, '--dest', d, '--key', pub])).code).toBe(0);
    await verifyFails(d, ids[1]!, /FAIL {2}index: the head given \(--head 3:…\) vouches for entry 3, but the index ends at entry 2/, [
      '--head',
      `${witness.seq}:${witness.head}`,
    ]);
  });

  test('[tamper] a bit flipped in index.head: its signature fails', async () => {
    const d = copy();
    const h = JSON.parse(fs.readFileSync(path.join(d, 'index.head'), 'utf8')) as { seq: number };
    h.seq += 1;
    fs.writeFileSync(path.join(d, 'index.head'), JSON.stringify(h));
    await verifyFails(d, newest(), /FAIL {2}index: index\.head: the signature does not match/);
  });

  test('[tamper] index.head re-signed by another key: not the pinned key', async () => {
    const d = copy();
    const h = JSON.parse(fs.readFileSync(path.join(d, 'index.head'), 'utf8')) as Record<string, unknown>;
    const other = crypto.createPublicKey(crypto.createPrivateKey(fs.readFileSync(otherKey)));
    h.publicKey = other.export({ type: 'spki', format: 'der' }).toString('base64');
    fs.writeFileSync(path.join(d, 'index.head'), JSON.stringify(h));
    await verifyFails(d, newest(), /FAIL {2}index: index\.head is signed by key [0-9a-f]{64}, not by the pinned key/);
  });

  test('[tamper] --head that is not SEQ:SHA256: a usage error', async () => {
    const r = await cli(['verify', newest(), '--dest', base, '--head', 'latest']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--head: "latest" is not a head \(expected SEQ:SHA256/);
  });
});

describe('[tamper] forgeries', () => {
  const manifestOf = (d: string, id: string) => JSON.parse(fs.readFileSync(path.join(d, id, 'manifest.json'), 'utf8')) as Manifest;

  /** New bytes in core.elf, then every digest, the sums and the chain made to agree; `signature` decides what becomes of the signature. */
  function forge(d: string, signature: 'drop' | 'other-key' | 'keep-old'): void {
    const dir = path.join(d, newest());
    const m = manifestOf(d, newest());
    const core = path.join(dir, 'core.elf');
    const bytes = fs.readFileSync(core);
    const r = m.regions[1]!; // the inline-chunk region
    bytes.write('forged!', r.offset + 100, 'latin1');
    fs.writeFileSync(core, bytes);
    const region = bytes.subarray(r.offset, r.offset + r.size);
    r.sha256 = sha256(region);
    r.chunks = Array.from({ length: r.size / r.chunkSize }, (_, i) => sha256(region.subarray(i * r.chunkSize, (i + 1) * r.chunkSize)));
    m.files.find((f) => f.name === 'core.elf')!.sha256 = sha256(bytes);
    if (signature === 'drop') delete m.signature;
    const text = Buffer.from(`${JSON.stringify(m, null, 2)}\n`);
    fs.writeFileSync(path.join(dir, 'manifest.json'), text);
    const sig = path.join(dir, 'manifest.json.sig');
    if (signature === 'drop') fs.rmSync(sig);
    if (signature === 'other-key') fs.writeFileSync(sig, sign(text, crypto.createPrivateKey(fs.readFileSync(otherKey))));
    const sums = [
      ...m.files,
      ...(fs.existsSync(sig) ? [{ name: 'manifest.json.sig', sha256: sha256(fs.readFileSync(sig)) }] : []),
      { name: 'manifest.json', sha256: sha256(text) },
    ];
    fs.writeFileSync(path.join(dir, 'SHA256SUMS'), sumsFile(sums));
    let prev: string | null = null;
    const lines = fs
      .readFileSync(path.join(d, 'index.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => {
        const e = parseEntry(line);
        const forged = serializeEntry({ ...e, prev, ...(e.id === m.id ? { manifestSha256: sha256(text) } : {}) });
        prev = entryHash(forged);
        return forged;
      });
    fs.writeFileSync(path.join(d, 'index.jsonl'), `${lines.join('\n')}\n`);
    execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: dir });
  }

  test('[tamper] forged without the key (signature removed): every digest agrees, verify --key fails', async () => {
    const d = copy();
    forge(d, 'drop');
    await verifyFails(d, newest(), /FAIL {2}the capture is not signed, but a key is pinned/);
  });

  test('[tamper] forged and signed with another key: verify --key fails, naming the signer', async () => {
    const d = copy();
    forge(d, 'other-key');
    await verifyFails(d, newest(), /FAIL {2}signed by key [0-9a-f]{64}, not by the pinned key/);
  });

  test('[tamper] forged with the old signature kept: the signature does not match the manifest', async () => {
    const d = copy();
    forge(d, 'keep-old');
    await verifyFails(d, newest(), /FAIL {2}manifest\.json\.sig: the signature does not match manifest\.json/);
  });

  test("[tamper] another capture's manifest swapped in: named", async () => {
    const d = copy();
    fs.copyFileSync(path.join(d, ids[1]!, 'manifest.json'), path.join(d, newest(), 'manifest.json'));
    await verifyFails(d, newest(), /FAIL {2}manifest\.json does not match the digest in its index entry/);
  });

  test('[tamper] an older capture directory renamed into the place of the newest: named', async () => {
    const d = copy();
    fs.rmSync(path.join(d, newest()), { recursive: true });
    fs.renameSync(path.join(d, ids[1]!), path.join(d, newest()));
    await verifyFails(d, newest(), /FAIL {2}manifest\.json (does not match the digest|is for capture)/);
  });

  test('[tamper] the capture directory replaced by a symlink to a faithful copy: refused, not followed', async () => {
    const d = copy();
    fs.renameSync(path.join(d, newest()), path.join(s.dir, `moved-${n}`));
    fs.symlinkSync(path.join(s.dir, `moved-${n}`), path.join(d, newest()));
    const r = await cli(['verify', newest(), '--dest', d, '--key', pub]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/is not a directory \(a symlink\?\): refusing to read it/);
  });

  test('[tamper] untouched, verified by id with a same-named directory in the working directory: the destination is what is verified', async () => {
    const d = copy();
    const cwd = path.join(s.dir, `cwd-${n}`);
    fs.mkdirSync(path.join(cwd, newest()), { recursive: true });
    fs.writeFileSync(path.join(cwd, newest(), 'manifest.json'), '{}');
    const prior = process.cwd();
    process.chdir(cwd);
    try {
      const r = await cli(['verify', newest(), '--dest', d, '--key', pub, '--json']);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out)).toMatchObject({ ok: true, location: path.join(d, newest()) });
    } finally {
      process.chdir(prior);
    }
    expect(indexOf(d)).toHaveLength(3);
  });
});
