// The kernel log: a reader thread per open, records through its worker's
// thread-safe function.
#include <memory>

#include "../io/kmsg.h"
#include "common.h"
#include "functions.h"
#include "worker.h"

namespace physcap::addon {

// kmsgOpen(path, onItem(kind, value)) -> { close() }
// kind: 'record' (value: the raw record), 'gap' (value: overruns so far),
// 'end' (value: null, or an error when reading failed for good).
Napi::Value KmsgOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto reader = std::make_shared<physcap::KmsgReader>();
  int r = reader->open(path);
  if (r) throw_errno(env, r, "open", path, "reading the kernel log");
  auto worker = Worker::New(env, info[1].As<Napi::Function>(), "physcap-kmsg", false);

  worker->start([reader, path](Worker& w) {
    int rc = reader->run(
        [&](std::string rec) {
          w.post([rec = std::move(rec)](Napi::Env env, Napi::Function fn) {
            fn.Call({Napi::String::New(env, "record"), Napi::String::New(env, rec)});
          });
        },
        [&](uint64_t n) {
          w.post([n](Napi::Env env, Napi::Function fn) {
            fn.Call({Napi::String::New(env, "gap"), Napi::Number::New(env, static_cast<double>(n))});
          });
        });
    Failure failure;
    if (rc) failure.set(rc, "read", path);
    w.post([failure](Napi::Env env, Napi::Function fn) {
      fn.Call({Napi::String::New(env, "end"),
               failure.failed() ? node_error(env, failure, "reading the kernel log").Value() : env.Null()});
    });
  });

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("close", Napi::Function::New(
                          env,
                          [reader](const Napi::CallbackInfo& ci) -> Napi::Value {
                            reader->stop();
                            return ci.Env().Undefined();
                          },
                          "close"));
  return handle;
}

}  // namespace physcap::addon
