/**
 * The credentials broker (`physcap broker serve`): run by a fleet's
 * operator on a machine that holds the store's keys, so that the hosts
 * hold none.  Each host authenticates with its own token (hosts.ts) and is
 * served only within <prefix>/<host>/ of the host its token was enrolled
 * for.  The broker does the small metadata requests itself with its keys
 * (head, create, list parts, complete — never over an object that is
 * there —, abort, list, the pre-flight check) and answers presigned URLs
 * (presign.ts) for the requests that carry capture bytes, each bound to the
 * bytes the host declared.  It keeps no state but the hosts file: a broker
 * restarted mid-copy serves the copy's next request as the old one would.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';

import { RemoteError } from '../../remote/target';
import { CredentialSource, loadKeys } from '../credentials';
import { S3Location, s3Url, S3Target } from '../target';
import { HostTable } from './hosts';
import { Presigner, SigningCredentials } from './presign';
import { BROKER_OPS, BrokerErrorBody, BrokerOp, BrokerOps, MAX_REQUEST_BYTES, ObjectInfo, PROBE_NAME } from './protocol';

export interface BrokerOptions {
  where: S3Location;
  /** The S3-compatible endpoint, as the hosts reach it too (presigned URLs name it); undefined for AWS. */
  endpoint?: string;
  region: string;
  credentials: CredentialSource;
  hostsFile: string;
  listen: { host: string; port: number };
  tls?: { cert: Buffer; key: Buffer };
  /** One line per request and event. */
  log: (entry: Record<string, unknown>) => void;
}

/** A refusal with its HTTP status and what the host's copy makes of it. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly body: BrokerErrorBody['error'],
  ) {
    super(body.message);
  }
}

const refuse = (status: number, code: BrokerErrorBody['error']['code'], message: string, retryable = false) =>
  new Refusal(status, { code, message, retryable });

const PAGE = 1000;
const PROBE_CACHE_MS = 60_000;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(body: Record<string, unknown>, field: string, pattern?: RegExp): string {
  const v = body[field];
  if (typeof v !== 'string' || !v || (pattern && !pattern.test(v))) throw refuse(400, 'EIO', `"${field}" is missing or malformed`);
  return v;
}

function int(body: Record<string, unknown>, field: string, min: number, max: number): number {
  const v = body[field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw refuse(400, 'EIO', `"${field}" must be an integer from ${min} to ${max}`);
  return v;
}

const MD5_B64 = /^[A-Za-z0-9+/]{22}==$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const MAX_PART = 5 * 1024 ** 3;

const info = (o: { key: string; size: number; etag?: string; modified?: Date }): ObjectInfo => ({
  key: o.key,
  size: o.size,
  ...(o.etag !== undefined ? { etag: o.etag } : {}),
  ...(o.modified ? { modified: o.modified.toISOString() } : {}),
});

export class Broker {
  private readonly hosts: HostTable;
  private readonly store: S3Target;
  private readonly presigner: Presigner;
  private readonly server: http.Server;
  private probed?: { at: number; done: Promise<void> };

  constructor(private readonly o: BrokerOptions) {
    this.hosts = new HostTable(o.hostsFile, (what) => o.log({ msg: 'hosts file read again', file: o.hostsFile, ...what }));
    const keys = loadKeys(o.credentials);
    this.store = new S3Target(o.where, { endpoint: o.endpoint, region: o.region, pathStyle: o.endpoint !== undefined, credentials: keys });
    this.presigner = new Presigner({ where: o.where, endpoint: o.endpoint, region: o.region, credentials: keys ?? chainCredentials(o.region) });
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    this.server = o.tls ? https.createServer({ cert: o.tls.cert, key: o.tls.key }, handler) : http.createServer(handler);
  }

  /** Listens; resolves to the URL hosts name in their profiles. */
  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.listen.port, this.o.listen.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    const url = `${this.o.tls ? 'https' : 'http'}://${host}:${a.port}`;
    this.o.log({ msg: 'broker listening', url, dest: s3Url(this.o.where), endpoint: this.o.endpoint ?? 'AWS', hosts: this.hosts.size });
    return url;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.store.close();
  }

  /** Where a host's captures are: the only keys its token reaches. */
  private scope(host: string): string {
    return this.store.prefix(host);
  }

  /** The key, if it is one below the host's prefix a copy could write. */
  private key(body: Record<string, unknown>, host: string, field = 'key'): string {
    const key = str(body, field);
    const scope = this.scope(host);
    const rest = key.slice(scope.length).split('/');
    if (!key.startsWith(scope) || rest.some((s) => s === '..'))
      throw refuse(403, 'EACCES', `${key} is outside ${scope}, the prefix of ${host}'s captures: this token reaches nothing else`);
    // Printable ASCII without a backslash: every key a copy writes, and nothing a URL or a log line could misread.
    if (key.length > 1024 || rest.some((s) => !s || s === '.') || !/^[ -[\]-~]+$/.test(key))
      throw refuse(400, 'EIO', `${JSON.stringify(key)} is not a key a copy writes`);
    return key;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = Date.now();
    const entry: Record<string, unknown> = {};
    let status = 200;
    let answer: unknown;
    try {
      const op = /^\/v1\/([a-z-]+)$/.exec(new URL(req.url ?? '/', 'http://broker').pathname)?.[1] as BrokerOp | undefined;
      entry.op = op ?? req.url;
      if (!op || !BROKER_OPS.includes(op)) throw refuse(404, 'EIO', `no such operation: ${req.method} ${req.url}`);
      if (req.method !== 'POST') throw refuse(405, 'EIO', `${op}: POST only`);
      const problem = this.hosts.unusable();
      if (problem) throw refuse(503, 'EAGAIN', `the broker cannot use its hosts file, so it accepts no token: ${problem}`, true);
      const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const host = bearer ? this.hosts.hostOf(bearer) : undefined;
      if (!host) throw refuse(401, 'EACCES', bearer ? 'the broker knows no such token' : 'no "Authorization: Bearer <token>"');
      entry.host = host;
      const body = await readJson(req);
      answer = await this.op(op, host, body, entry);
    } catch (err) {
      const r = asRefusal(err);
      status = r.status;
      answer = { error: r.body } satisfies BrokerErrorBody;
      entry.error = r.body.message;
    }
    const text = JSON.stringify(answer);
    if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
    this.o.log({ time: new Date().toISOString(), host: entry.host ?? '-', op: entry.op, ...entry, status, ms: Date.now() - t0 });
  }

  private async op(op: BrokerOp, host: string, body: Record<string, unknown>, entry: Record<string, unknown>): Promise<BrokerOps[BrokerOp]['res']> {
    const s = this.store;
    const key = (field = 'key') => (entry[field] = this.key(body, host, field));
    switch (op) {
      case 'probe': {
        await this.probe();
        return { bucket: this.o.where.bucket, prefix: this.o.where.prefix, host, expiresS: this.presigner.expiresS };
      }
      case 'head': {
        const o = await s.head(key());
        return { object: o ? info(o) : null };
      }
      case 'create':
        return { uploadId: await s.createUpload(key()) };
      case 'list-parts': {
        const parts = await s.listParts(key(), str(body, 'uploadId'));
        return { parts: parts ?? null };
      }
      case 'complete': {
        const k = key();
        const uploadId = str(body, 'uploadId');
        const parts = completionParts(body.parts);
        entry.parts = parts.length;
        // The store may not honour If-None-Match on a completion: asked first.
        if (await s.head(k)) throw exists(k);
        return { etag: await s.completeUpload(k, uploadId, parts) };
      }
      case 'abort':
        await s.abortUpload(key(), str(body, 'uploadId'));
        return {};
      case 'list': {
        const prefix = str(body, 'prefix');
        entry.key = prefix;
        if (!prefix.startsWith(this.scope(host)) || prefix.split('/').includes('..'))
          throw refuse(403, 'EACCES', `${prefix} is outside ${this.scope(host)}, the prefix of ${host}'s captures: this token lists nothing else`);
        const after = typeof body.after === 'string' ? body.after : undefined;
        const objects: ObjectInfo[] = [];
        for await (const o of s.list(prefix)) {
          if (after !== undefined && o.key <= after) continue;
          if (objects.length === PAGE) return { objects, next: objects[PAGE - 1]!.key };
          objects.push(info(o));
        }
        return { objects };
      }
      case 'presign-part': {
        const k = key();
        const n = int(body, 'n', 1, 10_000);
        entry.part = n;
        int(body, 'length', 0, MAX_PART);
        return this.presigner.part(k, str(body, 'uploadId'), n, str(body, 'md5', MD5_B64), str(body, 'sha256', SHA256_HEX));
      }
      case 'presign-put': {
        const k = key();
        int(body, 'length', 0, MAX_PART);
        const md5 = str(body, 'md5', MD5_B64);
        const sha256 = str(body, 'sha256', SHA256_HEX);
        if (await s.head(k)) throw exists(k);
        return this.presigner.put(k, md5, sha256);
      }
      case 'presign-get': {
        const k = key();
        let range: [number, number] | undefined;
        if (body.range !== undefined) {
          const r = body.range;
          if (!Array.isArray(r) || r.length !== 2 || !r.every((x) => Number.isSafeInteger(x) && (x as number) >= 0) || (r[0] as number) >= (r[1] as number))
            throw refuse(400, 'EIO', '"range" must be [start, end) with start < end');
          range = [r[0] as number, r[1] as number];
          entry.range = `${range[0]}-${range[1] - 1}`;
        }
        return this.presigner.get(k, range);
      }
      case 'presign-delete': {
        const k = key();
        if (!PROBE_NAME.test(k.slice(this.scope(host).length)))
          throw refuse(403, 'EACCES', `${k}: a host may delete only its own pre-flight objects (${this.scope(host)}.physcap-probe-*), never a capture`);
        return this.presigner.delete(k);
      }
    }
  }

  /** The store's pre-flight check with the broker's keys: undefined when it passed, else why not. */
  async checkStore(): Promise<string | undefined> {
    try {
      await this.probe();
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** The broker's own pre-flight check (its keys, the bucket), at most once a minute for the whole fleet. */
  private probe(): Promise<void> {
    const now = Date.now();
    if (this.probed && now - this.probed.at < PROBE_CACHE_MS) return this.probed.done;
    const done = this.store.probe();
    this.probed = { at: now, done };
    done.catch(() => {
      if (this.probed?.done === done) this.probed = undefined;
    });
    return done;
  }
}

function exists(key: string): Refusal {
  return refuse(409, 'EEXIST', `${key} is already there: the broker never writes over an object`);
}

function completionParts(v: unknown): Array<{ n: number; etag: string; sha256?: string }> {
  if (!Array.isArray(v) || !v.length || v.length > 10_000) throw refuse(400, 'EIO', '"parts" must list 1 to 10000 parts');
  let last = 0;
  return v.map((p: unknown) => {
    if (!isObject(p)) throw refuse(400, 'EIO', '"parts": each part is { n, etag, sha256? }');
    const n = int(p, 'n', last + 1, 10_000);
    last = n;
    const etag = str(p, 'etag', /^"?[^"\s]{1,128}"?$/);
    const sha256 = p.sha256 === undefined ? undefined : str(p, 'sha256', SHA256_HEX);
    return { n, etag, ...(sha256 ? { sha256 } : {}) };
  });
}

function asRefusal(err: unknown): Refusal {
  if (err instanceof Refusal) return err;
  if (err instanceof RemoteError) {
    if (err.code === 'EEXIST') return new Refusal(409, { code: 'EEXIST', message: err.message, retryable: false, serverCode: err.serverCode });
    // The store failed or refused the broker: what it said, and whether waiting can help.
    return new Refusal(502, { code: err.code, message: err.message, retryable: err.retryable, ...(err.serverCode ? { serverCode: err.serverCode } : {}) });
  }
  return refuse(500, 'EIO', `the broker failed: ${(err as Error).message}`);
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_REQUEST_BYTES) throw refuse(413, 'EIO', `a request body over ${MAX_REQUEST_BYTES} bytes`);
    chunks.push(c);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw refuse(400, 'EIO', 'the request body is not JSON');
  }
  if (!isObject(v)) throw refuse(400, 'EIO', 'the request body is not a JSON object');
  return v;
}

/** The AWS SDK's own chain (instance roles, SSO...), for the signer when the broker has no file or environment keys. */
function chainCredentials(region: string): SigningCredentials {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { S3Client } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
  const client = new S3Client({ region });
  return () => client.config.credentials();
}
