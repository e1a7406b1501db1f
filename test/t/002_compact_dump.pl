#!/usr/bin/perl
# Dump and restore of halfmultivector and bitmultivector data:
#  - pg_dump plain (psql) and custom (pg_restore), COPY binary and text, out
#    and in: every value bit-identical (hash of the binary send form),
#    typmods and storage kept; values include a 1030 x 128 page (out of
#    line), the half extremes (65504, subnormals, -0) and bit rows with
#    padding (D = 9);
#  - the binary input of both types is strict: wrong format byte, Inf/NaN
#    half patterns, non-zero padding bits and wrong lengths are rejected.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('compact');
$node->init;
$node->start;

my $tmp = PostgreSQL::Test::Utils::tempdir;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql(
	'src', q{
CREATE EXTENSION colpali;
CREATE TABLE pages (id int PRIMARY KEY, h halfmultivector(128), b bitmultivector(128));
CREATE TABLE misc (id int PRIMARY KEY, h halfmultivector, b bitmultivector);
SELECT setseed(0.375);
INSERT INTO pages
SELECT p, m, m FROM (
	SELECT p, l2_normalize((SELECT array_agg(ARRAY(
			SELECT (random() * 2 - 1)::real FROM generate_series(1, 128) k WHERE p > 0 AND r > 0))
		FROM generate_series(1, CASE WHEN p = 1 THEN 1030 ELSE 20 + p END) r)::multivector) AS m
	FROM generate_series(1, 8) p) s;
INSERT INTO pages VALUES (9, NULL, NULL);
INSERT INTO misc VALUES
	(1, '[[65504,-65504,-0,0],[6e-8,-6e-8,6.1e-5,0.1]]', '[101010101,111111111]'),
	(2, '[[1.0009765625,0.33325195]]', '[1]'),
	(3, NULL, '[0000000000000000000000000000000000000000000000000000000000000000000000000]');
});

my $hash_sql = q{
SELECT md5(string_agg(coalesce(md5(halfmultivector_send(p.h)), 'null') || coalesce(md5(bitmultivector_send(p.b)), 'null'), ',' ORDER BY id))
	|| md5(string_agg(coalesce(md5(halfmultivector_send(m.h)), 'null') || coalesce(md5(bitmultivector_send(m.b)), 'null'), ',' ORDER BY id))
	|| (SELECT count(*) FROM pages) || '/' || (SELECT count(*) FROM misc)
FROM pages p FULL JOIN misc m USING (id)};
my $expected = $node->safe_psql('src', $hash_sql);
like($expected, qr/^[0-9a-f]{64}9\/3$/, 'source hash computed');

my $types_sql = q{
SELECT string_agg(attrelid::regclass::text || '.' || attname || ' '
		|| format_type(atttypid, atttypmod) || ' ' || attstorage::text, ', '
		ORDER BY attrelid::regclass::text, attnum)
FROM pg_attribute WHERE attrelid IN ('pages'::regclass, 'misc'::regclass) AND attnum > 1};
my $types = $node->safe_psql('src', $types_sql);
is( $types,
	'misc.h halfmultivector e, misc.b bitmultivector m, pages.h halfmultivector(128) e, pages.b bitmultivector(128) m',
	'column types and storage in source');
is( $node->safe_psql('src',
		q{SELECT pg_relation_size(reltoastrelid) > 264000 FROM pg_class WHERE relname = 'pages'}),
	't', 'the 1030 x 128 half page is stored in TOAST');

# the score of the values, to check the operators on restored data
my $score_sql = q{
SELECT (SELECT string_agg(id::text, ',') FROM (SELECT id FROM pages WHERE h IS NOT NULL
	ORDER BY h <#> (SELECT h::multivector FROM pages WHERE id = 4) LIMIT 3) s) || ' '
	|| (SELECT string_agg(id::text, ',') FROM (SELECT id FROM pages WHERE b IS NOT NULL
	ORDER BY b <#> (SELECT b FROM pages WHERE id = 6) LIMIT 3) s)};
my $scores = $node->safe_psql('src', $score_sql);
like($scores, qr/^4,\d,\d 6,\d,\d$/, 'each page is its own best match');

sub check_restored
{
	my ($db, $what) = @_;

	is($node->safe_psql($db, $hash_sql), $expected, "$what: values bit-identical");
	is($node->safe_psql($db, $types_sql), $types, "$what: column types and storage kept");
	is($node->safe_psql($db, $score_sql), $scores, "$what: same rankings");
}

my $plain = "$tmp/plain.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $plain ], 'pg_dump plain');
$node->safe_psql('postgres', 'CREATE DATABASE restore_plain');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restore_plain'), '-f', $plain ],
	'plain dump restores with psql');
check_restored('restore_plain', 'plain');

my $custom = "$tmp/custom.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $custom ], 'pg_dump custom');
$node->safe_psql('postgres', 'CREATE DATABASE restore_custom');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restore_custom'), $custom ],
	'pg_restore custom');
check_restored('restore_custom', 'custom');

foreach my $format ('binary', 'text')
{
	my $file = "$tmp/pages.$format";
	$node->safe_psql('src', qq{
		COPY pages TO '$file' (FORMAT $format);
		COPY misc TO '$file.misc' (FORMAT $format);
		CREATE DATABASE copy_$format;
	});
	$node->safe_psql("copy_$format", qq{
		CREATE EXTENSION colpali;
		CREATE TABLE pages (id int PRIMARY KEY, h halfmultivector(128), b bitmultivector(128));
		CREATE TABLE misc (id int PRIMARY KEY, h halfmultivector, b bitmultivector);
		COPY pages FROM '$file' (FORMAT $format);
		COPY misc FROM '$file.misc' (FORMAT $format);
	});
	is($node->safe_psql("copy_$format", $hash_sql), $expected,
		"COPY (FORMAT $format) out and in: values bit-identical");
}

# Strict binary input: hand-made binary COPY files of one column.
sub copy_file
{
	my ($name, @fields) = @_;
	my $data = "PGCOPY\n\377\r\n\0" . pack('NN', 0, 0);
	foreach my $f (@fields)
	{
		$data .= pack('n', 1) . pack('N', length($f)) . $f;
	}
	$data .= pack('n', 0xffff);
	my $path = "$tmp/$name.bin";
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	print $fh $data;
	close($fh);
	return $path;
}

sub header
{
	my ($dim, $format, $nvec) = @_;
	return pack('nCCNN', $dim, $format, 0, $nvec, 0);
}

$node->safe_psql('src',
	'CREATE TABLE rh (v halfmultivector); CREATE TABLE rb (v bitmultivector); CREATE TABLE rb4 (v bitmultivector(4))');

my $goodh = copy_file('goodh', header(2, 1, 2) . pack('n*', 0x3c00, 0xc000, 0x0001, 0x7bff));
$node->safe_psql('src', "COPY rh FROM '$goodh' (FORMAT binary)");
is($node->safe_psql('src', 'SELECT v FROM rh'), '[[1,-2],[5.9604645e-08,65504]]',
	'hand-made half value reads');
my $goodb = copy_file('goodb', header(9, 2, 2) . pack('C*', 0xaa, 0x80, 0xff, 0x00));
$node->safe_psql('src', "COPY rb FROM '$goodb' (FORMAT binary)");
is($node->safe_psql('src', 'SELECT v FROM rb'), '[101010101,111111110]', 'hand-made bit value reads');

my @bad = (
	[ 'rh', 'half format 0', header(2, 0, 1) . pack('n*', 0x3c00, 0x3c00), qr/unsupported multivector element format 0/ ],
	[ 'rh', 'half format 2', header(2, 2, 1) . pack('n*', 0x3c00, 0x3c00), qr/unsupported multivector element format 2/ ],
	[ 'rh', 'half inf', header(2, 1, 1) . pack('n*', 0x3c00, 0x7c00), qr/infinite value not allowed in halfmultivector/ ],
	[ 'rh', 'half -inf', header(2, 1, 1) . pack('n*', 0xfc00, 0x3c00), qr/infinite value not allowed in halfmultivector/ ],
	[ 'rh', 'half nan', header(2, 1, 1) . pack('n*', 0x3c00, 0x7e00), qr/NaN not allowed in halfmultivector/ ],
	[ 'rh', 'half short', header(2, 1, 2) . pack('n*', 1, 2, 3), qr/halfmultivector binary data has 6 bytes, expected 8/ ],
	[ 'rh', 'half long', header(1, 1, 1) . pack('n*', 1, 2), qr/halfmultivector binary data has 4 bytes, expected 2/ ],
	[ 'rb', 'bit format 1', header(8, 1, 1) . pack('C', 0xff), qr/unsupported multivector element format 1/ ],
	[ 'rb', 'bit padding', header(9, 2, 1) . pack('C*', 0xff, 0x81), qr/padding bits of bitmultivector row 1 must be zero/ ],
	[ 'rb', 'bit padding row 2', header(3, 2, 2) . pack('C*', 0xe0, 0xf0), qr/padding bits of bitmultivector row 2 must be zero/ ],
	[ 'rb', 'bit short', header(16, 2, 2) . pack('C*', 1, 2, 3), qr/bitmultivector binary data has 3 bytes, expected 4/ ],
	[ 'rb', 'bit long', header(8, 2, 1) . pack('C*', 1, 2), qr/bitmultivector binary data has 2 bytes, expected 1/ ],
	[ 'rb', 'bit dim 0', header(0, 2, 1), qr/at least one dimension/ ],
	[ 'rb', 'bit too many dims', header(4097, 2, 1), qr/more than 4096 dimensions/ ],
	[ 'rb4', 'bit typmod', header(3, 2, 1) . pack('C', 0xe0), qr/expected 4 dimensions, not 3/ ],
);
foreach my $case (@bad)
{
	my ($table, $name, $bytes, $re) = @$case;
	(my $file = $name) =~ s/\W/_/g;
	my $path = copy_file($file, $bytes);
	my ($ret, $stdout, $stderr) = $node->psql('src', "COPY $table FROM '$path' (FORMAT binary)");
	isnt($ret, 0, "recv rejects $name");
	like($stderr, $re, "recv error for $name");
}
is($node->safe_psql('src', 'SELECT (SELECT count(*) FROM rh)::text || (SELECT count(*) FROM rb) || (SELECT count(*) FROM rb4)'),
	'110', 'nothing stored after recv errors');

$node->stop;
done_testing();
