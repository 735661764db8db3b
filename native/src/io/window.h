#pragma once

#include <cstddef>
#include <cstdint>

namespace physcap {

// A read-only shared mapping of [offset, offset + len) of an fd, of any
// alignment: the mapping starts on the page below and data() points at
// offset.  Captures map bounded windows, never a whole range: RSS counts
// mapped pages, and a 32-bit board cannot map a large range at all.
class Window {
 public:
  Window() = default;
  ~Window() { unmap(); }
  Window(const Window&) = delete;
  Window& operator=(const Window&) = delete;

  // 0 or -errno.
  int map(int fd, uint64_t offset, size_t len);
  void unmap();
  const unsigned char* data() const { return data_; }
  size_t size() const { return len_; }

 private:
  void* base_ = nullptr;
  size_t base_len_ = 0;
  const unsigned char* data_ = nullptr;
  size_t len_ = 0;
};

}  // namespace physcap
