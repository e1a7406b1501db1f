#!/usr/bin/perl
# mvivf on-disk format versions: an index of format version 2 (no document
# lists, as 0.3.0 and 0.4.0 before the lists wrote it) stays readable and
# scans it by a full pass over the forward store; version 1 and unknown
# versions are refused with a hint to REINDEX.  (Version 3, mixed forward
# groups, is read as version 4 is: test 014.)  Old indexes are made by
# rewriting the metapage of a freshly built one while the server is down.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('mvformat');
# pages are rewritten by hand below, so no data checksums (initdb turns them
# on by default from PostgreSQL 18)
$node->init(extra => $node->pg_version >= 18 ? ['--no-data-checksums'] : []);
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION colpali;
SELECT setseed(0.5);
CREATE TABLE pages (id int PRIMARY KEY, emb multivector);
INSERT INTO pages SELECT i, l2_normalize((SELECT array_agg(ARRAY(
		SELECT random()::real - 0.5 FROM generate_series(1, 8) k WHERE i > 0 AND r > 0))
	FROM generate_series(1, 6) r)::multivector) FROM generate_series(1, 300) i;
CREATE INDEX pages_idx ON pages USING mvivf (emb) WITH (lists = 16);
});

my $q = q{'[[1,0,0,0,0,0,0,0],[0,0,0,1,0,0,0,0]]'};
my $exact = $node->safe_psql('postgres',
	"SET enable_indexscan = off; SELECT string_agg(id::text, ',' ORDER BY d, id) FROM "
	  . "(SELECT id, emb <#> $q AS d FROM pages ORDER BY 2, 1 LIMIT 10) x");
my $scan = qq{SET enable_seqscan = off; SET mvivf.miss_tolerance = 0;
SELECT string_agg(id::text, ',') FROM (SELECT id FROM pages ORDER BY emb <#> $q LIMIT 10) x};
my $explain = qq{SET enable_seqscan = off; LOAD 'colpali';
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id FROM pages ORDER BY emb <#> $q LIMIT 10};

is($node->safe_psql('postgres', $scan), $exact, 'version 4: exact with miss_tolerance = 0');
like($node->safe_psql('postgres', $explain), qr/probed=[1-9]\d* postings=[1-9]/,
	'version 4: document lists probed');

my $file = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT pg_relation_filepath('pages_idx')");

# The metapage (MvivfMetaPageData) starts after the 24-byte page header;
# its version is at byte 4, and the fields that version 3 added start at
# byte 208, right after forwardTail (the end of the version 2 metapage).
sub rewrite_meta
{
	my ($version, $v2layout) = @_;
	$node->stop;
	open(my $fh, '+<', $file) or die "open $file: $!";
	binmode $fh;
	my $page;
	sysread($fh, $page, 8192) == 8192 or die "read: $!";
	substr($page, 24 + 4, 4) = pack('L', $version);
	if ($v2layout)
	{
		substr($page, 24 + 208, 24) = "\0" x 24;
		substr($page, 12, 2) = pack('S', 24 + 208);    # pd_lower
	}
	sysseek($fh, 0, 0);
	syswrite($fh, $page, 8192) == 8192 or die "write: $!";
	close $fh;
	$node->start;
}

rewrite_meta(2, 1);
is($node->safe_psql('postgres', $scan), $exact, 'version 2: still readable, exact');
like($node->safe_psql('postgres', $explain), qr/probed=0 postings=0 exact=0/,
	'version 2: no lists, a full pass');
like($node->safe_psql('postgres', $explain), qr/tokens=1800 /,
	'version 2: every token scored by centroid interaction');
$node->safe_psql('postgres',
	"INSERT INTO pages SELECT 1000, ${q}::multivector");
is($node->safe_psql('postgres',
	"SET enable_seqscan = off; SELECT id FROM pages ORDER BY emb <#> $q LIMIT 1"),
	'1000', 'version 2: inserts work and are found');

rewrite_meta(1, 0);
my ($ret, $out, $err) = $node->psql('postgres', $scan);
like($err, qr/has mvivf format version 1, expected 2 to 4/, 'version 1 refused');
like($err, qr/HINT:  REINDEX the index/, 'with a hint to REINDEX');

rewrite_meta(5, 0);
($ret, $out, $err) = $node->psql('postgres', $scan);
like($err, qr/has mvivf format version 5, expected 2 to 4/, 'a later version refused');

$node->safe_psql('postgres', 'REINDEX INDEX pages_idx');
is($node->safe_psql('postgres', $scan), $exact =~ s/^/1000,/r =~ s/,[^,]*$//r,
	'REINDEX: version 4 again, exact');
like($node->safe_psql('postgres', $explain), qr/probed=[1-9]/, 'REINDEX: lists again');

$node->stop;
done_testing();
