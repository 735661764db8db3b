/**
 * Checks the schema cannot express: regions that are ambiguous, misaligned
 * or overlapping, units that do not resolve, triggers that would never
 * fire, destinations that are not there.  Run on documents the schema
 * accepted; every finding is positioned like a schema error.  Each trigger
 * and destination kind checks its own part (its check()).
 */
import * as fs from 'node:fs';

import { parseIomem } from '../kernel/iomem';
import { Diagnostic, Severity } from './diagnostics';
import { destinationKind } from '../destinations/registry';
import { MIN_PART } from '../destinations/remote/parts';
import { triggerKind } from '../triggers/registry';
import { formatSize, parseAddress, parseDuration, parseSize } from '../core/units';
import { YamlSource } from './yaml-source';

type Json = Record<string, unknown>;

const PAGE = 4096n;
const U64 = 1n << 64n;

export interface SemanticContext {
  /** Names in /proc/iomem; unknown iomem selectors are warnings.  Absent: not checked. */
  iomemNames?: ReadonlySet<string>;
}

/** The resource names of /proc/iomem, or undefined where it cannot be read. */
export function readIomemNames(file = '/proc/iomem'): Set<string> | undefined {
  try {
    return new Set(parseIomem(fs.readFileSync(file, 'utf8')).map((r) => r.name));
  } catch {
    return undefined;
  }
}

export function checkProfile(src: YamlSource, doc: Json, ctx: SemanticContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  const add = (severity: Severity, pointer: string, message: string, expected?: string, at: 'key' | 'value' = 'value') =>
    out.push({ severity, file: src.file, ...src.locate(pointer, at), pointer, message, expected });

  const regions = (doc.regions as Json[]) ?? [];
  const ranges: Array<{ start: bigint; end: bigint; i: number }> = [];
  const names = new Map<string, number>();
  regions.forEach((r, i) => {
    const p = `/regions/${i}`;
    const name = String(r.name);
    if (names.has(name)) add('error', `${p}/name`, `region name "${name}" is used twice`, `unique names; first at /regions/${names.get(name)}`);
    names.set(name, i);

    const has = (k: string) => r[k] !== undefined;
    if (has('iomem')) {
      for (const k of ['start', 'size', 'end'])
        if (has(k)) add('error', `${p}/${k}`, `"${k}" cannot be combined with "iomem"`, 'a region is either a range or an iomem selector', 'key');
      if (ctx.iomemNames && !ctx.iomemNames.has(String(r.iomem))) {
        add('warning', `${p}/iomem`, `no resource named "${String(r.iomem)}" in /proc/iomem here`, 'names such as "System RAM", "Reserved"');
      }
      return;
    }
    if (!has('start')) {
      add('error', p, 'a region needs "start" with "size" or "end", or "iomem"');
      return;
    }
    if (has('size') && has('end')) {
      add('error', `${p}/end`, 'give "size" or "end", not both', undefined, 'key');
      return;
    }
    if (!has('size') && !has('end')) {
      add('error', p, '"start" needs "size" or "end"');
      return;
    }
    const start = parseAddress(r.start);
    if (start instanceof Error) return; // the schema already said
    let size: bigint;
    if (has('size')) {
      const s = parseSize(r.size);
      if (s instanceof Error) return void add('error', `${p}/size`, s.message);
      size = s;
    } else {
      const end = parseAddress(r.end);
      if (end instanceof Error) return;
      if (end < start) return void add('error', `${p}/end`, 'end is below start', 'end is the last byte, inclusive');
      size = end - start + 1n;
    }
    if (size === 0n) return void add('error', `${p}/size`, 'a region cannot be empty');
    if (start % PAGE) add('error', `${p}/start`, `start is not page-aligned`, `a multiple of ${PAGE} (0x1000)`);
    if (size % PAGE)
      add('error', `${p}/${has('size') ? 'size' : 'end'}`, `the region's length ${size} is not a whole number of pages`, `a multiple of ${PAGE}`);
    if (start + size > U64) return void add('error', `${p}/size`, 'start + size is beyond the 64-bit address space');
    const end = start + size - 1n;
    for (const other of ranges) {
      if (start <= other.end && other.start <= end) {
        add(
          'error',
          `${p}/start`,
          `overlaps region /regions/${other.i} (0x${other.start.toString(16)}-0x${other.end.toString(16)})`,
          'regions must not overlap',
        );
      }
    }
    ranges.push({ start, end, i });
  });

  const cooldown = doc.cooldown !== undefined ? parseDuration(doc.cooldown) : 300_000;
  if (cooldown instanceof Error) add('error', '/cooldown', cooldown.message);

  const triggers = (doc.triggers as Json[]) ?? [];
  triggers.forEach((t, i) => {
    const report = (severity: Severity, field: string, message: string, expected?: string) => add(severity, `/triggers/${i}${field}`, message, expected);
    triggerKind(String(t.kind)).check?.(t, report, { triggers, index: i, cooldownMs: typeof cooldown === 'number' ? cooldown : undefined });
  });

  const hash = (doc.hash as Json | undefined) ?? {};
  if (hash.chunk_size !== undefined) {
    const c = parseSize(hash.chunk_size);
    if (c instanceof Error) add('error', '/hash/chunk_size', c.message);
    else if (c && c % PAGE) add('error', '/hash/chunk_size', 'not a whole number of pages', `a multiple of ${PAGE}, e.g. 4MiB`);
  }

  const source = (doc.source as Json | undefined) ?? {};
  if (source.kind === 'image' && !source.image_path) add('error', '/source', 'the image source needs "image_path"');
  if (source.image_path && source.kind !== 'image') add('warning', '/source/image_path', '"image_path" is used only with kind: image');

  const dest = doc.destination as Json | undefined;
  if (dest) destinationKind(String(dest.kind)).check(dest, (severity, field, message, expected) => add(severity, `/destination${field}`, message, expected));
  if (dest && destinationKind(String(dest.kind)).remote) {
    // A remote copy's parts are the chunks when a chunk is at least S3's smallest part.
    const c = parseSize(hash.chunk_size ?? '4MiB');
    if (!(c instanceof Error) && c > 0n && c < BigInt(MIN_PART))
      add(
        'warning',
        hash.chunk_size !== undefined ? '/hash/chunk_size' : '/destination/kind',
        `chunks of ${formatSize(c)} are smaller than the smallest part of a remote copy (5 MiB): each part is several chunks, and its digest is computed again as it is sent`,
        'chunk_size: 8MiB',
      );
  }
  const signing = doc.signing as Json | undefined;
  if (typeof signing?.key === 'string') {
    // A warning: profiles are often validated away from the machine that holds the key.
    try {
      fs.accessSync(signing.key, fs.constants.R_OK);
    } catch {
      add('warning', '/signing/key', `${signing.key} cannot be read on this machine`, 'captures are taken unsigned until it can: make one with physcap keygen');
    }
  }
  return out;
}
