#include "kmsg.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace physcap {

KmsgReader::~KmsgReader() {
  if (fd_ >= 0) close(fd_);
  if (wake_ >= 0) close(wake_);
}

int KmsgReader::open(const std::string& path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) return -errno;
  // SEEK_END on /dev/kmsg: the next read returns the next new record.
  if (lseek(fd_, 0, SEEK_END) < 0) return -errno;
  wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_ < 0) return -errno;
  return 0;
}

int KmsgReader::run(const OnRecord& on_record, const OnGap& on_gap) {
  // One read returns exactly one record; records are at most ~8 KiB.
  char buf[16384];
  uint64_t gaps = 0;
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_, POLLIN, 0}};
  while (!stopping_) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (fds[1].revents) break;
    for (;;) {
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n > 0) {
        on_record(std::string(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EPIPE) {
        // The ring buffer overwrote records we had not read: say so, go on.
        on_gap(++gaps);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      return n < 0 ? -errno : -EIO;
    }
  }
  return 0;
}

void KmsgReader::stop() {
  stopping_ = true;
  uint64_t one = 1;
  if (wake_ >= 0 && write(wake_, &one, sizeof(one)) < 0) {
    // Nothing to do: stopping_ is set and the next wake-up sees it.
  }
}

}  // namespace physcap
