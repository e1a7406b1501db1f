# colpali_image / colpali_query serve ColQwen2 and ColQwen2.5 checkpoints
# from SQL: the tiny fixture checkpoints (test/fixtures/qwen, written by
# generate_qwen.py with colpali-engine) in their layouts, every golden page
# and every training-format query, in process and through the background
# worker; embeddings within max |delta| <= 1e-4 and per-row cosine >=
# 0.99999, MaxSim within 1e-3.  The goldens were made at a page budget of
# 24 visual tokens (max_pixels 18816), set with colpali.max_visual_tokens.
# Every layout of the manifest, for both architectures: the 2024 hub
# layout, colpali-engine's transformers-5 layout, the transformers-native
# layout (sharded), and a LoRA adapter in both tensor naming forms (base resolved next to it, or
# given by colpali.base_model_path).  Also: query 0 in the other prompt
# formats (colpali.query_format), colpali_model_info(), and the measured
# difference to transformers' native ColQwen2ForRetrieval on image rows.
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
	my $base = $m->{base_dir} ? "$fx/$m->{base_dir}" : '';
	my $set = "SET colpali.model_path = '$fx/$m->{dir}'; SET colpali.base_model_path = '$base';"
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
for my $arch ('ColQwen2', 'ColQwen2_5')
{
	my @ms = grep { $_->{architecture} eq $arch } @{ $manifest->{models} };
	ok((grep { $_->{layout} eq 'hub2024' } @ms)
		  && (grep { $_->{layout} eq 'colpali-engine-t5' } @ms)
		  && (grep { $_->{layout} =~ /native/ } @ms)
		  && (grep { $_->{layout} =~ /LoRA/ && $_->{base_dir} } @ms)
		  && (grep { $_->{layout} =~ /LoRA/ && !$_->{base_dir} } @ms),
		"the manifest has $arch in the hub, transformers-5 and native layouts and both LoRA forms");
}

# query 0 in every other prompt format, in process and through the worker
my $m0 = $manifest->{models}[0];
my $g0 = $manifest->{goldens}{ $m0->{golden} };
my %format_setting = (
	'engine-0.3.18' => "SET colpali.query_format = colpali_engine;",
	'transformers' => "SET colpali.query_format = transformers;",
	'custom' => "SET colpali.query_format = custom;"
	  . " SET colpali.query_prefix = 'Find: ';"
	  . " SET colpali.query_suffix = '" . ('<|endoftext|>' x 3) . "';");
my %format_name = ('engine-0.3.18' => 'colpali_engine', 'transformers' => 'transformers',
	'custom' => 'custom');
my @other = grep { $_->{format} ne 'training' } @{ $g0->{queries} };
is(scalar(@other), 3, 'query 0 has goldens in three other formats');
for my $worker (0, 1)
{
	for my $q (@other)
	{
		(my $t = $q->{text}) =~ s/'/''/g;
		my $set = "SET colpali.model_path = '$fx/$m0->{dir}'; SET colpali.use_worker = "
		  . ($worker ? 'on' : 'off') . "; $format_setting{$q->{format}}";
		my $label = "query 0 in format $q->{format} " . ($worker ? 'worker' : 'in process');
		compare($fx, $label,
			$node->safe_psql('postgres', "$set SELECT colpali_query('$t')::real[]"),
			$q->{embedding});
		like($node->safe_psql('postgres', "$set SELECT query_format FROM colpali_model_info()"),
			qr/^\Q$format_name{$q->{format}}\E: /, "$label: colpali_model_info names it");
	}
}
# the default is the training format, and it is not the others
{
	my ($train) = grep { $_->{format} eq 'training' } @{ $g0->{queries} };
	my ($eng) = grep { $_->{format} eq 'engine-0.3.18' } @{ $g0->{queries} };
	isnt(join(',', @{ $train->{embedding}{shape} }) . golden($fx, $train->{embedding})->[0],
		join(',', @{ $eng->{embedding}{shape} }) . golden($fx, $eng->{embedding})->[0],
		'the training and colpali-engine formats give different embeddings');
	is($node->safe_psql('postgres',
			"SET colpali.model_path = '$fx/$m0->{dir}'; SELECT query_format FROM colpali_model_info()"),
		'trained: Query: {query}' . ('<|endoftext|>' x 1) . 'x10',
		'the default query format is the training format');
}

# colpali_model_info through the worker and in process
for my $worker (0, 1)
{
	my $mode = $worker ? 'worker' : 'in-process';
	for my $m (grep { $_->{layout} eq 'hub2024' } @{ $manifest->{models} })
	{
		my $gold = $manifest->{goldens}{ $m->{golden} };
		my $tokens = $gold->{max_pixels} / (28 * 28);
		my $row = $node->safe_psql('postgres',
			"SET colpali.model_path = '$fx/$m->{dir}'; SET colpali.max_visual_tokens = $tokens;"
			  . " SET colpali.use_worker = " . ($worker ? 'on' : 'off') . ';'
			  . " SELECT architecture, embedding_dim, page_rows, visual_tokens, compute_precision,"
			  . " device, kernels <> '', mode FROM colpali_model_info()");
		# the most rows a page can have: the widest golden page has as many
		# visual tokens as the budget allows here
		my $text_rows = $gold->{pages}[0]{embedding}{shape}[0]
		  - $gold->{pages}[0]{grid_thw}[1] * $gold->{pages}[0]{grid_thw}[2] / 4;
		my $arch = $m->{architecture} eq 'ColQwen2_5' ? 'ColQwen2.5' : 'ColQwen2';
		is($row, join('|', $arch, 128, $text_rows + $tokens, $tokens, 'fp32', 'cpu', 't', $mode),
			"colpali_model_info of $m->{name} ($mode)");
	}
}

# transformers' native ColQwen2ForRetrieval differs on image rows (no 3-D
# M-RoPE positions), over a Qwen2-VL and over a Qwen2.5-VL backbone; the
# engine follows colpali-engine
for my $tag ('colqwen2', 'colqwen2_5')
{
	my $nat = $manifest->{goldens}{"${tag}_native"};
	my ($m) = grep { $_->{golden} eq $tag && $_->{layout} eq 'hub2024' } @{ $manifest->{models} };
	ok($nat && @{ $nat->{pages} } == 2, "$tag: native goldens for two pages");
	for my $p (@{ $nat->{pages} })
	{
		my $got = $node->safe_psql('postgres',
			"SET colpali.model_path = '$fx/$m->{dir}'; SET colpali.max_visual_tokens = 24;"
			  . " SELECT colpali_image(data)::real[] FROM img WHERE name = '$p->{image}'");
		compare($fx, "$tag native diff page $p->{image}: engine = colpali-engine", $got,
			$p->{engine_embedding});
		(my $flat = $got) =~ tr/{}//d;
		my @v = split /,/, $flat;
		my $n = golden($fx, $p->{embedding});
		my ($dim) = $p->{embedding}{shape}[1];
		my ($r0, $r1) = @{ $p->{image_rows} };
		my ($dimg, $dtext) = (0, 0);
		for my $i (0 .. $#v)
		{
			my $d = abs($v[$i] - $n->[$i]);
			my $r = int($i / $dim);
			if ($r >= $r0 && $r < $r1) { $dimg = $d if $d > $dimg; }
			elsif ($r < $r0) { $dtext = $d if $d > $dtext; }
		}
		ok(abs($dimg - $p->{max_abs_diff_image_rows}) <= 1e-3 && $dimg > 1e-2,
			sprintf("%s native diff page %s: image rows differ from native by %.4f (colpali-engine: %.4f)",
				$tag, $p->{image}, $dimg, $p->{max_abs_diff_image_rows}));
		ok($dtext <= 1e-4,
			sprintf("%s native diff page %s: text rows before the image agree (%.1e)", $tag, $p->{image}, $dtext));
	}
}
# the worker: one model is enough to show the path
check_model($manifest->{models}[0], 1);
my $requests = $node->safe_psql('postgres', "SELECT requests FROM colpali_stats WHERE mode = 'worker'");
ok(defined $requests && $requests ne '' && $requests > 0, "the worker served requests ($requests)");

# mvivf over ColQwen2 pages, whose row counts differ with the aspect ratio:
# with every list probed and no candidate limit the index returns the exact
# MaxSim order of a sequential scan
{
	my $m = $manifest->{models}[0];
	my $g = $manifest->{goldens}{ $m->{golden} };
	my $set = "SET colpali.model_path = '$fx/$m->{dir}'; SET colpali.max_visual_tokens = 24;";
	my $sql = "$set CREATE TABLE qpages (id serial PRIMARY KEY, name text, emb multivector);"
	  . " INSERT INTO qpages (name, emb) SELECT name, colpali_image(data) FROM img, generate_series(1, 3);"
	  . " CREATE TABLE qq (id int, q multivector);";
	for my $i (0 .. $#{ $g->{queries} })
	{
		next unless $g->{queries}[$i]{format} eq 'training';
		(my $t = $g->{queries}[$i]{text}) =~ s/'/''/g;
		$sql .= " INSERT INTO qq VALUES ($i, colpali_query('$t'));";
	}
	$node->safe_psql('postgres', $sql . ' CREATE INDEX qpages_idx ON qpages USING mvivf (emb) WITH (lists = 4);');
	my $counts = $node->safe_psql('postgres',
		'SELECT count(DISTINCT array_length(emb::real[], 1)) FROM qpages');
	cmp_ok($counts, '>=', 3, "mvivf table holds pages of $counts different row counts");
	my $exact = 'SET mvivf.probes = 4; SET mvivf.candidates = 100000; SET mvivf.rerank = 100000;';
	my $q = "SELECT string_agg(ids, ';' ORDER BY id) FROM (SELECT id, (SELECT string_agg(p.id::text, ',')"
	  . " FROM (SELECT id FROM qpages ORDER BY emb <#> qq.q, id LIMIT 10) p) AS ids FROM qq) x";
	my $by_index = $node->safe_psql('postgres', "$exact SET enable_seqscan = off; $q");
	my $by_scan = $node->safe_psql('postgres', "SET enable_indexscan = off; $q");
	like($node->safe_psql('postgres',
			"$exact SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM qpages"
			  . " ORDER BY emb <#> (SELECT q FROM qq LIMIT 1) LIMIT 10"),
		qr/qpages_idx/, 'the mvivf index is used');
	is($by_index, $by_scan, 'mvivf over pages of varying row counts gives the exact top 10');
}

# a query containing the image pad token is refused, as the reference does
my ($ret, $out, $err) = $node->psql('postgres',
	"SET colpali.model_path = '$fx/$manifest->{models}[0]{dir}'; SELECT colpali_query('a <|image_pad|> b')");
isnt($ret, 0, 'a query with <|image_pad|> is an error');
like($err, qr/image_pad|image pad/i, 'and the error names it');

done_testing();
