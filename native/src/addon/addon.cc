// The addon's registration.  The glue is by area: capture.cc, hash.cc
// (FileHash, hashStored), files.cc, device.cc, arm.cc, kmsg.cc, system.cc
// and uapi.cc; what they share is in common.h, and every long operation
// runs through worker.h.  JavaScript values in, plain C++ structs to the
// io/ layer, Node-style errors and Promises out.
#include <napi.h>

#include "common.h"
#include "functions.h"
#include "hash.h"

namespace physcap::addon {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Value (*f)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, f, name));
  };
  fn("kmsgOpen", KmsgOpen);
  fn("physcapOpen", PhyscapOpen);
  fn("physcapReadEvents", PhyscapReadEvents);
  fn("deviceInfo", DeviceInfo);
  fn("kernelMap", KernelMap);
  fn("openDestination", OpenDestination);
  fn("preallocate", Preallocate);
  fn("writeAligned", WriteAligned);
  fn("closeFd", CloseFd);
  fn("openDestinationAt", OpenDestinationAt);
  fn("openDir", OpenDir);
  fn("openDirAt", OpenDirAt);
  fn("mkdirAt", MkdirAt);
  fn("writeFileAt", WriteFileAt);
  fn("renameAt", RenameAt);
  fn("fsyncFd", FsyncFd);
  fn("lockFd", LockFd);
  fn("unlockFd", UnlockFd);
  fn("lockRange", LockRange);
  fn("unlockRange", UnlockRange);
  fn("rangeLockedElsewhere", RangeLockedElsewhere);
  Napi::Function file_hash = FileHash::Define(env);
  auto* data = new AddonData;
  data->file_hash_class = Napi::Persistent(file_hash);
  env.SetInstanceData(data);
  exports.Set("FileHash", file_hash);
  fn("capture", StartCapture);
  fn("hashStored", HashStored);
  fn("readPhysical", ReadPhysical);
  fn("sdNotify", SdNotify);
  fn("peerCredentials", PeerCredentials);
  exports.Set("uapi", UapiToJs(env));
  return exports;
}

}  // namespace physcap::addon

using physcap::addon::Init;
NODE_API_MODULE(physcap, Init)
