// capture(): one physical range into one destination, driven by a worker
// thread; progress and the result come back through its thread-safe
// function.
#include <chrono>
#include <cstdio>
#include <memory>

#include "../io/capture.h"
#include "common.h"
#include "functions.h"
#include "hash.h"
#include "worker.h"

namespace physcap::addon {

namespace {

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
  o.Set("durableSeconds", r.durable_seconds);
  o.Set("digestSeconds", r.digest_seconds);
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
  req.hash = hash == "none"       ? physcap::HashMode::none
             : hash == "readback" ? physcap::HashMode::readback
                                  : physcap::HashMode::source;
  req.whole = o.Get("whole").ToBoolean();
  req.chunk_size = u64(o, "chunkSize");
  uint64_t window = u64(o, "window");
  if (window) req.window = static_cast<size_t>(window);
  return req;
}

// The request's fileHash, kept alive and claimed until the promise settles.
struct ClaimedFileHash {
  FileHash* hash = nullptr;
  Napi::ObjectReference ref;
};

}  // namespace

// capture(request, onProgress, progressMs) -> { promise, cancel() }
Napi::Value StartCapture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object request = info[0].As<Napi::Object>();
  Napi::Function on_progress = info[1].As<Napi::Function>();
  int tick_ms = info[2].As<Napi::Number>().Int32Value();

  physcap::CaptureRequest req = RequestFromJs(request);
  Napi::Value file_hash = request.Get("fileHash");
  FileHash* fh = nullptr;
  if (!file_hash.IsUndefined() && !file_hash.IsNull()) {
    fh = FileHash::FromJs(env, file_hash);
    fh->check_usable(env);
    req.file_hash = fh->sha();
  }
  char buf[256];
  snprintf(buf, sizeof(buf), "capturing %s range %#llx+%#llx to %s at offset %llu", physcap::source_name(req.source),
           static_cast<unsigned long long>(req.phys), static_cast<unsigned long long>(req.length),
           req.dest_path.c_str(), static_cast<unsigned long long>(req.dest_offset));
  std::string what = buf;
  auto capture = std::make_shared<physcap::Capture>(std::move(req));
  auto worker = Worker::New(env, on_progress, "physcap-capture", true);
  // Last, once nothing here can throw: only the settling below releases it.
  auto claimed = std::make_shared<ClaimedFileHash>();
  if (fh) {
    fh->claim();
    claimed->hash = fh;
    claimed->ref = Napi::Persistent(file_hash.As<Napi::Object>());
  }

  worker->start([capture, claimed, what, tick_ms](Worker& w) {
    auto t0 = std::chrono::steady_clock::now();
    auto tick = [&](uint64_t written, uint64_t hashed) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      // Progress may be dropped when JavaScript is busy: never block a capture on it.
      w.post_progress([written, hashed, secs](Napi::Env env, Napi::Function fn) {
        Napi::Object p = Napi::Object::New(env);
        p.Set("bytesWritten", static_cast<double>(written));
        p.Set("bytesHashed", static_cast<double>(hashed));
        p.Set("seconds", secs);
        p.Set("bytesPerSecond", secs > 0 ? written / secs : 0);
        fn.Call({p});
      });
    };
    // Ordered, never dropped: the agent records the capture durable on it.
    auto durable = [&](const physcap::CaptureResult& written) {
      w.post([written](Napi::Env env, Napi::Function fn) {
        Napi::Object d = ResultToJs(env, written);
        d.Set("durable", true);
        fn.Call({d});
      });
    };
    capture->run(tick, tick_ms, durable);
    bool settled = w.settle([capture, claimed, what](Napi::Env env, Napi::Promise::Deferred& deferred) {
      // Before settling: JavaScript may use the hash as soon as it hears.
      if (claimed->hash) {
        claimed->hash->release();
        claimed->hash = nullptr;
        claimed->ref.Reset();
      }
      const physcap::CaptureResult& r = capture->result();
      Napi::Object partial = ResultToJs(env, r);
      if (r.failure.failed()) {
        Napi::Error err = node_error(env, r.failure, what);
        err.Set("partial", partial);
        deferred.Reject(err.Value());
      } else if (r.cancelled) {
        Napi::Error err = abort_error(env, "capture", what);
        err.Set("partial", partial);
        deferred.Reject(err.Value());
      } else {
        deferred.Resolve(partial);
      }
    });
    // The environment is going away: the reference must not be deleted
    // from this thread, and goes with the environment.
    if (!settled) claimed->ref.SuppressDestruct();
  });
  return promise_handle(env, *worker, [capture] { capture->cancel(); });
}

}  // namespace physcap::addon
