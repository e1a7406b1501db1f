/*
 * mvmargin.c
 *	  The order of an mvivf scan's candidates, and the error model that
 *	  decides how deep the scan refines and reranks: the margin of a sample
 *	  of approximation errors under a normal model (the stopping rule's tail
 *	  probabilities: a Student t, TailProbT), and the random samples
 *	  (fixed seed) whose errors stand for the documents not yet reranked or
 *	  refined.  docs/mvivf.md, "How deep a scan reranks", has the rule.
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

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
 * CandsInOrder
 *		Whether cands[0 .. n-1] are in approximate order.
 */
static bool
CandsInOrder(const MvivfScanCandidate * cands, int n)
{
	int			i;

	for (i = 1; i < n; i++)
		if (CandCmpInline(&cands[i - 1], &cands[i]) > 0)
			return false;
	return true;
}

/*
 * MvivfSortChangedPrefix
 *		Sort cands[0 .. n-1] into approximate order when only the first m of
 *		them may be out of it: sort those m and merge them into the rest.
 *
 * A scan re-sorts its every live document after it changes the scores of a
 * few hundred at the head; at 10,000 documents the full sorts were 3-4 % of
 * a query.  The order is total (document ids are distinct), so the result
 * is the full sort's.  If the rest is not in order after all, it is sorted
 * whole.
 */
void
MvivfSortChangedPrefix(MvivfScanCandidate * cands, int m, int n)
{
	MvivfScanCandidate *head;
	int			i = 0;
	int			j = m;
	int			w = 0;

	if (m >= n || !CandsInOrder(cands + m, n - m))
	{
		MvivfSortCands(cands, n);
		return;
	}
	MvivfSortCands(cands, m);
	if (m == 0 || CandCmpInline(&cands[m - 1], &cands[m]) <= 0)
		return;
	/* the merge writes at or before where it reads the rest */
	head = palloc(sizeof(MvivfScanCandidate) * m);
	memcpy(head, cands, sizeof(MvivfScanCandidate) * m);
	while (i < m && j < n)
	{
		if (CandCmpInline(&cands[j], &head[i]) < 0)
			cands[w++] = cands[j++];
		else
			cands[w++] = head[i++];
	}
	while (i < m)
		cands[w++] = head[i++];
	pfree(head);
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
 * DrawnBefore
 *		Whether one of the first i candidates drawn, cands[pos[0 .. i-1]],
 *		has the approximate distance of cands[pos[j]].
 */
static bool
DrawnBefore(const MvivfScanCandidate * cands, const int *pos, int i, int j)
{
	int			m;

	for (m = 0; m < i; m++)
		if (cands[pos[m]].score == cands[pos[j]].score)
			return true;
	return false;
}

/*
 * MvivfSampleToFront
 *		Move k candidates drawn at random from so->cands[lo .. hi-1] to
 *		positions lo .. lo+k-1 (a partial Fisher-Yates shuffle), the others
 *		after them, lo+k .. hi-1, in approximate order.
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
	MvivfScanCandidate *cands = so->cands + lo;
	int			n = hi - lo;
	int		   *pos;			/* pos[i]: the candidate at offset i now */
	bool	   *drawn;
	MvivfScanCandidate *out;
	bool		inOrder;
	int			i;
	int			w;

	if (n <= 0)
		return;
	inOrder = CandsInOrder(cands, n);
	if (k <= 0)
	{
		if (!inOrder)
			MvivfSortCands(cands, n);
		return;
	}

	/*
	 * The draws are swaps of offsets (a partial Fisher-Yates shuffle), so
	 * that the others keep the order they were in: no sort when that is the
	 * approximate order already.
	 */
	pos = palloc(sizeof(int) * n);
	drawn = palloc0(sizeof(bool) * n);
	for (i = 0; i < n; i++)
		pos[i] = i;
	pg_prng_seed(&prng, MVIVF_SAMPLE_SEED + (uint64) lo);
	for (i = 0; i < k; i++)
	{
		int			j;
		int			tries = 0;
		int			tmp;

		do
			j = i + (int) pg_prng_uint64_range(&prng, 0, n - i - 1);
		while (++tries < MVIVF_SAMPLE_TRIES && DrawnBefore(cands, pos, i, j));
		tmp = pos[i];
		pos[i] = pos[j];
		pos[j] = tmp;
		drawn[pos[i]] = true;
	}
	out = palloc(sizeof(MvivfScanCandidate) * n);
	for (i = 0; i < k; i++)
		out[i] = cands[pos[i]];
	w = k;
	for (i = 0; i < n; i++)
		if (!drawn[i])
			out[w++] = cands[i];
	if (!inOrder)
		MvivfSortCands(out + k, n - k);
	memcpy(cands, out, sizeof(MvivfScanCandidate) * n);
	pfree(out);
	pfree(drawn);
	pfree(pos);
}

/*
 * MvivfMarkedToFront
 *		Move the candidates of so->cands[lo .. hi-1] whose document is marked
 *		to the front of that range, each part in the order it was in;
 *		returns how many were moved.
 */
int
MvivfMarkedToFront(MvivfScanOpaque so, int lo, int hi, const bool *marked)
{
	MvivfScanCandidate *rest;
	int			nrest = 0;
	int			w = lo;
	int			i;

	if (hi <= lo)
		return 0;
	rest = palloc(sizeof(MvivfScanCandidate) * (hi - lo));
	for (i = lo; i < hi; i++)
	{
		if (marked[so->cands[i].docid])
			so->cands[w++] = so->cands[i];
		else
			rest[nrest++] = so->cands[i];
	}
	memcpy(so->cands + w, rest, sizeof(MvivfScanCandidate) * nrest);
	pfree(rest);
	return w - lo;
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
 * Degrees of freedom of the Student t tail of the refined documents' errors
 * (TailProbT).  The errors' tails are heavier than a normal one: on queries
 * of another corpus than the indexed one (scores bunched within hundredths,
 * bench/index/attack.sh "oodq"), one document in 1,000 erred by 4.3
 * standard deviations of its sample, where a normal model expects 0.009 such
 * documents; the scan returned a row that document beat (recall 0.9967 on
 * three of five such corpora).  A t of 60 degrees of freedom puts nearly 4
 * times the normal's mass beyond 4.3 and 1.5 times beyond 3: those misses
 * went on two of the three, for 7-12 % more reranked documents on the
 * corpus shapes of bench/index where queries match the pages (n - 1, the
 * predictive distribution of the sample itself, doubled them on "own").
 * Since the residual levels are trained for the least squared error
 * (scalar_levels.c), errors are smaller but their tails heavier on such
 * queries: with 60 degrees of freedom, queries of another corpus against
 * the pages an index was built on, filtered to those pages, missed 3 rows
 * in 1,000 (none before); with 30, 1, at 0-13 % more reranked documents
 * than with 60, still far fewer than with the earlier levels.
 */
#define MVIVF_ERROR_TAIL_DF		30

/*
 * Degrees of freedom of the t tail of the edge sample's gains (at most; fewer
 * for a smaller sample): the gains of the documents at the head of the
 * centroid order are a mixture, most of them far below zero (pages the
 * centroids overrate) and a few far above (pages whose content rows the
 * residual codes place nearer the query than their centroids do).  On 10,000
 * pages of the "own" shape of bench/index with mvivf.refine = 16, such a
 * page's gain lay 5.6 standard deviations above the mean of the 64 before it;
 * with 30 degrees of freedom the scan returned a row that page beat (1 in
 * 300), with 15 it refined it first.  With 15, the defaults refine 0-15 %
 * more documents on the shapes of bench/index; with 10, twice as many on
 * "rows" at 1,000 pages, with 5, 2,000-9,000 a query at 10,000.
 */
#define MVIVF_EDGE_TAIL_DF		15

/*
 * TailProbWallace
 *		P(T > t) for T a Student t variable of nu degrees of freedom: the t
 *		quantile is mapped to the normal one by Wallace's approximation (z =
 *		(8 nu + 1) / (8 nu + 3) sqrt(nu ln(1 + t^2 / nu))), close in the far
 *		tail that matters here.
 */
static double
TailProbWallace(double t, int nu)
{
	double		z = (8.0 * nu + 1) / (8.0 * nu + 3) * sqrt(nu * log1p(t * t / nu));

	if (t < 0)
		z = -z;
	return 0.5 * erfc(z / M_SQRT2);
}

/*
 * The tail probabilities of the degrees of freedom in use, tabulated for t
 * from 0 to TAIL_TABLE_MAX_T in steps of 1 / TAIL_TABLE_STEPS and
 * interpolated linearly (relative error below 1e-4 where the sums matter),
 * per backend.  The stopping rule sums a tail probability per candidate,
 * each an erfc, a log1p and an exp: at 50,000 pages those were a third of a
 * scan's time.
 */
#define TAIL_TABLE_MAX_T		64
#define TAIL_TABLE_STEPS		128
#define TAIL_TABLE_MAX_NU		64
#define TAIL_TABLE_SIZE			(TAIL_TABLE_MAX_T * TAIL_TABLE_STEPS + 1)

static double *tailTables[TAIL_TABLE_MAX_NU + 1];

/*
 * TailProbTStd
 *		P(T > t) for T a Student t variable of nu degrees of freedom (at
 *		least 1), from the table of nu where t lies within it.
 */
static double
TailProbTStd(double t, int nu)
{
	double	   *table;
	double		x;
	double		frac;
	int			i;

	if (nu < 1)
		nu = 1;
	if (nu > TAIL_TABLE_MAX_NU || !(fabs(t) < TAIL_TABLE_MAX_T))
		return TailProbWallace(t, nu);	/* NaN too */
	table = tailTables[nu];
	if (table == NULL)
	{
		table = MemoryContextAlloc(TopMemoryContext, sizeof(double) * TAIL_TABLE_SIZE);
		for (i = 0; i < TAIL_TABLE_SIZE; i++)
			table[i] = TailProbWallace((double) i / TAIL_TABLE_STEPS, nu);
		tailTables[nu] = table;
	}
	x = fabs(t) * TAIL_TABLE_STEPS;
	i = (int) x;
	frac = x - i;
	x = table[i] + frac * (table[i + 1] - table[i]);
	return t < 0 ? 1 - x : x;
}

/*
 * TailProbT
 *		P(X > threshold) for X = mean + sd * T, T a Student t variable of nu
 *		degrees of freedom: the tail of a prediction from a sample of nu + 2
 *		points, whose spread is itself estimated.
 */
static double
TailProbT(double threshold, double mean, double sd, int nu)
{
	if (!(sd > 0))
		return threshold < mean ? 1 : 0;
	return TailProbTStd((threshold - mean) / sd, nu);
}

/*
 * SameRefinedValue
 *		Whether the refined candidates cands[a] and cands[b] look like copies
 *		of one stored value: the same quantized MaxSim, exact centroid
 *		interaction and token count.  Copies err alike, so they beat a row
 *		all together or not at all: in the expected misses they are one
 *		event (with the t tail, 800 copies of a blank page counted 800
 *		times made a scan rerank every one of them).  Distinct documents
 *		rarely agree on all three; unrefined documents are never taken for
 *		copies, since many distinct ones share one centroid-interaction
 *		bound.
 */
static bool
SameRefinedValue(MvivfScanOpaque so, int a, int b)
{
	uint32		da = so->cands[a].docid;
	uint32		db = so->cands[b].docid;

	return so->ciScore != NULL &&
		so->cands[a].score == so->cands[b].score &&
		so->ciScore[da] == so->ciScore[db] &&
		so->docs[da].ntokens == so->docs[db].ntokens;
}

/*
 * ExpectedOver
 *		The expected number of the documents cands[from .. to-1] whose error
 *		exceeds their gap to the row at distance top, under the model s
 *		with a t tail of df degrees of freedom: sum over them of P(error >
 *		gap).  gap(r) is the candidate's approximate distance less top when
 *		ci is NULL, else its centroid score's distance (-ci[doc]) less top.
 *		The candidates are in increasing order of that distance, so the
 *		terms decrease: the loop ends once the rest cannot add a thousandth
 *		of the tolerance.  A NaN
 *		gives infinity (such a document cannot be ruled out).  A refined
 *		document that looks like a copy of the one before it counts once
 *		with it (SameRefinedValue).
 */
static double
ExpectedOver(MvivfScanOpaque so, int from, int to, const double *ci,
			 double top, const MvivfErrorStats * s, int df)
{
	double		sum = 0;
	int			r;

	for (r = from; r < to; r++)
	{
		double		dist = ci ? -ci[so->cands[r].docid] : so->cands[r].score;
		double		p;

		if (isnan(dist))
			return get_float8_infinity();
		if (ci == NULL && r > from && SameRefinedValue(so, r - 1, r))
			continue;
		p = TailProbT(dist - top, s->mean, s->sd, df);
		sum += p;
		if (p * (to - r) < 1e-3 * mvivf_miss_tolerance)
			break;
	}
	return sum;
}

/*
 * MvivfFitGain
 *		Fit the gains of a random sample of unrefined documents as a line in
 *		their centroid interaction x (least squares).
 *
 * The gain of a page falls as its centroid interaction rises: what the
 * centroids already match, the residuals cannot add again.  On the "loose"
 * and "own" shapes of bench/index at 10,000 pages the slope was -0.2 to
 * -0.8, and the gains spread 0.1-0.3 about the line against 0.25-0.5 about
 * their mean: modelled by their mean and spread alone, the unrefined
 * documents at the head of the centroid order, whose gains are the
 * smallest, seemed able to beat rows they could not, and a scan refined
 * thousands of them.  The slope is kept at -1 or more, so that a
 * document's predicted score never falls as its centroid interaction
 * rises (a bound in place of the centroid interaction then stays
 * optimistic, and the documents' chances fall down the centroid order).
 */
void
MvivfFitGain(const double *x, const double *gain, int n, MvivfGainFit * fit)
{
	double		sxy = 0;
	double		ss = 0;
	int			i;

	memset(fit, 0, sizeof(MvivfGainFit));
	fit->n = n;
	if (n < 3)
		return;
	fit->minX = fit->maxX = x[0];
	for (i = 0; i < n; i++)
	{
		fit->meanX += x[i] / n;
		fit->meanGain += gain[i] / n;
		fit->minX = Min(fit->minX, x[i]);
		fit->maxX = Max(fit->maxX, x[i]);
	}
	for (i = 0; i < n; i++)
	{
		fit->sxx += (x[i] - fit->meanX) * (x[i] - fit->meanX);
		sxy += (x[i] - fit->meanX) * (gain[i] - fit->meanGain);
	}
	fit->slope = fit->sxx > 0 ? Max(-1.0, sxy / fit->sxx) : 0;
	fit->residMax = -get_float8_infinity();
	for (i = 0; i < n; i++)
	{
		double		r = gain[i] - fit->meanGain - fit->slope * (x[i] - fit->meanX);

		ss += r * r;
		fit->residMax = Max(fit->residMax, r);
	}
	fit->residSd = sqrt(ss / (n - 2));
}

/*
 * GainAt
 *		The normal model of the gain of an unrefined document of centroid
 *		interaction x: the line's value and the spread of a prediction from
 *		it (which widens away from the sample's mean x).  Outside the x the
 *		sample saw, the line is not trusted further than it leans the safe
 *		way: the gain is the larger of the line's and its value at the
 *		nearest end, with the spread at that end.
 */
static void
GainAt(const MvivfGainFit * fit, double x, double *mean, double *sd)
{
	double		xc = Min(Max(x, fit->minX), fit->maxX);
	double		line = fit->meanGain + fit->slope * (x - fit->meanX);
	double		atEnd = fit->meanGain + fit->slope * (xc - fit->meanX);
	double		lev = fit->sxx > 0 ? (xc - fit->meanX) * (xc - fit->meanX) / fit->sxx : 0;

	*mean = Max(line, atEnd);
	*sd = fit->residSd * sqrt(1 + 1.0 / fit->n + lev);
}

/*
 * MvivfUnrefinedErrStats
 *		The model of the error of an unrefined document's quantized MaxSim:
 *		that of the gain sample's documents once measured (RerankGainSample),
 *		else that of the refined documents (errStats).
 *
 * The refined documents are those the centroid interaction ranks best,
 * whose quantized MaxSim errs otherwise: on 10,000 pages of the "own" shape
 * of bench/index their errors had a mean of -0.74 and a spread of 0.69
 * (the quantized scores of good pages overrate them), those of the random
 * unrefined documents +0.08 and 0.085.  Modelled with the former, the
 * unrefined documents seemed able to beat rows they could not, and a scan
 * refined thousands of them.  The gains are drawn from the unrefined
 * documents themselves, and so are these errors.
 */
const MvivfErrorStats *
MvivfUnrefinedErrStats(MvivfScanOpaque so)
{
	if (so->gainErrMeasured && so->gainErrStats.n >= 2)
		return &so->gainErrStats;
	return &so->errStats;
}

/*
 * ExpectedOverUnrefined
 *		ExpectedOver for the unrefined documents cands[from .. to-1] (in
 *		order of centroid score): P(gain + error > their centroid distance
 *		less top), the gain modelled by the fitted line at each document's
 *		centroid score (GainAt), the error by e, the two independent, with
 *		the tail of a t variable of the gain sample's degrees of freedom.
 */
static double
ExpectedOverUnrefined(MvivfScanOpaque so, int from, int to, double top,
					  const MvivfErrorStats * e)
{
	const MvivfGainFit *fit = &so->gainFit;
	double		sum = 0;
	int			r;

	for (r = from; r < to; r++)
	{
		double		ci = so->ciScore[so->cands[r].docid];
		double		gmean;
		double		gsd;
		double		p;

		if (isnan(ci))
			return get_float8_infinity();
		GainAt(fit, ci, &gmean, &gsd);
		p = TailProbT(-ci - top, gmean + e->mean, sqrt(gsd * gsd + e->sd * e->sd),
					  fit->n - 2);
		sum += p;
		if (p * (to - r) < 1e-3 * mvivf_miss_tolerance)
			break;
	}
	return sum;
}

/*
 * SumOfErrors
 *		The model of the sum of two independent errors of the models a and
 *		b: the sum of their means and of their variances, the sum of their
 *		largest values, the smaller sample's size.
 */
static void
SumOfErrors(const MvivfErrorStats * a, const MvivfErrorStats * b,
			MvivfErrorStats * sum)
{
	sum->n = Min(a->n, b->n);
	sum->mean = a->mean + b->mean;
	sum->sd = sqrt(a->sd * a->sd + b->sd * b->sd);
	sum->max = a->max + b->max;
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
 * interaction; and, for as many of the next ones in centroid order as the
 * edge sample holds, the gain is also modelled by the gains of the last
 * documents refined in that order (their neighbours there; the larger
 * expectation counts).  The random sample alone misses what happens at the
 * head of the centroid order: on 10,000 pages of the "own" shape with
 * mvivf.refine = 128, pages just past the refined ones had gains of +0.7 to
 * +1.0 where the line through the random sample predicted -2.2 +- 0.5 (their
 * neighbours': -1.8 +- 0.9, up to +0.8), and the scan returned rows such
 * pages beat (recall 0.963).  The expectation is summed over the documents
 * themselves, not bounded by their number times the probability of the
 * nearest one, so documents far from the row count for what they are: next
 * to nothing.
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
			eRefined = ExpectedOver(so, so->nextCand, refinedEnd, NULL, top, head,
									MVIVF_ERROR_TAIL_DF);
		if (sample->n >= 2)
			eRefined = Max(eRefined, ExpectedOver(so, so->nextCand, refinedEnd, NULL, top,
												  sample, MVIVF_ERROR_TAIL_DF));
		if (head->n < 2 && sample->n < 2)
			eRefined = float8_cmp_internal(top, so->cands[so->nextCand].score - so->errMargin) <= 0 ?
				0 : get_float8_infinity();
	}

	/* unrefined documents: cands[nrefined ..], by centroid interaction */
	if (unrefinedFrom < so->ncands)
	{
		const MvivfErrorStats *g = &so->gainStats;
		const MvivfErrorStats *e = MvivfUnrefinedErrStats(so);
		double		best = -so->ciScore[so->cands[unrefinedFrom].docid];

		if (g->n >= 2 && e->n >= 2)
		{
			MvivfErrorStats sum;
			double		gainMax = Max(0, g->max);

			if (so->gainFit.n >= 3)
			{
				double		gmean;
				double		gsd;

				GainAt(&so->gainFit, -best, &gmean, &gsd);
				gainMax = Max(0, gmean + so->gainFit.residMax);
			}
			/* nor within the largest gain of its neighbours (edge sample) */
			if (so->edgeStats.n >= 2)
				gainMax = Max(gainMax, so->edgeStats.max);
			if (float8_cmp_internal(top, best - gainMax - Max(0, e->max)) > 0)
			{
				*unrefinedFirst = true;
				return false;
			}
			if (so->gainFit.n >= 3)
				eUnrefined = ExpectedOverUnrefined(so, unrefinedFrom, so->ncands, top, e);
			else
			{
				SumOfErrors(g, e, &sum);
				eUnrefined = ExpectedOver(so, unrefinedFrom, so->ncands, so->ciScore, top,
										  &sum, MVIVF_ERROR_TAIL_DF);
			}
			if (so->edgeStats.n >= 2)
			{
				SumOfErrors(&so->edgeStats, e, &sum);
				eUnrefined = Max(eUnrefined,
								 ExpectedOver(so, unrefinedFrom,
											  Min(so->ncands, unrefinedFrom + so->edgeStats.n),
											  so->ciScore, top, &sum,
											  Min(MVIVF_EDGE_TAIL_DF, so->edgeStats.n - 1)));
			}
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
