#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

struct evp_md_ctx_st;

namespace physcap {

// SHA-256 through OpenSSL's EVP interface, as linked into Node itself (so
// SHA-NI is used where the CPU has it).  Not copyable; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  bool ok() const { return ctx_ != nullptr; }
  void update(const void* data, size_t len);
  // n zero bytes (padding between aligned parts of a file), fed from a
  // static block: n can be large, and is never allocated.
  void update_zeros(uint64_t n);
  // Lowercase hex; the context starts over afterwards.
  std::string finish_hex();

 private:
  evp_md_ctx_st* ctx_;
};

}  // namespace physcap
