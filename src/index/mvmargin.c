/*
 * mvmargin.c
 *	  The order of an mvivf scan's candidates, and the error model that
 *	  decides how deep the scan refines and reranks: the margin of a sample
 *	  of approximation errors under a normal model, and the random samples
 *	  (fixed seed) whose errors stand for the documents not yet reranked or
 *	  refined.  docs/mvivf.md, "How deep a scan reranks", has the rule.
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "utils/float.h"

#include "mvivf.h"

/*
 * Random samples that calibrate the error margins: unrefined documents
 * refined with the first ones, unreranked documents reranked with the first
 * batch.  A fixed seed keeps a query's results reproducible.
 */
#define MVIVF_SAMPLE_SEED		UINT64CONST(0x6d76697666)

/*
 * MvivfCandCmp
 *		Order candidates by distance as float8 sorts (NaN after every number),
 *		then by document id.
 */
int
MvivfCandCmp(const MvivfScanCandidate * x, const MvivfScanCandidate * y)
{
	int			c = float8_cmp_internal(x->score, y->score);

	if (c != 0)
		return c;
	return (x->docid > y->docid) - (x->docid < y->docid);
}

/*
 * MvivfCandQsortCmp
 *		MvivfCandCmp for qsort.
 */
int
MvivfCandQsortCmp(const void *a, const void *b)
{
	return MvivfCandCmp(a, b);
}

/*
 * NormalUpperQuantile
 *		z such that a standard normal variable exceeds z with probability p,
 *		by bisection on erfc (exact enough: it only sets a safety margin).
 */
static double
NormalUpperQuantile(double p)
{
	double		lo = 0;
	double		hi = 40;
	int			i;

	if (p >= 0.5)
		return 0;
	if (p <= 0)
		return hi;
	for (i = 0; i < 60; i++)
	{
		double		mid = (lo + hi) / 2;

		if (0.5 * erfc(mid / M_SQRT2) > p)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

/*
 * MvivfErrorStatsOf
 *		The size, mean, standard deviation (0 for fewer than two) and largest
 *		value of the errors x[0 .. n-1].
 */
void
MvivfErrorStatsOf(const double *x, int n, MvivfErrorStats * s)
{
	double		sum = 0;
	double		sumsq = 0;
	int			i;

	s->n = Max(n, 0);
	s->mean = 0;
	s->sd = 0;
	s->max = 0;
	if (n <= 0)
		return;
	s->max = x[0];
	for (i = 0; i < n; i++)
	{
		s->max = Max(s->max, x[i]);
		sum += x[i];
	}
	s->mean = sum / n;
	if (n < 2)
		return;
	for (i = 0; i < n; i++)
		sumsq += (x[i] - s->mean) * (x[i] - s->mean);
	s->sd = sqrt(sumsq / (n - 1));
}

/*
 * MvivfStatsMargin
 *		How much larger than any of the observed errors (summarised in s) the
 *		error of one of nrem unobserved documents may be: the largest observed
 *		one, or mean + z * standard deviation if larger, with z the normal
 *		quantile that nrem documents exceed mvivf.miss_tolerance times in
 *		expectation (z = 4.75 for 1,000 documents at the default 0.001);
 *		never negative.  The errors are those of the documents nearest in
 *		approximate rank to the unobserved ones, so the margin is calibrated
 *		on this query and this index, not on a corpus chosen in advance.
 */
double
MvivfStatsMargin(const MvivfErrorStats * s, double nrem)
{
	double		max;

	if (s->n <= 0 || nrem <= 0)
		return 0;
	max = Max(0, s->max);
	if (s->n < 2)
		return max;
	return Max(max, s->mean + NormalUpperQuantile(mvivf_miss_tolerance / nrem) * s->sd);
}

/*
 * MvivfErrorMargin
 *		MvivfStatsMargin of the errors x[0 .. n-1].
 */
double
MvivfErrorMargin(const double *x, int n, double nrem)
{
	MvivfErrorStats s;

	MvivfErrorStatsOf(x, n, &s);
	return MvivfStatsMargin(&s, nrem);
}

/*
 * MvivfSumMargin
 *		The margin of the sum of two errors drawn independently from the
 *		models of a and b: mean_a + mean_b + z * sqrt(sd_a^2 + sd_b^2), or
 *		the sum of the largest observed ones if larger (never negative).  An
 *		unrefined document's exact score is its centroid interaction plus the
 *		gain of its residual codes (sample a) plus the error of its quantized
 *		score (sample b): under the normal model the tail of the sum is what
 *		matters, and it is narrower than the sum of the two tails' margins
 *		(which it never exceeds).  With fewer than two observations in either
 *		sample it is the sum of their margins.
 */
double
MvivfSumMargin(const MvivfErrorStats * a, const MvivfErrorStats * b, double nrem)
{
	double		floor;

	if (nrem <= 0)
		return 0;
	if (a->n < 2 || b->n < 2)
		return MvivfStatsMargin(a, nrem) + MvivfStatsMargin(b, nrem);
	floor = Max(0, a->max) + Max(0, b->max);
	return Max(floor, a->mean + b->mean +
			   NormalUpperQuantile(mvivf_miss_tolerance / nrem) *
			   sqrt(a->sd * a->sd + b->sd * b->sd));
}

/*
 * MvivfSampleToFront
 *		Move k candidates drawn at random from so->cands[lo .. hi-1] to
 *		positions lo .. lo+k-1 (a partial Fisher-Yates shuffle), then sort
 *		the others, lo+k .. hi-1, back into approximate order.
 */
void
MvivfSampleToFront(MvivfScanOpaque so, int lo, int hi, int k)
{
	pg_prng_state prng;
	int			i;

	pg_prng_seed(&prng, MVIVF_SAMPLE_SEED + (uint64) lo);
	for (i = 0; i < k; i++)
	{
		int			j = lo + i + (int) pg_prng_uint64_range(&prng, 0, hi - lo - i - 1);
		MvivfScanCandidate tmp = so->cands[lo + i];

		so->cands[lo + i] = so->cands[j];
		so->cands[j] = tmp;
	}
	pg_qsort(so->cands + lo + k, hi - lo - k, sizeof(MvivfScanCandidate),
			 MvivfCandQsortCmp);
}
