/**
 * An S3 bucket reached through a credentials broker (`physcap broker
 * serve`): the host holds a token, never the store's keys.  The broker
 * does the metadata requests and answers presigned URLs for the ones that
 * carry bytes; this target sends those itself with Node's fetch, with the
 * headers the URL was signed for (Content-MD5, the payload's SHA-256, and
 * If-None-Match: * for a whole object), so the store takes from it only the
 * bytes it declared to the broker.  Failures are RemoteErrors like the
 * SDK target's: the copy (remote/ship.ts) cannot tell the two apart.
 */
import * as crypto from 'node:crypto';
import * as os from 'node:os';

import { Body, RemoteError, RemoteErrorCode, RemoteObject, RemotePart, RemoteTarget } from '../remote/target';
import type { BrokerErrorBody, BrokerOp, BrokerOps, ObjectInfo, Presigned } from './broker/protocol';
import { bodyOf, classify, S3Location, s3Prefix, s3Url } from './target';

export interface BrokerConnection {
  /** http(s)://host:port of the broker. */
  broker: string;
  token: string;
}

const METADATA_TIMEOUT_MS = 30_000;
const DATA_TIMEOUT_MS = 120_000;
/**
 * A request that carries bytes is given this much more time per byte: the
 * limit is on the whole request (fetch has no idle timeout), and a board's
 * uplink may be slow; 64 KiB/s is the slowest link a part is waited for.
 */
const SLOWEST_BYTES_PER_S = 64 * 1024;
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED', 'ENOTFOUND']);
const CODES = new Set<RemoteErrorCode>(['EACCES', 'ENOENT', 'EEXIST', 'EBADMSG', 'EAGAIN', 'EIO']);

const object = (o: ObjectInfo): RemoteObject => ({ key: o.key, size: o.size, etag: o.etag, ...(o.modified ? { modified: new Date(o.modified) } : {}) });

/** The caller's signal and a time limit, as one. */
function within(ms: number, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}

/** A fetch that failed before any answer: the network (or the time limit), which waiting can mend. */
function unreachable(err: unknown, what: string, where: string): RemoteError {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code;
  if (e.name === 'TimeoutError') return new RemoteError(`${where}: ${what}: no answer in time`, 'EAGAIN', true, 'TimeoutError');
  if (code && NETWORK_CODES.has(code)) return new RemoteError(`${where}: ${what}: ${code}: cannot reach it`, 'EAGAIN', true, code);
  // A certificate this host does not trust: no wait mends it.
  if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code))
    return new RemoteError(
      `${where}: ${what}: ${code}: ${e.cause?.message ?? ''}: the server's TLS certificate is not trusted here (NODE_EXTRA_CA_CERTS names a CA to trust)`,
      'EACCES',
      false,
      code,
    );
  return new RemoteError(`${where}: ${what}: ${e.cause?.message ?? e.message ?? String(err)}`, 'EAGAIN', true, code ?? e.name);
}

export class BrokerTarget implements RemoteTarget {
  readonly location: string;
  readonly etags = true;
  private readonly broker: string;

  constructor(
    readonly where: S3Location,
    private readonly conn: BrokerConnection,
  ) {
    this.location = s3Url(where);
    this.broker = conn.broker.replace(/\/+$/, '');
  }

  key(host: string, id: string, file: string): string {
    return `${this.prefix(host)}${id}/${file}`;
  }

  prefix(host?: string): string {
    return s3Prefix(this.where, host);
  }

  close(): void {
    /* nothing held open: fetch's connections are pooled by Node */
  }

  /** One operation at the broker. */
  private async call<O extends BrokerOp>(op: O, req: BrokerOps[O]['req'], signal?: AbortSignal, what?: string): Promise<BrokerOps[O]['res']> {
    const name = what ?? op;
    const where = `${this.location} (broker ${this.broker})`;
    let r: Response;
    let text: string;
    try {
      r = await fetch(`${this.broker}/v1/${op}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.conn.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(req),
        signal: within(METADATA_TIMEOUT_MS, signal),
      });
      text = await r.text();
    } catch (err) {
      if (signal?.aborted) throw err;
      throw unreachable(err, name, where);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (r.ok && body !== undefined) return body as BrokerOps[O]['res'];
    throw brokerError(r.status, r.statusText, (body as Partial<BrokerErrorBody> | undefined)?.error, text, name, where);
  }

  /** A presigned request to the store, with the headers it was signed for. */
  private async send(what: string, p: Presigned, body: Buffer | undefined, signal?: AbortSignal, expectBytes = 0): Promise<Response> {
    const bytes = body?.length ?? expectBytes;
    let r: Response;
    try {
      r = await fetch(p.url, {
        method: p.method,
        headers: p.headers,
        ...(body ? { body: new Uint8Array(body.buffer, body.byteOffset, body.length) } : {}),
        signal: within(DATA_TIMEOUT_MS + Math.ceil((bytes / SLOWEST_BYTES_PER_S) * 1000), signal),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw unreachable(err, what, this.location);
    }
    if (r.ok) return r;
    const text = await r.text().catch(() => '');
    const tag = (t: string) => new RegExp(`<${t}>([^<]*)</${t}>`).exec(text)?.[1];
    const code = tag('Code') ?? (r.status === 404 ? 'NotFound' : `HTTP${r.status}`);
    const e = classify({ Code: code, name: code, message: tag('Message') || undefined, $metadata: { httpStatusCode: r.status } }, what, this.location);
    if (e.code !== 'EACCES') throw e;
    throw new RemoteError(
      `${e.message.replace(/: the credentials were refused$/, '')}: the store refused the presigned URL (expired, or not the request it was signed for)`,
      'EACCES',
      false,
      e.serverCode,
    );
  }

  async probe(signal?: AbortSignal): Promise<void> {
    const who = await this.call('probe', {}, signal);
    if (who.bucket !== this.where.bucket || who.prefix !== this.where.prefix)
      throw new RemoteError(
        `${this.location}: the broker ${this.broker} serves ${s3Url({ bucket: who.bucket, prefix: who.prefix })}, not this profile's ${this.location}`,
        'EIO',
        false,
      );
    const here = os.hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'unknown-host';
    if (who.host !== here)
      throw new RemoteError(
        `${this.location}: the broker ${this.broker} knows this token as host ${who.host}, but this machine files its captures as ${here}: its copies would be refused`,
        'EACCES',
        false,
      );
    // The path the bytes take: a presigned write, read back, then removed.
    const key = `${this.prefix(who.host)}.physcap-probe-${process.pid}-${Date.now()}-${crypto.randomBytes(4).toString('hex')}`;
    const data = Buffer.from(`physcap pre-flight through the broker ${new Date().toISOString()}\n`);
    await this.putWhole(key, bodyOf(data), signal);
    try {
      const got = await this.get(key, undefined, signal);
      if (!got.equals(data)) throw new RemoteError(`${this.location}: pre-flight: ${key} read back differs from what was written`, 'EIO', false);
    } finally {
      const p = await this.call('presign-delete', { key }, signal, `delete ${key}`);
      await (await this.send(`delete ${key}`, p, undefined, signal)).arrayBuffer();
    }
  }

  async head(key: string, signal?: AbortSignal): Promise<RemoteObject | undefined> {
    const r = await this.call('head', { key }, signal, `head ${key}`);
    return r.object ? object(r.object) : undefined;
  }

  async putWhole(key: string, body: Body, signal?: AbortSignal): Promise<string> {
    const what = `put ${key}`;
    const p = await this.call('presign-put', { key, md5: body.md5.toString('base64'), sha256: body.sha256, length: body.data.length }, signal, what);
    const r = await this.send(what, p, body.data, signal);
    await r.arrayBuffer();
    return r.headers.get('etag') ?? '';
  }

  async createUpload(key: string, signal?: AbortSignal): Promise<string> {
    return (await this.call('create', { key }, signal, `create upload ${key}`)).uploadId;
  }

  async listParts(key: string, uploadId: string, signal?: AbortSignal): Promise<RemotePart[] | undefined> {
    return (await this.call('list-parts', { key, uploadId }, signal, `list parts ${key}`)).parts ?? undefined;
  }

  async putPart(key: string, uploadId: string, n: number, _offset: number, body: Body, signal?: AbortSignal): Promise<string> {
    const what = `part ${n} of ${key}`;
    const p = await this.call(
      'presign-part',
      { key, uploadId, n, md5: body.md5.toString('base64'), sha256: body.sha256, length: body.data.length },
      signal,
      what,
    );
    const r = await this.send(what, p, body.data, signal);
    await r.arrayBuffer();
    return r.headers.get('etag') ?? '';
  }

  async completeUpload(key: string, uploadId: string, parts: Array<{ n: number; etag: string; sha256?: string }>, signal?: AbortSignal): Promise<string> {
    return (await this.call('complete', { key, uploadId, parts }, signal, `complete ${key}`)).etag;
  }

  async abortUpload(key: string, uploadId: string, signal?: AbortSignal): Promise<void> {
    await this.call('abort', { key, uploadId }, signal, 'abort upload');
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<RemoteObject> {
    let after: string | undefined;
    for (;;) {
      const r = await this.call('list', { prefix, ...(after !== undefined ? { after } : {}) }, signal, `list ${prefix}`);
      for (const o of r.objects) yield object(o);
      if (!r.next) return;
      after = r.next;
    }
  }

  async get(key: string, range?: [number, number], signal?: AbortSignal): Promise<Buffer> {
    const what = range ? `get ${key} bytes ${range[0]}-${range[1] - 1}` : `get ${key}`;
    const p = await this.call('presign-get', { key, ...(range ? { range } : {}) }, signal, what);
    const r = await this.send(what, p, undefined, signal, range ? range[1] - range[0] : 0);
    let bytes: Buffer;
    try {
      bytes = Buffer.from(await r.arrayBuffer());
    } catch (err) {
      if (signal?.aborted) throw err;
      throw unreachable(err, what, this.location);
    }
    if (range && bytes.length !== range[1] - range[0]) throw new RemoteError(`${this.location}: ${what}: ${bytes.length} bytes came back`, 'EAGAIN', true);
    return bytes;
  }
}

/** A refusal by the broker as the RemoteError the copy acts on. */
function brokerError(status: number, statusText: string, e: BrokerErrorBody['error'] | undefined, text: string, what: string, where: string): RemoteError {
  const said = e?.message ?? (text.trim().slice(0, 200) || statusText);
  const msg = `${where}: ${what}: the broker answered HTTP ${status}${statusText ? ` ${statusText}` : ''}: ${said}`;
  if (status === 401) return new RemoteError(`${msg}: this host's token is not enrolled (or was revoked)`, 'EACCES', false, 'Unauthorized');
  if (status === 403) return new RemoteError(msg, 'EACCES', false, 'Forbidden');
  if (status === 409) return new RemoteError(msg, 'EEXIST', false, e?.serverCode ?? 'Conflict');
  // The store's own answer, passed on by the broker: its code and whether waiting helps.
  if (status === 502 && e && CODES.has(e.code)) return new RemoteError(msg, e.code, e.retryable, e.serverCode);
  if (status >= 500 || status === 429) return new RemoteError(msg, 'EAGAIN', true, e?.serverCode ?? `HTTP${status}`);
  return new RemoteError(msg, 'EIO', false, e?.serverCode ?? `HTTP${status}`);
}
