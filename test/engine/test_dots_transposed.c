/*
 * test_dots_transposed.c
 *	  cp_dots_transposed (src/engine/dots_transposed.c): every form the CPU
 *	  has gives the scalar fmaf chain's bits, for 1 to 32 rows, vector counts
 *	  that leave short last steps, a sub-range [l0, l1), and leaves the lanes
 *	  past the rows alone; the scalar form itself against double-precision
 *	  dot products.
 */
#include <math.h>
#include <string.h>

#include "dots_transposed.h"
#include "test_rng.h"
#include "test_util.h"

static const char *const form_names[] = {"scalar", "avx2", "avx512"};

/* A value no dot product here can give: the lanes past nr must keep it. */
#define SENTINEL 12345.0f

static void
check_shape(int nlists, int dim, int nr, int l0, int l1)
{
	int			ld = 40;
	float	   *vecs = malloc(sizeof(float) * (size_t) nlists * dim);
	float	   *rows = malloc(sizeof(float) * (size_t) nr * dim);
	float	   *qT = malloc(sizeof(float) * (size_t) dim * CP_DOTS_ROWS);
	float	   *want = malloc(sizeof(float) * (size_t) nlists * ld);
	float	   *got = malloc(sizeof(float) * (size_t) nlists * ld);
	int			i;
	int			f;
	double		worst = 0;

	for (i = 0; i < nlists * dim; i++)
		vecs[i] = (float) (Gauss() * 0.1);
	for (i = 0; i < nr * dim; i++)
		rows[i] = (float) (Gauss() * 0.1);
	cp_dots_transpose_rows(rows, nr, dim, qT);

	for (i = 0; i < nlists * ld; i++)
		want[i] = SENTINEL;
	cp_dots_transposed(CP_DOTS_SCALAR, vecs, l0, l1, dim, qT, nr, want, ld);

	/* the oracle against double precision, and the untouched entries */
	for (i = 0; i < nlists; i++)
	{
		int			r;

		for (r = 0; r < ld; r++)
		{
			float		v = want[(size_t) i * ld + r];

			if (i < l0 || i >= l1 || r >= nr)
				CHECK(v == SENTINEL, "scalar n=%d nr=%d: entry %d,%d written", nlists, nr, i, r);
			else
			{
				double		exact = 0;
				int			d;

				for (d = 0; d < dim; d++)
					exact += (double) vecs[(size_t) i * dim + d] * rows[(size_t) r * dim + d];
				if (fabs(v - exact) > worst)
					worst = fabs(v - exact);
			}
		}
	}
	CHECK(worst < 1e-5, "scalar n=%d dim=%d nr=%d: %g from the double dot products",
		  nlists, dim, nr, worst);

	for (f = CP_DOTS_AVX2; f <= CP_DOTS_AVX512; f++)
	{
		if (!cp_dots_form_available((CpDotsForm) f))
			continue;
		for (i = 0; i < nlists * ld; i++)
			got[i] = SENTINEL;
		cp_dots_transposed((CpDotsForm) f, vecs, l0, l1, dim, qT, nr, got, ld);
		CHECK(memcmp(got, want, sizeof(float) * (size_t) nlists * ld) == 0,
			  "%s n=%d [%d,%d) dim=%d nr=%d: other bits than the scalar chain",
			  form_names[f], nlists, l0, l1, dim, nr);
	}
	free(vecs);
	free(rows);
	free(qT);
	free(want);
	free(got);
}

int
main(void)
{
	int			nr;
	int			n;
	int			f;

	for (f = CP_DOTS_AVX2; f <= CP_DOTS_AVX512; f++)
		printf("form %s: %s\n", form_names[f],
			   cp_dots_form_available((CpDotsForm) f) ? "checked" : "not on this CPU");
	for (nr = 1; nr <= CP_DOTS_ROWS; nr++)
		check_shape(13, 128, nr, 0, 13);
	for (n = 1; n <= 9; n++)
		check_shape(n, 128, 24, 0, n);
	check_shape(4099, 128, 24, 0, 4099);
	check_shape(50, 96, 17, 7, 42);
	check_shape(50, 3, 32, 1, 50);
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
