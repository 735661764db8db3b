#!/usr/bin/env bash
# checkpatch.pl --no-tree on physcap's kernel-style C: the module
# (kernel/*.c, kernel/*.h) and the C tools (kernel/tools/*.c, *.h), each
# file checked whole (-f).  Prints every finding and exits 1 if there is
# any, 0 when all is clean, 2 when checkpatch.pl is missing.
#
# checkpatch.pl is the one in Debian's linux-source-6.1, which
# scripts/cross/trees.sh extracts into $PHYSCAP_CACHE/src (default
# ~/.cache/physcap/src/linux-source-6.1-<version>); CHECKPATCH=FILE
# overrides it.
#
# usage: scripts/lint/checkpatch.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${PHYSCAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/physcap}

checkpatch=${CHECKPATCH:-}
if [ -z "$checkpatch" ]; then
	# The newest extracted tree, as trees.sh names them.
	checkpatch=$(ls -d "$cache"/src/linux-source-6.1-*/scripts/checkpatch.pl 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -n "${CHECKPATCH:-}" ] && [ ! -f "$CHECKPATCH" ]; then
	echo "checkpatch: CHECKPATCH=$CHECKPATCH is not a file" >&2
	exit 2
fi
if [ -z "$checkpatch" ]; then
	echo "checkpatch: no checkpatch.pl in $cache/src/linux-source-6.1-*/scripts/:" \
		"scripts/cross/trees.sh extracts Debian's linux-source-6.1 there (scripts/setup.sh installs the package)" >&2
	exit 2
fi

# Rules that do not fit, each ignored by name and only where it does not
# fit (keep this short; fix the code instead wherever a rule does fit).
#
# kernel/physcap_compat.h
#   LINUX_VERSION_CODE   physcap.ko is out of tree and builds from one
#                        source against 6.1 and 6.12; compat.h is the one
#                        place that compares kernel versions.  The rule is
#                        for in-tree code, which is for the version it was
#                        merged into.
#   CONSTANT_COMPARISON  checkpatch takes the upper-case LINUX_VERSION_CODE
#                        for the constant in "LINUX_VERSION_CODE >=
#                        KERNEL_VERSION(6, 3, 0)", the usual idiom.
# kernel/physcap_wdgov.h
#   WEAK_DECLARATION     the watchdog core's governor functions are weak on
#                        purpose: the module loader leaves an unresolved
#                        weak symbol at 0, so physcap.ko loads without the
#                        watchdog core and runs without the governor;
#                        physcap_governor.c checks both for NULL before it
#                        calls them (the header explains).
# kernel/physcap_governor.c
#   PREFER_PR_LEVEL      the pretimeout line is the noop governor's, byte
#                        for byte ("watchdogN: pretimeout event", which the
#                        agent's kmsg trigger matches from ^); pr_alert()
#                        would prefix it with the file's pr_fmt "physcap: ".
# kernel/tools/ (user space)
#   SPLIT_STRING         the rule keeps kernel log messages greppable; the
#                        tools' split strings are printf formats of JSON
#                        objects with PRIu64 and the like between the
#                        pieces (not greppable whole in any case), which on
#                        one line would run past 200 columns.
declare -A file_ignores=(
	[kernel/physcap_compat.h]=LINUX_VERSION_CODE,CONSTANT_COMPARISON
	[kernel/physcap_wdgov.h]=WEAK_DECLARATION
	[kernel/physcap_governor.c]=PREFER_PR_LEVEL
)
tools_ignores=SPLIT_STRING

cd "$root"
shopt -s nullglob
module=()
special=()
for f in kernel/*.c kernel/*.h; do
	case $f in *.mod.c) continue ;; esac	# kbuild's, after an in-tree make
	if [ -n "${file_ignores[$f]:-}" ]; then special+=("$f"); else module+=("$f"); fi
done
tools=(kernel/tools/*.c kernel/tools/*.h)
if [ ${#module[@]} -eq 0 ] || [ ${#tools[@]} -eq 0 ]; then
	echo "checkpatch: no sources under $root/kernel" >&2
	exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# One checkpatch per group, the groups side by side (its start-up and the
# per-line regexes are the cost: about 4 s in all on two cores).
run() {
	local name=$1
	shift
	if perl "$checkpatch" --no-tree --quiet --show-types --color=never "$@" > "$out/$name.log" 2>&1; then
		: > "$out/$name.ok"
	fi
}
run module -f "${module[@]}" &
run tools --ignore "$tools_ignores" -f "${tools[@]}" &
(
	for f in "${special[@]}"; do
		run "special-${f//\//_}" --ignore "${file_ignores[$f]}" -f "$f"
	done
) &
wait

status=0
for log in "$out"/module.log "$out"/tools.log "$out"/special-*.log; do
	[ -e "$log" ] || continue
	if [ ! -e "${log%.log}.ok" ]; then
		cat "$log"
		status=1
	fi
done
if [ $status -eq 0 ]; then
	echo "checkpatch: clean ($(( ${#module[@]} + ${#special[@]} )) module files, ${#tools[@]} tool files)"
fi
exit $status
