/*
 * gen.c
 *	  ColPali-like synthetic corpus for the mvivf benchmark, written as a
 *	  PostgreSQL binary COPY stream on stdout.
 *
 *	gen docs NDOCS [SEED]      rows (id int4, emb multivector)
 *	gen queries NDOCS NQ [SEED] rows (qid int4, target int4, q multivector)
 *	gen doctopics NDOCS [SEED]  text COPY rows (id, topics int[]): the topics
 *	                           each page's content rows come from
 *	gen querytopics NDOCS NQ [SEED] text COPY rows (qid, topics int[]): the
 *	                           topics the query's rows come from (those of
 *	                           its target page), so a benchmark can tell
 *	                           which true top pages share no topic with it
 *
 * Parameters (defaults; each can be changed through the environment, see
 * bench/index/README.md and the profiles of bench/index/corpora.sh):
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
 *	target.
 *	Related topics (GEN_FAMILY_SIZE > 1): topics come in families of that
 *	many; a topic is normalize(family centre + s * g) with cosine
 *	GEN_FAMILY_COS to its family centre, so sibling topics have cosine about
 *	GEN_FAMILY_COS^2.  A page about a sibling topic shares no topic with a
 *	query yet matches many of its rows moderately.
 *	Shapes real collections have beyond topics (each off by default, and
 *	drawn from random streams of their own, so that the profiles above give
 *	the same data with or without them):
 *	GEN_ROWS_MIN/GEN_ROWS_MAX rows per page drawn uniformly in that range
 *	(ColQwen2 pages vary with the image size); GEN_TINY_SHARE of the pages
 *	have 10..50 rows only.
 *	GEN_DUP_SHARE of the pages (ids from GEN_DUP_SOURCES on) are copies of
 *	one of the first GEN_DUP_SOURCES pages (default 20), exact unless
 *	GEN_DUP_NOISE adds that much noise to each copied row (near duplicates).
 *	GEN_BLANK_SHARE of the pages are one and the same page of background
 *	rows only (topics {-1}; never a query's target).
 *	GEN_NORM_MIN/GEN_NORM_MAX: each row of a page is scaled by a norm drawn
 *	log-uniformly in that range (rows not L2-normalised); GEN_BIGNORM_SHARE
 *	of the rows are scaled by GEN_BIGNORM (default 20) instead.
 *	GEN_QROWS_MIN/GEN_QROWS_MAX query rows (default 20..32, at most 128);
 *	GEN_QUERY_REPEAT: share of query rows that repeat an earlier row of the
 *	same query exactly.
 *	Every document is regenerated from (SEED, id), so queries need
 *	no stored corpus.  Ground truth is computed by the exact scan.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM 128
#define ROWS 1030
#define MAX_ROWS 4096
#define MAX_QROWS 128
#define MAX_TOPICS 4096
#define MAX_TOPICS_PER_DOC 16
#define NBG 16
#define BG_NOISE 0.15

/* corpus traits, from the environment (GEN_*) or these defaults */
static int	NTOPICS = 512;		/* GEN_NTOPICS: topic centres */
static int	TOPICS_PER_DOC = 4; /* GEN_TOPICS_PER_DOC */
static double BG_SHARE = 0.40;	/* GEN_BG_SHARE: background rows per page */
static double CONTENT_NOISE = 1.2;	/* GEN_CONTENT_NOISE: row spread around
									 * its topic (cosine ~ 1/sqrt(1+n^2)) */
static double QUERY_NOISE = 0.8;	/* GEN_QUERY_NOISE: query row spread */
static int	QUERY_FROM_TOPIC = 0;	/* GEN_QUERY_FROM=topic: query rows
									 * spread around the target's topic
									 * centres, not around its rows */
static double QUERY_OFFTOPIC = 0;	/* GEN_QUERY_OFFTOPIC: share of query
									 * rows about a random other topic */
static int	FAMILY_SIZE = 1;	/* GEN_FAMILY_SIZE: related topics per
								 * family (1 = all topics independent) */
static double FAMILY_COS = 0.8;	/* GEN_FAMILY_COS: cosine of a topic to its
								 * family centre */
static int	ROWS_MIN = ROWS;	/* GEN_ROWS_MIN, GEN_ROWS_MAX: rows per page */
static int	ROWS_MAX = ROWS;
static double TINY_SHARE = 0;	/* GEN_TINY_SHARE: pages of 10..50 rows */
static double DUP_SHARE = 0;	/* GEN_DUP_SHARE: pages copied from another */
static int	DUP_SOURCES = 20;	/* GEN_DUP_SOURCES: pages copies come from */
static double DUP_NOISE = 0;	/* GEN_DUP_NOISE: noise added to copied rows */
static double BLANK_SHARE = 0;	/* GEN_BLANK_SHARE: identical blank pages */
static double NORM_MIN = 1;		/* GEN_NORM_MIN, GEN_NORM_MAX: row norms */
static double NORM_MAX = 1;
static double BIGNORM_SHARE = 0;	/* GEN_BIGNORM_SHARE: rows of huge norm */
static double BIGNORM = 20;		/* GEN_BIGNORM: their norm */
static int	QROWS_MIN = 20;		/* GEN_QROWS_MIN, GEN_QROWS_MAX: query rows */
static int	QROWS_MAX = 32;
static double QUERY_REPEAT = 0; /* GEN_QUERY_REPEAT: repeated query rows */

static double
env_double(const char *name, double dflt)
{
	const char *v = getenv(name);

	return v && *v ? atof(v) : dflt;
}

static void
read_params(void)
{
	const char *from = getenv("GEN_QUERY_FROM");

	NTOPICS = (int) env_double("GEN_NTOPICS", NTOPICS);
	if (NTOPICS < 1 || NTOPICS > MAX_TOPICS)
		NTOPICS = 512;
	TOPICS_PER_DOC = (int) env_double("GEN_TOPICS_PER_DOC", TOPICS_PER_DOC);
	if (TOPICS_PER_DOC < 1 || TOPICS_PER_DOC > MAX_TOPICS_PER_DOC)
		TOPICS_PER_DOC = 4;
	BG_SHARE = env_double("GEN_BG_SHARE", BG_SHARE);
	CONTENT_NOISE = env_double("GEN_CONTENT_NOISE", CONTENT_NOISE);
	QUERY_NOISE = env_double("GEN_QUERY_NOISE", QUERY_NOISE);
	QUERY_FROM_TOPIC = from && strcmp(from, "topic") == 0;
	QUERY_OFFTOPIC = env_double("GEN_QUERY_OFFTOPIC", QUERY_OFFTOPIC);
	FAMILY_SIZE = (int) env_double("GEN_FAMILY_SIZE", FAMILY_SIZE);
	if (FAMILY_SIZE < 1 || FAMILY_SIZE > NTOPICS)
		FAMILY_SIZE = 1;
	FAMILY_COS = env_double("GEN_FAMILY_COS", FAMILY_COS);
	if (FAMILY_COS <= 0.01 || FAMILY_COS > 1)
		FAMILY_COS = 0.8;
	ROWS_MIN = (int) env_double("GEN_ROWS_MIN", ROWS_MIN);
	ROWS_MAX = (int) env_double("GEN_ROWS_MAX", ROWS_MAX);
	if (ROWS_MIN < 1 || ROWS_MIN > MAX_ROWS)
		ROWS_MIN = ROWS;
	if (ROWS_MAX < ROWS_MIN || ROWS_MAX > MAX_ROWS)
		ROWS_MAX = ROWS_MIN;
	TINY_SHARE = env_double("GEN_TINY_SHARE", TINY_SHARE);
	DUP_SHARE = env_double("GEN_DUP_SHARE", DUP_SHARE);
	DUP_SOURCES = (int) env_double("GEN_DUP_SOURCES", DUP_SOURCES);
	if (DUP_SOURCES < 1)
		DUP_SOURCES = 20;
	DUP_NOISE = env_double("GEN_DUP_NOISE", DUP_NOISE);
	BLANK_SHARE = env_double("GEN_BLANK_SHARE", BLANK_SHARE);
	NORM_MIN = env_double("GEN_NORM_MIN", NORM_MIN);
	NORM_MAX = env_double("GEN_NORM_MAX", NORM_MAX);
	if (NORM_MIN <= 0 || NORM_MAX < NORM_MIN)
		NORM_MIN = NORM_MAX = 1;
	BIGNORM_SHARE = env_double("GEN_BIGNORM_SHARE", BIGNORM_SHARE);
	BIGNORM = env_double("GEN_BIGNORM", BIGNORM);
	QROWS_MIN = (int) env_double("GEN_QROWS_MIN", QROWS_MIN);
	QROWS_MAX = (int) env_double("GEN_QROWS_MAX", QROWS_MAX);
	if (QROWS_MIN < 1 || QROWS_MIN > MAX_QROWS)
		QROWS_MIN = 20;
	if (QROWS_MAX < QROWS_MIN || QROWS_MAX > MAX_QROWS)
		QROWS_MAX = QROWS_MIN;
	QUERY_REPEAT = env_double("GEN_QUERY_REPEAT", QUERY_REPEAT);
}

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

static float topics[MAX_TOPICS][DIM];
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
	if (FAMILY_SIZE > 1)
	{
		/* drawn after the independent centres: other profiles unchanged */
		double		s = sqrt(1.0 / (FAMILY_COS * FAMILY_COS) - 1.0);
		float		fc[DIM];
		float		g[DIM];
		int			d;

		for (i = 0; i < NTOPICS; i++)
		{
			if (i % FAMILY_SIZE == 0)
				unit_random(&r, fc);
			unit_random(&r, g);
			for (d = 0; d < DIM; d++)
				topics[i][d] = fc[d] + s * g[d];
			normalize(topics[i]);
		}
	}
}

/* rows of page id: 1030 unless GEN_ROWS_* or GEN_TINY_SHARE say otherwise */
static int
doc_nrows(uint64_t seed, int id)
{
	Rng			r = {seed * 0x2545F4914F6CDD1DULL + (uint64_t) id * 3 + 11};

	if (ROWS_MIN == ROWS && ROWS_MAX == ROWS && TINY_SHARE <= 0)
		return ROWS;
	if (rng_unif(&r) < TINY_SHARE)
		return 10 + (int) (rng_unif(&r) * 41);
	return ROWS_MIN + (int) (rng_unif(&r) * (ROWS_MAX - ROWS_MIN + 1));
}

/* the page whose rows page id copies (itself unless it is a duplicate) */
static int
doc_source(uint64_t seed, int id, int *blank)
{
	Rng			r = {seed * 0x632BE59BD9B4E019ULL + (uint64_t) id * 131 + 7};

	*blank = 0;
	if (BLANK_SHARE > 0 && rng_unif(&r) < BLANK_SHARE)
	{
		*blank = 1;
		return -1;
	}
	if (DUP_SHARE > 0 && id >= DUP_SOURCES && rng_unif(&r) < DUP_SHARE)
		return (int) (rng_unif(&r) * DUP_SOURCES);
	return id;
}

/*
 * rows of document id (returns how many); isbg[i] says whether row i is
 * background; t receives the document's topics
 */
static int
make_doc(uint64_t seed, int id, float *rows, int *isbg, int *t)
{
	int			blank;
	int			src = doc_source(seed, id, &blank);
	Rng			r = {seed * 1000003 + (uint64_t) src * 7777 + 1};
	float		g[DIM];
	int			n;
	int			i;
	int			d;

	if (blank)
	{
		/* every blank page is the same background-only page */
		r.s = seed * 4099 + 3;
		for (i = 0; i < TOPICS_PER_DOC; i++)
			t[i] = -1;
		for (i = 0; i < ROWS; i++)
		{
			float	   *x = rows + (size_t) i * DIM;
			const float *p;

			unit_random(&r, g);
			p = bg[(int) (rng_unif(&r) * NBG)];
			for (d = 0; d < DIM; d++)
				x[d] = p[d] + BG_NOISE * g[d];
			isbg[i] = 1;
			normalize(x);
		}
		return ROWS;
	}
	n = doc_nrows(seed, src);
	for (i = 0; i < TOPICS_PER_DOC; i++)
		t[i] = (int) (rng_unif(&r) * NTOPICS);
	for (i = 0; i < n; i++)
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
	if (src != id && DUP_NOISE > 0)
	{
		/* a near duplicate: the source's rows, each moved a little */
		Rng			nr = {seed * 0x9E3779B97F4A7C15ULL + (uint64_t) id * 17 + 5};

		for (i = 0; i < n; i++)
		{
			unit_random(&nr, g);
			for (d = 0; d < DIM; d++)
				rows[(size_t) i * DIM + d] += DUP_NOISE * g[d];
			normalize(rows + (size_t) i * DIM);
		}
	}
	if (NORM_MIN != 1 || NORM_MAX != 1 || BIGNORM_SHARE > 0)
	{
		/* rows not L2-normalised (the same for a page and its copies) */
		Rng			sr = {seed * 0xD1B54A32D192ED03ULL + (uint64_t) src * 29 + 13};

		for (i = 0; i < n; i++)
		{
			double		s = NORM_MIN * exp(rng_unif(&sr) * log(NORM_MAX / NORM_MIN));

			if (BIGNORM_SHARE > 0 && rng_unif(&sr) < BIGNORM_SHARE)
				s = BIGNORM;
			for (d = 0; d < DIM; d++)
				rows[(size_t) i * DIM + d] *= (float) s;
		}
	}
	return n;
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
print_topics(int id, const int *t)
{
	int			i;

	printf("%d\t{", id);
	for (i = 0; i < TOPICS_PER_DOC; i++)
		printf(i ? ",%d" : "%d", t[i]);
	printf("}\n");
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
	static float rows[MAX_ROWS * DIM];
	static int	isbg[MAX_ROWS];
	int			doctopics[MAX_TOPICS_PER_DOC];
	uint64_t	seed;
	int			ndocs;
	int			i;
	int			text;

	if (argc < 3 || (strcmp(argv[1], "docs") && strcmp(argv[1], "queries") &&
					 strcmp(argv[1], "doctopics") && strcmp(argv[1], "querytopics")))
	{
		fprintf(stderr, "usage: gen docs|doctopics NDOCS [SEED] | gen queries|querytopics NDOCS NQ [SEED]\n");
		return 2;
	}
	read_params();
	ndocs = atoi(argv[2]);
	text = strstr(argv[1], "topics") != NULL;
	if (text)
	{
		/* no vectors: only the topic draws are needed */
	}
	else
	{
		fwrite("PGCOPY\n\377\r\n\0", 1, 11, stdout);
		put32(0);
		put32(0);
	}
	if (strcmp(argv[1], "doctopics") == 0)
	{
		seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 42;
		init_centres(seed);
		for (i = 0; i < ndocs; i++)
		{
			make_doc(seed, i, rows, isbg, doctopics);
			print_topics(i, doctopics);
		}
		return 0;
	}
	if (strcmp(argv[1], "docs") == 0)
	{
		seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 42;
		init_centres(seed);
		for (i = 0; i < ndocs; i++)
		{
			int			n = make_doc(seed, i, rows, isbg, doctopics);

			put16(2);
			put32(4);
			put32(i);
			put_mv(rows, n);
		}
	}
	else
	{
		int			nq = argc > 3 ? atoi(argv[3]) : 100;
		Rng			r;
		static float q[MAX_QROWS * DIM];
		float		g[DIM];

		seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 42;
		init_centres(seed);
		r.s = seed * 31 + 5;
		for (i = 0; i < nq; i++)
		{
			int			target = (int) (rng_unif(&r) * ndocs);
			int			n = QROWS_MIN + (int) (rng_unif(&r) * (QROWS_MAX - QROWS_MIN + 1));
			int			nrows;
			int			ncontent = 0;
			int			j;
			int			blank;

			/* a blank page is nobody's target */
			while (BLANK_SHARE > 0 && (doc_source(seed, target, &blank), blank))
				target = (int) (rng_unif(&r) * ndocs);
			nrows = make_doc(seed, target, rows, isbg, doctopics);
			for (j = 0; j < nrows; j++)
				ncontent += !isbg[j];
			for (j = 0; j < n; j++)
			{
				int			k;
				int			d;
				const float *base;

				if (QUERY_REPEAT > 0 && j > 0 && rng_unif(&r) < QUERY_REPEAT)
				{
					/* the same row again (a repeated query token) */
					k = (int) (rng_unif(&r) * j);
					memcpy(q + j * DIM, q + k * DIM, sizeof(float) * DIM);
					continue;
				}
				if (QUERY_OFFTOPIC > 0 && rng_unif(&r) < QUERY_OFFTOPIC)
					base = topics[(int) (rng_unif(&r) * NTOPICS)];
				else if (QUERY_FROM_TOPIC || ncontent == 0)
					base = topics[doctopics[(int) (rng_unif(&r) * TOPICS_PER_DOC)]];
				else
				{
					do
						k = (int) (rng_unif(&r) * nrows);
					while (isbg[k]);
					base = rows + (size_t) k * DIM;
				}
				unit_random(&r, g);
				for (d = 0; d < DIM; d++)
					q[j * DIM + d] = base[d] + QUERY_NOISE * g[d];
				normalize(q + j * DIM);
			}
			if (text)
			{
				print_topics(i, doctopics);
				continue;
			}
			put16(3);
			put32(4);
			put32(i);
			put32(4);
			put32(target);
			put_mv(q, n);
		}
	}
	if (!text)
		put16(0xFFFF);
	return 0;
}
