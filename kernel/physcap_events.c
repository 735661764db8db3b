// SPDX-License-Identifier: GPL-2.0
/*
 * Events: the last PHYSCAP_EVENT_RING records (pretimeouts and armed
 * captures' outcomes), read as whole fixed-size records with read(2) on
 * /dev/physcap.  The oldest record is overwritten when the ring is full;
 * a reader that fell behind resumes at the oldest one still kept, and the
 * gap shows in seq.  Records are posted from any context, the hard-irq
 * pretimeout included: a static array under an IRQ-safe spinlock, no
 * allocation.
 */
#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "physcap.h"

static struct physcap_event physcap_ring[PHYSCAP_EVENT_RING];
static u64 physcap_ring_next = 1;	/* seq of the next record */
static DEFINE_SPINLOCK(physcap_ring_lock);
static DECLARE_WAIT_QUEUE_HEAD(physcap_event_wq);

static u64 physcap_ring_oldest_locked(void)
{
	return physcap_ring_next > PHYSCAP_EVENT_RING ?
	       physcap_ring_next - PHYSCAP_EVENT_RING : 1;
}

void physcap_event_post(struct physcap_event *ev)
{
	unsigned long flags;

	ev->size = sizeof(*ev);
	ev->version = PHYSCAP_EVENT_VERSION;
	spin_lock_irqsave(&physcap_ring_lock, flags);
	ev->seq = physcap_ring_next++;
	physcap_ring[ev->seq % PHYSCAP_EVENT_RING] = *ev;
	spin_unlock_irqrestore(&physcap_ring_lock, flags);
	wake_up_interruptible_all(&physcap_event_wq);
}

u64 physcap_event_oldest(void)
{
	unsigned long flags;
	u64 oldest;

	spin_lock_irqsave(&physcap_ring_lock, flags);
	oldest = physcap_ring_oldest_locked();
	spin_unlock_irqrestore(&physcap_ring_lock, flags);
	return oldest;
}

static bool physcap_event_pending(u64 pos)
{
	return pos < READ_ONCE(physcap_ring_next);
}

/* Copy the record at *pos, or the oldest kept if it was overwritten. */
static bool physcap_event_peek(u64 *pos, struct physcap_event *ev)
{
	unsigned long flags;
	bool found = false;

	spin_lock_irqsave(&physcap_ring_lock, flags);
	if (*pos < physcap_ring_oldest_locked())
		*pos = physcap_ring_oldest_locked();
	if (*pos < physcap_ring_next) {
		*ev = physcap_ring[*pos % PHYSCAP_EVENT_RING];
		found = true;
	}
	spin_unlock_irqrestore(&physcap_ring_lock, flags);
	return found;
}

/* The caller serializes readers of one position. */
ssize_t physcap_event_read(u64 *pos, char __user *buf, size_t count,
			   bool nonblock)
{
	struct physcap_event ev;
	size_t done = 0;
	int ret;

	if (count < sizeof(ev))
		return -EINVAL;

	while (done + sizeof(ev) <= count) {
		if (!physcap_event_peek(pos, &ev)) {
			if (done)
				break;
			if (nonblock)
				return -EAGAIN;
			ret = wait_event_interruptible(physcap_event_wq,
						       physcap_event_pending(*pos));
			if (ret)
				return ret;
			continue;
		}
		if (copy_to_user(buf + done, &ev, sizeof(ev)))
			return done ? done : -EFAULT;
		*pos = ev.seq + 1;
		done += sizeof(ev);
	}
	return done;
}

__poll_t physcap_event_poll(struct file *file, u64 pos, poll_table *wait)
{
	poll_wait(file, &physcap_event_wq, wait);
	return physcap_event_pending(pos) ? EPOLLIN | EPOLLRDNORM : 0;
}
