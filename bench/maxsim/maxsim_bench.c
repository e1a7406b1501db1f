/*
 * maxsim_bench.c
 *	  Standalone benchmark of the MaxSim kernels (src/engine/maxsim_kernels.c) on
 *	  ColPali-shaped, seeded, L2-normalised data, plus a memory-bandwidth
 *	  probe.  Also writes the same data for the numpy and SQL stages of
 *	  bench/maxsim/run.sh.
 *
 * Usage: maxsim_bench DIR NDOCS
 *	 writes DIR/docs.f32 (NDOCS x 1030 x 128 float32, little-endian),
 *	 DIR/queries.f32 (a 20-row then a 32-row query), DIR/pages.copy (binary
 *	 COPY of (id int, emb multivector)), DIR/q32.txt (the 32-row query as
 *	 multivector text) and prints "RESULT key value" lines.
 *
 * Besides the kernels it times screened exact MaxSim (maxsim_screen.h: a
 * bf16 pass on AMX tiles or with AVX512_BF16 picks the rows the exact
 * kernel must see; same bits), with one bf16 part and with hi + lo parts,
 * where one of them is usable, and prints the
 * rows it kept per document.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maxsim_kernels.h"
#include "maxsim_screen.h"

#define NROWS	1030
#define DIM		128
#define DOC_FLOATS ((size_t) NROWS * DIM)
#define DOC_BYTES (DOC_FLOATS * sizeof(float))

static uint64_t rng_state;

/* xorshift64* */
static uint64_t
Rand64(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* Uniform in (0, 1). */
static double
RandUniform(void)
{
	return ((Rand64() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Rows of standard normal values, each scaled to unit L2 norm. */
static void
FillNormalised(float *x, size_t nrows, int dim)
{
	size_t		i;
	int			k;

	for (i = 0; i < nrows; i++)
	{
		float	   *row = x + i * dim;
		double		ss = 0.0;

		for (k = 0; k < dim; k += 2)
		{
			double		r = sqrt(-2.0 * log(RandUniform()));
			double		t = 2.0 * M_PI * RandUniform();

			row[k] = (float) (r * cos(t));
			if (k + 1 < dim)
				row[k + 1] = (float) (r * sin(t));
		}
		for (k = 0; k < dim; k++)
			ss += (double) row[k] * row[k];
		for (k = 0; k < dim; k++)
			row[k] = (float) (row[k] / sqrt(ss));
	}
}

/*
 * Now
 *		CPU time of this thread: the benchmark measures per-core speed, and on
 *		a shared machine wall-clock time also counts other processes' slices.
 */
static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Wall-clock time, for the comparison with the SQL query. */
static double
WallNow(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Big-endian writers for the binary COPY file. */
static void
Put16(FILE *f, uint16_t v)
{
	fputc(v >> 8, f);
	fputc(v & 0xff, f);
}

static void
Put32(FILE *f, uint32_t v)
{
	Put16(f, v >> 16);
	Put16(f, v & 0xffff);
}

static void
WriteCopyFile(const char *path, const float *docs, int ndocs)
{
	FILE	   *f = fopen(path, "wb");
	int			d;

	if (!f)
	{
		perror(path);
		exit(1);
	}
	fwrite("PGCOPY\n\377\r\n\0", 1, 11, f);
	Put32(f, 0);
	Put32(f, 0);
	for (d = 0; d < ndocs; d++)
	{
		const float *x = docs + (size_t) d * DOC_FLOATS;
		size_t		i;

		Put16(f, 2);
		Put32(f, 4);
		Put32(f, d + 1);
		Put32(f, 12 + DOC_BYTES);
		Put16(f, DIM);			/* dim */
		fputc(0, f);			/* format */
		fputc(0, f);			/* flags */
		Put32(f, NROWS);		/* nvec */
		Put32(f, 0);			/* reserved */
		for (i = 0; i < DOC_FLOATS; i++)
		{
			uint32_t	u;

			memcpy(&u, &x[i], 4);
			Put32(f, u);
		}
	}
	Put16(f, 0xffff);
	fclose(f);
}

static void
WriteRaw(const char *path, const float *x, size_t n)
{
	FILE	   *f = fopen(path, "wb");

	if (!f || fwrite(x, sizeof(float), n, f) != n)
	{
		perror(path);
		exit(1);
	}
	fclose(f);
}

/*
 * ReadBandwidth
 *		Single-thread read bandwidth over buf: the sum of all floats with
 *		several independent accumulators (the compiler vectorises it with
 *		O3 via the optimize attribute); best of 3 passes.
 */
__attribute__((optimize("O3", "unroll-loops")))
static double
ReadBandwidth(const float *buf, size_t n, float *sink)
{
	double		best = 0.0;
	int			pass;

	for (pass = 0; pass < 3; pass++)
	{
		float		acc[32] = {0};
		double		t0 = Now();
		double		t;
		size_t		i;
		int			j;

		for (i = 0; i + 32 <= n; i += 32)
			for (j = 0; j < 32; j++)
				acc[j] += buf[i + j];
		t = Now() - t0;
		for (j = 0; j < 32; j++)
			*sink += acc[j];
		if (n * sizeof(float) / t / 1e9 > best)
			best = n * sizeof(float) / t / 1e9;
	}
	return best;
}

static int
CmpDesc(const void *a, const void *b)
{
	double		x = ((const double *) a)[0];
	double		y = ((const double *) b)[0];

	return (x < y) - (x > y);
}

int
main(int argc, char **argv)
{
	const char *dir;
	int			ndocs;
	float	   *docs;
	float	   *queries;
	float	   *q20;
	float	   *q32;
	float	   *scratch;
	char		path[4096];
	int			kinds[2] = {MVK_AVX512, MVK_AVX2};
	int			nqs[3] = {20, 32, 4};
	int			ki;
	int			qi;
	int			d;
	int			bad = 0;
	float		sink = 0.0f;
	double	   *scores;
	FILE	   *f;

	if (argc != 3)
	{
		fprintf(stderr, "usage: %s DIR NDOCS\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	ndocs = atoi(argv[2]);
	if (ndocs < 1)
		return 2;

	docs = malloc((size_t) ndocs * DOC_BYTES);
	queries = malloc((20 + 32) * DIM * sizeof(float));
	scratch = malloc(mvk_scratch_floats(DIM) * sizeof(float));
	scores = malloc(2 * sizeof(double) * ndocs);
	if (!docs || !queries || !scratch || !scores)
		return 1;

	rng_state = 0x9E3779B97F4A7C15ULL;
	FillNormalised(docs, (size_t) ndocs * NROWS, DIM);
	rng_state = 0xC2B2AE3D27D4EB4FULL;
	FillNormalised(queries, 20 + 32, DIM);
	q20 = queries;
	q32 = queries + 20 * DIM;

	snprintf(path, sizeof(path), "%s/docs.f32", dir);
	WriteRaw(path, docs, (size_t) ndocs * DOC_FLOATS);
	snprintf(path, sizeof(path), "%s/queries.f32", dir);
	WriteRaw(path, queries, (size_t) (20 + 32) * DIM);
	snprintf(path, sizeof(path), "%s/pages.copy", dir);
	WriteCopyFile(path, docs, ndocs);
	snprintf(path, sizeof(path), "%s/q32.txt", dir);
	f = fopen(path, "w");
	for (qi = 0; qi < 32; qi++)
	{
		fputs(qi == 0 ? "[[" : "],[", f);
		for (d = 0; d < DIM; d++)
			fprintf(f, "%s%.9g", d ? "," : "", q32[qi * DIM + d]);
	}
	fputs("]]\n", f);
	fclose(f);

	printf("RESULT best_kernel %s\n", mvk_name(mvk_best()));
	printf("RESULT doc_bytes %zu\n", DOC_BYTES);

	/* correctness: every available SIMD kernel equals the scalar oracle */
	for (d = 0; d < 3 && d < ndocs; d++)
	{
		double		ref20 = mvk_maxsim(MVK_SCALAR, docs + d * DOC_FLOATS, NROWS, q20, 20, DIM, scratch);
		double		ref32 = mvk_maxsim(MVK_SCALAR, docs + d * DOC_FLOATS, NROWS, q32, 32, DIM, scratch);

		for (ki = 0; ki < 2; ki++)
		{
			if (!mvk_available(kinds[ki]))
				continue;
			if (mvk_maxsim(kinds[ki], docs + d * DOC_FLOATS, NROWS, q20, 20, DIM, scratch) != ref20 ||
				mvk_maxsim(kinds[ki], docs + d * DOC_FLOATS, NROWS, q32, 32, DIM, scratch) != ref32)
				bad++;
		}
	}
	printf("RESULT simd_equals_scalar %s\n", bad ? "NO" : "yes");

	/* scalar reference speed, in cache, one doc */
	{
		double		t0 = Now();

		sink += mvk_maxsim(MVK_SCALAR, docs, NROWS, q32, 32, DIM, scratch);
		printf("RESULT scalar_q32_cache_docs_per_s %.1f\n", 1.0 / (Now() - t0));
	}

	for (ki = 0; ki < 2; ki++)
	{
		const char *name = mvk_name(kinds[ki]);

		if (!mvk_available(kinds[ki]))
			continue;
		for (qi = 0; qi < 3; qi++)
		{
			int			nq = nqs[qi];
			float	   *q = nq == 20 ? q20 : q32;	/* nq = 4: first rows of q32 */
			int			reps;
			int			r;
			double		t0;
			double		t;

			/* in cache: the same 527 kB doc (fits L2) again and again */
			if (nq != 4)
			{
				reps = nq == 20 ? 1500 : 1000;
				sink += mvk_maxsim(kinds[ki], docs, NROWS, q, nq, DIM, scratch);
				t0 = Now();
				for (r = 0; r < reps; r++)
					sink += mvk_maxsim(kinds[ki], docs, NROWS, q, nq, DIM, scratch);
				t = Now() - t0;
				printf("RESULT %s_q%d_cache_docs_per_s %.1f\n", name, nq, reps / t);
				printf("RESULT %s_q%d_cache_gb_per_s %.2f\n", name, nq, reps * (double) DOC_BYTES / t / 1e9);
				printf("RESULT %s_q%d_cache_gflops %.1f\n", name, nq, reps * 2.0 * NROWS * nq * DIM / t / 1e9);
			}

			/* out of cache: every doc of the pool once */
			{
				double		w0 = WallNow();

				t0 = Now();
				for (d = 0; d < ndocs; d++)
					scores[2 * d] = mvk_maxsim(kinds[ki], docs + (size_t) d * DOC_FLOATS, NROWS, q, nq, DIM, scratch);
				t = Now() - t0;
				printf("RESULT %s_q%d_dram_docs_per_s %.1f\n", name, nq, ndocs / t);
				printf("RESULT %s_q%d_dram_gb_per_s %.2f\n", name, nq, ndocs * (double) DOC_BYTES / t / 1e9);
				if (nq == 32 && kinds[ki] == (int) mvk_best())
				{
					printf("RESULT kernel_q32_pool_ms %.2f\n", t * 1e3);
					printf("RESULT kernel_q32_pool_wall_ms %.2f\n", (WallNow() - w0) * 1e3);
				}
			}
		}
	}

	/* screened exact MaxSim with the best kernel: one bf16 part, hi + lo */
	printf("RESULT screen_available %s\n", mvs_available() ? "yes" : "no");
	if (mvs_available())
	{
		float	   *sscr = malloc(sizeof(float) * mvk_stream_scratch_floats(32, DIM));
		void	   *mvs = malloc(mvs_scratch_bytes(32, DIM));
		MvkKind		best = mvk_best();
		int			split;

		for (split = 0; split <= 1; split++)
			for (qi = 0; qi < 3; qi++)
			{
				int			nq = nqs[qi];
				float	   *q = nq == 20 ? q20 : q32;
				MvsScreen	sc;
				int			reps = nq == 4 ? 3000 : 1500;
				int			r;
				double		t0;
				double		t;

				mvs_begin(&sc, q, nq, DIM, split, mvs);
				for (d = 0; d < 3 && d < ndocs; d++)
					if (mvk_maxsim_screened(best, &sc, docs + d * DOC_FLOATS, NROWS, q, nq, DIM, sscr) !=
						mvk_maxsim(best, docs + d * DOC_FLOATS, NROWS, q, nq, DIM, scratch))
						bad++;
				t0 = Now();
				for (r = 0; r < reps; r++)
					sink += mvk_maxsim_screened(best, &sc, docs, NROWS, q, nq, DIM, sscr);
				t = Now() - t0;
				printf("RESULT screen%d_q%d_cache_docs_per_s %.1f\n", split, nq, reps / t);
				sc.rows_seen = sc.rows_kept = 0;
				t0 = Now();
				for (d = 0; d < ndocs; d++)
					sink += mvk_maxsim_screened(best, &sc, docs + (size_t) d * DOC_FLOATS, NROWS, q, nq, DIM, sscr);
				t = Now() - t0;
				printf("RESULT screen%d_q%d_dram_docs_per_s %.1f\n", split, nq, ndocs / t);
				printf("RESULT screen%d_q%d_kept_rows %.1f\n", split, nq,
					   (double) sc.rows_kept / ndocs);
			}
		free(sscr);
		free(mvs);
	}
	printf("RESULT screened_equals_plain %s\n", bad ? "NO" : "yes");

	/* top 10 of the pool for the 32-row query (the SQL stage must agree) */
	for (d = 0; d < ndocs; d++)
	{
		scores[2 * d] = mvk_maxsim(mvk_best(), docs + (size_t) d * DOC_FLOATS, NROWS, q32, 32, DIM, scratch);
		scores[2 * d + 1] = d + 1;
	}
	qsort(scores, ndocs, 2 * sizeof(double), CmpDesc);
	printf("RESULT top10");
	for (d = 0; d < 10 && d < ndocs; d++)
		printf("%s%d", d ? "," : " ", (int) scores[2 * d + 1]);
	printf("\n");

	printf("RESULT dram_read_gb_per_s %.2f\n",
		   ReadBandwidth(docs, (size_t) ndocs * DOC_FLOATS, &sink));
	if (sink == 12345.0f)		/* keep the results live */
		printf("RESULT sink %g\n", sink);
	return bad ? 1 : 0;
}
