/*
 * mvdrift.c
 *	  Documents the index's quantizer represents far worse than those it was
 *	  built on ("drift"), found when they are inserted.
 *
 * The approximate distance of a document errs by q . (r - decoded r) per
 * matched token, r the token's residual from its centroid.  The scan's error
 * model (mvmargin.c) learns how large those errors are from documents it
 * reranks, most of them like the ones the index was built on.  Rows inserted
 * later that are unlike the build's (a new kind of page) sit far from every
 * centroid; their residuals are larger than the bucket weights can express,
 * their approximate distances are too far by more than the model expects,
 * and a scan may pass over one that belongs in the first rows (a test:
 * build on one corpus, insert another, a true 4th row skipped).
 *
 * So each document gets a drift score: the reconstruction error
 * |r - decoded r|^2 of its tokens, taken at the rank of its k-th worst token
 * (k = ntokens / 64, at least 1), so that a page needs more than a few badly
 * coded tokens to score high, and a page of many does whatever its other
 * tokens are.  The build records the 99th percentile of the scores of its
 * documents (those not already flagged for a row of large norm) times
 * MVIVF_DRIFT_MARGIN as the metapage's driftLimit.  An insert whose score
 * exceeds it is flagged MVIVF_DOC_RERANK | MVIVF_DOC_DRIFT and counted in
 * the metapage's nforced; every scan reranks it exactly before the others
 * (RerankForced, mvscan.c), as it does documents with a row of large norm,
 * and the cost estimate charges for that (mvcost.c).  A document like the
 * build's stays below the limit (see the margin below); a stream of unlike
 * documents makes scans slower, not wrong about them, and the insert says
 * so once per statement: REINDEX retrains the centroids on what the table
 * now holds.
 */
#include "postgres.h"

#include <math.h>

#include "mvivf.h"

/*
 * The limit is this factor times the 99th percentile of the build's scores
 * (a percentile, so that a few odd pages in the build do not switch the
 * check off).  Documents like the build's but inserted later score higher
 * than the build's own, whose tokens trained the centroids: up to 1.6 times
 * the build's largest score on the corpus shapes of bench/index (pages with
 * a topic the build never saw); pages of an unrelated corpus 2.3 times and
 * more.
 */
#define MVIVF_DRIFT_MARGIN		2.0f
#define MVIVF_DRIFT_PERCENTILE	0.99
/* a document's score is the error of its (ntokens / this)-th worst token */
#define MVIVF_DRIFT_TOKEN_SHARE	64

/*
 * TokenError
 *		|x - centroid - decoded residual|^2 of one token.
 */
static float
TokenError(const MvivfQuantizer * q, const float *x, uint32 list,
		   const uint8 *code)
{
	const float *c = q->centroids + (Size) list * q->dim;
	int			mask = (1 << q->nbits) - 1;
	float		err = 0;
	int			d;

	for (d = 0; d < q->dim; d++)
	{
		int			bit = d * q->nbits;
		int			bucket = (code[bit / 8] >> (bit % 8)) & mask;
		float		e = x[d] - c[d] - q->weights[bucket];

		err += e * e;
	}
	return err;
}

/*
 * KthLargest
 *		The k-th largest (k >= 1) of n values, which it reorders
 *		(quickselect, Hoare's partition).
 */
static float
KthLargest(float *v, int n, int k)
{
	int			lo = 0;
	int			hi = n - 1;
	int			target = k - 1;

	while (lo < hi)
	{
		float		pivot = v[lo + (hi - lo) / 2];
		int			i = lo;
		int			j = hi;

		while (i <= j)
		{
			while (v[i] > pivot)
				i++;
			while (v[j] < pivot)
				j--;
			if (i <= j)
			{
				float		t = v[i];

				v[i] = v[j];
				v[j] = t;
				i++;
				j--;
			}
		}
		if (target <= j)
			hi = j;
		else if (target >= i)
			lo = i;
		else
			break;
	}
	return v[target];
}

/*
 * MvivfDriftScore
 *		The drift score of one document of n tokens: rows as the index codes
 *		them (MvivfDatumGetValue), their centroid numbers and residual codes
 *		(MvivfAssignEncode).  NaN rows give NaN, which no limit passes.
 */
float
MvivfDriftScore(const MvivfQuantizer * q, const float *rows, int n,
				const uint32 *lists, const uint8 *codes)
{
	float	   *err;
	float		score;
	int			i;

	if (n <= 0)
		return 0;
	err = palloc(sizeof(float) * n);
	for (i = 0; i < n; i++)
	{
		err[i] = TokenError(q, rows + (Size) i * q->dim, lists[i],
							codes + (Size) i * q->codeSize);
		if (isnan(err[i]))
		{
			pfree(err);
			return NAN;
		}
	}
	score = KthLargest(err, n, Max(1, n / MVIVF_DRIFT_TOKEN_SHARE));
	pfree(err);
	return score;
}

/*
 * MvivfDriftLimit
 *		The metapage's driftLimit from the scores of the build's documents,
 *		which it sorts (0, no limit, when there are none).
 */
float
MvivfDriftLimit(float *scores, uint32 n)
{
	if (n == 0)
		return 0;
	qsort(scores, n, sizeof(float), MvivfFloatCmp);
	return scores[(uint32) (MVIVF_DRIFT_PERCENTILE * (n - 1))] *
		MVIVF_DRIFT_MARGIN;
}

