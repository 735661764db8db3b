#include "digestpipe.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

namespace physcap {

namespace {

// The ring holds at most this many blocks (its memory is the pipe's RSS).
constexpr size_t kMaxSlots = 32;
// A slot's block while a reader fills it.
constexpr int64_t kFilling = -2;
// Waits re-check the caller's stop flag this often: nothing notifies it.
constexpr auto kPoll = std::chrono::milliseconds(50);

// Hashing runs at a lower priority than the thread that writes: on a
// machine with as many hashing threads as cores, the writer (which needs
// little CPU, but needs it at once to keep the disk busy) would otherwise
// wait for a core, and the capture would be durable later.  The digests
// get every cycle the writer leaves.
void yield_to_writer() {
  // Best effort: a thread that may not lower its priority hashes as it is.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
}

}  // namespace

DigestPipe::DigestPipe(DigestPipeSpec spec) : spec_(std::move(spec)) {
  cut_blocks();
  size_ = spec_.size;
  last_block_ = static_cast<int64_t>(blocks_.size()) - 1;
  released_.assign(blocks_.size(), 0);

  span_sha_.resize(spec_.spans.size());
  // The in-order digests: a thread each.  The gaps' is not counted: it
  // hashes a few pages of headers and padding.
  unsigned in_order = spec_.stream ? 1 : 0;
  for (size_t i = 0; i < spec_.spans.size(); i++) {
    if (!spec_.spans[i].whole) continue;
    span_sha_[i] = std::make_unique<Sha256>();
    in_order = spec_.stream ? 2 : 1;
  }
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  chunk_threads_ = spec_.chunk_threads ? spec_.chunk_threads : std::max(1u, cores > in_order ? cores - in_order : 1u);
  chunk_threads_ = static_cast<unsigned>(std::min<size_t>(chunk_threads_, std::max<size_t>(1, chunk_digests_.size())));

  // Enough blocks for every chunk thread to hold a chunk of its own while
  // the in-order digests trail a little: more buys no overlap.
  uint64_t widest = 0;
  for (const DigestSpan& s : spec_.spans) widest = std::max(widest, s.chunk_size);
  size_t per_chunk = static_cast<size_t>(std::min<uint64_t>((widest + spec_.block - 1) / spec_.block, kMaxSlots));
  size_t count = std::clamp<size_t>(per_chunk * chunk_threads_ + 2 * (in_order + 1) + spec_.readers, 4, kMaxSlots);
  count = std::min(count, std::max<size_t>(1, blocks_.size()));
  // Room for an O_DIRECT read that starts on the block below and ends on the block above.
  slot_bytes_ = spec_.block + 2 * spec_.align;
  slots_.resize(count);
}

// Blocks end at every span's edges and every chunk's, so each block feeds
// one chunk at most.
void DigestPipe::cut_blocks() {
  auto add = [&](uint64_t from, uint64_t to, int span, int64_t chunk) {
    for (uint64_t at = from; at < to;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(spec_.block, to - at));
      blocks_.push_back({at, n, span, chunk, false});
      at += n;
    }
    if (chunk >= 0 && from < to) blocks_.back().chunk_end = true;
  };
  uint64_t pos = 0;
  for (size_t i = 0; i < spec_.spans.size(); i++) {
    const DigestSpan& s = spec_.spans[i];
    int span = static_cast<int>(i);
    add(pos, s.offset, -1, -1);
    if (s.chunk_size) {
      for (uint64_t c = 0; c < s.length; c += s.chunk_size) {
        int64_t id = static_cast<int64_t>(chunk_digests_.size());
        chunk_digests_.emplace_back();
        chunk_span_.push_back(span);
        add(s.offset + c, s.offset + std::min(s.length, c + s.chunk_size), span, id);
      }
    } else {
      add(s.offset, s.offset + s.length, span, -1);
    }
    pos = s.offset + s.length;
  }
  add(pos, spec_.size, -1, -1);
}

int DigestPipe::consumers(const Block& b) const {
  return (spec_.stream ? 1 : 0) + (spec_.gaps && b.span < 0 ? 1 : 0) + (b.span >= 0 && span_sha_[b.span] ? 1 : 0) +
         (b.chunk >= 0 ? 1 : 0);
}

void DigestPipe::fail(int err, const char* syscall) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failed_) {
      err_ = err;
      syscall_ = syscall;
    }
    failed_ = true;
  }
  filled_.notify_all();
  freed_.notify_all();
}

// Block k's bytes, once the reader has them: false at the end of the data,
// on a failure or when stopping.
bool DigestPipe::acquire(int64_t k, View* v, const std::atomic<bool>& stop) {
  std::unique_lock<std::mutex> lock(mu_);
  Slot& s = slots_[static_cast<size_t>(k) % slots_.size()];
  for (;;) {
    if (failed_ || stop) return false;
    if (s.block == k) {
      v->data = s.buf.get() + s.skip;
      v->n = s.n;
      return true;
    }
    if (k > last_block_) return false;
    filled_.wait_for(lock, kPoll);
  }
}

void DigestPipe::release(int64_t k) {
  bool freed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& s = slots_[static_cast<size_t>(k) % slots_.size()];
    if (--s.refs == 0) {
      freed = true;
      released_[static_cast<size_t>(k)] = 1;
      while (released_upto_ < blocks_.size() && released_[released_upto_]) released_upto_++;
      uint64_t at = released_upto_ < blocks_.size() ? blocks_[released_upto_].at : spec_.size;
      done_.store(std::min(at, size_), std::memory_order_release);
    }
  }
  if (freed) freed_.notify_all();
}

void DigestPipe::stream_lane(Sha256* sha, bool gaps_only, const std::atomic<bool>& stop) {
  if (!sha->ok()) return fail(ENOMEM, "EVP_MD_CTX_new");
  for (int64_t k = 0; k < static_cast<int64_t>(blocks_.size()); k++) {
    if (gaps_only && blocks_[static_cast<size_t>(k)].span >= 0) continue;
    View v;
    if (!acquire(k, &v, stop)) return;
    sha->update(v.data, v.n);
    release(k);
  }
}

// Each span's own digest, span after span, in one thread: they never overlap.
void DigestPipe::whole_lane(const std::atomic<bool>& stop) {
  for (const auto& sha : span_sha_)
    if (sha && !sha->ok()) return fail(ENOMEM, "EVP_MD_CTX_new");
  for (int64_t k = 0; k < static_cast<int64_t>(blocks_.size()); k++) {
    const Block& b = blocks_[static_cast<size_t>(k)];
    if (b.span < 0 || !span_sha_[b.span]) continue;
    View v;
    if (!acquire(k, &v, stop)) return;
    span_sha_[b.span]->update(v.data, v.n);
    release(k);
  }
}

// Chunks worker, worker + threads, ...: each chunk whole on one thread, in
// order, so its digest needs no merging.
void DigestPipe::chunk_lane(unsigned worker, const std::atomic<bool>& stop) {
  Sha256 sha;
  if (!sha.ok()) return fail(ENOMEM, "EVP_MD_CTX_new");
  int64_t current = -1;
  for (int64_t k = 0; k < static_cast<int64_t>(blocks_.size()); k++) {
    const Block& b = blocks_[static_cast<size_t>(k)];
    if (b.chunk < 0 || static_cast<unsigned>(b.chunk % chunk_threads_) != worker) continue;
    View v;
    if (!acquire(k, &v, stop)) break;
    current = b.chunk;
    sha.update(v.data, v.n);
    bool ended = b.chunk_end || v.n < b.n;  // the data ended inside it
    release(k);
    if (ended) {
      chunk_digests_[static_cast<size_t>(current)] = sha.finish_hex();
      current = -1;
    }
  }
  // The data ended inside a chunk at a block boundary: what it has is the chunk.
  if (current >= 0 && !failed_ && !stop) chunk_digests_[static_cast<size_t>(current)] = sha.finish_hex();
}

void DigestPipe::read_blocks(const BlockSource& read, unsigned first, unsigned step, const std::atomic<bool>& stop) {
  for (size_t k = first; k < blocks_.size(); k += step) {
    const Block& b = blocks_[k];
    int wanted = consumers(b);
    Slot& s = slots_[k % slots_.size()];
    {
      std::unique_lock<std::mutex> lock(mu_);
      // The slot is free once its previous block (k - slots) is in it and
      // hashed by all: a reader behind on that block must not be overtaken.
      int64_t previous = static_cast<int64_t>(k) - static_cast<int64_t>(slots_.size());
      auto busy = [&] { return previous >= 0 && (s.block != previous || s.refs > 0); };
      while (busy() && !failed_ && !stop && static_cast<int64_t>(k) <= last_block_) freed_.wait_for(lock, kPoll);
      if (failed_ || stop || static_cast<int64_t>(k) > last_block_) return;
      if (!wanted) {
        // Nothing hashes it (a gap, no whole-file digest): not read at all.
        s.block = static_cast<int64_t>(k);
        s.refs = 0;
        released_[k] = 1;
        lock.unlock();
        freed_.notify_all();
        continue;
      }
      s.block = kFilling;
    }
    size_t skip = 0;
    const char* syscall = "pread";
    int64_t got = read(s.buf.get(), slot_bytes_, b.at, b.n, &skip, &syscall);
    if (got < 0) return fail(static_cast<int>(-got), syscall);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (static_cast<size_t>(got) < b.n) {
        // The data ends here: no block after this one.
        size_ = std::min(size_, b.at + static_cast<uint64_t>(got));
        last_block_ = std::min(last_block_, static_cast<int64_t>(k) - (got == 0 ? 1 : 0));
      }
      if (got > 0) {
        s.skip = skip;
        s.n = static_cast<size_t>(got);
        s.refs = wanted;
        s.block = static_cast<int64_t>(k);
      }
    }
    filled_.notify_all();
    freed_.notify_all();
    if (static_cast<size_t>(got) < b.n) return;
  }
}

int DigestPipe::run(const BlockSource& read, const std::atomic<bool>& stop) {
  for (Slot& s : slots_) {
    void* p = nullptr;
    if (posix_memalign(&p, std::max<size_t>(spec_.align, sizeof(void*)), slot_bytes_)) {
      syscall_ = "posix_memalign";
      return -ENOMEM;
    }
    s.buf.reset(static_cast<unsigned char*>(p));
  }
  std::vector<std::thread> lanes;
  if (spec_.stream)
    lanes.emplace_back([&] {
      yield_to_writer();
      stream_lane(spec_.stream, false, stop);
    });
  if (spec_.gaps)
    lanes.emplace_back([&] {
      yield_to_writer();
      stream_lane(spec_.gaps, true, stop);
    });
  if (std::any_of(span_sha_.begin(), span_sha_.end(), [](const auto& s) { return s != nullptr; }))
    lanes.emplace_back([&] {
      yield_to_writer();
      whole_lane(stop);
    });
  if (!chunk_digests_.empty())
    for (unsigned w = 0; w < chunk_threads_; w++)
      lanes.emplace_back([&, w] {
        yield_to_writer();
        chunk_lane(w, stop);
      });

  // Each reader takes every readers-th block: several reads in flight keep
  // a disk busy that one synchronous O_DIRECT read at a time leaves idle.
  unsigned readers = std::max(1u, spec_.readers);
  std::vector<std::thread> reading;
  for (unsigned r = 1; r < readers; r++) reading.emplace_back([&, r] { read_blocks(read, r, readers, stop); });
  read_blocks(read, 0, readers, stop);
  for (std::thread& t : reading) t.join();
  for (std::thread& t : lanes) t.join();
  if (failed_) return -err_;
  if (!stop) done_.store(size_, std::memory_order_release);
  return 0;
}

std::vector<RegionDigests> DigestPipe::digests() {
  std::vector<RegionDigests> out(spec_.spans.size());
  for (size_t i = 0; i < spec_.spans.size(); i++)
    if (span_sha_[i]) out[i].sha256 = span_sha_[i]->finish_hex();
  for (size_t id = 0; id < chunk_digests_.size(); id++) {
    // Chunks past the end of the data have none, nor do any after them.
    if (chunk_digests_[id].empty()) continue;
    out[static_cast<size_t>(chunk_span_[id])].chunk_sha256.push_back(std::move(chunk_digests_[id]));
  }
  return out;
}

}  // namespace physcap
