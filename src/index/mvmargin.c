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
#include "utils/guc.h"
#include "utils/hsearch.h"

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
 * CandCmpInline
 *		MvivfCandCmp, inlined into the sort below: a scan sorts its every
 *		live document a few times (a tenth of a 10,000-page query went to
 *		qsort's calls of the comparison through pointers).  The order is a
 *		total one (ties broken by document id), so the result is the one
 *		qsort gives.
 */
static inline int
CandCmpInline(const MvivfScanCandidate * x, const MvivfScanCandidate * y)
{
	double		a = x->score;
	double		b = y->score;

	if (unlikely(isnan(a) || isnan(b)))
	{
		if (!isnan(b))
			return 1;
		if (!isnan(a))
			return -1;
	}
	else if (a != b)
		return a < b ? -1 : 1;
	return (x->docid > y->docid) - (x->docid < y->docid);
}

#define ST_SORT CandSort
#define ST_ELEMENT_TYPE MvivfScanCandidate
#define ST_COMPARE(a, b) CandCmpInline(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * MvivfSortCands
 *		Sort n candidates into approximate order (MvivfCandCmp).
 */
void
MvivfSortCands(MvivfScanCandidate * cands, int n)
{
	if (n > 1)
		CandSort(cands, n);
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
 * Draws a random sample makes before it takes a candidate whose approximate
 * distance equals that of one already drawn (MvivfSampleToFront).
 */
#define MVIVF_SAMPLE_TRIES		8

/*
 * SampledBefore
 *		Whether one of so->cands[lo .. lo+i-1] has the approximate distance
 *		of so->cands[j].
 */
static bool
SampledBefore(MvivfScanOpaque so, int lo, int i, int j)
{
	int			m;

	for (m = lo; m < lo + i; m++)
		if (so->cands[m].score == so->cands[j].score)
			return true;
	return false;
}

/*
 * MvivfSampleToFront
 *		Move k candidates drawn at random from so->cands[lo .. hi-1] to
 *		positions lo .. lo+k-1 (a partial Fisher-Yates shuffle), then sort
 *		the others, lo+k .. hi-1, back into approximate order.
 *
 * The samples calibrate the error model of distinct documents, so a draw
 * whose approximate distance equals that of one already drawn is made
 * again (up to MVIVF_SAMPLE_TRIES times): equal approximate distances come
 * from identical stored values (duplicate pages, a table of blank pages),
 * whose errors are one and the same.  Drawn in proportion to their number,
 * 800 copies of a blank page among 1,000 pages filled the sample with one
 * error, far from that of the other pages, and the scan returned rows that
 * unreranked pages beat.  Without equal distances the draws, and the
 * sample, are those of a plain shuffle.
 */
void
MvivfSampleToFront(MvivfScanOpaque so, int lo, int hi, int k)
{
	pg_prng_state prng;
	int			i;

	pg_prng_seed(&prng, MVIVF_SAMPLE_SEED + (uint64) lo);
	for (i = 0; i < k; i++)
	{
		int			j;
		int			tries = 0;
		MvivfScanCandidate tmp;

		do
			j = lo + i + (int) pg_prng_uint64_range(&prng, 0, hi - lo - i - 1);
		while (++tries < MVIVF_SAMPLE_TRIES && SampledBefore(so, lo, i, j));
		tmp = so->cands[lo + i];
		so->cands[lo + i] = so->cands[j];
		so->cands[j] = tmp;
	}
	MvivfSortCands(so->cands + lo + k, hi - lo - k);
}

/*
 * MvivfErrorSeen
 *		Whether a document with this approximate and this exact distance was
 *		reranked before by the scan (and remember the pair): the errors of
 *		identical stored values are one and the same, and are counted once
 *		in the error samples, which stand for distinct documents.
 */
bool
MvivfErrorSeen(MvivfScanOpaque so, double approx, double exact)
{
	double		key[2];
	bool		found;

	if (so->seenErrors == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(key);
		ctl.hcxt = so->scanCtx;
		so->seenErrors = hash_create("mvivf reranked errors", 256, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	key[0] = approx;
	key[1] = exact;
	(void) hash_search(so->seenErrors, key, HASH_ENTER, &found);
	return found;
}

/*
 * TailProb
 *		P(error > threshold) for an error drawn from the normal model of s.
 */
static double
TailProb(double threshold, const MvivfErrorStats * s)
{
	if (s->sd > 0)
		return 0.5 * erfc((threshold - s->mean) / (s->sd * M_SQRT2));
	return threshold < s->mean ? 1 : 0;
}

/*
 * ExpectedOver
 *		The expected number of the documents cands[from .. to-1] whose error
 *		exceeds their gap to the row at distance top, under the normal model
 *		s: sum over them of P(error > gap).  gap(r) is the candidate's
 *		approximate distance less top when ci is NULL, else its centroid
 *		score's distance (-ci[doc]) less top.  The candidates are in
 *		increasing order of that distance, so the terms decrease: the loop
 *		ends once the rest cannot add a thousandth of the tolerance.  A NaN
 *		gives infinity (such a document cannot be ruled out).
 */
static double
ExpectedOver(MvivfScanOpaque so, int from, int to, const double *ci,
			 double top, const MvivfErrorStats * s)
{
	double		sum = 0;
	int			r;

	for (r = from; r < to; r++)
	{
		double		dist = ci ? -ci[so->cands[r].docid] : so->cands[r].score;
		double		p;

		if (isnan(dist))
			return get_float8_infinity();
		p = TailProb(dist - top, s);
		sum += p;
		if (p * (to - r) < 1e-3 * mvivf_miss_tolerance)
			break;
	}
	return sum;
}

/*
 * MvivfMayStop
 *		Whether the scan may return the waiting row at exact distance top:
 *		whether, under this query's error model, fewer than
 *		mvivf.miss_tolerance of the documents not reranked are expected to
 *		beat it.
 *
 * For a refined document that is P(error > approximate distance - top),
 * with the error modelled as normal with the mean and standard deviation
 * of each of the two samples (the second half of the documents reranked in
 * approximate order, the random sample of the other refined ones; the
 * larger expectation counts).  For an unrefined one the error is that of
 * its centroid interaction, the gain of its residual codes plus the error
 * of its quantized score (MvivfSumMargin's model), against its centroid
 * interaction.  The expectation is summed over the documents themselves,
 * not bounded by their number times the probability of the nearest one,
 * so documents far from the row count for what they are: next to nothing.
 * Besides, no document may be within the largest error observed of the
 * row.  *unrefinedFirst says whether the unrefined documents weigh more
 * than the refined ones (then the scan refines more before it reranks).
 */
bool
MvivfMayStop(MvivfScanOpaque so, double top, bool *unrefinedFirst)
{
	const MvivfErrorStats *head = &so->headStats;
	const MvivfErrorStats *sample = &so->sampleStats;
	int			refinedEnd = Min(so->nrefined, so->ncands);
	int			unrefinedFrom = Max(so->nrefined, so->nextCand);
	double		errFloor = 0;
	double		eRefined = 0;
	double		eUnrefined = 0;

	*unrefinedFirst = false;
	if (head->n >= 2)
		errFloor = Max(errFloor, head->max);
	if (sample->n >= 2)
		errFloor = Max(errFloor, sample->max);

	/* refined documents not reranked yet: cands[nextCand .. nrefined-1] */
	if (so->nextCand < refinedEnd)
	{
		if (float8_cmp_internal(top, so->cands[so->nextCand].score - errFloor) > 0)
			return false;
		if (head->n >= 2)
			eRefined = ExpectedOver(so, so->nextCand, refinedEnd, NULL, top, head);
		if (sample->n >= 2)
			eRefined = Max(eRefined, ExpectedOver(so, so->nextCand, refinedEnd, NULL, top, sample));
		if (head->n < 2 && sample->n < 2)
			eRefined = float8_cmp_internal(top, so->cands[so->nextCand].score - so->errMargin) <= 0 ?
				0 : get_float8_infinity();
	}

	/* unrefined documents: cands[nrefined ..], by centroid interaction */
	if (unrefinedFrom < so->ncands)
	{
		const MvivfErrorStats *g = &so->gainStats;
		const MvivfErrorStats *e = &so->errStats;
		double		best = -so->ciScore[so->cands[unrefinedFrom].docid];

		if (g->n >= 2 && e->n >= 2)
		{
			MvivfErrorStats sum;

			if (float8_cmp_internal(top, best - Max(0, g->max) - Max(0, e->max)) > 0)
			{
				*unrefinedFirst = true;
				return false;
			}
			sum.n = Min(g->n, e->n);
			sum.mean = g->mean + e->mean;
			sum.sd = sqrt(g->sd * g->sd + e->sd * e->sd);
			sum.max = g->max + e->max;
			eUnrefined = ExpectedOver(so, unrefinedFrom, so->ncands, so->ciScore, top, &sum);
		}
		else
			eUnrefined = float8_cmp_internal(top, best - MvivfSumMargin(g, e, so->ncands - so->nextCand)) <= 0 ?
				0 : get_float8_infinity();
	}
	if (eRefined + eUnrefined <= mvivf_miss_tolerance)
		return true;
	*unrefinedFirst = unrefinedFrom < so->ncands && eUnrefined > eRefined;
	return false;
}
