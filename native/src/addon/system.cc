// The service manager and the control socket: short calls on the event loop.
#include "../io/system.h"
#include "common.h"
#include "functions.h"

namespace physcap::addon {

// sdNotify(socketPath, message)
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string sock = info[0].As<Napi::String>().Utf8Value();
  std::string msg = info[1].As<Napi::String>().Utf8Value();
  int r = physcap::sd_notify_send(sock, msg);
  if (r) throw_errno(env, r, "sendto", sock, "notifying the service manager");
  return env.Undefined();
}

// peerCredentials(fd) -> { pid, uid, gid }
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  physcap::PeerCred c;
  int r = physcap::peer_credentials(info[0].As<Napi::Number>().Int32Value(), &c);
  if (r) throw_errno(env, r, "getsockopt(SO_PEERCRED)", "", "checking who is on the control socket");
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", c.pid);
  o.Set("uid", c.uid);
  o.Set("gid", c.gid);
  return o;
}

}  // namespace physcap::addon
