// SPDX-License-Identifier: GPL-2.0
/*
 * physcap-selftest: the ARM, DISARM, ARM_STATUS and event-read rows of the
 * selftest table, and (with --watchdog and --slow) a DISARM racing a firing
 * pretimeout.  Run by cmd_selftest (physcap-selftest.c) after the WRITE
 * rows, with the descriptors those set up.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <linux/watchdog.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common.h"
#include "selftest.h"

static int do_arm(int dev, struct physcap_arm *a)
{
	return ioctl(dev, PHYSCAP_IOC_ARM, a) ? errno : 0;
}

static int do_disarm(int dev, uint64_t id)
{
	return ioctl(dev, PHYSCAP_IOC_DISARM, &id) ? errno : 0;
}

int try_arm(int dev)
{
	struct physcap_arm a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.dest_fd = -1;
	a.nr_ranges = 1;
	a.ranges[0].length = 4096;
	return do_arm(dev, &a);
}

static int open_prealloc(const char *scratch, const char *name, off_t size)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", scratch, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	if (fd >= 0 && fallocate(fd, 0, 0, size)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The stamp the module wrote at `at` on `path` once arm `a` was done: read
 * back past the page cache, decoded as little-endian whatever this CPU is.
 * 0 when it says done, for this arm, with every byte and a good check.
 */
static int check_stamp(const char *path, uint64_t at, const struct physcap_arm *a,
		       uint64_t total)
{
	const struct physcap_arm_stamp *st;
	const uint64_t *word;
	uint64_t sum = PHYSCAP_STAMP_SEED;
	void *buf;
	int fd, err = ENOMEM;	/* positive: the table's convention */
	unsigned int i;

	if (posix_memalign(&buf, 4096, 4096))
		return err;
	err = 0;
	errno = 0;
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || pread(fd, buf, 4096, (off_t)at) != 4096) {
		err = errno ? errno : EIO;
		goto out;
	}
	st = buf;
	word = buf;
	for (i = 0; i < offsetof(struct physcap_arm_stamp, check) / 8; i++)
		sum += le64toh(word[i]);
	if (memcmp(st->magic, PHYSCAP_STAMP_MAGIC, 8) || le32toh(st->version) != PHYSCAP_STAMP_VERSION ||
	    le32toh(st->size) != sizeof(*st) || le64toh(st->check) != sum ||
	    le64toh(st->cookie) != a->cookie || le64toh(st->arm_id) != a->arm_id ||
	    le32toh(st->state) != PHYSCAP_ARM_STATE_DONE || st->error ||
	    le64toh(st->bytes_written) != total || le64toh(st->bytes_total) != total ||
	    !le64toh(st->duration_ns) || !le64toh(st->time_real_ns))
		err = EIO;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return err;
}

/* Wait until the arm leaves state `from` (or 20 s pass); returns its state. */
static unsigned int wait_state_change(int dev, uint64_t id, unsigned int from,
				      struct physcap_arm_status *st)
{
	double deadline = now_s() + 20;

	while (now_s() < deadline) {
		if (arm_status(dev, id, st))
			return 0;
		if (st->state != from)
			return st->state;
		usleep(1000);
	}
	return from;
}

static void selftest_race(struct arm_selftest *t, int evfd)
{
	struct physcap_arm_status st;
	struct physcap_arm a;
	struct pollfd pfd = { .fd = evfd, .events = POLLIN };
	int slow, wd, timeout = 3, pretimeout = 2, err;

	slow = open(t->slow, O_WRONLY | O_DIRECT);
	wd = open(t->watchdog, O_WRONLY | O_CLOEXEC);
	if (slow < 0 || wd < 0) {
		row("firing: set-up (slow disk, watchdog)", 0, errno);
		return;
	}
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.dest_fd = slow;
	a.watchdog_id = t->watchdog_id;
	a.cookie = 0x5ace;
	a.nr_ranges = 1;
	a.ranges[0].phys_addr = t->race_phys;
	a.ranges[0].length = t->race_len;
	/* The stamp right after the range: written, little-endian, once it is done. */
	a.flags = PHYSCAP_ARM_STAMP;
	a.stamp_offset = t->race_len;
	row("firing: ARM a long capture to the slow disk (control)", 0, do_arm(t->dev, &a));

	/* Fed once now: the pretimeout fires 1 s later, and nobody feeds it. */
	err = ioctl(wd, WDIOC_SETTIMEOUT, &timeout) || ioctl(wd, WDIOC_SETPRETIMEOUT, &pretimeout) ||
	      ioctl(wd, WDIOC_KEEPALIVE, 0) ? errno : 0;
	row("firing: watchdog armed with a pretimeout (control)", 0, err);

	row("firing: ARM_STATUS leaves armed for firing", 0,
	    wait_state_change(t->dev, a.arm_id, PHYSCAP_ARM_STATE_ARMED, &st) ==
	    PHYSCAP_ARM_STATE_FIRING ? 0 : EIO);
	row("DISARM racing a firing pretimeout", EBUSY, do_disarm(t->dev, a.arm_id));
	row("poll: readable after a pretimeout", 0,
	    poll(&pfd, 1, 2000) == 1 && (pfd.revents & POLLIN) ? 0 : EIO);
	row("firing: the capture completes while DISARM is refused", 0,
	    wait_state_change(t->dev, a.arm_id, PHYSCAP_ARM_STATE_FIRING, &st) ==
	    PHYSCAP_ARM_STATE_DONE && st.bytes_written == t->race_len ? 0 : EIO);
	row("firing: ARM_STATUS reports the first-byte latency", 0,
	    st.first_byte_latency_ns > 0 && st.duration_ns > 0 ? 0 : EIO);
	row("firing: the stamp on the disk says done: this arm, every byte, the check", 0,
	    check_stamp(t->slow, t->race_len, &a, t->race_len));
	row("DISARM after the capture finished (control)", 0, do_disarm(t->dev, a.arm_id));

	/* The magic close: stop the watchdog before the main test uses it. */
	if (write(wd, "V", 1) != 1)
		row("firing: magic close", 0, errno);
	close(wd);
	close(slow);
}

void selftest_arm(struct arm_selftest *t)
{
	struct physcap_arm base, a;
	struct physcap_arm_status st;
	struct physcap_event ev;
	uint64_t keep[10];
	int file, ro, shortf, dev2, evfd, nkeep = 0, err, i;
	char path[512];

	file = open_prealloc(t->scratch, "selftest.arm", 1 << 20);
	shortf = open_prealloc(t->scratch, "selftest.arm-short", 64 << 10);
	snprintf(path, sizeof(path), "%s/selftest.arm", t->scratch);
	ro = open(path, O_RDONLY | O_DIRECT);
	evfd = open(DEV_PATH, O_RDONLY | O_NONBLOCK);
	if (file < 0 || shortf < 0 || ro < 0 || evfd < 0) {
		row("ARM: set-up", 0, errno);
		return;
	}

	memset(&base, 0, sizeof(base));
	base.size = sizeof(base);
	base.dest_fd = file;
	base.watchdog_id = 7;	/* none on the board: the table never fires */
	base.cookie = 0xc0ffee;
	base.nr_ranges = 1;
	base.ranges[0].phys_addr = t->phys;
	base.ranges[0].length = 64 << 10;

#define ACASE(name, expected, ...) do {				\
		a = base;					\
		__VA_ARGS__;					\
		err = do_arm(t->dev, &a);			\
		if (!err)					\
			do_disarm(t->dev, a.arm_id);		\
		row(name, expected, err);			\
	} while (0)

	ACASE("ARM: valid (control)", 0, (void)0);
	ACASE("ARM: size field not the struct's", EINVAL, a.size = sizeof(a) - 8);
	ACASE("ARM: unknown flag", EINVAL, a.flags = 1U << 5);
	ACASE("ARM: non-zero pad", EINVAL, a.pad = 1);
	ACASE("ARM: non-zero reserved", EINVAL, a.reserved[2] = 1);
	ACASE("ARM: stamp offset without the stamp flag", EINVAL, a.stamp_offset = 512 << 10);
	ACASE("ARM: stamp overlapping a range", EINVAL, a.flags = PHYSCAP_ARM_STAMP;
	      a.stamp_offset = 32 << 10);
	ACASE("ARM: misaligned stamp", EINVAL, a.flags = PHYSCAP_ARM_STAMP; a.stamp_offset = 100);
	ACASE("ARM: stamp past the file's end", EFBIG, a.flags = PHYSCAP_ARM_STAMP;
	      a.stamp_offset = 1 << 20);
	ACASE("ARM: with a stamp (control)", 0, a.flags = PHYSCAP_ARM_STAMP;
	      a.stamp_offset = 512 << 10);
	ACASE("ARM: no ranges", EINVAL, a.nr_ranges = 0);
	ACASE("ARM: 17 ranges", EINVAL, a.nr_ranges = 17);
	ACASE("ARM: watchdog id beyond the core's limit", EINVAL, a.watchdog_id = 32);
	ACASE("ARM: negative fd", EBADF, a.dest_fd = -1);
	/* A number closed just now (the WRITE rows' closed one is reused by now). */
	ACASE("ARM: closed fd", EBADF, a.dest_fd = open("/dev/null", O_WRONLY); close(a.dest_fd));
	ACASE("ARM: read-only destination", EBADF, a.dest_fd = ro);
	ACASE("ARM: destination without O_DIRECT", EINVAL, a.dest_fd = t->nodirect);
	ACASE("ARM: destination with O_APPEND", EINVAL, a.dest_fd = t->append);
	ACASE("ARM: pipe destination", EINVAL, a.dest_fd = t->pipe_w);
	ACASE("ARM: directory destination", EISDIR, a.dest_fd = t->dir);
	ACASE("ARM: zero length", EINVAL, a.ranges[0].length = 0);
	ACASE("ARM: misaligned physical address", EINVAL, a.ranges[0].phys_addr += 100);
	ACASE("ARM: misaligned length", EINVAL, a.ranges[0].length = 1000);
	ACASE("ARM: misaligned destination offset", EINVAL, a.ranges[0].dest_offset = 100);
	ACASE("ARM: a hole", ENXIO, a.ranges[0].phys_addr = t->hole; a.ranges[0].length = 4096);
	ACASE("ARM: device (MMIO) range", EACCES, a.ranges[0].phys_addr = t->mmio);
	ACASE("ARM: file shorter than the span", EFBIG, a.dest_fd = shortf;
	      a.ranges[0].length = 128 << 10);
	ACASE("ARM: span past the end of the block device", ENOSPC, a.dest_fd = t->bdev;
	      a.ranges[0].dest_offset = t->bdev_size);
	ACASE("ARM: overlapping spans within one arm", EINVAL, a.nr_ranges = 2;
	      a.ranges[1].phys_addr = t->phys + (64 << 10); a.ranges[1].length = 64 << 10;
	      a.ranges[1].dest_offset = 32 << 10);
	ACASE("ARM: two disjoint spans (control)", 0, a.nr_ranges = 2;
	      a.ranges[1].phys_addr = t->phys + (64 << 10); a.ranges[1].length = 64 << 10;
	      a.ranges[1].dest_offset = 64 << 10);
	ACASE("ARM: block device (control)", 0, a.dest_fd = t->bdev;
	      a.ranges[0].dest_offset = t->bdev_size - (64 << 10));
#undef ACASE

	/* Arms that stay: overlap with an existing arm, and the limit. */
	a = base;
	err = do_arm(t->dev, &a);
	row("ARM: first of several on one file (control)", 0, err);
	if (!err)
		keep[nkeep++] = a.arm_id;
	a = base;
	a.ranges[0].dest_offset = 32 << 10;
	row("ARM: overlapping an existing arm on the same file", EBUSY, do_arm(t->dev, &a));
	a = base;
	a.ranges[0].dest_offset = 512 << 10;
	a.flags = PHYSCAP_ARM_STAMP;
	a.stamp_offset = 0;
	row("ARM: a stamp on an existing arm's span", EBUSY, do_arm(t->dev, &a));
	err = 0;
	for (i = 1; i < 8 && !err; i++) {
		a = base;
		a.ranges[0].dest_offset = (uint64_t)i << 16;
		err = do_arm(t->dev, &a);
		if (!err)
			keep[nkeep++] = a.arm_id;
	}
	row("ARM: eight arms on one watchdog, adjacent spans (control)", 0, err);
	a = base;
	a.ranges[0].dest_offset = 8 << 16;
	row("ARM: a ninth arm on one watchdog", ENOSPC, do_arm(t->dev, &a));
	a.watchdog_id = 6;
	err = do_arm(t->dev, &a);
	row("ARM: the ninth on another watchdog (control)", 0, err);
	if (!err)
		do_disarm(t->dev, a.arm_id);

	err = nkeep ? arm_status(t->dev, keep[0], &st) : ENOENT;
	row("ARM_STATUS of an armed capture", 0,
	    err ? err : (st.state == PHYSCAP_ARM_STATE_ARMED && st.cookie == 0xc0ffee &&
			 st.bytes_total == (64 << 10) && st.bytes_written == 0 &&
			 st.watchdog_id == 7) ? 0 : EIO);
	row("ARM_STATUS of an unknown id", ENOENT, arm_status(t->dev, UINT64_MAX, &st));
	row("DISARM of an unknown id", ENOENT, do_disarm(t->dev, UINT64_MAX));
	row("DISARM of id 0", ENOENT, do_disarm(t->dev, 0));
	{
		/* An arm is undone only through the descriptor that made it. */
		int other = open(DEV_PATH, O_RDWR | O_CLOEXEC);

		row("DISARM of another descriptor's arm", EPERM,
		    other < 0 ? errno : nkeep ? do_disarm(other, keep[0]) : 0);
		if (other >= 0)
			close(other);
	}
	row("DISARM (control)", 0, nkeep ? do_disarm(t->dev, keep[0]) : ENOENT);
	row("DISARM twice", ENOENT, nkeep ? do_disarm(t->dev, keep[0]) : 0);
	for (i = 1; i < nkeep; i++)
		do_disarm(t->dev, keep[i]);

	/* Arms die with the descriptor that made them. */
	dev2 = open(DEV_PATH, O_RDWR);
	a = base;
	err = dev2 < 0 ? errno : do_arm(dev2, &a);
	row("ARM on a second descriptor (control)", 0, err);
	if (dev2 >= 0)
		close(dev2);
	row("arms released on close: ARM_STATUS", ENOENT, err ? ENOENT : arm_status(t->dev, a.arm_id, &st));
	a = base;
	err = do_arm(t->dev, &a);
	row("arms released on close: the span is free again", 0, err);
	if (!err)
		do_disarm(t->dev, a.arm_id);

	row("ARM without CAP_SYS_RAWIO (fd opened before)", EPERM, without_rawio(try_arm, t->dev));
	row("ARM with a NULL argument", EFAULT, ioctl(t->dev, PHYSCAP_IOC_ARM, NULL) ? errno : 0);
	row("DISARM with a bad pointer", EFAULT, ioctl(t->dev, PHYSCAP_IOC_DISARM, (void *)16) ? errno : 0);
	row("ARM number with a wrong size", ENOTTY,
	    ioctl(t->dev, _IOWR(PHYSCAP_IOC_MAGIC, 0x02, struct physcap_write), &a) ? errno : 0);

	/* Event reads. */
	row("read: buffer smaller than a record", EINVAL,
	    read(evfd, &ev, sizeof(ev) - 1) < 0 ? errno : 0);
	for (i = 0; i < 200 && read(evfd, &ev, sizeof(ev)) == (ssize_t)sizeof(ev); i++)
		;
	row("read: O_NONBLOCK with no new record", EAGAIN,
	    read(evfd, &ev, sizeof(ev)) < 0 ? errno : 0);
	{
		struct pollfd pfd = { .fd = evfd, .events = POLLIN };

		row("poll: not readable with no new record", 0,
		    poll(&pfd, 1, 0) == 0 ? 0 : EIO);
	}

	if (t->watchdog && t->slow)
		selftest_race(t, evfd);

	close(evfd);
	close(ro);
	close(shortf);
	close(file);
}
