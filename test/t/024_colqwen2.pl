# colpali_image / colpali_query serve ColQwen2 and ColQwen2.5 checkpoints
# from SQL: the tiny fixture checkpoints (test/fixtures/qwen, written by
# generate_qwen.py with colpali-engine) in their layouts, every golden page
# and every training-format query, in process and through the background
# worker; embeddings within max |delta| <= 1e-4 and per-row cosine >=
# 0.99999, MaxSim within 1e-3.  The goldens were made at a page budget of
# 24 visual tokens (max_pixels 18816), set with colpali.max_visual_tokens.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use EncoderGoldens;

my $fx = "$ENV{TESTDIR}/test/fixtures";
plan skip_all => 'ColQwen2 fixtures not found' unless -f "$fx/qwen/manifest.json";

my $manifest = decode_json(slurp_file("$fx/qwen/manifest.json"));
my %images = map { $_->{name} => $_ } @{ $manifest->{images} };

my $node = PostgreSQL::Test::Cluster->new('colqwen2');
$node->init;
$node->append_conf('postgresql.conf',
	"colpali.threads = 1\nshared_preload_libraries = 'colpali'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION colpali');

my $ins = "CREATE TABLE img (name text PRIMARY KEY, data bytea NOT NULL);\n";
for my $im (@{ $manifest->{images} })
{
	my $hex = unpack('H*', slurp_file("$fx/$im->{file}"));
	$ins .= "INSERT INTO img VALUES ('$im->{name}', '\\x$hex');\n";
}
$node->safe_psql('postgres', $ins);

sub check_model
{
	my ($m, $worker) = @_;
	my $gold = $manifest->{goldens}{ $m->{golden} };
	my $label = "$m->{name} " . ($worker ? 'worker' : 'in process');
	my $tokens = $gold->{max_pixels} / (28 * 28);
	my $set = "SET colpali.model_path = '$fx/$m->{dir}'; SET colpali.base_model_path = '';"
	  . " SET colpali.max_visual_tokens = $tokens; SET colpali.use_worker = "
	  . ($worker ? 'on' : 'off') . ';';
	my @pages = @{ $gold->{pages} };
	my @queries = grep { $_->{format} eq 'training' } @{ $gold->{queries} };

	my $sql = "$set\nDROP TABLE IF EXISTS pe, qe;\n"
	  . "CREATE TABLE pe (k int, mv multivector);\nCREATE TABLE qe (k int, mv multivector);\n";
	for my $i (0 .. $#pages)
	{
		$sql .= "INSERT INTO pe SELECT $i, colpali_image(data) FROM img WHERE name = '$pages[$i]{image}';\n";
	}
	for my $i (0 .. $#queries)
	{
		(my $t = $queries[$i]{text}) =~ s/'/''/g;
		$sql .= "INSERT INTO qe VALUES ($i, colpali_query('$t'));\n";
	}
	$node->safe_psql('postgres', $sql);
	is($node->safe_psql('postgres', 'SELECT count(*) FROM pe WHERE mv IS NOT NULL'),
		scalar(@pages), "$label: every page encoded");

	for my $i (0 .. $#pages)
	{
		compare($fx, "$label page $pages[$i]{image}",
			$node->safe_psql('postgres', "SELECT mv::real[] FROM pe WHERE k = $i"),
			$pages[$i]{embedding});
	}
	for my $i (0 .. $#queries)
	{
		compare($fx, "$label query $i",
			$node->safe_psql('postgres', "SELECT mv::real[] FROM qe WHERE k = $i"),
			$queries[$i]{embedding});
	}
}

for my $m (@{ $manifest->{models} })
{
	check_model($m, 0);
}
# the worker: one model is enough to show the path
check_model($manifest->{models}[0], 1);
my $requests = $node->safe_psql('postgres', "SELECT requests FROM colpali_stats WHERE mode = 'worker'");
ok(defined $requests && $requests ne '' && $requests > 0, "the worker served requests ($requests)");

# a query containing the image pad token is refused, as the reference does
my ($ret, $out, $err) = $node->psql('postgres',
	"SET colpali.model_path = '$fx/$manifest->{models}[0]{dir}'; SELECT colpali_query('a <|image_pad|> b')");
isnt($ret, 0, 'a query with <|image_pad|> is an error');
like($err, qr/image_pad|image pad/i, 'and the error names it');

done_testing();
