#!/usr/bin/env bash
# The version lives in colpali.control; META.json must agree with it.
set -euo pipefail
cd "$(dirname "$0")/.."
ver=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" colpali.control)
[ -n "$ver" ] || { echo "no default_version in colpali.control"; exit 1; }
bad=0
for v in $(grep -o '"version" *: *"[^"]*"' META.json | grep -v '"1.0.0"' | sed 's/.*"\([^"]*\)"$/\1/'); do
	[ "$v" = "$ver" ] || { echo "META.json says $v, colpali.control says $ver"; bad=1; }
done
grep -q "\"sql/colpali--$ver.sql\"" META.json || { echo "META.json provides file does not name sql/colpali--$ver.sql"; bad=1; }
[ $bad -eq 0 ] && echo "version $ver consistent"
exit $bad
