#!/usr/bin/perl
# ALTER EXTENSION colpali UPDATE from the frozen install scripts of the
# released versions (0.1.0, 0.2.0, 0.3.0) to the current version; from 0.1.0 with
# data and an mvivf index in place:
#  - the version after the update is colpali.control's default_version;
#  - the rows are unchanged (hash of the binary form), the index is still
#    valid and used, and it answers exactly like a sequential scan under
#    exhaustive settings, before and after further inserts and deletes;
#  - the extension's objects after the update are the objects of a fresh
#    install: members (pg_describe_object), function signatures, result
#    types, volatility, strictness, parallel safety, cost, security, C
#    symbols and ACLs, types, operators, casts, operator classes and their
#    members, access methods, views, tables, comments.  So an object changed
#    in sql/sections/ but not in the upgrade scripts fails here.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $control = slurp_file("$ENV{TESTDIR}/colpali.control");
my ($current) = $control =~ /^default_version\s*=\s*'([^']+)'/m;
ok(defined $current && $current ne '0.1.0', "current version $current read from colpali.control");

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE up');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');

# 0.1.0 with data and an index
$node->safe_psql(
	'up', q{
CREATE EXTENSION colpali VERSION '0.1.0';
CREATE TABLE pages (id int PRIMARY KEY, tag int, emb multivector(16));
SELECT setseed(0.25);
INSERT INTO pages
SELECT i, i % 5, l2_normalize((SELECT array_agg(ARRAY(
		SELECT (random() * 2 - 1)::real FROM generate_series(1, 16) k WHERE i > 0 AND r > 0))
	FROM generate_series(1, 3 + i % 7) r)::multivector)
FROM generate_series(1, 300) i;
INSERT INTO pages VALUES (301, 0, NULL);
CREATE INDEX pages_emb ON pages USING mvivf (emb) WITH (lists = 8, bits = 4);
CREATE TABLE queries (qid int PRIMARY KEY, q multivector(16));
INSERT INTO queries
SELECT j, l2_normalize((SELECT array_agg(ARRAY(
		SELECT (random() * 2 - 1)::real FROM generate_series(1, 16) k WHERE j > 0 AND r > 0))
	FROM generate_series(1, 2 + j % 3) r)::multivector)
FROM generate_series(1, 5) j;
});
is($node->safe_psql('up', q{SELECT extversion FROM pg_extension WHERE extname = 'colpali'}),
	'0.1.0', 'installed as 0.1.0');

my $hash_sql = q{SELECT count(*) || ' ' || md5(string_agg(coalesce(md5(multivector_send(emb)), 'null'), ',' ORDER BY id)) FROM pages};
my $hash_before = $node->safe_psql('up', $hash_sql);

# ORDER BY <#> LIMIT k for every stored query, as "qid:id,id,...;" lines;
# the index with exhaustive settings, or the table without the index.
sub ranking
{
	my ($db, $how, $where, $limit) = @_;
	my $settings =
	  $how eq 'index'
	  ? 'SET enable_seqscan = off; SET enable_bitmapscan = off; SET mvivf.probes = 65536; SET mvivf.candidates = 100000; SET mvivf.rerank = 100000;'
	  : 'SET enable_indexscan = off; SET enable_bitmapscan = off;';
	my $out = '';
	foreach my $qid (1 .. 5)
	{
		my $sql = qq{$settings
SELECT string_agg(id::text, ',') FROM (
	SELECT id FROM pages WHERE $where
	ORDER BY emb <#> (SELECT q FROM queries WHERE qid = $qid) LIMIT $limit) s};
		$out .= "$qid:" . $node->safe_psql($db, $sql) . ";";
	}
	return $out;
}

sub plan_uses_index
{
	my ($db) = @_;
	return $node->safe_psql($db, q{SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM pages ORDER BY emb <#> '[[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]' LIMIT 5});
}

sub check_index_matches_seqscan
{
	my ($db, $what) = @_;
	like(plan_uses_index($db), qr/Index Scan using pages_emb/, "$what: the index is used");
	# (index scans skip NULLs, which a seq scan sorts last)
	foreach my $case ([ 'true', 10 ], [ 'emb IS NOT NULL', 400 ], [ 'tag = 3', 7 ])
	{
		my ($where, $limit) = @$case;
		my $seq = ranking($db, 'seq', $where, $limit);
		like($seq, qr/^1:\d+/, "$what: seq scan answers (WHERE $where LIMIT $limit)");
		is(ranking($db, 'index', $where, $limit), $seq,
			"$what: index = seq scan (WHERE $where LIMIT $limit)");
	}
}

check_index_matches_seqscan('up', '0.1.0');

$node->safe_psql('up', 'ALTER EXTENSION colpali UPDATE');
is($node->safe_psql('up', q{SELECT extversion FROM pg_extension WHERE extname = 'colpali'}),
	$current, "updated to $current");
is($node->safe_psql('up', $hash_sql), $hash_before, 'rows unchanged by the update');
is($node->safe_psql('up', q{SELECT indisvalid AND indisready FROM pg_index WHERE indexrelid = 'pages_emb'::regclass}),
	't', 'index still valid');
check_index_matches_seqscan('up', 'after update');

# the updated extension keeps working on new data
$node->safe_psql(
	'up', q{
INSERT INTO pages
SELECT i, i % 5, l2_normalize((SELECT array_agg(ARRAY(
		SELECT (random() * 2 - 1)::real FROM generate_series(1, 16) k WHERE i > 0 AND r > 0))
	FROM generate_series(1, 2 + i % 4) r)::multivector)
FROM generate_series(302, 360) i;
DELETE FROM pages WHERE id % 11 = 0;
VACUUM pages;
});
check_index_matches_seqscan('up', 'after update, inserts, deletes and VACUUM');
$node->safe_psql('up', 'REINDEX INDEX pages_emb');
check_index_matches_seqscan('up', 'after update and REINDEX');

# The objects of the updated extension equal those of a fresh install.
$node->safe_psql('fresh', 'CREATE EXTENSION colpali');
is($node->safe_psql('fresh', q{SELECT extversion FROM pg_extension WHERE extname = 'colpali'}),
	$current, "fresh install is $current");

# One line per property of every extension member, independent of OIDs.
my $objects_sql = q{
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'colpali'),
mem AS (
	SELECT classid, objid, objsubid FROM pg_depend
	WHERE refclassid = 'pg_extension'::regclass AND refobjid = (SELECT oid FROM ext) AND deptype = 'e')
SELECT line FROM (
	SELECT 'member ' || pg_describe_object(classid, objid, objsubid) AS line FROM mem
	UNION ALL
	SELECT format('function %s returns %s kind=%s volatile=%s strict=%s parallel=%s secdef=%s leakproof=%s cost=%s rows=%s lang=%s src=%s config=%s acl=%s support=%s comment=%s',
		p.oid::regprocedure, pg_get_function_result(p.oid), p.prokind, p.provolatile, p.proisstrict,
		p.proparallel, p.prosecdef, p.proleakproof, p.procost, p.prorows,
		(SELECT lanname FROM pg_language WHERE oid = p.prolang),
		CASE WHEN (SELECT lanname FROM pg_language WHERE oid = p.prolang) = 'c'
			 THEN p.prosrc || ' ' || p.probin
			 ELSE md5(p.prosrc || coalesce(pg_get_function_sqlbody(p.oid), '')) END,
		p.proconfig, p.proacl, p.prosupport, obj_description(p.oid, 'pg_proc'))
	FROM pg_proc p JOIN mem ON mem.classid = 'pg_proc'::regclass AND mem.objid = p.oid
	UNION ALL
	SELECT format('type %s len=%s byval=%s type=%s cat=%s in=%s out=%s recv=%s send=%s tmin=%s tmout=%s analyze=%s subscript=%s align=%s storage=%s elem=%s array=%s acl=%s comment=%s',
		t.oid::regtype, t.typlen, t.typbyval, t.typtype, t.typcategory, t.typinput::regprocedure,
		t.typoutput::regprocedure, t.typreceive::regprocedure, t.typsend::regprocedure,
		t.typmodin::regprocedure, t.typmodout::regprocedure, t.typanalyze::regprocedure,
		t.typsubscript::regprocedure, t.typalign, t.typstorage, t.typelem::regtype, t.typarray::regtype,
		t.typacl, obj_description(t.oid, 'pg_type'))
	FROM pg_type t JOIN mem ON mem.classid = 'pg_type'::regclass AND mem.objid = t.oid
	UNION ALL
	SELECT format('operator %s code=%s com=%s neg=%s rest=%s join=%s result=%s merges=%s hashes=%s comment=%s',
		o.oid::regoperator, o.oprcode::regprocedure, o.oprcom::regoperator, o.oprnegate::regoperator,
		o.oprrest, o.oprjoin, o.oprresult::regtype, o.oprcanmerge, o.oprcanhash,
		obj_description(o.oid, 'pg_operator'))
	FROM pg_operator o JOIN mem ON mem.classid = 'pg_operator'::regclass AND mem.objid = o.oid
	UNION ALL
	SELECT format('cast %s -> %s func=%s context=%s method=%s',
		c.castsource::regtype, c.casttarget::regtype, c.castfunc::regprocedure, c.castcontext, c.castmethod)
	FROM pg_cast c JOIN mem ON mem.classid = 'pg_cast'::regclass AND mem.objid = c.oid
	UNION ALL
	SELECT format('access method %s type=%s handler=%s comment=%s', a.amname, a.amtype, a.amhandler,
		obj_description(a.oid, 'pg_am'))
	FROM pg_am a JOIN mem ON mem.classid = 'pg_am'::regclass AND mem.objid = a.oid
	UNION ALL
	SELECT format('opclass %s am=%s intype=%s default=%s keytype=%s family=%s',
		c.opcname, (SELECT amname FROM pg_am WHERE oid = c.opcmethod), c.opcintype::regtype,
		c.opcdefault, c.opckeytype::regtype, (SELECT opfname FROM pg_opfamily WHERE oid = c.opcfamily))
	FROM pg_opclass c JOIN mem ON mem.classid = 'pg_opclass'::regclass AND mem.objid = c.oid
	UNION ALL
	SELECT format('amproc %s', pg_describe_object('pg_amproc'::regclass, ap.oid, 0))
	FROM pg_amproc ap JOIN mem ON mem.classid = 'pg_opfamily'::regclass AND mem.objid = ap.amprocfamily
	UNION ALL
	SELECT format('amop %s strategy=%s purpose=%s sortfamily=%s',
		pg_describe_object('pg_amop'::regclass, ao.oid, 0), ao.amopstrategy, ao.amoppurpose,
		(SELECT opfname FROM pg_opfamily WHERE oid = ao.amopsortfamily))
	FROM pg_amop ao JOIN mem ON mem.classid = 'pg_opfamily'::regclass AND mem.objid = ao.amopfamily
	UNION ALL
	SELECT format('relation %s kind=%s acl=%s def=%s cols=%s comment=%s',
		c.oid::regclass, c.relkind, c.relacl,
		CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
		(SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attacl::text, ', ' ORDER BY attnum)
		   FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped),
		obj_description(c.oid, 'pg_class'))
	FROM pg_class c JOIN mem ON mem.classid = 'pg_class'::regclass AND mem.objid = c.oid
	UNION ALL
	SELECT format('extension comment=%s config=%s', obj_description(e.oid, 'pg_extension'), e.extconfig)
	FROM pg_extension e WHERE e.extname = 'colpali'
) s ORDER BY line};
my $fresh = $node->safe_psql('fresh', $objects_sql);
my $updated = $node->safe_psql('up', $objects_sql);
my @fresh_lines = split /\n/, $fresh;
cmp_ok(scalar(grep { /^member / } @fresh_lines), '>', 20, 'fresh install has its members listed');
ok((grep { /^function .*colpali_query/ } @fresh_lines), 'function details listed');
ok((grep { /^amop / } @fresh_lines), 'operator family members listed');

my %in_fresh = map { $_ => 1 } @fresh_lines;
my %in_updated = map { $_ => 1 } split /\n/, $updated;
my @missing = grep { !$in_updated{$_} } @fresh_lines;
my @extra = grep { !$in_fresh{$_} } split /\n/, $updated;
is(scalar(@missing), 0, 'every object of a fresh install exists, identical, after the update')
  or diag("fresh install only:\n  " . join("\n  ", @missing));
is(scalar(@extra), 0, 'the update leaves no object a fresh install lacks')
  or diag("updated only:\n  " . join("\n  ", @extra));

# The same from the frozen install scripts of the later releases.
foreach my $from ('0.2.0', '0.3.0')
{
	(my $db = "up$from") =~ s/\.//g;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION colpali VERSION '$from'");
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'colpali'}),
		$from, "installed as $from");
	$node->safe_psql($db, 'ALTER EXTENSION colpali UPDATE');
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'colpali'}),
		$current, "$from updated to $current");
	my %in_updated_from = map { $_ => 1 } split /\n/, $node->safe_psql($db, $objects_sql);
	my @missing_from = grep { !$in_updated_from{$_} } @fresh_lines;
	my @extra_from = grep { !$in_fresh{$_} } keys %in_updated_from;
	is(scalar(@missing_from), 0, "from $from: every object of a fresh install exists, identical, after the update")
	  or diag("fresh install only:\n  " . join("\n  ", @missing_from));
	is(scalar(@extra_from), 0, "from $from: the update leaves no object a fresh install lacks")
	  or diag("updated only:\n  " . join("\n  ", sort @extra_from));
}

$node->stop;
done_testing();
