#!/usr/bin/perl
# mvivf and WAL: a streaming standby returns the same top-k as the primary
# after the build, after inserts (pending area), after deleting 30% of the
# rows and VACUUM (merge + compaction); deleted rows are never returned and
# the index stays exact (every list probed, every document reranked) when
# compared with the exact scan.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bkp', has_streaming => 1);
$standby->start;

$primary->safe_psql(
	'postgres', q{
CREATE EXTENSION colpali;
CREATE FUNCTION mv_rand(nrows int, dim int, topic int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(r ORDER BY i)::multivector)
	FROM (SELECT i, array_agg(CASE WHEN d % 4 = topic THEN 1.0 ELSE 0 END + random()::real ORDER BY d)::real[] AS r
		  FROM generate_series(1, nrows) i, generate_series(0, dim - 1) d GROUP BY i) s
$$;
CREATE TABLE pages (id int PRIMARY KEY, emb multivector);
INSERT INTO pages SELECT i, mv_rand(10, 8, i % 4) FROM generate_series(1, 400) i;
CREATE TABLE queries AS SELECT j, mv_rand(3, 8, j % 4) AS q FROM generate_series(1, 8) j;
CREATE INDEX pages_idx ON pages USING mvivf (emb) WITH (lists = 8);
});

# top-10 ids of every query, through the index (or the exact scan)
my $exact_settings = 'SET mvivf.probes = 8; SET mvivf.candidates = 100000; SET mvivf.rerank = 100000;';
sub topk
{
	my ($node, $index) = @_;
	my $force = $index ? 'SET enable_seqscan = off;' : 'SET enable_indexscan = off;';
	return $node->safe_psql('postgres', "$exact_settings $force
		SELECT string_agg(ids, E'\\n' ORDER BY j) FROM (
			SELECT j, (SELECT string_agg(id::text, ',') FROM
				(SELECT id FROM pages ORDER BY emb <#> q LIMIT 10) x) AS ids FROM queries) y");
}

sub check_all
{
	my ($stage) = @_;
	$primary->wait_for_catchup($standby);
	my $p = topk($primary, 1);
	is(topk($standby, 1), $p, "standby top-10 equals primary top-10 $stage");
	is($p, topk($primary, 0), "index top-10 equals exact scan $stage");
	my $plan = $standby->safe_psql('postgres',
		"SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM pages ORDER BY emb <#> (SELECT q FROM queries LIMIT 1) LIMIT 10");
	like($plan, qr/Index Scan using pages_idx/, "standby uses the index $stage");
}

check_all('after build');

$primary->safe_psql('postgres',
	'INSERT INTO pages SELECT i, mv_rand(10, 8, i % 4) FROM generate_series(401, 600) i');
check_all('after inserts');

$primary->safe_psql('postgres', 'DELETE FROM pages WHERE id % 10 < 3');
$primary->safe_psql('postgres', 'VACUUM pages');
check_all('after deleting 30% and vacuum');

my $returned = $standby->safe_psql('postgres',
	"$exact_settings SET enable_seqscan = off;
	 SELECT count(*), count(*) FILTER (WHERE id % 10 < 3) FROM
		(SELECT id FROM pages ORDER BY emb <#> (SELECT q FROM queries LIMIT 1) LIMIT 100000) x");
is($returned, '420|0', 'standby index returns every live row and no deleted one');

# space is reused: more inserts after vacuum do not grow the index much
my $size_before = $primary->safe_psql('postgres', "SELECT pg_relation_size('pages_idx')");
$primary->safe_psql('postgres',
	'INSERT INTO pages SELECT i, mv_rand(10, 8, i % 4) FROM generate_series(601, 700) i; VACUUM pages');
my $size_after = $primary->safe_psql('postgres', "SELECT pg_relation_size('pages_idx')");
cmp_ok($size_after, '<=', $size_before + 8 * 8192, 'pages freed by vacuum are reused');
check_all('after reinserting');

$standby->stop;
$primary->stop;
done_testing();
