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

/*
 * rows of document id; isbg[i] says whether row i is background; t receives
 * the document's topics
 */
static void
make_doc(uint64_t seed, int id, float *rows, int *isbg, int *t)
{
	Rng			r = {seed * 1000003 + (uint64_t) id * 7777 + 1};
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
	static float rows[ROWS * DIM];
	static int	isbg[ROWS];
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
			make_doc(seed, i, rows, isbg, doctopics);
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

			make_doc(seed, target, rows, isbg, doctopics);
			for (j = 0; j < n; j++)
			{
				int			k;
				int			d;
				const float *base;

				if (QUERY_OFFTOPIC > 0 && rng_unif(&r) < QUERY_OFFTOPIC)
					base = topics[(int) (rng_unif(&r) * NTOPICS)];
				else if (QUERY_FROM_TOPIC)
					base = topics[doctopics[(int) (rng_unif(&r) * TOPICS_PER_DOC)]];
				else
				{
					do
						k = (int) (rng_unif(&r) * ROWS);
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
