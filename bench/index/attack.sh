#!/usr/bin/env bash
# Try to break mvivf's recall and its ORDER BY / LIMIT contract at the
# defaults with shapes the corpus benchmark (corpora.sh) does not measure:
#   bench/index/attack.sh [NDOCS=1000] [NQUERIES=20] [SCENARIOS]
# Each scenario loads a corpus of bench/index/gen.c, builds the index at its
# defaults (or as the scenario says), and prints one line per check of
# attack.sql's mvb_check: recall@k (tie-aware), the share of queries whose
# rows and order equal the exact scan's (up to ties), queries with fewer
# rows than asked, queries out of order, the share of plans that used the
# index, and the p50 of the index and of the exact scan (index scans off).
# Environment: PSQL, PGHOST/PGPORT; KEEP=1 keeps the databases;
# INDEX_WITH="bits = 4" builds every index with those options.
set -euo pipefail
N=${1:-1000}
NQ=${2:-20}
SCENARIOS=${3:-varrows pooled qshort qlong dups neardups blank norms smallbuild deletes limits shift oodq}
SEED=${GEN_SEED:-42}
PSQL=${PSQL:-psql}
HERE=$(cd "$(dirname "$0")" && pwd)
GEN=${GEN:-/tmp/mvivf-gen}
cc -O2 -o "$GEN" "$HERE/gen.c" -lm

# HARD (the hard profile) and VARROWS (ColQwen2-like page lengths)
. "$HERE/profiles.sh"

# load DB ENV [NDOCS]: docs and queries of the given gen.c traits
load() {
	local db=$1 envs=$2 n=${3:-$N}
	$PSQL -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
	$PSQL -X -q -d "$db" -v ON_ERROR_STOP=1 -c "CREATE EXTENSION colpali" \
		-c "CREATE TABLE docs (id int, emb multivector)" \
		-c "ALTER TABLE docs ALTER emb SET STORAGE EXTERNAL" \
		-c "CREATE TABLE queries (qid int, target int, q multivector)"
	env $envs "$GEN" docs "$n" "$SEED" | $PSQL -X -q -d "$db" -c "COPY docs FROM STDIN (FORMAT binary)"
	env $envs "$GEN" queries "$n" "$NQ" "$SEED" | $PSQL -X -q -d "$db" -c "COPY queries FROM STDIN (FORMAT binary)"
}

# check DB NAME SQL...: build nothing, run the checks given as SQL calls
check() {
	local db=$1 name=$2
	shift 2
	local c
	for c in "$@"; do
		$PSQL -X -q -At -F' ' -d "$db" -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
			-c "VACUUM ANALYZE docs" -f "$HERE/attack.sql" \
			-c "SELECT round(recall::numeric, 3), round(exact::numeric, 3), short, misorder, round(indexed::numeric, 2), round(p50_idx::numeric, 1), round(p50_exact::numeric, 1) FROM $c" |
			awk -v n="$name" -v c="$c" '{ printf "%-11s %-44s %6s %6s %5s %5s %5s %8s %8s\n", n, c, $1, $2, $3, $4, $5, $6, $7 }'
	done
}

build() {
	$PSQL -X -q -d "$1" -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "SET maintenance_work_mem = '1GB'" \
		-c "DROP INDEX IF EXISTS docs_idx" -c "CREATE INDEX docs_idx ON docs USING mvivf (emb)${INDEX_WITH:+ WITH (${INDEX_WITH})}"
}

finish() {
	[ "${KEEP:-0}" = 1 ] || $PSQL -X -q -d postgres -c "DROP DATABASE $1"
}

echo "== mvivf${INDEX_WITH:+ WITH (${INDEX_WITH})} attacks on ${N} pages, ${NQ} queries, seed ${SEED}; $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
printf '%-11s %-44s %6s %6s %5s %5s %5s %8s %8s\n' scenario check recall exact short misord idx p50_idx p50_ex
for s in $SCENARIOS; do
	db=mva_$s
	case "$s" in
		varrows)	# ColQwen2-like: 300-1300 rows a page, 10% of pages 10-50 rows
			load $db "$HARD $VARROWS"; build $db
			check $db $s "mvb_check(10)" ;;
		pooled)		# the same pages pooled by 3 (colpali_pool)
			load $db "$HARD $VARROWS"
			$PSQL -X -q -d $db -c "UPDATE docs SET emb = colpali_pool(emb, 3)" -c "VACUUM FULL docs"; build $db
			check $db $s "mvb_check(10)" ;;
		qshort)		# 1-4 query rows
			load $db "$HARD GEN_QROWS_MIN=1 GEN_QROWS_MAX=4"; build $db
			check $db $s "mvb_check(10)" "mvb_check(1)" ;;
		qlong)		# 48-64 query rows, a fifth of them repeated
			load $db "$HARD GEN_QROWS_MIN=48 GEN_QROWS_MAX=64 GEN_QUERY_REPEAT=0.2"; build $db
			check $db $s "mvb_check(10)" ;;
		dups)		# half the pages exact copies of 20 pages: ties at the 10th place
			load $db "$HARD GEN_DUP_SHARE=0.5 GEN_DUP_SOURCES=20"; build $db
			check $db $s "mvb_check(10)" "mvb_check(100)" ;;
		neardups)	# half the pages near copies of 20 pages
			load $db "$HARD GEN_DUP_SHARE=0.5 GEN_DUP_SOURCES=20 GEN_DUP_NOISE=0.05"; build $db
			check $db $s "mvb_check(10)" ;;
		blank)		# 80% of the pages one identical background-only page
			load $db "$HARD GEN_BLANK_SHARE=0.8"; build $db
			check $db $s "mvb_check(10)" "mvb_check(100)" ;;
		norms)		# rows of norm 0.5-2, one in 2,000 of norm 20
			load $db "$HARD GEN_NORM_MIN=0.5 GEN_NORM_MAX=2 GEN_BIGNORM_SHARE=0.0005"; build $db
			check $db $s "mvb_check(10)" ;;
		smallbuild)	# the index built on 50 pages, the others inserted after
			load $db "$HARD"
			$PSQL -X -q -d $db -c "CREATE TABLE rest AS SELECT * FROM docs WHERE id >= 50" -c "DELETE FROM docs WHERE id >= 50" -c "VACUUM docs"
			build $db
			$PSQL -X -q -d $db -c "INSERT INTO docs SELECT * FROM rest" -c "DROP TABLE rest"
			check $db $s "mvb_check(10)" ;;
		deletes)	# 3N pages loaded, two thirds deleted and vacuumed, then built
			load $db "$HARD" $((3 * N))
			$PSQL -X -q -d $db -c "DELETE FROM docs WHERE id % 3 <> 0" -c "VACUUM docs"; build $db
			$PSQL -X -q -d $db -c "DELETE FROM docs WHERE id % 6 = 3" -c "VACUUM docs"
			check $db $s "mvb_check(10)" ;;
		shift)		# built on N/2 pages of one corpus; N/2 pages of another (own
					# shape, other seed) inserted after, ids from N; queries about
					# the new pages, also filtered to either corpus
			load $db "$HARD" $((N / 2)); build $db
			$PSQL -X -q -d $db -c "CREATE TABLE newpages (id int, emb multivector)" -c "TRUNCATE queries"
			env $(profile_env own) "$GEN" docs $((N / 2)) 7 | $PSQL -X -q -d $db -c "COPY newpages FROM STDIN (FORMAT binary)"
			env $(profile_env own) "$GEN" queries $((N / 2)) "$NQ" 7 | $PSQL -X -q -d $db -c "COPY queries FROM STDIN (FORMAT binary)"
			$PSQL -X -q -d $db -c "INSERT INTO docs SELECT id + $N, emb FROM newpages" -c "DROP TABLE newpages"
			check $db $s "mvb_check(10)" "mvb_check(10, 'id >= $N')" "mvb_check(10, 'id < $N')" ;;
		oodq)		# queries of another corpus (loose shape, other seed): nothing
					# in the table matches them well, the scores bunch
			load $db "$HARD"; build $db
			$PSQL -X -q -d $db -c "TRUNCATE queries"
			env $(profile_env loose) "$GEN" queries "$N" "$NQ" 7 | $PSQL -X -q -d $db -c "COPY queries FROM STDIN (FORMAT binary)"
			check $db $s "mvb_check(10)" "mvb_check(1)" ;;
		limits)		# LIMIT 1 / 100 / 500, a filter passing 10%, OFFSET
			load $db "$HARD"; build $db
			check $db $s "mvb_check(1)" "mvb_check(100)" "mvb_check(500)" "mvb_check(10, 'id % 10 = 3')" "mvb_check(10, 'true', 20)" "mvb_check(50, 'id % 10 = 3', 5)" ;;
		*) echo "unknown scenario $s" >&2; exit 2 ;;
	esac
	finish $db
done
