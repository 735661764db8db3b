// SPDX-License-Identifier: GPL-2.0
/*
 * Destinations: a regular file or a block device the caller opened for
 * writing with O_DIRECT.  Anything else is refused, because a write through
 * the page cache is a CPU copy and calling it zero-copy would be a lie.
 */
#include <linux/blkdev.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/stat.h>

#include "physcap.h"

static void physcap_dest_blockdev_align(struct physcap_dest *dest)
{
	struct block_device *bdev = I_BDEV(dest->file->f_mapping->host);

	dest->offset_align = bdev_logical_block_size(bdev);
	dest->mem_align = bdev_dma_alignment(bdev) + 1;
	dest->limit = bdev_nr_bytes(bdev);
}

/* Regular files: ask the filesystem (statx STATX_DIOALIGN, since 6.1). */
static int physcap_dest_file_align(struct physcap_dest *dest)
{
	struct inode *inode = file_inode(dest->file);
	struct kstat stat = {};
	int err;

	err = vfs_getattr(&dest->file->f_path, &stat, STATX_DIOALIGN,
			  AT_STATX_SYNC_AS_STAT);
	if (err)
		return err;

	if ((stat.result_mask & STATX_DIOALIGN) && stat.dio_offset_align) {
		dest->offset_align = stat.dio_offset_align;
		dest->mem_align = stat.dio_mem_align;
	} else {
		/* The filesystem does not say: assume the strictest sane. */
		dest->offset_align = PAGE_SIZE;
		dest->mem_align = PAGE_SIZE;
	}
	dest->limit = inode->i_sb->s_maxbytes;
	return 0;
}

int physcap_dest_get(int fd, struct physcap_dest *dest)
{
	struct file *file;
	umode_t mode;
	int err;

	memset(dest, 0, sizeof(*dest));
	file = fget(fd);
	if (!file)
		return -EBADF;

	mode = file_inode(file)->i_mode;
	if (S_ISDIR(mode)) {
		err = -EISDIR;
		goto err_put;
	}
	if (!S_ISREG(mode) && !S_ISBLK(mode)) {
		err = -EINVAL;		/* pipe, socket, character device */
		goto err_put;
	}
	if (!(file->f_mode & FMODE_WRITE)) {
		err = -EBADF;
		goto err_put;
	}
	if (!(file->f_flags & O_DIRECT) || (file->f_flags & O_APPEND)) {
		err = -EINVAL;
		goto err_put;
	}

	dest->file = file;
	dest->is_blockdev = S_ISBLK(mode);
	if (dest->is_blockdev) {
		physcap_dest_blockdev_align(dest);
	} else {
		err = physcap_dest_file_align(dest);
		if (err)
			goto err_put;
	}
	return 0;

err_put:
	fput(file);
	dest->file = NULL;
	return err;
}

void physcap_dest_put(struct physcap_dest *dest)
{
	if (dest->file)
		fput(dest->file);
	dest->file = NULL;
}

/*
 * Refuse what direct I/O would refuse or silently buffer: every bio_vec
 * we build starts at phys's page offset and ends on offset_align, so phys
 * must meet both alignments.
 */
int physcap_dest_check_span(const struct physcap_dest *dest, u64 phys,
			    u64 len, u64 offset)
{
	u32 align = max(dest->mem_align, dest->offset_align);

	if (!dest->offset_align || dest->offset_align > PAGE_SIZE)
		return -EINVAL;
	if ((phys & (align - 1)) || (len & (dest->offset_align - 1)) ||
	    (offset & (dest->offset_align - 1)))
		return -EINVAL;
	if (offset > (u64)LLONG_MAX || len > (u64)LLONG_MAX - offset)
		return -EINVAL;
	if (offset + len > (u64)dest->limit)
		return dest->is_blockdev ? -ENOSPC : -EFBIG;
	return 0;
}
