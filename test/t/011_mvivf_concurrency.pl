#!/usr/bin/perl
# mvivf under concurrency and crashes:
#  - pgbench: concurrent inserts and ordered index scans, no errors;
#  - an immediate shutdown while inserts run: after restart every committed
#    row is found by the index and results equal the exact scan.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('conc');
$node->init;
$node->append_conf('postgresql.conf', 'autovacuum_naptime = 1s');
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION colpali;
CREATE FUNCTION mv_rand(nrows int, dim int, topic int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(r ORDER BY i)::multivector)
	FROM (SELECT i, array_agg(CASE WHEN d % 4 = topic THEN 1.0 ELSE 0 END + random()::real ORDER BY d)::real[] AS r
		  FROM generate_series(1, nrows) i, generate_series(0, dim - 1) d GROUP BY i) s
$$;
CREATE TABLE pages (id serial PRIMARY KEY, emb multivector);
INSERT INTO pages (emb) SELECT mv_rand(10, 8, i % 4) FROM generate_series(1, 300) i;
CREATE INDEX pages_idx ON pages USING mvivf (emb) WITH (lists = 8);
});

my $insert = q{INSERT INTO pages (emb) SELECT mv_rand(10, 8, (random() * 4)::int);
};
my $query = q{SET enable_seqscan = off;
SELECT id FROM pages ORDER BY emb <#> (SELECT mv_rand(3, 8, 1)) LIMIT 10;
};
my $delete = q{DELETE FROM pages WHERE id = (SELECT (random() * 600)::int);
};

# (random() * 4)::int is 4 an eighth of the time: such rows have no topic,
# unlike every row of the build, and their inserts may say so (the NOTICE
# of src/index/mvdrift.c); nothing else may come on stderr
my $drift_notice = qr{NOTICE:  index "pages_idx" represents a new row far worse than the rows it was built on\n}
  . qr{DETAIL:  [^\n]*\nHINT:  REINDEX[^\n]*\n};
$node->pgbench(
	'--no-vacuum --client=4 --transactions=60', 0,
	[qr{processed: 240/240}], [qr{^(?:$drift_notice)*$}],
	'concurrent inserts, deletes and index scans',
	{
		'011_insert@4' => $insert,
		'011_query@4' => $query,
		'011_delete@1' => $delete,
	});
$node->safe_psql('postgres', 'VACUUM pages');

# every live row is returned by an exhaustive index scan, none twice
my $exact = 'SET mvivf.probes = 8; SET mvivf.candidates = 100000; SET mvivf.rerank = 100000; SET enable_seqscan = off;';
sub check_rows
{
	my ($stage) = @_;
	my $r = $node->safe_psql('postgres', "$exact
		SELECT (SELECT count(*) FROM pages WHERE emb IS NOT NULL) = count(DISTINCT id) AND count(*) = count(DISTINCT id)
		FROM (SELECT id FROM pages ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 100000) x");
	is($r, 't', "index returns every committed row once $stage");
	$r = $node->safe_psql('postgres', "$exact
		SELECT bool_and(a = b) FROM (SELECT j,
			(SELECT array_agg(id) FROM (SELECT id FROM pages ORDER BY emb <#> q LIMIT 10) x) AS a,
			(SELECT array_agg(id ORDER BY s DESC) FROM (SELECT id, maxsim(emb, q) s FROM pages ORDER BY 2 DESC LIMIT 10) y) AS b
			FROM (SELECT j, mv_rand(3, 8, j % 4) AS q FROM generate_series(1, 5) j) qq) z");
	is($r, 't', "top-10 equals the exact scan $stage");
}
check_rows('after pgbench');

# crash while inserts run
my ($out, $err) = ('', '');
my $script = $node->basedir . '/insert.sql';
append_to_file($script, $insert);
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM pages');
my $bench = IPC::Run::start(
	[
		'pgbench', '--no-vacuum', '--client=3', '--time=30', '-f', $script,
		'-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$out, '2>', \$err);
# let some inserts commit, and the pending area grow over several pages
$node->poll_query_until('postgres', "SELECT count(*) > $before + 100 FROM pages")
  or die "inserts did not run";
$node->stop('immediate');
$bench->finish;
$node->start;
check_rows('after crash recovery');

# a vacuum (merge of the pending area) after recovery keeps everything
$node->safe_psql('postgres', 'VACUUM pages');
check_rows('after crash recovery and vacuum');

$node->stop;
done_testing();
