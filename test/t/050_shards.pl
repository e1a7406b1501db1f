#!/usr/bin/perl
# Sharded retrieval over postgres_fdw (docs/scale-out.md): a coordinator with
# `pages` hash-partitioned into foreign tables on three shard clusters, each
# with its own mvivf index, set up by tools/colpali-shard-setup.  Checks that
# both ways of querying it (the partitioned table itself, and
# colpali_shard.topk) return exactly what one node holding all rows returns,
# for many queries with and without a filter at LIMIT 1/10/100; what each
# shard is sent (Remote SQL, the shard's statement log); that
# colpali_query() runs once, on the coordinator only; that what does not push
# down degrades to a correct plan (no `extensions`, a shard on colpali
# 0.1.0); that a shard that is down gives a clear error; ingest routed through
# the coordinator; and that pg_dump of every node restores.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{TESTDIR} // '.';
my $setup = "$root/tools/colpali-shard-setup";
my $model = "$root/test/fixtures/models/tiny";
plan skip_all => 'tools/colpali-shard-setup not found' unless -x $setup;
# contrib modules, packaged with Debian's server but not with every build
chomp(my $pkglibdir = `pg_config --pkglibdir`);
chomp(my $sharedir = `pg_config --sharedir`);
plan skip_all => 'auto_explain or postgres_fdw is not installed'
  unless -e "$pkglibdir/auto_explain.so"
  && -e "$sharedir/extension/postgres_fdw.control";

# Exhaustive mvivf settings on the shards (every list probed, every row
# reranked) make the indexed answer exact, so it can be compared with the
# exact scan of one node; the lists are few (WITH (lists = 8)).  With so few
# rows per shard, and every row a candidate, a sequential scan costs the same
# as the index: enable_seqscan = off makes the shards take the index path
# (at realistic sizes they choose it themselves: bench/shard/run.sh).
my $shard_conf = qq{
mvivf.probes = 64
mvivf.rerank = 1000
mvivf.candidates = 1000
enable_seqscan = off
log_statement = 'all'
session_preload_libraries = 'auto_explain'
auto_explain.log_min_duration = 0
};
my @shards;
for my $i (0 .. 2)
{
	my $s = PostgreSQL::Test::Cluster->new("shard$i");
	$s->init;
	$s->append_conf('postgresql.conf', $shard_conf);
	$s->start;
	push @shards, $s;
}
# shard 2 runs colpali 0.1.0: a different version on a shard still works
$shards[2]->safe_psql('postgres', "CREATE EXTENSION colpali VERSION '0.1.0'");

my $coord = PostgreSQL::Test::Cluster->new('coord');
$coord->init;
$coord->append_conf('postgresql.conf', qq{
colpali.threads = 1
track_functions = 'all'
});
$coord->append_conf('postgresql.conf', "colpali.model_path = '$model'\n") if -d $model;
$coord->start;

my $single = PostgreSQL::Test::Cluster->new('single');
$single->init;
$single->start;

sub conninfo
{
	my ($node) = @_;
	return 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres';
}

# --- setup through the tool ----------------------------------------------
my $columns = 'id bigint NOT NULL, tenant int NOT NULL, emb multivector(128)';
$coord->command_ok(
	[ $setup, '--columns', $columns, conninfo($coord), map { conninfo($_) } @shards ],
	'colpali-shard-setup creates the sharded table');
is($coord->safe_psql('postgres', "SELECT count(*) FROM pg_foreign_server"), '3', 'three foreign servers');
like($coord->safe_psql('postgres', "SELECT array_to_string(srvoptions, ' ') FROM pg_foreign_server WHERE srvname = 'colpali_shard_0'"),
	qr/extensions=colpali.*async_capable=true/, 'servers ship colpali and are async_capable');

# --- ingest through the coordinator: INSERT and COPY are routed ------------
# Deterministic pseudo-random unit rows (md5 of page, row, dimension); the
# same statement loads the single node.
my $gen = sub {
	my ($from, $to) = @_;
	return qq{SELECT i, i % 5, l2_normalize((SELECT array_agg(ARRAY(
		SELECT (('x' || substr(md5(i || ':' || r || ':' || d), 1, 8))::bit(32)::int / 2147483648.0)::real
		FROM generate_series(1, 128) d)) FROM generate_series(1, 3 + i % 4) r)::multivector)
	  FROM generate_series($from, $to) i};
};
$coord->safe_psql('postgres', 'INSERT INTO pages ' . $gen->(1, 280));
$single->safe_psql('postgres', "CREATE EXTENSION colpali; CREATE TABLE pages ($columns, PRIMARY KEY (id));
	INSERT INTO pages " . $gen->(1, 300));
# COPY into the partitioned table on the coordinator, rows from the single node
my $copy = $single->safe_psql('postgres', 'COPY (SELECT * FROM pages WHERE id > 280 ORDER BY id) TO STDOUT');
$coord->safe_psql('postgres', "CREATE TEMP TABLE t (LIKE pages); COPY t FROM STDIN;\n$copy\n\\.\nINSERT INTO pages SELECT * FROM t");
my @per_shard = map { $_->safe_psql('postgres', 'SELECT count(*) FROM pages') } @shards;
is($per_shard[0] + $per_shard[1] + $per_shard[2], 300, 'all 300 rows reached the shards');
ok(!(grep { $_ < 60 } @per_shard), "rows spread over the shards (@per_shard)");
is($coord->safe_psql('postgres', 'SELECT ' . join(' AND ', map {
	"(SELECT bool_and(satisfies_hash_partition('pages'::regclass, 3, $_, id)) FROM (SELECT id FROM pages_s$_ OFFSET 0) x)" } 0 .. 2)),
	't', 'every row is on the shard its hash partition names');
is($coord->safe_psql('postgres', 'SELECT md5(string_agg(id || emb::text, \'\' ORDER BY id)) FROM pages'),
	$single->safe_psql('postgres', 'SELECT md5(string_agg(id || emb::text, \'\' ORDER BY id)) FROM pages'),
	'the shards hold the same values as the single node, bit for bit');

$coord->safe_psql('postgres', "SELECT colpali_shard.create_index('pages', 'lists = 8'); ANALYZE pages");
for my $i (0 .. 2)
{
	is($shards[$i]->safe_psql('postgres',
			"SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			 JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'mvivf' AND i.indisvalid"),
		'1', "shard $i has its own valid mvivf index");
}

# --- many queries: sharded == single node ---------------------------------
my $queries = qq{CREATE TABLE queries AS SELECT q AS qid, l2_normalize((SELECT array_agg(ARRAY(
		SELECT (('x' || substr(md5('q' || q || ':' || r || ':' || d), 1, 8))::bit(32)::int / 2147483648.0)::real
		FROM generate_series(1, 128) d)) FROM generate_series(1, 2 + q % 3) r)::multivector) AS q
	FROM generate_series(1, 12) q};
$coord->safe_psql('postgres', $queries);
$single->safe_psql('postgres', $queries);

my @cases;
for my $k (1, 10, 100)
{
	for my $filter ('', 'tenant = 2', 'tenant IN (1, 3) AND id > 50')
	{
		push @cases, [ $k, $filter ];
	}
}
# one line per (query, k, filter): id:distance,...
sub results
{
	my ($node, $form, $only_k) = @_;
	my @sql;
	for my $c (@cases)
	{
		my ($k, $filter) = @$c;
		next if $only_k && $k != $only_k;
		my $where = $filter ? "WHERE $filter" : '';
		my $f = $filter ? "'$filter'" : 'NULL';
		my $body = $form eq 'single'
		  ? "SELECT id, emb <#> (SELECT q FROM queries WHERE qid = x.qid) AS d FROM pages $where ORDER BY 2, 1 LIMIT $k"
		  : $form eq 'parent'
		  ? "SELECT id, emb <#> (SELECT q FROM queries WHERE qid = x.qid) AS d FROM pages $where
			 ORDER BY emb <#> (SELECT q FROM queries WHERE qid = x.qid) LIMIT $k"
		  : "SELECT key AS id, distance AS d FROM colpali_shard.topk('pages', (SELECT q FROM queries WHERE qid = x.qid), $k, $f)";
		push @sql, "SELECT x.qid, $k AS k, '$filter' AS f,
			(SELECT string_agg(id || ':' || d, ',' ORDER BY d, id) FROM ($body) r) FROM queries x";
	}
	my $set = $form eq 'single' ? 'SET enable_indexscan = off; ' : '';
	return [ split /\n/, $node->safe_psql('postgres', $set . join("\nUNION ALL\n", @sql) . ' ORDER BY 1, 2, 3') ];
}
my $expected = results($single, 'single');
is(scalar(@$expected), 12 * scalar(@cases), 'expected results for every query');
ok(!(grep { !/\|[0-9]+:/ } @$expected), 'every query has at least one row');
my @log_at = map { -s $_->logfile } @shards;
for my $form ('parent', 'topk')
{
	my $got = results($coord, $form);
	my @diff = grep { ($got->[$_] // '') ne $expected->[$_] } 0 .. $#$expected;
	is(scalar(@diff), 0, "$form: all " . scalar(@$expected) . ' results equal the single node')
	  or diag("first difference:\n got      $got->[$diff[0]]\n expected $expected->[$diff[0]]");
}
# auto_explain on the shards logs the plan of every statement they ran
for my $i (0 .. 2)
{
	ok($shards[$i]->log_contains(qr/Index Scan using pages_emb_idx on (public\.)?pages/, $log_at[$i]),
		"shard $i answered with its mvivf index");
}

# --- a shard larger than one index scan may rerank -------------------------
# postgres_fdw reads a partition through a cursor without LIMIT; the shard
# plans it for cursor_tuple_fraction of its rows, and mvivf refuses the index
# when those exceed what one scan may rerank (mvivf.max_scan_docs).  A tiny
# budget on shard 0 stands for a shard of millions of pages.
is($coord->safe_psql('postgres', "SELECT option_value FROM pg_options_to_table(
		(SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'colpali_shard_0')) WHERE option_name = 'options'"),
	'-c cursor_tuple_fraction=0.001', "setup sets cursor_tuple_fraction for the shards' sessions");
my $small = '-c mvivf.rerank=5 -c mvivf.max_scan_docs=5 -c enable_seqscan=on';
for my $case ([ "$small -c cursor_tuple_fraction=0.001", 'Index Scan using pages_emb_idx' ], [ $small, 'Sort' ])
{
	my ($opts, $want) = @$case;
	$coord->safe_psql('postgres', "ALTER SERVER colpali_shard_0 OPTIONS (SET options '$opts')");
	my $at = -s $shards[0]->logfile;
	$coord->safe_psql('postgres', 'SELECT id FROM pages ORDER BY emb <#> (SELECT q FROM queries WHERE qid = 2) LIMIT 3');
	my $cursor = qr/DECLARE c\d+ CURSOR FOR\n\tSELECT id, emb FROM public\.pages ORDER BY [^\n]*\n\t(Index Scan using pages_emb_idx|Sort)/;
	$shards[0]->wait_for_log($cursor, $at);
	my ($plan) = slurp_file($shards[0]->logfile, $at) =~ $cursor;
	is($plan, $want, $want eq 'Sort'
		? 'large shard, default cursor_tuple_fraction: the cursor gets a sort of the whole shard'
		: 'large shard, cursor_tuple_fraction = 0.001: the cursor keeps the mvivf index');
}
$coord->safe_psql('postgres', "ALTER SERVER colpali_shard_0 OPTIONS (SET options '-c cursor_tuple_fraction=0.001')");

# --- what the shards are sent ---------------------------------------------
my $plan = $coord->safe_psql('postgres',
	"EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM pages WHERE tenant = 2
	 ORDER BY emb <#> (SELECT q FROM queries WHERE qid = 1) LIMIT 10");
my @remote = $plan =~ /Remote SQL: (.*)/g;
is(scalar(@remote), 3, 'one remote query per shard');
is(scalar(grep { /^SELECT id, emb FROM public\.pages WHERE \(\(tenant = 2\)\) ORDER BY \(emb OPERATOR\(public\.<#>\) \$1::public\.multivector\) ASC NULLS LAST/ } @remote),
	3, 'filter and ORDER BY emb <#> $1 are pushed to every shard, the query vector as a parameter');
like($plan, qr/Merge Append/, 'the coordinator merges the sorted shard streams');
note('LIMIT in the remote query of a partition: ' . ((grep { /LIMIT/ } @remote) ? 'yes' : 'no (PostgreSQL 15 does not push LIMIT through Merge Append)'));

$coord->safe_psql('postgres', "SELECT * FROM colpali_shard.topk('pages', (SELECT q FROM queries WHERE qid = 1), 7, 'tenant = 4')");
for my $i (0 .. 2)
{
	like(slurp_file($shards[$i]->logfile),
		qr/SELECT id::bigint, emb OPERATOR\(public\.<#>\) '\[\[[^']*\]\]'::public\.multivector FROM public\.pages WHERE \(tenant = 4\) ORDER BY 2 LIMIT 7/,
		"topk sends shard $i the filter, ORDER BY and LIMIT");
}

# --- colpali_query: once, on the coordinator; the shards have no model ------
SKIP:
{
	skip 'tiny fixture model not found', 7 unless -d $model;
	my $text = 'revenue by region';
	my $qv = $coord->safe_psql('postgres', "SELECT colpali_query('$text')::text");
	isnt($shards[0]->psql('postgres', "SELECT colpali_query('$text')"), 0,
		'a shard has no model: colpali_query fails there');
	$single->safe_psql('postgres', "CREATE TABLE mq AS SELECT '$qv'::multivector AS q");
	my $want = $single->safe_psql('postgres',
		"SET enable_indexscan = off; SELECT string_agg(id::text, ',' ORDER BY d, id) FROM
		 (SELECT id, emb <#> (SELECT q FROM mq) d FROM pages ORDER BY 2, 1 LIMIT 10) s");
	my $calls = "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'colpali_query'";
	$coord->safe_psql('postgres', 'SELECT pg_stat_reset()');
	is($coord->safe_psql('postgres',
			"SELECT string_agg(id::text, ',') FROM (SELECT id FROM pages
			 ORDER BY emb <#> (SELECT colpali_query('$text')) LIMIT 10) s; SELECT pg_stat_force_next_flush()")
		  =~ s/\n.*//sr, $want, 'ORDER BY emb <#> (SELECT colpali_query(...)) through the partitioned table');
	is($coord->safe_psql('postgres', $calls), 1, 'colpali_query ran once, on the coordinator');
	like($coord->safe_psql('postgres', "EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM pages
			ORDER BY emb <#> (SELECT colpali_query('$text')) LIMIT 10"),
		qr/Remote SQL: SELECT id, emb FROM public\.pages ORDER BY \(emb OPERATOR\(public\.<#>\) \$1::public\.multivector\)/,
		'its value is shipped as a parameter');
	is($coord->safe_psql('postgres', "SELECT string_agg(key::text, ',') FROM colpali_shard.topk('pages', colpali_query('$text'), 10)"),
		$want, 'colpali_shard.topk(..., colpali_query(...), 10)');
	# the bare STABLE call is not shippable: no remote ORDER BY, still correct
	$coord->safe_psql('postgres', 'SELECT pg_stat_reset()');
	is($coord->safe_psql('postgres', "SELECT string_agg(id::text, ',') FROM (SELECT id FROM pages
			ORDER BY emb <#> colpali_query('$text') LIMIT 10) s; SELECT pg_stat_force_next_flush()") =~ s/\n.*//sr,
		$want, 'ORDER BY emb <#> colpali_query(...) without the sub-select degrades to a correct plan');
	unlike($coord->safe_psql('postgres', "EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM pages
			ORDER BY emb <#> colpali_query('$text') LIMIT 10"), qr/Remote SQL: .*ORDER BY/,
		'(no ORDER BY is sent to the shards then)');
	note('colpali_query calls for the bare form: ' . $coord->safe_psql('postgres', $calls));
}

# --- degraded pushdown: colpali missing from `extensions` ------------------
$coord->safe_psql('postgres', "ALTER SERVER colpali_shard_1 OPTIONS (DROP extensions)");
$plan = $coord->safe_psql('postgres',
	"EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM pages ORDER BY emb <#> (SELECT q FROM queries WHERE qid = 3) LIMIT 10");
like($plan, qr/Remote SQL: SELECT id, emb FROM public\.pages\n/, 'without extensions: shard 1 is sent no ORDER BY');
like($plan, qr/Sort Key: \(\(pages_2\.emb <#>/, 'and the coordinator sorts its rows itself');
my $deg = $coord->safe_psql('postgres',
	"SELECT string_agg(id || ':' || d, ',' ORDER BY d, id) FROM (SELECT id, emb <#> (SELECT q FROM queries WHERE qid = 3) d
	 FROM pages ORDER BY 2 LIMIT 10) s");
is($deg, (grep { /^3\|10\|\|/ } @$expected)[0] =~ s/^3\|10\|\|//r, 'the degraded plan returns the same rows');
$coord->safe_psql('postgres', "ALTER SERVER colpali_shard_1 OPTIONS (ADD extensions 'colpali')");
is($shards[2]->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'colpali'"), '0.1.0',
	'(shard 2, whose results matched above, runs colpali 0.1.0)');

my ($r0, $o0, $e0) = $coord->psql('postgres', "SELECT * FROM colpali_shard.topk('queries', (SELECT q FROM queries WHERE qid = 1), 10)");
like($e0, qr/queries has no foreign partitions/, 'topk on a table without foreign partitions is an error');

# --- a shard that is down: a clear error, never a partial answer ------------
$shards[1]->stop;
my ($ret, $out, $err) = $coord->psql('postgres',
	'SELECT id FROM pages ORDER BY emb <#> (SELECT q FROM queries WHERE qid = 1) LIMIT 10');
isnt($ret, 0, 'query through the partitioned table fails while a shard is down');
like($err, qr/could not connect to server "colpali_shard_1"/, 'and names the shard');
($ret, $out, $err) = $coord->psql('postgres',
	"SELECT * FROM colpali_shard.topk('pages', (SELECT q FROM queries WHERE qid = 1), 10)");
isnt($ret, 0, 'topk fails while a shard is down');
like($err, qr/could not establish connection|colpali_shard_1/, 'and says so');
$shards[1]->start;
is($coord->safe_psql('postgres', "SELECT count(*) FROM colpali_shard.topk('pages', (SELECT q FROM queries WHERE qid = 1), 10)"),
	'10', 'topk works again once the shard is back');

# --- pg_dump of every node restores -----------------------------------------
my $tmp = PostgreSQL::Test::Utils::tempdir;
for my $node (@shards, $coord)
{
	my $name = $node->name;
	$node->command_ok([ 'pg_dump', '-Fc', '-f', "$tmp/$name.dump", '-d', $node->connstr('postgres') ],
		"pg_dump of $name");
	$node->safe_psql('postgres', 'CREATE DATABASE restored');
	$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), "$tmp/$name.dump" ],
		"pg_restore of $name");
}
for my $s (@shards)
{
	my $sum = 'SELECT count(*), md5(string_agg(id || emb::text, \'\' ORDER BY id)) FROM pages';
	is($s->safe_psql('restored', $sum), $s->safe_psql('postgres', $sum), $s->name . ': restored rows are identical');
	is($s->safe_psql('restored', "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%USING mvivf%'"), '1',
		$s->name . ': the mvivf index is restored');
}
# the restored coordinator (servers, user mappings, partitions, helpers) queries the shards
is($coord->safe_psql('restored',
		"SELECT string_agg(id || ':' || d, ',' ORDER BY d, id) FROM (SELECT id, emb <#> (SELECT q FROM queries WHERE qid = 5) d
		 FROM pages ORDER BY 2 LIMIT 10) s"),
	(grep { /^5\|10\|\|/ } @$expected)[0] =~ s/^5\|10\|\|//r, 'the restored coordinator returns the same rows');
is($coord->safe_psql('restored',
		"SELECT count(*) FROM colpali_shard.topk('pages', (SELECT q FROM queries WHERE qid = 5), 10)"),
	'10', 'and its colpali_shard.topk works');

# --- adding a shard: split (MODULUS 3, REMAINDER 0) into (6, 0) and (6, 3) ---
# the procedure of docs/scale-out.md, run as written there
my $new = PostgreSQL::Test::Cluster->new('shard3');
$new->init;
$new->append_conf('postgresql.conf', $shard_conf);
$new->start;
my ($nhost, $nport) = ($new->host, $new->port);
# before colpali is installed there: a foreign table on a server without it
# fails with the shard's own error, it does not return rows
$new->safe_psql('postgres', 'CREATE TABLE nocolpali (id bigint, emb text)');
$coord->safe_psql('postgres', qq{
CREATE SERVER nocolpali FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '$nhost', port '$nport', dbname 'postgres', extensions 'colpali');
CREATE USER MAPPING FOR CURRENT_USER SERVER nocolpali;
CREATE FOREIGN TABLE nocolpali (id bigint, emb multivector) SERVER nocolpali;
});
($ret, $out, $err) = $coord->psql('postgres',
	'SELECT id FROM nocolpali ORDER BY emb <#> (SELECT q FROM queries WHERE qid = 1) LIMIT 1');
isnt($ret, 0, 'a shard without colpali: the query fails');
like($err, qr/ERROR:  type "public\.multivector" does not exist\nCONTEXT:  remote SQL command/, 'with the shard\'s error');
$new->safe_psql('postgres', "CREATE EXTENSION colpali; CREATE TABLE pages ($columns, PRIMARY KEY (id))");
$coord->safe_psql('postgres', qq{
CREATE SERVER colpali_shard_3 FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '$nhost', port '$nport', dbname 'postgres', extensions 'colpali', async_capable 'true', fetch_size '10');
CREATE USER MAPPING FOR CURRENT_USER SERVER colpali_shard_3;
BEGIN;
ALTER TABLE pages DETACH PARTITION pages_s0;
CREATE FOREIGN TABLE pages_s3 PARTITION OF pages FOR VALUES WITH (MODULUS 6, REMAINDER 3)
	SERVER colpali_shard_3 OPTIONS (table_name 'pages');
CREATE TEMP TABLE moving ON COMMIT DROP AS
	SELECT id FROM (SELECT id FROM pages_s0 OFFSET 0) s
	WHERE satisfies_hash_partition('pages'::regclass, 6, 3, id);
INSERT INTO pages_s3 SELECT * FROM pages_s0 WHERE id IN (SELECT id FROM moving);
DELETE FROM pages_s0 WHERE id IN (SELECT id FROM moving);
ALTER TABLE pages ATTACH PARTITION pages_s0 FOR VALUES WITH (MODULUS 6, REMAINDER 0);
COMMIT;
});
$new->safe_psql('postgres', 'CREATE INDEX ON pages USING mvivf (emb) WITH (lists = 8); ANALYZE pages');
my $moved = $new->safe_psql('postgres', 'SELECT count(*) FROM pages');
cmp_ok($moved, '>', 20, "the new shard took rows of shard 0 ($moved)");
is($shards[0]->safe_psql('postgres', 'SELECT count(*) FROM pages') + $moved, $per_shard[0],
	'shard 0 kept the rest, nothing lost or duplicated');
is($coord->safe_psql('postgres', 'SELECT md5(string_agg(id || emb::text, \'\' ORDER BY id)) FROM pages'),
	$single->safe_psql('postgres', 'SELECT md5(string_agg(id || emb::text, \'\' ORDER BY id)) FROM pages'),
	'after the split the coordinator sees exactly the single node\'s rows');
{
	my $got = results($coord, 'topk');
	is(scalar(grep { ($got->[$_] // '') ne $expected->[$_] } 0 .. $#$expected), 0,
		'topk over 4 shards: all results still equal the single node');
	# the partitioned table, at k = 10 only (it is the slow way)
	my @want = grep { /^\d+\|10\|/ } @$expected;
	$got = results($coord, 'parent', 10);
	is(scalar(@$got), scalar(@want), 'parent over 4 shards: one result per query and filter at k = 10');
	is(scalar(grep { ($got->[$_] // '') ne $want[$_] } 0 .. $#want), 0,
		'parent over 4 shards: all k = 10 results still equal the single node');
}

$_->stop for (@shards, $new, $coord, $single);
done_testing();
