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
 *       [--no-digest] [--digest-out F] [--digest-driver D]
 *                                      an ELF core of the ranges (elfcore.h),
 *                                      written zero-copy; OUT a new file or
 *                                      (--existing) a block device; after a
 *                                      failure nothing passes for a core;
 *                                      once durable, its digest read back
 *                                      (digest.h) into OUT.digest
 *   arm WATCHDOG_ID DEST PHYS LEN [PHYS LEN ...] [--then-panic] [--wait]
 *       [--cookie N] [--core] [--replace] [--digest-out F] [--digest-driver D]
 *                                      an in-kernel capture on a pretimeout;
 *                                      the arm lives while this runs; --core
 *                                      lays DEST out as an ELF core with a
 *                                      stamp block after it (a new file, or a
 *                                      partition: one holding a core the
 *                                      kernel wrote only with --replace)
 *   digest PATH [--copy-to OUT] [--bytes N] [--digest-out F] [--digest-driver D]
 *                                      a core's digest file; an armed core's
 *                                      stamp checked first
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
#include "digest.h"
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

/* An ELF core laid out for some ranges: its header, where each goes, its size. */
struct core_plan {
	struct core_region regions[CAPTURE_MAX_REGIONS];
	unsigned int nr;
	size_t align;		/* of every offset: direct I/O */
	void *header;		/* header_len bytes, aligned */
	size_t header_len;
	uint64_t file_size;	/* the last region's end, aligned */
	bool have_kmap, alias_placed, have_vmcoreinfo;
};

/* The agent's DATA_ALIGN, or the page if larger: every p_offset direct-I/O aligned. */
static size_t core_align(int dev)
{
	struct physcap_info info;

	memset(&info, 0, sizeof(info));
	if (ioctl(dev, PHYSCAP_IOC_INFO, &info))
		return 0;
	return info.page_size > 4096 ? info.page_size : 4096;
}

/*
 * Lays out the core of p's regions: the PHYSCAP note (what this is, from
 * where; `extra` JSON members appended when not NULL), VMCOREINFO when the
 * kernel exports it, the kernel map's addresses.  Returns 0, or prints why
 * on stderr and returns the exit status.
 */
static int plan_core(int dev, struct core_plan *p, const char *extra)
{
	struct core_note notes[2];
	struct core_alias alias;
	struct utsname uts;
	struct kmem km;
	unsigned int nr_notes = 0, i;
	size_t meta_len, vmcoreinfo_len = 0, at;
	char *meta, *vmcoreinfo;
	bool have_alias = false;

	p->align = core_align(dev);
	if (!p->align) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"info\"}\n", errno_name(errno));
		return 1;
	}
	for (i = 0; i < p->nr; i++) {
		if (p->regions[i].len % p->align || p->regions[i].phys % p->align) {
			fprintf(stderr, "physcap-client: region %s: start and length must be multiples of %zu\n",
				p->regions[i].name, p->align);
			return 2;
		}
	}

	uname(&uts);
	meta_len = 768 + (size_t)p->nr * 128;
	meta = calloc(1, meta_len);
	if (!meta)
		return 1;
	at = snprintf(meta, meta_len,
		      "{\"tool\":\"physcap-client\",\"machine\":\"%s\",\"release\":\"%s\","
		      "\"node\":\"%s\",\"time\":%lld,\"regions\":[",
		      uts.machine, uts.release, uts.nodename, (long long)time(NULL));
	for (i = 0; i < p->nr && at < meta_len; i++)
		at += snprintf(meta + at, meta_len - at,
			       "%s{\"name\":\"%s\",\"phys\":\"0x%" PRIx64 "\",\"size\":%" PRIu64 "}",
			       i ? "," : "", p->regions[i].name, p->regions[i].phys, p->regions[i].len);
	if (at < meta_len)
		at += snprintf(meta + at, meta_len - at, "]%s%s}", extra ? "," : "", extra ? extra : "");
	if (at >= meta_len) {
		fprintf(stderr, "physcap-client: note too long\n");
		free(meta);
		return 1;
	}
	notes[nr_notes++] = (struct core_note) {
		.name = "PHYSCAP", .type = NOTE_TYPE_PHYSCAP, .desc = meta, .desc_len = at,
	};
	vmcoreinfo = read_vmcoreinfo(dev, &vmcoreinfo_len);
	p->have_vmcoreinfo = vmcoreinfo != NULL;
	if (vmcoreinfo)
		notes[nr_notes++] = (struct core_note) {
			.name = "VMCOREINFO", .type = NOTE_TYPE_VMCOREINFO,
			.desc = vmcoreinfo, .desc_len = vmcoreinfo_len,
		};

	if (posix_memalign(&p->header, p->align, CAPTURE_HEADER_MAX))
		return 1;
	/* Where the kernel maps the ranges: what crash, drgn and gdb read by. */
	p->have_kmap = kmem_read(dev, &km);
	if (p->have_kmap) {
		kmem_set_vaddrs(&km, p->regions, p->nr);
		have_alias = kmem_image_alias(&km, &alias);
	} else {
		fprintf(stderr, "physcap-client: no KERNEL_MAP (%s): physical addresses only\n",
			errno_name(errno));
	}
	p->header_len = core_layout(p->header, CAPTURE_HEADER_MAX, p->regions, p->nr,
				    have_alias ? &alias : NULL, &p->alias_placed, notes,
				    nr_notes, p->align, &p->file_size);
	free(meta);
	free(vmcoreinfo);
	if (!p->header_len) {
		fprintf(stderr, "physcap-client: the ELF header does not fit in %d bytes\n",
			CAPTURE_HEADER_MAX);
		return 1;
	}
	return 0;
}

/* ---- digests: the capture read back, as the agent takes them (digest.h) ---- */

struct digest_opts {
	bool off;		/* --no-digest */
	const char *out;	/* --digest-out: the digest file; NULL for PATH.digest */
	const char *driver;	/* --digest-driver: NULL for the best */
};

/* Takes a --digest-* option at argv[*i]; false if argv[*i] is not one. */
static bool digest_option(struct digest_opts *o, int argc, char **argv, int *i)
{
	if (!strcmp(argv[*i], "--no-digest"))
		o->off = true;
	else if (!strcmp(argv[*i], "--digest-out") && *i + 1 < argc)
		o->out = argv[++*i];
	else if (!strcmp(argv[*i], "--digest-driver") && *i + 1 < argc)
		o->driver = argv[++*i];
	else
		return false;
	return true;
}

/*
 * The digest file (physcap import reads it, docs/board.md): one JSON
 * object, created never over an existing file, synced.  subject is the
 * file or device the digest is of.
 */
static int write_digest_file(const char *path, const char *subject,
			     const struct digest_result *r, double durable_s)
{
	char hex[2 * SHA256_DIGEST_SIZE + 1], text[1024], tmp[4200];
	const char *base = strrchr(subject, '/');
	int fd, n, err = 0;

	digest_hex(r, hex);
	n = snprintf(text, sizeof(text),
		     "{\"format\":\"physcap-digest\",\"version\":1,\"tool\":\"physcap-client\","
		     "\"file\":\"%s\",\"bytes\":%" PRIu64 ",\"algorithm\":\"sha256\",\"sha256\":\"%s\","
		     "\"covers\":\"file\",\"how\":\"read back from the disk (O_DIRECT) after it was synced\","
		     "\"driver\":\"%s\",\"via\":\"%s\",\"fallback\":%s%s%s,"
		     "\"durable_seconds\":%.6f,\"digest_seconds\":%.6f,\"time\":%lld}\n",
		     base ? base + 1 : subject, r->bytes, hex, r->driver, r->via,
		     r->fallback[0] ? "\"" : "", r->fallback[0] ? r->fallback : "null",
		     r->fallback[0] ? "\"" : "", durable_s, r->seconds, (long long)time(NULL));
	/*
	 * Written whole under a temporary name, then linked into place: a
	 * crash leaves no half a digest file, and link() never replaces one.
	 */
	err = ENAMETOOLONG;	/* positive errnos: the client's convention */
	if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof(tmp))
		return err;
	err = 0;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	if (write(fd, text, (size_t)n) != n)
		err = errno ? errno : EIO;
	if (!err && fsync(fd))
		err = errno;
	close(fd);
	if (!err && link(tmp, path))
		err = errno;
	unlink(tmp);
	return err;
}

/*
 * Digests bytes [0, len) of path, copying them to copy (a new file) when
 * not NULL, and writes the digest file: o->out, else the copy's or the
 * file's name with ".digest" (none for a device).  Prints the result as
 * the JSON member "digest" (after a comma).  Returns 0 or the errno.
 */
static int digest_capture(const char *path, uint64_t len, size_t align, const char *copy,
			  const struct digest_opts *o, double durable_s)
{
	struct digest_result r;
	char hex[2 * SHA256_DIGEST_SIZE + 1], sidecar[4096];
	const char *named = copy ? copy : path, *file = NULL;
	const char *what = "";
	struct stat st;
	int fd, copy_fd = -1, err;

	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		what = "open for read back";
		goto out;
	}
	if (copy) {
		copy_fd = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600);
		if (copy_fd < 0) {
			err = errno;
			what = "create the copy";
			close(fd);
			goto out;
		}
	}
	err = digest_fd(fd, len, align, copy_fd, o->driver, &r);
	what = r.what;
	close(fd);
	if (!err && copy_fd >= 0 && fsync(copy_fd)) {
		err = errno;
		what = "copy";
	}
	if (copy_fd >= 0) {
		close(copy_fd);
		if (err)
			unlink(copy);
	}
	if (err)
		goto out;
	if (o->out) {
		file = o->out;
	} else if (!stat(named, &st) && S_ISREG(st.st_mode) &&
		   snprintf(sidecar, sizeof(sidecar), "%s.digest", named) < (int)sizeof(sidecar)) {
		file = sidecar;
	}
	if (file) {
		err = write_digest_file(file, named, &r, durable_s);
		if (err)
			what = "digest file";
	}
out:
	if (err) {
		printf(",\"digest\":{\"ok\":false,\"errno\":\"%s\",\"what\":\"%s\"}", errno_name(err), what);
		return err;
	}
	digest_hex(&r, hex);
	printf(",\"digest\":{\"ok\":true,\"sha256\":\"%s\",\"bytes\":%" PRIu64 ",\"driver\":\"%s\","
	       "\"via\":\"%s\",\"fallback\":%s%s%s,\"file\":%s%s%s,\"seconds\":%.6f}",
	       hex, r.bytes, r.driver, r.via, r.fallback[0] ? "\"" : "",
	       r.fallback[0] ? r.fallback : "null", r.fallback[0] ? "\"" : "",
	       file ? "\"" : "", file ? file : "null", file ? "\"" : "", r.seconds);
	return 0;
}

static int cmd_capture(int argc, char **argv)
{
	static struct core_plan plan;
	struct core_plan *p = &plan;
	struct physcap_write stats[CAPTURE_MAX_REGIONS];
	struct digest_opts dopt = { 0 };
	bool removed = false, cleared = false, touched = false;
	int oflags = O_WRONLY | O_DIRECT | O_CLOEXEC | O_CREAT | O_EXCL;
	bool do_fsync = true, is_blockdev;
	unsigned int i;
	uint64_t total = 0, zero_copy = 0;
	struct stat st;
	double t0, secs;
	int dev, dest, err = 0, argi, rc;
	const char *what = "";

	if (argc < 4) {
		fprintf(stderr, "usage: capture OUT NAME PHYS LEN [NAME PHYS LEN ...] [--existing] [--no-fsync] [--no-digest] [--digest-out F] [--digest-driver D]\n");
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
		if (digest_option(&dopt, argc, argv, &argi))
			continue;
		if (argv[argi][0] == '-') {
			fprintf(stderr, "physcap-client: unknown option %s\n", argv[argi]);
			return 2;
		}
		if (argi + 2 >= argc || p->nr == CAPTURE_MAX_REGIONS) {
			fprintf(stderr, "physcap-client: regions are NAME PHYS LEN triples, at most %d\n",
				CAPTURE_MAX_REGIONS);
			return 2;
		}
		if (!valid_region_name(argv[argi])) {
			fprintf(stderr, "physcap-client: region name '%s': use 1-64 of A-Z a-z 0-9 _ - .\n",
				argv[argi]);
			return 2;
		}
		p->regions[p->nr].name = argv[argi];
		p->regions[p->nr].phys = parse_num(argv[argi + 1]);
		p->regions[p->nr].len = parse_num(argv[argi + 2]);
		total += p->regions[p->nr].len;
		p->nr++;
		argi += 2;
	}
	if (!p->nr) {
		fprintf(stderr, "physcap-client: no regions\n");
		return 2;
	}
	if (!do_fsync && !dopt.off) {
		/* A digest read back from the disk needs the bytes on it. */
		fprintf(stderr, "physcap-client: --no-fsync needs --no-digest\n");
		return 2;
	}

	dev = open_device();
	rc = plan_core(dev, p, NULL);
	if (rc)
		return rc;

	dest = open_dest(argv[0], oflags);
	if (dest < 0)
		return 1;
	t0 = now_s();
	fstat(dest, &st);
	is_blockdev = S_ISBLK(st.st_mode);
	if (is_blockdev) {
		uint64_t dev_size = 0;

		if (ioctl(dest, BLKGETSIZE64, &dev_size) || dev_size < p->file_size) {
			err = dev_size < p->file_size ? ENOSPC : errno;
			what = "device size";
		}
	} else {
		/* All of it up front: ENOSPC now, not half-way. */
		err = posix_fallocate(dest, 0, (off_t)p->file_size);
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
	memset(stats, 0, sizeof(stats[0]) * p->nr);
	touched = !err;
	for (i = 0; !err && i < p->nr; i++) {
		stats[i].phys_addr = p->regions[i].phys;
		stats[i].length = p->regions[i].len;
		stats[i].dest_fd = dest;
		stats[i].dest_offset = p->regions[i].offset;
		if (ioctl(dev, PHYSCAP_IOC_WRITE, &stats[i])) {
			err = errno;
			what = p->regions[i].name;
		}
		zero_copy += stats[i].bytes_zero_copy;
	}
	if (!err && pwrite(dest, p->header, p->header_len, 0) != (ssize_t)p->header_len) {
		err = errno ? errno : EIO;
		what = "ELF header";
	}
	if (!err && do_fsync && fsync(dest)) {
		err = errno;
		what = "fsync";
	}
	/* Durable here: the digest trails it and never makes it slower. */
	secs = now_s() - t0;
	/* A device refused before a byte was written keeps what it held. */
	if (err && (touched || (oflags & O_EXCL)))
		cleared = fail_capture(dest, argv[0], !(oflags & O_EXCL), p->header, p->align, &removed);

	printf("{\"ok\":%s,\"errno\":\"%s\",\"what\":\"%s\",\"out\":\"%s\",\"machine\":%u,"
	       "\"big_endian\":%s,\"vmcoreinfo\":%s,\"kernel_map\":%s,\"image_alias\":%s,"
	       "\"file_size\":%" PRIu64 ",\"removed\":%s,\"header_cleared\":%s,"
	       "\"bytes\":%" PRIu64 ",\"bytes_zero_copy\":%" PRIu64 ",\"seconds\":%.6f,\"regions\":[",
	       err ? "false" : "true", errno_name(err), what, argv[0], core_machine(),
	       core_data() == ELFDATA2MSB ? "true" : "false",
	       p->have_vmcoreinfo ? "true" : "false", p->have_kmap ? "true" : "false",
	       p->alias_placed ? "true" : "false", p->file_size, removed ? "true" : "false",
	       cleared ? "true" : "false", total, zero_copy, secs);
	for (i = 0; i < p->nr; i++)
		printf("%s{\"name\":\"%s\",\"phys\":\"0x%" PRIx64 "\",\"vaddr\":\"0x%" PRIx64
		       "\",\"length\":%" PRIu64
		       ",\"offset\":%" PRIu64 ",\"bytes_written\":%" PRIu64
		       ",\"bytes_zero_copy\":%" PRIu64 ",\"bytes_bounced\":%" PRIu64 "}",
		       i ? "," : "", p->regions[i].name, p->regions[i].phys, p->regions[i].vaddr,
		       p->regions[i].len, p->regions[i].offset, (uint64_t)stats[i].bytes_written,
		       (uint64_t)stats[i].bytes_zero_copy, (uint64_t)stats[i].bytes_bounced);
	printf("]");
	/* Durable is said before the digest starts (a crash in between leaves a whole core). */
	fflush(stdout);
	close(dest);
	close(dev);
	free(p->header);
	/*
	 * A digest that fails leaves the core as it is (durable and whole) and
	 * the exit status 1: `physcap-client digest` takes it again.
	 */
	if (!err && !dopt.off && digest_capture(argv[0], p->file_size, p->align, NULL, &dopt, secs))
		rc = 1;
	printf("}\n");
	return err ? 1 : rc;
}

/* ---- an armed core: its header at arm time, its stamp when the kernel ends it ---- */

/* Little-endian loads by bytes: the stamp is little-endian on every board. */
static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Whether the block at off holds the kernel's stamp for cookie saying the
 * capture is done: 0, or the errno with *why set (ENODATA: no stamp of
 * this arm, the kernel has not written the capture; EBADMSG: torn; EIO:
 * the kernel's capture failed, *kernel_err its errno).
 */
static int check_stamp(int fd, uint64_t off, size_t align, uint64_t cookie,
		       const char **why, int *kernel_err)
{
	uint8_t *blk;
	uint64_t sum = PHYSCAP_STAMP_SEED;
	int i, err = 0;

	*kernel_err = 0;
	err = ENOMEM;
	if (posix_memalign((void **)&blk, align, align))
		return err;
	err = 0;
	if (pread(fd, blk, align, (off_t)off) != (ssize_t)align) {
		*why = "the stamp's block cannot be read";
		err = EIO;
		goto out;
	}
	for (i = 0; i < 14; i++)
		sum += load_le64(blk + 8 * i);
	if (memcmp(blk, PHYSCAP_STAMP_MAGIC, 8) || load_le64(blk + 16) != cookie) {
		*why = "no stamp of this arm: the kernel has not written this capture";
		err = ENODATA;
	} else if (load_le32(blk + 8) != PHYSCAP_STAMP_VERSION ||
		   load_le32(blk + 12) != sizeof(struct physcap_arm_stamp) ||
		   load_le64(blk + 112) != sum) {
		*why = "the stamp fails its check (torn or not physcap's)";
		err = EBADMSG;
	} else if (load_le32(blk + 32) != PHYSCAP_ARM_STATE_DONE) {
		*why = "the kernel's capture failed";
		*kernel_err = -(int32_t)load_le32(blk + 36);
		err = EIO;
	}
out:
	free(blk);
	return err;
}

/* The PHYSCAP note's armed member: its cookie and stamp offset; false if none. */
static bool armed_note(const char *note, size_t len, uint64_t *cookie, uint64_t *stamp)
{
	char text[4096], *c, *o;

	if (!note || len >= sizeof(text))
		return false;
	memcpy(text, note, len);
	text[len] = '\0';
	c = strstr(text, "\"armed\":{\"cookie\":\"0x");
	o = strstr(text, "\"stamp_offset\":\"0x");
	if (!c || !o)
		return false;
	*cookie = strtoull(c + strlen("\"armed\":{\"cookie\":\"0x"), NULL, 16);
	*stamp = strtoull(o + strlen("\"stamp_offset\":\"0x"), NULL, 16);
	return true;
}

/* The alignment of a core on this machine: its page, at least 4096 (core_align). */
static size_t tool_align(void)
{
	long page = sysconf(_SC_PAGESIZE);

	return page > 4096 ? (size_t)page : 4096;
}

/*
 * The core at fd: *bytes, where it ends (aligned; an armed core's stamp
 * block included), and whether it is armed.  0, or the errno with *why set:
 * EINVAL, no core this machine wrote; for an armed core, check_stamp's.
 */
static int core_extent(int fd, size_t align, uint64_t *bytes, bool *armed,
		       const char **why, int *kernel_err)
{
	const char *note;
	size_t note_len;
	uint64_t end, cookie = 0, stamp = 0;
	void *head;
	ssize_t got;
	int err = 0;

	*armed = false;
	*kernel_err = 0;
	if (posix_memalign(&head, align, CAPTURE_HEADER_MAX))
		return errno;
	got = pread(fd, head, CAPTURE_HEADER_MAX, 0);
	*why = core_parse(head, got > 0 ? (size_t)got : 0, &end, &note, &note_len);
	if (*why) {
		err = EINVAL;
		goto out;
	}
	*bytes = (end + align - 1) / align * align;
	*armed = armed_note(note, note_len, &cookie, &stamp);
	if (*armed) {
		err = check_stamp(fd, stamp, align, cookie, why, kernel_err);
		if (stamp + align > *bytes)
			*bytes = stamp + align;
	}
out:
	free(head);
	return err;
}

/*
 * digest: a core's digest file, for a capture whose digest did not run
 * (--no-digest, a crash after it was durable) and for an armed core once
 * the kernel has written it (its stamp is checked first).  --copy-to
 * copies the core off a dump partition as it is hashed.
 */
static int cmd_digest(int argc, char **argv)
{
	struct digest_opts dopt = { 0 };
	const char *copy = NULL, *why = "";
	size_t align = tool_align();
	uint64_t bytes = 0;
	bool armed = false;
	int fd, i, err = 0, kernel_err = 0, rc;

	if (argc < 1) {
		fprintf(stderr, "usage: digest PATH [--copy-to OUT] [--bytes N] [--digest-out F] [--digest-driver D]\n");
		return 2;
	}
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--copy-to") && i + 1 < argc)
			copy = argv[++i];
		else if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
			bytes = parse_num(argv[++i]);
		else if (!digest_option(&dopt, argc, argv, &i) || dopt.off) {
			fprintf(stderr, "physcap-client: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	fd = open(argv[0], O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"open %s\"}\n", errno_name(errno), argv[0]);
		return 1;
	}
	if (!bytes) {
		err = core_extent(fd, align, &bytes, &armed, &why, &kernel_err);
	} else if (bytes % align) {
		err = EINVAL;
		why = "--bytes must be a multiple of the alignment";
	}
	close(fd);
	if (err) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"%s: %s\",\"kernel_errno\":\"%s\"}\n",
		       errno_name(err), argv[0], why, errno_name(kernel_err));
		return 1;
	}
	printf("{\"ok\":true,\"path\":\"%s\",\"bytes\":%" PRIu64 ",\"armed\":%s",
	       argv[0], bytes, armed ? "true" : "false");
	rc = digest_capture(argv[0], bytes, align, copy, &dopt, 0) ? 1 : 0;
	printf("}\n");
	return rc;
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

/* Whether path holds an armed core whose stamp says the kernel wrote it. */
static bool core_written(const char *path)
{
	const char *why;
	uint64_t bytes;
	bool armed;
	int kernel_err, err, fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);

	if (fd < 0)
		return false;
	err = core_extent(fd, tool_align(), &bytes, &armed, &why, &kernel_err);
	close(fd);
	return !err && armed;
}

/* A cookie for an arm that was given none: its stamp must be told from an older one's. */
static uint64_t fresh_cookie(void)
{
	uint64_t c = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, &c, sizeof(c)) != sizeof(c))
			c = 0;
		close(fd);
	}
	return c ? c : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
}

/* Where the stamp's offset goes in the note: fixed width, filled in after the layout. */
#define STAMP_PLACEHOLDER "0x0000000000000000"

/*
 * arm --core: the destination gets an ELF core's header now, its ranges
 * placed as a capture's, and a zeroed stamp block after them; the module
 * writes the ranges and then the stamp.  The header describes bytes the
 * kernel has not written yet: only the stamp says a core is there, and
 * `digest` (and physcap import) check it.
 */
static int prepare_armed_core(int dest, bool is_blockdev, struct core_plan *p,
			      struct physcap_arm *a, const char **what, bool *touched)
{
	static const char key[] = "\"stamp_offset\":\"";
	char digits[sizeof(STAMP_PLACEHOLDER)], *at;
	uint64_t dev_size = 0;
	unsigned int i;

	/* The stamp's offset, known now that the core is laid out. */
	at = memmem(p->header, p->header_len, key, strlen(key));
	if (!at) {
		*what = "stamp offset";	/* cannot happen: plan_core wrote it */
		errno = EINVAL;
		return errno;
	}
	snprintf(digits, sizeof(digits), "0x%016" PRIx64, p->file_size);
	memcpy(at + strlen(key), digits, strlen(STAMP_PLACEHOLDER));

	if (is_blockdev) {
		if (ioctl(dest, BLKGETSIZE64, &dev_size) || dev_size < p->file_size + p->align) {
			*what = "device size";
			return dev_size < p->file_size + p->align ? ENOSPC : errno;
		}
	} else if (fallocate(dest, 0, 0, (off_t)(p->file_size + p->align))) {
		/* Blocks and size now: nothing is allocated at fire time. */
		*what = "fallocate";
		return errno;
	}
	/* The header, and a clear stamp block: an older stamp is never this arm's. */
	*touched = true;
	if (pwrite(dest, p->header, p->header_len, 0) != (ssize_t)p->header_len) {
		*what = "ELF header";
		return errno ? errno : EIO;
	}
	memset(p->header, 0, p->align);
	if (pwrite(dest, p->header, p->align, (off_t)p->file_size) != (ssize_t)p->align) {
		*what = "stamp block";
		return errno ? errno : EIO;
	}
	if (fsync(dest)) {
		*what = "fsync";
		return errno;
	}
	for (i = 0; i < p->nr; i++) {
		a->ranges[i].phys_addr = p->regions[i].phys;
		a->ranges[i].length = p->regions[i].len;
		a->ranges[i].dest_offset = p->regions[i].offset;
	}
	a->nr_ranges = p->nr;
	a->flags |= PHYSCAP_ARM_STAMP;
	a->stamp_offset = p->file_size;
	return 0;
}

/*
 * After a failed arm --core: nothing passes for a core.  A file this run
 * created is removed; a partition's header block is zeroed.
 */
static void unarm_core(int dest, const char *path, bool is_blockdev, struct core_plan *p)
{
	if (!is_blockdev) {
		unlink(path);
		return;
	}
	memset(p->header, 0, p->align);
	if (pwrite(dest, p->header, p->align, 0) == (ssize_t)p->align)
		fsync(dest);
}

/*
 * arm: destination opened O_DIRECT (files created and preallocated with
 * fallocate; raw: the ranges one after another from offset 0, --core: an
 * ELF core), the arm made, its id printed.  The arm lives while this
 * process does: with --wait until its capture's record arrives (then a
 * --core capture is digested), else until killed.
 */
static int cmd_arm(int argc, char **argv)
{
	static struct core_plan plan;
	static const char *const range_names[] = {
		"range0", "range1", "range2", "range3", "range4", "range5", "range6", "range7",
		"range8", "range9", "range10", "range11", "range12", "range13", "range14", "range15",
	};
	struct physcap_arm a;
	struct physcap_event evs[16];
	struct digest_opts dopt = { 0 };
	bool wait_done = false, core = false, have_cookie = false, replace = false, is_blockdev;
	bool touched = false;
	const char *what = "";
	uint64_t total = 0;
	struct stat st;
	int i, dev, dest, n, err;

	_Static_assert(ARRAY_SIZE(range_names) == PHYSCAP_ARM_MAX_RANGES, "a name per range");
	if (argc < 4) {
		fprintf(stderr, "usage: arm WATCHDOG_ID DEST PHYS LEN [PHYS LEN ...] [--then-panic] [--wait] [--cookie N] [--core] [--replace] [--digest-out F] [--digest-driver D]\n");
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
		} else if (!strcmp(argv[i], "--core")) {
			core = true;
		} else if (!strcmp(argv[i], "--replace")) {
			replace = true;
		} else if (!strcmp(argv[i], "--cookie") && i + 1 < argc) {
			a.cookie = parse_num(argv[++i]);
			have_cookie = true;
		} else if (argv[i][0] == '-' && digest_option(&dopt, argc, argv, &i) && !dopt.off) {
			continue;
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
			plan.regions[a.nr_ranges] = (struct core_region) {
				.name = range_names[a.nr_ranges],
				.phys = a.ranges[a.nr_ranges].phys_addr,
				.len = a.ranges[a.nr_ranges].length,
			};
			a.nr_ranges++;
		} else {
			fprintf(stderr, "physcap-client: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	if ((dopt.out || dopt.driver) && !(core && wait_done)) {
		fprintf(stderr, "physcap-client: --digest-out and --digest-driver need --core and --wait\n");
		return 2;
	}
	if (core && !have_cookie)
		a.cookie = fresh_cookie();
	if (replace && !core) {
		fprintf(stderr, "physcap-client: --replace needs --core\n");
		return 2;
	}
	plan.nr = a.nr_ranges;
	dev = open_device();
	if (core) {
		char extra[160];
		int rc;

		snprintf(extra, sizeof(extra),
			 "\"armed\":{\"cookie\":\"0x%016" PRIx64 "\",\"stamp_offset\":\"%s\"}",
			 (uint64_t)a.cookie, STAMP_PLACEHOLDER);
		rc = plan_core(dev, &plan, extra);
		if (rc)
			return rc;
	}
	is_blockdev = !stat(argv[1], &st) && S_ISBLK(st.st_mode);
	if (core && is_blockdev && !replace && core_written(argv[1])) {
		printf("{\"ok\":false,\"errno\":\"EEXIST\",\"what\":\"%s holds a core the kernel wrote: "
		       "copy it off (digest --copy-to), then arm with --replace\"}\n", argv[1]);
		return 1;
	}
	if (is_blockdev) {
		dest = open(argv[1], O_WRONLY | O_DIRECT | O_CLOEXEC);
	} else {
		/* A core file is a new one: an earlier core is never armed over. */
		dest = open(argv[1], O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC | (core ? O_EXCL : 0), 0600);
		/* Blocks and size now: nothing is allocated at fire time. */
		if (dest >= 0 && !core && fallocate(dest, 0, 0, (off_t)total)) {
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

	if (core) {
		err = prepare_armed_core(dest, is_blockdev, &plan, &a, &what, &touched);
		if (err) {
			printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"%s %s\"}\n",
			       errno_name(err), what, argv[1]);
			/* A partition refused before a byte was written keeps what it held. */
			if (touched || !is_blockdev)
				unarm_core(dest, argv[1], is_blockdev, &plan);
			return 1;
		}
	}
	if (wait_done) {
		/* Skip the backlog: only what follows this arm is printed. */
		set_nonblock(dev, true);
		while (read_events(dev, evs, 16) > 0)
			;
		set_nonblock(dev, false);
	}
	if (ioctl(dev, PHYSCAP_IOC_ARM, &a)) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"ARM\"}\n", errno_name(errno));
		if (core)
			unarm_core(dest, argv[1], is_blockdev, &plan);
		return 1;
	}
	/* The module holds its own reference to the destination now. */
	close(dest);
	printf("{\"ok\":true,\"arm_id\":%" PRIu64 ",\"watchdog_id\":%u,\"dest\":\"%s\","
	       "\"ranges\":%u,\"bytes_total\":%" PRIu64 ",\"cookie\":\"0x%" PRIx64 "\","
	       "\"then_panic\":%s,\"core\":%s,\"stamp_offset\":%" PRIu64 "}\n",
	       (uint64_t)a.arm_id, a.watchdog_id, argv[1], a.nr_ranges, total,
	       (uint64_t)a.cookie, (a.flags & PHYSCAP_ARM_THEN_PANIC) ? "true" : "false",
	       core ? "true" : "false", (uint64_t)a.stamp_offset);
	fflush(stdout);

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
			if (evs[i].arm_id != a.arm_id ||
			    (evs[i].type != PHYSCAP_EVENT_CAPTURE_DONE &&
			     evs[i].type != PHYSCAP_EVENT_CAPTURE_FAILED))
				continue;
			if (evs[i].type == PHYSCAP_EVENT_CAPTURE_FAILED)
				return 1;
			if (!core)
				return 0;
			/* Durable when the module said done; the digest trails it. */
			printf("{\"ok\":true,\"arm_id\":%" PRIu64, (uint64_t)a.arm_id);
			err = digest_capture(argv[1], plan.file_size + plan.align, plan.align, NULL,
					     &dopt, (double)evs[i].duration_ns / 1e9);
			printf("}\n");
			return err ? 1 : 0;
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
	  "OUT NAME PHYS LEN [NAME PHYS LEN ...] [--existing] [--no-fsync] [--no-digest] [--digest-out F] [--digest-driver D]",
	  "an ELF core of the named ranges, zero-copy, then its digest read back (OUT.digest); after a failure nothing passes for a core" },
	{ "arm", cmd_arm,
	  "WATCHDOG_ID DEST PHYS LEN [PHYS LEN ...] [--then-panic] [--wait] [--cookie N] [--core] [--replace] [--digest-out F] [--digest-driver D]",
	  "an in-kernel capture on the watchdog's pretimeout (--core: an ELF core and a stamp; a partition holding a written one needs --replace); armed while this runs" },
	{ "digest", cmd_digest, "PATH [--copy-to OUT] [--bytes N] [--digest-out F] [--digest-driver D]",
	  "a core's digest read back (an armed core's stamp checked first), optionally copied off a partition" },
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
