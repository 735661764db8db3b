/**
 * The directory-relative calls a capture directory is built with: real
 * directories, files and planted symlinks on the project's filesystem,
 * and another process (flock(1)) to see the locks.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import {
  capture,
  closeDestination,
  closeFd,
  fsyncFd,
  lockFd,
  mkdirAt,
  openDestinationAt,
  openDir,
  openDirAt,
  renameAt,
  unlockFd,
  writeFileAt,
} from '../../agent/src/native/binding';
import { thrown } from '../support/errors';
import { sha256 } from '../support/hash';
import { removeDir, tempDir } from '../support/tmp';

let work: string;
let dirFd: number;
const fdsToClose: number[] = [];

beforeAll(() => {
  work = tempDir('dirops');
});
beforeEach(() => {
  dirFd = openDir(work);
  fdsToClose.push(dirFd);
});
afterEach(() => {
  for (const fd of fdsToClose.splice(0)) closeFd(fd);
});
afterAll(() => {
  removeDir(work);
});

/** A fresh directory under work, for one test's names. */
function scratch(name: string): { dir: string; fd: number } {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  const fd = openDir(dir, { nofollow: true });
  fdsToClose.push(fd);
  return { dir, fd };
}

/** Another process's view of a lock: flock -n exits 1 when it is held. */
function othersCanLock(file: string, shared = false): boolean {
  const r = spawnSync('flock', [shared ? '-sn' : '-n', file, 'true']);
  if (r.error) throw r.error;
  return r.status === 0;
}

const isDirFd = (fd: number) => fs.fstatSync(fd).isDirectory();

describe('openDir / openDirAt', () => {
  test('opens a directory: an fd the *at calls and fstat see as one', () => {
    const { dir, fd } = scratch('plain');
    expect(isDirFd(fd)).toBe(true);
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    expect(thrown(() => openDir(path.join(dir, 'f')))).toMatchObject({ code: 'ENOTDIR', syscall: 'open' });
  });

  test('a symlink to a directory: refused with nofollow, followed without', () => {
    const { dir } = scratch('linked');
    const link = path.join(work, 'linked-link');
    fs.symlinkSync(dir, link);
    const err = thrown(() => openDir(link, { nofollow: true }));
    expect(['ELOOP', 'ENOTDIR']).toContain(err.code);
    expect(err).toMatchObject({ syscall: 'open', path: link });
    expect(err.message).toContain(link);
    const fd = openDir(link);
    fdsToClose.push(fd);
    expect(fs.fstatSync(fd).ino).toBe(fs.statSync(dir).ino);
  });

  test('openDirAt opens a subdirectory, never a symlink to one', () => {
    const { dir, fd } = scratch('sub');
    fs.mkdirSync(path.join(dir, 'real'));
    fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'fake'));
    const sub = openDirAt(fd, 'real', 'sub/real');
    fdsToClose.push(sub);
    expect(fs.fstatSync(sub).ino).toBe(fs.statSync(path.join(dir, 'real')).ino);
    const err = thrown(() => openDirAt(fd, 'fake', 'shown/as/fake'));
    expect(['ELOOP', 'ENOTDIR']).toContain(err.code);
    expect(err).toMatchObject({ syscall: 'openat', path: 'shown/as/fake' });
    expect(err.message).toMatch(/openat 'shown\/as\/fake' \(opening a subdirectory\)/);
  });

  test('names are single components: slashes and dot-dot are refused before any call', () => {
    for (const name of ['a/b', '..', '.', '', 'x\0y']) {
      expect(thrown(() => openDirAt(dirFd, name, name))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    }
  });
});

describe('mkdirAt', () => {
  test('makes a directory with the mode asked (less the umask)', () => {
    const { dir, fd } = scratch('mk');
    mkdirAt(fd, 'new', 0o700, 'mk/new');
    const st = fs.statSync(path.join(dir, 'new'));
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700 & ~process.umask());
  });

  test('EEXIST on an existing directory', () => {
    const { dir, fd } = scratch('mk-exists');
    fs.mkdirSync(path.join(dir, 'there'));
    fs.writeFileSync(path.join(dir, 'there', 'keep'), 'keep');
    const err = thrown(() => mkdirAt(fd, 'there', 0o755, 'mk-exists/there'));
    expect(err).toMatchObject({ code: 'EEXIST', errno: -17, syscall: 'mkdirat', path: 'mk-exists/there' });
    expect(err.message).toMatch(/^EEXIST: .*mkdirat 'mk-exists\/there' \(making a directory\)$/);
    expect(fs.readFileSync(path.join(dir, 'there', 'keep'), 'utf8')).toBe('keep');
  });

  test('EEXIST on a planted symlink, dangling or not; its target untouched', () => {
    const { dir, fd } = scratch('mk-link');
    const target = path.join(work, 'mk-link-target');
    fs.symlinkSync(target, path.join(dir, 'dangling'));
    expect(thrown(() => mkdirAt(fd, 'dangling', 0o755, 'd'))).toMatchObject({ code: 'EEXIST' });
    expect(fs.existsSync(target)).toBe(false);
    fs.mkdirSync(target);
    fs.symlinkSync(target, path.join(dir, 'pointing'));
    expect(thrown(() => mkdirAt(fd, 'pointing', 0o755, 'p'))).toMatchObject({ code: 'EEXIST' });
    expect(fs.readdirSync(target)).toEqual([]);
    expect(fs.lstatSync(path.join(dir, 'pointing')).isSymbolicLink()).toBe(true);
  });
});

describe('openDestinationAt', () => {
  test('create makes a new 0640 file, and capture() writes through it', async () => {
    const { dir, fd } = scratch('dest');
    const data = crypto.randomBytes(3 * 4096 + 100);
    const img = path.join(work, 'dest-image');
    fs.writeFileSync(img, data);
    const dest = openDestinationAt(fd, 'region.bin', 'create', 'capture/region.bin');
    try {
      expect(dest.path).toBe('capture/region.bin');
      expect(dest.isBlockDevice).toBe(false);
      expect(fs.statSync(path.join(dir, 'region.bin')).mode & 0o777).toBe(0o640 & ~process.umask());
      // readback: the file is reread through the fd, not through path (which is for messages only).
      const result = await capture({
        source: 'image',
        sourcePath: img,
        phys: 0n,
        length: BigInt(data.length),
        dest,
        truncate: true,
        hash: 'readback',
      });
      expect(result.sha256).toBe(sha256(data));
    } finally {
      closeDestination(dest);
    }
    expect(fs.readFileSync(path.join(dir, 'region.bin')).equals(data)).toBe(true);
  });

  test('create refuses an existing file, which keeps its bytes', () => {
    const { dir, fd } = scratch('dest-exists');
    fs.writeFileSync(path.join(dir, 'region.bin'), 'precious');
    const err = thrown(() => openDestinationAt(fd, 'region.bin', 'create', 'cap/region.bin'));
    expect(err).toMatchObject({ code: 'EEXIST', syscall: 'open', path: 'cap/region.bin' });
    expect(err.message).toMatch(/open 'cap\/region\.bin' \(opening a capture destination for direct I\/O\)/);
    expect(fs.readFileSync(path.join(dir, 'region.bin'), 'utf8')).toBe('precious');
  });

  test('a planted symlink is never followed: its target is neither created nor written', () => {
    const { dir, fd } = scratch('dest-link');
    const absent = path.join(work, 'dest-link-absent');
    const present = path.join(work, 'dest-link-present');
    fs.writeFileSync(present, 'precious');
    fs.symlinkSync(absent, path.join(dir, 'a.bin'));
    fs.symlinkSync(present, path.join(dir, 'b.bin'));
    expect(thrown(() => openDestinationAt(fd, 'a.bin', 'create', 'a.bin'))).toMatchObject({ code: 'EEXIST' });
    expect(['ELOOP', 'EEXIST']).toContain(thrown(() => openDestinationAt(fd, 'b.bin', 'create', 'b.bin')).code);
    expect(thrown(() => openDestinationAt(fd, 'b.bin', 'existing', 'b.bin'))).toMatchObject({ code: 'ELOOP' });
    expect(fs.existsSync(absent)).toBe(false);
    expect(fs.readFileSync(present, 'utf8')).toBe('precious');
  });

  test('existing opens a file in place', () => {
    const { dir, fd } = scratch('dest-inplace');
    fs.writeFileSync(path.join(dir, 'r.bin'), Buffer.alloc(8192));
    const dest = openDestinationAt(fd, 'r.bin', 'existing', 'r.bin');
    closeDestination(dest);
    expect(dest.size).toBe(8192);
  });
});

describe('writeFileAt', () => {
  test('writes exactly the bytes given, 0640', () => {
    const { dir, fd } = scratch('wf');
    const data = crypto.randomBytes(100_000);
    writeFileAt(fd, 'SHA256SUMS', data, 'wf/SHA256SUMS');
    expect(fs.readFileSync(path.join(dir, 'SHA256SUMS')).equals(data)).toBe(true);
    expect(fs.statSync(path.join(dir, 'SHA256SUMS')).mode & 0o777).toBe(0o640 & ~process.umask());
    writeFileAt(fd, 'empty', Buffer.alloc(0), 'wf/empty');
    expect(fs.statSync(path.join(dir, 'empty')).size).toBe(0);
  });

  test('never overwrites: EEXIST, the old bytes kept', () => {
    const { dir, fd } = scratch('wf-exists');
    fs.writeFileSync(path.join(dir, 'm.json'), 'old');
    const err = thrown(() => writeFileAt(fd, 'm.json', Buffer.from('new'), 'cap/m.json'));
    expect(err).toMatchObject({ code: 'EEXIST', syscall: 'open', path: 'cap/m.json' });
    expect(err.message).toMatch(/'cap\/m\.json' \(writing a new file whole\)/);
    expect(fs.readFileSync(path.join(dir, 'm.json'), 'utf8')).toBe('old');
  });

  test('a planted symlink: refused, its target neither created nor written', () => {
    const { dir, fd } = scratch('wf-link');
    const absent = path.join(work, 'wf-absent');
    const present = path.join(work, 'wf-present');
    fs.writeFileSync(present, 'precious');
    fs.symlinkSync(absent, path.join(dir, 'a'));
    fs.symlinkSync(present, path.join(dir, 'b'));
    expect(thrown(() => writeFileAt(fd, 'a', Buffer.from('x'), 'a'))).toMatchObject({ code: 'EEXIST' });
    expect(thrown(() => writeFileAt(fd, 'b', Buffer.from('x'), 'b'))).toMatchObject({ code: 'EEXIST' });
    expect(fs.existsSync(absent)).toBe(false);
    expect(fs.readFileSync(present, 'utf8')).toBe('precious');
  });

  test('data must be a Buffer', () => {
    expect(thrown(() => writeFileAt(dirFd, 'x', 'text' as unknown as Buffer, 'x'))).toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
    expect(fs.existsSync(path.join(work, 'x'))).toBe(false);
  });
});

describe('renameAt', () => {
  test('moves a directory, with its contents, between directories', () => {
    const a = scratch('mv-a');
    const b = scratch('mv-b');
    fs.mkdirSync(path.join(a.dir, '.partial'));
    fs.writeFileSync(path.join(a.dir, '.partial', 'f'), 'content');
    renameAt(a.fd, '.partial', b.fd, 'done', 'mv-b/done');
    fsyncFd(a.fd, 'mv-a');
    fsyncFd(b.fd, 'mv-b');
    expect(fs.existsSync(path.join(a.dir, '.partial'))).toBe(false);
    expect(fs.readFileSync(path.join(b.dir, 'done', 'f'), 'utf8')).toBe('content');
  });

  test('EEXIST when the new name is taken; both sides intact', () => {
    const { dir, fd } = scratch('mv-exists');
    fs.writeFileSync(path.join(dir, 'old'), 'old');
    fs.writeFileSync(path.join(dir, 'new'), 'new');
    const err = thrown(() => renameAt(fd, 'old', fd, 'new', 'cap/new'));
    expect(err).toMatchObject({ code: 'EEXIST', syscall: 'renameat2', path: 'cap/new' });
    expect(err.message).toMatch(/renameat2 'cap\/new' \(renaming without replacing anything\)/);
    expect(fs.readFileSync(path.join(dir, 'old'), 'utf8')).toBe('old');
    expect(fs.readFileSync(path.join(dir, 'new'), 'utf8')).toBe('new');
  });

  test('EEXIST even for an empty directory, which rename(2) would replace', () => {
    const { dir, fd } = scratch('mv-emptydir');
    fs.mkdirSync(path.join(dir, 'src'));
    fs.writeFileSync(path.join(dir, 'src', 'f'), 'content');
    fs.mkdirSync(path.join(dir, 'dst'));
    expect(thrown(() => renameAt(fd, 'src', fd, 'dst', 'dst'))).toMatchObject({ code: 'EEXIST' });
    expect(fs.readdirSync(path.join(dir, 'dst'))).toEqual([]);
    expect(fs.readFileSync(path.join(dir, 'src', 'f'), 'utf8')).toBe('content');
    // What the test guards against: plain rename(2) replaces the empty directory.
    fs.renameSync(path.join(dir, 'src'), path.join(dir, 'dst'));
    expect(fs.existsSync(path.join(dir, 'dst', 'f'))).toBe(true);
  });

  test('ENOENT for a missing source names the display path', () => {
    expect(thrown(() => renameAt(dirFd, 'missing', dirFd, 'x', 'shown'))).toMatchObject({
      code: 'ENOENT',
      syscall: 'renameat2',
      path: 'shown',
    });
  });
});

describe('fsyncFd / closeFd', () => {
  test('errors name the display path; a closed fd is EBADF', () => {
    const { fd } = scratch('sync');
    fsyncFd(fd, 'sync');
    const extra = openDir(work);
    closeFd(extra);
    expect(thrown(() => fsyncFd(extra, 'closed/dir'))).toMatchObject({ code: 'EBADF', syscall: 'fsync', path: 'closed/dir' });
    expect(thrown(() => closeFd(extra))).toMatchObject({ code: 'EBADF', syscall: 'close' });
    expect(thrown(() => closeFd(-1))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  });
});

describe('lockFd', () => {
  test('an exclusive lock is seen by another process, and gone after unlockFd', () => {
    const { dir, fd } = scratch('lock');
    expect(othersCanLock(dir)).toBe(true);
    expect(lockFd(fd, 'exclusive', false)).toBe(true);
    expect(othersCanLock(dir)).toBe(false);
    expect(othersCanLock(dir, true)).toBe(false);
    unlockFd(fd);
    expect(othersCanLock(dir)).toBe(true);
  });

  test('a shared lock admits other shared holders, not an exclusive one', () => {
    const { dir, fd } = scratch('lock-shared');
    expect(lockFd(fd, 'shared', true)).toBe(true);
    expect(othersCanLock(dir, true)).toBe(true);
    expect(othersCanLock(dir)).toBe(false);
    unlockFd(fd);
  });

  test('held elsewhere: wait=false returns false at once instead of blocking', () => {
    const { dir, fd } = scratch('lock-held');
    // Another open file description: flock(2) locks conflict between them
    // even within one process, so no helper process has to hold it.
    const other = openDir(dir);
    fdsToClose.push(other);
    expect(lockFd(other, 'exclusive', false)).toBe(true);
    const t0 = Date.now();
    expect(lockFd(fd, 'exclusive', false)).toBe(false);
    expect(lockFd(fd, 'shared', false)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(1000);
    unlockFd(other);
    expect(lockFd(fd, 'exclusive', false)).toBe(true);
    unlockFd(fd);
  });

  test('bad arguments and closed fds', () => {
    expect(thrown(() => lockFd(dirFd, 'both' as 'shared', false))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    const extra = openDir(work);
    closeFd(extra);
    expect(thrown(() => lockFd(extra, 'exclusive', false))).toMatchObject({ code: 'EBADF', syscall: 'flock' });
  });
});
