// SPDX-License-Identifier: GPL-2.0
/*
 * physcap-client: drives /dev/physcap without Node, for tests, benchmarks
 * and boards that have no Node.  Every command prints one JSON object.
 *
 *   info
 *   write PHYS LEN DEST [--offset N] [--allow-mmio] [--no-bounce]
 *         [--existing] [--no-fsync] [--alarm-ms N]
 *   devmem PHYS LEN DEST [--direct] [--existing]   the question's way
 *   mmap-dump PHYS LEN                  read-only mapping to stdout
 *   selftest --phys P --scratch DIR --blockdev DEV
 *   fuzz --count N --seed S --phys P --scratch DIR
 *   poison-test --scratch DIR           a poisoned page is written as zeros
 *   watchdog-arm [--device D] [--timeout S] [--pretimeout S] [--hold S]
 *   arm WATCHDOG_ID DEST PHYS LEN [PHYS LEN ...] [--then-panic] [--wait]
 *       [--cookie N] [--blockdev]      an in-kernel capture on a pretimeout;
 *                                      the arm lives while this runs
 *   events [--follow]                  the module's event records
 *   disarm ID
 *   status ID
 *   capture OUT NAME PHYS LEN [NAME PHYS LEN ...] [--existing] [--no-fsync]
 *                                      an ELF core of the ranges (elfcore.h),
 *                                      written zero-copy; OUT a new file or
 *                                      (--existing) a block device; after a
 *                                      failure nothing passes for a core
 *
 * Numbers accept 0x prefixes and K/M/G suffixes (binary).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/watchdog.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../physcap_uapi.h"
#include "elfcore.h"
#include "kmem.h"

_Static_assert(sizeof(struct physcap_info) == PHYSCAP_INFO_SIZE, "info size");
_Static_assert(sizeof(struct physcap_write) == PHYSCAP_WRITE_SIZE, "write size");
_Static_assert(sizeof(struct physcap_arm_range) == PHYSCAP_ARM_RANGE_SIZE, "arm range size");
_Static_assert(sizeof(struct physcap_arm) == PHYSCAP_ARM_SIZE, "arm size");
_Static_assert(sizeof(struct physcap_arm_status) == PHYSCAP_ARM_STATUS_SIZE, "arm status size");
_Static_assert(sizeof(struct physcap_event) == PHYSCAP_EVENT_SIZE, "event size");

#define DEV_PATH "/dev/physcap"

static const char *errno_name(int err)
{
	switch (err) {
	case 0: return "OK";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EROFS: return "EROFS";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case ESPIPE: return "ESPIPE";
	case ENOTTY: return "ENOTTY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EOVERFLOW: return "EOVERFLOW";
	case EAGAIN: return "EAGAIN";
	case E2BIG: return "E2BIG";
	case ECANCELED: return "ECANCELED";
	default: return "E?";
	}
}

static uint64_t parse_num(const char *s)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s) {
		fprintf(stderr, "physcap-client: not a number: %s\n", s);
		exit(2);
	}
	switch (*end) {
	case 'K':
	case 'k':
		v <<= 10;
		end++;
		break;
	case 'M':
	case 'm':
		v <<= 20;
		end++;
		break;
	case 'G':
	case 'g':
		v <<= 30;
		end++;
		break;
	}
	if (*end) {
		fprintf(stderr, "physcap-client: not a number: %s\n", s);
		exit(2);
	}
	return v;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_device(void)
{
	int fd = open(DEV_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"open %s\"}\n",
		       errno_name(errno), DEV_PATH);
		exit(1);
	}
	return fd;
}

/* A command's destination, or -1 after printing the JSON failure. */
static int open_dest(const char *path, int oflags)
{
	int fd = open(path, oflags, 0600);

	if (fd < 0)
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"open %s\"}\n",
		       errno_name(errno), path);
	return fd;
}

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

static void print_write(const struct physcap_write *w, int err, double secs)
{
	printf("{\"ok\":%s,\"errno\":\"%s\",\"phys\":\"0x%" PRIx64 "\","
	       "\"length\":%" PRIu64 ",\"bytes_written\":%" PRIu64 ","
	       "\"bytes_zero_copy\":%" PRIu64 ",\"bytes_bounced\":%" PRIu64 ","
	       "\"bytes_poisoned\":%" PRIu64 ",\"bytes_buffered\":%" PRIu64 ","
	       "\"seconds\":%.6f}\n",
	       err ? "false" : "true", errno_name(err),
	       (uint64_t)w->phys_addr, (uint64_t)w->length,
	       (uint64_t)w->bytes_written, (uint64_t)w->bytes_zero_copy,
	       (uint64_t)w->bytes_bounced, (uint64_t)w->bytes_poisoned,
	       (uint64_t)w->bytes_buffered, secs);
}

static int cmd_info(void)
{
	struct physcap_info info;
	struct physcap_kernel_map km;
	int fd = open_device();

	memset(&info, 0, sizeof(info));
	if (ioctl(fd, PHYSCAP_IOC_INFO, &info)) {
		printf("{\"ok\":false,\"errno\":\"%s\"}\n", errno_name(errno));
		return 1;
	}
	printf("{\"ok\":true,\"abi_version\":%u,\"page_size\":%u,"
	       "\"features\":%" PRIu64 ",\"max_length\":%" PRIu64 ","
	       "\"phys_limit\":%" PRIu64 ",\"batch_pages\":%u",
	       info.abi_version, info.page_size, (uint64_t)info.features,
	       (uint64_t)info.max_length, (uint64_t)info.phys_limit,
	       info.batch_pages);
	/* Addresses as hex strings: JSON numbers lose bits past 2^53. */
	memset(&km, 0, sizeof(km));
	if (!ioctl(fd, PHYSCAP_IOC_KERNEL_MAP, &km))
		printf(",\"kernel_map\":{\"direct_map_virt\":\"0x%" PRIx64 "\","
		       "\"direct_map_start\":\"0x%" PRIx64 "\",\"direct_map_end\":\"0x%" PRIx64 "\","
		       "\"image_offset\":\"0x%" PRIx64 "\"}",
		       (uint64_t)km.direct_map_virt, (uint64_t)km.direct_map_start,
		       (uint64_t)km.direct_map_end, (uint64_t)km.image_offset);
	else
		printf(",\"kernel_map\":null,\"kernel_map_errno\":\"%s\"", errno_name(errno));
	printf("}\n");
	close(fd);
	return 0;
}

static void on_alarm(int sig)
{
	(void)sig;	/* only here to interrupt the ioctl */
}

static int cmd_write(int argc, char **argv)
{
	struct physcap_write w;
	int oflags = O_WRONLY | O_DIRECT | O_CLOEXEC | O_CREAT | O_EXCL;
	bool do_fsync = true;
	long alarm_ms = 0;
	double t0, secs;
	int dev, dest, err = 0, i;

	if (argc < 3) {
		fprintf(stderr, "usage: write PHYS LEN DEST [options]\n");
		return 2;
	}
	memset(&w, 0, sizeof(w));
	w.phys_addr = parse_num(argv[0]);
	w.length = parse_num(argv[1]);
	for (i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--offset") && i + 1 < argc)
			w.dest_offset = parse_num(argv[++i]);
		else if (!strcmp(argv[i], "--allow-mmio"))
			w.flags |= PHYSCAP_WRITE_ALLOW_MMIO;
		else if (!strcmp(argv[i], "--no-bounce"))
			w.flags |= PHYSCAP_WRITE_NO_BOUNCE;
		else if (!strcmp(argv[i], "--existing"))
			oflags &= ~(O_CREAT | O_EXCL);
		else if (!strcmp(argv[i], "--no-fsync"))
			do_fsync = false;
		else if (!strcmp(argv[i], "--alarm-ms") && i + 1 < argc)
			alarm_ms = (long)parse_num(argv[++i]);
		else {
			fprintf(stderr, "physcap-client: unknown option %s\n", argv[i]);
			return 2;
		}
	}

	dev = open_device();
	dest = open_dest(argv[2], oflags);
	if (dest < 0)
		return 1;
	w.dest_fd = dest;

	if (alarm_ms) {
		struct sigaction sa = { .sa_handler = on_alarm };
		struct itimerval it = {
			.it_value = { alarm_ms / 1000, (alarm_ms % 1000) * 1000 },
		};

		sigaction(SIGALRM, &sa, NULL);	/* no SA_RESTART */
		setitimer(ITIMER_REAL, &it, NULL);
	}

	t0 = now_s();
	if (ioctl(dev, PHYSCAP_IOC_WRITE, &w))
		err = errno;
	if (!err && do_fsync && fsync(dest))
		err = errno;
	secs = now_s() - t0;
	print_write(&w, err, secs);
	close(dest);
	close(dev);
	return err ? 1 : 0;
}

/*
 * The question's approach: mmap /dev/mem and write(2) the mapping.  With
 * O_DIRECT this fails with EFAULT (the mapping has no struct pages);
 * without it every byte is copied into the page cache.
 */
static int cmd_devmem(int argc, char **argv)
{
	int oflags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
	uint64_t phys, len, done = 0;
	bool direct = false;
	double t0, secs;
	int mem, dest, err = 0, i;
	uint8_t *map;

	if (argc < 3) {
		fprintf(stderr, "usage: devmem PHYS LEN DEST [--direct] [--existing]\n");
		return 2;
	}
	phys = parse_num(argv[0]);
	len = parse_num(argv[1]);
	for (i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--direct")) {
			direct = true;
			oflags |= O_DIRECT;
		} else if (!strcmp(argv[i], "--existing")) {
			oflags &= ~(O_CREAT | O_EXCL);
		} else {
			fprintf(stderr, "physcap-client: unknown option %s\n", argv[i]);
			return 2;
		}
	}

	mem = open("/dev/mem", O_RDONLY | O_CLOEXEC);
	if (mem < 0) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"open /dev/mem\"}\n",
		       errno_name(errno));
		return 1;
	}
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, mem, (off_t)phys);
	if (map == MAP_FAILED) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"mmap /dev/mem\"}\n",
		       errno_name(errno));
		return 1;
	}
	dest = open_dest(argv[2], oflags);
	if (dest < 0)
		return 1;

	t0 = now_s();
	while (done < len) {
		size_t n = len - done > (1 << 20) ? (1 << 20) : len - done;
		ssize_t r = write(dest, map + done, n);

		if (r <= 0) {
			err = r < 0 ? errno : EIO;
			break;
		}
		done += r;
	}
	if (!err && fsync(dest))
		err = errno;
	secs = now_s() - t0;
	printf("{\"ok\":%s,\"errno\":\"%s\",\"direct\":%s,\"bytes_written\":%" PRIu64
	       ",\"seconds\":%.6f}\n", err ? "false" : "true", errno_name(err),
	       direct ? "true" : "false", done, secs);
	munmap(map, len);
	close(dest);
	close(mem);
	return err ? 1 : 0;
}

static int cmd_mmap_dump(int argc, char **argv)
{
	uint64_t phys, len, done = 0;
	uint8_t *map;
	int dev;

	if (argc < 2) {
		fprintf(stderr, "usage: mmap-dump PHYS LEN\n");
		return 2;
	}
	phys = parse_num(argv[0]);
	len = parse_num(argv[1]);
	dev = open_device();
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, dev, (off_t)phys);
	if (map == MAP_FAILED) {
		fprintf(stderr, "physcap-client: mmap: %s\n", errno_name(errno));
		return 1;
	}
	while (done < len) {
		ssize_t r = write(STDOUT_FILENO, map + done, len - done);

		if (r <= 0)
			return 1;
		done += r;
	}
	munmap(map, len);
	close(dev);
	return 0;
}

/* ---- capture: an ELF core on a board without Node ---- */

#define CAPTURE_MAX_REGIONS 64
#define CAPTURE_HEADER_MAX (1 << 20)

static bool valid_region_name(const char *s)
{
	const char *p;

	if (!*s || strlen(s) > 64)
		return false;
	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return false;
	return true;
}

/*
 * The kernel's VMCOREINFO note desc, read through the module's read-only
 * mapping at the address /sys/kernel/vmcoreinfo gives; NULL if any step
 * fails (the capture goes on without it and says so).
 */
static char *read_vmcoreinfo(int dev, size_t *len)
{
	unsigned long long phys;
	unsigned int size;
	long page = sysconf(_SC_PAGESIZE);
	uint64_t base;
	size_t span;
	uint8_t *map;
	Elf64_Nhdr nh;
	char *desc = NULL;
	FILE *f = fopen("/sys/kernel/vmcoreinfo", "re");

	if (!f)
		return NULL;
	if (fscanf(f, "%llx %x", &phys, &size) != 2 || !size || size > (1 << 20)) {
		fclose(f);
		return NULL;
	}
	fclose(f);
	base = phys & ~(uint64_t)(page - 1);
	span = phys - base + size;
	map = mmap(NULL, span, PROT_READ, MAP_SHARED, dev, (off_t)base);
	if (map == MAP_FAILED)
		return NULL;
	memcpy(&nh, map + (phys - base), sizeof(nh));
	/* One note: name "VMCOREINFO\0" padded to 4, then the text. */
	if (nh.n_namesz == 11 && sizeof(nh) + 12 + (size_t)nh.n_descsz <= size &&
	    !memcmp(map + (phys - base) + sizeof(nh), "VMCOREINFO", 11)) {
		desc = malloc(nh.n_descsz);
		if (desc) {
			memcpy(desc, map + (phys - base) + sizeof(nh) + 12, nh.n_descsz);
			*len = nh.n_descsz;
		}
	}
	munmap(map, span);
	return desc;
}

/*
 * After a failure: no file may pass for a core.  One this run created is
 * removed; an existing one (a dump partition) that this run began to
 * overwrite gets its first block zeroed, so an old core's header does not
 * describe the mix of old and new bytes now there.
 * Returns whether the header block is known to be clear.
 */
static bool fail_capture(int dest, const char *path, bool existing, void *block,
			 size_t align, bool *removed)
{
	if (!existing) {
		*removed = unlink(path) == 0;
		return *removed;
	}
	memset(block, 0, align);
	if (pwrite(dest, block, align, 0) != (ssize_t)align)
		return false;
	return fsync(dest) == 0;
}

static int cmd_capture(int argc, char **argv)
{
	struct core_region regions[CAPTURE_MAX_REGIONS];
	struct physcap_write stats[CAPTURE_MAX_REGIONS];
	struct core_note notes[2];
	struct physcap_info info;
	struct core_alias alias;
	struct kmem km;
	bool have_alias = false, alias_placed = false, have_kmap;
	bool removed = false, cleared = false, touched = false;
	struct utsname uts;
	int oflags = O_WRONLY | O_DIRECT | O_CLOEXEC | O_CREAT | O_EXCL;
	bool do_fsync = true, is_blockdev;
	unsigned int nr = 0, nr_notes = 0, i;
	char *meta, *vmcoreinfo;
	size_t meta_len, vmcoreinfo_len = 0, header_len, align, at;
	uint64_t file_size, total = 0, zero_copy = 0;
	void *header;
	struct stat st;
	double t0, secs;
	int dev, dest, err = 0, argi;
	const char *what = "";

	if (argc < 4) {
		fprintf(stderr, "usage: capture OUT NAME PHYS LEN [NAME PHYS LEN ...] [--existing] [--no-fsync]\n");
		return 2;
	}
	for (argi = 1; argi < argc; argi++) {
		if (!strcmp(argv[argi], "--existing")) {
			oflags &= ~(O_CREAT | O_EXCL);
			continue;
		}
		if (!strcmp(argv[argi], "--no-fsync")) {
			do_fsync = false;
			continue;
		}
		if (argv[argi][0] == '-') {
			fprintf(stderr, "physcap-client: unknown option %s\n", argv[argi]);
			return 2;
		}
		if (argi + 2 >= argc || nr == CAPTURE_MAX_REGIONS) {
			fprintf(stderr, "physcap-client: regions are NAME PHYS LEN triples, at most %d\n",
				CAPTURE_MAX_REGIONS);
			return 2;
		}
		if (!valid_region_name(argv[argi])) {
			fprintf(stderr, "physcap-client: region name '%s': use 1-64 of A-Z a-z 0-9 _ - .\n",
				argv[argi]);
			return 2;
		}
		regions[nr].name = argv[argi];
		regions[nr].phys = parse_num(argv[argi + 1]);
		regions[nr].len = parse_num(argv[argi + 2]);
		total += regions[nr].len;
		nr++;
		argi += 2;
	}
	if (!nr) {
		fprintf(stderr, "physcap-client: no regions\n");
		return 2;
	}

	dev = open_device();
	memset(&info, 0, sizeof(info));
	if (ioctl(dev, PHYSCAP_IOC_INFO, &info)) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"info\"}\n", errno_name(errno));
		return 1;
	}
	/* The agent's DATA_ALIGN, or the page if larger: every p_offset direct-I/O aligned. */
	align = info.page_size > 4096 ? info.page_size : 4096;
	for (i = 0; i < nr; i++) {
		if (regions[i].len % align || regions[i].phys % align) {
			fprintf(stderr, "physcap-client: region %s: start and length must be multiples of %zu\n",
				regions[i].name, align);
			return 2;
		}
	}

	/* The PHYSCAP note: what this is, from where, for the host's physcap. */
	uname(&uts);
	meta_len = 512 + (size_t)nr * 128;
	meta = calloc(1, meta_len);
	if (!meta)
		return 1;
	at = snprintf(meta, meta_len,
		      "{\"tool\":\"physcap-client\",\"machine\":\"%s\",\"release\":\"%s\","
		      "\"node\":\"%s\",\"time\":%lld,\"regions\":[",
		      uts.machine, uts.release, uts.nodename, (long long)time(NULL));
	for (i = 0; i < nr && at < meta_len; i++)
		at += snprintf(meta + at, meta_len - at,
			       "%s{\"name\":\"%s\",\"phys\":\"0x%" PRIx64 "\",\"size\":%" PRIu64 "}",
			       i ? "," : "", regions[i].name, regions[i].phys, regions[i].len);
	if (at < meta_len)
		at += snprintf(meta + at, meta_len - at, "]}");
	if (at >= meta_len) {
		fprintf(stderr, "physcap-client: note too long\n");
		return 1;
	}
	notes[nr_notes++] = (struct core_note) {
		.name = "PHYSCAP", .type = NOTE_TYPE_PHYSCAP, .desc = meta, .desc_len = at,
	};
	vmcoreinfo = read_vmcoreinfo(dev, &vmcoreinfo_len);
	if (vmcoreinfo)
		notes[nr_notes++] = (struct core_note) {
			.name = "VMCOREINFO", .type = NOTE_TYPE_VMCOREINFO,
			.desc = vmcoreinfo, .desc_len = vmcoreinfo_len,
		};

	if (posix_memalign(&header, align, CAPTURE_HEADER_MAX))
		return 1;
	/* Where the kernel maps the ranges: what crash, drgn and gdb read by. */
	have_kmap = kmem_read(dev, &km);
	if (have_kmap) {
		kmem_set_vaddrs(&km, regions, nr);
		have_alias = kmem_image_alias(&km, &alias);
	} else {
		fprintf(stderr, "physcap-client: no KERNEL_MAP (%s): physical addresses only\n",
			errno_name(errno));
	}
	header_len = core_layout(header, CAPTURE_HEADER_MAX, regions, nr,
				 have_alias ? &alias : NULL, &alias_placed, notes, nr_notes,
				 align, &file_size);
	if (!header_len) {
		fprintf(stderr, "physcap-client: the ELF header does not fit in %d bytes\n",
			CAPTURE_HEADER_MAX);
		return 1;
	}

	dest = open_dest(argv[0], oflags);
	if (dest < 0)
		return 1;
	t0 = now_s();
	fstat(dest, &st);
	is_blockdev = S_ISBLK(st.st_mode);
	if (is_blockdev) {
		uint64_t dev_size = 0;

		if (ioctl(dest, BLKGETSIZE64, &dev_size) || dev_size < file_size) {
			err = dev_size < file_size ? ENOSPC : errno;
			what = "device size";
		}
	} else {
		/* All of it up front: ENOSPC now, not half-way. */
		err = posix_fallocate(dest, 0, (off_t)file_size);
		if (err)
			what = "preallocate";
	}
	/*
	 * The ranges first, the ELF header last: a capture that fails part-way
	 * never has headers that list a range it did not write (the file's
	 * zeros would pass for its bytes).  The ranges after a failed one (all
	 * of them when the checks above failed) are not written: their counts
	 * in the JSON stay zero.
	 */
	memset(stats, 0, sizeof(stats[0]) * nr);
	touched = !err;
	for (i = 0; !err && i < nr; i++) {
		stats[i].phys_addr = regions[i].phys;
		stats[i].length = regions[i].len;
		stats[i].dest_fd = dest;
		stats[i].dest_offset = regions[i].offset;
		if (ioctl(dev, PHYSCAP_IOC_WRITE, &stats[i])) {
			err = errno;
			what = regions[i].name;
		}
		zero_copy += stats[i].bytes_zero_copy;
	}
	if (!err && pwrite(dest, header, header_len, 0) != (ssize_t)header_len) {
		err = errno ? errno : EIO;
		what = "ELF header";
	}
	if (!err && do_fsync && fsync(dest)) {
		err = errno;
		what = "fsync";
	}
	secs = now_s() - t0;
	/* A device refused before a byte was written keeps what it held. */
	if (err && (touched || (oflags & O_EXCL)))
		cleared = fail_capture(dest, argv[0], !(oflags & O_EXCL), header, align, &removed);

	printf("{\"ok\":%s,\"errno\":\"%s\",\"what\":\"%s\",\"out\":\"%s\",\"machine\":%u,"
	       "\"big_endian\":%s,\"vmcoreinfo\":%s,\"kernel_map\":%s,\"image_alias\":%s,"
	       "\"file_size\":%" PRIu64 ",\"removed\":%s,\"header_cleared\":%s,"
	       "\"bytes\":%" PRIu64 ",\"bytes_zero_copy\":%" PRIu64 ",\"seconds\":%.6f,\"regions\":[",
	       err ? "false" : "true", errno_name(err), what, argv[0], core_machine(),
	       core_data() == ELFDATA2MSB ? "true" : "false",
	       vmcoreinfo ? "true" : "false", have_kmap ? "true" : "false",
	       alias_placed ? "true" : "false", file_size, removed ? "true" : "false",
	       cleared ? "true" : "false", total, zero_copy, secs);
	for (i = 0; i < nr; i++)
		printf("%s{\"name\":\"%s\",\"phys\":\"0x%" PRIx64 "\",\"vaddr\":\"0x%" PRIx64
		       "\",\"length\":%" PRIu64
		       ",\"offset\":%" PRIu64 ",\"bytes_written\":%" PRIu64
		       ",\"bytes_zero_copy\":%" PRIu64 ",\"bytes_bounced\":%" PRIu64 "}",
		       i ? "," : "", regions[i].name, regions[i].phys, regions[i].vaddr,
		       regions[i].len, regions[i].offset, (uint64_t)stats[i].bytes_written,
		       (uint64_t)stats[i].bytes_zero_copy, (uint64_t)stats[i].bytes_bounced);
	printf("]}\n");
	close(dest);
	close(dev);
	free(header);
	free(meta);
	free(vmcoreinfo);
	return err ? 1 : 0;
}

/* ---- armed captures and events ---- */

static const char *event_name(unsigned int type)
{
	switch (type) {
	case PHYSCAP_EVENT_PRETIMEOUT: return "pretimeout";
	case PHYSCAP_EVENT_CAPTURE_DONE: return "capture_done";
	case PHYSCAP_EVENT_CAPTURE_FAILED: return "capture_failed";
	default: return "unknown";
	}
}

static const char *state_name(unsigned int state)
{
	switch (state) {
	case PHYSCAP_ARM_STATE_ARMED: return "armed";
	case PHYSCAP_ARM_STATE_FIRING: return "firing";
	case PHYSCAP_ARM_STATE_DONE: return "done";
	case PHYSCAP_ARM_STATE_FAILED: return "failed";
	default: return "unknown";
	}
}

static void print_event(const struct physcap_event *ev)
{
	printf("{\"event\":\"%s\",\"size\":%u,\"version\":%u,\"seq\":%" PRIu64
	       ",\"watchdog_id\":%u,\"error\":\"%s\",\"time_real_ns\":%" PRIu64
	       ",\"time_mono_ns\":%" PRIu64 ",\"cookie\":\"0x%" PRIx64 "\",\"arm_id\":%" PRIu64
	       ",\"bytes_written\":%" PRIu64 ",\"bytes_zero_copy\":%" PRIu64
	       ",\"bytes_bounced\":%" PRIu64 ",\"first_byte_latency_ns\":%" PRIu64
	       ",\"duration_ns\":%" PRIu64 "}\n",
	       event_name(ev->type), ev->size, ev->version, (uint64_t)ev->seq,
	       ev->watchdog_id, errno_name(-ev->error), (uint64_t)ev->time_real_ns,
	       (uint64_t)ev->time_mono_ns, (uint64_t)ev->cookie, (uint64_t)ev->arm_id,
	       (uint64_t)ev->bytes_written, (uint64_t)ev->bytes_zero_copy,
	       (uint64_t)ev->bytes_bounced, (uint64_t)ev->first_byte_latency_ns,
	       (uint64_t)ev->duration_ns);
}

/* Read whole records; returns how many, 0 on EAGAIN, -errno on error. */
static int read_events(int fd, struct physcap_event *evs, int max)
{
	ssize_t r = read(fd, evs, sizeof(*evs) * (size_t)max);

	if (r < 0)
		return errno == EAGAIN ? 0 : -errno;
	return (int)(r / (ssize_t)sizeof(*evs));
}

static void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

static int cmd_events(int argc, char **argv)
{
	struct physcap_event evs[16];
	bool follow = argc > 0 && !strcmp(argv[0], "--follow");
	int dev = open_device(), n, i;

	set_nonblock(dev, !follow);
	for (;;) {
		n = read_events(dev, evs, 16);
		if (n < 0) {
			printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"read\"}\n",
			       errno_name(-n));
			return 1;
		}
		if (!n)
			break;
		for (i = 0; i < n; i++)
			print_event(&evs[i]);
	}
	close(dev);
	return 0;
}

/*
 * arm: destination opened O_DIRECT (files created and preallocated with
 * fallocate to the ranges' total, laid out one after another from offset
 * 0), the arm made, its id printed.  The arm lives while this process
 * does: with --wait until its capture's record arrives, else until killed.
 */
static int cmd_arm(int argc, char **argv)
{
	struct physcap_arm a;
	struct physcap_event evs[16];
	bool wait_done = false;
	uint64_t total = 0;
	struct stat st;
	int i, dev, dest, n;

	if (argc < 4) {
		fprintf(stderr, "usage: arm WATCHDOG_ID DEST PHYS LEN [PHYS LEN ...] [--then-panic] [--wait] [--cookie N]\n");
		return 2;
	}
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.watchdog_id = (uint32_t)parse_num(argv[0]);
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--then-panic")) {
			a.flags |= PHYSCAP_ARM_THEN_PANIC;
		} else if (!strcmp(argv[i], "--wait")) {
			wait_done = true;
		} else if (!strcmp(argv[i], "--cookie") && i + 1 < argc) {
			a.cookie = parse_num(argv[++i]);
		} else if (i + 1 < argc && argv[i][0] != '-') {
			if (a.nr_ranges == PHYSCAP_ARM_MAX_RANGES) {
				fprintf(stderr, "physcap-client: at most %d ranges\n",
					PHYSCAP_ARM_MAX_RANGES);
				return 2;
			}
			a.ranges[a.nr_ranges].phys_addr = parse_num(argv[i]);
			a.ranges[a.nr_ranges].length = parse_num(argv[++i]);
			a.ranges[a.nr_ranges].dest_offset = total;
			total += a.ranges[a.nr_ranges].length;
			a.nr_ranges++;
		} else {
			fprintf(stderr, "physcap-client: bad argument %s\n", argv[i]);
			return 2;
		}
	}

	if (!stat(argv[1], &st) && S_ISBLK(st.st_mode)) {
		dest = open(argv[1], O_WRONLY | O_DIRECT | O_CLOEXEC);
	} else {
		dest = open(argv[1], O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
		/* Blocks and size now: nothing is allocated at fire time. */
		if (dest >= 0 && fallocate(dest, 0, 0, (off_t)total)) {
			printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"fallocate %s\"}\n",
			       errno_name(errno), argv[1]);
			return 1;
		}
	}
	if (dest < 0) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"open %s\"}\n",
		       errno_name(errno), argv[1]);
		return 1;
	}
	a.dest_fd = dest;

	dev = open_device();
	if (wait_done) {
		/* Skip the backlog: only what follows this arm is printed. */
		set_nonblock(dev, true);
		while (read_events(dev, evs, 16) > 0)
			;
		set_nonblock(dev, false);
	}
	if (ioctl(dev, PHYSCAP_IOC_ARM, &a)) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"ARM\"}\n", errno_name(errno));
		return 1;
	}
	/* The module holds its own reference to the destination now. */
	close(dest);
	printf("{\"ok\":true,\"arm_id\":%" PRIu64 ",\"watchdog_id\":%u,\"dest\":\"%s\","
	       "\"ranges\":%u,\"bytes_total\":%" PRIu64 ",\"cookie\":\"0x%" PRIx64 "\","
	       "\"then_panic\":%s}\n", (uint64_t)a.arm_id, a.watchdog_id, argv[1],
	       a.nr_ranges, total, (uint64_t)a.cookie,
	       (a.flags & PHYSCAP_ARM_THEN_PANIC) ? "true" : "false");

	if (!wait_done) {
		for (;;)
			pause();	/* SIGTERM/SIGINT end it, and the arm */
	}
	for (;;) {
		n = read_events(dev, evs, 16);
		if (n < 0) {
			printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"read\"}\n",
			       errno_name(-n));
			return 1;
		}
		for (i = 0; i < n; i++) {
			print_event(&evs[i]);
			if (evs[i].arm_id == a.arm_id &&
			    (evs[i].type == PHYSCAP_EVENT_CAPTURE_DONE ||
			     evs[i].type == PHYSCAP_EVENT_CAPTURE_FAILED))
				return evs[i].type == PHYSCAP_EVENT_CAPTURE_DONE ? 0 : 1;
		}
	}
}

static int cmd_disarm(int argc, char **argv)
{
	uint64_t id;
	int dev, err;

	if (argc < 1) {
		fprintf(stderr, "usage: disarm ID\n");
		return 2;
	}
	id = parse_num(argv[0]);
	dev = open_device();
	err = ioctl(dev, PHYSCAP_IOC_DISARM, &id) ? errno : 0;
	printf("{\"ok\":%s,\"errno\":\"%s\",\"arm_id\":%" PRIu64 "}\n",
	       err ? "false" : "true", errno_name(err), id);
	close(dev);
	return err ? 1 : 0;
}

static int arm_status(int dev, uint64_t id, struct physcap_arm_status *st)
{
	memset(st, 0, sizeof(*st));
	st->arm_id = id;
	return ioctl(dev, PHYSCAP_IOC_ARM_STATUS, st) ? errno : 0;
}

static int cmd_status(int argc, char **argv)
{
	struct physcap_arm_status st;
	int dev, err;

	if (argc < 1) {
		fprintf(stderr, "usage: status ID\n");
		return 2;
	}
	dev = open_device();
	err = arm_status(dev, parse_num(argv[0]), &st);
	if (err) {
		printf("{\"ok\":false,\"errno\":\"%s\"}\n", errno_name(err));
		return 1;
	}
	printf("{\"ok\":true,\"arm_id\":%" PRIu64 ",\"state\":\"%s\",\"error\":\"%s\","
	       "\"bytes_written\":%" PRIu64 ",\"bytes_total\":%" PRIu64 ",\"cookie\":\"0x%" PRIx64
	       "\",\"watchdog_id\":%u,\"flags\":%u,\"first_byte_latency_ns\":%" PRIu64
	       ",\"duration_ns\":%" PRIu64 "}\n", (uint64_t)st.arm_id, state_name(st.state),
	       errno_name(-st.error), (uint64_t)st.bytes_written, (uint64_t)st.bytes_total,
	       (uint64_t)st.cookie, st.watchdog_id, st.flags,
	       (uint64_t)st.first_byte_latency_ns, (uint64_t)st.duration_ns);
	close(dev);
	return 0;
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

static void row(const char *name, int expected, int actual)
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
static int without_rawio(int (*fn)(int), int dev)
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

/* ---- selftest of ARM, DISARM, ARM_STATUS and the event reads ---- */

struct arm_selftest {
	int dev;
	uint64_t phys, hole, mmio, bdev_size;
	int nodirect, append, pipe_w, dir, bdev;
	const char *scratch;
	const char *watchdog;		/* optional: the firing cases */
	uint32_t watchdog_id;
	const char *slow;
	uint64_t race_phys, race_len;
};

static int do_arm(int dev, struct physcap_arm *a)
{
	return ioctl(dev, PHYSCAP_IOC_ARM, a) ? errno : 0;
}

static int do_disarm(int dev, uint64_t id)
{
	return ioctl(dev, PHYSCAP_IOC_DISARM, &id) ? errno : 0;
}

static int try_arm(int dev)
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
	row("DISARM after the capture finished (control)", 0, do_disarm(t->dev, a.arm_id));

	/* The magic close: stop the watchdog before the main test uses it. */
	if (write(wd, "V", 1) != 1)
		row("firing: magic close", 0, errno);
	close(wd);
	close(slow);
}

static void selftest_arm(struct arm_selftest *t)
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
	ACASE("ARM: non-zero reserved", EINVAL, a.reserved[3] = 1);
	ACASE("ARM: no ranges", EINVAL, a.nr_ranges = 0);
	ACASE("ARM: 17 ranges", EINVAL, a.nr_ranges = 17);
	ACASE("ARM: watchdog id beyond the core's limit", EINVAL, a.watchdog_id = 32);
	ACASE("ARM: negative fd", EBADF, a.dest_fd = -1);
	/* A number closed just now: the set-up above reused t->closed. */
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
		fprintf(stderr, "physcap-client: selftest set-up failed: %s\n",
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

static int cmd_poison_test(int argc, char **argv)
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
static int cmd_watchdog_arm(int argc, char **argv)
{
	const char *device = "/dev/watchdog0";
	int timeout = 10, pretimeout = 8, hold = 20, fd, i;

	for (i = 0; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--device"))
			device = argv[i + 1];
		else if (!strcmp(argv[i], "--timeout"))
			timeout = (int)parse_num(argv[i + 1]);
		else if (!strcmp(argv[i], "--pretimeout"))
			pretimeout = (int)parse_num(argv[i + 1]);
		else if (!strcmp(argv[i], "--hold"))
			hold = (int)parse_num(argv[i + 1]);
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
	sleep((unsigned int)hold);
	if (write(fd, "V", 1) != 1)
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

static int cmd_fuzz(int argc, char **argv)
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

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr,
			"usage: physcap-client info|write|devmem|mmap-dump|selftest|fuzz|poison-test|watchdog-arm|arm|events|disarm|status|capture ...\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "info"))
		return cmd_info();
	if (!strcmp(argv[1], "write"))
		return cmd_write(argc - 2, argv + 2);
	if (!strcmp(argv[1], "devmem"))
		return cmd_devmem(argc - 2, argv + 2);
	if (!strcmp(argv[1], "mmap-dump"))
		return cmd_mmap_dump(argc - 2, argv + 2);
	if (!strcmp(argv[1], "selftest"))
		return cmd_selftest(argc - 2, argv + 2);
	if (!strcmp(argv[1], "fuzz"))
		return cmd_fuzz(argc - 2, argv + 2);
	if (!strcmp(argv[1], "watchdog-arm"))
		return cmd_watchdog_arm(argc - 2, argv + 2);
	if (!strcmp(argv[1], "poison-test"))
		return cmd_poison_test(argc - 2, argv + 2);
	if (!strcmp(argv[1], "arm"))
		return cmd_arm(argc - 2, argv + 2);
	if (!strcmp(argv[1], "events"))
		return cmd_events(argc - 2, argv + 2);
	if (!strcmp(argv[1], "disarm"))
		return cmd_disarm(argc - 2, argv + 2);
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 2, argv + 2);
	if (!strcmp(argv[1], "capture"))
		return cmd_capture(argc - 2, argv + 2);
	fprintf(stderr, "physcap-client: unknown command %s\n", argv[1]);
	return 2;
}
