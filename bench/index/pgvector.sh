#!/usr/bin/env bash
# mvivf against pgvector's token-HNSW pattern, side by side on one server,
# as recall/latency curves per corpus shape:
#
#   bench/index/pgvector.sh [NDOCS=1000] [NQUERIES=30] [PROFILES="hard own"]
#
# The pattern users build on pgvector today: one row per token with an HNSW
# index (m 16, ef_construction 64, inner product); per query, the k' nearest
# tokens of each query row, the pages they belong to, and those pages
# reranked by exact MaxSim.  The rerank here is colpali's exact <#> on the
# multivector column (a pure-SQL MaxSim over vector[] costs about 2.4 ms a
# page), so the comparison is one of first stages: the same exact answer from
# candidates found either way.  Curves: pgvector over k' / ef_search, mvivf
# at its defaults and with mvivf.max_rerank capping the depth; the exact scan
# at recall 1.
#
# It needs a server where both colpali and pgvector (with HNSW) can be
# created: PGHOST/PGPORT as usual, or SERVER_DIR=DIR to fetch PostgreSQL 18.6
# with pgvector 0.8.1 (tools/other-pg-versions.sh, pinned, from PyPI), build
# colpali into it and run a throwaway cluster there (shared_buffers 4GB).
# Latencies: each setting in a fresh session, p50 of the queries' first run
# (first) and of the same queries again in that session (again).  Lines
# starting "curve" feed bench/index/plot_curves.py.  KEEP=1 keeps the
# databases; GEN_SEED as in corpora.sh.
set -euo pipefail
N=${1:-1000}
NQ=${2:-30}
PROFILES=${3:-hard own}
SEED=${GEN_SEED:-42}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
GEN=${GEN:-/tmp/mvivf-gen}
cc -O2 -o "$GEN" "$HERE/gen.c" -lm
. "$HERE/profiles.sh"

if [ -n "${SERVER_DIR:-}" ]; then
	(cd "$TOP" && NO_REGRESS=1 tools/other-pg-versions.sh "$SERVER_DIR" 18)
	BIN=$SERVER_DIR/pg18/server/pgserver/pginstall/bin
	port=$((17432 + RANDOM % 1000))
	rm -rf "$SERVER_DIR/bench-cluster"
	eval "$(PGBIN=$BIN "$TOP/tools/throwaway-cluster.sh" start "$SERVER_DIR/bench-cluster" "$port" \
		"shared_buffers = '4GB'" "maintenance_work_mem = '4GB'" "max_parallel_maintenance_workers = 1" \
		"jit = off" "work_mem = '64MB'")"
	trap 'PGBIN=$BIN "$TOP/tools/throwaway-cluster.sh" stop "$SERVER_DIR/bench-cluster"' EXIT
	PSQL=$BIN/psql
else
	PSQL=${PSQL:-psql}
fi

echo "== mvivf and pgvector token HNSW on ${N} pages x 1030 x 128, ${NQ} queries, seed ${SEED};" \
	"$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $($PSQL -X -At -d postgres -c 'SELECT version()' | cut -d' ' -f1-2)," \
	"shared_buffers $($PSQL -X -At -d postgres -c 'SHOW shared_buffers')"
echo "(per setting, a fresh session: p50 of each query's first run and of the same queries again; docs = mean"
echo " pages reranked exactly per query; build = index build seconds, size = index MB)"
printf 'curve %-8s %-8s %-22s %7s %9s %9s %8s\n' profile method setting recall first_ms again_ms docs

for p in $PROFILES; do
	DB=mvpg_${p//-/_}_$N
	Q="$PSQL -X -q -At -d $DB -v ON_ERROR_STOP=1"
	$PSQL -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
	$Q -c "CREATE EXTENSION colpali" -c "CREATE EXTENSION vector" \
	   -c "CREATE TABLE docs (id int, emb multivector)" \
	   -c "ALTER TABLE docs ALTER emb SET STORAGE EXTERNAL" \
	   -c "CREATE TABLE queries (qid int, target int, q multivector)"
	env $(profile_env "$p") "$GEN" docs "$N" "$SEED" | $Q -c "COPY docs FROM STDIN (FORMAT binary)"
	env $(profile_env "$p") "$GEN" queries "$N" "$NQ" "$SEED" | $Q -c "COPY queries FROM STDIN (FORMAT binary)"
	$Q -c "VACUUM ANALYZE docs" -c "SET client_min_messages = warning" -f "$HERE/measure.sql" >/dev/null
	$Q -f "$HERE/pgvector.sql" >/dev/null
	exact=$($Q -c "SET client_min_messages = warning" -c "SELECT mvb_truth()" \
		-c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM truth" | tail -n 1)
	printf 'curve %-8s %-8s %-22s %7.3f %9.1f %9.1f %8d\n' "$p" exact seqscan 1 "$exact" "$exact" "$N"

	# mvivf: defaults, then the depth capped
	build=$($Q -c "SET maintenance_work_mem = '1GB'" -c "SET client_min_messages = warning" \
		-c "CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t" -c "CREATE INDEX docs_idx ON docs USING mvivf (emb)" \
		-c "SELECT round(extract(epoch FROM clock_timestamp() - t)::numeric, 1) || ' s, ' || round(pg_relation_size('docs_idx') / 1e6) || ' MB' FROM t0")
	echo "# $p mvivf build: $build"
	for cap in 0 80 40 20 10; do
		r=$($Q <<SQL | tr '\n' ' '
SET client_min_messages = warning;
SET mvivf.max_rerank = $cap;
SELECT round(recall::numeric, 3), round(p50_ms::numeric, 1) FROM mvb_run();
SELECT round(p50_ms::numeric, 1) FROM mvb_run();
SELECT round(reranked::numeric) FROM mvb_depth();
SQL
)
		set -- $(echo "$r" | tr '|' ' ')
		[ "$cap" = 0 ] && s=defaults || s="max_rerank=$cap"
		printf 'curve %-8s %-8s %-22s %7.3f %9.1f %9.1f %8d\n' "$p" mvivf "$s" "$1" "$2" "$3" "$4"
	done
	$Q -c "DROP INDEX docs_idx"

	# pgvector: the token table, its HNSW index, then k' / ef_search
	build=$($Q <<'SQL'
SET client_min_messages = warning;
SET maintenance_work_mem = '4GB';
SELECT pgv_load_tokens();
CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
CREATE INDEX tokens_hnsw ON tokens USING hnsw (embedding vector_ip_ops) WITH (m = 16, ef_construction = 64);
SELECT round(extract(epoch FROM clock_timestamp() - t)::numeric, 1) || ' s, ' || round(pg_relation_size('tokens_hnsw') / 1e6) || ' MB' FROM t0;
SQL
)
	echo "# $p pgvector HNSW build: $(echo "$build" | tail -n 1)"
	for s in "10 40" "20 40" "40 80" "80 160" "160 320"; do
		set -- $s
		r=$($Q <<SQL | tr '\n' ' '
SET client_min_messages = warning;
SET hnsw.ef_search = $2;
SELECT round(recall::numeric, 3), round(p50_ms::numeric, 1), round(docs::numeric) FROM pgv_run($1);
SELECT round(p50_ms::numeric, 1) FROM pgv_run($1);
SQL
)
		set -- $(echo "$r" | tr '|' ' ') "$1" "$2"
		printf 'curve %-8s %-8s %-22s %7.3f %9.1f %9.1f %8d\n' "$p" pgvector "k'=$5,ef=$6" "$1" "$2" "$4" "$3"
	done
	[ "${KEEP:-0}" = 1 ] || $PSQL -X -q -d postgres -c "DROP DATABASE $DB"
done
