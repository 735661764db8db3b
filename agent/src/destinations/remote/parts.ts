/**
 * How a capture's files are cut for the copy to remote storage.  A data
 * file's parts follow its regions' chunk digests: where a chunk is at
 * least the smallest part an object store accepts, each chunk is one part,
 * so the part's SHA-256 is the manifest's own chunk digest.  The copy then
 * signs every such part with that digest as its payload hash, and the
 * server refuses any byte that differs from what the manifest recorded —
 * no second hash of the bytes on the way out.  Bytes between regions (the
 * ELF headers, padding) join the part after them; a part of several
 * chunks, or with such bytes, has its digest computed as it is sent.
 */
import * as crypto from 'node:crypto';

import type { Manifest, ManifestRegion } from '../../manifest/types';

/** S3's smallest part (all but the last) and most parts per object. */
export const MIN_PART = 5 * 2 ** 20;
export const MAX_PARTS = 10_000;
/** Files no larger than this are sent whole, in one request. */
export const SMALL_FILE = MIN_PART;
/** Part size of a file without chunk digests. */
const PLAIN_PART = 8 * 2 ** 20;

export interface PlannedPart {
  /** 1-based, as S3 numbers them. */
  n: number;
  offset: number;
  length: number;
  /** The part's SHA-256 (hex) when the manifest already holds it: the part is exactly one chunk. */
  sha256?: string;
}

export interface PlannedFile {
  name: string;
  size: number;
  /** Empty for a file sent whole. */
  parts: PlannedPart[];
}

/** A span of the file: a chunk with its digest, or bytes outside every region. */
interface Span {
  offset: number;
  length: number;
  sha256?: string;
}

function spansOf(size: number, regions: Array<{ region: ManifestRegion; chunks: string[] }>): Span[] {
  const spans: Span[] = [];
  let pos = 0;
  const gap = (to: number) => {
    if (to > pos) spans.push({ offset: pos, length: to - pos });
    pos = Math.max(pos, to);
  };
  for (const { region: r, chunks } of [...regions].sort((a, b) => a.region.offset - b.region.offset)) {
    gap(r.offset);
    if (!r.chunkSize || chunks.length !== Math.ceil(r.size / r.chunkSize)) {
      gap(r.offset + r.size); // no usable chunk digests: plain bytes
      continue;
    }
    chunks.forEach((sha256, i) => {
      const offset = r.offset + i * r.chunkSize;
      const length = Math.min(r.chunkSize, r.size - i * r.chunkSize);
      spans.push({ offset, length, sha256 });
    });
    pos = r.offset + r.size;
  }
  gap(size);
  // Plain stretches are cut to a sensible part size so they parallelize too.
  return spans.flatMap((s) => {
    if (s.sha256 || s.length <= PLAIN_PART) return [s];
    const out: Span[] = [];
    for (let o = 0; o < s.length; o += PLAIN_PART) out.push({ offset: s.offset + o, length: Math.min(PLAIN_PART, s.length - o) });
    return out;
  });
}

/**
 * The parts of one data file: spans gathered, in file order, until a part
 * reaches the minimum size (and enough of it that no object needs more
 * than MAX_PARTS); the last part takes what is left.
 */
export function planFile(name: string, size: number, regions: Array<{ region: ManifestRegion; chunks: string[] }>): PlannedFile {
  if (size <= SMALL_FILE) return { name, size, parts: [] };
  const min = Math.max(MIN_PART, Math.ceil(size / MAX_PARTS));
  const parts: PlannedPart[] = [];
  let cur: Span[] = [];
  const emit = () => {
    if (!cur.length) return;
    const offset = cur[0]!.offset;
    const length = cur.reduce((a, s) => a + s.length, 0);
    const one = cur.length === 1 ? cur[0]!.sha256 : undefined;
    parts.push({ n: parts.length + 1, offset, length, ...(one ? { sha256: one } : {}) });
    cur = [];
  };
  for (const s of spansOf(size, regions)) {
    cur.push(s);
    if (cur.reduce((a, x) => a + x.length, 0) >= min) emit();
  }
  emit(); // the last part may be smaller than the minimum
  return { name, size, parts };
}

/**
 * Every file of a capture as it will be sent: data files first (in
 * parts), then the small files, and manifest.json last, so its presence
 * remotely says every other file is there.
 */
export function planCapture(files: Array<{ name: string; size: number }>, manifest: Manifest, chunksOf: (r: ManifestRegion) => string[]): PlannedFile[] {
  const byFile = new Map<string, Array<{ region: ManifestRegion; chunks: string[] }>>();
  for (const r of manifest.regions) byFile.set(r.file, [...(byFile.get(r.file) ?? []), { region: r, chunks: chunksOf(r) }]);
  const planned = files.map((f) => planFile(f.name, f.size, byFile.get(f.name) ?? []));
  const rank = (f: PlannedFile) => (f.name === 'manifest.json' ? 2 : f.parts.length ? 0 : 1);
  return planned.sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

/** A multipart object's ETag as S3 computes it: MD5 of the parts' MD5s, and the part count. */
export function multipartEtag(partMd5s: Buffer[]): string {
  const md5 = crypto.createHash('md5');
  for (const m of partMd5s) md5.update(m);
  return `"${md5.digest('hex')}-${partMd5s.length}"`;
}
