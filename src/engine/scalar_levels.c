/*
 * scalar_levels.c
 *	  Levels and cutoffs of mvivf's scalar residual quantizer: equal-population
 *	  buckets refined by Lloyd-Max iterations (scalar_levels.h says why).
 */
#include <stdlib.h>

#include "scalar_levels.h"

/*
 * count_at_most
 *		How many of the n sorted values are at most x: those coded at or
 *		below the bucket whose upper cutoff is x.
 */
static int64_t
count_at_most(const float *sorted, int64_t n, float x)
{
	int64_t		lo = 0;
	int64_t		hi = n;

	while (lo < hi)
	{
		int64_t		mid = lo + (hi - lo) / 2;

		if (sorted[mid] <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * bucket_means
 *		Each level the mean of the sorted values its bucket codes (prefix[i]
 *		is the sum of the first i); an empty bucket keeps its level.
 */
static void
bucket_means(const float *sorted, const double *prefix, int64_t n, int nb,
			 const float *cutoffs, float *levels)
{
	int64_t		lo = 0;
	int			b;

	for (b = 0; b < nb; b++)
	{
		int64_t		hi = b < nb - 1 ? count_at_most(sorted, n, cutoffs[b]) : n;

		if (hi > lo)
			levels[b] = (float) ((prefix[hi] - prefix[lo]) / (hi - lo));
		lo = hi;
	}
}

bool
cp_scalar_levels(float *sorted, int64_t n, int nb, float *levels,
				 float *cutoffs)
{
	double	   *prefix;
	float		low;
	float		high;
	int64_t		i;
	int			iter;
	int			b;

	if (n == 0)
	{
		for (b = 0; b < nb; b++)
		{
			levels[b] = 0;
			if (b < nb - 1)
				cutoffs[b] = 0;
		}
		return true;
	}

	/* the thousandth at each end counts as the value where it starts */
	low = sorted[n / CP_LEVELS_CLIP];
	high = sorted[n - 1 - n / CP_LEVELS_CLIP];
	for (i = 0; i < n; i++)
		sorted[i] = sorted[i] < low ? low : sorted[i] > high ? high : sorted[i];

	/* equal-population buckets */
	for (b = 0; b < nb; b++)
	{
		int64_t		lo = n * b / nb;
		int64_t		hi = n * (b + 1) / nb;
		double		sum = 0;

		for (i = lo; i < hi; i++)
			sum += sorted[i];
		levels[b] = hi > lo ? (float) (sum / (hi - lo)) : 0;
		if (b < nb - 1)
			cutoffs[b] = sorted[hi < n ? hi : n - 1];
	}
	if (nb < 2)
		return true;

	/* Lloyd-Max, with the bucket sums from prefix sums */
	prefix = malloc(sizeof(double) * (size_t) (n + 1));
	if (prefix == NULL)
		return false;
	prefix[0] = 0;
	for (i = 0; i < n; i++)
		prefix[i + 1] = prefix[i] + sorted[i];
	for (iter = 0;; iter++)
	{
		bool		moved = false;

		bucket_means(sorted, prefix, n, nb, cutoffs, levels);
		if (iter == CP_LEVELS_ITERATIONS)
			break;
		for (b = 0; b < nb - 1; b++)
		{
			float		mid = levels[b] + (levels[b + 1] - levels[b]) / 2;

			/* cutoffs stay ordered, as the encoders require */
			if (b > 0 && mid < cutoffs[b - 1])
				mid = cutoffs[b - 1];
			if (mid != cutoffs[b])
			{
				cutoffs[b] = mid;
				moved = true;
			}
		}
		if (!moved)
			break;
	}
	free(prefix);
	return true;
}
