/**
 * The fault table: a full disk, kill -9 and SIGTERM mid-capture, the
 * destination removed or made read-only mid-capture, corrupt index lines
 * and manifests, symlinks planted where a capture will go, and the
 * blockdev destination end to end.  In every case: no capture is shown
 * complete when it is not, no earlier capture is lost, and what is left on
 * disk says honestly what happened.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { planCapture } from '../../agent/src/capture/plan';
import { DirStore, DURABLE_FILE } from '../../agent/src/destinations/dir/store';
import { initBlockdev, openBlockdevStore } from '../../agent/src/destinations/blockdev/store';
import type { Manifest } from '../../agent/src/manifest/types';
import { entryHash } from '../../agent/src/manifest/chain';
import { physcapCli, runAgent, stopAgent } from '../../harness/agent';
import { writePattern } from '../../harness/patterns';
import { captureNow, imageProfile, indexOf, makeImage, manifestOf, MiB, verifies, writeProfile } from '../support/capture';
import { physcap } from '../support/cli';
import { chunkSha256s, regionChunks, sha256, sha256File } from '../support/hash';
import { removeDir, tempDir, useTmpfs } from '../support/tmp';
import { waitUntil } from '../support/wait';

let work: string;
let img: ReturnType<typeof makeImage>;

beforeAll(() => {
  work = tempDir('faults');
  img = makeImage(work, 16 * MiB);
});
afterAll(() => removeDir(work));

const captures = (dest: string) =>
  fs.existsSync(dest)
    ? fs
        .readdirSync(dest)
        .filter((d) => d !== 'index.jsonl')
        .sort()
    : [];

describe('a full disk mid-capture (a small filesystem)', () => {
  const mnt = useTmpfs('enospc', '20m');

  test('ENOSPC: the capture ends failed with what it wrote; the earlier capture is intact', async () => {
    const dest = path.join(mnt(), 'captures');
    const small = writeProfile(work, 'small', imageProfile({ image: img.file, dest, regions: [['low', 0, MiB]], format: 'raw' }));
    const earlier = await captureNow(small);
    expect(earlier.status).toBe('complete');

    const p = writeProfile(
      work,
      'fill',
      imageProfile({
        image: img.file,
        dest,
        regions: [
          ['one', 0, 6 * MiB],
          ['two', 8 * MiB, 6 * MiB],
        ],
        format: 'raw',
      }),
    );
    let filled = false;
    // After the space check passed and region one is written, something else takes the space.
    const outcome = await captureNow(p, {
      onProgress: () => {
        if (filled) return;
        filled = true;
        fs.writeFileSync(path.join(mnt(), 'filler'), Buffer.alloc(7 * MiB));
      },
    });
    expect(outcome).toMatchObject({ status: 'failed', error: { code: 'ENOSPC' } });
    const failedDir = path.join(dest, `${outcome.id}.failed`);
    const m = manifestOf(failedDir);
    expect(m).toMatchObject({ status: 'failed', error: { code: 'ENOSPC', region: 'two' } });
    expect(m.regions.map((r) => [r.name, r.sha256])).toEqual([
      ['one', sha256(img.range(0, 6 * MiB))],
      ['two', ''],
    ]);
    // The region never reached says so: mode none, not a zero-copy of nothing.
    expect(m.regions[0]!.mode).not.toBe('none');
    expect(m.regions[1]).toMatchObject({ mode: 'none', bytesZeroCopy: 0, bytesCopied: 0 });
    expect(indexOf(dest).map((e) => [e.id, e.status])).toEqual([
      [earlier.id, 'complete'],
      [outcome.id, 'failed'],
    ]);
    expect(await verifies(dest, earlier.id)).toBe(true);
    const v = await physcap(['verify', failedDir]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/FAIL\s+the capture is marked failed: ENOSPC/);
  });
});

describe('interrupted captures and start-up recovery', () => {
  let big: string;
  beforeAll(() => {
    // A sparse 2 GiB image, hashed by reading back: long enough to be interrupted.
    big = path.join(work, 'big.img');
    fs.closeSync(fs.openSync(big, 'w'));
    fs.truncateSync(big, 2 * 1024 * MiB);
  });

  const bigProfile = (dest: string, extra = '') =>
    `regions:\n  - name: all\n    start: "0x0"\n    size: 2GiB\ntriggers:\n  - kind: control\ndestination:\n  kind: dir\n  path: ${dest}\n  retention: { keep_free: 0 }\n${extra}source:\n  kind: image\n  image_path: ${big}\nhash:\n  readback: always\ncooldown: 0\n`;

  function startCapture(file: string): ChildProcess {
    return spawn(process.execPath, [physcapCli, 'capture', file, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
  const partialOf = (dest: string) => captures(dest).find((d) => d.endsWith('.partial'));

  test('kill -9 mid-capture, then the agent starts: recorded failed, data kept as .failed, chain intact, earlier capture intact', async () => {
    const dir = path.join(work, 'kill9');
    const dest = path.join(dir, 'out');
    fs.mkdirSync(path.join(dir, 'profiles'), { recursive: true });
    const small = writeProfile(path.join(dir, 'profiles'), 'small', imageProfile({ image: img.file, dest, regions: [['low', 0, MiB]] }));
    const earlier = await captureNow(small);
    writeProfile(path.join(dir, 'profiles'), 'big', bigProfile(dest));

    const child = startCapture(path.join(dir, 'profiles', 'big.yaml'));
    expect(await waitUntil(() => !!partialOf(dest) && fs.existsSync(path.join(dest, partialOf(dest)!, 'core.elf')))).toBe(true);
    const partial = partialOf(dest)!;
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(indexOf(dest)).toHaveLength(1); // nothing claims the killed capture is anything yet

    const runtime = path.join(dir, 'run');
    const agent = runAgent(dir, { spoolDir: path.join(runtime, 'spool') });
    let log = '';
    agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    try {
      expect(await waitUntil(() => log.includes('"agent ready"'))).toBe(true);
      expect(log).toMatch(/"recovered an unfinished capture"/);
      const id = partial.replace(/\.partial$/, '');
      expect(captures(dest)).toEqual([earlier.id, `${id}.failed`].sort());
      const last = indexOf(dest)[1]!;
      expect(last).toMatchObject({
        id,
        status: 'failed',
        profile: 'big',
        location: `${id}.failed`,
        recovered: expect.stringMatching(/^interrupted: found unfinished at start-up/),
      });
      expect(last.prev).toBe(entryHash(fs.readFileSync(path.join(dest, 'index.jsonl'), 'utf8').split('\n')[0]!));

      // A new capture after the restart chains on, and everything verifies.
      const r = await physcap(['trigger', 'small', '--runtime-dir', runtime]);
      expect(r.stdout).toMatch(/^started /);
      expect(await waitUntil(() => indexOf(dest).length === 3)).toBe(true);
      const after = indexOf(dest)[2]!;
      expect(after).toMatchObject({ status: 'complete', seq: 3 });
      expect(await verifies(dest, earlier.id)).toBe(true);
      expect(await verifies(dest, String(after.id))).toBe(true);
      const list = await physcap(['list', '--dest', dest]);
      expect(list.stdout).toMatch(new RegExp(`${id}\\s+failed`));
      expect(list.code).toBe(0);
    } finally {
      await stopAgent(agent);
    }
  }, 90_000);

  describe('kill -9 after the data is durable, before its digests are done', () => {
    // Image and destination in tmpfs: the write is a copy, the digests two
    // SHA-256 streams, so the digests trail the durable data by about a second.
    const mnt = useTmpfs('durable', '5g');
    /** One agent start in `dir` (its start-up finishes what it finds), stopped once ready; its log. */
    const startAgentOnce = async (dir: string): Promise<string> => {
      const agent = runAgent(dir, { spoolDir: path.join(dir, 'run', 'spool') });
      let log = '';
      agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
      try {
        expect(await waitUntil(() => log.includes('"agent ready"'), 60_000)).toBe(true);
      } finally {
        await stopAgent(agent);
      }
      return log;
    };
    const MEMORY = 2 * 1024 * MiB;
    /** 2 GiB of pattern in the tmpfs, made once for every case. */
    const memoryImage = () => {
      const image = path.join(mnt(), 'memory.img');
      if (!fs.existsSync(image)) {
        const fd = fs.openSync(image, 'w');
        writePattern(fd, 0, MEMORY, 'durable', 'memory');
        fs.closeSync(fd);
      }
      return image;
    };

    test.each(['elf', 'raw'] as const)(
      '%s: list shows it durable; the next agent start finishes it from the disk: complete, exact digests, verified',
      async (format) => {
        const dir = path.join(mnt(), `kill9-durable-${format}`);
        const dest = path.join(dir, 'out');
        fs.mkdirSync(path.join(dir, 'profiles'), { recursive: true });
        const size = MEMORY;
        const image = memoryImage();
        writeProfile(
          path.join(dir, 'profiles'),
          'durable',
          imageProfile({ image, dest, regions: [['all', 0, size]], format, chunk: '4MiB', readback: 'always', extra: 'cooldown: 0\n' }),
        );

        const child = startCapture(path.join(dir, 'profiles', 'durable.yaml'));
        const durableFile = () => {
          const partial = partialOf(dest);
          return partial ? path.join(dest, partial, DURABLE_FILE) : undefined;
        };
        expect(await waitUntil(() => fs.existsSync(durableFile() ?? '/nonexistent'), 60_000, 2)).toBe(true);
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        const id = partialOf(dest)!.replace(/\.partial$/, '');
        expect(indexOf(dest)).toEqual([]); // killed before its digests: not published

        const list = await physcap(['list', '--dest', dest, '--json']);
        expect(JSON.parse(list.stdout)).toMatchObject({
          captures: [],
          unfinished: [{ id, profile: 'durable', state: 'durable', durable: expect.any(String) }],
        });
        expect((await physcap(['list', '--dest', dest])).stdout).toMatch(new RegExp(`${id}\\s+durable`));
        // A capture whose digests are pending is never shown verified.
        const v = await physcap(['verify', id, '--dest', dest]);
        expect(v.code).toBe(1);
        expect(v.stderr).toMatch(/is not finished \(its data is on the disk, its digests are pending\)/);
        expect(v.stdout).not.toMatch(/verified/);

        const log = await startAgentOnce(dir);
        expect(log).toMatch(/"capture finished after a restart"/);
        expect(captures(dest)).toEqual([id]);
        expect(indexOf(dest)).toMatchObject([{ id, status: 'complete', recovered: expect.stringMatching(/^finished after a restart: its data was durable/) }]);
        const m = manifestOf(path.join(dest, id));
        expect(m.status).toBe('complete');
        const file = format === 'elf' ? 'core.elf' : 'all.raw';
        const core = path.join(dest, id, file);
        // A raw region's digest is its file's; an ELF core's region has its chunks.
        expect(m.regions[0]).toMatchObject({ name: 'all', size, file, digest: 'read-back', sha256: format === 'elf' ? '' : sha256File(core) });
        // The digests are those of the bytes on the disk: sha256sum's, chunk by chunk and whole.
        expect(m.files.find((f) => f.name === file)!.sha256).toBe(sha256File(core));
        const chunkSize = m.regions[0]!.chunkSize;
        expect(regionChunks(path.join(dest, id), m.regions[0]!)).toEqual(
          Array.from({ length: size / chunkSize }, (_, i) => sha256File(core, m.regions[0]!.offset + i * chunkSize, chunkSize)),
        );
        expect(sha256File(core, m.regions[0]!.offset, size)).toBe(sha256File(image));
        expect(m.timing.durable! < m.timing.digested!).toBe(true);
        expect(await verifies(dest, id)).toBe(true);
        expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: path.join(dest, id), encoding: 'utf8' })).toMatch(
          new RegExp(`^${file.replace('.', '\\.')}: OK$`, 'm'),
        );
        fs.rmSync(dir, { recursive: true, force: true }); // room in the tmpfs for the next format
      },
      180_000,
    );

    test('blockdev: killed durable on a dump partition, the next start finishes it from the partition', async () => {
      const dir = path.join(mnt(), 'kill9-durable-blockdev');
      fs.mkdirSync(path.join(dir, 'profiles'), { recursive: true });
      const size = 512 * MiB;
      const image = memoryImage();
      const device = path.join(dir, 'dump.img');
      fs.writeFileSync(device, '');
      fs.truncateSync(device, size + 64 * MiB);
      writeProfile(
        path.join(dir, 'profiles'),
        'durable',
        `regions:\n  - name: all\n    start: "0x0"\n    size: ${size}\ntriggers:\n  - kind: control\ndestination:\n  kind: blockdev\n  device: ${device}\nsource:\n  kind: image\n  image_path: ${image}\nhash:\n  readback: always\n  chunk_size: 4MiB\ncooldown: 0\n`,
      );
      const unfinished = () => {
        let s: ReturnType<typeof openBlockdevStore>;
        try {
          s = openBlockdevStore(device, { init: 'never' });
        } catch {
          return []; // not initialized yet: the capture has not begun
        }
        try {
          return s.unfinished().map((u) => JSON.parse(u.intent.toString('utf8')) as { id: string; durable?: unknown });
        } finally {
          s.close();
        }
      };
      const child = startCapture(path.join(dir, 'profiles', 'durable.yaml'));
      expect(await waitUntil(() => unfinished().some((u) => u.durable), 60_000, 2)).toBe(true);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const [u] = unfinished();
      expect(u?.durable).toBeDefined();

      const log = await startAgentOnce(dir);
      expect(log).toMatch(/"capture finished after a restart"/);
      const s = openBlockdevStore(device, { init: 'never' });
      try {
        expect(s.unfinished()).toEqual([]);
        expect(s.index().entries).toMatchObject([{ id: u!.id, status: 'complete', recovered: expect.stringMatching(/^finished after a restart/) }]);
        const r = s.open(u!.id);
        const m = JSON.parse(r.readFile('manifest.json').toString('utf8')) as Manifest;
        const at = r.locate('core.elf');
        expect(m.files.find((f) => f.name === 'core.elf')!.sha256).toBe(sha256File(at.path, Number(at.base), at.size));
        expect(sha256File(at.path, Number(at.base) + m.regions[0]!.offset, size)).toBe(sha256File(image, 0, size));
        r.close();
      } finally {
        s.close();
      }
      const v = await physcap(['verify', u!.id, '--dest', device]);
      expect(v).toMatchObject({ code: 0 });
      fs.rmSync(dir, { recursive: true, force: true });
    }, 180_000);
  });

  test('on_interrupted: delete removes the data but still records the capture as failed', () => {
    const dest = path.join(work, 'delete-partial');
    // A process that starts a capture and dies before finishing it.
    const dirModule = path.join(__dirname, '..', '..', 'dist', 'agent', 'src', 'destinations', 'dir', 'store.js');
    execFileSync(process.execPath, [
      '-e',
      `const { DirStore } = require(${JSON.stringify(dirModule)});
       const s = new DirStore(${JSON.stringify(dest)}, undefined, true);
       const sink = s.begin({ id: 'p-1', profile: 'p', started: '2026-01-01T00:00:00.000Z', dataBytes: 4096n, smallBytes: 4096,
         intent: Buffer.from('{"profile":"p","started":"2026-01-01T00:00:00.000Z"}') });
       sink.openData('core.elf', 4096n);
       process.exit(0);`,
    ]);
    expect(captures(dest)).toEqual(['p-1.partial']);
    const store = new DirStore(dest);
    try {
      const rec = store.recover({ keep: false, reason: 'interrupted (test)' });
      expect(rec).toMatchObject([{ id: 'p-1', status: 'failed', profile: 'p', started: '2026-01-01T00:00:00.000Z', recovered: 'interrupted (test)' }]);
      expect(captures(dest)).toEqual([]);
      expect(store.recover({ keep: false, reason: 'again' })).toEqual([]); // once only
    } finally {
      store.close();
    }
  });

  test('SIGTERM to physcap capture: exit 1, left as .failed with ABORT_ERR, never complete', async () => {
    const dir = path.join(work, 'sigterm');
    const dest = path.join(dir, 'out');
    fs.mkdirSync(dir);
    writeProfile(dir, 'big', bigProfile(dest));
    const child = startCapture(path.join(dir, 'big.yaml'));
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    expect(await waitUntil(() => !!partialOf(dest))).toBe(true);
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(1);
    const out = JSON.parse(stdout) as { id: string; status: string; error: { code: string } };
    expect(out).toMatchObject({ status: 'failed', error: { code: 'ABORT_ERR' } });
    expect(captures(dest)).toEqual([`${out.id}.failed`]);
    expect(manifestOf(path.join(dest, `${out.id}.failed`))).toMatchObject({ status: 'failed', error: { code: 'ABORT_ERR', region: 'all' } });
    expect(indexOf(dest)).toMatchObject([{ id: out.id, status: 'failed', error: expect.stringMatching(/^ABORT_ERR: /) }]);
  }, 60_000);
});

describe('the destination changes under a running capture', () => {
  test('the destination directory removed mid-capture: failed, nothing shown complete', async () => {
    const dest = path.join(work, 'removed');
    const p = writeProfile(
      work,
      'removed',
      imageProfile({
        image: img.file,
        dest,
        regions: [
          ['a', 0, 4 * MiB],
          ['b', 8 * MiB, 4 * MiB],
        ],
        format: 'raw',
      }),
    );
    let removed = false;
    const outcome = await captureNow(p, {
      onProgress: () => {
        if (removed) return;
        removed = true;
        fs.rmSync(dest, { recursive: true, force: true });
      },
    });
    expect(outcome.status).toBe('failed');
    expect(outcome.error!.message).toMatch(/ENOENT/);
    expect(fs.existsSync(dest)).toBe(false); // nothing re-created, nothing claims completion
  });

  test('made immutable (read-only even for root) mid-capture: failed, recorded in the index; recovery finishes the record later', async () => {
    const dest = path.join(work, 'immutable');
    const p = writeProfile(
      work,
      'immutable',
      imageProfile({
        image: img.file,
        dest,
        regions: [
          ['a', 0, 4 * MiB],
          ['b', 8 * MiB, 4 * MiB],
        ],
        format: 'raw',
      }),
    );
    const earlier = await captureNow(p);
    let locked = '';
    try {
      const outcome = await captureNow(p, {
        onProgress: () => {
          if (locked) return;
          locked = path.join(
            dest,
            captures(dest).find((d) => d.endsWith('.partial'))!,
          );
          execFileSync('chattr', ['+i', locked]);
        },
      });
      expect(outcome).toMatchObject({ status: 'failed', error: { code: 'EPERM' } });
      const idx = indexOf(dest);
      expect(idx.map((e) => e.status)).toEqual(['complete', 'failed']);
      // The entry is the record (appended first); the rename it names could not happen yet.
      expect(idx[1]).toMatchObject({
        id: outcome.id,
        location: `${outcome.id}.failed`,
        error: expect.stringMatching(/EPERM.*the failed manifest could not be written/),
      });
      expect(idx[1]!.manifestSha256).toBeUndefined();
      expect(captures(dest)).toContain(`${outcome.id}.partial`);
      expect(await verifies(dest, earlier.id)).toBe(true);
    } finally {
      if (locked) execFileSync('chattr', ['-i', locked]);
    }
    const store = new DirStore(dest);
    try {
      // Recovery finishes the rename the entry committed to; nothing more is appended.
      const rec = store.recover({ keep: true, reason: 'interrupted (test)' });
      expect(rec).toHaveLength(0);
      expect(indexOf(dest)).toHaveLength(2);
      expect(captures(dest).filter((d) => d.endsWith('.partial'))).toEqual([]);
      expect(captures(dest)).toContain(`${indexOf(dest)[1]!.id as string}.failed`);
    } finally {
      store.close();
    }
  });

  test('a read-only destination: refused before a byte is written; earlier captures intact', async () => {
    const dest = path.join(work, 'readonly');
    const p = writeProfile(work, 'readonly', imageProfile({ image: img.file, dest, regions: [['a', 0, MiB]] }));
    const earlier = await captureNow(p);
    execFileSync('mount', ['--bind', dest, dest]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', dest]);
      await expect(captureNow(p)).rejects.toMatchObject({ code: 'EROFS' });
      expect(captures(dest)).toEqual([earlier.id]);
    } finally {
      execFileSync('umount', [dest]);
    }
    expect(indexOf(dest)).toHaveLength(1);
    expect(await verifies(dest, earlier.id)).toBe(true);
  });
});

describe('corrupt records', () => {
  test('a corrupt index line: list and verify name the line; the rest stay readable; new captures chain past it', async () => {
    const dest = path.join(work, 'corrupt-index');
    const p = writeProfile(work, 'corrupt', imageProfile({ image: img.file, dest, regions: [['a', 0, MiB]] }));
    const ids = [(await captureNow(p)).id, (await captureNow(p)).id, (await captureNow(p)).id];
    const file = path.join(dest, 'index.jsonl');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines[1] = lines[1]!.replace('"complete"', '"compleet"');
    fs.writeFileSync(file, lines.join('\n'));
    const list = await physcap(['list', '--dest', dest, '--json']);
    expect(list.code).toBe(1);
    const j = JSON.parse(list.stdout) as { captures: Array<{ id: string }>; problems: string[] };
    expect(j.captures.map((c) => c.id)).toEqual([ids[0], ids[2]]);
    // The edited line is corrupt, and the next entry no longer points at its text: both are named.
    expect(j.problems).toEqual([
      `${dest}: ${file}:2: corrupt entry (index entry: field "status" is missing or invalid)`,
      `${dest}: ${file}:3: chain broken: entry 3 (${ids[2]}) does not point at the entry before it`,
    ]);
    const v = await physcap(['verify', ids[0]!, '--dest', dest]);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(`FAIL  index: ${file}:2: corrupt entry`);

    // A torn last line (power lost mid-append), then a new capture: its own line, chained to the torn text.
    fs.appendFileSync(file, '{"seq":4,"id":"torn');
    const next = await captureNow(p);
    const after = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    expect(after).toHaveLength(5);
    expect(JSON.parse(after[4]!)).toMatchObject({ id: next.id, prev: entryHash('{"seq":4,"id":"torn') });
    expect(after[4]!).not.toContain('torn');
  });

  test('a corrupt manifest: verify fails naming it; show and list still answer', async () => {
    const dest = path.join(work, 'corrupt-manifest');
    const p = writeProfile(work, 'corruptm', imageProfile({ image: img.file, dest, regions: [['a', 0, MiB]] }));
    const o = await captureNow(p);
    const mf = path.join(o.location, 'manifest.json');
    fs.writeFileSync(mf, fs.readFileSync(mf, 'utf8').replace('"complete"', '"complete" ,,'));
    const v = await physcap(['verify', o.location]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/FAIL\s+manifest.json does not match the digest in its index entry/);
    expect(v.stdout).toMatch(/FAIL\s+manifest.json is not valid JSON/);
    expect((await physcap(['list', '--dest', dest])).stdout).toContain(o.id);
  });
});

describe('symlinks planted in the destination', () => {
  test('where the .partial will go: refused, nothing written through the link', async () => {
    const dest = path.join(work, 'symlink-partial');
    const target = path.join(work, 'elsewhere');
    fs.mkdirSync(target);
    fs.mkdirSync(dest);
    const p = writeProfile(work, 'sym', imageProfile({ image: img.file, dest, regions: [['a', 0, MiB]] }));
    const plan = planCapture(p);
    fs.symlinkSync(target, path.join(dest, `${plan.id}.partial`));
    await expect(captureNow(p, { plan })).rejects.toMatchObject({
      code: 'EEXIST',
      message: expect.stringMatching(/refusing to write a capture: .* already exists/),
    });
    expect(fs.readdirSync(target)).toEqual([]);
    expect(indexOf(dest)).toEqual([]);
  });

  test('where the finished capture will go: the capture is kept as .failed, the link and its target untouched', async () => {
    const dest = path.join(work, 'symlink-final');
    const target = path.join(work, 'elsewhere2');
    fs.mkdirSync(target);
    fs.mkdirSync(dest);
    const p = writeProfile(work, 'sym2', imageProfile({ image: img.file, dest, regions: [['a', 0, MiB]] }));
    const plan = planCapture(p);
    fs.symlinkSync(target, path.join(dest, plan.id));
    const o = await captureNow(p, { plan });
    expect(o).toMatchObject({ status: 'failed', error: { code: 'EEXIST' } });
    expect(fs.readlinkSync(path.join(dest, plan.id))).toBe(target);
    expect(fs.readdirSync(target)).toEqual([]);
    expect(manifestOf(path.join(dest, `${plan.id}.failed`))).toMatchObject({
      status: 'failed',
      error: { message: expect.stringMatching(/^publishing failed: EEXIST/) },
    });
    // The data is all there: the region's digests are the true ones.
    const failed = path.join(dest, `${plan.id}.failed`);
    const region = manifestOf(failed).regions[0]!;
    expect(regionChunks(failed, region)).toEqual(chunkSha256s(img.range(0, MiB), region.chunkSize));
  });
});

describe('the blockdev destination (a dump partition image)', () => {
  test('captures through the pipeline; list, verify and export read them back; a full ring reclaims the oldest', async () => {
    const part = path.join(work, 'dump.img');
    fs.writeFileSync(part, Buffer.alloc(24 * MiB));
    const body = imageProfile({
      image: img.file,
      dest: '/unused',
      regions: [
        ['crashlog', 0x100000, 3 * MiB + 20 * 1024],
        ['trace', 0x600000, 4 * MiB],
      ],
    }).replace(
      /destination:\n {2}kind: dir\n {2}path: \/unused\n {2}retention: \{ count: 0, keep_free: 0 \}/,
      `destination:\n  kind: blockdev\n  device: ${part}`,
    );
    // Named through a symlink, as /dev/disk/by-partlabel/dump is.
    fs.symlinkSync(part, path.join(work, 'by-partlabel-dump'));
    const p = writeProfile(work, 'board', body.replace(`device: ${part}`, `device: ${path.join(work, 'by-partlabel-dump')}`));
    const a = await captureNow(p);
    expect(a.status).toBe('complete');
    const v = await physcap(['verify', a.id, '--dest', part]);
    expect(v.stdout).toMatch(/verified\n$/);
    expect(v.code).toBe(0);
    const out = path.join(work, 'board-raw');
    expect(await physcap(['export', a.id, '--dest', part, '--format', 'raw', '-o', out])).toMatchObject({ code: 0 });
    expect(sha256(fs.readFileSync(path.join(out, 'crashlog.raw')))).toBe(sha256(img.range(0x100000, 3 * MiB + 20 * 1024)));
    expect(sha256(fs.readFileSync(path.join(out, 'trace.raw')))).toBe(sha256(img.range(0x600000, 4 * MiB)));

    // ~7.1 MiB each in a 23 MiB ring: the fourth reclaims the first.
    const more = [await captureNow(p), await captureNow(p), await captureNow(p)];
    expect(more.every((o) => o.status === 'complete')).toBe(true);
    const list = JSON.parse((await physcap(['list', '--dest', part, '--json'])).stdout) as {
      captures: Array<{ id: string; data: string; status: string }>;
      problems: string[];
    };
    expect(list.problems).toEqual([]);
    expect(list.captures.map((c) => c.data)).toEqual(['removed', 'present', 'present', 'present']);
    const gone = await physcap(['verify', a.id, '--dest', part]);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toMatch(/reclaimed/);
    expect((await physcap(['verify', more[2]!.id, '--dest', part])).code).toBe(0);
  });

  test('a device that is not a dump area is refused with the command that initializes it; init makes it one', async () => {
    const part = path.join(work, 'notdump.img');
    fs.writeFileSync(part, Buffer.alloc(8 * MiB, 0x5a));
    const p = writeProfile(
      work,
      'notdump',
      `regions:\n  - name: a\n    start: "0x0"\n    size: 1MiB\ntriggers:\n  - kind: control\ndestination:\n  kind: blockdev\n  device: ${part}\nsource:\n  kind: image\n  image_path: ${img.file}\n`,
    );
    await expect(captureNow(p)).rejects.toThrow(/not a physcap dump area.*physcap blockdev init/);
    expect(fs.readFileSync(part).every((b) => b === 0x5a)).toBe(true); // untouched
    initBlockdev(part);
    expect((await captureNow(p)).status).toBe('complete');
  });
});
