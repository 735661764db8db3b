/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where the running kernel maps the ranges a capture holds, for the ELF
 * core's program headers (the agent's agent/src/capture/kernel-memory.ts
 * does the same): the direct map and the kernel image's offset from
 * physcap.ko's KERNEL_MAP, which ranges are RAM and where the image lies
 * from /proc/iomem ("System RAM", "Kernel code" ... "Kernel bss").
 */
#ifndef PHYSCAP_KMEM_H
#define PHYSCAP_KMEM_H

#include <stdbool.h>
#include <stdint.h>

#include "elfcore.h"

struct kmem {
	bool have_map;		/* KERNEL_MAP answered (ABI 3) */
	uint64_t direct_map_virt, direct_map_start, direct_map_end;
	uint64_t image_offset;
	uint64_t image_start, image_len;	/* image_len 0: iomem names none */
	unsigned int nr_ram;
	struct { uint64_t start, end; } ram[64];	/* end exclusive */
};

/* Reads KERNEL_MAP through dev and /proc/iomem; false (errno set) if the module has no KERNEL_MAP. */
bool kmem_read(int dev, struct kmem *km);

/* Each region's direct-map address (0 if the kernel does not map all of it there). */
void kmem_set_vaddrs(const struct kmem *km, struct core_region *regions, unsigned int nr);

/* The kernel image's second mapping; false where it has none apart from the direct map. */
bool kmem_image_alias(const struct kmem *km, struct core_alias *alias);

#endif
