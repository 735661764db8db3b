// SPDX-License-Identifier: GPL-2.0
/*
 * physcap-selftest's fault tools: a hardware-poisoned page (poison-test),
 * a wedged system that stops feeding its watchdog (watchdog-arm), and
 * random ioctls (fuzz).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/watchdog.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "selftest.h"

/*
 * poison-test: poison one page of our own (MADV_HWPOISON, as the kernel's
 * memory-failure handling would after a machine check), then write its
 * physical page through physcap: it must be counted as poisoned and
 * written as zeros, never handed to the device.
 */
static void on_sigbus(int sig)
{
	(void)sig;	/* the kernel's "your page was poisoned" notice: expected */
}

int cmd_poison_test(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_sigbus };
	long ps = sysconf(_SC_PAGESIZE);
	struct physcap_write w;
	const char *scratch = argc > 1 && !strcmp(argv[0], "--scratch") ? argv[1] : NULL;
	char path[512];
	uint64_t entry, pfn;
	uint8_t *page, *back;
	int pagemap, dev, dest, err = 0;
	bool zeros = true;
	long i;

	if (!scratch) {
		fprintf(stderr, "usage: poison-test --scratch DIR\n");
		return 2;
	}
	sigaction(SIGBUS, &sa, NULL);
	page = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		return 1;
	memset(page, 0xAA, ps);
	pagemap = open("/proc/self/pagemap", O_RDONLY);
	if (pagemap < 0 || pread(pagemap, &entry, sizeof(entry),
				 (off_t)((uintptr_t)page / ps) * 8) != sizeof(entry) ||
	    !(entry & (1ULL << 63))) {
		printf("{\"ok\":false,\"what\":\"pagemap\"}\n");
		return 1;
	}
	pfn = entry & ((1ULL << 55) - 1);
	if (madvise(page, ps, MADV_HWPOISON)) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"madvise\"}\n",
		       errno_name(errno));
		return 1;
	}

	dev = open_device();
	snprintf(path, sizeof(path), "%s/poisoned.bin", scratch);
	dest = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	memset(&w, 0, sizeof(w));
	w.phys_addr = pfn * ps;
	w.length = ps;
	w.dest_fd = dest;
	if (ioctl(dev, PHYSCAP_IOC_WRITE, &w))
		err = errno;

	back = aligned_alloc(ps, ps);
	if (!back || pread(dest, back, ps, 0) != ps)
		return 1;
	for (i = 0; i < ps; i++)
		if (back[i])
			zeros = false;
	printf("{\"ok\":%s,\"errno\":\"%s\",\"pfn\":%" PRIu64 ",\"bytes_written\":%" PRIu64
	       ",\"bytes_poisoned\":%" PRIu64 ",\"bytes_zero_copy\":%" PRIu64
	       ",\"zeros\":%s}\n", err ? "false" : "true", errno_name(err), pfn,
	       (uint64_t)w.bytes_written, (uint64_t)w.bytes_poisoned,
	       (uint64_t)w.bytes_zero_copy, zeros ? "true" : "false");
	free(back);
	close(dest);
	close(dev);
	return err ? 1 : 0;
}

/*
 * watchdog-arm: arm a watchdog with a pretimeout, feed it once, then stop
 * feeding, as a wedged system would.  The pretimeout governor then acts
 * (the noop governor logs "watchdogN: pretimeout event").  Disarms with
 * the magic close at the end.
 */
int cmd_watchdog_arm(int argc, char **argv)
{
	const char *device = "/dev/watchdog0";
	int timeout = 10, pretimeout = 8, hold = 20, fd, i;
	bool stop = true;

	for (i = 0; i < argc; i++) {
		/* A process that dies feeding it: the watchdog runs on, unfed. */
		if (!strcmp(argv[i], "--no-stop")) {
			stop = false;
			continue;
		}
		if (i + 1 >= argc)
			break;
		if (!strcmp(argv[i], "--device"))
			device = argv[i + 1];
		else if (!strcmp(argv[i], "--timeout"))
			timeout = (int)parse_num(argv[i + 1]);
		else if (!strcmp(argv[i], "--pretimeout"))
			pretimeout = (int)parse_num(argv[i + 1]);
		else if (!strcmp(argv[i], "--hold"))
			hold = (int)parse_num(argv[i + 1]);
		i++;
	}
	fd = open(device, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"open %s\"}\n", errno_name(errno), device);
		return 1;
	}
	if (ioctl(fd, WDIOC_SETTIMEOUT, &timeout) || ioctl(fd, WDIOC_SETPRETIMEOUT, &pretimeout) ||
	    ioctl(fd, WDIOC_KEEPALIVE, 0)) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"watchdog ioctl\"}\n", errno_name(errno));
		return 1;
	}
	printf("{\"ok\":true,\"timeout\":%d,\"pretimeout\":%d}\n", timeout, pretimeout);
	fflush(stdout);
	sleep((unsigned int)hold);
	if (stop && write(fd, "V", 1) != 1)
		return 1;
	close(fd);
	return 0;
}

/* ---- fuzz: random ioctls, bounded, must never crash the kernel ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic for a seed, so failures reproduce */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

int cmd_fuzz(int argc, char **argv)
{
	static const char *const names[] = { "OK", "EPERM", "EINVAL", "EBADF",
		"EFAULT", "ENOTTY", "ENXIO", "EACCES", "EISDIR", "ENOSPC",
		"EFBIG", "EOPNOTSUPP", "other" };
	int counts[13] = { 0 };
	uint64_t count = 1000, phys = 0;
	const char *scratch = NULL;
	char path[512];
	int fds[6], dev, i;
	uint64_t k;

	for (i = 0; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--count"))
			count = parse_num(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			rng_state = parse_num(argv[i + 1]) | 1;
		else if (!strcmp(argv[i], "--phys"))
			phys = parse_num(argv[i + 1]);
		else if (!strcmp(argv[i], "--scratch"))
			scratch = argv[i + 1];
	}
	if (!scratch || !phys) {
		fprintf(stderr, "usage: fuzz --count N --seed S --phys P --scratch DIR\n");
		return 2;
	}
	if (!rng_state)
		rng_state = 1;
	dev = open_device();
	snprintf(path, sizeof(path), "%s/fuzz.direct", scratch);
	fds[0] = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	fds[1] = open(path, O_RDONLY);
	fds[2] = open("/dev/null", O_WRONLY);
	fds[3] = -1;
	fds[4] = 1000;
	fds[5] = dev;
	if (fds[0] < 0)
		return 1;

	for (k = 0; k < count; k++) {
		struct physcap_write w;
		unsigned int cmd;
		int err, idx;

		memset(&w, 0, sizeof(w));
		switch (rnd() % 4) {
		case 0: /* plausible: near the reserved range, small, aligned */
			w.phys_addr = phys + (rnd() % 64) * 512;
			w.length = (1 + rnd() % 128) * 512;
			break;
		case 1: /* anywhere */
			w.phys_addr = rnd();
			w.length = rnd();
			break;
		case 2: /* low memory, odd sizes */
			w.phys_addr = rnd() % (1ULL << 32);
			w.length = rnd() % (1 << 20);
			break;
		default: /* edges */
			w.phys_addr = UINT64_MAX - rnd() % 8192;
			w.length = rnd() % 3 ? 4096 : UINT64_MAX;
			break;
		}
		w.dest_offset = rnd() % 4 ? (rnd() % 256) * 512 : rnd();
		w.dest_fd = fds[rnd() % 6];
		/* Never ALLOW_MMIO: random device reads could disturb the board. */
		w.flags = (uint32_t)rnd() & ~PHYSCAP_WRITE_ALLOW_MMIO;
		if (rnd() % 2)
			w.flags &= PHYSCAP_WRITE_FLAGS_ALL;
		if (rnd() % 8 == 0)
			w.reserved[rnd() % 3] = rnd();

		switch (rnd() % 8) {
		case 0:
			cmd = PHYSCAP_IOC_INFO;
			break;
		case 1:
			cmd = (unsigned int)rnd();
			break;
		default:
			cmd = PHYSCAP_IOC_WRITE;
			break;
		}
		err = ioctl(dev, cmd, &w) ? errno : 0;
		for (idx = 0; idx < 12; idx++)
			if (!strcmp(names[idx], errno_name(err)))
				break;
		counts[idx]++;
	}

	printf("{\"ok\":true,\"calls\":%" PRIu64 ",\"outcomes\":{", count);
	for (i = 0; i < 13; i++)
		printf("%s\"%s\":%d", i ? "," : "", names[i], counts[i]);
	printf("}}\n");
	close(fds[0]);
	close(fds[1]);
	close(fds[2]);
	close(dev);
	return 0;
}

/*
 * kill-after: a crash at a chosen moment.  Runs a command with its stdout
 * on a pipe, copies what it prints, and SIGKILLs it as soon as a line
 * holds the marker (physcap-client capture prints its result, "seconds"
 * and all, once the core is durable and before its digest).  Prints one
 * JSON line: whether the marker came, and how the command ended.
 */
int cmd_kill_after(int argc, char **argv)
{
	char buf[4096];
	size_t used = 0;
	bool seen = false;
	int pipefd[2], status = 0, i;
	pid_t pid;

	if (argc < 3 || strcmp(argv[1], "--")) {
		fprintf(stderr, "usage: kill-after MARKER -- COMMAND [ARGS...]\n");
		return 2;
	}
	if (pipe(pipefd))
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (!pid) {
		dup2(pipefd[1], STDOUT_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		execv(argv[2], argv + 2);
		_exit(127);
	}
	close(pipefd[1]);
	while (!seen && used < sizeof(buf) - 1) {
		ssize_t n = read(pipefd[0], buf + used, sizeof(buf) - 1 - used);

		if (n <= 0)
			break;
		used += (size_t)n;
		buf[used] = '\0';
		seen = strstr(buf, argv[0]) != NULL;
	}
	if (seen)
		kill(pid, SIGKILL);
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	/* The command's own output first, then this tool's line. */
	for (i = 0; i < (int)used; i++)
		if (buf[i] == '\n' || buf[i] == '"')
			buf[i] = buf[i] == '"' ? '\'' : ' ';
	printf("{\"marker_seen\":%s,\"killed\":%s,\"exit\":%d,\"output\":\"%s\"}\n",
	       seen ? "true" : "false",
	       WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? "true" : "false",
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1, buf);
	return seen ? 0 : 1;
}

