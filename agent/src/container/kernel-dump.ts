/**
 * What an ELF core is to the post-mortem tools: a kernel dump (the
 * kernel's VMCOREINFO and memory the kernel maps, which crash, drgn, gdb
 * and makedumpfile can read by symbol) or a capture of physical ranges
 * only (reserved memory, device windows), which those tools cannot use.
 * `show` says which; `export --format kdump` refuses the second.
 */
import { ElfCore, NOTE_VMCOREINFO, PT_LOAD, splitLoads } from './elf';

export interface CoreContents {
  /** VMCOREINFO and at least one region the kernel maps. */
  kernelDump: boolean;
  /** VMCOREINFO's OSRELEASE, BUILD-ID and KERNELOFFSET, where present. */
  release?: string;
  buildId?: string;
  kernelOffset?: string;
  /** Bytes of regions the kernel maps (p_vaddr != 0). */
  mappedBytes: bigint;
  /** Bytes of regions it does not (p_vaddr 0). */
  physicalOnlyBytes: bigint;
  /** Alias segments (the kernel image's). */
  aliases: number;
}

/** KEY=value lines of a VMCOREINFO text. */
export function vmcoreinfoFields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

export function describeCore(core: ElfCore): CoreContents {
  const note = core.notes.find((n) => n.name === NOTE_VMCOREINFO.name && n.type === NOTE_VMCOREINFO.type);
  const info = note ? vmcoreinfoFields(note.desc.toString('utf8')) : new Map<string, string>();
  const { data, aliases } = splitLoads(core);
  const loads = data.filter((s) => s.type === PT_LOAD);
  const mappedBytes = loads.filter((s) => s.vaddr !== 0n).reduce((a, s) => a + s.filesz, 0n);
  const physicalOnlyBytes = loads.filter((s) => s.vaddr === 0n).reduce((a, s) => a + s.filesz, 0n);
  return {
    kernelDump: note !== undefined && mappedBytes > 0n,
    ...(info.has('OSRELEASE') ? { release: info.get('OSRELEASE') } : {}),
    ...(info.has('BUILD-ID') ? { buildId: info.get('BUILD-ID') } : {}),
    ...(info.has('KERNELOFFSET') ? { kernelOffset: info.get('KERNELOFFSET') } : {}),
    mappedBytes,
    physicalOnlyBytes,
    aliases: aliases.length,
  };
}
