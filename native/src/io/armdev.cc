#include "armdev.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace physcap {

namespace {

// The record as this addon knows it; a newer module may send longer ones.
constexpr size_t kKnownSize = sizeof(physcap_event);
constexpr size_t kBufSize = ArmDevice::kReadRecords * kKnownSize;

// Delivers the whole records at the front of [p, p + len) and returns the
// bytes they took (what is left is a record not yet complete), or -EPROTO
// with *detail for a stream that cannot be parsed.
long parse_records(const unsigned char* p, size_t len, const ArmDevice::OnEvent& on_event, std::string* detail) {
  size_t off = 0;
  while (len - off >= sizeof(uint32_t)) {
    uint32_t size;
    memcpy(&size, p + off, sizeof(size));
    // Judged as soon as the size is readable: waiting for the rest of a
    // record that can never be used would only hide the mismatch.
    if (size < kKnownSize) {
      *detail = "a record of " + std::to_string(size) + " bytes, shorter than the " + std::to_string(kKnownSize) +
                " bytes of struct physcap_event this addon knows: not a physcap.ko it can read";
      return -EPROTO;
    }
    if (size > kBufSize) {
      *detail = "a record of " + std::to_string(size) + " bytes, more than the " + std::to_string(kBufSize) +
                " bytes one read asks for";
      return -EPROTO;
    }
    if (len - off < size) break;
    physcap_event ev;
    // Fields a newer module appended are skipped with the rest of size.
    memcpy(&ev, p + off, kKnownSize);
    on_event(ev);
    off += size;
  }
  return static_cast<long>(off);
}

constexpr int kDrainAgain = 0;  // nothing more to read for now (EAGAIN)
constexpr int kDrainEnd = 1;    // end of file: nothing more will come

// Reads fd until it has nothing more, delivering whole records; an
// incomplete one stays in buf[0, *have) for the next call.  kDrainAgain,
// kDrainEnd, or -errno with *why (and *detail for EPROTO).
int drain(int fd, const std::string& path, unsigned char* buf, size_t* have, const ArmDevice::OnEvent& on_event,
          Failure* why, std::string* detail) {
  for (;;) {
    ssize_t n = read(fd, buf + *have, kBufSize - *have);
    if (n > 0) {
      *have += static_cast<size_t>(n);
      long used = parse_records(buf, *have, on_event, detail);
      if (used < 0) {
        why->set(EPROTO, "read", path);
        return -EPROTO;
      }
      *have -= static_cast<size_t>(used);
      memmove(buf, buf + used, *have);
      continue;
    }
    if (n == 0) {
      if (*have) {
        *detail = "the stream ended " + std::to_string(*have) + " bytes into a record";
        why->set(EPROTO, "read", path);
        return -EPROTO;
      }
      return kDrainEnd;
    }
    if (errno == EAGAIN) return kDrainAgain;
    if (errno == EINTR) continue;
    int e = errno;
    why->set(e, "read", path);
    return -e;
  }
}

}  // namespace

ArmDevice::~ArmDevice() { close(); }

int ArmDevice::open(const std::string& path, Failure* why) {
  path_ = path;
  // Non-blocking: run() reads until EAGAIN and then sleeps in poll(2),
  // where the eventfd can wake it; a blocking read could not be stopped.
  fd_ = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) {
    int e = errno;
    why->set(e, "open", path);
    return -e;
  }
  wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_ < 0) {
    int e = errno;
    why->set(e, "eventfd");
    return -e;
  }
  return 0;
}

int ArmDevice::arm(physcap_arm* req) {
  // The module refuses any other size: it is how a later ABI would tell.
  req->size = sizeof(*req);
  return ioctl(fd_, PHYSCAP_IOC_ARM, req) ? -errno : 0;
}

int ArmDevice::disarm(uint64_t arm_id) { return ioctl(fd_, PHYSCAP_IOC_DISARM, &arm_id) ? -errno : 0; }

int ArmDevice::status(uint64_t arm_id, physcap_arm_status* out) {
  memset(out, 0, sizeof(*out));
  out->arm_id = arm_id;
  return ioctl(fd_, PHYSCAP_IOC_ARM_STATUS, out) ? -errno : 0;
}

int ArmDevice::run(const OnEvent& on_event, Failure* why, std::string* detail) {
  unsigned char buf[kBufSize];
  size_t have = 0;  // bytes of an incomplete record kept at buf's front
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_, POLLIN, 0}};
  while (!stopping_) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      why->set(e, "poll", path_);
      return -e;
    }
    if (fds[1].revents) break;
    if (!fds[0].revents) continue;
    int r = drain(fd_, path_, buf, &have, on_event, why, detail);
    if (r < 0) return r;
    // The module never says end-of-file (it blocks or says EAGAIN); a
    // regular file standing in for it does, and nothing more will come
    // from it: stop polling it (poll ignores a negative fd) and wait for
    // stop(), instead of spinning on a descriptor that is always readable.
    if (r == kDrainEnd) fds[0].fd = -1;
  }
  return 0;
}

void ArmDevice::stop() {
  stopping_ = true;
  uint64_t one = 1;
  if (wake_ >= 0 && write(wake_, &one, sizeof(one)) < 0) {
    // Nothing to do: stopping_ is set and the next wake-up sees it.
  }
}

void ArmDevice::close() {
  // Errors from close(2) are not reported: the module's release cannot
  // fail, and the descriptor is gone either way.
  if (fd_ >= 0) ::close(fd_);
  if (wake_ >= 0) ::close(wake_);
  fd_ = -1;
  wake_ = -1;
}

int read_events(const std::string& path, std::vector<physcap_event>* out, Failure* why, std::string* detail) {
  // Read-only is enough to read, and a descriptor of its own starts at the
  // oldest record the module keeps; it holds no arms, so closing it
  // releases none.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    why->set(e, "open", path);
    return -e;
  }
  unsigned char buf[kBufSize];
  size_t have = 0;
  int r = drain(
      fd, path, buf, &have, [&](const physcap_event& ev) { out->push_back(ev); }, why, detail);
  ::close(fd);
  if (r >= 0 && have) {
    // The module returns whole records: a part left over is a stand-in's
    // stream cut short, and no later read will complete it.
    *detail = "the stream stopped " + std::to_string(have) + " bytes into a record";
    why->set(EPROTO, "read", path);
    r = -EPROTO;
  }
  return r < 0 ? r : 0;
}

}  // namespace physcap
