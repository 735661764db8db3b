/**
 * The local spool of a remote destination: a capture store like any other
 * (the pipeline writes to it at disk speed), whose retention never removes
 * a complete capture before its remote copy is verified.  The copy's
 * journals live beside the captures, one hidden file per capture, so the
 * spool alone says what is still to send.
 */
import * as path from 'node:path';

import { Journal } from './journal';
import type { BeginRequest, CaptureReader, CaptureSink, CaptureStore, DataFile, IndexEntry, IndexRead } from '../types';

/** A capture's copy journal in its spool. */
export function journalFile(spool: string, id: string): string {
  return path.join(spool, `.upload-${id}.jsonl`);
}

/** Is this capture's remote copy verified? */
export function remoteVerified(spool: string, id: string): boolean {
  return Boolean(Journal.read(journalFile(spool, id))?.verified);
}

/** What the spool does with a capture once its remote copy is verified: keep it (retention decides), or remove it. */
export type AfterCopy = 'keep' | 'delete';

export class SpoolStore implements CaptureStore {
  readonly kind: string;
  readonly location: string;

  constructor(
    readonly inner: CaptureStore,
    readonly afterCopy: AfterCopy = 'keep',
  ) {
    this.kind = inner.kind;
    this.location = inner.location;
  }

  /** A capture's remote copy was verified: removed from the spool if the policy says so. */
  copied(id: string): boolean {
    if (this.afterCopy !== 'delete') return false;
    this.inner.remove!(id);
    return true;
  }

  /**
   * Room for a new capture: when the spool is short of it, captures whose
   * remote copies are verified make way, oldest first; those not yet
   * copied never do, and the refusal says how many there are.
   */
  checkSpace(bytes: bigint): void {
    try {
      return this.inner.checkSpace(bytes);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      for (const e of this.present()) {
        // Only what is safe elsewhere: a failed capture was never copied, and is evidence too.
        if (e.status !== 'complete' || !remoteVerified(this.location, e.id)) continue;
        this.inner.remove!(e.id);
        try {
          return this.inner.checkSpace(bytes);
        } catch {
          /* still short: the next one */
        }
      }
      const unsent = this.pending();
      const why = unsent.length
        ? `; the spool holds ${unsent.length} capture${unsent.length > 1 ? 's' : ''} not yet copied (${unsent.map((e) => e.id).join(', ')}), kept until their copies are verified`
        : '';
      throw Object.assign(new Error(`${(err as Error).message}${why}`), { code: 'ENOSPC' });
    }
  }

  /** Published captures whose data is still in the spool, oldest first. */
  private present(): IndexEntry[] {
    const latest = new Map<string, IndexEntry>();
    for (const e of this.inner.index().entries) latest.set(e.id, e);
    return [...latest.values()].filter((e) => {
      try {
        this.inner.open(e.id).close();
        return true;
      } catch {
        return false;
      }
    });
  }

  /** Complete captures in the spool whose remote copy is not verified yet, oldest first. */
  pending(): IndexEntry[] {
    // Whose data is gone (removed by hand) has nothing to send.
    return this.present().filter((e) => e.status === 'complete' && !remoteVerified(this.location, e.id));
  }

  retain(justWritten: string): string[] {
    return this.inner.retain(justWritten, new Set(this.pending().map((e) => e.location)));
  }

  index(): IndexRead {
    return this.inner.index();
  }
  where(entry: IndexEntry): string {
    return this.inner.where(entry);
  }
  open(id: string): CaptureReader {
    return this.inner.open(id);
  }
  begin(req: BeginRequest): CaptureSink {
    return this.inner.begin(req);
  }
  recover(o: { keep: boolean; reason: string }): IndexEntry[] {
    return this.inner.recover(o);
  }
  unfinished(): Array<{ id: string; intent: Buffer }> {
    return this.inner.unfinished();
  }
  resume(id: string): { sink: CaptureSink; data(name: string): DataFile } {
    return this.inner.resume(id);
  }
  readHead(): Buffer | undefined {
    return this.inner.readHead?.();
  }
  takeWarnings(): string[] {
    return this.inner.takeWarnings?.() ?? [];
  }
  close(): void {
    this.inner.close();
  }
}
