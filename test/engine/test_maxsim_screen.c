/*
 * test_maxsim_screen.c
 *	  Screened exact MaxSim (src/engine/maxsim_screen.c) against the
 *	  unscreened kernels and the scalar oracle, bit for bit: the MaxSim
 *	  doubles (memcmp) and, for streams, every query row's running maximum
 *	  (memcmp of the float32 maxima, so +0 and -0 are told apart), for both
 *	  screening modes (one bf16 part, hi + lo parts), float32 and half
 *	  documents, whole documents and pieces of random sizes.
 *
 * Cases: random normalised rows over dims that are not multiples of 32
 * (1, 3, 96, 130) and row counts that are not multiples of 16; and
 * adversarial ones: duplicated rows, rows one ulp apart, maxima of +0 and
 * -0, a query row orthogonal to every row, flat pages (hundreds of rows
 * within 1e-3 of the maximum), rows with norms from 1e-20 to 1e15,
 * subnormal components, and rows or query rows above the norm limit (which
 * must turn screening off, with overflow to Infinity and NaN included).
 *
 * Finally the test checks that it can fail: with the bound's factor c set
 * to 0 the flat and near-tie cases must give at least one difference.
 * MVS_TEST_SCALE=f runs every case with c scaled by f (e.g. 0.125) and
 * reports the differences instead (expect failures for f < 1).
 *
 * Every case runs with each form of the screen this CPU has: AMX-BF16
 * tiles, and AVX512_BF16 dot products (also on AMX machines, through
 * mvs_prefer_vector).  Without either nothing is screened; the comparisons
 * still run (they then compare the fallback), and the test says that the
 * screened cases were skipped.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maxsim_kernels.h"
#include "maxsim_screen.h"
#include "mv_half.h"
#include "test_util.h"

#define TEST_RNG_SEED 0x2545F4914F6CDD1DULL
#include "test_rng.h"
static float scale_bound = 1.0f;	/* MVS_TEST_SCALE */
static long mismatches = 0;
static long cases = 0;

static void
RandomRow(float *x, int dim, double norm)
{
	double		ss = 0.0;
	int			k;

	for (k = 0; k < dim; k++)
	{
		x[k] = (float) Gauss();
		ss += (double) x[k] * x[k];
	}
	if (ss == 0.0)
		ss = 1.0;
	for (k = 0; k < dim; k++)
		x[k] = (float) (x[k] / sqrt(ss) * norm);
}

/* Round every value of x through half (so that float and half docs agree). */
static void
ToHalf(const float *x, size_t n, uint16_t *h, float *back)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		uint16_t	v;

		if (mv_double_to_half(x[i], &v) != 0)
			v = 0x7bff;			/* out of half range: largest half */
		h[i] = v;
		back[i] = mv_half_to_float(v);
	}
}

/*
 * StreamMaxima
 *		Feed doc to a stream in random pieces (at most one batch each),
 *		screened (sc != NULL) or not, and copy the running maxima into out.
 */
static double
StreamMaxima(MvkKind kind, MvsScreen *sc, const float *doc, const uint16_t *hdoc,
			 int ndoc, const float *q, int nq, int dim, float *scratch,
			 float *out)
{
	MvkStream	st;
	int			i = 0;
	int			batch = sc ? sc->batch : 64;

	mvk_stream_begin(&st, kind, q, nq, dim, scratch);
	if (sc)
		mvs_doc_begin(sc);
	while (i < ndoc)
	{
		int			n;

		switch (Next() % 4)
		{
			case 0:
				n = 1 + (int) (Next() % 5);
				break;
			case 1:
				n = 1 + (int) (Next() % batch);
				break;
			default:
				n = batch;
				break;
		}
		if (n > ndoc - i)
			n = ndoc - i;
		if (sc && hdoc)
			mvs_stream_half_rows(sc, &st, hdoc + (size_t) i * dim, n);
		else if (sc)
			mvs_stream_rows(sc, &st, doc + (size_t) i * dim, n);
		else
		{
			int			b;

			for (b = 0; b < MVK_STREAM_BLOCKS(nq); b++)
				mvk_stream_rows(&st, b, doc + (size_t) i * dim, n);
		}
		i += n;
	}
	memcpy(out, st.maxima, sizeof(float) * (size_t) MVK_STREAM_BLOCKS(nq) * MVK_QUERY_BLOCK);
	return mvk_stream_end(&st);
}

static int
SameBits(double a, double b)
{
	return memcmp(&a, &b, sizeof(double)) == 0;
}

/*
 * Compare
 *		Every screened form against the unscreened kernel and the oracle for
 *		one (doc, query); the doc's values are exactly halves when hdoc.
 *		Returns the number of differences (also counted in mismatches).
 */
static int
Compare(const char *what, const float *doc, const uint16_t *hdoc, int ndoc,
		const float *q, int nq, int dim)
{
	size_t		ssz = mvk_stream_scratch_floats(nq, dim);
	float	   *scratch = malloc(sizeof(float) * mvk_scratch_floats(dim));
	float	   *sscr = malloc(sizeof(float) * ssz);
	void	   *mvs = malloc(mvs_scratch_bytes(nq, dim));
	size_t		nm = (size_t) MVK_STREAM_BLOCKS(nq) * MVK_QUERY_BLOCK;
	float	   *m0 = malloc(sizeof(float) * nm);
	float	   *m1 = malloc(sizeof(float) * nm);
	MvkKind		kind = mvk_best();
	double		oracle = mvk_maxsim(MVK_SCALAR, doc, ndoc, q, nq, dim, NULL);
	double		plain = mvk_maxsim(kind, doc, ndoc, q, nq, dim, scratch);
	int			bad = 0;
	int			split;

	cases++;
	CHECK(SameBits(plain, oracle), "%s: kernel %.17g vs oracle %.17g", what, plain, oracle);
	for (split = 0; split <= 1; split++)
	{
		MvsScreen	sc;
		double		got;
		double		ref;

		mvs_begin(&sc, q, nq, dim, split, mvs);
		if (scale_bound != 1.0f)
			mvs_test_scale_bound(&sc, scale_bound);

		got = mvk_maxsim_screened(kind, &sc, doc, ndoc, q, nq, dim, sscr);
		bad += !SameBits(got, plain);
		if (!SameBits(got, plain) && scale_bound == 1.0f)
			CHECK(0, "%s split %d: screened %.17g vs %.17g", what, split, got, plain);
		got = mvk_maxsim_screened(MVK_SCALAR, &sc, doc, ndoc, q, nq, dim, sscr);
		bad += !SameBits(got, oracle);
		if (!SameBits(got, oracle) && scale_bound == 1.0f)
			CHECK(0, "%s split %d: screened scalar %.17g vs %.17g", what, split, got, oracle);

		/* streams in pieces: every running maximum, bit for bit */
		ref = StreamMaxima(kind, NULL, doc, NULL, ndoc, q, nq, dim, sscr, m0);
		got = StreamMaxima(kind, &sc, doc, NULL, ndoc, q, nq, dim, sscr, m1);
		bad += !SameBits(got, ref) || memcmp(m0, m1, sizeof(float) * nq) != 0;
		if ((!SameBits(got, ref) || memcmp(m0, m1, sizeof(float) * nq) != 0) && scale_bound == 1.0f)
			CHECK(0, "%s split %d: screened stream differs (%.17g vs %.17g)", what, split, got, ref);

		if (hdoc)
		{
			got = mvk_maxsim_half_screened(kind, &sc, hdoc, ndoc, q, nq, dim, sscr);
			bad += !SameBits(got, plain);
			if (!SameBits(got, plain) && scale_bound == 1.0f)
				CHECK(0, "%s split %d: screened half %.17g vs %.17g", what, split, got, plain);
			got = StreamMaxima(kind, &sc, NULL, hdoc, ndoc, q, nq, dim, sscr, m1);
			bad += !SameBits(got, ref) || memcmp(m0, m1, sizeof(float) * nq) != 0;
			if ((!SameBits(got, ref) || memcmp(m0, m1, sizeof(float) * nq) != 0) && scale_bound == 1.0f)
				CHECK(0, "%s split %d: screened half stream differs", what, split);
		}
	}
	mismatches += bad;
	free(scratch);
	free(sscr);
	free(mvs);
	free(m0);
	free(m1);
	return bad;
}

/* Compare a float doc, and (when its values fit) its half rounding too. */
static int
CompareBoth(const char *what, float *doc, int ndoc, const float *q, int nq,
			int dim, int with_half)
{
	int			bad;

	if (with_half)
	{
		size_t		n = (size_t) ndoc * dim;
		uint16_t   *h = malloc(sizeof(uint16_t) * n);

		ToHalf(doc, n, h, doc);
		bad = Compare(what, doc, h, ndoc, q, nq, dim);
		free(h);
	}
	else
		bad = Compare(what, doc, NULL, ndoc, q, nq, dim);
	return bad;
}

/* Random normalised pages over awkward shapes. */
static void
RandomCases(void)
{
	static const int dims[] = {1, 3, 96, 128, 130};
	static const int ndocs[] = {1, 15, 17, 100, 257, 1030};
	static const int nqs[] = {1, 5, 20, 33, 64, 70};
	int			t;

	for (t = 0; t < 60; t++)
	{
		int			dim = dims[Next() % 5];
		int			ndoc = ndocs[Next() % 6];
		int			nq = nqs[Next() % 6];
		float	   *doc = malloc(sizeof(float) * ndoc * dim);
		float	   *q = malloc(sizeof(float) * nq * dim);
		char		what[96];
		int			i;

		for (i = 0; i < ndoc; i++)
			RandomRow(doc + (size_t) i * dim, dim, 1.0);
		for (i = 0; i < nq; i++)
			RandomRow(q + (size_t) i * dim, dim, 1.0);
		snprintf(what, sizeof(what), "random dim %d ndoc %d nq %d", dim, ndoc, nq);
		CompareBoth(what, doc, ndoc, q, nq, dim, 1);
		free(doc);
		free(q);
	}
}

/*
 * NearTies
 *		Pages whose rows are copies of a few rows, or those copies changed in
 *		the last bit of one component, or flat (within 1e-3 of each other).
 *		Returns the differences seen (for the can-it-fail check).
 */
static int
NearTies(void)
{
	int			bad = 0;
	int			t;

	for (t = 0; t < 24; t++)
	{
		int			dim = t % 3 == 0 ? 130 : 128;
		int			ndoc = 300 + (int) (Next() % 200);
		int			nq = 1 + (int) (Next() % 40);
		float	   *doc = malloc(sizeof(float) * ndoc * dim);
		float	   *q = malloc(sizeof(float) * nq * dim);
		char		what[96];
		int			i;
		int			k;

		for (i = 0; i < nq; i++)
			RandomRow(q + (size_t) i * dim, dim, 1.0);
		for (i = 0; i < ndoc; i++)
		{
			float	   *row = doc + (size_t) i * dim;

			switch (t % 4)
			{
				case 0:			/* duplicates of 4 rows */
					if (i < 4)
						RandomRow(row, dim, 1.0);
					else
						memcpy(row, doc + (size_t) (Next() % 4) * dim, sizeof(float) * dim);
					break;
				case 1:			/* one ulp apart */
					if (i == 0)
						RandomRow(row, dim, 1.0);
					else
					{
						memcpy(row, doc, sizeof(float) * dim);
						k = (int) (Next() % dim);
						row[k] = nextafterf(row[k], Next() % 2 ? INFINITY : -INFINITY);
					}
					break;
				case 2:			/* flat: a query row's direction plus 1e-4 noise */
					for (k = 0; k < dim; k++)
						row[k] = q[k] + (float) (1e-4 * Gauss());
					break;
				default:		/* flat around a random direction, mixed with copies */
					if (i < 2)
						RandomRow(row, dim, 1.0);
					else if (i % 3 == 0)
						memcpy(row, doc + (size_t) (i % 2) * dim, sizeof(float) * dim);
					else
						for (k = 0; k < dim; k++)
							row[k] = doc[k] + (float) (3e-5 * Gauss());
					break;
			}
		}
		snprintf(what, sizeof(what), "near ties %d dim %d ndoc %d nq %d", t % 4, dim, ndoc, nq);
		bad += CompareBoth(what, doc, ndoc, q, nq, dim, 1);
		free(doc);
		free(q);
	}
	return bad;
}

/* Maxima of +0 and -0, and a query row orthogonal to everything. */
static void
SignedZeros(void)
{
	int			dim = 96;
	int			ndoc = 333;
	int			nq = 3;
	float	   *doc = malloc(sizeof(float) * ndoc * dim);
	float	   *q = calloc((size_t) nq * dim, sizeof(float));
	int			i;
	int			k;
	int			t;

	for (t = 0; t < 4; t++)
	{
		/* query row 0: tiny along dimension 0; row 1: along 1; row 2: random */
		memset(q, 0, sizeof(float) * nq * dim);
		q[0] = 0x1p-100f;
		q[dim + 1] = 1.0f;
		RandomRow(q + 2 * dim, dim, 1.0);
		for (i = 0; i < ndoc; i++)
		{
			float	   *row = doc + (size_t) i * dim;
			uint64_t	r = Next();

			/* dimension 1 zero: query row 1 gives +0 everywhere */
			for (k = 0; k < dim; k++)
				row[k] = (float) (-0.1 - Uniform());
			row[1] = r & 1 ? -0.0f : 0.0f;
			if (r % 7 == 0)
				row[0] = -1.0f; /* q0 . row = -2^-100 */
			else
			{
				/* -2^-100 * 2^-100 underflows to -0; others positive give +0 */
				row[0] = -0x1p-100f;
				if ((r >> 8) % 3 == 0)
					for (k = 2; k < dim; k++)
						row[k] = -row[k];
			}
		}
		CompareBoth("signed zeros", doc, ndoc, q, nq, dim, t % 2);
	}
	free(doc);
	free(q);
}

/* Rows of very different norms, and subnormal components. */
static void
Scales(void)
{
	int			t;

	for (t = 0; t < 12; t++)
	{
		int			dim = t % 2 ? 128 : 3;
		int			ndoc = 200 + (int) (Next() % 100);
		int			nq = 1 + (int) (Next() % 20);
		float	   *doc = malloc(sizeof(float) * ndoc * dim);
		float	   *q = malloc(sizeof(float) * nq * dim);
		char		what[96];
		int			i;
		int			k;

		for (i = 0; i < nq; i++)
			RandomRow(q + (size_t) i * dim, dim, t % 3 == 0 ? pow(10.0, -20.0 + 35.0 * Uniform()) : 1.0);
		for (i = 0; i < ndoc; i++)
		{
			float	   *row = doc + (size_t) i * dim;

			RandomRow(row, dim, pow(10.0, -20.0 + 35.0 * Uniform()));
			if (t >= 6)
				for (k = 0; k < dim; k++)
					if (Next() % 4 == 0)
						row[k] = (float) ((Next() % 2 ? 1 : -1) * ldexp(1.0 + Uniform(), -140 + (int) (Next() % 14)));
			if (t >= 9 && i % 5 == 0)
				for (k = 0; k < dim; k++)
					row[k] = (float) ((Next() % 2 ? 1 : -1) * ldexp(Uniform(), -126 - (int) (Next() % 20)));
		}
		snprintf(what, sizeof(what), "scales %d dim %d", t, dim);
		CompareBoth(what, doc, ndoc, q, nq, dim, 0);
		free(doc);
		free(q);
	}
}

/* Rows and query rows above the norm limit: screening must turn off. */
static void
AboveLimit(void)
{
	int			dim = 128;
	int			ndoc = 700;
	int			nq = 24;
	float	   *doc = malloc(sizeof(float) * ndoc * dim);
	float	   *q = malloc(sizeof(float) * nq * dim);
	void	   *mvs = malloc(mvs_scratch_bytes(nq, dim));
	float	   *sscr = malloc(sizeof(float) * mvk_stream_scratch_floats(nq, dim));
	int			t;
	int			i;
	int			k;

	for (t = 0; t < 5; t++)
	{
		MvsScreen	sc;

		for (i = 0; i < nq; i++)
			RandomRow(q + (size_t) i * dim, dim, 1.0);
		for (i = 0; i < ndoc; i++)
			RandomRow(doc + (size_t) i * dim, dim, 1.0);
		switch (t)
		{
			case 0:				/* one row at 1e19 in the middle */
				RandomRow(doc + (size_t) 400 * dim, dim, 1e19);
				break;
			case 1:				/* products overflow to Infinity, then NaN */
				for (k = 0; k < dim; k++)
					doc[(size_t) 300 * dim + k] = k % 2 ? 3e38f : -3e38f;
				for (k = 0; k < dim; k++)
					doc[(size_t) 301 * dim + k] = 1e30f;
				break;
			case 2:				/* the first row already too large */
				RandomRow(doc, dim, 1e25);
				break;
			case 3:				/* a query row above the limit */
				RandomRow(q + (size_t) 5 * dim, dim, 1e19);
				break;
			default:			/* the last row */
				RandomRow(doc + (size_t) (ndoc - 1) * dim, dim, 2e18);
				break;
		}
		Compare("above the norm limit", doc, NULL, ndoc, q, nq, dim);
		if (mvs_available())
		{
			mvs_begin(&sc, q, nq, dim, 0, mvs);
			(void) mvk_maxsim_screened(mvk_best(), &sc, doc, ndoc, q, nq, dim, sscr);
			if (t == 3)
				CHECK(!sc.ok, "a query row above the limit was screened");
			else
				CHECK(sc.ok && sc.docs_fallback == 1, "a document above the limit was screened (case %d)", t);
		}
	}
	free(doc);
	free(q);
	free(mvs);
	free(sscr);
}

/* How many rows the screen keeps on random normalised pages (information). */
static void
ReportKept(void)
{
	int			dim = 128;
	int			ndoc = 1030;
	int			nq = 24;
	float	   *doc = malloc(sizeof(float) * ndoc * dim);
	float	   *q = malloc(sizeof(float) * nq * dim);
	void	   *mvs = malloc(mvs_scratch_bytes(nq, dim));
	float	   *sscr = malloc(sizeof(float) * mvk_stream_scratch_floats(nq, dim));
	int			split;
	int			i;

	for (i = 0; i < ndoc; i++)
		RandomRow(doc + (size_t) i * dim, dim, 1.0);
	for (i = 0; i < nq; i++)
		RandomRow(q + (size_t) i * dim, dim, 1.0);
	for (split = 0; split <= 1; split++)
	{
		MvsScreen	sc;

		mvs_begin(&sc, q, nq, dim, split, mvs);
		(void) mvk_maxsim_screened(mvk_best(), &sc, doc, ndoc, q, nq, dim, sscr);
		printf("random 1030 x 128 page, 24 query rows, %s: %lld of %lld rows kept (c = %.3g)\n",
			   split ? "hi+lo bf16" : "one bf16", (long long) sc.rows_kept,
			   (long long) sc.rows_seen, sc.c);
	}
	free(doc);
	free(q);
	free(mvs);
	free(sscr);
}

/*
 * RunAll
 *		Every case with the screen's current form; false when only the
 *		bound-scaling report was asked for (MVS_TEST_SCALE).
 */
static bool
RunAll(const char *form)
{
	int			screened = mvs_available();

	printf("maxsim screening: %s; kernel %s\n",
		   screened ? form :
		   "not available here: nothing is screened, the screened cases are SKIPPED (only the fallback is compared)",
		   mvk_name(mvk_best()));

	RandomCases();
	NearTies();
	SignedZeros();
	Scales();
	AboveLimit();
	if (screened && scale_bound == 1.0f)
		ReportKept();

	if (scale_bound != 1.0f)
	{
		printf("bound scaled by %g (%s): %ld of %ld cases differ\n", scale_bound,
			   form, mismatches, cases);
		return false;
	}

	/* the test can fail: a bound of c = 0 must break the near ties */
	if (screened)
	{
		long		before = mismatches;
		int			bad;

		scale_bound = 0.0f;
		bad = NearTies();
		scale_bound = 1.0f;
		mismatches = before;
		printf("with c = 0 the near-tie cases give %d differences (%s)\n", bad, form);
		CHECK(bad > 0, "a broken bound (c = 0) was not caught (%s)", form);
	}
	return true;
}

int
main(void)
{
	const char *env = getenv("MVS_TEST_SCALE");

	if (env)
		scale_bound = (float) atof(env);
	if (mvs_uses_amx())
	{
		if (!RunAll("AMX-BF16 tiles"))
			return mismatches > 0 ? 1 : 0;
		mvs_prefer_vector(1);
	}
	if (!RunAll("AVX512_BF16 dot products"))
		return mismatches > 0 ? 1 : 0;

	printf("%d checks, %d failures (%ld cases)\n", checks, failures, cases);
	return failures ? 1 : 0;
}
