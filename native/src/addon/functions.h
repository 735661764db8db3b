// The addon's JavaScript functions, by the file that has them; addon.cc
// registers them.
#pragma once

#include <napi.h>

namespace physcap::addon {

// capture.cc: capture(request, onProgress, progressMs) -> { promise, cancel() }
Napi::Value StartCapture(const Napi::CallbackInfo& info);

// hash.cc (and the FileHash class, hash.h)
Napi::Value HashStored(const Napi::CallbackInfo& info);

// files.cc: destinations, directories, descriptors, locks
Napi::Value OpenDestination(const Napi::CallbackInfo& info);
Napi::Value OpenDestinationAt(const Napi::CallbackInfo& info);
Napi::Value Preallocate(const Napi::CallbackInfo& info);
Napi::Value WriteAligned(const Napi::CallbackInfo& info);
Napi::Value CloseFd(const Napi::CallbackInfo& info);
Napi::Value OpenDir(const Napi::CallbackInfo& info);
Napi::Value OpenDirAt(const Napi::CallbackInfo& info);
Napi::Value MkdirAt(const Napi::CallbackInfo& info);
Napi::Value WriteFileAt(const Napi::CallbackInfo& info);
Napi::Value RenameAt(const Napi::CallbackInfo& info);
Napi::Value FsyncFd(const Napi::CallbackInfo& info);
Napi::Value LockFd(const Napi::CallbackInfo& info);
Napi::Value UnlockFd(const Napi::CallbackInfo& info);
Napi::Value LockRange(const Napi::CallbackInfo& info);
Napi::Value UnlockRange(const Napi::CallbackInfo& info);
Napi::Value RangeLockedElsewhere(const Napi::CallbackInfo& info);

// device.cc: physcap.ko's queries and small physical reads
Napi::Value DeviceInfo(const Napi::CallbackInfo& info);
Napi::Value KernelMap(const Napi::CallbackInfo& info);
Napi::Value ReadPhysical(const Napi::CallbackInfo& info);

// arm.cc: armed captures and the module's events
Napi::Value PhyscapOpen(const Napi::CallbackInfo& info);
Napi::Value PhyscapReadEvents(const Napi::CallbackInfo& info);

// kmsg.cc
Napi::Value KmsgOpen(const Napi::CallbackInfo& info);

// system.cc
Napi::Value SdNotify(const Napi::CallbackInfo& info);
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);

// uapi.cc: the frozen object exported as uapi
Napi::Object UapiToJs(Napi::Env env);

}  // namespace physcap::addon
