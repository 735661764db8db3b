/**
 * The Ceph harness (harness/ceph.ts) that the S3 destination's tests stand
 * on: a real radosgw that takes SigV4 with the user it made, refuses bad
 * Content-MD5 and payload hashes, can be stopped and started under a test,
 * listens on loopback only, and leaves no daemon and no directory behind.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

import { CephCluster, cephMissing, startCeph } from '../../harness/ceph';

const START_MS = 100_000;
const STEP_MS = 30_000;
const BUCKET = 'smoke';

let cluster: CephCluster;
let s3: S3Client;

beforeAll(async () => {
  // Setup installs Ceph: its absence is a failure, not a reason to skip.
  const missing = cephMissing();
  if (missing) throw new Error(missing);
  cluster = await startCeph({ timeoutMs: START_MS - 10_000 });
  s3 = client(cluster);
}, START_MS);

afterAll(() => cluster?.stop(), STEP_MS);

function client(c: CephCluster, tamper?: (body: Buffer) => Buffer): S3Client {
  const s = new S3Client({
    endpoint: c.endpoint,
    region: c.region,
    credentials: c.credentials,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // One attempt: a refused connection must show as such, not as retries.
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 20_000 },
  });
  if (tamper) {
    // The deserialize step runs after signing: the body changes, the signed hash does not.
    s.middlewareStack.add(
      (next) => (args) => {
        const req = args.request as { body?: unknown };
        if (Buffer.isBuffer(req.body)) req.body = tamper(req.body);
        return next(args);
      },
      { step: 'deserialize', name: 'tamperBody' },
    );
  }
  return s;
}

function md5(data: Buffer): string {
  return crypto.createHash('md5').update(data).digest('base64');
}

async function getBody(key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

/** Processes started with the cluster's config: its daemons (and any ceph command running). */
function clusterPids(dir: string): number[] {
  const conf = path.join(dir, 'ceph.conf');
  return fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(conf);
      } catch {
        return false; // exited meanwhile
      }
    });
}

function socketInodes(pid: number): string[] {
  const fdDir = `/proc/${pid}/fd`;
  return fs.readdirSync(fdDir).flatMap((fd) => {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(path.join(fdDir, fd)));
      return m ? [m[1]!] : [];
    } catch {
      return []; // closed meanwhile
    }
  });
}

/** "0100007F:1F90" (/proc/net/tcp's little-endian IPv4) as "127.0.0.1:8080"; IPv6 stays hex. */
function decodeAddress(hex: string): string {
  const [ip, port] = hex.split(':') as [string, string];
  const host = ip.length === 8 ? Buffer.from(ip, 'hex').reverse().join('.') : `[${ip}]`;
  return `${host}:${parseInt(port, 16)}`;
}

/** Local addresses of the TCP sockets the processes listen on, what `ss -ltnp` shows for them. */
function listeningAddresses(pids: number[]): string[] {
  const LISTEN = '0A';
  const inodes = new Set(pids.flatMap(socketInodes));
  return ['tcp', 'tcp6'].flatMap((table) =>
    fs
      .readFileSync(`/proc/net/${table}`, 'utf8')
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[3] === LISTEN && inodes.has(f[9]!))
      .map((f) => decodeAddress(f[1]!)),
  );
}

test(
  'a bucket is created and an object put and read back with the user made at start',
  async () => {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const data = crypto.randomBytes(64 * 1024);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'a', Body: data, ContentMD5: md5(data) }));
    expect((await getBody('a')).equals(data)).toBe(true);
  },
  STEP_MS,
);

test(
  'a PUT whose Content-MD5 is not its body is refused with BadDigest',
  async () => {
    const put = s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'md5', Body: Buffer.from('body'), ContentMD5: md5(Buffer.from('other')) }));
    await expect(put).rejects.toMatchObject({ name: 'BadDigest' });
  },
  STEP_MS,
);

test(
  'a PUT whose body is not the one its signature hashed is refused with XAmzContentSHA256Mismatch',
  async () => {
    const tampered = client(cluster, (body) => Buffer.alloc(body.length, 'x'));
    const put = tampered.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'sha', Body: Buffer.from('the signed body') }));
    await expect(put).rejects.toMatchObject({ name: 'XAmzContentSHA256Mismatch' });
  },
  STEP_MS,
);

test(
  'with the gateway stopped a request is refused at connect; restarted, it serves the object again',
  async () => {
    await cluster.stopGateway();
    // Only the message says so under jest: node's errors come from another realm than jest's Error,
    // so the SDK's retry middleware rewraps them by message and their code is lost.
    await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'a' }))).rejects.toThrow(/ECONNREFUSED/);
    await cluster.startGateway();
    expect((await getBody('a')).length).toBe(64 * 1024);
  },
  STEP_MS,
);

test(
  'every socket the daemons listen on is on 127.0.0.1',
  () => {
    const addresses = listeningAddresses(clusterPids(cluster.dir));
    // mon, mgr, radosgw and the OSD's four (public, cluster, two heartbeats)
    expect(addresses.length).toBeGreaterThanOrEqual(7);
    expect(addresses).toContain(new URL(cluster.endpoint).host);
    expect(addresses.filter((a) => !a.startsWith('127.0.0.1:'))).toEqual([]);
  },
  STEP_MS,
);

test(
  'stop() leaves no daemon and no directory, and can be called again',
  async () => {
    const pids = clusterPids(cluster.dir);
    expect(pids.length).toBeGreaterThanOrEqual(4);
    await cluster.stop();
    expect(pids.filter((pid) => fs.existsSync(`/proc/${pid}`))).toEqual([]);
    expect(fs.existsSync(cluster.dir)).toBe(false);
    await cluster.stop();
  },
  STEP_MS,
);
