/**
 * physcap verify: re-reads a stored capture and checks everything it
 * claims — every file's SHA-256 and size, every region's digest and chunk
 * digests, the ELF headers against the regions, SHA256SUMS, the manifest
 * against its schema and its index entry, the index's hash chain, and the
 * signature.  Data files are read once by the addon and hashed on every
 * core: where the chunk digests and the gap digest cover every byte of a
 * file (ELF cores since they were recorded), those alone, in parallel;
 * otherwise the whole-file digest too (--full forces it).  Every mismatch
 * is named: the file, the region, the chunk and its byte ranges.
 */
import * as crypto from 'node:crypto';

import { validators } from '../config/schemas';
import { parseElfCore, splitLoads } from '../container/elf';
import type { CaptureReader, CaptureStore } from '../destinations/types';
import { hashStored } from '../native/binding';
import { checkClaim, checkSignedHead, HEAD_FILE, HeadClaim } from '../manifest/head';
import { checkSignature, SIGNATURE_FILE } from '../manifest/sign';
import { parseSums, SUMS_FILE, sumsFile } from '../manifest/sums';
import type { Manifest, ManifestRegion } from '../manifest/types';

export interface VerifyReport {
  id: string;
  location: string;
  ok: boolean;
  /** What was checked and held, one line each. */
  passed: string[];
  /** What did not hold, one line each, naming the file/region/chunk. */
  problems: string[];
  manifest?: Manifest;
}

const PT_LOAD = 1;

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * One file's digests: the whole file as it is on disk (its real size, so
 * appended bytes are caught too) and the digests of the regions in it, all
 * from one read of the file, hashed on every core.
 */
async function hashFile(
  reader: CaptureReader,
  name: string,
  regions: ManifestRegion[],
  want: { whole: boolean; gaps: boolean },
  onBytes: (n: number) => void,
): Promise<{ sha256: string; gapsSha256: string; size: number; regions: Map<string, { sha256: string; chunks: string[] }> }> {
  const at = reader.locate(name);
  const sorted = [...regions].sort((a, b) => a.offset - b.offset);
  let reported = 0;
  // A region that is the whole file (raw) has the file's digest: one stream, not two.
  const isFile = (r: ManifestRegion) => want.whole && r.offset === 0 && r.size === at.size;
  const res = await hashStored({
    path: at.path,
    base: at.base,
    size: BigInt(at.size),
    nofollow: at.nofollow,
    whole: want.whole,
    gaps: want.gaps,
    // A region's own digest only where the manifest has one to compare.
    regions: sorted.map((r) => ({ offset: BigInt(r.offset), length: BigInt(r.size), chunkSize: r.chunkSize, whole: r.sha256 !== '' && !isFile(r) })),
    onProgress: (done) => {
      onBytes(done - reported);
      reported = done;
    },
  });
  onBytes(res.size - reported);
  return {
    sha256: res.sha256,
    gapsSha256: res.gapsSha256,
    size: res.size,
    regions: new Map(sorted.map((r, i) => [r.name, { sha256: isFile(r) ? res.sha256 : res.regions[i]!.sha256, chunks: res.regions[i]!.chunkSha256 }])),
  };
}

function chunkDigests(reader: CaptureReader, r: ManifestRegion, problems: string[]): string[] | undefined {
  if (Array.isArray(r.chunks)) return r.chunks;
  let data: Buffer;
  try {
    data = reader.readFile(r.chunks.file);
  } catch (err) {
    problems.push(`region ${r.name}: chunk sidecar ${r.chunks.file} cannot be read (${(err as Error).message})`);
    return undefined;
  }
  if (sha256(data) !== r.chunks.sha256) problems.push(`region ${r.name}: chunk sidecar ${r.chunks.file} does not match its digest in the manifest`);
  const list = data.toString('utf8').split('\n').filter(Boolean);
  if (list.length !== r.chunks.count)
    problems.push(`region ${r.name}: chunk sidecar ${r.chunks.file} has ${list.length} digests, the manifest says ${r.chunks.count}`);
  return list;
}

function checkElf(reader: CaptureReader, m: Manifest, fileSize: number, problems: string[], passed: string[]): void {
  const elfFile = m.regions[0]?.file ?? 'core.elf';
  let core;
  try {
    core = parseElfCore((o, n) => reader.read(elfFile, o, n), fileSize);
  } catch (err) {
    problems.push(`${elfFile}: ELF headers: ${(err as Error).message}`);
    return;
  }
  // A kernel dump's image segment is an alias of bytes a region holds: the regions are the rest.
  const { data: loads, aliases } = splitLoads(core);
  if (loads.length !== m.regions.length) problems.push(`${elfFile}: ${loads.length} PT_LOAD segments with data for ${m.regions.length} regions`);
  const empty = core.segments.filter((s) => s.type === PT_LOAD && s.filesz === 0n).length;
  if (empty) problems.push(`${elfFile}: ${empty} PT_LOAD segment(s) without data; a capture's segments hold all of theirs`);
  m.regions.forEach((r, i) => {
    const s = loads[i];
    if (!s) return;
    if (s.paddr !== BigInt(r.phys) || s.offset !== BigInt(r.offset) || s.filesz !== BigInt(r.size)) {
      problems.push(
        `${elfFile}: PT_LOAD ${i} (paddr 0x${s.paddr.toString(16)}, offset ${s.offset}, size ${s.filesz}) does not match region ${r.name} (${r.phys}, offset ${r.offset}, size ${r.size})`,
      );
    }
  });
  if ((core.target.bigEndian ? 'big' : 'little') !== m.byteOrder)
    problems.push(`${elfFile}: ${core.target.bigEndian ? 'big' : 'little'}-endian, the manifest says ${m.byteOrder}`);
  if (!problems.some((p) => p.startsWith(`${elfFile}: `))) {
    passed.push(
      `${elfFile}: ELF core headers match the ${m.regions.length} regions${aliases.length ? ` (and ${aliases.length} alias segment(s) of their bytes)` : ''}`,
    );
  }
}

export interface VerifyOptions {
  /** A pinned public key: the signature must be by this key, and so must the index's signed head. */
  publicKey?: crypto.KeyObject;
  /** A head kept outside the destination (the journal's indexHead): the index must still hold it. */
  head?: HeadClaim;
  /** Require a signature. */
  requireSignature?: boolean;
  /**
   * Re-run each file's whole-file SHA-256 even where chunk and gap digests
   * cover every byte (the one digest that runs on a single core).
   */
  full?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export async function verifyCapture(store: CaptureStore, id: string, o: VerifyOptions = {}): Promise<VerifyReport> {
  const reader = store.open(id);
  const problems: string[] = [];
  const passed: string[] = [];
  const report = (m?: Manifest): VerifyReport => ({ id: reader.entry.id, location: reader.location, ok: problems.length === 0, passed, problems, manifest: m });
  try {
    const entry = reader.entry;
    // The index: the chain, and this capture's entry.
    const idx = store.index();
    for (const p of idx.problems) problems.push(`index: ${p}`);
    if (!idx.problems.length) passed.push(`index: ${idx.entries.length} entries, hash chain intact`);
    // The chain cannot show its newest entries cut off; the witnesses can.
    if (o.publicKey && store.readHead) {
      const text = store.readHead();
      if (!text)
        problems.push(`index: no signed head (${HEAD_FILE}) although a key is pinned: newest captures removed with their index lines could not be detected`);
      else {
        const { problem, claim } = checkSignedHead(text, idx.entries, o.publicKey);
        if (problem) problems.push(`index: ${problem}`);
        else passed.push(`index: reaches its signed head (entry ${claim!.seq}, by the pinned key)`);
      }
    }
    if (o.head) {
      const problem = checkClaim(o.head, idx.entries, `the head given (--head ${o.head.seq}:…)`);
      if (problem) problems.push(`index: ${problem}`);
      else passed.push(`index: holds entry ${o.head.seq} as the head given says`);
    }

    let text: Buffer;
    try {
      text = reader.readFile('manifest.json');
    } catch (err) {
      problems.push(`manifest.json cannot be read (${(err as Error).message})`);
      return report();
    }
    if (!entry.manifestSha256) problems.push('the index entry records no manifest digest');
    else if (sha256(text) !== entry.manifestSha256) problems.push('manifest.json does not match the digest in its index entry (changed after it was written)');
    else passed.push('manifest.json matches its index entry');

    let m: Manifest;
    try {
      m = JSON.parse(text.toString('utf8')) as Manifest;
    } catch (err) {
      problems.push(`manifest.json is not valid JSON (${(err as Error).message})`);
      return report();
    }
    const validate = validators().manifest;
    if (!validate(m)) {
      problems.push(
        `manifest.json does not match its schema: ${(validate.errors ?? [])
          .slice(0, 3)
          .map((e) => `${e.instancePath || '/'} ${e.message}`)
          .join('; ')}`,
      );
      return report();
    }
    if (m.id !== entry.id) problems.push(`manifest.json is for capture ${m.id}, the index says ${entry.id}`);
    if (m.previous !== entry.prev) problems.push(`manifest.json's previous (${m.previous}) is not its index entry's prev (${entry.prev})`);
    if (m.status !== 'complete') problems.push(`the capture is marked failed: ${m.error?.message ?? 'no reason given'}`);
    else if (entry.status !== 'complete') problems.push(`the index records the capture as failed: ${entry.error ?? entry.recovered ?? 'no reason given'}`);

    // The signature.
    const names = new Set(reader.files().map((f) => f.name));
    if (m.signature || names.has(SIGNATURE_FILE)) {
      if (!m.signature) problems.push(`${SIGNATURE_FILE} is present but the manifest records no signature`);
      else if (!names.has(m.signature.file)) problems.push(`the manifest is signed but ${m.signature.file} is missing`);
      else {
        let sig: Buffer | undefined;
        try {
          sig = reader.readFile(m.signature.file);
        } catch (err) {
          problems.push(`${m.signature.file} cannot be read (${(err as Error).message})`);
        }
        if (sig) {
          const { problem, keyId } = checkSignature(text, sig, o.publicKey);
          if (problem) problems.push(problem);
          else if (keyId !== m.signature.keyId) problems.push(`${SIGNATURE_FILE} is by key ${keyId}, the manifest says ${m.signature.keyId}`);
          else passed.push(`signature: ed25519 by key ${keyId}${o.publicKey ? ' (the pinned key)' : ' (not pinned: pass --key to check who signed)'}`);
        }
      }
    } else if (o.publicKey) {
      // A forger without the key can make every digest, the sums and the
      // chain agree; what he cannot make is a signature.  So a pinned key
      // means a signature is required.
      problems.push('the capture is not signed, but a key is pinned (--key): only a signature by that key proves who wrote it');
    } else if (o.requireSignature) problems.push('the capture is not signed');

    // Every file, once; region and chunk digests from the same pass.
    const total = m.files.reduce((a, f) => a + f.size, 0);
    let done = 0;
    const computed = new Map<string, string>();
    const sidecars = new Set(m.regions.flatMap((r) => (Array.isArray(r.chunks) ? [] : [r.chunks.file])));
    for (const f of m.files) {
      if (!names.has(f.name)) {
        problems.push(`${f.name} is missing`);
        continue;
      }
      const inFile = m.regions.filter((r) => r.file === f.name);
      // Every byte covered by a digest that hashes on any core: the
      // regions' chunks and the gaps between them.  Then the in-order
      // whole-file digest adds nothing a changed byte could escape.
      const covered = !o.full && f.gapsSha256 !== undefined && inFile.every((r) => r.chunkSize > 0);
      let h: Awaited<ReturnType<typeof hashFile>>;
      try {
        h = await hashFile(reader, f.name, inFile, { whole: !covered, gaps: covered }, (n) => {
          done += n;
          o.onProgress?.(done, total);
        });
      } catch (err) {
        problems.push(`${f.name} cannot be read (${(err as Error).message})`);
        continue;
      }
      if (h.size !== f.size) problems.push(`${f.name}: ${h.size} bytes, the manifest says ${f.size}`);
      if (covered) {
        // The bytes are those the capture hashed, so their whole-file
        // digest is the one it recorded: what SHA256SUMS must say too.
        computed.set(f.name, f.sha256);
        if (h.gapsSha256 !== f.gapsSha256) problems.push(`${f.name}: the bytes outside its regions (headers, notes, padding) changed after it was written`);
        else if (h.size === f.size)
          passed.push(`${f.name}: ${f.size} bytes, every byte under a chunk or gap digest that matches (whole-file SHA-256 not re-run: --full)`);
      } else {
        computed.set(f.name, h.sha256);
        if (h.sha256 !== f.sha256) problems.push(`${f.name}: SHA-256 mismatch (the file changed after it was written)`);
        else if (h.size === f.size) passed.push(`${f.name}: ${f.size} bytes, SHA-256 matches`);
      }
      for (const r of inFile) {
        const got = h.regions.get(r.name)!;
        if (r.sha256 && got.sha256 !== r.sha256) problems.push(`region ${r.name}: SHA-256 mismatch`);
        const want = chunkDigests(reader, r, problems);
        let bad = 0;
        if (want) {
          if (want.length !== got.chunks.length) problems.push(`region ${r.name}: ${got.chunks.length} chunks, the manifest has ${want.length} digests`);
          want.forEach((d, i) => {
            if (got.chunks[i] !== undefined && got.chunks[i] !== d) {
              bad++;
              const start = BigInt(r.phys) + BigInt(i * r.chunkSize);
              const end = start + BigInt(Math.min(r.chunkSize, r.size - i * r.chunkSize)) - 1n;
              problems.push(
                `region ${r.name}: chunk ${i} (physical 0x${start.toString(16)}-0x${end.toString(16)}, file offset ${hex(r.offset + i * r.chunkSize)}) does not match`,
              );
            }
          });
        }
        if (r.sha256 === got.sha256 && !bad) {
          const what = r.sha256 ? `SHA-256 and ${got.chunks.length} chunk digests match` : `${got.chunks.length} chunk digests match`;
          passed.push(`region ${r.name}: ${r.size} bytes at ${r.phys}, ${what}`);
        }
      }
      if (m.format === 'elf' && f.name === 'core.elf') checkElf(reader, m, f.size, problems, passed);
      sidecars.delete(f.name);
    }
    for (const s of sidecars) problems.push(`chunk sidecar ${s} is not listed among the manifest's files`);

    // Nothing else: a file planted beside the capture's own is reported.
    const own = new Set(['manifest.json', SUMS_FILE, ...m.files.map((f) => f.name), ...(m.signature ? [m.signature.file] : [])]);
    for (const name of names) if (!own.has(name)) problems.push(`${name} is not part of the capture (the manifest does not list it)`);

    // SHA256SUMS: what `sha256sum -c` would check, checked the same way.
    let sumsText: string | undefined;
    try {
      if (names.has(SUMS_FILE)) sumsText = reader.readFile(SUMS_FILE).toString('utf8');
    } catch (err) {
      problems.push(`${SUMS_FILE} cannot be read (${(err as Error).message})`);
    }
    if (!names.has(SUMS_FILE)) problems.push(`${SUMS_FILE} is missing`);
    else if (sumsText !== undefined) {
      const { sums, problems: bad } = parseSums(sumsText);
      problems.push(...bad);
      const before = problems.length;
      for (const [name, digest] of sums) {
        if (!names.has(name)) {
          problems.push(`${SUMS_FILE} lists ${name}, which is missing`);
          continue;
        }
        let got = computed.get(name);
        try {
          got ??= sha256(reader.readFile(name));
        } catch (err) {
          problems.push(`${SUMS_FILE} lists ${name}, which cannot be read (${(err as Error).message})`);
          continue;
        }
        if (got !== digest) problems.push(`${SUMS_FILE}: ${name} does not match`);
      }
      for (const need of ['manifest.json', ...m.files.map((f) => f.name)]) if (!sums.has(need)) problems.push(`${SUMS_FILE} does not list ${need}`);
      // physcap writes it in one form only, so any other bytes (a line
      // dropped, a newline or a comment added) mean it was edited.
      if (problems.length === before && sumsText !== sumsFile([...sums].map(([name, sha]) => ({ name, sha256: sha }))).toString('utf8')) {
        problems.push(`${SUMS_FILE} is not as physcap wrote it (edited, though every digest it lists matches)`);
      }
      if (problems.length === before) passed.push(`${SUMS_FILE}: ${sums.size} files match`);
    }
    return report(m);
  } finally {
    reader.close();
  }
}
