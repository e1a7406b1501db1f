# ColPali in colpali-engine 0.3.18's own prompt formats: colpali.page_format
# = colpali_engine gives pages <image>xN <bos><bos>Describe the image.\n,
# colpali.query_format = colpali_engine gives queries <bos> q <pad>x10 (no
# prefix, no newline), against the goldens of test/fixtures/colpali_formats.py
# (colpali-engine's ColPali and ColPaliProcessor on the tiny-merged
# checkpoint, eager attention: bidirectional over pages, causal over
# queries, so colpali.attention = causal for the queries).  The default
# (trained) formats give different embeddings, and colpali_model_info()
# reports the formats in use.
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
plan skip_all => 'ColPali format goldens not found'
  unless -f "$fx/goldens/colpali_formats/manifest.json";
my $gold = decode_json(slurp_file("$fx/goldens/colpali_formats/manifest.json"));

my $node = PostgreSQL::Test::Cluster->new('colpali_formats');
$node->init;
$node->append_conf('postgresql.conf',
	"colpali.threads = 1\nshared_preload_libraries = 'colpali'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION colpali');

my $ins = "CREATE TABLE img (name text PRIMARY KEY, data bytea NOT NULL);\n";
for my $p (@{ $gold->{pages} })
{
	my $hex = unpack('H*', slurp_file("$fx/images/$p->{image}"));
	$ins .= "INSERT INTO img VALUES ('$p->{image}', '\\x$hex');\n";
}
$node->safe_psql('postgres', $ins);

my $model = "SET colpali.model_path = '$fx/$gold->{model}';";
for my $worker (0, 1)
{
	my $mode = $worker ? 'worker' : 'in process';
	my $set = "$model SET colpali.use_worker = " . ($worker ? 'on' : 'off') . ';';
	for my $p (@{ $gold->{pages} })
	{
		compare($fx, "page $p->{image}, page_format colpali_engine ($mode)",
			$node->safe_psql('postgres',
				"$set SET colpali.page_format = colpali_engine;"
				  . " SELECT colpali_image(data)::real[] FROM img WHERE name = '$p->{image}'"),
			$p->{embedding});
	}
	for my $q (@{ $gold->{queries} })
	{
		(my $t = $q->{text}) =~ s/'/''/g;
		compare($fx, "query '$q->{text}', query_format colpali_engine ($mode)",
			$node->safe_psql('postgres',
				"$set SET colpali.query_format = colpali_engine; SET colpali.attention = causal;"
				  . " SELECT colpali_query('$t')::real[]"),
			$q->{embedding});
	}
}

# the trained formats are the default, and they are other prompts
my $p0 = $gold->{pages}[0];
my $rows = $node->safe_psql('postgres',
	"$model SELECT array_length(colpali_image(data)::real[], 1) FROM img WHERE name = '$p0->{image}'");
is($rows, $p0->{embedding}{shape}[0] - 1, 'the default page prompt has one <bos> less');
my $q0 = $gold->{queries}[0];
(my $t0 = $q0->{text}) =~ s/'/''/g;
cmp_ok($node->safe_psql('postgres',
		"$model SET colpali.attention = causal; SELECT array_length(colpali_query('$t0')::real[], 1)"),
	'>=', $q0->{embedding}{shape}[0] + 2,
	'the default query prompt adds "Question: " and a newline');

my $info = $node->safe_psql('postgres',
	"$model SELECT architecture, query_format, page_format FROM colpali_model_info()");
like($info, qr/^ColPali\|trained: <bos>Question: \{query\}<pad>x10\\n\|trained: <image>x\d+<bos>Describe the image\.\\n$/,
	"colpali_model_info reports the trained formats ($info)");
$info = $node->safe_psql('postgres',
	"$model SET colpali.query_format = colpali_engine; SET colpali.page_format = colpali_engine;"
	  . " SET colpali.use_worker = off;"
	  . " SELECT query_format, page_format, mode FROM colpali_model_info()");
like($info, qr/^colpali_engine: <bos>\{query\}<pad>x10\|colpali_engine: <image>x\d+<bos>x2Describe the image\.\\n\|in-process$/,
	"and the colpali_engine formats ($info)");

# only a superuser sets the formats
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
my ($ret, $out, $err) = $node->psql('postgres',
	"SET ROLE plain; SET colpali.query_format = colpali_engine");
isnt($ret, 0, 'an ordinary role cannot change colpali.query_format');
like($err, qr/permission denied/, 'permission denied');

# a prompt text travels with every request: at most 255 bytes
($ret, $out, $err) = $node->psql('postgres',
	"SET colpali.query_prefix = '" . ('x' x 300) . "'");
isnt($ret, 0, 'a 300-byte query prefix is refused');
like($err, qr/at most 255 bytes/, 'and the error says the limit');

# without a model there is nothing to describe
($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM colpali_model_info()');
isnt($ret, 0, 'colpali_model_info without a model is an error');
like($err, qr/no colpali model is configured/, 'that names the missing setting');

done_testing();
