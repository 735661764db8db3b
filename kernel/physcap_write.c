// SPDX-License-Identifier: GPL-2.0
/*
 * The zero-copy write path.
 *
 * For each batch of a range, the pages themselves are described by a
 * bio_vec array, wrapped in a source iov_iter and written with
 * vfs_iter_write() to an O_DIRECT file or block device at an explicit
 * offset, as drivers/block/loop.c does for its backing file.  The block
 * layer then DMAs straight from those pages: no copy_to_user, no memcpy, no
 * page cache.
 *
 * Ranges without struct pages (and device ranges, when asked for) cannot be
 * described by a bio_vec: they are copied into bounce pages first and
 * counted as bounced.  Hardware-poisoned pages are never handed to the
 * device; the zero page is written in their place and they are counted.
 *
 * The same writer serves the WRITE ioctl and armed captures
 * (physcap_arm.c).  It allocates nothing itself except bounce pages, and
 * armed captures never bounce (PHYSCAP_WRITE_NO_BOUNCE): their bio_vec
 * array, segments and destination are all set up at arm time.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bvec.h>
#include <linux/highmem.h>
#include <linux/io.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/uio.h>

#include "physcap.h"
#include "physcap_compat.h"

/* Bytes of [phys, seg_end] that lie in phys's page. */
static u64 physcap_chunk(u64 phys, u64 seg_end)
{
	u64 in_page = PAGE_SIZE - offset_in_page(phys);

	return min(in_page, seg_end - phys + 1);
}

/* May this page extend the previous bio_vec into a multi-page segment? */
static bool physcap_bvec_extends(const struct bio_vec *bv, struct page *page,
				 unsigned int offset)
{
	unsigned int end = bv->bv_offset + bv->bv_len;

	if (offset || offset_in_page(end))
		return false;
#ifdef CONFIG_SPARSEMEM
	/*
	 * Keep bio_vecs within a section: memory maps may differ across.
	 * (Without sparsemem there is one mem_map for all of RAM.)
	 */
	if (!(page_to_pfn(page) % PAGES_PER_SECTION))
		return false;
#endif
	return page_to_pfn(page) == page_to_pfn(bv->bv_page) + (end >> PAGE_SHIFT) &&
	       page == bv->bv_page + (end >> PAGE_SHIFT);
}

/*
 * Write the iterator at w->pos.  Direct I/O may complete short (a full
 * filesystem, say); the remainder is retried until it fails outright.
 */
static int physcap_write_iter(struct physcap_writer *w, struct bio_vec *bvec,
			      unsigned int nr, size_t bytes)
{
	struct address_space *mapping = w->dest->file->f_mapping;
	loff_t start = w->pos;
	size_t done = 0;

	while (done < bytes) {
		struct iov_iter iter;
		loff_t pos = w->pos;
		ssize_t ret;

		iov_iter_bvec(&iter, ITER_SOURCE, bvec, nr, bytes);
		iov_iter_advance(&iter, done);
		if (!w->first_submit)
			w->first_submit = ktime_get();
		ret = physcap_vfs_iter_write(w->dest->file, &iter, &pos);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return -EIO;
		done += ret;
		w->pos += ret;
		/* ARM_STATUS reads it while a capture runs. */
		WRITE_ONCE(w->req->bytes_written, w->req->bytes_written + ret);
	}

	/*
	 * Some filesystems quietly fall back to buffered writes for direct
	 * I/O they cannot do.  Pages now cached for the range mean the CPU
	 * copied it: report that instead of claiming zero-copy.
	 */
	if (filemap_range_has_page(mapping, start, start + bytes - 1))
		return 1;
	return 0;
}

/* Only full batches tell the disk's speed: a segment's tail may be tiny. */
static void physcap_batch_adapt(struct physcap_writer *w, size_t bytes,
				s64 ms)
{
	if (bytes < w->batch_bytes)
		return;
	if (ms < PHYSCAP_BATCH_FAST_MS && w->batch_bytes < PHYSCAP_BATCH_MAX)
		w->batch_bytes *= 2;
	else if (ms > PHYSCAP_BATCH_SLOW_MS && w->batch_bytes > PHYSCAP_BATCH_MIN)
		w->batch_bytes /= 2;
}

static int physcap_write_zero_copy(struct physcap_writer *w, u64 *phys,
				   u64 seg_end)
{
	struct physcap_write *req = w->req;
	ktime_t start;
	loff_t before;
	u64 poisoned = 0;
	size_t bytes = 0;
	unsigned int nr = 0;
	bool extendable = false;
	int ret;

	while (*phys <= seg_end && bytes < w->batch_bytes) {
		unsigned long pfn = PHYS_PFN(*phys);
		unsigned int offset = offset_in_page(*phys);
		u64 chunk = physcap_chunk(*phys, seg_end);
		struct page *page;
		bool poison;

		if (!pfn_valid(pfn))
			break;
		page = pfn_to_page(pfn);
		poison = PageHWPoison(page);
		if (poison) {
			page = ZERO_PAGE(0);
			poisoned += chunk;
		}

		if (extendable && !poison &&
		    physcap_bvec_extends(&w->bvec[nr - 1], page, offset)) {
			w->bvec[nr - 1].bv_len += chunk;
		} else {
			if (nr == PHYSCAP_BATCH_PAGES)
				break;
			w->bvec[nr++] = (struct bio_vec) {
				.bv_page = page,
				.bv_len = chunk,
				.bv_offset = offset,
			};
		}
		extendable = !poison;
		*phys += chunk;
		bytes += chunk;
	}

	start = ktime_get();
	before = w->pos;
	ret = physcap_write_iter(w, w->bvec, nr, bytes);
	if (ret < 0) {
		/* What reached the destination before the failure went zero-copy. */
		req->bytes_zero_copy += w->pos - before;
		return ret;
	}
	physcap_batch_adapt(w, bytes, ktime_ms_delta(ktime_get(), start));
	req->bytes_poisoned += poisoned;
	if (ret == 1)
		req->bytes_buffered += bytes - poisoned;
	else
		req->bytes_zero_copy += bytes - poisoned;
	return 0;
}

static int physcap_bounce_alloc(struct physcap_writer *w)
{
	unsigned int i;

	if (w->bounce)
		return 0;
	w->bounce = kcalloc(PHYSCAP_BOUNCE_PAGES, sizeof(*w->bounce),
			    GFP_KERNEL);
	if (!w->bounce)
		return -ENOMEM;
	for (i = 0; i < PHYSCAP_BOUNCE_PAGES; i++) {
		w->bounce[i] = alloc_page(GFP_KERNEL);
		if (!w->bounce[i])
			return -ENOMEM;	/* freed by physcap_bounce_free() */
		w->nr_bounce++;
	}
	return 0;
}

static void physcap_bounce_free(struct physcap_writer *w)
{
	unsigned int i;

	if (!w->bounce)
		return;
	for (i = 0; i < w->nr_bounce; i++)
		__free_page(w->bounce[i]);
	kfree(w->bounce);
}

/*
 * Copy [phys, phys + len) into the bounce pages.  Memory is read with a
 * machine-check-safe copy; what cannot be read is written as zeros and
 * counted as poisoned.  Device memory is read with MMIO accessors.
 */
static int physcap_bounce_fill(struct physcap_writer *w, u64 phys, size_t len,
			       bool mmio, u64 *poisoned)
{
	unsigned int head = offset_in_page(phys);
	size_t done = 0;
	void __iomem *io = NULL;
	void *mem = NULL;

	if (mmio)
		io = ioremap(phys, len);
	else
		mem = memremap(phys, len, MEMREMAP_WB);
	if (!io && !mem)
		return -ENOMEM;

	while (done < len) {
		unsigned int idx = (head + done) >> PAGE_SHIFT;
		unsigned int off = offset_in_page(head + done);
		size_t n = min_t(size_t, PAGE_SIZE - off, len - done);
		void *dst = kmap_local_page(w->bounce[idx]) + off;

		if (mmio) {
			memcpy_fromio(dst, io + done, n);
		} else {
			unsigned long left = copy_mc_to_kernel(dst, mem + done, n);

			if (left) {
				memset(dst + n - left, 0, left);
				*poisoned += left;
			}
		}
		kunmap_local(dst);
		done += n;
	}

	if (io)
		iounmap(io);
	else
		memunmap(mem);
	return 0;
}

static int physcap_write_bounced(struct physcap_writer *w, u64 *phys,
				 u64 seg_end, bool mmio)
{
	struct physcap_write *req = w->req;
	unsigned int head = offset_in_page(*phys);
	u64 start = *phys, poisoned = 0;
	loff_t before;
	size_t max = PHYSCAP_BOUNCE_PAGES * PAGE_SIZE - head;
	size_t bytes = 0;
	unsigned int nr = 0;
	int ret;

	if (req->flags & PHYSCAP_WRITE_NO_BOUNCE)
		return -EOPNOTSUPP;
	ret = physcap_bounce_alloc(w);
	if (ret)
		return ret;

	/* One run of pages that all need bouncing, contiguous in phys. */
	while (*phys <= seg_end && bytes < max) {
		u64 chunk = physcap_chunk(*phys, seg_end);

		if (!mmio && pfn_valid(PHYS_PFN(*phys)))
			break;
		w->bvec[nr] = (struct bio_vec) {
			.bv_page = w->bounce[nr],
			.bv_len = chunk,
			.bv_offset = offset_in_page(*phys),
		};
		nr++;
		*phys += chunk;
		bytes += chunk;
	}

	ret = physcap_bounce_fill(w, start, bytes, mmio, &poisoned);
	if (ret)
		return ret;
	before = w->pos;
	ret = physcap_write_iter(w, w->bvec, nr, bytes);
	if (ret < 0) {
		req->bytes_bounced += w->pos - before;
		return ret;
	}
	req->bytes_poisoned += poisoned;
	req->bytes_bounced += bytes - poisoned;
	return 0;
}

/* Segments arrive clipped to the requested range. */
static int physcap_write_segment(struct physcap_writer *w,
				 const struct physcap_seg *seg)
{
	u64 phys = seg->start, end = seg->end;
	int ret;

	while (phys <= end) {
		if (signal_pending(current))
			return -EINTR;
		if (w->stop && atomic_read(w->stop))
			return -ECANCELED;

		if (seg->kind == PHYSCAP_SEG_MEMORY && pfn_valid(PHYS_PFN(phys)))
			ret = physcap_write_zero_copy(w, &phys, end);
		else
			ret = physcap_write_bounced(w, &phys, end,
						    seg->kind == PHYSCAP_SEG_MMIO);
		if (ret)
			return ret;
		cond_resched();
	}
	return 0;
}

static int physcap_write_check(const struct physcap_write *req)
{
	unsigned int i;

	if (req->flags & ~PHYSCAP_WRITE_FLAGS_ALL)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(req->reserved); i++)
		if (req->reserved[i])
			return -EINVAL;
	return physcap_range_check(req->phys_addr, req->length);
}

void physcap_write_account(const struct physcap_write *req, int ret)
{
	atomic64_add(req->bytes_zero_copy, &physcap_stats.bytes_zero_copy);
	atomic64_add(req->bytes_bounced, &physcap_stats.bytes_bounced);
	atomic64_add(req->bytes_poisoned, &physcap_stats.bytes_poisoned);
	atomic64_add(req->bytes_buffered, &physcap_stats.bytes_buffered);
	if (!ret)
		atomic64_inc(&physcap_stats.writes_done);
	else if (ret == -EINTR)
		atomic64_inc(&physcap_stats.writes_interrupted);
	else
		atomic64_inc(&physcap_stats.writes_failed);
}

/*
 * Write a classified range from req->phys_addr to w->pos.  Allocates
 * nothing unless a segment needs bouncing and req->flags allows it.
 */
int physcap_writer_run(struct physcap_writer *w,
		       const struct physcap_range *range)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; i < range->nr && !ret; i++)
		ret = physcap_write_segment(w, &range->segs[i]);
	return ret;
}

void physcap_writer_release(struct physcap_writer *w)
{
	physcap_bounce_free(w);
	w->bounce = NULL;
	w->nr_bounce = 0;
}

/*
 * Validate everything before writing a byte, then write segment by
 * segment.  The out fields always describe what reached the destination,
 * also when a signal or an I/O error stops the write part-way.
 */
int physcap_write(struct physcap_write *req)
{
	struct physcap_dest dest;
	struct physcap_writer w = {
		.req = req,
		.dest = &dest,
		.batch_bytes = PHYSCAP_BATCH_START,
	};
	struct physcap_range range;
	unsigned int i;
	int ret;

	req->bytes_written = 0;
	req->bytes_zero_copy = 0;
	req->bytes_bounced = 0;
	req->bytes_poisoned = 0;
	req->bytes_buffered = 0;

	ret = physcap_write_check(req);
	if (ret)
		return ret;

	ret = physcap_dest_get(req->dest_fd, &dest);
	if (ret)
		return ret;
	ret = physcap_dest_check_span(&dest, req->phys_addr, req->length,
				      req->dest_offset);
	if (ret)
		goto err_dest;

	ret = physcap_range_classify(req->phys_addr, req->length, &range);
	if (ret)
		goto err_dest;
	if (range.has_mmio && !(req->flags & PHYSCAP_WRITE_ALLOW_MMIO)) {
		ret = -EACCES;
		goto err_range;
	}

	w.bvec = kvmalloc_array(PHYSCAP_BATCH_PAGES, sizeof(*w.bvec),
				GFP_KERNEL);
	if (!w.bvec) {
		ret = -ENOMEM;
		goto err_range;
	}
	w.pos = req->dest_offset;
	for (i = 0; i < range.nr; i++)
		physcap_adopt_segment(&range.segs[i]);

	ret = physcap_writer_run(&w, &range);

	if (ret == -EINTR)
		pr_info_ratelimited("write of %#llx+%#llx interrupted after %llu bytes\n",
				    req->phys_addr, req->length,
				    req->bytes_written);
	else if (ret)
		pr_warn_ratelimited("write of %#llx+%#llx failed after %llu bytes: %d\n",
				    req->phys_addr, req->length,
				    req->bytes_written, ret);
	physcap_write_account(req, ret);

	physcap_writer_release(&w);
	kvfree(w.bvec);
err_range:
	physcap_range_free(&range);
err_dest:
	physcap_dest_put(&dest);
	return ret;
}
