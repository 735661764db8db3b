#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "physcap_dev.h"
#include "result.h"

namespace physcap {

// /dev/physcap opened for armed captures: ARM, DISARM and ARM_STATUS, and
// the module's event records, read on a thread of its own blocked in
// poll(2).  One descriptor does both because the module ties arms to the
// open file: closing it releases them, and a dup kept by the reader would
// keep them alive.  The ioctls may be issued from another thread while
// run() polls; close() only once run() has returned.
class ArmDevice {
 public:
  using OnEvent = std::function<void(const physcap_event&)>;

  // One read asks for this many of today's records: the whole ring the
  // module keeps, so a reader that starts late drains it in one call.
  static constexpr size_t kReadRecords = PHYSCAP_EVENT_RING;

  ArmDevice() = default;
  ~ArmDevice();
  ArmDevice(const ArmDevice&) = delete;
  ArmDevice& operator=(const ArmDevice&) = delete;

  // O_RDWR | O_NONBLOCK | O_CLOEXEC, and the eventfd that stops run().
  // 0 or -errno; *why says which call failed.
  int open(const std::string& path, Failure* why);

  // The ioctls: 0 or -errno.  arm() fills in size and req->arm_id.
  int arm(physcap_arm* req);
  int disarm(uint64_t arm_id);
  int status(uint64_t arm_id, physcap_arm_status* out);

  // Delivers records until stop(); 0, or -errno with *why and *detail
  // saying what ended it: a read that failed, or a stream this reader
  // cannot parse (EPROTO, detail says how).
  int run(const OnEvent& on_event, Failure* why, std::string* detail);
  // Wakes run() and makes it return; safe from any thread.
  void stop();
  // Closes the device (the module releases this file's arms).  Idempotent.
  void close();

 private:
  int fd_ = -1;
  int wake_ = -1;
  std::string path_;
  std::atomic<bool> stopping_{false};
};

// Every record the module keeps now, oldest first, without waiting for
// more: for an agent starting up, to learn what happened while it was not
// running.  0 or -errno with *why (and *detail for EPROTO, as run()).
int read_events(const std::string& path, std::vector<physcap_event>* out, Failure* why, std::string* detail);

}  // namespace physcap
