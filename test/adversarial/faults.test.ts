/**
 * Adversarial: faults while a capture is written and while it is
 * published — the index refusing the append (EPERM, EROFS), a full disk
 * at the publishing step, kill -9 and SIGTERM at several points, a crash
 * between the commit and the rename.  What must hold every time: a
 * capture the index calls complete verifies; anything else is recorded
 * failed (now, or by the next start's recovery) and says why; earlier
 * captures are untouched.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { DirStore } from '../../agent/src/destinations/dir/store';
import type { Manifest } from '../../agent/src/manifest/types';
import { physcapCli } from '../../harness/agent';
import { captureNow, imageProfile, indexOf, makeImage, MiB, verifies, writeProfile } from '../support/capture';
import { cli, scratch } from './kit';

let s: ReturnType<typeof scratch>;
let img: ReturnType<typeof makeImage>;
beforeAll(() => {
  s = scratch('faults');
  img = makeImage(s.dir, 48 * MiB);
});
afterAll(() => s.done());

let n = 0;
const fresh = (name: string) => path.join(s.dir, `${name}-${++n}`);
const profileFor = (dest: string, size = MiB) =>
  writeProfile(s.dir, `faults-${++n}`, imageProfile({ image: img.file, dest, regions: [['a', 0, size]], chunk: '256KiB' }));
const entries = (dest: string) =>
  fs
    .readdirSync(dest)
    .filter((d) => !['index.jsonl', 'index.head'].includes(d))
    .sort();

/** No manifest anywhere in the destination says complete unless its capture verifies. */
async function noFalseComplete(dest: string): Promise<void> {
  for (const d of entries(dest)) {
    const m = path.join(dest, d, 'manifest.json');
    if (!fs.existsSync(m)) continue;
    const manifest = JSON.parse(fs.readFileSync(m, 'utf8')) as Manifest;
    if (manifest.status !== 'complete') continue;
    expect({ dir: d, verifies: await verifies(dest, manifest.id) }).toEqual({ dir: d, verifies: true });
  }
}

function recover(dest: string): void {
  const store = new DirStore(dest, undefined, true);
  try {
    store.recover({ keep: true, reason: 'interrupted: found unfinished at start-up' });
  } finally {
    store.close();
  }
}

describe('[faults] the publishing step', () => {
  test('[faults] the index refuses the append (EPERM, immutable): failed, nothing says complete; recovery records it; the earlier capture verifies', async () => {
    const dest = fresh('eperm');
    const p = profileFor(dest);
    const earlier = await captureNow(p);
    const index = path.join(dest, 'index.jsonl');
    execFileSync('chattr', ['+i', index]);
    let out;
    try {
      out = await captureNow(p);
    } finally {
      execFileSync('chattr', ['-i', index]);
    }
    expect(out).toMatchObject({ status: 'failed', error: { code: 'EPERM' } });
    expect(out.entry).toBeUndefined(); // nothing could be recorded yet...
    expect(entries(dest)).toEqual([earlier.id, `${out.id}.partial`].sort());
    expect(fs.existsSync(path.join(dest, `${out.id}.partial`, 'manifest.json'))).toBe(false); // ...and nothing left claims it
    await noFalseComplete(dest);
    recover(dest); // the next start
    expect(indexOf(dest).map((e) => [e.id, e.status])).toEqual([
      [earlier.id, 'complete'],
      [out.id, 'failed'],
    ]);
    expect(await verifies(dest, earlier.id)).toBe(true);
    expect(await verifies(dest, out.id)).toBe(false);
  });

  test('[faults] the file system under the index turns read-only mid-capture (EROFS): failed, never complete, recorded once it is writable again', async () => {
    const dest = fresh('erofs');
    const p = profileFor(dest, 8 * MiB);
    const earlier = await captureNow(p);
    let mounted = false;
    let out;
    try {
      out = await captureNow(p, {
        onProgress: () => {
          if (mounted) return;
          mounted = true;
          execFileSync('mount', ['--bind', dest, dest]);
          execFileSync('mount', ['-o', 'remount,bind,ro', dest]);
        },
      });
    } finally {
      if (mounted) execFileSync('umount', [dest]);
    }
    expect(mounted).toBe(true);
    expect(out).toMatchObject({ status: 'failed', error: { code: 'EROFS' } });
    await noFalseComplete(dest);
    recover(dest);
    expect(indexOf(dest).map((e) => e.status)).toEqual(['complete', 'failed']);
    expect(await verifies(dest, earlier.id)).toBe(true);
  });

  describe('a full disk at the publishing step', () => {
    let mnt: string;
    beforeAll(() => {
      mnt = fresh('enospc');
      fs.mkdirSync(mnt);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', mnt]);
    });
    afterAll(() => {
      execFileSync('umount', [mnt]);
    });

    test('[faults] the disk fills up while the data is written: the space reserved for the manifest publishes it; complete, and it verifies', async () => {
      const dest = path.join(mnt, 'captures');
      const p = profileFor(dest, 4 * MiB);
      const earlier = await captureNow(p);
      let filled = false;
      let freeAfterFill = -1;
      const out = await captureNow(p, {
        onProgress: () => {
          if (filled) return;
          filled = true;
          // Everything that is left, taken by someone else.
          try {
            execFileSync('fallocate', ['-l', '64M', path.join(mnt, 'filler')], { stdio: 'ignore' });
          } catch {
            /* fallocate fails when it cannot have it all: take what there is */
            execFileSync('sh', ['-c', `cat /dev/zero > ${path.join(mnt, 'filler')} 2>/dev/null || true`]);
          }
          freeAfterFill = Number(fs.statfsSync(mnt).bavail);
        },
      });
      expect(filled).toBe(true);
      expect(freeAfterFill).toBe(0); // not a page left for anyone when publishing began
      expect(out.status).toBe('complete');
      expect(await verifies(dest, out.id)).toBe(true);
      expect(await verifies(dest, earlier.id)).toBe(true);
      fs.rmSync(path.join(mnt, 'filler'));
    });

    test('[faults] a full disk before the capture: refused before a byte is written, saying the figures', async () => {
      const dest = path.join(mnt, 'captures');
      execFileSync('sh', ['-c', `cat /dev/zero > ${path.join(mnt, 'filler')} 2>/dev/null || true`]);
      try {
        await expect(captureNow(profileFor(dest, 4 * MiB))).rejects.toMatchObject({
          code: 'ENOSPC',
          message: expect.stringMatching(/not enough space in .*: the capture needs/),
        });
        expect(entries(dest).filter((d) => d.endsWith('.partial'))).toEqual([]);
      } finally {
        fs.rmSync(path.join(mnt, 'filler'));
      }
    });
  });

  test('[faults] a crash between the commit (the index line) and the rename: the capture reads and verifies where it is; the next start finishes the rename without a second entry', async () => {
    const dest = fresh('between');
    const p = profileFor(dest);
    const out = await captureNow(p);
    // The state a crash right after the append leaves: the entry names <id>, the directory is still .partial, its intent still there.
    fs.renameSync(path.join(dest, out.id), path.join(dest, `${out.id}.partial`));
    fs.writeFileSync(path.join(dest, `${out.id}.partial`, '.intent.json'), '{}\n');
    expect(await verifies(dest, out.id)).toBe(true);
    recover(dest);
    expect(entries(dest)).toEqual([out.id]);
    expect(indexOf(dest)).toHaveLength(1);
    expect(await verifies(dest, out.id)).toBe(true);
  });

  test('[faults] a published capture whose index line is gone: the next start keeps it but records it failed (not vouched for), and verify fails', async () => {
    const dest = fresh('unindexed');
    const p = profileFor(dest);
    const a = await captureNow(p);
    const b = await captureNow(p);
    const lines = fs.readFileSync(path.join(dest, 'index.jsonl'), 'utf8').split('\n').filter(Boolean);
    fs.writeFileSync(path.join(dest, 'index.jsonl'), `${lines[0]}\n`);
    recover(dest);
    const idx = indexOf(dest);
    expect(idx).toHaveLength(2);
    expect(idx[1]).toMatchObject({ id: b.id, status: 'failed', recovered: expect.stringMatching(/found published with no index entry/) });
    expect(fs.existsSync(path.join(dest, b.id, 'core.elf'))).toBe(true);
    expect(await verifies(dest, b.id)).toBe(false);
    expect(await verifies(dest, a.id)).toBe(true);
  });
});

describe('[faults] killed at any point', () => {
  /** Watches a destination closely (1 ms) until `when` holds or the child ends. */
  async function until(child: { exited: boolean }, when: () => boolean): Promise<boolean> {
    const deadline = Date.now() + 20_000;
    while (!child.exited && Date.now() < deadline) {
      if (when()) return true;
      await new Promise((r) => setTimeout(r, 1));
    }
    return when();
  }
  const partialHas = (dest: string, file: string) => () => {
    try {
      const p = fs.readdirSync(dest).find((d) => d.endsWith('.partial'));
      return !!p && fs.existsSync(path.join(dest, p, file));
    } catch {
      return false;
    }
  };
  const indexLines = (dest: string) => () => indexOf(dest).length;
  /** Kill points: before it began, as the .partial appears, once data is being written, mid-data, as the manifest is written, as the index line lands, after it ended. */
  const POINTS: Array<[string, (dest: string) => () => boolean]> = [
    ['before it begins', () => () => true],
    ['as its .partial appears', (d) => partialHas(d, '.intent.json')],
    ['once core.elf exists', (d) => partialHas(d, 'core.elf')],
    ['as its SHA256SUMS is written (publishing)', (d) => partialHas(d, 'SHA256SUMS')],
    ['as its manifest.json is written (publishing)', (d) => partialHas(d, 'manifest.json')],
    ['as its index line lands', (d) => () => indexLines(d)() >= 2],
  ];

  test.each(POINTS)(
    '[faults] physcap capture killed with SIGKILL %s: after the next start, complete means verified, the rest is recorded failed, earlier captures verify',
    async (_what, point) => {
      const dest = fresh('kill');
      const p = profileFor(dest, 40 * MiB);
      const earlier = await captureNow(writeProfile(s.dir, `kill-small-${++n}`, imageProfile({ image: img.file, dest, regions: [['a', 0, MiB]] })));
      const child = spawn(process.execPath, [physcapCli, 'capture', p.file, '--json'], { stdio: 'ignore' });
      const state = { exited: false };
      const exited = new Promise((r) => child.once('exit', () => r((state.exited = true))));
      await until(state, point(dest));
      child.kill('SIGKILL');
      await exited;
      recover(dest);
      expect(entries(dest).filter((d) => d.endsWith('.partial'))).toEqual([]);
      await noFalseComplete(dest);
      for (const e of indexOf(dest)) {
        if (e.status === 'complete') expect(await verifies(dest, String(e.id))).toBe(true);
        else expect(e).toMatchObject({ status: 'failed', recovered: expect.any(String) });
      }
      expect(await verifies(dest, earlier.id)).toBe(true);
    },
    60_000,
  );

  test.each(POINTS.slice(1, 4))(
    '[faults] physcap capture stopped with SIGTERM %s: exit 1 unless it had finished; failed says why; nothing false',
    async (_what, point) => {
      const dest = fresh('term');
      const p = profileFor(dest, 40 * MiB);
      const child = spawn(process.execPath, [physcapCli, 'capture', p.file, '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
      const state = { exited: false };
      let stdout = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((r) => child.once('exit', (c) => ((state.exited = true), r(c))));
      await until(state, point(dest));
      child.kill('SIGTERM');
      const code = await exited;
      if (fs.existsSync(dest)) await noFalseComplete(dest);
      expect(stdout).not.toBe('');
      const out = JSON.parse(stdout) as { status: string; error?: { code?: string } };
      expect(code).toBe(out.status === 'complete' ? 0 : 1);
      if (out.status === 'failed') expect(out.error?.code).toBe('ABORT_ERR');
      recover(dest);
      for (const e of indexOf(dest)) if (e.status === 'complete') expect(await verifies(dest, String(e.id))).toBe(true);
    },
    60_000,
  );

  test('[faults] the CLI reading a destination while captures are recovered: list answers and exits 0', async () => {
    const dest = fresh('readers');
    await captureNow(profileFor(dest));
    const r = await cli(['list', '--dest', dest]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/complete/);
  });
});
