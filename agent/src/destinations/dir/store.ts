/**
 * The `dir` destination: each capture in its own directory under the
 * destination, written as <id>.partial, published by one rename to <id>
 * (or <id>.failed), and recorded in index.jsonl, a hash chain.
 *
 * Publishing is one state change: the index line.  The manifest and the
 * files beside it are written into <id>.partial first; the appended,
 * fsynced index entry is the commit; the rename to <id> comes after it and
 * is rolled forward by start-up recovery if it did not happen.  A failure
 * before the commit takes back what it wrote (the capture is not
 * published and its failed record is written next); a failure after it
 * cannot unpublish anything.  Space for the small files is reserved when
 * the capture begins (.reserve), so a full disk cannot stop the manifest.
 *
 * Everything inside the destination is reached through directory file
 * descriptors with O_NOFOLLOW, and published with RENAME_NOREPLACE: a
 * symlink planted where a capture will go is refused, not followed, and no
 * rename can replace an existing capture.  Short critical sections
 * (publishing, index appends, recovery, retention) hold flock on the
 * destination directory, so the agent and a one-shot `physcap capture`
 * can share it; captures themselves run in parallel.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import {
  closeDestination,
  closeFd,
  Destination as NativeDestination,
  fsyncFd,
  lockFd,
  mkdirAt,
  openDestinationAt,
  openDir,
  openDirAt,
  preallocate,
  renameAt,
  unlockFd,
  writeFileAt,
} from '../../native/binding';
import { assertTrustedDir, trustedFileProblem } from '../../core/trusted-path';
import { readChain, serializeEntry } from '../../manifest/chain';
import { HEAD_FILE } from '../../manifest/head';
import type { BeginRequest, CaptureReader, CaptureSink, CaptureStore, DataFile, Finish, IndexEntry, IndexRead } from '../types';

export const INDEX_FILE = 'index.jsonl';
export const INTENT_FILE = '.intent.json';
/** What a publish writes that says "complete": never left by one that did not commit. */
const UNCOMMITTED_CLAIMS = ['manifest.json', 'SHA256SUMS', 'manifest.json.sig'];
/** Preallocated at begin, released just before the small files are written. */
export const RESERVE_FILE = '.reserve';
/** The intent once the data is durable (CaptureSink.markDurable): a new name, never a rewrite of .intent.json. */
export const DURABLE_FILE = '.durable.json';
/** Beyond the small files themselves: an index line and directory entries. */
const RESERVE_SLACK = 16 * 1024;
const PARTIAL = '.partial';
const FAILED = '.failed';

export interface DirPolicy {
  retention: { count: number; bytes: bigint; keepFree: bigint };
}

export const DEFAULT_DIR_POLICY: DirPolicy = { retention: { count: 0, bytes: 0n, keepFree: 0n } };

function errorWithCode(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

function human(n: bigint): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i ? `${v.toFixed(1)} ${units[i]}` : `${n} B`;
}

/** A whole regular file, refusing a symlink in its place and never waiting on a FIFO. */
function readNoFollow(file: string): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    if (!fs.fstatSync(fd).isFile()) throw errorWithCode('EINVAL', `${file} is not a regular file`);
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Bytes a directory tree holds on disk (captures are preallocated, so this is their size). */
function treeBytes(dir: string): bigint {
  let total = 0n;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += treeBytes(p);
    else if (e.isFile()) total += BigInt(fs.lstatSync(p).size);
  }
  return total;
}

export class DirStore implements CaptureStore {
  readonly kind = 'dir' as const;
  private readonly fd: number;
  /** Problems that did not fail an operation but someone should hear of (see takeWarnings). */
  private readonly warnings: string[] = [];

  /**
   * create: the store is written to (the agent, physcap capture): the
   * directory must pass the trusted-directory rule (core/trusted-path),
   * and is made (0750) if it does not exist.  Read-only users pass false.
   */
  constructor(
    readonly location: string,
    private readonly policy: DirPolicy = DEFAULT_DIR_POLICY,
    create = false,
  ) {
    if (create) {
      assertTrustedDir(location, 'destination');
      fs.mkdirSync(location, { recursive: true, mode: 0o750 });
      assertTrustedDir(location, 'destination');
    }
    this.fd = openDir(location);
  }

  where(entry: IndexEntry): string {
    return path.join(this.location, entry.location);
  }

  close(): void {
    closeFd(this.fd);
  }

  takeWarnings(): string[] {
    return this.warnings.splice(0);
  }

  private locked<T>(fn: () => T): T {
    lockFd(this.fd, 'exclusive', true);
    try {
      return fn();
    } finally {
      unlockFd(this.fd);
    }
  }

  private get indexPath(): string {
    return path.join(this.location, INDEX_FILE);
  }

  index(): IndexRead {
    let text: string;
    try {
      text = readNoFollow(this.indexPath).toString('utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], problems: [], head: null };
      throw err;
    }
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    const numbered = lines.map((l, i) => ({ l, i })).filter((x) => x.l.trim() !== '');
    return readChain(
      numbered.map((x) => x.l),
      (i) => `${this.indexPath}:${numbered[i]!.i + 1}`,
    );
  }

  /** Appends one entry (seq and prev from the current head) and fsyncs; under the lock. */
  private append(entry: Omit<IndexEntry, 'seq' | 'prev'>): IndexEntry {
    const read = this.index();
    const seq = read.entries.reduce((m, e) => Math.max(m, e.seq), 0) + 1;
    const full: IndexEntry = { ...entry, seq, prev: read.head };
    const fd = fs.openSync(
      this.indexPath,
      fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
      0o640,
    );
    try {
      // Appended to only if it is the destination's own file: not a FIFO
      // or device, not another user's (who could read and rewrite it), not
      // a hard link to a file elsewhere.
      const problem = trustedFileProblem(this.indexPath, fs.fstatSync(fd));
      if (problem) throw errorWithCode('EACCES', `refusing to append to the index: ${problem}`);
      // A torn last line (power lost mid-append) stays as it is, a corrupt
      // entry the chain still points past; the new entry starts its own line.
      const size = fs.fstatSync(fd).size;
      let lead = '';
      if (size > 0) {
        const last = Buffer.alloc(1);
        fs.readSync(fd, last, 0, 1, size - 1);
        if (last[0] !== 0x0a) lead = '\n';
      }
      fs.writeSync(fd, `${lead}${serializeEntry(full)}\n`);
      fsyncFd(fd, this.indexPath);
    } finally {
      fs.closeSync(fd);
    }
    return full;
  }

  checkSpace(bytes: bigint): void {
    const st = fs.statfsSync(this.location, { bigint: true });
    const free = st.bavail * st.bsize;
    const keep = this.policy.retention.keepFree;
    if (free < bytes + keep) {
      throw errorWithCode(
        'ENOSPC',
        `not enough space in ${this.location}: the capture needs ${human(bytes)}, ${human(free)} is free and keep_free is ${human(keep)}`,
      );
    }
  }

  begin(req: BeginRequest): CaptureSink {
    const name = `${req.id}${PARTIAL}`;
    const display = path.join(this.location, name);
    try {
      mkdirAt(this.fd, name, 0o750, display);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw errorWithCode('EEXIST', `refusing to write a capture: ${display} already exists (a symlink or an earlier capture is there)`);
      }
      throw err;
    }
    const partialFd = openDirAt(this.fd, name, display);
    // Held until the capture is published or failed: start-up recovery of
    // another process skips a .partial that is still being written.
    lockFd(partialFd, 'exclusive', false);
    try {
      writeFileAt(partialFd, INTENT_FILE, req.intent, path.join(display, INTENT_FILE));
      const reserve = openDestinationAt(partialFd, RESERVE_FILE, 'create', path.join(display, RESERVE_FILE));
      try {
        preallocate(reserve, BigInt(req.smallBytes + RESERVE_SLACK));
      } finally {
        closeDestination(reserve);
      }
      fsyncFd(this.fd, this.location);
    } catch (err) {
      // Nothing was captured yet: the refused capture leaves nothing behind.
      closeFd(partialFd);
      fs.rmSync(display, { recursive: true, force: true });
      throw err;
    }
    return new DirSink(this, req.id, partialFd);
  }

  unfinished(): Array<{ id: string; intent: Buffer }> {
    const out: Array<{ id: string; intent: Buffer }> = [];
    for (const d of fs.readdirSync(this.location, { withFileTypes: true })) {
      if (!d.isDirectory() || !d.name.endsWith(PARTIAL)) continue;
      let intent: Buffer = Buffer.alloc(0);
      // The durable intent, where there is one, supersedes the first.
      for (const file of [DURABLE_FILE, INTENT_FILE]) {
        try {
          intent = readNoFollow(path.join(this.location, d.name, file));
          break;
        } catch {
          /* not there: the next, or nothing to resume by */
        }
      }
      out.push({ id: d.name.slice(0, -PARTIAL.length), intent });
    }
    return out;
  }

  resume(id: string): { sink: CaptureSink; data(name: string): DataFile } {
    const name = `${id}${PARTIAL}`;
    const display = path.join(this.location, name);
    const fd = openDirAt(this.fd, name, display);
    if (!lockFd(fd, 'exclusive', false)) {
      closeFd(fd);
      throw errorWithCode('EBUSY', `${display} is being written by another process`);
    }
    const sink = new DirSink(this, id, fd);
    return { sink, data: (file) => sink.reopenData(file) };
  }

  /**
   * Used by DirSink: publish a finished capture, under the lock.  The small
   * files and the manifest go into the .partial directory, then the index
   * entry is appended: that append is the commit.  Before it, a failure
   * takes back what was written and throws (nothing is published); after
   * it, nothing throws: a rename that fails is finished by recovery, and
   * open() reads the capture where it is meanwhile.
   */
  publish(sink: DirSink, build: (previous: string | null) => Finish, suffix: '' | typeof FAILED): IndexEntry {
    return this.locked(() => {
      const fin = build(this.index().head);
      const dir = sink.location;
      const finalName = `${sink.id}${suffix}`;
      // The name must be free before the commit: the entry will promise it.
      const target = path.join(this.location, finalName);
      if (lexists(target))
        throw errorWithCode('EEXIST', `refusing to publish capture ${sink.id}: ${target} already exists (a symlink or an earlier capture is there)`);
      removeAt(fdPath(sink.fd), RESERVE_FILE);
      const written: string[] = [];
      let entry: IndexEntry;
      try {
        for (const f of [...fin.files, { name: 'manifest.json', data: fin.manifest }]) {
          writeFileAt(sink.fd, f.name, f.data, path.join(dir, f.name));
          written.push(f.name);
        }
        fsyncFd(sink.fd, dir);
        entry = this.append({ ...fin.entry, location: finalName });
      } catch (err) {
        // Not published: take back what was written, so the failed record
        // written next never sits beside a manifest that says complete.
        // Through the directory's fd: the path may lead elsewhere by now
        // (a read-only mount over it), the fd is where the files are.
        for (const name of written.reverse()) removeAt(fdPath(sink.fd), name);
        throw err;
      }
      this.finishRename(sink.id, finalName);
      if (fin.signHead) this.writeHead(fin.signHead(entry));
      return entry;
    });
  }

  /** index.head, replaced whole (temp file, fsync, rename): a witness, so a failure is a warning. */
  private writeHead(data: Buffer): void {
    const tmp = path.join(this.location, `.${HEAD_FILE}.tmp`);
    try {
      removeAt(this.location, `.${HEAD_FILE}.tmp`);
      const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o640);
      try {
        fs.writeSync(fd, data);
        fsyncFd(fd, tmp);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, path.join(this.location, HEAD_FILE));
      fsyncFd(this.fd, this.location);
    } catch (err) {
      removeAt(this.location, `.${HEAD_FILE}.tmp`);
      this.warnings.push(`the signed index head could not be written (${(err as Error).message}); verify --key will say the head is behind`);
    }
  }

  readHead(): Buffer | undefined {
    try {
      return readNoFollow(path.join(this.location, HEAD_FILE));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * After the commit: <id>.partial becomes its published name; a failure
   * here is recovery's to finish.  The bookkeeping goes first, while the
   * directory is still .partial: a kill between the rename and an unlink
   * would otherwise publish a file the manifest does not list.
   */
  private finishRename(id: string, finalName: string): boolean {
    const partial = path.join(this.location, `${id}${PARTIAL}`);
    for (const own of [INTENT_FILE, DURABLE_FILE, RESERVE_FILE]) removeAt(partial, own);
    try {
      renameAt(this.fd, `${id}${PARTIAL}`, this.fd, finalName, path.join(this.location, finalName));
    } catch (err) {
      this.warnings.push(
        `${path.join(this.location, `${id}${PARTIAL}`)} is published in the index but could not be renamed to ${finalName} (${(err as Error).message}); the next start finishes it`,
      );
      return false;
    }
    try {
      fsyncFd(this.fd, this.location);
    } catch {
      /* the rename is in the index's words either way */
    }
    return true;
  }

  /**
   * Used by DirSink when even a manifest could not be written: record what
   * is known.  The index entry comes first here too; if it cannot be
   * written the capture stays .partial, and the next start records it.
   */
  publishBare(sink: DirSink, entry: Finish['entry']): IndexEntry | undefined {
    return this.locked(() => {
      const finalName = `${sink.id}${FAILED}`;
      let out: IndexEntry;
      try {
        // No manifest was written, so the entry names none (build() computed one for the manifest it could not write).
        out = this.append({ ...entry, manifestSha256: undefined, location: finalName });
      } catch {
        return undefined;
      }
      this.finishRename(sink.id, finalName);
      return out;
    });
  }

  open(id: string): CaptureReader {
    const { entries } = this.index();
    const exact = entries.filter((e) => e.id === id);
    const matches = exact.length ? exact : entries.filter((e) => e.id.startsWith(id));
    const ids = [...new Set(matches.map((e) => e.id))];
    if (!ids.length) throw errorWithCode('ENOENT', `no capture "${id}" in ${this.location}`);
    if (ids.length > 1) throw errorWithCode('EINVAL', `"${id}" is ambiguous in ${this.location}: ${ids.join(', ')}`);
    const entry = matches[matches.length - 1]!; // a recovered re-record of the same id is the latest word
    let dir = path.join(this.location, entry.location);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(dir);
    } catch {
      // Committed but not yet renamed (recovery finishes that): read it where it is.
      const partial = path.join(this.location, `${entry.id}${PARTIAL}`);
      if (!committedPartial(partial, entry)) {
        throw errorWithCode('ENOENT', `capture ${entry.id} is in the index but ${dir} is gone (removed by retention or by hand)`);
      }
      dir = partial;
      st = fs.lstatSync(dir);
    }
    if (!st.isDirectory()) throw errorWithCode('ENOTDIR', `${dir} is not a directory (a symlink?): refusing to read it`);
    return new DirReader(entry, dir);
  }

  recover(o: { keep: boolean; reason: string }): IndexEntry[] {
    return this.locked(() => {
      const out: IndexEntry[] = [];
      const indexed = new Set(this.index().entries.map((e) => e.location));
      for (const d of fs.readdirSync(this.location, { withFileTypes: true })) {
        if (!d.isDirectory()) continue;
        if (d.name.endsWith(PARTIAL)) {
          if (this.rollForward(d.name)) continue;
          const e = this.recoverPartial(d.name, o);
          if (e) out.push(e);
        } else if (!indexed.has(d.name)) {
          const e = this.recoverUnindexed(d.name);
          if (e) out.push(e);
        }
      }
      return out;
    });
  }

  /**
   * A .partial whose index entry was committed (the rename after it did
   * not happen): finish the rename.  Nothing is appended; the entry
   * already says what the capture is.
   */
  private rollForward(name: string): boolean {
    const id = name.slice(0, -PARTIAL.length);
    const entry = this.index()
      .entries.filter((e) => e.id === id)
      .pop();
    if (!entry || entry.location === name) return false;
    if (!committedPartial(path.join(this.location, name), entry)) return false;
    if (fs.existsSync(path.join(this.location, entry.location))) return false;
    return this.finishRename(id, entry.location);
  }

  /** A capture that was being written when the agent died. */
  private recoverPartial(name: string, o: { keep: boolean; reason: string }): IndexEntry | undefined {
    const id = name.slice(0, -PARTIAL.length);
    const dir = path.join(this.location, name);
    const fd = openDirAt(this.fd, name, dir);
    try {
      if (!lockFd(fd, 'exclusive', false)) return undefined; // a live capture (another process): not ours to touch
      return this.recoverLockedPartial(name, id, dir, o);
    } finally {
      closeFd(fd);
    }
  }

  private recoverLockedPartial(name: string, id: string, dir: string, o: { keep: boolean; reason: string }): IndexEntry {
    let intent: { profile?: string; started?: string } = {};
    try {
      intent = JSON.parse(fs.readFileSync(path.join(dir, INTENT_FILE), 'utf8')) as typeof intent;
    } catch {
      /* the crash came before the intent was durable: the name is all we know */
    }
    removeAt(dir, RESERVE_FILE); // space held for a publish that will not come
    let bytes = 0;
    try {
      bytes = Number(treeBytes(dir));
    } catch {
      /* counted as 0 */
    }
    // A publish that never committed (the index append failed and even
    // taking its files back failed, as on a file system gone read-only):
    // its manifest's claim was never made, so it does not stay to be read.
    for (const claim of UNCOMMITTED_CLAIMS) removeAt(dir, claim);
    let location: string;
    if (o.keep) {
      renameAt(this.fd, name, this.fd, `${id}${FAILED}`, path.join(this.location, `${id}${FAILED}`));
      location = `${id}${FAILED}`;
    } else {
      fs.rmSync(dir, { recursive: true, force: true });
      location = `${id}${FAILED} (data removed)`;
    }
    fsyncFd(this.fd, this.location);
    const now = new Date().toISOString();
    return this.append({
      id,
      profile: intent.profile ?? 'unknown',
      status: 'failed',
      started: intent.started ?? now,
      finished: now,
      bytes,
      error: o.reason,
      recovered: o.reason,
      location,
    });
  }

  /** A published capture whose index entry was lost (a crash between the rename and the append). */
  private recoverUnindexed(name: string): IndexEntry | undefined {
    const dir = path.join(this.location, name);
    let manifest: Buffer;
    try {
      manifest = readNoFollow(path.join(dir, 'manifest.json'));
    } catch {
      return undefined; // not a capture: someone else's directory, left alone
    }
    let m: { id?: string; profile?: { name?: string }; status?: string; timing?: { started?: string; finished?: string }; regions?: Array<{ size?: number }> };
    try {
      m = JSON.parse(manifest.toString('utf8')) as typeof m;
    } catch {
      m = {};
    }
    const now = new Date().toISOString();
    // Publishing appends the index entry before the rename, so a published
    // directory with no entry means the index lost it (edited, truncated,
    // restored from a copy).  Its data is kept and listed, but it is not
    // vouched for as complete: its place in the chain cannot be proven.
    const why = 'found published with no index entry (the index lost its line or it was removed): kept, not vouched for';
    return this.append({
      id: m.id ?? name.replace(/\.failed$/, ''),
      profile: m.profile?.name ?? 'unknown',
      status: 'failed',
      started: m.timing?.started ?? now,
      finished: m.timing?.finished ?? now,
      bytes: (m.regions ?? []).reduce((a, r) => a + (r.size ?? 0), 0),
      manifestSha256: sha256Hex(manifest),
      error: `not in the index: ${m.status === 'complete' ? 'its manifest says complete, ' : ''}${why}`,
      recovered: why,
      location: name,
    });
  }

  remove(id: string): void {
    this.locked(() => {
      const entry = [...this.index().entries].reverse().find((e) => e.id === id);
      if (!entry) throw errorWithCode('ENOENT', `no capture ${id} in ${this.location}`);
      fs.rmSync(path.join(this.location, entry.location), { recursive: true, force: true });
      fsyncFd(this.fd, this.location);
    });
  }

  retain(justWritten: string, pinned: ReadonlySet<string> = new Set()): string[] {
    const r = this.policy.retention;
    if (!r.count && !r.bytes && !r.keepFree) return [];
    return this.locked(() => {
      // Captures on disk, oldest first by their index order (names sort by
      // time too, but the index is the record of what was written when).
      const order = new Map<string, number>();
      for (const e of this.index().entries) order.set(e.location, e.seq);
      const onDisk = fs
        .readdirSync(this.location, { withFileTypes: true })
        .filter((d) => d.isDirectory() && !d.name.endsWith(PARTIAL) && order.has(d.name))
        .map((d) => ({ name: d.name, seq: order.get(d.name)!, bytes: treeBytes(path.join(this.location, d.name)) }))
        .sort((a, b) => a.seq - b.seq);
      let total = onDisk.reduce((a, c) => a + c.bytes, 0n);
      const free = () => {
        const st = fs.statfsSync(this.location, { bigint: true });
        return st.bavail * st.bsize;
      };
      const removed: string[] = [];
      for (const c of onDisk) {
        if (c.name === justWritten || c.name === `${justWritten}${FAILED}` || pinned.has(c.name)) continue;
        const left = onDisk.length - removed.length;
        const over = (r.count > 0 && left > r.count) || (r.bytes > 0n && total > r.bytes) || (r.keepFree > 0n && free() < r.keepFree);
        if (!over) break;
        fs.rmSync(path.join(this.location, c.name), { recursive: true, force: true });
        total -= c.bytes;
        removed.push(c.name);
      }
      if (removed.length) fsyncFd(this.fd, this.location);
      return removed;
    });
  }
}

function sha256Hex(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

function lexists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** The directory an fd holds, as a path that stays with it (the fd's own mount and inode). */
function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** unlink(2) of a name that may not be there; other errors are for the caller's record, not fatal. */
function removeAt(dir: string, name: string): void {
  try {
    fs.unlinkSync(path.join(dir, name));
  } catch {
    /* gone already, or the directory is unwritable: nothing more to take back */
  }
}

/**
 * Is this .partial directory the capture its index entry committed?  Its
 * manifest matches the entry's digest (or, for a bare failed record, it
 * has no manifest at all).
 */
function committedPartial(dir: string, entry: IndexEntry): boolean {
  let manifest: Buffer | undefined;
  try {
    manifest = readNoFollow(path.join(dir, 'manifest.json'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
  }
  if (!manifest) return entry.manifestSha256 === undefined && fs.existsSync(dir);
  return entry.manifestSha256 === sha256Hex(manifest);
}

class DirSink implements CaptureSink {
  readonly id: string;
  readonly location: string;
  readonly align = 4096;
  private readonly opened: NativeDestination[] = [];
  private done = false;

  constructor(
    private readonly store: DirStore,
    id: string,
    readonly fd: number,
  ) {
    this.id = id;
    this.location = path.join(store.location, `${id}${PARTIAL}`);
  }

  /** A data file written earlier (by the kernel, for an armed capture), opened to be read back and finished. */
  reopenData(name: string): DataFile {
    const dest = openDestinationAt(this.fd, name, 'existing', path.join(this.location, name));
    this.opened.push(dest);
    return { name, dest, base: 0n, size: BigInt(dest.size) };
  }

  discard(): void {
    if (this.done) return;
    this.done = true;
    this.closeAll();
    fs.rmSync(this.location, { recursive: true, force: true });
    try {
      closeFd(this.fd);
    } catch {
      /* already closed */
    }
  }

  markDurable(intent: Buffer): void {
    writeFileAt(this.fd, DURABLE_FILE, intent, path.join(this.location, DURABLE_FILE));
    fsyncFd(this.fd, this.location);
  }

  openData(name: string, size: bigint): DataFile {
    const display = path.join(this.location, name);
    const dest = openDestinationAt(this.fd, name, 'create', display);
    this.opened.push(dest);
    preallocate(dest, size);
    return { name, dest, base: 0n, size };
  }

  private closeAll(): void {
    for (const d of this.opened.splice(0)) {
      try {
        closeDestination(d);
      } catch {
        /* already closed */
      }
    }
  }

  commit(build: (previous: string | null) => Finish): IndexEntry {
    if (this.done) throw new Error(`capture ${this.id} was already finished`);
    this.closeAll();
    const entry = this.store.publish(this, build, '');
    this.done = true;
    closeFd(this.fd);
    return entry;
  }

  fail(build: (previous: string | null) => Finish): IndexEntry | undefined {
    if (this.done) return undefined;
    this.done = true;
    this.closeAll();
    try {
      return this.store.publish(this, build, FAILED);
    } catch (err) {
      // Even the failed manifest could not be written (a read-only or full
      // disk, a removed directory): rename and record what is known.
      let entry: Finish['entry'] | undefined;
      try {
        entry = build(null).entry;
      } catch {
        /* nothing more to say */
      }
      const e = entry ?? { id: this.id, profile: 'unknown', status: 'failed' as const, started: '', finished: '', bytes: 0 };
      return this.store.publishBare(this, {
        ...e,
        status: 'failed',
        error: `${e.error ?? 'failed'}; the failed manifest could not be written: ${(err as Error).message}`,
      });
    } finally {
      try {
        closeFd(this.fd);
      } catch {
        /* already closed */
      }
    }
  }
}

/** A capture directory's files, read in place (also a remote capture fetched into one: cli/remote.ts). */
export class DirReader implements CaptureReader {
  private readonly fds = new Map<string, number>();

  constructor(
    readonly entry: IndexEntry,
    readonly location: string,
  ) {}

  files(): Array<{ name: string; size: number }> {
    // Every name, not only regular files: a link, FIFO or directory planted
    // beside the capture's files is listed, so verify reports it.  In a
    // committed capture still named .partial (recovery renames it), the
    // destination's own bookkeeping is not the capture's.
    const own = this.location.endsWith(PARTIAL) ? new Set([INTENT_FILE, DURABLE_FILE, RESERVE_FILE]) : new Set<string>();
    return fs
      .readdirSync(this.location, { withFileTypes: true })
      .filter((d) => !own.has(d.name))
      .map((d) => ({ name: d.name, size: fs.lstatSync(path.join(this.location, d.name)).size }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Files are opened once, never through a symlink, and read with pread. */
  private openFile(name: string): number {
    if (name.includes('/') || name === '..' || name === '.') throw errorWithCode('EINVAL', `bad file name in capture: ${name}`);
    let fd = this.fds.get(name);
    if (fd === undefined) {
      fd = fs.openSync(path.join(this.location, name), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      if (!fs.fstatSync(fd).isFile()) {
        fs.closeSync(fd);
        throw errorWithCode('EINVAL', `${path.join(this.location, name)} is not a regular file`);
      }
      this.fds.set(name, fd);
    }
    return fd;
  }

  locate(name: string): { path: string; base: bigint; size: number; nofollow: boolean } {
    const fd = this.openFile(name);
    return { path: path.join(this.location, name), base: 0n, size: fs.fstatSync(fd).size, nofollow: true };
  }

  readFile(name: string): Buffer {
    const fd = this.openFile(name);
    return this.read(name, 0, fs.fstatSync(fd).size);
  }

  read(name: string, offset: number, length: number): Buffer {
    const fd = this.openFile(name);
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}
