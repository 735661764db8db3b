#include "hashfile.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <functional>
#include <memory>
#include <new>

#include "chunkhash.h"
#include "workers.h"

namespace physcap {

namespace {

using Clock = std::chrono::steady_clock;

// Bytes per pread: small enough to stay in the CPU's cache between the
// copy out of the page cache and the hashing, as a capture's hashers do.
constexpr size_t kReadBlock = 1u << 20;

// A descriptor of the thread's own for the file behind fd: reads keep
// their own readahead state (it lives in the open file, and three readers
// at different places in one would look random to it).  Through
// /proc/self/fd, the very file already opened (and checked for being no
// symlink), never the path again.  Without /proc, the shared one.
class OwnFd {
 public:
  explicit OwnFd(int shared) : fd_(shared) {
    std::string self = "/proc/self/fd/" + std::to_string(shared);
    int own = open(self.c_str(), O_RDONLY | O_CLOEXEC);
    if (own >= 0) fd_ = own_ = own;
  }
  ~OwnFd() {
    if (own_ >= 0) close(own_);
  }
  OwnFd(const OwnFd&) = delete;
  OwnFd& operator=(const OwnFd&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
  int own_ = -1;
};

}  // namespace

void StoredHash::fail(int err, const char* syscall) {
  std::lock_guard<std::mutex> lock(fail_mu_);
  res_.failure.set(err, syscall, req_.path);
  failed_ = true;
}

// Feeds [at, at + len) of the range to h (as its bytes 0..len), a buffer
// at a time, and records the progress in *done.  Stops early at the end of
// the file (pread returns 0) or when stopping.  Bytes fed, or -errno.
int64_t StoredHash::feed(int fd, unsigned char* buf, uint64_t at, uint64_t len, std::atomic<uint64_t>* done,
                         ChunkHasher* h) {
  uint64_t pos = 0;
  while (pos < len && !stopping()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kReadBlock, len - pos));
    ssize_t r = pread(fd, buf, n, static_cast<off_t>(req_.base + at + pos));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) break;
    h->update(pos, buf, static_cast<size_t>(r));
    pos += static_cast<uint64_t>(r);
    done->store(at + pos, std::memory_order_release);
  }
  return static_cast<int64_t>(pos);
}

void StoredHash::hash_whole(int shared) {
  OwnFd fd(shared);
  std::unique_ptr<unsigned char[]> buf(new (std::nothrow) unsigned char[kReadBlock]);
  ChunkHasher h(true, 0);
  if (!buf || h.error()) return fail(ENOMEM, "malloc");
  int64_t n = feed(fd.fd(), buf.get(), 0, req_.size, &whole_done_, &h);
  if (n < 0) return fail(static_cast<int>(-n), "pread");
  if (stopping()) return;
  if (int err = h.error()) return fail(-err, "sha256");
  res_.size = static_cast<uint64_t>(n);
  res_.sha256 = h.finish().sha256;
  // Past the end of the file, what was read is all there is to do.
  whole_done_.store(res_.size, std::memory_order_release);
}

// Each region's digest, or each region's chunk digests: the same hasher
// a capture uses, one per region.
void StoredHash::hash_regions(int shared, bool chunks) {
  OwnFd fd(shared);
  std::unique_ptr<unsigned char[]> buf(new (std::nothrow) unsigned char[kReadBlock]);
  if (!buf) return fail(ENOMEM, "malloc");
  std::atomic<uint64_t>* done = chunks ? &chunks_done_ : &regions_done_;
  const std::vector<StoredRegion>& regions = req_.regions;
  for (size_t i = 0; i < regions.size() && !stopping(); i++) {
    const StoredRegion& r = regions[i];
    if (!chunks || r.chunk_size) {
      ChunkHasher h(!chunks, chunks ? r.chunk_size : 0);
      if (h.error()) return fail(ENOMEM, "malloc");
      int64_t n = feed(fd.fd(), buf.get(), r.offset, r.length, done, &h);
      if (n < 0) return fail(static_cast<int>(-n), "pread");
      if (stopping()) return;
      if (int err = h.error()) return fail(-err, "sha256");
      // A region (partly) past the end of the file: the digests of what exists.
      RegionDigests d = h.finish();
      if (chunks)
        res_.regions[i].chunk_sha256 = std::move(d.chunk_sha256);
      else
        res_.regions[i].sha256 = std::move(d.sha256);
    }
    // The gap up to the next region needs nothing from this thread.
    done->store(i + 1 < regions.size() ? regions[i + 1].offset : req_.size, std::memory_order_release);
  }
}

void StoredHash::run(const std::function<void(uint64_t)>& on_tick, int tick_ms) {
  auto t0 = Clock::now();
  // The facade checks all this; a range the threads would misreport is
  // refused here as well.
  if (req_.base > static_cast<uint64_t>(LLONG_MAX) || req_.size > static_cast<uint64_t>(LLONG_MAX) - req_.base) {
    res_.failure.set(EINVAL, "hashStored", req_.path);
    return;
  }
  uint64_t end = 0;
  bool chunks = false;
  for (const StoredRegion& r : req_.regions) {
    if (r.offset < end || r.offset > req_.size || r.length > req_.size - r.offset) {
      res_.failure.set(EINVAL, "hashStored", req_.path);
      return;
    }
    end = r.offset + r.length;
    chunks = chunks || r.chunk_size;
  }
  res_.regions.resize(req_.regions.size());

  int fd = open(req_.path.c_str(), O_RDONLY | O_CLOEXEC | (req_.nofollow ? O_NOFOLLOW : 0));
  if (fd < 0) {
    res_.failure.set(errno, "open", req_.path);
    return;
  }
  std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { close(*f); });

  // A thread that is not started has nothing left to do.
  regions_done_ = req_.regions.empty() ? req_.size : 0;
  chunks_done_ = chunks ? 0 : req_.size;

  auto done = [&] {
    return std::min({whole_done_.load(std::memory_order_acquire), regions_done_.load(std::memory_order_acquire),
                     chunks_done_.load(std::memory_order_acquire)});
  };
  // With two cores, three streams take ~1.5x as long as one; a thread
  // feeding two of the digests would take 2x.
  std::vector<std::function<void()>> jobs;
  jobs.emplace_back([&] { hash_whole(fd); });
  if (!req_.regions.empty()) jobs.emplace_back([&] { hash_regions(fd, false); });
  if (chunks) jobs.emplace_back([&] { hash_regions(fd, true); });
  // This thread only reports progress until all are done.
  run_workers(jobs, tick_ms, [&] {
    if (on_tick) on_tick(done());
  });

  res_.cancelled = cancel_ && !res_.failure.failed();
  res_.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (on_tick) on_tick(done());
}

}  // namespace physcap
