/*
 * pool_bench.c
 *	  Time hierarchical token pooling (src/engine/token_pool.c) on one page.
 *
 *	pool_bench PAGE.f32 ROWS DIM FACTOR [REPEATS]
 *
 * PAGE.f32 holds ROWS x DIM little-endian float32.  Prints the number of
 * pooled rows and, over REPEATS (default 5) runs, the median wall time and
 * the median and best CPU time of the thread in milliseconds (on a shared,
 * loaded machine the CPU time is the steadier number).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "token_pool.h"

static double
now_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	int			rows,
				dim,
				factor,
				repeats;
	float	   *page;
	float	   *out;
	void	   *ws;
	double	   *ms;
	double	   *cpu_ms;
	int			npooled = 0;
	FILE	   *f;
	CpError		err = {0};

	if (argc < 5)
	{
		fprintf(stderr, "usage: pool_bench PAGE.f32 ROWS DIM FACTOR [REPEATS]\n");
		return 2;
	}
	rows = atoi(argv[2]);
	dim = atoi(argv[3]);
	factor = atoi(argv[4]);
	repeats = argc > 5 ? atoi(argv[5]) : 5;
	if (rows < 1 || rows > CP_POOL_MAX_ROWS || dim < 1 || factor < 1 || repeats < 1)
	{
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	page = malloc(sizeof(float) * rows * dim);
	out = malloc(sizeof(float) * rows * dim);
	ws = malloc(cp_token_pool_workspace_bytes(rows));
	ms = malloc(sizeof(double) * repeats);
	cpu_ms = malloc(sizeof(double) * repeats);
	f = fopen(argv[1], "rb");
	if (!page || !out || !ws || !ms || !cpu_ms || !f ||
		fread(page, sizeof(float), (size_t) rows * dim, f) != (size_t) rows * dim)
	{
		fprintf(stderr, "cannot read %s\n", argv[1]);
		return 1;
	}
	fclose(f);
	for (int i = 0; i < repeats; i++)
	{
		double		t0 = now_ms(CLOCK_MONOTONIC);
		double		c0 = now_ms(CLOCK_THREAD_CPUTIME_ID);

		if (cp_token_pool(page, rows, dim, factor, ws, NULL, out, &npooled, NULL, NULL, &err) != CP_OK)
		{
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		ms[i] = now_ms(CLOCK_MONOTONIC) - t0;
		cpu_ms[i] = now_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
	}
	qsort(ms, repeats, sizeof(double), cmp_double);
	qsort(cpu_ms, repeats, sizeof(double), cmp_double);
	printf("c_pool rows %d dim %d factor %d pooled %d wall_median_ms %.1f cpu_median_ms %.1f cpu_best_ms %.1f\n",
		   rows, dim, factor, npooled, ms[repeats / 2], cpu_ms[repeats / 2], cpu_ms[0]);
	return 0;
}
