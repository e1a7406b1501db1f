/*
 * test_top_select.c
 *	  cp_top_select (src/engine/top_select.c) against the first k of a stable
 *	  descending sort: continuous scores, heavy ties, signed zeros, infinities,
 *	  NaNs, scores sharing long key prefixes, every k from 0 past n on short
 *	  inputs.
 */
#include <math.h>
#include <string.h>

#include "test_rng.h"
#include "test_util.h"
#include "top_select.h"

typedef struct
{
	float		score;
	int			index;
}			Entry;

/*
 * The rank order cp_top_select promises, in float terms: a NaN with its sign
 * bit clear above everything, one with it set below everything, the rest by
 * value (so -0 and +0 tie), equal scores by index.
 */
static int
NanClass(float f)
{
	if (!isnan(f))
		return 1;
	return signbit(f) ? 0 : 2;
}

static int
CompareEntries(const void *a, const void *b)
{
	const Entry *x = a;
	const Entry *y = b;
	int			cx = NanClass(x->score);
	int			cy = NanClass(y->score);

	if (cx != cy)
		return cx > cy ? -1 : 1;
	if (cx == 1 && x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->index - y->index;
}

static int
CompareInts(const void *a, const void *b)
{
	return *(const int *) a - *(const int *) b;
}

/* one case: cp_top_select against qsort of (score, index) */
static void
check_case(const char *what, const float *score, int n, int k)
{
	Entry	   *e = malloc(sizeof(Entry) * (n > 0 ? n : 1));
	int		   *want = malloc(sizeof(int) * (n > 0 ? n : 1));
	int		   *got = malloc(sizeof(int) * (n > 0 ? n : 1));
	uint32_t	work[CP_TOP_SELECT_WORK_BYTES / sizeof(uint32_t)];
	int			nwant = k < 0 ? 0 : (k < n ? k : n);
	int			ngot;
	int			i;
	int			same = 1;

	for (i = 0; i < n; i++)
	{
		e[i].score = score[i];
		e[i].index = i;
	}
	qsort(e, n, sizeof(Entry), CompareEntries);
	for (i = 0; i < nwant; i++)
		want[i] = e[i].index;
	qsort(want, nwant, sizeof(int), CompareInts);

	ngot = cp_top_select(score, n, k, got, work);
	CHECK(ngot == nwant, "%s n=%d k=%d: %d selected, want %d", what, n, k, ngot, nwant);
	for (i = 0; i < nwant && i < ngot; i++)
		if (got[i] != want[i])
			same = 0;
	CHECK(same, "%s n=%d k=%d: another set or order than the stable sort's", what, n, k);
	free(e);
	free(want);
	free(got);
}

int
main(void)
{
	int			n = 4096;
	float	   *s = malloc(sizeof(float) * n);
	int			i;
	int			k;

	/* centroid scores as a probe sees them */
	for (i = 0; i < n; i++)
		s[i] = (float) (0.3 * Gauss());
	for (k = 0; k <= 600; k += 37)
		check_case("gauss", s, n, k);
	check_case("gauss", s, n, 257);
	check_case("gauss", s, n, n - 1);
	check_case("gauss", s, n, n);
	check_case("gauss", s, n, n + 5);

	/* a few distinct values: the k-th best is one of hundreds of ties */
	for (i = 0; i < n; i++)
		s[i] = (float) ((int) (Uniform() * 7) - 3) * 0.25f;
	for (k = 1; k <= 4096; k += 311)
		check_case("ties", s, n, k);

	/* values one ulp apart: the keys differ only in their last digit */
	for (i = 0; i < n; i++)
		s[i] = nextafterf(1.0f, 2.0f) + (float) (Next() % 5) * 1.1920929e-7f;
	for (k = 1; k <= 4096; k += 509)
		check_case("ulps", s, n, k);

	/* signed zeros, infinities and NaNs among ordinary scores */
	for (i = 0; i < n; i++)
	{
		switch (Next() % 8)
		{
			case 0:
				s[i] = 0.0f;
				break;
			case 1:
				s[i] = -0.0f;
				break;
			case 2:
				s[i] = INFINITY;
				break;
			case 3:
				s[i] = -INFINITY;
				break;
			case 4:
				s[i] = NAN;
				break;
			case 5:
				s[i] = -NAN;
				break;
			default:
				s[i] = (float) Gauss();
		}
	}
	for (k = 1; k <= 4096; k += 127)
		check_case("special", s, n, k);

	/* short inputs, every k */
	for (n = 1; n <= 12; n++)
	{
		for (i = 0; i < n; i++)
			s[i] = (float) (Next() % 3);
		for (k = -1; k <= n + 1; k++)
			check_case("short", s, n, k);
	}

	free(s);
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
