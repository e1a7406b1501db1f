#!/usr/bin/env bash
# mixed_load.sh: CLIENTS pgbench clients of mixed load for DURATION seconds
# on a table with an mvivf index, with the tiny fixture model encoding
# through the background worker:
#   encode (colpali_query, colpali_image), insert, delete, VACUUM, and
#   ORDER BY emb <#> q LIMIT k queries (unfiltered, filtered by a column,
#   LIMIT 500, and a query encoded by colpali_query in the statement).
# The query value of each check is computed once (a materialized CTE or a
# table row), so that each check compares against one value.  (Before 0.3.0
# the encoder's output for one text differed in its last bits with the
# worker's batch composition; on the CPU each query now gets its own forward
# pass, but on a GPU two calls may still differ in the last bits.)
# Every query checks, in the same statement (so under one snapshot), that
# its rows come in non-decreasing <#> order and that it returned
# min(k, matching rows) rows; a violation is recorded in a table (the client
# goes on).  Any SQL error aborts a pgbench client and counts as an error:
# the workload has no expected errors.  After the run, the index must answer
# like a sequential scan under exhaustive settings.
# Prints one result line: "mixed_load: PASS ..." or "mixed_load: FAIL ...".
#
#   DURATION=600 CLIENTS=16 PGBIN=/usr/lib/postgresql/15/bin test/stress/mixed_load.sh
#
# colpali must be installed in PGBIN's installation.  Runs a private cluster
# in WORK (default: a new directory under /tmp), reachable only through a
# Unix socket there.  As root, it runs itself as CLUSTER_USER (default
# colpali).  KEEP=1 keeps WORK.
set -uo pipefail

DURATION=${DURATION:-600}
CLIENTS=${CLIENTS:-16}
PGVER=${PGVER:-15}
PGBIN=${PGBIN:-/usr/lib/postgresql/$PGVER/bin}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
MODEL=${MODEL:-$top/test/fixtures/models/tiny}
IMAGES=${IMAGES:-$top/test/fixtures/images}

if [ "$(id -u)" -eq 0 ]; then
	user=${CLUSTER_USER:-colpali}
	id "$user" >/dev/null 2>&1 || useradd -m "$user"
	exec runuser -u "$user" -- env DURATION="$DURATION" CLIENTS="$CLIENTS" PGBIN="$PGBIN" \
		MODEL="$MODEL" IMAGES="$IMAGES" WORK="${WORK:-}" KEEP="${KEEP:-}" \
		bash "$here/mixed_load.sh"
fi

WORK=${WORK:-$(mktemp -d /tmp/colpali-mixed.XXXXXX)}
mkdir -p "$WORK/scripts"
DATA=$WORK/data
PORT=${PORT:-$((20000 + RANDOM % 10000))}
export PGHOST=$WORK PGPORT=$PORT PGDATABASE=postgres
PSQL=("$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1)

fail() {
	echo "mixed_load: FAIL $*"
	"$PGBIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1
	echo "logs kept in $WORK"
	exit 1
}

[ -f "$MODEL/config.json" ] || fail "no model in $MODEL"
"$PGBIN/initdb" -D "$DATA" -A trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 || fail "initdb"
cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = $PORT
max_connections = $((CLIENTS + 20))
shared_preload_libraries = 'colpali'
colpali.model_path = '$MODEL'
colpali.threads = 1
autovacuum_naptime = 5s
log_min_messages = warning
EOF
OMP_WAIT_POLICY=passive "$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w start >/dev/null || fail "server does not start"

# Data: encoded queries and images, tags 0..9; query values; the checker.
{
	echo "CREATE EXTENSION colpali;"
	echo "CREATE TABLE imgs (id int PRIMARY KEY, img bytea);"
	i=0
	for f in "$IMAGES"/*.png "$IMAGES"/*.jpg; do
		[ -f "$f" ] || continue
		i=$((i + 1))
		echo "INSERT INTO imgs VALUES ($i, pg_read_binary_file('$f'));"
	done
	cat <<'EOF'
CREATE TABLE docs (id bigserial PRIMARY KEY, tag int NOT NULL, emb multivector(128));
INSERT INTO docs (tag, emb) SELECT g % 10, colpali_query('seed document number ' || g) FROM generate_series(1, 300) g;
INSERT INTO docs (tag, emb) SELECT id % 10, colpali_image(img) FROM imgs;
CREATE INDEX docs_emb ON docs USING mvivf (emb);
CREATE INDEX docs_tag ON docs (tag);
CREATE TABLE queries (qid int PRIMARY KEY, q multivector(128));
INSERT INTO queries SELECT g, colpali_query('what is in table ' || g) FROM generate_series(1, 50) g;
CREATE TABLE failures (at timestamptz DEFAULT clock_timestamp(), kind text, detail text);
-- d: the <#> values of a query's rows in the order returned; k: its LIMIT;
-- n: rows that match, counted in the same statement (same snapshot)
CREATE FUNCTION check_scan(d float8[], k int, n bigint, what text) RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	FOR i IN 2 .. coalesce(cardinality(d), 0) LOOP
		IF d[i] < d[i - 1] THEN
			INSERT INTO failures (kind, detail) VALUES ('out_of_order',
				format('%s: row %s (%s) after %s', what, i, d[i], d[i - 1]));
			RETURN 0;
		END IF;
	END LOOP;
	IF coalesce(cardinality(d), 0) <> least(k, n) THEN
		INSERT INTO failures (kind, detail) VALUES ('short',
			format('%s: %s rows for LIMIT %s with %s matching', what, coalesce(cardinality(d), 0), k, n));
		RETURN 0;
	END IF;
	RETURN 1;
END $$;
CREATE FUNCTION rand_mv(n int) RETURNS multivector LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize((SELECT array_agg(ARRAY(
		SELECT (random() * 2 - 1)::real FROM generate_series(1, 128) k WHERE r > 0))
	FROM generate_series(1, n) r)::multivector)
$$;
ANALYZE;
EOF
} | "${PSQL[@]}" >"$WORK/setup.log" 2>&1 || fail "setup: $(tail -3 "$WORK/setup.log")"
nimgs=$("${PSQL[@]}" -c "SELECT count(*) FROM imgs")

# pgbench scripts, name@weight.  The query forms:
#   SELECT check_scan(array_agg(d ORDER BY rn), k, matching rows, what)
#   FROM (SELECT d, row_number() OVER () rn FROM (<query ORDER BY <#> LIMIT k>) s) t
S=$WORK/scripts
cat >"$S/query.sql" <<'EOF'
\set k random(1, 40)
\set qid random(1, 50)
SELECT check_scan(array_agg(d ORDER BY rn), :k, (SELECT count(*) FROM docs WHERE emb IS NOT NULL), 'query')
FROM (SELECT d, row_number() OVER () AS rn FROM (
	SELECT emb <#> (SELECT q FROM queries WHERE qid = :qid) AS d FROM docs
	ORDER BY emb <#> (SELECT q FROM queries WHERE qid = :qid) LIMIT :k) s) t;
EOF
cat >"$S/filtered.sql" <<'EOF'
\set k random(1, 40)
\set qid random(1, 50)
\set tag random(0, 9)
SELECT check_scan(array_agg(d ORDER BY rn), :k, (SELECT count(*) FROM docs WHERE tag = :tag AND emb IS NOT NULL), 'filtered tag=' || :tag)
FROM (SELECT d, row_number() OVER () AS rn FROM (
	SELECT emb <#> (SELECT q FROM queries WHERE qid = :qid) AS d FROM docs WHERE tag = :tag
	ORDER BY emb <#> (SELECT q FROM queries WHERE qid = :qid) LIMIT :k) s) t;
EOF
cat >"$S/limit500.sql" <<'EOF'
\set qid random(1, 50)
SELECT check_scan(array_agg(d ORDER BY rn), 500, (SELECT count(*) FROM docs WHERE emb IS NOT NULL), 'limit 500')
FROM (SELECT d, row_number() OVER () AS rn FROM (
	SELECT emb <#> (SELECT q FROM queries WHERE qid = :qid) AS d FROM docs
	ORDER BY emb <#> (SELECT q FROM queries WHERE qid = :qid) LIMIT 500) s) t;
EOF
cat >"$S/encode_query.sql" <<'EOF'
\set k random(1, 20)
\set r random(1, 1000)
WITH qq AS MATERIALIZED (SELECT colpali_query('find page ' || :r) AS q)
SELECT check_scan(array_agg(d ORDER BY rn), :k, (SELECT count(*) FROM docs WHERE emb IS NOT NULL), 'colpali_query')
FROM (SELECT d, row_number() OVER () AS rn FROM (
	SELECT emb <#> (SELECT q FROM qq) AS d FROM docs
	ORDER BY emb <#> (SELECT q FROM qq) LIMIT :k) s) t;
EOF
cat >"$S/insert_query.sql" <<'EOF'
\set tag random(0, 9)
\set r random(1, 100000)
INSERT INTO docs (tag, emb) VALUES (:tag, colpali_query('inserted document ' || :r));
EOF
cat >"$S/insert_image.sql" <<EOF
\\set tag random(0, 9)
\\set i random(1, $nimgs)
INSERT INTO docs (tag, emb) SELECT :tag, colpali_image(img) FROM imgs WHERE id = :i;
EOF
cat >"$S/insert_random.sql" <<'EOF'
\set tag random(0, 9)
\set n random(1, 40)
INSERT INTO docs (tag, emb) VALUES (:tag, rand_mv(:n));
EOF
cat >"$S/delete.sql" <<'EOF'
\set o random(0, 200)
DELETE FROM docs WHERE id IN (SELECT id FROM docs ORDER BY id LIMIT 1 OFFSET :o FOR UPDATE SKIP LOCKED);
EOF
cat >"$S/vacuum.sql" <<'EOF'
VACUUM docs;
EOF

start_time=$(date +%s)
"$PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$DURATION" -P 60 \
	-f "$S/query.sql@25" -f "$S/filtered.sql@20" -f "$S/limit500.sql@3" -f "$S/encode_query.sql@8" \
	-f "$S/insert_query.sql@10" -f "$S/insert_image.sql@2" -f "$S/insert_random.sql@12" \
	-f "$S/delete.sql@24" -f "$S/vacuum.sql@1" \
	>"$WORK/pgbench.out" 2>"$WORK/pgbench.err"
rc=$?
elapsed=$(($(date +%s) - start_time))

txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
aborted=$(grep -c 'aborted' "$WORK/pgbench.err")
errors=$(grep -c 'ERROR' "$WORK/pgbench.err")
read -r ooo short < <("${PSQL[@]}" -F ' ' -c "SELECT count(*) FILTER (WHERE kind = 'out_of_order'), count(*) FILTER (WHERE kind = 'short') FROM failures")
rows=$("${PSQL[@]}" -c "SELECT count(*) FROM docs")

# the index answers like a sequential scan afterwards: the same <#> values
# in the same order, the same rows (ties, e.g. an image inserted twice, may
# come in either order)
mismatch=0
for qid in 1 2 3; do
	sql="SELECT string_agg(d::text, ',') || ' | ' || string_agg(id::text || ':' || d::text, ',' ORDER BY d, id) FROM (
		SELECT id, emb <#> (SELECT q FROM queries WHERE qid = $qid) AS d FROM docs WHERE emb IS NOT NULL
		ORDER BY emb <#> (SELECT q FROM queries WHERE qid = $qid) LIMIT $((rows + 10))) s"
	a=$("${PSQL[@]}" -c "SET enable_seqscan = off; SET enable_bitmapscan = off; SET mvivf.probes = 65536; SET mvivf.candidates = 100000; SET mvivf.rerank = 100000; SET mvivf.max_scan_docs = 2147483647;" -c "$sql")
	b=$("${PSQL[@]}" -c "SET enable_indexscan = off; SET enable_bitmapscan = off;" -c "$sql")
	[ "$a" = "$b" ] || mismatch=$((mismatch + 1))
done
"${PSQL[@]}" -c "SELECT kind, detail FROM failures ORDER BY at LIMIT 20" >"$WORK/failures.txt"
"$PGBIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1

summary="$CLIENTS clients, ${elapsed}s, ${txns:-0} transactions ($(awk -v t="${txns:-0}" -v s="$elapsed" 'BEGIN { if (s > 0) printf "%.0f", t / s; else print 0 }')/s), errors ${errors}, aborted clients ${aborted}, failed ${failed:-0}, out-of-order ${ooo}, short ${short}, index/seq-scan mismatches ${mismatch}/3, ${rows} rows at the end"
if [ "$rc" -eq 0 ] && [ "$errors" -eq 0 ] && [ "$aborted" -eq 0 ] && [ "${failed:-0}" -eq 0 ] &&
	[ "$ooo" -eq 0 ] && [ "$short" -eq 0 ] && [ "$mismatch" -eq 0 ] && [ -n "$txns" ]; then
	echo "mixed_load: PASS $summary"
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
else
	echo "mixed_load: FAIL $summary (pgbench exit $rc)"
	head -5 "$WORK/pgbench.err"
	head -5 "$WORK/failures.txt"
	echo "logs kept in $WORK"
	exit 1
fi
