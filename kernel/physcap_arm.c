// SPDX-License-Identifier: GPL-2.0
/*
 * Armed captures: ranges, a destination and a watchdog, validated and set
 * up at ARM time, written by the module itself when that watchdog's
 * pretimeout fires (physcap_governor.c).
 *
 * Everything a capture needs is allocated at ARM time: the destination is
 * opened and held (its file reference), the ranges are classified and
 * their reserved memory given struct pages, and the bio_vec array for the
 * batches is allocated.  At fire time the governor only flips states and
 * queues work under a spinlock; the worker then writes with the zero-copy
 * path, which allocates nothing beyond what the I/O itself does.
 *
 * Lifetime: an arm is on physcap_arms (one reference) from ARM until
 * DISARM, the close of the descriptor that made it, or unload; a queued or
 * running capture holds a second reference.  States move under
 * physcap_arm_lock: ARMED -> FIRING (governor) -> DONE or FAILED (worker).
 * DISARM of a FIRING arm is refused with EBUSY; closing the descriptor
 * while it fires lets the capture finish (the worker then drops the arm),
 * because the capture is what the coming reset needs.  Unload stops a
 * running capture between batches and waits for it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/bvec.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/math64.h>
#include <linux/mm.h>
#include <linux/panic.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/workqueue.h>

#include "physcap.h"
#include "physcap_compat.h"

struct physcap_arm_span {
	u64 phys_addr;
	u64 length;
	u64 dest_offset;
	struct physcap_range range;	/* classified at ARM time */
};

struct physcap_armed {
	struct list_head node;		/* on physcap_arms */
	struct kref ref;
	struct work_struct work;
	struct physcap_client *owner;	/* NULL: released while firing */

	u64 id;
	u64 cookie;
	u32 watchdog_id;
	u32 flags;			/* PHYSCAP_ARM_* */

	/* Under physcap_arm_lock. */
	u32 state;			/* PHYSCAP_ARM_STATE_* */
	int error;
	bool panic_after;		/* panic once this watchdog's captures end */
	ktime_t fired;
	u64 first_byte_latency_ns;
	u64 duration_ns;

	atomic_t stop;			/* unload: stop between batches */

	struct physcap_dest dest;
	struct inode *dest_inode;	/* f_mapping->host: file or block device */
	struct bio_vec *bvec;		/* PHYSCAP_BATCH_PAGES entries */
	struct physcap_write req;	/* flags and counters for the writer */
	u64 bytes_total;
	u64 dest_start, dest_end;	/* the spans' hull, for the final sync */
	struct page *stamp_page;	/* PHYSCAP_ARM_STAMP: the block written last */
	u64 stamp_offset;
	unsigned int nr_spans;
	struct physcap_arm_span spans[PHYSCAP_ARM_MAX_RANGES];
};

static LIST_HEAD(physcap_arms);
static DEFINE_SPINLOCK(physcap_arm_lock);	/* taken in hard-irq context */
static atomic64_t physcap_arm_next_id = ATOMIC64_INIT(0);
static struct workqueue_struct *physcap_arm_wq;

static_assert(sizeof(struct physcap_arm_range) == PHYSCAP_ARM_RANGE_SIZE);
static_assert(sizeof(struct physcap_arm) == PHYSCAP_ARM_SIZE);
static_assert(sizeof(struct physcap_arm_status) == PHYSCAP_ARM_STATUS_SIZE);
static_assert(sizeof(struct physcap_event) == PHYSCAP_EVENT_SIZE);
static_assert(sizeof(struct physcap_arm_stamp) == PHYSCAP_ARM_STAMP_SIZE);

static void physcap_arm_free(struct kref *ref)
{
	struct physcap_armed *arm = container_of(ref, struct physcap_armed, ref);
	unsigned int i;

	for (i = 0; i < arm->nr_spans; i++)
		physcap_range_free(&arm->spans[i].range);
	kvfree(arm->bvec);
	if (arm->stamp_page)
		__free_page(arm->stamp_page);
	physcap_dest_put(&arm->dest);
	kfree(arm);
}

static void physcap_arm_put(struct physcap_armed *arm)
{
	kref_put(&arm->ref, physcap_arm_free);
}

/* ---- fire time ---- */

/* Under physcap_arm_lock: is a capture for this watchdog still running? */
static bool physcap_arm_firing_locked(u32 watchdog_id)
{
	struct physcap_armed *arm;

	list_for_each_entry(arm, &physcap_arms, node)
		if (arm->watchdog_id == watchdog_id &&
		    arm->state == PHYSCAP_ARM_STATE_FIRING)
			return true;
	return false;
}

/*
 * The governor's pretimeout: hard-irq context, the watchdog core's
 * spinlock held.  Records the event, queues this watchdog's armed
 * captures, wakes readers.  No allocation, no sleeping lock.
 */
void physcap_arm_fire(u32 watchdog_id)
{
	struct physcap_event ev = {
		.type = PHYSCAP_EVENT_PRETIMEOUT,
		.watchdog_id = watchdog_id,
	};
	struct physcap_armed *arm;
	unsigned long flags;
	bool then_panic = false;
	ktime_t now;

	now = ktime_get();
	ev.time_mono_ns = ktime_to_ns(now);
	ev.time_real_ns = ktime_get_real_ns();
	/* Posted first, so it precedes its captures' records. */
	physcap_event_post(&ev);

	spin_lock_irqsave(&physcap_arm_lock, flags);
	list_for_each_entry(arm, &physcap_arms, node) {
		if (arm->watchdog_id != watchdog_id ||
		    arm->state != PHYSCAP_ARM_STATE_ARMED)
			continue;
		arm->state = PHYSCAP_ARM_STATE_FIRING;
		arm->fired = now;
		if (arm->flags & PHYSCAP_ARM_THEN_PANIC)
			then_panic = true;
		kref_get(&arm->ref);		/* the work's */
		queue_work(physcap_arm_wq, &arm->work);
	}
	/* Whichever of this watchdog's captures ends last panics. */
	if (then_panic)
		list_for_each_entry(arm, &physcap_arms, node)
			if (arm->watchdog_id == watchdog_id &&
			    arm->state == PHYSCAP_ARM_STATE_FIRING)
				arm->panic_after = true;
	spin_unlock_irqrestore(&physcap_arm_lock, flags);
}

static int physcap_arm_write(struct physcap_armed *arm,
			     struct physcap_writer *w)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; i < arm->nr_spans && !ret; i++) {
		struct physcap_arm_span *span = &arm->spans[i];

		arm->req.phys_addr = span->phys_addr;
		arm->req.length = span->length;
		w->pos = span->dest_offset;
		ret = physcap_writer_run(w, &span->range);
	}
	/*
	 * Make it durable before anything else happens (a panic, a reset):
	 * a preallocated file's extents are only written once the journal
	 * says so.
	 */
	if (!ret)
		ret = vfs_fsync_range(arm->dest.file, arm->dest_start,
				      arm->dest_end - 1, 1);
	return ret;
}

/*
 * The capture's own record of how it ended, on its destination, synced
 * after the ranges (uapi: struct physcap_arm_stamp): what a reader of the
 * disk learns after a reset, when the events are gone.
 */
static int physcap_arm_write_stamp(struct physcap_armed *arm, int result,
				   u64 time_real_ns)
{
	struct physcap_arm_stamp *st = page_address(arm->stamp_page);
	const __le64 *word = (const __le64 *)st;
	u64 sum = PHYSCAP_STAMP_SEED;
	loff_t pos = arm->stamp_offset;
	struct iov_iter iter;
	struct bio_vec bv;
	unsigned int i;
	ssize_t n;

	memset(st, 0, PAGE_SIZE);
	memcpy(st->magic, PHYSCAP_STAMP_MAGIC, sizeof(st->magic));
	st->version = cpu_to_le32(PHYSCAP_STAMP_VERSION);
	st->size = cpu_to_le32(sizeof(*st));
	st->cookie = cpu_to_le64(arm->cookie);
	st->arm_id = cpu_to_le64(arm->id);
	st->state = cpu_to_le32(result ? PHYSCAP_ARM_STATE_FAILED :
					 PHYSCAP_ARM_STATE_DONE);
	st->error = cpu_to_le32((u32)result);
	st->watchdog_id = cpu_to_le32(arm->watchdog_id);
	st->flags = cpu_to_le32(arm->flags);
	st->bytes_written = cpu_to_le64(arm->req.bytes_written);
	st->bytes_zero_copy = cpu_to_le64(arm->req.bytes_zero_copy);
	st->bytes_bounced = cpu_to_le64(arm->req.bytes_bounced);
	st->bytes_total = cpu_to_le64(arm->bytes_total);
	st->first_byte_latency_ns = cpu_to_le64(arm->first_byte_latency_ns);
	st->duration_ns = cpu_to_le64(arm->duration_ns);
	st->time_real_ns = cpu_to_le64(time_real_ns);
	for (i = 0; i < offsetof(struct physcap_arm_stamp, check) / 8; i++)
		sum += le64_to_cpu(word[i]);
	st->check = cpu_to_le64(sum);

	bv.bv_page = arm->stamp_page;
	bv.bv_len = PAGE_SIZE;
	bv.bv_offset = 0;
	iov_iter_bvec(&iter, ITER_SOURCE, &bv, 1, PAGE_SIZE);
	n = physcap_vfs_iter_write(arm->dest.file, &iter, &pos);
	if (n < 0)
		return n;
	if (n != PAGE_SIZE)
		return -EIO;
	return vfs_fsync_range(arm->dest.file, arm->stamp_offset,
			       arm->stamp_offset + PAGE_SIZE - 1, 1);
}

static void physcap_arm_work(struct work_struct *work)
{
	struct physcap_armed *arm = container_of(work, struct physcap_armed, work);
	struct physcap_writer w = {
		.req = &arm->req,
		.dest = &arm->dest,
		.bvec = arm->bvec,
		.batch_bytes = PHYSCAP_BATCH_START,
		.stop = &arm->stop,
	};
	struct physcap_event ev = {
		.watchdog_id = arm->watchdog_id,
		.cookie = arm->cookie,
		.arm_id = arm->id,
	};
	bool then_panic, detached;
	u64 latency_ns = 0, duration_ns = 0, real_ns;
	ktime_t end;
	int ret, stamp = 0;

	ret = physcap_arm_write(arm, &w);
	end = ktime_get();
	real_ns = ktime_get_real_ns();
	/* Never allocated: NO_BOUNCE is set. */
	physcap_writer_release(&w);
	physcap_write_account(&arm->req, ret);
	if (w.first_submit) {
		latency_ns = ktime_to_ns(ktime_sub(w.first_submit, arm->fired));
		duration_ns = ktime_to_ns(ktime_sub(end, w.first_submit));
	}

	spin_lock_irq(&physcap_arm_lock);
	arm->first_byte_latency_ns = latency_ns;
	arm->duration_ns = duration_ns;
	spin_unlock_irq(&physcap_arm_lock);

	/* Before anyone can learn it is done: the disk says so first. */
	if (arm->stamp_page) {
		stamp = physcap_arm_write_stamp(arm, ret, real_ns);
		if (stamp)
			pr_err("watchdog%u: armed capture %llu: its stamp at %llu was not written: %d\n",
			       arm->watchdog_id, arm->id, arm->stamp_offset, stamp);
	}

	spin_lock_irq(&physcap_arm_lock);
	arm->state = ret ? PHYSCAP_ARM_STATE_FAILED : PHYSCAP_ARM_STATE_DONE;
	arm->error = ret;
	then_panic = arm->panic_after &&
		!physcap_arm_firing_locked(arm->watchdog_id);
	detached = !arm->owner;
	if (detached)
		list_del_init(&arm->node);
	spin_unlock_irq(&physcap_arm_lock);

	ev.type = ret ? PHYSCAP_EVENT_CAPTURE_FAILED : PHYSCAP_EVENT_CAPTURE_DONE;
	ev.error = ret;
	ev.bytes_written = arm->req.bytes_written;
	ev.bytes_zero_copy = arm->req.bytes_zero_copy;
	ev.bytes_bounced = arm->req.bytes_bounced;
	ev.first_byte_latency_ns = arm->first_byte_latency_ns;
	ev.duration_ns = arm->duration_ns;
	ev.time_mono_ns = ktime_to_ns(end);
	ev.time_real_ns = real_ns;
	physcap_event_post(&ev);

	if (ret)
		pr_err("watchdog%u: armed capture %llu failed after %llu of %llu bytes: %d\n",
		       arm->watchdog_id, arm->id, arm->req.bytes_written,
		       arm->bytes_total, ret);
	else
		pr_info("watchdog%u: armed capture %llu done: %llu bytes (%llu zero-copy), first byte %llu us after the pretimeout, %llu us\n",
			arm->watchdog_id, arm->id, arm->req.bytes_written,
			arm->req.bytes_zero_copy,
			div_u64(arm->first_byte_latency_ns, NSEC_PER_USEC),
			div_u64(arm->duration_ns, NSEC_PER_USEC));

	if (then_panic)
		panic("physcap: watchdog%u pretimeout: armed capture %llu %s, panicking as asked",
		      arm->watchdog_id, arm->id, ret ? "failed" : "written");

	if (detached)
		physcap_arm_put(arm);		/* the list's */
	physcap_arm_put(arm);			/* the work's */
}

/* ---- ARM ---- */

static int physcap_arm_check(const struct physcap_arm *req)
{
	unsigned int i;

	if (req->size != sizeof(*req))
		return -EINVAL;
	if (req->flags & ~PHYSCAP_ARM_FLAGS_ALL)
		return -EINVAL;
	if (req->pad)
		return -EINVAL;
	if (req->stamp_offset && !(req->flags & PHYSCAP_ARM_STAMP))
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(req->reserved); i++)
		if (req->reserved[i])
			return -EINVAL;
	if (req->watchdog_id > PHYSCAP_ARM_MAX_WATCHDOG_ID)
		return -EINVAL;
	if (!req->nr_ranges || req->nr_ranges > PHYSCAP_ARM_MAX_RANGES)
		return -EINVAL;
	for (i = 0; i < req->nr_ranges; i++) {
		int ret = physcap_range_check(req->ranges[i].phys_addr,
					      req->ranges[i].length);
		if (ret)
			return ret;
	}
	return 0;
}

static bool physcap_spans_overlap(u64 a_off, u64 a_len, u64 b_off, u64 b_len)
{
	return a_off < b_off + b_len && b_off < a_off + a_len;
}

/*
 * Every page must have a struct page once adopted: an armed capture is
 * zero-copy or refused, because bouncing would allocate and copy at fire
 * time.
 */
static int physcap_arm_prepare_span(struct physcap_arm_span *span)
{
	unsigned int i;
	int ret;

	ret = physcap_range_classify(span->phys_addr, span->length,
				     &span->range);
	if (ret)
		return ret;		/* ENXIO: a hole */
	if (span->range.has_mmio)
		return -EACCES;		/* device memory: never armed */
	for (i = 0; i < span->range.nr; i++) {
		const struct physcap_seg *seg = &span->range.segs[i];
		unsigned long pfn;

		physcap_adopt_segment(seg);
		for (pfn = PHYS_PFN(seg->start); pfn <= PHYS_PFN(seg->end); pfn++) {
			if (!pfn_valid(pfn))
				return -EOPNOTSUPP;
			if (!(pfn & 1023))
				cond_resched();
		}
	}
	return 0;
}

/* Set up everything the capture will need, before it is published. */
static int physcap_arm_prepare(struct physcap_armed *arm,
			       const struct physcap_arm *req)
{
	unsigned int i, j;
	loff_t size;
	int ret;

	ret = physcap_dest_get(req->dest_fd, &arm->dest);
	if (ret)
		return ret;
	arm->dest_inode = arm->dest.file->f_mapping->host;
	size = arm->dest.is_blockdev ? arm->dest.limit :
	       i_size_read(file_inode(arm->dest.file));

	arm->dest_start = U64_MAX;
	for (i = 0; i < req->nr_ranges; i++) {
		const struct physcap_arm_range *r = &req->ranges[i];

		ret = physcap_dest_check_span(&arm->dest, r->phys_addr,
					      r->length, r->dest_offset);
		if (ret)
			return ret;
		/* Files are preallocated by the caller: no extension at fire time. */
		if (r->dest_offset + r->length > (u64)size)
			return arm->dest.is_blockdev ? -ENOSPC : -EFBIG;
		for (j = 0; j < i; j++)
			if (physcap_spans_overlap(r->dest_offset, r->length,
						  req->ranges[j].dest_offset,
						  req->ranges[j].length))
				return -EINVAL;
		arm->dest_start = min(arm->dest_start, r->dest_offset);
		arm->dest_end = max(arm->dest_end, r->dest_offset + r->length);
		arm->bytes_total += r->length;
	}

	if (req->flags & PHYSCAP_ARM_STAMP) {
		ret = physcap_dest_check_span(&arm->dest, 0, PAGE_SIZE,
					      req->stamp_offset);
		if (ret)
			return ret;
		if (req->stamp_offset + PAGE_SIZE > (u64)size)
			return arm->dest.is_blockdev ? -ENOSPC : -EFBIG;
		for (i = 0; i < req->nr_ranges; i++)
			if (physcap_spans_overlap(req->stamp_offset, PAGE_SIZE,
						  req->ranges[i].dest_offset,
						  req->ranges[i].length))
				return -EINVAL;
		arm->stamp_page = alloc_page(GFP_KERNEL);
		if (!arm->stamp_page)
			return -ENOMEM;
		arm->stamp_offset = req->stamp_offset;
	}

	for (i = 0; i < req->nr_ranges; i++) {
		struct physcap_arm_span *span = &arm->spans[i];

		span->phys_addr = req->ranges[i].phys_addr;
		span->length = req->ranges[i].length;
		span->dest_offset = req->ranges[i].dest_offset;
		arm->nr_spans = i + 1;	/* for physcap_arm_free() */
		ret = physcap_arm_prepare_span(span);
		if (ret)
			return ret;
	}

	arm->bvec = kvmalloc_array(PHYSCAP_BATCH_PAGES, sizeof(*arm->bvec),
				   GFP_KERNEL);
	if (!arm->bvec)
		return -ENOMEM;
	return 0;
}

/* Does a's stamp page fall on one of b's spans, or on b's stamp? */
static bool physcap_arm_stamp_hits(const struct physcap_armed *a,
				   const struct physcap_armed *b)
{
	unsigned int i;

	if (!a->stamp_page)
		return false;
	if (b->stamp_page &&
	    physcap_spans_overlap(a->stamp_offset, PAGE_SIZE,
				  b->stamp_offset, PAGE_SIZE))
		return true;
	for (i = 0; i < b->nr_spans; i++)
		if (physcap_spans_overlap(a->stamp_offset, PAGE_SIZE,
					  b->spans[i].dest_offset,
					  b->spans[i].length))
			return true;
	return false;
}

/* Under physcap_arm_lock: the limits and the overlap with other arms. */
static int physcap_arm_admit_locked(const struct physcap_armed *new)
{
	struct physcap_armed *arm;
	unsigned int count = 0, i, j;

	list_for_each_entry(arm, &physcap_arms, node) {
		if (arm->watchdog_id == new->watchdog_id &&
		    ++count >= PHYSCAP_ARM_MAX_PER_WATCHDOG)
			return -ENOSPC;
		if (arm->dest_inode != new->dest_inode)
			continue;
		if (physcap_arm_stamp_hits(arm, new) ||
		    physcap_arm_stamp_hits(new, arm))
			return -EBUSY;
		for (i = 0; i < arm->nr_spans; i++)
			for (j = 0; j < new->nr_spans; j++)
				if (physcap_spans_overlap(arm->spans[i].dest_offset,
							  arm->spans[i].length,
							  new->spans[j].dest_offset,
							  new->spans[j].length))
					return -EBUSY;
	}
	return 0;
}

long physcap_ioctl_arm(struct physcap_client *client, void __user *arg)
{
	struct physcap_arm __user *uarm = arg;
	struct physcap_armed *arm;
	struct physcap_arm *req;
	int ret;

	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;
	if (!physcap_governor_registered())
		return -EOPNOTSUPP;

	req = memdup_user(arg, sizeof(*req));
	if (IS_ERR(req))
		return PTR_ERR(req);
	ret = physcap_arm_check(req);
	if (ret)
		goto out_req;

	arm = kzalloc(sizeof(*arm), GFP_KERNEL);
	if (!arm) {
		ret = -ENOMEM;
		goto out_req;
	}
	kref_init(&arm->ref);
	INIT_LIST_HEAD(&arm->node);
	INIT_WORK(&arm->work, physcap_arm_work);
	arm->owner = client;
	arm->cookie = req->cookie;
	arm->watchdog_id = req->watchdog_id;
	arm->flags = req->flags;
	arm->state = PHYSCAP_ARM_STATE_ARMED;
	arm->req.flags = PHYSCAP_WRITE_NO_BOUNCE;

	ret = physcap_arm_prepare(arm, req);
	if (ret)
		goto out_arm;

	/* The caller learns the id before the arm can fire. */
	arm->id = atomic64_inc_return(&physcap_arm_next_id);
	if (put_user(arm->id, &uarm->arm_id)) {
		ret = -EFAULT;
		goto out_arm;
	}

	spin_lock_irq(&physcap_arm_lock);
	ret = physcap_arm_admit_locked(arm);
	if (!ret)
		list_add_tail(&arm->node, &physcap_arms);
	spin_unlock_irq(&physcap_arm_lock);
	if (ret)
		goto out_arm;

	pr_info("watchdog%u: capture %llu armed: %u range(s), %llu bytes%s\n",
		arm->watchdog_id, arm->id, arm->nr_spans, arm->bytes_total,
		(arm->flags & PHYSCAP_ARM_THEN_PANIC) ? ", then panic" : "");
	kfree(req);
	return 0;

out_arm:
	physcap_arm_put(arm);
out_req:
	kfree(req);
	return ret;
}

/* ---- DISARM, ARM_STATUS, release ---- */

static struct physcap_armed *physcap_arm_find_locked(u64 id)
{
	struct physcap_armed *arm;

	list_for_each_entry(arm, &physcap_arms, node)
		if (arm->id == id)
			return arm;
	return NULL;
}

long physcap_ioctl_disarm(struct physcap_client *client, void __user *arg)
{
	struct physcap_armed *arm;
	u64 id;
	int ret = 0;

	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;
	if (get_user(id, (u64 __user *)arg))
		return -EFAULT;

	spin_lock_irq(&physcap_arm_lock);
	arm = physcap_arm_find_locked(id);
	if (!arm)
		ret = -ENOENT;
	else if (arm->owner != client)
		ret = -EPERM;		/* another descriptor's arm: only its owner (or its close) undoes it */
	else if (arm->state == PHYSCAP_ARM_STATE_FIRING)
		ret = -EBUSY;		/* let it finish; DISARM again then */
	else
		list_del_init(&arm->node);
	spin_unlock_irq(&physcap_arm_lock);

	if (!ret)
		physcap_arm_put(arm);
	return ret;
}

long physcap_ioctl_arm_status(void __user *arg)
{
	struct physcap_arm_status st;
	struct physcap_armed *arm;
	u64 id;

	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;
	if (get_user(id, (u64 __user *)arg))
		return -EFAULT;

	memset(&st, 0, sizeof(st));
	spin_lock_irq(&physcap_arm_lock);
	arm = physcap_arm_find_locked(id);
	if (arm) {
		st.arm_id = arm->id;
		st.state = arm->state;
		st.error = arm->error;
		st.bytes_written = READ_ONCE(arm->req.bytes_written);
		st.bytes_total = arm->bytes_total;
		st.cookie = arm->cookie;
		st.watchdog_id = arm->watchdog_id;
		st.flags = arm->flags;
		st.first_byte_latency_ns = arm->first_byte_latency_ns;
		st.duration_ns = arm->duration_ns;
	}
	spin_unlock_irq(&physcap_arm_lock);

	if (!arm)
		return -ENOENT;
	if (copy_to_user(arg, &st, sizeof(st)))
		return -EFAULT;
	return 0;
}

/*
 * The descriptor that made these arms is closed: drop them, except those
 * firing right now, which finish and are dropped by their worker.
 */
void physcap_arm_release_client(struct physcap_client *client)
{
	struct physcap_armed *arm, *tmp;
	LIST_HEAD(dead);

	spin_lock_irq(&physcap_arm_lock);
	list_for_each_entry_safe(arm, tmp, &physcap_arms, node) {
		if (arm->owner != client)
			continue;
		arm->owner = NULL;
		if (arm->state != PHYSCAP_ARM_STATE_FIRING)
			list_move(&arm->node, &dead);
	}
	spin_unlock_irq(&physcap_arm_lock);

	list_for_each_entry_safe(arm, tmp, &dead, node) {
		list_del_init(&arm->node);
		physcap_arm_put(arm);
	}
}

/* ---- module load and unload ---- */

int physcap_arm_init(void)
{
	physcap_arm_wq = alloc_workqueue("physcap_arm",
					 WQ_HIGHPRI | WQ_UNBOUND | WQ_MEM_RECLAIM,
					 0);
	return physcap_arm_wq ? 0 : -ENOMEM;
}

/*
 * After the governor is gone (nothing fires any more) and every
 * descriptor is closed: stop what still runs, wait for it, drop the rest.
 */
void physcap_arm_exit(void)
{
	struct physcap_armed *arm, *tmp;
	LIST_HEAD(dead);

	spin_lock_irq(&physcap_arm_lock);
	list_for_each_entry(arm, &physcap_arms, node)
		atomic_set(&arm->stop, 1);
	spin_unlock_irq(&physcap_arm_lock);

	destroy_workqueue(physcap_arm_wq);	/* drains */

	spin_lock_irq(&physcap_arm_lock);
	list_splice_init(&physcap_arms, &dead);
	spin_unlock_irq(&physcap_arm_lock);
	list_for_each_entry_safe(arm, tmp, &dead, node) {
		list_del_init(&arm->node);
		physcap_arm_put(arm);
	}
}
