#!/usr/bin/env bash
# mvivf on several corpus shapes, one table:
#   bench/index/corpora.sh [NDOCS=1000] [NQUERIES=50] [PROFILES="rows topics loose"]
# For each profile of bench/index/gen.c's traits: load NDOCS pages x 1030 x
# 128 and NQUERIES queries, build the index at its defaults, compute the
# ground truth with the exact scan, and measure recall@10 and latency at the
# defaults and at a few other settings.  Defaults are to be judged on the
# hardest profile, not the easiest.  Environment: PSQL, PGHOST/PGPORT as
# usual, GEN_SEED (42), KEEP=1 keeps the databases, REUSE=1 measures a kept
# database again instead of loading it, INDEX_WITH="bits = 4" builds the
# index with those options instead of the defaults.
set -euo pipefail
N=${1:-1000}
NQ=${2:-50}
PROFILES=${3:-rows topics loose own hard hard-bg hard-q hard-fam}
SEED=${GEN_SEED:-42}
PSQL=${PSQL:-psql}
HERE=$(cd "$(dirname "$0")" && pwd)
GEN=${GEN:-/tmp/mvivf-gen}
cc -O2 -o "$GEN" "$HERE/gen.c" -lm

# Profiles (their traits and gen.c settings): profiles.sh.
. "$HERE/profiles.sh"

SHAPE="1030 x 128"
case " $PROFILES " in *" colqwen "*) SHAPE="1030 x 128 (colqwen: 10-1,300 rows)" ;; esac
WITH=${INDEX_WITH:+ WITH (${INDEX_WITH})}
echo "== mvivf${WITH} on ${N} pages x ${SHAPE}, ${NQ} queries per profile, seed ${SEED}; $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, shared_buffers $($PSQL -X -At -d postgres -c 'SHOW shared_buffers')"
echo "(exact = ORDER BY emb <#> q LIMIT 10 with index scans off; index = defaults, each query's first run in a"
echo " fresh session (no query run before in it); again = the same queries once more in that session, whose pages"
echo " the first pass left in the session's buffer hints and the CPU caches; ratio = exact p50 / index p50;"
echo " noshare = share of the true top 10 sharing no topic with the query; refined/reranked = mean documents"
echo " per query at the defaults (adaptive depth); r80/p50_80 = recall and p50 with mvivf.max_rerank = 80, a fixed"
echo " depth cap close to the behaviour before the adaptive rerank)"
printf '%-9s %7s %8s %8s %8s %8s %8s %6s %8s %8s %8s %7s %7s\n' profile noshare build_s B/token exact_ms recall index_ms ratio again_ms refined reranked r80 p50_80
for p in $PROFILES; do
	DB=mvc_${p//-/_}_$N
	Q="$PSQL -X -q -At -d $DB -v ON_ERROR_STOP=1"
	if [ "${REUSE:-0}" = 1 ] && [ "$($PSQL -X -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 1 ]; then
		# a kept database (KEEP=1) of the same profile: measure again
		$Q -c "DROP INDEX IF EXISTS docs_idx"
	else
		$PSQL -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
		$Q -c "CREATE EXTENSION colpali" \
		   -c "CREATE TABLE docs (id int, emb multivector)" \
		   -c "ALTER TABLE docs ALTER emb SET STORAGE EXTERNAL" \
		   -c "CREATE TABLE queries (qid int, target int, q multivector)" \
		   -c "CREATE TABLE doctopics (id int, topics int[])" \
		   -c "CREATE TABLE querytopics (qid int, topics int[])"
		env $(profile_env "$p") "$GEN" docs "$N" "$SEED" | $Q -c "COPY docs FROM STDIN (FORMAT binary)"
		env $(profile_env "$p") "$GEN" queries "$N" "$NQ" "$SEED" | $Q -c "COPY queries FROM STDIN (FORMAT binary)"
		env $(profile_env "$p") "$GEN" doctopics "$N" "$SEED" | $Q -c "COPY doctopics FROM STDIN"
		env $(profile_env "$p") "$GEN" querytopics "$N" "$NQ" "$SEED" | $Q -c "COPY querytopics FROM STDIN"
	fi
	$Q -c "VACUUM ANALYZE docs" -c "SET client_min_messages = warning" -f "$HERE/measure.sql" >/dev/null
	# build, ground truth, index size and the exact p50
	build=$($Q <<SQL | tr '\n' ' '
SET client_min_messages = warning;
SET maintenance_work_mem = '1GB';
SELECT mvb_truth() \g /dev/null
SELECT round(avg((NOT EXISTS (SELECT 1 FROM doctopics d, querytopics qt WHERE d.id = i AND qt.qid = t.qid AND d.topics && qt.topics))::int)::numeric, 3)
FROM truth t, unnest(t.ids) i;
CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
CREATE INDEX docs_idx ON docs USING mvivf (emb)${WITH};
SELECT round(extract(epoch FROM clock_timestamp() - t)::numeric, 1) FROM t0;
SELECT round(pg_relation_size('docs_idx')::numeric / (SELECT sum(num_vectors(emb)) FROM docs), 1);
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM truth;
SQL
)
	# the index in a fresh session: first pass (the headline), the same
	# queries again, then depth and the fixed cap
	index=$($Q <<'SQL' | tr '\n' ' '
SET client_min_messages = warning;
SELECT round(recall::numeric, 3), round(p50_ms::numeric, 1) FROM mvb_run();
SELECT round(p50_ms::numeric, 1) FROM mvb_run();
SELECT round(refined::numeric), round(reranked::numeric) FROM mvb_depth();
SET mvivf.max_rerank = 80;
SELECT * FROM mvb_run() \g /dev/null
SELECT round(recall::numeric, 3), round(p50_ms::numeric, 1) FROM mvb_run();
SQL
)
	echo "$build $index" | awk -F'[ |]+' -v p="$p" '{ printf "%-9s %7.3f %8.1f %8.1f %8.1f %8.3f %8.1f %6.1f %8.1f %8.0f %8.0f %7.3f %7.1f\n", p, $1, $2, $3, $4, $5, $6, $4 / $6, $7, $8, $9, $10, $11 }'
	[ "${KEEP:-0}" = 1 ] || $PSQL -X -q -d postgres -c "DROP DATABASE $DB"
done
