/**
 * Import: an ELF core taken elsewhere (a board without Node, by
 * physcap-client capture) becomes a capture in a destination, with the
 * manifest, digests, index entry and signature every capture has, so
 * list, show, verify, export and diff work on it.
 *
 * The core is rewritten, not copied: the same plan → run → finish as a
 * capture, with the core as an image source (each PT_LOAD read at its
 * p_offset) and the ELF container in the core's own machine and byte
 * order, so a big-endian board's capture stays big-endian.  Its VMCOREINFO
 * is carried over, and the board's own PHYSCAP note (machine, kernel,
 * region names, time) is kept in the manifest's trigger and in the new
 * core's note.
 *
 * The board's digest file (FILE.digest, or the one given) is checked
 * first: a core that is not the one the board read back is refused.  A
 * core the board's client armed is imported only once its stamp says the
 * kernel wrote it (board-digest.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Profile } from '../config/profile';
import { NOTE_PHYSCAP, NOTE_VMCOREINFO, parseElfCoreFile, splitLoads } from '../container/elf';
import type { ElfCore } from '../container/elf';
import { fileSha256 } from '../core/file-sha256';
import { destinationKind } from '../destinations/registry';
import { armedOf, checkArmedStamp, checkBoardDigest, readBoardDigest } from './board-digest';
import type { CaptureStore } from '../destinations/types';
import { eventId } from '../triggers/event';
import { CaptureOptions, CaptureOutcome, runCapture } from './pipeline';
import type { KernelView } from './kernel-memory';
import { planOf, PlannedRegion } from './plan';

export interface ImportInput {
  /** The ELF core to import. */
  file: string;
  /** Where it goes: an open store (the CLI's --dest). */
  store: CaptureStore;
  /** The capture's profile name (default "import"). */
  name?: string;
  /** An ed25519 private key (PEM file) to sign the manifest with. */
  signingKey?: string;
  chunkSize?: bigint;
  /** The board's digest file; default FILE.digest when there is one. */
  digestFile?: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const DEFAULT_CHUNK = 4n << 20n;

/** The core's PHYSCAP note as JSON, if it has one that parses. */
function physcapNote(core: ElfCore): Record<string, unknown> | undefined {
  const n = core.notes.find((x) => x.name === NOTE_PHYSCAP.name && x.type === NOTE_PHYSCAP.type);
  if (!n) return undefined;
  try {
    const v = JSON.parse(n.desc.toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Region names from the note where it names a segment's exact range; load<i> otherwise. */
function regionNames(note: Record<string, unknown> | undefined): Map<string, string> {
  const named = new Map<string, string>();
  const list = Array.isArray(note?.regions) ? (note!.regions as Array<Record<string, unknown>>) : [];
  for (const r of list) {
    if (typeof r?.name !== 'string' || typeof r.phys !== 'string' || typeof r.size !== 'number' || !NAME.test(r.name)) continue;
    try {
      named.set(`${BigInt(r.phys)}+${r.size}`, r.name);
    } catch {
      /* not a number: ignore the name */
    }
  }
  return named;
}

/** Reads the core and turns its PT_LOAD segments into planned regions; throws with the file named. */
export function readCoreForImport(file: string): {
  core: ElfCore;
  regions: PlannedRegion[];
  kernel: KernelView;
  note?: Record<string, unknown>;
  vmcoreinfo: string | null;
} {
  try {
    // parseElfCore already refuses segments that run past the end of the file.
    const core = parseElfCoreFile(file);
    const note = physcapNote(core);
    const names = regionNames(note);
    const used = new Set<string>();
    const regions: PlannedRegion[] = [];
    // Aliases (a kdump core's kernel-image segment) are bytes the regions
    // already hold: kept as aliases, not imported twice.
    const { data, aliases } = splitLoads(core);
    const vaddrs: bigint[] = [];
    for (const s of data) {
      const i = core.segments.indexOf(s);
      if (s.filesz !== s.memsz) throw new Error(`${file}: segment ${i} holds ${s.filesz} of its ${s.memsz} bytes; a capture's segments hold all of theirs`);
      let name = names.get(`${s.paddr}+${s.filesz}`) ?? `load${i}`;
      if (used.has(name)) name = `${name}-${i}`;
      used.add(name);
      regions.push({ name, start: s.paddr, size: s.filesz, live: false, allowDevice: false, imageOffset: s.offset });
      vaddrs.push(s.vaddr);
    }
    if (!regions.length) throw new Error(`${file}: no PT_LOAD segment with data: nothing to import`);
    const kernel: KernelView = { vaddrs, aliases: aliases.map((a) => ({ vaddr: a.vaddr, paddr: a.paddr, size: a.filesz })) };
    const vmcoreinfoNote = core.notes.find((n) => n.name === NOTE_VMCOREINFO.name && n.type === NOTE_VMCOREINFO.type);
    return { core, regions, kernel, ...(note ? { note } : {}), vmcoreinfo: vmcoreinfoNote ? vmcoreinfoNote.desc.toString('utf8') : null };
  } catch (err) {
    const msg = (err as Error).message;
    throw Object.assign(new Error(msg.startsWith(file) ? msg : `${file}: ${msg}`), { code: (err as { code?: string }).code ?? 'EINVAL' });
  }
}

export async function importCore(input: ImportInput, o: Omit<CaptureOptions, 'store' | 'plan' | 'vmcoreinfo' | 'note'> = {}): Promise<CaptureOutcome> {
  const name = input.name ?? 'import';
  if (!NAME.test(name))
    throw Object.assign(new Error(`import: name "${name}": use 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or digit)`), { code: 'EINVAL' });
  const file = path.resolve(input.file);
  const { core, regions, kernel, note, vmcoreinfo } = readCoreForImport(file);
  const textSha256 = await fileSha256(file);
  const digestFile = input.digestFile ? path.resolve(input.digestFile) : fs.existsSync(`${file}.digest`) ? `${file}.digest` : undefined;
  const board = digestFile ? readBoardDigest(digestFile) : undefined;
  if (board) checkBoardDigest(board, file, fs.statSync(file).size, textSha256);
  const armed = armedOf(file, note);
  const stamp = armed ? checkArmedStamp(file, armed) : undefined;
  const profile: Profile = {
    name,
    description: `imported from ${file}`,
    enabled: true,
    regions: [],
    triggers: [],
    destination: destinationKind(input.store.kind).specOf(input.store),
    output: { format: 'elf' },
    hash: { algorithm: 'sha256', chunkSize: input.chunkSize ?? DEFAULT_CHUNK, readback: 'never' },
    ...(input.signingKey ? { signingKey: input.signingKey } : {}),
    source: { kind: 'image', imagePath: file, imageBase: 0n },
    cooldownMs: 0,
    priority: 0,
    labels: {},
    file,
    // The file as imported: the board's original can be matched later.
    textSha256,
  };
  const plan = planOf(profile, regions, 'image', { target: core.target, id: o.id, kernel });
  const from = {
    file,
    ...(note ? { note } : {}),
    // What the board's own digest said and what made it: null when it sent none.
    boardDigest: board
      ? { file: board.file, sha256: board.sha256, bytes: board.bytes, driver: board.driver, via: board.via, fallback: board.fallback, matched: true }
      : null,
    ...(stamp ? { stamp: { armId: stamp.armId.toString(), bytesWritten: stamp.bytesWritten, timeRealNs: stamp.timeRealNs.toString() } } : {}),
  };
  return runCapture(
    { profile, events: [{ id: eventId(), kind: 'import', profile: name, time: Date.now(), reason: `imported from ${file}`, detail: from }] },
    { ...o, store: input.store, plan, vmcoreinfo, note: { importedFrom: from } },
  );
}
