# colpali_query in databases whose encoding is not UTF-8.  The engine reads
# UTF-8, so the glue converts the text from the database encoding first:
# valid text in a LATIN1 database embeds exactly as the same characters do
# in a UTF-8 database, and in an SQL_ASCII database (where PostgreSQL does
# not know the encoding of the bytes) text must be valid UTF-8.
#
# The SQL below is sent with client_encoding UTF8 and this file is UTF-8, so
# the server converts 'café' to its own encoding (one byte 0xe9 in LATIN1).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $model = $ENV{COLPALI_TEST_MODEL} // "$ENV{TESTDIR}/test/fixtures/models/tiny";
plan skip_all => 'fixtures not found' unless -d $model;

my $node = PostgreSQL::Test::Cluster->new('encoding');
$node->init;
$node->append_conf('postgresql.conf', qq{
colpali.model_path = '$model'
colpali.threads = 1
});
$node->start;

for my $enc ('UTF8', 'LATIN1', 'SQL_ASCII')
{
	my $db = lc $enc;
	$node->command_ok(
		[ 'createdb', '-p', $node->port, '-h', $node->host,
		  '-E', $enc, '--locale=C', '-T', 'template0', $db ],
		"createdb -E $enc");
	$node->safe_psql($db, 'CREATE EXTENSION colpali');
	is($node->safe_psql($db, 'SHOW server_encoding'), $enc, "$db: server encoding");
}

# the embedding of a text, as the text form of the multivector
sub embed
{
	my ($db, $text) = @_;
	return $node->safe_psql($db,
		"SET client_encoding = 'UTF8'; SELECT colpali_query('$text')::text");
}

my @texts = ('café', 'Größe über Fußnoten, ¿señal? ±½ °C', 'plain ascii');
for my $t (@texts)
{
	my $utf8 = embed('utf8', $t);
	like($utf8, qr/^\[\[/, "utf8: '$t' embeds");
	is(embed('latin1', $t), $utf8, "latin1: '$t' embeds as in the UTF-8 database");
	is(embed('sql_ascii', $t), $utf8, "sql_ascii: UTF-8 bytes of '$t' embed as in the UTF-8 database");
}
isnt(embed('utf8', 'café'), embed('utf8', 'cafe'), 'the accent matters (the comparison above can fail)');

# SQL_ASCII: bytes that are not UTF-8 (here a LATIN1 e-acute) are an error
# with an SQLSTATE, not silently other characters.
my ($ret, $out, $err) = $node->psql('sql_ascii',
	"SET client_encoding = 'SQL_ASCII'; SELECT colpali_query(E'caf\\xe9')");
like($err, qr/ERROR:  invalid byte sequence for encoding "UTF8": 0xe9/,
	'sql_ascii: text that is not UTF-8 is rejected');
is($node->safe_psql('sql_ascii', q{
	DO $$ BEGIN PERFORM colpali_query(E'caf\xe9');
	EXCEPTION WHEN character_not_in_repertoire THEN RAISE NOTICE 'ok'; END $$;
	SELECT 'session goes on'}), 'session goes on', 'sql_ascii: the error is character_not_in_repertoire');

$node->stop;
done_testing();
