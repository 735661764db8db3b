/**
 * Host side of the checks on the emulated board (used by the *.vm.test.ts
 * files): the guest's captures are taken off the disk images with debugfs
 * (or read straight from a raw image), and then read back on the host with
 * the host's physcap, readelf and sha256 — none of the guest's code is
 * trusted for the verdict.  Also what several board tests assert the same
 * way: the job ran, and the client's selftest table.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { BoardRun } from '../../harness/board';

/** What harness/guest-cli.ts printed for one physcap command in the guest. */
export interface CliRecord {
  rc: number | string;
  stdout: string;
  stderr: string;
}

export function cliRecord(run: BoardRun, label: string): CliRecord {
  return run.record<CliRecord>('cli', label);
}

/** The record's stdout as JSON; throws with the whole record when it is not. */
export function cliJson<T>(rec: CliRecord): T {
  try {
    return JSON.parse(rec.stdout) as T;
  } catch {
    throw new Error(`physcap printed no JSON: ${JSON.stringify(rec)}`);
  }
}

/** Copies a directory (recursively) off the scratch disk image; returns the copy's host path. */
export function scratchCopyDir(run: BoardRun, guestDir: string, hostDir: string): string {
  fs.mkdirSync(hostDir, { recursive: true });
  execFileSync('debugfs', ['-R', `rdump ${guestDir} ${hostDir}`, run.images.scratch], { stdio: ['ignore', 'ignore', 'pipe'] });
  const copy = path.join(hostDir, path.basename(guestDir));
  if (!fs.existsSync(copy)) throw new Error(`debugfs could not copy ${guestDir} off the scratch disk`);
  return copy;
}

/** Copies one file off the scratch disk image. */
export function scratchCopyFile(run: BoardRun, guestPath: string, hostFile: string): string {
  execFileSync('debugfs', ['-R', `dump -p ${guestPath} ${hostFile}`, run.images.scratch], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (!fs.existsSync(hostFile)) throw new Error(`debugfs could not copy ${guestPath} off the scratch disk`);
  return hostFile;
}

export interface ElfLoad {
  offset: bigint;
  paddr: bigint;
  filesz: bigint;
  memsz: bigint;
}

/** `readelf -h -l -W`: the ELF type and the PT_LOAD program headers. */
export function readelf(file: string): { type: string; loads: ElfLoad[]; text: string } {
  const text = execFileSync('readelf', ['-h', '-l', '-W', file], { encoding: 'utf8' });
  const type = /^\s*Type:\s+(\S+)/m.exec(text)?.[1] ?? '';
  const loads: ElfLoad[] = [];
  for (const m of text.matchAll(/^\s*LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)/gim)) {
    loads.push({ offset: BigInt(m[1]!), paddr: BigInt(m[3]!), filesz: BigInt(m[4]!), memsz: BigInt(m[5]!) });
  }
  return { type, loads, text };
}

/** Fails, with the job's output, unless the job exited 0. */
export function expectJobRan(run: BoardRun): void {
  if (run.exitCode !== 0) throw new Error(`job exited ${run.exitCode}\n${run.output}`);
}

/** A row of physcap-client selftest, as the job printed it ("@@selftest - {json}"). */
export interface SelftestRow {
  case?: string;
  expected?: string;
  actual?: string;
  pass?: boolean;
  note?: string;
}

export function selftestRows(run: BoardRun): SelftestRow[] {
  return run
    .records<SelftestRow>('selftest')
    .map((r) => r.value)
    .filter((r) => r.case);
}

/** One test per [case, errno] of the table: the selftest ran that case, expected that errno and got it. */
export function testSelftestTable(run: () => BoardRun, table: Array<[string, string]>): void {
  test.each(table)('%s → %s', (name, errno) => {
    const row = selftestRows(run()).find((r) => r.case === name);
    expect(row).toBeDefined();
    expect(row!.expected).toBe(errno);
    expect(row!.actual).toBe(errno);
  });
}
