// The addon glue: JavaScript values in, plain C++ structs to the io/ layer,
// Node-style errors and Promises out.  Long work never runs on the event
// loop: each capture gets its own threads (not libuv's small shared pool,
// which fs and zlib also use) and reports back through a thread-safe
// function.  Arguments are validated by the TypeScript facade
// (agent/src/native/binding.ts), the only caller.
#include <napi.h>
#include <string.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "../io/armdev.h"
#include "../io/capture.h"
#include "../io/dest.h"
#include "../io/dirops.h"
#include "../io/hashfile.h"
#include "../io/kmsg.h"
#include "../io/physcap_dev.h"
#include "../io/physread.h"
#include "../io/sha256.h"
#include "../io/system.h"

namespace {

using physcap::Failure;

// "EIO" for EIO: what Node puts in an error's code.
std::string errno_code(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "EUNKNOWN";
}

// Node's own shape (src/api/exceptions.cc): code, errno (negative),
// syscall, path, and a message that says what was being done.
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

[[noreturn]] void throw_errno(Napi::Env env, int neg_errno, const char* syscall, const std::string& path,
                              const std::string& what) {
  Failure f;
  f.set(neg_errno, syscall, path);
  throw node_error(env, f, what);
}

// Misuse that no errno describes, in Node's words.
Napi::Error state_error(Napi::Env env, const std::string& msg) {
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", "ERR_INVALID_STATE");
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

// One query ioctl on a descriptor of its own: open, call, close; a
// Node-style error naming the step that failed.
template <typename T>
T device_query(Napi::Env env, int (*call)(int, T*), const char* syscall, const char* what) {
  int fd = physcap::device_open();
  if (fd < 0) throw_errno(env, fd, "open", physcap::kDevicePath, what);
  T out;
  int r = call(fd, &out);
  close(fd);
  if (r) throw_errno(env, r, syscall, physcap::kDevicePath, what);
  return out;
}

Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  physcap_info di = device_query(env, physcap::device_info, "ioctl(PHYSCAP_IOC_INFO)", "reading physcap.ko's INFO");
  Napi::Object o = Napi::Object::New(env);
  o.Set("abiVersion", di.abi_version);
  o.Set("pageSize", di.page_size);
  o.Set("features", Napi::BigInt::New(env, static_cast<uint64_t>(di.features)));
  o.Set("physLimit", Napi::BigInt::New(env, static_cast<uint64_t>(di.phys_limit)));
  o.Set("batchPages", di.batch_pages);
  return o;
}

// kernelMap() -> { directMapVirt, directMapStart, directMapEnd, imageOffset }
// (bigints): where the running kernel maps memory, from physcap.ko.
Napi::Value KernelMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  physcap_kernel_map km = device_query(env, physcap::device_kernel_map, "ioctl(PHYSCAP_IOC_KERNEL_MAP)", "reading physcap.ko's KERNEL_MAP (ABI 3)");
  Napi::Object o = Napi::Object::New(env);
  o.Set("directMapVirt", Napi::BigInt::New(env, static_cast<uint64_t>(km.direct_map_virt)));
  o.Set("directMapStart", Napi::BigInt::New(env, static_cast<uint64_t>(km.direct_map_start)));
  o.Set("directMapEnd", Napi::BigInt::New(env, static_cast<uint64_t>(km.direct_map_end)));
  o.Set("imageOffset", Napi::BigInt::New(env, static_cast<uint64_t>(km.image_offset)));
  return o;
}

// readPhysical(phys, length, device?) -> Buffer.  A few KiB at most (the
// facade caps it at 1 MiB): copied on the event loop, like a small read.
Napi::Value ReadPhysical(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool lossless = true;
  uint64_t phys = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(env, "phys does not fit in 64 bits");
  size_t len = info[1].As<Napi::Number>().Uint32Value();
  std::string device = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : std::string();
  Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, len);
  Failure f;
  if (physcap::read_physical(device, phys, buf.Data(), len, &f)) {
    char what[96];
    snprintf(what, sizeof(what), "reading physical memory %#llx+%#zx", static_cast<unsigned long long>(phys), len);
    throw node_error(env, f, what);
  }
  return buf;
}

Napi::Object DestToJs(Napi::Env env, const physcap::DestInfo& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", d.fd);
  o.Set("isBlockDevice", d.is_blockdev);
  o.Set("size", Napi::Number::New(env, static_cast<double>(d.size)));
  o.Set("memAlign", d.align.mem);
  o.Set("offsetAlign", d.align.offset);
  return o;
}

physcap::DestInfo DestFromJs(const Napi::Object& o) {
  physcap::DestInfo d;
  d.fd = o.Get("fd").As<Napi::Number>().Int32Value();
  d.is_blockdev = o.Get("isBlockDevice").ToBoolean();
  d.size = static_cast<uint64_t>(o.Get("size").As<Napi::Number>().DoubleValue());
  d.align.mem = o.Get("memAlign").As<Napi::Number>().Uint32Value();
  d.align.offset = o.Get("offsetAlign").As<Napi::Number>().Uint32Value();
  return d;
}

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
  if (physcap::open_destination_at(dir_fd, name,
                                   mode == "create" ? physcap::DestMode::create : physcap::DestMode::existing,
                                   display, &d, &f))
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

// ---- a whole-file SHA-256, fed from JavaScript and by captures ----

struct AddonData {
  Napi::FunctionReference file_hash_class;
};

// Headers and padding are fed on the event loop, a region's bytes by a
// capture's threads; never both at once: a capture claims the hash until
// its promise settles, and JavaScript is refused it meanwhile.
class FileHash : public Napi::ObjectWrap<FileHash> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FileHash",
                       {InstanceMethod("update", &FileHash::Update), InstanceMethod("updateZeros", &FileHash::UpdateZeros),
                        InstanceMethod("digest", &FileHash::Digest)});
  }

  explicit FileHash(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FileHash>(info) {
    if (!sha_.ok()) throw_errno(info.Env(), -ENOMEM, "EVP_MD_CTX_new", "", "starting a file hash");
  }

  // The FileHash behind a capture request's fileHash, or a TypeError.
  static FileHash* FromJs(Napi::Env env, Napi::Value v) {
    Napi::FunctionReference& cls = env.GetInstanceData<AddonData>()->file_hash_class;
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(cls.Value())) {
      Napi::TypeError err = Napi::TypeError::New(env, "fileHash is not a FileHash");
      err.Set("code", "ERR_INVALID_ARG_TYPE");
      throw err;
    }
    return Unwrap(v.As<Napi::Object>());
  }

  // busy_ and finished_ are only touched on the event loop: no lock.
  void check_usable(Napi::Env env) const {
    if (busy_) throw state_error(env, "The file hash is in use by a capture that has not settled");
    if (finished_) throw state_error(env, "The file hash was already digested");
  }
  physcap::Sha256* sha() { return &sha_; }
  void claim() { busy_ = true; }
  void release() { busy_ = false; }

 private:
  Napi::Value Update(const Napi::CallbackInfo& info) {
    check_usable(info.Env());
    Napi::Buffer<uint8_t> buf = info[0].As<Napi::Buffer<uint8_t>>();
    sha_.update(buf.Data(), buf.Length());
    return info.Env().Undefined();
  }
  Napi::Value UpdateZeros(const Napi::CallbackInfo& info) {
    check_usable(info.Env());
    bool lossless = true;
    uint64_t n = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(info.Env(), "n does not fit in 64 bits");
    sha_.update_zeros(n);
    return info.Env().Undefined();
  }
  Napi::Value Digest(const Napi::CallbackInfo& info) {
    check_usable(info.Env());
    finished_ = true;
    return Napi::String::New(info.Env(), sha_.finish_hex());
  }

  physcap::Sha256 sha_;
  bool busy_ = false;
  bool finished_ = false;
};

Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string sock = info[0].As<Napi::String>().Utf8Value();
  std::string msg = info[1].As<Napi::String>().Utf8Value();
  int r = physcap::sd_notify_send(sock, msg);
  if (r) throw_errno(env, r, "sendto", sock, "notifying the service manager");
  return env.Undefined();
}

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  physcap::PeerCred c;
  int r = physcap::peer_credentials(info[0].As<Napi::Number>().Int32Value(), &c);
  if (r) throw_errno(env, r, "getsockopt(SO_PEERCRED)", "", "checking who is on the control socket");
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", c.pid);
  o.Set("uid", c.uid);
  o.Set("gid", c.gid);
  return o;
}

// ---- capture: one std::thread drives it; results come back through a TSFN ----

struct Tick {
  uint64_t written;
  uint64_t hashed;
  double seconds;
  bool final;
};

struct CaptureJob {
  std::shared_ptr<physcap::Capture> capture;
  Napi::Promise::Deferred deferred;
  Napi::ThreadSafeFunction tsfn;
  std::string what;
  // The request's fileHash, kept alive and claimed until the promise settles.
  FileHash* file_hash = nullptr;
  Napi::ObjectReference file_hash_ref;
  explicit CaptureJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

Napi::Object ResultToJs(Napi::Env env, const physcap::CaptureResult& r) {
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  o.Set("source", r.source);
  o.Set("mode", r.mode);
  o.Set("bytesWritten", num(r.bytes_written));
  o.Set("bytesZeroCopy", num(r.bytes_zero_copy));
  o.Set("bytesCopied", num(r.bytes_copied));
  o.Set("bytesBounced", num(r.bytes_bounced));
  o.Set("bytesPoisoned", num(r.bytes_poisoned));
  o.Set("hashMode", r.hash_mode);
  if (!r.sha256.empty()) o.Set("sha256", r.sha256);
  Napi::Array chunks = Napi::Array::New(env, r.chunk_sha256.size());
  for (size_t i = 0; i < r.chunk_sha256.size(); i++) chunks.Set(static_cast<uint32_t>(i), r.chunk_sha256[i]);
  o.Set("chunkSha256", chunks);
  o.Set("seconds", r.seconds);
  o.Set("writeSeconds", r.write_seconds);
  o.Set("hashSeconds", r.hash_seconds);
  return o;
}

physcap::CaptureRequest RequestFromJs(const Napi::Object& o) {
  physcap::CaptureRequest req;
  std::string source = str(o, "source");
  req.source = source == "kernel"   ? physcap::SourceKind::kernel
               : source == "devmem" ? physcap::SourceKind::devmem
                                    : physcap::SourceKind::image;
  req.source_path = str(o, "sourcePath");
  req.phys = u64(o, "phys");
  req.image_base = u64(o, "imageBase");
  req.image_offset = u64(o, "imageOffset");
  req.length = u64(o, "length");
  req.kernel_flags = static_cast<uint32_t>(u64(o, "kernelFlags"));
  req.dest = DestFromJs(o.Get("dest").As<Napi::Object>());
  req.dest_path = str(o, "destPath");
  req.dest_offset = u64(o, "destOffset");
  req.truncate_to_end = o.Get("truncate").ToBoolean();
  req.sync = o.Get("sync").ToBoolean();
  std::string hash = str(o, "hash");
  req.hash = hash == "none" ? physcap::HashMode::none
             : hash == "readback" ? physcap::HashMode::readback
                                  : physcap::HashMode::source;
  req.chunk_size = u64(o, "chunkSize");
  uint64_t window = u64(o, "window");
  if (window) req.window = static_cast<size_t>(window);
  return req;
}

// capture(request, onProgress, progressMs) -> { promise, cancel() }
Napi::Value StartCapture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object request = info[0].As<Napi::Object>();
  Napi::Function on_progress = info[1].As<Napi::Function>();
  int tick_ms = info[2].As<Napi::Number>().Int32Value();

  auto job = std::make_shared<CaptureJob>(env);
  physcap::CaptureRequest req = RequestFromJs(request);
  Napi::Value file_hash = request.Get("fileHash");
  FileHash* fh = nullptr;
  if (!file_hash.IsUndefined() && !file_hash.IsNull()) {
    fh = FileHash::FromJs(env, file_hash);
    fh->check_usable(env);
    req.file_hash = fh->sha();
  }
  char what[256];
  snprintf(what, sizeof(what), "capturing %s range %#llx+%#llx to %s at offset %llu",
           physcap::source_name(req.source), static_cast<unsigned long long>(req.phys),
           static_cast<unsigned long long>(req.length), req.dest_path.c_str(),
           static_cast<unsigned long long>(req.dest_offset));
  job->what = what;
  job->capture = std::make_shared<physcap::Capture>(std::move(req));
  job->tsfn = Napi::ThreadSafeFunction::New(env, on_progress, "physcap-capture", 0, 1);
  // Last, once nothing here can throw: only the settling below releases it.
  if (fh) {
    fh->claim();
    job->file_hash = fh;
    job->file_hash_ref = Napi::Persistent(file_hash.As<Napi::Object>());
  }

  std::thread([job, tick_ms] {
    auto t0 = std::chrono::steady_clock::now();
    auto tick = [&](uint64_t written, uint64_t hashed) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      auto* t = new Tick{written, hashed, secs, false};
      // Progress may be dropped when JavaScript is busy: never block a capture on it.
      if (job->tsfn.NonBlockingCall(t, [](Napi::Env env, Napi::Function fn, Tick* t) {
            Napi::Object p = Napi::Object::New(env);
            p.Set("bytesWritten", static_cast<double>(t->written));
            p.Set("bytesHashed", static_cast<double>(t->hashed));
            p.Set("seconds", t->seconds);
            p.Set("bytesPerSecond", t->seconds > 0 ? t->written / t->seconds : 0);
            delete t;
            fn.Call({p});
          }) != napi_ok)
        delete t;
    };
    job->capture->run(tick, tick_ms);
    napi_status settled = job->tsfn.BlockingCall([job](Napi::Env env, Napi::Function) {
      // Before settling: JavaScript may use the hash as soon as it hears.
      if (job->file_hash) {
        job->file_hash->release();
        job->file_hash = nullptr;
        job->file_hash_ref.Reset();
      }
      const physcap::CaptureResult& r = job->capture->result();
      Napi::Object partial = ResultToJs(env, r);
      if (r.failure.failed()) {
        Napi::Error err = node_error(env, r.failure, job->what);
        err.Set("partial", partial);
        job->deferred.Reject(err.Value());
      } else if (r.cancelled) {
        Napi::Error err = Napi::Error::New(env, "The capture was aborted (" + job->what + ")");
        err.Set("name", "AbortError");
        err.Set("code", "ABORT_ERR");
        err.Set("partial", partial);
        job->deferred.Reject(err.Value());
      } else {
        job->deferred.Resolve(partial);
      }
    });
    // The environment is going away: the reference must not be deleted
    // from this thread, and goes with the environment.
    if (settled != napi_ok) job->file_hash_ref.SuppressDestruct();
    job->tsfn.Release();
  }).detach();

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", job->deferred.Promise());
  std::shared_ptr<physcap::Capture> capture = job->capture;
  handle.Set("cancel", Napi::Function::New(
                           env, [capture](const Napi::CallbackInfo& ci) -> Napi::Value {
                             capture->cancel();
                             return ci.Env().Undefined();
                           },
                           "cancel"));
  return handle;
}

// ---- re-hashing a stored capture: threads of its own, settled through a TSFN ----

struct HashStoredJob {
  std::shared_ptr<physcap::StoredHash> hash;
  Napi::Promise::Deferred deferred;
  Napi::ThreadSafeFunction tsfn;
  std::string what;
  explicit HashStoredJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

Napi::Object StoredDigestsToJs(Napi::Env env, const physcap::HashStoredResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("size", Napi::Number::New(env, static_cast<double>(r.size)));
  o.Set("sha256", r.sha256);
  Napi::Array regions = Napi::Array::New(env, r.regions.size());
  for (size_t i = 0; i < r.regions.size(); i++) {
    const physcap::RegionDigests& d = r.regions[i];
    Napi::Object region = Napi::Object::New(env);
    region.Set("sha256", d.sha256);
    Napi::Array chunks = Napi::Array::New(env, d.chunk_sha256.size());
    for (size_t j = 0; j < d.chunk_sha256.size(); j++) chunks.Set(static_cast<uint32_t>(j), d.chunk_sha256[j]);
    region.Set("chunkSha256", chunks);
    regions.Set(static_cast<uint32_t>(i), region);
  }
  o.Set("regions", regions);
  return o;
}

// hashStored(request, onProgress(bytesHashed), progressMs) -> { promise, cancel() }
Napi::Value HashStored(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Function on_progress = info[1].As<Napi::Function>();
  int tick_ms = info[2].As<Napi::Number>().Int32Value();

  physcap::HashStoredRequest req;
  req.path = str(o, "path");
  req.base = u64(o, "base");
  req.size = u64(o, "size");
  req.nofollow = o.Get("nofollow").ToBoolean();
  Napi::Array regions = o.Get("regions").As<Napi::Array>();
  for (uint32_t i = 0; i < regions.Length(); i++) {
    Napi::Object r = regions.Get(i).As<Napi::Object>();
    req.regions.push_back({u64(r, "offset"), u64(r, "length"), u64(r, "chunkSize")});
  }
  auto job = std::make_shared<HashStoredJob>(env);
  char what[96];
  snprintf(what, sizeof(what), "re-hashing the stored range %llu+%llu", static_cast<unsigned long long>(req.base),
           static_cast<unsigned long long>(req.size));
  job->what = what;
  job->hash = std::make_shared<physcap::StoredHash>(std::move(req));
  job->tsfn = Napi::ThreadSafeFunction::New(env, on_progress, "physcap-hash-stored", 0, 1);

  std::thread([job, tick_ms] {
    auto tick = [&](uint64_t done) {
      auto* d = new uint64_t(done);
      // Queued without waiting: the hashing never waits for JavaScript.
      if (job->tsfn.NonBlockingCall(d, [](Napi::Env env, Napi::Function fn, uint64_t* d) {
            double v = static_cast<double>(*d);
            delete d;
            fn.Call({Napi::Number::New(env, v)});
          }) != napi_ok)
        delete d;
    };
    job->hash->run(tick, tick_ms);
    job->tsfn.BlockingCall([job](Napi::Env env, Napi::Function) {
      const physcap::HashStoredResult& r = job->hash->result();
      if (r.failure.failed()) {
        job->deferred.Reject(node_error(env, r.failure, job->what).Value());
      } else if (r.cancelled) {
        Napi::Error err = Napi::Error::New(env, "The hashing was aborted (" + job->what + ")");
        err.Set("name", "AbortError");
        err.Set("code", "ABORT_ERR");
        job->deferred.Reject(err.Value());
      } else {
        job->deferred.Resolve(StoredDigestsToJs(env, r));
      }
    });
    job->tsfn.Release();
  }).detach();

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", job->deferred.Promise());
  std::shared_ptr<physcap::StoredHash> hash = job->hash;
  handle.Set("cancel", Napi::Function::New(
                           env, [hash](const Napi::CallbackInfo& ci) -> Napi::Value {
                             hash->cancel();
                             return ci.Env().Undefined();
                           },
                           "cancel"));
  return handle;
}

// ---- kernel log: a reader thread per open, records through a TSFN ----

struct KmsgItem {
  enum { record, gap, end } what;
  std::string text;
  uint64_t gaps = 0;
  physcap::Failure failure;
};

// kmsgOpen(path, onItem(kind, value)) -> { close() }
// kind: 'record' (value: the raw record), 'gap' (value: overruns so far),
// 'end' (value: null, or an error when reading failed for good).
Napi::Value KmsgOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto reader = std::make_shared<physcap::KmsgReader>();
  int r = reader->open(path);
  if (r) throw_errno(env, r, "open", path, "reading the kernel log");
  auto tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "physcap-kmsg", 0, 1);

  auto deliver = [](Napi::Env env, Napi::Function fn, KmsgItem* item) {
    std::unique_ptr<KmsgItem> own(item);
    switch (item->what) {
      case KmsgItem::record:
        fn.Call({Napi::String::New(env, "record"), Napi::String::New(env, item->text)});
        break;
      case KmsgItem::gap:
        fn.Call({Napi::String::New(env, "gap"), Napi::Number::New(env, static_cast<double>(item->gaps))});
        break;
      case KmsgItem::end:
        fn.Call({Napi::String::New(env, "end"),
                 item->failure.failed() ? node_error(env, item->failure, "reading the kernel log").Value() : env.Null()});
        break;
    }
  };
  std::thread([reader, tsfn, path, deliver]() mutable {
    int rc = reader->run(
        [&](std::string rec) { tsfn.BlockingCall(new KmsgItem{KmsgItem::record, std::move(rec), 0, {}}, deliver); },
        [&](uint64_t n) { tsfn.BlockingCall(new KmsgItem{KmsgItem::gap, {}, n, {}}, deliver); });
    auto* end = new KmsgItem{KmsgItem::end, {}, 0, {}};
    if (rc) end->failure.set(rc, "read", path);
    tsfn.BlockingCall(end, deliver);
    tsfn.Release();
  }).detach();

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("close", Napi::Function::New(
                          env, [reader](const Napi::CallbackInfo& ci) -> Napi::Value {
                            reader->stop();
                            return ci.Env().Undefined();
                          },
                          "close"));
  return handle;
}

// ---- /dev/physcap for armed captures: ioctls on the event loop, events from a reader thread ----

// Shared by the handle's methods and the reader thread.  close() joins the
// thread before closing the device, so the module has released the arms
// when close() returns, and no read races the descriptor being reused.
struct ArmDeviceHandle {
  physcap::ArmDevice dev;
  std::string path;
  std::thread reader;
  bool closed = false;  // event loop only
  ~ArmDeviceHandle() {
    // Only reached without close(), and then possibly on the reader
    // thread itself, as it drops the last reference: it cannot join.
    if (reader.joinable()) reader.detach();
  }
};

struct DeviceItem {
  bool end = false;
  physcap_event event{};
  Failure failure;
  std::string detail;
};

const char* event_type(uint16_t type) {
  switch (type) {
    case PHYSCAP_EVENT_PRETIMEOUT:
      return "pretimeout";
    case PHYSCAP_EVENT_CAPTURE_DONE:
      return "capture-done";
    case PHYSCAP_EVENT_CAPTURE_FAILED:
      return "capture-failed";
  }
  // A newer module's: still delivered, for its seq and times.
  return "unknown";
}

Napi::Object EventToJs(Napi::Env env, const physcap_event& e) {
  Napi::Object o = Napi::Object::New(env);
  auto big = [&](uint64_t v) { return Napi::BigInt::New(env, v); };
  auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  o.Set("type", event_type(e.type));
  o.Set("seq", big(e.seq));
  o.Set("watchdogId", e.watchdog_id);
  if (e.type == PHYSCAP_EVENT_CAPTURE_FAILED && e.error) o.Set("code", errno_code(e.error < 0 ? -e.error : e.error));
  o.Set("errno", e.error);
  o.Set("timeRealNs", big(e.time_real_ns));
  o.Set("timeMonoNs", big(e.time_mono_ns));
  o.Set("cookie", big(e.cookie));
  o.Set("armId", big(e.arm_id));
  o.Set("bytesWritten", num(e.bytes_written));
  o.Set("bytesZeroCopy", num(e.bytes_zero_copy));
  o.Set("bytesBounced", num(e.bytes_bounced));
  o.Set("firstByteLatencyNs", num(e.first_byte_latency_ns));
  o.Set("durationNs", num(e.duration_ns));
  return o;
}

std::string arm_what(const char* doing, uint64_t arm_id) {
  return std::string(doing) + " capture " + std::to_string(arm_id);
}

uint64_t big_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  bool lossless = true;
  uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(info.Env(), std::string(name) + " does not fit in 64 bits");
  return v;
}

// physcapOpen(path, onItem(kind, value)) -> { arm(request), disarm(id), status(id), close() }
// kind: 'event' (value: the record), 'end' (value: null, or the error
// that ended the reader).  request: { watchdogId, destFd, destPath,
// cookie, thenPanic, ranges: [{ phys, length, destOffset }] }.
Napi::Value PhyscapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = std::make_shared<ArmDeviceHandle>();
  h->path = info[0].As<Napi::String>().Utf8Value();
  Failure f;
  if (h->dev.open(h->path, &f)) throw node_error(env, f, "opening physcap.ko's device for armed captures");
  auto tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "physcap-events", 0, 1);

  auto deliver = [](Napi::Env env, Napi::Function fn, DeviceItem* item) {
    std::unique_ptr<DeviceItem> own(item);
    if (!item->end) {
      fn.Call({Napi::String::New(env, "event"), EventToJs(env, item->event)});
      return;
    }
    std::string what = "reading physcap.ko's events";
    if (!item->detail.empty()) what += ": " + item->detail;
    fn.Call({Napi::String::New(env, "end"),
             item->failure.failed() ? node_error(env, item->failure, what).Value() : env.Null()});
  };
  // The queue is unbounded, so a BlockingCall never waits for JavaScript:
  // close() can join this thread from the event loop without deadlock.
  h->reader = std::thread([h, tsfn, deliver]() mutable {
    Failure why;
    std::string detail;
    int rc = h->dev.run(
        [&](const physcap_event& ev) {
          auto* item = new DeviceItem;
          item->event = ev;
          if (tsfn.BlockingCall(item, deliver) != napi_ok) delete item;
        },
        &why, &detail);
    auto* end = new DeviceItem;
    end->end = true;
    if (rc) {
      end->failure = why;
      end->detail = detail;
    }
    if (tsfn.BlockingCall(end, deliver) != napi_ok) delete end;
    tsfn.Release();
  });

  auto check_open = [](Napi::Env env, const ArmDeviceHandle& h) {
    if (h.closed) throw state_error(env, "The physcap device was closed");
  };
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("arm", Napi::Function::New(
                        env, [h, check_open](const Napi::CallbackInfo& ci) -> Napi::Value {
                          Napi::Env env = ci.Env();
                          check_open(env, *h);
                          Napi::Object o = ci[0].As<Napi::Object>();
                          physcap_arm req;
                          memset(&req, 0, sizeof(req));
                          req.watchdog_id = o.Get("watchdogId").As<Napi::Number>().Uint32Value();
                          req.dest_fd = o.Get("destFd").As<Napi::Number>().Int32Value();
                          req.cookie = u64(o, "cookie");
                          req.flags = o.Get("thenPanic").ToBoolean() ? PHYSCAP_ARM_THEN_PANIC : 0;
                          Napi::Array ranges = o.Get("ranges").As<Napi::Array>();
                          // The facade checks it too; this one guards the array.
                          if (ranges.Length() > PHYSCAP_ARM_MAX_RANGES)
                            throw Napi::RangeError::New(env, "more ranges than one arm takes");
                          req.nr_ranges = ranges.Length();
                          for (uint32_t i = 0; i < ranges.Length(); i++) {
                            Napi::Object r = ranges.Get(i).As<Napi::Object>();
                            req.ranges[i] = {u64(r, "phys"), u64(r, "length"), u64(r, "destOffset")};
                          }
                          int rc = h->dev.arm(&req);
                          if (rc) {
                            std::string what = "arming a capture on watchdog" + std::to_string(req.watchdog_id) +
                                               ": " + std::to_string(req.nr_ranges) +
                                               (req.nr_ranges == 1 ? " range to " : " ranges to ") +
                                               str(o, "destPath");
                            throw_errno(env, rc, "ioctl(PHYSCAP_IOC_ARM)", h->path, what);
                          }
                          return Napi::BigInt::New(env, static_cast<uint64_t>(req.arm_id));
                        },
                        "arm"));
  handle.Set("disarm", Napi::Function::New(
                           env, [h, check_open](const Napi::CallbackInfo& ci) -> Napi::Value {
                             Napi::Env env = ci.Env();
                             check_open(env, *h);
                             uint64_t id = big_arg(ci, 0, "armId");
                             int rc = h->dev.disarm(id);
                             if (rc) throw_errno(env, rc, "ioctl(PHYSCAP_IOC_DISARM)", h->path, arm_what("disarming", id));
                             return env.Undefined();
                           },
                           "disarm"));
  handle.Set("status", Napi::Function::New(
                           env, [h, check_open](const Napi::CallbackInfo& ci) -> Napi::Value {
                             Napi::Env env = ci.Env();
                             check_open(env, *h);
                             uint64_t id = big_arg(ci, 0, "armId");
                             physcap_arm_status st;
                             int rc = h->dev.status(id, &st);
                             std::string what = arm_what("reading the status of", id);
                             if (rc) throw_errno(env, rc, "ioctl(PHYSCAP_IOC_ARM_STATUS)", h->path, what);
                             const char* state = st.state == PHYSCAP_ARM_STATE_ARMED    ? "armed"
                                                 : st.state == PHYSCAP_ARM_STATE_FIRING ? "firing"
                                                 : st.state == PHYSCAP_ARM_STATE_DONE   ? "done"
                                                 : st.state == PHYSCAP_ARM_STATE_FAILED ? "failed"
                                                                                        : nullptr;
                             // A state no name fits would be misread by any caller.
                             if (!state)
                               throw_errno(env, -EPROTO, "ioctl(PHYSCAP_IOC_ARM_STATUS)", h->path,
                                           what + ": the module reported state " + std::to_string(st.state) +
                                               ", which this addon does not know");
                             auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
                             Napi::Object o = Napi::Object::New(env);
                             o.Set("state", state);
                             if (st.state == PHYSCAP_ARM_STATE_FAILED && st.error)
                               o.Set("code", errno_code(st.error < 0 ? -st.error : st.error));
                             o.Set("errno", st.error);
                             o.Set("bytesWritten", num(st.bytes_written));
                             o.Set("bytesTotal", num(st.bytes_total));
                             o.Set("cookie", Napi::BigInt::New(env, static_cast<uint64_t>(st.cookie)));
                             o.Set("watchdogId", st.watchdog_id);
                             o.Set("thenPanic", (st.flags & PHYSCAP_ARM_THEN_PANIC) != 0);
                             o.Set("firstByteLatencyNs", num(st.first_byte_latency_ns));
                             o.Set("durationNs", num(st.duration_ns));
                             return o;
                           },
                           "status"));
  handle.Set("close", Napi::Function::New(
                          env, [h](const Napi::CallbackInfo& ci) -> Napi::Value {
                            if (!h->closed) {
                              h->closed = true;
                              h->dev.stop();
                              if (h->reader.joinable()) h->reader.join();
                              h->dev.close();
                            }
                            return ci.Env().Undefined();
                          },
                          "close"));
  return handle;
}

// physcapReadEvents(path) -> the records the module keeps now.  At most
// PHYSCAP_EVENT_RING records, read without blocking: on the event loop.
Napi::Value PhyscapReadEvents(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::vector<physcap_event> events;
  Failure f;
  std::string detail;
  if (physcap::read_events(path, &events, &f, &detail)) {
    std::string what = "reading physcap.ko's events";
    if (!detail.empty()) what += ": " + detail;
    throw node_error(env, f, what);
  }
  Napi::Array a = Napi::Array::New(env, events.size());
  for (size_t i = 0; i < events.size(); i++) a.Set(static_cast<uint32_t>(i), EventToJs(env, events[i]));
  return a;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("kmsgOpen", Napi::Function::New(env, KmsgOpen, "kmsgOpen"));
  exports.Set("physcapOpen", Napi::Function::New(env, PhyscapOpen, "physcapOpen"));
  exports.Set("physcapReadEvents", Napi::Function::New(env, PhyscapReadEvents, "physcapReadEvents"));
  exports.Set("deviceInfo", Napi::Function::New(env, DeviceInfo, "deviceInfo"));
  exports.Set("kernelMap", Napi::Function::New(env, KernelMap, "kernelMap"));
  exports.Set("openDestination", Napi::Function::New(env, OpenDestination, "openDestination"));
  exports.Set("preallocate", Napi::Function::New(env, Preallocate, "preallocate"));
  exports.Set("writeAligned", Napi::Function::New(env, WriteAligned, "writeAligned"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("openDestinationAt", Napi::Function::New(env, OpenDestinationAt, "openDestinationAt"));
  exports.Set("openDir", Napi::Function::New(env, OpenDir, "openDir"));
  exports.Set("openDirAt", Napi::Function::New(env, OpenDirAt, "openDirAt"));
  exports.Set("mkdirAt", Napi::Function::New(env, MkdirAt, "mkdirAt"));
  exports.Set("writeFileAt", Napi::Function::New(env, WriteFileAt, "writeFileAt"));
  exports.Set("renameAt", Napi::Function::New(env, RenameAt, "renameAt"));
  exports.Set("fsyncFd", Napi::Function::New(env, FsyncFd, "fsyncFd"));
  exports.Set("lockFd", Napi::Function::New(env, LockFd, "lockFd"));
  exports.Set("unlockFd", Napi::Function::New(env, UnlockFd, "unlockFd"));
  Napi::Function file_hash = FileHash::Define(env);
  auto* data = new AddonData;
  data->file_hash_class = Napi::Persistent(file_hash);
  env.SetInstanceData(data);
  exports.Set("FileHash", file_hash);
  exports.Set("capture", Napi::Function::New(env, StartCapture, "capture"));
  exports.Set("hashStored", Napi::Function::New(env, HashStored, "hashStored"));
  exports.Set("readPhysical", Napi::Function::New(env, ReadPhysical, "readPhysical"));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
  return exports;
}

}  // namespace

NODE_API_MODULE(physcap, Init)
