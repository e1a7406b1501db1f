# Golden embeddings of the fixture checkpoints, for the encoder TAP tests:
# reading a golden file and comparing an encoder output with it.
package EncoderGoldens;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(golden compare);

# floats of a golden file ({file, shape}, relative to $fx), checked against its shape
sub golden
{
	my ($fx, $entry) = @_;
	my @v = unpack('f<*', slurp_file("$fx/$entry->{file}"));
	my ($rows, $cols) = @{ $entry->{shape} };
	die "bad golden $entry->{file}" unless @v == $rows * ($cols // 1);
	return \@v;
}

# one test: a real[] text ('{{..},{..}}') against a golden entry, max |delta|
# <= 1e-4 and per-row cosine >= 0.99999
sub compare
{
	my ($fx, $label, $text, $entry) = @_;
	my ($rows, $dim) = @{ $entry->{shape} };
	my $g = golden($fx, $entry);
	(my $flat = $text) =~ tr/{}//d;
	my @v = split /,/, $flat;
	if (@v != @$g)
	{
		fail("$label: shape");
		diag("got " . scalar(@v) . " floats, golden has " . scalar(@$g) . " ($rows x $dim)");
		return;
	}
	my ($maxd, $mincos) = (0, 1);
	for my $r (0 .. $rows - 1)
	{
		my ($dot, $na, $nb) = (0, 0, 0);
		for my $c (0 .. $dim - 1)
		{
			my ($a, $b) = ($v[ $r * $dim + $c ], $g->[ $r * $dim + $c ]);
			my $d = abs($a - $b);
			$maxd = $d if $d > $maxd;
			$dot += $a * $b;
			$na += $a * $a;
			$nb += $b * $b;
		}
		my $cos = ($na > 0 && $nb > 0) ? $dot / sqrt($na * $nb) : ($na == $nb ? 1 : 0);
		$mincos = $cos if $cos < $mincos;
	}
	ok($maxd <= 1e-4 && $mincos >= 0.99999,
		sprintf("%s: %dx%d, max |delta| %.2e, min cosine %.7f", $label, $rows, $dim, $maxd, $mincos));
}

1;
