/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * physcap ioctl ABI, shared by the kernel module, the native addon and the
 * C client.  Every field is fixed-width; every struct is padded explicitly
 * and its size is asserted on both sides.  Reserved fields must be zero on
 * input: that is what lets a later ABI give them a meaning.
 */
#ifndef _UAPI_PHYSCAP_H
#define _UAPI_PHYSCAP_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define PHYSCAP_DEVICE_NAME	"physcap"
#define PHYSCAP_ABI_VERSION	1

/* Feature bits reported by PHYSCAP_IOC_INFO. */
#define PHYSCAP_FEAT_ZERO_COPY		(1ULL << 0) /* pages handed to the destination */
#define PHYSCAP_FEAT_BOUNCE		(1ULL << 1) /* ranges without struct pages */
#define PHYSCAP_FEAT_MMIO		(1ULL << 2) /* device ranges on request */
#define PHYSCAP_FEAT_MMAP		(1ULL << 3) /* read-only mmap of memory */
#define PHYSCAP_FEAT_HWPOISON		(1ULL << 4) /* poisoned pages written as zeros */
#define PHYSCAP_FEAT_BLOCKDEV		(1ULL << 5) /* raw block devices as destinations */
#define PHYSCAP_FEAT_ADOPT		(1ULL << 6) /* reserved memory given struct pages */

struct physcap_info {
	__u32 abi_version;	/* PHYSCAP_ABI_VERSION */
	__u32 page_size;
	__u64 features;		/* PHYSCAP_FEAT_* */
	__u64 max_length;	/* largest length one WRITE accepts */
	__u64 phys_limit;	/* highest physical address + 1 */
	__u32 batch_pages;	/* pages handed to one vfs_iter_write() */
	__u32 pad;		/* zero */
	__u64 reserved[4];	/* zero */
};

/* WRITE flags. */
#define PHYSCAP_WRITE_ALLOW_MMIO	(1U << 0) /* read device ranges (side effects!) */
#define PHYSCAP_WRITE_NO_BOUNCE		(1U << 1) /* fail rather than copy any byte */
#define PHYSCAP_WRITE_FLAGS_ALL		(PHYSCAP_WRITE_ALLOW_MMIO | \
					 PHYSCAP_WRITE_NO_BOUNCE)

/*
 * Write [phys_addr, phys_addr + length) to dest_fd at dest_offset.
 * dest_fd must be a regular file or a block device opened for writing with
 * O_DIRECT; phys_addr, length and dest_offset must meet its direct-I/O
 * alignment.  On return (also with -EINTR) the out fields tell what was
 * done: bytes_written is contiguous from dest_offset.
 */
struct physcap_write {
	/* in */
	__u64 phys_addr;
	__u64 length;
	__u64 dest_offset;
	__s32 dest_fd;
	__u32 flags;		/* PHYSCAP_WRITE_* */
	/* out */
	__u64 bytes_written;
	__u64 bytes_zero_copy;	/* written straight from the pages */
	__u64 bytes_bounced;	/* copied by the CPU into bounce pages first */
	__u64 bytes_poisoned;	/* hardware-poisoned pages, written as zeros */
	__u64 bytes_buffered;	/* the filesystem fell back to its page cache */
	__u64 reserved[3];	/* zero */
};

#define PHYSCAP_IOC_MAGIC	0xB7
#define PHYSCAP_IOC_INFO	_IOR(PHYSCAP_IOC_MAGIC, 0x00, struct physcap_info)
#define PHYSCAP_IOC_WRITE	_IOWR(PHYSCAP_IOC_MAGIC, 0x01, struct physcap_write)

#define PHYSCAP_INFO_SIZE	72
#define PHYSCAP_WRITE_SIZE	96

#endif /* _UAPI_PHYSCAP_H */
