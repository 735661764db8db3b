#include "chunkhash.h"

#include <algorithm>
#include <utility>

namespace physcap {

void ChunkHasher::update(uint64_t at, const void* data, size_t n) {
  if (at != fed_) {
    out_of_order_ = true;
    return;
  }
  fed_ += n;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  if (whole_) range_.update(p, n);
  while (chunk_size_ && n) {
    size_t take = static_cast<size_t>(std::min<uint64_t>(n, chunk_size_ - in_chunk_));
    chunk_.update(p, take);
    in_chunk_ += take;
    p += take;
    n -= take;
    if (in_chunk_ == chunk_size_) {
      chunks_.push_back(chunk_.finish_hex());
      in_chunk_ = 0;
    }
  }
}

int ChunkHasher::error() const {
  if (!range_.ok() || !chunk_.ok()) return -ENOMEM;
  if (out_of_order_) return -EINVAL;
  return 0;
}

RegionDigests ChunkHasher::finish() {
  RegionDigests d;
  if (chunk_size_ && in_chunk_) chunks_.push_back(chunk_.finish_hex());
  in_chunk_ = 0;
  if (chunk_size_) d.chunk_sha256 = std::move(chunks_);
  if (whole_) d.sha256 = range_.finish_hex();
  return d;
}

}  // namespace physcap
