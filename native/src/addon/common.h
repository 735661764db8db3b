// What every part of the addon glue shares: Node-style errors, reading
// request objects, and the instance data.  Arguments are validated by the
// TypeScript facade (agent/src/native/binding.ts), the only caller.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#include "../io/dest.h"
#include "../io/result.h"

namespace physcap::addon {

// Per environment (a worker thread of Node's has its own).
struct AddonData {
  Napi::FunctionReference file_hash_class;
};

// "EIO" for EIO: what Node puts in an error's code.
std::string errno_code(int err);

// Node's own shape (src/api/exceptions.cc): code, errno (negative),
// syscall, path, and a message that says what was being done.
Napi::Error node_error(Napi::Env env, const Failure& f, const std::string& what);

[[noreturn]] void throw_errno(Napi::Env env, int neg_errno, const char* syscall, const std::string& path,
                              const std::string& what);

// Misuse that no errno describes, in Node's words.
Napi::Error state_error(Napi::Env env, const std::string& msg);

// An operation stopped by its cancel(): "The <noun> was aborted (<what>)".
Napi::Error abort_error(Napi::Env env, const std::string& noun, const std::string& what);

// o[key] as a uint64 (a bigint, or a number); 0 when absent.
uint64_t u64(const Napi::Object& o, const char* key);
// o[key] as a string; empty when absent.
std::string str(const Napi::Object& o, const char* key);
// info[i], a bigint, as a uint64: a RangeError naming it if it does not fit.
uint64_t big_arg(const Napi::CallbackInfo& info, size_t i, const char* name);

// A destination as JavaScript holds it: { fd, isBlockDevice, size, memAlign, offsetAlign }.
Napi::Object DestToJs(Napi::Env env, const DestInfo& d);
DestInfo DestFromJs(const Napi::Object& o);

}  // namespace physcap::addon
