#pragma once

#include <cstdint>

#include "../../../kernel/physcap_uapi.h"

namespace physcap {

static_assert(sizeof(physcap_info) == PHYSCAP_INFO_SIZE, "physcap_info ABI");
static_assert(sizeof(physcap_write) == PHYSCAP_WRITE_SIZE, "physcap_write ABI");
static_assert(sizeof(physcap_arm_range) == PHYSCAP_ARM_RANGE_SIZE, "physcap_arm_range ABI");
static_assert(sizeof(physcap_arm) == PHYSCAP_ARM_SIZE, "physcap_arm ABI");
static_assert(sizeof(physcap_arm_status) == PHYSCAP_ARM_STATUS_SIZE, "physcap_arm_status ABI");
static_assert(sizeof(physcap_event) == PHYSCAP_EVENT_SIZE, "physcap_event ABI");
static_assert(sizeof(physcap_kernel_map) == PHYSCAP_KERNEL_MAP_SIZE, "physcap_kernel_map ABI");

constexpr const char* kDevicePath = "/dev/" PHYSCAP_DEVICE_NAME;

// Opens /dev/physcap read-write; returns an fd or -errno.
int device_open();
int device_info(int fd, physcap_info* info);
// KERNEL_MAP (ABI 3): -ENOTTY from an older module.
int device_kernel_map(int fd, physcap_kernel_map* map);
// One WRITE ioctl; out fields are filled also on failure.  0 or -errno.
int device_write(int fd, physcap_write* req);

}  // namespace physcap
