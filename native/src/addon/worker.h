// The one shape of every long native operation: its work runs on a
// std::thread of its own (not libuv's small shared pool, which fs and zlib
// also use), and reaches JavaScript only through a thread-safe function:
// progress and items as calls of a JavaScript callback, and the end as the
// settling of the operation's promise.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <optional>
#include <thread>

namespace physcap::addon {

class Worker : public std::enable_shared_from_this<Worker> {
 public:
  // Run on the event loop: callback is the operation's JavaScript function.
  using Call = std::function<void(Napi::Env env, Napi::Function callback)>;
  // Run on the event loop: settles the operation's promise.
  using Settle = std::function<void(Napi::Env env, Napi::Promise::Deferred& deferred)>;
  // Run on the worker's thread.
  using Body = std::function<void(Worker& worker)>;

  // On the event loop, once nothing more can throw: from here on the
  // thread-safe function (named name, for diagnostics) keeps the event loop
  // alive until the body has returned.  promised: the operation ends in a
  // promise, which settle() settles.
  static std::shared_ptr<Worker> New(Napi::Env env, Napi::Function callback, const char* name, bool promised);

  // The promise of a promised worker.
  Napi::Promise promise() const { return deferred_->Promise(); }

  // On the event loop: runs body on a new thread, and releases the
  // thread-safe function when it returns.  start() detaches the thread;
  // start_joinable() hands it over, to be joined (or detached).
  void start(Body body);
  std::thread start_joinable(Body body);

  // On the worker's thread.  Each returns false when the environment is
  // going away: the call (or the settling) is dropped.
  //
  // A call of the callback, queued in order.  The queue is unbounded, so
  // this never waits for JavaScript: the event loop may join the thread.
  bool post(Call call);
  // Progress: the same, but a call JavaScript is too busy for may be
  // dropped rather than queued.
  bool post_progress(Call call);
  // The end of a promised operation, once.
  bool settle(Settle settle);

 private:
  Worker() = default;
  std::thread launch(Body body);

  Napi::ThreadSafeFunction tsfn_;
  std::optional<Napi::Promise::Deferred> deferred_;
};

// { promise, cancel() }: what an operation that can be stopped returns.
// cancel runs on the event loop, and may run after the promise settled.
Napi::Object promise_handle(Napi::Env env, const Worker& worker, std::function<void()> cancel);

}  // namespace physcap::addon
