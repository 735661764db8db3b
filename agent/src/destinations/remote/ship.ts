/**
 * The copy of one complete capture from its spool to a remote destination.
 * Data files go up as multipart uploads in parallel parts (remote/parts.ts),
 * the small files whole, manifest.json last; every step is in the journal
 * before it counts, so the copy resumes after a network loss, `kill -9` or
 * a reboot without re-sending what the server holds.  Completion names
 * exactly the planned parts; nothing is written over an object that is not
 * this copy's.  The copy ends by checking every object's size and ETag
 * against what was sent, and records that it was verified.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import type { Logger } from '../../core/logger';
import type { Manifest, ManifestRegion } from '../../manifest/types';
import type { CaptureReader } from '../types';
import { Journal } from './journal';
import { multipartEtag, planCapture, PlannedFile, PlannedPart } from './parts';
import { Pace } from './pace';
import { DEFAULT_RETRY, RetryPolicy, withRetry } from './retry';
import { Body, RemoteError, RemotePart, RemoteTarget } from './target';

export interface ShipOptions {
  /** The copy's journal (created if missing). */
  journalFile: string;
  /** Parts in flight at once. */
  parallel?: number;
  /** Bytes per second the copy may take on average; 0 or absent for no limit. */
  bandwidth?: number;
  retry?: RetryPolicy;
  signal?: AbortSignal;
  log?: Logger;
  /** Bytes on the server so far (sent, or found there), and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Counted as they happen (metrics). */
  onEvent?: (what: 'part' | 'retry' | 'bytes', n: number) => void;
}

export interface ShipResult {
  id: string;
  /** Where the capture is now: the remote prefix of its files. */
  remote: string;
  bytes: number;
  files: number;
  /** Parts sent by this run. */
  partsSent: number;
  /** Parts the journal already held: not sent again. */
  partsJournaled: number;
  /** Parts the server held that the journal had not recorded yet (a crash between the two): checked, not sent again. */
  partsFound: number;
  retries: number;
  seconds: number;
  /** How the remote copy was checked. */
  verified: string;
}

/** Beside a capture's files remotely: how its data files were cut and each part's MD5 (remote verify's cheap check). */
export const UPLOAD_RECORD = '.physcap-upload.json';

export interface UploadRecord {
  format: 'physcap-upload';
  version: 1;
  id: string;
  host: string;
  files: Array<{ name: string; size: number; etag: string; parts: Array<PlannedPart & { md5: string }> }>;
}

const md5 = (b: Buffer) => crypto.createHash('md5').update(b).digest();
const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');
const bare = (etag: string) => etag.replace(/"/g, '').toLowerCase();

/** The capture's host as its manifest names it: the first path element of its remote keys. */
export function hostOf(m: Manifest): string {
  return m.host.hostname.replace(/[^A-Za-z0-9._-]/g, '_') || 'unknown-host';
}

/** A region's chunk digests, inline or from its sidecar. */
function chunksOf(reader: CaptureReader, r: ManifestRegion): string[] {
  if (Array.isArray(r.chunks)) return r.chunks;
  return reader.readFile(r.chunks.file).toString('utf8').split('\n').filter(Boolean);
}

class Copy {
  readonly t0 = Date.now();
  readonly manifest: Manifest;
  readonly host: string;
  readonly plan: PlannedFile[];
  readonly total: number;
  readonly policy: RetryPolicy;
  readonly pace: Pace;
  done = 0;
  partsSent = 0;
  partsJournaled = 0;
  partsFound = 0;
  retries = 0;

  constructor(
    readonly reader: CaptureReader,
    readonly target: RemoteTarget,
    readonly journal: Journal,
    readonly o: ShipOptions,
  ) {
    this.manifest = JSON.parse(reader.readFile('manifest.json').toString('utf8')) as Manifest;
    if (this.manifest.status !== 'complete') throw new Error(`${reader.entry.id} is a failed capture: only complete captures are copied`);
    this.host = hostOf(this.manifest);
    this.plan = planCapture(reader.files(), this.manifest, (r) => chunksOf(reader, r));
    this.total = this.plan.reduce((a, f) => a + f.size, 0);
    this.policy = o.retry ?? DEFAULT_RETRY;
    this.pace = new Pace(o.bandwidth ?? 0);
  }

  get id(): string {
    return this.manifest.id;
  }

  key(file: string): string {
    return this.target.key(this.host, this.id, file);
  }

  /** The plan's identity: a journal of another plan (or destination) is not resumed. */
  planDigest(): string {
    return sha256(JSON.stringify({ remote: this.target.location, host: this.host, files: this.plan }));
  }

  progress(n: number): void {
    this.done += n;
    this.o.onEvent?.('bytes', n);
    this.o.onProgress?.(this.done, this.total);
  }

  retry<T>(what: string, step: () => Promise<T>): Promise<T> {
    return withRetry(what, step, {
      policy: this.policy,
      signal: this.o.signal,
      onRetry: (err, attempt, delay) => {
        this.retries++;
        this.o.onEvent?.('retry', 1);
        this.o.log?.warn(
          { capture: this.id, remote: this.target.location, step: what, attempt, delayMs: Math.round(delay), err: err.message },
          'remote step failed; retrying',
        );
      },
    });
  }

  async run(): Promise<ShipResult> {
    const j = this.journal;
    const digest = this.planDigest();
    if (j.state.begin && j.state.begin.plan !== digest) {
      // Cut another way before (an older physcap): its unfinished uploads are of no use, and would be kept (and billed) by the server.
      for (const [file, uploadId] of j.state.uploads)
        if (!j.state.files.has(file)) await this.target.abortUpload(this.key(file), uploadId, this.o.signal).catch(() => undefined);
      j.reset();
    }
    if (!j.state.begin) j.append({ t: 'begin', remote: this.target.location, plan: digest, at: new Date().toISOString() });
    if (!j.state.verified) {
      for (const f of this.plan) {
        // The upload record goes up once the data files are there, before the manifest that commits them.
        if (!f.parts.length) await this.record();
        if (j.state.files.has(f.name)) {
          this.progress(f.size);
          continue;
        }
        if (f.parts.length) await this.multipart(f);
        else await this.whole(f);
      }
      const how = await this.check();
      j.append({ t: 'verified', at: new Date().toISOString(), how });
    }
    return {
      id: this.id,
      remote: `${this.target.location.replace(/\/$/, '')}/${this.host}/${this.id}/`,
      bytes: this.total,
      files: this.plan.length,
      partsSent: this.partsSent,
      partsJournaled: this.partsJournaled,
      partsFound: this.partsFound,
      retries: this.retries,
      seconds: (Date.now() - this.t0) / 1000,
      verified: j.state.verified!.how,
    };
  }

  /** The upload record: every data file's parts with their MD5s, for a cheap check of the remote copy later. */
  private async record(): Promise<void> {
    if (this.journal.state.files.has(UPLOAD_RECORD)) return;
    const parts = this.journal.state.parts;
    const record: UploadRecord = {
      format: 'physcap-upload',
      version: 1,
      id: this.id,
      host: this.host,
      files: this.plan
        .filter((f) => f.parts.length)
        .map((f) => ({
          name: f.name,
          size: f.size,
          etag: this.journal.state.files.get(f.name)!,
          parts: f.parts.map((p) => ({ ...p, md5: parts.get(f.name)!.get(p.n)!.md5 })),
        })),
    };
    await this.whole({ name: UPLOAD_RECORD, size: 0, parts: [] }, Buffer.from(`${JSON.stringify(record)}\n`));
  }

  /** A small file in one request; one that is there already counts only if it is byte for byte this one. */
  private async whole(f: PlannedFile, given?: Buffer): Promise<void> {
    const data = given ?? this.reader.readFile(f.name);
    if (!given && data.length !== f.size) throw new Error(`${this.reader.location}/${f.name}: ${data.length} bytes, listed as ${f.size}`);
    const body: Body = { data, md5: md5(data), sha256: sha256(data) };
    const key = this.key(f.name);
    const want = `"${body.md5.toString('hex')}"`;
    try {
      await this.retry(`put ${key}`, () => this.target.putWhole(key, body, this.o.signal));
    } catch (err) {
      if (!(err instanceof RemoteError) || err.code !== 'EEXIST') throw err;
      // Ours from a run that died before its journal line: the same bytes.
      if (!(await this.holds(key, data, want))) throw this.notOurs(key, err);
    }
    this.journal.append({ t: 'file', file: f.name, etag: want });
    if (!given) this.progress(f.size);
  }

  /** Whether the target's ETag for an object is `want` (always, for a target that keeps none). */
  private sameEtag(etag: string | undefined, want: string): boolean {
    return !this.target.etags || bare(etag ?? '') === bare(want);
  }

  /** Whether the object at key is these bytes: by ETag where the target has them, else read back (small files only). */
  private async holds(key: string, data: Buffer, want: string): Promise<boolean> {
    const there = await this.retry(`head ${key}`, () => this.target.head(key, this.o.signal));
    if (!there || there.size !== data.length) return false;
    if (this.target.etags) return bare(there.etag ?? '') === bare(want);
    return (await this.retry(`get ${key}`, () => this.target.get(key, undefined, this.o.signal))).equals(data);
  }

  private notOurs(key: string, cause?: Error): RemoteError {
    return new RemoteError(
      `${this.target.location}: ${key} is already there and is not this capture's copy: refusing to overwrite it${cause ? ` (${cause.message})` : ''}`,
      'EEXIST',
      false,
    );
  }

  /** The ETag a completed upload of these parts has, from the journal's MD5s. */
  private expectedEtag(f: PlannedFile): string | undefined {
    const have = this.journal.state.parts.get(f.name);
    if (!have || f.parts.some((p) => !have.has(p.n))) return undefined;
    return multipartEtag(f.parts.map((p) => Buffer.from(have.get(p.n)!.md5, 'base64')));
  }

  private async newUpload(f: PlannedFile, key: string): Promise<string> {
    const uploadId = await this.retry(`create upload ${key}`, () => this.target.createUpload(key, this.o.signal));
    this.journal.append({ t: 'upload', file: f.name, uploadId });
    return uploadId;
  }

  private async multipart(f: PlannedFile): Promise<void> {
    const key = this.key(f.name);
    const j = this.journal;
    let uploadId = j.state.uploads.get(f.name);
    let server: RemotePart[] | undefined = [];
    if (!uploadId) {
      if (await this.retry(`head ${key}`, () => this.target.head(key, this.o.signal))) throw this.notOurs(key);
      uploadId = await this.newUpload(f, key);
    } else {
      const id = uploadId;
      server = await this.retry(`list parts ${key}`, () => this.target.listParts(key, id, this.o.signal));
      if (!server) {
        // The upload is gone: completed by a run that died before its journal line, or aborted.
        const there = await this.retry(`head ${key}`, () => this.target.head(key, this.o.signal));
        const want = this.expectedEtag(f);
        if (there && want && this.sameEtag(there.etag, want) && there.size === f.size) {
          j.append({ t: 'file', file: f.name, etag: want });
          this.progress(f.size);
          return;
        }
        if (there) throw this.notOurs(key);
        uploadId = await this.newUpload(f, key);
        server = [];
      }
    }
    const onServer = new Map(server.map((p) => [p.n, p]));
    const journaled = j.state.parts.get(f.name) ?? new Map<number, { etag: string; md5: string }>();
    const todo: PlannedPart[] = [];
    for (const p of f.parts) {
      const had = journaled.get(p.n);
      const s = onServer.get(p.n);
      // The journal's word, where the server confirms it (or, without ETags, while the upload is there).
      if (had && (this.target.etags ? s && bare(s.etag) === bare(had.etag) && s.size === p.length : true)) {
        this.partsJournaled++;
        this.progress(p.length);
      } else todo.push(p);
    }
    const at = this.reader.locate(f.name);
    const fh = await fs.promises.open(at.path, fs.constants.O_RDONLY | (at.nofollow ? fs.constants.O_NOFOLLOW : 0));
    try {
      const id = uploadId;
      // After a failure no worker takes another part: the copy has failed, and its journal resumes it.
      let failed = false;
      const next = () => (failed ? undefined : todo.shift());
      const worker = async () => {
        // One buffer per worker, reused part after part: memory is `parallel` parts, whatever the capture's size.
        const buf = Buffer.allocUnsafe(Math.max(0, ...todo.map((p) => p.length)));
        try {
          for (let p = next(); p; p = next()) await this.part(f, key, id, p, fh, at.base, buf, onServer.get(p.n));
        } catch (err) {
          failed = true;
          throw err;
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, this.o.parallel ?? 4) }, worker));
    } finally {
      await fh.close();
    }
    const parts = f.parts.map((p) => ({ n: p.n, etag: j.state.parts.get(f.name)!.get(p.n)!.etag, ...(p.sha256 ? { sha256: p.sha256 } : {}) }));
    const want = this.expectedEtag(f)!;
    const id = uploadId;
    let etag: string;
    try {
      etag = await this.retry(`complete ${key}`, () => this.target.completeUpload(key, id, parts, this.o.signal));
    } catch (err) {
      // A complete that reached the server but whose answer was lost: the upload is gone, the object is ours.
      const there = await this.target.head(key, this.o.signal).catch(() => undefined);
      if (!there || there.size !== f.size || !this.sameEtag(there.etag, want)) throw err;
      etag = there.etag ?? '';
    }
    // radosgw 16 answers Complete with an empty ETag: the object's own says what was assembled.
    if (this.target.etags && !bare(etag)) etag = (await this.retry(`head ${key}`, () => this.target.head(key, this.o.signal)))?.etag ?? '';
    if (!this.sameEtag(etag, want))
      throw new RemoteError(`${this.target.location}: ${key} completed with ETag ${etag}, the parts sent make ${want}`, 'EIO', false);
    j.append({ t: 'file', file: f.name, etag: want });
  }

  private async part(
    f: PlannedFile,
    key: string,
    uploadId: string,
    p: PlannedPart,
    fh: fs.promises.FileHandle,
    base: bigint,
    buf: Buffer,
    s?: RemotePart,
  ): Promise<void> {
    // Free again once putPart() settles: no request of this part is left writing from it by then.
    const data = buf.subarray(0, p.length);
    const { bytesRead } = await fh.read(data, 0, p.length, Number(base) + p.offset);
    if (bytesRead !== p.length) throw new Error(`${this.reader.location}/${f.name}: short read at ${p.offset} (${bytesRead} of ${p.length} bytes)`);
    const digest = md5(data);
    if (s && s.size === p.length && bare(s.etag) === digest.toString('hex')) {
      // On the server already, with these very bytes: recorded, not sent.
      this.journal.append({ t: 'part', file: f.name, n: p.n, etag: s.etag, md5: digest.toString('base64') });
      this.partsFound++;
      this.progress(p.length);
      return;
    }
    // The manifest's chunk digest is the payload hash: the server checks the bytes against the manifest itself.
    const body: Body = { data, md5: digest, sha256: p.sha256 ?? sha256(data) };
    let refused = 0;
    const etag = await this.retry(`part ${p.n} of ${key}`, async () => {
      await this.pace.take(p.length, this.o.signal);
      try {
        return await this.target.putPart(key, uploadId, p.n, p.offset, body, this.o.signal);
      } catch (err) {
        if (err instanceof RemoteError && err.code === 'EBADMSG' && p.sha256 && ++refused === 2) {
          // Refused twice: if our bytes are not the manifest's, no retry can mend it.
          const actual = sha256(data);
          if (actual !== p.sha256)
            throw new RemoteError(
              `${this.reader.location}/${f.name} bytes ${p.offset}-${p.offset + p.length - 1} do not match their chunk digest in the manifest (${actual}, recorded ${p.sha256}): the spool's copy is damaged; not sent`,
              'EBADMSG',
              false,
            );
        }
        throw err;
      }
    });
    this.journal.append({ t: 'part', file: f.name, n: p.n, etag, md5: digest.toString('base64') });
    this.partsSent++;
    this.o.onEvent?.('part', 1);
    this.progress(p.length);
  }

  /** Every object is there with the size and ETag of what was sent. */
  private async check(): Promise<string> {
    const files = [...this.plan.map((f) => ({ name: f.name, size: f.size as number | undefined })), { name: UPLOAD_RECORD, size: undefined }];
    for (const f of files) {
      const key = this.key(f.name);
      const there = await this.retry(`head ${key}`, () => this.target.head(key, this.o.signal));
      const want = this.journal.state.files.get(f.name)!;
      if (!there) throw new RemoteError(`${this.target.location}: ${key} is missing after its upload`, 'EIO', false);
      if (f.size !== undefined && there.size !== f.size)
        throw new RemoteError(`${this.target.location}: ${key} has ${there.size} bytes, ${f.size} were sent`, 'EIO', false);
      if (!this.sameEtag(there.etag, want))
        throw new RemoteError(`${this.target.location}: ${key} has ETag ${there.etag}, what was sent makes ${want}`, 'EIO', false);
    }
    return this.target.etags ? `sizes and ETags of ${files.length} objects` : `sizes of ${files.length} files (the server keeps no digests)`;
  }
}

/** Copies one complete capture; resumes its journal if there is one.  Throws (the journal kept) when it cannot finish. */
export async function shipCapture(reader: CaptureReader, target: RemoteTarget, o: ShipOptions): Promise<ShipResult> {
  const journal = Journal.open(o.journalFile);
  try {
    return await new Copy(reader, target, journal, o).run();
  } finally {
    journal.close();
  }
}
