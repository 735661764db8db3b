// physcap.ko's queries (INFO, KERNEL_MAP) and small physical reads: short
// calls on the event loop.
#include <unistd.h>

#include <cstdio>

#include "../io/physcap_dev.h"
#include "../io/physread.h"
#include "common.h"
#include "functions.h"

namespace physcap::addon {

namespace {

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

}  // namespace

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
  physcap_kernel_map km = device_query(env, physcap::device_kernel_map, "ioctl(PHYSCAP_IOC_KERNEL_MAP)",
                                       "reading physcap.ko's KERNEL_MAP (ABI 3)");
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
  uint64_t phys = big_arg(info, 0, "phys");
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

}  // namespace physcap::addon
