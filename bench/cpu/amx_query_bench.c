/*
 * amx_query_bench.c
 *	  What bounds a query's bf16 products on AMX (src/engine/gemm_amx.c):
 *	  a 20-token query multiplies one 32-row block of x by every weight
 *	  once, so it is a stream through the packed weights.  This program
 *	  times, on 1 and 2 threads (each streaming its own contiguous half):
 *
 *	  - "read": a plain AVX-512 streaming read of the same bytes (with a
 *		software prefetch 1 KB ahead), the floor for the tile kernel, on
 *		4 KB pages and on transparent huge pages (madvise);
 *	  - "tiles": the kernel's inner loop on the shapes of the bench model's
 *		two Gemma MLPs (2 x gate, up [16384, 2048] and down [2048, 16384],
 *		0.4 GB of bf16 in the B layout), with and without the software
 *		prefetch of the weights (PF bytes ahead, every line), on 4 KB
 *		pages and on transparent huge pages (madvise).
 *
 *	  Prints the median and best wall time of 20 passes and the GB/s of
 *	  weights.  The machine may be shared: compare rows of one run only.
 *	  Needs a CPU with AMX-BF16 and a kernel that grants the tile state.
 *
 *	  cc -O2 -fopenmp bench/cpu/amx_query_bench.c -o amx_query_bench
 *	  ./amx_query_bench [PF]
 */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "amx_bench.h"

#define PASSES 20
#define HUGE ((size_t) 2 << 20)

static const int mat_n[3] = {16384, 16384, 2048};
static const int mat_k[3] = {2048, 2048, 16384};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

__attribute__((target("avx512f")))
static float
stream_read(const char *p, size_t n)
{
	__m512		a = _mm512_setzero_ps(),
				b = a,
				c = a,
				d = a;
	size_t		i;

	for (i = 0; i < n; i += 256)
	{
		_mm_prefetch(p + i + 1024, _MM_HINT_T0);
		a = _mm512_add_ps(a, _mm512_load_ps((const float *) (p + i)));
		b = _mm512_add_ps(b, _mm512_load_ps((const float *) (p + i + 64)));
		c = _mm512_add_ps(c, _mm512_load_ps((const float *) (p + i + 128)));
		d = _mm512_add_ps(d, _mm512_load_ps((const float *) (p + i + 192)));
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
}

/* column blocks [nb0, nb1) of one matrix: the kernel's query loop */
__attribute__((target("amx-tile,amx-bf16")))
static void
tiles(const uint16_t *xa, int K, const uint16_t *w, int nb0, int nb1,
	  float *y, int N, int pf)
{
	int			steps = K / 32,
				nb,
				s,
				i;
	size_t		rowtile = (size_t) steps * TILE,
				colblock = (size_t) steps * 2 * TILE;

	amx_bench_load_config();
	for (nb = nb0; nb < nb1; nb++)
	{
		const uint16_t *b = w + nb * colblock;
		float	   *yb = y + nb * 32;

		_tile_zero(0);
		_tile_zero(1);
		_tile_zero(2);
		_tile_zero(3);
		for (s = 0; s < steps; s++)
		{
			const uint16_t *bk = b + (size_t) s * 2 * TILE;

			if (pf > 0)
				for (i = 0; i < 2048; i += 64)
					_mm_prefetch((const char *) bk + pf + i, _MM_HINT_T0);
			_tile_loadd(4, xa + (size_t) s * TILE, 64);
			_tile_loadd(6, bk, 64);
			_tile_dpbf16ps(0, 4, 6);
			_tile_loadd(7, bk + TILE, 64);
			_tile_dpbf16ps(1, 4, 7);
			_tile_loadd(5, xa + rowtile + (size_t) s * TILE, 64);
			_tile_dpbf16ps(2, 5, 6);
			_tile_dpbf16ps(3, 5, 7);
		}
		_tile_stored(0, yb, N * 4);
		_tile_stored(1, yb + 16, N * 4);
		_tile_stored(2, yb + 16 * N, N * 4);
		_tile_stored(3, yb + 16 * N + 16, N * 4);
	}
	_tile_release();
}

static void
report(const char *what, int threads, double *t, size_t bytes)
{
	qsort(t, PASSES, sizeof(double), cmp_double);
	printf("%-34s threads=%d  median %6.2f ms (%5.1f GB/s)  best %6.2f ms (%5.1f GB/s)\n",
		   what, threads, t[PASSES / 2] * 1e3, bytes / t[PASSES / 2] * 1e-9,
		   t[0] * 1e3, bytes / t[0] * 1e-9);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	int			pf = argc > 1 ? atoi(argv[1]) : 768;
	uint16_t   *w[2][6];
	uint16_t   *x1 = aligned_alloc(4096, 32 * 2048 * 2),
			   *x2 = aligned_alloc(4096, 32 * 16384 * 2);
	float	   *y = aligned_alloc(4096, (size_t) 32 * 16384 * 4);
	size_t		total = 0;
	int			huge,
				i;

	if (!amx_bench_usable())
	{
		printf("skip: no usable AMX on this CPU / kernel\n");
		return 0;
	}
	for (huge = 0; huge < 2; huge++)
		for (i = 0; i < 6; i++)
		{
			size_t		n = (size_t) mat_n[i % 3] * mat_k[i % 3] * 2;

			w[huge][i] = aligned_alloc(HUGE, n);
			if (w[huge][i] == NULL)
				return 1;
			if (huge)
				(void) madvise(w[huge][i], n, MADV_HUGEPAGE);
			memset(w[huge][i], 0x3c, n);	/* bf16 ~0.01; every page touched */
			if (huge == 0)
				total += n;
		}
	memset(x1, 0x3c, 32 * 2048 * 2);
	memset(x2, 0x3c, 32 * 16384 * 2);
	printf("# %zu MB of weights, prefetch %d bytes ahead\n", total >> 20, pf);

	for (int threads = 1; threads <= 2; threads++)
	{
		for (int mode = 0; mode < 6; mode++)
		{
			static const char *names[] = {"read, 4 KB pages", "read, huge pages",
				"tiles, 4 KB pages", "tiles + prefetch, 4 KB pages",
			"tiles, huge pages", "tiles + prefetch, huge pages"};
			int			hp = (mode == 1 || mode >= 4);
			int			p = (mode == 3 || mode == 5) ? pf : 0;
			double		t[PASSES];

			for (int r = 0; r < PASSES; r++)
			{
				double		t0 = now();
				float		sink = 0;

				for (i = 0; i < 6; i++)
				{
					int			n = mat_n[i % 3],
								k = mat_k[i % 3];

#pragma omp parallel num_threads(threads) reduction(+:sink)
					{
						int			id = omp_get_thread_num(),
									b0 = n / 32 * id / threads,
									b1 = n / 32 * (id + 1) / threads;

						if (mode < 2)
							sink += stream_read((const char *) (w[hp][i] + (size_t) b0 * 32 * k),
												(size_t) (b1 - b0) * 32 * k * 2);
						else
							tiles(k == 2048 ? x1 : x2, k, w[hp][i], b0, b1, y, n, p);
					}
				}
				t[r] = now() - t0;
				if (sink == 12345.0f)
					printf(" ");
			}
			report(names[mode], threads, t, total);
		}
	}
	return 0;
}
