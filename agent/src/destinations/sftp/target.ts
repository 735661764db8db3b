/**
 * A directory on an SSH server as a RemoteTarget, over SFTP (ssh2).  The
 * server's host key is pinned (its SHA256 fingerprint in the profile): a
 * server that answers with another key is refused before a byte is sent.
 * Every file is created 0600 and never over one that exists.
 *
 * A multipart upload is a hidden file `<name>.incomplete-<random>`
 * written at each part's offset; a part counts once fsync@openssh.com has
 * made it durable on the server, which is why the journal's word for it
 * is enough after a crash (SFTP servers keep no digests to ask).  The
 * upload completes by a rename, which OpenSSH's SFTP server refuses over
 * an existing file: that is the no-overwrite rule, kept by the server.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path/posix';
import type { Client, ConnectConfig, OpenMode, SFTPWrapper } from 'ssh2';

import { Body, RemoteError, RemoteObject, RemotePart, RemoteTarget } from '../remote/target';

export interface SftpLocation {
  user: string;
  host: string;
  port: number;
  /** Absolute, without a trailing slash ("" for the login directory's root "/"). */
  base: string;
}

export interface SftpAccess {
  /** The private key (OpenSSH or PEM), read from its 0600 file by the caller. */
  privateKey: Buffer;
  /** The server's host key as `ssh-keygen -lf` prints it: SHA256:... */
  hostKey: string;
}

/** sftp://user@host[:port]/path → its parts; undefined when it is not an sftp:// location. */
export function parseSftpUrl(location: string): SftpLocation | undefined {
  const m = /^sftp:\/\/([^@/\s]+)@(\[[^\]]+\]|[^:/\s]+)(?::(\d+))?(\/.*)?$/.exec(location);
  if (!m) return undefined;
  const base = path.normalize(m[4] ?? '/').replace(/\/+$/, '');
  return { user: decodeURIComponent(m[1]!), host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] ? Number(m[3]) : 22, base };
}

export function sftpUrl(l: SftpLocation): string {
  const host = l.host.includes(':') ? `[${l.host}]` : l.host;
  return `sftp://${l.user}@${host}${l.port === 22 ? '' : `:${l.port}`}${l.base}/`;
}

/** A host key's fingerprint as OpenSSH prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${crypto.createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

// SFTP status codes (draft-ietf-secsh-filexfer-02).
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;
const FAILURE = 4;

/** Largest write request, and how many are in flight per part. */
const WRITE_PIECE = 64 * 1024;
const WRITES_IN_FLIGHT = 16;

interface SftpError extends Error {
  code?: number | string;
  level?: string;
}

function ssh2(): typeof import('ssh2') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('ssh2') as typeof import('ssh2');
}

/** Node-style callback calls as promises. */
function call<T>(fn: (cb: (err: Error | undefined | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
}

/**
 * A connected session.  `lost` rejects when the connection closes: ssh2
 * answers requests pending at that moment with an error, but a request
 * made on a closed channel is queued and never answered, so every step
 * races against it.
 */
interface Session {
  client: Client;
  sftp: SFTPWrapper;
  lost: Promise<never>;
}

export class SftpTarget implements RemoteTarget {
  readonly location: string;
  readonly etags = false;
  private session?: Promise<Session>;

  constructor(
    readonly where: SftpLocation,
    private readonly access: SftpAccess,
  ) {
    this.location = sftpUrl(where);
  }

  key(host: string, id: string, file: string): string {
    return `${this.prefix(host)}${id}/${file}`;
  }

  prefix(host?: string): string {
    return `${this.where.base}/${host ? `${host}/` : ''}`;
  }

  close(): void {
    const s = this.session;
    this.session = undefined;
    void s?.then(({ client }) => client.end()).catch(() => undefined);
  }

  /** The SSH session, connected on first use and again after it was lost. */
  private connect(): Promise<Session> {
    this.session ??= new Promise((resolve, reject) => {
      const client = new (ssh2().Client)();
      let mismatch: string | undefined;
      let loseSession: (err: Error) => void = () => undefined;
      const lost = new Promise<never>((_, r) => (loseSession = r));
      lost.catch(() => undefined); // raced by each step; nobody may be waiting when it goes
      const config: ConnectConfig = {
        host: this.where.host,
        port: this.where.port,
        username: this.where.user,
        privateKey: this.access.privateKey,
        readyTimeout: 15_000,
        keepaliveInterval: 10_000,
        hostVerifier: (key: Buffer) => {
          const got = fingerprint(key);
          if (got === this.access.hostKey) return true;
          mismatch = got;
          return false;
        },
      };
      client.on('ready', () =>
        client.sftp((err, sftp) => {
          if (err) return reject(err);
          sftp.on('close', () => loseSession(Object.assign(new Error('the SFTP channel closed'), { code: 'ECONNRESET' })));
          resolve({ client, sftp, lost });
        }),
      );
      client.on('error', (err: SftpError) => {
        if (mismatch) err = Object.assign(new Error(`the server's host key is ${mismatch}, not the pinned ${this.access.hostKey}`), { level: 'host-key' });
        this.session = undefined;
        reject(err);
        loseSession(err);
      });
      client.on('close', () => {
        this.session = undefined;
        reject(Object.assign(new Error('the connection closed'), { code: 'ECONNRESET' }));
        loseSession(Object.assign(new Error('the connection closed'), { code: 'ECONNRESET' }));
      });
      client.connect(config);
    });
    return this.session;
  }

  /** One step on the server, its failure classified. */
  private async op<T>(what: string, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    let session: Session;
    try {
      session = await this.connect();
    } catch (err) {
      throw this.classify(err as SftpError, what);
    }
    try {
      return await Promise.race([fn(session.sftp), session.lost]);
    } catch (err) {
      throw err instanceof RemoteError ? err : this.classify(err as SftpError, what);
    }
  }

  private classify(e: SftpError, what: string): RemoteError {
    const msg = `${this.location}: ${what}: ${e.message}`;
    if (e.level === 'host-key') return new RemoteError(`${msg}: refusing to talk to it`, 'EACCES', false, 'HostKeyMismatch');
    if (e.level === 'client-authentication') return new RemoteError(`${msg}: the key was refused`, 'EACCES', false, 'AuthenticationFailed');
    if (e.code === NO_SUCH_FILE) return new RemoteError(msg, 'ENOENT', false, 'NoSuchFile');
    if (e.code === PERMISSION_DENIED) return new RemoteError(`${msg}: permission denied`, 'EACCES', false, 'PermissionDenied');
    if (typeof e.code === 'number') return new RemoteError(msg, 'EIO', false, `SFTP status ${e.code}`);
    // Everything else is the connection: refused, reset, timed out, closed mid-request.
    this.close();
    return new RemoteError(`${msg}: the connection failed`, 'EAGAIN', true, typeof e.code === 'string' ? e.code : e.level);
  }

  private async stat(sftp: SFTPWrapper, p: string): Promise<{ size: number; isDirectory(): boolean } | undefined> {
    try {
      return await call((cb) => sftp.stat(p, cb));
    } catch (err) {
      if ((err as SftpError).code === NO_SUCH_FILE) return undefined;
      throw err;
    }
  }

  /** Every directory down to `dir`, created 0700 where missing. */
  private async mkdirs(sftp: SFTPWrapper, dir: string): Promise<void> {
    const parts = dir.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const d = `/${parts.slice(0, i).join('/')}`;
      const st = await this.stat(sftp, d);
      if (st?.isDirectory()) continue;
      await call<void>((cb) => sftp.mkdir(d, { mode: 0o700 }, cb)).catch(async (err: SftpError) => {
        // Made meanwhile by another host's copy: fine.
        if (!(await this.stat(sftp, d))?.isDirectory()) throw err;
      });
    }
  }

  private async writeAt(sftp: SFTPWrapper, file: string, flags: OpenMode, data: Buffer, position: number): Promise<void> {
    const handle = await call<Buffer>((cb) => sftp.open(file, flags, { mode: 0o600 }, cb));
    try {
      let next = 0;
      let failed = false;
      const writer = async () => {
        // After a failed write none is started: the caller may reuse `data` once this settles (ssh2 copies what it was given).
        for (let at = next; at < data.length && !failed; at = next) {
          next = at + WRITE_PIECE;
          const n = Math.min(WRITE_PIECE, data.length - at);
          await call<void>((cb) => sftp.write(handle, data, at, n, position + at, cb)).catch((err: Error) => {
            failed = true;
            throw err;
          });
        }
      };
      await Promise.all(Array.from({ length: WRITES_IN_FLIGHT }, writer));
      await call((cb) => sftp.ext_openssh_fsync(handle, cb));
    } finally {
      await call<void>((cb) => sftp.close(handle, cb)).catch(() => undefined);
    }
  }

  async probe(): Promise<void> {
    const key = `${this.prefix()}.physcap-probe-${process.pid}-${Date.now()}`;
    const data = Buffer.from(`physcap pre-flight ${new Date().toISOString()}\n`);
    await this.op('pre-flight', async (sftp) => {
      await this.mkdirs(sftp, this.where.base);
      await this.writeAt(sftp, key, 'wx', data, 0);
      try {
        const got = await this.read(sftp, key, 0, data.length);
        if (!got.equals(data)) throw new RemoteError(`${this.location}: pre-flight: ${key} read back differs from what was written`, 'EIO', false);
      } finally {
        await call<void>((cb) => sftp.unlink(key, cb));
      }
    });
  }

  async head(key: string): Promise<RemoteObject | undefined> {
    return this.op(`stat ${key}`, async (sftp) => {
      const st = await this.stat(sftp, key);
      return st && !st.isDirectory() ? { key, size: st.size } : undefined;
    });
  }

  async putWhole(key: string, body: Body): Promise<string> {
    return this.op(`put ${key}`, async (sftp) => {
      await this.mkdirs(sftp, path.dirname(key));
      const tmp = `${key}.incomplete-${crypto.randomBytes(6).toString('hex')}`;
      await this.writeAt(sftp, tmp, 'wx', body.data, 0);
      await this.rename(sftp, tmp, key);
      return '';
    });
  }

  /** tmp → key, never over an existing key (the temporary file removed if it cannot be). */
  private async rename(sftp: SFTPWrapper, tmp: string, key: string): Promise<void> {
    try {
      await call<void>((cb) => sftp.rename(tmp, key, cb));
    } catch (err) {
      const there = await this.stat(sftp, key);
      await call<void>((cb) => sftp.unlink(tmp, cb)).catch(() => undefined);
      if (there && (err as SftpError).code === FAILURE) throw new RemoteError(`${this.location}: ${key} is already there`, 'EEXIST', false, 'Exists');
      throw err;
    }
  }

  async createUpload(key: string): Promise<string> {
    return this.op(`create ${key}`, async (sftp) => {
      await this.mkdirs(sftp, path.dirname(key));
      const uploadId = `${key}.incomplete-${crypto.randomBytes(6).toString('hex')}`;
      await this.writeAt(sftp, uploadId, 'wx', Buffer.alloc(0), 0);
      return uploadId;
    });
  }

  async listParts(_key: string, uploadId: string): Promise<RemotePart[] | undefined> {
    return this.op(`stat ${uploadId}`, async (sftp) => ((await this.stat(sftp, uploadId)) ? [] : undefined));
  }

  async putPart(key: string, uploadId: string, n: number, offset: number, body: Body): Promise<string> {
    return this.op(`part ${n} of ${key}`, async (sftp) => {
      await this.writeAt(sftp, uploadId, 'r+', body.data, offset);
      return '';
    });
  }

  async completeUpload(key: string, uploadId: string): Promise<string> {
    return this.op(`complete ${key}`, async (sftp) => {
      await this.rename(sftp, uploadId, key);
      return '';
    });
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    await this.op(`abort ${key}`, (sftp) => call<void>((cb) => sftp.unlink(uploadId, cb)));
  }

  /** Files under a prefix (down to <host>/<id>/<file>); unfinished uploads are not listed. */
  async *list(prefix: string): AsyncIterable<RemoteObject> {
    const found = await this.op(`list ${prefix}`, async (sftp) => {
      const out: RemoteObject[] = [];
      const walk = async (dir: string, depth: number): Promise<void> => {
        let entries: Array<{ filename: string; attrs: { size: number; mode: number; mtime: number } }>;
        try {
          entries = await call((cb) => sftp.readdir(dir, cb));
        } catch (err) {
          if ((err as SftpError).code === NO_SUCH_FILE) return;
          throw err;
        }
        for (const e of entries.sort((a, b) => a.filename.localeCompare(b.filename))) {
          const p = `${dir.replace(/\/$/, '')}/${e.filename}`;
          const isDir = (e.attrs.mode & 0o170000) === 0o040000;
          if (isDir && depth < 2) await walk(p, depth + 1);
          else if (!isDir && !e.filename.includes('.incomplete-')) out.push({ key: p, size: e.attrs.size, modified: new Date(e.attrs.mtime * 1000) });
        }
      };
      const base = this.prefix();
      await walk(prefix, prefix.length <= base.length ? 0 : prefix.slice(base.length).split('/').filter(Boolean).length);
      return out;
    });
    yield* found;
  }

  async get(key: string, range?: [number, number]): Promise<Buffer> {
    return this.op(`get ${key}`, async (sftp) => {
      const [start, end] = range ?? [0, (await this.stat(sftp, key))?.size ?? 0];
      return this.read(sftp, key, start, end - start);
    });
  }

  private async read(sftp: SFTPWrapper, file: string, position: number, length: number): Promise<Buffer> {
    const handle = await call<Buffer>((cb) => sftp.open(file, 'r', cb));
    try {
      const out = Buffer.alloc(length);
      let next = 0;
      const reader = async () => {
        for (let at = next; at < length; at = next) {
          next = at + WRITE_PIECE;
          const n = Math.min(WRITE_PIECE, length - at);
          const got = await call<number>((cb) => sftp.read(handle, out, at, n, position + at, cb));
          if (got !== n) throw new RemoteError(`${this.location}: ${file}: short read at ${position + at}`, 'EIO', false);
        }
      };
      await Promise.all(Array.from({ length: WRITES_IN_FLIGHT }, reader));
      return out;
    } finally {
      await call<void>((cb) => sftp.close(handle, cb)).catch(() => undefined);
    }
  }
}
