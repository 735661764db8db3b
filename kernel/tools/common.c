// SPDX-License-Identifier: GPL-2.0
/* Shared by physcap-client and physcap-selftest; see common.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

_Static_assert(sizeof(struct physcap_info) == PHYSCAP_INFO_SIZE, "info size");
_Static_assert(sizeof(struct physcap_write) == PHYSCAP_WRITE_SIZE, "write size");
_Static_assert(sizeof(struct physcap_arm_range) == PHYSCAP_ARM_RANGE_SIZE, "arm range size");
_Static_assert(sizeof(struct physcap_arm) == PHYSCAP_ARM_SIZE, "arm size");
_Static_assert(sizeof(struct physcap_arm_status) == PHYSCAP_ARM_STATUS_SIZE, "arm status size");
_Static_assert(sizeof(struct physcap_event) == PHYSCAP_EVENT_SIZE, "event size");

const char *progname = "physcap";

const char *errno_name(int err)
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
	case EBADMSG: return "EBADMSG";
	case ENODATA: return "ENODATA";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	default: return "E?";
	}
}

uint64_t parse_num(const char *s)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s) {
		fprintf(stderr, "%s: not a number: %s\n", progname, s);
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
		fprintf(stderr, "%s: not a number: %s\n", progname, s);
		exit(2);
	}
	return v;
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int open_device(void)
{
	int fd = open(DEV_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"open %s\"}\n",
		       errno_name(errno), DEV_PATH);
		exit(1);
	}
	return fd;
}

int open_dest(const char *path, int oflags)
{
	int fd = open(path, oflags, 0600);

	if (fd < 0)
		printf("{\"ok\":false,\"errno\":\"%s\",\"what\":\"open %s\"}\n",
		       errno_name(errno), path);
	return fd;
}

int arm_status(int dev, uint64_t id, struct physcap_arm_status *st)
{
	memset(st, 0, sizeof(*st));
	st->arm_id = id;
	return ioctl(dev, PHYSCAP_IOC_ARM_STATUS, st) ? errno : 0;
}

static void print_usage(const struct tool *tool, FILE *out)
{
	size_t i;

	fprintf(out, "usage: %s COMMAND [ARGS...]\n%s\n\n", tool->name, tool->about);
	for (i = 0; i < tool->nr_commands; i++) {
		const struct command *c = &tool->commands[i];

		fprintf(out, "  %s%s%s\n      %s\n", c->name, *c->args ? " " : "",
			c->args, c->help);
	}
	fprintf(out, "\nEvery command prints JSON on stdout. Numbers accept 0x prefixes and\n");
	fprintf(out, "K/M/G suffixes (binary).\n");
}

int tool_main(const struct tool *tool, int argc, char **argv)
{
	size_t i;

	progname = tool->name;
	if (argc < 2) {
		print_usage(tool, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		print_usage(tool, stdout);
		return 0;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < tool->nr_commands; i++)
		if (!strcmp(argv[1], tool->commands[i].name))
			return tool->commands[i].run(argc - 2, argv + 2);
	fprintf(stderr, "%s: unknown command %s\n", tool->name, argv[1]);
	print_usage(tool, stderr);
	return 2;
}
