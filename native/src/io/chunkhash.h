#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sha256.h"

namespace physcap {

// The digests of one range of bytes.
struct RegionDigests {
  std::string sha256;                     // the whole range's (empty: not kept)
  std::vector<std::string> chunk_sha256;  // each chunk's, in order
};

// Hashes one range as its bytes arrive, in order, on the caller's thread:
// the whole range's SHA-256 and/or the SHA-256 of each chunk_size bytes of
// it, counted from the range's first byte (the last chunk may be shorter;
// an empty range has no chunks).  The devmem source hashes with it while it
// copies (the bytes are in cache once); the other sources and re-hashes go
// through a DigestPipe, which cuts chunks at the same boundaries.
class ChunkHasher {
 public:
  // whole: keep the whole range's digest.  chunk_size: 0 for no chunks.
  ChunkHasher(bool whole, uint64_t chunk_size) : whole_(whole), chunk_size_(chunk_size) {}
  ChunkHasher(const ChunkHasher&) = delete;
  ChunkHasher& operator=(const ChunkHasher&) = delete;

  // Bytes [at, at + n) of the range, at counted from its first byte.  The
  // bytes come in order: at must be fed(), or they are refused and error()
  // says so.
  void update(uint64_t at, const void* data, size_t n);
  // Bytes of the range fed so far.
  uint64_t fed() const { return fed_; }
  bool whole() const { return whole_; }
  uint64_t chunk_size() const { return chunk_size_; }
  // 0, or -errno: -ENOMEM when OpenSSL could not make a context, -EINVAL
  // when bytes came out of order.  The digests are wrong unless it is 0.
  int error() const;
  // The digests of the bytes fed, the last (shorter) chunk finished.  Once.
  RegionDigests finish();

 private:
  bool whole_;
  uint64_t chunk_size_;
  uint64_t fed_ = 0;
  uint64_t in_chunk_ = 0;  // bytes of the current chunk fed so far
  bool out_of_order_ = false;
  Sha256 range_;
  Sha256 chunk_;
  std::vector<std::string> chunks_;
};

}  // namespace physcap
