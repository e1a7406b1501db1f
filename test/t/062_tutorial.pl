# docs/tutorial.md, run as written: every ```sh block (by bash) and ```sql
# block (by psql) in order, in one shell, except blocks after a
# "<!-- tutorial: skip -->" line (package installation).  The tutorial's
# variables are set first: MODEL to the tiny fixture checkpoint, PDFS to a
# folder of PDFs generated here (test/tutorial/make_pdfs.py), PGDATABASE to
# a database the tutorial creates.  Then:
#  - every block succeeds, colpali-ingest loads every page and logs plain
#    progress lines (its output is not a terminal);
#  - the ranked answer is the exact MaxSim ranking (a sequential scan of
#    maxsim(), computed here, not by the tutorial's index scan);
#  - the heat-map example writes a PNG of the best page;
#  - the "embeddings later" path embeds every page.
use strict;
use warnings;

use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = $ENV{TESTDIR};
my $model = "$top/test/fixtures/models/tiny";
plan skip_all => 'fixtures not found' unless -d $model;
plan skip_all => 'pdftoppm not found (poppler-utils)'
  unless system('sh', '-c', 'command -v pdftoppm >/dev/null') == 0;
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
plan skip_all => 'python3 with psycopg and PIL not found'
  unless system($python, '-c', 'import psycopg, PIL') == 0;

# --- the tutorial's blocks -------------------------------------------------
my $text = slurp_file("$top/docs/tutorial.md");
my @blocks;
my $skip_next = 0;
while ($text =~ /(<!-- tutorial: skip -->)|^```(\w+)\n(.*?)^```$/gms)
{
	if (defined $1) { $skip_next = 1; next; }
	my ($lang, $body) = ($2, $3);
	next unless $lang eq 'sh' || $lang eq 'sql';
	if ($skip_next) { $skip_next = 0; next; }
	push @blocks, [ $lang, $body ];
}
ok(scalar(grep { $_->[0] eq 'sh' } @blocks) >= 4, 'the tutorial has shell blocks to run');
ok(scalar(grep { $_->[0] eq 'sql' } @blocks) >= 3, 'the tutorial has SQL blocks to run');
ok((grep { $_->[1] =~ /colpali-ingest/ } @blocks), 'colpali-ingest is among the blocks run');
ok((grep { $_->[1] =~ /heatmap\.py/ } @blocks), 'the heat-map example is among the blocks run');

my $script = "set -euo pipefail\n";
my $n = 0;
for my $b (@blocks)
{
	$n++;
	$script .= "echo '=== block $n'\n";
	if ($b->[0] eq 'sh')
	{
		$script .= $b->[1];
	}
	else
	{
		$script .= "psql -X -v ON_ERROR_STOP=1 <<'TUTORIAL_SQL'\n$b->[1]TUTORIAL_SQL\n";
	}
}

# --- a folder of PDFs and a server -----------------------------------------
my $tmp = tempdir(CLEANUP => 1);
my $pdfs = "$tmp/papers";
system($python, "$top/test/tutorial/make_pdfs.py", $pdfs) == 0 or BAIL_OUT('make_pdfs.py failed');
my @made = glob("$pdfs/*.pdf");
is(scalar(@made), 2, 'two PDFs generated');

my $node = PostgreSQL::Test::Cluster->new('tutorial');
$node->init;
$node->append_conf('postgresql.conf', "colpali.threads = 1\n");
$node->start;

my $bindir = $node->config_data('--bindir');
my $workdir = "$tmp/checkout";
make_path($workdir);
symlink("$top/python", "$workdir/python") or die "symlink: $!";
my %env = (
	%ENV,
	MODEL => $model,
	PDFS => $pdfs,
	PGDATABASE => 'tutorial',
	PGHOST => $node->host,
	PGPORT => $node->port,
	PATH => "$top/python/bin:$bindir:/usr/local/bin:/usr/bin:/bin",
	PYTHONDONTWRITEBYTECODE => 1);
delete $env{PGUSER};
delete $env{PGOPTIONS};

my ($out, $err) = ('', '');
my $ok;
{
	local %ENV = %env;
	$ok = IPC::Run::run([ 'bash', '-c', "cd '$workdir' && $script" ],
		'>', \$out, '2>', \$err);
}
ok($ok, 'every block of the tutorial runs') or diag("stdout:\n$out\nstderr:\n$err");
note("tutorial stdout:\n$out\ntutorial stderr:\n$err");

# --- what it did -------------------------------------------------------------
like($err, qr/^colpali-ingest: 5 pages to load from 2 files into pages \(0 already loaded\)$/m,
	'colpali-ingest finds the five pages of the two PDFs');
like($err, qr/^colpali-ingest: \d+\/5 pages, [0-9.]+ pages\/s, ETA \S+: papers\/handbook\.pdf p\. 1-2$/m,
	'progress is logged as plain lines when the output is not a terminal');
unlike($err, qr/\r/, 'no carriage returns (no progress bar) in non-terminal output');
like($err, qr/^colpali-ingest: done: 5 pages loaded .* 0 files failed$/m, 'the summary counts them');
is($node->safe_psql('tutorial', 'SELECT count(*), count(embedding) FROM pages'), '5|5',
	'every page is stored with its embedding');

my $query = 'What was the revenue by region in 2023?';
my $exact = $node->safe_psql('tutorial', qq{
	SET enable_indexscan = off;
	SELECT string_agg(document || ':' || page, ' ' ORDER BY s DESC, document, page)
	FROM (SELECT document, page, maxsim(embedding, colpali_query('$query')) AS s
		  FROM pages ORDER BY s DESC, document, page LIMIT 3) t});
my @ranked = $out =~ /^\s*(papers\/\S+)\s*\|\s*(\d+)\s*\|\s*-?[0-9.]+\s*$/mg;
my @pairs;
push @pairs, shift(@ranked) . ':' . shift(@ranked) while @ranked;
is(join(' ', @pairs), $exact, 'the tutorial prints the three best pages in exact MaxSim order');

my ($best) = split / /, $exact;
my ($best_doc, $best_page) = split /:/, $best;
like($out, qr/^\Q$best_doc\E page \Q$best_page\E  maxsim [0-9.-]+  -> answer\.png$/m,
	'the heat map is drawn on the best page');
my $png = -f "$workdir/answer.png" ? slurp_file("$workdir/answer.png") : '';
is(substr($png, 0, 8), "\x89PNG\r\n\x1a\n", 'answer.png is a PNG');

is($node->safe_psql('tutorial', 'SELECT count(*), count(embedding) FROM scans'), '5|5',
	'images stored first are embedded by colpali_embed_images');
like($out, qr/^\s*5 \|\s*5\s*$/m, 'the tutorial shows them all embedded');
is($node->safe_psql('tutorial', 'SELECT count(*) FROM colpali_progress'), '0',
	'no run is left in colpali_progress');

# --- embedding in the database: a file the server cannot embed is that ----
# file's error, and the run goes on
make_path("$tmp/mixed");
{
	open(my $fh, '>:raw', "$tmp/mixed/truncated.png") or die $!;
	print $fh substr(slurp_file("$top/test/fixtures/images/page_chart.png"), 0, 3000);
	close $fh;
}
system('cp', "$pdfs/handbook.pdf", "$tmp/mixed/") == 0 or die 'cp failed';
($out, $err) = ('', '');
{
	local %ENV = %env;
	my $h = IPC::Run::start([ 'colpali-ingest', "$tmp/mixed" ], '>', \$out, '2>', \$err);
	$h->finish;
	is($h->result(0), 1, 'colpali-ingest exits with 1 when a file failed');
}
like($err, qr/^colpali-ingest: error: \Q$tmp\E\/mixed\/truncated\.png: could not encode image/m,
	'the image the server cannot decode is named with the reason');
is($node->safe_psql('tutorial',
		"SELECT count(*), count(embedding) FROM pages WHERE document = 'mixed/handbook.pdf'"),
	'2|2', 'the other file of the run is loaded and embedded');

$node->stop;
done_testing();
