/**
 * The sftp destination against OpenSSH's own server: a throwaway sshd on
 * 127.0.0.1 (harness/sshd.ts) with internal-sftp behind a `restrict` key.
 * The faults: sshd stopped mid-copy, the uploader killed with SIGKILL half
 * way, a byte flipped on the wire (SSH's MAC refuses it), a host key that
 * is not the pinned one, a key the server does not accept, a file already
 * there.  Every copy is checked by reading the server's files back.
 */
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { Profile } from '../../agent/src/config/profile';
import { memoryLogger } from '../../agent/src/core/logger';
import { Journal } from '../../agent/src/destinations/remote/journal';
import { hostOf } from '../../agent/src/destinations/remote/ship';
import { journalFile } from '../../agent/src/destinations/remote/spool';
import { sftpKind, SftpSpec } from '../../agent/src/destinations/sftp/kind';
import { findRemote, verifyRemote } from '../../agent/src/postmortem/remote';
import { physcapCli } from '../../harness/agent';
import { SftpServer, startSshd } from '../../harness/sshd';
import { captureNow, imageProfile, makeImage, MiB, writeProfile } from '../support/capture';
import { exec, physcap } from '../support/cli';
import { startProxy } from '../support/tcp-proxy';
import { spoolHelpers } from '../support/spool';
import { removeDir, tempDir } from '../support/tmp';
import { waitUntil } from '../support/wait';

const remote = sftpKind.remote!;
const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

let sshd: SftpServer;
let work: string;
let img: ReturnType<typeof makeImage>;

beforeAll(async () => {
  sshd = await startSshd();
  work = tempDir('physcap-sftp');
  img = makeImage(work, 96 * MiB);
}, 60_000);

afterAll(async () => {
  await sshd?.stop();
  if (work) removeDir(work);
}, 30_000);

let profiles = 0;
/** A profile of the image's first `size` bytes (8 MiB chunks) to the server's /fleet. */
function sftpProfile(o: { port?: number; hostKey?: string; identity?: string; size?: number; upload?: string } = {}): Profile {
  const name = `p${++profiles}`;
  const dir = path.join(work, name);
  fs.mkdirSync(path.join(dir, 'spool'), { recursive: true, mode: 0o750 });
  const body = imageProfile({ image: img.file, dest: '/unused', regions: [['all', 0, o.size ?? 48 * MiB]], chunk: '8MiB', extra: 'cooldown: 0\n' });
  const dest = [
    '  kind: sftp',
    `  url: sftp://${sshd.username}@127.0.0.1:${o.port ?? sshd.port}/fleet`,
    `  host_key: "${o.hostKey ?? sshd.hostKeyFingerprint}"`,
    `  identity: ${o.identity ?? sshd.privateKeyPath}`,
    '  spool:',
    `    path: ${path.join(dir, 'spool')}`,
    '    retention: { count: 0, keep_free: 0 }',
    ...(o.upload ? [`  upload: ${o.upload}`] : []),
  ].join('\n');
  return writeProfile(dir, name, body.replace(/destination:\n(?: {2}.*\n)+/, `destination:\n${dest}\n`));
}

const spec = (p: Profile) => p.destination as SftpSpec;

const { withSpool, upload } = spoolHelpers(remote);

/** Where a capture's file is on this machine, under the server's chroot. */
const onServer = (id: string, file = '') => path.join(sshd.root, 'fleet', os.hostname(), id, file);

/** The server's copy reads back whole (cheap and full verify) and is the spool's core, byte for byte. */
async function expectVerifiedCopy(p: Profile, id: string): Promise<void> {
  const t = remote.target(spec(p));
  try {
    const c = await findRemote(t, id);
    for (const full of [false, true]) expect({ full, problems: (await verifyRemote(t, c, { full })).problems }).toEqual({ full, problems: [] });
  } finally {
    t.close();
  }
  const local = await withSpool(p, (s) => {
    const r = s.open(id);
    try {
      return r.read('core.elf', 0, r.files().find((f) => f.name === 'core.elf')!.size);
    } finally {
      r.close();
    }
  });
  expect(sha256(fs.readFileSync(onServer(id, 'core.elf')))).toBe(sha256(local));
}

test('physcap capture copies over SFTP: files 0600 in 0700 directories by host, read back by list, show and verify', async () => {
  const p = sftpProfile();
  const r = await physcap(['capture', p.file, '--json'], { timeout: 120_000 });
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  const out = JSON.parse(r.stdout) as { id: string; upload: { status: string; result: { partsSent: number; verified: string } } };
  expect(out.upload).toMatchObject({ status: 'verified', result: { partsSent: 6, verified: expect.stringMatching(/sizes of \d+ files/) } });
  await expectVerifiedCopy(p, out.id);
  for (const f of fs.readdirSync(onServer(out.id)))
    expect({ f, mode: (fs.statSync(onServer(out.id, f)).mode & 0o777).toString(8) }).toEqual({ f, mode: '600' });
  expect((fs.statSync(onServer(out.id)).mode & 0o777).toString(8)).toBe('700');
  // No unfinished upload is left beside the files.
  expect(fs.readdirSync(onServer(out.id)).filter((f) => f.includes('.incomplete-'))).toEqual([]);

  const access = ['--dest', `sftp://${sshd.username}@127.0.0.1:${sshd.port}/fleet`, '--identity', sshd.privateKeyPath, '--host-key', sshd.hostKeyFingerprint];
  const list = await physcap(['list', ...access, '--json']);
  expect(JSON.parse(list.stdout)).toContainEqual(expect.objectContaining({ host: os.hostname(), id: out.id, complete: true }));
  expect((await physcap(['show', out.id, ...access])).stdout).toContain(`${out.id}: complete, host ${os.hostname()}`);
  const verify = await physcap(['verify', out.id, ...access, '--full']);
  expect({ code: verify.code, out: verify.stdout }).toMatchObject({ code: 0, out: expect.stringMatching(/OK \(full/) });
}, 120_000);

test('a host key that is not the pinned one is refused before a byte is sent; so is a key the server does not accept', async () => {
  const wrongPin = sftpProfile({ hostKey: `SHA256:${'A'.repeat(43)}` });
  const r = await physcap(['capture', wrongPin.file, '--json'], { timeout: 60_000 });
  expect(r.code).toBe(75);
  expect(r.stderr).toMatch(
    new RegExp(`pre-flight check failed: .*host key is ${sshd.hostKeyFingerprint.replace(/[+/]/g, '\\$&')}, not the pinned SHA256:A+: refusing to talk to it`),
  );

  const stranger = path.join(work, 'stranger_ed25519');
  expect((await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger])).code).toBe(0);
  const unknownKey = sftpProfile({ identity: stranger });
  const k = await physcap(['capture', unknownKey.file, '--json'], { timeout: 60_000 });
  expect(k.code).toBe(75);
  expect(k.stderr).toMatch(/pre-flight check failed: .*the key was refused/);
  expect(JSON.parse(k.stdout)).toMatchObject({ status: 'complete', upload: { status: 'skipped' } });
}, 60_000);

test('a byte flipped on the wire breaks the SSH MAC: the server drops the connection, and the copy reconnects and resends', async () => {
  const proxy = await startProxy(sshd.port);
  try {
    const p = sftpProfile({ port: proxy.port });
    const o = await captureNow(p);
    proxy.corruptAt(6 * MiB + 101);
    const log = memoryLogger();
    const r = await upload(p, o.id, { log });
    expect(proxy.flipped).toBe(1);
    expect(r.retries).toBeGreaterThanOrEqual(1);
    await expectVerifiedCopy(p, o.id);
  } finally {
    await proxy.close();
  }
}, 60_000);

test('sshd stopped mid-copy and started again: the copy waits it out and completes', async () => {
  const p = sftpProfile({ size: 96 * MiB, upload: '{ bandwidth: 24MiB, parallel: 2 }' });
  const o = await captureNow(p);
  const journal = journalFile(spec(p).spool.path, o.id);
  const copy = upload(p, o.id);
  try {
    expect(await waitUntil(() => (Journal.read(journal)?.parts.get('core.elf')?.size ?? 0) >= 3, 30_000)).toBe(true);
    await sshd.stopServer();
    await new Promise((r) => setTimeout(r, 2_000));
  } finally {
    await sshd.startServer();
  }
  const r = await copy;
  expect(r.retries).toBeGreaterThanOrEqual(1);
  await expectVerifiedCopy(p, o.id);
}, 120_000);

test('physcap upload killed with SIGKILL half way resumes from its journal: the parts it recorded are not sent again', async () => {
  const p = sftpProfile({ size: 96 * MiB, upload: '{ bandwidth: 24MiB, parallel: 2 }' });
  const o = await captureNow(p);
  const journal = journalFile(spec(p).spool.path, o.id);
  const child = spawn(process.execPath, [physcapCli, 'upload', p.file, '--json'], { stdio: 'ignore' });
  try {
    expect(await waitUntil(() => (Journal.read(journal)?.parts.get('core.elf')?.size ?? 0) >= 6, 30_000)).toBe(true);
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  const recorded = Journal.read(journal)!.parts.get('core.elf')!.size;
  const again = await physcap(['upload', p.file, '--json'], { timeout: 60_000 });
  expect(again.code).toBe(0);
  const r = JSON.parse(again.stdout) as { status: string; partsSent: number; partsJournaled: number };
  expect(r.status).toBe('verified');
  expect(r.partsJournaled).toBe(recorded);
  expect(r.partsSent).toBe(12 - recorded);
  await expectVerifiedCopy(p, o.id);
}, 120_000);

test("a file already at a capture's path is never written over: the copy stops, says so, and the spool keeps the capture", async () => {
  const p = sftpProfile();
  const o = await captureNow(p);
  const theirs = onServer(o.id, 'core.elf').replace(os.hostname(), hostOf(o.manifest!));
  fs.mkdirSync(path.dirname(theirs), { recursive: true, mode: 0o700 });
  fs.writeFileSync(theirs, "someone else's file");
  await expect(upload(p, o.id)).rejects.toMatchObject({ code: 'EEXIST', message: expect.stringMatching(/refusing to overwrite it/) });
  expect(fs.readFileSync(theirs, 'utf8')).toBe("someone else's file");
  expect(await withSpool(p, (s) => s.pending().map((e) => e.id))).toEqual([o.id]);
}, 60_000);
