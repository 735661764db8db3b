/**
 * Host side of the capture checks on the emulated board (used by the
 * *.vm.test.ts files only): the guest's captures are taken off the disk
 * images with debugfs (or read straight from a raw image), and then read
 * back on the host with the host's physcap, readelf and sha256 — none of
 * the guest's code is trusted for the verdict.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { BoardRun } from '../../harness/board';
import { repoRoot } from '../../harness/paths';
import { sha256OfFileRange } from '../../harness/patterns';

/** What harness/guest-cli.ts printed for one physcap command in the guest. */
export interface CliRecord {
  rc: number | string;
  stdout: string;
  stderr: string;
}

export function cliRecord(run: BoardRun, label: string): CliRecord {
  const found = run.records<CliRecord>('cli').filter((r) => r.label === label);
  if (found.length !== 1) throw new Error(`expected one @@cli ${label}, got ${found.length}\n${run.output}`);
  return found[0]!.value;
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

export function sha256File(file: string, offset = 0, size = fs.statSync(file).size - offset): string {
  return sha256OfFileRange(file, offset, size);
}

/** The host's physcap CLI (agent/bin/physcap.js) as a process. */
export function physcapHost(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(repoRoot(), 'agent', 'bin', 'physcap.js'), ...args], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 5 * 60_000,
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
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
