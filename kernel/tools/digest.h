/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A capture's SHA-256, taken the way the agent takes it: after the capture
 * is durable, its bytes are read back from the disk (O_DIRECT, so the
 * digest describes what the disk holds, not what memory held while it was
 * written) and hashed.
 *
 * The hashing goes through the kernel crypto API from user space (AF_ALG),
 * bound to the best SHA-256 driver /proc/crypto lists: a board's engine
 * (talitos, CAAM, ARMv8 CE) or its CPU's fastest code (sha256-ppc-spe,
 * sha256-avx2).  AF_ALG hashes the pages of the read buffer in place, so
 * on a board whose disk and crypto engine both DMA the CPU does not touch
 * the bytes.  Where AF_ALG is missing or its driver fails, the portable
 * code in sha256.c hashes instead, and the result says why.
 */
#ifndef PHYSCAP_DIGEST_H
#define PHYSCAP_DIGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "sha256.h"

struct digest_result {
	uint8_t sha256[SHA256_DIGEST_SIZE];
	uint64_t bytes;
	char driver[64];	/* /proc/crypto's driver name, or "physcap-sha256-c" */
	const char *via;	/* "af_alg" or "builtin" */
	char fallback[128];	/* why not the kernel's driver; empty when it was used */
	double seconds;		/* read back and hashed */
	int err;		/* 0, or the errno that ended the read back */
	const char *what;	/* the step that failed */
};

/*
 * Hashes bytes [0, len) of fd (opened O_DIRECT; len a multiple of align),
 * also writing them to copy_fd at the same offsets when copy_fd >= 0.
 * driver: NULL for the best AF_ALG driver, "builtin" for sha256.c, or a
 * driver's name from /proc/crypto.  Returns r->err.
 */
int digest_fd(int fd, uint64_t len, size_t align, int copy_fd, const char *driver,
	      struct digest_result *r);

/* The digest as 64 lowercase hex digits and a NUL. */
void digest_hex(const struct digest_result *r, char out[2 * SHA256_DIGEST_SIZE + 1]);

#endif
