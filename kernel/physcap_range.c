// SPDX-License-Identifier: GPL-2.0
/*
 * Physical range checks and classification against the iomem resource tree.
 *
 * A range is split into segments of memory (System RAM, or RAM the kernel
 * keeps reserved: crash logs, trace buffers, ACPI tables) and device
 * memory (PCI BARs, ROMs, APICs, and "Reserved" ranges the firmware did not
 * report as RAM).  Bytes covered by no resource at all are refused: there
 * is nothing there to capture.
 */
#include <linux/ioport.h>
#include <linux/slab.h>
#include <linux/mm.h>
#ifdef CONFIG_X86
#include <asm/e820/api.h>
#endif

#include "physcap.h"

u64 physcap_phys_limit(void)
{
	/*
	 * iomem_resource spans the CPU's physical address space.  Where the
	 * architecture leaves it at its default, all of a 64-bit phys_addr_t
	 * (32-bit PowerPC with PHYS_64BIT), end + 1 would wrap to 0: the
	 * space then ends at the last address, and what lies where is the
	 * resource tree's business (a hole is refused with ENXIO).
	 */
	if ((u64)iomem_resource.end == U64_MAX)
		return U64_MAX;
	return (u64)iomem_resource.end + 1;
}

/* Arithmetic checks shared by WRITE and mmap. */
int physcap_range_check(u64 phys, u64 len)
{
	u64 limit = physcap_phys_limit();

	if (!len)
		return -EINVAL;
	if (phys + len < phys)		/* wraps */
		return -EINVAL;
	if (len > limit || phys > limit - len)
		return -EINVAL;		/* beyond the physical address space */
	return 0;
}

#ifdef CONFIG_X86
/*
 * The e820 types that are not RAM, as the firmware reported them: a range
 * the kernel lists as "Reserved" is RAM only if none of these covers any
 * of it in the firmware's own table (e820_table_firmware, untouched by
 * memmap=) and RAM does.
 */
static const enum e820_type physcap_e820_not_ram[] = {
	E820_TYPE_RESERVED, E820_TYPE_ACPI, E820_TYPE_NVS, E820_TYPE_UNUSABLE,
	E820_TYPE_PMEM, E820_TYPE_PRAM, E820_TYPE_SOFT_RESERVED,
};

static bool physcap_ram_backed(u64 start, u64 end)
{
	unsigned int i;

	if (!e820__mapped_raw_any(start, end + 1, E820_TYPE_RAM))
		return false;
	for (i = 0; i < ARRAY_SIZE(physcap_e820_not_ram); i++)
		if (e820__mapped_raw_any(start, end + 1, physcap_e820_not_ram[i]))
			return false;
	return true;
}
#else
/*
 * Device-tree platforms: reserved resources are carve-outs of the /memory
 * nodes (reserved-memory), which are RAM; device windows have their own
 * resources and are not "Reserved".
 */
static bool physcap_ram_backed(u64 start, u64 end)
{
	return true;
}
#endif

/*
 * What may be read as memory.  "Reserved" alone says nothing about what
 * is behind a range: RAM the kernel was told to leave alone (memmap=, a
 * crash-log carve-out), or a chipset's registers, the firmware flash and
 * empty address space, where a read can have side effects.  Those count
 * as device memory: refused without PHYSCAP_WRITE_ALLOW_MMIO, bounced
 * with it.
 */
static bool physcap_desc_is_memory(const struct resource *res)
{
	if ((res->flags & IORESOURCE_SYSTEM_RAM) == IORESOURCE_SYSTEM_RAM)
		return true;

	switch (res->desc) {
	case IORES_DESC_RESERVED:
		return physcap_ram_backed(res->start, res->end);
	case IORES_DESC_ACPI_TABLES:
	case IORES_DESC_ACPI_NV_STORAGE:
	case IORES_DESC_PERSISTENT_MEMORY:
	case IORES_DESC_PERSISTENT_MEMORY_LEGACY:
	case IORES_DESC_SOFT_RESERVED:
		return true;
	default:
		return false;
	}
}

struct physcap_walk {
	struct physcap_range *range;
	unsigned int cap;
	u64 next;		/* first byte not yet covered */
	int err;
};

static int physcap_walk_one(struct resource *res, void *arg)
{
	struct physcap_walk *w = arg;
	struct physcap_range *range = w->range;
	enum physcap_seg_kind kind;
	struct physcap_seg *last;

	if (res->start != w->next) {
		w->err = -ENXIO;	/* a hole: no memory, no device */
		return 1;
	}
	w->next = (u64)res->end + 1;

	kind = physcap_desc_is_memory(res) ? PHYSCAP_SEG_MEMORY :
					     PHYSCAP_SEG_MMIO;
	if (kind == PHYSCAP_SEG_MMIO)
		range->has_mmio = true;

	last = range->nr ? &range->segs[range->nr - 1] : NULL;
	if (last && last->kind == kind && last->end + 1 == res->start) {
		last->end = res->end;
		return 0;
	}

	if (range->nr == w->cap) {
		unsigned int cap = w->cap ? w->cap * 2 : 8;
		struct physcap_seg *segs;

		segs = krealloc_array(range->segs, cap, sizeof(*segs),
				      GFP_KERNEL);
		if (!segs) {
			w->err = -ENOMEM;
			return 1;
		}
		range->segs = segs;
		w->cap = cap;
	}
	range->segs[range->nr++] = (struct physcap_seg) {
		.start = res->start,
		.end = res->end,
		.kind = kind,
	};
	return 0;
}

/*
 * The walk visits each outermost IORESOURCE_MEM resource overlapping the
 * range once, clipped to it and in address order, so consecutive calls
 * must touch: any gap is a hole.
 */
int physcap_range_classify(u64 phys, u64 len, struct physcap_range *range)
{
	struct physcap_walk w = {
		.range = range,
		.next = phys,
	};
	u64 end = phys + len - 1;

	memset(range, 0, sizeof(*range));
	walk_iomem_res_desc(IORES_DESC_NONE, IORESOURCE_MEM, phys, end, &w,
			    physcap_walk_one);
	if (!w.err && w.next != end + 1)
		w.err = -ENXIO;
	if (w.err) {
		physcap_range_free(range);
		return w.err;
	}
	return 0;
}

void physcap_range_free(struct physcap_range *range)
{
	kfree(range->segs);
	range->segs = NULL;
	range->nr = 0;
}
