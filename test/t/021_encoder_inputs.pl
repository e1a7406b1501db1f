# Bad input never crashes a backend: truncated, corrupt, empty and unknown
# image bytes, images over colpali.max_image_pixels, very long text; each
# gives an ERROR with an SQLSTATE and the session goes on.  Run in process
# and through the worker, where one bad page must not fail the other
# requests batched with it.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $fx = "$ENV{TESTDIR}/test/fixtures";
my $model = $ENV{COLPALI_TEST_MODEL} // "$fx/models/tiny";
plan skip_all => 'fixtures not found' unless -d $model;

my $page = slurp_file("$fx/images/page_text.png");
my $jpeg = slurp_file("$fx/images/photo_baseline.jpg");
my %bad = (
	'truncated png' => substr($page, 0, 200),
	'png header only' => substr($page, 0, 33),
	'truncated jpeg' => substr($jpeg, 0, int(length($jpeg) / 3)),
	'garbage' => join('', map { chr(($_ * 7919) % 256) } 1 .. 5000),
	'png signature, garbage after' => "\x89PNG\r\n\x1a\n" . ("\xff" x 100),
	'text' => "this is not an image\n",
);
my %expect = (
	'truncated png' => qr/^(22P03)$/,
	'png header only' => qr/^(22P03|0A000)$/,
	'truncated jpeg' => qr/^(22P03|ok)$/,	# stb pads truncated JPEG scans, like Pillow's LOAD_TRUNCATED_IMAGES
	'garbage' => qr/^(22P03|0A000)$/,
	'png signature, garbage after' => qr/^(22P03)$/,
	'text' => qr/^(22P03|0A000)$/,
);

my $node = PostgreSQL::Test::Cluster->new('inputs');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'colpali'
colpali.model_path = '$model'
colpali.threads = 1
colpali.max_wait_ms = 300
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION colpali;
	CREATE FUNCTION sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		EXECUTE q;
		RETURN 'ok';
	EXCEPTION WHEN OTHERS THEN
		RETURN SQLSTATE;
	END $$;
	CREATE TABLE bad (name text, data bytea);
});
for my $k (sort keys %bad)
{
	$node->safe_psql('postgres',
		"INSERT INTO bad VALUES ('$k', '\\x" . unpack('H*', $bad{$k}) . "')");
}
$node->safe_psql('postgres',
	"INSERT INTO bad VALUES ('page', '\\x" . unpack('H*', $page) . "')");

for my $mode ('worker', 'in-process')
{
	my $set = $mode eq 'worker' ? '' : 'SET colpali.use_worker = off;';
	for my $k (sort keys %bad)
	{
		my $state = $node->safe_psql('postgres',
			"$set SELECT sqlstate_of(format('SELECT colpali_image(%L::bytea)', data)) FROM bad WHERE name = '$k'");
		like($state, $expect{$k}, "$mode: $k -> $state");
	}
	my ($ret, $out, $err) = $node->psql('postgres',
		"$set SELECT colpali_image(data) FROM bad WHERE name = 'truncated png'");
	like($err, qr/ERROR:  could not encode image: .*\nDETAIL:  .+/s, "$mode: error message has a detail");

	is($node->safe_psql('postgres',
			"$set SET colpali.max_image_pixels = 10000; SELECT sqlstate_of(format('SELECT colpali_image(%L::bytea)', data)) FROM bad WHERE name = 'page'"),
		'54000', "$mode: image over colpali.max_image_pixels");
	is($node->safe_psql('postgres',
			"$set SET colpali.max_image_pixels = 0; SELECT num_vectors(colpali_image(data)) > 0 FROM bad WHERE name = 'page'"),
		't', "$mode: max_image_pixels = 0 disables the limit");

	my $long = $node->safe_psql('postgres',
		"$set SELECT sqlstate_of(\$\$SELECT colpali_query(repeat('revenue growth by quarter ', 2500))\$\$)");
	like($long, qr/^(ok|54000)$/, "$mode: 65 kB of query text -> $long");
	is($node->safe_psql('postgres', "$set SELECT sqlstate_of(\$\$SELECT colpali_query(repeat('x', 70000))\$\$)"),
		'54000', "$mode: over the query text limit");
	is($node->safe_psql('postgres',
			"$set SELECT dims(colpali_query(E'tabs\\tnewlines\\n\\n<image><bos> \x{e9}\x{1F600}'))"),
		'128', "$mode: special tokens and non-ASCII text in a query");
	is($node->safe_psql('postgres', "$set SELECT dims(colpali_query(''))"), '128', "$mode: empty query");
}

# one bad page batched with good ones: only its requester gets the error
my @runs;
for my $name ('page', 'truncated png', 'page')
{
	my %r = (out => '', err => '');
	$r{h} = IPC::Run::start(
		[ 'psql', '-X', '-qAt', '-d', $node->connstr('postgres'), '-c',
		  "SELECT num_vectors(colpali_image(data)) > 0 FROM bad WHERE name = '$name'" ],
		'>', \$r{out}, '2>', \$r{err});
	push @runs, \%r;
}
$_->{h}->finish for @runs;
is($runs[0]{out} . $runs[2]{out}, "t\nt\n", 'good pages in a batch with a bad one are encoded');
like($runs[1]{err}, qr/could not encode image/, 'the bad page alone gets the error');

# bulk: the procedure fills an embedding column in batches, with progress
$node->safe_psql('postgres', q{
	CREATE TABLE docs (id int PRIMARY KEY, png bytea, emb multivector);
	INSERT INTO docs SELECT g, CASE WHEN g = 3 THEN NULL ELSE (SELECT data FROM bad WHERE name = 'page') END
	FROM generate_series(1, 7) g;
});
my ($ret, $out, $err) = $node->psql('postgres', "CALL colpali_embed_images('docs', 'png', 'emb', 4)");
is($ret, 0, 'colpali_embed_images runs');
like($err, qr/4 of 6 images embedded.*6 of 6 images embedded/s, 'progress is reported per batch');
is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE emb IS NOT NULL), count(*) FILTER (WHERE png IS NULL AND emb IS NULL) FROM docs"),
	'6|1', 'every image row got its embedding, the NULL image row none');
is($node->safe_psql('postgres', q{
	SELECT bool_and(abs(maxsim(d.emb, q.q) - maxsim(colpali_image(d.png), q.q)) < 1e-4)
	FROM docs d, (SELECT colpali_query('total revenue') AS q) q WHERE d.id IN (1, 7)}),
	't', 'stored embeddings are those of colpali_image (up to batching round-off)');

# one undecodable image in the middle does not block the rows after it: the
# procedure reports its key in a WARNING, leaves its embedding NULL and goes
# on; a second run tries the bad row once more and stops
$node->safe_psql('postgres', q{
	CREATE TABLE mixed (id int PRIMARY KEY, png bytea, emb multivector);
	INSERT INTO mixed SELECT g, (SELECT data FROM bad WHERE name = CASE WHEN g = 4 THEN 'truncated png' ELSE 'page' END)
	FROM generate_series(1, 7) g;
});
($ret, $out, $err) = $node->psql('postgres', "CALL colpali_embed_images('mixed', 'png', 'emb', 2)");
is($ret, 0, 'colpali_embed_images goes past a bad image');
like($err, qr/WARNING:  colpali_embed_images: skipped the row with key \(id\)=\(4\): could not encode image/,
	'the bad row is named in a WARNING');
like($err, qr/6 of 7 images embedded.*WARNING:  colpali_embed_images: 1 of 7 images could not be embedded/s,
	'the run ends with a count of the failures');
is($node->safe_psql('postgres', "SELECT string_agg(id::text, ',' ORDER BY id) FROM mixed WHERE emb IS NULL"),
	'4', 'every row but the bad one got its embedding');
($ret, $out, $err) = $node->psql('postgres', "CALL colpali_embed_images('mixed', 'png', 'emb', 2)");
is($ret, 0, 'a second run ends too');
like($err, qr/skipped the row with key \(id\)=\(4\).*0 of 1 images embedded/s,
	'a second run tries the bad row once');
$node->safe_psql('postgres', q{
	CREATE TABLE nokey (png bytea, emb multivector);
	INSERT INTO nokey SELECT data FROM bad WHERE name IN ('page', 'garbage');
});
($ret, $out, $err) = $node->psql('postgres', "CALL colpali_embed_images('nokey', 'png', 'emb')");
like($err, qr/skipped the row with ctid \(0,\d+\): could not encode image/,
	'a table without a primary key names the row by ctid');

# one statement encodes each distinct query text once, whatever the plan: a
# sequential scan evaluates colpali_query per row, its result is kept per
# call site (counted by colpali_stats.requests, in both modes)
$node->safe_psql('postgres', q{
	CREATE TABLE fifty AS SELECT g AS id, array_fill((g / 50.0)::real, ARRAY[3, 128])::multivector AS emb
	FROM generate_series(1, 50) g;
	ANALYZE fifty;
});
for my $mode ('worker', 'in-process')
{
	my $set = $mode eq 'worker' ? '' : 'SET colpali.use_worker = off;';
	my @r = split /\n/, $node->safe_psql('postgres', qq{
		$set SET max_parallel_workers_per_gather = 0;
		SELECT requests FROM colpali_stats;
		SELECT count(*) FROM (SELECT id FROM fifty ORDER BY emb <#> colpali_query('revenue by region') LIMIT 10) s;
		SELECT requests FROM colpali_stats;
		SELECT count(DISTINCT emb <#> colpali_query('quarter ' || (id % 3))) FROM fifty;
		SELECT requests FROM colpali_stats;
		SELECT count(*) FROM (SELECT id FROM fifty ORDER BY emb <#> colpali_query('revenue by region') LIMIT 10) s;
		SELECT requests FROM colpali_stats;
	});
	is($r[2] - $r[0], 1, "$mode: ORDER BY emb <#> colpali_query('...') over 50 rows: 1 encoder request");
	is($r[4] - $r[2], 3, "$mode: three distinct texts over 50 rows: 3 encoder requests");
	is($r[6] - $r[4], 1, "$mode: the next statement encodes again");
}
is($node->safe_psql('postgres', q{
	SET max_parallel_workers_per_gather = 0;
	SELECT bool_and(a = b) FROM (SELECT emb <#> colpali_query('revenue by region') AS a,
		emb <#> (SELECT colpali_query('revenue by region')) AS b FROM fifty) s}),
	't', 'the kept result is the encoding of the text');
my $other = "$fx/models/tiny-bf16";
# (the text depends on the row, though it is always the same: a stable call of
# constants alone is a constant to the planner, which from PostgreSQL 16 on
# counts its distinct values as already sorted)
is($node->safe_psql('postgres', qq{
	SET colpali.use_worker = off; SET max_parallel_workers_per_gather = 0;
	SELECT count(DISTINCT colpali_query('revenue by region' || substr('', id))::text) FROM fifty
	WHERE id <= 6 AND set_config('colpali.model_path', CASE WHEN id % 2 = 0 THEN '$model' ELSE '$other' END, true) <> ''}),
	'2', 'a model change inside a statement is honoured (the kept result is keyed by the settings)');

is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'colpali encoder'"),
	'1', 'the worker is still there');
ok(!$node->log_contains('terminated by signal'), 'no process crashed');
$node->stop;
done_testing();
