#include "common.h"

#include <string.h>

namespace physcap::addon {

std::string errno_code(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "EUNKNOWN";
}

Napi::Error node_error(Napi::Env env, const Failure& f, const std::string& what) {
  std::string code = errno_code(f.err);
  std::string msg = code + ": " + strerror(f.err) + ", " + f.syscall;
  if (!f.path.empty()) msg += " '" + f.path + "'";
  if (!what.empty()) msg += " (" + what + ")";
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", code);
  err.Set("errno", Napi::Number::New(env, -f.err));
  err.Set("syscall", f.syscall);
  if (!f.path.empty()) err.Set("path", f.path);
  return err;
}

void throw_errno(Napi::Env env, int neg_errno, const char* syscall, const std::string& path, const std::string& what) {
  Failure f;
  f.set(neg_errno, syscall, path);
  throw node_error(env, f, what);
}

Napi::Error state_error(Napi::Env env, const std::string& msg) {
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", "ERR_INVALID_STATE");
  return err;
}

Napi::Error abort_error(Napi::Env env, const std::string& noun, const std::string& what) {
  Napi::Error err = Napi::Error::New(env, "The " + noun + " was aborted (" + what + ")");
  err.Set("name", "AbortError");
  err.Set("code", "ABORT_ERR");
  return err;
}

uint64_t u64(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsBigInt()) {
    bool lossless = true;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(o.Env(), std::string(key) + " does not fit in 64 bits");
    return x;
  }
  if (v.IsNumber()) return static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
  return 0;
}

std::string str(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

uint64_t big_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  bool lossless = true;
  uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(info.Env(), std::string(name) + " does not fit in 64 bits");
  return v;
}

Napi::Object DestToJs(Napi::Env env, const DestInfo& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", d.fd);
  o.Set("isBlockDevice", d.is_blockdev);
  o.Set("size", Napi::Number::New(env, static_cast<double>(d.size)));
  o.Set("memAlign", d.align.mem);
  o.Set("offsetAlign", d.align.offset);
  return o;
}

DestInfo DestFromJs(const Napi::Object& o) {
  DestInfo d;
  d.fd = o.Get("fd").As<Napi::Number>().Int32Value();
  d.is_blockdev = o.Get("isBlockDevice").ToBoolean();
  d.size = static_cast<uint64_t>(o.Get("size").As<Napi::Number>().DoubleValue());
  d.align.mem = o.Get("memAlign").As<Napi::Number>().Uint32Value();
  d.align.offset = o.Get("offsetAlign").As<Napi::Number>().Uint32Value();
  return d;
}

}  // namespace physcap::addon
