/**
 * The post-mortem verbs on a remote destination (a bucket a fleet writes
 * to): list across hosts, show, and verify, cheap or full.  A capture is
 * there when its manifest.json is: the copy writes it last.
 *
 * verify (cheap) reads only the small objects: every file SHA256SUMS names
 * is there with the manifest's size, the small ones hash to their sums,
 * and each data object's ETag is the one its recorded parts make, parts
 * whose digests are the manifest's chunk digests (on a server that keeps
 * ETags: S3; an SFTP server reports sizes only).  verify --full reads
 * every data object back in parallel ranged reads and re-hashes every
 * chunk and the whole file against the manifest.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { multipartEtag, planCapture } from '../destinations/remote/parts';
import { UPLOAD_RECORD, UploadRecord } from '../destinations/remote/ship';
import type { RemoteObject, RemoteTarget } from '../destinations/remote/target';
import { parseSums, SUMS_FILE } from '../manifest/sums';
import type { Manifest, ManifestRegion } from '../manifest/types';

export interface RemoteCapture {
  host: string;
  id: string;
  /** From the id: when the capture started (UTC). */
  started?: Date;
  /** manifest.json is there: the copy finished. */
  complete: boolean;
  bytes: number;
  files: number;
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const bare = (etag: string | undefined) => (etag ?? '').replace(/"/g, '').toLowerCase();

/** The start time an id carries (<profile>-YYYYMMDDTHHMMSSZ-<hex>). */
export function startedOf(id: string): Date | undefined {
  const m = /-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-[0-9a-f]+$/.exec(id);
  return m ? new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`) : undefined;
}

/** Every capture under the target, by host, oldest first. */
export async function listRemote(target: RemoteTarget, o: { host?: string; since?: Date; until?: Date; signal?: AbortSignal } = {}): Promise<RemoteCapture[]> {
  const base = target.prefix();
  const byCapture = new Map<string, RemoteCapture>();
  for await (const obj of target.list(target.prefix(o.host), o.signal)) {
    const rest = obj.key.slice(base.length).split('/');
    if (rest.length !== 3) continue; // <host>/<id>/<file>; the pre-flight object and strays are not captures
    const [host, id, file] = rest as [string, string, string];
    const k = `${host}/${id}`;
    const c = byCapture.get(k) ?? { host, id, started: startedOf(id), complete: false, bytes: 0, files: 0 };
    if (file === 'manifest.json') c.complete = true;
    if (file !== UPLOAD_RECORD) {
      c.bytes += obj.size;
      c.files++;
    }
    byCapture.set(k, c);
  }
  return [...byCapture.values()]
    .filter((c) => (!o.since || (c.started && c.started >= o.since)) && (!o.until || (c.started && c.started <= o.until)))
    .sort((a, b) => (a.started?.getTime() ?? 0) - (b.started?.getTime() ?? 0) || a.host.localeCompare(b.host) || a.id.localeCompare(b.id));
}

/** A capture by id or unique id prefix (on one host, or any). */
export async function findRemote(target: RemoteTarget, ref: string, host?: string): Promise<RemoteCapture> {
  const all = await listRemote(target, { host });
  const hits = all.filter((c) => c.id === ref || c.id.startsWith(ref));
  const exact = hits.filter((c) => c.id === ref);
  const pick = exact.length === 1 ? exact : hits;
  if (pick.length === 1) return pick[0]!;
  const where = `${target.location}${host ? ` (host ${host})` : ''}`;
  if (!pick.length) throw Object.assign(new Error(`no capture "${ref}" in ${where}`), { code: 'ENOENT' });
  throw Object.assign(
    new Error(`"${ref}" names ${pick.length} captures in ${where} (${pick.map((c) => `${c.host}/${c.id}`).join(', ')}): pass --host or more of the id`),
    {
      code: 'EINVAL',
    },
  );
}

export async function readRemoteManifest(target: RemoteTarget, c: RemoteCapture): Promise<Manifest> {
  return JSON.parse((await target.get(target.key(c.host, c.id, 'manifest.json'))).toString('utf8')) as Manifest;
}

export interface RemoteVerifyReport {
  host: string;
  id: string;
  location: string;
  ok: boolean;
  passed: string[];
  problems: string[];
  manifest?: Manifest;
}

/** Chunk and whole-file digests of one stream read in file order. */
class StreamCheck {
  private readonly whole = crypto.createHash('sha256');
  private pos = 0;
  private chunk?: { region: ManifestRegion; i: number; end: number; hash: crypto.Hash };
  private readonly spans: Array<{ region: ManifestRegion; i: number; start: number; end: number; want: string }>;
  private next = 0;
  readonly bad: string[] = [];
  checked = 0;

  constructor(regions: Array<{ region: ManifestRegion; chunks: string[] }>) {
    this.spans = regions
      .flatMap(({ region: r, chunks }) =>
        r.chunkSize
          ? chunks.map((want, i) => ({ region: r, i, start: r.offset + i * r.chunkSize, end: r.offset + Math.min(r.size, (i + 1) * r.chunkSize), want }))
          : [],
      )
      .sort((a, b) => a.start - b.start);
  }

  feed(b: Buffer): void {
    this.whole.update(b);
    let at = 0;
    while (at < b.length) {
      const abs = this.pos + at;
      if (!this.chunk) {
        const s = this.spans[this.next];
        if (!s || s.start >= this.pos + b.length) break;
        if (abs < s.start) {
          at = s.start - this.pos;
          continue;
        }
        this.chunk = { region: s.region, i: s.i, end: s.end, hash: crypto.createHash('sha256') };
      }
      const take = Math.min(b.length - at, this.chunk.end - (this.pos + at));
      this.chunk.hash.update(b.subarray(at, at + take));
      at += take;
      if (this.pos + at === this.chunk.end) {
        const s = this.spans[this.next++]!;
        const got = this.chunk.hash.digest('hex');
        this.checked++;
        if (got !== s.want) this.bad.push(`region ${s.region.name}: chunk ${s.i} (file bytes ${s.start}-${s.end - 1}) does not match`);
        this.chunk = undefined;
      }
    }
    this.pos += b.length;
  }

  digest(): string {
    return this.whole.digest('hex');
  }
}

export async function verifyRemote(
  target: RemoteTarget,
  c: RemoteCapture,
  o: {
    full?: boolean;
    parallel?: number;
    signal?: AbortSignal;
    onBytes?: (n: number) => void;
    /**
     * Also keep every file of the capture here (a new directory), as it is
     * read and checked: a full verify that leaves a local copy.  What it
     * holds is the capture only when the report is ok.
     */
    saveTo?: string;
  } = {},
): Promise<RemoteVerifyReport> {
  const saved = new Set<string>();
  const save = (name: string, data?: Buffer): number => {
    const fd = fs.openSync(path.join(o.saveTo!, name), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o640);
    saved.add(name);
    if (data) {
      fs.writeFileSync(fd, data);
      fs.closeSync(fd);
    }
    return fd;
  };
  if (o.saveTo) fs.mkdirSync(o.saveTo, { mode: 0o750 });
  const full = o.full || o.saveTo !== undefined;
  const location = `${target.location}${c.host}/${c.id}/`;
  const report: RemoteVerifyReport = { host: c.host, id: c.id, location, ok: false, passed: [], problems: [] };
  const { problems, passed } = report;
  const objects = new Map<string, RemoteObject>();
  for await (const obj of target.list(target.key(c.host, c.id, ''), o.signal)) objects.set(obj.key.slice(target.key(c.host, c.id, '').length), obj);
  if (!objects.has('manifest.json')) {
    problems.push(`no manifest.json: the copy of ${c.id} never finished`);
    return report;
  }
  const get = (name: string) => target.get(target.key(c.host, c.id, name), undefined, o.signal);
  const manifestBytes = await get('manifest.json');
  const m = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
  report.manifest = m;
  if (m.id !== c.id) problems.push(`manifest.json names capture ${m.id}, not ${c.id}`);
  if (m.status !== 'complete') problems.push(`manifest.json says the capture ${m.status}`);
  if (!objects.has(SUMS_FILE)) {
    problems.push(`${SUMS_FILE} is missing`);
    return report;
  }
  const sums = parseSums((await get(SUMS_FILE)).toString('utf8'));
  problems.push(...sums.problems);
  const dataFiles = new Map(m.files.map((f) => [f.name, f]));
  const small = new Map<string, Buffer>([['manifest.json', manifestBytes]]);
  for (const [name, want] of sums.sums) {
    const obj = objects.get(name);
    if (!obj) {
      problems.push(`${name} is missing`);
      continue;
    }
    const f = dataFiles.get(name);
    if (f && obj.size !== f.size) problems.push(`${name}: ${obj.size} bytes, the manifest says ${f.size}`);
    if (f && f.size > 5 * 2 ** 20) continue; // a data object: its parts below
    const data = small.get(name) ?? (await get(name));
    small.set(name, data);
    if (sha256(data) !== want) problems.push(`${name} does not match its digest in ${SUMS_FILE}`);
    if (o.saveTo) save(name, data);
  }
  for (const name of objects.keys())
    if (!sums.sums.has(name) && name !== SUMS_FILE && name !== UPLOAD_RECORD) problems.push(`${name} is not a file of the capture`);
  const chunksOf = (r: ManifestRegion): string[] => {
    if (Array.isArray(r.chunks)) return r.chunks;
    const side = small.get(r.chunks.file);
    return side ? side.toString('utf8').split('\n').filter(Boolean) : [];
  };
  const plan = planCapture(
    m.files.map((f) => ({ name: f.name, size: f.size })),
    m,
    chunksOf,
  ).filter((f) => f.parts.length);
  if (plan.length) {
    let record: UploadRecord | undefined;
    try {
      record = JSON.parse((await get(UPLOAD_RECORD)).toString('utf8')) as UploadRecord;
    } catch (err) {
      problems.push(`${UPLOAD_RECORD} cannot be read: ${(err as Error).message}`);
    }
    for (const f of plan) {
      const r = record?.files.find((x) => x.name === f.name);
      const obj = objects.get(f.name);
      if (!r || !obj) continue;
      const same =
        r.parts.length === f.parts.length &&
        r.parts.every((p, i) => p.offset === f.parts[i]!.offset && p.length === f.parts[i]!.length && p.sha256 === f.parts[i]!.sha256);
      if (!same) problems.push(`${f.name}: the recorded parts are not the manifest's chunks`);
      const etag = multipartEtag(r.parts.map((p) => Buffer.from(p.md5, 'base64')));
      if (target.etags && bare(obj.etag) !== bare(etag)) problems.push(`${f.name}: ETag ${obj.etag}, its recorded parts make ${etag}`);
      else if (same && target.etags)
        passed.push(`${f.name}: ${f.parts.length} parts, ETag and part digests as recorded (${f.parts.filter((p) => p.sha256).length} are chunk digests)`);
      else if (same) passed.push(`${f.name}: ${f.parts.length} parts as recorded; the server keeps no digests of them (verify --full reads them back)`);
    }
  }
  if (o.saveTo) {
    if (!saved.has('manifest.json')) save('manifest.json', manifestBytes);
    if (!saved.has(SUMS_FILE)) save(SUMS_FILE, await get(SUMS_FILE));
  }
  if (full) {
    for (const f of m.files.filter((x) => objects.has(x.name) && x.size > 5 * 2 ** 20)) {
      const regions = m.regions.filter((r) => r.file === f.name).map((region) => ({ region, chunks: chunksOf(region) }));
      const check = new StreamCheck(regions);
      const fd = o.saveTo ? save(f.name) : undefined;
      try {
        await readInOrder(
          target,
          target.key(c.host, c.id, f.name),
          f.size,
          o.parallel ?? 4,
          (b) => {
            check.feed(b);
            if (fd !== undefined) fs.writeSync(fd, b);
            o.onBytes?.(b.length);
          },
          o.signal,
        );
        if (fd !== undefined) fs.fsyncSync(fd);
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
      problems.push(...check.bad.map((b) => `${f.name}: ${b}`));
      const whole = check.digest();
      if (whole !== f.sha256) problems.push(`${f.name}: SHA-256 ${whole}, the manifest says ${f.sha256}`);
      else passed.push(`${f.name}: read back whole: SHA-256 and ${check.checked} chunk digests match the manifest`);
    }
  }
  if (!problems.length) passed.unshift(`${sums.sums.size} files in ${SUMS_FILE} present with the manifest's sizes; small files match their digests`);
  report.ok = problems.length === 0;
  return report;
}

/** Reads an object in ranged pieces, `parallel` in flight, handing them over in order. */
async function readInOrder(target: RemoteTarget, key: string, size: number, parallel: number, feed: (b: Buffer) => void, signal?: AbortSignal): Promise<void> {
  const piece = 8 * 2 ** 20;
  const count = Math.ceil(size / piece);
  const pending = new Map<number, Promise<Buffer>>();
  const start = (i: number) => {
    const p = target.get(key, [i * piece, Math.min(size, (i + 1) * piece)], signal);
    p.catch(() => undefined); // awaited in order below; a failure ahead of its turn is not unhandled
    pending.set(i, p);
  };
  for (let i = 0; i < Math.min(parallel, count); i++) start(i);
  for (let i = 0; i < count; i++) {
    const b = await pending.get(i)!;
    pending.delete(i);
    if (i + parallel < count) start(i + parallel);
    feed(b);
  }
}
