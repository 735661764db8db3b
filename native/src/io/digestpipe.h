#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "chunkhash.h"
#include "sha256.h"

namespace physcap {

// A part of the range with digests of its own: a region.
struct DigestSpan {
  uint64_t offset = 0;  // in the range
  uint64_t length = 0;
  bool whole = false;       // its own SHA-256
  uint64_t chunk_size = 0;  // 0: no chunk digests
};

struct DigestPipeSpec {
  uint64_t size = 0;              // bytes of the range
  Sha256* stream = nullptr;       // fed every byte of the range in order (a whole file's digest); may be null
  Sha256* gaps = nullptr;         // fed the bytes outside every span, in order (a core's headers and padding)
  std::vector<DigestSpan> spans;  // sorted, not overlapping, inside the range
  size_t align = 4096;            // of the buffers, for O_DIRECT reads
  unsigned chunk_threads = 0;     // 0: the cores the in-order digests leave, at least one
  uint64_t block = 1u << 20;      // bytes per read: each block is hashed while it is in the CPU's cache
  unsigned readers = 1;           // reads in flight: several for O_DIRECT, where each waits for the disk
};

// Fills a buffer of cap bytes with bytes [at, at + n) of the range, from
// *skip bytes into it (an O_DIRECT read starts on the block below at).
// Returns the bytes of the range it holds: n, fewer at the end of the data
// (a file shorter than the range), or -errno with *syscall set.  Called
// from several threads at once when the spec has several readers.
using BlockSource =
    std::function<int64_t(unsigned char* buf, size_t cap, uint64_t at, size_t n, size_t* skip, const char** syscall)>;

// Reads a range once and computes all its digests from that one read: the
// in-order ones (the whole file's, each region's) on a thread each, and the
// chunk digests on every core left, a chunk per thread at a time.  Three
// streams over three reads of the same bytes cost three copies and left
// chunk digests on one core; here the reader fills a ring of small buffers
// (read with O_DIRECT where it can, so no CPU copies them) and every
// digest hashes the same buffer while it is in cache.  On two cores the
// whole-file digest and the chunk digests take one core each: a capture
// with its digests runs at the speed of one SHA-256 stream, as openssl does.
class DigestPipe {
 public:
  explicit DigestPipe(DigestPipeSpec spec);
  DigestPipe(const DigestPipe&) = delete;
  DigestPipe& operator=(const DigestPipe&) = delete;

  // Reads the range through read on the calling thread while the digest
  // threads hash it; returns when all are done, or at the first failure,
  // or when stop is set (then 0, and the digests are not to be used).
  // 0, or -errno with syscall() naming the call.
  int run(const BlockSource& read, const std::atomic<bool>& stop);
  const char* syscall() const { return syscall_; }
  // Bytes of the range every digest has got past: only grows.
  uint64_t done() const { return done_.load(std::memory_order_acquire); }
  // Bytes the source had (less than the range's size if it ended early).
  uint64_t size() const { return size_; }
  // Each span's digests, after a successful run(): the chunks the data
  // reached, the last one shorter where the data ended.
  std::vector<RegionDigests> digests();

 private:
  struct Block {
    uint64_t at;
    size_t n;
    int span;        // -1: between spans
    int64_t chunk;   // index into chunk_digests_, or -1
    bool chunk_end;  // the chunk's last block
  };
  struct Slot {
    std::unique_ptr<unsigned char, void (*)(void*)> buf{nullptr, free};
    int64_t block = -1;  // the block it holds
    size_t skip = 0;
    size_t n = 0;  // bytes of the block it holds
    int refs = 0;  // digests still to hash it
  };
  struct View {
    const unsigned char* data;
    size_t n;
  };

  void cut_blocks();
  void read_blocks(const BlockSource& read, unsigned first, unsigned step, const std::atomic<bool>& stop);
  int consumers(const Block& b) const;
  bool acquire(int64_t k, View* v, const std::atomic<bool>& stop);
  void release(int64_t k);
  void fail(int err, const char* syscall);
  void stream_lane(Sha256* sha, bool gaps_only, const std::atomic<bool>& stop);
  void whole_lane(const std::atomic<bool>& stop);
  void chunk_lane(unsigned worker, const std::atomic<bool>& stop);

  DigestPipeSpec spec_;
  std::vector<Block> blocks_;
  std::vector<std::unique_ptr<Sha256>> span_sha_;  // the spans with a whole digest
  std::vector<std::string> chunk_digests_;
  std::vector<int> chunk_span_;  // each chunk's span
  unsigned chunk_threads_ = 1;
  size_t slot_bytes_ = 0;
  std::vector<Slot> slots_;

  std::mutex mu_;
  std::condition_variable filled_;
  std::condition_variable freed_;
  int64_t last_block_;  // the source's last block: no more once it ended early
  std::vector<char> released_;
  size_t released_upto_ = 0;
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> failed_{false};
  int err_ = 0;
  const char* syscall_ = "";
  uint64_t size_ = 0;
};

}  // namespace physcap
