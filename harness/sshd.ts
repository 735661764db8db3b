/**
 * A throwaway OpenSSH sshd serving SFTP on 127.0.0.1, for the tests of the
 * SFTP upload destination.  Everything lives in one private directory: its
 * own host key, the client's key, an authorized_keys line with `restrict`
 * and `command="internal-sftp"` (only SFTP works), the config, the log, and
 * `root/`, the chroot the SFTP user lands in.
 *
 * The user is the current one, root: nothing is created system-wide except
 * sshd's privilege-separation directory /run/sshd when it is missing.
 * PermitRootLogin forced-commands-only lets root in by key only, and only
 * with the key's forced internal-sftp.
 *
 * The directory is under /run, not /tmp: StrictModes (authorized_keys) and
 * ChrootDirectory both refuse a path with a group- or world-writable
 * component, and /tmp is 1777.  StrictModes stays on.
 *
 * sshd runs as `setpriv --pdeathsig KILL -- unshare --pid --fork
 * --kill-child -- sshd -D -e -f CONFIG`:
 *  - sshd is the init of its own PID namespace, and SIGKILL to a namespace's
 *    init makes the kernel kill every process in it.  Session processes call
 *    setsid(), so a process group would miss them; the namespace does not.
 *  - unshare reaps sshd only once the whole namespace is gone, so its exit
 *    means every session is dead.
 *  - nothing outlives the test process, even SIGKILLed: its death sends
 *    SIGKILL to unshare (setpriv's pdeathsig survives the exec), whose death
 *    sends SIGKILL to sshd (--kill-child).  No reaper process is needed.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export interface SftpServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly username: string;
  /** the client's private key file (OpenSSH format, ed25519), mode 0600 */
  readonly privateKeyPath: string;
  /** the server's host public key as one known_hosts line for "[127.0.0.1]:PORT" */
  readonly knownHostsLine: string;
  /** the server host key's SHA256 fingerprint as ssh-keygen -lf prints it ("SHA256:...") */
  readonly hostKeyFingerprint: string;
  /** the absolute directory on this machine that the SFTP user's uploads land in (the chroot or home) */
  readonly root: string;
  /** path of sshd's log */
  readonly log: string;
  /** sshd stopped (listener and every session child killed); resolves once the port refuses connections */
  stopServer(): Promise<void>;
  /** started again on the same port and keys; resolves once it accepts an SSH connection (bounded) */
  startServer(): Promise<void>;
  /** everything stopped and the directory removed; safe to call twice */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const SSHD = '/usr/sbin/sshd';
const PRIVSEP_DIR = '/run/sshd';
/** The other programs the harness runs, and the Debian packages they come with. */
const TOOLS: Record<string, string> = { 'ssh-keygen': 'openssh-client', setpriv: 'util-linux', unshare: 'util-linux' };

/** undefined when sshd can be run here, else why not (a missing program, or not root). */
export function sshdMissing(): string | undefined {
  if (!fs.existsSync(SSHD)) return `${SSHD} is missing (apt package openssh-server)`;
  const tool = Object.keys(TOOLS).find((t) => !onPath(t));
  if (tool) return `${tool} is missing (apt package ${TOOLS[tool]})`;
  // ChrootDirectory and a login as another user both need root.
  if (process.getuid?.() !== 0) return 'the sshd harness must run as root';
  return undefined;
}

/** A new sshd on a free port of 127.0.0.1, accepting connections; everything is removed again if it does not come up. */
export async function startSshd(opts: { dir?: string; timeoutMs?: number } = {}): Promise<SftpServer> {
  const missing = sshdMissing();
  if (missing) throw new Error(missing);
  const dir = privateDir(opts.dir);
  try {
    const server = new Sshd(await provision(dir), opts.timeoutMs ?? 15_000);
    await server.startServer();
    return server;
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

interface Files {
  dir: string;
  port: number;
  config: string;
  privateKeyPath: string;
  knownHostsLine: string;
  hostKeyFingerprint: string;
  root: string;
  log: string;
}

class Sshd implements SftpServer {
  readonly host = HOST;
  readonly username = 'root';
  readonly port: number;
  readonly privateKeyPath: string;
  readonly knownHostsLine: string;
  readonly hostKeyFingerprint: string;
  readonly root: string;
  readonly log: string;
  private running: Running | undefined;

  constructor(
    private readonly files: Files,
    private readonly timeoutMs: number,
  ) {
    this.port = files.port;
    this.privateKeyPath = files.privateKeyPath;
    this.knownHostsLine = files.knownHostsLine;
    this.hostKeyFingerprint = files.hostKeyFingerprint;
    this.root = files.root;
    this.log = files.log;
  }

  async startServer(): Promise<void> {
    if (this.running && !this.running.gone()) return;
    const running = launch(this.files.config, this.log);
    this.running = running;
    const deadline = Date.now() + this.timeoutMs;
    try {
      await until(
        'an SSH banner',
        () => accepts(this.port),
        deadline,
        () => (running.gone() ? 'sshd exited' : undefined),
      );
    } catch (err) {
      // Not stopServer(): the port may never be refused (another listener may hold it), and the start-up error is the one to report.
      this.running = undefined;
      await halt(running, Date.now() + this.timeoutMs).catch(() => undefined);
      const why = `${(err as Error).message}, limit ${this.timeoutMs} ms`;
      throw new Error(`sshd on ${HOST}:${this.port} did not come up (${why})\n${logTail(this.log)}`, { cause: err });
    }
  }

  async stopServer(): Promise<void> {
    const running = this.running;
    if (!running) return;
    const deadline = Date.now() + this.timeoutMs;
    // SIGKILLed sshd logs nothing of its own (unshare may report the signal): mark the stop for whoever reads the log.
    fs.appendFileSync(this.log, 'harness: stopServer(): SIGKILL to sshd and its sessions\n');
    await halt(running, deadline);
    this.running = undefined;
    await until(`${HOST}:${this.port} to refuse connections`, () => refuses(this.port), deadline);
  }

  async stop(): Promise<void> {
    await this.stopServer();
    fs.rmSync(this.files.dir, { recursive: true, force: true });
  }
}

/** The private directory: the caller's (made 0700) or a new /run/physcap-sshd-XXXXXX; every component must pass sshd's checks. */
function privateDir(dir: string | undefined): string {
  if (dir) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
  }
  const made = path.resolve(dir ?? fs.mkdtempSync('/run/physcap-sshd-'));
  for (let p = made; ; p = path.dirname(p)) {
    const st = fs.statSync(p);
    if (st.uid !== 0 || st.mode & 0o022) {
      if (!dir) fs.rmSync(made, { recursive: true, force: true });
      throw new Error(`${made}: ${p} is not root-owned or is group/world-writable, which sshd's StrictModes and ChrootDirectory refuse`);
    }
    if (p === '/') return made;
  }
}

/** Keys, authorized_keys, the chroot and the config in dir, for a free port. */
async function provision(dir: string): Promise<Files> {
  fs.mkdirSync(PRIVSEP_DIR, { recursive: true, mode: 0o755 }); // sshd refuses to start without it
  const hostKey = path.join(dir, 'host_ed25519');
  const privateKeyPath = path.join(dir, 'client_ed25519');
  keygen(hostKey, 'physcap-sshd-host');
  keygen(privateKeyPath, 'physcap-sshd-client');

  // A forced command is what forced-commands-only asks of a root login; `restrict` also denies ptys and forwarding.
  const authorizedKeys = path.join(dir, 'authorized_keys');
  fs.writeFileSync(authorizedKeys, `restrict,command="internal-sftp" ${fs.readFileSync(`${privateKeyPath}.pub`, 'utf8')}`, { mode: 0o600 });

  // The chroot: root-owned and not group/world-writable, or sshd drops the session.
  const root = path.join(dir, 'root');
  fs.mkdirSync(root, { mode: 0o755 });

  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(config, sshdConfig({ port, hostKey, authorizedKeys, root }), { mode: 0o600 });

  const [type, blob] = fs.readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
  return {
    dir,
    port,
    config,
    privateKeyPath,
    knownHostsLine: `[${HOST}]:${port} ${type} ${blob}`,
    hostKeyFingerprint: execFileSync('ssh-keygen', ['-lf', `${hostKey}.pub`], { encoding: 'utf8' }).split(' ')[1],
    root,
    log: path.join(dir, 'sshd.log'),
  };
}

function sshdConfig(o: { port: number; hostKey: string; authorizedKeys: string; root: string }): string {
  return [
    `ListenAddress ${HOST}`,
    `Port ${o.port}`,
    'AddressFamily inet',
    `HostKey ${o.hostKey}`,
    'PidFile none',
    'StrictModes yes',
    'UsePAM no',
    'AllowUsers root',
    'PermitRootLogin forced-commands-only',
    'PubkeyAuthentication yes',
    `AuthorizedKeysFile ${o.authorizedKeys}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'AllowTcpForwarding no',
    'AllowAgentForwarding no',
    'X11Forwarding no',
    'PermitTunnel no',
    `ChrootDirectory ${o.root}`,
    'Subsystem sftp internal-sftp',
    'LogLevel VERBOSE',
    '',
  ].join('\n');
}

function keygen(file: string, comment: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { stdio: 'ignore' });
}

/** A port of 127.0.0.1 nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface Running {
  child: ChildProcess;
  /** true once unshare has exited, i.e. every process of the namespace is dead */
  gone(): boolean;
}

/** sshd in the foreground, in a new PID namespace, killed with the test process; its output appended to log. */
function launch(config: string, log: string): Running {
  const fd = fs.openSync(log, 'a');
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'unshare', '--pid', '--fork', '--kill-child', '--', SSHD, '-D', '-e', '-f', config], {
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  child.unref(); // a test that forgets stop() must not keep node alive; sshd dies with node anyway
  let gone = false;
  child.once('exit', () => (gone = true));
  child.once('error', (err) => {
    gone = true;
    fs.appendFileSync(log, `harness: ${err.message}\n`);
  });
  return { child, gone: () => gone };
}

/**
 * SIGKILL to sshd, the namespace's init, so the kernel kills every session
 * with it; resolves once unshare has reaped it, i.e. once all of them are dead.
 */
async function halt(running: Running, deadline: number): Promise<void> {
  const pid = running.child.pid;
  if (!running.gone() && pid !== undefined) {
    try {
      // Before sshd is forked (or if unshare is all there is), killing unshare reaches sshd through --kill-child.
      process.kill(childOf(pid) ?? pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  await until('sshd and its sessions to exit', async () => running.gone(), deadline);
}

/** The pid of a (the) child of pid, from the parent field of /proc/PID/stat. */
function childOf(pid: number): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) return Number(entry);
  }
  return undefined;
}

/** Polls cond every 50 ms until it holds; throws at the deadline or once abort() gives a reason. */
async function until(what: string, cond: () => Promise<boolean>, deadline: number, abort: () => string | undefined = () => undefined): Promise<void> {
  for (;;) {
    if (await cond()) return;
    const reason = abort() ?? (Date.now() >= deadline ? `timed out waiting for ${what}` : undefined);
    if (reason) throw new Error(reason);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** True once a connection to port gets an SSH banner: sshd accepts and serves. */
async function accepts(port: number): Promise<boolean> {
  return firstBytes(port).then(
    (banner) => banner.startsWith('SSH-2.0-'),
    () => false,
  );
}

/** True once connections to port are refused: nothing listens. */
async function refuses(port: number): Promise<boolean> {
  return firstBytes(port).then(
    () => false,
    (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
  );
}

/** What a server on port says first ('' if it closes without a word); rejects with the socket's error. */
function firstBytes(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port });
    const settle = (fn: () => void): void => {
      socket.destroy();
      fn();
    };
    socket.setTimeout(2_000, () => settle(() => reject(Object.assign(new Error('no banner'), { code: 'ETIMEDOUT' }))));
    socket.once('data', (data) => settle(() => resolve(data.toString('latin1'))));
    socket.once('end', () => settle(() => resolve('')));
    socket.once('error', (err) => settle(() => reject(err)));
  });
}

function logTail(log: string, lines = 25): string {
  const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
  return `--- last lines of ${log} ---\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`;
}

function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && fs.existsSync(path.join(dir, program)));
}
