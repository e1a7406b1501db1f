/*
 * test_scalar_levels.c
 *	  cp_scalar_levels (src/engine/scalar_levels.c) on samples of residual
 *	  coordinates: the levels it returns satisfy the Lloyd-Max conditions
 *	  (each cutoff midway between its levels, each level the mean of what
 *	  its bucket codes, both checked here by brute force on the clipped
 *	  sample), reconstruct with less squared error than equal-population
 *	  buckets (computed here independently) and much less where the sample
 *	  mixes two scales, leave rows of huge norm without a level of their own,
 *	  and handle degenerate samples (empty, one value, all equal).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scalar_levels.h"
#include "test_rng.h"
#include "test_util.h"

#define NVALS 200000

static int
CompareFloats(const void *a, const void *b)
{
	float		x = *(const float *) a;
	float		y = *(const float *) b;

	return (x > y) - (x < y);
}

/* bucket of v: the number of cutoffs below it, as the encoders count */
static int
Code(float v, const float *cutoffs, int nb)
{
	int			b = 0;
	int			j;

	for (j = 0; j < nb - 1; j++)
		b += v > cutoffs[j];
	return b;
}

/* mean squared reconstruction error of vals[0 .. n) */
static double
SquaredError(const float *vals, int64_t n, const float *levels,
			 const float *cutoffs, int nb)
{
	double		sum = 0;
	int64_t		i;

	for (i = 0; i < n; i++)
	{
		double		d = vals[i] - levels[Code(vals[i], cutoffs, nb)];

		sum += d * d;
	}
	return sum / n;
}

/* equal-population buckets of sorted vals, each level its bucket's mean */
static void
EqualPopulation(const float *sorted, int64_t n, int nb, float *levels,
				float *cutoffs)
{
	int			b;

	for (b = 0; b < nb; b++)
	{
		int64_t		lo = n * b / nb;
		int64_t		hi = n * (b + 1) / nb;
		double		sum = 0;
		int64_t		i;

		for (i = lo; i < hi; i++)
			sum += sorted[i];
		levels[b] = (float) (sum / (hi - lo));
		if (b < nb - 1)
			cutoffs[b] = sorted[hi];
	}
}

/*
 * A sample of n values: a share bgShare of N(0, bgSigma), the rest
 * N(0, sigma), plus nHuge values of +-huge; sorted.
 */
static float *
Sample(int64_t n, double bgShare, double bgSigma, double sigma, int nHuge,
	   double huge)
{
	float	   *v = malloc(sizeof(float) * n);
	int64_t		i;

	for (i = 0; i < n; i++)
		v[i] = (float) (Gauss() * (Uniform() < bgShare ? bgSigma : sigma));
	for (i = 0; i < nHuge && i < n; i++)
		v[i] = (float) (i % 2 ? huge : -huge);
	qsort(v, n, sizeof(float), CompareFloats);
	return v;
}

/*
 * Check the levels of cp_scalar_levels on a copy of sorted against the
 * Lloyd-Max conditions, and its error against equal-population buckets on
 * the clipped sample; returns the ratio of the two errors.
 */
static double
CheckLevels(const char *what, const float *sorted, int64_t n, int nb)
{
	float	   *vals = malloc(sizeof(float) * n);
	float		levels[16];
	float		cutoffs[16];
	float		eqLevels[16];
	float		eqCutoffs[16];
	double		sums[16] = {0};
	int64_t		counts[16] = {0};
	double		err;
	double		eqErr;
	int64_t		i;
	int			b;

	memcpy(vals, sorted, sizeof(float) * n);
	CHECK(cp_scalar_levels(vals, n, nb, levels, cutoffs), "%s nb=%d: out of memory", what, nb);
	for (i = 1; i < n; i++)
		if (vals[i] < vals[i - 1])
			break;
	CHECK(i == n, "%s nb=%d: the clipped sample is not sorted", what, nb);
	for (b = 0; b + 1 < nb - 1; b++)
		CHECK(cutoffs[b] <= cutoffs[b + 1], "%s nb=%d: cutoffs %d, %d out of order", what, nb, b, b + 1);
	for (b = 0; b < nb - 1; b++)
		CHECK(fabsf(cutoffs[b] - (levels[b] + levels[b + 1]) / 2) <= 1e-6f * (fabsf(levels[b]) + fabsf(levels[b + 1])) + 1e-12f,
			  "%s nb=%d: cutoff %d = %g, not midway between %g and %g",
			  what, nb, b, cutoffs[b], levels[b], levels[b + 1]);
	for (i = 0; i < n; i++)
	{
		b = Code(vals[i], cutoffs, nb);
		sums[b] += vals[i];
		counts[b]++;
	}
	for (b = 0; b < nb; b++)
		if (counts[b] > 0)
			CHECK(fabs(levels[b] - sums[b] / counts[b]) <= 1e-5 * fabs(sums[b] / counts[b]) + 1e-9,
				  "%s nb=%d: level %d = %g, its bucket's mean %g",
				  what, nb, b, levels[b], sums[b] / counts[b]);
	EqualPopulation(vals, n, nb, eqLevels, eqCutoffs);
	err = SquaredError(vals, n, levels, cutoffs, nb);
	eqErr = SquaredError(vals, n, eqLevels, eqCutoffs, nb);
	CHECK(err <= eqErr * (1 + 1e-6), "%s nb=%d: squared error %g above equal-population buckets' %g",
		  what, nb, err, eqErr);
	printf("%-26s nb=%2d: RMS error %.5f, equal-population buckets %.5f (%.2fx)\n",
		   what, nb, sqrt(err), sqrt(eqErr), sqrt(eqErr / err));
	free(vals);
	return sqrt(eqErr / err);
}

int
main(void)
{
	float	   *v;
	float		levels[16];
	float		cutoffs[16];
	double		gain;
	int			nb;
	int			b;

	/* one scale: Lloyd-Max still beats equal populations, most at 16 levels */
	v = Sample(NVALS, 0, 0, 0.05, 0, 0);
	for (nb = 2; nb <= 16; nb *= 2)
	{
		gain = CheckLevels("gaussian", v, NVALS, nb);
		if (nb == 16)
			CHECK(gain > 1.3, "gaussian nb=16: only %.2fx", gain);
	}
	free(v);

	/* pages: 60 % background residuals four times smaller than content's */
	v = Sample(NVALS, 0.6, 0.0125, 0.05, 0, 0);
	for (nb = 2; nb <= 16; nb *= 2)
	{
		gain = CheckLevels("60% background", v, NVALS, nb);
		if (nb >= 4)
			CHECK(gain > 1.25, "60%% background nb=%d: only %.2fx", nb, gain);
	}
	free(v);

	/* 0.05 % of huge values (rows of norm 20) take no level */
	v = Sample(NVALS, 0.4, 0.0125, 0.05, NVALS / 2000, 1.77);
	for (nb = 2; nb <= 16; nb *= 2)
	{
		float	   *c = malloc(sizeof(float) * NVALS);

		memcpy(c, v, sizeof(float) * NVALS);
		CheckLevels("huge rows", v, NVALS, nb);
		CHECK(cp_scalar_levels(c, NVALS, nb, levels, cutoffs), "huge rows: out of memory");
		for (b = 0; b < nb; b++)
			CHECK(fabsf(levels[b]) < 0.3f, "huge rows nb=%d: level %d = %g", nb, b, levels[b]);
		free(c);
	}
	free(v);

	/* degenerate samples */
	CHECK(cp_scalar_levels(NULL, 0, 4, levels, cutoffs), "empty: false");
	for (b = 0; b < 4; b++)
		CHECK(levels[b] == 0 && (b == 3 || cutoffs[b] == 0), "empty: level %d = %g", b, levels[b]);
	{
		float		one[1] = {0.25f};
		float		same[1000];

		CHECK(cp_scalar_levels(one, 1, 4, levels, cutoffs), "one value: false");
		for (b = 0; b < 4; b++)
			CHECK(levels[b] == 0.25f || levels[b] == 0, "one value: level %d = %g", b, levels[b]);
		CHECK(Code(0.25f, cutoffs, 4) >= 0 && levels[Code(0.25f, cutoffs, 4)] == 0.25f,
			  "one value: coded as %g", levels[Code(0.25f, cutoffs, 4)]);
		for (b = 0; b < 1000; b++)
			same[b] = -0.5f;
		CHECK(cp_scalar_levels(same, 1000, 16, levels, cutoffs), "all equal: false");
		for (b = 0; b < 15; b++)
			CHECK(b == 0 || cutoffs[b - 1] <= cutoffs[b], "all equal: cutoffs out of order");
		CHECK(levels[Code(-0.5f, cutoffs, 16)] == -0.5f, "all equal: coded as %g",
			  levels[Code(-0.5f, cutoffs, 16)]);
	}

	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
