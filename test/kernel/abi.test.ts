/**
 * Host-side checks of the kernel parts: the ioctl ABI's layout is frozen,
 * the module built warning-free against every kernel, and it says what it
 * is.  (Behaviour is tested on the emulated board: zero-copy.vm.test.ts.)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { artifacts, loadKernels, repoRoot } from '../vm/paths';

const root = repoRoot();

test('the uapi header has the frozen layout, seen from C', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'physcap-abi-'));
  try {
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
_Static_assert(PHYSCAP_IOC_INFO == 0x8048b700u, "INFO number");
_Static_assert(PHYSCAP_IOC_WRITE == 0xc060b701u, "WRITE number");
int main(void) { return 0; }
`,
    );
    // -m32 is not installed everywhere; 64-bit is the layout that matters here.
    execFileSync('cc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-c', src, '-o', path.join(dir, 'abi.o')], {
      stdio: 'pipe',
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
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
});

test('dkms.conf builds the same module and version as the sources', () => {
  const conf = fs.readFileSync(path.join(root, 'kernel', 'dkms.conf'), 'utf8');
  const header = fs.readFileSync(path.join(root, 'kernel', 'physcap.h'), 'utf8');
  const version = /PHYSCAP_VERSION\s+"([^"]+)"/.exec(header)?.[1];
  expect(conf).toMatch(/^PACKAGE_NAME="physcap"$/m);
  expect(conf).toMatch(new RegExp(`^PACKAGE_VERSION="${version}"$`, 'm'));
  expect(conf).toMatch(/^BUILT_MODULE_NAME\[0\]="physcap"$/m);
});
