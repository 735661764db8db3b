/**
 * Run on the emulated board by test/native/engine.vm.test.ts and the
 * benchmark (compiled to dist/harness/guest-capture.js): each
 * argument is a JSON capture request; each result is printed as
 * "@@capture <label> {json}", a failure as the error's Node-style fields.
 */
import { capture, closeDestination, HashMode, openDestination, SourceKind } from '../agent/src/native/binding';

interface GuestRequest {
  label: string;
  source: SourceKind;
  phys: string;
  length: string;
  dest: string;
  mode: 'create' | 'existing';
  destOffset?: string;
  hash?: HashMode;
  truncate?: boolean;
}

async function one(r: GuestRequest): Promise<void> {
  const started = process.hrtime.bigint();
  let record: Record<string, unknown>;
  try {
    const dest = openDestination(r.dest, r.mode);
    try {
      const result = await capture({
        source: r.source,
        phys: BigInt(r.phys),
        length: BigInt(r.length),
        dest,
        destOffset: BigInt(r.destOffset ?? 0),
        hash: r.hash ?? 'source',
        truncate: r.truncate ?? r.mode === 'create',
      });
      record = { ok: true, ...result };
    } finally {
      closeDestination(dest);
    }
  } catch (e) {
    const err = e as { code?: string; errno?: number; syscall?: string; path?: string; message?: string };
    record = { ok: false, code: err.code, errno: err.errno, syscall: err.syscall, path: err.path, message: err.message };
  }
  record.wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`@@capture ${r.label} ${JSON.stringify(record)}`);
}

async function main(): Promise<void> {
  for (const arg of process.argv.slice(2)) await one(JSON.parse(arg) as GuestRequest);
}

void main();
