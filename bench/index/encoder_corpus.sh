#!/usr/bin/env bash
# mvivf on real encoder output:
#   bench/index/encoder_corpus.sh [NPAGES=500] [NQUERIES=100] [MODEL=test/fixtures/models/demo]
# Renders NPAGES document pages and NQUERIES questions about them
# (render_pages.py, Pillow), encodes both with the engine (colpali-encode,
# the same code as colpali_embed_images / colpali_query), loads them into
# database mvc_encoder_NPAGES, computes the ground truth with the exact scan
# and prints recall@10 and latency of the index at its defaults and at a few
# other settings, side by side with the exact scan.  With the demo model (a
# toy at 56 px input) a page is 16 image rows + 6 prompt rows = 22 rows of
# 128: the shape of real output at a much smaller row count per page.
# Environment: PSQL, PGHOST/PGPORT as usual; ENCODE (colpali-encode, default
# from PATH or next to psql), GEN_SEED (42), KEEP=1 keeps the database and
# WORK=DIR the rendered pages (default: a temporary directory, removed);
# REUSE=1 measures a kept database again instead of rendering and loading.
set -euo pipefail
N=${1:-500}
NQ=${2:-100}
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=${3:-$HERE/../../test/fixtures/models/demo}
SEED=${GEN_SEED:-42}
PSQL=${PSQL:-psql}
if [ -z "${ENCODE:-}" ]; then
	ENCODE=$(command -v colpali-encode || echo "$(dirname "$(command -v "$PSQL")")/colpali-encode")
fi
PYTHON=${PYTHON:-/usr/bin/python3}
DB=mvc_encoder_$N
if [ -n "${WORK:-}" ]; then
	mkdir -p "$WORK"
else
	WORK=$(mktemp -d /tmp/mvivf-encoder.XXXXXX)
	trap 'rm -rf "$WORK"' EXIT
fi

Q="$PSQL -X -q -At -d $DB -v ON_ERROR_STOP=1"
t0=$(date +%s.%N)
t1=$t0
t2=$t0
if [ "${REUSE:-0}" = 1 ] && [ "$($PSQL -X -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 1 ]; then
	# a kept database (KEEP=1): measure the index again on the same pages
	$Q -c "DROP INDEX IF EXISTS docs_idx"
else
	"$PYTHON" "$HERE/render_pages.py" "$WORK" "$N" "$NQ" "$SEED"
	t1=$(date +%s.%N)

	# encode in batches: one colpali-encode run per 50 pages, one line per input
	: >"$WORK/docs.copy"
	cut -f1,2 "$WORK/pages.tsv" | split -l 50 - "$WORK/batch."
	for b in "$WORK"/batch.*; do
		args=()
		while IFS=$'\t' read -r id file; do args+=(--image "$WORK/$file"); done <"$b"
		"$ENCODE" --model "$MODEL" --threads 1 "${args[@]}" | paste <(cut -f1 "$b") - >>"$WORK/docs.copy"
		rm "$b"
	done
	args=()
	while IFS=$'\t' read -r qid target text; do args+=(--query "$text"); done <"$WORK/queries.tsv"
	"$ENCODE" --model "$MODEL" --threads 1 "${args[@]}" | paste <(cut -f1,2 "$WORK/queries.tsv") - >"$WORK/queries.copy"
	t2=$(date +%s.%N)

	$PSQL -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
	$Q -c "CREATE EXTENSION colpali" \
	   -c "CREATE TABLE docs (id int, emb multivector)" \
	   -c "ALTER TABLE docs ALTER emb SET STORAGE EXTERNAL" \
	   -c "CREATE TABLE queries (qid int, target int, q multivector)" \
	   -c "\\copy docs FROM '$WORK/docs.copy'" \
	   -c "\\copy queries FROM '$WORK/queries.copy'" \
	   -c "VACUUM ANALYZE docs"
fi
$Q -c "SET client_min_messages = warning" -f "$HERE/measure.sql" >/dev/null

echo "== mvivf on real encoder output: ${N} rendered pages, ${NQ} queries, seed ${SEED}, model $(basename "$MODEL"); $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
if [ "$t1" = "$t0" ]; then
	echo "pages and queries of the kept database (REUSE=1)"
else
	printf 'rendered in %.1f s, encoded in %.1f s (pages and queries, one thread)\n' \
		"$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)"
fi
$Q -c "SELECT 'rows per page: ' || min(num_vectors(emb)) || '-' || max(num_vectors(emb)) || ' (avg ' || round(avg(num_vectors(emb)), 1) || '), rows per query: ' || (SELECT min(num_vectors(q)) || '-' || max(num_vectors(q)) FROM queries) || ', dim ' || (SELECT dims(emb) FROM docs LIMIT 1) FROM docs"
echo "(exact = ORDER BY emb <#> q LIMIT 10 with index scans off; index = defaults, each query's first run in a fresh session; ratio = exact p50 / index p50;"
echo " target@10 = share of queries whose page is in the exact top 10; r20/r80 = recall at mvivf.rerank 20/80)"
printf '%-9s %9s %8s %8s %8s %8s %8s %6s %7s %7s %7s\n' profile target@10 build_s B/token exact_ms recall index_ms ratio r20 r80 p50_80
build=$($Q <<'SQL' | tr '\n' ' '
SET client_min_messages = warning;
SET maintenance_work_mem = '1GB';
SELECT mvb_truth() \g /dev/null
SELECT round(avg((q.target = ANY (t.ids))::int)::numeric, 3) FROM truth t JOIN queries q USING (qid);
CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
CREATE INDEX docs_idx ON docs USING mvivf (emb);
SELECT round(extract(epoch FROM clock_timestamp() - t)::numeric, 2) FROM t0;
SELECT round(pg_relation_size('docs_idx')::numeric / (SELECT sum(num_vectors(emb)) FROM docs), 1);
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2) FROM truth;
SQL
)
# the index in a fresh session, each query's first run (as corpora.sh)
index=$($Q <<'SQL' | tr '\n' ' '
SET client_min_messages = warning;
SELECT round(recall::numeric, 3), round(p50_ms::numeric, 2) FROM mvb_run();
SET mvivf.rerank = 20;
SELECT round(recall::numeric, 3) FROM mvb_run();
SET mvivf.rerank = 80;
SELECT round(recall::numeric, 3), round(p50_ms::numeric, 2) FROM mvb_run();
SQL
)
echo "$build $index" | awk -F'[ |]+' '{ printf "%-9s %9.3f %8.2f %8.1f %8.2f %8.3f %8.2f %6.1f %7.3f %7.3f %7.2f\n", "encoder", $1, $2, $3, $4, $5, $6, $4 / $6, $7, $8, $9 }'
[ "${KEEP:-0}" = 1 ] || $PSQL -X -q -d postgres -c "DROP DATABASE $DB"
