# Setting up the encoder as the documentation says, and what an ordinary
# role learns when the model cannot be loaded.
#
# 1. Every SQL block of README.md and docs/encoder-sql.md that sets
#    colpali.model_path with ALTER SYSTEM lies between the markers
#    <!-- setup-sequence --> and <!-- /setup-sequence -->; each such
#    sequence is run verbatim (only the example checkpoint path is replaced by
#    a fixture's), each SQL block in a new session of a server that does not
#    preload colpali, and then a new session must be able to encode.
# 2. Load errors name the superuser-only model path and quote the file at
#    fault (a JSON parse error shows the start of whatever file config.json
#    points to); an ordinary role gets the error without either, the server
#    log keeps the details, a superuser still sees them.
use strict;
use warnings;

use File::Copy;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $fx = "$ENV{TESTDIR}/test/fixtures";
my $model = "$fx/models/tiny";
plan skip_all => 'fixtures not found' unless -d $model;

my $node = PostgreSQL::Test::Cluster->new('setup');
$node->init;
$node->append_conf('postgresql.conf', "colpali.threads = 1\n");
$node->start;

# --- 1. the documented setup sequences, verbatim -------------------------
my $example = '/srv/models/colpali-v1.3-hf';
my $nseq = 0;
for my $doc ('README.md', 'docs/encoder-sql.md')
{
	my $text = slurp_file("$ENV{TESTDIR}/$doc");
	my @sequences = $text =~ /<!-- setup-sequence -->(.*?)<!-- \/setup-sequence -->/gs;
	ok(@sequences > 0, "$doc has a marked setup sequence");

	# no untested copy: every ALTER SYSTEM of the model path is in a sequence
	(my $rest = $text) =~ s/<!-- setup-sequence -->.*?<!-- \/setup-sequence -->//gs;
	my @untested = grep { /ALTER SYSTEM SET colpali\.model_path/ } ($rest =~ /```sql\n(.*?)```/gs);
	is(scalar(@untested), 0, "$doc: every ALTER SYSTEM SET colpali.model_path block is tested");

	for my $seq (@sequences)
	{
		my @blocks = $seq =~ /```sql\n(.*?)```/gs;
		my $db = 'seq' . ++$nseq;
		ok(@blocks > 0 && grep({ /ALTER SYSTEM SET colpali\.model_path/ } @blocks),
			"$doc sequence $nseq sets the model path");

		# a fresh database, the setting reset, colpali not loaded in any session
		$node->safe_psql('postgres', "CREATE DATABASE $db");
		$node->safe_psql($db, 'CREATE EXTENSION colpali') unless grep { /CREATE EXTENSION colpali/ } @blocks;
		$node->safe_psql('postgres', "ALTER SYSTEM RESET ALL; SELECT pg_reload_conf()");

		my $i = 0;
		for my $block (@blocks)
		{
			$i++;
			(my $sql = $block) =~ s/\Q$example\E/$model/g;
			my ($ret, $out, $err) = $node->psql($db, $sql, on_error_stop => 1);
			is($ret, 0, "$doc sequence $nseq, block $i runs verbatim in a new session")
			  or diag("SQL:\n$sql\nstderr: $err");
		}
		is($node->safe_psql($db, "SELECT dims(colpali_query('revenue by region'))"), '128',
			"$doc sequence $nseq: a new session encodes with the configured model");
	}
}
$node->safe_psql('postgres', "ALTER SYSTEM RESET ALL; SELECT pg_reload_conf()");

# --- 2. load errors for ordinary roles -----------------------------------
# A checkpoint folder whose config.json is a link to an unrelated file, and
# a folder that does not exist; their names are the secret.
my $secret_dir = PostgreSQL::Test::Utils::tempdir("secret-models-4711");
make_path("$secret_dir/linked");
copy("$model/$_", "$secret_dir/linked/$_") or die "copy $_: $!"
  for grep { $_ ne 'config.json' } map { s{.*/}{}r } glob("$model/*");
open(my $fh, '>', "$secret_dir/payroll.txt") or die;
print $fh "SECRET-PAYROLL-DATA alice 100000\n";
close $fh;
symlink("$secret_dir/payroll.txt", "$secret_dir/linked/config.json") or die "symlink: $!";

$node->safe_psql('postgres', q{
	CREATE EXTENSION colpali;
	CREATE ROLE plain_user LOGIN;
});

for my $case ([ 'a config.json that is not JSON', "$secret_dir/linked", 'XX001' ],
	[ 'a missing folder', "$secret_dir/missing", '58P01' ])
{
	my ($what, $path, $state) = @$case;
	my $set = "SET colpali.model_path = '$path';";
	my $call = "SELECT colpali_query('x');\n\\echo :LAST_ERROR_SQLSTATE";
	my ($ret, $out, $err) = $node->psql('postgres', "$set $call", on_error_stop => 0);
	like($err, qr/secret-models-4711/, "superuser, $what: the error names the path");
	is($out, $state, "superuser, $what: SQLSTATE $state");

	my $log_offset = -s $node->logfile;
	($ret, $out, $err) = $node->psql('postgres', "$set SET ROLE plain_user; $call",
		on_error_stop => 0);
	like($err, qr/ERROR:  could not load the colpali model/, "ordinary role, $what: an error");
	unlike($err, qr/secret-models-4711|SECRET-PAYROLL|payroll/, "ordinary role, $what: no path and no file content");
	like($err, qr/DETAIL:  .*superuser/, "ordinary role, $what: the detail says who may see more");
	is($out, $state, "ordinary role, $what: the same SQLSTATE");
	my $log = slurp_file($node->logfile, $log_offset);
	like($log, qr/secret-models-4711/, "ordinary role, $what: the server log has the details");
}

# --- 3. the encoder objects after ALTER EXTENSION UPDATE from 0.1.0 ------
# are those of a fresh install (definitions, attributes, privileges)
my $objects = q{
	SELECT p.oid::regprocedure, p.prokind, p.provolatile, p.proparallel, p.proisstrict,
		   p.procost, p.proacl, md5(p.prosrc), obj_description(p.oid, 'pg_proc')
	FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
	WHERE p.proname LIKE 'colpali%' ORDER BY 1::text;
	SELECT relname, relacl, md5(pg_get_viewdef(oid)) FROM pg_class WHERE relname = 'colpali_stats';
	SELECT has_table_privilege('plain_user', 'colpali_stats', 'SELECT');
};
$node->safe_psql('postgres', q{
	CREATE DATABASE upgraded;
});
$node->safe_psql('upgraded', "CREATE EXTENSION colpali VERSION '0.1.0'; ALTER EXTENSION colpali UPDATE");
my $fresh = $node->safe_psql('postgres', $objects);
is($node->safe_psql('upgraded', $objects), $fresh, 'encoder objects: 0.1.0 + UPDATE = fresh 0.2.0');
like($fresh, qr/\nt$/, 'an ordinary role may read the colpali_stats view');

# the in-process load message of client_min_messages = debug1 names no path
my ($ret, $out, $err) = $node->psql('postgres', qq{
	SET colpali.model_path = '$model'; SET ROLE plain_user; SET client_min_messages = debug1;
	SELECT dims(colpali_query('x'))});
is($out, '128', 'ordinary role encodes with the model a superuser set');
unlike($err, qr/\Q$model\E/, 'ordinary role: debug messages do not name the model path');

$node->stop;
done_testing();
