#!/usr/bin/env bash
# Token pooling benchmark, one command:
#   bench/pool/run.sh [NDOCS=200] [NQUERIES=50]
# Environment: PSQL (default "psql"), PGHOST/PGPORT as usual, GEN_SEED (42);
# POOL_REF_PYTHON: a Python with colpali-engine 0.3.18 (the venv of
# test/fixtures/requirements-qwen.txt) to time its pooler on the same page.
#
# 1. Pooling speed: src/engine/token_pool.c on a 1030 x 128 page (the
#    real-shape fixture page) at factor 3, CPU time; colpali-engine's pooler on
#    the same page when POOL_REF_PYTHON is set; colpali_pool in the server on
#    the synthetic pages (ms per page, including detoast and result).
# 2. Retrieval over pooled pages: the synthetic ColPali-like corpus of
#    bench/index (gen.c), pooled x2 and x3 with colpali_pool; recall@10 of the
#    exact MaxSim top 10 over pooled pages against the exact top 10 over the
#    full pages, and the exact-scan p50 of each, side by side.
# 3. mvivf over pooled pages with varying row counts (factor 2, 3 or 4 by
#    document): the index builds, and every answer comes in exact order of the
#    pooled column's MaxSim; recall@10 of the index against the exact scan of
#    the same column.
set -euo pipefail
N=${1:-200}
NQ=${2:-50}
SEED=${GEN_SEED:-42}
PSQL=${PSQL:-psql}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DB=poolbench_$N
BIN=${POOL_BENCH_BIN:-/tmp/pool-bench-bin}
mkdir -p "$BIN"

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. pooling speed
cc -O2 -ffp-contract=off -I"$ROOT/src/engine" -o "$BIN/pool_bench" "$HERE/pool_bench.c" \
	"$ROOT/src/engine/token_pool.c" "$ROOT/src/engine/cp_status.c" -lm
PAGE="$ROOT/test/fixtures/goldens/realshape/page.page_text_png.f32"
echo "== pooling one 1030 x 128 page (test/fixtures realshape page), factor 3"
"$BIN/pool_bench" "$PAGE" 1030 128 3 7
if [ -n "${POOL_REF_PYTHON:-}" ]; then
	"$POOL_REF_PYTHON" - "$PAGE" <<'PY'
import sys, time, warnings
import numpy as np, torch
from colpali_engine.compression.token_pooling import HierarchicalTokenPooler
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
x = torch.from_numpy(np.fromfile(sys.argv[1], dtype="<f4").reshape(1030, 128))
p = HierarchicalTokenPooler()
cpu = []
for _ in range(5):
    t = time.thread_time(); out = p.pool_embeddings([x], pool_factor=3); cpu.append((time.thread_time() - t) * 1e3)
cpu.sort()
print(f"colpali_engine_pool rows 1030 dim 128 factor 3 pooled {out[0].shape[0]} cpu_median_ms {cpu[2]:.1f} cpu_best_ms {cpu[0]:.1f}")
PY
fi

# 2. and 3. in the server
cc -O2 -o "$BIN/gen" "$ROOT/bench/index/gen.c" -lm
$PSQL -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
Q="$PSQL -X -q -d $DB -v ON_ERROR_STOP=1"
$Q -c "CREATE EXTENSION colpali" \
   -c "CREATE TABLE docs (id int, emb multivector)" \
   -c "ALTER TABLE docs ALTER emb SET STORAGE EXTERNAL" \
   -c "CREATE TABLE queries (qid int, target int, q multivector)"
echo "== corpus: $N docs x 1030 x 128 (bench/index/gen.c), $NQ queries, seed $SEED"
"$BIN/gen" docs "$N" "$SEED" | $Q -c "COPY docs FROM STDIN (FORMAT binary)"
"$BIN/gen" queries "$N" "$NQ" "$SEED" | $Q -c "COPY queries FROM STDIN (FORMAT binary)"
$Q -f "$HERE/measure.sql"
$Q <<'SQL'
SET jit = off;
\echo == colpali_pool in the server: ms per page (detoast, pooling, result)
CREATE TEMP TABLE pool_time (f int, ms float8);
DO $$
DECLARE f int; t0 timestamptz; c0 float8;
BEGIN
	FOREACH f IN ARRAY ARRAY[2, 3] LOOP
		EXECUTE format('CREATE TABLE docs_p%s (id int, emb multivector)', f);
		EXECUTE format('ALTER TABLE docs_p%s ALTER emb SET STORAGE EXTERNAL', f);
		t0 := clock_timestamp();
		EXECUTE format('INSERT INTO docs_p%s SELECT id, colpali_pool(emb, %s) FROM docs', f, f);
		INSERT INTO pool_time VALUES (f, extract(epoch FROM clock_timestamp() - t0) * 1000
			/ (SELECT count(*) FROM docs));
	END LOOP;
END $$;
SELECT f AS factor, round(ms::numeric, 1) AS ms_per_page FROM pool_time ORDER BY f;
-- varying row counts: factor 2, 3 or 4 by document
CREATE TABLE docs_mix (id int, emb multivector);
ALTER TABLE docs_mix ALTER emb SET STORAGE EXTERNAL;
INSERT INTO docs_mix SELECT id, emb FROM docs_p2 WHERE id % 3 = 0;
INSERT INTO docs_mix SELECT id, emb FROM docs_p3 WHERE id % 3 = 1;
INSERT INTO docs_mix SELECT id, colpali_pool(emb, 4) FROM docs WHERE id % 3 = 2;
VACUUM ANALYZE docs; VACUUM ANALYZE docs_p2; VACUUM ANALYZE docs_p3; VACUUM ANALYZE docs_mix;
SELECT t AS tbl, min(num_vectors(emb)) AS min_rows, max(num_vectors(emb)) AS max_rows,
	round(avg(num_vectors(emb)), 1) AS avg_rows, pg_size_pretty(pg_table_size(t::regclass)) AS heap_toast
FROM (SELECT 'docs' AS t, emb FROM docs UNION ALL SELECT 'docs_p2', emb FROM docs_p2
	  UNION ALL SELECT 'docs_p3', emb FROM docs_p3 UNION ALL SELECT 'docs_mix', emb FROM docs_mix) s
GROUP BY t ORDER BY max(num_vectors(emb)) DESC, t;

\echo == exact MaxSim top 10 over pooled pages vs over the full pages
SELECT pb_exact('docs'); SELECT pb_exact('docs_p2'); SELECT pb_exact('docs_p3'); SELECT pb_exact('docs_mix');
SELECT e.tbl, round(avg(pb_overlap(e.ids, f.ids))::numeric, 3) AS recall_at_10_vs_full,
	round(percentile_cont(0.5) WITHIN GROUP (ORDER BY e.ms)::numeric, 1) AS exact_p50_ms,
	round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM exact WHERE tbl = 'docs')::numeric
		/ percentile_cont(0.5) WITHIN GROUP (ORDER BY e.ms)::numeric, 2) AS scan_speedup
FROM exact e JOIN exact f ON f.tbl = 'docs' AND f.qid = e.qid
GROUP BY e.tbl ORDER BY e.tbl = 'docs' DESC, e.tbl;

\echo == mvivf over pooled pages (varying row counts, and x3)
\timing on
SET maintenance_work_mem = '1GB';
CREATE INDEX docs_mix_idx ON docs_mix USING mvivf (emb);
CREATE INDEX docs_p3_idx ON docs_p3 USING mvivf (emb);
\timing off
SET mvivf.probes = 64; SET mvivf.rerank = 80; SET mvivf.candidates = 100;
SELECT pb_indexed('docs_mix'); SELECT pb_indexed('docs_p3');
SELECT i.tbl, count(*) AS queries, bool_and(i.in_order) AS exact_order,
	round(avg(pb_overlap(i.ids, e.ids))::numeric, 3) AS recall_at_10_vs_exact_same_column,
	round(percentile_cont(0.5) WITHIN GROUP (ORDER BY i.ms)::numeric, 1) AS index_p50_ms
FROM indexed i JOIN exact e USING (tbl, qid) GROUP BY i.tbl ORDER BY i.tbl;
SQL
