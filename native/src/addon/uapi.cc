// The constants of kernel/physcap_uapi.h that JavaScript uses, from the
// header's own macros: the agent never types them again.
#include "../io/physcap_dev.h"
#include "functions.h"

namespace physcap::addon {

Napi::Object UapiToJs(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  // 64-bit masks as bigints (as deviceInfo().features is); the rest fit a number.
#define PHYSCAP_UAPI_BIGINT(name) o.Set(#name, Napi::BigInt::New(env, static_cast<uint64_t>(PHYSCAP_##name)))
#define PHYSCAP_UAPI_NUMBER(name) o.Set(#name, Napi::Number::New(env, PHYSCAP_##name))
  PHYSCAP_UAPI_NUMBER(ABI_VERSION);
  o.Set("DEVICE_NAME", PHYSCAP_DEVICE_NAME);
  // INFO features
  PHYSCAP_UAPI_BIGINT(FEAT_ZERO_COPY);
  PHYSCAP_UAPI_BIGINT(FEAT_BOUNCE);
  PHYSCAP_UAPI_BIGINT(FEAT_MMIO);
  PHYSCAP_UAPI_BIGINT(FEAT_MMAP);
  PHYSCAP_UAPI_BIGINT(FEAT_HWPOISON);
  PHYSCAP_UAPI_BIGINT(FEAT_BLOCKDEV);
  PHYSCAP_UAPI_BIGINT(FEAT_ADOPT);
  PHYSCAP_UAPI_BIGINT(FEAT_ARM);
  PHYSCAP_UAPI_BIGINT(FEAT_PRETIMEOUT_GOV);
  PHYSCAP_UAPI_BIGINT(FEAT_KERNEL_MAP);
  PHYSCAP_UAPI_BIGINT(FEAT_ARM_STAMP);
  // WRITE flags
  PHYSCAP_UAPI_NUMBER(WRITE_ALLOW_MMIO);
  PHYSCAP_UAPI_NUMBER(WRITE_NO_BOUNCE);
  PHYSCAP_UAPI_NUMBER(WRITE_FLAGS_ALL);
  // ARM limits, flags and ARM_STATUS states
  PHYSCAP_UAPI_NUMBER(ARM_MAX_RANGES);
  PHYSCAP_UAPI_NUMBER(ARM_MAX_PER_WATCHDOG);
  PHYSCAP_UAPI_NUMBER(ARM_MAX_WATCHDOG_ID);
  PHYSCAP_UAPI_NUMBER(ARM_THEN_PANIC);
  PHYSCAP_UAPI_NUMBER(ARM_STAMP);
  PHYSCAP_UAPI_NUMBER(ARM_STAMP_SIZE);
  PHYSCAP_UAPI_NUMBER(STAMP_VERSION);
  PHYSCAP_UAPI_NUMBER(ARM_FLAGS_ALL);
  PHYSCAP_UAPI_NUMBER(ARM_STATE_ARMED);
  PHYSCAP_UAPI_NUMBER(ARM_STATE_FIRING);
  PHYSCAP_UAPI_NUMBER(ARM_STATE_DONE);
  PHYSCAP_UAPI_NUMBER(ARM_STATE_FAILED);
  // Event records
  PHYSCAP_UAPI_NUMBER(EVENT_VERSION);
  PHYSCAP_UAPI_NUMBER(EVENT_RING);
  PHYSCAP_UAPI_NUMBER(EVENT_PRETIMEOUT);
  PHYSCAP_UAPI_NUMBER(EVENT_CAPTURE_DONE);
  PHYSCAP_UAPI_NUMBER(EVENT_CAPTURE_FAILED);
#undef PHYSCAP_UAPI_BIGINT
#undef PHYSCAP_UAPI_NUMBER
  // Frozen: a constant the agent could change would not be one.
  Napi::Function freeze = env.Global().Get("Object").As<Napi::Object>().Get("freeze").As<Napi::Function>();
  freeze.Call({o});
  return o;
}

}  // namespace physcap::addon
