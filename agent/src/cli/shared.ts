/** What every CLI command module gets: output streams, the exit code, and formatting. */
import { SingleBar } from 'cli-progress';
import type { Manifest, ManifestRegion } from '../manifest/types';

export interface Cli {
  out(s: string): void;
  err(s: string): void;
  setCode(code: number): void;
  /** A terminal is attached: progress bars, not JSON lines. */
  isTTY: boolean;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i ? `${v.toFixed(1)} ${units[i]}` : `${n} B`;
}

/**
 * A progress bar on stderr when it is a terminal; otherwise nothing (the
 * command's result is what scripts read).
 */
export function progressReporter(cli: Cli, label: string): { update: (done: number, total: number) => void; stop: () => void } | undefined {
  if (!cli.isTTY) return undefined;
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% | {doneMiB}/{totalMiB} MiB | {speed} MiB/s | eta {eta_formatted}`,
    hideCursor: true,
    stream: process.stderr,
  });
  const t0 = Date.now();
  let started = false;
  let stopped = false;
  const mib = (n: number) => (n / 1048576).toFixed(0);
  return {
    update(done, total) {
      if (stopped) return;
      const payload = { doneMiB: mib(done), totalMiB: mib(total), speed: (done / 1048576 / Math.max(0.001, (Date.now() - t0) / 1000)).toFixed(0) };
      if (!started) {
        bar.start(total, done, payload);
        started = true;
      } else bar.update(done, payload);
    },
    stop() {
      if (started && !stopped) bar.stop();
      stopped = true;
    },
  };
}

/** ", durable at 1.40 s, digested at 3.02 s": when a capture's bytes and its digests were done, from its start. */
export function milestones(m: Manifest | undefined): string {
  if (!m?.timing.durable || !m.timing.digested) return '';
  const t0 = Date.parse(m.timing.started);
  const at = (iso: string) => ((Date.parse(iso) - t0) / 1000).toFixed(2);
  return ` (durable at ${at(m.timing.durable)} s, digested at ${at(m.timing.digested)} s)`;
}

/** A region's digest in one word: its SHA-256, or how many chunk digests stand for it. */
export function regionDigest(r: ManifestRegion): string {
  if (r.sha256) return r.sha256;
  const chunks = Array.isArray(r.chunks) ? r.chunks.length : r.chunks.count;
  return chunks ? `${chunks} chunk digests of ${formatBytes(r.chunkSize)}` : '-';
}
