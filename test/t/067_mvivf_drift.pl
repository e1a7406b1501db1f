#!/usr/bin/perl
# Rows inserted after CREATE INDEX that are unlike the rows the index was
# built on (another corpus: topics the centroids never saw) are coded far
# worse than the build's, and the scan's error model, learnt mostly from
# pages like the build's, understates their errors: built on one corpus of
# bench/index/gen.c and given 500 pages of another, a scan skipped the true
# 4th row of a query about the new pages.  Such inserts are now flagged
# (src/index/mvdrift.c) and reranked exactly before the others, as pages
# with a row of large norm are.  This test checks that inserts like the
# build's are not flagged, that unlike ones are, with one NOTICE per
# statement, that an index scan then returns the exact scan's rows, that
# an index whose metapage predates the drift limit flags nothing and writes
# nothing past its end, that REINDEX (trained on both corpora) flags
# nothing, and that a REINDEX trains on the live rows only.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('mvdrift');
# the metapage is rewritten by hand below, so no data checksums (initdb
# turns them on by default from PostgreSQL 18)
$node->init(extra => $node->pg_version >= 18 ? ['--no-data-checksums'] : []);
$node->append_conf('postgresql.conf', "max_parallel_workers_per_gather = 0\njit = off\n");
$node->start;

# corpus A: 200 pages of 100 rows x 64, each row near one of its page's 3
# topics of 64; corpus B: 70 pages alike on 64 other topics; 10 queries of
# 20 rows near the topics of B pages (fixed seed)
$node->safe_psql('postgres', 'CREATE EXTENSION colpali');
$node->safe_psql(
	'postgres', q{
	SELECT setseed(0.5);
	CREATE FUNCTION unitrand(n int) RETURNS real[] LANGUAGE sql VOLATILE AS $$
		SELECT array_agg(x / nrm ORDER BY i)::real[] FROM (SELECT i, x, sqrt(sum(x * x) OVER ()) AS nrm
			FROM (SELECT i, sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS x FROM generate_series(1, n) i) a) b $$;
	CREATE FUNCTION near(c real[], s float8) RETURNS real[] LANGUAGE sql VOLATILE AS $$
		SELECT array_agg(x + s * y ORDER BY i)::real[] FROM unnest(c, unitrand(64)) WITH ORDINALITY u(x, y, i) $$;
	CREATE TABLE topics AS SELECT corpus, t, unitrand(64) AS c FROM unnest('{a,b}'::text[]) corpus, generate_series(0, 63) t;
	CREATE TABLE pagetopics AS
		SELECT p, CASE WHEN p > 1000 THEN 'b' ELSE 'a' END AS corpus, array_agg(floor(random() * 64)::int) AS t
		FROM (SELECT generate_series(1, 200) UNION ALL SELECT generate_series(1001, 1070)) s(p), generate_series(1, 3)
		GROUP BY p;
	CREATE TEMP TABLE pagerows AS
		SELECT pt.p, r, near(tp.c, 0.9) AS v
		FROM pagetopics pt, generate_series(1, 100) r,
			LATERAL (SELECT pt.t[1 + floor(random() * 3)::int] AS ti WHERE r > 0) s	-- a topic per row
		JOIN topics tp ON tp.t = s.ti
		WHERE tp.corpus = pt.corpus;
	CREATE TABLE pagevals AS SELECT p AS id, l2_normalize(array_agg(v ORDER BY r)::multivector) AS emb FROM pagerows GROUP BY p;
	CREATE TEMP TABLE qrows AS
		SELECT q, r, near(tp.c, 1.0) AS v
		FROM generate_series(1, 10) q JOIN pagetopics pt ON pt.p = 1000 + q * 5, generate_series(1, 20) r,
			LATERAL (SELECT pt.t[1 + floor(random() * 3)::int] AS ti WHERE r > 0) s JOIN topics tp ON tp.t = s.ti
		WHERE tp.corpus = 'b';
	CREATE TABLE queries AS SELECT q, l2_normalize(array_agg(v ORDER BY r)::multivector) AS qv FROM qrows GROUP BY q;
	CREATE TABLE pages (id int, emb multivector);
	ALTER TABLE pages ALTER emb SET STORAGE EXTERNAL;
	INSERT INTO pages SELECT * FROM pagevals WHERE id <= 150;
	CREATE INDEX pages_idx ON pages USING mvivf (emb);
});

# how many pages a scan reranked first (EXPLAIN's forced=N, 0 when absent)
sub forced
{
	my $explain = $node->safe_psql('postgres', q{
SET enable_seqscan = off;
SELECT '[[1]]'::multivector;	-- the library is loaded: EXPLAIN shows its line
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT id FROM pages ORDER BY emb <#> (SELECT qv FROM queries WHERE q = 1) LIMIT 10});
	return $explain =~ /forced=(\d+) / ? $1 : 0;
}

# pages of the build's corpus inserted after it are not flagged
my ($ret, $out, $err) = $node->psql('postgres',
	'INSERT INTO pages SELECT * FROM pagevals WHERE id BETWEEN 151 AND 200');
is($ret, 0, 'pages like the build\'s are inserted');
unlike($err, qr/represents a new row far worse/, 'without a NOTICE');
is(forced(), 0, 'and no page is reranked first');

# pages of the other corpus are flagged, with one NOTICE for the statement
($ret, $out, $err) = $node->psql('postgres',
	'INSERT INTO pages SELECT * FROM pagevals WHERE id BETWEEN 1001 AND 1060');
is($ret, 0, 'pages of another corpus are inserted');
my @notices = ($err =~ /index "pages_idx" represents a new row far worse than the rows it was built on/g);
is(scalar(@notices), 1, 'with one NOTICE for the statement');
like($err, qr/HINT:  REINDEX/, 'whose hint is REINDEX');
is(forced(), 60, 'all 60 are reranked before the others');
$node->safe_psql('postgres', 'ANALYZE pages');

# an index scan returns the exact scan's rows, with and without a filter on
# the new pages
my $check = q{
SET enable_seqscan = off; SET enable_sort = off; SET enable_bitmapscan = off;
CREATE TEMP TABLE ix AS SELECT q, array(SELECT emb <#> qv FROM pages WHERE %s ORDER BY emb <#> qv LIMIT 10) AS d FROM queries;
SET enable_indexscan = off; SET enable_seqscan = on; SET enable_sort = on;
CREATE TEMP TABLE ex AS SELECT q, array(SELECT emb <#> qv FROM pages WHERE %s ORDER BY emb <#> qv LIMIT 10) AS d FROM queries;
SELECT count(*) FILTER (WHERE ix.d = ex.d) FROM ix JOIN ex USING (q);
};
for my $filter ('true', 'id > 1000')
{
	is($node->safe_psql('postgres', sprintf($check, $filter, $filter)), 10,
		"WHERE $filter: every query's distances equal the exact scan's, place by place");
}
like($node->safe_psql('postgres', q{
SET enable_seqscan = off; SET enable_sort = off;
EXPLAIN (COSTS OFF) SELECT id FROM pages WHERE id > 1000 ORDER BY emb <#> (SELECT qv FROM queries WHERE q = 1) LIMIT 10}),
	qr/Index Scan using pages_idx/, 'those were index scans');

# An index built before the drift limit and the count of flagged documents
# existed: its metapage ends at npostings (MvivfMetaPageData: 232 bytes
# after the 24-byte page header; the limit and the count are the next 8).
# Inserts then flag nothing, and write nothing past pd_lower, which generic
# WAL would not keep.
my $file = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT pg_relation_filepath('pages_idx')");
sub read_meta
{
	open(my $fh, '<', $file) or die "open $file: $!";
	binmode $fh;
	my $page;
	sysread($fh, $page, 8192) == 8192 or die "read: $!";
	close $fh;
	return $page;
}
$node->stop;
my $meta = read_meta();
is(unpack('S', substr($meta, 12, 2)), 24 + 240, 'the metapage ends after the drift limit and the count');
is(unpack('L', substr($meta, 24 + 236, 4)), 60, 'which counts the 60 flagged documents');
substr($meta, 24 + 232, 8) = "\0" x 8;
substr($meta, 12, 2) = pack('S', 24 + 232);
open(my $fh, '+<', $file) or die "open $file: $!";
binmode $fh;
syswrite($fh, $meta, 8192) == 8192 or die "write: $!";
close $fh;
$node->start;
($ret, $out, $err) = $node->psql('postgres',
	'INSERT INTO pages SELECT * FROM pagevals WHERE id > 1060');
is($ret, 0, 'an older index takes pages of the other corpus');
unlike($err, qr/represents a new row far worse/, 'without a NOTICE');
is(forced(), 60, 'and flags none of them');
$node->safe_psql('postgres', 'CHECKPOINT');
$node->stop;
$meta = read_meta();
is(unpack('S', substr($meta, 12, 2)) . ':' . unpack('H16', substr($meta, 24 + 232, 8)),
	(24 + 232) . ':' . ('0' x 16), 'nothing was written past its pd_lower');
$node->start;

# REINDEX trains on both corpora: nothing is flagged any more
$node->safe_psql('postgres', 'REINDEX INDEX pages_idx');
is(forced(), 0, 'after REINDEX no page is reranked first');

# REINDEX after the rows of one corpus were deleted and those of another
# inserted, while a transaction of another session is open: the deleted
# rows are recently dead (that transaction's snapshot may still see them),
# so the build indexes them, but it trains on the live rows only.  Pages of
# the deleted corpus inserted afterwards are then unlike the rows the index
# was built on, and flagged.  (Trained on the dead rows too, the index took
# them for its own kind: with any open transaction in the cluster, a REINDEX
# meant to retrain on new data kept the old data's centroids.)
$node->safe_psql(
	'postgres', q{
	CREATE TABLE hz (id int, emb multivector);
	INSERT INTO hz SELECT * FROM pagevals WHERE id <= 150;
	CREATE INDEX hz_idx ON hz USING mvivf (emb);
});
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('SELECT txid_current()');
$node->safe_psql(
	'postgres', q{
	DELETE FROM hz;
	INSERT INTO hz SELECT * FROM pagevals WHERE id > 1000;
	REINDEX INDEX hz_idx;
});
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND state = 'idle in transaction'"),
	1, 'a transaction was open during the REINDEX');
($ret, $out, $err) = $node->psql('postgres',
	'INSERT INTO hz SELECT * FROM pagevals WHERE id BETWEEN 151 AND 160');
is($ret, 0, 'pages of the deleted corpus are inserted after the REINDEX');
like($err, qr/index "hz_idx" represents a new row far worse than the rows it was built on/,
	'with a NOTICE: the index was not trained on the deleted rows');
# with every row dead, the build trains on the dead rows
$node->safe_psql(
	'postgres', q{
	CREATE TABLE hzdead (id int, emb multivector);
	INSERT INTO hzdead SELECT * FROM pagevals WHERE id <= 50;
	CREATE INDEX hzdead_idx ON hzdead USING mvivf (emb);
	DELETE FROM hzdead;
	REINDEX INDEX hzdead_idx;
	INSERT INTO hzdead SELECT * FROM pagevals WHERE id BETWEEN 51 AND 60;
});
is($node->safe_psql('postgres', q{
	SET enable_seqscan = off;
	SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM hzdead ORDER BY emb <#> (SELECT emb FROM pagevals WHERE id = 55) LIMIT 20) s}),
	'51,52,53,54,55,56,57,58,59,60', 'an index built on dead rows only returns the rows inserted since');
$holder->query_safe('COMMIT');
$holder->quit;
is($node->safe_psql('postgres', q{
	SET enable_seqscan = off;
	SELECT count(*) FROM (SELECT id FROM hz ORDER BY emb <#> (SELECT emb FROM pagevals WHERE id = 155) LIMIT 300) s}),
	80, 'an index scan returns the 80 live rows');

$node->stop;
done_testing();
