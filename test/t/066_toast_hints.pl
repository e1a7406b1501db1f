#!/usr/bin/perl
# Where the TOAST walk looks first (src/toast_stream.c): chunk 0 of a value
# behind the chunk of the previous value read that lies furthest on, and a
# value's displaced last chunk behind the last chunks of recent values, so
# that an exact scan of a table loaded in order asks the TOAST index for
# almost nothing.  Checked here:
#  - a sequential read of values loaded in one go makes few TOAST index
#    scans (counted in pg_stat_all_indexes), far fewer than the values read,
#    with the scores of the index-only read and of detoasting;
#  - the hints of one session going stale under it: the TOAST table
#    truncated by VACUUM behind the hinted block, rewritten by VACUUM FULL,
#    emptied by TRUNCATE, rows deleted (their chunks still there) and new
#    values written in their place; every read gives the scores of the
#    index-only read, without an ERROR;
#  - values read in an order unrelated to their layout (a join through a
#    shuffled key) give the same scores, and values read again in another
#    order (as a rerank after a scan) make few TOAST index scans: where each
#    value's first and last chunk lay is remembered.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('toasthints');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;

# documents of D = 64 with 150 to 400 rows: 38-102 kB as float (19-52
# chunks, the last one short), half that as half, 1.2-3.2 kB as binary
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION colpali;
SELECT setseed(0.71);
CREATE FUNCTION th_rand(nrows int, dim int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT array_agg(r ORDER BY i)::multivector
	FROM (SELECT i, array_agg((random() * 2 - 1)::real ORDER BY d) AS r
		  FROM generate_series(1, nrows) i, generate_series(1, dim) d GROUP BY i) s
$$;
CREATE TABLE th (id int, f multivector, h halfmultivector, b bitmultivector);
ALTER TABLE th ALTER b SET STORAGE external;
INSERT INTO th SELECT g, f, h, b FROM (SELECT g, th_rand(150 + (g * 53) % 251, 64) AS f
	FROM generate_series(1, 80) g) s, LATERAL (SELECT f::halfmultivector AS h, f::bitmultivector AS b) c;
CREATE TABLE th_q AS SELECT n AS qid, th_rand(3 + 11 * n, 64) AS q FROM generate_series(1, 2) n;
CREATE FUNCTION th_scores(OUT id int, OUT qid int, OUT f float8, OUT h float8, OUT b float8)
RETURNS SETOF record LANGUAGE sql VOLATILE AS $$
	SELECT t.id, q.qid, t.f <#> q.q, t.h <#> q.q, t.b <#> q.q::bitmultivector
	FROM th t, th_q q ORDER BY q.qid, t.ctid
$$;
CREATE FUNCTION th_toast_index_scans() RETURNS bigint LANGUAGE sql AS $$
	SELECT idx_scan FROM pg_stat_all_indexes
	WHERE indexrelid = (SELECT indexrelid FROM pg_index
						WHERE indrelid = (SELECT reltoastrelid FROM pg_class WHERE relname = 'th'))
$$;
});
my $toast = $node->safe_psql('postgres',
	"SELECT reltoastrelid::regclass FROM pg_class WHERE relname = 'th'");
my $displaced = $node->safe_psql('postgres', qq{
WITH c AS (SELECT chunk_id, chunk_seq, ctid, lag(ctid) OVER (PARTITION BY chunk_id ORDER BY chunk_seq) AS prev,
				  max(chunk_seq) OVER (PARTITION BY chunk_id) AS last FROM $toast)
SELECT count(*) FROM c WHERE chunk_seq = last AND ctid < prev});
cmp_ok($displaced, '>', 20, "the layout: last chunks put into earlier blocks ($displaced)");

# scores of one mode in one session (the hints live in the backend)
sub scores
{
	my ($settings, $table) = @_;
	$node->safe_psql('postgres',
		"$settings; DROP TABLE IF EXISTS $table; CREATE TABLE $table AS SELECT * FROM th_scores()");
}

sub same_scores
{
	my ($a, $b) = @_;
	return $node->safe_psql('postgres', qq{
SELECT count(*) || '/' || count(*) FILTER (WHERE x.f = y.f AND x.h = y.h AND x.b = y.b)
FROM $a x JOIN $b y USING (id, qid)});
}

# 1. a sequential read asks the TOAST index for almost nothing
my $before = $node->safe_psql('postgres', 'SELECT th_toast_index_scans()');
scores('', 'th_walk');
$node->poll_query_until('postgres', "SELECT th_toast_index_scans() > $before")
  or die 'no TOAST index statistics';
my $walk_scans = $node->safe_psql('postgres', 'SELECT th_toast_index_scans()') - $before;
$before += $walk_scans;
scores('SET colpali.maxsim_toast_walk = off', 'th_index');
$node->poll_query_until('postgres', "SELECT th_toast_index_scans() > $before")
  or die 'no TOAST index statistics';
my $index_scans = $node->safe_psql('postgres', 'SELECT th_toast_index_scans()') - $before;
scores('SET colpali.maxsim_streaming = off', 'th_detoast');
my $values = 2 * $node->safe_psql("postgres", "SELECT count(DISTINCT chunk_id) FROM $toast");
note("TOAST index scans for $values values read: walk $walk_scans, index only $index_scans");
cmp_ok($index_scans, '>=', $values, 'index only: at least one index scan per value');
cmp_ok($walk_scans, "<", $values / 3, 'walk: few index scans for values read in their order');
is(same_scores('th_walk', 'th_index'), '160/160', 'walk: the scores of the index-only read');
is(same_scores('th_walk', 'th_detoast'), '160/160', 'walk: the scores of detoasting');

# 2. hints going stale within one session: every read compared with the
# index-only read of the same rows
sub stale_round
{
	my ($name, $change) = @_;
	my $out = $node->safe_psql('postgres', qq{
CREATE TABLE th_first AS SELECT * FROM th_scores();
$change;
CREATE TABLE th_after AS SELECT * FROM th_scores();
SET colpali.maxsim_toast_walk = off;
CREATE TABLE th_after_index AS SELECT * FROM th_scores();
SELECT (SELECT count(*) FROM th) || ':' || (SELECT count(*) FROM th_after_index) || ':' ||
	(SELECT count(*) FILTER (WHERE x.f = y.f AND x.h = y.h AND x.b = y.b)
	 FROM th_after x JOIN th_after_index y USING (id, qid));
DROP TABLE th_first, th_after, th_after_index;});
	my ($rows, $n, $same) = split /:/, $out;
	is($same, $n, "$name: the scores of the index-only read ($n)");
	return $rows;
}

my $size0 = $node->safe_psql('postgres', "SELECT pg_relation_size('$toast')");
stale_round('deleted rows, their chunks still stored',
	'DELETE FROM th WHERE id % 4 = 1');
stale_round('deleted rows vacuumed away, new values in their space',
	q{VACUUM th; INSERT INTO th SELECT g, f, h, b FROM (SELECT g, th_rand(90 + g % 97, 64) AS f
	  FROM generate_series(101, 130) g) s,
	  LATERAL (SELECT f::halfmultivector AS h, f::bitmultivector AS b) c});
stale_round('the TOAST table truncated behind the hinted blocks',
	'DELETE FROM th WHERE id > 20; VACUUM th');
my $size1 = $node->safe_psql('postgres', "SELECT pg_relation_size('$toast')");
cmp_ok($size1, '<', $size0 / 2, "VACUUM truncated the TOAST table ($size0 -> $size1 bytes)");
stale_round('the table rewritten by VACUUM FULL',
	q{INSERT INTO th SELECT g, f, h, b FROM (SELECT g, th_rand(120 + g % 89, 64) AS f
	  FROM generate_series(201, 240) g) s,
	  LATERAL (SELECT f::halfmultivector AS h, f::bitmultivector AS b) c; VACUUM FULL th});
is(stale_round('TRUNCATE, then new values',
	q{TRUNCATE th; INSERT INTO th SELECT g, f, h, b FROM (SELECT g, th_rand(80 + g % 71, 64) AS f
	  FROM generate_series(301, 312) g) s,
	  LATERAL (SELECT f::halfmultivector AS h, f::bitmultivector AS b) c}), '12', 'TRUNCATE: only the new rows');

# 3. values read in an order unrelated to their layout
$node->safe_psql('postgres', q{
INSERT INTO th SELECT g, f, h, b FROM (SELECT g, th_rand(150 + (g * 31) % 263, 64) AS f
	FROM generate_series(401, 460) g) s, LATERAL (SELECT f::halfmultivector AS h, f::bitmultivector AS b) c;
CREATE TABLE th_order AS SELECT id, (id * 37) % 61 AS k FROM th;
});
my $shuffled = q{
SELECT string_agg(t.id || ':' || (t.f <#> q.q) || ':' || (t.h <#> q.q), ',' ORDER BY o.k)
FROM th_order o JOIN th t USING (id), th_q q WHERE q.qid = 2};
my $shuffled_walk = $node->safe_psql('postgres',
	"SET enable_hashjoin = off; SET enable_mergejoin = off; $shuffled");
my $shuffled_index = $node->safe_psql('postgres',
	"SET enable_hashjoin = off; SET enable_mergejoin = off; SET colpali.maxsim_toast_walk = off; $shuffled");
ok(length($shuffled_walk) > 100, 'shuffled order: scores computed');
is($shuffled_walk, $shuffled_index, 'shuffled order: the scores of the index-only read');

# 4. values read again in another order (a rerank after a scan): where each
# value's first and last chunk lay is remembered, so the second reading
# asks the TOAST index for almost nothing either
my $nvalues = $node->safe_psql('postgres', "SELECT count(DISTINCT chunk_id) FROM $toast");
$before = $node->safe_psql('postgres', 'SELECT th_toast_index_scans()');
my $nrows = $node->safe_psql('postgres', 'SELECT count(*) FROM th');
my $again = $node->safe_psql('postgres', qq{
SET enable_hashjoin = off; SET enable_mergejoin = off;
SELECT count(*) FILTER (WHERE a IS NOT NULL AND b IS NOT NULL)
FROM (SELECT t.f <#> q.q AS a, t.h <#> q.q AS b FROM th t, th_q q WHERE q.qid = 2) s;
$shuffled});
is($again, "$nrows\n$shuffled_walk", 'read in order, then shuffled: the scores of the index-only read');
$node->poll_query_until('postgres', "SELECT th_toast_index_scans() > $before")
  or die 'no TOAST index statistics';
my $again_scans = $node->safe_psql('postgres', 'SELECT th_toast_index_scans()') - $before;
note("TOAST index scans reading $nvalues values in order, then f and h again shuffled: $again_scans");
cmp_ok($again_scans, '<', $nvalues / 4, 'values read again in another order: few index scans');

$node->stop;
done_testing();
