#!/usr/bin/perl
# mvivf's AVX-512 loops and its portable loops compute the same integers and
# floats: residual codes of inserted rows, centroid interaction, document-list
# probes and the fixed-point quantized MaxSim.  On a CPU with AVX-512 the
# server normally takes the AVX-512 forms; COLPALI_MVIVF_PORTABLE in the
# server's environment makes it take the portable ones.  The same queries on
# the same index must then give the same rows, distances and scan counters
# (documents refined and reranked, list entries read, the error margin), and
# the same rows inserted under either form must give byte-identical index
# pages.  Where the CPU lacks AVX-512 both runs take the portable loops and
# the test only checks that they repeat themselves.
# Those runs set colpali.cpu_amx = off: with it on, on a CPU with AMX-INT8,
# the quantized MaxSim runs on int8 tiles, another approximation of the same
# score (its own engine test bounds its error), so its counters may differ;
# its rows and distances must still be those of the 16-bit tables here.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('mvportable');
$node->init;
$node->append_conf('postgresql.conf', 'max_parallel_workers_per_gather = 0');
$node->start;
# pageinspect is a contrib module, packaged with Debian's server but not with
# every build
plan skip_all => 'pageinspect is not installed'
  unless $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_available_extensions WHERE name = 'pageinspect'") eq '1';

# 600 documents of 24 unit rows of 128 dimensions around 40 topics, so that
# the approximate stage has an order to get right; queries of 20 and of 36
# rows (more than one register of 32 query rows)
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION colpali;
CREATE EXTENSION pageinspect;
SELECT setseed(0.25);
CREATE TABLE topic AS
	SELECT t, array_agg((random() - 0.5)::real ORDER BY d) AS c
	FROM generate_series(0, 39) t, generate_series(1, 128) d GROUP BY t;
CREATE FUNCTION mvp_doc(nrows int, t1 int, t2 int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(v ORDER BY r)::multivector)
	FROM (SELECT r, array_agg(c[d] + 0.9 * (random()::real - 0.5) ORDER BY d) AS v
		  FROM generate_series(1, nrows) r, generate_series(1, 128) d, topic
		  WHERE topic.t = CASE WHEN r % 2 = 0 THEN t1 ELSE t2 END
		  GROUP BY r) x
$$;
CREATE TABLE pages (id int PRIMARY KEY, emb multivector);
ALTER TABLE pages ALTER emb SET STORAGE EXTERNAL;
INSERT INTO pages SELECT i, mvp_doc(24, i % 40, (i * 7) % 40) FROM generate_series(1, 600) i;
CREATE TABLE queries (qid int, q multivector);
INSERT INTO queries SELECT j, mvp_doc(CASE WHEN j % 2 = 0 THEN 20 ELSE 36 END, j % 40, (j * 3) % 40)
	FROM generate_series(1, 6) j;
CREATE TABLE newrows AS SELECT i, mvp_doc(24, i % 40, (i * 11) % 40) AS emb FROM generate_series(601, 630) i;
CREATE TABLE ins_avx (id int, emb multivector);
CREATE TABLE ins_portable (id int, emb multivector);
INSERT INTO ins_avx SELECT * FROM pages;
INSERT INTO ins_portable SELECT * FROM pages;
});
for my $bits (1, 2, 4)
{
	$node->safe_psql('postgres',
		"CREATE INDEX pages_idx$bits ON pages USING mvivf (emb) WITH (lists = 64, bits = $bits)");
}
$node->safe_psql('postgres', q{
CREATE INDEX ins_avx_idx ON ins_avx USING mvivf (emb) WITH (lists = 64);
CREATE INDEX ins_portable_idx ON ins_portable USING mvivf (emb) WITH (lists = 64);
});

# every query on every index: its rows with their distances, and the scan
# counters of EXPLAIN (ANALYZE), at the given work_mem.  At 1MB the code
# tables of the 4-bit index do not fit per code byte (256 x 32 values x 64
# bytes a block of query rows) with every query row, so its scans take the
# nibble tables, which must give the very same sums; the 1- and 2-bit
# indexes keep their byte tables.
sub scans
{
	my ($work_mem, $amx) = @_;
	$amx //= 'off';
	my $out = '';
	for my $bits (1, 2, 4)
	{
		my @others = grep { $_ != $bits } (1, 2, 4);
		for my $qid (1 .. 6)
		{
			my $q = "(SELECT q FROM queries WHERE qid = $qid)";
			# one index at a time: drop the others inside a transaction that is rolled back
			my $sql = "BEGIN; "
			  . join('', map { "DROP INDEX pages_idx$_; " } @others)
			  . "SET LOCAL enable_seqscan = off; SET LOCAL work_mem = '$work_mem'; LOAD 'colpali'; "
			  . "SET LOCAL colpali.cpu_amx = $amx; "
			  . "SELECT string_agg(id || ':' || d, ',') FROM "
			  . "(SELECT id, emb <#> $q AS d FROM pages ORDER BY emb <#> $q LIMIT 10) x; "
			  . "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
			  . "SELECT id FROM pages ORDER BY emb <#> $q LIMIT 10; ROLLBACK;";
			my $res = $node->safe_psql('postgres', $sql);
			my ($rows) = split /\n/, $res;
			my ($counters) = $res =~ /(mvivf pages_idx\d+: .*)$/m;
			$out .= "bits=$bits q=$qid rows=$rows\n" . ($counters // 'no counters') . "\n";
		}
	}
	return $out;
}

sub insert_into
{
	my ($table) = @_;
	$node->safe_psql('postgres', "INSERT INTO $table SELECT * FROM newrows ORDER BY i");
}

my $avx = scans('4MB');
like($avx, qr/refined=\d+ .*reranked=\d+/, 'scan counters are reported');
my $avx_nibbles = scans('1MB');
# which tables the 4-bit index's scans of a 36-row query took (DEBUG1)
for my $case (['4MB', 'byte'], ['1MB', 'nibble'])
{
	my ($wm, $kind) = @$case;
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		"BEGIN; DROP INDEX pages_idx1; DROP INDEX pages_idx2; SET LOCAL enable_seqscan = off; "
		  . "LOAD 'colpali'; SET LOCAL colpali.cpu_amx = off; "
		  . "SET LOCAL work_mem = '$wm'; SET LOCAL client_min_messages = debug1; "
		  . "SELECT id FROM pages ORDER BY emb <#> (SELECT q FROM queries WHERE qid = 1) LIMIT 10; ROLLBACK;");
	like($stderr, qr/approximate passes over 36 query rows, $kind code tables/,
		"work_mem $wm: $kind code tables");
}
is($avx_nibbles, $avx,
	'nibble tables (work_mem too small for byte tables): the same rows, distances and counters');

# the quantized MaxSim on AMX-INT8 tiles, where the CPU has them: the same
# rows and distances (the exact rerank decides them; the counters may differ)
my $amx = scans('4MB', 'on');
my ($amx_ret, $amx_out, $amx_err) = $node->psql('postgres',
	"BEGIN; DROP INDEX pages_idx1; DROP INDEX pages_idx4; SET LOCAL enable_seqscan = off; "
	  . "SET LOCAL client_min_messages = debug1; "
	  . "SELECT id FROM pages ORDER BY emb <#> (SELECT q FROM queries WHERE qid = 1) LIMIT 10; ROLLBACK;");
my ($kind) = $amx_err =~ /query rows, (AMX-INT8 code tiles|AVX-512 VNNI code products|byte code tables)/;
ok(defined $kind, 'the scan says how it scores codes');
note("colpali.cpu_amx = on: " . ($kind // 'unknown'));
my $rows_of = sub { join("\n", $_[0] =~ /^(bits=\d+ q=\d+ rows=.*)$/mg) };
is($rows_of->($amx), $rows_of->($avx),
	"colpali.cpu_amx = on ($kind): the same rows and distances as the 16-bit tables");
insert_into('ins_avx');

$ENV{COLPALI_MVIVF_PORTABLE} = '1';
$node->restart;
my $portable = scans('4MB');
my $portable_nibbles = scans('1MB');
insert_into('ins_portable');
delete $ENV{COLPALI_MVIVF_PORTABLE};
$node->restart;

is($portable, $avx, 'portable loops: the same rows, distances and scan counters as the AVX-512 ones');
is($portable_nibbles, $avx_nibbles, 'portable loops on nibble tables: the same as the AVX-512 ones');

# the index pages of the two tables after the same inserts: identical bytes
# after each page's LSN (its first 8 bytes)
my $pages = q{
SELECT string_agg(md5(substr(get_raw_page('%s', b::int), 9)), ',' ORDER BY b)
FROM generate_series(0, pg_relation_size('%s') / 8192 - 1) b};
my $p_avx = $node->safe_psql('postgres', sprintf($pages, 'ins_avx_idx', 'ins_avx_idx'));
my $p_portable = $node->safe_psql('postgres', sprintf($pages, 'ins_portable_idx', 'ins_portable_idx'));
isnt($p_avx, '', 'index pages read');
is($p_portable, $p_avx, 'inserted rows: the same index pages from the portable and the AVX-512 encoders');

# and the inserted rows are found by an ordered scan
is( $node->safe_psql(
		'postgres', q{SET enable_seqscan = off;
SELECT count(*) FROM newrows n WHERE n.i IN
	(SELECT id FROM ins_portable ORDER BY emb <#> n.emb LIMIT 1)}),
	'30',
	'every inserted row is its own nearest document');

$node->stop;
done_testing();
