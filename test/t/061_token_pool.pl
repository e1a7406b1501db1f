# Token pooling in SQL against colpali-engine's goldens (test/fixtures/pool/,
# written by test/fixtures/pool_goldens.py): colpali_pool gives the number of
# pooled rows colpali-engine gives and the same rows within 1e-6.  Pooling at
# ingest with the tiny fixture checkpoint: colpali_image(img, pool_factor)
# and colpali_images(imgs, pool_factor) equal colpali_pool of the unpooled
# embedding, bit for bit, with at most max(N / factor, 1) rows; the setting
# colpali.pool_factor does the same for the one-argument forms and for
# colpali_embed_images.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $fx = "$ENV{TESTDIR}/test/fixtures";
plan skip_all => 'pool goldens not found' unless -f "$fx/pool/cases.txt";

my $node = PostgreSQL::Test::Cluster->new('pool');
$node->init;
$node->append_conf('postgresql.conf', "colpali.threads = 1\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION colpali');

# multivector text literal of a float32 file (%.9g round-trips float32)
sub literal
{
	my ($file, $rows, $dim) = @_;
	my @v = unpack('f<*', slurp_file("$fx/$file"));
	die "bad input $file" unless @v == $rows * $dim;
	return '[' . join(',', map { '[' . join(',', map { sprintf('%.9g', $_) } @v[ $_ * $dim .. ($_ + 1) * $dim - 1 ]) . ']' } 0 .. $rows - 1) . ']';
}

# 1. colpali_pool against the goldens
my ($cases, $ok) = (0, 0);
for my $line (split /\n/, slurp_file("$fx/pool/cases.txt"))
{
	next if $line =~ /^#/;
	my ($name, $in, $rows, $dim, $factor, $labels, $pooled, $npooled) = split / /, $line;
	my $lit = literal($in, $rows, $dim);
	my $out = $node->safe_psql('postgres', "SELECT num_vectors(p), p::real[] FROM colpali_pool('$lit', $factor) p");
	my ($n, $arr) = split /\|/, $out, 2;
	(my $flat = $arr) =~ tr/{}//d;
	my @got = split /,/, $flat;
	my @want = unpack('f<*', slurp_file("$fx/$pooled"));
	$cases++;
	if ($n != $npooled || @got != @want)
	{
		fail("$name factor $factor: $n rows, colpali-engine $npooled");
		next;
	}
	my $maxd = 0;
	for my $i (0 .. $#want)
	{
		my $d = abs($got[$i] - $want[$i]);
		$maxd = $d if $d > $maxd;
	}
	if ($maxd <= 1e-6) { $ok++ }
	else { fail(sprintf("%s factor %d: pooled rows differ by %.3g", $name, $factor, $maxd)) }
}
ok($cases >= 50, "$cases golden cases");
is($ok, $cases, 'colpali_pool: row counts of colpali-engine and pooled rows within 1e-6');

# 2. pooling at ingest, tiny fixture checkpoint
SKIP:
{
	skip 'fixture checkpoint not found', 9 unless -f "$fx/manifest.json";
	my $manifest = decode_json(slurp_file("$fx/manifest.json"));
	my %models = map { $_->{name} => $_ } @{ $manifest->{models} };
	my $ins = "SET colpali.model_path = '$fx/$models{tiny}{dir}';\n"
	  . "CREATE TABLE img (name text PRIMARY KEY, data bytea NOT NULL, emb multivector);\n";
	my @names;
	for my $im (@{ $manifest->{images} })
	{
		push @names, $im->{name};
		my $hex = unpack('H*', slurp_file("$fx/$im->{file}"));
		$ins .= "INSERT INTO img VALUES ('$im->{name}', '\\x$hex');\n";
	}
	$node->safe_psql('postgres', $ins);
	my $set = "SET colpali.model_path = '$fx/$models{tiny}{dir}';";

	# every page, factors 2 and 3: pooled at ingest = colpali_pool(unpooled)
	my $res = $node->safe_psql('postgres', qq{$set
		CREATE TABLE full_emb AS SELECT name, colpali_image(data) AS e FROM img;
		SELECT count(*),
			count(*) FILTER (WHERE multivector_send(colpali_image(data, pool_factor => f))
				= multivector_send(colpali_pool(e, f))),
			count(*) FILTER (WHERE num_vectors(colpali_pool(e, f)) <= greatest(num_vectors(e) / f, 1)),
			count(*) FILTER (WHERE num_vectors(colpali_pool(e, f)) < num_vectors(e))
		FROM img JOIN full_emb USING (name), (VALUES (2), (3)) fs(f);});
	my ($n, $same, $rule, $fewer) = split /\|/, $res;
	ok($n == 2 * @names, "$n pages x factors encoded");
	is($same, $n, 'colpali_image(img, pool_factor) = colpali_pool(colpali_image(img), pool_factor)');
	is($rule, $n, 'pooled row count at most max(N / factor, 1)');
	is($fewer, $n, 'pooling shrinks every page');

	# the pooled fixture page has the row count of colpali-engine's golden
	my ($golden_n) = slurp_file("$fx/pool/cases.txt") =~ /^tiny_page_text_png \S+ \d+ \d+ 3 \S+ \S+ (\d+)$/m;
	is($node->safe_psql('postgres', "$set SELECT num_vectors(colpali_image(data, 3)) FROM img WHERE name = 'page_text_png'"),
		$golden_n, "page_text_png pooled x3 has colpali-engine's $golden_n rows");

	# the batch form, with a NULL element (a batch of several pages is not
	# bitwise the pages one by one, so compare with the unpooled batch)
	is($node->safe_psql('postgres', qq{$set
		CREATE TABLE imgs AS SELECT array_agg(data ORDER BY name) || NULL::bytea AS arr FROM img;
		WITH a AS (SELECT colpali_images(arr, pool_factor => 3) AS p, colpali_images(arr) AS u FROM imgs)
		SELECT array_length(p, 1) = array_length(u, 1), p[array_length(p, 1)] IS NULL,
			(SELECT bool_and(multivector_send(p[i]) = multivector_send(colpali_pool(u[i], 3)))
			 FROM generate_subscripts(u, 1) i WHERE u[i] IS NOT NULL)
		FROM a;}),
		"t|t|t", 'colpali_images(imgs, pool_factor => 3) pools each page; NULL stays NULL');

	# the setting applies to the one-argument forms; the argument overrides it
	is($node->safe_psql('postgres', qq{$set SET colpali.pool_factor = 3;
		SELECT bool_and(multivector_send(colpali_image(data)) = multivector_send(colpali_pool(e, 3)))
			AND bool_and(multivector_send(colpali_image(data, pool_factor => 1)) = multivector_send(e))
		FROM img JOIN full_emb USING (name);
		SELECT bool_and(multivector_send(p[i]) = multivector_send(colpali_pool(u[i], 3)))
		FROM (SELECT colpali_images(arr) AS p, colpali_images(arr, pool_factor => 1) AS u FROM imgs) a,
			generate_subscripts(u, 1) i WHERE u[i] IS NOT NULL;}),
		"t\nt", 'colpali.pool_factor = 3 pools colpali_image(bytea) and colpali_images(bytea[]); the argument overrides it');

	# colpali_embed_images under the setting stores pooled pages (batches of
	# one page, which are bitwise the single-page encoding)
	$node->safe_psql('postgres', "$set SET colpali.pool_factor = 3; CALL colpali_embed_images('img', 'data', 'emb', 1);");
	is($node->safe_psql('postgres', q{
		SELECT count(*) = count(*) FILTER (WHERE multivector_send(img.emb) = multivector_send(colpali_pool(f.e, 3)))
		FROM img JOIN full_emb f USING (name);}), 't', 'colpali_embed_images with colpali.pool_factor = 3 stores pooled pages');

	# a bad factor fails before any encoding
	my ($rc, $stdout, $stderr) = $node->psql('postgres',
		"$set SELECT colpali_image(data, pool_factor => 0) FROM img LIMIT 1");
	like($stderr, qr/pool factor must be between 1 and/, 'pool_factor 0 is an error');
}

done_testing();
