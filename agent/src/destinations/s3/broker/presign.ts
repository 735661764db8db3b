/**
 * Presigned S3 URLs (SigV4 query authentication, @smithy/signature-v4, the
 * SDK's own signer) that bind the request, not only the object: every
 * header given here is a signed header the client must send unchanged.
 * For a part or a whole object that is Content-MD5 and the payload hash
 * (x-amz-content-sha256: the body's SHA-256, which the store checks the
 * body against), with x-amz-checksum-sha256, and If-None-Match: * for a
 * whole object; for a ranged read, the Range.  A URL obtained for some
 * bytes is refused for any other bytes, or without the precondition.
 */
import { SignatureV4 } from '@smithy/signature-v4';
import * as crypto from 'node:crypto';

import type { S3Location } from '../target';
import { Presigned, PRESIGN_EXPIRES_S } from './protocol';

type SourceData = string | ArrayBuffer | ArrayBufferView;

/** The keys, or a function that gives them (the SDK's chain). */
export type SigningCredentials = ConstructorParameters<typeof SignatureV4>[0]['credentials'];

/** SHA-256 and its HMAC for the signer, from node:crypto. */
class Sha256 {
  private h: crypto.Hash | crypto.Hmac;
  constructor(private readonly secret?: SourceData) {
    this.h = this.fresh();
  }
  private fresh(): crypto.Hash | crypto.Hmac {
    return this.secret === undefined ? crypto.createHash('sha256') : crypto.createHmac('sha256', bytes(this.secret));
  }
  update(data: Uint8Array): void {
    this.h.update(data);
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
  reset(): void {
    this.h = this.fresh();
  }
}

function bytes(d: SourceData): Buffer {
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

/** RFC 3986 unreserved characters only, as SigV4 encodes. */
export const uriEscape = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export interface PresignerOptions {
  where: S3Location;
  /** An S3-compatible endpoint (path-style URLs); undefined for AWS (virtual-hosted, s3.<region>.amazonaws.com). */
  endpoint?: string;
  region: string;
  credentials: SigningCredentials;
  expiresS?: number;
}

export class Presigner {
  private readonly signer: SignatureV4;
  private readonly base: URL;
  private readonly pathStyle: boolean;
  readonly expiresS: number;

  constructor(private readonly o: PresignerOptions) {
    this.signer = new SignatureV4({ credentials: o.credentials, region: o.region, service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: false });
    this.pathStyle = o.endpoint !== undefined;
    this.base = new URL(o.endpoint ?? `https://${o.where.bucket}.s3.${o.region}.amazonaws.com`);
    this.expiresS = o.expiresS ?? PRESIGN_EXPIRES_S;
  }

  private async presign(method: Presigned['method'], key: string, query: Record<string, string>, headers: Record<string, string>): Promise<Presigned> {
    const basePath = this.base.pathname.replace(/\/$/, '');
    const path = `${basePath}${this.pathStyle ? `/${uriEscape(this.o.where.bucket)}` : ''}/${key.split('/').map(uriEscape).join('/')}`;
    const port = this.base.port ? Number(this.base.port) : undefined;
    const signedAt = new Date();
    // Headers the store must see as given stay headers (signed); a payload hash given
    // is the body's, checked by the store; without one the URL is for any payload.
    const unhoistable = new Set(Object.keys(headers));
    const request = {
      method,
      protocol: this.base.protocol,
      hostname: this.base.hostname,
      ...(port !== undefined ? { port } : {}),
      path,
      query: { ...query },
      headers: { host: this.base.host, ...(headers['x-amz-content-sha256'] ? {} : { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }), ...headers },
    };
    const signed = await this.signer.presign(request, { expiresIn: this.expiresS, signingDate: signedAt, unhoistableHeaders: unhoistable });
    const q = signed.query as Record<string, string>;
    const qs = Object.keys(q)
      .sort()
      .map((k) => `${uriEscape(k)}=${uriEscape(q[k]!)}`)
      .join('&');
    const send: Record<string, string> = {};
    for (const [k, v] of Object.entries(signed.headers)) if (k.toLowerCase() !== 'host') send[k.toLowerCase()] = v;
    return {
      method,
      url: `${this.base.protocol}//${this.base.host}${path}?${qs}`,
      headers: send,
      expires: new Date(signedAt.getTime() + this.expiresS * 1000).toISOString(),
    };
  }

  /** UploadPart: good only for a body with this MD5 (base64) and SHA-256 (hex). */
  part(key: string, uploadId: string, n: number, md5: string, sha256: string): Promise<Presigned> {
    return this.presign('PUT', key, { partNumber: String(n), uploadId }, bodyHeaders(md5, sha256));
  }

  /** PutObject: as part(), and only where no object is (If-None-Match: *). */
  put(key: string, md5: string, sha256: string): Promise<Presigned> {
    return this.presign('PUT', key, {}, { ...bodyHeaders(md5, sha256), 'if-none-match': '*' });
  }

  /** GetObject, of [start, end) when a range is given. */
  get(key: string, range?: [number, number]): Promise<Presigned> {
    return this.presign('GET', key, {}, range ? { range: `bytes=${range[0]}-${range[1] - 1}` } : {});
  }

  delete(key: string): Promise<Presigned> {
    return this.presign('DELETE', key, {}, {});
  }
}

function bodyHeaders(md5: string, sha256: string): Record<string, string> {
  return {
    'content-md5': md5,
    'x-amz-content-sha256': sha256,
    'x-amz-checksum-sha256': Buffer.from(sha256, 'hex').toString('base64'),
  };
}
