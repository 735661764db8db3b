#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "chunkhash.h"
#include "result.h"

namespace physcap {

struct StoredRegion {
  uint64_t offset = 0;  // relative to the request's base
  uint64_t length = 0;
  uint64_t chunk_size = 0;  // 0: no chunk digests
};

struct HashStoredRequest {
  std::string path;   // a capture file, or a device holding a dump partition
  uint64_t base = 0;  // absolute offset of byte 0 of the range
  uint64_t size = 0;
  std::vector<StoredRegion> regions;  // sorted by offset, not overlapping
  bool nofollow = false;              // refuse a symlink at path (ELOOP)
};

struct HashStoredResult {
  uint64_t size = 0;  // bytes read: less than requested past the end of the file
  std::string sha256;
  std::vector<RegionDigests> regions;
  double seconds = 0;
  bool cancelled = false;
  Failure failure;
};

// Re-hashes a stored range: the whole range's digest, each region's digest
// and each region's chunk digests, each on a thread of its own that preads
// the file into a small buffer.  Sharing one reader would serialise the
// three digests on one core; with a reader each they overlap, and the page
// cache makes the extra reads cost a copy, not a disk read.  run() blocks
// its caller until all are done.
class StoredHash {
 public:
  explicit StoredHash(HashStoredRequest req) : req_(std::move(req)) {}

  // on_tick(done) is called from run()'s thread about every tick_ms, and
  // once at the end: done is the position in the range (relative to base)
  // that every thread has got past, so it only grows; at the end of a
  // success it is result().size.
  void run(const std::function<void(uint64_t)>& on_tick, int tick_ms);
  void cancel() { cancel_ = true; }
  const HashStoredResult& result() const { return res_; }

 private:
  bool stopping() const { return cancel_ || failed_; }
  void fail(int err, const char* syscall);
  int64_t feed(int fd, unsigned char* buf, uint64_t at, uint64_t len, std::atomic<uint64_t>* done, ChunkHasher* h);
  void hash_whole(int fd);
  void hash_regions(int fd, bool chunks);

  HashStoredRequest req_;
  HashStoredResult res_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> failed_{false};
  std::mutex fail_mu_;
  // Per thread: how far through the range it has got.
  std::atomic<uint64_t> whole_done_{0};
  std::atomic<uint64_t> regions_done_{0};
  std::atomic<uint64_t> chunks_done_{0};
};

}  // namespace physcap
