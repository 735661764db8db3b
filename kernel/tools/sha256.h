/* SPDX-License-Identifier: GPL-2.0 */
/*
 * SHA-256 (FIPS 180-4) in portable C: the client's fallback when the
 * kernel's crypto API cannot be reached from user space (no AF_ALG, no
 * algif_hash, or its driver failed).  Byte order independent, so the same
 * code serves the big-endian board.
 */
#ifndef PHYSCAP_SHA256_H
#define PHYSCAP_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32

struct sha256 {
	uint32_t h[8];
	uint64_t bytes;		/* hashed so far */
	uint8_t block[64];	/* a partial block, bytes % 64 of it used */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_SIZE]);

#endif
