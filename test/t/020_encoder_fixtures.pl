# colpali_image / colpali_query in SQL against the transformers goldens of the
# tiny fixture checkpoints (test/fixtures, written by generate.py): every
# sample image and query, several checkpoint layouts and dtypes, a LoRA
# adapter over its base; embeddings within max |delta| <= 1e-4 and per-row
# cosine >= 0.99999, MaxSim scores (computed by the <#> machinery's maxsim())
# within 1e-3.  In-process path (no preload); the worker has 030_worker.pl.
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
plan skip_all => 'fixtures not found' unless -f "$fx/manifest.json";

my $manifest = decode_json(slurp_file("$fx/manifest.json"));
my %images = map { $_->{name} => $_ } @{ $manifest->{images} };
my %models = map { $_->{name} => $_ } @{ $manifest->{models} };

my $node = PostgreSQL::Test::Cluster->new('encoder');
$node->init;
$node->append_conf('postgresql.conf', "colpali.threads = 1\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION colpali');

# the sample images, as bytea, once
my $ins = "CREATE TABLE img (name text PRIMARY KEY, data bytea NOT NULL);\n";
for my $im (@{ $manifest->{images} })
{
	my $hex = unpack('H*', slurp_file("$fx/$im->{file}"));
	$ins .= "INSERT INTO img VALUES ('$im->{name}', '\\x$hex');\n";
}
$node->safe_psql('postgres', $ins);

# encode every golden page and query of model $name, compare, check scores
sub check_model
{
	my ($name, %opt) = @_;
	my $m = $models{$name};
	my $gold = $manifest->{goldens}{ $m->{golden} };
	my $set = "SET colpali.model_path = '$fx/$m->{dir}';";
	$set .= $m->{base_dir} ? " SET colpali.base_model_path = '$fx/$m->{base_dir}';"
	  : " SET colpali.base_model_path = '';";
	$set .= " SET colpali.cpu_amx = $opt{amx};" if $opt{amx};
	$name .= " (cpu_amx = $opt{amx})" if $opt{amx};

	my @pages = @{ $gold->{pages} };
	my @queries = @{ $gold->{queries} };
	@pages = @pages[ 0 .. $opt{pages} - 1 ] if $opt{pages} && $opt{pages} < @pages;
	@queries = @queries[ 0 .. $opt{queries} - 1 ] if $opt{queries} && $opt{queries} < @queries;

	my $sql = "$set\nDROP TABLE IF EXISTS pe, qe;\n";
	$sql .= "CREATE TABLE pe (k int, mv multivector);\nCREATE TABLE qe (k int, mv multivector);\n";
	for my $i (0 .. $#pages)
	{
		$sql .= "INSERT INTO pe SELECT $i, colpali_image(data) FROM img WHERE name = '$pages[$i]{image}';\n";
	}
	for my $i (0 .. $#queries)
	{
		my $t = $queries[$i]{text};
		$t =~ s/'/''/g;
		$sql .= "INSERT INTO qe VALUES ($i, colpali_query(E'" . escape_e($t) . "'));\n";
	}
	$node->safe_psql('postgres', $sql);

	for my $i (0 .. $#pages)
	{
		my $txt = $node->safe_psql('postgres', "SELECT mv::real[] FROM pe WHERE k = $i");
		compare($fx, "$name page $pages[$i]{image}", $txt, $pages[$i]);
	}
	for my $i (0 .. $#queries)
	{
		my $txt = $node->safe_psql('postgres', "SELECT mv::real[] FROM qe WHERE k = $i");
		compare($fx, "$name query $i", $txt, $queries[$i]);
	}

	# MaxSim: scores[q][p], rows = queries, cols = pages (full manifest order)
	my $scores = golden($fx, $gold->{scores});
	my $npages = $gold->{scores}{shape}[1];
	my $out = $node->safe_psql('postgres',
		"SELECT q.k, p.k, maxsim(p.mv, q.mv) FROM pe p, qe q ORDER BY 1, 2");
	my $maxd = 0;
	for my $line (split /\n/, $out)
	{
		my ($q, $p, $s) = split /\|/, $line;
		my $d = abs($s - $scores->[ $q * $npages + $p ]);
		$maxd = $d if $d > $maxd;
	}
	ok($maxd <= 1e-3, sprintf("%s: MaxSim scores within 1e-3 (max |delta| %.2e)", $name, $maxd));
}

# E'' escaping for texts with control characters
sub escape_e
{
	my ($s) = @_;
	$s =~ s/\\/\\\\/g;
	$s =~ s/([\x00-\x1f])/sprintf('\\x%02x', ord($1))/ge;
	return $s;
}

# every page and query with 'tiny', a few with each other layout / dtype
# (COLPALI_TEST_MODELS=name,name,... narrows the list)
my @check = (
	[ 'tiny' ],
	[ 'tiny-bf16', pages => 3, queries => 3 ],
	[ 'tiny-f16', pages => 3, queries => 3 ],
	[ 'tiny-hf-old', pages => 2, queries => 2 ],
	[ 'tiny-sharded', pages => 2, queries => 2 ],
	[ 'tiny-merged', pages => 2, queries => 2 ],
	[ 'tiny-lora', pages => 2, queries => 2 ],
	# the AVX-512 kernels, as on CPUs without AMX (on others: the same run)
	[ 'tiny-bf16', pages => 2, queries => 2, amx => 'off' ],
);
my %only = map { $_ => 1 } split /,/, ($ENV{COLPALI_TEST_MODELS} // '');
for my $c (@check)
{
	next if %only && !$only{ $c->[0] };
	next unless $models{ $c->[0] };
	check_model(@$c);
}

# colpali.cpu_amx (superuser, part of the engine's identity): off leaves the
# AMX tiles alone; on a CPU with AMX-BF16 the default runs fp32 products on them
{
	my $k = "SET colpali.model_path = '$fx/models/tiny-bf16'; SELECT kernels FROM colpali_model_info()";
	my $off = $node->safe_psql('postgres', "SET colpali.cpu_amx = off; $k");
	unlike($off, qr/amx/, "colpali.cpu_amx = off: no AMX kernel ($off)");
	my $cpuinfo = -r '/proc/cpuinfo' ? slurp_file('/proc/cpuinfo') : '';
	SKIP:
	{
		skip 'the CPU has no AMX-BF16', 1 unless $cpuinfo =~ /\bamx_bf16\b/ && $cpuinfo =~ /\bavx512_bf16\b/;
		my $on = $node->safe_psql('postgres', $k);
		like($on, qr/gemm_many_rows=amx-bf16x3/, "colpali.cpu_amx = on: fp32 products on AMX tiles ($on)");
	}
}

# the engine is reused, and reloaded when the model changes
is($node->safe_psql('postgres', qq{
	SET colpali.model_path = '$fx/models/tiny-merged';
	SELECT maxsim(colpali_image(data), colpali_query('x')) IS NOT NULL FROM img WHERE name = 'page_text_png';
	SET colpali.model_path = '$fx/models/tiny-hf-old';
	SELECT maxsim(colpali_image(data), colpali_query('x')) IS NOT NULL FROM img WHERE name = 'page_text_png';
	SET colpali.use_worker = off;
	SELECT requests FROM colpali_stats();
}), "t\nt\n4", 'switching models in one session');

# colpali.cpu_precision = bf16 (a superuser setting, part of the engine's
# identity, so setting it reloads the engine): the page of the golden set
# stays within retrieval-level agreement of fp32 and of the golden, and it
# is a different computation wherever the CPU has AVX512_BF16 (elsewhere the
# setting computes as fp32, bit for bit).
{
	my $has_bf16 = slurp_file('/proc/cpuinfo') =~ /\bavx512_bf16\b/;
	my $gold = $manifest->{goldens}{ $models{tiny}{golden} };
	my $page = $gold->{pages}[0];
	my ($fp32, $bf16) = split /\n/, $node->safe_psql('postgres', qq{
		SET colpali.model_path = '$fx/$models{tiny}{dir}';
		SET colpali.base_model_path = '';
		SELECT colpali_image(data)::real[] FROM img WHERE name = '$page->{image}';
		SET colpali.cpu_precision = bf16;
		SELECT colpali_image(data)::real[] FROM img WHERE name = '$page->{image}';
	});
	my (@a, @b);
	($a[0] = $fp32) =~ tr/{}//d;
	($b[0] = $bf16) =~ tr/{}//d;
	@a = split /,/, $a[0];
	@b = split /,/, $b[0];
	my $g = golden($fx, $page);
	my $dim = $page->{shape}[1];
	my ($maxd, $mincos, $maxdg) = (0, 1, 0);
	for my $r (0 .. @a / $dim - 1)
	{
		my ($dot, $na, $nb) = (0, 0, 0);
		for my $c (0 .. $dim - 1)
		{
			my $i = $r * $dim + $c;
			$maxd = abs($a[$i] - $b[$i]) if abs($a[$i] - $b[$i]) > $maxd;
			$maxdg = abs($g->[$i] - $b[$i]) if abs($g->[$i] - $b[$i]) > $maxdg;
			$dot += $a[$i] * $b[$i];
			$na += $a[$i]**2;
			$nb += $b[$i]**2;
		}
		my $cos = $dot / sqrt($na * $nb);
		$mincos = $cos if $cos < $mincos;
	}
	is(scalar(@b), scalar(@$g), 'bf16 precision: same shape as the golden');
	ok($mincos >= 0.999 && $maxdg <= 2e-2,
		sprintf('bf16 precision: min cosine vs fp32 %.6f, max |delta| vs golden %.2e',
			$mincos, $maxdg));
  SKIP:
	{
		skip 'no AVX512_BF16 on this CPU: bf16 precision computes as fp32', 1
		  unless $has_bf16;
		ok($maxd > 1e-5, sprintf('bf16 precision is a different computation (max |delta| vs fp32 %.2e)', $maxd));
	}
	my ($ret, $out, $notice) = $node->psql('postgres', qq{
		CREATE ROLE plain_user LOGIN;
		SELECT dims('[[1]]'::multivector);	-- loads the library: the setting exists
		SET ROLE plain_user;
		DO \$\$ BEGIN SET colpali.cpu_precision = bf16;
		EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'denied'; END \$\$;
	});
	like($notice, qr/denied/, 'colpali.cpu_precision is superuser-only');
}

$node->stop;
done_testing();
