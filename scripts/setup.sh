#!/usr/bin/env bash
# Installs what physcap needs, idempotently, and fast when it is all there:
#   - Debian packages: the QEMU system emulator, busybox-static, kmod, cpio,
#     e2fsprogs, a C toolchain with a static libc;
#   - two Debian 12 kernels to boot the emulated board with, each with the
#     headers physcap.ko is built against: 6.1 (bookworm's own) and 6.12
#     (linux-image-6.12.*+deb12-amd64).  Exact versions are resolved from the
#     package index (they move); image and headers always match;
#   - for the compile matrix and the emulated PowerPC board: Debian's
#     linux-source-6.1, its cross compilers and static libcs (arm64, ppc64el,
#     powerpc), kernel build tools, qemu-system-ppc and dtc
#     (scripts/cross/trees.sh, run by scripts/build.js, prepares the trees);
#   - dkms, for the test that builds the module the way users install it;
#   - clang-format, for scripts/lint/clang-format.sh (native/src's C++);
#   - crash, python3-drgn, gdb and makedumpfile: the post-mortem tools the
#     tests open captures with, and makedumpfile for export --format kdump
#     (the kernels' debug vmlinux: scripts/debug-vmlinux.sh);
#   - Ceph (a monitor, a manager, an OSD and radosgw) and OpenSSH's server:
#     the real S3 and SFTP servers the remote destinations are tested
#     against (harness/ceph.ts, harness/sshd.ts start them on 127.0.0.1);
#   - the npm dependencies.
# Writes build/kernels.json: the kernels the tests and the demo boot.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"
mkdir -p "$build"

log() { printf 'physcap setup: %s\n' "$*" >&2; }

if [ "$(uname -m)" != x86_64 ]; then
	log "the emulated board needs an x86-64 host (found $(uname -m))"
	exit 1
fi

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

base_packages=(qemu-system-x86 busybox-static kmod cpio xz-utils zstd e2fsprogs time
	gcc make libc6-dev
	linux-source-6.1 flex bison bc libssl-dev libelf-dev
	gcc-aarch64-linux-gnu gcc-powerpc64le-linux-gnu gcc-powerpc-linux-gnu
	libc6-dev-arm64-cross libc6-dev-ppc64el-cross libc6-dev-powerpc-cross
	qemu-system-ppc device-tree-compiler
	dkms
	crash python3-drgn gdb makedumpfile
	clang-format
	ceph-mon ceph-osd ceph-mgr radosgw ceph-common
	openssh-server openssh-client)

missing_packages() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$' || printf '%s\n' "$p"
	done
}

apt_updated=0
apt_update_once() {
	if [ "$apt_updated" = 0 ]; then
		log "apt-get update"
		as_root apt-get update -qq >&2
		apt_updated=1
	fi
}

apt_install() {
	apt_update_once
	log "installing: $*"
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Newest installed kernel release of a series that has its headers, if any.
installed_release() {
	local pattern=$1 rel
	for rel in $(ls /lib/modules 2>/dev/null | grep -E "$pattern" | sort -V -r); do
		if [ -f "/boot/vmlinuz-$rel" ] && [ -e "/lib/modules/$rel/build/Makefile" ]; then
			printf '%s\n' "$rel"
			return
		fi
	done
}

# Whether apt has a version of the package it can install (apt-cache show
# also answers for a name another package only mentions).
# (No grep -q: under pipefail, apt-cache's SIGPIPE would fail the pipe.)
installable() {
	apt-cache policy "$1" 2>/dev/null | grep -E '^ *Candidate: [^(]' >/dev/null
}

# The package that installs release rel's image: Debian's signed one, or,
# while a new release is signed only later, the same kernel unsigned.
image_package() {
	local p
	for p in "linux-image-$1" "linux-image-$1-unsigned"; do
		if installable "$p"; then
			printf '%s\n' "$p"
			return
		fi
	done
}

# Newest release in the package index with both an image and headers.
indexed_release() {
	local pattern=$1 rel
	apt_update_once
	for rel in $(apt-cache search --names-only "^linux-headers-" |
		awk '{print $1}' | sed -n "s/^linux-headers-//p" |
		grep -E "^($pattern)\$" | sort -V -r); do
		if installable "linux-headers-$rel" && [ -n "$(image_package "$rel")" ]; then
			printf '%s\n' "$rel"
			return
		fi
	done
}

series_6_1='6\.1\.0-[0-9]+-amd64'
series_6_12='6\.12\.[0-9]+\+deb12-amd64'

missing=$(missing_packages "${base_packages[@]}")
if [ -n "$missing" ]; then
	# shellcheck disable=SC2086
	apt_install $missing
fi

releases=()
for series in "$series_6_1" "$series_6_12"; do
	rel=$(installed_release "^($series)\$")
	if [ -z "$rel" ]; then
		rel=$(indexed_release "$series")
		if [ -z "$rel" ]; then
			log "no kernel matching $series in the package index"
			exit 1
		fi
		apt_install "$(image_package "$rel")" "linux-headers-$rel"
	fi
	releases+=("$rel")
done

{
	printf '[\n'
	sep=''
	for rel in "${releases[@]}"; do
		series=$(printf '%s' "$rel" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
		printf '%s  {"series": "%s", "release": "%s", "vmlinuz": "/boot/vmlinuz-%s", "modules": "/lib/modules/%s", "headers": "/lib/modules/%s/build"}' \
			"$sep" "$series" "$rel" "$rel" "$rel" "$rel"
		sep=$',\n'
	done
	printf '\n]\n'
} > "$build/kernels.json.tmp"
mv "$build/kernels.json.tmp" "$build/kernels.json"

# npm dependencies: install when missing or when the lock changed.
if [ ! -f "$root/node_modules/.package-lock.json" ] ||
	[ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
	log "npm ci"
	(cd "$root" && npm ci --no-audit --no-fund >&2)
fi

log "ready: kernels ${releases[*]}"
