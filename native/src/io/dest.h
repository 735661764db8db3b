#pragma once

#include <cstdint>
#include <string>

#include "result.h"

namespace physcap {

// Direct-I/O alignment of an open file or block device.
struct DioAlign {
  uint32_t mem = 4096;     // buffer address alignment
  uint32_t offset = 4096;  // file offset and length alignment
};

struct DestInfo {
  int fd = -1;
  bool is_blockdev = false;
  uint64_t size = 0;  // block device size; file size after open
  DioAlign align;
};

enum class DestMode {
  create,    // a new regular file: O_CREAT | O_EXCL, never overwrites
  existing,  // an existing file or block device, written in place
};

// Opens a destination for O_DIRECT writing: O_NOFOLLOW, O_CLOEXEC, never
// O_SYNC (one fsync at the end is the caller's).  Returns 0 or -errno.
int open_destination(const std::string& path, DestMode mode, DestInfo* out, Failure* why);

// The same, for name in dir_fd (a single component; still O_NOFOLLOW), a
// new file getting mode 0640.  display_path is what failures name.
int open_destination_at(int dir_fd, const std::string& name, DestMode mode, const std::string& display_path,
                        DestInfo* out, Failure* why);

// Allocates [0, length) up front so the capture cannot run out of space
// half-way through for lack of blocks (block devices: checks the size).
int preallocate(const DestInfo& dest, uint64_t length, const std::string& path, Failure* why);

// statx(STATX_DIOALIGN) where the kernel has it, else the block size.
int query_dio_align(int fd, bool is_blockdev, DioAlign* out);

// Writes a small header (any size) at an aligned offset with O_DIRECT,
// through an aligned buffer padded with zeros to the offset alignment.
int write_aligned(int fd, const DioAlign& align, uint64_t offset, const void* data, size_t len);

// Loops pwrite until done; returns bytes written or -errno.
int64_t pwrite_all(int fd, const void* buf, size_t len, uint64_t offset);

// Reads [offset, offset + len) into buf (cap bytes, aligned for O_DIRECT
// when direct): with O_DIRECT from the block below offset to the block
// above its end, the bytes wanted then start *skip bytes into buf.  Loops
// until done.  Returns the bytes wanted that exist (fewer at the end of
// the file) or -errno.
int64_t pread_block(int fd, bool direct, uint32_t block, unsigned char* buf, size_t cap, uint64_t offset, size_t len,
                    size_t* skip);

}  // namespace physcap
