/**
 * Adversarial: tricks with the places physcap writes to and takes
 * instructions from — destinations and their index, and the trigger
 * spool: symlinks, FIFOs, hard links, other owners, open modes and
 * system directories.  Each is refused with a sentence saying why, and
 * nothing that was there before is touched, lost or followed.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { systemClock } from '../../agent/src/core/clock';
import { memoryLogger } from '../../agent/src/core/logger';
import { trustedDirProblem } from '../../agent/src/core/trusted-path';
import { DirStore } from '../../agent/src/destinations/dir/store';
import type { TriggerEvent } from '../../agent/src/triggers/event';
import { fileTrigger } from '../../agent/src/triggers/file';
import type { TriggerContext } from '../../agent/src/triggers/kind';
import { captureNow, imageProfile, indexOf, makeImage, MiB, writeProfile } from '../support/capture';
import { waitUntil } from '../support/wait';
import { cli, NOBODY, scratch } from './kit';

let s: ReturnType<typeof scratch>;
let img: ReturnType<typeof makeImage>;
beforeAll(() => {
  s = scratch('dirs');
  img = makeImage(s.dir, 2 * MiB);
});
afterAll(() => s.done());

let n = 0;
const fresh = (name: string) => path.join(s.dir, `${name}-${++n}`);
const profileFor = (dest: string) => writeProfile(s.dir, `dirs-${++n}`, imageProfile({ image: img.file, dest, regions: [['a', 0, 64 * 1024]], format: 'raw' }));

/** A capture into `dest` must be refused before anything is written, with `why`. */
async function refused(dest: string, why: RegExp): Promise<void> {
  const p = profileFor(dest);
  await expect(captureNow(p)).rejects.toMatchObject({ code: 'EACCES', message: expect.stringMatching(why) });
}

describe('[destinations] where captures go', () => {
  test('[destinations] a destination that is a symlink: refused naming the link; its target untouched', async () => {
    const target = fresh('target');
    fs.mkdirSync(target);
    const link = fresh('link');
    fs.symlinkSync(target, link);
    await refused(link, /is a symbolic link \(to .*target-\d+\); name the destination by its real path/);
    expect(fs.readdirSync(target)).toEqual([]);
  });

  test.each([
    ['world-writable (0777)', 0o777, /is writable by every user \(mode 0777\)/],
    ['world-writable with the sticky bit (1777)', 0o1777, /is writable by every user \(mode 1777\)/],
    ['writable by another group (0770, group nobody)', 0o770, /is writable by group 65534 \(mode 0770\)/],
  ])('[destinations] a destination %s: refused before a byte is written', async (_what, mode, why) => {
    const dest = fresh('open');
    fs.mkdirSync(dest);
    fs.chmodSync(dest, mode);
    if (mode === 0o770) fs.chownSync(dest, 0, NOBODY);
    await refused(dest, why);
    expect(fs.readdirSync(dest)).toEqual([]);
  });

  test('[destinations] a destination owned by another user: refused', async () => {
    const dest = fresh('theirs');
    fs.mkdirSync(dest, { mode: 0o755 });
    fs.chownSync(dest, NOBODY, NOBODY);
    await refused(dest, /is owned by uid 65534, neither root nor the user physcap runs as/);
  });

  test('[destinations] a destination below a world-writable directory without the sticky bit: refused (it could be swapped)', async () => {
    const open = fresh('open-parent');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    await refused(path.join(open, 'captures'), /open-parent-\d+ is writable by every user \(mode 0777\), and it is above it without the sticky bit/);
    expect(fs.readdirSync(open)).toEqual([]);
  });

  test('[destinations] a destination below /tmp (sticky) and owned by root: accepted', async () => {
    const dest = fresh('fine');
    const out = await captureNow(profileFor(dest));
    expect(out.status).toBe('complete');
  });

  test('[destinations] a destination that is a regular file: refused, the file untouched', async () => {
    const f = fresh('file');
    fs.writeFileSync(f, 'mine');
    await refused(f, /is not a directory/);
    expect(fs.readFileSync(f, 'utf8')).toBe('mine');
  });

  test.each(['/etc', '/', '/proc/self', '/usr/local', '/tmp', '/var/lib', '/dev/shm'])(
    '[destinations] %s as a destination: refused as a system directory',
    async (dest) => {
      expect(trustedDirProblem(dest, 'destination')).toMatch(/a system directory; a destination gets a directory of its own/);
      expect(() => new DirStore(dest, undefined, true)).toThrow(/EACCES: untrusted destination: .* system directory/);
    },
  );
});

describe('[destinations] the index', () => {
  async function withEarlier(): Promise<{ dest: string; p: ReturnType<typeof profileFor>; first: string }> {
    const dest = fresh('idx');
    const p = profileFor(dest);
    const first = await captureNow(p);
    expect(first.status).toBe('complete');
    return { dest, p, first: first.id };
  }

  test('[destinations] index.jsonl replaced by a symlink: the next capture fails, nothing written through the link, the link left', async () => {
    const { dest, p } = await withEarlier();
    const elsewhere = fresh('elsewhere');
    fs.writeFileSync(elsewhere, 'not yours\n');
    fs.renameSync(path.join(dest, 'index.jsonl'), path.join(dest, 'saved.jsonl'));
    fs.symlinkSync(elsewhere, path.join(dest, 'index.jsonl'));
    const out = await captureNow(p).catch((e: Error) => ({ status: 'rejected', error: e }));
    expect(out.status).not.toBe('complete');
    expect(fs.readFileSync(elsewhere, 'utf8')).toBe('not yours\n');
    expect(fs.lstatSync(path.join(dest, 'index.jsonl')).isSymbolicLink()).toBe(true);
  });

  test('[destinations] index.jsonl replaced by a FIFO: no hang; the capture fails saying it is not a regular file', async () => {
    const { dest, p } = await withEarlier();
    fs.rmSync(path.join(dest, 'index.jsonl'));
    execFileSync('mkfifo', [path.join(dest, 'index.jsonl')]);
    const out = await captureNow(p).catch((e: Error) => ({ status: 'rejected', error: e }));
    expect(out.status).not.toBe('complete');
    expect(String((out as { error?: { message?: string } }).error?.message)).toMatch(/index\.jsonl is not a regular file/);
  });

  test('[destinations] index.jsonl owned by another user: not appended to (they could read and rewrite it); the capture is failed, not complete', async () => {
    const { dest, p } = await withEarlier();
    const before = fs.readFileSync(path.join(dest, 'index.jsonl'));
    fs.chownSync(path.join(dest, 'index.jsonl'), NOBODY, NOBODY);
    const out = await captureNow(p);
    expect(out.status).toBe('failed');
    expect(out.error!.message).toMatch(/refusing to append to the index: .* is owned by uid 65534/);
    expect(fs.readFileSync(path.join(dest, 'index.jsonl'))).toEqual(before);
  });

  test('[destinations] index.jsonl hard-linked from elsewhere: not appended to; the other name unchanged', async () => {
    const { dest, p } = await withEarlier();
    const other = path.join(dest, 'copy.jsonl');
    fs.linkSync(path.join(dest, 'index.jsonl'), other);
    const before = fs.readFileSync(other);
    const out = await captureNow(p);
    expect(out.status).toBe('failed');
    expect(out.error!.message).toMatch(/has 2 names \(a hard link to it exists elsewhere\)/);
    expect(fs.readFileSync(other)).toEqual(before);
  });

  test('[destinations] index.jsonl replaced by a directory: the capture fails, the earlier capture directory intact', async () => {
    const { dest, p, first } = await withEarlier();
    fs.rmSync(path.join(dest, 'index.jsonl'));
    fs.mkdirSync(path.join(dest, 'index.jsonl'));
    const out = await captureNow(p).catch((e: Error) => ({ status: 'rejected', error: e }));
    expect(out.status).not.toBe('complete');
    expect(fs.existsSync(path.join(dest, first, 'manifest.json'))).toBe(true);
  });

  test('[destinations] index.jsonl world-writable: not appended to', async () => {
    const { dest, p } = await withEarlier();
    fs.chmodSync(path.join(dest, 'index.jsonl'), 0o666);
    const out = await captureNow(p);
    expect(out.status).toBe('failed');
    expect(out.error!.message).toMatch(/is writable by every user \(mode 0666\)/);
  });

  test('[destinations] list of a destination whose index is a FIFO: exit 1 at once, saying why', async () => {
    const { dest } = await withEarlier();
    fs.rmSync(path.join(dest, 'index.jsonl'));
    execFileSync('mkfifo', [path.join(dest, 'index.jsonl')]);
    const r = await cli(['list', '--dest', dest]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/index\.jsonl is not a regular file/);
  });
});

function spoolContext(spoolDir: string): TriggerContext & { events: TriggerEvent[]; log: ReturnType<typeof memoryLogger> } {
  const events: TriggerEvent[] = [];
  return { log: memoryLogger(), clock: systemClock, emit: (e) => events.push(e), spoolDir, agentUid: 0, events };
}

describe('[spool] the trigger spool', () => {
  let spool: string;
  let ctx: ReturnType<typeof spoolContext>;
  let stop: (() => Promise<void>) | undefined;
  beforeEach(async () => {
    spool = path.join(fresh('spool'), 'triggers');
    fs.mkdirSync(path.dirname(spool));
    ctx = spoolContext(spool);
    const t = fileTrigger('board', { name: 'board' }, ctx);
    await t.start();
    stop = () => t.stop();
  });
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });
  const refusedWith = async (why: RegExp) => {
    expect(await waitUntil(() => ctx.log.records.length > 0, 5000)).toBe(true);
    expect(ctx.log.records[0]).toMatchObject({ msg: 'trigger file refused', why: expect.stringMatching(why) });
    expect(ctx.events).toEqual([]);
  };

  test('[spool] a FIFO with the trigger name: refused at once, the agent not blocked, left in place', async () => {
    execFileSync('mkfifo', [path.join(spool, 'board')]);
    await refusedWith(/not a regular file/);
    expect(fs.existsSync(path.join(spool, 'board'))).toBe(true);
  });

  test('[spool] a symlink with the trigger name: refused (never followed), the link and its target left', async () => {
    const target = fresh('precious');
    fs.writeFileSync(target, 'keep me');
    fs.symlinkSync(target, path.join(spool, 'board'));
    await refusedWith(/cannot open it: ELOOP/);
    expect(fs.readFileSync(target, 'utf8')).toBe('keep me');
  });

  test("[spool] a hard link to another file with the trigger name: refused, not deleted, the other name's file intact", async () => {
    const other = path.join(path.dirname(spool), 'other-file');
    fs.writeFileSync(other, 'reason: linked\n');
    fs.linkSync(other, path.join(spool, 'board'));
    await refusedWith(/has 2 names \(a hard link to a file elsewhere\): not consumed/);
    expect(fs.existsSync(path.join(spool, 'board'))).toBe(true);
    expect(fs.readFileSync(other, 'utf8')).toBe('reason: linked\n');
  });

  test('[spool] a trigger file owned by another user: refused, not consumed', async () => {
    const tmp = path.join(spool, '.board.tmp');
    fs.writeFileSync(tmp, 'reason: from nobody\n');
    fs.chownSync(tmp, NOBODY, NOBODY);
    fs.renameSync(tmp, path.join(spool, 'board'));
    await refusedWith(/owned by neither root nor the agent/);
    expect(fs.existsSync(path.join(spool, 'board'))).toBe(true);
  });

  test('[spool] the spool made world-writable while running: files refused until it is fixed', async () => {
    fs.chmodSync(spool, 0o777);
    fs.writeFileSync(path.join(spool, 'board'), 'reason: anyone\n');
    await refusedWith(/triggers is writable by every user \(mode 0777\)/);
  });

  test('[spool] a directory with the trigger name: refused, left in place', async () => {
    fs.mkdirSync(path.join(spool, 'board'));
    await refusedWith(/not a regular file/);
    expect(fs.statSync(path.join(spool, 'board')).isDirectory()).toBe(true);
  });

  test('[spool] a 10 MiB trigger file: fires once, its reason cut to 1000 characters, consumed', async () => {
    const tmp = path.join(spool, '.board.tmp');
    fs.writeFileSync(tmp, `reason: ${'r'.repeat(10 * MiB)}\n`);
    fs.renameSync(tmp, path.join(spool, 'board'));
    expect(await waitUntil(() => ctx.events.length > 0)).toBe(true);
    expect(ctx.events[0]!.reason!.length).toBeLessThanOrEqual(1000);
    expect(await waitUntil(() => !fs.existsSync(path.join(spool, 'board')))).toBe(true);
  });

  test('[spool] a trigger file holding a YAML alias bomb: fires with a plain reason, no blow-up', async () => {
    const bomb = `a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n`;
    const tmp = path.join(spool, '.board.tmp');
    fs.writeFileSync(tmp, bomb);
    fs.renameSync(tmp, path.join(spool, 'board'));
    expect(await waitUntil(() => ctx.events.length > 0)).toBe(true);
    expect(ctx.events).toHaveLength(1);
  });
});

describe('[spool] spools the trigger refuses to start on', () => {
  test.each([
    ['/etc', /\/etc is a system directory; a spool gets a directory of its own/],
    ['/tmp', /\/tmp is a system directory/],
    ['/', /\/ is a system directory/],
  ])('[spool] %s as the spool: the trigger does not start; nothing there is read or removed', async (dir, why) => {
    const ctx = spoolContext(dir);
    const t = fileTrigger('passwd', { name: 'passwd' }, ctx);
    await expect(t.start()).rejects.toThrow(why);
  });

  test('[spool] a spool that is a symlink: the trigger does not start', async () => {
    const real = fresh('real-spool');
    fs.mkdirSync(real, { mode: 0o700 });
    const link = fresh('spool-link');
    fs.symlinkSync(real, link);
    const t = fileTrigger('board', { name: 'board' }, spoolContext(link));
    await expect(t.start()).rejects.toThrow(/is a symbolic link \(to .*real-spool-\d+\); name the spool by its real path/);
  });

  test('[spool] a spool owned by another user: the trigger does not start', async () => {
    const theirs = fresh('their-spool');
    fs.mkdirSync(theirs, { mode: 0o700 });
    fs.chownSync(theirs, NOBODY, NOBODY);
    const t = fileTrigger('board', { name: 'board' }, spoolContext(theirs));
    await expect(t.start()).rejects.toThrow(/owned by uid 65534/);
  });
});

describe('[destinations] planted things inside a capture', () => {
  test.each([
    ['an extra file', (d: string) => fs.writeFileSync(path.join(d, 'notes.txt'), 'planted'), /notes\.txt is not part of the capture/],
    ['a symlink', (d: string) => fs.symlinkSync('/etc/passwd', path.join(d, 'passwd')), /passwd is not part of the capture/],
    ['a FIFO', (d: string) => execFileSync('mkfifo', [path.join(d, 'pipe')]), /pipe is not part of the capture/],
    ['a subdirectory', (d: string) => fs.mkdirSync(path.join(d, 'more')), /more is not part of the capture/],
    [
      'a FIFO in place of the data file',
      (d: string) => {
        fs.rmSync(path.join(d, 'a.raw'));
        execFileSync('mkfifo', [path.join(d, 'a.raw')]);
      },
      /a\.raw cannot be read \(.*is not a regular file\)/,
    ],
  ])('[destinations] %s planted in a published capture: verify fails naming it, without hanging', async (_what, plant, why) => {
    const dest = fresh('planted');
    const out = await captureNow(profileFor(dest));
    plant(path.join(dest, out.id));
    const r = await cli(['verify', out.id, '--dest', dest]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(why);
    expect(indexOf(dest)).toHaveLength(1);
  });
});
