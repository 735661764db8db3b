/**
 * What a host and the credentials broker say to each other (`physcap broker
 * serve`, s3/broker-target.ts): one POST per operation to /v1/<op> with a
 * JSON body, `Authorization: Bearer <token>`, and a JSON answer.  The broker
 * does the small metadata requests itself, with its keys; for the requests
 * that carry capture bytes it answers a presigned URL and the headers the
 * host must send with it, signed: the URL is good for those bytes only.
 */
import type { RemoteErrorCode } from '../../remote/target';

/** Seconds a presigned URL is good for. */
export const PRESIGN_EXPIRES_S = 15 * 60;

/** The largest request body the broker reads (a completion names up to 10,000 parts). */
export const MAX_REQUEST_BYTES = 8 * 1024 * 1024;

export interface ObjectInfo {
  key: string;
  size: number;
  etag?: string;
  /** ISO 8601. */
  modified?: string;
}

/** A URL to send one request to the store with, and the headers that must go with it (signed). */
export interface Presigned {
  method: 'PUT' | 'GET' | 'DELETE';
  url: string;
  headers: Record<string, string>;
  /** ISO 8601: when the store stops taking it. */
  expires: string;
}

/** Every operation: its request body and its answer. */
export interface BrokerOps {
  /** The broker's own check of the store (its keys, the bucket), and who the token is. */
  probe: { req: Record<string, never>; res: { bucket: string; prefix: string; host: string; expiresS: number } };
  head: { req: { key: string }; res: { object: ObjectInfo | null } };
  create: { req: { key: string }; res: { uploadId: string } };
  'list-parts': { req: { key: string; uploadId: string }; res: { parts: Array<{ n: number; etag: string; size: number }> | null } };
  /** Refused (409) when the object is there: a completion never replaces one. */
  complete: { req: { key: string; uploadId: string; parts: Array<{ n: number; etag: string; sha256?: string }> }; res: { etag: string } };
  abort: { req: { key: string; uploadId: string }; res: Record<string, never> };
  /** One page of the objects under a prefix inside the host's. */
  list: { req: { prefix: string; after?: string }; res: { objects: ObjectInfo[]; next?: string } };
  /** md5: base64 (Content-MD5); sha256: hex (the signed payload hash and x-amz-checksum-sha256). */
  'presign-part': { req: { key: string; uploadId: string; n: number; md5: string; sha256: string; length: number }; res: Presigned };
  /** A whole object, signed with If-None-Match: * as well; refused (409) when the object is there. */
  'presign-put': { req: { key: string; md5: string; sha256: string; length: number }; res: Presigned };
  /** range: [start, end) of the object. */
  'presign-get': { req: { key: string; range?: [number, number] }; res: Presigned };
  /** Only the host's own pre-flight objects (<prefix>/<host>/.physcap-probe-*). */
  'presign-delete': { req: { key: string }; res: Presigned };
}

export type BrokerOp = keyof BrokerOps;

export const BROKER_OPS: readonly BrokerOp[] = [
  'probe',
  'head',
  'create',
  'list-parts',
  'complete',
  'abort',
  'list',
  'presign-part',
  'presign-put',
  'presign-get',
  'presign-delete',
];

/** Every refusal: an HTTP status and this body. */
export interface BrokerErrorBody {
  error: {
    /** What the host's copy does with it (remote/target.ts). */
    code: RemoteErrorCode;
    message: string;
    retryable: boolean;
    /** The store's own error name, when the store refused. */
    serverCode?: string;
  };
}

/** The pre-flight objects' names, below a host's prefix. */
export const PROBE_NAME = /^\.physcap-probe-[A-Za-z0-9._-]{1,128}$/;

/** A host name as remote keys spell it (remote/ship.ts hostOf()). */
export const HOST_NAME = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,253}$/;

/** Whether a host name or address is this machine's loopback (where plain HTTP carries a token safely). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
