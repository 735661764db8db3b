// SPDX-License-Identifier: GPL-2.0
/* A capture's SHA-256 from its bytes read back; see digest.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_alg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "digest.h"

#ifndef AF_ALG
#define AF_ALG 38
#endif

/* Large enough that a disk streams, small enough for a board's memory. */
#define READ_CHUNK (4u << 20)
#define BUILTIN_DRIVER "physcap-sha256-c"

/* "key      : value" from /proc/crypto into key and value; false otherwise. */
static bool crypto_field(const char *line, char key[32], char value[64])
{
	return sscanf(line, "%31[^ :] : %63[^\n]", key, value) == 2;
}

/*
 * The driver the kernel would pick for "sha256": of the loaded, tested,
 * non-internal hash drivers by that name, the one of highest priority.
 */
static bool best_driver(char out[64])
{
	char line[256], key[32], value[64];
	char name[64] = "", driver[64] = "", type[64] = "", selftest[64] = "", internal[64] = "";
	long priority = -1, best = -1;
	bool more = true;
	FILE *f = fopen("/proc/crypto", "re");

	if (!f)
		return false;
	while (more) {
		more = fgets(line, sizeof(line), f) != NULL;
		if (more && crypto_field(line, key, value)) {
			if (!strcmp(key, "name"))
				snprintf(name, sizeof(name), "%s", value);
			else if (!strcmp(key, "driver"))
				snprintf(driver, sizeof(driver), "%s", value);
			else if (!strcmp(key, "type"))
				snprintf(type, sizeof(type), "%s", value);
			else if (!strcmp(key, "selftest"))
				snprintf(selftest, sizeof(selftest), "%s", value);
			else if (!strcmp(key, "internal"))
				snprintf(internal, sizeof(internal), "%s", value);
			else if (!strcmp(key, "priority"))
				priority = strtol(value, NULL, 10);
			continue;
		}
		/* A blank line (or the end) closes one algorithm's block. */
		if (!strcmp(name, "sha256") && (!strcmp(type, "shash") || !strcmp(type, "ahash")) &&
		    !strcmp(selftest, "passed") && strcmp(internal, "yes") && priority > best) {
			best = priority;
			snprintf(out, 64, "%s", driver);
		}
		name[0] = driver[0] = type[0] = selftest[0] = internal[0] = '\0';
		priority = -1;
	}
	fclose(f);
	return best >= 0;
}

/* An AF_ALG hash operation bound to driver; the socket or -errno. */
static int alg_open(const char *driver)
{
	struct sockaddr_alg sa = { .salg_family = AF_ALG, .salg_type = "hash" };
	int tfm, op, err;

	if (strlen(driver) >= sizeof(sa.salg_name))
		return -ENAMETOOLONG;
	memcpy(sa.salg_name, driver, strlen(driver) + 1);
	tfm = socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (tfm < 0)
		return -errno;
	if (bind(tfm, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		close(tfm);
		return err;
	}
	/* The operation's socket keeps the bound one alive. */
	op = accept4(tfm, NULL, NULL, SOCK_CLOEXEC);
	err = -errno;
	close(tfm);
	return op < 0 ? err : op;
}

/* More data for the running hash; the kernel maps buf's pages, no copy. */
static int alg_update(int op, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = send(op, buf, len, MSG_MORE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int alg_final(int op, uint8_t out[SHA256_DIGEST_SIZE])
{
	ssize_t n = read(op, out, SHA256_DIGEST_SIZE);

	if (n < 0)
		return errno;
	return n == SHA256_DIGEST_SIZE ? 0 : EIO;
}

static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;	/* 0: shorter than it said */
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : ENOSPC;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Which driver to bind, or false when the portable code is asked for. */
static bool pick_driver(const char *asked, char out[64])
{
	int op;

	if (asked) {
		snprintf(out, 64, "%s", asked);
		return strcmp(asked, "builtin") != 0;
	}
	/* Binding the name loads the kernel's drivers for it; then name the best. */
	op = alg_open("sha256");
	if (op >= 0)
		close(op);
	if (!best_driver(out))
		snprintf(out, 64, "sha256");	/* whichever the kernel picks */
	return true;
}

int digest_fd(int fd, uint64_t len, size_t align, int copy_fd, const char *driver,
	      struct digest_result *r)
{
	struct sha256 soft;
	uint8_t *buf = NULL;
	uint64_t off;
	double t0 = now_s();
	int op = -1, err;

	memset(r, 0, sizeof(*r));
	r->what = "";
	r->via = "builtin";
	if (pick_driver(driver, r->driver)) {
		op = alg_open(r->driver);
		if (op < 0)
			snprintf(r->fallback, sizeof(r->fallback), "AF_ALG %s: %s",
				 r->driver, errno_name(-op));
	} else {
		snprintf(r->fallback, sizeof(r->fallback), "builtin asked for");
	}
	if (posix_memalign((void **)&buf, align, READ_CHUNK)) {
		r->err = ENOMEM;
		r->what = "buffer";
		goto out;
	}
restart:
	if (op < 0) {
		snprintf(r->driver, sizeof(r->driver), BUILTIN_DRIVER);
		sha256_init(&soft);
	} else {
		r->via = "af_alg";
	}
	for (off = 0; off < len; off += READ_CHUNK) {
		size_t n = len - off < READ_CHUNK ? (size_t)(len - off) : READ_CHUNK;

		err = read_full(fd, buf, n, off);
		if (err) {
			r->err = err;
			r->what = "read back";
			goto out;
		}
		if (copy_fd >= 0) {
			err = write_full(copy_fd, buf, n, off);
			if (err) {
				r->err = err;
				r->what = "copy";
				goto out;
			}
		}
		if (op < 0) {
			sha256_update(&soft, buf, n);
			continue;
		}
		err = alg_update(op, buf, n);
		if (err)
			goto driver_failed;
	}
	if (op < 0) {
		sha256_final(&soft, r->sha256);
	} else {
		err = alg_final(op, r->sha256);
		if (err)
			goto driver_failed;
	}
	r->bytes = len;
	goto out;

driver_failed:
	/* Start again with the portable code: a digest is all or nothing. */
	snprintf(r->fallback, sizeof(r->fallback), "%s failed at byte %llu: %s",
		 r->driver, (unsigned long long)off, errno_name(err));
	close(op);
	op = -1;
	r->via = "builtin";
	goto restart;

out:
	if (op >= 0)
		close(op);
	free(buf);
	r->seconds = now_s() - t0;
	return r->err;
}

void digest_hex(const struct digest_result *r, char out[2 * SHA256_DIGEST_SIZE + 1])
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < SHA256_DIGEST_SIZE; i++) {
		out[2 * i] = hex[r->sha256[i] >> 4];
		out[2 * i + 1] = hex[r->sha256[i] & 15];
	}
	out[2 * SHA256_DIGEST_SIZE] = '\0';
}
