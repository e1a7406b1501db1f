/*
 * screen_kept.c
 *	  Screened exact MaxSim (src/engine/maxsim_screen.c) on a corpus of
 *	  bench/index/gen.c: how many rows of each page the screen keeps for the
 *	  exact kernel, with one bf16 part and with hi + lo parts, and the kernel
 *	  time per page screened and unscreened (one core, CPU time), after
 *	  checking that every score has the unscreened kernel's bits.  Each page
 *	  is first copied into a buffer (untimed), as an exact scan stages a
 *	  stored page's bytes before the kernels read them, so the kernels read
 *	  it from the cache, not from memory.
 *
 * Usage: screen_kept DOCS.copy QUERIES.copy NQ
 *	 DOCS.copy: gen docs output (id int, emb multivector), binary COPY;
 *	 QUERIES.copy: gen queries output (qid, target, q).  Prints one line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maxsim_kernels.h"
#include "maxsim_screen.h"

typedef struct Mv
{
	int			nvec;
	int			dim;
	float	   *x;
} Mv;

static uint32_t
Get32(const uint8_t *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* Read every multivector field (the last field of each tuple) of a binary COPY file. */
static Mv *
ReadCopy(const char *path, int *n)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf;
	long		len;
	long		off = 19;
	Mv		   *out = NULL;
	int			cap = 0;

	*n = 0;
	if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0)
		exit(1);
	rewind(f);
	buf = malloc(len);
	if (!buf || fread(buf, 1, len, f) != (size_t) len)
		exit(1);
	fclose(f);
	while (off + 2 <= len)
	{
		int			nf = (int16_t) (buf[off] << 8 | buf[off + 1]);
		int			i;

		off += 2;
		if (nf < 0)
			break;
		for (i = 0; i < nf; i++)
		{
			uint32_t	flen = Get32(buf + off);

			off += 4;
			if (i == nf - 1)
			{
				Mv			m;
				size_t		k;
				size_t		cnt;

				m.dim = buf[off] << 8 | buf[off + 1];
				m.nvec = (int) Get32(buf + off + 4);
				cnt = (size_t) m.nvec * m.dim;
				m.x = malloc(cnt * sizeof(float));
				for (k = 0; k < cnt; k++)
				{
					uint32_t	u = Get32(buf + off + 12 + 4 * k);

					memcpy(&m.x[k], &u, 4);
				}
				if (*n == cap)
				{
					cap = cap ? 2 * cap : 256;
					out = realloc(out, sizeof(Mv) * cap);
				}
				out[(*n)++] = m;
			}
			off += flen;
		}
	}
	free(buf);
	return out;
}

static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	int			ndocs;
	int			nqs;
	Mv		   *docs;
	Mv		   *qs;
	int			nq;
	int			qi;
	int			d;
	int			split;
	int			dim;
	int			maxq = 0;
	int			maxrows = 0;
	float	   *stage;
	double		t_plain = 0.0;
	double		t_screen[2] = {0.0, 0.0};
	int64_t		kept[2] = {0, 0};
	int64_t		seen[2] = {0, 0};
	int			bad = 0;
	float	   *scratch;
	float	   *sscr;
	void	   *mvs;
	MvkKind		kind = mvk_best();

	if (argc != 4)
	{
		fprintf(stderr, "usage: %s DOCS.copy QUERIES.copy NQ\n", argv[0]);
		return 2;
	}
	docs = ReadCopy(argv[1], &ndocs);
	qs = ReadCopy(argv[2], &nqs);
	nq = atoi(argv[3]);
	if (nq > nqs)
		nq = nqs;
	if (ndocs < 1 || nq < 1)
		return 2;
	if (!mvs_available())
	{
		printf("no AMX-BF16 here: nothing to measure\n");
		return 0;
	}
	dim = docs[0].dim;
	for (qi = 0; qi < nq; qi++)
		if (qs[qi].nvec > maxq)
			maxq = qs[qi].nvec;
	for (d = 0; d < ndocs; d++)
		if (docs[d].nvec > maxrows)
			maxrows = docs[d].nvec;
	stage = malloc(sizeof(float) * maxrows * dim);
	scratch = malloc(sizeof(float) * mvk_scratch_floats(dim));
	sscr = malloc(sizeof(float) * mvk_stream_scratch_floats(maxq, dim));
	mvs = malloc(mvs_scratch_bytes(maxq, dim));

	for (qi = 0; qi < nq; qi++)
	{
		const Mv   *q = &qs[qi];
		double	   *ref = malloc(sizeof(double) * ndocs);
		double		t0;

		for (d = 0; d < ndocs; d++)
		{
			memcpy(stage, docs[d].x, sizeof(float) * docs[d].nvec * dim);
			t0 = Now();
			ref[d] = mvk_maxsim(kind, stage, docs[d].nvec, q->x, q->nvec, dim, scratch);
			t_plain += Now() - t0;
		}
		for (split = 0; split <= 1; split++)
		{
			MvsScreen	sc;

			mvs_begin(&sc, q->x, q->nvec, dim, split, mvs);
			for (d = 0; d < ndocs; d++)
			{
				double		s;

				memcpy(stage, docs[d].x, sizeof(float) * docs[d].nvec * dim);
				t0 = Now();
				s = mvk_maxsim_screened(kind, &sc, stage, docs[d].nvec, q->x,
										q->nvec, dim, sscr);
				t_screen[split] += Now() - t0;
				bad += memcmp(&s, &ref[d], sizeof(double)) != 0;
			}
			kept[split] += sc.rows_kept;
			seen[split] += sc.rows_seen;
		}
		free(ref);
	}
	printf("%d pages x %d rows, %d queries: rows kept per page (one bf16 / hi+lo) %.1f / %.1f "
		   "(%.1f%% / %.1f%%); kernel us per page: unscreened %.1f, screened %.1f / %.1f "
		   "(%.2fx / %.2fx); bit-identical: %s\n",
		   ndocs, docs[0].nvec, nq,
		   (double) kept[0] / ((double) ndocs * nq), (double) kept[1] / ((double) ndocs * nq),
		   100.0 * kept[0] / seen[0], 100.0 * kept[1] / seen[1],
		   t_plain / ((double) ndocs * nq) * 1e6,
		   t_screen[0] / ((double) ndocs * nq) * 1e6, t_screen[1] / ((double) ndocs * nq) * 1e6,
		   t_plain / t_screen[0], t_plain / t_screen[1], bad ? "NO" : "yes");
	return bad ? 1 : 0;
}
