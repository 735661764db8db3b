// Plain C++ I/O layer: no napi.h here.  Every function returns 0 (or a
// non-negative count) on success and -errno on failure, and never throws;
// the addon glue turns failures into Node-style errors.
#pragma once

#include <cerrno>
#include <string>

namespace physcap {

// Where a failure happened, for the error that reaches JavaScript.
struct Failure {
  int err = 0;          // positive errno; 0 = none
  std::string syscall;  // "pwrite", "open", "ioctl(PHYSCAP_IOC_WRITE)"
  std::string path;     // the file involved, if any

  bool failed() const { return err != 0; }
  // Keeps the first failure: later ones are usually its consequences.
  void set(int e, const std::string& sc, const std::string& p = {}) {
    if (!err) {
      err = e < 0 ? -e : e;
      syscall = sc;
      path = p;
    }
  }
};

}  // namespace physcap
