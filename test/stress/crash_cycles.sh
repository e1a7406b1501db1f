#!/usr/bin/env bash
# crash_cycles.sh: immediate-stop cycles under concurrent load on a table
# with an mvivf index.  Each cycle starts the server, runs CLIENTS sessions of
# inserts, deletes, VACUUMs and indexed queries for a random 1..LOAD_SECONDS
# seconds, stops the server with `pg_ctl -m immediate` in the middle of it,
# restarts it (crash recovery), and checks:
#   - no committed row is lost and no committed delete is undone: clients
#     log each statement before sending it and psql prints its result only
#     after CommandComplete, which the server sends after the commit; every
#     acknowledged insert or delete must show, and only the one statement per
#     client in flight at the crash may have gone either way;
#   - the index answers exactly like a sequential scan with exhaustive
#     settings, for QUERIES query values over the whole table, and the
#     planner uses it.
# Prints one result line: "crash_cycles: PASS ..." or "crash_cycles: FAIL ...".
#
#   CYCLES=100 CLIENTS=4 LOAD_SECONDS=3 PGBIN=/usr/lib/postgresql/15/bin test/stress/crash_cycles.sh
#
# colpali must be installed in PGBIN's installation.  Runs a private cluster
# in WORK (default: a new directory under /tmp), reachable only through a
# Unix socket there.  As root, it runs itself as CLUSTER_USER (default
# colpali).  KEEP=1 keeps WORK.
set -uo pipefail

CYCLES=${CYCLES:-100}
CLIENTS=${CLIENTS:-4}
LOAD_SECONDS=${LOAD_SECONDS:-3}
QUERIES=${QUERIES:-3}
DIM=${DIM:-32}
PGVER=${PGVER:-15}
PGBIN=${PGBIN:-/usr/lib/postgresql/$PGVER/bin}
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" -eq 0 ]; then
	user=${CLUSTER_USER:-colpali}
	id "$user" >/dev/null 2>&1 || useradd -m "$user"
	exec runuser -u "$user" -- env CYCLES="$CYCLES" CLIENTS="$CLIENTS" LOAD_SECONDS="$LOAD_SECONDS" \
		QUERIES="$QUERIES" DIM="$DIM" PGBIN="$PGBIN" WORK="${WORK:-}" KEEP="${KEEP:-}" \
		bash "$here/crash_cycles.sh"
fi

WORK=${WORK:-$(mktemp -d /tmp/colpali-crash.XXXXXX)}
mkdir -p "$WORK"
DATA=$WORK/data
PORT=${PORT:-$((20000 + RANDOM % 10000))}
export PGHOST=$WORK PGPORT=$PORT PGDATABASE=postgres
PSQL=("$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1)
LOG=$WORK/crash_cycles.log
start_time=$(date +%s)

fail() {
	echo "crash_cycles: FAIL cycle $cycle/$CYCLES: $*" | tee -a "$LOG"
	"$PGBIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1
	echo "logs kept in $WORK"
	exit 1
}

"$PGBIN/initdb" -D "$DATA" -A trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 || { echo "crash_cycles: FAIL initdb"; exit 1; }
cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = $PORT
fsync = on
max_connections = $((CLIENTS + 20))
shared_buffers = 32MB
autovacuum_naptime = 1s
log_min_messages = warning
EOF
cycle=0
"$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w start >/dev/null || fail "server does not start"

# Rows of 4..16 random unit vectors, ids from a sequence.
"${PSQL[@]}" <<EOF || fail "setup"
CREATE EXTENSION colpali;
CREATE TABLE docs (id bigint PRIMARY KEY, emb multivector($DIM));
CREATE FUNCTION rand_mv(n int) RETURNS multivector LANGUAGE sql VOLATILE AS \$\$
	SELECT l2_normalize((SELECT array_agg(ARRAY(
		SELECT (random() * 2 - 1)::real FROM generate_series(1, $DIM) k WHERE r > 0))
	FROM generate_series(1, n) r)::multivector)
\$\$;
INSERT INTO docs SELECT g, rand_mv(4 + g % 13) FROM generate_series(1, 400) g;
CREATE INDEX docs_emb ON docs USING mvivf (emb) WITH (lists = 16, bits = 4);
CREATE TABLE queries (qid int PRIMARY KEY, q multivector($DIM));
EOF

# One client: an endless stream of statements into one psql session.  Ids
# are chosen by the client (client c of cycle k inserts c*10^12 + k*10^7 + n
# and deletes its own earlier ids or ids of the rows present when the cycle
# began that fall to it), so every target is known.  The generator writes
# "n op id" to the intent log before sending statement n; psql prints
# "A n ..." only after statement n committed.  After a crash each client has
# at most one statement whose fate is unknown: the one after its last "A".
client() {
	local c=$1 cyc=$2
	perl -e '
		my ($c, $cyc, $intent, $old) = @ARGV;
		srand($$ ^ time);
		open(my $log, ">", $intent) or die;
		my $fh = select($log); $| = 1; select($fh); $| = 1;
		my @mine;
		if (open(my $o, "<", $old)) { @mine = map { chomp; $_ } <$o>; }
		@mine = grep { $_ % '"$CLIENTS"' == $c - 1 } @mine;
		my $base = $c * 10**12 + $cyc * 10**7;
		for (my $n = 1; ; $n++) {
			my $r = rand();
			if ($r < 0.45 || !@mine) {
				my $id = $base + $n;
				print $log "$n I $id\n";
				print "INSERT INTO docs VALUES ($id, rand_mv(", 4 + int(rand(13)), ")) RETURNING \x27A $n\x27;\n";
				push @mine, $id;
			} elsif ($r < 0.85) {
				my $id = splice(@mine, int(rand(@mine)), 1);
				print $log "$n D $id\n";
				print "WITH d AS (DELETE FROM docs WHERE id = $id RETURNING id) SELECT \x27A $n \x27 || count(*) FROM d;\n";
			} elsif ($r < 0.995) {
				print $log "$n Q\n";
				print "SELECT \x27A $n Q \x27 || count(*) FROM (SELECT id FROM docs ORDER BY emb <#> (SELECT rand_mv(3)) LIMIT 10) s;\n";
			} else {
				print $log "$n V\n";
				print "VACUUM docs;\n\\echo A $n V\n";
			}
		}' "$c" "$cyc" "$WORK/intent.$cyc.$c" "$WORK/ids.$c" \
		| "$PGBIN/psql" -X -q -At >"$WORK/out.$cyc.$c" 2>"$WORK/err.$cyc.$c"
}

# check_cycle CYCLE: compares the acknowledged statements of all cycles so far
# with the table (ids in $WORK/present); prints "inserts deletes" or fails.
check_cycle() {
	perl -e '
		my ($work, $cyc, $clients) = @ARGV;
		my (%present, %expect, %excused);
		open(my $p, "<", "$work/present") or die "present: $!";
		while (<$p>) { chomp; $present{$_} = 1; }
		# the state every acknowledged statement of every cycle implies
		open(my $st, "<", "$work/state") and do {
			while (<$st>) { chomp; my ($id, $v) = split / /; $expect{$id} = $v; }
		};
		my ($ni, $nd) = (0, 0);
		for my $c (1 .. $clients) {
			my %acked;
			open(my $o, "<", "$work/out.$cyc.$c") or die;
			while (<$o>) {
				chomp;
				/^A (\d+)( .*)?$/ or die "unexpected client output: $_\n";
				$acked{$1} = 1;
			}
			my $last = 0;
			$last = $_ > $last ? $_ : $last for keys %acked;
			for my $n (1 .. $last) { die "statement $n of client $c not acknowledged before $last\n" unless $acked{$n}; }
			open(my $i, "<", "$work/intent.$cyc.$c") or die;
			while (<$i>) {
				chomp;
				my ($n, $op, $id) = split / /;
				next unless $op eq "I" || $op eq "D";
				if ($n <= $last) {
					$expect{$id} = ($op eq "I") ? 1 : 0;
					$op eq "I" ? $ni++ : $nd++;
				} elsif ($n == $last + 1) {
					$excused{$id} = 1;	# in flight at the crash: either outcome
				}
			}
		}
		my @bad;
		for my $id (keys %expect) {
			next if $excused{$id};
			push @bad, "lost $id" if $expect{$id} && !$present{$id};
			push @bad, "undeleted $id" if !$expect{$id} && $present{$id};
		}
		if (@bad) { print STDERR join(", ", (sort @bad)[0 .. ($#bad < 9 ? $#bad : 9)]), " (", scalar(@bad), " in all)\n"; exit 1; }
		# carry the settled state forward (excused ids take what was found)
		$expect{$_} = $present{$_} ? 1 : 0 for keys %excused;
		open(my $w, ">", "$work/state.new") or die;
		print $w "$_ $expect{$_}\n" for keys %expect;
		close($w);
		rename("$work/state.new", "$work/state") or die;
		print "$ni $nd\n";
	' "$WORK" "$1" "$CLIENTS"
}

total_ins=0
total_del=0
for cycle in $(seq 1 "$CYCLES"); do
	# the rows present now, shared out among the clients for deletion
	"${PSQL[@]}" -c "SELECT id FROM docs" >"$WORK/ids.all" || fail "listing ids"
	for c in $(seq 1 "$CLIENTS"); do cp "$WORK/ids.all" "$WORK/ids.$c"; done

	# load, then an immediate stop in the middle of it
	pids=()
	for c in $(seq 1 "$CLIENTS"); do
		client "$c" "$cycle" &
		pids+=($!)
	done
	sleep "$(perl -e "printf '%.2f', 1 + rand($LOAD_SECONDS - 1)")"
	"$PGBIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || fail "immediate stop failed"
	for p in "${pids[@]}"; do
		# the generator side ends on SIGPIPE once psql has gone
		wait "$p" 2>/dev/null
	done
	"$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w -t 120 start >/dev/null || fail "restart after the crash failed"

	errs=$(cat "$WORK"/err.$cycle.* | grep -v -E 'server closed the connection unexpectedly|terminat|connection to server was lost|This probably means the server terminated abnormally|before or while processing the request|no connection to the server|Failed\.|^$|could not send data to server|connection to server .* failed|shutting down|the database system is' || true)
	[ -n "$errs" ] && fail "unexpected client errors: $(echo "$errs" | head -3)"

	# no committed row lost, no committed delete undone
	"${PSQL[@]}" -c "SELECT id FROM docs" >"$WORK/present" || fail "listing ids after recovery"
	counts=$(check_cycle "$cycle" 2>"$WORK/check.err") || fail "$(cat "$WORK/check.err")"
	total_ins=$((total_ins + ${counts% *}))
	total_del=$((total_del + ${counts#* }))

	# the index answers like a sequential scan, over the whole table: the same
	# <#> values in the same order, the same rows (ties in either order)
	rows=$("${PSQL[@]}" -c "SELECT count(*) FROM docs WHERE emb IS NOT NULL") || fail "count failed"
	"${PSQL[@]}" -c "TRUNCATE queries; INSERT INTO queries SELECT g, rand_mv(1 + g % 5) FROM generate_series(1, $QUERIES) g" || fail "queries"
	plan=$("${PSQL[@]}" -c "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM docs ORDER BY emb <#> (SELECT q FROM queries WHERE qid = 1) LIMIT 5")
	# (no "echo | grep -q" here: with pipefail, grep's early exit fails the echo)
	[[ $plan == *"Index Scan using docs_emb"* ]] || fail "index not used after recovery: $plan"
	for q in $(seq 1 "$QUERIES"); do
		sql="SELECT string_agg(d::text, ',') || ' | ' || string_agg(id::text || ':' || d::text, ',' ORDER BY d, id) FROM (
			SELECT id, emb <#> (SELECT q FROM queries WHERE qid = $q) AS d FROM docs WHERE emb IS NOT NULL
			ORDER BY emb <#> (SELECT q FROM queries WHERE qid = $q) LIMIT $((rows + 10))) s"
		viaidx=$("${PSQL[@]}" -c "SET enable_seqscan = off; SET enable_bitmapscan = off; SET mvivf.probes = 65536; SET mvivf.candidates = 100000; SET mvivf.rerank = 100000; SET mvivf.max_scan_docs = 2147483647;" -c "$sql") || fail "index query failed"
		viaseq=$("${PSQL[@]}" -c "SET enable_indexscan = off; SET enable_bitmapscan = off;" -c "$sql") || fail "seq scan query failed"
		[ "$viaidx" = "$viaseq" ] || fail "query $q: index and seq scan differ ($(echo "$viaidx" | tr ',' '\n' | wc -l) vs $(echo "$viaseq" | tr ',' '\n' | wc -l) rows)"
	done
	echo "cycle $cycle: ok, $rows rows; acknowledged inserts $total_ins, deletes $total_del so far" >>"$LOG"
	rm -f "$WORK"/out.$cycle.* "$WORK"/err.$cycle.* "$WORK"/intent.$cycle.*
done

"$PGBIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1
elapsed=$(($(date +%s) - start_time))
echo "crash_cycles: PASS $CYCLES immediate-stop cycles, $CLIENTS clients, $total_ins acknowledged inserts and $total_del deletes checked, index = seq scan ($QUERIES queries x whole table) after every recovery, ${elapsed}s" | tee -a "$LOG"
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
