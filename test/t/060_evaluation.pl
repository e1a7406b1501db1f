# Retrieval quality in SQL and the trained demo model:
#  - colpali_ir_metrics(_by_query) equal pytrec_eval (trec_eval's C code) on
#    fixed runs with ties, graded relevance and edge cases, k = 1, 3, 5, 10
#    (test/fixtures/eval/ir_goldens.json, written by generate_eval.py);
#  - the demo checkpoint (test/fixtures/models/demo, trained by
#    train_demo.py): colpali_image / colpali_query equal the PyTorch
#    reference embeddings (fp32, <= 1e-4), MaxSim of every held-out query and
#    page equals the reference scores, colpali_evaluate's nDCG@5, recall@5,
#    MRR@5 (and recall@1) of the held-out split equal the reference's to
#    1e-4, by the exact scan and by the index under exhaustive settings, and
#    the right page comes first for the demo's questions (page ids from the
#    generator's metadata);
#  - tools/colpali-load-vidore loads the tiny ViDoRe-shaped parquet fixture
#    (skipped, saying so, where python3 lacks pyarrow or psycopg).
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
my $ir = decode_json(slurp_file("$fx/eval/ir_goldens.json"));

my $node = PostgreSQL::Test::Cluster->new('evaluation');
$node->init;
$node->append_conf('postgresql.conf', "colpali.threads = 1\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION colpali');

# ---- the measures against pytrec_eval ----
{
	my $sql = "CREATE TABLE run (query_id text, page_id text, score float8);\n"
	  . "CREATE TABLE qrels (query_id text, page_id text, relevance integer);\n";
	$sql .= "INSERT INTO run VALUES " . join(",\n", map {
		sprintf("('%s', '%s', %.17g)", @$_) } @{ $ir->{run} }) . ";\n";
	$sql .= "INSERT INTO qrels VALUES " . join(",\n", map {
		sprintf("('%s', '%s', %d)", @$_) } @{ $ir->{qrels} }) . ";\n";
	$node->safe_psql('postgres', $sql);

	for my $k (sort { $a <=> $b } keys %{ $ir->{per_k} })
	{
		my $want = $ir->{per_k}{$k};
		my $out = $node->safe_psql('postgres',
			"SELECT query_id, ndcg, recall, mrr FROM colpali_ir_metrics_by_query('run', 'qrels', $k)");
		my %got = map { my @f = split /\|/; $f[0] => [ @f[ 1 .. 3 ] ] } split /\n/, $out;
		is(join(',', sort keys %got), join(',', @{ $ir->{evaluated_queries} }),
			"k=$k: the evaluated queries are pytrec_eval's");
		my $maxd = 0;
		for my $q (keys %$want)
		{
			my @w = @{ $want->{$q} }{qw(ndcg recall mrr)};
			for my $i (0 .. 2)
			{
				my $d = abs(($got{$q}[$i] // 1e9) - $w[$i]);
				$maxd = $d if $d > $maxd;
			}
		}
		ok($maxd <= 1e-12, sprintf("k=%d: nDCG, recall, MRR of every query equal pytrec_eval's (max |delta| %.1e)", $k, $maxd));
		my ($n, $nd, $re, $mr) = split /\|/, $node->safe_psql('postgres',
			"SELECT * FROM colpali_ir_metrics('run', 'qrels', $k)");
		my $m = $ir->{mean_k}{$k};
		ok($n == @{ $ir->{evaluated_queries} } && abs($nd - $m->{ndcg}) <= 1e-12
			  && abs($re - $m->{recall}) <= 1e-12 && abs($mr - $m->{mrr}) <= 1e-12,
			"k=$k: the means equal pytrec_eval's ($nd, $re, $mr)");
	}
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT * FROM colpali_ir_metrics('run', 'qrels', 0)");
	like($err, qr/k must be at least 1/, 'k = 0 is refused');
}

# ---- the demo model ----
my $held = decode_json(slurp_file("$fx/demo/heldout.json"));
my $gold = decode_json(slurp_file("$fx/goldens/demo/manifest.json"));
{
	my $sql = "SET colpali.model_path = '$fx/models/demo';\n"
	  . "CREATE TABLE corpus (id bigint PRIMARY KEY, title text, image bytea, emb multivector(128));\n"
	  . "CREATE TABLE queries (id bigint PRIMARY KEY, text text, emb multivector(128));\n"
	  . "CREATE TABLE qrels_demo (query_id bigint, page_id bigint, relevance integer);\n";
	for my $p (@{ $held->{corpus} })
	{
		my $hex = unpack('H*', slurp_file("$fx/demo/$p->{file}"));
		(my $t = $p->{title}) =~ s/'/''/g;
		$sql .= "INSERT INTO corpus VALUES ($p->{id}, '$t', '\\x$hex', NULL);\n";
	}
	for my $q (@{ $held->{queries} })
	{
		(my $t = $q->{text}) =~ s/'/''/g;
		$sql .= "INSERT INTO queries VALUES ($q->{id}, '$t', NULL);\n";
	}
	$sql .= "INSERT INTO qrels_demo VALUES "
	  . join(",\n", map { "($_->{query_id}, $_->{page_id}, $_->{relevance})" } @{ $held->{qrels} }) . ";\n";
	$sql .= "UPDATE corpus SET emb = colpali_image(image);\nUPDATE queries SET emb = colpali_query(text);\n";
	$node->safe_psql('postgres', $sql);
}

# embeddings against the reference (the page prompt's length is the golden
# page_ids', a query's rows its token ids')
for my $p (@{ $gold->{pages} })
{
	is($p->{shape}[0], scalar @{ $gold->{page_ids} }, "demo page $p->{page_id}: one row per prompt id");
	compare($fx, "demo page $p->{page_id}",
		$node->safe_psql('postgres', "SELECT emb::real[] FROM corpus WHERE id = $p->{page_id}"), $p);
}
for my $q (@{ $gold->{queries} })
{
	is($q->{shape}[0], scalar @{ $q->{ids} }, "demo query $q->{query_id}: one row per token id");
	compare($fx, "demo query $q->{query_id}",
		$node->safe_psql('postgres', "SELECT emb::real[] FROM queries WHERE id = $q->{query_id}"), $q);
}
{
	my $scores = golden($fx, $gold->{scores});
	my $np = $gold->{scores}{shape}[1];
	my $out = $node->safe_psql('postgres',
		"SELECT q.id, p.id, maxsim(p.emb, q.emb) FROM corpus p, queries q ORDER BY 1, 2");
	my ($maxd, $n) = (0, 0);
	for my $line (split /\n/, $out)
	{
		my ($q, $p, $s) = split /\|/, $line;
		my $d = abs($s - $scores->[ ($q - 1) * $np + $p - 1 ]);
		$maxd = $d if $d > $maxd;
		$n++;
	}
	ok($n == @{ $held->{queries} } * $np && $maxd <= 1e-4,
		sprintf("demo: %d MaxSim scores equal the reference's (max |delta| %.1e)", $n, $maxd));
}

# nDCG@5 etc. of the held-out split, exact and through the index
my $ref = $held->{reference_metrics};
sub check_metrics
{
	my ($label, $line, $r1) = @_;
	my ($n, $nd, $re, $mr) = split /\|/, $line;
	ok($n == @{ $held->{queries} }
		  && abs($nd - $ref->{'ndcg@5'}) <= 1e-4
		  && abs($re - $ref->{'recall@5'}) <= 1e-4
		  && abs($mr - $ref->{'mrr@5'}) <= 1e-4
		  && abs($r1 - $ref->{'recall@1'}) <= 1e-4,
		sprintf('%s: nDCG@5 %.4f recall@1 %.4f recall@5 %.4f MRR@5 %.4f (reference %.4f %.4f %.4f %.4f)',
			$label, $nd, $r1, $re, $mr, @$ref{qw(ndcg@5 recall@1 recall@5 mrr@5)}));
}
for my $method ('exact', 'index')
{
	if ($method eq 'index')
	{
		my ($ret, $out, $err) = $node->psql('postgres',
			"SELECT * FROM colpali_evaluate('corpus', 'queries', 'qrels_demo', 5, 'index')");
		like($err, qr/has no valid mvivf index/, 'method index without an index is refused');
		$node->safe_psql('postgres', 'CREATE INDEX ON corpus USING mvivf (emb)');
	}
	my $set = $method eq 'index' ? 'SET mvivf.candidates = 1000; SET mvivf.rerank = 1000; SET mvivf.probes = 1000;' : '';
	my $out = $node->safe_psql('postgres', qq{$set
		CREATE TABLE run_$method AS SELECT * FROM colpali_retrieve('corpus', 'queries', 5, '$method');
		SELECT * FROM colpali_evaluate('corpus', 'queries', 'qrels_demo', 5, '$method');
		SELECT recall FROM colpali_ir_metrics('run_$method', 'qrels_demo', 1);
		SELECT current_setting('enable_seqscan');
	});
	my ($line, $r1, $seq) = split /\n/, $out;
	check_metrics("held-out split, $method", $line, $r1);
	is($seq, 'on', "$method: enable_seqscan is as it was after colpali_retrieve");
}
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM run_exact e FULL JOIN run_index i USING (query_id, rank)
	WHERE e.page_id IS DISTINCT FROM i.page_id}), '0',
	'the index under exhaustive settings ranks as the exact scan');

# the demo's questions: the page they were generated from comes first
{
	my %page_of = map { $_->{query_id} => $_->{page_id} } @{ $held->{qrels} };
	for my $qid (@{ $held->{demo_queries} })
	{
		my ($text) = map { $_->{text} } grep { $_->{id} == $qid } @{ $held->{queries} };
		my $top = $node->safe_psql('postgres', "SELECT page_id FROM run_index WHERE query_id = '$qid' AND rank = 1");
		is($top, $page_of{$qid}, "demo question '$text': its page first");
	}
}

my ($ret, $out, $err) = $node->psql('postgres', "SELECT * FROM colpali_retrieve('corpus', 'queries', 5, 'bogus')");
like($err, qr/method must be 'exact' or 'index'/, 'an unknown method is refused');

# ---- the ViDoRe loader ----
SKIP:
{
	# COLPALI_TEST_PYTHON: another interpreter (one with pyarrow)
	my $py = $ENV{COLPALI_TEST_PYTHON} // 'python3';
	my $probe = system("$py -c 'import pyarrow, psycopg' >/dev/null 2>&1");
	skip "$py lacks pyarrow or psycopg 3: the ViDoRe loader is not tested (pip install pyarrow psycopg)", 4
	  if $probe != 0;
	my $dsn = $node->connstr('postgres') . " options='-c colpali.model_path=$fx/models/demo'";
	my ($stdout, $stderr) = ('', '');
	my $ok = IPC::Run::run([ $py, "$ENV{TESTDIR}/tools/colpali-load-vidore",
			"$fx/eval/vidore_tiny", 'tiny', '--dsn', $dsn, '--embed' ],
		'>', \$stdout, '2>', \$stderr);
	ok($ok, 'colpali-load-vidore ran') or diag($stderr);
	like($stderr, qr/tiny_corpus: 6\/6 rows/, 'it shows progress');
	is($node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM tiny_corpus) || ' ' || (SELECT count(*) FROM tiny_queries) || ' '
			|| (SELECT count(*) FROM tiny_qrels) || ' '
			|| (SELECT bool_and(c.image = d.image) FROM tiny_corpus c JOIN corpus d USING (id))}),
		'6 12 12 true', 'pages (image bytes intact), queries and qrels loaded');
	my $m = $node->safe_psql('postgres',
		"SELECT round(ndcg::numeric, 6) FROM colpali_evaluate('tiny_corpus', 'tiny_queries', 'tiny_qrels', 5)");
	# the same pages and queries, encoded from the demo tables
	my $want = $node->safe_psql('postgres', q{
		CREATE VIEW sub_corpus AS SELECT * FROM corpus WHERE id IN (SELECT id FROM tiny_corpus);
		CREATE VIEW sub_queries AS SELECT * FROM queries WHERE id IN (SELECT id FROM tiny_queries);
		SELECT round(ndcg::numeric, 6) FROM colpali_evaluate('sub_corpus', 'sub_queries', 'qrels_demo', 5)});
	is($m, $want, "nDCG\@5 of the loaded set ($m) is that of the same pages and queries");
}

$node->stop;
done_testing();
