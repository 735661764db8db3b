/**
 * A real single-node Ceph cluster with radosgw, for the S3 destination's
 * tests: one monitor, one manager, one OSD and radosgw, all on 127.0.0.1,
 * with `auth none` (radosgw still checks S3 SigV4 signatures with the keys
 * of the users it creates) and everything (config, data, logs, admin
 * sockets) under one directory, so nothing touches the machine's
 * /etc/ceph, /var/lib/ceph or /var/log/ceph.
 *
 * Daemons run in the foreground as this process's children, each started
 * through `setpriv --pdeathsig KILL`: the kernel kills them when this
 * process ends, however it ends (SIGKILL included), with no reaper to keep
 * alive.
 *
 * The OSD is BlueStore on a sparse file in the directory: its memory stays
 * near 100 MiB whatever the tests upload (memstore, the other choice, starts
 * as fast but holds about twice the data stored in the OSD's memory).
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface CephCluster {
  /** http://127.0.0.1:PORT, radosgw's S3 endpoint */
  readonly endpoint: string;
  /** radosgw takes any region in a SigV4 scope; us-east-1 makes the SDK send no LocationConstraint */
  readonly region: string;
  /** an S3 user created at start (radosgw-admin user create) */
  readonly credentials: S3Credentials;
  /** the cluster's working directory (config, data, logs) */
  readonly dir: string;
  /** radosgw stopped (SIGTERM, then SIGKILL after a bound) and resolved once its port refuses connections */
  stopGateway(): Promise<void>;
  /** radosgw started again on the same port; resolves once it answers S3 requests (bounded) */
  startGateway(): Promise<void>;
  /** another S3 user (for tests with several hosts or wrong credentials) */
  createUser(name: string): Promise<S3Credentials>;
  /** path of radosgw's log, for test failure messages */
  readonly gatewayLog: string;
  /** every daemon stopped, the directory removed; safe to call twice */
  stop(): Promise<void>;
}

/** What the harness runs; setpriv (util-linux) ties each daemon's life to this process. */
const PROGRAMS = ['ceph-mon', 'ceph-mgr', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'monmaptool', 'setpriv'];

/** Debian 12's packages that bring PROGRAMS (util-linux is essential). */
const PACKAGES = 'ceph-mon ceph-osd ceph-mgr radosgw ceph-common';

const START_TIMEOUT_MS = 120_000;
const GATEWAY_START_MS = 30_000;
const GATEWAY_STOP_MS = 10_000;
const COMMAND_MS = 30_000;
const POLL_MS = 100;
const LOG_TAIL_LINES = 30;

/**
 * The OSD's block file: sparse, so only what is written takes disk space;
 * room for the few GiB the tests upload, even before radosgw's garbage
 * collector (hours later by default) frees what they delete.
 */
const BLOCK_BYTES = 16 * 2 ** 30;

/** The OSD's cache target; its floor in this release. */
const OSD_MEMORY_BYTES = 896 * 2 ** 20;

/** undefined when the Ceph binaries are installed, else a one-line reason naming what is missing */
export function cephMissing(): string | undefined {
  const missing = PROGRAMS.filter((p) => !onPath(p));
  if (missing.length === 0) return undefined;
  return `Ceph is not installed: ${missing.join(', ')} not found on PATH (scripts/setup.sh installs ${PACKAGES})`;
}

function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      fs.accessSync(path.join(dir, program), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export class CephError extends Error {
  constructor(step: string, reason: string, log?: string) {
    super(`ceph harness: ${step}: ${reason}${log ? `\n--- last lines of ${log} ---\n${tailOf(log)}` : ''}`);
    this.name = 'CephError';
  }
}

function tailOf(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
  } catch (err) {
    return `(unreadable: ${(err as Error).message})`;
  }
}

/** Where each part of the cluster lives under its directory. */
class Layout {
  constructor(readonly dir: string) {}
  get conf(): string {
    return path.join(this.dir, 'ceph.conf');
  }
  get monmap(): string {
    return path.join(this.dir, 'monmap');
  }
  get logs(): string {
    return path.join(this.dir, 'log');
  }
  log(name: string): string {
    return path.join(this.logs, `${name}.log`);
  }
  sub(name: string): string {
    return path.join(this.dir, name);
  }
}

/** The daemons' names (ceph's TYPE.ID): their config sections and log file names. */
const MON = 'mon.a';
const MGR = 'mgr.x';
const RGW = 'client.rgw';

/**
 * The whole configuration.  Notable choices:
 *   - every path ceph would take from /etc/ceph, /var/lib/ceph, /var/log/ceph
 *     or /run/ceph (keyring, data, logs, admin sockets, crash reports) is in
 *     the directory; the keyring file is never made (`auth none`);
 *   - only msgr2, on 127.0.0.1, for every daemon's public and cluster
 *     addresses (the OSD's heartbeat addresses follow them);
 *   - `ms * mode = crc`: with `auth none` there is no session key for the
 *     `secure` mode radosgw would otherwise ask the monitor for first;
 *   - paxos proposes every 50 ms instead of every second: each pool radosgw
 *     creates at its first start costs two proposals, which is most of the
 *     start-up time otherwise;
 *   - the manager has an empty module directory: its Python modules (300
 *     MiB, seconds of CPU) serve nothing S3 needs, and none of them can
 *     listen anywhere (the monitor reports them failed: health only);
 *   - the monitor stops only on a full disk, not at 5% free: the
 *     cluster's directory shares the disk with everything else;
 *   - 8 placement groups per pool, no autoscaler: one OSD needs no more;
 *   - BlueStore's aio thread polls every 20 ms, not 250: closing the block
 *     device waits for that thread, and mkfs and start-up close it six
 *     times (1.5 s otherwise); its fsck of the store mkfs just made finds
 *     nothing and takes another 0.5 s.
 */
function cephConf(l: Layout, fsid: string, monPort: number, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monPort}]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms service mode = crc
ms cluster mode = crc
keyring = ${l.sub('keyring')}
run dir = ${l.sub('run')}
admin socket = ${l.sub('run')}/$name.$pid.asok
log file = ${l.logs}/$name.log
log to stderr = false
err to stderr = false
mon cluster log file = ${l.log('cluster')}
crash dir = ${l.sub('crash')}
osd pool default size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail crit = 0
paxos propose interval = 0.05

[mon]
mon data = ${l.sub('mon')}

[mgr]
mgr data = ${l.sub('mgr')}
mgr module path = ${l.sub('mgr-modules')}

[osd]
osd data = ${l.sub('osd')}
osd objectstore = bluestore
bluestore block create = true
bluestore block size = ${BLOCK_BYTES}
bluestore fsck on mkfs = false
bdev aio poll ms = 20
osd memory target = ${OSD_MEMORY_BYTES}

[${RGW}]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${l.sub('rgw')}
`;
}

/** A daemon started in the foreground, its stdout and stderr appended to its own log. */
class Daemon {
  readonly exited: Promise<void>;
  private running = true;

  constructor(
    readonly name: string,
    readonly log: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      const done = (): void => {
        this.running = false;
        resolve();
      };
      child.once('exit', done);
      child.once('error', done);
    });
  }

  get alive(): boolean {
    return this.running;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGKILL unless it ends within ms of the signal. */
  async stop(signal: NodeJS.Signals, ms: number): Promise<void> {
    // Referenced again so that node waits for the exit it is awaiting.
    this.child.ref();
    this.kill(signal);
    const timer = setTimeout(() => this.kill('SIGKILL'), ms);
    await this.exited;
    clearTimeout(timer);
  }
}

/** argv for a ceph program that dies with this process (see the file's comment). */
function tied(program: string, args: string[]): [string, string[]] {
  return ['setpriv', ['--pdeathsig', 'KILL', '--', program, ...args]];
}

function startDaemon(l: Layout, name: string, program: string, args: string[]): Daemon {
  const log = l.log(name);
  const fd = fs.openSync(log, 'a');
  try {
    const [file, argv] = tied(program, ['-f', '-c', l.conf, ...args]);
    const child = spawn(file, argv, { stdio: ['ignore', fd, fd] });
    // A forgotten stop() must not keep node alive: the daemons die with it anyway.
    child.unref();
    return new Daemon(name, log, child);
  } finally {
    fs.closeSync(fd);
  }
}

/** Runs a ceph command to completion within ms; its stdout, or a CephError naming the step. */
function command(step: string, program: string, args: string[], ms: number, log?: string): Promise<string> {
  const [file, argv] = tied(program, args);
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: Math.max(ms, 1), killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const why = err.killed ? `${program} did not finish within ${ms} ms` : `${program} failed (${err.code ?? err.signal})`;
      const said = String(stderr).trimEnd();
      reject(new CephError(step, said ? `${why}\n${said}` : why, log));
    });
  });
}

/**
 * Polls cond until it holds; fails with the step's name if the deadline
 * passes or one of the daemons it depends on exits (with that daemon's log).
 */
async function waitFor(step: string, cond: () => Promise<boolean>, deadline: number, daemons: Daemon[], log: string): Promise<void> {
  for (;;) {
    const dead = daemons.find((d) => !d.alive);
    if (dead) throw new CephError(step, `${dead.name} exited`, dead.log);
    if (await cond()) return;
    if (Date.now() >= deadline) throw new CephError(step, 'timed out', log);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Whether something on 127.0.0.1:port answers an HTTP request (any status). */
function answersHttp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 2_000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
  });
}

/** Whether 127.0.0.1:port accepts TCP connections. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(2_000, () => socket.destroy());
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

/** n distinct ports free on 127.0.0.1 now (held together so none repeats). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

interface UserInfo {
  keys: Array<{ access_key: string; secret_key: string }>;
}

class Cluster implements CephCluster {
  readonly region = 'us-east-1';
  credentials: S3Credentials = { accessKeyId: '', secretAccessKey: '' };
  private readonly daemons = new Map<string, Daemon>();
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly layout: Layout,
    private readonly rgwPort: number,
  ) {}

  get dir(): string {
    return this.layout.dir;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.rgwPort}`;
  }

  get gatewayLog(): string {
    return this.layout.log(RGW);
  }

  /** The daemons this cluster started, by name. */
  daemon(name: string): Daemon {
    const d = this.daemons.get(name);
    if (!d) throw new Error(`${name} was not started`);
    return d;
  }

  start(name: string, program: string, args: string[]): Daemon {
    const d = startDaemon(this.layout, name, program, args);
    this.daemons.set(name, d);
    return d;
  }

  async startGateway(): Promise<void> {
    if (this.daemons.get(RGW)?.alive) throw new Error('radosgw is already running');
    await this.launchGateway(Date.now() + GATEWAY_START_MS);
  }

  /** radosgw started and answering S3 requests before the deadline, else killed. */
  async launchGateway(deadline: number): Promise<void> {
    const rgw = this.start(RGW, 'radosgw', ['-n', RGW]);
    const deps = [MON, MGR, 'osd.0'].map((n) => this.daemon(n)).concat(rgw);
    try {
      await waitFor('radosgw answering S3 requests', () => answersHttp(this.rgwPort), deadline, deps, rgw.log);
    } catch (err) {
      await rgw.stop('SIGKILL', 0);
      throw err;
    }
  }

  async stopGateway(): Promise<void> {
    const rgw = this.daemons.get(RGW);
    if (!rgw) return;
    await rgw.stop('SIGTERM', GATEWAY_STOP_MS);
    // The process is gone; its listening socket went with it, but say so only once connecting is refused.
    await waitFor('radosgw port closing', async () => !(await accepts(this.rgwPort)), Date.now() + GATEWAY_STOP_MS, [], rgw.log);
  }

  createUser(name: string): Promise<S3Credentials> {
    return this.user(name, COMMAND_MS);
  }

  async user(name: string, ms: number): Promise<S3Credentials> {
    const out = await command(
      `creating S3 user ${name}`,
      'radosgw-admin',
      ['-c', this.layout.conf, 'user', 'create', `--uid=${name}`, `--display-name=${name}`],
      ms,
      this.layout.log('client.admin'),
    );
    const key = (JSON.parse(out) as UserInfo).keys[0];
    if (!key) throw new CephError(`creating S3 user ${name}`, `radosgw-admin returned no key:\n${out}`);
    return { accessKeyId: key.access_key, secretAccessKey: key.secret_key };
  }

  /** Every daemon killed outright (the data goes with the directory), then the directory removed. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([...this.daemons.values()].map((d) => d.stop('SIGKILL', 0)));
      fs.rmSync(this.layout.dir, { recursive: true, force: true });
    })();
    return this.stopping;
  }
}

const TEMP_PREFIX = 'physcap-ceph-';
/** In a temporary cluster directory: the identity of the process that made it. */
const OWNER = 'owner';

/** "PID STARTTIME": a pid alone may belong to another process by the time it is read back. */
function processIdentity(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // starttime is field 22; the command name (field 2) may hold spaces, so count from its closing parenthesis.
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return undefined;
  }
}

/**
 * Removes the temporary cluster directories whose process is gone: one
 * killed outright (SIGKILL) takes its daemons with it but leaves their
 * directory, block file included.
 */
function sweepOrphans(): void {
  for (const name of fs.readdirSync(os.tmpdir())) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const dir = path.join(os.tmpdir(), name);
    let owner: string;
    try {
      owner = fs.readFileSync(path.join(dir, OWNER), 'utf8');
    } catch {
      continue; // still being made
    }
    if (processIdentity(Number(owner.split(' ')[0])) !== owner) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A new, empty cluster directory: opts.dir (created if need be) or a temporary one. */
function clusterDir(dir: string | undefined): string {
  if (dir === undefined) {
    sweepOrphans();
    const made = fs.mkdtempSync(path.join(os.tmpdir(), TEMP_PREFIX));
    fs.writeFileSync(path.join(made, OWNER), processIdentity(process.pid)!);
    return made;
  }
  fs.mkdirSync(dir, { recursive: true });
  if (fs.readdirSync(dir).length > 0) throw new CephError('preparing the directory', `${dir} is not empty`);
  return dir;
}

export async function startCeph(opts: { dir?: string; timeoutMs?: number } = {}): Promise<CephCluster> {
  const missing = cephMissing();
  if (missing) throw new CephError('checking the installation', missing);
  const deadline = Date.now() + (opts.timeoutMs ?? START_TIMEOUT_MS);
  const layout = new Layout(clusterDir(opts.dir));
  const [monPort, rgwPort] = (await freePorts(2)) as [number, number];
  const cluster = new Cluster(layout, rgwPort);
  try {
    await bootstrap(cluster, layout, monPort, rgwPort, deadline);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

async function bootstrap(cluster: Cluster, l: Layout, monPort: number, rgwPort: number, deadline: number): Promise<void> {
  const left = (): number => deadline - Date.now();
  for (const sub of ['log', 'run', 'crash', 'mon', 'mgr', 'mgr-modules', 'osd', 'rgw']) fs.mkdirSync(l.sub(sub));
  const fsid = crypto.randomUUID();
  fs.writeFileSync(l.conf, cephConf(l, fsid, monPort, rgwPort));

  await command('creating the monitor map', 'monmaptool', ['--create', '--add', 'a', `v2:127.0.0.1:${monPort}`, '--fsid', fsid, l.monmap], left());
  await command('creating the monitor', 'ceph-mon', ['-c', l.conf, '--mkfs', '-i', 'a', '--monmap', l.monmap], left(), l.log(MON));
  const mon = cluster.start(MON, 'ceph-mon', ['-i', 'a']);
  await waitFor('monitor listening', () => accepts(monPort), deadline, [mon], mon.log);
  const mgr = cluster.start(MGR, 'ceph-mgr', ['-i', 'x']);

  const admin = l.log('client.admin');
  const uuid = crypto.randomUUID();
  const id = (await command('registering the OSD', 'ceph', ['-c', l.conf, '--connect-timeout', '10', 'osd', 'new', uuid], left(), admin)).trim();
  if (id !== '0') throw new CephError('registering the OSD', `expected osd id 0, got ${JSON.stringify(id)}`, admin);
  await command('creating the OSD', 'ceph-osd', ['-c', l.conf, '--mkfs', '-i', id, '--osd-uuid', uuid], left(), l.log('osd.0'));
  const osd = cluster.start('osd.0', 'ceph-osd', ['-i', id]);
  await waitFor('OSD up', () => osdUp(l, left(), osd.log), deadline, [mon, mgr, osd], osd.log);

  await cluster.launchGateway(deadline);
  cluster.credentials = await cluster.user('physcap', left());
}

/** Whether the monitor counts the OSD up. */
async function osdUp(l: Layout, ms: number, log: string): Promise<boolean> {
  const out = await command('OSD up', 'ceph', ['-c', l.conf, '--connect-timeout', '10', 'osd', 'stat', '--format', 'json'], Math.min(ms, COMMAND_MS), log);
  return (JSON.parse(out) as { num_up_osds: number }).num_up_osds === 1;
}
