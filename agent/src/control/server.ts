/**
 * The agent's control socket: a unix socket, mode 0600, where only root
 * and the agent's own user may talk (peer credentials are checked, not
 * just the file mode).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';

import { Logger } from '../core/logger';
import { peerCredentials } from '../native/binding';
import { ControlRequest, ControlResponse, MAX_LINE } from './protocol';

export class ControlServer {
  private server?: net.Server;

  constructor(
    private readonly socketPath: string,
    private readonly handle: (req: ControlRequest, peer: { pid: number; uid: number }) => ControlResponse,
    private readonly log: Logger,
    private readonly allowedUids: readonly number[] = [0, process.getuid?.() ?? 0],
  ) {}

  async start(): Promise<void> {
    // A socket file left by a previous run that died: nobody listens on it.
    fs.rmSync(this.socketPath, { force: true });
    this.server = net.createServer((conn) => this.serve(conn));
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', reject);
        this.server!.listen(this.socketPath, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    fs.chmodSync(this.socketPath, 0o600);
  }

  private serve(conn: net.Socket): void {
    let peer: { pid: number; uid: number };
    try {
      peer = peerCredentials(conn);
    } catch (err) {
      this.log.warn({ err: String(err) }, 'control connection without credentials; closed');
      conn.destroy();
      return;
    }
    const reply = (r: ControlResponse) => conn.write(`${JSON.stringify(r)}\n`);
    if (!this.allowedUids.includes(peer.uid)) {
      this.log.warn({ pid: peer.pid, uid: peer.uid }, 'control connection refused: user not allowed');
      reply({ ok: false, error: 'not allowed' });
      conn.end();
      return;
    }
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE) {
        reply({ ok: false, error: 'request too long' });
        conn.destroy();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let req: ControlRequest;
        try {
          req = JSON.parse(line) as ControlRequest;
        } catch {
          reply({ ok: false, error: 'not JSON' });
          continue;
        }
        try {
          reply(this.handle(req, peer));
        } catch (err) {
          reply({ ok: false, error: (err as Error).message });
        }
      }
    });
    conn.on('error', () => undefined);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    fs.rmSync(this.socketPath, { force: true });
  }
}
