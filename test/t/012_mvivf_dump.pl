#!/usr/bin/perl
# pg_dump / pg_restore of a table with an mvivf index: the index (with its
# reloptions) is recreated, is valid, is used, and returns the same rows.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('mvdump');
$node->init;
$node->start;
my $tmp = PostgreSQL::Test::Utils::tempdir;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql(
	'src', q{
CREATE EXTENSION colpali;
SELECT setseed(0.5);
CREATE TABLE pages (id int PRIMARY KEY, emb multivector);
INSERT INTO pages SELECT i, l2_normalize((SELECT array_agg(ARRAY(
		SELECT random()::real FROM generate_series(1, 8) k WHERE i > 0 AND r > 0))
	FROM generate_series(1, 6) r)::multivector) FROM generate_series(1, 200) i;
CREATE INDEX pages_idx ON pages USING mvivf (emb) WITH (lists = 4, bits = 4);
});

my $query = q{SET enable_seqscan = off; SET mvivf.probes = 4; SET mvivf.candidates = 1000; SET mvivf.rerank = 1000;
SELECT string_agg(id::text, ',') FROM (SELECT id FROM pages ORDER BY emb <#> '[[1,0,0,0,0,0,0,0],[0,0,0,1,0,0,0,0]]' LIMIT 10) x};
my $expected = $node->safe_psql('src', $query);

$node->command_ok([ 'pg_dump', '-Fc', '-f', "$tmp/src.dump", '-d', $node->connstr('src') ],
	'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('dst'), "$tmp/src.dump" ], 'pg_restore');

is($node->safe_psql('dst',
	"SELECT pg_get_indexdef('pages_idx'::regclass), indisvalid FROM pg_index WHERE indexrelid = 'pages_idx'::regclass"),
	"CREATE INDEX pages_idx ON public.pages USING mvivf (emb) WITH (lists='4', bits='4')|t",
	'index recreated with its options');
like($node->safe_psql('dst', "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM pages ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 3"),
	qr/Index Scan using pages_idx/, 'restored index is used');
is($node->safe_psql('dst', $query), $expected, 'restored index returns the same rows');

$node->stop;
done_testing();
