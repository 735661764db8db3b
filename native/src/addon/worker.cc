#include "worker.h"

#include <utility>

namespace physcap::addon {

namespace {

// The Call is freed also when the callback throws.
void deliver(Napi::Env env, Napi::Function callback, Worker::Call* call) {
  std::unique_ptr<Worker::Call> own(call);
  (*own)(env, callback);
}

}  // namespace

std::shared_ptr<Worker> Worker::New(Napi::Env env, Napi::Function callback, const char* name, bool promised) {
  std::shared_ptr<Worker> w(new Worker);
  if (promised) w->deferred_.emplace(Napi::Promise::Deferred::New(env));
  w->tsfn_ = Napi::ThreadSafeFunction::New(env, callback, name, 0, 1);
  return w;
}

std::thread Worker::launch(Body body) {
  return std::thread([self = shared_from_this(), body = std::move(body)] {
    body(*self);
    self->tsfn_.Release();
  });
}

void Worker::start(Body body) { launch(std::move(body)).detach(); }

std::thread Worker::start_joinable(Body body) { return launch(std::move(body)); }

bool Worker::post(Call call) {
  auto* c = new Call(std::move(call));
  if (tsfn_.BlockingCall(c, deliver) == napi_ok) return true;
  delete c;
  return false;
}

bool Worker::post_progress(Call call) {
  auto* c = new Call(std::move(call));
  if (tsfn_.NonBlockingCall(c, deliver) == napi_ok) return true;
  delete c;
  return false;
}

bool Worker::settle(Settle settle) {
  // The worker outlives its thread until the promise is settled.
  return post([self = shared_from_this(), settle = std::move(settle)](Napi::Env env, Napi::Function) {
    settle(env, *self->deferred_);
  });
}

Napi::Object promise_handle(Napi::Env env, const Worker& worker, std::function<void()> cancel) {
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", worker.promise());
  handle.Set("cancel", Napi::Function::New(
                           env,
                           [cancel = std::move(cancel)](const Napi::CallbackInfo& ci) -> Napi::Value {
                             cancel();
                             return ci.Env().Undefined();
                           },
                           "cancel"));
  return handle;
}

}  // namespace physcap::addon
