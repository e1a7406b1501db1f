#!/usr/bin/perl
# mvivf on a table where most pages are one and the same page (blank pages:
# background rows only) and the others have content: the rows of an index
# scan at the defaults, ORDER BY emb <#> q LIMIT 60, must be those of the
# exact scan (index scans off), place by place, compared by distance so
# that ties may come in any order, with as many rows, in non-decreasing
# order.  The scan's error model is fitted on samples of reranked pages;
# drawn in proportion to their number, 800 copies of the blank page filled
# those samples with the blank page's single error, far from the content
# pages', and the scan stopped reranking while content pages that beat
# returned rows were still unreranked (3 of the 10 queries wrong at LIMIT
# 60, 586 rows of 600 found).  The
# samples now stand for distinct pages (mvmargin.c, MvivfSampleToFront and
# MvivfErrorSeen).
#
# A few rows of large norm among unit rows (fewer than the 1% that the
# build's first check of norms needs) make CREATE INDEX warn: they decide
# the MaxSim of their pages and the residual codes cannot express them; and
# the pages that hold them are reranked before the others, so that the
# index still returns the exact scan's rows (10 of 200 pages with a row of
# norm 20: recall 1, where the approximate order alone missed them).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('mvdup');
$node->init;
$node->append_conf('postgresql.conf', "max_parallel_workers_per_gather = 0\njit = off\n");
$node->start;

# 200 content pages of 100 rows x 64 (40 % background rows near one of 8
# prototypes, the others near one of the page's 3 topics of 64), 800
# copies of one blank page, 10 queries of 20 rows near a content page's
# topics; the generator of bench/index/gen.c in SQL, with a fixed seed
$node->safe_psql('postgres', 'CREATE EXTENSION colpali');
$node->safe_psql(
	'postgres', q{
	SELECT setseed(0.25);
	CREATE FUNCTION mvd_unitrand(n int) RETURNS real[] LANGUAGE sql VOLATILE AS $$
		SELECT array_agg(x / nrm ORDER BY i)::real[] FROM (SELECT i, x, sqrt(sum(x * x) OVER ()) AS nrm
			FROM (SELECT i, sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS x FROM generate_series(1, n) i) a) b $$;
	CREATE FUNCTION mvd_near(c real[], s float8) RETURNS real[] LANGUAGE sql VOLATILE AS $$
		SELECT array_agg(x + s * y ORDER BY i)::real[] FROM unnest(c, mvd_unitrand(64)) WITH ORDINALITY u(x, y, i) $$;
	CREATE TABLE topics AS SELECT t, mvd_unitrand(64) AS c FROM generate_series(0, 63) t;
	CREATE TABLE bgs AS SELECT b, mvd_unitrand(64) AS c FROM generate_series(0, 7) b;
	CREATE TABLE pagetopics AS SELECT p, array_agg(floor(random() * 64)::int) AS t FROM generate_series(1, 200) p, generate_series(1, 3) GROUP BY p;
	-- the rows of 200 content pages (40 % background rows, the others near one
	-- of the page's 3 topics), of one blank page (background rows only) and of
	-- 10 queries (20 rows near the topics of a content page)
	CREATE TABLE rowspec AS SELECT p, r, random() < 0.4 AS isbg, floor(random() * 8)::int AS bi,
		pt.t[1 + floor(random() * 3)::int] AS ti FROM pagetopics pt, generate_series(1, 100) r;
	INSERT INTO rowspec SELECT 0, r, true, floor(random() * 8)::int, NULL FROM generate_series(1, 100) r;
	CREATE TABLE qspec AS SELECT q, r, pt.t[1 + floor(random() * 3)::int] AS ti
		FROM generate_series(1, 10) q JOIN pagetopics pt ON pt.p = 1 + q * 17, generate_series(1, 20) r;
	CREATE TABLE pages (id int, emb multivector);
	ALTER TABLE pages ALTER emb SET STORAGE EXTERNAL;
	CREATE TEMP TABLE pagerows AS SELECT s.p, s.r, CASE WHEN s.isbg THEN mvd_near(b.c, 0.15) ELSE mvd_near(t.c, 0.88) END AS v
		FROM rowspec s JOIN bgs b ON b.b = s.bi LEFT JOIN topics t ON t.t = s.ti ORDER BY s.p, s.r;
	INSERT INTO pages SELECT p, l2_normalize(array_agg(v ORDER BY r)::multivector) FROM pagerows WHERE p > 0 GROUP BY p;
	-- 800 copies of the blank page
	INSERT INTO pages SELECT i, b.emb FROM generate_series(201, 1000) i,
		(SELECT l2_normalize(array_agg(v ORDER BY r)::multivector) AS emb FROM pagerows WHERE p = 0) b;
	CREATE TEMP TABLE qrows AS SELECT s.q, s.r, mvd_near(t.c, 1.02) AS v FROM qspec s JOIN topics t ON t.t = s.ti ORDER BY s.q, s.r;
	CREATE TABLE queries AS SELECT q, l2_normalize(array_agg(v ORDER BY r)::multivector) AS qv FROM qrows GROUP BY q;
	CREATE INDEX pages_idx ON pages USING mvivf (emb);
	ANALYZE pages;
});

my $check = q{
SET enable_seqscan = off; SET enable_sort = off; SET enable_bitmapscan = off;
CREATE TEMP TABLE ix AS SELECT q, array(SELECT emb <#> qv FROM pages ORDER BY emb <#> qv LIMIT %d) AS d FROM queries;
SET enable_indexscan = off; SET enable_seqscan = on; SET enable_sort = on;
CREATE TEMP TABLE ex AS SELECT q, array(SELECT emb <#> qv FROM pages ORDER BY emb <#> qv LIMIT %d) AS d FROM queries;
SELECT count(*) FILTER (WHERE ix.d = ex.d),
       count(*) FILTER (WHERE cardinality(ix.d) = cardinality(ex.d)),
       count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM generate_series(2, cardinality(ix.d)) i WHERE ix.d[i] < ix.d[i - 1])),
       sum((SELECT count(*) FROM unnest(ix.d) x WHERE x <= ex.d[cardinality(ex.d)]))
FROM ix JOIN ex USING (q);
};

my $plan = $node->safe_psql('postgres',
	'SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM pages ORDER BY emb <#> (SELECT qv FROM queries WHERE q = 1) LIMIT 60');
like($plan, qr/Index Scan using pages_idx/, 'the index scan is used');

for my $k (10, 60)
{
	my ($same, $full, $ordered, $hits) =
	  split /\|/, $node->safe_psql('postgres', sprintf($check, $k, $k));
	is($full, 10, "LIMIT $k: every query returns $k rows");
	is($ordered, 10, "LIMIT $k: every query's rows come in order");
	is($hits, 10 * $k, "LIMIT $k: recall 1 against the exact scan ($hits of " . 10 * $k . ')');
	is($same, 10, "LIMIT $k: the distances equal the exact scan's, place by place");
}

# a few rows of large norm: a warning names them
my ($ret, $out, $err) = $node->psql(
	'postgres', q{
	CREATE TABLE bignorm (id int, emb multivector);
	-- 40 pages of 100 unit rows; row 7 of page 3 has norm 20
	INSERT INTO bignorm SELECT p, array_agg(CASE WHEN p = 3 AND r = 7
			THEN (SELECT array_agg(x * 20) FROM unnest(v) x)::real[] ELSE v END ORDER BY r)::multivector
		FROM (SELECT p, r, mvd_unitrand(64) AS v FROM generate_series(1, 40) p, generate_series(1, 100) r) x GROUP BY p;
	CREATE INDEX ON bignorm USING mvivf (emb);
});
is($ret, 0, 'an index on a few rows of large norm builds');
like($err, qr/of the sampled rows of index "bignorm_emb_idx" have a norm below 0\.5 or above 1\.5 \(largest 20\)/,
	'and warns of the rows of large norm');

# pages with a row of large norm are reranked before the others: the
# residual codes cannot express such a row, which decides its page's MaxSim
# (every query row's maximum), so the approximate order says nothing of
# the page; 10 of the 200 content pages get one row of norm 20
$node->safe_psql(
	'postgres', q{
	CREATE TABLE normpages (id int, emb multivector);
	ALTER TABLE normpages ALTER emb SET STORAGE EXTERNAL;
	INSERT INTO normpages
	SELECT id, (SELECT array_agg(rw ORDER BY r) FROM (
			SELECT r, array_agg(CASE WHEN id % 20 = 0 AND r = 7 THEN x * 20 ELSE x END ORDER BY o) AS rw
			FROM (SELECT (o - 1) / 64 + 1 AS r, o, x FROM unnest(emb::real[]) WITH ORDINALITY u(x, o)) e
			GROUP BY r) rows)::multivector
	FROM pages WHERE id <= 200;
	CREATE INDEX normpages_idx ON normpages USING mvivf (emb);
	ANALYZE normpages;
});
my $normcheck = $check;
$normcheck =~ s/FROM pages ORDER BY/FROM normpages ORDER BY/g;
$normcheck =~ s/CREATE TEMP TABLE (ix|ex)/CREATE TEMP TABLE n$1/g;
$normcheck =~ s/FROM ix JOIN ex/FROM nix AS ix JOIN nex AS ex/;
my ($nsame, $nfull, $nordered, $nhits) =
  split /\|/, $node->safe_psql('postgres', sprintf($normcheck, 10, 10));
is($nhits, 100, "rows of norm 20: recall 1 against the exact scan ($nhits of 100)");
is($nsame, 10, 'rows of norm 20: the distances equal the exact scan\'s, place by place');
like($node->safe_psql('postgres', q{
SET enable_seqscan = off;
SELECT '[[1]]'::multivector;	-- the library is loaded: EXPLAIN shows its line
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT id FROM normpages ORDER BY emb <#> (SELECT qv FROM queries WHERE q = 1) LIMIT 10}),
	qr/forced=10 /, 'EXPLAIN counts the 10 pages reranked first');

$node->stop;
done_testing();
