#!/usr/bin/env bash
# Insert cost of the mvivf index, one page per INSERT:
#   bench/index/insert.sh DB [NROWS=50]
# DB holds docs(id, emb) with an mvivf index (a database kept by
# KEEP=1 bench/index/corpora.sh).  Inserts NROWS copies of existing pages one
# row per statement, into docs (with the index) and into a copy of the table
# without it, and prints per page: p50 and p95 latency of the INSERT
# (measured in the server, without the commit) and the WAL it wrote
# (pg_current_wal_insert_lsn() before and after), side by side; the
# difference is the index's share.  The two tables take turns row by row
# (which one goes first alternates), so that both see the same load and the
# same cache state.  The rows are deleted again afterwards (their index
# entries stay dead until the next REINDEX, as after any delete).
set -euo pipefail
DB=${1:?database}
N=${2:-50}
PSQL=${PSQL:-psql}
$PSQL -X -q -d "$DB" -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
SET jit = off;
DROP TABLE IF EXISTS mvb_noidx, mvb_ins;
CREATE TABLE mvb_noidx (LIKE docs);
ALTER TABLE mvb_noidx ALTER emb SET STORAGE EXTERNAL;
CREATE TABLE mvb_ins (tbl text, ms float8, wal float8);
DO \$\$
DECLARE r record; t0 timestamptz; l0 pg_lsn; tbl text; k int := 0;
BEGIN
	FOR r IN SELECT id, emb FROM docs WHERE id < $N ORDER BY id LOOP
		FOREACH tbl IN ARRAY CASE WHEN k % 2 = 0 THEN ARRAY['docs', 'mvb_noidx']
								  ELSE ARRAY['mvb_noidx', 'docs'] END LOOP
			l0 := pg_current_wal_insert_lsn();
			t0 := clock_timestamp();
			EXECUTE format('INSERT INTO %I VALUES (\$1, \$2)', tbl) USING r.id + 1000000, r.emb;
			INSERT INTO mvb_ins VALUES (tbl, extract(epoch FROM clock_timestamp() - t0) * 1000,
										pg_current_wal_insert_lsn() - l0);
		END LOOP;
		k := k + 1;
	END LOOP;
END \$\$;
SELECT CASE tbl WHEN 'docs' THEN 'with mvivf' ELSE 'no index' END AS "table",
	count(*) AS rows, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p50_ms,
	round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p95_ms,
	round((avg(wal) / 1024)::numeric, 1) AS "wal_kB/page"
FROM mvb_ins GROUP BY tbl ORDER BY tbl;
-- the index's share: differences of the two tables' p50 and mean WAL, and their ratio
SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE tbl = 'docs')
			 - percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE tbl <> 'docs'))::numeric, 1)
		AS "index p50_ms",
	round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE tbl = 'docs')
		   / nullif(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE tbl <> 'docs'), 0))::numeric, 2)
		AS "p50 ratio",
	round(((avg(wal) FILTER (WHERE tbl = 'docs') - avg(wal) FILTER (WHERE tbl <> 'docs')) / 1024)::numeric, 1)
		AS "index wal_kB/page"
FROM mvb_ins;
DELETE FROM docs WHERE id >= 1000000;
DROP TABLE mvb_noidx, mvb_ins;
SQL
