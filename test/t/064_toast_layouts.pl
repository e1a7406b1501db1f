#!/usr/bin/perl
# MaxSim of out-of-line documents on every TOAST layout.  Stored pages are
# read by walking the TOAST heap from chunk 0 while the chunks lie where a
# value written in one go puts them, and through the TOAST index where they
# do not (src/toast_stream.c).  Layouts built here:
#  - plain inserts (the walk reads nearly every chunk);
#  - two sessions inserting in turn, so that a value continues on blocks
#    after the other session's (the walk hands over to the index);
#  - deletes and VACUUM, then inserts that fill the holes (a value's chunks
#    on pages shared with others', out of block order);
#  - short values stored out of line (toast_tuple_target), half of their
#    chunks removed (a column set to NULL, VACUUM), and values whose two
#    chunks land on one block with another value's chunk between them;
#  - UPDATE of the columns, before and after VACUUM (dead chunks between);
#  - chunks of an aborted insert between the chunks of later values;
# each with float, half and binary columns.  The layouts are checked from the
# TOAST tables' ctids (they must hold what they are built for), and every
# score (maxsim of all (document, query) format pairs and <#>) must have the
# bits of the index-only read (colpali.maxsim_toast_walk = off) and of the
# detoasted computation (colpali.maxsim_streaming = off), and lie within the
# error bound of a double-precision reference computed in SQL.  A chunk
# removed with pg_surgery (first, middle, last) gives the ERROR of the
# detoasted read in every mode.  Shared buffers are small, so that the
# per-backend hints of the buffer each TOAST block was in go stale.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('toastlayouts');
$node->init;
# shared buffers far smaller than the data: blocks are evicted and buffers
# reused all the time, so that a stale hint of the buffer a TOAST block was
# in must be caught (ReadRecentBuffer)
$node->append_conf('postgresql.conf', "autovacuum = off\nshared_buffers = 1MB\n");
$node->start;

# documents of D = 64 with 260 to 700 rows: 66-180 kB as float, half that as
# half, 2.1-5.6 kB as binary (two or three chunks)
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION colpali;
SELECT setseed(0.3125);
CREATE FUNCTION tl_rand(nrows int, dim int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT array_agg(r ORDER BY i)::multivector
	FROM (SELECT i, array_agg((random() * 2 - 1)::real ORDER BY d) AS r
		  FROM generate_series(1, nrows) i, generate_series(1, dim) d GROUP BY i) s
$$;
CREATE TABLE tl_src (id int PRIMARY KEY, f multivector, h halfmultivector, b bitmultivector)
	WITH (toast_tuple_target = 128);
INSERT INTO tl_src (id, f) SELECT g, tl_rand(260 + (g * 37) % 441, 64) FROM generate_series(1, 120) g;
UPDATE tl_src SET h = f, b = f;
CREATE TABLE tl_queries AS
SELECT n AS qid, tl_rand((ARRAY[1, 5, 33])[n], 64) AS q FROM generate_series(1, 3) n;
ALTER TABLE tl_queries ADD qh halfmultivector, ADD qb bitmultivector;
UPDATE tl_queries SET qh = q, qb = q;
CREATE FUNCTION tl_table(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE %I (id int, f multivector, h halfmultivector, b bitmultivector)', name);
	EXECUTE format('ALTER TABLE %I ALTER b SET STORAGE external', name);
END $$;
-- per table: values stored out of line, values whose chunks a walk cannot
-- follow (a chunk neither later on the same block nor on the next one), and
-- values with another value's chunk between two of theirs on one block
CREATE FUNCTION tl_layout(tab regclass, OUT stored bigint, OUT jumps bigint, OUT foreign_between bigint)
LANGUAGE plpgsql AS $$
DECLARE t text := (SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = tab);
BEGIN
	EXECUTE format($q$
		WITH c AS (SELECT chunk_id, chunk_seq, (ctid::text::point)[0]::bigint AS blk,
						  (ctid::text::point)[1]::int AS off FROM %s),
		n AS (SELECT chunk_id, blk, off, lead(blk) OVER w AS nblk, lead(off) OVER w AS noff
			  FROM c WINDOW w AS (PARTITION BY chunk_id ORDER BY chunk_seq))
		SELECT (SELECT count(DISTINCT chunk_id) FROM c),
			(SELECT count(DISTINCT chunk_id) FROM n WHERE nblk IS NOT NULL
				AND NOT ((nblk = blk AND noff > off) OR nblk = blk + 1)),
			(SELECT count(DISTINCT n.chunk_id) FROM n JOIN c o ON o.blk = n.blk AND o.off > n.off
				AND o.off < n.noff AND o.chunk_id <> n.chunk_id WHERE n.nblk = n.blk)$q$, t)
	INTO stored, jumps, foreign_between;
END $$;
});

# 1. plain inserts
$node->safe_psql('postgres',
	"SELECT tl_table('tl_plain'); INSERT INTO tl_plain SELECT * FROM tl_src WHERE id <= 30");

# 2. two sessions inserting in turn: each session's values start on its own
# partly filled last block and go on after the blocks of the other's
$node->safe_psql('postgres', "SELECT tl_table('tl_two')");
my $sa = $node->background_psql('postgres');
my $sb = $node->background_psql('postgres');
for my $i (31 .. 50)
{
	my $s = $i % 2 ? $sa : $sb;
	$s->query_safe("INSERT INTO tl_two SELECT * FROM tl_src WHERE id = $i");
}
$sa->quit;
$sb->quit;

# 3. holes: every third value and every fifth deleted, VACUUM, then new
# values from fresh sessions fill the space
$node->safe_psql('postgres', q{
SELECT tl_table('tl_holes');
INSERT INTO tl_holes SELECT * FROM tl_src WHERE id BETWEEN 51 AND 100;
DELETE FROM tl_holes WHERE id % 3 = 0 OR id % 5 = 0;
});
$node->safe_psql('postgres', 'VACUUM tl_holes');
for my $i (101 .. 115)
{
	$node->safe_psql('postgres', "INSERT INTO tl_holes SELECT * FROM tl_src WHERE id = $i");
}

# 3b. one-chunk values (rows just over the 2 kB TOAST threshold, whose
# columns toast_tuple_target = 128 moves out of line, f and h of a row on
# adjacent line pointers), h set to NULL, VACUUM, then values of a full chunk
# and a short one: the two chunks go to the free line pointers of a block,
# with a kept value's chunk between them
$node->safe_psql('postgres', q{
SELECT tl_table('tl_small');
ALTER TABLE tl_small SET (toast_tuple_target = 128);
INSERT INTO tl_small SELECT g, f, f FROM (SELECT g, tl_rand(6, 64) AS f FROM generate_series(1001, 1090) g) s;
UPDATE tl_small SET h = NULL;
});
$node->safe_psql('postgres', 'VACUUM tl_small');
$node->safe_psql('postgres', q{
INSERT INTO tl_small SELECT g, f, h, b FROM (SELECT g, tl_rand(10, 64) AS f FROM generate_series(1101, 1130) g) s,
	LATERAL (SELECT f::halfmultivector AS h, f::bitmultivector AS b) c;
});

# 4. updates of the columns, dead chunks left between, then VACUUM and more
# updates into the holes
$node->safe_psql('postgres', q{
SELECT tl_table('tl_upd');
INSERT INTO tl_upd SELECT * FROM tl_src WHERE id BETWEEN 1 AND 24;
UPDATE tl_upd u SET f = s.f, h = s.h, b = s.b FROM tl_src s WHERE s.id = u.id + 60 AND u.id % 2 = 0;
});
$node->safe_psql('postgres', 'VACUUM tl_upd');
$node->safe_psql('postgres',
	'UPDATE tl_upd u SET f = s.f, h = s.h, b = s.b FROM tl_src s WHERE s.id = u.id + 90 AND u.id % 3 = 0');

# 5. an aborted insert, then inserts after it (its chunks stay until VACUUM)
$node->safe_psql('postgres', q{
SELECT tl_table('tl_abort');
BEGIN;
INSERT INTO tl_abort SELECT * FROM tl_src WHERE id BETWEEN 1 AND 6;
ROLLBACK;
INSERT INTO tl_abort SELECT * FROM tl_src WHERE id BETWEEN 7 AND 18;
});

my %layout;
for my $t (qw(tl_plain tl_two tl_holes tl_small tl_upd tl_abort))
{
	$layout{$t} = [ split /\|/, $node->safe_psql('postgres', "SELECT * FROM tl_layout('$t')") ];
}
note(join(', ', map { "$_: stored/jumps/foreign between " . join('/', @{ $layout{$_} }) } sort keys %layout));
cmp_ok($layout{tl_plain}[1], '<', $layout{tl_plain}[0] / 2, 'plain inserts: most values walkable');
cmp_ok($layout{tl_two}[1], '>', 0, 'two sessions: values continue after the other session\'s blocks');
cmp_ok($layout{tl_holes}[1], '>', 0, 'holes filled: values jump between blocks');
cmp_ok($layout{tl_small}[2], '>', 0, 'one-chunk holes filled: other values\' chunks between a value\'s chunks on a block');
cmp_ok($layout{tl_upd}[1] + $layout{tl_upd}[2], '>', 0, 'updates: values not written in one run');
is($node->safe_psql('postgres', q{
SELECT min((ctid::text::point)[0]) > 0 FROM } . $node->safe_psql('postgres',
	"SELECT reltoastrelid::regclass FROM pg_class WHERE oid = 'tl_abort'::regclass")),
	't', 'aborted insert: the first blocks hold its chunks, the later values\' come after them');

# every score in three modes: walk (the default), index only, detoasted
$node->safe_psql('postgres', q{
CREATE VIEW tl_all AS
SELECT 'plain' AS tab, * FROM tl_plain UNION ALL SELECT 'two', * FROM tl_two
UNION ALL SELECT 'holes', * FROM tl_holes UNION ALL SELECT 'small', * FROM tl_small
UNION ALL SELECT 'upd', * FROM tl_upd
UNION ALL SELECT 'abort', * FROM tl_abort;
CREATE FUNCTION tl_scores() RETURNS TABLE (tab text, id int, qid int, f float8, hf float8, hh float8,
	bf float8, bb float8, fop float8, hop float8, bop float8)
LANGUAGE sql VOLATILE AS $$
	SELECT a.tab, a.id, q.qid, maxsim(a.f, q.q), maxsim(a.h, q.q), maxsim(a.h, q.qh),
		maxsim(a.b, q.q), maxsim(a.b, q.qb), a.f <#> q.q, a.h <#> q.qh, a.b <#> q.qb
	FROM tl_all a, tl_queries q
$$;
CREATE TABLE tl_walk AS SELECT * FROM tl_scores();
SET colpali.maxsim_toast_walk = off;
CREATE TABLE tl_index AS SELECT * FROM tl_scores();
RESET colpali.maxsim_toast_walk;
SET colpali.maxsim_streaming = off;
CREATE TABLE tl_detoast AS SELECT * FROM tl_scores();
});
my $cmp = q{
SELECT count(*), count(*) FILTER (WHERE w.f = o.f AND w.hf IS NOT DISTINCT FROM o.hf
	AND w.hh IS NOT DISTINCT FROM o.hh AND w.bf IS NOT DISTINCT FROM o.bf
	AND w.bb IS NOT DISTINCT FROM o.bb AND w.fop = o.fop AND w.hop IS NOT DISTINCT FROM o.hop
	AND w.bop IS NOT DISTINCT FROM o.bop AND w.fop = -w.f)
FROM tl_walk w JOIN %s o USING (tab, id, qid)};
my $nscores = $node->safe_psql('postgres', 'SELECT count(*) FROM tl_all') * 3;
is($node->safe_psql('postgres', sprintf($cmp, 'tl_index')),
	"$nscores|$nscores", 'walk: the bits of the index-only read, every layout, format and pair');
is($node->safe_psql('postgres', sprintf($cmp, 'tl_detoast')),
	"$nscores|$nscores", 'walk: the bits of the detoasted computation, every layout, format and pair');
is($node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE n > 1) FROM (
	SELECT count(DISTINCT (f, hf, hh, bf, bb)) AS n FROM tl_walk
	WHERE tab NOT IN ('upd', 'small') GROUP BY id, qid) s}),
	'0', 'the same document scores the same in every layout');

# double-precision reference for a sample of documents (float pages, the
# first two queries): sum_j max_i sum_k d q, within the fp32 error bound
$node->safe_psql('postgres', q{
CREATE TABLE tl_de AS
SELECT id, (o - 1) / 64 AS i, (o - 1) % 64 AS k, x::float8 AS x
FROM tl_src, unnest(f::real[]) WITH ORDINALITY u(x, o) WHERE id IN (7, 31, 32, 53, 101, 114);
CREATE TABLE tl_qe AS
SELECT qid, (o - 1) / 64 AS j, (o - 1) % 64 AS k, x::float8 AS x
FROM tl_queries, unnest(q::real[]) WITH ORDINALITY u(x, o) WHERE qid <= 2;
ANALYZE tl_de, tl_qe;
CREATE TABLE tl_ref AS
SELECT id, qid, sum(best) AS maxsim, sum(best_abs) AS absmax
FROM (SELECT id, qid, j, max(dot) AS best, max(absdot) AS best_abs
	  FROM (SELECT d.id, q.qid, q.j, d.i, sum(d.x * q.x) AS dot, sum(abs(d.x * q.x)) AS absdot
			FROM tl_de d JOIN tl_qe q ON q.k = d.k GROUP BY 1, 2, 3, 4) dots
	  GROUP BY 1, 2, 3) b
GROUP BY 1, 2;
});
my ($nref, $within) = split /\|/, $node->safe_psql('postgres', q{
SELECT count(*), count(*) FILTER (WHERE abs(w.f - r.maxsim) <= r.absmax * (64 * 2 ^ -24) / (1 - 64 * 2 ^ -24) + 1e-12)
FROM tl_ref r JOIN tl_walk w USING (id, qid) WHERE w.tab <> 'upd'});
cmp_ok($nref, '>=', 12, 'reference scores of documents in three layouts');
is($within, $nref, 'walk: within the error bound of the double-precision reference');

# ORDER BY <#> LIMIT: the same rows and distances in every mode
my $top = q{
SET enable_indexscan = off; SET max_parallel_workers_per_gather = 0; %s
SELECT string_agg(tab || id || ':' || d, ',') FROM (
	SELECT tab, id, f <#> (SELECT q FROM tl_queries WHERE qid = 2) AS d FROM tl_all ORDER BY 3, 1, 2 LIMIT 10) s};
my $walk_top = $node->safe_psql('postgres', sprintf($top, ''));
is($node->safe_psql('postgres', sprintf($top, 'SET colpali.maxsim_toast_walk = off;')),
	$walk_top, 'ORDER BY <#> LIMIT: same rows and distances as the index-only read');
is($node->safe_psql('postgres', sprintf($top, 'SET colpali.maxsim_streaming = off;')),
	$walk_top, 'ORDER BY <#> LIMIT: same rows and distances as the detoasted computation');

# a missing chunk: the first, one in the middle, the last, removed with
# pg_surgery, give the detoasting ERROR whatever the mode
SKIP:
{
	skip 'pg_surgery is not installed', 9
	  unless $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_surgery'") eq '1';
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_surgery');
	my %cut = (first => '0', middle => '17', last => 'max');
	for my $which (sort keys %cut)
	{
		my $tab = "tl_cut_$which";
		$node->safe_psql('postgres', qq{
CREATE TABLE $tab (f multivector);
INSERT INTO $tab SELECT f FROM tl_src WHERE id = 40;});
		my $toast = $node->safe_psql('postgres',
			"SELECT reltoastrelid::regclass FROM pg_class WHERE oid = '$tab'::regclass");
		my $seq = $cut{$which} eq 'max' ? "(SELECT max(chunk_seq) FROM $toast)" : $cut{$which};
		# (the ctid first: heap_force_kill needs the page unpinned)
		my $ctid = $node->safe_psql('postgres', "SELECT ctid FROM $toast WHERE chunk_seq = $seq");
		$node->safe_psql('postgres', "SELECT heap_force_kill('$toast'::regclass, ARRAY['$ctid']::tid[])");
		my @err;
		for my $mode ('', 'SET colpali.maxsim_toast_walk = off;', 'SET colpali.maxsim_streaming = off;')
		{
			my ($ret, $out, $err) = $node->psql('postgres',
				"$mode SELECT maxsim(f, q) FROM $tab, tl_queries WHERE qid = 2");
			$err =~ s/^.*?ERROR:\s*//s;
			$err =~ s/\n.*//s;
			$err =~ s/toast value \d+ in \S+/toast value V/;
			push @err, $ret == 0 ? 'no error' : $err;
		}
		like($err[0], qr/^(unexpected|missing) chunk number \d+/, "chunk $which missing: an ERROR ($err[0])");
		is($err[1], $err[0], "chunk $which missing: the same ERROR through the index only");
		is($err[2], $err[0], "chunk $which missing: the same ERROR detoasted");
	}
}

$node->stop;
done_testing();
