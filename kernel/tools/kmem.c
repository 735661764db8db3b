// SPDX-License-Identifier: GPL-2.0
/* Where the kernel maps a capture's ranges; see kmem.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../physcap_uapi.h"
#include "kmem.h"

/* /proc/iomem's top-level System RAM and the union of its Kernel code..bss. */
static void read_iomem_ram(struct kmem *km)
{
	FILE *f = fopen("/proc/iomem", "re");
	uint64_t img_end = 0;
	bool have_code = false;
	char line[256];

	km->nr_ram = 0;
	km->image_start = UINT64_MAX;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *name;
		uint64_t start, end;

		while (*p == ' ')
			p++;
		if (sscanf(p, "%" SCNx64 "-%" SCNx64, &start, &end) != 2)
			continue;
		name = strstr(p, " : ");
		if (!name)
			continue;
		name += 3;
		name[strcspn(name, "\n")] = 0;
		if (p == line && !strcmp(name, "System RAM") && km->nr_ram < 64) {
			km->ram[km->nr_ram].start = start;
			km->ram[km->nr_ram].end = end + 1;
			km->nr_ram++;
		} else if (!strcmp(name, "Kernel code") || !strcmp(name, "Kernel rodata") ||
			   !strcmp(name, "Kernel data") || !strcmp(name, "Kernel bss")) {
			have_code |= !strcmp(name, "Kernel code");
			if (start < km->image_start)
				km->image_start = start;
			if (end + 1 > img_end)
				img_end = end + 1;
		}
	}
	fclose(f);
	km->image_len = have_code ? img_end - km->image_start : 0;
}

bool kmem_read(int dev, struct kmem *km)
{
	struct physcap_kernel_map map;

	memset(km, 0, sizeof(*km));
	memset(&map, 0, sizeof(map));
	if (ioctl(dev, PHYSCAP_IOC_KERNEL_MAP, &map))
		return false;
	km->have_map = true;
	km->direct_map_virt = map.direct_map_virt;
	km->direct_map_start = map.direct_map_start;
	km->direct_map_end = map.direct_map_end;
	km->image_offset = map.image_offset;
	read_iomem_ram(km);
	return true;
}

static bool in_ram(const struct kmem *km, uint64_t start, uint64_t end)
{
	unsigned int i;

	for (i = 0; i < km->nr_ram; i++)
		if (start >= km->ram[i].start && end <= km->ram[i].end)
			return true;
	return false;
}

void kmem_set_vaddrs(const struct kmem *km, struct core_region *regions, unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++) {
		uint64_t start = regions[i].phys, end = start + regions[i].len;

		regions[i].vaddr = 0;
		if (!km->have_map || start < km->direct_map_start ||
		    end > km->direct_map_end || !in_ram(km, start, end))
			continue;
		regions[i].vaddr = km->direct_map_virt + (start - km->direct_map_start);
	}
}

bool kmem_image_alias(const struct kmem *km, struct core_alias *alias)
{
	/* 32-bit PowerPC: the image is in the direct map, nothing apart. */
	if (!km->have_map || !km->image_len ||
	    km->image_offset == km->direct_map_virt - km->direct_map_start)
		return false;
	alias->vaddr = km->image_start + km->image_offset;
	alias->phys = km->image_start;
	alias->len = km->image_len;
	return true;
}
