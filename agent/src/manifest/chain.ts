/**
 * The hash chain that links a destination's index entries: each entry
 * carries the hash of the one before it, so a removed, reordered or edited
 * entry is detectable offline.  An entry is stored as one line of JSON
 * (index.jsonl) or the same JSON in a block device's index slot; its hash
 * is the SHA-256 of exactly that text.
 */
import * as crypto from 'node:crypto';

import type { IndexEntry } from './index-entry';

const ORDER: Array<keyof IndexEntry> = [
  'seq',
  'id',
  'profile',
  'status',
  'started',
  'finished',
  'bytes',
  'manifestSha256',
  'error',
  'recovered',
  'prev',
  'location',
];

/** The entry's canonical text: fixed key order, no whitespace, no newline. */
export function serializeEntry(e: IndexEntry): string {
  const o: Record<string, unknown> = {};
  for (const k of ORDER) if (e[k] !== undefined) o[k] = e[k];
  return JSON.stringify(o);
}

export function entryHash(text: string): string {
  return crypto.createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Parses one stored entry; throws with what is wrong. */
export function parseEntry(text: string): IndexEntry {
  const o = JSON.parse(text) as Partial<IndexEntry>;
  const bad = (f: string) => new Error(`index entry: field "${f}" is missing or invalid`);
  if (!Number.isInteger(o.seq) || (o.seq as number) < 1) throw bad('seq');
  for (const f of ['id', 'profile', 'started', 'finished', 'location'] as const) if (typeof o[f] !== 'string') throw bad(f);
  if (o.status !== 'complete' && o.status !== 'failed') throw bad('status');
  if (typeof o.bytes !== 'number') throw bad('bytes');
  if (o.prev !== null && typeof o.prev !== 'string') throw bad('prev');
  return o as IndexEntry;
}

/**
 * Checks a sequence of stored entry texts as a chain.  Lines that do not
 * parse are reported and skipped, but still hashed: the next entry must
 * point at the text as it is on disk.
 */
export function readChain(texts: string[], where: (i: number) => string): { entries: IndexEntry[]; problems: string[]; head: string | null } {
  const entries: IndexEntry[] = [];
  const problems: string[] = [];
  let head: string | null = null;
  texts.forEach((text, i) => {
    let e: IndexEntry | undefined;
    try {
      e = parseEntry(text);
    } catch (err) {
      problems.push(`${where(i)}: corrupt entry (${(err as Error).message})`);
    }
    if (e) {
      if (e.prev !== head) problems.push(`${where(i)}: chain broken: entry ${e.seq} (${e.id}) does not point at the entry before it`);
      entries.push(e);
    }
    head = entryHash(text);
  });
  return { entries, problems, head };
}
