// A whole-file hash fed from JavaScript and by captures; re-hashing a
// stored capture on threads of its own.
#include "hash.h"

#include <cstdio>
#include <memory>

#include "../io/hashfile.h"
#include "common.h"
#include "functions.h"
#include "worker.h"

namespace physcap::addon {

Napi::Function FileHash::Define(Napi::Env env) {
  return DefineClass(
      env, "FileHash",
      {InstanceMethod("update", &FileHash::Update), InstanceMethod("updateZeros", &FileHash::UpdateZeros),
       InstanceMethod("digest", &FileHash::Digest)});
}

FileHash::FileHash(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FileHash>(info) {
  if (!sha_.ok()) throw_errno(info.Env(), -ENOMEM, "EVP_MD_CTX_new", "", "starting a file hash");
}

FileHash* FileHash::FromJs(Napi::Env env, Napi::Value v) {
  Napi::FunctionReference& cls = env.GetInstanceData<AddonData>()->file_hash_class;
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(cls.Value())) {
    Napi::TypeError err = Napi::TypeError::New(env, "fileHash is not a FileHash");
    err.Set("code", "ERR_INVALID_ARG_TYPE");
    throw err;
  }
  return Unwrap(v.As<Napi::Object>());
}

void FileHash::check_usable(Napi::Env env) const {
  if (busy_) throw state_error(env, "The file hash is in use by a capture that has not settled");
  if (finished_) throw state_error(env, "The file hash was already digested");
}

Napi::Value FileHash::Update(const Napi::CallbackInfo& info) {
  check_usable(info.Env());
  Napi::Buffer<uint8_t> buf = info[0].As<Napi::Buffer<uint8_t>>();
  sha_.update(buf.Data(), buf.Length());
  return info.Env().Undefined();
}

Napi::Value FileHash::UpdateZeros(const Napi::CallbackInfo& info) {
  check_usable(info.Env());
  bool lossless = true;
  uint64_t n = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(info.Env(), "n does not fit in 64 bits");
  sha_.update_zeros(n);
  return info.Env().Undefined();
}

Napi::Value FileHash::Digest(const Napi::CallbackInfo& info) {
  check_usable(info.Env());
  finished_ = true;
  return Napi::String::New(info.Env(), sha_.finish_hex());
}

namespace {

Napi::Object StoredDigestsToJs(Napi::Env env, const physcap::HashStoredResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("size", Napi::Number::New(env, static_cast<double>(r.size)));
  o.Set("sha256", r.sha256);
  o.Set("gapsSha256", r.gaps_sha256);
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

}  // namespace

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
  req.whole = o.Get("whole").ToBoolean();
  req.gaps = o.Get("gaps").ToBoolean();
  Napi::Array regions = o.Get("regions").As<Napi::Array>();
  for (uint32_t i = 0; i < regions.Length(); i++) {
    Napi::Object r = regions.Get(i).As<Napi::Object>();
    req.regions.push_back({u64(r, "offset"), u64(r, "length"), u64(r, "chunkSize"), r.Get("whole").ToBoolean()});
  }
  char buf[96];
  snprintf(buf, sizeof(buf), "re-hashing the stored range %llu+%llu", static_cast<unsigned long long>(req.base),
           static_cast<unsigned long long>(req.size));
  std::string what = buf;
  auto hash = std::make_shared<physcap::StoredHash>(std::move(req));

  auto worker = Worker::New(env, on_progress, "physcap-hash-stored", true);
  worker->start([hash, what, tick_ms](Worker& w) {
    hash->run(
        [&](uint64_t done) {
          // The hashing never waits for JavaScript.
          w.post_progress([done](Napi::Env env, Napi::Function fn) {
            fn.Call({Napi::Number::New(env, static_cast<double>(done))});
          });
        },
        tick_ms);
    w.settle([hash, what](Napi::Env env, Napi::Promise::Deferred& deferred) {
      const physcap::HashStoredResult& r = hash->result();
      if (r.failure.failed()) {
        deferred.Reject(node_error(env, r.failure, what).Value());
      } else if (r.cancelled) {
        deferred.Reject(abort_error(env, "hashing", what).Value());
      } else {
        deferred.Resolve(StoredDigestsToJs(env, r));
      }
    });
  });
  return promise_handle(env, *worker, [hash] { hash->cancel(); });
}

}  // namespace physcap::addon
