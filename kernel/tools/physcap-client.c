// SPDX-License-Identifier: GPL-2.0
/*
 * physcap-client: drives /dev/physcap without Node, on boards that have no
 * Node (and for tests and benchmarks).  Every command prints JSON; the
 * command table at the end is the usage (physcap-client with no command
 * prints it).
 *
 *   info
 *   write PHYS LEN DEST [--offset N] [--allow-mmio] [--no-bounce]
 *         [--existing] [--no-fsync] [--alarm-ms N]
 *   devmem PHYS LEN DEST [--direct] [--existing]   the question's way
 *   mmap-dump PHYS LEN                  read-only mapping to stdout
 *   capture OUT NAME PHYS LEN [NAME PHYS LEN ...] [--existing] [--no-fsync]
 *                                      an ELF core of the ranges (elfcore.h),
 *                                      written zero-copy; OUT a new file or
 *                                      (--existing) a block device; after a
 *                                      failure nothing passes for a core
 *   arm WATCHDOG_ID DEST PHYS LEN [PHYS LEN ...] [--then-panic] [--wait]
 *       [--cookie N]                   an in-kernel capture on a pretimeout;
 *                                      the arm lives while this runs
 *   events [--follow]                  the module's event records
 *   disarm ID
 *   status ID
 *
 * The test tools (selftest, fuzz, poison-test, watchdog-arm) are
 * physcap-selftest (physcap-selftest.c).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "elfcore.h"
#include "kmem.h"

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

static int cmd_info(int argc, char **argv)
{
	struct physcap_info info;
	struct physcap_kernel_map km;
	int fd = open_device();

	(void)argc;	/* takes no arguments, and ignores any */
	(void)argv;
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

static const struct command commands[] = {
	{ "info", cmd_info, "",
	  "the module's ABI version, limits, features and kernel map" },
	{ "write", cmd_write,
	  "PHYS LEN DEST [--offset N] [--allow-mmio] [--no-bounce] [--existing] [--no-fsync] [--alarm-ms N]",
	  "one range to a new file (or --existing file or device) with the WRITE ioctl, zero-copy" },
	{ "devmem", cmd_devmem, "PHYS LEN DEST [--direct] [--existing]",
	  "the same through an mmap of /dev/mem and write(2), for comparison" },
	{ "mmap-dump", cmd_mmap_dump, "PHYS LEN",
	  "a range through the module's read-only mapping, to stdout" },
	{ "capture", cmd_capture,
	  "OUT NAME PHYS LEN [NAME PHYS LEN ...] [--existing] [--no-fsync]",
	  "an ELF core of the named ranges, zero-copy; after a failure nothing passes for a core" },
	{ "arm", cmd_arm,
	  "WATCHDOG_ID DEST PHYS LEN [PHYS LEN ...] [--then-panic] [--wait] [--cookie N]",
	  "an in-kernel capture on the watchdog's pretimeout; armed while this runs" },
	{ "events", cmd_events, "[--follow]",
	  "the module's event records, one JSON line each" },
	{ "disarm", cmd_disarm, "ID",
	  "DISARM by id (EPERM for another process's arm: end the arming process instead)" },
	{ "status", cmd_status, "ID", "an arm's state and progress" },
};

static const struct tool tool = {
	.name = "physcap-client",
	.about = "Drives /dev/physcap (physcap.ko) on a board, without Node.",
	.commands = commands,
	.nr_commands = ARRAY_SIZE(commands),
};

int main(int argc, char **argv)
{
	return tool_main(&tool, argc, argv);
}
