/**
 * Hosts without cloud credentials: the s3 destination through `physcap
 * broker serve`, against a real radosgw (harness/ceph.ts).  The broker runs
 * as its own process with the store's keys; each host copies with a token
 * of its own and no keys in its environment.  What the broker must hold
 * to: a capture copied and verified (checked again with the real keys), a
 * wrong token refused at pre-flight, a token that reaches only its own
 * host's prefix, presigned URLs good only for the bytes declared, a broker
 * restarted mid-copy, and no object ever written over.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { checkFile } from '../../agent/src/config/load';
import type { Profile } from '../../agent/src/config/profile';
import { memoryLogger } from '../../agent/src/core/logger';
import { BrokerTarget } from '../../agent/src/destinations/s3/broker-target';
import type { Presigned } from '../../agent/src/destinations/s3/broker/protocol';
import { s3Kind, S3Spec } from '../../agent/src/destinations/s3/kind';
import { Journal } from '../../agent/src/destinations/remote/journal';
import { hostOf, UPLOAD_RECORD, UploadRecord } from '../../agent/src/destinations/remote/ship';
import { journalFile } from '../../agent/src/destinations/remote/spool';
import { findRemote, verifyRemote } from '../../agent/src/postmortem/remote';
import { CephCluster, startCeph } from '../../harness/ceph';
import { physcapCli } from '../../harness/agent';
import { captureNow, imageProfile, makeImage, MiB, writeProfile } from '../support/capture';
import { exec, Exit, physcap, physcapSync } from '../support/cli';
import { spoolHelpers } from '../support/spool';
import { removeDir, tempDir } from '../support/tmp';
import { waitUntil } from '../support/wait';

const BUCKET = 'fleet';
const DEST = `s3://${BUCKET}/hosts`;
const remote = s3Kind.remote!;
const HOST = os.hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'unknown-host';
const OTHER = 'board-17';
const md5 = (b: Buffer) => crypto.createHash('md5').update(b).digest('base64');
const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

let ceph: CephCluster;
let work: string;
let creds: string;
let hostsFile: string;
let token: string;
let img: ReturnType<typeof makeImage>;
let client: S3Client;

/** The broker's process; its stderr (one JSON line per request) kept across restarts. */
const broker: { child?: ChildProcess; url: string; port: number; log: string } = { url: '', port: 0, log: '' };

/** The environment of a host's physcap: no AWS variable at all, and a HOME without ~/.aws. */
let hostEnv: NodeJS.ProcessEnv;

async function startBroker(port = 0): Promise<void> {
  const child = spawn(
    process.execPath,
    [physcapCli, 'broker', 'serve', '--listen', `127.0.0.1:${port}`, '--dest', DEST, '--endpoint', ceph.endpoint, '--credentials', creds, '--hosts', hostsFile],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const start = broker.log.length;
  child.stderr!.on('data', (d: Buffer) => (broker.log += d.toString()));
  broker.child = child;
  const ready = () => /"the store (passed|fails)/.test(broker.log.slice(start)) || child.exitCode !== null;
  if (!(await waitUntil(ready, 20_000)) || child.exitCode !== null) throw new Error(`the broker did not start:\n${broker.log.slice(start)}`);
  broker.url = (
    JSON.parse(
      broker.log
        .slice(start)
        .split('\n')
        .find((l) => l.includes('"broker listening"'))!,
    ) as { url: string }
  ).url;
  broker.port = Number(new URL(broker.url).port);
}

async function stopBroker(): Promise<void> {
  const child = broker.child;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** The broker's log lines for one op, parsed. */
const brokerLines = (op: string) =>
  broker.log
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes(`"op":"${op}"`))
    .map((l) => JSON.parse(l) as { host: string; op: string; key?: string; status: number });

/** `physcap ARGS` as a host runs it: no keys anywhere in its reach. */
const onHost = (args: string[], timeout = 60_000): Promise<Exit> => exec(process.execPath, [physcapCli, ...args], { env: hostEnv, timeout });

/** `physcap broker enrol`: the host's token, from the 0600 file it wrote. */
function enrol(host: string, file: string): string {
  const r = physcapSync(['broker', 'enrol', host, '--hosts', hostsFile, '--token-file', file]);
  if (r.code !== 0) throw new Error(`enrol ${host}: ${r.stderr}`);
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  return fs.readFileSync(file, 'utf8').trim();
}

beforeAll(async () => {
  ceph = await startCeph();
  work = tempDir('physcap-broker');
  creds = path.join(work, 'store.credentials');
  fs.writeFileSync(creds, `[default]\naws_access_key_id = ${ceph.credentials.accessKeyId}\naws_secret_access_key = ${ceph.credentials.secretAccessKey}\n`, {
    mode: 0o600,
  });
  client = new S3Client({ endpoint: ceph.endpoint, region: ceph.region, forcePathStyle: true, credentials: ceph.credentials });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  hostsFile = path.join(work, 'broker.hosts');
  token = enrol(HOST, path.join(work, 'host.token'));
  const home = path.join(work, 'home');
  fs.mkdirSync(home);
  hostEnv = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_'))), HOME: home };
  img = makeImage(work, 96 * MiB);
  await startBroker();
}, 120_000);

afterAll(async () => {
  await stopBroker();
  client?.destroy();
  await ceph?.stop();
  if (work) removeDir(work);
}, 60_000);

interface ProfileOptions {
  tokenFile?: string;
  size?: number;
  upload?: string;
}

let profiles = 0;
/** A profile of the image's first `size` bytes (8 MiB chunks: each part a chunk) to the bucket, through the broker. */
function brokerProfile(o: ProfileOptions = {}): Profile {
  const name = `b${++profiles}`;
  const dir = path.join(work, name);
  fs.mkdirSync(path.join(dir, 'spool'), { recursive: true, mode: 0o750 });
  const body = imageProfile({ image: img.file, dest: '/unused', regions: [['all', 0, o.size ?? 48 * MiB]], chunk: '8MiB', extra: 'cooldown: 0\n' });
  const dest = [
    '  kind: s3',
    `  url: ${DEST}`,
    `  credentials: { broker: "${broker.url}", token_file: ${o.tokenFile ?? path.join(work, 'host.token')} }`,
    '  spool:',
    `    path: ${path.join(dir, 'spool')}`,
    '    retention: { count: 0, keep_free: 0 }',
    ...(o.upload ? [`  upload: ${o.upload}`] : []),
  ].join('\n');
  return writeProfile(dir, name, body.replace(/destination:\n(?: {2}.*\n)+/, `destination:\n${dest}\n`));
}

const spec = (p: Profile) => p.destination as S3Spec;

const { pendingIds, upload } = spoolHelpers(remote);

async function objectBytes(key: string): Promise<Buffer> {
  const r = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/** Parts the upload record says the core was cut into. */
async function plannedParts(id: string): Promise<number> {
  const record = JSON.parse((await objectBytes(`hosts/${HOST}/${id}/${UPLOAD_RECORD}`)).toString()) as UploadRecord;
  return record.files.find((f) => f.name === 'core.elf')!.parts.length;
}

/** The capture verified by the operator, with the real keys: every byte read back (physcap verify --full). */
async function verifiedWithKeys(id: string): Promise<void> {
  const v = await physcap(['verify', id, '--dest', DEST, '--endpoint', ceph.endpoint, '--credentials', creds, '--full'], { timeout: 60_000 });
  expect({ code: v.code, out: v.stdout, err: v.stderr }).toMatchObject({ code: 0, out: expect.stringMatching(/: OK \(full: every byte read back\)/) });
}

/** One operation at the broker, as a host (or an attacker with a host's token) would call it. */
async function call(op: string, body: object, bearer = token): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${broker.url}/v1/${op}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** A presigned request sent with these headers and this body: the store's status and error code. */
async function send(
  p: Presigned,
  body: Buffer | undefined,
  headers: Record<string, string> = p.headers,
): Promise<{ status: number; code?: string; etag?: string }> {
  const r = await fetch(p.url, { method: p.method, headers, ...(body ? { body: new Uint8Array(body) } : {}) });
  const text = await r.text();
  return { status: r.status, ...(r.ok ? { etag: r.headers.get('etag') ?? '' } : { code: /<Code>([^<]+)<\/Code>/.exec(text)?.[1] }) };
}

test('physcap capture through the broker, with no keys on the host: copied and verified, then verified again with the real keys', async () => {
  const p = brokerProfile();
  const r = await onHost(['capture', p.file, '--json'], 120_000);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  const out = JSON.parse(r.stdout) as {
    id: string;
    status: string;
    upload: { status: string; result: { partsSent: number; remote: string; verified: string } };
  };
  expect(out).toMatchObject({ status: 'complete', upload: { status: 'verified', result: { remote: `${DEST}/${HOST}/${out.id}/`, partsSent: 6 } } });
  expect(out.upload.result.verified).toMatch(/sizes and ETags/);
  expect(await plannedParts(out.id)).toBe(6);
  // Every part went up on a URL the broker signed for this host and that key.
  const parts = brokerLines('presign-part').filter((l) => l.key === `hosts/${HOST}/${out.id}/core.elf`);
  expect(parts.length).toBe(6);
  expect(parts.every((l) => l.host === HOST && l.status === 200)).toBe(true);
  await verifiedWithKeys(out.id);
  // And the host reads its own copy back through the broker: presigned ranged reads.
  const t = new BrokerTarget({ bucket: BUCKET, prefix: 'hosts' }, { broker: broker.url, token });
  const c = await findRemote(t, out.id, HOST);
  expect((await verifyRemote(t, c, { full: true })).problems).toEqual([]);
}, 90_000);

test('a wrong token is refused at pre-flight (the broker says 401): the capture is kept in the spool; a token file others can read is refused', async () => {
  const wrong = path.join(work, 'wrong.token');
  fs.writeFileSync(wrong, `${crypto.randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  const p = brokerProfile({ tokenFile: wrong });
  const r = await onHost(['capture', p.file, '--json'], 60_000);
  expect(r.code).toBe(75);
  expect(r.stderr).toMatch(/pre-flight check failed: .*probe: the broker answered HTTP 401 Unauthorized: the broker knows no such token/);
  expect(r.stderr).toMatch(/capturing into the spool only/);
  const out = JSON.parse(r.stdout) as { id: string; status: string; upload: { status: string } };
  expect(out).toMatchObject({ status: 'complete', upload: { status: 'skipped' } });
  expect(await pendingIds(p)).toEqual([out.id]);
  expect(brokerLines('probe').some((l) => l.host === '-' && l.status === 401)).toBe(true);

  const open = path.join(work, 'open.token');
  fs.writeFileSync(open, `${token}\n`, { mode: 0o644 });
  fs.chmodSync(open, 0o644);
  const q = brokerProfile({ tokenFile: open });
  expect(checkFile(q.file).diagnostics.map((d) => `${d.pointer}: ${d.message}`)).toContainEqual(
    expect.stringMatching(/^\/destination\/credentials\/token_file: the agent will not use this file: .* is readable by others \(mode 0644\)/),
  );
  const c = await onHost(['capture', q.file]);
  expect(c.code).toBe(75);
  expect(c.stderr).toMatch(/pre-flight check failed: credentials: .*open\.token is readable by others/);
}, 60_000);

test("a host's token reaches its own prefix only: another host's keys, the fleet's listing and a path out are refused (403)", async () => {
  // Enrolled while the broker runs: it reads its hosts file again.
  const otherToken = enrol(OTHER, path.join(work, 'other.token'));
  const body = Buffer.from('board-17 data');
  const theirs = `hosts/${OTHER}/other-20261201T100000Z-abcdef/manifest.json`;
  const asOther = await call('presign-put', { key: theirs, md5: md5(body), sha256: sha256(body), length: body.length }, otherToken);
  expect(asOther.status).toBe(200);
  expect((await send(asOther.body as unknown as Presigned, body)).status).toBe(200);

  const ours = { md5: md5(body), sha256: sha256(body), length: body.length };
  const refused = [
    await call('presign-put', { key: `hosts/${OTHER}/x/core.elf`, ...ours }),
    await call('presign-get', { key: theirs }),
    await call('head', { key: theirs }),
    await call('create', { key: `hosts/${OTHER}/x/core.elf` }),
    await call('list', { prefix: 'hosts/' }),
    await call('list', { prefix: `hosts/${OTHER}/` }),
    await call('presign-put', { key: `hosts/${HOST}/../${OTHER}/x/core.elf`, ...ours }),
    await call('presign-get', { key: `other-prefix/${HOST}/x/core.elf` }),
    // Even in its own prefix, a host deletes nothing but its pre-flight objects.
    await call('presign-delete', { key: `hosts/${HOST}/x/core.elf` }),
  ];
  expect(refused.map((r) => [r.status, (r.body.error as { code: string }).code])).toEqual(refused.map(() => [403, 'EACCES']));
  expect((refused[0]!.body.error as { message: string }).message).toMatch(new RegExp(`outside hosts/${HOST}/, the prefix of ${HOST}'s captures`));
  // The host's own prefix is served; the other host's object is untouched.
  expect((await call('list', { prefix: `hosts/${HOST}/` })).status).toBe(200);
  expect((await objectBytes(theirs)).toString()).toBe('board-17 data');
  // No token, or one never enrolled: 401.
  expect((await call('head', { key: theirs }, 'not-a-token')).status).toBe(401);
  const none = await fetch(`${broker.url}/v1/head`, { method: 'POST', body: JSON.stringify({ key: theirs }) });
  expect(none.status).toBe(401);
});

test('a presigned part URL is good for the bytes declared only: other bytes under its MD5, or with their own MD5, are refused by radosgw', async () => {
  const key = `hosts/${HOST}/replay/core.elf`;
  const { uploadId } = (await call('create', { key })).body as { uploadId: string };
  const data = crypto.randomBytes(5 * MiB);
  const other = crypto.randomBytes(5 * MiB);
  const url = (await call('presign-part', { key, uploadId, n: 1, md5: md5(data), sha256: sha256(data), length: data.length })).body as unknown as Presigned;
  expect(Object.keys(url.headers).sort()).toEqual(['content-md5', 'x-amz-checksum-sha256', 'x-amz-content-sha256']);
  expect(new URL(url.url).searchParams.get('X-Amz-SignedHeaders')).toBe('content-md5;host;x-amz-checksum-sha256;x-amz-content-sha256');
  // Other bytes sent as the declared ones: the store hashes the body and refuses it.
  expect(await send(url, other)).toMatchObject({ status: 400, code: expect.stringMatching(/^(BadDigest|XAmzContentSHA256Mismatch)$/) });
  // Other bytes with their own MD5 (and digests): not the request that was signed.
  expect(await send(url, other, { ...url.headers, 'content-md5': md5(other) })).toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });
  const own = {
    'content-md5': md5(other),
    'x-amz-content-sha256': sha256(other),
    'x-amz-checksum-sha256': Buffer.from(sha256(other), 'hex').toString('base64'),
  };
  expect(await send(url, other, own)).toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });
  // The declared bytes go up; the store holds them and nothing else.
  const good = await send(url, data);
  expect(good.status).toBe(200);
  const parts = (await call('list-parts', { key, uploadId })).body.parts as Array<{ n: number; etag: string; size: number }>;
  expect(parts).toEqual([{ n: 1, etag: good.etag, size: data.length }]);
  expect(good.etag).toBe(`"${crypto.createHash('md5').update(data).digest('hex')}"`);
  expect((await call('abort', { key, uploadId })).status).toBe(200);

  // A whole object's URL carries If-None-Match: *, and is refused without it.
  const small = Buffer.from('small object');
  const put = (await call('presign-put', { key: `hosts/${HOST}/replay/small`, md5: md5(small), sha256: sha256(small), length: small.length }))
    .body as unknown as Presigned;
  const { 'if-none-match': _dropped, ...withoutPrecondition } = put.headers;
  expect(await send(put, small, withoutPrecondition)).toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });
  expect((await send(put, small)).status).toBe(200);
  expect(await send(put, small)).toMatchObject({ status: 412, code: 'PreconditionFailed' });
  // A ranged read's URL is for that range.
  const get = (await call('presign-get', { key: `hosts/${HOST}/replay/small`, range: [0, 5] })).body as unknown as Presigned;
  expect(await send(get, undefined, { range: 'bytes=0-11' })).toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });
  const r = await fetch(get.url, { headers: get.headers });
  expect(await r.text()).toBe('small');
});

test('the broker stopped mid-copy and started again: the copy waits it out; a copy that gave up resumes from its journal; nothing journaled is sent again', async () => {
  // One copy in this process, with the default patience: it waits the broker out.
  const p = brokerProfile({ size: 96 * MiB, upload: '{ bandwidth: 32MiB, parallel: 2 }' });
  const o = await captureNow(p);
  const journal = journalFile(spec(p).spool.path, o.id);
  const log = memoryLogger();
  const copy = upload(p, o.id, { log });
  try {
    expect(await waitUntil(() => (Journal.read(journal)?.parts.get('core.elf')?.size ?? 0) >= 3, 30_000)).toBe(true);
    await stopBroker();
    await new Promise((r) => setTimeout(r, 2_000));
  } finally {
    await startBroker(broker.port);
  }
  const r = await copy;
  expect(r.retries).toBeGreaterThanOrEqual(1);
  expect(log.records.map((x) => String(x.err))).toContainEqual(expect.stringMatching(/broker http:\/\/127\.0\.0\.1:\d+\): .*ECONNREFUSED: cannot reach it/));
  expect(r.partsSent + r.partsFound).toBe(await plannedParts(o.id));
  await verifiedWithKeys(o.id);

  // physcap upload on the host, with a short patience: it gives up while the broker is away, keeping its journal...
  const q = brokerProfile({ size: 96 * MiB, upload: '{ bandwidth: 32MiB, parallel: 2, retry_for: 2s }' });
  const c = await captureNow(q);
  const journal2 = journalFile(spec(q).spool.path, c.id);
  const child = onHost(['upload', q.file, '--json'], 60_000);
  let stopped = false;
  try {
    expect(await waitUntil(() => (Journal.read(journal2)?.parts.get('core.elf')?.size ?? 0) >= 4, 30_000)).toBe(true);
    await stopBroker();
    stopped = true;
    const gaveUp = await child;
    expect(gaveUp.code).toBe(1);
    expect(JSON.parse(gaveUp.stdout)).toMatchObject({
      id: c.id,
      status: 'failed',
      error: { code: 'EAGAIN', message: expect.stringMatching(/ECONNREFUSED.*kept in the spool/) },
    });
  } finally {
    if (stopped) await startBroker(broker.port);
  }
  const journaled = Journal.read(journal2)!.parts.get('core.elf')!.size;
  // ...and the same command resumes once it is back: the journaled parts are not sent again.
  const again = await onHost(['upload', q.file, '--json'], 60_000);
  expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
  const res = JSON.parse(again.stdout) as { status: string; partsSent: number; partsJournaled: number; partsFound: number };
  expect(res.status).toBe('verified');
  expect(res.partsJournaled).toBe(journaled);
  expect(res.partsJournaled + res.partsFound + res.partsSent).toBe(await plannedParts(c.id));
  expect(await pendingIds(q)).toEqual([]);
  await verifiedWithKeys(c.id);
}, 90_000);

test('an object already there is never written over through the broker: the copy stops and says so; no presigned URL or completion replaces it', async () => {
  const p = brokerProfile({ size: 16 * MiB });
  const o = await captureNow(p);
  const key = `hosts/${hostOf(o.manifest!)}/${o.id}/core.elf`;
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from("someone else's object") }));
  await expect(upload(p, o.id)).rejects.toMatchObject({
    code: 'EEXIST',
    message: expect.stringMatching(/is already there and is not this capture's copy: refusing to overwrite it/),
  });
  expect(await pendingIds(p)).toEqual([o.id]);

  // Asked directly: a whole object over it, a multipart upload completed over it, or its deletion.
  const data = Buffer.from('replacement');
  const put = await call('presign-put', { key, md5: md5(data), sha256: sha256(data), length: data.length });
  expect([put.status, (put.body.error as { code: string }).code]).toEqual([409, 'EEXIST']);
  const { uploadId } = (await call('create', { key })).body as { uploadId: string };
  const part = (await call('presign-part', { key, uploadId, n: 1, md5: md5(data), sha256: sha256(data), length: data.length })).body as unknown as Presigned;
  const sent = await send(part, data);
  expect(sent.status).toBe(200);
  const complete = await call('complete', { key, uploadId, parts: [{ n: 1, etag: sent.etag }] });
  expect([complete.status, (complete.body.error as { code: string }).code]).toEqual([409, 'EEXIST']);
  expect((await call('presign-delete', { key })).status).toBe(403);
  expect((await call('abort', { key, uploadId })).status).toBe(200);
  expect((await objectBytes(key)).toString()).toBe("someone else's object");
  expect(brokerLines('complete').some((l) => l.key === key && l.status === 409)).toBe(true);
});
