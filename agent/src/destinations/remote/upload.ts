/**
 * A remote destination's copies, from its spool: one capture, or every one
 * not yet verified remotely.  The CLI (`physcap capture`, `physcap upload`)
 * and the agent (after each capture, and at start-up) use the same calls.
 */
import type { Logger } from '../../core/logger';
import type { RemoteKind } from '../kind';
import { shipCapture, ShipOptions, ShipResult } from './ship';
import { journalFile, SpoolStore } from './spool';

export type UploadOptions = Pick<ShipOptions, 'signal' | 'log' | 'onProgress' | 'onEvent'>;

/** Copies one capture of the spool; then the spool's policy and retention may remove what is no longer pinned. */
export async function uploadCapture<S>(remote: RemoteKind<S>, spec: S, spool: SpoolStore, id: string, o: UploadOptions = {}): Promise<ShipResult> {
  const target = remote.target(spec);
  let result: ShipResult;
  const reader = spool.open(id);
  try {
    result = await shipCapture(reader, target, { journalFile: journalFile(spool.location, reader.entry.id), ...remote.copy(spec), ...o });
  } finally {
    reader.close();
    target.close();
  }
  try {
    if (spool.copied(reader.entry.id)) o.log?.info({ spool: spool.location, capture: reader.entry.id }, 'removed from the spool: its remote copy is verified');
    const removed = spool.retain(reader.entry.location);
    if (removed.length) o.log?.info({ spool: spool.location, removed }, 'spool retention removed captures whose remote copies are verified');
  } catch (err) {
    o.log?.error({ spool: spool.location, err: (err as Error).message }, 'spool retention failed; nothing more was removed');
  }
  return result;
}

export interface PendingOutcome {
  id: string;
  result?: ShipResult;
  error?: string;
}

/** Every capture of the spool not yet verified remotely, oldest first; a failure is reported and the next one tried. */
export async function uploadPending<S>(remote: RemoteKind<S>, spec: S, spool: SpoolStore, o: UploadOptions & { log?: Logger } = {}): Promise<PendingOutcome[]> {
  const out: PendingOutcome[] = [];
  for (const e of spool.pending()) {
    if (o.signal?.aborted) break;
    try {
      out.push({ id: e.id, result: await uploadCapture(remote, spec, spool, e.id, o) });
    } catch (err) {
      out.push({ id: e.id, error: (err as Error).message });
    }
  }
  return out;
}

/** The pre-flight check of a spec's remote side, with the target closed after. */
export async function probeRemote<S>(remote: RemoteKind<S>, spec: S, signal?: AbortSignal): Promise<void> {
  const target = remote.target(spec);
  try {
    await target.probe(signal);
  } finally {
    target.close();
  }
}
