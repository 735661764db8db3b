#pragma once

#include <sys/types.h>

#include <string>

namespace physcap {

// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a path,
// or "@name" for the abstract namespace).  0 or -errno.
int sd_notify_send(const std::string& socket_path, const std::string& message);

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The credentials of the process at the other end of a unix socket.
int peer_credentials(int fd, PeerCred* out);

}  // namespace physcap
