// SPDX-License-Identifier: GPL-2.0
/*
 * physcap-selftest: physcap's test tools, apart from the board tool
 * (physcap-client).  Every command prints JSON; the command table at the
 * end is the usage (physcap-selftest with no command prints it).
 *
 *   selftest --phys P --scratch DIR --blockdev DEV
 *            [--watchdog /dev/watchdogN --watchdog-id N --slow DEV
 *             --race-phys P --race-len L]
 *                       the bad-input table: one bad field per call, each
 *                       with its exact errno, one JSON row each; the ARM
 *                       rows in selftest-arm.c
 *   poison-test --scratch DIR           a poisoned page is written as zeros
 *   fuzz --count N --seed S --phys P --scratch DIR
 *   watchdog-arm [--device D] [--timeout S] [--pretimeout S] [--hold S] [--no-stop]
 *                       a wedged system: the watchdog fed once, then not
 *                       (--no-stop: ends without the magic close, so the
 *                       watchdog runs on after it, as after a crash)
 *
 *   kill-after MARKER -- COMMAND [ARGS...]
 *                       a crash at a chosen moment: the command SIGKILLed
 *                       once its output holds MARKER
 *
 * (poison-test, fuzz, watchdog-arm and kill-after are in faults.c.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "selftest.h"

/* Drop CAP_SYS_RAWIO from this process, keeping every other capability. */
static int drop_rawio(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	data[0].effective &= ~(1U << CAP_SYS_RAWIO);
	data[0].permitted &= ~(1U << CAP_SYS_RAWIO);
	data[0].inheritable &= ~(1U << CAP_SYS_RAWIO);
	return syscall(SYS_capset, &hdr, data) ? -1 : 0;
}

/* ---- /proc/iomem, to find a hole and a harmless device range ---- */

struct iomem_entry {
	uint64_t start, end;
	int depth;
	char name[64];
};

static int read_iomem(struct iomem_entry *e, int max)
{
	FILE *f = fopen("/proc/iomem", "r");
	char line[256];
	int n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		char *p = line, *colon;

		while (*p == ' ')
			p++;
		e[n].depth = (int)(p - line) / 2;
		if (sscanf(p, "%" SCNx64 "-%" SCNx64, &e[n].start, &e[n].end) != 2)
			continue;
		colon = strstr(p, " : ");
		snprintf(e[n].name, sizeof(e[n].name), "%s", colon ? colon + 3 : "");
		e[n].name[strcspn(e[n].name, "\n")] = 0;
		n++;
	}
	fclose(f);
	return n;
}

/* First 1 MiB-aligned top-level gap above the last System RAM. */
static uint64_t find_hole(const struct iomem_entry *e, int n, uint64_t limit)
{
	uint64_t cand = 0;
	int i;

	for (i = 0; i < n; i++)
		if (!e[i].depth && !strcmp(e[i].name, "System RAM"))
			cand = e[i].end + 1;
	cand = (cand + 0xfffff) & ~0xfffffULL;
	for (;;) {
		bool hit = false;

		for (i = 0; i < n; i++)
			if (!e[i].depth && e[i].start <= cand + 0xfffff &&
			    e[i].end >= cand) {
				cand = ((e[i].end + 1) + 0xfffff) & ~0xfffffULL;
				hit = true;
			}
		if (!hit || cand + 0x100000 >= limit)
			break;
	}
	return cand;
}

/*
 * 64 KiB inside a top-level PCI window that no device claimed: reads 0xff.
 * x86 names the windows "PCI Bus 0000:00"; device-tree platforms name them
 * after the host bridge's node ("pci@fe0008000" on the PowerPC e500).
 */
static bool is_pci_window(const char *name)
{
	return !strncmp(name, "PCI Bus", 7) || !strncmp(name, "pci@", 4);
}

static uint64_t find_mmio(const struct iomem_entry *e, int n)
{
	int i, j;

	for (i = 0; i < n; i++) {
		uint64_t cand;

		if (e[i].depth || !is_pci_window(e[i].name))
			continue;
		for (cand = (e[i].start + 0xffff) & ~0xffffULL;
		     cand + 0xffff <= e[i].end; cand += 0x10000) {
			bool used = false;

			for (j = i + 1; j < n && e[j].depth > 0; j++)
				if (e[j].start <= cand + 0xffff && e[j].end >= cand)
					used = true;
			if (!used)
				return cand;
		}
	}
	return 0;
}

/* ---- selftest: one bad field per call, each with its exact errno ---- */

static int failures;

void row(const char *name, int expected, int actual)
{
	printf("{\"case\":\"%s\",\"expected\":\"%s\",\"actual\":\"%s\",\"pass\":%s}\n",
	       name, errno_name(expected), errno_name(actual),
	       expected == actual ? "true" : "false");
	if (expected != actual)
		failures++;
}

static int do_write(int dev, struct physcap_write *w)
{
	return ioctl(dev, PHYSCAP_IOC_WRITE, w) ? errno : 0;
}

/* Run fn in a child that has dropped CAP_SYS_RAWIO; returns its errno. */
int without_rawio(int (*fn)(int), int dev)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (drop_rawio())
			_exit(255);
		_exit(fn(dev));
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int try_open(int dev)
{
	int fd;

	(void)dev;
	fd = open(DEV_PATH, O_RDWR);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int try_info_then_write(int dev)
{
	struct physcap_write w;

	memset(&w, 0, sizeof(w));
	w.dest_fd = -1;
	w.length = 4096;
	return do_write(dev, &w);
}

static int try_mmap(int dev)
{
	void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, dev, 0);

	if (p == MAP_FAILED)
		return errno;
	munmap(p, 4096);
	return 0;
}

static int mmap_errno(int dev, uint64_t phys, size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_SHARED, dev, (off_t)phys);

	if (p == MAP_FAILED)
		return errno;
	munmap(p, len);
	return 0;
}

static int cmd_selftest(int argc, char **argv)
{
	const char *scratch = NULL, *blockdev = NULL;
	struct arm_selftest at = { .race_len = 32 << 20 };
	struct iomem_entry iomem[512];
	struct physcap_info info;
	struct physcap_write base, w;
	uint64_t phys = 0, hole, mmio, bdev_size = 0;
	char path[512];
	int dev, file, ro, nodirect, append, bdev, pipefd[2], sock, dir, null;
	int closed, n, i;

	for (i = 0; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--phys"))
			phys = parse_num(argv[i + 1]);
		else if (!strcmp(argv[i], "--scratch"))
			scratch = argv[i + 1];
		else if (!strcmp(argv[i], "--blockdev"))
			blockdev = argv[i + 1];
		else if (!strcmp(argv[i], "--watchdog"))
			at.watchdog = argv[i + 1];
		else if (!strcmp(argv[i], "--watchdog-id"))
			at.watchdog_id = (uint32_t)parse_num(argv[i + 1]);
		else if (!strcmp(argv[i], "--slow"))
			at.slow = argv[i + 1];
		else if (!strcmp(argv[i], "--race-phys"))
			at.race_phys = parse_num(argv[i + 1]);
		else if (!strcmp(argv[i], "--race-len"))
			at.race_len = parse_num(argv[i + 1]);
	}
	if (!phys || !scratch || !blockdev) {
		fprintf(stderr, "usage: selftest --phys P --scratch DIR --blockdev DEV\n"
			"       [--watchdog /dev/watchdogN --watchdog-id N --slow DEV --race-phys P --race-len L]\n");
		return 2;
	}

	dev = open_device();
	memset(&info, 0, sizeof(info));
	if (ioctl(dev, PHYSCAP_IOC_INFO, &info))
		return 1;
	n = read_iomem(iomem, 512);
	hole = find_hole(iomem, n, info.phys_limit);
	mmio = find_mmio(iomem, n);
	printf("{\"note\":\"targets\",\"phys\":\"0x%" PRIx64 "\",\"hole\":\"0x%" PRIx64
	       "\",\"mmio\":\"0x%" PRIx64 "\",\"phys_limit\":\"0x%" PRIx64 "\"}\n",
	       phys, hole, mmio, (uint64_t)info.phys_limit);

	snprintf(path, sizeof(path), "%s/selftest.direct", scratch);
	file = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	ro = open(path, O_RDONLY | O_DIRECT);
	snprintf(path, sizeof(path), "%s/selftest.buffered", scratch);
	nodirect = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	snprintf(path, sizeof(path), "%s/selftest.append", scratch);
	append = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_APPEND, 0600);
	bdev = open(blockdev, O_WRONLY | O_DIRECT);
	if (bdev >= 0 && ioctl(bdev, BLKGETSIZE64, &bdev_size))
		bdev = -1;
	if (pipe2(pipefd, O_DIRECT))
		return 1;
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	dir = open(scratch, O_RDONLY | O_DIRECTORY);
	null = open("/dev/null", O_WRONLY);
	closed = open("/dev/null", O_WRONLY);
	close(closed);
	if (file < 0 || ro < 0 || nodirect < 0 || append < 0 || bdev < 0 ||
	    sock < 0 || dir < 0 || null < 0) {
		fprintf(stderr, "%s: selftest set-up failed: %s\n", progname,
			strerror(errno));
		return 1;
	}

	memset(&base, 0, sizeof(base));
	base.phys_addr = phys;
	base.length = 64 << 10;
	base.dest_fd = file;

#define CASE(name, expected, ...) do {		\
		w = base;			\
		__VA_ARGS__;			\
		row(name, expected, do_write(dev, &w)); \
	} while (0)

	CASE("valid request (control)", 0, (void)0);
	CASE("non-zero reserved[0]", EINVAL, w.reserved[0] = 1);
	CASE("non-zero reserved[2]", EINVAL, w.reserved[2] = 0x8000000000000000ULL);
	CASE("unknown flag bit 2", EINVAL, w.flags = 1U << 2);
	CASE("unknown flag bit 31", EINVAL, w.flags = 1U << 31);
	CASE("zero length", EINVAL, w.length = 0);
	CASE("overflowing length", EINVAL, w.length = UINT64_MAX);
	CASE("phys + len wraps", EINVAL, w.phys_addr = UINT64_MAX & ~0xfffULL; w.length = 0x2000);
	CASE("beyond the physical address space", EINVAL,
	     w.phys_addr = info.phys_limit; w.length = 4096);
	CASE("straddling the physical limit", EINVAL,
	     w.phys_addr = info.phys_limit - 4096; w.length = 8192);
	CASE("past the end of memory (hole)", ENXIO, w.phys_addr = hole; w.length = 4096);
	CASE("device (MMIO) range without the flag", EACCES, w.phys_addr = mmio);
	CASE("MMIO with the flag but NO_BOUNCE", EOPNOTSUPP, w.phys_addr = mmio;
	     w.flags = PHYSCAP_WRITE_ALLOW_MMIO | PHYSCAP_WRITE_NO_BOUNCE);
	CASE("MMIO with the flag (bounced)", 0, w.phys_addr = mmio;
	     w.flags = PHYSCAP_WRITE_ALLOW_MMIO);
	row("MMIO with the flag: every byte bounced",
	    (int)(w.bytes_bounced == w.length ? 0 : EIO), 0);
	CASE("misaligned destination offset", EINVAL, w.dest_offset = 100);
	CASE("misaligned physical address", EINVAL, w.phys_addr = phys + 100);
	CASE("misaligned length", EINVAL, w.length = 1000);
	CASE("negative fd", EBADF, w.dest_fd = -1);
	CASE("closed fd", EBADF, w.dest_fd = closed);
	CASE("read-only fd", EBADF, w.dest_fd = ro);
	CASE("pipe (even with O_DIRECT)", EINVAL, w.dest_fd = pipefd[1]);
	CASE("socket", EINVAL, w.dest_fd = sock);
	CASE("directory", EISDIR, w.dest_fd = dir);
	CASE("character device", EINVAL, w.dest_fd = null);
	CASE("file opened without O_DIRECT", EINVAL, w.dest_fd = nodirect);
	CASE("file opened with O_APPEND", EINVAL, w.dest_fd = append);
	CASE("block device: past its end", ENOSPC, w.dest_fd = bdev;
	     w.dest_offset = 1ULL << 50);
	/* Its last 64 KiB: the start of the disk holds the tests' captures. */
	CASE("block device: valid", 0, w.dest_fd = bdev;
	     w.dest_offset = bdev_size - w.length);
	row("unknown ioctl", ENOTTY,
	    ioctl(dev, _IOWR(PHYSCAP_IOC_MAGIC, 0x7f, struct physcap_write), &w) ? errno : 0);
	row("WRITE number with a wrong size", ENOTTY,
	    ioctl(dev, _IOWR(PHYSCAP_IOC_MAGIC, 0x01, struct physcap_info), &w) ? errno : 0);
	row("WRITE with a NULL argument", EFAULT,
	    ioctl(dev, PHYSCAP_IOC_WRITE, NULL) ? errno : 0);
	row("INFO with a bad pointer", EFAULT,
	    ioctl(dev, PHYSCAP_IOC_INFO, (void *)16) ? errno : 0);
	row("open without CAP_SYS_RAWIO", EPERM, without_rawio(try_open, dev));
	row("WRITE without CAP_SYS_RAWIO (fd opened before)", EPERM,
	    without_rawio(try_info_then_write, dev));
	row("mmap without CAP_SYS_RAWIO", EPERM, without_rawio(try_mmap, dev));
	row("mmap for writing", EACCES,
	    mmap_errno(dev, phys, 4096, PROT_READ | PROT_WRITE));
	row("mmap for execution", EACCES,
	    mmap_errno(dev, phys, 4096, PROT_READ | PROT_EXEC));
	row("mmap of a device range", EACCES, mmap_errno(dev, mmio, 4096, PROT_READ));
	row("mmap of a hole", ENXIO, mmap_errno(dev, hole, 4096, PROT_READ));
	row("mmap of memory (control)", 0, mmap_errno(dev, phys, 65536, PROT_READ));
	{
		/* A read-only mapping cannot be made writable later. */
		void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, dev, (off_t)phys);

		row("mprotect of the mapping to writable", EACCES,
		    p == MAP_FAILED ? -1 :
		    (mprotect(p, 4096, PROT_READ | PROT_WRITE) ? errno : 0));
		if (p != MAP_FAILED)
			munmap(p, 4096);
	}
#undef CASE

	at.dev = dev;
	at.phys = phys;
	at.hole = hole;
	at.mmio = mmio;
	at.bdev_size = bdev_size;
	at.nodirect = nodirect;
	at.append = append;
	at.pipe_w = pipefd[1];
	at.dir = dir;
	at.bdev = bdev;
	at.scratch = scratch;
	if (!at.race_phys)
		at.race_phys = phys;
	if (info.features & PHYSCAP_FEAT_PRETIMEOUT_GOV)
		selftest_arm(&at);
	else
		row("ARM without the pretimeout governor (watchdog core not loaded)",
		    EOPNOTSUPP, try_arm(dev));

	printf("{\"note\":\"summary\",\"failures\":%d}\n", failures);
	return failures ? 1 : 0;
}

static const struct command commands[] = {
	{ "selftest", cmd_selftest,
	  "--phys P --scratch DIR --blockdev DEV [--watchdog /dev/watchdogN --watchdog-id N --slow DEV --race-phys P --race-len L]",
	  "the bad-input table (WRITE, mmap, ARM/DISARM/events, a firing watchdog): a JSON row each" },
	{ "poison-test", cmd_poison_test, "--scratch DIR",
	  "poisons a page of its own (MADV_HWPOISON); WRITE must give zeros, counted as poisoned" },
	{ "fuzz", cmd_fuzz, "--count N --seed S --phys P --scratch DIR",
	  "random ioctls, reproducible for a seed; counts the errnos they get" },
	{ "watchdog-arm", cmd_watchdog_arm,
	  "[--device D] [--timeout S] [--pretimeout S] [--hold S] [--no-stop]",
	  "a wedged system: sets a watchdog's timeouts, feeds it once, starves it --hold s, stops it (--no-stop: leaves it running)" },
	{ "kill-after", cmd_kill_after, "MARKER -- COMMAND [ARGS...]",
	  "a crash at a chosen moment: SIGKILLs the command once its output holds MARKER" },
};

static const struct tool tool = {
	.name = "physcap-selftest",
	.about = "physcap's test tools: the bad-input table, fault injection, a fuzzer.",
	.commands = commands,
	.nr_commands = ARRAY_SIZE(commands),
};

int main(int argc, char **argv)
{
	return tool_main(&tool, argc, argv);
}
