#pragma once

#include <atomic>
#include <functional>
#include <string>

namespace physcap {

// Reads kernel log records from /dev/kmsg on a thread of its own, blocked
// in poll(2) while nothing happens (no polling loop, no libuv pool thread).
// Starts at the end of the log, so old messages are never delivered.
class KmsgReader {
 public:
  // on_record(record) for each record, on_gap(n) when the kernel's ring
  // overran us (EPIPE) and n is the number of times it did so far.
  using OnRecord = std::function<void(std::string)>;
  using OnGap = std::function<void(uint64_t)>;

  KmsgReader() = default;
  ~KmsgReader();
  KmsgReader(const KmsgReader&) = delete;
  KmsgReader& operator=(const KmsgReader&) = delete;

  // 0 or -errno (open, lseek, eventfd).
  int open(const std::string& path);
  // Runs until stop(); returns 0 or -errno of a read that failed for good.
  int run(const OnRecord& on_record, const OnGap& on_gap);
  // Wakes run() and makes it return; safe from any thread.
  void stop();

 private:
  int fd_ = -1;
  int wake_ = -1;
  std::atomic<bool> stopping_{false};
};

}  // namespace physcap
