#include "dest.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/stat.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace physcap {

int query_dio_align(int fd, bool is_blockdev, DioAlign* out) {
#ifdef STATX_DIOALIGN
  struct statx stx {};
  if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
      stx.stx_dio_offset_align) {
    out->mem = stx.stx_dio_mem_align;
    out->offset = stx.stx_dio_offset_align;
    return 0;
  }
#endif
  if (is_blockdev) {
    int lbs = 0;
    if (ioctl(fd, BLKSSZGET, &lbs)) return -errno;
    out->mem = out->offset = static_cast<uint32_t>(lbs);
    return 0;
  }
  // The filesystem does not say: the page size is always safe.
  out->mem = out->offset = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  return 0;
}

namespace {

// path is what openat() gets; display is what errors name.
int open_dest(int dir_fd, const std::string& path, const std::string& display, DestMode mode, mode_t perm,
              DestInfo* out, Failure* why) {
  // O_NONBLOCK: opening a FIFO for writing would otherwise wait for a
  // reader forever.  It means nothing for files and disks, and is cleared.
  int flags = O_WRONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
  if (mode == DestMode::create) flags |= O_CREAT | O_EXCL;
  int fd = openat(dir_fd, path.c_str(), flags, perm);
  if (fd < 0) {
    int e = errno;
    why->set(e, "open", display);
    return -e;
  }
  struct stat st {};
  if (fstat(fd, &st)) {
    int e = errno;
    close(fd);
    why->set(e, "fstat", display);
    return -e;
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    close(fd);
    why->set(EINVAL, "open", display);
    return -EINVAL;
  }
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)) {
    int e = errno;
    close(fd);
    why->set(e, "fcntl", display);
    return -e;
  }
  out->fd = fd;
  out->is_blockdev = S_ISBLK(st.st_mode);
  out->size = static_cast<uint64_t>(st.st_size);
  if (out->is_blockdev && ioctl(fd, BLKGETSIZE64, &out->size)) {
    int e = errno;
    close(fd);
    why->set(e, "ioctl(BLKGETSIZE64)", display);
    return -e;
  }
  int r = query_dio_align(fd, out->is_blockdev, &out->align);
  if (r) {
    close(fd);
    why->set(-r, "statx", display);
    return r;
  }
  return 0;
}

}  // namespace

int open_destination(const std::string& path, DestMode mode, DestInfo* out, Failure* why) {
  return open_dest(AT_FDCWD, path, path, mode, 0600, out, why);
}

int open_destination_at(int dir_fd, const std::string& name, DestMode mode, const std::string& display_path,
                        DestInfo* out, Failure* why) {
  // 0640, as write_file_at makes the directory's small files: one
  // capture directory, one mode for all of its files.
  return open_dest(dir_fd, name, display_path, mode, 0640, out, why);
}

int preallocate(const DestInfo& dest, uint64_t length, const std::string& path, Failure* why) {
  if (dest.is_blockdev) {
    if (length > dest.size) {
      why->set(ENOSPC, "write", path);
      return -ENOSPC;
    }
    return 0;
  }
  if (length == 0) return 0;
  // FALLOC_FL_KEEP_SIZE is not used: the file should read as its final size.
  if (fallocate(dest.fd, 0, 0, static_cast<off_t>(length))) {
    int e = errno;
    if (e == EOPNOTSUPP) return 0;  // some filesystems cannot; ENOSPC will tell later
    why->set(e, "fallocate", path);
    return -e;
  }
  return 0;
}

int64_t pwrite_all(int fd, const void* buf, size_t len, uint64_t offset) {
  const char* p = static_cast<const char*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, p + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;
    done += static_cast<size_t>(n);
  }
  return static_cast<int64_t>(done);
}

int write_aligned(int fd, const DioAlign& align, uint64_t offset, const void* data, size_t len) {
  if (offset % align.offset) return -EINVAL;
  size_t padded = (len + align.offset - 1) / align.offset * align.offset;
  size_t mem_align = align.mem > sizeof(void*) ? align.mem : sizeof(void*);
  void* raw = nullptr;
  if (posix_memalign(&raw, mem_align, padded ? padded : align.offset)) return -ENOMEM;
  std::unique_ptr<void, decltype(&free)> buf(raw, free);
  memset(raw, 0, padded);
  memcpy(raw, data, len);
  int64_t r = pwrite_all(fd, raw, padded, offset);
  return r < 0 ? static_cast<int>(r) : 0;
}

}  // namespace physcap

namespace physcap {

int64_t pread_block(int fd, bool direct, uint32_t block, unsigned char* buf, size_t cap, uint64_t offset, size_t len,
                    size_t* skip) {
  uint64_t from = direct ? offset / block * block : offset;
  uint64_t to = direct ? (offset + len + block - 1) / block * block : offset + len;
  if (to - from > cap) return -EINVAL;
  *skip = static_cast<size_t>(offset - from);
  size_t want = static_cast<size_t>(to - from);
  size_t got = 0;
  while (got < want) {
    ssize_t r = pread(fd, buf + got, want - got, static_cast<off_t>(from + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) break;  // the end of the file
    got += static_cast<size_t>(r);
  }
  return got <= *skip ? 0 : static_cast<int64_t>(std::min(got - *skip, len));
}

}  // namespace physcap
