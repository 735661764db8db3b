// SPDX-License-Identifier: GPL-2.0
/*
 * Read-only mapping of physical memory, for CPU reads such as hashing what
 * the write path hands to the device.  The file offset is the physical
 * address.  Only memory is mapped, cacheable as RAM is: device ranges are
 * refused because a stray read there can have side effects.
 */
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/mm.h>

#include "physcap.h"
#include "physcap_compat.h"

int physcap_mmap(struct file *file, struct vm_area_struct *vma)
{
	u64 phys = (u64)vma->vm_pgoff << PAGE_SHIFT;
	u64 len = vma->vm_end - vma->vm_start;
	struct physcap_range range;
	bool mmio;
	int ret;

	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;
	if (vma->vm_flags & (VM_WRITE | VM_EXEC))
		return -EACCES;
	if ((phys >> PAGE_SHIFT) != vma->vm_pgoff)
		return -EINVAL;		/* pgoff overflowed the shift */

	ret = physcap_range_check(phys, len);
	if (ret)
		return ret;
	ret = physcap_range_classify(phys, len, &range);
	if (ret)
		return ret;
	mmio = range.has_mmio;
	physcap_range_free(&range);
	if (mmio)
		return -EACCES;

	physcap_vm_flags_clear(vma, VM_MAYWRITE | VM_MAYEXEC);
	physcap_vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	return remap_pfn_range(vma, vma->vm_start, vma->vm_pgoff, len,
			       vma->vm_page_prot);
}
