# colpali_progress: a bulk encoding run (colpali_embed_images) seen from
# another session while it runs, with the library preloaded (table reserved
# at start, encoding through the worker) and not (table taken at first use,
# encoding in process):
#  - the run's row names its backend, database, table, phase and batch size,
#    counts up to the total, gives a rate and an ETA;
#  - another role without pg_read_all_stats sees only pid and database;
#  - the row goes when the run ends, and when it is cancelled (the batches
#    committed before stay).
# And colpali_embed_images never ends a run for one bad row: a corrupt image,
# a CHECK constraint and a trigger error each skip their row only, while an
# error every row of the first batch gives alike (a column of the wrong
# dimension) ends the run.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $model = "$ENV{TESTDIR}/test/fixtures/models/tiny";
plan skip_all => 'fixtures not found' unless -d $model;
my $page = slurp_file("$ENV{TESTDIR}/test/fixtures/images/page_chart.png");
my $page_hex = '\\x' . unpack('H*', $page);

sub start_psql
{
	my ($node, $sql, $appname) = @_;
	my %r = (out => '', err => '');
	my $conn = $node->connstr('postgres') . " application_name=$appname";
	$r{h} = IPC::Run::start([ 'psql', '-X', '-qAt', '-d', $conn, '-c', $sql ],
		'>', \$r{out}, '2>', \$r{err});
	return \%r;
}

for my $mode ('in-process', 'worker')
{
	my $node = PostgreSQL::Test::Cluster->new("progress_$mode" =~ s/-/_/r);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
colpali.model_path = '$model'
colpali.threads = 1
});
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'colpali'\n")
	  if $mode eq 'worker';
	$node->start;
	$node->safe_psql('postgres', qq{
		CREATE EXTENSION colpali;
		CREATE ROLE watcher LOGIN;
		CREATE TABLE docs (id int PRIMARY KEY, png bytea, emb multivector(128));
		INSERT INTO docs SELECT g, '$page_hex'::bytea FROM generate_series(1, 12) g;
		-- slow every row down, so that the run can be watched
		CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql
			AS \$\$BEGIN PERFORM pg_sleep(0.25); RETURN NEW; END\$\$;
		CREATE TRIGGER slow BEFORE UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION slow();
	});
	is($node->safe_psql('postgres', 'SELECT count(*) FROM colpali_progress'), '0',
		"$mode: no run, no row");

	my $run = start_psql($node, "CALL colpali_embed_images('docs', 'png', 'emb', 2)", 'embed');
	ok($node->poll_query_until('postgres',
			"SELECT images_done >= 2 AND images_done < images_total FROM colpali_progress WHERE relid = 'docs'::regclass"),
		"$mode: a run in progress is seen from another session");
	my $row = $node->safe_psql('postgres', q{
		SELECT p.pid = a.pid, p.datname, p.relid::regclass, p.phase, p.batch_size, p.images_total,
			   p.images_done % 2, p.images_failed, p.images_per_second > 0, p.eta IS NOT NULL,
			   p.started <= p.updated AND p.updated <= now()
		FROM colpali_progress p JOIN pg_stat_activity a ON a.application_name = 'embed'});
	is($row, 't|postgres|docs|encoding|2|12|0|0|t|t|t',
		"$mode: its backend, database, table, phase, batch size, total, whole batches done, rate and ETA");
	is($node->safe_psql('postgres', q{
		SET ROLE watcher;
		SELECT (pid IS NOT NULL)::text || ' ' || (datid IS NOT NULL)::text || ' ' ||
			   coalesce(relid::text, 'null') || ' ' || coalesce(images_total::text, 'null')
		FROM colpali_progress}),
		'true true null null', "$mode: another role sees the pid and database only");
	$run->{h}->finish;
	like($run->{err}, qr/12 of 12 images embedded/, "$mode: the run ends");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM colpali_progress'), '0',
		"$mode: a finished run leaves no row");

	# cancelled half-way: the entry goes, the committed batches stay
	$node->safe_psql('postgres', 'UPDATE docs SET emb = NULL');
	$run = start_psql($node, "CALL colpali_embed_images('docs', 'png', 'emb', 2)", 'embed2');
	ok($node->poll_query_until('postgres',
			"SELECT images_done >= 4 FROM colpali_progress WHERE relid = 'docs'::regclass"),
		"$mode: second run under way");
	$node->safe_psql('postgres',
		"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'embed2'");
	$run->{h}->finish;
	like($run->{err}, qr/canceling statement due to user request/, "$mode: the run is cancelled");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM colpali_progress'), '0',
		"$mode: a cancelled run leaves no row");
	ok($node->safe_psql('postgres', 'SELECT count(emb) FROM docs') >= 4,
		"$mode: the batches committed before the cancel are kept");

	# a session that reports by hand, then exits without ending its run
	$node->safe_psql('postgres', "SELECT colpali_progress_report('docs', 'by hand', NULL, 1, 0, 1)");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM colpali_progress'), '0',
		"$mode: a session that exits leaves no row");

	# --- one bad row never ends the run ------------------------------------
	$node->safe_psql('postgres', qq{
		CREATE TABLE mixed (id int PRIMARY KEY, png bytea,
			emb multivector(128) CHECK (id <> 3 OR emb IS NULL));
		INSERT INTO mixed SELECT g, CASE WHEN g = 9 THEN '\\x89504e470d0a1a0a00'::bytea
										ELSE '$page_hex'::bytea END
		FROM generate_series(1, 10) g;
		CREATE FUNCTION refuse6() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN
			IF NEW.id = 6 AND NEW.emb IS NOT NULL THEN
				RAISE EXCEPTION 'row 6 is refused by a trigger';
			END IF;
			RETURN NEW;
		END\$\$;
		CREATE TRIGGER refuse6 BEFORE UPDATE ON mixed FOR EACH ROW EXECUTE FUNCTION refuse6();
	});
	my ($ret, $out, $err) = $node->psql('postgres', "CALL colpali_embed_images('mixed', 'png', 'emb', 4)");
	is($ret, 0, "$mode: a run with three bad rows of different kinds completes");
	like($err, qr/skipped the row with key \(id\)=\(3\): new row for relation "mixed" violates check constraint/,
		"$mode: the row failing a CHECK constraint is skipped and named");
	like($err, qr/skipped the row with key \(id\)=\(6\): row 6 is refused by a trigger/,
		"$mode: the row failing in a trigger is skipped and named");
	like($err, qr/skipped the row with key \(id\)=\(9\): could not encode image/,
		"$mode: the corrupt image is skipped and named");
	like($err, qr/3 of 10 images could not be embedded/, "$mode: the run counts them");
	is($node->safe_psql('postgres', "SELECT string_agg(id::text, ',' ORDER BY id) FROM mixed WHERE emb IS NULL"),
		'3,6,9', "$mode: every other row is embedded");

	# the same error on every row of the first batch is the run's error
	$node->safe_psql('postgres', qq{
		CREATE TABLE narrow (id int PRIMARY KEY, png bytea, emb multivector(96));
		INSERT INTO narrow SELECT g, '$page_hex'::bytea FROM generate_series(1, 20) g;
	});
	($ret, $out, $err) = $node->psql('postgres', "CALL colpali_embed_images('narrow', 'png', 'emb', 4)");
	isnt($ret, 0, "$mode: a column of the wrong dimension ends the run");
	like($err, qr/ERROR:  colpali_embed_images: every row of the first batch failed: .*dimension/,
		"$mode: with the rows' common error");
	is(scalar(() = $err =~ /WARNING:  colpali_embed_images: skipped/g), 4,
		"$mode: after trying one batch only");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM colpali_progress'), '0',
		"$mode: the failed run leaves no row");

	ok(!$node->log_contains('terminated by signal'), "$mode: no process crashed");
	$node->stop;
}

done_testing();
