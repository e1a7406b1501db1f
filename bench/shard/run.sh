#!/usr/bin/env bash
# Sharded retrieval benchmark, one command:
#   bench/shard/run.sh [DOCS_PER_SHARD=1000] [NQUERIES=30]
# Starts a coordinator, 3 shard clusters and one single node on this machine
# (tools/throwaway-cluster.sh, Unix sockets), loads the synthetic ColPali-like
# corpus of bench/index/gen.c (1030 x 128 per page): 3 x DOCS_PER_SHARD pages
# through the coordinator (COPY routed by postgres_fdw) and the same pages
# into the single node; builds the mvivf indexes (defaults), then measures the
# indexed top-10 (mvivf defaults), each phase alone:
#   single      one node holding every page
#   shardN      each shard alone, its own pages
#   parent      the coordinator's partitioned table (Merge Append, postgres_fdw)
#   topk        colpali_shard.topk (all shards at once through dblink)
# and recall@10 of single / parent / topk against the exact scan of the
# single node.  All five servers share this machine's cores.
# Environment: PG_CONFIG or PGBIN (server binaries), BENCH_DIR
# (/tmp/colpali-shard-bench), PORT0 (5710), GEN_SEED (42), KEEP=1 leaves the
# clusters running.
set -euo pipefail
N=${1:-1000}
NQ=${2:-30}
S=3
SEED=${GEN_SEED:-42}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
if [ -z "${PGBIN:-}" ]; then
	PGBIN=$(${PG_CONFIG:-pg_config} --bindir)
fi
export PGBIN
BASE=${BENCH_DIR:-/tmp/colpali-shard-bench}
PORT0=${PORT0:-5710}
GEN=${GEN:-/tmp/colpali-shard-gen}
CLUSTER="$ROOT/tools/throwaway-cluster.sh"
user=$([ "$(id -u)" -eq 0 ] && echo "${CLUSTER_USER:-colpali}" || id -un)
names=(coord)
for i in $(seq 0 $((S - 1))); do names+=("shard$i"); done
names+=(single)

stop_all() {
	[ "${KEEP:-0}" = 1 ] && return
	for n in "${names[@]}"; do "$CLUSTER" stop "$BASE/$n" 2>/dev/null || true; done
}
trap stop_all EXIT

rm -rf "$BASE"
mkdir -p "$BASE"
[ "$(id -u)" -eq 0 ] && chown "$user" "$BASE"
declare -A port
p=$PORT0
for n in "${names[@]}"; do
	port[$n]=$p
	"$CLUSTER" start "$BASE/$n" "$p" "jit = off" "shared_buffers = 256MB" >/dev/null
	p=$((p + 1))
done
conn() { echo "host=$BASE/$1 port=${port[$1]} dbname=postgres user=$user"; }
Q() { local n=$1; shift; "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$(conn "$n")" "$@"; }
QA() { local n=$1; shift; "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$(conn "$n")" "$@"; }
now() { date +%s.%N; }

cc -O2 -o "$GEN" "$ROOT/bench/index/gen.c" -lm
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== corpus: $S shards x $N pages vs one node x $((S * N)) pages, 1030 x 128 per page, $NQ queries, seed $SEED"

shards=()
for i in $(seq 0 $((S - 1))); do shards+=("$(conn "shard$i")"); done
PSQL="$PGBIN/psql" "$ROOT/tools/colpali-shard-setup" --table docs --columns 'id int NOT NULL, emb multivector(128)' \
	"$(conn coord)" "${shards[@]}" >/dev/null
Q single -c "CREATE EXTENSION colpali" -c "CREATE TABLE docs (id int PRIMARY KEY, emb multivector(128))"
for n in "${names[@]}"; do
	Q "$n" -c "CREATE TABLE queries (qid int, target int, q multivector)"
	"$GEN" queries $((S * N)) "$NQ" "$SEED" | Q "$n" -c "COPY queries FROM STDIN (FORMAT binary)"
	Q "$n" -f "$HERE/measure.sql"
done

t0=$(now)
"$GEN" docs $((S * N)) "$SEED" | Q single -c "COPY docs FROM STDIN (FORMAT binary)"
t1=$(now)
"$GEN" docs $((S * N)) "$SEED" | Q coord -c "COPY docs FROM STDIN (FORMAT binary)"
t2=$(now)
printf 'load_s single_copy_binary %.1f  coordinator_copy_routed %.1f\n' "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)"
echo "rows per shard: $(for i in $(seq 0 $((S - 1))); do QA "shard$i" -c 'SELECT count(*) FROM docs'; done | tr '\n' ' ')"

t0=$(now)
Q single -c "SET maintenance_work_mem = '1GB'" -c "CREATE INDEX ON docs USING mvivf (emb)" -c "VACUUM ANALYZE docs"
t1=$(now)
# one shard after the other, as colpali_shard.create_index does
for i in $(seq 0 $((S - 1))); do
	Q "shard$i" -c "SET maintenance_work_mem = '1GB'" -c "CREATE INDEX ON docs USING mvivf (emb)" -c "VACUUM ANALYZE docs"
done
t2=$(now)
Q coord -c "ANALYZE docs"
printf 'build_s single %.1f  three_shards_one_after_the_other %.1f\n' "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)"

TOP="SELECT array_agg(id) FROM (SELECT id FROM docs ORDER BY emb <#> \$1 LIMIT 10) s"
TOPK="SELECT array_agg(key::int ORDER BY distance, key) FROM colpali_shard.topk('docs', \$1, 10)"

echo "== plans (the query vector literal is shown as '<query>')"
short() { sed -E "s/'\[\[[^']*\]\]'/'<query>'/g"; }
qv=$(QA coord -c "SELECT q FROM queries WHERE qid = 1")
echo "-- coordinator, partitioned table (query vector as the initplan parameter \$1):"
Q coord -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM docs ORDER BY emb <#> (SELECT q FROM queries WHERE qid = 1) LIMIT 10"
remote="SELECT id, emb FROM public.docs ORDER BY (emb OPERATOR(public.<#>) '$qv') ASC NULLS LAST"
echo "-- shard0: that remote query, as postgres_fdw runs it (a cursor, no LIMIT):"
QA shard0 -c "BEGIN" -c "EXPLAIN DECLARE c CURSOR FOR $remote" -c "ROLLBACK" | short
echo "-- shard0: the same without a cursor (cursor_tuple_fraction does not apply):"
QA shard0 -c "EXPLAIN $remote" | short
echo "-- shard0: what colpali_shard.topk sends:"
QA shard0 -c "EXPLAIN SELECT id::bigint, emb OPERATOR(public.<#>) '$qv'::public.multivector FROM public.docs ORDER BY 2 LIMIT 10" | short

echo "== ground truth: exact scan of the single node"
Q single -c "SET enable_indexscan = off" -c "SELECT sb_run('exact', \$\$$TOP\$\$)" >/dev/null
echo "== warm-up, then measure (each phase alone)"
Q single -c "SELECT sb_run('warm', \$\$$TOP\$\$)" -c "SELECT sb_run('single', \$\$$TOP\$\$)" >/dev/null
for i in $(seq 0 $((S - 1))); do
	Q "shard$i" -c "SELECT sb_run('warm', \$\$$TOP\$\$)" -c "SELECT sb_run('shard$i', \$\$$TOP\$\$)" >/dev/null
done
Q coord -c "SELECT sb_run('warm', \$\$$TOP\$\$)" -c "SELECT sb_run('parent', \$\$$TOP\$\$)" >/dev/null
Q coord -c "SELECT sb_run('warm', \$\$$TOPK\$\$)" -c "SELECT sb_run('topk', \$\$$TOPK\$\$)" >/dev/null
# gather every node's runs on the coordinator
for n in single $(for i in $(seq 0 $((S - 1))); do echo "shard$i"; done); do
	Q "$n" -c "COPY (SELECT * FROM runs WHERE label <> 'warm') TO STDOUT" | Q coord -c "COPY runs FROM STDIN"
done
Q coord <<'SQL'
DELETE FROM runs WHERE label = 'warm';
\echo == latency of the indexed top-10 (ms; every query)
SELECT label, count(*) AS queries,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p95_ms
FROM runs GROUP BY label ORDER BY label;
\echo == per query: slowest shard alone, sum of the shards, and what the coordinator adds
WITH s AS (SELECT qid, max(ms) AS max_shard, sum(ms) AS sum_shards FROM runs WHERE label LIKE 'shard%' GROUP BY qid)
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s.max_shard)::numeric, 1) AS p50_slowest_shard_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s.sum_shards)::numeric, 1) AS p50_sum_of_shards_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p.ms - s.max_shard)::numeric, 1) AS p50_parent_minus_slowest_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t.ms - s.max_shard)::numeric, 1) AS p50_topk_minus_slowest_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p.ms - s.sum_shards)::numeric, 1) AS p50_parent_minus_sum_ms
FROM s JOIN runs p ON p.qid = s.qid AND p.label = 'parent' JOIN runs t ON t.qid = s.qid AND t.label = 'topk';
\echo == recall@10 against the exact scan of one node holding every page
SELECT r.label, round(avg((SELECT count(*) FROM unnest(r.ids) i WHERE i = ANY (e.ids)) / 10.0), 3) AS recall_at_10,
       round(avg((r.ids = e.ids)::int), 3) AS same_order_share
FROM runs r JOIN runs e ON e.qid = r.qid AND e.label = 'exact'
WHERE r.label IN ('single', 'parent', 'topk') GROUP BY r.label ORDER BY r.label;
\echo == parent vs topk: identical answers?
SELECT count(*) FILTER (WHERE p.ids = t.ids) AS identical, count(*) AS queries
FROM runs p JOIN runs t ON t.qid = p.qid AND t.label = 'topk' WHERE p.label = 'parent';
SQL
echo "== load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
