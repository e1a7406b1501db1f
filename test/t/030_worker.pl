# The colpali background worker on the CPU backend: preload, batching of
# concurrent sessions, cancel and statement_timeout while a request runs,
# worker exit (SIGTERM) and crash (SIGKILL), and the in-process path without
# preload.
#
# The model: $ENV{COLPALI_TEST_MODEL}, else the first checkpoint folder
# under $ENV{TESTDIR}/test/fixtures (one holding config.json).
use strict;
use warnings;

use File::Find;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $model = $ENV{COLPALI_TEST_MODEL};
if (!$model && $ENV{TESTDIR} && -d "$ENV{TESTDIR}/test/fixtures")
{
	my @found;
	find(sub { push @found, $File::Find::dir if $_ eq 'config.json' && -e 'tokenizer.json' },
		"$ENV{TESTDIR}/test/fixtures");
	($model) = sort @found;
}
plan skip_all => 'no fixture checkpoint found' unless $model && -d $model;

# An 8x8 RGB PNG.
my $png = '\x89504e470d0a1a0a0000000d49484452000000080000000808020000004b6d29dc0000007549444154789c6330750b8fcaaea99fb070c9d663276fbd7ef75f4058c5d4c2338a61c2c24d5b8f5dbff5facf7f0145155337cfa8ecbcfa0993976c6578fd875740d108531f835b7846764d2fa63e86859b0e1fbbfe02531fc31f5e394523674c7d0ce1199535bdf330f5316c3a7ce5fa8b9f98fa0013b16481e4215b6d0000000049454e44ae426082';
my $img = "'$png'::bytea";

my $node = PostgreSQL::Test::Cluster->new('worker');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'colpali'
colpali.model_path = '$model'
colpali.max_batch = 64
colpali.max_wait_ms = 100
colpali.threads = 1
max_worker_processes = 16
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION colpali');

sub worker_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'colpali encoder'");
}

# Start psql in the background; returns a hash with the harness and output.
sub start_psql
{
	my ($sql, $appname) = @_;
	my %r = (out => '', err => '');
	my $conn = $node->connstr('postgres') . ' application_name=' . ($appname // 'bg');
	$r{h} = IPC::Run::start(
		[ 'psql', '-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-d', $conn, '-c', $sql ],
		'>', \$r{out}, '2>', \$r{err});
	return \%r;
}

sub finish_psql
{
	my ($r) = @_;
	$r->{h}->finish;
	return $r;
}

# Wait until the session named 'long' waits on the worker.
sub wait_for_waiter
{
	return $node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND application_name = 'long'");
}

# --- the worker runs and serves requests ---------------------------------
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'colpali encoder'"),
	'worker is running');
my $pid1 = worker_pid();

is($node->safe_psql('postgres', "SELECT mode FROM colpali_stats()"), 'worker', 'stats report the worker');
is($node->safe_psql('postgres', "SELECT dims(colpali_image($img)) || ' ' || (num_vectors(colpali_image($img)) > 0)::text"),
	'128 true', 'colpali_image through the worker');
is($node->safe_psql('postgres', "SELECT dims(colpali_query('what is on the page?'))"),
	'128', 'colpali_query through the worker');
is($node->safe_psql('postgres', "SELECT device FROM colpali_stats()"), 'cpu', 'worker runs on the CPU');
my $log = slurp_file($node->logfile);
is(scalar(() = $log =~ /colpali worker found no usable GPU, encoding on the CPU/g), 1,
	'colpali.device = auto without a GPU says once that it uses the CPU');

# worker and in-process results agree
my $diff = $node->safe_psql('postgres', qq{
	CREATE TEMP TABLE w AS SELECT colpali_image($img) AS i, colpali_query('revenue by year') AS q;
	SET colpali.use_worker = off;
	SELECT bool_and(a IS NOT NULL AND b IS NOT NULL AND abs(a - b) < 1e-5)
	FROM w, unnest(w.i::real[], colpali_image($img)::real[]) AS t1(a, b)
	UNION ALL
	SELECT bool_and(a IS NOT NULL AND b IS NOT NULL AND abs(a - b) < 1e-5)
	FROM w, unnest(w.q::real[], colpali_query('revenue by year')::real[]) AS t2(a, b);
});
is($diff, "t\nt", 'worker and in-process encodings agree');

# --- batching: 16 sessions at once ---------------------------------------
my $before = $node->safe_psql('postgres', "SELECT batches || ' ' || items FROM colpali_stats()");
# all 16 wait behind an advisory lock, then start at the same moment
my $gate = start_psql("SELECT pg_advisory_lock(4242); SELECT pg_sleep(60)", 'gate');
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted");
my @runs = map {
	start_psql("SELECT pg_advisory_lock_shared(4242); SELECT num_vectors(colpali_image($img)) > 0")
} 1 .. 16;
$node->poll_query_until('postgres',
	"SELECT count(*) = 16 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted");
$node->safe_psql('postgres', "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'gate'");
finish_psql($gate);
finish_psql($_) for @runs;
is(scalar(grep { $_->{out} =~ /^t$/m } @runs), 16, '16 concurrent sessions got embeddings');
my $after = $node->safe_psql('postgres', "SELECT batches || ' ' || items || ' ' || max_batch_items FROM colpali_stats()");
my ($b0, $i0) = split / /, $before;
my ($b1, $i1, $maxb) = split / /, $after;
is($i1 - $i0, 16, '16 items encoded');
cmp_ok($b1 - $b0, '<', 16, "fewer batches than items (" . ($b1 - $b0) . " batches)");
cmp_ok($maxb, '>', 1, "a batch held several requests (max $maxb)");
cmp_ok($maxb, '<=', 16, 'a batch holds at most the 16 requests');

# An in-process request long enough to be interrupted: many images at once
# (calibrated on this machine).
my $per64 = $node->safe_psql('postgres', qq{
	SET colpali.use_worker = off;
	CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t0;
	SELECT count(*) FROM unnest(colpali_images(array_fill($img, ARRAY[64])));
	SELECT extract(epoch FROM clock_timestamp() - t0) FROM t0;
});
$per64 = (split /\n/, $per64)[-1];
my $n = int(5.0 / ($per64 > 0.0001 ? $per64 : 0.0001) * 64) + 64;
$n = 50000 if $n > 50000;
my $long_inproc = "SELECT cardinality(colpali_images(array_fill($img, ARRAY[$n])))";
note "64 images took ${per64}s in process, the long in-process request encodes $n images";

# Through the worker, one request kept in flight by the developer option
# colpali.debug_batch_delay_ms (the worker sleeps before each batch, and
# stops sleeping when every requester of the batch has gone).
my $long = "SELECT num_vectors(colpali_image($img))";
sub set_delay
{
	my ($ms) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET colpali.debug_batch_delay_ms = $ms; SELECT pg_reload_conf()");
	sleep 1;	# the worker rereads its configuration between batches
}
set_delay(20000);

# --- statement_timeout and cancel while the worker computes ---------------
my ($ret, $stdout, $stderr) = $node->psql('postgres', "SET statement_timeout = '300ms'; $long");
like($stderr, qr/canceling statement due to statement timeout/, 'statement_timeout interrupts a request');

my $r = start_psql($long, 'long');
wait_for_waiter();
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'long'");
finish_psql($r);
like($r->{err}, qr/canceling statement due to user request/, 'pg_cancel_backend interrupts a request');
is(worker_pid(), $pid1, 'the worker survived the cancellations');
set_delay(0);
is($node->safe_psql('postgres', "SELECT num_vectors(colpali_image($img)) > 0"), 't', 'encoding works after cancel');
ok($node->poll_query_until('postgres', "SELECT queue_depth = 0 FROM colpali_stats()"),
	'abandoned requests leave the queue');

# --- the worker exits (SIGTERM): requester gets an ERROR, others unaffected
set_delay(20000);
my $bystander = start_psql("SELECT pg_sleep(6); SELECT 'bystander ok'");
$r = start_psql($long, 'long');
wait_for_waiter();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid1)");
finish_psql($r);
like($r->{err}, qr/colpali background worker exited while encoding/, 'waiting backend gets an ERROR when the worker exits');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'colpali encoder' AND pid <> $pid1"),
	'postmaster restarted the worker');
my $pid2 = worker_pid();
set_delay(0);
is($node->safe_psql('postgres', "SELECT num_vectors(colpali_image($img)) > 0"), 't', 'the new worker serves requests');
is($node->safe_psql('postgres', "SELECT worker_starts FROM colpali_stats()"), '2', 'stats count two worker starts');
finish_psql($bystander);
like($bystander->{out}, qr/bystander ok/, 'a concurrent session was not disturbed');

# --- the worker crashes (SIGKILL): PostgreSQL resets all sessions ----------
# Any process attached to shared memory that dies abnormally makes the
# postmaster reinitialise shared memory; the requester loses its connection
# and the whole cluster (worker included) comes back.
set_delay(20000);
$r = start_psql($long, 'long');
wait_for_waiter();
kill 'KILL', $pid2;
finish_psql($r);
like($r->{err}, qr/terminat|server closed the connection|connection to server was lost/i,
	'waiting backend gets an error when the worker crashes');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'colpali encoder' AND pid <> $pid2"),
	'worker is back after crash recovery');
set_delay(0);
is($node->safe_psql('postgres', "SELECT num_vectors(colpali_image($img)) > 0"), 't', 'encoding works after the crash');

# --- use_worker = off, then no preload at all: in-process path ------------
is($node->safe_psql('postgres', "SET colpali.use_worker = off; SELECT mode FROM colpali_stats()"),
	'in-process', 'colpali.use_worker = off encodes in the backend');
$node->stop;
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->start;
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'colpali encoder'"),
	'0', 'no worker without preload');
is($node->safe_psql('postgres', "SELECT num_vectors(colpali_image($img)) > 0, dims(colpali_query('x'))"),
	't|128', 'in-process encoding without preload');
is($node->safe_psql('postgres', "SELECT num_vectors(colpali_image($img)) > 0; SELECT mode || ' ' || items FROM colpali_stats()"),
	"t\nin-process 1", 'in-process stats count this session\'s calls');
$node->safe_psql('postgres', "LOAD 'colpali'; ALTER SYSTEM SET colpali.device = 'cuda'; SELECT pg_reload_conf()");
($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT colpali_query('x')");
like($stderr, qr/colpali.device = cuda needs the colpali background worker.*HINT:  Add colpali to shared_preload_libraries/s,
	'colpali.device = cuda without the worker is a clear error');
$node->safe_psql('postgres', "LOAD 'colpali'; ALTER SYSTEM RESET colpali.device; SELECT pg_reload_conf()");
($ret, $stdout, $stderr) = $node->psql('postgres', "SET statement_timeout = '300ms'; $long_inproc");
like($stderr, qr/canceling statement due to statement timeout/, 'statement_timeout interrupts in-process encoding');

$node->stop;
done_testing();
