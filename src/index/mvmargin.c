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
 * MvivfErrorMargin
 *		How much larger than any of the observed errors x[0 .. n-1] the error
 *		of one of nrem unobserved documents may be: the largest observed one,
 *		or mean + z * standard deviation if larger, with z the normal quantile
 *		that nrem documents exceed mvivf.miss_tolerance times in expectation
 *		(z = 4.75 for 1,000 documents at the default 0.001); never negative.
 *		The errors are those of the documents nearest in approximate rank to
 *		the unobserved ones, so the margin is calibrated on this query and
 *		this index, not on a corpus chosen in advance.
 */
double
MvivfErrorMargin(const double *x, int n, double nrem)
{
	double		max = 0;
	double		sum = 0;
	double		sumsq = 0;
	double		mean;
	double		var;
	int			i;

	if (n <= 0 || nrem <= 0)
		return 0;
	for (i = 0; i < n; i++)
	{
		max = Max(max, x[i]);
		sum += x[i];
	}
	if (n < 2)
		return max;
	mean = sum / n;
	for (i = 0; i < n; i++)
		sumsq += (x[i] - mean) * (x[i] - mean);
	var = sumsq / (n - 1);
	return Max(max, mean + NormalUpperQuantile(mvivf_miss_tolerance / nrem) * sqrt(var));
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
