/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every difference between the kernels physcap builds against lives here,
 * so the rest of the module reads as plain current-kernel code.
 */
#ifndef _PHYSCAP_COMPAT_H
#define _PHYSCAP_COMPAT_H

#include <linux/version.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/uio.h>

/* ITER_SOURCE/ITER_DEST replaced WRITE/READ as iov_iter directions. */
#ifndef ITER_SOURCE
#define ITER_SOURCE WRITE
#endif

/* vm_flags became read-only behind accessors in 6.3. */
static inline void physcap_vm_flags_clear(struct vm_area_struct *vma,
					  vm_flags_t flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_clear(vma, flags);
#else
	vma->vm_flags &= ~flags;
#endif
}

static inline void physcap_vm_flags_set(struct vm_area_struct *vma,
					vm_flags_t flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

/*
 * Before 6.7 the caller of vfs_iter_write() had to hold freeze protection
 * (as loop.c did); since then vfs_iter_write() takes it itself.
 */
static inline ssize_t physcap_vfs_iter_write(struct file *file,
					     struct iov_iter *iter, loff_t *pos)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 7, 0)
	ssize_t ret;

	file_start_write(file);
	ret = vfs_iter_write(file, iter, pos, 0);
	file_end_write(file);
	return ret;
#else
	return vfs_iter_write(file, iter, pos, 0);
#endif
}

/*
 * File offsets are physical addresses, unsigned and past ULONG_MAX on a
 * 32-bit kernel with 36-bit physical addresses: an open-time f_mode flag
 * until 6.12, a file_operations flag since.
 */
#ifdef FMODE_UNSIGNED_OFFSET
#define PHYSCAP_FOP_UNSIGNED_OFFSET
static inline void physcap_file_unsigned_offset(struct file *file)
{
	file->f_mode |= FMODE_UNSIGNED_OFFSET;
}
#else
#define PHYSCAP_FOP_UNSIGNED_OFFSET	.fop_flags = FOP_UNSIGNED_OFFSET,
static inline void physcap_file_unsigned_offset(struct file *file)
{
}
#endif

#endif /* _PHYSCAP_COMPAT_H */
