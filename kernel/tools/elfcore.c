// SPDX-License-Identifier: GPL-2.0
/* The ELF core container's header; see elfcore.h. */
#include <elf.h>
#include <string.h>

#include "elfcore.h"

/* The ELF spec's note alignment for 64-bit cores as Linux writes them. */
#define NOTE_ALIGN 4

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

static uint64_t round_up(uint64_t n, uint64_t to)
{
	return (n + to - 1) / to * to;
}

unsigned int core_data(void)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return ELFDATA2MSB;
#else
	return ELFDATA2LSB;
#endif
}

unsigned int core_machine(void)
{
#if defined(__x86_64__)
	return EM_X86_64;
#elif defined(__aarch64__)
	return EM_AARCH64;
#elif defined(__powerpc64__)
	return EM_PPC64;
#elif defined(__powerpc__)
	return EM_PPC;
#elif defined(__riscv) && __riscv_xlen == 64
	return EM_RISCV;
#elif defined(__s390x__)
	return EM_S390;
#else
	return EM_NONE;
#endif
}

static size_t note_bytes(const struct core_note *n)
{
	return sizeof(Elf64_Nhdr) + pad4(strlen(n->name) + 1) + pad4(n->desc_len);
}

/* The region that holds all of the alias's bytes, or -1. */
static int alias_region(const struct core_region *regions, unsigned int nr,
			const struct core_alias *alias)
{
	unsigned int i;

	if (!alias || !alias->len)
		return -1;
	for (i = 0; i < nr; i++)
		if (alias->phys >= regions[i].phys &&
		    alias->phys + alias->len <= regions[i].phys + regions[i].len)
			return (int)i;
	return -1;
}

size_t core_layout(void *buf, size_t cap, struct core_region *regions,
		   unsigned int nr, const struct core_alias *alias,
		   bool *alias_placed, const struct core_note *notes,
		   unsigned int nr_notes, size_t align, uint64_t *file_size)
{
	unsigned char *out = buf;
	int holder = alias_region(regions, nr, alias);
	size_t first_load = holder >= 0 ? 2 : 1;
	size_t phnum = first_load + (size_t)nr;
	size_t notes_off = sizeof(Elf64_Ehdr) + phnum * sizeof(Elf64_Phdr);
	size_t notes_len = 0, header_len, at;
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint64_t end;
	unsigned int i;

	if (align < 512 || (align & (align - 1)) || phnum >= PN_XNUM)
		return 0;
	for (i = 0; i < nr_notes; i++)
		notes_len += note_bytes(&notes[i]);
	header_len = round_up(notes_off + notes_len, align);
	if (header_len > cap)
		return 0;
	memset(out, 0, header_len);

	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = core_data();
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh.e_type = ET_CORE;
	eh.e_machine = core_machine();
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(Elf64_Ehdr);
	eh.e_ehsize = sizeof(Elf64_Ehdr);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = phnum;
	memcpy(out, &eh, sizeof(eh));

	memset(&ph, 0, sizeof(ph));
	ph.p_type = PT_NOTE;
	ph.p_offset = notes_off;
	ph.p_filesz = notes_len;
	ph.p_memsz = notes_len;
	ph.p_align = NOTE_ALIGN;
	memcpy(out + sizeof(eh), &ph, sizeof(ph));

	at = notes_off;
	for (i = 0; i < nr_notes; i++) {
		Elf64_Nhdr nh = {
			.n_namesz = strlen(notes[i].name) + 1,	/* counts the NUL */
			.n_descsz = notes[i].desc_len,
			.n_type = notes[i].type,
		};

		memcpy(out + at, &nh, sizeof(nh));
		memcpy(out + at + sizeof(nh), notes[i].name, nh.n_namesz - 1);
		memcpy(out + at + sizeof(nh) + pad4(nh.n_namesz), notes[i].desc,
		       notes[i].desc_len);
		at += note_bytes(&notes[i]);
	}

	end = header_len;
	for (i = 0; i < nr; i++) {
		regions[i].offset = round_up(end, align);
		memset(&ph, 0, sizeof(ph));
		ph.p_type = PT_LOAD;
		ph.p_flags = PF_R | PF_W | PF_X;
		ph.p_offset = regions[i].offset;
		/*
		 * p_vaddr 0 where the kernel does not map the range: the
		 * tools take the address from p_paddr, as for vmcore's
		 * physical segments.  p_align 0: see elfcore.h.
		 */
		ph.p_vaddr = regions[i].vaddr;
		ph.p_paddr = regions[i].phys;
		ph.p_filesz = regions[i].len;
		ph.p_memsz = regions[i].len;
		memcpy(out + sizeof(eh) + (first_load + i) * sizeof(ph), &ph, sizeof(ph));
		end = regions[i].offset + regions[i].len;
	}
	/* The alias first, as /proc/vmcore's kernel text. */
	if (holder >= 0) {
		memset(&ph, 0, sizeof(ph));
		ph.p_type = PT_LOAD;
		ph.p_flags = PF_R | PF_W | PF_X;
		ph.p_offset = regions[holder].offset + (alias->phys - regions[holder].phys);
		ph.p_vaddr = alias->vaddr;
		ph.p_paddr = alias->phys;
		ph.p_filesz = alias->len;
		ph.p_memsz = alias->len;
		memcpy(out + sizeof(eh) + sizeof(ph), &ph, sizeof(ph));
	}
	if (alias_placed)
		*alias_placed = holder >= 0;
	*file_size = round_up(end, align);
	return header_len;
}

const char *core_parse(const void *buf, size_t len, uint64_t *end,
		       const char **note, size_t *note_len)
{
	const unsigned char *in = buf;
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	Elf64_Nhdr nh;
	uint64_t at;
	unsigned int i;

	*end = 0;
	*note = NULL;
	*note_len = 0;
	if (len < sizeof(eh))
		return "shorter than an ELF header";
	memcpy(&eh, in, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_type != ET_CORE)
		return "not an ELF64 core";
	if (eh.e_ident[EI_DATA] != core_data())
		return "a core in the other byte order: digest it on its own kind of machine";
	if (eh.e_phentsize != sizeof(ph) || eh.e_phoff > len ||
	    (uint64_t)eh.e_phnum * sizeof(ph) > len - eh.e_phoff)
		return "program headers past the header block";
	for (i = 0; i < eh.e_phnum; i++) {
		memcpy(&ph, in + eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_offset + ph.p_filesz < ph.p_offset)
			return "a segment past 2^64";
		if (ph.p_offset + ph.p_filesz > *end)
			*end = ph.p_offset + ph.p_filesz;
		if (ph.p_type != PT_NOTE || ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			continue;
		for (at = ph.p_offset; at + sizeof(nh) <= ph.p_offset + ph.p_filesz;) {
			uint64_t desc;

			memcpy(&nh, in + at, sizeof(nh));
			desc = at + sizeof(nh) + pad4(nh.n_namesz);
			if (desc + nh.n_descsz > ph.p_offset + ph.p_filesz)
				return "a note past its segment";
			if (nh.n_type == NOTE_TYPE_PHYSCAP && nh.n_namesz == 8 &&
			    !memcmp(in + at + sizeof(nh), "PHYSCAP", 8)) {
				*note = (const char *)in + desc;
				*note_len = nh.n_descsz;
			}
			at = desc + pad4(nh.n_descsz);
		}
	}
	return NULL;
}
