// Capture destinations, directories (the *at calls, names resolved in an
// open directory), descriptors and locks: short calls on the event loop.
#include <unistd.h>

#include "../io/dest.h"
#include "../io/dirops.h"
#include "common.h"
#include "functions.h"

namespace physcap::addon {

// ---- destinations ----

// openDestination(path, mode: 'create' | 'existing')
Napi::Value OpenDestination(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string mode = info[1].As<Napi::String>().Utf8Value();
  physcap::DestInfo d;
  Failure f;
  if (physcap::open_destination(path, mode == "create" ? physcap::DestMode::create : physcap::DestMode::existing, &d,
                                &f))
    throw node_error(env, f, "opening a capture destination for direct I/O");
  return DestToJs(env, d);
}

// preallocate(dest, path, length)
Napi::Value Preallocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  physcap::DestInfo d = DestFromJs(info[0].As<Napi::Object>());
  std::string path = info[1].As<Napi::String>().Utf8Value();
  bool lossless = true;
  uint64_t len = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
  Failure f;
  if (physcap::preallocate(d, len, path, &f)) throw node_error(env, f, "allocating the capture's space up front");
  return env.Undefined();
}

// writeAligned(dest, path, offset, buffer)
Napi::Value WriteAligned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  physcap::DestInfo d = DestFromJs(info[0].As<Napi::Object>());
  std::string path = info[1].As<Napi::String>().Utf8Value();
  bool lossless = true;
  uint64_t off = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
  Napi::Buffer<uint8_t> buf = info[3].As<Napi::Buffer<uint8_t>>();
  int r = physcap::write_aligned(d.fd, d.align, off, buf.Data(), buf.Length());
  if (r) throw_errno(env, r, "pwrite", path, "writing an aligned header");
  return env.Undefined();
}

// openDestinationAt(dirFd, name, mode: 'create' | 'existing', displayPath)
Napi::Value OpenDestinationAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dir_fd = info[0].As<Napi::Number>().Int32Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  std::string mode = info[2].As<Napi::String>().Utf8Value();
  std::string display = info[3].As<Napi::String>().Utf8Value();
  physcap::DestInfo d;
  Failure f;
  if (physcap::open_destination_at(
          dir_fd, name, mode == "create" ? physcap::DestMode::create : physcap::DestMode::existing, display, &d, &f))
    throw node_error(env, f, "opening a capture destination for direct I/O");
  return DestToJs(env, d);
}

// closeFd(fd, what?): what the fd was being closed as, for the error.
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string what = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "closing a file descriptor";
  if (close(fd)) throw_errno(env, -errno, "close", "", what);
  return env.Undefined();
}

// ---- directories: the *at calls, names resolved in an open directory ----

// openDir(path, nofollow)
Napi::Value OpenDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = physcap::open_dir(path, info[1].ToBoolean());
  if (fd < 0) throw_errno(env, fd, "open", path, "opening a directory");
  return Napi::Number::New(env, fd);
}

// openDirAt(dirFd, name, displayPath)
Napi::Value OpenDirAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dir_fd = info[0].As<Napi::Number>().Int32Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  std::string display = info[2].As<Napi::String>().Utf8Value();
  int fd = physcap::open_dir_at(dir_fd, name);
  if (fd < 0) throw_errno(env, fd, "openat", display, "opening a subdirectory");
  return Napi::Number::New(env, fd);
}

// mkdirAt(dirFd, name, mode, displayPath)
Napi::Value MkdirAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dir_fd = info[0].As<Napi::Number>().Int32Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  mode_t mode = info[2].As<Napi::Number>().Uint32Value();
  std::string display = info[3].As<Napi::String>().Utf8Value();
  int r = physcap::mkdir_at(dir_fd, name, mode);
  if (r) throw_errno(env, r, "mkdirat", display, "making a directory");
  return env.Undefined();
}

// writeFileAt(dirFd, name, buffer, displayPath)
Napi::Value WriteFileAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dir_fd = info[0].As<Napi::Number>().Int32Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> buf = info[2].As<Napi::Buffer<uint8_t>>();
  std::string display = info[3].As<Napi::String>().Utf8Value();
  Failure f;
  if (physcap::write_file_at(dir_fd, name, buf.Data(), buf.Length(), display, &f))
    throw node_error(env, f, "writing a new file whole");
  return env.Undefined();
}

// renameAt(oldDirFd, oldName, newDirFd, newName, displayPath)
Napi::Value RenameAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int old_fd = info[0].As<Napi::Number>().Int32Value();
  std::string old_name = info[1].As<Napi::String>().Utf8Value();
  int new_fd = info[2].As<Napi::Number>().Int32Value();
  std::string new_name = info[3].As<Napi::String>().Utf8Value();
  std::string display = info[4].As<Napi::String>().Utf8Value();
  int r = physcap::rename_at(old_fd, old_name, new_fd, new_name);
  if (r) throw_errno(env, r, "renameat2", display, "renaming without replacing anything");
  return env.Undefined();
}

// ---- descriptors ----

// fsyncFd(fd, displayPath)
Napi::Value FsyncFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string display = info[1].As<Napi::String>().Utf8Value();
  if (fsync(fd)) throw_errno(env, -errno, "fsync", display, "flushing to disk");
  return env.Undefined();
}

// lockFd(fd, exclusive, wait) -> taken
Napi::Value LockFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int r = physcap::lock_fd(fd, info[1].ToBoolean(), info[2].ToBoolean());
  if (r < 0) throw_errno(env, r, "flock", "", "taking a lock");
  return Napi::Boolean::New(env, r == 1);
}

Napi::Value UnlockFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int r = physcap::unlock_fd(info[0].As<Napi::Number>().Int32Value());
  if (r) throw_errno(env, r, "flock", "", "releasing a lock");
  return env.Undefined();
}

// ---- record locks on byte ranges (F_OFD_*) ----

namespace {

// (fd, offset: bigint, length: bigint): what every range-lock call takes;
// the binding has checked them, this only converts.
struct RangeArgs {
  int fd;
  off_t offset;
  off_t length;
};

RangeArgs range_args(const Napi::CallbackInfo& info) {
  bool lossless = false;
  return {info[0].As<Napi::Number>().Int32Value(),
          static_cast<off_t>(info[1].As<Napi::BigInt>().Uint64Value(&lossless)),
          static_cast<off_t>(info[2].As<Napi::BigInt>().Uint64Value(&lossless))};
}

}  // namespace

// lockRange(fd, offset, length, exclusive) -> taken
Napi::Value LockRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RangeArgs a = range_args(info);
  int r = physcap::lock_range(a.fd, a.offset, a.length, info[3].ToBoolean());
  if (r < 0) throw_errno(env, r, "fcntl", "", "taking a record lock");
  return Napi::Boolean::New(env, r == 1);
}

Napi::Value UnlockRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RangeArgs a = range_args(info);
  int r = physcap::unlock_range(a.fd, a.offset, a.length);
  if (r) throw_errno(env, r, "fcntl", "", "releasing a record lock");
  return env.Undefined();
}

// rangeLockedElsewhere(fd, offset, length) -> another description holds a lock there
Napi::Value RangeLockedElsewhere(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RangeArgs a = range_args(info);
  int r = physcap::range_locked_elsewhere(a.fd, a.offset, a.length);
  if (r < 0) throw_errno(env, r, "fcntl", "", "testing a record lock");
  return Napi::Boolean::New(env, r == 1);
}

}  // namespace physcap::addon
