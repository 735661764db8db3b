#include "sha256.h"

#include <openssl/evp.h>

namespace physcap {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ && EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = nullptr;
  }
}

Sha256::~Sha256() {
  if (ctx_) EVP_MD_CTX_free(ctx_);
}

void Sha256::update(const void* data, size_t len) {
  if (ctx_ && len) EVP_DigestUpdate(ctx_, data, len);
}

void Sha256::update_zeros(uint64_t n) {
  static const unsigned char kZeros[64 << 10] = {};
  while (n) {
    size_t take = n < sizeof(kZeros) ? static_cast<size_t>(n) : sizeof(kZeros);
    update(kZeros, take);
    n -= take;
  }
}

std::string Sha256::finish_hex() {
  static const char digits[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  std::string hex;
  if (!ctx_ || EVP_DigestFinal_ex(ctx_, md, &n) != 1) return hex;
  hex.reserve(n * 2);
  for (unsigned int i = 0; i < n; i++) {
    hex.push_back(digits[md[i] >> 4]);
    hex.push_back(digits[md[i] & 15]);
  }
  EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
  return hex;
}

}  // namespace physcap
