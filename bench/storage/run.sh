#!/usr/bin/env bash
# Compact multivectors, one command, one run:
#   bench/storage/run.sh [NDOCS=1000] [NQUERIES=100]
# Loads NDOCS ColPali-shaped pages (1030 x 128, bench/index/gen.c with the
# "topics" traits of bench/index/corpora.sh) and NQUERIES queries (20-32
# rows) as float32, makes half and binary copies (casts), and prints for
# each storage: bytes per token (heap + TOAST + index), exact-scan p50
# (ORDER BY emb <#> q LIMIT 10, sequential), indexed p50 and recall@10
# against the float exact answer, with ratios to float.  Also: mvivf indexes
# on the half and binary columns, and the two "binary first pass,
# full-precision rerank" recipes: (1) an mvivf index on the float column
# with 1-bit codes (bits = 1, mvivf.rerank = RERANK), (2) an mvivf index on
# the binary column choosing RERANK candidates, reranked by the float
# MaxSim in SQL; binary first pass + float rerank of the best RERANK (40)
# pages by sequential scan, inline vs out-of-line storage of short binary
# values, where the float scan's time goes, and the "pooled x3" rows when
# colpali_pool(multivector, int) exists (else n/a).  The float and half exact
# scans also run with colpali.maxsim_screening = off ("unscreened": every row
# through the exact kernel; on, the default, screens rows on AMX tiles or with
# AVX512_BF16 where the CPU has them).
# From NDOCS >= 5000 on only the float exact scan, the binary rows (but the
# sequential float-query ones) and the two recipes are measured (the half and pooled copies and the diagnostics
# would take hours on a small machine).
# Then CPU time per statement (cpu_compare.py): the exact scans with
# colpali.maxsim_streaming on and off, and one-thread numpy on the same pages.
# Environment: PSQL, PGHOST/PGPORT as usual, GEN_SEED (42), RERANK (40),
# DIAG=0 skips the diagnostic rows (short binary values, float scan
# header/detoast), KEEP=1 keeps the database, SKIP_POOL=1 leaves the pooled
# rows out (pooling 1,000 pages takes minutes), CPU_COMPARE=0 skips
# cpu_compare.py (it needs python3 with numpy and psycopg, PYTHON, and the
# server on this machine).
set -euo pipefail
N=${1:-1000}
NQ=${2:-100}
K=${RERANK:-40}
DIAG=${DIAG:-1}
FULL=$([ "$N" -lt 5000 ] && echo 1 || echo 0)
SEED=${GEN_SEED:-42}
PSQL=${PSQL:-psql}
HERE=$(cd "$(dirname "$0")" && pwd)
GEN=${GEN:-/tmp/mvstorage-gen}
DB=mvstorage_$N
export GEN_NTOPICS=256 GEN_CONTENT_NOISE=0.88 GEN_QUERY_FROM=topic GEN_QUERY_NOISE=1.02

cc -O2 -o "$GEN" "$HERE/../index/gen.c" -lm
$PSQL -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
Q="$PSQL -X -q -At -d $DB -v ON_ERROR_STOP=1"
$Q -c "CREATE EXTENSION colpali" \
   -c "CREATE TABLE docs_f (id int PRIMARY KEY, emb multivector)" \
   -c "CREATE TABLE queries (qid int, target int, q multivector)"
"$GEN" docs "$N" "$SEED" | $Q -c "COPY docs_f FROM STDIN (FORMAT binary)"
"$GEN" queries "$N" "$NQ" "$SEED" | $Q -c "COPY queries FROM STDIN (FORMAT binary)"
POOL=$($Q -c "SELECT to_regprocedure('colpali_pool(multivector,integer)') IS NOT NULL")
[ "${SKIP_POOL:-0}" = 1 ] && POOL=f
$Q <<SQL
SET client_min_messages = warning;
CREATE TABLE docs_b (id int PRIMARY KEY, emb bitmultivector);
INSERT INTO docs_b SELECT id, emb FROM docs_f;
VACUUM ANALYZE;
SQL
if [ "$FULL" = 1 ]; then
	$Q <<SQL
SET client_min_messages = warning;
CREATE TABLE docs_h (id int PRIMARY KEY, emb halfmultivector);
INSERT INTO docs_h SELECT id, emb FROM docs_f;
VACUUM ANALYZE;
SQL
fi
if [ "$FULL" = 1 ] && [ "$DIAG" = 1 ]; then
	$Q <<SQL
SET client_min_messages = warning;
-- short binary values (343 rows, a third of a page) inline (main) and out of line
CREATE TABLE docs_b343 (id int PRIMARY KEY, emb bitmultivector);
INSERT INTO docs_b343 SELECT id, ((emb::real[])[1:343][1:128])::bitmultivector FROM docs_f;
CREATE TABLE docs_b343x (id int PRIMARY KEY, emb bitmultivector);
ALTER TABLE docs_b343x ALTER emb SET STORAGE external;
INSERT INTO docs_b343x SELECT * FROM docs_b343;
VACUUM ANALYZE;
SQL
fi
if [ "$POOL" = t ] && [ "$FULL" = 1 ]; then
	$Q <<SQL
SET client_min_messages = warning;
CREATE TABLE docs_p3 (id int PRIMARY KEY, emb multivector);
INSERT INTO docs_p3 SELECT id, colpali_pool(emb, 3) FROM docs_f;
CREATE TABLE docs_p3b (id int PRIMARY KEY, emb bitmultivector);
INSERT INTO docs_p3b SELECT id, emb FROM docs_p3;
VACUUM ANALYZE;
SQL
fi
$Q -f "$HERE/measure.sql" >/dev/null

echo "== compact multivectors: $N pages x 1030 x 128, $NQ queries (20-32 rows), 'topics' traits, seed $SEED; $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, maxsim kernel $($Q -c 'SELECT maxsim_kernel()'), colpali.maxsim_screening $($Q -c 'SELECT maxsim_kernel()' -c 'SHOW colpali.maxsim_screening' | tail -1) ($(if grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null; then echo 'rows screened on AMX-BF16 tiles'; elif grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then echo 'rows screened with AVX512_BF16'; else echo 'no AVX512_BF16 here: nothing is screened'; fi))"
$Q -c "SET client_min_messages = warning" -c "SELECT st_truth()" >/dev/null
idx() { $Q -c "SET client_min_messages = warning" -c "SET maintenance_work_mem = '1GB'" -c "$1"; }
T0=$(date +%s)
if [ "$FULL" = 1 ]; then
	idx "CREATE INDEX docs_f_idx ON docs_f USING mvivf (emb)"
	idx "CREATE INDEX docs_h_idx ON docs_h USING mvivf (emb)"
	[ "$POOL" = t ] && idx "CREATE INDEX docs_p3b_idx ON docs_p3b USING mvivf (emb)"
else
	idx "CREATE INDEX docs_f1_idx ON docs_f USING mvivf (emb) WITH (bits = 1)"
fi
idx "CREATE INDEX docs_b_idx ON docs_b USING mvivf (emb)"
echo "(index builds: $(( $(date +%s) - T0 )) s)"

# Every measured statement: name|bytes per token (SQL)|index scan?|settings|statement ($1: the float query)
rows=()
add() { rows+=("$1|$2|$3|$4|$5"); }
# the candidates of an index on the binary column, reranked by the float MaxSim
two_stage() { echo "WITH c AS MATERIALIZED (SELECT id FROM $1 ORDER BY emb <#> $2 LIMIT $K) SELECT array(SELECT f.id FROM docs_f f JOIN c USING (id) ORDER BY f.emb <#> \$1 LIMIT 10)"; }
add "float" "st_bytes('docs_f')" f "" 'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)'
add "float, unscreened" "st_bytes('docs_f')" f "colpali.maxsim_screening=off" 'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)'
[ "$FULL" = 1 ] && add "float, mvivf index (defaults)" "st_bytes('docs_f', 'docs_f_idx')" t "" 'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)'
recipe1() {
	add "recipe 1: float, mvivf bits=1, rerank $K" "st_bytes('docs_f', 'docs_f1_idx')" t "mvivf.rerank=$K" 'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)'
	add "recipe 1, refine 64" "st_bytes('docs_f', 'docs_f1_idx')" t "mvivf.rerank=$K;mvivf.refine=64" 'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)'
}
[ "$FULL" = 1 ] || recipe1
if [ "$FULL" = 1 ]; then
	add "half (float query)" "st_bytes('docs_h')" f "" 'SELECT array(SELECT id FROM docs_h ORDER BY emb <#> $1 LIMIT 10)'
	add "half (float query), unscreened" "st_bytes('docs_h')" f "colpali.maxsim_screening=off" 'SELECT array(SELECT id FROM docs_h ORDER BY emb <#> $1 LIMIT 10)'
	add "half, mvivf index (float query)" "st_bytes('docs_h', 'docs_h_idx')" t "" 'SELECT array(SELECT id FROM docs_h ORDER BY emb <#> $1 LIMIT 10)'
fi
add "binary (binary query, hamming)" "st_bytes('docs_b')" f "" 'SELECT array(SELECT id FROM docs_b ORDER BY emb <#> $1::bitmultivector LIMIT 10)'
[ "$FULL" = 1 ] && add "binary (float query, q.(2b-1))" "st_bytes('docs_b')" f "" 'SELECT array(SELECT id FROM docs_b ORDER BY emb <#> $1 LIMIT 10)'
add "binary, mvivf index (hamming)" "st_bytes('docs_b', 'docs_b_idx')" t "" 'SELECT array(SELECT id FROM docs_b ORDER BY emb <#> $1::bitmultivector LIMIT 10)'
add "binary, mvivf index (q.(2b-1))" "st_bytes('docs_b', 'docs_b_idx')" t "" 'SELECT array(SELECT id FROM docs_b ORDER BY emb <#> $1 LIMIT 10)'
add "binary + float rerank $K" "st_bytes('docs_b')" f "" "SELECT array(SELECT c.id FROM (SELECT id FROM docs_b ORDER BY emb <#> \$1::bitmultivector LIMIT $K) c JOIN docs_f f USING (id) ORDER BY f.emb <#> \$1 LIMIT 10)"
[ "$FULL" = 1 ] && add "binary q.(2b-1) + float rerank $K" "st_bytes('docs_b')" f "" "SELECT array(SELECT c.id FROM (SELECT id FROM docs_b ORDER BY emb <#> \$1 LIMIT $K) c JOIN docs_f f USING (id) ORDER BY f.emb <#> \$1 LIMIT 10)"
add "recipe 2: binary index (hamming) + float $K" "st_bytes('docs_b', 'docs_b_idx')" t "" "$(two_stage docs_b '$1::bitmultivector')"
add "recipe 2: binary index (q.(2b-1)) + float $K" "st_bytes('docs_b', 'docs_b_idx')" t "" "$(two_stage docs_b '$1')"
add "recipe 2 (hamming), refine 64" "st_bytes('docs_b', 'docs_b_idx')" t "mvivf.refine=64" "$(two_stage docs_b '$1::bitmultivector')"
if [ "$FULL" = 1 ]; then
	if [ "$POOL" = t ]; then
		add "pooled x3 float" "st_bytes('docs_p3')" f "" 'SELECT array(SELECT id FROM docs_p3 ORDER BY emb <#> $1 LIMIT 10)'
		add "pooled x3 binary + float rerank $K" "st_bytes('docs_p3b')" f "" "SELECT array(SELECT c.id FROM (SELECT id FROM docs_p3b ORDER BY emb <#> \$1::bitmultivector LIMIT $K) c JOIN docs_f f USING (id) ORDER BY f.emb <#> \$1 LIMIT 10)"
		add "pooled x3 binary index (hamming) + float $K" "st_bytes('docs_p3b', 'docs_p3b_idx')" t "" "$(two_stage docs_p3b '$1::bitmultivector')"
	else
		add "pooled x3 float" "NULL" - "" ""
		add "pooled x3 binary + float rerank $K" "NULL" - "" ""
	fi
fi
if [ "$FULL" = 1 ] && [ "$DIAG" = 1 ]; then
	add "short binary (343 rows), main (inline)" "st_bytes('docs_b343')" f "" 'SELECT array(SELECT id FROM docs_b343 ORDER BY emb <#> $1::bitmultivector LIMIT 10)'
	add "short binary (343 rows), external" "st_bytes('docs_b343x')" f "" 'SELECT array(SELECT id FROM docs_b343x ORDER BY emb <#> $1::bitmultivector LIMIT 10)'
	add "float scan, header only" "NULL" f "" 'SELECT array(SELECT id FROM docs_f ORDER BY num_vectors(emb) + 0 * dims($1) LIMIT 10)'
	add "float scan, detoast + 1-row query" "NULL" f "" 'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> (($1::real[])[1:1][1:128])::multivector LIMIT 10)'
fi

arr() { local out="ARRAY[" sep="" x; for x in "$@"; do out+="$sep\$st\$$x\$st\$"; sep=","; done; echo "$out]"; }
# Tables the statements of the rows read (heap + TOAST + indexes), in MB,
# against shared_buffers: a phase whose tables do not fit would time reads
# from the kernel's page cache, and the statements of one round would evict
# each other's pages, slowing some statements more than others.
working_set() {
	$Q -c "SELECT round(sum(pg_total_relation_size(c.oid)) / 1048576.0)::text || ' MB of shared_buffers ' || current_setting('shared_buffers')
		|| CASE WHEN sum(pg_total_relation_size(c.oid)) > pg_size_bytes(current_setting('shared_buffers'))
			THEN ' (DOES NOT FIT: ratios are not comparable)' ELSE '' END
		FROM pg_class c WHERE c.relname = ANY (string_to_array('$1', ' ')) AND c.relkind = 'r'"
}
# Measure the rows added so far, round robin, and print them; ratios are to
# this phase's float exact scan (the row named "float").
measure_phase() {
	local names=() stmts=() useidx=() bytes=() sets=() r n b i g s tables
	tables=$(printf '%s\n' "${rows[@]}" | grep -o 'FROM docs_[a-z0-9]*\|JOIN docs_[a-z0-9]*' | awk '{print $2}' | sort -u | tr '\n' ' ')
	for r in "${rows[@]}"; do
		IFS='|' read -r n b i g s <<<"$r"
		[ "$i" = - ] && continue
		names+=("$n"); bytes+=("$b"); useidx+=("$i"); sets+=("$g"); stmts+=("$s")
	done
	local call="SELECT * FROM st_compare($(arr "${names[@]}")::text[], $(arr "${stmts[@]}")::text[], $(arr "${useidx[@]}")::bool[], $(arr "${sets[@]}")::text[]"
	echo "-- $1; tables $tables: $(working_set "$tables")"
	$Q -c "SET client_min_messages = warning" -c "$call, 2)" >/dev/null	# warm-up
	local res fp50 line p50 rec bt
	res=$($Q -F '|' -c "SET client_min_messages = warning" -c "$call, $NQ)")
	fp50=$(echo "$res" | awk -F'|' '$2 == "float" { print $4 }')
	for r in "${rows[@]}"; do
		IFS='|' read -r n b i g s <<<"$r"
		if [ "$i" = - ]; then
			printf '%-46s %11s %12s %9s %9s\n' "$n" n/a n/a n/a n/a
			continue
		fi
		line=$(echo "$res" | awk -F'|' -v n="$n" '$2 == n')
		p50=$(echo "$line" | cut -d'|' -f4)
		rec=$(echo "$line" | cut -d'|' -f3)
		bt=$($Q -c "SELECT coalesce(round(($b)::numeric, 1)::text, '')")
		printf '%-46s %11s %12.2f %8.2fx %9.3f\n' "$n" "$bt" "$p50" "$(echo "$fp50 / $p50" | bc -l)" "$rec"
	done
}

printf '%-46s %11s %12s %9s %9s\n' storage bytes/token p50_ms vs_float recall@10
measure_phase "phase 1"
if [ "$FULL" = 1 ]; then
	# Recipe 1 is an index on the float column itself: a 1-bit index in place
	# of the default one (a second float table would not fit in shared_buffers
	# beside the others, and one table with both indexes leaves the choice to
	# the planner), timed against the float exact scan again.
	$Q -c "DROP INDEX docs_f_idx"
	idx "CREATE INDEX docs_f1_idx ON docs_f USING mvivf (emb) WITH (bits = 1)"
	rows=()
	add "float" "st_bytes('docs_f')" f "" 'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)'
	recipe1
	measure_phase "phase 2: the 1-bit index on the float column"
	if [ "${KEEP:-0}" = 1 ]; then	# leave the default index, as the other tools expect
		$Q -c "DROP INDEX docs_f1_idx"
		idx "CREATE INDEX docs_f_idx ON docs_f USING mvivf (emb)"
	fi
fi
echo "(recall@10 against the float exact answer; 'vs_float': float exact-scan p50 of the same phase / this p50, measured round robin, query by query;"
echo " bytes/token: heap + TOAST (+ index) of the table(s) named; the recipes and the float reranks also keep the float column, 531.5 bytes/token)"

# CPU time of the exact scans side by side (bench/storage/cpu_compare.py):
# steadier than wall time on a shared machine; streaming on and off, the
# float scan's parts, and one-thread numpy on the same pages
if [ "${CPU_COMPARE:-1}" = 1 ]; then
	echo
	GEN="$GEN" NDOCS="$N" GEN_SEED="$SEED" OPENBLAS_NUM_THREADS=1 \
		env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "${PYTHON:-/usr/bin/python3}" \
		"$HERE/cpu_compare.py" "$DB" "$NQ"
fi

if [ "${KEEP:-0}" != 1 ]; then
	$PSQL -X -q -d postgres -c "DROP DATABASE $DB"
fi
