/**
 * The boundary between the capture pipeline and where captures are kept.
 * Every destination kind (destinations/registry.ts) implements both halves: a
 * CaptureSink that one capture is written through, and a CaptureStore that
 * the post-mortem verbs (list, show, verify, export, diff) read from.  The
 * pipeline and the verbs never know which kind they are talking to.
 */
import type { IndexEntry, IndexRead } from '../manifest/index-entry';
import type { Destination as NativeDestination } from '../native/binding';

export type { IndexEntry, IndexRead };

/** One data file of a capture being written: the engine writes into dest at base + offset. */
export interface DataFile {
  readonly name: string;
  readonly dest: NativeDestination;
  /** Where the file's byte 0 is on dest (0 for a file; the record's offset on a block device). */
  readonly base: bigint;
  readonly size: bigint;
}

/** What commit() and fail() write: built under the destination's lock, given the chain head. */
export interface Finish {
  /** manifest.json's bytes. */
  manifest: Buffer;
  /** Other small files (SHA256SUMS, manifest.json.sig, chunk sidecars), written before manifest.json's rename into place. */
  files: Array<{ name: string; data: Buffer }>;
  /** The index entry, without seq/prev/location (the sink fills them). */
  entry: Omit<IndexEntry, 'seq' | 'prev' | 'location'>;
  /** When captures are signed: the signed head (manifest/head.ts) for the appended entry. */
  signHead?: (entry: IndexEntry) => Buffer;
}

/** One capture being written.  Exactly one of commit() or fail() ends it. */
export interface CaptureSink {
  readonly id: string;
  /** Human-readable, where the unfinished record is: a directory, or device@offset. */
  readonly location: string;
  /** Data offsets inside a data file must be multiples of this (direct I/O). */
  readonly align: number;
  /**
   * Creates a data file of exactly `size` bytes with its space allocated now
   * (ENOSPC here, not half-way).  Refuses names that exist.
   */
  openData(name: string, size: bigint): DataFile;
  /**
   * Makes the capture complete, atomically: small files and manifest.json
   * written and fsynced, then published (dir: renamed into place; blockdev:
   * index slot committed), then the index entry appended.  `build` is
   * called under the destination's lock with the index head, for the
   * manifest's `previous` field.
   */
  commit(build: (previous: string | null) => Finish): IndexEntry;
  /**
   * Leaves an honest failed record: the data written so far is kept, a
   * manifest with status failed (when `build` is given) and an index
   * entry with the error.  Never throws for a second failure: it records
   * what it could and returns the entry it appended, if any.
   */
  fail(build: (previous: string | null) => Finish): IndexEntry | undefined;
  /**
   * Nothing was captured (an armed capture that never fired, disarmed when
   * the agent stops): the unfinished record is removed, no index entry.
   */
  discard(): void;
  /**
   * The data is on the disk (written and synced), the digests not yet
   * done: `intent` (JSON) becomes the unfinished record's intent, saying
   * so and how to finish it.  Written durably before it returns.  A crash
   * from here on leaves a capture that start-up finishes by reading its
   * data back (capture/durable.ts) rather than recording it failed.
   */
  markDurable(intent: Buffer): void;
  /**
   * From here until it ends the record is a reservation that lets other
   * captures through (an armed capture, waiting for the kernel to write
   * it): a kind whose writers wait for each other stops making them wait
   * for this one, and keeps a mark that says the record is alive while
   * this process is.  Kinds whose captures never wait for each other
   * leave it out.
   */
  reserve?(): void;
  /** After reserve(): resolves once the record can be ended (commit, fail, discard) without waiting. */
  writable?(signal?: AbortSignal): Promise<void>;
}

/** A stored capture opened for reading. */
export interface CaptureReader {
  readonly entry: IndexEntry;
  /** A path or device@offset, for messages. */
  readonly location: string;
  /** Every file of the capture (manifest.json included), with its size. */
  files(): Array<{ name: string; size: number }>;
  /** A whole small file (manifest, sums, sidecars). */
  readFile(name: string): Buffer;
  /** `length` bytes of a file from `offset`; shorter only at the file's end. */
  read(name: string, offset: number, length: number): Buffer;
  /**
   * Where a file's bytes are, for native re-hashing: a path and the file's
   * byte 0 on it (0 for a file in a capture directory; the record's offset
   * on a dump partition).  nofollow: the path must not be a symlink.
   */
  locate(name: string): { path: string; base: bigint; size: number; nofollow: boolean };
  close(): void;
}

/** What a new capture tells its destination before a byte is written. */
export interface BeginRequest {
  id: string;
  profile: string;
  /** ISO time. */
  started: string;
  /** Data files' total size (what openData() will be asked for). */
  dataBytes: bigint;
  /** An upper bound for the small files (manifest, sums, signature, sidecars) together. */
  smallBytes: number;
  /** Kept with the unfinished capture so start-up recovery can say what it was (JSON). */
  intent: Buffer;
}

/** A destination opened for reading (post-mortem verbs), writing and recovery. */
export interface CaptureStore {
  /** Its kind's name (destinations/registry.ts). */
  readonly kind: string;
  readonly location: string;
  index(): IndexRead;
  /** Where a capture the index lists is, for messages and outcomes: a path, or device#record@offset. */
  where(entry: IndexEntry): string;
  /** Opens a capture by id or unique id prefix; throws a clear error otherwise. */
  open(id: string): CaptureReader;
  /**
   * Throws (code ENOSPC, a message with the figures) if a capture of this
   * many bytes cannot be written without breaking the destination's
   * keep-free or capacity.  Called before a byte is written.
   */
  checkSpace(bytes: bigint): void;
  /** Starts a capture: an unfinished record exists from here on. */
  begin(req: BeginRequest): CaptureSink;
  /**
   * Start-up recovery: every capture a crash or power loss left unfinished
   * is recorded as failed in the index with `reason`, its data kept
   * (as the kind keeps failed captures) or removed; returns the entries appended.
   */
  recover(o: { keep: boolean; reason: string }): IndexEntry[];
  /** Unfinished captures and their intents, for their owner to finish before recover() records the rest as failed. */
  unfinished(): Array<{ id: string; intent: Buffer }>;
  /**
   * Reopens an unfinished capture to finish it (an armed capture the
   * kernel wrote while its agent was down): its sink, and its data files.
   */
  resume(id: string): { sink: CaptureSink; data(name: string): DataFile };
  /**
   * Retention after a capture completed: removes the oldest captures while
   * over the policy, never `justWritten` and never one whose location is
   * `pinned` (a spool's captures not yet copied); returns the ids removed.
   * Only kinds that can be a spool (can.spool) are given `pinned`.
   */
  retain(justWritten: string, pinned?: ReadonlySet<string>): string[];
  /**
   * Removes one published capture's data, as retention would: its index
   * entry stays, and list shows the data removed.  Kinds that can be a
   * spool have it (a capture whose remote copy is verified).
   */
  remove?(id: string): void;
  /** The signed index head (index.head), if the destination keeps one. */
  readHead?(): Buffer | undefined;
  /** Problems since the last call that failed nothing but should be logged (a rename recovery will finish). */
  takeWarnings?(): string[];
  close(): void;
}
