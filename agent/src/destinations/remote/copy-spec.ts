/**
 * What every remote kind's profile says the same way: its local spool (a
 * dir destination in all but name, with after_copy), and how the copy runs
 * (parallel parts, retries, a bandwidth limit).  Parsed and checked here
 * once, so `s3` and `sftp` differ only in how they reach their server.
 */
import { parseDuration, parseSize } from '../../core/units';
import { dirKind, DirSpec } from '../dir/kind';
import type { DestinationDoc, DestinationReport } from '../kind';
import { DEFAULT_RETRY, RetryPolicy } from './retry';
import { AfterCopy, SpoolStore } from './spool';

export interface CopySpec {
  spool: DirSpec;
  afterCopy: AfterCopy;
  /** bandwidth: bytes per second, 0 for no limit. */
  upload: { parallel: number; retryForMs: number; bandwidth: number };
}

export function parseCopySpec(d: DestinationDoc): CopySpec {
  const spoolDoc = d.spool as DestinationDoc;
  const upload = (d.upload as DestinationDoc | undefined) ?? {};
  const retry = parseDuration(upload.retry_for ?? '15m');
  const bandwidth = parseSize(upload.bandwidth ?? 0);
  return {
    spool: dirKind.parse({ ...spoolDoc, kind: 'dir' }),
    afterCopy: (spoolDoc.after_copy as AfterCopy | undefined) ?? 'keep',
    upload: {
      parallel: (upload.parallel as number | undefined) ?? 4,
      retryForMs: retry instanceof Error ? DEFAULT_RETRY.forMs : retry,
      bandwidth: bandwidth instanceof Error ? 0 : Number(bandwidth),
    },
  };
}

export function checkCopySpec(d: DestinationDoc, report: DestinationReport): void {
  const upload = (d.upload as DestinationDoc | undefined) ?? {};
  if (upload.retry_for !== undefined) {
    const r = parseDuration(upload.retry_for);
    if (r instanceof Error) report('error', '/upload/retry_for', r.message);
  }
  if (upload.bandwidth !== undefined) {
    const b = parseSize(upload.bandwidth);
    if (b instanceof Error) report('error', '/upload/bandwidth', b.message, 'bytes per second, e.g. 50MiB; 0 for no limit');
  }
  // The spool is a dir destination in all but name: its own checks, at its own fields.
  const { after_copy: _afterCopy, ...spoolDoc } = d.spool as DestinationDoc;
  dirKind.check({ ...spoolDoc, kind: 'dir' }, (severity, field, message, expected) => report(severity, `/spool${field}`, message, expected));
}

export function openSpool(spec: CopySpec): SpoolStore {
  return new SpoolStore(dirKind.open(spec.spool), spec.afterCopy);
}

export function copyOf(spec: CopySpec): { parallel: number; retry: RetryPolicy; bandwidth: number } {
  return { parallel: spec.upload.parallel, retry: { ...DEFAULT_RETRY, forMs: spec.upload.retryForMs }, bandwidth: spec.upload.bandwidth };
}
