/**
 * The native capture engine on the host, with the image source: images in
 * tmpfs, destinations opened with O_DIRECT on the project's filesystem,
 * every digest checked against an independent one.  (The kernel and devmem
 * sources need physical memory: engine.vm.test.ts runs them on the board.)
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import {
  capture,
  CaptureOptions,
  closeDestination,
  createFileHash,
  Destination,
  NativeError,
  openDestination,
  peerCredentials,
  preallocate,
  sdNotify,
  writeAligned,
} from '../../agent/src/native/binding';
import { sha256 } from '../support/hash';
import { useScratch, useTmpfs } from '../support/tmp';

const MiB = 2 ** 20;
const scratch = useScratch('engine');
const image = scratch.image;

const sha256sum = (file: string) => execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0];

async function captureTo(
  dest: string,
  opts: Omit<CaptureOptions, 'dest'>,
  mode: 'create' | 'existing' = 'create',
): Promise<{ result: Awaited<ReturnType<typeof capture>>; dest: Destination }> {
  const d = openDestination(dest, mode);
  try {
    return { result: await capture({ ...opts, dest: d }), dest: d };
  } finally {
    closeDestination(d);
  }
}

describe('image source to an O_DIRECT file', () => {
  test.each([
    ['16 MiB, aligned', 16 * MiB],
    ['5 MiB + 123 bytes: an odd tail', 5 * MiB + 123],
    ['4 KiB', 4096],
    ['1 byte', 1],
  ])('%s: the file and the digest equal sha256sum of the image', async (_name, size) => {
    const img = image(`img-${size}`, size);
    const out = path.join(scratch.work(), `out-${size}.bin`);
    const { result } = await captureTo(out, {
      source: 'image',
      sourcePath: img.file,
      phys: 0n,
      length: BigInt(size),
      truncate: true,
    });
    expect(result.sha256).toBe(sha256sum(img.file));
    expect(sha256sum(out)).toBe(result.sha256);
    expect(fs.statSync(out).size).toBe(size);
    expect(result).toMatchObject({ source: 'image', hashMode: 'source', bytesWritten: size });
    expect(result.bytesZeroCopy + result.bytesCopied).toBe(size);
  });

  test('aligned ranges go zero-copy straight from the mapping', async () => {
    const img = image('aligned', 8 * MiB);
    const { result } = await captureTo(path.join(scratch.work(), 'aligned.bin'), {
      source: 'image',
      sourcePath: img.file,
      phys: 0n,
      length: BigInt(8 * MiB),
    });
    expect(result).toMatchObject({ mode: 'zero-copy', bytesZeroCopy: 8 * MiB, bytesCopied: 0 });
  });

  test('chunk digests cover the range in order, the last one short', async () => {
    const size = 9 * MiB + 512;
    const img = image('chunks', size);
    const { result } = await captureTo(path.join(scratch.work(), 'chunks.bin'), {
      source: 'image',
      sourcePath: img.file,
      phys: 0n,
      length: BigInt(size),
      chunkSize: 4 * MiB,
    });
    const expected = [0, 4 * MiB, 8 * MiB].map((o) => sha256(img.data.subarray(o, Math.min(o + 4 * MiB, size))));
    expect(result.chunkSha256).toEqual(expected);
  });

  test('phys is the image offset above imageBase; destOffset places it in the file', async () => {
    const img = image('based', 6 * MiB);
    const out = path.join(scratch.work(), 'based.bin');
    const { result } = await captureTo(out, {
      source: 'image',
      sourcePath: img.file,
      imageBase: 0x8000_0000n,
      phys: 0x8000_0000n + BigInt(MiB),
      length: BigInt(2 * MiB),
      destOffset: BigInt(4 * MiB),
    });
    const want = img.data.subarray(MiB, 3 * MiB);
    expect(result.sha256).toBe(sha256(want));
    const got = fs.readFileSync(out).subarray(4 * MiB, 6 * MiB);
    expect(got.equals(want)).toBe(true);
  });

  test('readback mode hashes what reached the disk, and says so', async () => {
    const img = image('readback', 12 * MiB + 4096);
    const { result } = await captureTo(path.join(scratch.work(), 'readback.bin'), {
      source: 'image',
      sourcePath: img.file,
      phys: 0n,
      length: BigInt(12 * MiB + 4096),
      hash: 'readback',
    });
    expect(result.hashMode).toBe('readback');
    expect(result.sha256).toBe(sha256(img.data));
    expect(result.chunkSha256).toHaveLength(4);
  });

  test.each(['source', 'readback'] as const)(
    '%s, from one read: the file hash, chunk digests and no region digest (whole: false) agree with sha256sum; durable before digested',
    async (hash) => {
      const size = 40 * MiB + 4096 * 3 + 100;
      const img = image(`one-read-${hash}`, size);
      const out = path.join(scratch.work(), `one-read-${hash}.bin`);
      const fileHash = createFileHash();
      const { result } = await captureTo(out, {
        source: 'image',
        sourcePath: img.file,
        phys: 0n,
        length: BigInt(size),
        truncate: true,
        hash,
        whole: false,
        chunkSize: 3 * MiB,
        fileHash,
      });
      expect(result.sha256).toBeUndefined();
      expect(fileHash.digest()).toBe(sha256sum(out));
      const chunks: string[] = [];
      for (let at = 0; at < size; at += 3 * MiB) chunks.push(sha256(img.data.subarray(at, at + 3 * MiB)));
      expect(result.chunkSha256).toEqual(chunks);
      expect(result.durableSeconds).toBeGreaterThan(0);
      expect(result.durableSeconds).toBeLessThanOrEqual(result.digestSeconds);
      expect(result.digestSeconds).toBeLessThanOrEqual(result.seconds);
    },
  );

  test('hash none: no digest, and none claimed', async () => {
    const img = image('nohash', MiB);
    const { result } = await captureTo(path.join(scratch.work(), 'nohash.bin'), {
      source: 'image',
      sourcePath: img.file,
      phys: 0n,
      length: BigInt(MiB),
      hash: 'none',
    });
    expect(result.hashMode).toBe('none');
    expect(result.sha256).toBeUndefined();
  });

  test('progress arrives, bounded in rate, and ends at the full length', async () => {
    const img = image('progress', 64 * MiB);
    const seen: number[] = [];
    const { result } = await captureTo(path.join(scratch.work(), 'progress.bin'), {
      source: 'image',
      sourcePath: img.file,
      phys: 0n,
      length: BigInt(64 * MiB),
      progressMs: 20,
      onProgress: (p) => seen.push(p.bytesWritten),
    });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.length).toBeLessThan((result.seconds * 1000) / 20 + 3);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    expect(seen.at(-1)).toBe(64 * MiB);
  });
});

describe('errors are Node-style, with code, errno, syscall and path', () => {
  const expectNodeError = async (p: Promise<unknown> | (() => unknown), code: string, syscall?: string) => {
    let err: NativeError | undefined;
    try {
      await (typeof p === 'function' ? p() : p);
    } catch (e) {
      err = e as NativeError;
    }
    expect(err).toBeDefined();
    expect(err!.code).toBe(code);
    if (syscall) expect(err!.syscall).toBe(syscall);
    return err!;
  };

  test('create never overwrites: EEXIST', async () => {
    const out = path.join(scratch.work(), 'exists.bin');
    fs.writeFileSync(out, 'precious');
    const err = await expectNodeError(() => openDestination(out, 'create'), 'EEXIST', 'open');
    expect(err).toMatchObject({ errno: -17, path: out });
    expect(err.message).toMatch(/EEXIST: .*open '.*exists\.bin' \(opening a capture destination/);
    expect(fs.readFileSync(out, 'utf8')).toBe('precious');
  });

  test('a symlink is never followed: ELOOP', async () => {
    const link = path.join(scratch.work(), 'link.bin');
    fs.symlinkSync(path.join(scratch.work(), 'target.bin'), link);
    await expectNodeError(() => openDestination(link, 'existing'), 'ELOOP', 'open');
    expect(fs.existsSync(path.join(scratch.work(), 'target.bin'))).toBe(false);
  });

  test('a directory or a pipe is no destination', async () => {
    await expectNodeError(() => openDestination(scratch.work(), 'existing'), 'EISDIR', 'open');
    const fifo = path.join(scratch.work(), 'fifo');
    execFileSync('mkfifo', [fifo]);
    // No reader: a FIFO open must fail at once (ENXIO), never wait for one.
    await expectNodeError(() => openDestination(fifo, 'existing'), 'ENXIO', 'open');
  });

  test('a range past the end of the image: ENXIO, nothing mapped past EOF', async () => {
    const img = image('short', MiB);
    await expectNodeError(
      captureTo(path.join(scratch.work(), 'short.bin'), { source: 'image', sourcePath: img.file, phys: 0n, length: BigInt(2 * MiB) }),
      'ENXIO',
      'capture',
    );
  });

  test('a misaligned destination offset: EINVAL before any write', async () => {
    const img = image('misaligned', MiB);
    await expectNodeError(
      captureTo(path.join(scratch.work(), 'misaligned.bin'), {
        source: 'image',
        sourcePath: img.file,
        phys: 0n,
        length: BigInt(MiB),
        destOffset: 100n,
      }),
      'EINVAL',
    );
  });

  test('a closed destination: EBADF', async () => {
    const img = image('closed', MiB);
    const d = openDestination(path.join(scratch.work(), 'closed.bin'), 'create');
    closeDestination(d);
    await expectNodeError(capture({ source: 'image', sourcePath: img.file, phys: 0n, length: BigInt(MiB), dest: d }), 'EBADF');
    await expectNodeError(() => closeDestination(d), 'EBADF', 'close');
  });

  test('bad arguments are refused in JavaScript', async () => {
    const d = openDestination(path.join(scratch.work(), 'args.bin'), 'create');
    try {
      await expectNodeError(capture({ source: 'image', sourcePath: '/x', phys: 0n, length: 0n, dest: d }), 'ERR_INVALID_ARG_VALUE');
      await expectNodeError(capture({ source: 'image', phys: 0n, length: 1n, dest: d }), 'ERR_INVALID_ARG_VALUE');
      await expectNodeError(() => writeAligned(d, 100n, Buffer.from('x')), 'ERR_INVALID_ARG_VALUE');
    } finally {
      closeDestination(d);
    }
  });

  test('the rejection carries a JavaScript stack from the caller', async () => {
    const img = image('stack', MiB);
    const err = await expectNodeError(
      captureTo(path.join(scratch.work(), 'stack.bin'), { source: 'image', sourcePath: img.file, phys: 0n, length: BigInt(4 * MiB) }),
      'ENXIO',
    );
    expect(err.stack).toMatch(/captureTo|engine\.test/);
  });
});

describe('a full disk', () => {
  const small = useTmpfs('small', '8m');

  test('preallocation fails up front with ENOSPC, before a byte is written', async () => {
    const d = openDestination(path.join(small(), 'big.bin'), 'create');
    try {
      let err: NativeError | undefined;
      try {
        preallocate(d, BigInt(32 * MiB));
      } catch (e) {
        err = e as NativeError;
      }
      expect(err).toMatchObject({ code: 'ENOSPC', syscall: 'fallocate' });
    } finally {
      closeDestination(d);
    }
  });

  test('a capture that fills the disk rejects with ENOSPC and its partial progress', async () => {
    const img = image('fill', 32 * MiB);
    let err: NativeError | undefined;
    try {
      await captureTo(path.join(small(), 'fill.bin'), { source: 'image', sourcePath: img.file, phys: 0n, length: BigInt(32 * MiB) });
    } catch (e) {
      err = e as NativeError;
    }
    expect(err).toMatchObject({ code: 'ENOSPC', syscall: 'pwrite', errno: -28 });
    expect(err!.partial!.bytesWritten).toBeLessThan(32 * MiB);
    expect(err!.partial!.sha256).toBeUndefined();
  });
});

describe('cancellation', () => {
  test('an AbortSignal stops both threads promptly and reports partial progress', async () => {
    const img = image('cancel', 512 * MiB);
    const ac = new AbortController();
    const started = Date.now();
    let err: NativeError | undefined;
    try {
      await captureTo(path.join(scratch.work(), 'cancel.bin'), {
        source: 'image',
        sourcePath: img.file,
        phys: 0n,
        length: BigInt(512 * MiB),
        signal: ac.signal,
        window: 4 * MiB,
        progressMs: 10,
        onProgress: (p) => {
          if (p.bytesWritten > 0) ac.abort();
        },
      });
    } catch (e) {
      err = e as NativeError;
    }
    expect(err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(err!.partial!.bytesWritten).toBeGreaterThan(0);
    expect(err!.partial!.bytesWritten).toBeLessThan(512 * MiB);
    expect(err!.partial!.sha256).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(5000);
    fs.rmSync(img.file);
  }, 30_000);

  test('an already-aborted signal rejects at once', async () => {
    const d = openDestination(path.join(scratch.work(), 'pre-aborted.bin'), 'create');
    try {
      await expect(capture({ source: 'image', sourcePath: '/dev/null', phys: 0n, length: 1n, dest: d, signal: AbortSignal.abort() })).rejects.toMatchObject({
        code: 'ABORT_ERR',
      });
    } finally {
      closeDestination(d);
    }
  });
});

test('1000 small captures leak neither file descriptors nor memory', async () => {
  const img = image('leak', 64 * 1024);
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  const run = async (i: number) => {
    const { result } = await captureTo(path.join(scratch.work(), `leak-${i % 4}.bin`), {
      source: 'image',
      sourcePath: img.file,
      phys: 0n,
      length: BigInt(64 * 1024),
      sync: false,
    });
    fs.rmSync(path.join(scratch.work(), `leak-${i % 4}.bin`));
    return result;
  };
  for (let i = 0; i < 50; i++) await run(i); // warm up allocators
  const fd0 = fds();
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 1000; i++) await run(i);
  expect(fds()).toBe(fd0);
  expect(process.memoryUsage().rss - rss0).toBeLessThan(24 * MiB);
}, 120_000);

test('sd_notify sends one datagram to NOTIFY_SOCKET', async () => {
  const sock = path.join(scratch.work(), 'notify.sock');
  // Node has no unix datagram sockets: a python3 listener stands in for systemd.
  const listener = spawn('python3', [
    '-c',
    `import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); print('ready', flush=True)
print(s.recv(4096).decode(), flush=True)`,
    sock,
  ]);
  // Everything the listener printed, whatever the pipe's chunking.
  let text = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('listener did not start')), 10_000);
    listener.stdout.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.startsWith('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    listener.on('error', reject);
  });
  expect(sdNotify('READY=1\nSTATUS=capturing', sock)).toBe(true);
  await new Promise<void>((resolve) => listener.on('exit', () => resolve()));
  expect(text).toBe('ready\nREADY=1\nSTATUS=capturing\n');
  expect(sdNotify('READY=1', undefined)).toBe(false);
});

test('peer credentials of a unix-socket connection', async () => {
  const sock = path.join(scratch.work(), 'control.sock');
  let client: net.Socket | undefined;
  const creds = await new Promise<{ pid: number; uid: number }>((resolve, reject) => {
    const server = net.createServer((conn) => {
      try {
        resolve(peerCredentials(conn));
      } catch (e) {
        reject(e);
      }
      conn.destroy();
      server.close();
    });
    server.listen(sock, () => {
      client = net.connect(sock).on('error', () => undefined);
    });
  });
  client?.destroy();
  expect(creds).toMatchObject({ pid: process.pid, uid: process.getuid!() });
});
