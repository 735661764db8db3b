#!/usr/bin/env bash
# Prepares the cross-compile kernel trees physcap.ko is built against, from
# Debian's linux-source package with Debian's cross compilers:
#   arm64          defconfig              modules_prepare (compile only)
#   ppc64le        ppc64le_defconfig      modules_prepare (compile only)
#   ppce500        mpc85xx_smp_defconfig  modules_prepare (compile only)
#   ppce500-board  allnoconfig + ppce500-board.config, a full build: the
#                  emulated PowerPC board boots its vmlinux, and its
#                  Module.symvers lets modpost check that physcap.ko links
#                  (no 64-bit division helpers a 32-bit kernel lacks, no
#                  missing exports).  Small, so a cold build takes minutes.
# Every target also gets common.config.
#
# Trees live outside the checkout, in $PHYSCAP_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/physcap), keyed by the source package's version,
# the target's definition, its config fragments and tree_format: a repeated
# run costs a stat, and a changed fragment or a new linux-source builds a new
# tree.  Bump tree_format when a change here changes what a tree holds.
# Writes build/cross.json for scripts/build.js and the tests.
#
# usage: trees.sh [target...]     (default: all three)
set -euo pipefail
# prepare() runs in $(...): its failures must stop the script too.
shopt -s inherit_errexit

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${PHYSCAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/physcap}
source_package=linux-source-6.1
jobs=$(nproc)
tree_format=1

log() { printf 'physcap cross: %s\n' "$*" >&2; }

# target -> ARCH, CROSS_COMPILE, defconfig target, extra fragment, full build?
target_arch() { case $1 in arm64) echo arm64 ;; ppc64le | ppce500 | ppce500-board) echo powerpc ;; esac; }
target_cross() {
	case $1 in
	arm64) echo aarch64-linux-gnu- ;;
	ppc64le) echo powerpc64le-linux-gnu- ;;
	ppce500 | ppce500-board) echo powerpc-linux-gnu- ;;
	esac
}
target_defconfig() {
	case $1 in
	arm64) echo defconfig ;;
	ppc64le) echo ppc64le_defconfig ;;
	ppce500) echo mpc85xx_smp_defconfig ;;
	ppce500-board) echo allnoconfig ;;
	esac
}
target_fragment() { case $1 in ppce500-board) echo "$here/ppce500-board.config" ;; esac; }
target_full() { [ "$1" = ppce500-board ]; }

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(arm64 ppc64le ppce500 ppce500-board)
for t in "${targets[@]}"; do
	if [ -z "$(target_arch "$t")" ]; then
		log "unknown target '$t' (arm64, ppc64le, ppce500, ppce500-board)"
		exit 2
	fi
done

version=$(dpkg-query -W -f='${Version}' "$source_package" 2>/dev/null || true)
if [ -z "$version" ]; then
	log "$source_package is not installed (scripts/setup.sh installs it)"
	exit 1
fi

# One extracted source tree per package version, shared by every target
# (each builds out of tree with O=).
src="$cache/src/$source_package-$version"
if [ ! -f "$src/.physcap-extracted" ]; then
	log "extracting $source_package $version into $src"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	xz -dc -T"$jobs" "/usr/src/$source_package.tar.xz" | tar -x -C "$src.tmp" --strip-components=1
	touch "$src.tmp/.physcap-extracted"
	mv "$src.tmp" "$src"
fi
kernelversion=$(make -s -C "$src" kernelversion)
for old in "$cache/src/$source_package-"*; do
	[ "$old" = "$src" ] || [ ! -d "$old" ] || rm -rf "$old"	# an older package's source
done

fingerprint() {
	local t=$1
	{
		printf '%s\n' "$tree_format" "$version" "$t" "$(target_arch "$t")" "$(target_cross "$t")" \
			"$(target_defconfig "$t")" "$(target_full "$t" && echo full || echo prepare)"
		cat "$here/common.config"
		local f
		f=$(target_fragment "$t")
		[ -z "$f" ] || cat "$f"
	} | sha256sum | cut -c1-12
}

prepare() {
	local t=$1 arch cross defconfig fragment tree kmake
	arch=$(target_arch "$t")
	cross=$(target_cross "$t")
	defconfig=$(target_defconfig "$t")
	fragment=$(target_fragment "$t")
	tree="$cache/trees/$t-$kernelversion-$(fingerprint "$t")"
	if ! command -v "${cross}gcc" >/dev/null; then
		log "${cross}gcc is missing (scripts/setup.sh installs Debian's cross compilers)"
		exit 1
	fi
	kmake=(make -s -C "$src" O="$tree" ARCH="$arch" CROSS_COMPILE="$cross" -j"$jobs")
	if [ ! -f "$tree/.physcap-ready" ]; then
		local started=$SECONDS
		mkdir -p "$tree"
		if [ ! -f "$tree/.physcap-configured" ]; then
			log "$t: $defconfig + fragments in $tree"
			if [ "$defconfig" = allnoconfig ]; then
				# Everything not asked for stays off.
				cat "$here/common.config" $fragment >"$tree/physcap.config"
				"${kmake[@]}" KCONFIG_ALLCONFIG="$tree/physcap.config" allnoconfig >/dev/null
			else
				"${kmake[@]}" "$defconfig" >/dev/null
				# shellcheck disable=SC2086
				(cd "$tree" && ARCH=$arch CROSS_COMPILE=$cross "$src/scripts/kconfig/merge_config.sh" \
					-m -O "$tree" "$tree/.config" "$here/common.config" $fragment >/dev/null)
			fi
			"${kmake[@]}" olddefconfig >/dev/null
			check_fragments "$tree" "$here/common.config" $fragment
			touch "$tree/.physcap-configured"
		fi
		if target_full "$t"; then
			# vmlinux (QEMU boots the ELF; no boot wrapper, which would
			# need U-Boot's mkimage) and the in-tree modules (softdog).
			log "$t: full build (vmlinux and modules; the first time takes a while)"
			"${kmake[@]}" vmlinux modules >/dev/null
		else
			log "$t: modules_prepare"
			"${kmake[@]}" modules_prepare >/dev/null
		fi
		touch "$tree/.physcap-ready"
		log "$t: ready in $((SECONDS - started)) s"
	fi
	# Trees of this target for another source or config are stale: drop them.
	local old
	for old in "$cache/trees/$t-"[0-9]*; do
		[ "$old" = "$tree" ] || [ ! -d "$old" ] || rm -rf "$old"
	done
	local release
	release=$(cat "$tree/include/config/kernel.release")
	printf '{"target": "%s", "arch": "%s", "cross_compile": "%s", "tree": "%s", "release": "%s", "full": %s}' \
		"$t" "$arch" "$cross" "$tree" "$release" "$(target_full "$t" && echo true || echo false)"
}

# A fragment line that did not survive olddefconfig (a missing dependency, a
# renamed symbol) would silently build something else: refuse it.
check_fragments() {
	local tree=$1 f line sym want got
	shift
	for f in "$@"; do
		while IFS= read -r line; do
			case $line in CONFIG_*=*) ;; *) continue ;; esac
			sym=${line%%=*}
			want=${line#*=}
			got=$(sed -n "s/^$sym=//p" "$tree/.config")
			# Without DEBUG_KERNEL the debug-info choice is hidden: no debug info, as asked.
			if [ "$sym" = CONFIG_DEBUG_INFO_NONE ] && ! grep -q '^CONFIG_DEBUG_INFO=y' "$tree/.config"; then
				continue
			fi
			if [ "$got" != "$want" ]; then
				log "$(basename "$f"): $sym=$want did not take (got '${got:-unset}') in $tree/.config"
				exit 1
			fi
		done <"$f"
	done
}

mkdir -p "$root/build"
entries=()
for t in "${targets[@]}"; do
	entry=$(prepare "$t")
	entries+=("$entry")
done
{
	printf '[\n'
	sep=''
	for e in "${entries[@]}"; do
		printf '%s  %s' "$sep" "$e"
		sep=$',\n'
	done
	printf '\n]\n'
} >"$root/build/cross.json.tmp"
mv "$root/build/cross.json.tmp" "$root/build/cross.json"
