/* SPDX-License-Identifier: GPL-2.0 */
/*
 * physcap-selftest's parts: the bad-input table (physcap-selftest.c), its
 * ARM/DISARM/ARM_STATUS/event rows (selftest-arm.c) and the fault tools
 * (faults.c).
 */
#ifndef PHYSCAP_SELFTEST_H
#define PHYSCAP_SELFTEST_H

#include <stdint.h>

/* One row of the table as a JSON line; a mismatch counts as a failure. */
void row(const char *name, int expected, int actual);

/* Runs fn in a child that has dropped CAP_SYS_RAWIO; returns its errno. */
int without_rawio(int (*fn)(int), int dev);

/* What the ARM rows need from the WRITE table's set-up. */
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

/* The ARM, DISARM, ARM_STATUS and event-read rows (needs the governor). */
void selftest_arm(struct arm_selftest *t);

/* An ARM with a bad descriptor: the errno ARM gives before any check of it. */
int try_arm(int dev);

int cmd_poison_test(int argc, char **argv);
int cmd_watchdog_arm(int argc, char **argv);
int cmd_fuzz(int argc, char **argv);
int cmd_kill_after(int argc, char **argv);

#endif
