#!/usr/bin/env bash
# The debug vmlinux of every kernel the emulated board boots, for the
# post-mortem tests (crash, drgn, gdb, makedumpfile need the kernel's
# DWARF).  Debian ships it in linux-image-<release>-dbg, about 0.9 GB per
# kernel, of which only usr/lib/debug/boot/vmlinux-<release> is needed:
# the package is downloaded, that one file extracted into the cache
# outside the checkout, and the package deleted.  A repeated run costs a
# stat.  The tests compare its GNU build ID with the BUILD-ID line of the
# VMCOREINFO the booted kernel wrote into each capture.
#
# Writes build/debug-vmlinux.json: [{ release, vmlinux, buildId }].
# usage: debug-vmlinux.sh            (every kernel in build/kernels.json)
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${PHYSCAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/physcap}/debug-vmlinux
build="$root/build"

log() { printf 'physcap debug-vmlinux: %s\n' "$*" >&2; }

[ -f "$build/kernels.json" ] || { log "build/kernels.json is missing: run scripts/setup.sh first"; exit 1; }
releases=$(node -e 'for (const k of require(process.argv[1])) console.log(k.release)' "$build/kernels.json")

# The GNU build ID note of an ELF file (vmlinux), as readelf prints it.
elf_build_id() { readelf -n "$1" 2>/dev/null | sed -n 's/^ *Build ID: *\([0-9a-f]*\).*/\1/p' | head -n 1; }

entries=()
for rel in $releases; do
	dir="$cache/$rel"
	vmlinux="$dir/vmlinux"
	if [ ! -s "$vmlinux" ]; then
		pkg="linux-image-$rel-dbg"
		mkdir -p "$cache"
		tmp=$(mktemp -d "$cache/download-XXXXXX")
		# apt fetches as its own user (_apt) when it can write there.
		chmod 0755 "$tmp"
		chown _apt "$tmp" 2>/dev/null || true
		log "downloading $pkg (about 0.9 GB; only vmlinux is kept)"
		(cd "$tmp" && apt-get download -qq "$pkg" >&2) || {
			log "cannot download $pkg (run 'apt-get update'?)"
			rm -rf "$tmp"
			exit 1
		}
		deb=$(ls "$tmp"/*.deb)
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "./usr/lib/debug/boot/vmlinux-$rel"
		mkdir -p "$dir"
		mv "$tmp/usr/lib/debug/boot/vmlinux-$rel" "$vmlinux.tmp"
		mv "$vmlinux.tmp" "$vmlinux"
		rm -rf "$tmp"
	fi
	id=$(elf_build_id "$vmlinux")
	[ -n "$id" ] || { log "$vmlinux has no build ID"; exit 1; }
	entries+=("$rel $vmlinux $id")
done

printf '%s\n' "${entries[@]}" | node -e '
	const lines = require("fs").readFileSync(0, "utf8").trim().split("\n");
	const list = lines.map((l) => { const [release, vmlinux, buildId] = l.split(" "); return { release, vmlinux, buildId }; });
	process.stdout.write(JSON.stringify(list, null, 2) + "\n");
' > "$build/debug-vmlinux.json.tmp"
mv "$build/debug-vmlinux.json.tmp" "$build/debug-vmlinux.json"
log "ready: $(printf '%s ' $releases)"
