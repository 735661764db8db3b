/**
 * The CLI's side of remote destinations: `physcap upload` (copies the
 * captures a spool still holds unsent), the copy after `physcap capture`,
 * and list / show / verify on a bucket named with --dest s3://...
 */
import type { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Profile } from '../config/profile';
import type { RemoteAccess } from '../destinations/kind';
import { DESTINATION_KINDS, destinationKind } from '../destinations/registry';
import { DirReader } from '../destinations/dir/store';
import type { ShipResult } from '../destinations/remote/ship';
import type { CaptureReader } from '../destinations/types';
import type { IndexEntry } from '../manifest/index-entry';
import type { RemoteTarget } from '../destinations/remote/target';
import { probeRemote, uploadCapture } from '../destinations/remote/upload';
import { findRemote, listRemote, verifyRemote } from '../postmortem/remote';
import { Cli, formatBytes, progressReporter } from './shared';

/** The remote target a --dest names, if it is a remote location of some kind. */
export function remoteTargetAt(location: string, access: RemoteAccess): RemoteTarget | undefined {
  for (const k of DESTINATION_KINDS) {
    const t = k.remote?.targetAt(location, access);
    if (t) return t;
  }
  return undefined;
}

export function isRemoteLocation(location: string): boolean {
  return /^[a-z][a-z0-9+]*:\/\//.test(location);
}

/** The pre-flight check of a profile's remote side: undefined when it passed (or the profile has none), else why not. */
export async function preflight(p: Profile): Promise<string | undefined> {
  const remote = destinationKind(p.destination.kind).remote;
  if (!remote) return undefined;
  try {
    await probeRemote(remote, p.destination);
    return undefined;
  } catch (err) {
    return `${remote.url(p.destination)}: pre-flight check failed: ${(err as Error).message}`;
  }
}

export function describeShip(r: ShipResult): string {
  const resumed = r.partsJournaled + r.partsFound ? `, ${r.partsJournaled + r.partsFound} parts already there` : '';
  const retries = r.retries ? `, ${r.retries} retries` : '';
  return `copied to ${r.remote}: ${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s (${r.partsSent} parts sent${resumed}${retries}); verified: ${r.verified}`;
}

/** Copies one capture of a profile's spool, with progress on a terminal; throws with the spool named when it cannot. */
export async function uploadOne(p: Profile, id: string, cli: Cli, o: { json?: boolean; signal?: AbortSignal }): Promise<ShipResult> {
  const remote = destinationKind(p.destination.kind).remote!;
  const spool = remote.spool(p.destination);
  const progress = o.json ? undefined : progressReporter(cli, `${id} → ${remote.url(p.destination)}`);
  try {
    return await uploadCapture(remote, p.destination, spool, id, { signal: o.signal, onProgress: progress?.update });
  } catch (err) {
    throw Object.assign(
      new Error(`${(err as Error).message}; the capture is kept in the spool (${spool.location}); \`physcap upload ${p.name}\` resumes the copy`),
      {
        code: (err as { code?: string }).code,
      },
    );
  } finally {
    progress?.stop();
    spool.close();
  }
}

export function registerUpload(program: Command, cli: Cli, findProfile: (ref: string, dirs: string[] | undefined) => Profile | undefined): void {
  program
    .command('upload')
    .description("copy the captures a remote destination's spool holds and has not copied yet (resuming interrupted copies)")
    .argument('<profile>', 'profile name or file')
    .option('--profiles-dir <dirs...>', 'profile drop-in directories')
    .option('--id <id>', 'only this capture')
    .option('--json', 'one JSON line per capture')
    .action(async (ref: string, o: { profilesDir?: string[]; id?: string; json?: boolean }) => {
      const p = findProfile(ref, o.profilesDir);
      if (!p) return cli.setCode(78);
      const remote = destinationKind(p.destination.kind).remote;
      if (!remote) {
        cli.err(`physcap: ${p.name}: its destination (${p.destination.kind}) is not remote: nothing to upload\n`);
        return cli.setCode(64);
      }
      const spool = remote.spool(p.destination);
      const ids = o.id ? [o.id] : spool.pending().map((e) => e.id);
      spool.close();
      if (!ids.length && !o.json) cli.out(`${p.name}: every capture in the spool is copied and verified\n`);
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        for (const id of ids) {
          try {
            const r = await uploadOne(p, id, cli, { json: o.json, signal: abort.signal });
            cli.out(o.json ? `${JSON.stringify({ status: 'verified', ...r })}\n` : `${id}: ${describeShip(r)}\n`);
          } catch (err) {
            const e = err as Error & { code?: string };
            if (o.json) cli.out(`${JSON.stringify({ id, status: 'failed', error: { code: e.code, message: e.message } })}\n`);
            else cli.err(`physcap: ${id}: upload failed: ${e.message}\n`);
            cli.setCode(1);
          }
        }
      } finally {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
      }
    });
}

export interface RemoteVerbOptions {
  endpoint?: string;
  s3Region?: string;
  credentials?: string;
  identity?: string;
  hostKey?: string;
  host?: string;
  since?: string;
  until?: string;
  json?: boolean;
  full?: boolean;
}

function parseTime(v: string | undefined, what: string): Date | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new Error(`${what} ${v}: not a time (ISO 8601, e.g. 2026-12-01T10:00Z)`);
  return d;
}

function targetFor(dest: string, o: RemoteVerbOptions): RemoteTarget {
  const t = remoteTargetAt(dest, { endpoint: o.endpoint, region: o.s3Region, credentialsFile: o.credentials, identity: o.identity, hostKey: o.hostKey });
  if (!t) throw new Error(`${dest}: no destination kind reads this location`);
  return t;
}

export async function remoteList(dest: string, o: RemoteVerbOptions, cli: Cli): Promise<void> {
  const t = targetFor(dest, o);
  try {
    const rows = await listRemote(t, { host: o.host, since: parseTime(o.since, '--since'), until: parseTime(o.until, '--until') });
    if (o.json) return void cli.out(`${JSON.stringify(rows.map((r) => ({ ...r, destination: t.location, started: r.started?.toISOString() })))}\n`);
    if (!rows.length) return void cli.out(`no captures in ${t.location}${o.host ? ` from ${o.host}` : ''}\n`);
    for (const r of rows)
      cli.out(
        `${(r.started?.toISOString() ?? '-').padEnd(24)} ${r.host.padEnd(20)} ${r.id.padEnd(44)} ${formatBytes(r.bytes).padStart(10)}  ${r.complete ? 'complete' : 'copy unfinished'}\n`,
      );
  } finally {
    t.close();
  }
}

export async function remoteShow(dest: string, ref: string, o: RemoteVerbOptions, cli: Cli): Promise<void> {
  const t = targetFor(dest, o);
  try {
    const c = await findRemote(t, ref, o.host);
    const m = JSON.parse((await t.get(t.key(c.host, c.id, 'manifest.json'))).toString('utf8')) as import('../manifest/types').Manifest;
    if (o.json) return void cli.out(`${JSON.stringify({ destination: t.location, host: c.host, manifest: m })}\n`);
    cli.out(
      `${m.id}: ${m.status}, host ${c.host}, profile ${m.profile.name}, ${formatBytes(c.bytes)} in ${c.files} files\n  ${t.location}${c.host}/${c.id}/\n`,
    );
    cli.out(`  started ${m.timing.started}, kernel ${m.host.kernelRelease} (${m.host.arch})\n`);
    for (const r of m.regions) cli.out(`  ${r.name.padEnd(16)} ${r.phys.padEnd(14)} ${formatBytes(r.size).padStart(10)}  ${r.file}@${r.offset}\n`);
  } finally {
    t.close();
  }
}

export async function remoteVerify(dest: string, ref: string, o: RemoteVerbOptions, cli: Cli): Promise<void> {
  const t = targetFor(dest, o);
  const progress = o.full && !o.json ? progressReporter(cli, 'verify') : undefined;
  try {
    const c = await findRemote(t, ref, o.host);
    let read = 0;
    const report = await verifyRemote(t, c, { full: o.full, onBytes: progress && ((n) => progress.update((read += n), c.bytes)) });
    progress?.stop();
    if (o.json) cli.out(`${JSON.stringify({ ...report, manifest: undefined })}\n`);
    else {
      cli.out(`${report.id} (${report.location}): ${report.ok ? 'OK' : 'FAILED'}${o.full ? ' (full: every byte read back)' : ''}\n`);
      for (const p of report.passed) cli.out(`  ok    ${p}\n`);
      for (const p of report.problems) cli.out(`  BAD   ${p}\n`);
    }
    if (!report.ok) cli.setCode(1);
  } finally {
    progress?.stop();
    t.close();
  }
}

/**
 * export from a remote destination: the capture is read back whole into a
 * directory beside the output, every chunk and file checked against the
 * manifest on the way (verify --full), exported from there only when it
 * all matched, and the copy removed after.  Nothing damaged or forged on
 * the server becomes an export.
 */
export async function remoteExport(
  dest: string,
  ref: string,
  o: RemoteVerbOptions & { out: string },
  cli: Cli,
  exportFrom: (reader: CaptureReader) => Promise<void>,
): Promise<void> {
  const t = targetFor(dest, o);
  const work = fs.mkdtempSync(path.join(path.dirname(path.resolve(o.out)), '.physcap-fetch-'));
  const progress = o.json ? undefined : progressReporter(cli, 'fetch');
  try {
    const c = await findRemote(t, ref, o.host);
    const dir = path.join(work, c.id);
    let read = 0;
    const report = await verifyRemote(t, c, { saveTo: dir, onBytes: progress && ((n) => progress.update((read += n), c.bytes)) });
    progress?.stop();
    if (!report.ok) {
      cli.err(`physcap: ${report.location} does not verify; nothing exported:\n${report.problems.map((p) => `  ${p}\n`).join('')}`);
      return cli.setCode(1);
    }
    const m = report.manifest!;
    const entry: IndexEntry = {
      seq: 0,
      id: m.id,
      profile: m.profile.name,
      status: m.status,
      started: m.timing.started,
      finished: m.timing.finished ?? m.timing.started,
      bytes: m.regions.reduce((a, r) => a + r.size, 0),
      prev: null,
      location: report.location,
    };
    const reader = new DirReader(entry, dir);
    try {
      await exportFrom(reader);
    } finally {
      reader.close();
    }
  } finally {
    progress?.stop();
    t.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
