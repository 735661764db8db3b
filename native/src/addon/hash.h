// A whole-file SHA-256, fed from JavaScript and by captures.
#pragma once

#include <napi.h>

#include "../io/sha256.h"

namespace physcap::addon {

// Headers and padding are fed on the event loop, a region's bytes by a
// capture's threads; never both at once: a capture claims the hash until
// its promise settles, and JavaScript is refused it meanwhile.
class FileHash : public Napi::ObjectWrap<FileHash> {
 public:
  static Napi::Function Define(Napi::Env env);

  explicit FileHash(const Napi::CallbackInfo& info);

  // The FileHash behind a capture request's fileHash, or a TypeError.
  static FileHash* FromJs(Napi::Env env, Napi::Value v);

  // busy_ and finished_ are only touched on the event loop: no lock.
  void check_usable(Napi::Env env) const;
  physcap::Sha256* sha() { return &sha_; }
  void claim() { busy_ = true; }
  void release() { busy_ = false; }

 private:
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value UpdateZeros(const Napi::CallbackInfo& info);
  Napi::Value Digest(const Napi::CallbackInfo& info);

  physcap::Sha256 sha_;
  bool busy_ = false;
  bool finished_ = false;
};

}  // namespace physcap::addon
