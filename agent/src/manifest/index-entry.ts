/**
 * A destination's hash-chained index of captures: one entry per capture,
 * whatever kind of destination keeps it (index.jsonl for dir, index slots
 * on a dump partition).
 */

/** One line of a destination's hash-chained index (index.jsonl for dir). */
export interface IndexEntry {
  /** 1, 2, 3... in the order entries were appended. */
  seq: number;
  /** The capture's id (also its directory name for dir). */
  id: string;
  profile: string;
  status: 'complete' | 'failed';
  /** ISO times. */
  started: string;
  finished: string;
  /** Region bytes captured (complete) or written before it stopped (failed). */
  bytes: number;
  /** SHA-256 of manifest.json's bytes; absent when no manifest could be written. */
  manifestSha256?: string;
  /** failed: why, in one line. */
  error?: string;
  /** Set when the entry was written by start-up recovery, not by the capture itself. */
  recovered?: string;
  /** The hash of the previous entry (see entryHash); null for the first. */
  prev: string | null;
  /** Where it is inside the destination: dir name, or "record@<offset>" for blockdev. */
  location: string;
}

/** What reading an index found: the entries that parsed, and what did not. */
export interface IndexRead {
  entries: IndexEntry[];
  /** One line per problem: a corrupt line, a broken chain link (names the seq/line). */
  problems: string[];
  /** The hash the next entry must carry as prev (the last line's hash, even if it is corrupt). */
  head: string | null;
}
