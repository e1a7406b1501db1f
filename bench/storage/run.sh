#!/usr/bin/env bash
# Compact multivectors, one command, one run:
#   bench/storage/run.sh [NDOCS=1000] [NQUERIES=100]
# Loads NDOCS ColPali-shaped pages (1030 x 128, bench/index/gen.c with the
# "topics" traits of bench/index/corpora.sh) and NQUERIES queries (20-32
# rows) as float32, makes half and binary copies (casts), and prints for
# each storage: bytes per token (heap + TOAST + index), exact-scan p50
# (ORDER BY emb <#> q LIMIT 10, sequential), indexed p50 and recall@10
# against the float exact answer, with ratios to float.  Also: binary first
# pass + float rerank of the best RERANK (40) pages, inline vs out-of-line
# storage of short binary values, where the float scan's time goes, and the
# "pooled x3" rows when colpali_pool(multivector, int) exists (else n/a).
# Then CPU time per statement (cpu_compare.py): the exact scans with
# colpali.maxsim_streaming on and off, and one-thread numpy on the same pages.
# Environment: PSQL, PGHOST/PGPORT as usual, GEN_SEED (42), RERANK (40),
# KEEP=1 keeps the database, SKIP_POOL=1 leaves the pooled rows out (pooling
# 1,000 pages takes minutes), CPU_COMPARE=0 skips cpu_compare.py (it needs
# python3 with numpy and psycopg, PYTHON, and the server on this machine).
set -euo pipefail
N=${1:-1000}
NQ=${2:-100}
K=${RERANK:-40}
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
CREATE TABLE docs_h (id int PRIMARY KEY, emb halfmultivector);
INSERT INTO docs_h SELECT id, emb FROM docs_f;
CREATE TABLE docs_b (id int PRIMARY KEY, emb bitmultivector);
INSERT INTO docs_b SELECT id, emb FROM docs_f;
-- short binary values (343 rows, a third of a page) inline (main) and out of line
CREATE TABLE docs_b343 (id int PRIMARY KEY, emb bitmultivector);
INSERT INTO docs_b343 SELECT id, ((emb::real[])[1:343][1:128])::bitmultivector FROM docs_f;
CREATE TABLE docs_b343x (id int PRIMARY KEY, emb bitmultivector);
ALTER TABLE docs_b343x ALTER emb SET STORAGE external;
INSERT INTO docs_b343x SELECT * FROM docs_b343;
VACUUM ANALYZE;
SQL
if [ "$POOL" = t ]; then
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

echo "== compact multivectors: $N pages x 1030 x 128, $NQ queries (20-32 rows), 'topics' traits, seed $SEED; $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, maxsim kernel $($Q -c 'SELECT maxsim_kernel()')"
$Q -c "SET client_min_messages = warning" -c "SELECT st_truth()" >/dev/null
$Q -c "SET client_min_messages = warning" -c "SET maintenance_work_mem = '1GB'" -c "CREATE INDEX docs_f_idx ON docs_f USING mvivf (emb)"

# Every measured statement: name|bytes per token (SQL)|index scan?|statement ($1: the float query)
rows=()
add() { rows+=("$1|$2|$3|$4"); }
add "float" "st_bytes('docs_f')" f 'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)'
add "float, mvivf index" "st_bytes('docs_f', 'docs_f_idx')" t 'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)'
add "half (float query)" "st_bytes('docs_h')" f 'SELECT array(SELECT id FROM docs_h ORDER BY emb <#> $1 LIMIT 10)'
add "binary (binary query, hamming)" "st_bytes('docs_b')" f 'SELECT array(SELECT id FROM docs_b ORDER BY emb <#> $1::bitmultivector LIMIT 10)'
add "binary (float query, q.(2b-1))" "st_bytes('docs_b')" f 'SELECT array(SELECT id FROM docs_b ORDER BY emb <#> $1 LIMIT 10)'
add "binary + float rerank $K" "st_bytes('docs_b')" f "SELECT array(SELECT c.id FROM (SELECT id FROM docs_b ORDER BY emb <#> \$1::bitmultivector LIMIT $K) c JOIN docs_f f USING (id) ORDER BY f.emb <#> \$1 LIMIT 10)"
add "binary q.(2b-1) + float rerank $K" "st_bytes('docs_b')" f "SELECT array(SELECT c.id FROM (SELECT id FROM docs_b ORDER BY emb <#> \$1 LIMIT $K) c JOIN docs_f f USING (id) ORDER BY f.emb <#> \$1 LIMIT 10)"
if [ "$POOL" = t ]; then
	add "pooled x3 float" "st_bytes('docs_p3')" f 'SELECT array(SELECT id FROM docs_p3 ORDER BY emb <#> $1 LIMIT 10)'
	add "pooled x3 binary + float rerank $K" "st_bytes('docs_p3b')" f "SELECT array(SELECT c.id FROM (SELECT id FROM docs_p3b ORDER BY emb <#> \$1::bitmultivector LIMIT $K) c JOIN docs_f f USING (id) ORDER BY f.emb <#> \$1 LIMIT 10)"
else
	add "pooled x3 float" "NULL" - ""
	add "pooled x3 binary + float rerank $K" "NULL" - ""
fi
add "short binary (343 rows), main (inline)" "st_bytes('docs_b343')" f 'SELECT array(SELECT id FROM docs_b343 ORDER BY emb <#> $1::bitmultivector LIMIT 10)'
add "short binary (343 rows), external" "st_bytes('docs_b343x')" f 'SELECT array(SELECT id FROM docs_b343x ORDER BY emb <#> $1::bitmultivector LIMIT 10)'
add "float scan, header only" "NULL" f 'SELECT array(SELECT id FROM docs_f ORDER BY num_vectors(emb) + 0 * dims($1) LIMIT 10)'
add "float scan, detoast + 1-row query" "NULL" f 'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> (($1::real[])[1:1][1:128])::multivector LIMIT 10)'

names=() stmts=() idx=() bytes=()
for r in "${rows[@]}"; do
	IFS='|' read -r n b i s <<<"$r"
	[ "$i" = - ] && continue
	names+=("$n"); bytes+=("$b"); idx+=("$i"); stmts+=("$s")
done
arr() { local out="ARRAY[" sep="" x; for x in "$@"; do out+="$sep\$st\$$x\$st\$"; sep=","; done; echo "$out]"; }
call="SELECT * FROM st_compare($(arr "${names[@]}")::text[], $(arr "${stmts[@]}")::text[], $(arr "${idx[@]}")::bool[]"
$Q -c "SET client_min_messages = warning" -c "$call, 2)" >/dev/null	# warm-up
res=$($Q -F '|' -c "SET client_min_messages = warning" -c "$call, $NQ)")
fp50=$(echo "$res" | awk -F'|' '$2 == "float" { print $4 }')

printf '%-40s %11s %12s %9s %9s\n' storage bytes/token p50_ms vs_float recall@10
for r in "${rows[@]}"; do
	IFS='|' read -r n b i s <<<"$r"
	if [ "$i" = - ]; then
		printf '%-40s %11s %12s %9s %9s\n' "$n" n/a n/a n/a n/a
		continue
	fi
	line=$(echo "$res" | awk -F'|' -v n="$n" '$2 == n')
	p50=$(echo "$line" | cut -d'|' -f4)
	rec=$(echo "$line" | cut -d'|' -f3)
	bt=$($Q -c "SELECT coalesce(round(($b)::numeric, 1)::text, '')")
	printf '%-40s %11s %12.2f %8.2fx %9.3f\n' "$n" "$bt" "$p50" "$(echo "$fp50 / $p50" | bc -l)" "$rec"
done
echo "(recall@10 against the float exact answer; 'vs_float': float exact-scan p50 / this p50, measured round robin, query by query, in this run)"

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
