#include "physread.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "physcap_dev.h"
#include "window.h"

namespace physcap {

int read_physical(const std::string& device, uint64_t phys, void* out, size_t len, Failure* why) {
  std::string path = device.empty() ? kDevicePath : device;
  // Read-only is enough: the mapping is PROT_READ, and the module refuses
  // writable ones anyway.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    why->set(err, "open", path);
    return -err;
  }
  std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { close(*f); });

  // A file standing in for the device: touching a mapped page past its
  // end would raise SIGBUS, not fail, so refuse such a range up front, as
  // the module refuses a range with no memory behind it.
  struct stat st {};
  if (fstat(fd, &st)) {
    int err = errno;
    why->set(err, "fstat", path);
    return -err;
  }
  if (S_ISREG(st.st_mode)) {
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (phys > size || len > size - phys) {
      why->set(ENXIO, "mmap", path);
      return -ENXIO;
    }
  }

  // The window maps the enclosing pages: the module maps whole pages only.
  Window win;
  int r = win.map(fd, phys, len);
  if (r) {
    why->set(r, "mmap", path);
    return r;
  }
  memcpy(out, win.data(), len);
  return 0;
}

}  // namespace physcap
