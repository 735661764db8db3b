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
  bool whole = true;        // the region's own digest
};

struct HashStoredRequest {
  std::string path;   // a capture file, or a device holding a dump partition
  uint64_t base = 0;  // absolute offset of byte 0 of the range
  uint64_t size = 0;
  std::vector<StoredRegion> regions;  // sorted by offset, not overlapping
  bool nofollow = false;              // refuse a symlink at path (ELOOP)
  bool whole = true;                  // the whole range's digest
  bool gaps = false;                  // the digest of the bytes outside the regions, in order
};

struct HashStoredResult {
  uint64_t size = 0;        // bytes read: less than requested past the end of the file
  std::string sha256;       // when asked for
  std::string gaps_sha256;  // when asked for
  std::vector<RegionDigests> regions;
  double seconds = 0;
  bool cancelled = false;
  Failure failure;
};

// Re-hashes a stored range: the whole range's digest, each region's own
// digest where asked and each region's chunk digests, all from one read of
// the range (a DigestPipe).  run() blocks its caller.
class StoredHash {
 public:
  explicit StoredHash(HashStoredRequest req) : req_(std::move(req)) {}

  // on_tick(done) is called from run()'s thread about every tick_ms, and
  // once at the end: done is the position in the range (relative to base)
  // that every digest has got past, so it only grows; at the end of a
  // success it is result().size.
  void run(const std::function<void(uint64_t)>& on_tick, int tick_ms);
  void cancel() { cancel_ = true; }
  const HashStoredResult& result() const { return res_; }

 private:
  void hash(int fd);

  HashStoredRequest req_;
  HashStoredResult res_;
  std::atomic<bool> cancel_{false};
  std::atomic<uint64_t> done_{0};
};

}  // namespace physcap
