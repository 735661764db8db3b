#!/usr/bin/env bash
# The TypeScript and the JavaScript of the build: ESLint's findings
# (eslint.config.mjs, type-aware through tsconfig.check.json), then
# Prettier's formatting (.prettierrc.json).  Prints every finding and
# exits 1 if there is any.  `npm run format` rewrites what Prettier flags.
#
# usage: scripts/lint/typescript.sh [eslint|prettier]
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=node_modules/.bin
what=${1:-all}
status=0
if [ "$what" = all ] || [ "$what" = eslint ]; then
	"$bin/eslint" --max-warnings 0 . || status=1
fi
if [ "$what" = all ] || [ "$what" = prettier ]; then
	# Lists the files that differ from Prettier's output.
	"$bin/prettier" --check --log-level warn 'agent/**/*.ts' 'test/**/*.ts' 'harness/**/*.ts' 'bench/**/*.ts' 'scripts/**/*.ts' 'scripts/**/*.js' 'agent/bin/*.js' '*.mjs' || status=1
fi
exit $status
