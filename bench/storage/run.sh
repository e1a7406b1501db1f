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
# Environment: PSQL, PGHOST/PGPORT as usual, GEN_SEED (42), RERANK (40),
# KEEP=1 keeps the database.
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
# st_row NAME BYTES_SQL EXACT_STMT [INDEX_STMT]
row() {
	local name=$1 bytes=$2 stmt=$3 istmt=${4:-}
	$Q -c "SET client_min_messages = warning" -c "SELECT st_run(\$q\$$stmt\$q\$, false, 5)" >/dev/null	# warm-up
	local res
	res=$($Q -c "SET client_min_messages = warning" -c "
		SELECT round(($bytes)::numeric, 1), round(e.p50_ms::numeric, 2), round(e.recall::numeric, 3),
		       round(((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM truth) / e.p50_ms)::numeric, 2)
		FROM st_run(\$q\$$stmt\$q\$, false) e" | tr '|' ' ')
	local ires="n/a n/a"
	if [ -n "$istmt" ]; then
		ires=$($Q -c "SET client_min_messages = warning" -c "SELECT round(p50_ms::numeric, 2), round(recall::numeric, 3) FROM st_run(\$q\$$istmt\$q\$, true)" | tr '|' ' ')
	fi
	set -- $res
	local b=$1 p=$2 r=$3 x=$4
	set -- $ires
	printf '%-34s %10s %12s %9s %12s %13s %11s\n' "$name" "$b" "$p" "${x}x" "$r" "$1" "$2"
}
na() { printf '%-34s %10s %12s %9s %12s %13s %11s\n' "$1" n/a n/a n/a n/a n/a n/a; }

$Q -c "SET client_min_messages = warning" -c "SELECT st_truth()" >/dev/null
$Q -c "SET client_min_messages = warning" -c "SET maintenance_work_mem = '1GB'" -c "CREATE INDEX docs_f_idx ON docs_f USING mvivf (emb)"
printf '%-34s %10s %12s %9s %12s %13s %11s\n' storage bytes/token exact_p50_ms vs_float exact_recall indexed_p50_ms idx_recall
row "float" "st_bytes('docs_f', 'docs_f_idx')" \
	'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)' \
	'SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)'
row "half (float query)" "st_bytes('docs_h')" \
	'SELECT array(SELECT id FROM docs_h ORDER BY emb <#> $1 LIMIT 10)'
row "binary (binary query, hamming)" "st_bytes('docs_b')" \
	'SELECT array(SELECT id FROM docs_b ORDER BY emb <#> $1::bitmultivector LIMIT 10)'
row "binary (float query, q.(2b-1))" "st_bytes('docs_b')" \
	'SELECT array(SELECT id FROM docs_b ORDER BY emb <#> $1 LIMIT 10)'
row "binary first pass + float rerank $K" "st_bytes('docs_b')" \
	"SELECT array(SELECT c.id FROM (SELECT id FROM docs_b ORDER BY emb <#> \$1::bitmultivector LIMIT $K) c JOIN docs_f f USING (id) ORDER BY f.emb <#> \$1 LIMIT 10)"
row "binary q.(2b-1) + float rerank $K" "st_bytes('docs_b')" \
	"SELECT array(SELECT c.id FROM (SELECT id FROM docs_b ORDER BY emb <#> \$1 LIMIT $K) c JOIN docs_f f USING (id) ORDER BY f.emb <#> \$1 LIMIT 10)"
if [ "$POOL" = t ]; then
	row "pooled x3 float" "st_bytes('docs_p3')" \
		'SELECT array(SELECT id FROM docs_p3 ORDER BY emb <#> $1 LIMIT 10)'
	row "pooled x3 binary + float rerank $K" "st_bytes('docs_p3b')" \
		"SELECT array(SELECT c.id FROM (SELECT id FROM docs_p3b ORDER BY emb <#> \$1::bitmultivector LIMIT $K) c JOIN docs_f f USING (id) ORDER BY f.emb <#> \$1 LIMIT 10)"
else
	na "pooled x3 float"
	na "pooled x3 binary + float rerank $K"
fi

echo "== storage of short binary values (343 x 128 bits = 5.5 kB): hamming exact scan"
row "343 rows, STORAGE main (inline)" "st_bytes('docs_b343')" \
	'SELECT array(SELECT id FROM docs_b343 ORDER BY emb <#> $1::bitmultivector LIMIT 10)'
row "343 rows, STORAGE external" "st_bytes('docs_b343x')" \
	'SELECT array(SELECT id FROM docs_b343x ORDER BY emb <#> $1::bitmultivector LIMIT 10)'

echo "== where the float exact scan's time goes (p50 ms per query over $N pages)"
$Q <<'SQL'
SET client_min_messages = warning;
SELECT 'header only (num_vectors)', round(p50_ms::numeric, 2) FROM st_run('SELECT array(SELECT id FROM docs_f ORDER BY num_vectors(emb) + 0 * dims($1) LIMIT 10)', false);
SELECT 'detoast + 1-row query', round(p50_ms::numeric, 2) FROM st_run('SELECT array(SELECT id FROM docs_f ORDER BY emb <#> (($1::real[])[1:1][1:128])::multivector LIMIT 10)', false);
SELECT 'full scan (detoast + kernel)', round(p50_ms::numeric, 2) FROM st_run('SELECT array(SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10)', false);
SQL

if [ "${KEEP:-0}" != 1 ]; then
	$PSQL -X -q -d postgres -c "DROP DATABASE $DB"
fi
