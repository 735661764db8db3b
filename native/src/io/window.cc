#include "window.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace physcap {

int Window::map(int fd, uint64_t offset, size_t len) {
  unmap();
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t start = offset & ~(page - 1);
  size_t delta = static_cast<size_t>(offset - start);
  // MAP_POPULATE: one bulk fault-in instead of one fault per page.
  void* p = mmap(nullptr, len + delta, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, static_cast<off_t>(start));
  if (p == MAP_FAILED) return -errno;
  // Read once, front to back, by two threads at most: let readahead work.
  madvise(p, len + delta, MADV_SEQUENTIAL);
  base_ = p;
  base_len_ = len + delta;
  data_ = static_cast<const unsigned char*>(p) + delta;
  len_ = len;
  return 0;
}

void Window::unmap() {
  if (base_) munmap(base_, base_len_);
  base_ = nullptr;
  base_len_ = 0;
  data_ = nullptr;
  len_ = 0;
}

}  // namespace physcap
