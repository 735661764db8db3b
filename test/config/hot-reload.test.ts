/**
 * Hot reload on a real directory: edit, break, fix, delete, add, mask,
 * bursts, editors' temporary files and SIGHUP, checking what is active
 * after each step.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { ProfileChange, ProfileSet } from '../../agent/src/config/profile-set';
import { memoryLogger } from '../../agent/src/core/logger';
import { removeDir, tempDir } from '../support/tmp';

const minimal = fs.readFileSync(path.join(__dirname, 'fixtures', 'good', 'minimal.yaml'), 'utf8');
const profile = (name: string, priority = 50) => `${minimal.replace('name: minimal', `name: ${name}`)}priority: ${priority}\n`;

describe('hot reload of a profile directory', () => {
  let root: string;
  let etc: string;
  let run: string;
  let set: ProfileSet;
  let changes: ProfileChange[];
  let waiters: Array<(c: ProfileChange) => void>;
  const log = memoryLogger();

  /** The next reload, within 5 s. */
  const nextChange = () =>
    new Promise<ProfileChange>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reload within 5 s')), 5000);
      waiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  /** Atomic save, as editors and config managers do it: temp file, then rename. */
  const save = (dir: string, name: string, text: string) => {
    const tmp = path.join(dir, `.${name}.swp`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, path.join(dir, name));
  };
  const names = () => [...set.active().keys()].sort();

  beforeAll(async () => {
    root = tempDir('reload');
    etc = path.join(root, 'etc');
    run = path.join(root, 'run');
    fs.mkdirSync(etc);
    fs.mkdirSync(run);
    save(etc, 'a.yaml', profile('alpha'));
    save(etc, 'b.yaml', profile('beta'));
    changes = [];
    waiters = [];
    set = new ProfileSet({
      dirs: [etc, run],
      log,
      debounceMs: 150,
      onChange: (c) => {
        changes.push(c);
        waiters.splice(0).forEach((w) => w(c));
      },
    });
    const first = await set.start();
    expect(first.added.map((p) => p.name).sort()).toEqual(['alpha', 'beta']);
  });

  afterAll(async () => {
    await set.stop();
    removeDir(root);
  });

  test('start-up is a reload from empty', () => {
    expect(names()).toEqual(['alpha', 'beta']);
  });

  test('an edit changes that profile only; the others keep their very objects', async () => {
    const beta = set.active().get('beta');
    const change = nextChange();
    save(etc, 'a.yaml', profile('alpha', 70));
    const c = await change;
    expect(c.changed.map((x) => x.after.name)).toEqual(['alpha']);
    expect(c).toMatchObject({ added: [], removed: [], unchanged: 1 });
    expect(set.active().get('alpha')!.priority).toBe(70);
    expect(set.active().get('beta')).toBe(beta);
  });

  test('a broken edit keeps the last good version active and logs why, with file:line:col', async () => {
    const change = nextChange();
    save(etc, 'a.yaml', profile('alpha', 80).replace('  - name: crashlog', '  - name: crashlog\n\tbad: tab'));
    const c = await change;
    expect(c.kept.map((p) => p.name)).toEqual(['alpha']);
    expect(set.active().get('alpha')!.priority).toBe(70);
    const warn = log.records.filter((r) => r.msg === 'profile is invalid; its last good version stays active').pop();
    expect(warn).toMatchObject({ file: path.join(etc, 'a.yaml'), profile: 'alpha' });
    expect((warn!.problems as string[])[0]).toMatch(/a\.yaml:6:1 {2}\/ {2}YAML: a tab is used for indentation/);
  });

  test('fixing it activates the fixed version', async () => {
    const change = nextChange();
    save(etc, 'a.yaml', profile('alpha', 90));
    const c = await change;
    expect(c.changed.map((x) => x.after.name)).toEqual(['alpha']);
    expect(set.active().get('alpha')!.priority).toBe(90);
  });

  test('deleting a file removes its profile', async () => {
    const change = nextChange();
    fs.rmSync(path.join(etc, 'b.yaml'));
    const c = await change;
    expect(c.removed.map((p) => p.name)).toEqual(['beta']);
    expect(names()).toEqual(['alpha']);
  });

  test("a burst of writes is one reload; editors' temporary files are none", async () => {
    const before = changes.length;
    const change = nextChange();
    for (let i = 0; i < 5; i++) save(etc, 'c.yaml', profile('gamma', 10 + i));
    const c = await change;
    expect(c.added.map((p) => p.name)).toEqual(['gamma']);
    expect(set.active().get('gamma')!.priority).toBe(14);
    fs.writeFileSync(path.join(etc, 'c.yaml~'), 'backup');
    fs.writeFileSync(path.join(etc, '.c.yaml.swp'), 'swap');
    await new Promise((r) => setTimeout(r, 600));
    expect(changes.length).toBe(before + 1);
  });

  test('a link to /dev/null in a later directory masks a profile', async () => {
    const change = nextChange();
    fs.symlinkSync('/dev/null', path.join(run, 'c.yaml'));
    const c = await change;
    expect(c.removed.map((p) => p.name)).toEqual(['gamma']);
    expect(names()).toEqual(['alpha']);
  });
});

test('SIGHUP reloads too (a real process, a real signal)', async () => {
  const dir = tempDir('sighup');
  fs.writeFileSync(path.join(dir, 'a.yaml'), profile('alpha'));
  const child = spawn(process.execPath, [path.join(__dirname, '..', '..', 'dist', 'test', 'config', 'sighup-child.js'), dir]);
  const lines: string[] = [];
  const waitFor = (pred: (l: string) => boolean) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out; output so far: ${lines.join(' | ')}`)), 10_000);
      const check = () => {
        const hit = lines.find(pred);
        if (hit) {
          clearTimeout(timer);
          child.stdout.off('data', onData);
          resolve(hit);
        }
      };
      const onData = (d: Buffer) => {
        lines.push(...d.toString().trim().split('\n'));
        check();
      };
      child.stdout.on('data', onData);
      check();
    });
  try {
    await waitFor((l) => l === 'ready');
    const reloads = lines.filter((l) => l.startsWith('reloaded')).length;
    child.kill('SIGHUP');
    await waitFor((l) => l.startsWith('reloaded') && lines.filter((x) => x.startsWith('reloaded')).length > reloads);
    expect(lines.filter((l) => l.startsWith('reloaded')).pop()).toBe('reloaded {"active":["alpha"],"unchanged":1}');
    expect(child.exitCode).toBeNull(); // SIGHUP reloaded; it did not end the process
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    removeDir(dir);
  }
});
