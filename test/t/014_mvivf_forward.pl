#!/usr/bin/perl
# The forward store of mvivf format version 4: every document's centroid
# numbers are written apart from its codes (its LISTS groups, then its CODES
# groups, in the same token order), so that the centroid interaction reads
# only the numbers.  Checked here on documents large enough that both kinds
# of groups span pages:
#  - the layout itself, read from the index file (chain order, per document
#    LISTS groups then CODES groups with as many tokens, nothing else);
#  - the approximate stage reads it right: with the rerank capped to a few
#    documents, a query made of a document's own rows finds that document
#    (misread numbers or codes would rank it anywhere), for documents of the
#    build (document lists) and inserted since (read by every scan);
#  - the exact order of the index (mvivf.miss_tolerance = 0) equals the
#    sequential scan's after the build, inserts, deletes and VACUUM, and with
#    the full pass (mvivf.probes = 0), which reads every group;
#  - an index of version 3 (mixed groups, the metapage of version 4 is the
#    same) keeps its layout: inserts into it write mixed groups, and scans
#    read both kinds.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('mvforward');
# pages are rewritten by hand below, so no data checksums (initdb turns them
# on by default from PostgreSQL 18)
$node->init(extra => $node->pg_version >= 18 ? ['--no-data-checksums'] : []);
$node->append_conf('postgresql.conf', 'max_parallel_workers_per_gather = 0');
$node->start;

# documents of 1 to 3,000 rows of 16 dimensions (4-bit codes: 8 bytes, so a
# document's 6 kB of centroid numbers and 24 kB of codes span pages)
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION colpali;
SELECT setseed(0.125);
CREATE FUNCTION mvf_doc(nrows int) RETURNS multivector LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(v ORDER BY r)::multivector)
	FROM (SELECT r, array_agg((random() - 0.5)::real ORDER BY d) AS v
		  FROM generate_series(1, nrows) r, generate_series(1, 16) d GROUP BY r) x
$$;
CREATE TABLE pages (id int PRIMARY KEY, emb multivector);
ALTER TABLE pages ALTER emb SET STORAGE EXTERNAL;
INSERT INTO pages SELECT i, mvf_doc(CASE WHEN i % 7 = 0 THEN 1 ELSE 1 + (i * 997) % 3000 END)
	FROM generate_series(1, 80) i;
CREATE INDEX pages_idx ON pages USING mvivf (emb) WITH (lists = 32, bits = 4);
-- a query made of 6 rows of a document spread over it (the last one
-- included: its code groups past the first must be paired with the right
-- centroid numbers), slightly moved
CREATE FUNCTION mvf_query(doc int) RETURNS multivector LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(v ORDER BY k)::multivector)
	FROM (SELECT k, array_agg(x + 0.02 * (random()::real - 0.5) ORDER BY d) AS v
		  FROM (SELECT k, d, (emb::real[])[1 + ((num_vectors(emb) - 1) * k) / 6][d] AS x
				FROM pages, generate_series(1, 6) k, generate_series(1, 16) d
				WHERE id = doc) y GROUP BY k) z
$$;
});

my $file = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT pg_relation_filepath('pages_idx')");

# The forward groups in chain order: [docid, ntokens, kind] each.  The
# metapage's forwardHead is at byte 24 + 200; a page's special area (16
# bytes) holds next (u32) and flags (u16 at +10); groups are packed from
# byte 24 to pd_lower (u16 at byte 12): {u32 docid; u16 n; u16 kind}, then
# n x (2 + 8) bytes (kind 0), n x 2 (kind 1) or n x 8 (kind 2).
sub forward_groups
{
	$node->safe_psql('postgres', 'CHECKPOINT');
	open(my $fh, '<', $file) or die "open $file: $!";
	binmode $fh;
	local $/;
	my $data = <$fh>;
	close $fh;
	my $blk = unpack('L', substr($data, 24 + 200, 4));
	my @groups;
	my %seen;
	while ($blk != 0xFFFFFFFF)
	{
		die "forward chain loops at $blk" if $seen{$blk}++;
		my $page = substr($data, $blk * 8192, 8192);
		my ($next) = unpack('L', substr($page, 8192 - 16, 4));
		my ($flags) = unpack('S', substr($page, 8192 - 16 + 10, 2));
		die "block $blk is not a forward page" unless $flags & (1 << 7);
		my ($lower) = unpack('S', substr($page, 12, 2));
		my $p = 24;
		while ($p + 8 <= $lower)
		{
			my ($doc, $n, $kind) = unpack('LSS', substr($page, $p, 8));
			push @groups, [ $doc, $n, $kind ];
			$p += 8 + $n * ($kind == 0 ? 10 : $kind == 1 ? 2 : 8);
		}
		die "group overruns pd_lower on block $blk" if $p != $lower;
		$blk = $next;
	}
	return @groups;
}

# Per document (in chain order): its groups as a string of kinds, e.g.
# "1122222" and whether its tokens add up.
sub layout_ok
{
	my ($docs, $want) = @_;    # $want: 'split' or 'mixed'
	my @groups = forward_groups();
	my (%kinds, %lists, %codes, @order);
	for my $g (@groups)
	{
		my ($doc, $n, $kind) = @$g;
		push @order, $doc unless exists $kinds{$doc};
		$kinds{$doc} .= $kind;
		$lists{$doc} += $n if $kind != 2;
		$codes{$doc} += $n if $kind != 1;
	}
	my ($bad, $spanning) = (0, 0);
	for my $doc (@$docs)
	{
		my $k = $kinds{$doc} // '';
		my $ok = $want eq 'split' ? $k =~ /^1+2+$/ : $k =~ /^0+$/;
		$ok &&= ($lists{$doc} // -1) == ($codes{$doc} // -2);
		$bad++ unless $ok;
		$spanning++ if $k =~ /^11/;
	}
	# a document's groups follow each other: no document comes back later
	my ($prev, %done) = (-1);
	for my $g (@groups)
	{
		next if $g->[0] == $prev;
		$bad++ if $done{ $g->[0] }++;
		$prev = $g->[0];
	}
	return ($bad, $spanning, scalar(@groups));
}

my @built = (0 .. 79);    # document ids of the build
my ($bad, $spanning, $ngroups) = layout_ok(\@built, 'split');
is($bad, 0, 'build: every document is LISTS groups, then CODES groups of as many tokens');
cmp_ok($spanning, '>', 0, 'build: some documents\' centroid numbers span pages');

# Queries are stored first (CREATE TABLE q_N), so that both scans order by
# the very same value, a scalar subquery: the index is used for
# ORDER BY emb <#> (SELECT ...), not for a query joined in.
sub make_query
{
	my ($doc) = @_;
	$node->safe_psql('postgres',
		"DROP TABLE IF EXISTS q_$doc; CREATE TABLE q_$doc AS SELECT mvf_query($doc) AS q");
}
my $exact = q{SET enable_indexscan = off;
SELECT string_agg(id || ':' || round(d::numeric, 6), ',' ORDER BY d, id)
FROM (SELECT id, emb <#> (SELECT q FROM q_%d) AS d FROM pages ORDER BY 2, 1 LIMIT 15) x};
my $indexed = q{SET enable_seqscan = off; SET mvivf.miss_tolerance = 0; %s
SELECT string_agg(id || ':' || round(d::numeric, 6), ',')
FROM (SELECT id, emb <#> (SELECT q FROM q_%d) AS d FROM pages ORDER BY emb <#> (SELECT q FROM q_%d) LIMIT 15) x};
# the top document with the rerank capped: 1 document in approximate order
# (plus the scan's random sample of 16) before the first row
my $capped = q{SET enable_seqscan = off; SET mvivf.rerank = 1; SET mvivf.max_rerank = 1;
SELECT id FROM pages ORDER BY emb <#> (SELECT q FROM q_%d) LIMIT 1};

sub compare_exact
{
	my ($label, $docs, $settings) = @_;
	my $mismatch = 0;
	for my $doc (@$docs)
	{
		make_query($doc);
		my $e = $node->safe_psql('postgres', sprintf($exact, $doc));
		my $i = $node->safe_psql('postgres', sprintf($indexed, $settings // '', $doc, $doc));
		$mismatch++ if $e ne $i || $e eq '';
	}
	is($mismatch, 0, "$label: index order equals the exact scan's");
}

sub capped_found
{
	my ($label, $docs) = @_;
	my $found = 0;
	for my $doc (@$docs)
	{
		make_query($doc);
		# the exact scan's top document for the same query
		my $e = $node->safe_psql('postgres',
			"SET enable_indexscan = off; SELECT id FROM pages ORDER BY emb <#> (SELECT q FROM q_$doc), id LIMIT 1");
		my $i = $node->safe_psql('postgres', sprintf($capped, $doc));
		$found++ if $e eq $i;
	}
	is($found, scalar(@$docs), "$label: a capped rerank finds the exact top document");
}

my @probe_docs = (3, 10, 22, 37, 41, 58, 66, 79);
make_query(3);
like($node->safe_psql('postgres', 'SET enable_seqscan = off; EXPLAIN (COSTS OFF) ' . sprintf($capped, 3) =~ s/^.*\n//r),
	qr/Index Scan using pages_idx/, 'the queries run on the index');
compare_exact('build', \@probe_docs);
compare_exact('build, full pass', \@probe_docs, 'SET mvivf.probes = 0;');
capped_found('build', \@probe_docs);
like($node->safe_psql('postgres',
	"SET enable_seqscan = off; LOAD 'colpali'; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
	  . "SELECT id FROM pages ORDER BY emb <#> (SELECT emb FROM pages WHERE id = 5) LIMIT 3"),
	qr/probed=[1-9]\d* postings=[1-9]/, 'build: document lists probed');
# with mvivf.refine past the number of documents, the exact centroid
# interaction is computed for every listed document, from its centroid
# numbers alone: the tokens it scores are those of the table, once each
my $total = $node->safe_psql('postgres', 'SELECT sum(num_vectors(emb)) FROM pages');
like($node->safe_psql('postgres',
	"SET enable_seqscan = off; SET mvivf.refine = 1000; LOAD 'colpali'; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
	  . "SELECT id FROM pages ORDER BY emb <#> (SELECT emb FROM pages WHERE id = 5) LIMIT 3"),
	qr/ tokens=$total .* exact=80 /, 'build: every document\'s centroid numbers read once, no codes');

# inserts (not in the document lists), deletes, VACUUM
$node->safe_psql('postgres', q{
INSERT INTO pages SELECT i, mvf_doc(1 + (i * 389) % 3000) FROM generate_series(81, 100) i;
DELETE FROM pages WHERE id % 5 = 0 AND id <= 80;
VACUUM pages;
});
($bad) = layout_ok([ 0 .. 99 ], 'split');
is($bad, 0, 'inserts: split groups as well');
my @after = (3, 22, 41, 82, 87, 93, 99);
compare_exact('inserts, deletes, VACUUM', \@after);
compare_exact('inserts, deletes, VACUUM, full pass', \@after, 'SET mvivf.probes = 0;');
capped_found('inserts, deletes, VACUUM', \@after);
is($node->safe_psql('postgres',
	"SET enable_seqscan = off; SET mvivf.miss_tolerance = 0; "
	  . "SELECT count(*) FROM (SELECT id FROM pages ORDER BY emb <#> mvf_query(3) LIMIT 200) x WHERE id % 5 = 0 AND id <= 80"),
	'0', 'deleted rows are not returned');

# An index of version 3: the metapage is the same; its inserts write mixed
# groups, and its scans read both kinds.
sub set_version
{
	my ($version) = @_;
	$node->stop;
	open(my $fh, '+<', $file) or die "open $file: $!";
	binmode $fh;
	my $page;
	sysread($fh, $page, 8192) == 8192 or die "read: $!";
	substr($page, 24 + 4, 4) = pack('L', $version);
	sysseek($fh, 0, 0);
	syswrite($fh, $page, 8192) == 8192 or die "write: $!";
	close $fh;
	$node->start;
}
set_version(3);
$node->safe_psql('postgres',
	"INSERT INTO pages SELECT i, mvf_doc(1 + (i * 211) % 3000) FROM generate_series(101, 110) i");
($bad) = layout_ok([ 100 .. 109 ], 'mixed');
is($bad, 0, 'version 3: inserts write mixed groups');
($bad) = layout_ok([ 0 .. 99 ], 'split');
is($bad, 0, 'version 3: the earlier groups are untouched');
my @mixed = (3, 41, 87, 102, 105, 109);
compare_exact('version 3, mixed groups', \@mixed);
compare_exact('version 3, mixed groups, full pass', \@mixed, 'SET mvivf.probes = 0;');
capped_found('version 3, mixed groups', \@mixed);

$node->safe_psql('postgres', 'REINDEX INDEX pages_idx');
$file = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT pg_relation_filepath('pages_idx')");
is($node->safe_psql('postgres', q{SELECT count(*) FROM pages}), '94', 'rows left');
($bad) = layout_ok([ 0 .. 93 ], 'split');
is($bad, 0, 'REINDEX: version 4 layout again');
compare_exact('REINDEX', \@mixed);

$node->stop;
done_testing();
