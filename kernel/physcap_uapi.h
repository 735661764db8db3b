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
#define PHYSCAP_ABI_VERSION	4	/* 2: ARM, DISARM, ARM_STATUS, events; 3: KERNEL_MAP; 4: ARM_STAMP */

/* Feature bits reported by PHYSCAP_IOC_INFO. */
#define PHYSCAP_FEAT_ZERO_COPY		(1ULL << 0) /* pages handed to the destination */
#define PHYSCAP_FEAT_BOUNCE		(1ULL << 1) /* ranges without struct pages */
#define PHYSCAP_FEAT_MMIO		(1ULL << 2) /* device ranges on request */
#define PHYSCAP_FEAT_MMAP		(1ULL << 3) /* read-only mmap of memory */
#define PHYSCAP_FEAT_HWPOISON		(1ULL << 4) /* poisoned pages written as zeros */
#define PHYSCAP_FEAT_BLOCKDEV		(1ULL << 5) /* raw block devices as destinations */
#define PHYSCAP_FEAT_ADOPT		(1ULL << 6) /* reserved memory given struct pages */
#define PHYSCAP_FEAT_ARM		(1ULL << 7) /* ARM, DISARM, ARM_STATUS, read(2) events */
#define PHYSCAP_FEAT_PRETIMEOUT_GOV	(1ULL << 8) /* the "physcap" watchdog pretimeout governor is registered */
#define PHYSCAP_FEAT_KERNEL_MAP		(1ULL << 9) /* KERNEL_MAP: where the kernel maps memory */
#define PHYSCAP_FEAT_ARM_STAMP		(1ULL << 10) /* ARM_STAMP: an armed capture's record on its destination */

struct physcap_info {
	__u32 abi_version;	/* PHYSCAP_ABI_VERSION */
	__u32 page_size;
	__u64 features;		/* PHYSCAP_FEAT_* */
	__u64 max_length;	/* largest length one WRITE accepts */
	__u64 phys_limit;	/* highest physical address + 1 (or ~0: all of 64 bits) */
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

/*
 * Armed captures (ABI 2).  An arm names up to PHYSCAP_ARM_MAX_RANGES
 * physical ranges, a destination opened, validated and held at arm time,
 * and a watchdog (N of /sys/class/watchdog/watchdogN).  When that
 * watchdog's pretimeout fires and its pretimeout_governor is "physcap",
 * the module writes the ranges itself, zero-copy, with no help from user
 * space.  An arm fires once; it lives until DISARM, until the
 * /dev/physcap descriptor that made it is closed, or until unload.
 */
#define PHYSCAP_ARM_MAX_RANGES		16
#define PHYSCAP_ARM_MAX_PER_WATCHDOG	8
#define PHYSCAP_ARM_MAX_WATCHDOG_ID	31	/* the watchdog core's MAX_DOGS - 1 */

/* ARM flags. */
#define PHYSCAP_ARM_THEN_PANIC		(1U << 0) /* panic() after the capture, so kdump runs */
#define PHYSCAP_ARM_STAMP		(1U << 1) /* write a stamp at stamp_offset (ABI 4) */
#define PHYSCAP_ARM_FLAGS_ALL		(PHYSCAP_ARM_THEN_PANIC | \
					 PHYSCAP_ARM_STAMP)

struct physcap_arm_range {
	__u64 phys_addr;
	__u64 length;
	__u64 dest_offset;
};

struct physcap_arm {
	/* in */
	__u32 size;		/* sizeof(struct physcap_arm) as the caller knows it */
	__u32 flags;		/* PHYSCAP_ARM_* */
	__s32 dest_fd;		/* O_DIRECT regular file or block device, open for writing */
	__u32 watchdog_id;	/* N of watchdogN */
	__u64 cookie;		/* the caller's, echoed in events and ARM_STATUS */
	/* out */
	__u64 arm_id;		/* never 0, never reused while the module is loaded */
	/* in */
	__u32 nr_ranges;	/* 1..PHYSCAP_ARM_MAX_RANGES */
	__u32 pad;		/* zero */
	struct physcap_arm_range ranges[PHYSCAP_ARM_MAX_RANGES];
	__u64 stamp_offset;	/* with PHYSCAP_ARM_STAMP, else zero */
	__u64 reserved[3];	/* zero */
};

/*
 * The stamp (ABI 4): with PHYSCAP_ARM_STAMP the module writes one block at
 * stamp_offset on the destination once the capture has ended, after the
 * ranges are synced, and syncs it: the capture's own record of how it
 * ended, on the disk it went to.  Events live in memory and are gone after
 * a reset; the stamp is how whoever reads the destination after a reboot
 * learns whether the kernel wrote the capture.  stamp_offset must meet the
 * destination's direct-I/O alignment and lie outside every range; the
 * block is PAGE_SIZE bytes, the stamp at its start and zeros after it.
 * Every field is little-endian, whatever the CPU, so a big-endian board's
 * disk reads the same anywhere.  `check` catches a torn or stale block
 * cheaply: PHYSCAP_STAMP_SEED plus the 14 little-endian 64-bit words
 * before it, modulo 2^64.  A stamp belongs to the arm whose cookie it
 * carries; whoever arms clears the block first.
 */
#define PHYSCAP_STAMP_MAGIC	"PHYSCAPS"
#define PHYSCAP_STAMP_VERSION	1
#define PHYSCAP_STAMP_SEED	0x9e3779b97f4a7c15ULL

struct physcap_arm_stamp {
	__u8 magic[8];		/* PHYSCAP_STAMP_MAGIC, no NUL */
	__le32 version;		/* PHYSCAP_STAMP_VERSION */
	__le32 size;		/* sizeof(struct physcap_arm_stamp) */
	__le64 cookie;		/* the arm's */
	__le64 arm_id;
	__le32 state;		/* PHYSCAP_ARM_STATE_DONE or _FAILED */
	__le32 error;		/* negative errno once FAILED, else 0 */
	__le32 watchdog_id;
	__le32 flags;		/* PHYSCAP_ARM_* as armed */
	__le64 bytes_written;
	__le64 bytes_zero_copy;
	__le64 bytes_bounced;
	__le64 bytes_total;
	__le64 first_byte_latency_ns;
	__le64 duration_ns;
	__le64 time_real_ns;	/* CLOCK_REALTIME when the capture ended */
	__le64 reserved;	/* zero */
	__le64 check;
};

/* ARM_STATUS states. */
#define PHYSCAP_ARM_STATE_ARMED		1 /* waiting for a pretimeout */
#define PHYSCAP_ARM_STATE_FIRING	2 /* queued or writing */
#define PHYSCAP_ARM_STATE_DONE		3 /* every byte written and synced */
#define PHYSCAP_ARM_STATE_FAILED	4 /* see error */

struct physcap_arm_status {
	/* in */
	__u64 arm_id;
	/* out */
	__u32 state;		/* PHYSCAP_ARM_STATE_* */
	__s32 error;		/* negative errno once FAILED, else 0 */
	__u64 bytes_written;	/* so far */
	__u64 bytes_total;	/* sum of the ranges' lengths */
	__u64 cookie;
	__u32 watchdog_id;
	__u32 flags;		/* PHYSCAP_ARM_* as armed */
	__u64 first_byte_latency_ns;	/* pretimeout -> first byte submitted */
	__u64 duration_ns;	/* first byte submitted -> last byte synced */
	__u64 reserved[4];	/* zero */
};

/*
 * Events: read(2) on /dev/physcap returns whole records, oldest first.
 * The module keeps the last PHYSCAP_EVENT_RING records; a new descriptor
 * starts at the oldest one still kept, and a reader that fell behind skips
 * to it (seq shows the gap).
 */
#define PHYSCAP_EVENT_VERSION		1
#define PHYSCAP_EVENT_RING		64

#define PHYSCAP_EVENT_PRETIMEOUT	1 /* a watchdog's pretimeout fired */
#define PHYSCAP_EVENT_CAPTURE_DONE	2 /* an armed capture finished */
#define PHYSCAP_EVENT_CAPTURE_FAILED	3 /* an armed capture stopped; see error */

struct physcap_event {
	__u32 size;		/* sizeof(struct physcap_event) */
	__u16 version;		/* PHYSCAP_EVENT_VERSION */
	__u16 type;		/* PHYSCAP_EVENT_* */
	__u32 watchdog_id;
	__s32 error;		/* negative errno for CAPTURE_FAILED */
	__u64 seq;		/* 1, 2, 3...: a gap means records were overwritten */
	__u64 time_real_ns;	/* CLOCK_REALTIME of the pretimeout or the completion */
	__u64 cookie;		/* the arm's (captures only) */
	__u64 arm_id;		/* captures only */
	__u64 bytes_written;
	__u64 bytes_zero_copy;
	__u64 bytes_bounced;
	__u64 first_byte_latency_ns;	/* pretimeout -> first byte submitted */
	__u64 duration_ns;	/* first byte submitted -> last byte synced */
	__u64 time_mono_ns;	/* CLOCK_MONOTONIC, same instant as time_real_ns */
	__u64 reserved[3];	/* zero */
};

/*
 * KERNEL_MAP (ABI 3): where the running kernel maps physical memory, which
 * the tools that read a dump by virtual address (crash, drgn, gdb,
 * makedumpfile) need in its program headers, and which user space cannot
 * learn: the direct map's base is randomized (x86-64 page_offset_base) and
 * is not in VMCOREINFO.  A physical address p in [direct_map_start,
 * direct_map_end) that is RAM is mapped at direct_map_virt + (p -
 * direct_map_start); a physical address p of the kernel image is mapped at
 * p + image_offset (mod 2^64).  Where the image lives in the direct map
 * (32-bit PowerPC), image_offset equals direct_map_virt -
 * direct_map_start.  The image's physical extent is /proc/iomem's "Kernel
 * code" ... "Kernel bss", as kexec-tools reads it.
 */
struct physcap_kernel_map {
	__u64 direct_map_virt;	/* virtual address of direct_map_start */
	__u64 direct_map_start;	/* first physical address of the direct map */
	__u64 direct_map_end;	/* physical end of the direct map (exclusive) */
	__u64 image_offset;	/* kernel image: virtual minus physical address */
	__u64 reserved[8];	/* zero */
};

#define PHYSCAP_IOC_MAGIC	0xB7
#define PHYSCAP_IOC_INFO	_IOR(PHYSCAP_IOC_MAGIC, 0x00, struct physcap_info)
#define PHYSCAP_IOC_WRITE	_IOWR(PHYSCAP_IOC_MAGIC, 0x01, struct physcap_write)
#define PHYSCAP_IOC_ARM		_IOWR(PHYSCAP_IOC_MAGIC, 0x02, struct physcap_arm)
#define PHYSCAP_IOC_DISARM	_IOW(PHYSCAP_IOC_MAGIC, 0x03, __u64)
#define PHYSCAP_IOC_ARM_STATUS	_IOWR(PHYSCAP_IOC_MAGIC, 0x04, struct physcap_arm_status)
#define PHYSCAP_IOC_KERNEL_MAP	_IOR(PHYSCAP_IOC_MAGIC, 0x05, struct physcap_kernel_map)

#define PHYSCAP_INFO_SIZE	72
#define PHYSCAP_WRITE_SIZE	96
#define PHYSCAP_ARM_RANGE_SIZE	24
#define PHYSCAP_ARM_SIZE	456
#define PHYSCAP_ARM_STATUS_SIZE	96
#define PHYSCAP_EVENT_SIZE	120
#define PHYSCAP_KERNEL_MAP_SIZE	96
#define PHYSCAP_ARM_STAMP_SIZE	120

#endif /* _UAPI_PHYSCAP_H */
