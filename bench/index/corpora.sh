#!/usr/bin/env bash
# mvivf on several corpus shapes, one table:
#   bench/index/corpora.sh [NDOCS=1000] [NQUERIES=50] [PROFILES="rows topics loose"]
# For each profile of bench/index/gen.c's traits: load NDOCS pages x 1030 x
# 128 and NQUERIES queries, build the index at its defaults, compute the
# ground truth with the exact scan, and measure recall@10 and latency at the
# defaults and at a few other settings.  Defaults are to be judged on the
# hardest profile, not the easiest.  Environment: PSQL, PGHOST/PGPORT as
# usual, GEN_SEED (42), KEEP=1 keeps the databases, REUSE=1 measures a kept
# database again instead of loading it.
set -euo pipefail
N=${1:-1000}
NQ=${2:-50}
PROFILES=${3:-rows topics loose own hard hard-bg hard-q hard-fam}
SEED=${GEN_SEED:-42}
PSQL=${PSQL:-psql}
HERE=$(cd "$(dirname "$0")" && pwd)
GEN=${GEN:-/tmp/mvivf-gen}
cc -O2 -o "$GEN" "$HERE/gen.c" -lm

# Profiles: the traits real ColPali pages have in different measure.
#  rows:   the original generator: 512 topics, 4 per page, 40% background rows,
#          content rows at cosine ~0.64 to their topic, query rows near rows
#          of one target page.
#  topics: content rows at cosine ~0.75 to their topic (256 topics), query rows
#          spread around the target's topic centres (cosine ~0.70), so the
#          true top pages are every page sharing topics, ranked by many
#          moderate matches.
#  own:    as topics, but 4,096 topics, so that a page's topics are nearly
#          its own: beyond the target page, the true top pages share no topic
#          with the query and rank through many moderate matches.
#  loose:  few topics (64, 6 per page), 60% background, loose content (~0.58)
#          and query rows (~0.64), 10% of query rows about unrelated topics.
#  hard:   the shape of a corpus the project did not generate: 40% background
#          rows shared by all pages, content rows at cosine ~0.75 to their
#          topic, query rows at ~0.70 to the target's topics, and topics in
#          families of 8 related ones (cosine ~0.56 between siblings), so that
#          a share of the true top 10 (column noshare) shares no topic with
#          the query and ranks through many moderate matches.
#  hard-bg: as hard, 60% background rows.
#  hard-q:  as hard, query rows looser still (~0.60 to the topic).
#  hard-fam: as hard, closer families (~0.72 between siblings): more of the
#          true top 10 share no topic with the query.
# Further shapes (not in the default list; name them in PROFILES), each the
# hard profile with one trait of real collections that bench/index/attack.sh
# checks against the ORDER BY / LIMIT contract as well:
#  colqwen: ColQwen2-like pages of 300-1,300 rows, a tenth of them 10-50 rows.
#  qshort:  queries of 1-4 rows.          qlong: 48-64 rows, a fifth repeated.
#  dups:    half the pages exact copies of 20 pages (ties at the 10th place).
#  blank:   80% of the pages one identical page of background rows.
HARD="GEN_NTOPICS=512 GEN_BG_SHARE=0.4 GEN_CONTENT_NOISE=0.88 GEN_QUERY_FROM=topic GEN_QUERY_NOISE=1.02 GEN_FAMILY_SIZE=8 GEN_FAMILY_COS=0.75"
profile_env() {
	case "$1" in
		rows) echo "" ;;
		topics) echo "GEN_NTOPICS=256 GEN_CONTENT_NOISE=0.88 GEN_QUERY_FROM=topic GEN_QUERY_NOISE=1.02" ;;
		own) echo "GEN_NTOPICS=4096 GEN_CONTENT_NOISE=0.88 GEN_QUERY_FROM=topic GEN_QUERY_NOISE=1.02" ;;
		loose) echo "GEN_NTOPICS=64 GEN_TOPICS_PER_DOC=6 GEN_BG_SHARE=0.6 GEN_CONTENT_NOISE=1.4 GEN_QUERY_FROM=topic GEN_QUERY_NOISE=1.2 GEN_QUERY_OFFTOPIC=0.1" ;;
		hard) echo "$HARD" ;;
		hard-bg) echo "$HARD GEN_BG_SHARE=0.6" ;;
		hard-q) echo "$HARD GEN_QUERY_NOISE=1.33" ;;
		hard-fam) echo "$HARD GEN_FAMILY_COS=0.85" ;;
		colqwen) echo "$HARD GEN_ROWS_MIN=300 GEN_ROWS_MAX=1300 GEN_TINY_SHARE=0.1" ;;
		qshort) echo "$HARD GEN_QROWS_MIN=1 GEN_QROWS_MAX=4" ;;
		qlong) echo "$HARD GEN_QROWS_MIN=48 GEN_QROWS_MAX=64 GEN_QUERY_REPEAT=0.2" ;;
		dups) echo "$HARD GEN_DUP_SHARE=0.5 GEN_DUP_SOURCES=20" ;;
		blank) echo "$HARD GEN_BLANK_SHARE=0.8" ;;
		*) echo "unknown profile $1" >&2; exit 2 ;;
	esac
}

SHAPE="1030 x 128"
case " $PROFILES " in *" colqwen "*) SHAPE="1030 x 128 (colqwen: 10-1,300 rows)" ;; esac
echo "== mvivf on ${N} pages x ${SHAPE}, ${NQ} queries per profile, seed ${SEED}; $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
echo "(exact = ORDER BY emb <#> q LIMIT 10 with index scans off; index = defaults; ratio = exact p50 / index p50;"
echo " noshare = share of the true top 10 sharing no topic with the query; refined/reranked = mean documents"
echo " per query at the defaults (adaptive depth); r80/p50_80 = recall and p50 with mvivf.max_rerank = 80, a fixed"
echo " depth cap close to the behaviour before the adaptive rerank)"
printf '%-9s %7s %8s %8s %8s %8s %8s %6s %8s %8s %7s %7s\n' profile noshare build_s B/token exact_ms recall index_ms ratio refined reranked r80 p50_80
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
	$Q <<'SQL' | tr '\n' ' ' | awk -F'[ |]+' -v p="$p" '{ printf "%-9s %7.3f %8.1f %8.1f %8.1f %8.3f %8.1f %6.1f %8.0f %8.0f %7.3f %7.1f\n", p, $1, $2, $3, $4, $5, $6, $4 / $6, $7, $8, $9, $10 }'
SET client_min_messages = warning;
SET maintenance_work_mem = '1GB';
SELECT mvb_truth() \g /dev/null
SELECT round(avg((NOT EXISTS (SELECT 1 FROM doctopics d, querytopics qt WHERE d.id = i AND qt.qid = t.qid AND d.topics && qt.topics))::int)::numeric, 3)
FROM truth t, unnest(t.ids) i;
CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
CREATE INDEX docs_idx ON docs USING mvivf (emb);
SELECT round(extract(epoch FROM clock_timestamp() - t)::numeric, 1) FROM t0;
SELECT round(pg_relation_size('docs_idx')::numeric / (SELECT sum(num_vectors(emb)) FROM docs), 1);
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM truth;
SELECT * FROM mvb_run() \g /dev/null
SELECT round(recall::numeric, 3), round(p50_ms::numeric, 1) FROM mvb_run();
SELECT round(refined::numeric), round(reranked::numeric) FROM mvb_depth();
SET mvivf.max_rerank = 80;
SELECT round(recall::numeric, 3), round(p50_ms::numeric, 1) FROM mvb_run();
SQL
	[ "${KEEP:-0}" = 1 ] || $PSQL -X -q -d postgres -c "DROP DATABASE $DB"
done
