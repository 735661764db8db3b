// SPDX-License-Identifier: GPL-2.0
/*
 * Struct pages for reserved memory that has none.
 *
 * Memory the firmware or the command line reserved (memmap=nn$ss, a
 * board's crash-log region) is left out of the kernel's memory map
 * wherever it fills whole sparsemem sections, so it has no struct pages
 * there and cannot be described by a bio_vec.  Rather than copying it
 * through bounce pages, physcap gives such ranges ZONE_DEVICE struct pages
 * with memremap_pages(), as device-dax does for soft-reserved memory, and
 * then writes them zero-copy like any other memory.  The pages live until
 * the module is unloaded.  Only whole subsections (2 MiB on x86-64) that
 * lie in reserved memory and nowhere near System RAM are adopted; anything
 * else keeps using the bounce path.
 *
 * Kernels without ZONE_DEVICE (32-bit parts such as the PowerPC e500 with
 * FLATMEM) adopt nothing: there, all RAM the kernel knows has struct pages
 * (reserved ranges included), and what it does not know is bounced.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ioport.h>
#include <linux/list.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>

#include "physcap.h"

static bool adopt = true;
module_param(adopt, bool, 0444);
MODULE_PARM_DESC(adopt, "Give reserved memory without struct pages ZONE_DEVICE pages, so it is written zero-copy (default: on)");

bool physcap_adopt_enabled(void)
{
	return IS_ENABLED(CONFIG_ZONE_DEVICE) && adopt;
}

#ifdef CONFIG_ZONE_DEVICE

#define PHYSCAP_SUBSECTION	((u64)PAGES_PER_SUBSECTION << PAGE_SHIFT)

struct physcap_adopted {
	struct list_head node;
	struct dev_pagemap pgmap;
};

static LIST_HEAD(physcap_adopted_list);
static DEFINE_MUTEX(physcap_adopt_lock);

static int physcap_adopt_run(u64 start, u64 end)
{
	struct physcap_adopted *a;
	void *addr;

	if (region_intersects(start, end - start + 1, IORESOURCE_SYSTEM_RAM,
			      IORES_DESC_NONE) != REGION_DISJOINT)
		return -ENXIO;

	a = kzalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	a->pgmap.type = MEMORY_DEVICE_GENERIC;
	a->pgmap.range.start = start;
	a->pgmap.range.end = end;
	a->pgmap.nr_range = 1;

	addr = memremap_pages(&a->pgmap, NUMA_NO_NODE);
	if (IS_ERR(addr)) {
		kfree(a);
		return PTR_ERR(addr);
	}
	list_add(&a->node, &physcap_adopted_list);
	atomic64_add(end - start + 1, &physcap_stats.bytes_adopted);
	pr_info_ratelimited("reserved memory %#llx-%#llx now has struct pages\n",
			    start, end);
	return 0;
}

/*
 * Adopt the parts of a memory segment that lack struct pages.  Failure is
 * not an error for the caller: those parts are then bounced.
 */
void physcap_adopt_segment(const struct physcap_seg *seg)
{
	u64 pos = round_up(seg->start, PHYSCAP_SUBSECTION);
	u64 limit = round_down(seg->end + 1, PHYSCAP_SUBSECTION);

	if (!physcap_adopt_enabled() || seg->kind != PHYSCAP_SEG_MEMORY)
		return;

	mutex_lock(&physcap_adopt_lock);
	while (pos < limit) {
		u64 run;
		int ret;

		if (pfn_valid(PHYS_PFN(pos))) {
			pos += PHYSCAP_SUBSECTION;
			continue;
		}
		run = pos;
		while (pos < limit && !pfn_valid(PHYS_PFN(pos)))
			pos += PHYSCAP_SUBSECTION;
		ret = physcap_adopt_run(run, pos - 1);
		if (ret)
			pr_notice_ratelimited("cannot give %#llx-%#llx struct pages (%d); bouncing it\n",
					      run, pos - 1, ret);
	}
	mutex_unlock(&physcap_adopt_lock);
}

/* Module exit: no write can be running, every /dev/physcap is closed. */
void physcap_adopt_release_all(void)
{
	struct physcap_adopted *a, *tmp;

	mutex_lock(&physcap_adopt_lock);
	list_for_each_entry_safe(a, tmp, &physcap_adopted_list, node) {
		memunmap_pages(&a->pgmap);
		list_del(&a->node);
		kfree(a);
	}
	mutex_unlock(&physcap_adopt_lock);
}

#else /* !CONFIG_ZONE_DEVICE */

void physcap_adopt_segment(const struct physcap_seg *seg)
{
}

void physcap_adopt_release_all(void)
{
}

#endif
