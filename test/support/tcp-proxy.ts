/**
 * A TCP proxy on 127.0.0.1 between a client and a real server, for faults
 * on the wire: it can flip one byte of what the client sends, once, deep
 * enough into a connection to land in a request body (a part in transit).
 */
import * as net from 'node:net';

export interface TcpProxy {
  port: number;
  /** Bytes flipped so far. */
  flipped: number;
  /** Flip the byte at this offset of the next connection that sends that far (once). */
  corruptAt(offset: number): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<TcpProxy> {
  let corruptAt: number | undefined;
  const sockets = new Set<net.Socket>();
  const state = { flipped: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let sent = 0;
    client.on('data', (chunk: Buffer) => {
      if (corruptAt !== undefined && sent <= corruptAt && corruptAt < sent + chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[corruptAt - sent] ^= 0x5a;
        corruptAt = undefined;
        state.flipped++;
      }
      sent += chunk.length;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get flipped() {
      return state.flipped;
    },
    corruptAt(offset) {
      corruptAt = offset;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
