/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What physcap-client (the board tool) and physcap-selftest (the test
 * tools) share: errno names, number parsing, the device, destinations,
 * ARM_STATUS, and the command-table dispatch both mains use.
 */
#ifndef PHYSCAP_TOOLS_COMMON_H
#define PHYSCAP_TOOLS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "../physcap_uapi.h"

#define DEV_PATH "/dev/physcap"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The running tool's name, for its messages on stderr (set by tool_main). */
extern const char *progname;

/* "EINVAL" for EINVAL, "OK" for 0, "E?" for one the tools do not name. */
const char *errno_name(int err);

/* 0x prefixes and K/M/G suffixes (binary); exits 2 on anything else. */
uint64_t parse_num(const char *s);

/* CLOCK_MONOTONIC in seconds. */
double now_s(void);

/* /dev/physcap read-write, or exit 1 after printing the JSON failure. */
int open_device(void);

/* A command's destination, or -1 after printing the JSON failure. */
int open_dest(const char *path, int oflags);

/* ARM_STATUS of arm id into *st; 0 or the errno. */
int arm_status(int dev, uint64_t id, struct physcap_arm_status *st);

struct command {
	const char *name;
	int (*run)(int argc, char **argv);	/* the arguments after the name */
	const char *args;			/* its synopsis, for the usage */
	const char *help;			/* one line */
};

struct tool {
	const char *name;
	const char *about;			/* one line */
	const struct command *commands;
	size_t nr_commands;
};

/*
 * main() of a tool: runs argv[1]'s command with the arguments after it.
 * No command or an unknown one prints the table as the usage on stderr
 * and returns 2; "help" (or -h, --help) prints it on stdout, returns 0.
 */
int tool_main(const struct tool *tool, int argc, char **argv);

#endif
