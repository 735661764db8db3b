#include "capture.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "chunkhash.h"
#include "digestpipe.h"
#include "physcap_dev.h"
#include "sha256.h"
#include "window.h"
#include "workers.h"

namespace physcap {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// An aligned heap buffer for O_DIRECT.
struct AlignedBuf {
  explicit AlignedBuf(size_t n, size_t align = 4096) {
    void* p = nullptr;
    if (posix_memalign(&p, std::max<size_t>(align, sizeof(void*)), n) == 0) data = static_cast<unsigned char*>(p);
    size = data ? n : 0;
  }
  ~AlignedBuf() { free(data); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  unsigned char* data = nullptr;
  size_t size = 0;
};

// Kernel WRITE calls are this long at most: cancellation is checked between.
constexpr uint64_t kKernelStep = 32u << 20;
// devmem: bytes copied, hashed and written per buffer.
constexpr size_t kCopyBlock = 4u << 20;

}  // namespace

const char* source_name(SourceKind s) {
  switch (s) {
    case SourceKind::kernel: return "kernel";
    case SourceKind::devmem: return "devmem";
    case SourceKind::image: return "image";
  }
  return "?";
}

void Capture::fail(int err, const char* syscall, const std::string& path) {
  std::lock_guard<std::mutex> lock(fail_mu_);
  if (failed_) return;  // the first failure is the cause; the others follow from it
  res_.failure.set(err, syscall, path);
  failed_ = true;
  stop_ = true;
}

// Bytes [at, at + n) of the range to one hashing thread's digests and, if
// it feeds it, the caller's whole-file hash.
void Capture::hash_bytes(ChunkHasher* h, Sha256* file, const unsigned char* p, size_t n, uint64_t at, bool report) {
  h->update(at, p, n);
  if (file) file->update(p, n);
  if (report) hashed_.store(at + n, std::memory_order_release);
}

// A hashing thread's digests into the result: each thread fills only the
// fields it keeps.
void Capture::keep_digests(ChunkHasher* h, const std::string& path) {
  if (int err = h->error()) return fail(-err, "sha256", path);
  RegionDigests d = h->finish();
  if (h->chunk_size()) res_.chunk_sha256 = std::move(d.chunk_sha256);
  if (h->whole()) res_.sha256 = std::move(d.sha256);
}

// The bytes past the last full alignment unit: through a zero-padded
// aligned buffer.  The padding lands before the next aligned offset, where
// nothing of another region can be.
int Capture::write_tail(const unsigned char* src, size_t n, uint64_t at) {
  const DioAlign& a = req_.dest.align;
  size_t padded = (n + a.offset - 1) / a.offset * a.offset;
  AlignedBuf buf(padded, a.mem);
  if (!buf.data) return -ENOMEM;
  memset(buf.data, 0, padded);
  memcpy(buf.data, src, n);
  int64_t r = pwrite_all(req_.dest.fd, buf.data, padded, req_.dest_offset + at);
  if (r < 0) return static_cast<int>(r);
  res_.bytes_copied += n;
  return 0;
}

void Capture::write_image() {
  auto t0 = Clock::now();
  int src = open(req_.source_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (src < 0) return fail(errno, "open", req_.source_path);
  std::unique_ptr<int, void (*)(int*)> guard(&src, [](int* fd) { close(*fd); });

  uint64_t off = req_.phys - req_.image_base + req_.image_offset;  // checked by run() before any thread started

  const DioAlign& a = req_.dest.align;
  uint64_t body = req_.length / a.offset * a.offset;
  // Direct I/O straight from the mapping needs an aligned source address.
  bool direct = off % a.mem == 0;
  std::unique_ptr<AlignedBuf> bounce;
  if (!direct) bounce = std::make_unique<AlignedBuf>(req_.window, a.mem);

  Window win;
  uint64_t pos = 0;
  while (pos < req_.length && !stopping()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(req_.window, req_.length - pos));
    int r = win.map(src, off + pos, n);
    if (r) return fail(-r, "mmap", req_.source_path);
    size_t full = static_cast<size_t>(std::min<uint64_t>(n, body > pos ? body - pos : 0));
    if (full) {
      const unsigned char* from = win.data();
      if (!direct) {
        memcpy(bounce->data, from, full);
        from = bounce->data;
      }
      int64_t w = pwrite_all(req_.dest.fd, from, full, req_.dest_offset + pos);
      if (w < 0) return fail(static_cast<int>(-w), "pwrite", req_.dest_path);
      (direct ? res_.bytes_zero_copy : res_.bytes_copied) += full;
    }
    if (full < n) {
      r = write_tail(win.data() + full, n - full, pos + full);
      if (r) return fail(-r, "pwrite", req_.dest_path);
    }
    pos += n;
    res_.bytes_written = pos;
    written_.store(pos, std::memory_order_release);
  }
  res_.write_seconds = since(t0);
}

void Capture::write_kernel() {
  auto t0 = Clock::now();
  std::string dev = req_.source_path.empty() ? kDevicePath : req_.source_path;
  int fd = open(dev.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(errno, "open", dev);
  std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { close(*f); });

  // The module's bio_vecs start at phys's offset in its page and end on
  // the destination's block, so it takes a body that meets the direct-I/O
  // alignments.  What does not (a region starting off a memory-alignment
  // boundary, an odd tail such as iomem's 1 KiB "Reserved" ranges) is
  // copied through the module's read-only mapping (the same memory rule
  // applies there) and a zero-padded aligned buffer.
  const DioAlign& a = req_.dest.align;
  uint64_t unit = std::max<uint64_t>(a.mem, a.offset);
  uint64_t body = req_.phys % unit == 0 ? req_.length / a.offset * a.offset : 0;
  uint64_t pos = 0;
  while (pos < body && !stopping()) {
    physcap_write w{};
    w.phys_addr = req_.phys + pos;
    w.length = std::min<uint64_t>(kKernelStep, body - pos);
    w.dest_offset = req_.dest_offset + pos;
    w.dest_fd = req_.dest.fd;
    w.flags = req_.kernel_flags;
    int r = device_write(fd, &w);
    res_.bytes_zero_copy += w.bytes_zero_copy;
    res_.bytes_bounced += w.bytes_bounced + w.bytes_buffered;
    res_.bytes_poisoned += w.bytes_poisoned;
    pos += w.bytes_written;
    res_.bytes_written = pos;
    written_.store(pos, std::memory_order_release);
    if (r) return fail(-r, "ioctl(PHYSCAP_IOC_WRITE)", req_.dest_path);
  }
  Window win;
  while (pos < req_.length && !stopping()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kCopyBlock, req_.length - pos));
    int r = win.map(fd, req_.phys + pos, n);
    if (r) return fail(-r, "mmap", dev);
    r = write_tail(win.data(), n, pos);
    if (r) return fail(-r, "pwrite", req_.dest_path);
    pos += n;
    res_.bytes_written = pos;
    written_.store(pos, std::memory_order_release);
  }
  res_.write_seconds = since(t0);
}

// devmem: a copier maps /dev/mem, copies into aligned buffers and hashes
// each while it is in cache; this thread writes the filled buffers.
void Capture::write_devmem() {
  auto t0 = Clock::now();
  std::string dev = req_.source_path.empty() ? "/dev/mem" : req_.source_path;
  // Without O_SYNC: memory is mapped cacheable (O_SYNC would make it uncached).
  int fd = open(dev.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno, "open", dev);
  std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { close(*f); });

  const DioAlign& a = req_.dest.align;
  constexpr int kSlots = 3;
  std::vector<std::unique_ptr<AlignedBuf>> bufs;
  for (int i = 0; i < kSlots; i++) {
    bufs.push_back(std::make_unique<AlignedBuf>(kCopyBlock, a.mem));
    if (!bufs.back()->data) return fail(ENOMEM, "posix_memalign", "");
  }
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<int, size_t>> filled;  // slot, bytes
  std::deque<int> free_slots{0, 1, 2};
  bool copy_done = false;
  bool fused = req_.hash == HashMode::source;
  ChunkHasher hashes(req_.whole, req_.chunk_size);
  Sha256* file_hash = fused ? req_.file_hash : nullptr;

  std::thread copier([&] {
    auto h0 = Clock::now();
    Window win;
    uint64_t pos = 0;
    while (pos < req_.length && !stopping()) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kCopyBlock, req_.length - pos));
      int slot;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !free_slots.empty() || stopping(); });
        if (stopping()) break;
        slot = free_slots.front();
        free_slots.pop_front();
      }
      int r = win.map(fd, req_.phys + pos, n);
      if (r) {
        fail(-r, "mmap", dev);
        break;
      }
      memcpy(bufs[slot]->data, win.data(), n);
      win.unmap();
      if (fused) hash_bytes(&hashes, file_hash, bufs[slot]->data, n, pos, true);
      {
        std::lock_guard<std::mutex> lock(mu);
        filled.emplace_back(slot, n);
      }
      cv.notify_all();
      pos += n;
    }
    if (fused && !stopping()) {
      keep_digests(&hashes, dev);
      res_.hash_seconds = since(h0);
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      copy_done = true;
    }
    cv.notify_all();
  });

  uint64_t pos = 0;
  for (;;) {
    std::pair<int, size_t> item;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !filled.empty() || copy_done || stopping(); });
      if (filled.empty() || stopping()) break;
      item = filled.front();
      filled.pop_front();
    }
    size_t n = item.second;
    size_t full = n / a.offset * a.offset;
    if (full) {
      int64_t w = pwrite_all(req_.dest.fd, bufs[item.first]->data, full, req_.dest_offset + pos);
      if (w < 0) {
        fail(static_cast<int>(-w), "pwrite", req_.dest_path);
        break;
      }
      res_.bytes_copied += full;
    }
    if (full < n) {
      int r = write_tail(bufs[item.first]->data + full, n - full, pos + full);
      if (r) {
        fail(-r, "pwrite", req_.dest_path);
        break;
      }
    }
    pos += n;
    res_.bytes_written = pos;
    written_.store(pos, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mu);
      free_slots.push_back(item.first);
    }
    cv.notify_all();
  }
  cv.notify_all();
  copier.join();
  res_.write_seconds = since(t0);
}

// The writer's end: the file's final size, and the bytes made durable
// before any digest is waited for.
void Capture::finish_write() {
  if (!stopping() && !req_.dest.is_blockdev && req_.truncate_to_end &&
      ftruncate(req_.dest.fd, static_cast<off_t>(req_.dest_offset + req_.length))) {
    return fail(errno, "ftruncate", req_.dest_path);
  }
  if (!stopping() && req_.sync && fsync(req_.dest.fd)) return fail(errno, "fsync", req_.dest_path);
  if (!stopping()) res_.durable_seconds = since(t0_);
}

// The digests, from one read of the bytes.  Source: the image (pread into
// the pipe's buffers) or physical memory (through /dev/physcap's read-only
// mapping, a block at a time), while the writer writes the same bytes.
// Read-back: what the writer finished, trailing it, with O_DIRECT reads so
// the page cache cannot answer instead of the disk.
void Capture::hash_pipe() {
  auto t0 = Clock::now();
  bool readback = req_.hash == HashMode::readback;
  bool kernel = req_.source == SourceKind::kernel;
  std::string path;
  int fd = -1;
  if (readback) {
    // Reopened through /proc/self/fd: the very file being written, whatever
    // its name (a destination opened in a directory fd carries a path for
    // messages only).  Without /proc (an early initramfs), by its path.
    path = req_.dest_path;
    std::string self = "/proc/self/fd/" + std::to_string(req_.dest.fd);
    fd = open(self.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) fd = open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  } else {
    path = req_.source_path.empty() && kernel ? kDevicePath : req_.source_path;
    fd = open(path.c_str(), (kernel ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  }
  if (fd < 0) return fail(errno, "open", path);
  std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { close(*f); });

  DigestPipeSpec spec;
  spec.size = req_.length;
  spec.stream = req_.file_hash;
  spec.spans.push_back({0, req_.length, req_.whole, req_.chunk_size});
  spec.align = readback ? req_.dest.align.mem : 4096;
  // Read-back waits for the disk: several reads in flight.  The sources
  // are copies by the CPU, which one reader does at memory speed.
  spec.readers = readback ? 4 : 1;
  DigestPipe pipe(std::move(spec));

  const DioAlign& a = req_.dest.align;
  uint64_t image_off = req_.phys - req_.image_base + req_.image_offset;
  BlockSource source = [&](unsigned char* buf, size_t cap, uint64_t at, size_t n, size_t* skip,
                           const char** syscall) -> int64_t {
    hashed_.store(pipe.done(), std::memory_order_release);
    *skip = 0;
    if (readback) {
      // Wait for the writer to have finished these bytes.
      while (written_.load(std::memory_order_acquire) < at + n && !writer_done_ && !stopping())
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      if (stopping()) return 0;
      if (written_.load(std::memory_order_acquire) < at + n) return -EIO;
      return pread_block(fd, true, a.offset, buf, cap, req_.dest_offset + at, n, skip);
    }
    if (kernel) {
      *syscall = "mmap";
      Window win;
      int r = win.map(fd, req_.phys + at, n);
      if (r) return r;
      memcpy(buf, win.data(), n);
      return static_cast<int64_t>(n);
    }
    int64_t got = pread_block(fd, false, 1, buf, cap, image_off + at, n, skip);
    return got == 0 ? -ENXIO : got;  // the image was checked to hold the range
  };
  int r = pipe.run(source, stop_);
  if (r) return fail(-r, pipe.syscall(), path);
  if (stopping()) return;
  RegionDigests d = std::move(pipe.digests()[0]);
  if (req_.chunk_size) res_.chunk_sha256 = std::move(d.chunk_sha256);
  if (req_.whole) res_.sha256 = std::move(d.sha256);
  hashed_.store(req_.length, std::memory_order_release);
  res_.hash_seconds = since(t0);
}

void Capture::run(const std::function<void(uint64_t, uint64_t)>& on_tick, int tick_ms,
                  const std::function<void(const CaptureResult&)>& on_durable) {
  auto t0 = Clock::now();
  t0_ = t0;
  res_.source = source_name(req_.source);
  const DioAlign& a = req_.dest.align;
  if (!req_.length || !a.offset || req_.dest_offset % a.offset) {
    res_.failure.set(EINVAL, "capture", req_.dest_path);
    return;
  }
  if (req_.file_hash && req_.hash == HashMode::none) {
    res_.failure.set(EINVAL, "capture", req_.dest_path);
    return;
  }
  if (req_.dest.is_blockdev && req_.dest_offset + req_.length > req_.dest.size) {
    res_.failure.set(ENOSPC, "capture", req_.dest_path);
    return;
  }
  if (req_.source == SourceKind::image) {
    // Before any thread starts: mapping past the end of a file would fault
    // (SIGBUS), not fail, and both threads would otherwise race to report it.
    struct stat st {};
    if (stat(req_.source_path.c_str(), &st)) {
      res_.failure.set(errno, "stat", req_.source_path);
      return;
    }
    uint64_t size = static_cast<uint64_t>(st.st_size);
    uint64_t off = req_.phys - req_.image_base + req_.image_offset;
    if (req_.phys < req_.image_base || off < req_.image_offset || off > size || req_.length > size - off) {
      res_.failure.set(ENXIO, "capture", req_.source_path);
      return;
    }
  }

  std::vector<std::function<void()>> jobs;
  bool piped = req_.hash == HashMode::readback || (req_.hash == HashMode::source && req_.source != SourceKind::devmem);
  if (piped) jobs.emplace_back([this] { hash_pipe(); });
  jobs.emplace_back([this, &on_durable] {
    switch (req_.source) {
      case SourceKind::image: write_image(); break;
      case SourceKind::kernel: write_kernel(); break;
      case SourceKind::devmem: write_devmem(); break;
    }
    finish_write();
    writer_done_ = true;
    if (!stopping() && on_durable) {
      // The write's fields, copied one by one: the digest fields are still
      // the hashing thread's.
      CaptureResult written;
      written.source = res_.source;
      written.bytes_written = res_.bytes_written;
      written.bytes_zero_copy = res_.bytes_zero_copy;
      written.bytes_copied = res_.bytes_copied;
      written.bytes_bounced = res_.bytes_bounced;
      written.bytes_poisoned = res_.bytes_poisoned;
      written.mode = written.bytes_copied || written.bytes_bounced ? "copy" : "zero-copy";
      written.write_seconds = res_.write_seconds;
      written.durable_seconds = res_.durable_seconds;
      on_durable(written);
    }
  });
  // This thread only reports progress until all are done.
  run_workers(jobs, tick_ms, [&] {
    if (on_tick) on_tick(written_.load(), hashed_.load());
  });
  if (!stopping()) res_.digest_seconds = since(t0);

  res_.cancelled = cancel_ && !res_.failure.failed();
  if (req_.hash != HashMode::none && !stopping())
    res_.hash_mode = req_.hash == HashMode::readback ? "readback" : "source";
  res_.mode = res_.bytes_copied || res_.bytes_bounced ? "copy" : "zero-copy";
  res_.seconds = since(t0);
  if (on_tick) on_tick(written_.load(), hashed_.load());
}

}  // namespace physcap
