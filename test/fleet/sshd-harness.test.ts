/**
 * The throwaway sshd of harness/sshd.ts, driven the way the SFTP
 * destination's tests will: ssh2-sftp-client with the harness's key and a
 * pinned host key fingerprint.  Besides SFTP working, it checks what those
 * tests rely on: a wrong pin is refused, only SFTP is served, nothing
 * listens beyond 127.0.0.1, stopServer() really cuts an upload in flight,
 * startServer() serves the same files again, and stop() leaves nothing.
 * The tests run in order on one server.
 */
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import SftpClient from 'ssh2-sftp-client';

import { SftpServer, sshdMissing, startSshd } from '../../harness/sshd';
import { sha256, sha256File } from '../support/hash';
import { withTempDir } from '../support/tmp';
import { waitUntil } from '../support/wait';

const STEP_MS = 10_000;
const data = crypto.randomBytes(256 * 1024);
const clients: SftpClient[] = [];
let server: SftpServer;

beforeAll(async () => {
  expect(sshdMissing()).toBeUndefined();
  server = await startSshd();
}, 20_000);

afterEach(async () => {
  for (const c of clients.splice(0)) await within(c.end(), 'end').catch(() => undefined); // some died with the server
});

afterAll(async () => {
  await server?.stop();
});

test('hands out a 0600 client key, and a known_hosts line and a fingerprint of the same host key', () => {
  expect(fs.statSync(server.privateKeyPath).mode & 0o777).toBe(0o600);
  expect(fs.readFileSync(server.privateKeyPath, 'utf8')).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
  const [, port, blob] = server.knownHostsLine.match(/^\[127\.0\.0\.1\]:(\d+) ssh-ed25519 (\S+)$/) ?? [];
  expect(port).toBe(String(server.port));
  expect(fingerprint(Buffer.from(blob ?? '', 'base64'))).toBe(server.hostKeyFingerprint);
  expect(server.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  expect(path.isAbsolute(server.root) && fs.statSync(server.root).isDirectory()).toBe(true);
});

test('listens on 127.0.0.1 only', () => {
  expect(listeningSockets(membersOf(sshdNamespace()))).toEqual([`127.0.0.1:${server.port}`]);
});

test('refuses a connection whose host key does not match the pin', async () => {
  await expect(connect(`SHA256:${'A'.repeat(43)}`)).rejects.toThrow(/verification failed/);
});

test('takes an upload into root and gives it back', async () => {
  const c = await connect();
  await within(c.put(data, '/smoke.bin'), 'put');
  expect(sha256(await download(c, '/smoke.bin'))).toBe(sha256(data));
  expect(sha256File(path.join(server.root, 'smoke.bin'))).toBe(sha256(data));
});

test('refuses a shell command over ssh: SFTP only', async () => {
  const out = await withTempDir('sshd-kh', async (dir) => {
    // Strict checking against the harness's known_hosts line: the line works for OpenSSH too.
    const knownHosts = path.join(dir, 'known_hosts');
    fs.writeFileSync(knownHosts, `${server.knownHostsLine}\n`);
    return sshCommand(knownHosts, 'id');
  });
  expect(out.code).toBe(1);
  expect(out.output).toContain('This service allows sftp connections only.');
  expect(out.output).not.toContain('uid=');
});

test('stopServer() cuts an upload in flight and kills every session process', async () => {
  const c = await connect();
  const ns = sshdNamespace();
  const stream = new PassThrough();
  // Settled into a value at once, so the rejection is never unhandled while the server is stopped.
  const upload = c.put(stream, '/cut.bin').then(
    () => 'finished',
    (err: Error) => err,
  );
  stream.write(crypto.randomBytes(64 * 1024));
  const partial = path.join(server.root, 'cut.bin');
  expect(await waitUntil(() => fs.existsSync(partial) && fs.statSync(partial).size > 0, STEP_MS)).toBe(true);
  expect(membersOf(ns).length).toBeGreaterThan(1); // the listener and the session's processes

  await within(server.stopServer(), 'stopServer');
  expect(await within(upload, 'the cut upload')).toBeInstanceOf(Error);
  stream.end();
  expect(membersOf(ns)).toEqual([]);
  expect(await connectError(server.port)).toBe('ECONNREFUSED');
});

test('startServer() serves again on the same port and host key, with the earlier upload', async () => {
  await within(server.startServer(), 'startServer');
  const c = await connect();
  expect(sha256(await download(c, '/smoke.bin'))).toBe(sha256(data));
});

test('stop() leaves no sshd process and no directory, and may be called twice', async () => {
  const ns = sshdNamespace();
  const dir = path.dirname(server.log);
  await within(server.stop(), 'stop');
  expect(membersOf(ns)).toEqual([]);
  expect(processes().filter((p) => p.cmdline.includes(dir))).toEqual([]);
  expect(fs.existsSync(dir)).toBe(false);
  await within(server.stop(), 'second stop');
  expect(await connectError(server.port)).toBe('ECONNREFUSED');
});

/** An SFTP connection to the server as the harness's user, accepting only the host key with fingerprint pin. */
async function connect(pin = server.hostKeyFingerprint): Promise<SftpClient> {
  // The library logs unexpected connection events to the console by default; the tests check outcomes instead.
  const c = new SftpClient('sshd-harness', { error: () => undefined, end: () => undefined, close: () => undefined });
  clients.push(c);
  await within(
    c.connect({
      host: server.host,
      port: server.port,
      username: server.username,
      privateKey: fs.readFileSync(server.privateKeyPath),
      hostVerifier: (key: Buffer) => fingerprint(key) === pin,
      readyTimeout: STEP_MS,
    }),
    'connect',
  );
  return c;
}

/** A remote file's bytes.  (Compared through digests: toEqual walks a Buffer byte by byte, seconds for 256 KiB.) */
async function download(c: SftpClient, remote: string): Promise<Buffer> {
  const got = await within(c.get(remote), `get ${remote}`);
  if (!Buffer.isBuffer(got)) throw new Error(`get ${remote} gave no Buffer`);
  return got;
}

/** A host key's fingerprint as ssh-keygen -l prints it: SHA256 of the key blob, unpadded base64. */
function fingerprint(key: Buffer): string {
  return `SHA256:${crypto.createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** OpenSSH's ssh running command on the server with the harness's key: exit code and all output. */
function sshCommand(knownHosts: string, command: string): Promise<{ code: number | null; output: string }> {
  const args = ['-F', '/dev/null', '-i', server.privateKeyPath, '-p', String(server.port), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes'];
  args.push('-o', `UserKnownHostsFile=${knownHosts}`, `${server.username}@${server.host}`, command);
  return new Promise((resolve) => {
    execFile('ssh', args, { timeout: STEP_MS }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, output: stdout + stderr });
    });
  });
}

/** The error code a TCP connection to port on 127.0.0.1 fails with ('' if it is accepted). */
function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

interface Proc {
  pid: number;
  comm: string;
  cmdline: string;
  /** the PID namespace, as /proc/PID/ns/pid names it */
  ns: string;
}

/** The processes visible in /proc (those we may not inspect, and those that exit meanwhile, left out). */
function processes(): Proc[] {
  return fs.readdirSync('/proc').flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      const at = `/proc/${entry}`;
      const [comm, cmdline, ns] = [fs.readFileSync(`${at}/comm`, 'utf8').trim(), fs.readFileSync(`${at}/cmdline`, 'utf8'), fs.readlinkSync(`${at}/ns/pid`)];
      return [{ pid: Number(entry), comm, cmdline: cmdline.replace(/\0/g, ' '), ns }];
    } catch {
      return [];
    }
  });
}

/** The PID namespace the harness runs sshd in, found through the listener: the sshd whose command line names the server's config. */
function sshdNamespace(): string {
  const config = path.join(path.dirname(server.log), 'sshd_config');
  const listener = processes().find((p) => p.comm === 'sshd' && p.cmdline.includes(config));
  if (!listener) throw new Error(`no sshd running with ${config}`);
  return listener.ns;
}

function membersOf(ns: string): number[] {
  return processes()
    .filter((p) => p.ns === ns)
    .map((p) => p.pid);
}

/** ADDRESS:PORT of every listening TCP socket and every UDP socket the processes hold. */
function listeningSockets(pids: number[]): string[] {
  const inodes = new Set(
    pids.flatMap((pid) =>
      fs.readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
        const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        return target.startsWith('socket:[') ? [target.slice(8, -1)] : [];
      }),
    ),
  );
  const found: string[] = [];
  for (const table of ['tcp', 'tcp6', 'udp', 'udp6']) {
    for (const row of fs.readFileSync(`/proc/net/${table}`, 'utf8').trim().split('\n').slice(1)) {
      const [, local, , state, , , , , , inode] = row.trim().split(/\s+/);
      if (inodes.has(inode) && (table.startsWith('udp') || state === '0A')) found.push(procAddress(local));
    }
  }
  return found;
}

/** /proc/net's "0100007F:1F90" as "127.0.0.1:8080"; IPv6 addresses stay hex (any of them is a failure here). */
function procAddress(local: string): string {
  const [hex, port] = local.split(':');
  const address = hex.length === 8 ? Buffer.from(hex, 'hex').reverse().join('.') : `[${hex}]`;
  return `${address}:${parseInt(port, 16)}`;
}

/** p, or a rejection naming the step if it has not settled within STEP_MS. */
function within<T>(p: Promise<T>, step: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${step}: no outcome within ${STEP_MS} ms`)), STEP_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
