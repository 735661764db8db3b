// SPDX-License-Identifier: GPL-2.0
/*
 * Physical range checks and classification against the iomem resource tree.
 *
 * A range is split into segments of memory (System RAM, or memory the
 * firmware reserved: crash logs, trace buffers, ACPI tables) and device
 * memory (PCI BARs, ROMs, APICs).  Bytes covered by no resource at all are
 * refused: there is nothing there to capture.
 */
#include <linux/ioport.h>
#include <linux/slab.h>
#include <linux/mm.h>

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

static bool physcap_desc_is_memory(const struct resource *res)
{
	if ((res->flags & IORESOURCE_SYSTEM_RAM) == IORESOURCE_SYSTEM_RAM)
		return true;

	switch (res->desc) {
	case IORES_DESC_RESERVED:
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
