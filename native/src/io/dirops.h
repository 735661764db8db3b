#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "result.h"

namespace physcap {

// Directory-relative file operations for building a capture directory:
// everything goes through an open directory fd (the *at calls), so a path
// swapped for a symlink half-way cannot redirect a write, and names are
// single components opened with O_NOFOLLOW.  Each returns an fd, or 0, or
// -errno.

// O_DIRECTORY | O_CLOEXEC, read-only (enough for fsync and the *at calls).
// nofollow: refuse a symlink as the last component (ELOOP or ENOTDIR).
int open_dir(const std::string& path, bool nofollow);

// A subdirectory of dir_fd, never through a symlink.
int open_dir_at(int dir_fd, const std::string& name);

// mkdirat: EEXIST when anything is there already, a symlink too (mkdirat
// never follows one).
int mkdir_at(int dir_fd, const std::string& name, mode_t mode);

// A small file written whole: created (O_EXCL | O_NOFOLLOW, 0640), written,
// fsynced, closed.  Never overwrites.  After a failure past the create the
// name is unlinked again (it was created here, so it is ours): the file is
// there whole or not at all.
int write_file_at(int dir_fd, const std::string& name, const void* data, size_t len, const std::string& display_path,
                  Failure* why);

// renameat2(RENAME_NOREPLACE): EEXIST when new_name exists, even as an
// empty directory that rename(2) would silently replace.  A filesystem
// without RENAME_NOREPLACE gives EINVAL: there is no fallback that could
// replace something.
int rename_at(int old_dir_fd, const std::string& old_name, int new_dir_fd, const std::string& new_name);

// flock(2).  wait=false: 1 when taken, 0 when held elsewhere; wait=true
// blocks until it is taken (1).  -errno on failure.
int lock_fd(int fd, bool exclusive, bool wait);
int unlock_fd(int fd);

// Open-file-description record locks (fcntl F_OFD_*) on [offset, offset +
// length): held while the description is open, dropped when its process
// dies, and independent of flock(2).  A shared lock on a byte range marks
// something as in use by a live process (a reservation) without blocking
// the whole-file flock writers take.
// lock_range: 1 when taken, 0 when a conflicting lock is held elsewhere.
int lock_range(int fd, off_t offset, off_t length, bool exclusive);
int unlock_range(int fd, off_t offset, off_t length);
// 1 when a lock that conflicts with an exclusive one on the range is held
// through another open file description, 0 when none is; -errno.
int range_locked_elsewhere(int fd, off_t offset, off_t length);

}  // namespace physcap
