/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ELF core container physcap-client writes on a board without Node:
 * the same layout as the agent's (agent/src/container/elf.ts), so the
 * host's physcap reads both the same way.
 *
 *   ELF64 ET_CORE, in this machine's own byte order and e_machine
 *   PT_NOTE     "PHYSCAP" (JSON: tool, regions) and, when the kernel
 *               exports it, "VMCOREINFO" (crash/makedumpfile's key)
 *   PT_LOAD     the kernel image's second mapping, if any (an alias: it
 *               points at bytes a region already holds, as /proc/vmcore's
 *               kernel-text segment does)
 *   PT_LOAD...  one per region, p_paddr = its physical start, p_vaddr =
 *               where the kernel's direct map has it (0: not mapped there),
 *               p_offset a multiple of the alignment (direct I/O)
 *   p_align 0 on every PT_LOAD, as in /proc/vmcore: crash types a core
 *   whose first PT_LOAD has p_align != 0 as netdump and then ignores
 *   KASLR.
 *
 * The structures are written natively (<elf.h>): on a big-endian board
 * every field is big-endian and e_ident says ELFDATA2MSB, as a reader of a
 * core from that board expects.
 */
#ifndef PHYSCAP_ELFCORE_H
#define PHYSCAP_ELFCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct core_region {
	const char *name;
	uint64_t phys;
	uint64_t len;
	uint64_t vaddr;		/* direct-map address, or 0 */
	uint64_t offset;	/* set by core_layout(): where its bytes go */
};

/* A second virtual address for bytes a region holds (the kernel image). */
struct core_alias {
	uint64_t vaddr;
	uint64_t phys;
	uint64_t len;
};

struct core_note {
	const char *name;	/* "PHYSCAP", "VMCOREINFO" */
	uint32_t type;
	const void *desc;
	size_t desc_len;
};

#define NOTE_TYPE_PHYSCAP	0x50430001u	/* "PC" 1: the agent's value */
#define NOTE_TYPE_VMCOREINFO	0u

/* This machine's byte order, so the core's: ELFDATA2MSB or ELFDATA2LSB. */
unsigned int core_data(void);

/* This machine's e_machine; 0 (EM_NONE) where physcap knows none. */
unsigned int core_machine(void);

/*
 * Lays out the container: fills buf (of cap bytes, zeroed here) with the
 * ELF header, the program headers and the notes, padded to a multiple of
 * align; sets each region's offset.  alias may be NULL; it gets a PT_LOAD
 * only if one region holds all its bytes (*alias_placed says whether).
 * Returns the header's length, or 0 if it does not fit in cap or align is
 * not a power of two >= 512.  *file_size is the last region's end rounded
 * up to align.
 */
size_t core_layout(void *buf, size_t cap, struct core_region *regions,
		   unsigned int nr, const struct core_alias *alias,
		   bool *alias_placed, const struct core_note *notes,
		   unsigned int nr_notes, size_t align, uint64_t *file_size);

/*
 * Reads a core this machine wrote (ELF64 ET_CORE in its own byte order)
 * from its first len bytes: *end is where its last segment ends, and
 * *note and *note_len the PHYSCAP note's desc (NULL if none).  Returns 0, or
 * a static text saying why buf holds no such core.
 */
const char *core_parse(const void *buf, size_t len, uint64_t *end,
		       const char **note, size_t *note_len);

#endif
