/**
 * The s3 destination against a real S3 server: a single-node Ceph with
 * radosgw on 127.0.0.1 (harness/ceph.ts), started once for the file.  The
 * faults a fleet meets: the gateway stopped mid-copy, the uploader killed
 * with SIGKILL at half way, a part damaged on the wire, wrong credentials,
 * a missing bucket, an object already there, a full spool.  Every copy is
 * checked by reading the bucket back.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { checkFile } from '../../agent/src/config/load';
import type { Profile } from '../../agent/src/config/profile';
import { memoryLogger } from '../../agent/src/core/logger';
import { s3Kind, S3Spec } from '../../agent/src/destinations/s3/kind';
import { bodyOf } from '../../agent/src/destinations/s3/target';
import { Journal } from '../../agent/src/destinations/remote/journal';
import { UPLOAD_RECORD, UploadRecord, hostOf } from '../../agent/src/destinations/remote/ship';
import { journalFile } from '../../agent/src/destinations/remote/spool';
import { uploadCapture } from '../../agent/src/destinations/remote/upload';
import { findRemote, listRemote, verifyRemote } from '../../agent/src/postmortem/remote';
import { CephCluster, startCeph } from '../../harness/ceph';
import { physcapCli, runAgent, stopAgent } from '../../harness/agent';
import { captureNow, imageProfile, makeImage, MiB, writeProfile } from '../support/capture';
import { physcap } from '../support/cli';
import { startProxy } from '../support/tcp-proxy';
import { spoolHelpers } from '../support/spool';
import { removeDir, tempDir, useTmpfs } from '../support/tmp';
import { waitUntil } from '../support/wait';

const BUCKET = 'fleet';
const remote = s3Kind.remote!;
const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

let ceph: CephCluster;
let work: string;
let creds: string;
let img: ReturnType<typeof makeImage>;
let client: S3Client;
const spoolFull = useTmpfs('physcap-s3-spool', '40m');

beforeAll(async () => {
  ceph = await startCeph();
  work = tempDir('physcap-s3');
  creds = credentialsFile('good', ceph.credentials.secretAccessKey);
  client = new S3Client({ endpoint: ceph.endpoint, region: ceph.region, forcePathStyle: true, credentials: ceph.credentials });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  img = makeImage(work, 96 * MiB);
}, 180_000);

afterAll(async () => {
  client?.destroy();
  await ceph?.stop();
  if (work) removeDir(work);
}, 60_000);

function credentialsFile(name: string, secret: string, mode = 0o600): string {
  const file = path.join(work, `${name}.credentials`);
  fs.writeFileSync(file, `[default]\naws_access_key_id = ${ceph.credentials.accessKeyId}\naws_secret_access_key = ${secret}\n`, { mode });
  fs.chmodSync(file, mode);
  return file;
}

interface ProfileOptions {
  url?: string;
  endpoint?: string;
  credentials?: string;
  spool?: string;
  size?: number;
  upload?: string;
  retention?: string;
  afterCopy?: string;
}

let profiles = 0;
/** A profile of the image's first `size` bytes (8 MiB chunks: each part is a chunk) to the bucket. */
function s3Profile(o: ProfileOptions = {}): Profile {
  const name = `p${++profiles}`;
  const dir = path.join(work, name);
  fs.mkdirSync(path.join(dir, 'spool'), { recursive: true, mode: 0o750 });
  if (o.spool) fs.mkdirSync(o.spool, { recursive: true, mode: 0o750 });
  const body = imageProfile({ image: img.file, dest: '/unused', regions: [['all', 0, o.size ?? 48 * MiB]], chunk: '8MiB', extra: 'cooldown: 0\n' });
  const dest = [
    '  kind: s3',
    `  url: ${o.url ?? `s3://${BUCKET}/hosts`}`,
    `  endpoint: ${o.endpoint ?? ceph.endpoint}`,
    `  credentials: { file: ${o.credentials ?? creds} }`,
    '  spool:',
    `    path: ${o.spool ?? path.join(dir, 'spool')}`,
    `    retention: ${o.retention ?? '{ count: 0, keep_free: 0 }'}`,
    ...(o.afterCopy ? [`    after_copy: ${o.afterCopy}`] : []),
    ...(o.upload ? [`  upload: ${o.upload}`] : []),
  ].join('\n');
  return writeProfile(dir, name, body.replace(/destination:\n(?: {2}.*\n)+/, `destination:\n${dest}\n`));
}

const spec = (p: Profile) => p.destination as S3Spec;

const { withSpool, pendingIds, upload } = spoolHelpers(remote);

/** The object's bytes. */
async function objectBytes(key: string): Promise<Buffer> {
  const r = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/** The core as the spool holds it. */
function spoolCore(p: Profile, id: string): Promise<Buffer> {
  return withSpool(p, (spool) => {
    const reader = spool.open(id);
    try {
      return reader.read('core.elf', 0, reader.files().find((f) => f.name === 'core.elf')!.size);
    } finally {
      reader.close();
    }
  });
}

/** Checks the bucket's copy: cheap and full verify pass, and its core is the spool's, byte for byte. */
async function expectVerifiedCopy(p: Profile, id: string): Promise<void> {
  const t = remote.target(spec(p));
  try {
    const c = await findRemote(t, id);
    for (const full of [false, true]) expect({ full, problems: (await verifyRemote(t, c, { full })).problems }).toEqual({ full, problems: [] });
    expect(sha256(await objectBytes(t.key(c.host, id, 'core.elf')))).toBe(sha256(await spoolCore(p, id)));
  } finally {
    t.close();
  }
}

/** Parts the upload record says the core was cut into. */
async function plannedParts(p: Profile, id: string): Promise<number> {
  const t = remote.target(spec(p));
  try {
    const record = JSON.parse((await objectBytes(t.key(os.hostname(), id, UPLOAD_RECORD))).toString()) as UploadRecord;
    return record.files.find((f) => f.name === 'core.elf')!.parts.length;
  } finally {
    t.close();
  }
}

test('physcap capture lands in the spool, then the bucket: parts are the chunks, and list, show and verify read it back by host', async () => {
  const p = s3Profile();
  const r = await physcap(['capture', p.file, '--json'], { timeout: 120_000 });
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  const out = JSON.parse(r.stdout) as {
    id: string;
    status: string;
    upload: { status: string; result: { partsSent: number; remote: string; verified: string } };
  };
  expect(out.status).toBe('complete');
  expect(out.upload).toMatchObject({ status: 'verified', result: { remote: `s3://${BUCKET}/hosts/${os.hostname()}/${out.id}/` } });
  // 48 MiB of 8 MiB chunks: six parts, the first with the ELF headers before the region, the others exactly a chunk each.
  expect(await plannedParts(p, out.id)).toBe(6);
  expect(out.upload.result.partsSent).toBe(6);
  await expectVerifiedCopy(p, out.id);
  const t = remote.target(spec(p));
  const record = JSON.parse((await objectBytes(t.key(os.hostname(), out.id, UPLOAD_RECORD))).toString()) as UploadRecord;
  t.close();
  expect(record.files[0]!.parts.filter((x) => x.sha256).length).toBe(5);

  const access = ['--dest', `s3://${BUCKET}/hosts`, '--endpoint', ceph.endpoint, '--credentials', creds];
  const list = await physcap(['list', ...access, '--json']);
  expect(list.code).toBe(0);
  expect(JSON.parse(list.stdout)).toContainEqual(expect.objectContaining({ host: os.hostname(), id: out.id, complete: true }));
  const show = await physcap(['show', out.id.slice(0, -3), ...access]);
  expect(show.stdout).toContain(`${out.id}: complete, host ${os.hostname()}`);
  const verify = await physcap(['verify', out.id, ...access, '--full']);
  expect({ code: verify.code, out: verify.stdout }).toMatchObject({ code: 0, out: expect.stringMatching(/OK \(full/) });
  // Time ranges and hosts select, across the fleet's bucket.
  const later = await physcap(['list', ...access, '--since', new Date(Date.now() + 3_600_000).toISOString(), '--json']);
  expect(JSON.parse(later.stdout)).toEqual([]);
  const other = await physcap(['list', ...access, '--host', 'some-other-host']);
  expect(other.stdout).toMatch(/no captures/);
}, 120_000);

test('export from the bucket: the capture is read back and checked whole first; a damaged copy exports nothing', async () => {
  const p = s3Profile();
  const o = await captureNow(p);
  await upload(p, o.id);
  const access = ['--dest', `s3://${BUCKET}/hosts`, '--endpoint', ceph.endpoint, '--credentials', creds];
  const out = tempDir('physcap-s3-export');
  try {
    const local = await physcap(['export', path.join(spec(p).spool.path, o.id), '--format', 'elf', '-o', path.join(out, 'local.elf')]);
    expect({ code: local.code, stderr: local.stderr }).toEqual({ code: 0, stderr: '' });
    const fromBucket = await physcap(['export', o.id, ...access, '--format', 'elf', '-o', path.join(out, 'remote.elf')], { timeout: 60_000 });
    expect({ code: fromBucket.code, stderr: fromBucket.stderr }).toEqual({ code: 0, stderr: '' });
    expect(sha256(fs.readFileSync(path.join(out, 'remote.elf')))).toBe(sha256(fs.readFileSync(path.join(out, 'local.elf'))));
    // The fetched copy it was exported from is gone.
    expect(fs.readdirSync(out).sort()).toEqual(['local.elf', 'remote.elf']);

    // The bucket's core replaced by one with a byte changed (what a tamperer with write access could do).
    const key = `hosts/${os.hostname()}/${o.id}/core.elf`;
    const core = await objectBytes(key);
    core[20 * MiB] ^= 1;
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: core }));
    const bad = await physcap(['export', o.id, ...access, '--format', 'raw', '--region', 'all', '-o', path.join(out, 'all.raw')], { timeout: 60_000 });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /does not verify; nothing exported:\n.*core\.elf: ETag .*, its recorded parts make .*\n.*core\.elf: region all: chunk 2 .*does not match/,
    );
    expect(fs.readdirSync(out).sort()).toEqual(['local.elf', 'remote.elf']);
  } finally {
    removeDir(out);
  }
}, 120_000);

test('every part carries integrity radosgw enforces: a body that is not its signed SHA-256 or its Content-MD5 is refused', async () => {
  const t = remote.target(spec(s3Profile()));
  const key = t.key('integrity', 'x', 'core.elf');
  try {
    const uploadId = await t.createUpload(key);
    const data = crypto.randomBytes(5 * MiB);
    const good = bodyOf(data);
    const other = bodyOf(crypto.randomBytes(16));
    await expect(t.putPart(key, uploadId, 1, 0, { ...good, sha256: other.sha256 }, undefined)).rejects.toMatchObject({
      code: 'EBADMSG',
      serverCode: 'XAmzContentSHA256Mismatch',
    });
    await expect(t.putPart(key, uploadId, 1, 0, { ...good, md5: other.md5 }, undefined)).rejects.toMatchObject({ code: 'EBADMSG', serverCode: 'BadDigest' });
    const etag = await t.putPart(key, uploadId, 1, 0, good);
    // Completion names exactly the parts sent: one that was never sent is refused.
    await expect(
      t.completeUpload(key, uploadId, [
        { n: 1, etag },
        { n: 2, etag },
      ]),
    ).rejects.toMatchObject({ code: 'EIO' });
    await t.abortUpload(key, uploadId);
    // A whole object is never written over one that is there.
    await t.putWhole(t.key('integrity', 'x', 'small'), bodyOf(Buffer.from('first')));
    await expect(t.putWhole(t.key('integrity', 'x', 'small'), bodyOf(Buffer.from('second')))).rejects.toMatchObject({ code: 'EEXIST' });
  } finally {
    t.close();
  }
});

test('a part damaged on the wire is refused by the server and sent again; the copy verifies', async () => {
  const proxy = await startProxy(Number(new URL(ceph.endpoint).port));
  try {
    const p = s3Profile({ endpoint: `http://127.0.0.1:${proxy.port}` });
    const o = await captureNow(p);
    proxy.corruptAt(3 * MiB + 17); // inside the first part's body
    const log = memoryLogger();
    const r = await upload(p, o.id, { log });
    expect(proxy.flipped).toBe(1);
    expect(r.retries).toBeGreaterThanOrEqual(1);
    expect(log.records.map((x) => String(x.err))).toContainEqual(expect.stringMatching(/BadDigest|XAmzContentSHA256Mismatch/));
    await expectVerifiedCopy(p, o.id);
  } finally {
    await proxy.close();
  }
}, 60_000);

test('radosgw stopped mid-copy and started again: the copy waits it out and completes, nothing sent twice that the server held', async () => {
  const p = s3Profile({ size: 96 * MiB, upload: '{ bandwidth: 24MiB, parallel: 2 }' });
  const o = await captureNow(p);
  const journal = journalFile(spec(p).spool.path, o.id);
  const log = memoryLogger();
  const copy = upload(p, o.id, { log });
  try {
    expect(await waitUntil(() => (Journal.read(journal)?.parts.get('core.elf')?.size ?? 0) >= 3, 30_000)).toBe(true);
    await ceph.stopGateway();
    await new Promise((r) => setTimeout(r, 3_000));
  } finally {
    await ceph.startGateway();
  }
  const r = await copy;
  expect(r.retries).toBeGreaterThanOrEqual(1);
  expect(r.partsSent + r.partsFound).toBe(await plannedParts(p, o.id));
  await expectVerifiedCopy(p, o.id);
}, 120_000);

test('physcap upload killed with SIGKILL half way resumes from its journal: no part the server held is sent again', async () => {
  const p = s3Profile({ size: 96 * MiB, upload: '{ bandwidth: 24MiB, parallel: 2 }' });
  const o = await captureNow(p);
  const journal = journalFile(spec(p).spool.path, o.id);
  const child = spawn(process.execPath, [physcapCli, 'upload', p.file, '--json'], { stdio: 'ignore' });
  try {
    expect(await waitUntil(() => (Journal.read(journal)?.parts.get('core.elf')?.size ?? 0) >= 6, 30_000)).toBe(true);
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  // What the server holds at the kill: every part it completed, journaled or not.
  const state = Journal.read(journal)!;
  const t = remote.target(spec(p));
  const held = (await t.listParts(t.key(os.hostname(), o.id, 'core.elf'), state.uploads.get('core.elf')!))!.length;
  t.close();
  expect(held).toBeGreaterThanOrEqual(6);
  const again = await physcap(['upload', p.file, '--json'], { timeout: 60_000 });
  expect(again.code).toBe(0);
  const r = JSON.parse(again.stdout) as { status: string; partsSent: number; partsJournaled: number; partsFound: number };
  expect(r.status).toBe('verified');
  const planned = await plannedParts(p, o.id);
  expect(r.partsJournaled + r.partsFound).toBe(held);
  expect(r.partsSent).toBe(planned - held);
  await expectVerifiedCopy(p, o.id);
}, 120_000);

test('wrong credentials: the pre-flight check says so, the capture is kept in the spool, and upload refuses until they are right', async () => {
  const p = s3Profile({ credentials: credentialsFile('wrong', 'not-the-secret') });
  const r = await physcap(['capture', p.file, '--json'], { timeout: 60_000 });
  expect(r.code).toBe(75);
  expect(r.stderr).toMatch(/pre-flight check failed: .*SignatureDoesNotMatch.*the credentials were refused/);
  expect(r.stderr).toMatch(/capturing into the spool only/);
  const out = JSON.parse(r.stdout) as { id: string; status: string; upload: { status: string } };
  expect(out).toMatchObject({ status: 'complete', upload: { status: 'skipped' } });
  const up = await physcap(['upload', p.file]);
  expect(up.code).toBe(1);
  expect(up.stderr).toMatch(/credentials were refused; the capture is kept in the spool/);
  expect(await pendingIds(p)).toEqual([out.id]);
  // The right keys, and the same command copies it.
  fs.writeFileSync(credentialsFile('wrong', ceph.credentials.secretAccessKey), fs.readFileSync(creds));
  expect((await physcap(['upload', p.file])).code).toBe(0);
  await expectVerifiedCopy(p, out.id);
}, 120_000);

test('a missing bucket is named by the pre-flight check; a credentials file others can read is refused before any request', async () => {
  const missing = s3Profile({ url: 's3://no-such-bucket/x' });
  const r = await physcap(['capture', missing.file, '--json'], { timeout: 60_000 });
  expect(r.code).toBe(75);
  expect(r.stderr).toMatch(/s3:\/\/no-such-bucket\/x\/: pre-flight check failed: .*NoSuchBucket/);

  const open = credentialsFile('open', ceph.credentials.secretAccessKey, 0o644);
  const p = s3Profile({ credentials: open });
  const diagnostics = checkFile(p.file).diagnostics.map((d) => `${d.pointer}: ${d.message}`);
  expect(diagnostics).toContainEqual(
    expect.stringMatching(/^\/destination\/credentials\/file: the agent will not use this file: .* is readable by others \(mode 0644\): chmod 600 it/),
  );
  const c = await physcap(['capture', p.file]);
  expect(c.stderr).toMatch(/pre-flight check failed: credentials: .* is readable by others/);
}, 60_000);

test("an object already at a capture's key is never written over: the copy stops, says so, and the spool keeps the capture", async () => {
  const p = s3Profile();
  const o = await captureNow(p);
  const host = hostOf(o.manifest!);
  const t = remote.target(spec(p));
  const key = t.key(host, o.id, 'core.elf');
  t.close();
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from("someone else's object") }));
  await expect(upload(p, o.id)).rejects.toMatchObject({
    code: 'EEXIST',
    message: expect.stringMatching(/is already there and is not this capture's copy: refusing to overwrite it/),
  });
  expect((await objectBytes(key)).toString()).toBe("someone else's object");
  expect(await pendingIds(p)).toEqual([o.id]);
}, 60_000);

test('a full spool: captures not yet copied are never removed to make room, the refusal names them; verified ones make way', async () => {
  const spool = path.join(spoolFull(), 'spool');
  const down = s3Profile({ spool, endpoint: 'http://127.0.0.1:9', size: 16 * MiB, retention: '{ count: 1, keep_free: 0 }' });
  const first = await captureNow(down);
  const second = await captureNow(down);
  expect([first.status, second.status]).toEqual(['complete', 'complete']);
  // Retention (count 1) removed neither: neither is copied.
  expect(await pendingIds(down)).toEqual([first.id, second.id]);
  await expect(captureNow(down)).rejects.toMatchObject({
    code: 'ENOSPC',
    message: expect.stringMatching(new RegExp(`2 captures not yet copied \\(${first.id}, ${second.id}\\)`)),
  });
  // The bucket is back: both copied; the next capture finds room by removing verified ones, oldest first.
  const up = s3Profile({ spool, size: 16 * MiB, retention: '{ count: 1, keep_free: 0 }' });
  expect((await physcap(['upload', up.file])).code).toBe(0);
  const third = await captureNow(up);
  expect(third.status).toBe('complete');
  // first made room; retention (count 1) then removed second, copied; both are whole in the bucket.
  expect(await withSpool(up, (s) => [first.id, second.id, third.id].map((id) => s.inner.index().entries.some((e) => e.id === id)))).toEqual([true, true, true]);
  expect(await pendingIds(up)).toEqual([third.id]);
  const t = remote.target(spec(up));
  try {
    for (const id of [first.id, second.id]) expect((await verifyRemote(t, await findRemote(t, id), { full: true })).problems).toEqual([]);
  } finally {
    t.close();
  }
}, 120_000);

test('after_copy: delete removes the spool copy once the bucket copy is verified, never before', async () => {
  const p = s3Profile({ afterCopy: 'delete' });
  const o = await captureNow(p);
  const store = remote.spool(spec(p));
  expect(() => store.open(o.id).close()).not.toThrow();
  await uploadCapture(remote, spec(p), store, o.id);
  expect(() => store.open(o.id).close()).toThrow();
  const t = remote.target(spec(p));
  const c = await findRemote(t, o.id);
  expect((await verifyRemote(t, c, { full: true })).ok).toBe(true);
  t.close();
  store.close();
}, 60_000);

test('one bucket, many hosts: list across them and by host', async () => {
  const p = s3Profile();
  const o = await captureNow(p);
  await upload(p, o.id);
  const t = remote.target(spec(p));
  try {
    // Another host's capture of the same fleet, copied by hand the way its agent would have laid it out.
    const otherKey = (f: string) => t.key('board-17', 'other-20261201T100000Z-abcdef', f);
    for (const f of ['manifest.json', 'SHA256SUMS']) await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: otherKey(f), Body: Buffer.from('{}') }));
    const all = await listRemote(t);
    expect(all.map((c) => c.host)).toEqual(expect.arrayContaining([os.hostname(), 'board-17']));
    const board = await listRemote(t, { host: 'board-17' });
    expect(board.map((c) => c.id)).toEqual(['other-20261201T100000Z-abcdef']);
    const since = await listRemote(t, { until: new Date('2026-12-01T12:00:00Z') });
    expect(since.map((c) => c.host)).toEqual(['board-17']);
  } finally {
    t.close();
  }
}, 60_000);

test('the agent copies each capture in the background, counts the copies in its metrics, and after SIGKILL mid-copy resumes at start-up', async () => {
  const dir = path.join(work, 'agent');
  fs.mkdirSync(path.join(dir, 'profiles'), { recursive: true });
  const spoolDir = path.join(dir, 'spool');
  fs.mkdirSync(spoolDir, { mode: 0o750 });
  const p = s3Profile({ url: `s3://${BUCKET}/agent`, spool: spoolDir, size: 96 * MiB, upload: '{ bandwidth: 32MiB, parallel: 2 }' });
  fs.copyFileSync(p.file, path.join(dir, 'profiles', path.basename(p.file)));
  fs.writeFileSync(path.join(dir, 'agent.yaml'), 'apiVersion: physcap.dev/v1\nkind: AgentConfig\nmetrics_listen: "127.0.0.1:0"\n');
  const runtime = path.join(dir, 'run');
  let log = '';
  const start = () => {
    log = '';
    const a = runAgent(dir, { extra: ['--config', path.join(dir, 'agent.yaml')] });
    a.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    return a;
  };
  const copied = () => log.split('\n').filter((l) => l.includes('"capture copied and verified"'));
  let agent = start();
  try {
    expect(await waitUntil(() => log.includes('passed its pre-flight check'), 30_000)).toBe(true);
    expect((await physcap(['trigger', p.name, '--runtime-dir', runtime])).code).toBe(0);
    expect(await waitUntil(() => copied().length === 1, 60_000)).toBe(true);
    const port = (JSON.parse(log.split('\n').find((l) => l.includes('"metrics listening"'))!) as { port: number }).port;
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const dest = `destination="s3://${BUCKET}/agent/"`;
    expect(metrics).toMatch(new RegExp(`^physcap_uploads_total\\{${dest},result="verified"\\} 1$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^physcap_upload_parts_total\\{${dest}\\} 12$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^physcap_upload_bytes_total\\{${dest}\\} \\d+`, 'm'));

    // A second capture, and the agent killed half way through its copy.
    expect((await physcap(['trigger', p.name, '--runtime-dir', runtime])).code).toBe(0);
    const completes = () =>
      log
        .split('\n')
        .filter((l) => l.includes('"capture complete"'))
        .map((l) => (JSON.parse(l) as { capture: string }).capture);
    expect(await waitUntil(() => completes().length === 2, 60_000)).toBe(true);
    const id = completes()[1]!;
    expect(await waitUntil(() => (Journal.read(journalFile(spoolDir, id))?.parts.get('core.elf')?.size ?? 0) >= 4, 30_000)).toBe(true);
    agent.kill('SIGKILL');
    await new Promise((r) => agent.once('exit', r));
    agent = start();
    expect(await waitUntil(() => copied().length === 1, 60_000)).toBe(true);
    const resumed = JSON.parse(copied()[0]!) as { capture: string; partsSent: number; partsResumed: number };
    expect(resumed.capture).toBe(id);
    expect(resumed.partsResumed).toBeGreaterThanOrEqual(4);
    expect(resumed.partsSent + resumed.partsResumed).toBe(12);
    await expectVerifiedCopy(p, id);
  } finally {
    await stopAgent(agent);
  }
}, 180_000);
