/**
 * The fleet benchmark: a capture copied to S3, against a real single-node
 * Ceph with radosgw on 127.0.0.1 (harness/ceph.ts), started once for the
 * suite and stopped at its end, whatever happens.
 *
 * The capture: an image of random bytes (AES-CTR keystream, every part
 * differs; nothing sparse) in tmpfs, captured by the image source as an
 * ELF core into the s3 destination's spool on the disk.  Its chunk size is
 * the part size, so each part of physcap's copy is one chunk (remote/
 * parts.ts; the first part also carries the ELF headers): 64 MiB for the
 * full run (hash.chunk_size's default, 4 MiB, is below S3's smallest part,
 * and the profile check itself warns about it; 64 MiB is what lib-storage
 * users pick for big files, 32 parts for 2 GiB), 8 MiB for --short.  Both
 * uploaders keep PARALLEL parts in flight: physcap's upload.parallel
 * default, which is also lib-storage's queueSize default.
 *
 * Cases, every figure of a child process (/usr/bin/time: its own CPU and
 * peak RSS; wall from the bench's clock around it):
 *   fleet/sdk-upload       lib-storage's Upload of the capture's core.elf
 *                          (bench/sdk-upload.ts), the SDK's defaults
 *   fleet/sdk-upload-when-required
 *                          the same with the SDK's default request
 *                          checksums off, as physcap's own client has them
 *   fleet/physcap-copy     `physcap upload PROFILE --id ID --json` of the
 *                          same capture: every file, the journal, the
 *                          check of every object at the end
 *   fleet/end-to-end       `physcap run`: a trigger file renamed into place
 *                          to the copy's `verified` journal record
 *   fleet/resume-kill9     `physcap upload` SIGKILLed once half the parts
 *                          are in the journal, then run again
 * The first three alternate, their order rotated round by round, each
 * round on a fresh capture (so a fresh remote key each time) read from a
 * dropped page cache; medians are reported.  Between runs the bucket is
 * emptied and radosgw's garbage collector run by hand, so the OSD's space
 * (16 GiB) is never what limits a run.
 */
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { runCapture } from '../agent/src/capture/pipeline';
import { checkFile } from '../agent/src/config/load';
import type { Profile } from '../agent/src/config/profile';
import { Journal } from '../agent/src/destinations/remote/journal';
import { planCapture } from '../agent/src/destinations/remote/parts';
import type { ShipResult } from '../agent/src/destinations/remote/ship';
import { journalFile } from '../agent/src/destinations/remote/spool';
import { s3Kind, S3Spec } from '../agent/src/destinations/s3/kind';
import type { Manifest } from '../agent/src/manifest/types';
import { requestEvent } from '../agent/src/triggers/control';
import { physcapCli, runAgent, stopAgent } from '../harness/agent';
import { CephCluster, cephMissing, startCeph } from '../harness/ceph';
import { writePattern } from '../harness/patterns';
import { repoRoot } from '../harness/paths';
import { median, round3 } from './case';
import type { HostCase } from './host';

const MiB = 2 ** 20;
const BUCKET = 'fleet';
/** Parts in flight, both sides: physcap's upload.parallel default and lib-storage's queueSize default. */
const PARALLEL = 4;
/** Bound on any one child (a 2 GiB copy takes well under a minute when all is well). */
const CHILD_MS = 20 * 60_000;

export interface FleetSizes {
  imageMiB: number;
  partMiB: number;
}
export const FULL_FLEET: FleetSizes = { imageMiB: 2048, partMiB: 64 };
export const SHORT_FLEET: FleetSizes = { imageMiB: 64, partMiB: 8 };

/**
 * The side-by-side cases.  The headline ratio (throughput_vs_sdk,
 * rss_vs_sdk) is against `sdk-upload`, the SDK's plain Upload: a default
 * S3Client (only the endpoint and path-style addressing set, which any
 * S3-compatible store needs) with the same part size and parallelism.
 * That is what a fleet would write by hand without physcap, so it is what
 * the issue's target is measured against.  `sdk-upload-when-required`
 * (the SDK's default CRC32 request checksums off, as physcap's client
 * has them) is reported beside it, with its own ratio, to show how much of
 * the difference is that one setting.
 */
const METHODS = ['sdk-upload', 'sdk-upload-when-required', 'physcap-copy'] as const;
type Method = (typeof METHODS)[number];

interface Timed {
  wall: number;
  cpu: number;
  rssMb: number;
  stdout: string;
}

/** Runs a command under /usr/bin/time (its CPU and peak RSS); wall from this process's clock. */
function timed(cmd: string[], env: NodeJS.ProcessEnv = process.env): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    // Its own process group, so a timeout kills the command and not only /usr/bin/time.
    const child = spawn('/usr/bin/time', ['-f', '@@time %e %U %S %M', ...cmd], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-65536)));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), CHILD_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) return reject(new Error(`${cmd.join(' ')} failed (${code}):\n${stdout.slice(-4000)}\n${stderr.slice(-4000)}`));
      const line =
        stderr
          .split('\n')
          .filter((l) => l.startsWith('@@time'))
          .pop() ?? '';
      const [, , u, s, m] = line.split(' ');
      resolve({ wall, cpu: Number(u) + Number(s), rssMb: Number(m) / 1024, stdout });
    });
  });
}

function dropCaches(): void {
  execFileSync('sync');
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    /* not root: both sides then read what the cache happens to hold */
  }
}

/** /proc/PID/stat utime + stime (every thread), in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

/** The process's peak RSS so far (VmHWM), in MiB. */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number, every = 20): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(every);
  }
  return true;
}

/** A capture in the spool, not copied yet. */
interface Spooled {
  id: string;
  /** Its core.elf, as a file of its own. */
  core: string;
  coreBytes: number;
  /** Parts of every data file as the copy plans them. */
  parts: number;
}

class Fleet {
  readonly client: S3Client;
  readonly env: NodeJS.ProcessEnv;
  readonly credentials: string;
  readonly image: string;
  private profiles = 0;

  constructor(
    readonly ceph: CephCluster,
    readonly work: string,
    readonly shm: string,
    readonly sizes: FleetSizes,
  ) {
    this.client = new S3Client({ endpoint: ceph.endpoint, region: ceph.region, forcePathStyle: true, credentials: ceph.credentials });
    this.env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: ceph.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: ceph.credentials.secretAccessKey,
      AWS_REGION: ceph.region,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    this.credentials = path.join(work, 'ceph.credentials');
    fs.writeFileSync(
      this.credentials,
      `[default]\naws_access_key_id = ${ceph.credentials.accessKeyId}\naws_secret_access_key = ${ceph.credentials.secretAccessKey}\n`,
      { mode: 0o600 },
    );
    this.image = path.join(shm, 'image');
  }

  get bytes(): number {
    return this.sizes.imageMiB * MiB;
  }

  async prepare(): Promise<void> {
    await this.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const fd = fs.openSync(this.image, 'w');
    try {
      writePattern(fd, 0, this.bytes, 'fleet', 'image');
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * A profile file: the whole image as one region, chunks of the part
   * size, the s3 destination at s3://fleet/PREFIX through the spool.
   */
  profile(o: { spool: string; prefix: string; dir?: string; triggers?: string[]; upload?: string }): string {
    const name = `fleet${++this.profiles}`;
    const dir = o.dir ?? this.work;
    fs.mkdirSync(o.spool, { recursive: true, mode: 0o750 });
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(
      file,
      `apiVersion: physcap.dev/v1
kind: CaptureProfile
name: ${name}
regions:
  - name: all
    start: "0x0"
    size: ${this.sizes.imageMiB}MiB
triggers:
${(o.triggers ?? ['kind: control']).map((t) => `  - ${t}`).join('\n')}
destination:
  kind: s3
  url: s3://${BUCKET}/${o.prefix}
  endpoint: ${this.ceph.endpoint}
  region: ${this.ceph.region}
  credentials: { file: ${this.credentials} }
  spool:
    path: ${o.spool}
    retention: { count: 0, keep_free: 0 }
  upload: ${o.upload ?? `{ parallel: ${PARALLEL} }`}
source:
  kind: image
  image_path: ${this.image}
output:
  format: elf
hash:
  chunk_size: ${this.sizes.partMiB}MiB
cooldown: 0
`,
    );
    return file;
  }

  load(file: string): Profile {
    const checked = checkFile(file);
    const errors = checked.diagnostics.filter((d) => d.severity === 'error');
    if (errors.length || !checked.profile) throw new Error(`fleet: profile ${file}: ${JSON.stringify(errors)}`);
    return checked.profile;
  }

  /** One capture into the profile's spool, in this process, without copying it (what `physcap capture` does before its copy). */
  async capture(file: string): Promise<Spooled> {
    const p = this.load(file);
    const out = await runCapture({ profile: p, events: [requestEvent(p.name, Date.now(), 'fleet benchmark')] });
    if (out.status !== 'complete') throw new Error(`fleet: capture failed: ${out.error?.message}`);
    return this.spooled(p, out.id);
  }

  /** A capture of the spool: where its core is, and how many parts its copy will send. */
  spooled(p: Profile, id: string): Spooled {
    const spool = s3Kind.remote!.spool(p.destination as S3Spec);
    try {
      const reader = spool.open(id);
      try {
        const at = reader.locate('core.elf');
        if (at.base !== 0n || fs.statSync(at.path).size !== at.size) throw new Error(`fleet: ${at.path} is not core.elf alone`);
        const manifest = JSON.parse(reader.readFile('manifest.json').toString('utf8')) as Manifest;
        const plan = planCapture(reader.files(), manifest, (r) =>
          Array.isArray(r.chunks) ? r.chunks : reader.readFile(r.chunks.file).toString('utf8').split('\n').filter(Boolean),
        );
        return { id, core: at.path, coreBytes: at.size, parts: plan.reduce((a, f) => a + f.parts.length, 0) };
      } finally {
        reader.close();
      }
    } finally {
      spool.close();
    }
  }

  /** The capture removed from the spool (its copy is done with): the disk holds one 2 GiB capture at a time. */
  unspool(file: string, id: string): void {
    const spool = s3Kind.remote!.spool(this.load(file).destination as S3Spec);
    try {
      spool.inner.remove!(id);
    } finally {
      spool.close();
    }
  }

  /**
   * Every object and unfinished upload of the bucket removed, and radosgw's
   * garbage collector run now (it otherwise frees deleted data hours later).
   */
  async empty(): Promise<void> {
    for (let token: string | undefined; ;) {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: BUCKET, ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of r.Contents ?? []) await this.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: o.Key! }));
      if (!r.IsTruncated) break;
      token = r.NextContinuationToken;
    }
    const ups = await this.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    for (const u of ups.Uploads ?? []) await this.client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: u.Key!, UploadId: u.UploadId! }));
    await new Promise<void>((resolve, reject) =>
      execFile('radosgw-admin', ['-c', path.join(this.ceph.dir, 'ceph.conf'), 'gc', 'process', '--include-all'], { timeout: 300_000 }, (err, _o, stderr) =>
        err ? reject(new Error(`radosgw-admin gc process: ${err.message}\n${String(stderr)}`)) : resolve(),
      ),
    );
  }

  async sdkUpload(c: Spooled, key: string, whenRequired: boolean): Promise<Timed & { bytes: number; own: number }> {
    const cmd = [process.execPath, path.join(repoRoot(), 'dist', 'bench', 'sdk-upload.js'), c.core, this.ceph.endpoint, BUCKET, key];
    cmd.push(String(this.sizes.partMiB * MiB), String(PARALLEL), ...(whenRequired ? ['--when-required'] : []));
    const t = await timed(cmd, this.env);
    const out = JSON.parse(t.stdout) as { bytes: number; seconds: number };
    const head = await this.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    if (Number(head.ContentLength) !== c.coreBytes) throw new Error(`fleet: the SDK's ${key} has ${head.ContentLength} bytes, the core ${c.coreBytes}`);
    return { ...t, bytes: out.bytes, own: out.seconds };
  }

  /** `physcap upload` of one capture; its ShipResult, which must say verified. */
  async physcapUpload(profile: string, id: string): Promise<Timed & { result: ShipResult }> {
    const t = await timed([process.execPath, physcapCli, 'upload', profile, '--id', id, '--json'], this.env);
    const r = JSON.parse(t.stdout.trim().split('\n').pop()!) as ShipResult & { status: string };
    if (r.status !== 'verified') throw new Error(`fleet: physcap upload: ${t.stdout}`);
    return { ...t, result: r };
  }
}

interface Sample {
  wall: number;
  cpu: number;
  rssMb: number;
  bytes: number;
  /** The uploader's own time (the SDK's upload.done(); physcap's ShipResult.seconds). */
  own: number;
}

/** sdk-upload, sdk-upload-when-required and physcap-copy, alternating on the same fresh capture each round. */
async function sideBySide(f: Fleet, rounds: number): Promise<HostCase[]> {
  const spool = path.join(f.work, 'spool');
  const profile = f.profile({ spool, prefix: 'copy' });
  const samples = new Map<Method, Sample[]>(METHODS.map((m) => [m, []]));
  for (let round = 0; round < rounds; round++) {
    process.stderr.write(`bench: fleet round ${round + 1}/${rounds}: capturing ${f.sizes.imageMiB} MiB into the spool...\n`);
    const c = await f.capture(profile);
    for (let i = 0; i < METHODS.length; i++) {
      const m = METHODS[(i + round) % METHODS.length]!;
      await f.empty();
      dropCaches();
      let s: Sample;
      if (m === 'physcap-copy') {
        const t = await f.physcapUpload(profile, c.id);
        s = { ...t, bytes: t.result.bytes, own: t.result.seconds };
      } else {
        s = await f.sdkUpload(c, `sdk/${round}/${m}/core.elf`, m === 'sdk-upload-when-required');
      }
      samples.get(m)!.push(s);
      process.stderr.write(
        `bench: fleet ${m}: ${s.wall.toFixed(2)} s, ${(s.bytes / MiB / s.wall).toFixed(0)} MiB/s, cpu ${s.cpu.toFixed(2)} s, rss ${s.rssMb.toFixed(0)} MiB\n`,
      );
    }
    f.unspool(profile, c.id);
  }
  await f.empty();
  const med = (m: Method, k: keyof Sample) => median(samples.get(m)!.map((s) => s[k]));
  const cases = METHODS.map((m): HostCase => ({
    name: `fleet/${m}`,
    bytes: Math.round(med(m, 'bytes')),
    wall_s: round3(med(m, 'wall')),
    cpu_s: round3(med(m, 'cpu')),
    max_rss_mb: round3(med(m, 'rssMb')),
    rounds,
    own_s: round3(med(m, 'own')),
    throughput_mib_s: Math.round(med(m, 'bytes') / MiB / med(m, 'wall')),
    part_mib: f.sizes.partMiB,
    parallel: PARALLEL,
    wall_samples_s: samples
      .get(m)!
      .map((s) => s.wall.toFixed(3))
      .join(' '),
  }));
  const physcap = cases.find((c) => c.name === 'fleet/physcap-copy')!;
  // Headline: against the SDK's plain Upload (see METHODS).  >= 1 meets the target.
  physcap.throughput_vs_sdk = round3(med('sdk-upload', 'wall') / med('physcap-copy', 'wall'));
  physcap.rss_vs_sdk = round3(med('physcap-copy', 'rssMb') / med('sdk-upload', 'rssMb'));
  physcap.cpu_vs_sdk = round3(med('physcap-copy', 'cpu') / med('sdk-upload', 'cpu'));
  physcap.throughput_vs_sdk_when_required = round3(med('sdk-upload-when-required', 'wall') / med('physcap-copy', 'wall'));
  physcap.rss_vs_sdk_when_required = round3(med('physcap-copy', 'rssMb') / med('sdk-upload-when-required', 'rssMb'));
  // What peak RSS is bounded by: the parts in flight, each one buffer of a part's size.
  physcap.parts_in_flight_mb = PARALLEL * f.sizes.partMiB;
  return cases;
}

/** `physcap run` with a file trigger: the trigger renamed into place to the copy's `verified` record in its journal. */
async function endToEnd(f: Fleet): Promise<HostCase> {
  const dir = path.join(f.work, 'agent');
  fs.mkdirSync(path.join(dir, 'profiles'), { recursive: true });
  const spool = path.join(dir, 'spool');
  const profile = f.profile({ spool, prefix: 'agent', dir: path.join(dir, 'profiles'), triggers: ['kind: file'] });
  const name = path.basename(profile, '.yaml');
  const runtime = path.join(dir, 'run');
  let log = '';
  const agent = runAgent(dir);
  agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  agent.stdout!.resume();
  const lines = (msg: string) =>
    log
      .split('\n')
      .slice(0, -1) // the last is not a whole line yet
      .filter((l) => l.startsWith('{') && l.includes(`"${msg}"`))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  try {
    if (!(await until(() => log.includes('"agent ready"') && log.includes('passed its pre-flight check'), 60_000)))
      throw new Error(`fleet: the agent did not start or its remote failed its pre-flight check:\n${log.slice(-4000)}`);
    dropCaches();
    const cpu0 = cpuSeconds(agent.pid!);
    const tmp = path.join(runtime, 'triggers', `.${name}`);
    fs.writeFileSync(tmp, 'reason: fleet benchmark\n');
    const t0 = process.hrtime.bigint();
    fs.renameSync(tmp, path.join(runtime, 'triggers', name));
    const since = () => Number(process.hrtime.bigint() - t0) / 1e9;
    if (!(await until(() => lines('capture complete').length > 0, CHILD_MS, 10))) throw new Error(`fleet: no capture complete:\n${log.slice(-4000)}`);
    const captured = since();
    const id = String(lines('capture complete')[0]!.capture);
    const journal = journalFile(spool, id);
    if (!(await until(() => Boolean(Journal.read(journal)?.verified), CHILD_MS, 10)))
      throw new Error(`fleet: the agent's copy of ${id} was not verified:\n${log.slice(-4000)}`);
    const wall = since();
    const cpu = cpuSeconds(agent.pid!) - cpu0;
    const rss = peakRssMb(agent.pid!);
    if (!(await until(() => lines('capture copied and verified').length > 0, 30_000))) throw new Error(`fleet: the agent logged no copy:\n${log.slice(-4000)}`);
    const copied = lines('capture copied and verified')[0]! as { bytes: number; partsSent: number; partsResumed: number };
    const listed = await f.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'agent/' }));
    const core = listed.Contents?.find((o) => o.Key?.endsWith(`/${id}/core.elf`));
    if (!core || core.Size !== f.spooled(f.load(profile), id).coreBytes) throw new Error(`fleet: the bucket has no whole core.elf of ${id}`);
    f.unspool(profile, id);
    return {
      name: 'fleet/end-to-end',
      bytes: copied.bytes,
      wall_s: round3(wall),
      cpu_s: round3(cpu),
      max_rss_mb: round3(rss),
      rounds: 1,
      captured_s: round3(captured),
      copy_s: round3(wall - captured),
      throughput_mib_s: Math.round(copied.bytes / MiB / wall),
      parts_sent: copied.partsSent,
    };
  } finally {
    await stopAgent(agent);
    await f.empty();
  }
}

/**
 * `physcap upload` SIGKILLed once half the parts are in its journal, then
 * run again to the end.  wall_s, cpu_s and max_rss_mb are the second run's.
 * parts_resent: parts the server held at the kill that the second run sent
 * again, i.e. partsSent − (parts_total − parts_recorded_at_kill − partsFound):
 * parts in flight at the kill (not on the server) are sent by the second
 * run as their first whole send, and a part the server held that the
 * journal had not recorded yet (partsFound) is checked, not sent.  The
 * target is at most one.
 */
async function resumeKill9(f: Fleet): Promise<HostCase> {
  const spool = path.join(f.work, 'spool-resume');
  const profile = f.profile({ spool, prefix: 'resume' });
  const c = await f.capture(profile);
  const journal = journalFile(spool, c.id);
  const recorded = () => [...(Journal.read(journal)?.parts.values() ?? [])].reduce((a, m) => a + m.size, 0);
  const half = Math.ceil(c.parts / 2);
  try {
    dropCaches();
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [physcapCli, 'upload', profile, '--id', c.id, '--json'], { env: f.env, stdio: 'ignore' });
    let exited = false;
    const exit = new Promise((r) => child.once('exit', r)).then(() => (exited = true));
    try {
      if (!(await until(() => exited || recorded() >= half, CHILD_MS, 5))) throw new Error(`fleet: ${half} parts not in the journal in time`);
    } finally {
      child.kill('SIGKILL');
      await exit;
    }
    const killedAt = Number(process.hrtime.bigint() - t0) / 1e9;
    const atKill = recorded();
    if (atKill >= c.parts || Journal.read(journal)?.verified)
      throw new Error(`fleet: the copy finished before it could be killed (${atKill} of ${c.parts} parts)`);
    dropCaches();
    const t = await f.physcapUpload(profile, c.id);
    const r = t.result;
    if (r.partsSent + r.partsJournaled + r.partsFound !== c.parts)
      throw new Error(`fleet: resumed copy: ${r.partsSent} sent + ${r.partsJournaled} journaled + ${r.partsFound} found, ${c.parts} planned`);
    f.unspool(profile, c.id);
    return {
      name: 'fleet/resume-kill9',
      bytes: r.bytes,
      wall_s: round3(t.wall),
      cpu_s: round3(t.cpu),
      max_rss_mb: round3(t.rssMb),
      rounds: 1,
      parts_total: c.parts,
      parts_recorded_at_kill: atKill,
      parts_resent: r.partsSent - (c.parts - atKill - r.partsFound),
      parts_sent_after: r.partsSent,
      parts_journaled: r.partsJournaled,
      parts_found: r.partsFound,
      killed_at_s: round3(killedAt),
      part_mib: f.sizes.partMiB,
    };
  } finally {
    await f.empty();
  }
}

export async function benchFleet(rounds: number, sizes: FleetSizes = FULL_FLEET): Promise<HostCase[]> {
  const missing = cephMissing();
  if (missing) throw new Error(`fleet: ${missing}`);
  // As the agent's own S3 target does (destinations/s3/target.ts): Node 20 is what package.json's engines allow.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  process.stderr.write(`bench: fleet: starting Ceph (mon, mgr, OSD, radosgw on 127.0.0.1)...\n`);
  const ceph = await startCeph();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'physcap-bench-fleet-'));
  const shm = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'physcap-bench-fleet-'));
  let f: Fleet | undefined;
  try {
    f = new Fleet(ceph, work, shm, sizes);
    process.stderr.write(`bench: fleet: a ${sizes.imageMiB} MiB random image in tmpfs; parts of ${sizes.partMiB} MiB, ${PARALLEL} in flight\n`);
    await f.prepare();
    const cases = await sideBySide(f, rounds);
    process.stderr.write('bench: fleet: end to end through the agent...\n');
    cases.push(await endToEnd(f));
    process.stderr.write('bench: fleet: upload killed at half way, then resumed...\n');
    cases.push(await resumeKill9(f));
    return cases;
  } finally {
    f?.client.destroy();
    await ceph.stop();
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(shm, { recursive: true, force: true });
  }
}
