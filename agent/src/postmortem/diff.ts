/**
 * physcap diff: which chunks of which regions changed between two
 * captures, from their chunk digests alone (the manifests and sidecars):
 * no capture data is reread.
 */
import type { CaptureReader } from '../destinations/types';
import type { Manifest, ManifestRegion } from '../manifest/types';

export interface RegionDiff {
  name: string;
  phys: string;
  status: 'same' | 'changed' | 'only-a' | 'only-b' | 'incomparable';
  /** changed: the chunks whose digests differ, with their physical ranges. */
  chunks: Array<{ index: number; start: string; end: string }>;
  chunkCount: number;
  /** incomparable: why (different sizes, chunk sizes, no digests). */
  why?: string;
}

function digests(reader: CaptureReader, r: ManifestRegion): string[] {
  if (Array.isArray(r.chunks)) return r.chunks;
  return reader.readFile(r.chunks.file).toString('utf8').split('\n').filter(Boolean);
}

export function diffCaptures(a: { reader: CaptureReader; manifest: Manifest }, b: { reader: CaptureReader; manifest: Manifest }): RegionDiff[] {
  const out: RegionDiff[] = [];
  const bByName = new Map(b.manifest.regions.map((r) => [r.name, r]));
  for (const ra of a.manifest.regions) {
    const rb = bByName.get(ra.name);
    bByName.delete(ra.name);
    const base = { name: ra.name, phys: ra.phys, chunks: [] as RegionDiff['chunks'], chunkCount: 0 };
    if (!rb) {
      out.push({ ...base, status: 'only-a' });
      continue;
    }
    if (ra.phys !== rb.phys || ra.size !== rb.size) {
      out.push({ ...base, status: 'incomparable', why: `${ra.phys}+${ra.size} vs ${rb.phys}+${rb.size}` });
      continue;
    }
    if (!ra.chunkSize || ra.chunkSize !== rb.chunkSize) {
      // Without matching chunks, the region digests still say same or not.
      const same = ra.sha256 !== '' && ra.sha256 === rb.sha256;
      out.push({
        ...base,
        status: same ? 'same' : ra.sha256 && rb.sha256 ? 'changed' : 'incomparable',
        why: same ? undefined : `chunk sizes ${ra.chunkSize} and ${rb.chunkSize}: whole-region digests only`,
      });
      continue;
    }
    const da = digests(a.reader, ra);
    const db = digests(b.reader, rb);
    const start = BigInt(ra.phys);
    for (let i = 0; i < Math.max(da.length, db.length); i++) {
      if (da[i] !== db[i]) {
        const s = start + BigInt(i * ra.chunkSize);
        const e = s + BigInt(Math.min(ra.chunkSize, ra.size - i * ra.chunkSize)) - 1n;
        base.chunks.push({ index: i, start: `0x${s.toString(16)}`, end: `0x${e.toString(16)}` });
      }
    }
    out.push({ ...base, chunkCount: da.length, status: base.chunks.length ? 'changed' : 'same' });
  }
  for (const rb of bByName.values()) out.push({ name: rb.name, phys: rb.phys, status: 'only-b', chunks: [], chunkCount: 0 });
  return out;
}
