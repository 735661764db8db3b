// /dev/physcap for armed captures: ioctls on the event loop, the module's
// events from a reader thread through its worker's thread-safe function.
#include <string.h>

#include <memory>
#include <thread>

#include "../io/armdev.h"
#include "common.h"
#include "functions.h"
#include "worker.h"

namespace physcap::addon {

namespace {

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

const char* event_type(uint16_t type) {
  switch (type) {
    case PHYSCAP_EVENT_PRETIMEOUT: return "pretimeout";
    case PHYSCAP_EVENT_CAPTURE_DONE: return "capture-done";
    case PHYSCAP_EVENT_CAPTURE_FAILED: return "capture-failed";
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

std::string events_what(const std::string& detail) {
  std::string what = "reading physcap.ko's events";
  if (!detail.empty()) what += ": " + detail;
  return what;
}

std::string arm_what(const char* doing, uint64_t arm_id) {
  return std::string(doing) + " capture " + std::to_string(arm_id);
}

void check_open(Napi::Env env, const ArmDeviceHandle& h) {
  if (h.closed) throw state_error(env, "The physcap device was closed");
}

// arm(request) -> armId
Napi::Value Arm(const Napi::CallbackInfo& ci, ArmDeviceHandle* h) {
  Napi::Env env = ci.Env();
  check_open(env, *h);
  Napi::Object o = ci[0].As<Napi::Object>();
  physcap_arm req;
  memset(&req, 0, sizeof(req));
  req.watchdog_id = o.Get("watchdogId").As<Napi::Number>().Uint32Value();
  req.dest_fd = o.Get("destFd").As<Napi::Number>().Int32Value();
  req.cookie = u64(o, "cookie");
  req.flags = o.Get("thenPanic").ToBoolean() ? PHYSCAP_ARM_THEN_PANIC : 0;
  if (o.Has("stampOffset") && !o.Get("stampOffset").IsUndefined()) {
    req.flags |= PHYSCAP_ARM_STAMP;
    req.stamp_offset = u64(o, "stampOffset");
  }
  Napi::Array ranges = o.Get("ranges").As<Napi::Array>();
  // The facade checks it too; this one guards the array.
  if (ranges.Length() > PHYSCAP_ARM_MAX_RANGES) throw Napi::RangeError::New(env, "more ranges than one arm takes");
  req.nr_ranges = ranges.Length();
  for (uint32_t i = 0; i < ranges.Length(); i++) {
    Napi::Object r = ranges.Get(i).As<Napi::Object>();
    req.ranges[i] = {u64(r, "phys"), u64(r, "length"), u64(r, "destOffset")};
  }
  int rc = h->dev.arm(&req);
  if (rc) {
    std::string what = "arming a capture on watchdog" + std::to_string(req.watchdog_id) + ": " +
                       std::to_string(req.nr_ranges) + (req.nr_ranges == 1 ? " range to " : " ranges to ") +
                       str(o, "destPath");
    throw_errno(env, rc, "ioctl(PHYSCAP_IOC_ARM)", h->path, what);
  }
  return Napi::BigInt::New(env, static_cast<uint64_t>(req.arm_id));
}

// disarm(armId)
Napi::Value Disarm(const Napi::CallbackInfo& ci, ArmDeviceHandle* h) {
  Napi::Env env = ci.Env();
  check_open(env, *h);
  uint64_t id = big_arg(ci, 0, "armId");
  int rc = h->dev.disarm(id);
  if (rc) throw_errno(env, rc, "ioctl(PHYSCAP_IOC_DISARM)", h->path, arm_what("disarming", id));
  return env.Undefined();
}

// status(armId) -> ArmStatus
Napi::Value Status(const Napi::CallbackInfo& ci, ArmDeviceHandle* h) {
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
                what + ": the module reported state " + std::to_string(st.state) + ", which this addon does not know");
  auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  Napi::Object o = Napi::Object::New(env);
  o.Set("state", state);
  if (st.state == PHYSCAP_ARM_STATE_FAILED && st.error) o.Set("code", errno_code(st.error < 0 ? -st.error : st.error));
  o.Set("errno", st.error);
  o.Set("bytesWritten", num(st.bytes_written));
  o.Set("bytesTotal", num(st.bytes_total));
  o.Set("cookie", Napi::BigInt::New(env, static_cast<uint64_t>(st.cookie)));
  o.Set("watchdogId", st.watchdog_id);
  o.Set("thenPanic", (st.flags & PHYSCAP_ARM_THEN_PANIC) != 0);
  o.Set("firstByteLatencyNs", num(st.first_byte_latency_ns));
  o.Set("durationNs", num(st.duration_ns));
  return o;
}

// close(): stops the reader, joins it, closes the device.  Idempotent.
Napi::Value Close(const Napi::CallbackInfo& ci, ArmDeviceHandle* h) {
  if (!h->closed) {
    h->closed = true;
    h->dev.stop();
    if (h->reader.joinable()) h->reader.join();
    h->dev.close();
  }
  return ci.Env().Undefined();
}

}  // namespace

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
  auto worker = Worker::New(env, info[1].As<Napi::Function>(), "physcap-events", false);

  // The worker's queue is unbounded, so a post never waits for JavaScript:
  // close() can join this thread from the event loop without deadlock.
  h->reader = worker->start_joinable([h](Worker& w) {
    Failure why;
    std::string detail;
    int rc = h->dev.run(
        [&](const physcap_event& ev) {
          w.post([ev](Napi::Env env, Napi::Function fn) {
            fn.Call({Napi::String::New(env, "event"), EventToJs(env, ev)});
          });
        },
        &why, &detail);
    if (!rc) why = Failure();
    w.post([why, detail](Napi::Env env, Napi::Function fn) {
      fn.Call({Napi::String::New(env, "end"),
               why.failed() ? node_error(env, why, events_what(detail)).Value() : env.Null()});
    });
  });

  // Each method holds the handle: it lives while JavaScript can call them.
  auto method = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&, ArmDeviceHandle*)) {
    return Napi::Function::New(
        env, [h, fn](const Napi::CallbackInfo& ci) -> Napi::Value { return fn(ci, h.get()); }, name);
  };
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("arm", method("arm", Arm));
  handle.Set("disarm", method("disarm", Disarm));
  handle.Set("status", method("status", Status));
  handle.Set("close", method("close", Close));
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
  if (physcap::read_events(path, &events, &f, &detail)) throw node_error(env, f, events_what(detail));
  Napi::Array a = Napi::Array::New(env, events.size());
  for (size_t i = 0; i < events.size(); i++) a.Set(static_cast<uint32_t>(i), EventToJs(env, events[i]));
  return a;
}

}  // namespace physcap::addon
