/**
 * physcap capture <profile>: one capture now, from the command line, with
 * the same plan, destination, manifest and index as the agent's.  A
 * progress bar on a terminal; one JSON line with --json.
 */
import type { Command } from 'commander';

import * as fs from 'node:fs';
import * as path from 'node:path';

import { formatDiagnostic, hasErrors } from '../config/diagnostics';
import { checkFile, DEFAULT_PROFILE_DIRS, loadProfiles } from '../config/load';
import type { Profile } from '../config/profile';
import { readIomemNames } from '../config/semantic';
import { parseIomem } from '../kernel/iomem';
import { runCapture } from '../capture/pipeline';
import { planCapture } from '../capture/plan';
import { requestEvent } from '../triggers/control';
import { destinationKind } from '../destinations/registry';
import type { ShipResult } from '../destinations/remote/ship';
import { describeShip, preflight, registerUpload, uploadOne } from './remote';
import { Cli, formatBytes, milestones, progressReporter, regionDigest } from './shared';

/** A profile by file path, or by name from the drop-in directories. */
function findProfile(ref: string, dirs: string[] | undefined, cli: Cli): Profile | undefined {
  const ctx = { iomemNames: readIomemNames() };
  if (ref.includes('/') || /\.ya?ml$/.test(ref) || fs.existsSync(ref)) {
    const f = checkFile(path.resolve(ref), ctx);
    for (const d of f.diagnostics) cli.err(`${formatDiagnostic(d)}\n`);
    return hasErrors(f.diagnostics) ? undefined : f.profile;
  }
  const loaded = loadProfiles(dirs?.map((d) => path.resolve(d)) ?? DEFAULT_PROFILE_DIRS, ctx);
  const p = loaded.profiles.get(ref);
  if (!p) {
    const bad = loaded.files.find((f) => f.file.includes(ref) && hasErrors(f.diagnostics));
    for (const d of bad?.diagnostics ?? []) cli.err(`${formatDiagnostic(d)}\n`);
    cli.err(`physcap: no valid profile "${ref}" (profiles: ${[...loaded.profiles.keys()].join(', ') || 'none'})\n`);
  }
  return p;
}

/** The top-level /proc/iomem resources a range touches, e.g. "System RAM", "Reserved". */
function iomemOwners(start: bigint, size: bigint, iomem: ReturnType<typeof parseIomem>): string {
  const end = start + size - 1n;
  const hits = iomem.filter((r) => r.depth === 0 && r.start <= end && r.end >= start).map((r) => r.name);
  return hits.length ? [...new Set(hits)].join(' + ') : 'not in /proc/iomem (a hole)';
}

type CopyOutcome =
  | { status: 'verified'; result: ShipResult }
  | { status: 'failed'; error: { code?: string; message: string } }
  | { status: 'skipped'; error: { message: string } };

/** A remote destination's copy of a capture just taken: done now, unless the pre-flight check failed. */
async function copyToRemote(p: Profile, id: string, unreachable: boolean, signal: AbortSignal, cli: Cli, json?: boolean): Promise<CopyOutcome | undefined> {
  if (!destinationKind(p.destination.kind).remote) return undefined;
  if (unreachable) return { status: 'skipped', error: { message: 'the pre-flight check failed' } };
  try {
    return { status: 'verified', result: await uploadOne(p, id, cli, { json, signal }) };
  } catch (err) {
    const e = err as Error & { code?: string };
    return { status: 'failed', error: { code: e.code, message: e.message } };
  }
}

export function registerCapture(program: Command, cli: Cli): void {
  registerUpload(program, cli, (ref, dirs) => findProfile(ref, dirs, cli));
  program
    .command('regions')
    .description("a profile's regions as a capture would resolve them now, with what /proc/iomem says they are")
    .argument('<profile>', 'profile name or file')
    .option('--profiles-dir <dirs...>', 'profile drop-in directories')
    .option('--iomem <file>', 'the iomem table to resolve against', '/proc/iomem')
    .option('--json', 'print JSON')
    .action((ref: string, o: { profilesDir?: string[]; iomem: string; json?: boolean }) => {
      const profile = findProfile(ref, o.profilesDir, cli);
      if (!profile) return cli.setCode(78);
      const plan = planCapture(profile, { iomemFile: o.iomem });
      const iomem = parseIomem(fs.readFileSync(o.iomem, 'utf8'));
      const rows = plan.regions.map((r) => ({
        name: r.name,
        start: `0x${r.start.toString(16)}`,
        end: `0x${(r.start + r.size - 1n).toString(16)}`,
        size: Number(r.size),
        iomem: iomemOwners(r.start, r.size, iomem),
        memory: r.live ? 'live' : 'quiescent',
      }));
      if (o.json)
        return void cli.out(
          `${JSON.stringify({ profile: profile.name, source: plan.source, format: plan.format, bytes: Number(plan.dataBytes), regions: rows })}\n`,
        );
      cli.out(`${profile.name}: source ${plan.source}, ${plan.format}, up to ${formatBytes(Number(plan.dataBytes))} on disk\n`);
      for (const r of rows) cli.out(`  ${r.name.padEnd(16)} ${r.start}-${r.end} ${formatBytes(r.size).padStart(10)}  ${r.memory.padEnd(9)} ${r.iomem}\n`);
    });

  program
    .command('capture')
    .description('take one capture now with a profile (a file, or a name from the drop-in directories)')
    .argument('<profile>', 'profile name or file')
    .option('--profiles-dir <dirs...>', 'profile drop-in directories')
    .option('--reason <text>', 'why, for the manifest')
    .option('--json', 'print the outcome as JSON (no progress bar)')
    .action(async (ref: string, o: { profilesDir?: string[]; reason?: string; json?: boolean }) => {
      const profile = findProfile(ref, o.profilesDir, cli);
      if (!profile) return cli.setCode(78);
      // A remote destination is tested first; the capture is taken into the spool whatever it says (evidence first).
      const unreachable = await preflight(profile);
      if (unreachable) cli.err(`physcap: ${unreachable}\n  capturing into the spool only; \`physcap upload ${profile.name}\` copies it later\n`);
      const progress = o.json ? undefined : progressReporter(cli, profile.name);
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const outcome = await runCapture(
          { profile, events: [requestEvent(profile.name, Date.now(), o.reason ?? 'physcap capture (command line)')] },
          { signal: abort.signal, onProgress: progress?.update },
        );
        progress?.stop();
        const upload = outcome.status === 'complete' ? await copyToRemote(profile, outcome.id, Boolean(unreachable), abort.signal, cli, o.json) : undefined;
        if (o.json) {
          cli.out(
            `${JSON.stringify({ id: outcome.id, status: outcome.status, location: outcome.location, bytes: outcome.bytes, seconds: outcome.seconds, timing: outcome.manifest?.timing, error: outcome.error, removed: outcome.removed, regions: outcome.manifest?.regions.map((r) => ({ name: r.name, phys: r.phys, size: r.size, mode: r.mode, sha256: r.sha256, bytesZeroCopy: r.bytesZeroCopy })), ...(upload ? { upload } : {}) })}\n`,
          );
        } else if (outcome.status === 'complete') {
          cli.out(
            `${outcome.id}: complete, ${formatBytes(outcome.bytes)} in ${outcome.seconds.toFixed(2)} s${milestones(outcome.manifest)}\n  ${outcome.location}\n`,
          );
          for (const r of outcome.manifest?.regions ?? [])
            cli.out(`  ${r.name.padEnd(16)} ${r.phys.padEnd(14)} ${formatBytes(r.size).padStart(10)}  ${r.mode}  ${regionDigest(r)}\n`);
          if (outcome.removed.length) cli.out(`  retention removed: ${outcome.removed.join(', ')}\n`);
          if (upload?.status === 'verified') cli.out(`  ${describeShip(upload.result)}\n`);
        } else {
          cli.err(`physcap: capture ${outcome.id} FAILED: ${outcome.error?.message}\n  left as ${outcome.location}\n`);
        }
        if (upload && upload.status !== 'verified') {
          cli.err(
            `physcap: capture ${outcome.id} is complete in the spool, but ${upload.status === 'skipped' ? 'was not copied' : `its copy FAILED: ${upload.error.message}`}\n`,
          );
          cli.setCode(75); // EX_TEMPFAIL: the capture is safe; the copy is to be tried again
        }
        if (outcome.status !== 'complete') cli.setCode(1);
      } finally {
        progress?.stop();
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
      }
    });
}
