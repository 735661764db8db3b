/**
 * An S3-compatible bucket as a RemoteTarget, through the AWS SDK v3 with
 * its default request checksums off: CRC32 on every request cost 2.4× the
 * time against radosgw and breaks some S3-compatible servers
 * (aws-sdk-js-v3 #6810).  The integrity every body carries instead is what
 * servers enforce: Content-MD5, and the SigV4 signed payload hash, which
 * for a part is the manifest's own chunk digest (set here, so the SDK does
 * not hash the body a second time); x-amz-checksum-sha256 rides along for
 * servers that check it.  The SDK's retries are off too: the copy retries
 * each step itself (remote/retry.ts), within its journal.
 */
import type * as S3 from '@aws-sdk/client-s3';
import * as crypto from 'node:crypto';

import { Body, RemoteError, RemoteObject, RemotePart, RemoteTarget } from '../remote/target';

export interface S3Location {
  bucket: string;
  /** Without leading or trailing slashes; "" for the bucket's root. */
  prefix: string;
}

export interface S3Connection {
  /** https://host:port for an S3-compatible store; undefined for AWS (the SDK's own endpoints). */
  endpoint?: string;
  region: string;
  pathStyle: boolean;
  credentials?: S3.S3ClientConfig['credentials'];
}

/** s3://bucket/prefix → its parts; undefined when it is not an s3:// location. */
export function parseS3Url(location: string): S3Location | undefined {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  if (!m) return undefined;
  return { bucket: m[1]!, prefix: m[2]!.replace(/^\/+|\/+$/g, '') };
}

/** The key prefix of a host's captures (or of every host's, without one): <prefix>/<host>/. */
export function s3Prefix(l: S3Location, host?: string): string {
  const p = l.prefix ? `${l.prefix}/` : '';
  return host ? `${p}${host}/` : p;
}

export function s3Url(l: S3Location): string {
  return `s3://${l.bucket}/${l.prefix ? `${l.prefix}/` : ''}`;
}

/** The SDK, loaded on first use: it is large, and most commands never talk to S3. */
function sdk(): typeof S3 {
  // The SDK warns on every load that its releases from 2027 will need Node 22; the version
  // package.json pins runs on Node 20 (engines), so the CLI's output stays clean.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('@aws-sdk/client-s3') as typeof S3;
}

const RETRYABLE_NAMES = new Set(['SlowDown', 'RequestTimeout', 'InternalError', 'ServiceUnavailable', 'RequestTimeTooSkewed', 'TimeoutError']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED', 'ENOTFOUND']);

/** An SDK failure as a RemoteError the copy can act on. */
export function classify(err: unknown, what: string, where: string): RemoteError {
  const e = err as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number }; Code?: string };
  const name = e.Code ?? e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const msg = `${where}: ${what}: ${name}${status ? ` (HTTP ${status})` : ''}${e.message && e.message !== name ? `: ${e.message}` : ''}`;
  if (e.code && NETWORK_CODES.has(e.code)) return new RemoteError(`${where}: ${what}: ${e.code}: cannot reach the server`, 'EAGAIN', true, e.code);
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden', 'InvalidToken', 'ExpiredToken'].includes(name) || status === 403)
    return new RemoteError(`${msg}: the credentials were refused`, 'EACCES', false, name);
  if (name === 'NoSuchBucket') return new RemoteError(`${msg}: no such bucket`, 'ENOENT', false, name);
  if (name === 'PreconditionFailed' || status === 412) return new RemoteError(msg, 'EEXIST', false, name);
  if (['BadDigest', 'XAmzContentSHA256Mismatch', 'InvalidDigest'].includes(name))
    return new RemoteError(`${msg}: the body arrived damaged`, 'EBADMSG', true, name);
  if (RETRYABLE_NAMES.has(name) || (status !== undefined && status >= 500) || status === 429) return new RemoteError(msg, 'EAGAIN', true, name);
  // No HTTP answer at all (a socket torn mid-request): the network, not the request.
  if (status === undefined && !e.Code) return new RemoteError(`${msg}: no answer from the server`, 'EAGAIN', true, e.code ?? name);
  return new RemoteError(msg, 'EIO', false, name);
}

export class S3Target implements RemoteTarget {
  readonly location: string;
  readonly etags = true;
  private readonly client: S3.S3Client;

  constructor(
    readonly where: S3Location,
    conn: S3Connection,
  ) {
    this.location = s3Url(where);
    const { S3Client } = sdk();
    this.client = new S3Client({
      region: conn.region,
      ...(conn.endpoint ? { endpoint: conn.endpoint } : {}),
      forcePathStyle: conn.pathStyle,
      ...(conn.credentials ? { credentials: conn.credentials } : {}),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
    });
  }

  key(host: string, id: string, file: string): string {
    return `${this.prefix(host)}${id}/${file}`;
  }

  prefix(host?: string): string {
    return s3Prefix(this.where, host);
  }

  close(): void {
    this.client.destroy();
  }

  private async send<T>(what: string, command: object, signal?: AbortSignal, payloadSha256?: string): Promise<T> {
    if (payloadSha256) {
      const hex = payloadSha256;
      (command as { middlewareStack: { add: (m: unknown, o: unknown) => void } }).middlewareStack.add(
        (next: (a: { request: { headers: Record<string, string> } }) => unknown) => (args: { request: { headers: Record<string, string> } }) => {
          args.request.headers['x-amz-content-sha256'] = hex;
          return next(args);
        },
        { step: 'build', name: 'physcapPayloadHash' },
      );
    }
    try {
      return (await this.client.send(command as never, { abortSignal: signal })) as T;
    } catch (err) {
      if (signal?.aborted) throw err;
      throw classify(err, what, this.location);
    }
  }

  async probe(signal?: AbortSignal): Promise<void> {
    const S = sdk();
    const key = `${this.prefix()}.physcap-probe-${process.pid}-${Date.now()}`;
    const data = Buffer.from(`physcap pre-flight ${new Date().toISOString()}\n`);
    const body = bodyOf(data);
    await this.putWhole(key, body, signal);
    try {
      const got = await this.get(key, undefined, signal);
      if (!got.equals(data)) throw new RemoteError(`${this.location}: pre-flight: ${key} read back differs from what was written`, 'EIO', false);
    } finally {
      await this.send('delete the pre-flight object', new S.DeleteObjectCommand({ Bucket: this.where.bucket, Key: key }), signal);
    }
  }

  async head(key: string, signal?: AbortSignal): Promise<RemoteObject | undefined> {
    const S = sdk();
    try {
      const r = await this.send<S3.HeadObjectCommandOutput>(`head ${key}`, new S.HeadObjectCommand({ Bucket: this.where.bucket, Key: key }), signal);
      return { key, size: Number(r.ContentLength ?? 0), etag: r.ETag, modified: r.LastModified };
    } catch (err) {
      // HEAD has no body to name its error: a 404 is "not there" (a missing bucket included; probe() tells them apart).
      if (err instanceof RemoteError && (err.serverCode === 'NotFound' || err.serverCode === 'NoSuchKey')) return undefined;
      throw err;
    }
  }

  async putWhole(key: string, body: Body, signal?: AbortSignal): Promise<string> {
    const S = sdk();
    const r = await this.send<S3.PutObjectCommandOutput>(
      `put ${key}`,
      new S.PutObjectCommand({
        Bucket: this.where.bucket,
        Key: key,
        Body: body.data,
        ContentLength: body.data.length,
        ContentMD5: body.md5.toString('base64'),
        ChecksumSHA256: Buffer.from(body.sha256, 'hex').toString('base64'),
        IfNoneMatch: '*',
      }),
      signal,
      body.sha256,
    );
    return r.ETag ?? '';
  }

  async createUpload(key: string, signal?: AbortSignal): Promise<string> {
    const S = sdk();
    const r = await this.send<S3.CreateMultipartUploadCommandOutput>(
      `create upload ${key}`,
      new S.CreateMultipartUploadCommand({ Bucket: this.where.bucket, Key: key, ChecksumAlgorithm: 'SHA256' }),
      signal,
    );
    if (!r.UploadId) throw new RemoteError(`${this.location}: create upload ${key}: no UploadId in the answer`, 'EIO', false);
    return r.UploadId;
  }

  async listParts(key: string, uploadId: string, signal?: AbortSignal): Promise<RemotePart[] | undefined> {
    const S = sdk();
    const out: RemotePart[] = [];
    let marker: string | undefined;
    try {
      for (;;) {
        const r = await this.send<S3.ListPartsCommandOutput>(
          `list parts ${key}`,
          new S.ListPartsCommand({ Bucket: this.where.bucket, Key: key, UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}) }),
          signal,
        );
        for (const p of r.Parts ?? []) out.push({ n: p.PartNumber ?? 0, etag: p.ETag ?? '', size: Number(p.Size ?? 0) });
        if (!r.IsTruncated || !r.NextPartNumberMarker) return out;
        marker = r.NextPartNumberMarker;
      }
    } catch (err) {
      if (err instanceof RemoteError && err.serverCode === 'NoSuchUpload') return undefined;
      throw err;
    }
  }

  async putPart(key: string, uploadId: string, n: number, _offset: number, body: Body, signal?: AbortSignal): Promise<string> {
    const S = sdk();
    const r = await this.send<S3.UploadPartCommandOutput>(
      `part ${n} of ${key}`,
      new S.UploadPartCommand({
        Bucket: this.where.bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: n,
        Body: body.data,
        ContentLength: body.data.length,
        ContentMD5: body.md5.toString('base64'),
        ChecksumSHA256: Buffer.from(body.sha256, 'hex').toString('base64'),
      }),
      signal,
      body.sha256,
    );
    return r.ETag ?? '';
  }

  async completeUpload(key: string, uploadId: string, parts: Array<{ n: number; etag: string; sha256?: string }>, signal?: AbortSignal): Promise<string> {
    const S = sdk();
    const r = await this.send<S3.CompleteMultipartUploadCommandOutput>(
      `complete ${key}`,
      new S.CompleteMultipartUploadCommand({
        Bucket: this.where.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: {
          Parts: parts.map((p) => ({
            PartNumber: p.n,
            ETag: p.etag,
            ...(p.sha256 ? { ChecksumSHA256: Buffer.from(p.sha256, 'hex').toString('base64') } : {}),
          })),
        },
        IfNoneMatch: '*',
      }),
      signal,
    );
    return r.ETag ?? '';
  }

  async abortUpload(key: string, uploadId: string, signal?: AbortSignal): Promise<void> {
    const S = sdk();
    await this.send('abort upload', new S.AbortMultipartUploadCommand({ Bucket: this.where.bucket, Key: key, UploadId: uploadId }), signal);
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<RemoteObject> {
    const S = sdk();
    let token: string | undefined;
    for (;;) {
      const r = await this.send<S3.ListObjectsV2CommandOutput>(
        `list ${prefix}`,
        new S.ListObjectsV2Command({ Bucket: this.where.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }),
        signal,
      );
      for (const o of r.Contents ?? []) yield { key: o.Key ?? '', size: Number(o.Size ?? 0), etag: o.ETag, modified: o.LastModified };
      if (!r.IsTruncated || !r.NextContinuationToken) return;
      token = r.NextContinuationToken;
    }
  }

  async get(key: string, range?: [number, number], signal?: AbortSignal): Promise<Buffer> {
    const S = sdk();
    const r = await this.send<S3.GetObjectCommandOutput>(
      `get ${key}`,
      new S.GetObjectCommand({ Bucket: this.where.bucket, Key: key, ...(range ? { Range: `bytes=${range[0]}-${range[1] - 1}` } : {}) }),
      signal,
    );
    const bytes = Buffer.from(await r.Body!.transformToByteArray());
    if (range && bytes.length !== range[1] - range[0])
      throw new RemoteError(`${this.location}: get ${key} bytes ${range[0]}-${range[1] - 1}: ${bytes.length} bytes came back`, 'EAGAIN', true);
    return bytes;
  }
}

/** A body with its digests, for the small objects the target writes itself. */
export function bodyOf(data: Buffer): Body {
  return { data, md5: crypto.createHash('md5').update(data).digest(), sha256: crypto.createHash('sha256').update(data).digest('hex') };
}
