/*
 * test_maxsim_kernels.c
 *	  Every MaxSim kernel available on this CPU returns the scalar oracle's
 *	  bits, over shapes that hit every code path (vector tails, register
 *	  block tails, lane padding, several query blocks) and over extreme
 *	  values (+-0, overflow to +-Infinity, Infinity - Infinity = NaN); and
 *	  the scalar kernel agrees with a plain double-precision MaxSim within
 *	  the documented error bound.
 *
 * The kernels live in src/ (PostgreSQL-free); the file is compiled in here.
 */
#include "../../src/engine/maxsim_kernels.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_rng.h"

/* double-precision MaxSim and the error bound g * sum_j max_i sum_k |d q| */
static void
Reference(const float *doc, int ndoc, const float *q, int nq, int dim,
		  double *value, double *bound)
{
	double		u = 1.0 / 16777216.0;
	double		g = dim * u / (1 - dim * u);
	int			i;
	int			j;
	int			k;

	*value = 0.0;
	*bound = 0.0;
	for (j = 0; j < nq; j++)
	{
		double		best = -INFINITY;
		double		babs = 0.0;

		for (i = 0; i < ndoc; i++)
		{
			double		s = 0.0;
			double		a = 0.0;

			for (k = 0; k < dim; k++)
			{
				s += (double) doc[i * dim + k] * q[j * dim + k];
				a += fabs((double) doc[i * dim + k] * q[j * dim + k]);
			}
			if (s > best)
				best = s;
			if (a > babs)
				babs = a;
		}
		*value += best;
		*bound += g * babs;
	}
	*bound += 1e-300;
}

static int
SameBits(double a, double b)
{
	return memcmp(&a, &b, sizeof(double)) == 0;
}

int
main(void)
{
	static const int dims[] = {1, 2, 7, 8, 15, 16, 17, 31, 33, 64, 100, 128, 130, 300};
	static const int nqs[] = {1, 3, 8, 9, 16, 17, 20, 24, 25, 32, 33, 40, 48, 56, 63, 64, 65, 70, 129};
	int			maxdim = 300;
	float	   *doc = malloc(sizeof(float) * 41 * maxdim);
	float	   *q = malloc(sizeof(float) * 129 * maxdim);
	float	   *scratch = malloc(sizeof(float) * mvk_scratch_floats(maxdim));
	int			checked = 0;
	int			failed = 0;
	size_t		di;
	size_t		qi;
	int			kind;

	printf("kernels available:");
	for (kind = MVK_SCALAR; kind <= MVK_AVX512; kind++)
		if (mvk_available((MvkKind) kind))
			printf(" %s", mvk_name((MvkKind) kind));
	printf(" (best: %s)\n", mvk_name(mvk_best()));

	for (di = 0; di < sizeof(dims) / sizeof(dims[0]); di++)
	{
		int			dim = dims[di];

		for (qi = 0; qi < sizeof(nqs) / sizeof(nqs[0]); qi++)
		{
			int			nq = nqs[qi];
			int			ndoc = 1 + (int) (Uniform() * 40);
			int			n;
			double		ref;
			double		refval;
			double		bound;

			for (n = 0; n < ndoc * dim; n++)
				doc[n] = (float) (Uniform() * 2 - 1);
			for (n = 0; n < nq * dim; n++)
				q[n] = (float) (Uniform() * 2 - 1);
			/* some cases with extreme values */
			if (qi % 5 == 1)
			{
				doc[0] = 3.4028235e38f;
				q[0] = (qi % 2) ? 3.4028235e38f : -3.4028235e38f;
				doc[ndoc * dim - 1] = -0.0f;
				if (dim > 1)
				{
					doc[1] = 3.4028235e38f;
					q[1] = -q[0];	/* inf - inf = NaN in row 0 */
				}
			}

			ref = mvk_maxsim(MVK_SCALAR, doc, ndoc, q, nq, dim, scratch);
			if (qi % 5 != 1)
			{
				Reference(doc, ndoc, q, nq, dim, &refval, &bound);
				if (!(fabs(ref - refval) <= bound))
				{
					printf("FAIL scalar vs double: dim %d nq %d ndoc %d: %.17g vs %.17g (bound %.3g)\n",
						   dim, nq, ndoc, ref, refval, bound);
					failed++;
				}
			}
			for (kind = MVK_AVX2; kind <= MVK_AVX512; kind++)
			{
				double		got;

				if (!mvk_available((MvkKind) kind))
					continue;
				got = mvk_maxsim((MvkKind) kind, doc, ndoc, q, nq, dim, scratch);
				checked++;
				if (!SameBits(got, ref))
				{
					printf("FAIL %s: dim %d nq %d ndoc %d: %.17g, scalar %.17g\n",
						   mvk_name((MvkKind) kind), dim, nq, ndoc, got, ref);
					failed++;
				}
			}
		}
	}
	printf("%d SIMD results compared bit for bit with the scalar oracle\n", checked);
	printf("%d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
	free(doc);
	free(q);
	free(scratch);
	return failed ? 1 : 0;
}
