#include "physcap_dev.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace physcap {

int device_open() {
  int fd = open(kDevicePath, O_RDWR | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

int device_info(int fd, physcap_info* info) {
  memset(info, 0, sizeof(*info));
  return ioctl(fd, PHYSCAP_IOC_INFO, info) ? -errno : 0;
}

int device_kernel_map(int fd, physcap_kernel_map* map) {
  memset(map, 0, sizeof(*map));
  return ioctl(fd, PHYSCAP_IOC_KERNEL_MAP, map) ? -errno : 0;
}

int device_write(int fd, physcap_write* req) { return ioctl(fd, PHYSCAP_IOC_WRITE, req) ? -errno : 0; }

}  // namespace physcap
