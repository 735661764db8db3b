/**
 * The post-mortem verbs: list, show, verify, export, diff — and keygen and
 * `blockdev init`, which prepare for them.  They read destinations named
 * with --dest (a capture directory, a dump partition or its image), or the
 * destinations of the profiles in the drop-in directories.
 */
import type { Command } from 'commander';

import * as fs from 'node:fs';
import * as path from 'node:path';

import { formatDiagnostic } from '../config/diagnostics';
import { DEFAULT_PROFILE_DIRS, loadProfiles } from '../config/load';
import { hostElfTarget } from '../container/elf';
import { capturedElfTarget, exportCapture, ExportFormat, storedElfCore } from '../postmortem/export';
import { DEFAULT_DUMP_LEVEL, exportKdump, KdumpCompression, parseDumpLevel } from '../postmortem/kdump';
import { describeCore } from '../container/kernel-dump';
import { DESTINATION_KINDS, destinationKey, openStoreAt } from '../destinations/registry';
import type { CaptureReader, CaptureStore, IndexEntry } from '../destinations/types';
import { diffCaptures } from '../postmortem/diff';
import { parseHeadArg } from '../manifest/head';
import { generateKeyPair, loadPublicKey } from '../manifest/sign';
import type { Manifest } from '../manifest/types';
import { verifyCapture } from '../postmortem/verify';
import { isRemoteLocation, remoteExport, remoteList, remoteShow, RemoteVerbOptions, remoteVerify } from './remote';
import { Cli, formatBytes, milestones, progressReporter } from './shared';

interface DestOpts {
  dest?: string[];
  profilesDir?: string[];
}

/** The destinations to search: --dest, else every profile's destination. */
function destinations(o: DestOpts, cli: Cli): string[] {
  if (o.dest?.length) return o.dest.map((d) => path.resolve(d));
  const loaded = loadProfiles(o.profilesDir?.map((d) => path.resolve(d)) ?? DEFAULT_PROFILE_DIRS);
  for (const f of loaded.files) for (const d of f.diagnostics) if (d.severity === 'error') cli.err(`physcap: skipping: ${formatDiagnostic(d)}\n`);
  return [...new Set([...loaded.profiles.values()].map((p) => destinationKey(p.destination)))];
}

/** The destinations that open; each that does not is reported, counted in `unreadable`, and fails the command. */
function openStores(o: DestOpts, cli: Cli, unreadable: string[] = []): CaptureStore[] {
  const out: CaptureStore[] = [];
  for (const d of destinations(o, cli)) {
    try {
      out.push(openStoreAt(d));
    } catch (err) {
      // A destination that cannot be read is a failure, never "no captures".
      cli.err(`physcap: ${d}: ${(err as Error).message}\n`);
      cli.setCode(1);
      unreadable.push(d);
    }
  }
  return out;
}

/**
 * A capture named by id (or a unique prefix) in the destinations, or by
 * the path of its directory.
 */
/** An unfinished record as list shows it. */
interface Unfinished {
  id: string;
  profile: string;
  started: string;
  /** writing: its data is not all on the disk; durable: it is, its digests are pending; armed: the kernel writes it on a pretimeout. */
  state: 'writing' | 'durable' | 'armed';
  durable?: string;
}
function unfinishedOf(id: string, intent: Buffer): Unfinished {
  let o: { profile?: unknown; started?: unknown; durable?: { at?: unknown }; armed?: unknown } = {};
  try {
    o = JSON.parse(intent.toString('utf8')) as typeof o;
  } catch {
    /* an intent not yet written whole: only the id is known */
  }
  const durable = typeof o.durable?.at === 'string' ? o.durable.at : undefined;
  return {
    id,
    profile: typeof o.profile === 'string' ? o.profile : 'unknown',
    started: typeof o.started === 'string' ? o.started : '-',
    state: durable ? 'durable' : o.armed ? 'armed' : 'writing',
    ...(durable ? { durable } : {}),
  };
}

const UNFINISHED_STATES: Record<Unfinished['state'], string> = {
  writing: 'its data is being written, or its writer died',
  durable: 'its data is on the disk, its digests are pending',
  armed: 'armed: the kernel writes it on a watchdog pretimeout',
};

function findCapture(ref: string, o: DestOpts, cli: Cli): { store: CaptureStore; id: string; others: CaptureStore[] } {
  // A path when it says so (a slash), or when no --dest was given and it
  // names a capture directory; with --dest, a bare name is an id there,
  // whatever the working directory happens to hold.
  const asDir = path.resolve(ref);
  const isPath = ref.includes('/') || !o.dest?.length;
  if (isPath && fs.existsSync(path.join(asDir, 'manifest.json'))) {
    const store = openStoreAt(path.dirname(asDir));
    const entry = [...store.index().entries].reverse().find((e) => e.location === path.basename(asDir));
    if (!entry) {
      store.close();
      throw Object.assign(new Error(`${asDir} is not in ${path.join(path.dirname(asDir), 'index.jsonl')}`), { code: 'ENOENT' });
    }
    return { store, id: entry.id, others: [] };
  }
  const stores = openStores(o, cli);
  const hits = stores.filter((s) => s.index().entries.some((e) => e.id === ref || e.id.startsWith(ref)));
  if (hits.length !== 1) {
    // Not in any index: an unfinished capture is named as such, never shown as a capture to verify.
    const unfinished = hits.length
      ? undefined
      : stores.flatMap((s) => s.unfinished().map((u) => ({ s, u }))).find(({ u }) => u.id === ref || u.id.startsWith(ref));
    for (const s of stores) s.close();
    const where = stores.map((s) => s.location).join(', ') || 'no destinations';
    const why = unfinished && unfinishedOf(unfinished.u.id, unfinished.u.intent);
    throw Object.assign(
      new Error(
        why
          ? `capture ${why.id} in ${unfinished.s.location} is not finished (${UNFINISHED_STATES[why.state]}): there is nothing to verify or read yet`
          : hits.length
            ? `"${ref}" is in more than one destination (${hits.map((s) => s.location).join(', ')}): pass --dest`
            : `no capture "${ref}" in ${where}`,
      ),
      {
        code: 'ENOENT',
      },
    );
  }
  return { store: hits[0]!, id: ref, others: stores.filter((s) => s !== hits[0]) };
}

function readManifest(reader: CaptureReader): Manifest {
  return JSON.parse(reader.readFile('manifest.json').toString('utf8')) as Manifest;
}

function presence(store: CaptureStore, e: IndexEntry): string {
  try {
    store.open(e.id).close();
    return 'present';
  } catch {
    return 'removed';
  }
}

function withDestOptions(cmd: Command): Command {
  return (
    cmd
      // Repeatable rather than variadic, so it cannot swallow the arguments after it.
      .option(
        '--dest <path>',
        'a capture directory or dump partition; repeat for more (default: the destinations of the profiles)',
        (v: string, prev: string[]) => [...prev, v],
        [] as string[],
      )
      .option('--profiles-dir <dirs...>', 'profile drop-in directories to find destinations in')
      // A remote --dest (s3://bucket/prefix): how to reach it, and which of the fleet's captures.
      .option('--endpoint <url>', 'remote --dest: the S3-compatible service (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)')
      .option('--credentials <file>', 'remote --dest: a credentials file (mode 0600; default: the environment, else the platform chain)')
      .option('--s3-region <region>', 'remote --dest: the region requests are signed for (default us-east-1)')
      .option('--identity <file>', 'remote sftp:// --dest: the private key to log in with (mode 0600)')
      .option('--host-key <fingerprint>', "remote sftp:// --dest: the server's host key, pinned (SHA256:...)")
      .option('--host <host>', "remote --dest: only this host's captures")
  );
}

/** The one remote --dest, if the verb was pointed at one. */
function remoteDest(o: DestOpts): string | undefined {
  const remote = (o.dest ?? []).filter(isRemoteLocation);
  if (!remote.length) return undefined;
  if (remote.length > 1 || (o.dest ?? []).length > 1) throw new Error('a remote --dest is read alone: name one destination');
  return remote[0];
}

/** What the capture is to crash, drgn, gdb and makedumpfile: `show`'s last lines. */
function contentsLines(reader: CaptureReader, m: Manifest): string[] {
  const notADump = 'not a kernel dump: crash, drgn and makedumpfile cannot use it; read it with export --format raw or lime';
  if (m.format !== 'elf') return [`contents: raw files of physical ranges; ${notADump}`];
  const file = m.regions[0]?.file ?? 'core.elf';
  let c;
  try {
    c = describeCore(storedElfCore(reader, m)!);
  } catch (err) {
    return [`contents: ${file} cannot be read: ${(err as Error).message}`];
  }
  if (!c.kernelDump) {
    const why = c.mappedBytes > 0n ? 'no VMCOREINFO' : 'no region the kernel maps';
    return [`contents: physical ranges only (${why}); ${notADump}`];
  }
  const offset = c.kernelOffset ? `, KASLR offset 0x${c.kernelOffset}` : '';
  return [
    `contents: kernel dump of Linux ${c.release ?? '?'}${c.buildId ? ` (build ID ${c.buildId})` : ''}${offset}; ${formatBytes(Number(c.mappedBytes))} the kernel maps, ${formatBytes(Number(c.physicalOnlyBytes))} physical-only`,
    `open with: crash vmlinux ${file} | drgn -c ${file} -s vmlinux | gdb -ex 'symbol-file -o 0x${c.kernelOffset ?? '0'} vmlinux' -ex 'core-file ${file}'`,
    `           physcap export ${m.id} --format kdump -o ${m.id}.kdump (makedumpfile)`,
  ];
}

/** export's work on an open capture (a destination's, or one fetched from a remote one). */
async function exportFrom(
  reader: CaptureReader,
  o: { format: string; out: string; region?: string; dumpLevel?: number; compression: KdumpCompression; json?: boolean },
  cli: Cli,
): Promise<void> {
  const progress = o.json ? undefined : progressReporter(cli, 'export');
  try {
    const manifest = readManifest(reader);
    if (manifest.status !== 'complete') cli.err(`physcap: warning: capture ${manifest.id} is marked failed; exporting what it holds\n`);
    // An ELF export describes the machine that was captured, not the one
    // exporting it: the stored core's own header, else the capturing host.
    let target = capturedElfTarget(reader, manifest);
    if (!target) {
      try {
        target = hostElfTarget(manifest.host.arch, manifest.byteOrder === 'big' ? 'BE' : 'LE');
      } catch {
        target = undefined;
      }
    }
    if (o.format === 'kdump') {
      const res = await exportKdump({
        reader,
        manifest,
        out: path.resolve(o.out),
        dumpLevel: o.dumpLevel,
        compression: o.compression,
        target,
        onProgress: progress?.update,
      });
      progress?.stop();
      for (const w of res.warnings) cli.err(`physcap: warning: ${w}\n`);
      if (o.json) cli.out(`${JSON.stringify(res)}\n`);
      else for (const f of res.files) cli.out(`${f.path}  ${formatBytes(f.size)}  sha256 ${f.sha256}  (makedumpfile -d ${res.dumpLevel})\n`);
      return;
    }
    const res = await exportCapture({
      reader,
      manifest,
      format: o.format as ExportFormat,
      out: path.resolve(o.out),
      region: o.region,
      target,
      onProgress: progress?.update,
    });
    progress?.stop();
    if (o.json) cli.out(`${JSON.stringify(res)}\n`);
    else for (const f of res.files) cli.out(`${f.path}  ${formatBytes(f.size)}  sha256 ${f.sha256}\n`);
  } finally {
    progress?.stop();
  }
}

export function registerPostmortem(program: Command, cli: Cli): void {
  withDestOptions(program.command('list').description('the captures in the destinations, oldest first (like coredumpctl list)'))
    .option('--json', 'print JSON')
    .option('--since <time>', 'remote --dest: captures started at or after this time (ISO 8601)')
    .option('--until <time>', 'remote --dest: captures started at or before this time')
    .action(async (o: DestOpts & RemoteVerbOptions) => {
      const remote = remoteDest(o);
      if (remote) return remoteList(remote, o, cli);
      const rows: Array<IndexEntry & { destination: string; data: string }> = [];
      const unfinished: Array<Unfinished & { destination: string }> = [];
      const problems: string[] = [];
      const unreadable: string[] = [];
      for (const s of openStores(o, cli, unreadable)) {
        try {
          const idx = s.index();
          problems.push(...idx.problems.map((p) => `${s.location}: ${p}`));
          for (const e of idx.entries) rows.push({ ...e, destination: s.location, data: presence(s, e) });
          for (const u of s.unfinished()) unfinished.push({ ...unfinishedOf(u.id, u.intent), destination: s.location });
        } finally {
          s.close();
        }
      }
      if (problems.length) cli.setCode(1);
      if (o.json) return void cli.out(`${JSON.stringify({ captures: rows, unfinished, problems })}\n`);
      if (!rows.length && !unfinished.length && !unreadable.length) cli.out('no captures\n');
      else {
        cli.out(`${'TIME'.padEnd(25)}${'ID'.padEnd(46)}${'STATUS'.padEnd(10)}${'SIZE'.padStart(10)}  DATA     DESTINATION\n`);
        for (const r of rows) {
          cli.out(`${r.started.padEnd(25)}${r.id.padEnd(46)}${r.status.padEnd(10)}${formatBytes(r.bytes).padStart(10)}  ${r.data.padEnd(9)}${r.destination}\n`);
        }
        // Not in the index yet: being written, or durable with its digests pending.
        for (const u of unfinished)
          cli.out(`${u.started.padEnd(25)}${u.id.padEnd(46)}${u.state.padEnd(10)}${'-'.padStart(10)}  ${'-'.padEnd(9)}${u.destination}\n`);
        if (unfinished.some((u) => u.state === 'durable')) {
          cli.out('durable: every byte is on the disk, its digests are not done (a capture whose writer died is finished by the agent at its next start)\n');
        }
      }
      for (const p of problems) cli.err(`physcap: ${p}\n`);
    });

  withDestOptions(
    program.command('show').description("a capture's manifest: what, when, why, how, digests").argument('<capture>', 'id, unique id prefix, or directory'),
  )
    .option('--json', 'print the manifest as JSON')
    .action(async (ref: string, o: DestOpts & RemoteVerbOptions) => {
      const remote = remoteDest(o);
      if (remote) return remoteShow(remote, ref, o, cli);
      const { store, id, others } = findCapture(ref, o, cli);
      others.forEach((s) => s.close());
      const reader = store.open(id);
      try {
        const text = reader.readFile('manifest.json');
        if (o.json) return void cli.out(text.toString('utf8'));
        const m = JSON.parse(text.toString('utf8')) as Manifest;
        cli.out(`Capture ${m.id}\n  status:   ${m.status}${m.error ? ` (${m.error.code ?? ''} ${m.error.message})` : ''}\n`);
        cli.out(`  where:    ${reader.location}\n  profile:  ${m.profile.name} (${m.profile.file}, sha256 ${m.profile.sha256.slice(0, 16)}...)\n`);
        for (const t of m.triggers) cli.out(`  trigger:  ${t.kind} at ${t.time}${t.reason ? `: ${t.reason}` : ''}${t.coalesced ? ' (coalesced)' : ''}\n`);
        cli.out(`  host:     ${m.host.hostname}, ${m.host.kernelRelease} ${m.host.arch}, boot ${m.host.bootId ?? '?'}\n`);
        cli.out(
          `  format:   ${m.format}${m.format === 'elf' ? ` (${m.byteOrder}-endian)` : ''}; ${m.timing.seconds.toFixed(2)} s${milestones(m)}, ${formatBytes(m.timing.bytesPerSecond)}/s\n`,
        );
        if (m.digestEngine) cli.out(`  digests:  SHA-256 by ${m.digestEngine}\n`);
        for (const r of m.regions) {
          const chunks = Array.isArray(r.chunks) ? r.chunks.length : r.chunks.count;
          cli.out(
            `  region:   ${r.name} ${r.phys} ${formatBytes(r.size)} ${r.source}/${r.mode} (zero-copy ${formatBytes(r.bytesZeroCopy)}, copied ${formatBytes(r.bytesCopied)}, bounced ${formatBytes(r.bytesBounced)}); ${r.memory}, digest ${r.digest}\n`,
          );
          cli.out(`            ${r.file}@${r.offset} sha256 ${r.sha256 || '-'}; ${chunks} chunks of ${formatBytes(r.chunkSize)}\n`);
        }
        for (const f of m.files) cli.out(`  file:     ${f.name} ${formatBytes(f.size)} sha256 ${f.sha256}\n`);
        for (const line of contentsLines(reader, m)) cli.out(`  ${line}\n`);
        if (m.signature) cli.out(`  signed:   ed25519 key ${m.signature.keyId}\n`);
      } finally {
        reader.close();
        store.close();
      }
    });

  withDestOptions(
    program
      .command('verify')
      .description('re-hash every file, region and chunk; check SHA256SUMS, the ELF headers, the index chain and the signature')
      .argument('<capture>', 'id, unique id prefix, or directory'),
  )
    .option('--key <public.pem>', 'the capture must be signed, by this ed25519 public key')
    .option('--require-signature', 'an unsigned capture fails')
    .option('--head <seq:sha256>', 'a head of the index kept elsewhere (the indexHead the agent logs with each capture): the index must still hold it')
    .option('--full', "also re-run each file's whole-file SHA-256 where chunk and gap digests already cover every byte (one core)")
    .option('--json', 'print JSON')
    .action(async (ref: string, o: DestOpts & RemoteVerbOptions & { key?: string; requireSignature?: boolean; head?: string }) => {
      const remote = remoteDest(o);
      if (remote) return remoteVerify(remote, ref, o, cli);
      const head = o.head === undefined ? undefined : parseHeadArg(o.head);
      if (head instanceof Error) {
        cli.err(`physcap: --head: ${head.message}\n`);
        return cli.setCode(2);
      }
      const { store, id, others } = findCapture(ref, o, cli);
      others.forEach((s) => s.close());
      const progress = o.json ? undefined : progressReporter(cli, 'verify');
      try {
        const report = await verifyCapture(store, id, {
          publicKey: o.key ? loadPublicKey(o.key) : undefined,
          requireSignature: o.requireSignature,
          head,
          full: o.full,
          onProgress: progress?.update,
        });
        progress?.stop();
        if (o.json)
          cli.out(`${JSON.stringify({ id: report.id, location: report.location, ok: report.ok, passed: report.passed, problems: report.problems })}\n`);
        else {
          for (const p of report.passed) cli.out(`OK    ${p}\n`);
          for (const p of report.problems) cli.out(`FAIL  ${p}\n`);
          cli.out(`${report.id}: ${report.ok ? 'verified' : `${report.problems.length} problem(s)`}\n`);
        }
        if (!report.ok) cli.setCode(1);
      } finally {
        progress?.stop();
        store.close();
      }
    });

  withDestOptions(
    program
      .command('export')
      .description(
        'write a capture in another format: lime (Volatility), raw (a file per region), elf, kdump (makedumpfile: filtered, compressed; crash and drgn)',
      )
      .argument('<capture>', 'id, unique id prefix, or directory'),
  )
    .requiredOption('--format <format>', 'lime | raw | elf | kdump')
    .requiredOption('-o, --out <path>', 'the output (raw: a directory, or a file with --region); never overwritten')
    .option('--region <name>', 'raw: only this region, into one file')
    .option(
      '--dump-level <n>',
      `kdump: makedumpfile -d, pages to leave out: a sum of 1 zero, 2 cache, 4 cache private, 8 user data, 16 free (default ${DEFAULT_DUMP_LEVEL}; 23 where makedumpfile is older than the kernel's slab layout)`,
    )
    .option('--compress <kind>', 'kdump: zlib | lzo | none (default zlib)')
    .option('--json', 'print JSON')
    .action(
      async (
        ref: string,
        o: DestOpts & RemoteVerbOptions & { format: string; out: string; region?: string; dumpLevel?: string; compress?: string; json?: boolean },
      ) => {
        if (!['lime', 'raw', 'elf', 'kdump'].includes(o.format)) {
          cli.err(`physcap: --format must be lime, raw, elf or kdump, not "${o.format}"\n`);
          return cli.setCode(2);
        }
        if (o.format !== 'kdump' && (o.dumpLevel !== undefined || o.compress !== undefined)) {
          cli.err('physcap: --dump-level and --compress are for --format kdump\n');
          return cli.setCode(2);
        }
        let dumpLevel: number | undefined;
        try {
          if (o.dumpLevel !== undefined) dumpLevel = parseDumpLevel(o.dumpLevel);
        } catch (err) {
          cli.err(`physcap: ${(err as Error).message}\n`);
          return cli.setCode(2);
        }
        const compression = (o.compress ?? 'zlib') as KdumpCompression;
        if (!['zlib', 'lzo', 'none'].includes(compression)) {
          cli.err(`physcap: --compress must be zlib, lzo or none, not "${o.compress}"\n`);
          return cli.setCode(2);
        }
        const remote = remoteDest(o);
        if (remote) return remoteExport(remote, ref, o, cli, (reader) => exportFrom(reader, { ...o, dumpLevel, compression }, cli));
        const { store, id, others } = findCapture(ref, o, cli);
        others.forEach((s) => s.close());
        const reader = store.open(id);
        try {
          await exportFrom(reader, { ...o, dumpLevel, compression }, cli);
        } finally {
          reader.close();
          store.close();
        }
      },
    );

  withDestOptions(
    program
      .command('diff')
      .description('which chunks changed between two captures, from their digests (no data reread)')
      .argument('<a>', 'capture')
      .argument('<b>', 'capture'),
  )
    .option('--json', 'print JSON')
    .action((a: string, b: string, o: DestOpts & { json?: boolean }) => {
      const A = findCapture(a, o, cli);
      const B = findCapture(b, o, cli);
      const ra = A.store.open(A.id);
      const rb = B.store.open(B.id);
      try {
        const d = diffCaptures({ reader: ra, manifest: readManifest(ra) }, { reader: rb, manifest: readManifest(rb) });
        if (o.json) return void cli.out(`${JSON.stringify({ a: ra.entry.id, b: rb.entry.id, regions: d })}\n`);
        cli.out(`--- ${ra.entry.id}\n+++ ${rb.entry.id}\n`);
        for (const r of d) {
          if (r.status === 'changed' && r.chunkCount) {
            cli.out(`${r.name} (${r.phys}): ${r.chunks.length} of ${r.chunkCount} chunks changed\n`);
            for (const c of r.chunks) cli.out(`  chunk ${c.index}: ${c.start}-${c.end}\n`);
          } else cli.out(`${r.name} (${r.phys}): ${r.status}${r.why ? ` (${r.why})` : ''}\n`);
        }
        if (d.some((r) => r.status !== 'same')) cli.setCode(1);
      } finally {
        ra.close();
        rb.close();
        for (const s of [A.store, B.store, ...A.others, ...B.others]) s.close();
      }
    });

  program
    .command('keygen')
    .description('make an ed25519 key pair for signing manifests (profile: signing.key)')
    .requiredOption('-o, --out <prefix>', 'writes <prefix>.key (0600) and <prefix>.pub; never overwrites')
    .action((o: { out: string }) => {
      const id = generateKeyPair(`${o.out}.key`, `${o.out}.pub`);
      cli.out(`${o.out}.key  private (keep it on the capturing machine)\n${o.out}.pub  public (verify --key)\nkey id ${id}\n`);
    });

  // Verbs of a destination kind's own (physcap blockdev init).
  for (const k of DESTINATION_KINDS) k.commands?.(program, (text) => cli.out(text));
}
