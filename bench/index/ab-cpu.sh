#!/usr/bin/env bash
# Two or more builds of the extension's library on one kept corpus
# (corpora.sh with KEEP=1), alternating, without rebuilding the index (for
# changes that keep the index format):
#   bench/index/ab-cpu.sh DB ROUNDS REPS LIB...
# Per round and library: the library is swapped into PostgreSQL's library
# directory (new sessions load it), then one session runs mvb_run() once to
# warm up, measures recall@10 and p50 with one more run, and counts the
# backend's CPU time (user + system, /proc/PID/stat, 1/100 s) over REPS
# further runs of all queries.  The CPU time is what to compare on a machine
# shared with other work: wall times there move with the neighbours' load.
# Swapping a library under a running server is for a private benchmark
# server only.  Environment: PSQL, PG_CONFIG, PGHOST/PGPORT as usual.
set -euo pipefail
DB=${1:?database}
ROUNDS=${2:?rounds}
REPS=${3:?runs per measurement}
shift 3
PSQL=${PSQL:-psql}
LIBDIR=$(${PG_CONFIG:-pg_config} --pkglibdir)
PIDFILE=$(mktemp)
trap 'rm -f "$PIDFILE"' EXIT
NQ=$($PSQL -X -q -At -d "$DB" -c "SELECT count(*) FROM queries")
echo "== $DB: libraries $*; $ROUNDS rounds, CPU over $REPS x $NQ queries; $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
for r in $(seq "$ROUNDS"); do
	line="round $r:"
	for lib in "$@"; do
		cp "$lib" "$LIBDIR/colpali.so.tmp" && mv -f "$LIBDIR/colpali.so.tmp" "$LIBDIR/colpali.so"
		out=$($PSQL -X -q -At -d "$DB" -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
\o $PIDFILE
SELECT pg_backend_pid();
\o
SELECT * FROM mvb_run() \g /dev/null
SELECT 'P ' || round(recall::numeric, 3) || ' ' || round(p50_ms::numeric, 1) FROM mvb_run();
\! awk '{print "T0", \$14 + \$15}' /proc/\$(cat $PIDFILE)/stat
DO \$\$ BEGIN FOR i IN 1..$REPS LOOP PERFORM mvb_run(); END LOOP; END \$\$;
\! awk '{print "T1", \$14 + \$15}' /proc/\$(cat $PIDFILE)/stat
SQL
)
		p=$(echo "$out" | awk '/^P /{print $2 "/" $3}')
		t0=$(echo "$out" | awk '/^T0/{print $2}')
		t1=$(echo "$out" | awk '/^T1/{print $2}')
		cpu=$(awk -v a="$t0" -v b="$t1" -v n=$((REPS * NQ)) 'BEGIN { printf "%.1f", (b - a) * 10 / n }')
		line="$line $(basename "$lib" .so): recall/p50 $p ms, CPU $cpu ms/query;"
	done
	echo "$line"
done
