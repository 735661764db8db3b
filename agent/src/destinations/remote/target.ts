/**
 * What the copy to remote storage needs from a remote destination kind:
 * whole objects, multipart uploads that survive the uploader, and reads.
 * An S3-compatible store implements it with its own multipart API; every
 * step a kind takes is named by a RemoteError code the copy acts on.
 */

export interface RemoteObject {
  key: string;
  size: number;
  /** As the server reports it, quoted (S3): MD5 for a whole object, MD5-of-MD5s and "-N" for a multipart one. */
  etag?: string;
  modified?: Date;
}

/** One request's body with the integrity the server checks. */
export interface Body {
  data: Buffer;
  /** MD5 (raw): Content-MD5, which the server enforces. */
  md5: Buffer;
  /** SHA-256 (hex): the signed payload hash, which the server enforces, and x-amz-checksum-sha256. */
  sha256: string;
}

export interface RemotePart {
  n: number;
  etag: string;
  size: number;
}

export interface RemoteTarget {
  /** How a user names it: s3://bucket/prefix. */
  readonly location: string;
  /**
   * The server reports what it holds by digest (S3's ETags: MD5s), so a
   * part or object it has can be told apart from one it half has.  Without
   * them (SFTP) only sizes are reported: a part counts once the journal
   * has it, which putPart() records only after the server made it durable.
   */
  readonly etags: boolean;
  /** The key of one file of one host's capture. */
  key(host: string, id: string, file: string): string;
  /** The prefix every capture of a host (or of every host, without one) is under. */
  prefix(host?: string): string;
  /** The pre-flight check: a small object written, read back and deleted. */
  probe(signal?: AbortSignal): Promise<void>;
  head(key: string, signal?: AbortSignal): Promise<RemoteObject | undefined>;
  /** A whole object, never over one that exists (RemoteError EEXIST). */
  putWhole(key: string, body: Body, signal?: AbortSignal): Promise<string>;
  createUpload(key: string, signal?: AbortSignal): Promise<string>;
  /** The parts the server holds (none listed by a target without ETags); undefined when the upload is gone (completed or aborted). */
  listParts(key: string, uploadId: string, signal?: AbortSignal): Promise<RemotePart[] | undefined>;
  /** Part n, at `offset` of the object; resolves once the server holds it (durably, for a target without ETags). */
  putPart(key: string, uploadId: string, n: number, offset: number, body: Body, signal?: AbortSignal): Promise<string>;
  /** Completes with exactly these parts; returns the object's ETag. */
  completeUpload(key: string, uploadId: string, parts: Array<{ n: number; etag: string; sha256?: string }>, signal?: AbortSignal): Promise<string>;
  abortUpload(key: string, uploadId: string, signal?: AbortSignal): Promise<void>;
  list(prefix: string, signal?: AbortSignal): AsyncIterable<RemoteObject>;
  /** An object's bytes, or [start, end) of them. */
  get(key: string, range?: [number, number], signal?: AbortSignal): Promise<Buffer>;
  close(): void;
}

/**
 * A remote step that failed, classified: `retryable` when waiting and
 * trying again can help (the server or network is away, it asked to slow
 * down, a body arrived damaged); never for refused credentials, a missing
 * bucket or an object that is already there.
 */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly code: RemoteErrorCode,
    readonly retryable: boolean,
    /** The server's own error name (AccessDenied, BadDigest, ...), when it gave one. */
    readonly serverCode?: string,
  ) {
    super(message);
  }
}

export type RemoteErrorCode =
  /** Credentials refused, or not allowed. */
  | 'EACCES'
  /** No such bucket (or container, or directory). */
  | 'ENOENT'
  /** The object is already there and is not this copy's. */
  | 'EEXIST'
  /** A body the server refused as damaged: its MD5 or signed SHA-256 did not match. */
  | 'EBADMSG'
  /** Cannot reach the server, or it failed (5xx), or asked to slow down. */
  | 'EAGAIN'
  /** Anything else the server refused. */
  | 'EIO';
