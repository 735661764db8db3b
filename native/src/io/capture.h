#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "dest.h"
#include "result.h"

namespace physcap {

class ChunkHasher;
class Sha256;

enum class SourceKind {
  kernel,  // /dev/physcap WRITE: pages handed to the disk; hashed from its mmap
  devmem,  // /dev/mem mapping, copied into aligned buffers (hash fused with the copy)
  image,   // a memory image file, written with O_DIRECT straight from its mapping
};

enum class HashMode {
  none,
  source,    // hash the source while it is written: exact for quiescent memory
  readback,  // hash what reached the destination (O_DIRECT reads): for live RAM
};

struct CaptureRequest {
  SourceKind source = SourceKind::image;
  std::string source_path;    // the image; or the device (default /dev/physcap, /dev/mem)
  uint64_t phys = 0;          // physical address of the range
  uint64_t image_base = 0;    // image: physical address of the image's first byte...
  uint64_t image_offset = 0;  // ...which is at this file offset (an ELF core's p_offset)
  uint64_t length = 0;
  uint32_t kernel_flags = 0;  // PHYSCAP_WRITE_* for the kernel source
  DestInfo dest;              // open for O_DIRECT writing; the fd stays the caller's
  std::string dest_path;
  uint64_t dest_offset = 0;
  bool truncate_to_end = false;  // regular file: its size becomes dest_offset + length
  bool sync = true;              // one fsync at the end
  HashMode hash = HashMode::source;
  bool whole = true;               // the range's own SHA-256 (an ELF core's region may do with its chunks')
  uint64_t chunk_size = 4u << 20;  // 0: no per-chunk digests
  size_t window = 8u << 20;        // bytes mapped at once per thread
  // Also fed the range, in order, with the bytes the digest uses: the
  // running hash of a whole file the range is one part of.  Needs a hash
  // mode; the caller keeps it alive and leaves it alone until run() returns.
  Sha256* file_hash = nullptr;
};

struct CaptureResult {
  const char* source = "";
  const char* mode = "";  // "zero-copy" or "copy"
  uint64_t bytes_written = 0;
  uint64_t bytes_zero_copy = 0;  // straight from the pages to the disk
  uint64_t bytes_copied = 0;     // copied by the CPU in user space (devmem, tails)
  uint64_t bytes_bounced = 0;    // copied by the CPU in the kernel (no struct pages)
  uint64_t bytes_poisoned = 0;
  const char* hash_mode = "none";
  std::string sha256;
  std::vector<std::string> chunk_sha256;
  double seconds = 0;
  double write_seconds = 0;
  double hash_seconds = 0;
  // From run()'s start: the bytes were on the disk (written, and synced
  // when sync), and the digests were done.  The hashing trails the writer,
  // so the second is later only when hashing is the slower.
  double durable_seconds = 0;
  double digest_seconds = 0;
  bool cancelled = false;
  Failure failure;
};

// One capture of one physical range into one destination.  run() blocks
// its caller and drives a writer thread and the digests (a DigestPipe that
// reads the source, or reads back what the writer finished, once), which
// overlap: the capture takes as long as the slower of the two.
class Capture {
 public:
  explicit Capture(CaptureRequest req) : req_(std::move(req)) {}

  // on_tick(written, hashed) is called from run()'s thread about every
  // tick_ms while the capture runs, and once at the end.  on_durable(r),
  // if given, from the writer's thread once the range is on the disk
  // (written and synced), the digests perhaps still running: r's write
  // fields (bytes, mode, durable_seconds) are final, its digests are not.
  void run(const std::function<void(uint64_t, uint64_t)>& on_tick, int tick_ms,
           const std::function<void(const CaptureResult&)>& on_durable = nullptr);
  void cancel() {
    cancel_ = true;
    stop_ = true;
  }
  const CaptureResult& result() const { return res_; }

 private:
  bool stopping() const { return stop_; }
  void fail(int err, const char* syscall, const std::string& path);

  void write_image();
  void write_kernel();
  void write_devmem();
  void finish_write();
  void hash_pipe();
  void hash_bytes(ChunkHasher* h, Sha256* file, const unsigned char* p, size_t n, uint64_t at, bool report);
  void keep_digests(ChunkHasher* h, const std::string& path);
  int write_tail(const unsigned char* src, size_t n, uint64_t at);

  CaptureRequest req_;
  CaptureResult res_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> stop_{false};  // cancelled or failed
  std::chrono::steady_clock::time_point t0_;
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> hashed_{0};
  std::atomic<bool> writer_done_{false};
  std::mutex fail_mu_;
};

const char* source_name(SourceKind s);

}  // namespace physcap
