#!/usr/bin/env bash
# bench/maxsim/run.sh: MaxSim, one command, everything side by side in one run.
#
# On ColPali-shaped, seeded, L2-normalised data (documents 1030 x 128,
# queries 20 and 32 x 128), single core:
#   1. the C kernels (src/engine/maxsim_kernels.c): docs/s, GB/s, in cache and out
#      of cache (a pool of NDOCS documents, 527 kB each), after checking that
#      every SIMD kernel returns the scalar oracle's bits; and screened exact
#      MaxSim (src/engine/maxsim_screen.c, AMX only) with the rows it keeps;
#   2. numpy (Debian python3-numpy, one BLAS thread): matmul, max, sum on the
#      same data;
#   3. a single-thread memory read-bandwidth probe;
#   4. SQL: SELECT id FROM t ORDER BY emb <#> q LIMIT 10 over the same NDOCS
#      rows in a throwaway cluster vs the kernel alone (detoast cost).
#
# Usage: bench/maxsim/run.sh [NDOCS]        (default 2000, about 1 GB of data)
# Env:   PG_CONFIG      pg_config of the PostgreSQL with colpali installed
#                       (default: pg_config in PATH); SKIP_SQL=1 skips stage 4
#        BENCH_PGPORT   port of the throwaway cluster (default 55499)
#        BENCH_OS_USER  as root, the cluster runs as this user (default pgdev)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ndocs=${1:-2000}
npool=$(( ndocs < 500 ? ndocs : 500 ))	# numpy out-of-cache pool (263 MB)
port=${BENCH_PGPORT:-55499}
work=$(mktemp -d /tmp/maxsim-bench.XXXXXX)
chmod 755 "$work"
pgdata="$work/pgdata"
bindir=""

as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "${BENCH_OS_USER:-pgdev}" -- "$@"
	else
		"$@"
	fi
}

cleanup() {
	if [ -n "$bindir" ] && [ -f "$pgdata/postmaster.pid" ]; then
		as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "== maxsim benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. C kernels (and the data files for the other stages)
cc -O2 -std=gnu11 -Wall -fopenmp -I"$root/src/engine" -o "$work/maxsim_bench" \
	"$here/maxsim_bench.c" "$root/src/engine/maxsim_kernels.c" \
	"$root/src/engine/maxsim_screen.c" "$root/src/engine/maxsim_compact.c" \
	"$root/src/engine/gemm_amx.c" "$root/src/engine/gemm_bf16.c" -lm
nice "$work/maxsim_bench" "$work" "$ndocs" > "$work/results.txt"

# 2. numpy, one BLAS thread; OPENBLAS_CORETYPE/L2_SIZE (set on some machines
# for old OpenBLAS builds) would pick a slower kernel, so unset both here only.
( unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
  OPENBLAS_NUM_THREADS=1 nice /usr/bin/python3 "$here/maxsim_numpy.py" "$work" "$npool" ) >> "$work/results.txt"

# 4. SQL over the same documents
if [ "${SKIP_SQL:-0}" != 1 ]; then
	bindir=$("${PG_CONFIG:-pg_config}" --bindir)
	mkdir -p "$pgdata"
	[ "$(id -u)" = 0 ] && chown "${BENCH_OS_USER:-pgdev}" "$pgdata" "$work"
	as_pg "$bindir/initdb" -D "$pgdata" -A trust -U bench >/dev/null
	as_pg "$bindir/pg_ctl" -D "$pgdata" -l "$work/pg.log" -w \
		-o "-p $port -k $work -c listen_addresses= -c shared_buffers=1280MB -c max_parallel_workers_per_gather=0 -c jit=off" \
		start >/dev/null
	psql=("$bindir/psql" -X -q -At -h "$work" -p "$port" -U bench -d postgres -v ON_ERROR_STOP=1)
	"${psql[@]}" -c "CREATE EXTENSION colpali" \
		-c "CREATE TABLE t (id int, emb multivector(128))" \
		-c "\\copy t FROM '$work/pages.copy' (FORMAT binary)" \
		-c "CREATE TABLE qt (q multivector(128))" \
		-c "ANALYZE t"
	"${psql[@]}" -v q="$(cat "$work/q32.txt")" <<<"INSERT INTO qt VALUES (:'q');"
	topq="SELECT id FROM t ORDER BY emb <#> (SELECT q FROM qt) LIMIT 10"
	oneq="SELECT id FROM t ORDER BY emb <#> (SELECT (q::real[])[1:1][1:128]::multivector FROM qt) LIMIT 10"
	echo "RESULT sql_top10 $("${psql[@]}" -c "SELECT string_agg(id::text, ',') FROM ($topq) s")" >> "$work/results.txt"
	echo "RESULT sql_kernel $("${psql[@]}" -c "SELECT maxsim_kernel()")" >> "$work/results.txt"
	# One backend runs each query once to warm up, then 5 times; its CPU time
	# (utime + stime from /proc, 10 ms ticks) is read between runs, as the
	# kernels' thread CPU time is (the machine may be shared).
	coproc PSQL { "${psql[@]}" -f -; }
	echo "SELECT pg_backend_pid();" >&"${PSQL[1]}"
	read -r -u "${PSQL[0]}" pid
	hz=$(getconf CLK_TCK)
	cpu_ms() { awk -v hz="$hz" '{ printf "%.0f", ($14 + $15) * 1000 / hz }' "/proc/$pid/stat"; }
	run_best() {	# prints the best CPU ms and the best wall ms of 5 runs
		local best=999999999 bestw=999999999 i t0 w0 t w line
		echo "SELECT string_agg(id::text, ',') FROM ($1) s;" >&"${PSQL[1]}"
		read -r -u "${PSQL[0]}" line
		for i in 1 2 3 4 5; do
			t0=$(cpu_ms); w0=$(date +%s%N)
			echo "SELECT string_agg(id::text, ',') FROM ($1) s;" >&"${PSQL[1]}"
			read -r -u "${PSQL[0]}" line
			t=$(( $(cpu_ms) - t0 )); w=$(( ($(date +%s%N) - w0) / 1000000 ))
			[ "$t" -lt "$best" ] && best=$t
			[ "$w" -lt "$bestw" ] && bestw=$w
		done
		echo "$best $bestw"
	}
	read -r c w <<<"$(run_best "$topq")"
	echo "RESULT sql_q32_ms $c" >> "$work/results.txt"
	echo "RESULT sql_q32_wall_ms $w" >> "$work/results.txt"
	read -r c w <<<"$(run_best "$oneq")"
	echo "RESULT sql_q1_ms $c" >> "$work/results.txt"
	echo "RESULT sql_q1_wall_ms $w" >> "$work/results.txt"
	echo '\q' >&"${PSQL[1]}"
	wait "$PSQL_PID" 2>/dev/null || true
fi

/usr/bin/python3 "$here/summary.py" "$work/results.txt" "$ndocs" "$npool"
