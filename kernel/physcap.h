/* SPDX-License-Identifier: GPL-2.0 */
/* Internal interfaces between the parts of physcap.ko. */
#ifndef _PHYSCAP_H
#define _PHYSCAP_H

#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/ktime.h>
#include <linux/poll.h>
#include <linux/types.h>

#include "physcap_uapi.h"

#define PHYSCAP_VERSION		"0.1.0"

/* bio_vecs in one batch; contiguous pages share one multi-page bio_vec. */
#define PHYSCAP_BATCH_PAGES	1024
/*
 * Bytes per vfs_iter_write() call adapt to the destination: batches grow
 * while the disk finishes them fast (more requests in flight, fewer waits)
 * and shrink when it is slow, so a signal is noticed within about
 * PHYSCAP_BATCH_SLOW_MS whatever the disk.
 */
#define PHYSCAP_BATCH_MIN	(1U << 20)
#define PHYSCAP_BATCH_START	(4U << 20)
#define PHYSCAP_BATCH_MAX	(64U << 20)
#define PHYSCAP_BATCH_FAST_MS	25
#define PHYSCAP_BATCH_SLOW_MS	100
/* Bounce pages, allocated only when a range has no struct pages. */
#define PHYSCAP_BOUNCE_PAGES	256

/* ---- physical ranges (physcap_range.c) ---- */

enum physcap_seg_kind {
	PHYSCAP_SEG_MEMORY,	/* System RAM or firmware-reserved memory */
	PHYSCAP_SEG_MMIO,	/* device memory: reads may have side effects */
};

struct physcap_seg {
	u64 start;
	u64 end;		/* inclusive */
	enum physcap_seg_kind kind;
};

struct physcap_range {
	struct physcap_seg *segs;
	unsigned int nr;
	bool has_mmio;
};

u64 physcap_phys_limit(void);
int physcap_range_check(u64 phys, u64 len);
int physcap_range_classify(u64 phys, u64 len, struct physcap_range *range);
void physcap_range_free(struct physcap_range *range);

/* ---- struct pages for reserved memory (physcap_adopt.c) ---- */

bool physcap_adopt_enabled(void);
void physcap_adopt_segment(const struct physcap_seg *seg);
void physcap_adopt_release_all(void);

/* ---- destinations (physcap_dest.c) ---- */

struct physcap_dest {
	struct file *file;
	bool is_blockdev;
	u32 mem_align;		/* direct-I/O memory alignment */
	u32 offset_align;	/* direct-I/O offset and length alignment */
	loff_t limit;		/* device size, or the filesystem's max bytes */
};

int physcap_dest_get(int fd, struct physcap_dest *dest);
void physcap_dest_put(struct physcap_dest *dest);
int physcap_dest_check_span(const struct physcap_dest *dest, u64 phys,
			    u64 len, u64 offset);

/* ---- the write path (physcap_write.c) ---- */

/*
 * One write in progress: everything it needs is set up by the caller, so
 * an armed capture allocates nothing when it fires.
 */
struct physcap_writer {
	struct physcap_write *req;	/* flags and phys_addr in; counters out */
	struct physcap_dest *dest;
	struct bio_vec *bvec;		/* PHYSCAP_BATCH_PAGES entries */
	struct page **bounce;		/* allocated on first use, if allowed */
	unsigned int nr_bounce;
	loff_t pos;			/* next destination offset */
	size_t batch_bytes;		/* adapted to the destination's speed */
	const atomic_t *stop;		/* non-zero: stop between batches */
	ktime_t first_submit;		/* first vfs_iter_write(), 0 before */
};

int physcap_write(struct physcap_write *req);
int physcap_writer_run(struct physcap_writer *w,
		       const struct physcap_range *range);
void physcap_writer_release(struct physcap_writer *w);
void physcap_write_account(const struct physcap_write *req, int ret);

/* ---- events (physcap_events.c): a ring read through read(2) ---- */

void physcap_event_post(struct physcap_event *ev);	/* any context */
u64 physcap_event_oldest(void);
ssize_t physcap_event_read(u64 *pos, char __user *buf, size_t count,
			   bool nonblock);
__poll_t physcap_event_poll(struct file *file, u64 pos, poll_table *wait);

/* ---- armed captures (physcap_arm.c) ---- */

/* Per open /dev/physcap: its event position and the arms it made. */
struct physcap_client {
	u64 event_pos;			/* next seq to read */
};

int physcap_arm_init(void);
void physcap_arm_exit(void);
long physcap_ioctl_arm(struct physcap_client *client, void __user *arg);
long physcap_ioctl_disarm(struct physcap_client *client, void __user *arg);
long physcap_ioctl_arm_status(void __user *arg);
void physcap_arm_release_client(struct physcap_client *client);
/* From the pretimeout governor: hard-irq context, a spinlock held. */
void physcap_arm_fire(u32 watchdog_id);

/* ---- the pretimeout governor (physcap_governor.c) ---- */

int physcap_governor_register(void);
void physcap_governor_unregister(void);
bool physcap_governor_registered(void);

/* ---- read-only mapping (physcap_mmap.c) ---- */

int physcap_mmap(struct file *file, struct vm_area_struct *vma);

/* ---- counters (physcap_main.c), shown under /sys/class/misc/physcap/ ---- */

struct physcap_stats {
	atomic64_t bytes_zero_copy;
	atomic64_t bytes_bounced;
	atomic64_t bytes_poisoned;
	atomic64_t bytes_buffered;
	atomic64_t bytes_adopted;	/* reserved memory given struct pages */
	atomic64_t writes_done;
	atomic64_t writes_failed;
	atomic64_t writes_interrupted;
};

extern struct physcap_stats physcap_stats;

#endif /* _PHYSCAP_H */
