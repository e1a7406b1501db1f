/*
 * test_maxsim_compact.c
 *	  The kernels of the compact multivector formats against their oracles:
 *	  - half conversion: every one of the 63,488 finite halves survives
 *	    half -> double -> half; midpoints between neighbours round to the
 *	    even one and anything off a midpoint to the nearer one; the overflow
 *	    threshold (65520) and the underflow to zero; every widening kernel
 *	    gives the scalar decoder's bits for all 65,536 patterns;
 *	  - sign bits -> +-1 against bit-by-bit extraction;
 *	  - hamming MaxSim: every kernel gives the scalar oracle's value over
 *	    shapes that hit the vector tails (1-3 trailing rows, partial query
 *	    blocks, padding bits), and the oracle equals the float32 kernel on
 *	    the +-1 expansion (the documented definition).
 *
 * The kernel files are compiled in here.
 */
#include "../../src/engine/maxsim_kernels.c"
#include "../../src/engine/maxsim_compact.c"

#include <stdio.h>
#include <stdlib.h>

#include "test_rng.h"

static int	failed = 0;

#define CHECK(cond, ...) \
	do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); failed++; } } while (0)

/* Random packed rows with zero padding bits. */
static void
RandomBits(uint8_t *bits, int nvec, int dim)
{
	size_t		rb = MVC_ROW_BYTES(dim);
	int			i;
	size_t		b;

	for (i = 0; i < nvec; i++)
	{
		for (b = 0; b < rb; b++)
			bits[i * rb + b] = (uint8_t) Next();
		if (dim % 8)
			bits[i * rb + rb - 1] &= (uint8_t) (0xff << (8 - dim % 8));
	}
}

static void
TestHalf(void)
{
	uint32_t	u;
	uint16_t	h;
	uint16_t   *all = malloc(65536 * sizeof(uint16_t));
	float	   *ref = malloc(65536 * sizeof(float));
	float	   *got = malloc(65536 * sizeof(float));
	int			kind;
	int			roundtrips = 0;

	for (u = 0; u < 65536; u++)
	{
		float		f = mv_half_to_float((uint16_t) u);

		all[u] = (uint16_t) u;
		if (!mv_half_is_finite((uint16_t) u))
		{
			CHECK(isinf(f) || isnan(f), "half %04x should be non-finite", u);
			CHECK(mv_double_to_half(f, &h) == -1, "non-finite %04x accepted", u);
			continue;
		}
		CHECK(mv_double_to_half(f, &h) == 0 && h == u,
			  "round trip of half %04x gives %04x", u, h);
		roundtrips++;
		/* the midpoint to the next larger magnitude, and just off it */
		if ((u & 0x7fff) < 0x7bff)
		{
			double		a = fabs((double) f);
			double		b = fabs((double) mv_half_to_float((uint16_t) ((u & 0x7fff) + 1)));
			double		mid = (a + b) / 2;
			uint16_t	even = ((u & 1) == 0) ? (uint16_t) (u & 0x7fff) : (uint16_t) ((u & 0x7fff) + 1);

			CHECK(mv_double_to_half(mid, &h) == 0 && h == even,
				  "midpoint above %04x gives %04x, not %04x", u, h, even);
			CHECK(mv_double_to_half(nextafter(mid, 0), &h) == 0 && h == (u & 0x7fff),
				  "below the midpoint above %04x gives %04x", u, h);
			CHECK(mv_double_to_half(nextafter(mid, 1e9), &h) == 0 && h == (u & 0x7fff) + 1,
				  "above the midpoint above %04x gives %04x", u, h);
		}
	}
	CHECK(roundtrips == 63488, "%d finite halves", roundtrips);
	CHECK(mv_double_to_half(65519.99, &h) == 0 && h == 0x7bff, "65519.99 -> %04x", h);
	CHECK(mv_double_to_half(65520.0, &h) == 1, "65520 must overflow");
	CHECK(mv_double_to_half(-1e6, &h) == 1, "-1e6 must overflow");
	CHECK(mv_double_to_half(2.98e-8, &h) == 0 && h == 0, "2.98e-8 -> %04x", h);
	CHECK(mv_double_to_half(-2.99e-8, &h) == 0 && h == 0x8001, "-2.99e-8 -> %04x", h);
	CHECK(mv_double_to_half(0.1, &h) == 0 && h == 0x2e66, "0.1 -> %04x", h);

	HalfToFloatScalar(all, 65536, ref);
	for (kind = MVK_AVX2; kind <= MVK_AVX512; kind++)
	{
		size_t		n;

		if (!mvk_available((MvkKind) kind))
			continue;
		/* odd lengths and offsets reach the scalar tails */
		for (n = 65536; n > 65500; n -= 13)
		{
			memset(got, 0, 65536 * sizeof(float));
			mvk_half_to_float((MvkKind) kind, all + (65536 - n), n, got);
			CHECK(memcmp(got, ref + (65536 - n), n * sizeof(float)) == 0,
				  "%s widening differs (n %zu)", mvk_name((MvkKind) kind), n);
		}
	}
	free(all);
	free(ref);
	free(got);
}

static void
TestHamming(void)
{
	static const int dims[] = {1, 7, 8, 9, 63, 64, 65, 100, 127, 128, 129, 192, 200, 256, 4096};
	static const int ndocs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 64, 101};
	static const int nqs[] = {1, 2, 7, 8, 9, 16, 17, 24, 33, 64};
	size_t		di;
	size_t		ni;
	int			compared = 0;

	for (di = 0; di < sizeof(dims) / sizeof(dims[0]); di++)
	{
		int			dim = dims[di];

		for (ni = 0; ni < sizeof(ndocs) / sizeof(ndocs[0]); ni++)
		{
			int			ndoc = ndocs[ni];
			int			nq = nqs[(di + ni) % (sizeof(nqs) / sizeof(nqs[0]))];
			size_t		rb = MVC_ROW_BYTES(dim);
			uint8_t    *doc = malloc(ndoc * rb);
			uint8_t    *q = malloc(nq * rb);
			float	   *fd = malloc(sizeof(float) * ndoc * dim);
			float	   *fq = malloc(sizeof(float) * nq * dim);
			float	   *scratch = malloc(sizeof(float) * mvk_scratch_floats(dim));
			double		oracle;
			double		viafloat;
			int			i;
			int			k;
			int			kind;

			RandomBits(doc, ndoc, dim);
			RandomBits(q, nq, dim);
			/* a query row equal to a doc row: the maximum D is reached */
			if (ni % 3 == 0)
				memcpy(q, doc + (ndoc - 1) * rb, rb);
			mvk_bits_to_pm1(doc, ndoc, dim, fd);
			mvk_bits_to_pm1(q, nq, dim, fq);
			for (i = 0; i < ndoc; i++)
				for (k = 0; k < dim; k++)
					CHECK(fd[i * dim + k] == (((doc[i * rb + k / 8] >> (7 - k % 8)) & 1) ? 1.0f : -1.0f),
						  "bits_to_pm1 row %d dim %d", i, k);
			oracle = mvk_hamming_maxsim(MVK_SCALAR, doc, ndoc, q, nq, dim);
			viafloat = mvk_maxsim(MVK_SCALAR, fd, ndoc, fq, nq, dim, scratch);
			CHECK(oracle == viafloat, "dim %d ndoc %d nq %d: hamming %.17g, float on +-1 %.17g",
				  dim, ndoc, nq, oracle, viafloat);
			for (kind = MVK_AVX2; kind <= MVK_AVX512; kind++)
			{
				double		got;

				if (!mvk_available((MvkKind) kind))
					continue;
				got = mvk_hamming_maxsim((MvkKind) kind, doc, ndoc, q, nq, dim);
				compared++;
				CHECK(got == oracle, "%s (%s) dim %d ndoc %d nq %d: %.17g, oracle %.17g",
					  mvk_name((MvkKind) kind), mvk_hamming_name((MvkKind) kind, dim),
					  dim, ndoc, nq, got, oracle);
			}
			free(doc);
			free(q);
			free(fd);
			free(fq);
			free(scratch);
		}
	}
	printf("hamming kernel at D = 128: %s; %d SIMD results compared with the oracle\n",
		   mvk_hamming_name(mvk_best(), 128), compared);
}

/*
 * TestHalfKernel
 *		mvk_maxsim_half of every kernel gives the float kernel's bits on the
 *		widened document, over shapes that cross the widening chunks (dim
 *		128: 64 rows a chunk; dim 300: 27) and query blocks, and with values
 *		whose products overflow to +-Infinity and NaN.
 */
static void
TestHalfKernel(void)
{
	static const int dims[] = {1, 5, 16, 17, 128, 300};
	static const int ndocs[] = {1, 7, 63, 64, 65, 130, 1030};
	static const int nqs[] = {1, 9, 24, 32, 64, 70};
	int			compared = 0;
	size_t		di;
	size_t		ni;

	for (di = 0; di < sizeof(dims) / sizeof(dims[0]); di++)
		for (ni = 0; ni < sizeof(ndocs) / sizeof(ndocs[0]); ni++)
		{
			int			dim = dims[di];
			int			ndoc = ndocs[ni];
			int			nq = nqs[(di + ni) % (sizeof(nqs) / sizeof(nqs[0]))];
			uint16_t   *doc = malloc(sizeof(uint16_t) * ndoc * dim);
			float	   *wide = malloc(sizeof(float) * ndoc * dim);
			float	   *w2 = malloc(sizeof(float) * ndoc * dim);
			float	   *q = malloc(sizeof(float) * nq * dim);
			float	   *scratch = malloc(sizeof(float) * mvk_scratch_floats(dim));
			double		ref;
			int			k;
			int			kind;

			for (k = 0; k < ndoc * dim; k++)
			{
				double		x = ((double) (Next() >> 11) / 9007199254740992.0) * 2 - 1;
				uint16_t	h;

				if (mv_double_to_half(x, &h) != 0)
					abort();
				doc[k] = h;
			}
			for (k = 0; k < nq * dim; k++)
				q[k] = (float) (((double) (Next() >> 11) / 9007199254740992.0) * 2 - 1);
			if (ni % 3 == 1)
			{
				doc[0] = 0x7bff;	/* 65504 */
				q[0] = 3.4e38f;		/* overflow to +Infinity */
				if (dim > 1)
				{
					doc[1] = 0x7bff;
					q[1] = -3.4e38f;	/* Infinity - Infinity = NaN */
				}
			}
			HalfToFloatScalar(doc, (size_t) ndoc * dim, wide);
			ref = mvk_maxsim(MVK_SCALAR, wide, ndoc, q, nq, dim, scratch);
			for (kind = MVK_SCALAR; kind <= MVK_AVX512; kind++)
			{
				double		got;

				if (!mvk_available((MvkKind) kind))
					continue;
				got = mvk_maxsim_half((MvkKind) kind, doc, ndoc, q, nq, dim, scratch, w2);
				compared++;
				CHECK(memcmp(&got, &ref, sizeof(double)) == 0,
					  "half kernel %s dim %d ndoc %d nq %d: %.17g, float kernel %.17g",
					  mvk_name((MvkKind) kind), dim, ndoc, nq, got, ref);
			}
			free(doc);
			free(wide);
			free(w2);
			free(q);
			free(scratch);
		}
	printf("%d half-kernel results compared with the float kernel on the widened values\n", compared);
}

int
main(void)
{
	TestHalf();
	TestHalfKernel();
	TestHamming();
	printf("%d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
	return failed ? 1 : 0;
}
