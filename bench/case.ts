/** What every board suite reports per case (bench/results/latest.json), and the figures' arithmetic. */

export interface BenchCase {
  name: string;
  kernel: string;
  bytes: number;
  wall_s: number;
  cpu_s: number;
  max_rss_mb: number;
  /** Absent where no throughput is measured (the first-byte latency). */
  throughput_mib_s?: number;
  rounds: number;
  [extra: string]: number | string | number[] | undefined;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const round3 = (x: number) => Math.round(x * 1000) / 1000;
