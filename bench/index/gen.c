/*
 * gen.c
 *	  ColPali-like synthetic corpus for the mvivf benchmark, written as a
 *	  PostgreSQL binary COPY stream on stdout.
 *
 *	gen docs NDOCS [SEED]      rows (id int4, emb multivector)
 *	gen queries NDOCS NQ [SEED] rows (qid int4, target int4, q multivector)
 *
 * Parameters (fixed; see bench/index/README.md):
 *	DIM 128, ROWS 1030 per document, all rows L2-normalised.
 *	NTOPICS 512 topic centres (random unit vectors); each document mixes
 *	TOPICS_PER_DOC 4 topics drawn uniformly.
 *	BG_SHARE 40% of a document's rows are "background" (blank patches):
 *	one of NBG 16 prototypes shared by all documents plus small noise
 *	(BG_NOISE 0.15, cosine to the prototype ~0.99): near duplicates.
 *	Content rows: normalize(centre + CONTENT_NOISE 1.2 * g), g a random unit
 *	vector (cosine to the centre ~0.64), so that rows of a topic form a
 *	cluster but each row is distinct.
 *	A query picks a target document (uniform), 20..32 rows; each query row
 *	is normalize(r + QUERY_NOISE 0.8 * g) for a random content row r of the
 *	target.  Every document is regenerated from (SEED, id), so queries need
 *	no stored corpus.  Ground truth is computed by the exact scan.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM 128
#define ROWS 1030
#define NTOPICS 512
#define TOPICS_PER_DOC 4
#define NBG 16
#define BG_SHARE 0.40
#define BG_NOISE 0.15
#define CONTENT_NOISE 1.2
#define QUERY_NOISE 0.8

typedef struct Rng
{
	uint64_t	s;
}			Rng;

static uint64_t
rng_next(Rng * r)
{
	uint64_t	z = (r->s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double
rng_unif(Rng * r)
{
	return (rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static double
rng_gauss(Rng * r)
{
	double		u = rng_unif(r) + 1e-300;
	double		v = rng_unif(r);

	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static void
normalize(float *x)
{
	double		n = 0;
	int			d;

	for (d = 0; d < DIM; d++)
		n += (double) x[d] * x[d];
	n = sqrt(n);
	for (d = 0; d < DIM; d++)
		x[d] = (float) (x[d] / n);
}

static void
unit_random(Rng * r, float *x)
{
	int			d;

	for (d = 0; d < DIM; d++)
		x[d] = (float) rng_gauss(r);
	normalize(x);
}

static float topics[NTOPICS][DIM];
static float bg[NBG][DIM];

static void
init_centres(uint64_t seed)
{
	Rng			r = {seed * 7919 + 17};
	int			i;

	for (i = 0; i < NTOPICS; i++)
		unit_random(&r, topics[i]);
	for (i = 0; i < NBG; i++)
		unit_random(&r, bg[i]);
}

/* rows of document id; isbg[i] says whether row i is background */
static void
make_doc(uint64_t seed, int id, float *rows, int *isbg)
{
	Rng			r = {seed * 1000003 + (uint64_t) id * 7777 + 1};
	int			t[TOPICS_PER_DOC];
	float		g[DIM];
	int			i;
	int			d;

	for (i = 0; i < TOPICS_PER_DOC; i++)
		t[i] = (int) (rng_unif(&r) * NTOPICS);
	for (i = 0; i < ROWS; i++)
	{
		float	   *x = rows + (size_t) i * DIM;

		unit_random(&r, g);
		if (rng_unif(&r) < BG_SHARE)
		{
			const float *p = bg[(int) (rng_unif(&r) * NBG)];

			for (d = 0; d < DIM; d++)
				x[d] = p[d] + BG_NOISE * g[d];
			isbg[i] = 1;
		}
		else
		{
			const float *c = topics[t[(int) (rng_unif(&r) * TOPICS_PER_DOC)]];

			for (d = 0; d < DIM; d++)
				x[d] = c[d] + CONTENT_NOISE * g[d];
			isbg[i] = 0;
		}
		normalize(x);
	}
}

static void
put32(uint32_t v)
{
	unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};

	fwrite(b, 1, 4, stdout);
}

static void
put16(uint16_t v)
{
	unsigned char b[2] = {v >> 8, v};

	fwrite(b, 1, 2, stdout);
}

static void
put_mv(const float *x, int nvec)
{
	int			i;

	put32(16 + 4 * nvec * DIM - 4); /* field length: header without varlena word */
	put16(DIM);
	fputc(0, stdout);
	fputc(0, stdout);
	put32(nvec);
	put32(0);
	for (i = 0; i < nvec * DIM; i++)
	{
		uint32_t	u;

		memcpy(&u, &x[i], 4);
		put32(u);
	}
}

int
main(int argc, char **argv)
{
	static float rows[ROWS * DIM];
	static int	isbg[ROWS];
	uint64_t	seed;
	int			ndocs;
	int			i;

	if (argc < 3 || (strcmp(argv[1], "docs") && strcmp(argv[1], "queries")))
	{
		fprintf(stderr, "usage: gen docs NDOCS [SEED] | gen queries NDOCS NQ [SEED]\n");
		return 2;
	}
	ndocs = atoi(argv[2]);
	fwrite("PGCOPY\n\377\r\n\0", 1, 11, stdout);
	put32(0);
	put32(0);
	if (strcmp(argv[1], "docs") == 0)
	{
		seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 42;
		init_centres(seed);
		for (i = 0; i < ndocs; i++)
		{
			make_doc(seed, i, rows, isbg);
			put16(2);
			put32(4);
			put32(i);
			put_mv(rows, ROWS);
		}
	}
	else
	{
		int			nq = argc > 3 ? atoi(argv[3]) : 100;
		Rng			r;
		float		q[32 * DIM];
		float		g[DIM];

		seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 42;
		init_centres(seed);
		r.s = seed * 31 + 5;
		for (i = 0; i < nq; i++)
		{
			int			target = (int) (rng_unif(&r) * ndocs);
			int			n = 20 + (int) (rng_unif(&r) * 13);
			int			j;

			make_doc(seed, target, rows, isbg);
			for (j = 0; j < n; j++)
			{
				int			k;
				int			d;

				do
					k = (int) (rng_unif(&r) * ROWS);
				while (isbg[k]);
				unit_random(&r, g);
				for (d = 0; d < DIM; d++)
					q[j * DIM + d] = rows[k * DIM + d] + QUERY_NOISE * g[d];
				normalize(q + j * DIM);
			}
			put16(3);
			put32(4);
			put32(i);
			put32(4);
			put32(target);
			put_mv(q, n);
		}
	}
	put16(0xFFFF);
	return 0;
}
