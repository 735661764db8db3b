#!/usr/bin/env bash
# Checks that the native engine's C++ (native/src/**/*.cc and *.h) is laid
# out as native/.clang-format says: clang-format --dry-run --Werror on each
# file.  Exits 0 when all are, 1 listing every finding and the files that
# have them, 2 when clang-format is missing (Debian's clang-format package,
# which scripts/setup.sh installs).  --fix rewrites the files instead.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

fix=0
case "${1:-}" in
	"") ;;
	--fix) fix=1 ;;
	*) echo "usage: $0 [--fix]" >&2; exit 2 ;;
esac

if ! command -v clang-format >/dev/null 2>&1; then
	echo "clang-format.sh: clang-format is not installed (apt-get install clang-format; scripts/setup.sh does)" >&2
	exit 2
fi

mapfile -t files < <(find native/src -type f \( -name '*.cc' -o -name '*.h' \) | LC_ALL=C sort)
if [ "${#files[@]}" = 0 ]; then
	echo "clang-format.sh: no C++ files under native/src" >&2
	exit 2
fi

if [ "$fix" = 1 ]; then
	clang-format --style=file -i "${files[@]}"
	echo "clang-format.sh: formatted ${#files[@]} files"
	exit 0
fi

bad=()
for f in "${files[@]}"; do
	# Each finding: file:line:col: error: code should be clang-formatted, and the line.
	if ! clang-format --style=file --dry-run --Werror "$f"; then
		bad+=("$f")
	fi
done

if [ "${#bad[@]}" != 0 ]; then
	{
		echo
		echo "clang-format.sh: ${#bad[@]} of ${#files[@]} files are not formatted as native/.clang-format says ($(clang-format --version)):"
		printf '  %s\n' "${bad[@]}"
		echo "clang-format.sh: fix them with scripts/lint/clang-format.sh --fix"
	} >&2
	exit 1
fi
echo "clang-format.sh: ${#files[@]} files formatted as native/.clang-format says"
