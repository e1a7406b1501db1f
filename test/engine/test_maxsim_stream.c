/*
 * test_maxsim_stream.c
 *	  The streaming MaxSim (mvk_stream_*, mvk_hamming_minima) against the
 *	  whole-document kernels: a document fed in pieces of random sizes (one
 *	  row, register-block tails, whole multiples of 30 rows, everything at
 *	  once), to every query block in turn, gives the bits of mvk_maxsim on
 *	  the whole document for every kernel available here, over shapes that
 *	  hit lane padding and several query blocks and over extreme values
 *	  (+-0, overflow to +-Infinity, Infinity - Infinity = NaN); the hamming
 *	  minima fed in pieces give mvk_hamming_maxsim's integer.
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

/* The next piece size: 1 row, a few, a multiple of 30, or the rest. */
static int
PieceRows(int left)
{
	int			n;

	switch (Next() % 5)
	{
		case 0:
			n = 1;
			break;
		case 1:
			n = 1 + (int) (Next() % 7);
			break;
		case 2:
			n = 30 * (1 + (int) (Next() % 3));
			break;
		case 3:
			n = 1 + (int) (Next() % 97);
			break;
		default:
			n = left;
			break;
	}
	return n < left ? n : left;
}

/*
 * StreamInPieces
 *		Feed doc to a stream of the given kind in random pieces; every query
 *		block sees every piece, as src/maxsim_stream.c does.
 */
static double
StreamInPieces(MvkKind kind, const float *doc, int ndoc, const float *q, int nq,
			   int dim, float *scratch)
{
	MvkStream	st;
	int			i = 0;

	mvk_stream_begin(&st, kind, q, nq, dim, scratch);
	while (i < ndoc)
	{
		int			n = PieceRows(ndoc - i);
		int			b;

		for (b = 0; b < MVK_STREAM_BLOCKS(nq); b++)
			mvk_stream_rows(&st, b, doc + (size_t) i * dim, n);
		i += n;
	}
	return mvk_stream_end(&st);
}

static void
TestStream(void)
{
	static const int dims[] = {1, 3, 8, 17, 64, 128, 300};
	static const int nqs[] = {1, 5, 8, 9, 17, 24, 32, 40, 63, 64, 65, 70, 129};
	static const int ndocs[] = {1, 5, 29, 30, 31, 61, 130, 1030};
	int			compared = 0;
	size_t		di;
	size_t		qi;

	for (di = 0; di < sizeof(dims) / sizeof(dims[0]); di++)
		for (qi = 0; qi < sizeof(nqs) / sizeof(nqs[0]); qi++)
		{
			int			dim = dims[di];
			int			nq = nqs[qi];
			int			ndoc = ndocs[(di * 3 + qi) % (sizeof(ndocs) / sizeof(ndocs[0]))];
			float	   *doc = malloc(sizeof(float) * ndoc * dim);
			float	   *q = malloc(sizeof(float) * nq * dim);
			float	   *scratch = malloc(sizeof(float) * mvk_scratch_floats(dim));
			float	   *sscratch = malloc(sizeof(float) * mvk_stream_scratch_floats(nq, dim));
			double		ref;
			int			n;
			int			kind;

			for (n = 0; n < ndoc * dim; n++)
				doc[n] = (float) (Uniform() * 2 - 1);
			for (n = 0; n < nq * dim; n++)
				q[n] = (float) (Uniform() * 2 - 1);
			if (qi % 4 == 1)
			{
				/* a +-0 maximum, an overflow and a NaN in the first rows */
				doc[0] = 3.4028235e38f;
				q[0] = (qi % 2) ? 3.4028235e38f : -3.4028235e38f;
				if (dim > 1)
				{
					doc[1] = 3.4028235e38f;
					q[1] = -q[0];
				}
				for (n = 0; n < dim && nq > 1; n++)
					q[dim + n] = 0.0f;
				doc[ndoc * dim - 1] = -0.0f;
			}
			ref = mvk_maxsim(MVK_SCALAR, doc, ndoc, q, nq, dim, scratch);
			for (kind = MVK_SCALAR; kind <= MVK_AVX512; kind++)
			{
				double		got;

				if (!mvk_available((MvkKind) kind))
					continue;
				got = StreamInPieces((MvkKind) kind, doc, ndoc, q, nq, dim, sscratch);
				compared++;
				CHECK(memcmp(&got, &ref, sizeof(double)) == 0,
					  "stream %s dim %d ndoc %d nq %d: %.17g, whole-document oracle %.17g",
					  mvk_name((MvkKind) kind), dim, ndoc, nq, got, ref);
				got = mvk_maxsim((MvkKind) kind, doc, ndoc, q, nq, dim, scratch);
				CHECK(memcmp(&got, &ref, sizeof(double)) == 0,
					  "kernel %s dim %d ndoc %d nq %d: %.17g, oracle %.17g",
					  mvk_name((MvkKind) kind), dim, ndoc, nq, got, ref);
			}
			free(doc);
			free(q);
			free(scratch);
			free(sscratch);
		}
	printf("%d streamed results compared with the whole-document oracle\n", compared);
}

static void
TestHammingPieces(void)
{
	static const int dims[] = {1, 9, 64, 121, 128, 192, 300};
	static const int nqs[] = {1, 7, 24, 70};
	int			compared = 0;
	size_t		di;
	size_t		qi;

	for (di = 0; di < sizeof(dims) / sizeof(dims[0]); di++)
		for (qi = 0; qi < sizeof(nqs) / sizeof(nqs[0]); qi++)
		{
			int			dim = dims[di];
			int			nq = nqs[qi];
			int			ndoc = 1 + (int) (Next() % 200);
			size_t		rb = MVC_ROW_BYTES(dim);
			uint8_t    *doc = malloc(rb * ndoc);
			uint8_t    *q = malloc(rb * nq);
			int32_t    *best = malloc(sizeof(int32_t) * nq);
			size_t		b;
			int			kind;

			for (b = 0; b < rb * ndoc; b++)
				doc[b] = (uint8_t) Next();
			for (b = 0; b < rb * nq; b++)
				q[b] = (uint8_t) Next();
			if (dim % 8)
			{
				for (b = rb - 1; b < rb * ndoc; b += rb)
					doc[b] &= (uint8_t) (0xff << (8 - dim % 8));
				for (b = rb - 1; b < rb * nq; b += rb)
					q[b] &= (uint8_t) (0xff << (8 - dim % 8));
			}
			for (kind = MVK_SCALAR; kind <= MVK_AVX512; kind++)
			{
				double		ref = mvk_hamming_maxsim(MVK_SCALAR, doc, ndoc, q, nq, dim);
				double		got;
				int			i = 0;
				int			j;

				if (!mvk_available((MvkKind) kind))
					continue;
				for (j = 0; j < nq; j++)
					best[j] = INT32_MAX;
				while (i < ndoc)
				{
					int			n = PieceRows(ndoc - i);

					mvk_hamming_minima((MvkKind) kind, doc + i * rb, n, q, nq, dim, best);
					i += n;
				}
				got = mvk_hamming_sum(best, nq, dim);
				compared++;
				CHECK(got == ref, "hamming pieces %s dim %d ndoc %d nq %d: %.17g, oracle %.17g",
					  mvk_name((MvkKind) kind), dim, ndoc, nq, got, ref);
				got = mvk_hamming_maxsim((MvkKind) kind, doc, ndoc, q, nq, dim);
				CHECK(got == ref, "hamming %s dim %d ndoc %d nq %d: %.17g, oracle %.17g",
					  mvk_name((MvkKind) kind), dim, ndoc, nq, got, ref);
			}
			free(doc);
			free(q);
			free(best);
		}
	printf("%d hamming results in pieces compared with the oracle\n", compared);
}

int
main(void)
{
	TestStream();
	TestHammingPieces();
	printf("%d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
	return failed ? 1 : 0;
}
