#!/usr/bin/env bash
# mvivf benchmark, one command:
#   bench/index/run.sh [NDOCS=1000] [NQUERIES=50]
# Environment: PSQL (default "psql"), PGHOST/PGPORT as usual, GEN_SEED (42).
# Creates database mvbench_NDOCS, loads the synthetic ColPali-like corpus
# (bench/index/gen.c, binary COPY), builds the index, computes ground truth
# with the exact scan, then prints recall@10 and latency at the defaults and
# over a settings sweep, exact-scan latency, build time, sizes, and insert
# latency / WAL per inserted row.  Everything is measured in this one run.
set -euo pipefail
N=${1:-1000}
NQ=${2:-50}
SEED=${GEN_SEED:-42}
PSQL=${PSQL:-psql}
HERE=$(cd "$(dirname "$0")" && pwd)
DB=mvbench_$N
GEN=${GEN:-/tmp/mvivf-gen}

cc -O2 -o "$GEN" "$HERE/gen.c" -lm
$PSQL -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
Q="$PSQL -X -q -d $DB -v ON_ERROR_STOP=1"
$Q -c "CREATE EXTENSION colpali" \
   -c "CREATE TABLE docs (id int, emb multivector)" \
   -c "ALTER TABLE docs ALTER emb SET STORAGE EXTERNAL" \
   -c "CREATE TABLE queries (qid int, target int, q multivector)" \
   -c "CREATE TABLE newdocs (id int, emb multivector)"
echo "== corpus: $N docs x 1030 x 128, $NQ queries, seed $SEED"
t0=$(date +%s.%N)
"$GEN" docs "$N" "$SEED" | $Q -c "COPY docs FROM STDIN (FORMAT binary)"
"$GEN" queries "$N" "$NQ" "$SEED" | $Q -c "COPY queries FROM STDIN (FORMAT binary)"
"$GEN" docs 20 $((SEED + 1)) | $Q -c "COPY newdocs FROM STDIN (FORMAT binary)"
echo "load_s $(echo "$(date +%s.%N) - $t0" | bc)"
$Q -c "VACUUM ANALYZE docs"

$Q -f "$HERE/measure.sql"
$Q <<'SQL'
\timing on
SET maintenance_work_mem = '1GB';
\echo == build
CREATE INDEX docs_idx ON docs USING mvivf (emb);
\timing off
SELECT pg_size_pretty(pg_relation_size('docs_idx')) AS index_size,
       pg_size_pretty(pg_table_size('docs')) AS heap_toast_size,
       round(100.0 * pg_relation_size('docs_idx') / pg_table_size('docs'), 2) AS index_pct_of_heap_toast;
\echo == exact scan (ground truth), then index at defaults
SELECT mvb_truth();
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS exact_p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS exact_p95_ms FROM truth;
SELECT * FROM mvb_run();  -- warm-up
SELECT 'defaults' AS setting, round(recall::numeric, 3) AS recall, round(p50_ms::numeric, 1) AS p50_ms,
       round(p95_ms::numeric, 1) AS p95_ms,
       round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM truth)::numeric / p50_ms::numeric, 1) AS speedup
FROM mvb_run();
\echo == sweep (probes x rerank; candidates = max(100, rerank))
CREATE TEMP TABLE sweep (probes int, rerank int, recall float8, p50_ms float8, p95_ms float8);
DO $$
DECLARE p int; r int; res record;
BEGIN
	FOREACH p IN ARRAY ARRAY[8, 16, 32, 64] LOOP
		FOREACH r IN ARRAY ARRAY[10, 20, 40, 80] LOOP
			PERFORM set_config('mvivf.probes', p::text, true);
			PERFORM set_config('mvivf.rerank', r::text, true);
			PERFORM set_config('mvivf.candidates', greatest(100, r)::text, true);
			SELECT * INTO res FROM mvb_run();
			INSERT INTO sweep VALUES (p, r, res.recall, res.p50_ms, res.p95_ms);
		END LOOP;
	END LOOP;
END $$;
SELECT probes, rerank, round(recall::numeric, 3) AS recall, round(p50_ms::numeric, 1) AS p50_ms,
       round(p95_ms::numeric, 1) AS p95_ms FROM sweep ORDER BY probes, rerank;
\echo == inserts: latency and WAL per row (table with the index vs the same table without)
CREATE TABLE docs_noidx (LIKE docs);
ALTER TABLE docs_noidx ALTER emb SET STORAGE EXTERNAL;
CHECKPOINT;
CREATE TEMP TABLE ins (tbl text, ms float8, wal float8);
DO $$
DECLARE r record; t0 timestamptz; l0 pg_lsn;
BEGIN
	FOR r IN SELECT id FROM newdocs ORDER BY id LOOP
		l0 := pg_current_wal_insert_lsn(); t0 := clock_timestamp();
		INSERT INTO docs SELECT 100000 + id, emb FROM newdocs WHERE id = r.id;
		INSERT INTO ins VALUES ('docs', extract(epoch FROM clock_timestamp() - t0) * 1000,
								pg_wal_lsn_diff(pg_current_wal_insert_lsn(), l0));
		l0 := pg_current_wal_insert_lsn(); t0 := clock_timestamp();
		INSERT INTO docs_noidx SELECT 100000 + id, emb FROM newdocs WHERE id = r.id;
		INSERT INTO ins VALUES ('noidx', extract(epoch FROM clock_timestamp() - t0) * 1000,
								pg_wal_lsn_diff(pg_current_wal_insert_lsn(), l0));
	END LOOP;
END $$;
SELECT tbl, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS p50_ms,
       round(max(ms)::numeric, 2) AS max_ms, round((avg(wal) / 1024)::numeric, 1) AS wal_kb_per_row
FROM ins GROUP BY tbl ORDER BY tbl;
\echo (latency of each INSERT statement inside one DO block: commit not included)
\echo == after the inserts (pending area) and after VACUUM (merge)
SELECT mvb_truth();
SELECT 'pending' AS state, round(recall::numeric, 3) AS recall, round(p50_ms::numeric, 1) AS p50_ms FROM mvb_run();
\timing on
VACUUM docs;
\timing off
SELECT 'merged' AS state, round(recall::numeric, 3) AS recall, round(p50_ms::numeric, 1) AS p50_ms FROM mvb_run();
SQL
