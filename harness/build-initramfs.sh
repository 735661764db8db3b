#!/usr/bin/env bash
# build-initramfs.sh RELEASE OUT: busybox-static, the modules the board
# needs from that kernel (decompressed, in dependency order) and init.sh.
set -euo pipefail

rel=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
moddir=/lib/modules/$rel
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# algif_hash and sha256_ssse3: the kernel crypto API from user space, with
# the x86 SHA-256 drivers, for physcap-client's digests.  Loaded here:
# the kernel's modprobe would run in this initramfs, which has none.
wanted=(virtio_pci virtio_blk 9pnet_virtio 9p ext4 crc32c_generic algif_hash sha256_ssse3)

declare -A seen=()
order=()

# A module's file, named with - or _ (sha256-ssse3.ko is sha256_ssse3).
module_file() {
	local alt=${1//_/-}
	find "$moddir/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \
		-o -name "$alt.ko" -o -name "$alt.ko.xz" -o -name "$alt.ko.zst" \) | head -n 1
}

is_builtin() {
	grep -q "/$1.ko\$" "$moddir/modules.builtin" 2>/dev/null
}

add_module() {
	local name=${1//-/_} file dep
	[ -n "${seen[$name]:-}" ] && return
	seen[$name]=1
	file=$(module_file "$name")
	if [ -z "$file" ]; then
		is_builtin "$name" && return
		echo "build-initramfs: module $name not found for $rel" >&2
		exit 1
	fi
	for dep in $(modinfo -F depends "$file" | tr ',' ' '); do
		add_module "$dep"
	done
	case "$file" in
	*.xz) xz -dc "$file" > "$work/modules/$name.ko" ;;
	*.zst) zstd -dqc "$file" > "$work/modules/$name.ko" ;;
	*) cp "$file" "$work/modules/$name.ko" ;;
	esac
	order+=("$name")
}

mkdir -p "$work"/{bin,dev,proc,sys,modules,newroot}
for m in "${wanted[@]}"; do
	add_module "$m"
done
printf '%s\n' "${order[@]}" > "$work/modules/order"
cp /bin/busybox "$work/bin/busybox"
cp "$here/init.sh" "$work/init"
chmod 755 "$work/init"

(cd "$work" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$out.tmp"
mv "$out.tmp" "$out"
