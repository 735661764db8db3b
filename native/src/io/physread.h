#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "result.h"

namespace physcap {

// Copies [phys, phys + len) of physical memory into out, through the
// device's read-only mapping (the file offset is the physical address):
// small reads such as the kernel's VMCOREINFO note, without a capture or a
// temporary file.  device: empty for /dev/physcap; a regular file stands in
// for it in tests.  0 or -errno, with the failing call in *why.
int read_physical(const std::string& device, uint64_t phys, void* out, size_t len, Failure* why);

}  // namespace physcap
