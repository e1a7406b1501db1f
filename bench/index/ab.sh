#!/usr/bin/env bash
# Two builds of the extension's library side by side on corpora kept by
# corpora.sh (KEEP=1):
#   bench/index/ab.sh BASE.so NEW.so [PROFILES="hard own rows"] [NDOCS=1000]
# For each profile: the exact scan's p50 (mvb_truth, with NEW loaded: it
# reads both index formats), then for each entry of LIBS (default "base
# new"; "new24" = NEW with mvivf.rerank = 24, same index) the library is
# swapped into PostgreSQL's library directory (new sessions load it), the
# index is rebuilt, and recall@10, p50, the adaptive depth and the mvivf
# EXPLAIN counters (mean of 10 queries) are printed, with cpu_ms: the
# backend's CPU time (user + system, /proc/PID/stat) per query over the
# run that gives p50, which moves less than wall time with the neighbours'
# load on a shared machine.  LIBS may repeat entries ("base new base new")
# to alternate the libraries.  Swapping a library
# under a running server is for a private benchmark server only.
# Environment: PSQL, PG_CONFIG, PGHOST/PGPORT as usual.
set -euo pipefail
BASE=${1:?base library}
NEW=${2:?new library}
PROFILES=${3:-hard own rows}
N=${4:-1000}
PSQL=${PSQL:-psql}
PIDFILE=$(mktemp)
trap 'rm -f "$PIDFILE"' EXIT
LIBDIR=$(${PG_CONFIG:-pg_config} --pkglibdir)
swap() { cp "$1" "$LIBDIR/colpali.so.tmp" && mv -f "$LIBDIR/colpali.so.tmp" "$LIBDIR/colpali.so"; }
echo "== two libraries on ${N} pages per profile, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores; ratio = exact p50 / index p50"
printf '%-9s %-5s %8s %8s %8s %8s %8s %7s %8s %8s %8s %8s %8s %7s\n' profile lib build_s B/token exact_ms recall index_ms ratio refined reranked exact_ci probed postings cpu_ms
for p in $PROFILES; do
	DB=mvc_${p//-/_}_$N
	Q="$PSQL -X -q -At -d $DB -v ON_ERROR_STOP=1"
	swap "$NEW"
	NQ=$($Q -c "SELECT count(*) FROM queries")
	ex=$($Q -c "SET client_min_messages=warning" -c "SELECT mvb_truth()" \
		-c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM truth" | tail -1)
	for lib in ${LIBS:-base new}; do
		if [ "$lib" = base ]; then swap "$BASE"; else swap "$NEW"; fi
		EXTRA=""
		REBUILD=1
		if [ "$lib" = new24 ]; then EXTRA="SET mvivf.rerank = 24;"; REBUILD=0; fi
		$Q <<SQL | tr '\n' ' ' | awk -F'[ |]+' -v p="$p" -v l="$lib" -v ex="$ex" -v nq="$NQ" '{ printf "%-9s %-5s %8.1f %8.1f %8.1f %8.3f %8.1f %7.1f %8.0f %8.0f %8s %8s %8s %7.1f\n", p, l, $1, $2, ex, $5, $6, ex / $6, $7, $8, $9, $10, $11, ($4 - $3) * 10 / nq }'
SET client_min_messages = warning;
SET maintenance_work_mem = '1GB';
$EXTRA
CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
SELECT CASE WHEN $REBUILD = 1 THEN 'DROP INDEX IF EXISTS docs_idx' ELSE 'SET client_min_messages = warning' END \gexec
SELECT CASE WHEN $REBUILD = 1 THEN 'CREATE INDEX docs_idx ON docs USING mvivf (emb)' ELSE 'SET client_min_messages = warning' END \gexec
SELECT round(extract(epoch FROM clock_timestamp() - t)::numeric, 1) FROM t0;
SELECT round(pg_relation_size('docs_idx')::numeric / (SELECT sum(num_vectors(emb)) FROM docs), 1);
SELECT * FROM mvb_run() \g /dev/null
\o $PIDFILE
SELECT pg_backend_pid();
\o
\! awk '{print \$14 + \$15}' /proc/\$(cat $PIDFILE)/stat
SELECT round(recall::numeric, 3) AS r, round(p50_ms::numeric, 1) AS p FROM mvb_run() \gset
\! awk '{print \$14 + \$15}' /proc/\$(cat $PIDFILE)/stat
SELECT :r, :p;
SELECT round(refined::numeric), round(reranked::numeric) FROM mvb_depth();
CREATE FUNCTION pg_temp.counters(OUT e float8, OUT pr float8, OUT po float8) LANGUAGE plpgsql AS \$\$
DECLARE r record; l text; m text[]; n int := 0;
BEGIN
	e := 0; pr := 0; po := 0;
	SET LOCAL enable_seqscan = off;
	FOR r IN SELECT q FROM queries ORDER BY qid LIMIT 10 LOOP
		FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id FROM docs ORDER BY emb <#> \$1 LIMIT 10' USING r.q LOOP
			m := regexp_match(l, 'probed=(\d+) postings=(\d+) exact=(\d+)');
			IF m IS NOT NULL THEN pr := pr + m[1]::float8; po := po + m[2]::float8; e := e + m[3]::float8; n := n + 1; END IF;
		END LOOP;
	END LOOP;
	IF n = 0 THEN e := NULL; pr := NULL; po := NULL; ELSE e := round(e / n); pr := round(pr / n); po := round(po / n); END IF;
END \$\$;
SELECT coalesce(e::text, '-'), coalesce(pr::text, '-'), coalesce(po::text, '-') FROM pg_temp.counters();
SQL
	done
done
swap "$NEW"
