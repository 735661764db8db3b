/**
 * Host-side checks of the kernel parts: the ioctl ABI's layout is frozen,
 * the module built warning-free against every kernel, and it says what it
 * is.  (Behaviour is tested on the emulated board: zero-copy.vm.test.ts.)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { artifacts, loadKernels, repoRoot } from '../../harness/paths';
import { withTempDir } from '../support/tmp';

const root = repoRoot();

test('the uapi header has the frozen layout, seen from C', () => {
  withTempDir('abi', (dir) => {
    const src = path.join(dir, 'abi.c');
    fs.writeFileSync(
      src,
      `#include <stddef.h>
#include "${path.join(root, 'kernel', 'physcap_uapi.h')}"
#define AT(t, f, o) _Static_assert(offsetof(struct t, f) == o, #t "." #f)
_Static_assert(sizeof(struct physcap_info) == PHYSCAP_INFO_SIZE, "info");
_Static_assert(sizeof(struct physcap_write) == PHYSCAP_WRITE_SIZE, "write");
AT(physcap_info, abi_version, 0); AT(physcap_info, page_size, 4);
AT(physcap_info, features, 8); AT(physcap_info, max_length, 16);
AT(physcap_info, phys_limit, 24); AT(physcap_info, batch_pages, 32);
AT(physcap_info, reserved, 40);
AT(physcap_write, phys_addr, 0); AT(physcap_write, length, 8);
AT(physcap_write, dest_offset, 16); AT(physcap_write, dest_fd, 24);
AT(physcap_write, flags, 28); AT(physcap_write, bytes_written, 32);
AT(physcap_write, bytes_zero_copy, 40); AT(physcap_write, bytes_bounced, 48);
AT(physcap_write, bytes_poisoned, 56); AT(physcap_write, bytes_buffered, 64);
AT(physcap_write, reserved, 72);
_Static_assert(sizeof(struct physcap_arm_range) == PHYSCAP_ARM_RANGE_SIZE, "arm range");
_Static_assert(sizeof(struct physcap_arm) == PHYSCAP_ARM_SIZE, "arm");
_Static_assert(sizeof(struct physcap_arm_status) == PHYSCAP_ARM_STATUS_SIZE, "arm status");
_Static_assert(sizeof(struct physcap_event) == PHYSCAP_EVENT_SIZE, "event");
_Static_assert(PHYSCAP_ARM_RANGE_SIZE == 24 && PHYSCAP_ARM_SIZE == 456, "arm sizes");
_Static_assert(PHYSCAP_ARM_STATUS_SIZE == 96 && PHYSCAP_EVENT_SIZE == 120, "status, event sizes");
AT(physcap_arm_range, phys_addr, 0); AT(physcap_arm_range, length, 8);
AT(physcap_arm_range, dest_offset, 16);
AT(physcap_arm, size, 0); AT(physcap_arm, flags, 4); AT(physcap_arm, dest_fd, 8);
AT(physcap_arm, watchdog_id, 12); AT(physcap_arm, cookie, 16); AT(physcap_arm, arm_id, 24);
AT(physcap_arm, nr_ranges, 32); AT(physcap_arm, pad, 36); AT(physcap_arm, ranges, 40);
AT(physcap_arm, stamp_offset, 424); AT(physcap_arm, reserved, 432);
AT(physcap_arm_status, arm_id, 0); AT(physcap_arm_status, state, 8);
AT(physcap_arm_status, error, 12); AT(physcap_arm_status, bytes_written, 16);
AT(physcap_arm_status, bytes_total, 24); AT(physcap_arm_status, cookie, 32);
AT(physcap_arm_status, watchdog_id, 40); AT(physcap_arm_status, flags, 44);
AT(physcap_arm_status, first_byte_latency_ns, 48); AT(physcap_arm_status, duration_ns, 56);
AT(physcap_arm_status, reserved, 64);
AT(physcap_event, size, 0); AT(physcap_event, version, 4); AT(physcap_event, type, 6);
AT(physcap_event, watchdog_id, 8); AT(physcap_event, error, 12); AT(physcap_event, seq, 16);
AT(physcap_event, time_real_ns, 24); AT(physcap_event, cookie, 32); AT(physcap_event, arm_id, 40);
AT(physcap_event, bytes_written, 48); AT(physcap_event, bytes_zero_copy, 56);
AT(physcap_event, bytes_bounced, 64); AT(physcap_event, first_byte_latency_ns, 72);
AT(physcap_event, duration_ns, 80); AT(physcap_event, time_mono_ns, 88);
AT(physcap_event, reserved, 96);
_Static_assert(sizeof(struct physcap_kernel_map) == PHYSCAP_KERNEL_MAP_SIZE && PHYSCAP_KERNEL_MAP_SIZE == 96, "kernel map");
AT(physcap_kernel_map, direct_map_virt, 0); AT(physcap_kernel_map, direct_map_start, 8);
AT(physcap_kernel_map, direct_map_end, 16); AT(physcap_kernel_map, image_offset, 24);
AT(physcap_kernel_map, reserved, 32);
_Static_assert(PHYSCAP_ABI_VERSION == 4, "ABI version");
_Static_assert(PHYSCAP_FEAT_ARM == (1ULL << 7) && PHYSCAP_FEAT_PRETIMEOUT_GOV == (1ULL << 8) &&
	       PHYSCAP_FEAT_KERNEL_MAP == (1ULL << 9) && PHYSCAP_FEAT_ARM_STAMP == (1ULL << 10), "feature bits");
_Static_assert(PHYSCAP_ARM_THEN_PANIC == 1 && PHYSCAP_ARM_STAMP == 2, "ARM flags");
_Static_assert(sizeof(struct physcap_arm_stamp) == PHYSCAP_ARM_STAMP_SIZE && PHYSCAP_ARM_STAMP_SIZE == 120, "stamp");
AT(physcap_arm_stamp, magic, 0); AT(physcap_arm_stamp, version, 8); AT(physcap_arm_stamp, size, 12);
AT(physcap_arm_stamp, cookie, 16); AT(physcap_arm_stamp, arm_id, 24); AT(physcap_arm_stamp, state, 32);
AT(physcap_arm_stamp, error, 36); AT(physcap_arm_stamp, watchdog_id, 40); AT(physcap_arm_stamp, flags, 44);
AT(physcap_arm_stamp, bytes_written, 48); AT(physcap_arm_stamp, bytes_zero_copy, 56);
AT(physcap_arm_stamp, bytes_bounced, 64); AT(physcap_arm_stamp, bytes_total, 72);
AT(physcap_arm_stamp, first_byte_latency_ns, 80); AT(physcap_arm_stamp, duration_ns, 88);
AT(physcap_arm_stamp, time_real_ns, 96); AT(physcap_arm_stamp, reserved, 104); AT(physcap_arm_stamp, check, 112);
_Static_assert(PHYSCAP_EVENT_PRETIMEOUT == 1 && PHYSCAP_EVENT_CAPTURE_DONE == 2 &&
	       PHYSCAP_EVENT_CAPTURE_FAILED == 3, "event types");
_Static_assert(PHYSCAP_IOC_INFO == 0x8048b700u, "INFO number");
_Static_assert(PHYSCAP_IOC_WRITE == 0xc060b701u, "WRITE number");
_Static_assert(PHYSCAP_IOC_ARM == 0xc1c8b702u, "ARM number");
_Static_assert(PHYSCAP_IOC_DISARM == 0x4008b703u, "DISARM number");
_Static_assert(PHYSCAP_IOC_ARM_STATUS == 0xc060b704u, "ARM_STATUS number");
_Static_assert(PHYSCAP_IOC_KERNEL_MAP == 0x8060b705u, "KERNEL_MAP number");
int main(void) { return 0; }
`,
    );
    // -m32 is not installed everywhere; 64-bit is the layout that matters here.
    execFileSync('cc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-c', src, '-o', path.join(dir, 'abi.o')], {
      stdio: 'pipe',
    });
  });
});

describe.each(loadKernels().map((k) => [k.release, k] as const))('physcap.ko for %s', (_release, kernel) => {
  const ko = artifacts(kernel).module;

  test('built without a single warning', () => {
    const log = fs.readFileSync(path.join(path.dirname(ko), 'build.log'), 'utf8');
    expect(log).not.toMatch(/warning:/i);
    expect(fs.existsSync(ko)).toBe(true);
  });

  test('is a GPL module for that kernel, with the adopt parameter', () => {
    const field = (f: string) => execFileSync('modinfo', ['-F', f, ko], { encoding: 'utf8' }).trim();
    expect(field('license')).toBe('GPL');
    expect(field('vermagic').split(' ')[0]).toBe(kernel.release);
    expect(field('parm')).toMatch(/^adopt:/);
  });

  test("the governor API is the watchdog core's export, bound weakly (plain insmod works without it)", () => {
    const symvers = fs.readFileSync(path.join(kernel.headers, 'Module.symvers'), 'utf8');
    for (const sym of ['watchdog_register_governor', 'watchdog_unregister_governor']) {
      expect(symvers).toMatch(new RegExp(`^0x[0-9a-f]+\\t${sym}\\tdrivers/watchdog/watchdog\\tEXPORT_SYMBOL\\t`, 'm'));
    }
    expect(execFileSync('modinfo', ['-F', 'depends', ko], { encoding: 'utf8' }).trim()).toBe('watchdog');
    const nm = execFileSync('nm', [ko], { encoding: 'utf8' });
    expect(nm).toMatch(/^\s+w watchdog_register_governor$/m);
    expect(nm).toMatch(/^\s+w watchdog_unregister_governor$/m);
  });
});

test('dkms.conf builds the same module and version as the sources', () => {
  const conf = fs.readFileSync(path.join(root, 'kernel', 'dkms.conf'), 'utf8');
  const header = fs.readFileSync(path.join(root, 'kernel', 'physcap.h'), 'utf8');
  const version = /PHYSCAP_VERSION\s+"([^"]+)"/.exec(header)?.[1];
  expect(conf).toMatch(/^PACKAGE_NAME="physcap"$/m);
  expect(conf).toMatch(new RegExp(`^PACKAGE_VERSION="${version}"$`, 'm'));
  expect(conf).toMatch(/^BUILT_MODULE_NAME\[0\]="physcap"$/m);
});
