#include "dirops.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "dest.h"

namespace physcap {

int open_dir(const std::string& path, bool nofollow) {
  int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0);
  int fd = open(path.c_str(), flags);
  return fd < 0 ? -errno : fd;
}

int open_dir_at(int dir_fd, const std::string& name) {
  int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

int mkdir_at(int dir_fd, const std::string& name, mode_t mode) {
  return mkdirat(dir_fd, name.c_str(), mode) ? -errno : 0;
}

int write_file_at(int dir_fd, const std::string& name, const void* data, size_t len, const std::string& display_path,
                  Failure* why) {
  int fd = openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0) {
    int e = errno;
    why->set(e, "open", display_path);
    return -e;
  }
  // The name was created here (O_EXCL), so on any failure it is ours to
  // take back: a small file is there whole or not at all, and a second
  // attempt (the failed record after a failed publish) never meets EEXIST.
  int64_t w = pwrite_all(fd, data, len, 0);
  if (w < 0) {
    close(fd);
    unlinkat(dir_fd, name.c_str(), 0);
    why->set(static_cast<int>(-w), "write", display_path);
    return static_cast<int>(w);
  }
  if (fsync(fd)) {
    int e = errno;
    close(fd);
    unlinkat(dir_fd, name.c_str(), 0);
    why->set(e, "fsync", display_path);
    return -e;
  }
  // close(2) can report a deferred write error (NFS): it counts.
  if (close(fd)) {
    int e = errno;
    unlinkat(dir_fd, name.c_str(), 0);
    why->set(e, "close", display_path);
    return -e;
  }
  return 0;
}

int rename_at(int old_dir_fd, const std::string& old_name, int new_dir_fd, const std::string& new_name) {
  return renameat2(old_dir_fd, old_name.c_str(), new_dir_fd, new_name.c_str(), RENAME_NOREPLACE) ? -errno : 0;
}

int lock_fd(int fd, bool exclusive, bool wait) {
  int op = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
  while (flock(fd, op)) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK && !wait) return 0;
    return -errno;
  }
  return 1;
}

int unlock_fd(int fd) { return flock(fd, LOCK_UN) ? -errno : 0; }

namespace {

struct flock range_of(short type, off_t offset, off_t length) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = offset;
  fl.l_len = length;
  return fl;  // l_pid stays 0, as F_OFD_* require
}

}  // namespace

int lock_range(int fd, off_t offset, off_t length, bool exclusive) {
  struct flock fl = range_of(exclusive ? F_WRLCK : F_RDLCK, offset, length);
  while (fcntl(fd, F_OFD_SETLK, &fl)) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EACCES) return 0;
    return -errno;
  }
  return 1;
}

int unlock_range(int fd, off_t offset, off_t length) {
  struct flock fl = range_of(F_UNLCK, offset, length);
  return fcntl(fd, F_OFD_SETLK, &fl) ? -errno : 0;
}

int range_locked_elsewhere(int fd, off_t offset, off_t length) {
  struct flock fl = range_of(F_WRLCK, offset, length);
  if (fcntl(fd, F_OFD_GETLK, &fl)) return -errno;
  return fl.l_type == F_UNLCK ? 0 : 1;
}

}  // namespace physcap
