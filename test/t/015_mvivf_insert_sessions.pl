#!/usr/bin/perl
# mvivf inserts from several sessions and the backends' quantizer caches:
#  - a session whose cache holds the centroids of an index goes on inserting
#    and scanning correctly after another session rebuilt the index over
#    other rows (REINDEX) or truncated it;
#  - two sessions inserting into the same index in overlapping transactions
#    both have their rows found, by their own codes and by an exact scan.
# A document's own rows rank it first in the approximate stage alone (one
# document reranked) only if its codes and the scan's centroid scores come
# from the same centroids.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('inscache');
$node->init;
$node->start;

# rows of one half of 16 dimensions: each rebuild trains on the other half,
# so that the centroids of one build say nothing about the rows of the next
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION colpali;
CREATE FUNCTION mvi_rand(nrows int, half int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(r ORDER BY i)::multivector)
	FROM (SELECT i, array_agg(CASE WHEN d / 8 = half THEN (random() - 0.5)::real ELSE 0 END ORDER BY d)::real[] AS r
		  FROM generate_series(1, nrows) i, generate_series(0, 15) d GROUP BY i) s
$$;
CREATE TABLE mvi (id int, emb multivector);
CREATE FUNCTION mvi_self_hits(lo int, hi int) RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT count(*) FILTER (WHERE (SELECT id FROM mvi ORDER BY emb <#> t.emb LIMIT 1) = t.id)
	FROM mvi t WHERE t.id BETWEEN lo AND hi
$$;
INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(1, 300) i;
CREATE INDEX mvi_idx ON mvi USING mvivf (emb) WITH (lists = 1100, samples_per_list = 4);
});

my $approx = 'SET enable_seqscan = off; SET mvivf.iterative_scan = off; SET mvivf.candidates = 1;';
my $a = $node->background_psql('postgres');
my $b = $node->background_psql('postgres');
$a->query_safe($approx);
$b->query_safe($approx);

# session a fills its cache
$a->query_safe('INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(1001, 1010) i');
is($a->query_safe('SELECT mvi_self_hits(1, 10) || \'/\' || mvi_self_hits(1001, 1010)'),
	'10/10', 'session a: built and inserted documents found by their codes');

# another session rebuilds the index over rows of the other half
$node->safe_psql(
	'postgres', q{
DELETE FROM mvi;
INSERT INTO mvi SELECT i, mvi_rand(16, 1) FROM generate_series(2001, 2300) i;
REINDEX INDEX mvi_idx;
});
$a->query_safe('INSERT INTO mvi SELECT i, mvi_rand(16, 1) FROM generate_series(3001, 3010) i');
is($a->query_safe('SELECT mvi_self_hits(2001, 2010) || \'/\' || mvi_self_hits(3001, 3010)'),
	'10/10', 'session a after a REINDEX in another session: its inserts and scans use the new centroids');
is($b->query_safe('SELECT mvi_self_hits(3001, 3010)'),
	'10', 'session b finds the rows session a inserted after the REINDEX');

# TRUNCATE and a new build in another session
$node->safe_psql(
	'postgres', q{
TRUNCATE mvi;
INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(4001, 4300) i;
REINDEX INDEX mvi_idx;
});
$a->query_safe('INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(5001, 5010) i');
is($a->query_safe('SELECT mvi_self_hits(4001, 4010) || \'/\' || mvi_self_hits(5001, 5010)'),
	'10/10', 'session a after TRUNCATE and REINDEX in another session');

# a session whose first use of the index is a scan caches its centroids
# without the two-level grouping, which only assigning tokens needs; its
# first insert groups them in the cache
my $c = $node->background_psql('postgres');
$c->query_safe($approx);
is($c->query_safe('SELECT mvi_self_hits(4001, 4010)'),
	'10', 'session c: a scan first');
$c->query_safe('INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(5011, 5020) i');
is($c->query_safe('SELECT mvi_self_hits(5001, 5020)'),
	'20', 'session c: its inserts after a scan, and session a\'s, are found by their codes');
$c->quit;

# two sessions inserting in overlapping transactions
$a->query_safe('BEGIN');
$b->query_safe('BEGIN');
$a->query_safe('INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(6001, 6010) i');
$b->query_safe('INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(7001, 7010) i');
$a->query_safe('INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(6011, 6020) i');
$b->query_safe('INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(7011, 7020) i');
$b->query_safe('COMMIT');
$a->query_safe('COMMIT');
is( $node->safe_psql(
		'postgres',
		"$approx SELECT mvi_self_hits(6001, 6020) || '/' || mvi_self_hits(7001, 7020)"),
	'20/20',
	'rows inserted by two sessions at once are found by their codes');
is( $node->safe_psql(
		'postgres', q{
SET enable_seqscan = off; SET mvivf.miss_tolerance = 0;
SELECT bool_and(a = b) FROM (SELECT
	(SELECT array_agg(id) FROM (SELECT id FROM mvi ORDER BY emb <#> t.emb LIMIT 5) x) AS a,
	(SELECT array_agg(id ORDER BY s DESC, id) FROM (SELECT id, maxsim(emb, t.emb) s FROM mvi ORDER BY 2 DESC, 1 LIMIT 5) y) AS b
	FROM mvi t WHERE t.id BETWEEN 6001 AND 6020 OR t.id BETWEEN 7001 AND 7020) z}),
	't',
	'an exact index scan returns the exact top 5 for every inserted row');

$a->quit;
$b->quit;
$node->stop;
done_testing();
