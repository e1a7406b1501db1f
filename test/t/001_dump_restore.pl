#!/usr/bin/perl
# Dump and restore of multivector data:
#  - pg_dump plain (restored with psql) and custom (restored with pg_restore)
#    into new databases: CREATE EXTENSION recreated, typmods kept, every value
#    bit-identical (hash of the binary send form);
#  - COPY ... (FORMAT binary) out and in, identical; COPY text likewise;
#  - multivector_recv is as strict as text input: crafted binary COPY files
#    with bad headers, limits, NaN/Infinity, wrong lengths or typmods fail;
#  - the largest value the type accepts, with the longest text form any value
#    can have, survives pg_dump plain and custom, COPY text and binary.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

my $tmp = PostgreSQL::Test::Utils::tempdir;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql(
	'src', q{
CREATE EXTENSION colpali;
CREATE TABLE pages (id int PRIMARY KEY, emb multivector(128));
CREATE TABLE misc (id int PRIMARY KEY, v multivector);
-- ColPali-shaped pages, L2-normalised, one of them 1030 x 128 (toasted)
SELECT setseed(0.125);
INSERT INTO pages
SELECT p, l2_normalize((SELECT array_agg(ARRAY(
		SELECT (random() * 2 - 1)::real FROM generate_series(1, 128) k WHERE p > 0 AND r > 0))
	FROM generate_series(1, CASE WHEN p = 1 THEN 1030 ELSE 20 + p END) r)::multivector)
FROM generate_series(1, 12) p;
INSERT INTO pages VALUES (13, NULL);
-- values that stress the text round trip
INSERT INTO misc VALUES
	(1, '[[3.4028235e38,-3.4028235e38,-0,0],[1e-45,-1e-45,1.1754942e-38,-1.1754944e-38]]'),
	(2, '[[0.1,0.2,0.3],[1.0000001,16777217,-2.5e-40]]'),
	(3, '[[1]]'),
	(4, NULL);
INSERT INTO misc
SELECT 4 + r, (SELECT array_agg(ARRAY[
		(floor(random() * 16777216) * power(2::float8, floor(random() * 254)::int - 149))::real,
		(-floor(random() * 8388608) * power(2::float8, -149))::real])
	FROM generate_series(1, 64) g WHERE r > 0)::multivector
FROM generate_series(1, 20) r;
});

# Order-sensitive hash of the binary form of every value of both tables.
my $hash_sql = q{
SELECT md5(string_agg(coalesce(md5(multivector_send(emb)), 'null'), ',' ORDER BY id))
	|| md5(string_agg(coalesce(md5(multivector_send(v)), 'null'), ',' ORDER BY id))
	|| (SELECT count(*) FROM pages) || '/' || (SELECT count(*) FROM misc)
FROM pages FULL JOIN misc USING (id)};
my $expected = $node->safe_psql('src', $hash_sql);
like($expected, qr/^[0-9a-f]{64}13\/24$/, 'source hash computed');

my $types_sql = q{
SELECT string_agg(attrelid::regclass::text || '.' || attname || ' '
		|| format_type(atttypid, atttypmod) || ' ' || attstorage::text, ', '
		ORDER BY attrelid::regclass::text)
FROM pg_attribute WHERE attrelid IN ('pages'::regclass, 'misc'::regclass) AND attnum > 1};
my $types = $node->safe_psql('src', $types_sql);
is($types, 'misc.v multivector e, pages.emb multivector(128) e', 'column types in source');

# The big page really is toasted.
my $toasted = $node->safe_psql('src',
	q{SELECT pg_relation_size(reltoastrelid) > 527000 FROM pg_class WHERE relname = 'pages'});
is($toasted, 't', '1030 x 128 page stored in TOAST');

sub check_restored
{
	my ($db, $what) = @_;

	is($node->safe_psql($db, $hash_sql), $expected, "$what: values bit-identical");
	is($node->safe_psql($db, $types_sql), $types, "$what: column types and storage kept");
	is( $node->safe_psql($db,
			q{SELECT extversion FROM pg_extension WHERE extname = 'colpali'}),
		$node->safe_psql('src',
			q{SELECT extversion FROM pg_extension WHERE extname = 'colpali'}),
		"$what: extension recreated");
	is( $node->safe_psql($db,
			q{SELECT (SELECT id FROM pages ORDER BY emb <#> (SELECT emb FROM pages WHERE id = 5) LIMIT 1)
				|| ',' || count(*) FROM pg_depend d JOIN pg_type t ON d.objid = t.oid
				WHERE t.typname = 'multivector' AND d.classid = 'pg_type'::regclass AND d.deptype = 'e'}),
		'5,1', "$what: operator works, type is an extension member");
}

# Plain format, restored with psql.
my $plain = "$tmp/plain.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $plain ],
	'pg_dump plain');
my $dump_text = slurp_file($plain);
like($dump_text, qr/CREATE EXTENSION IF NOT EXISTS colpali/, 'plain dump creates the extension');
unlike($dump_text, qr/CREATE TYPE .*multivector/, 'plain dump does not redefine the type');
$node->safe_psql('postgres', 'CREATE DATABASE restore_plain');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restore_plain'), '-f', $plain ],
	'plain dump restores with psql');
check_restored('restore_plain', 'plain');

# Custom format, restored with pg_restore.
my $custom = "$tmp/custom.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $custom ],
	'pg_dump custom');
$node->safe_psql('postgres', 'CREATE DATABASE restore_custom');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restore_custom'), $custom ],
	'pg_restore custom');
check_restored('restore_custom', 'custom');

# COPY out and in, binary and text.
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
		CREATE TABLE pages (id int PRIMARY KEY, emb multivector(128));
		CREATE TABLE misc (id int PRIMARY KEY, v multivector);
		COPY pages FROM '$file' (FORMAT $format);
		COPY misc FROM '$file.misc' (FORMAT $format);
	});
	is($node->safe_psql("copy_$format", $hash_sql), $expected,
		"COPY (FORMAT $format) out and in: values bit-identical");
}

# multivector_recv is as strict as input.  Build binary COPY files by hand.
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

# header: int16 dim, int8 format, int8 flags, int32 nvec, int32 reserved
sub mv_bin
{
	my ($dim, $format, $flags, $nvec, $reserved, @floats) = @_;
	return pack('nCCNN', $dim, $format, $flags, $nvec, $reserved)
	  . join('', map { pack('f>', $_) } @floats);
}

$node->safe_psql('src', 'CREATE TABLE r (v multivector); CREATE TABLE r4 (v multivector(4))');

my $good = copy_file('good', mv_bin(2, 0, 0, 2, 0, 1, -2, 0.5, 3));
$node->safe_psql('src', "COPY r FROM '$good' (FORMAT binary)");
is($node->safe_psql('src', 'SELECT v FROM r'), '[[1,-2],[0.5,3]]', 'hand-made binary value reads');

my $nan = pack('N', 0x7fc00000);
my $inf = pack('N', 0x7f800000);
my $ninf = pack('N', 0xff800000);
my @bad = (
	[ 'format', mv_bin(2, 1, 0, 1, 0, 1, 2), qr/unsupported multivector element format 1/ ],
	[ 'flags', mv_bin(2, 0, 4, 1, 0, 1, 2), qr/reserved multivector header fields must be zero/ ],
	[ 'reserved', mv_bin(2, 0, 0, 1, 7, 1, 2), qr/reserved multivector header fields must be zero/ ],
	[ 'dim0', mv_bin(0, 0, 0, 1, 0), qr/multivector must have at least one dimension/ ],
	[ 'nvec0', mv_bin(2, 0, 0, 0, 0), qr/multivector must have at least one vector/ ],
	[ 'nvecneg', mv_bin(2, 0, 0, 0xffffffff, 0), qr/multivector must have at least one vector/ ],
	[ 'dimmax', mv_bin(4097, 0, 0, 1, 0), qr/cannot have more than 4096 dimensions/ ],
	[ 'nvecmax', mv_bin(1, 0, 0, 16385, 0), qr/cannot have more than 16384 vectors/ ],
	[ 'elementsmax', mv_bin(4096, 0, 0, 4097, 0), qr/cannot have more than 16777216 elements/ ],
	[ 'elementsmax2', mv_bin(1025, 0, 0, 16384, 0), qr/cannot have more than 16777216 elements/ ],
	[ 'short', mv_bin(2, 0, 0, 2, 0, 1, 2, 3), qr/has 12 bytes, expected 16/ ],
	[ 'long', mv_bin(2, 0, 0, 1, 0, 1, 2, 3), qr/has 12 bytes, expected 8/ ],
	[ 'truncated header', pack('nCC', 2, 0, 0), qr/has 4 bytes, fewer than its 12-byte header/ ],
	[ 'empty', '', qr/has 0 bytes, fewer than its 12-byte header/ ],
	[ 'nan', pack('nCCNN', 2, 0, 0, 1, 0) . pack('f>', 1) . $nan, qr/NaN not allowed in multivector/ ],
	[ 'inf', pack('nCCNN', 2, 0, 0, 1, 0) . $inf . pack('f>', 1), qr/infinite value not allowed/ ],
	[ '-inf', pack('nCCNN', 2, 0, 0, 1, 0) . $ninf . pack('f>', 1), qr/infinite value not allowed/ ],
);
foreach my $case (@bad)
{
	my ($name, $bytes, $re) = @$case;
	my $path = copy_file($name, $bytes);
	my ($ret, $stdout, $stderr) =
	  $node->psql('src', "COPY r FROM '$path' (FORMAT binary)");
	isnt($ret, 0, "recv rejects $name");
	like($stderr, $re, "recv error for $name");
}

my $wrongdim = copy_file('typmod', mv_bin(2, 0, 0, 1, 0, 1, 2));
my ($ret, $stdout, $stderr) =
  $node->psql('src', "COPY r4 FROM '$wrongdim' (FORMAT binary)");
like($stderr, qr/expected 4 dimensions, not 2/, 'recv checks the typmod');
is($node->safe_psql('src', 'SELECT count(*) FROM r4'), '0', 'nothing stored after recv errors');

# Random byte mutations of valid binary values: each COPY either stores a
# value that reads back consistently or fails with a clean error; the server
# survives all of them.
srand(20261127);
my @base = (
	mv_bin(2, 0, 0, 2, 0, 1, -2, 0.5, 3),
	mv_bin(3, 0, 0, 1, 0, 3.4028235e38, -0.0, 1e-45),
	mv_bin(1, 0, 0, 3, 0, 0.25, 1, 2));
my $script = '';
for my $i (1 .. 300)
{
	my $bytes = $base[ $i % 3 ];
	for my $n (1 .. 1 + int(rand(2)))
	{
		my $pos = int(rand(length($bytes)));
		substr($bytes, $pos, 1) = chr(int(rand(256)));
	}
	$bytes = substr($bytes, 0, int(rand(length($bytes)))) if $i % 10 == 0;
	$bytes .= chr(int(rand(256))) x 4 if $i % 10 == 5;
	my $path = copy_file("mut$i", $bytes);
	$script .= "COPY r FROM '$path' (FORMAT binary);\n";
}
$node->safe_psql('src', 'TRUNCATE r');
($ret, $stdout, $stderr) = $node->psql('src', $script, on_error_stop => 0);
my @errors = grep { /ERROR/ } split /\n/, $stderr;
my @unexpected = grep {
	!/unsupported multivector element format|reserved multivector header fields must be zero|must have at least one (dimension|vector)|cannot have more than \d+ (dimensions|vectors|elements)|multivector binary data has \d+ bytes|NaN not allowed in multivector|infinite value not allowed in multivector/
} @errors;
is(scalar(@unexpected), 0, 'mutated binary values fail only with the documented errors')
  or diag(join("\n", @unexpected[ 0 .. ($#unexpected < 9 ? $#unexpected : 9) ]));
my $stored = $node->safe_psql('src', 'SELECT count(*) FROM r');
cmp_ok(scalar(@errors), '>', 50, 'many mutated binary values rejected');
cmp_ok($stored, '>', 20, 'some mutated binary values accepted');
is(scalar(@errors) + $stored, 300, 'every mutated COPY either stored one row or failed');
is( $node->safe_psql('src',
		q{SELECT count(*) FROM r WHERE multivector_send(v::text::multivector) = multivector_send(v)
			AND octet_length(multivector_send(v)) = 12 + 4 * dims(v) * num_vectors(v)}),
	$stored,
	'accepted mutated values are consistent');

# ---- The largest value, with the longest text form, in every dump format.
# N * D <= 2^24 and the shortest round-trip text of a float4 has at most 15
# characters ("-1.23456789e-20"), so the longest text of any value is
# 16 N D + 2 N + 1 bytes: 268,468,225 for 16384 x 1024 (1024 x 16384 is
# not a legal shape), a quarter of PostgreSQL's 1 GB allocation limit.
my ($bign, $bigd) = (16384, 1024);
my $biglen = 16 * $bign * $bigd + 2 * $bign + 1;
$node->safe_psql('postgres', 'CREATE DATABASE bigsrc');
$node->safe_psql('bigsrc',
	'CREATE EXTENSION colpali; CREATE TABLE big (id int PRIMARY KEY, v multivector)');
# 4099 distinct floats whose output has 15 characters (-d.dddddddde-XX).
my @pool = split /\n/, $node->safe_psql('bigsrc', q{
	SELECT f::text FROM (
		SELECT DISTINCT ('-' || (100000000 + g::bigint * 347)::text || 'e-' || (20 + g % 26)::text)::real AS f
		FROM generate_series(1, 2500000) g) s
	WHERE length(f::text) = 15 ORDER BY 1 LIMIT 4099});
is(scalar(@pool), 4099, 'found 4099 floats with 15-character output');
is(scalar(grep { length($_) == 15 } @pool), 4099, 'pool floats print with 15 characters');
{
	# row r is 1024 consecutive pool entries from (7 r mod 4099): every entry
	# takes 16 bytes with its comma, so a row is one substring
	my $ring = join(',', @pool, @pool) . ',';
	open(my $fh, '>', "$tmp/big.copy") or die "cannot write $tmp/big.copy: $!";
	print $fh "1\t[";
	for my $r (0 .. $bign - 1)
	{
		print $fh ($r ? ',[' : '['),
		  substr($ring, 16 * (($r * 7) % 4099), 16 * $bigd - 1), ']';
	}
	print $fh "]\n";
	close($fh);
}
is(-s "$tmp/big.copy", $biglen + 3, 'generated text has the longest possible length');
$node->safe_psql('bigsrc', "COPY big FROM '$tmp/big.copy'");
unlink("$tmp/big.copy");
my $big_sql = q{SELECT num_vectors(v) || 'x' || dims(v) || ' ' || length(v::text)
	|| ' ' || md5(multivector_send(v)) FROM big};
my $big_expected = $node->safe_psql('bigsrc', $big_sql);
like($big_expected, qr/^${bign}x$bigd $biglen [0-9a-f]{32}$/,
	'largest value stored, text output of the longest length');

sub check_big
{
	my ($db, $what) = @_;
	is($node->safe_psql($db, $big_sql), $big_expected, "largest value, $what: bit-identical");
	$node->safe_psql('postgres', "DROP DATABASE $db");
}

$node->command_ok([ 'pg_dump', '-d', $node->connstr('bigsrc'), '-f', "$tmp/big.sql" ],
	'largest value: pg_dump plain');
$node->safe_psql('postgres', 'CREATE DATABASE big_plain');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('big_plain'), '-f', "$tmp/big.sql" ],
	'largest value: plain dump restores with psql');
unlink("$tmp/big.sql");
check_big('big_plain', 'plain dump');

$node->command_ok([ 'pg_dump', '-Fc', '-Z1', '-d', $node->connstr('bigsrc'), '-f', "$tmp/big.dump" ],
	'largest value: pg_dump custom');
$node->safe_psql('postgres', 'CREATE DATABASE big_custom');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('big_custom'), "$tmp/big.dump" ],
	'largest value: pg_restore custom');
unlink("$tmp/big.dump");
check_big('big_custom', 'custom dump');

foreach my $format ('text', 'binary')
{
	$node->safe_psql('bigsrc', "COPY big TO '$tmp/big.$format' (FORMAT $format)");
	$node->safe_psql('postgres', "CREATE DATABASE big_$format");
	$node->safe_psql("big_$format", qq{
		CREATE EXTENSION colpali;
		CREATE TABLE big (id int PRIMARY KEY, v multivector);
		COPY big FROM '$tmp/big.$format' (FORMAT $format);
	});
	unlink("$tmp/big.$format");
	check_big("big_$format", "COPY (FORMAT $format)");
}
$node->safe_psql('postgres', 'DROP DATABASE bigsrc');

$node->stop;
done_testing();
