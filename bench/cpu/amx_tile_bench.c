/*
 * amx_tile_bench.c
 *	  What bounds the AMX tile kernel (src/engine/gemm_amx.c): the kernel's
 *	  inner loop (2 x 2 accumulator tiles, two tiles of x and two of W per
 *	  k-step) on synthetic data, without the rest of a GEMM, in the
 *	  configurations docs/cpu-kernels.md quotes:
 *
 *	  - "registers": TDPBF16PS on tiles already loaded (the unit's peak);
 *	  - "x in L1, W in L2": one 16 KB x block reused by 8 column blocks of
 *		W (the kernel's k-block of 8 k-steps), no accumulator traffic;
 *	  - "+ accumulators": the same with the accumulators loaded and stored
 *		every 8 k-steps from a 1 MB buffer (the kernel's cbuf);
 *	  - "x and W in L2": tiles of both operands from 1 MB buffers;
 *	  - "accumulators in L1": loaded and stored every 8 k-steps from two
 *		4 KB buffers (what the round trips cost without the L2 traffic);
 *	  - "accumulators interleaved": as "+ accumulators", but each tile's
 *		store is followed by the next block's load of the same tile;
 *	  - "accumulators zeroed + stored": no loads, the stores only;
 *	  - "accumulators in L1, loaded only": the loads only;
 *	  - "16 x 64: W in L1, x in L2" (+ accumulators): the other accumulator
 *		shape, a 16 x 64 block (one x tile, four W tiles per k-step, the
 *		W k-block of 64 columns x 8 k-steps resident in L1 and x tiles
 *		streaming from L2), without and with the accumulators' round trip
 *		every 8 k-steps.
 *
 *	  Prints GFLOP/s per CPU-second of the calling thread (best of 10).
 *	  Needs a CPU with AMX-BF16 and a kernel that grants the tile state.
 *
 *	  cc -O2 bench/cpu/amx_tile_bench.c -o amx_tile_bench && ./amx_tile_bench
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "amx_bench.h"


static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 8 k-steps of the 2 x 2 block: x tiles at a (k-step stride TILE), W at b */
__attribute__((target("amx-tile,amx-bf16")))
static inline void
ksteps(const uint16_t *a0, const uint16_t *a1, const uint16_t *b, int steps)
{
	int			s;

	for (s = 0; s < steps; s++)
	{
		_tile_loadd(4, a0 + s * TILE, 64);
		_tile_loadd(6, b + s * 2 * TILE, 64);
		_tile_dpbf16ps(0, 4, 6);
		_tile_loadd(7, b + s * 2 * TILE + TILE, 64);
		_tile_dpbf16ps(1, 4, 7);
		_tile_loadd(5, a1 + s * TILE, 64);
		_tile_dpbf16ps(2, 5, 6);
		_tile_dpbf16ps(3, 5, 7);
	}
}

/*
 * acc_load / acc_store
 *		The four accumulator tiles (a 32 x 32 fp32 block, rows 128 bytes
 *		apart) from / to c.
 */
__attribute__((target("amx-tile"), always_inline))
static inline void
acc_load(const float *c)
{
	_tile_loadd(0, c, 128);
	_tile_loadd(1, c + 16, 128);
	_tile_loadd(2, c + 512, 128);
	_tile_loadd(3, c + 528, 128);
}

__attribute__((target("amx-tile"), always_inline))
static inline void
acc_store(float *c)
{
	_tile_stored(0, c, 128);
	_tile_stored(1, c + 16, 128);
	_tile_stored(2, c + 512, 128);
	_tile_stored(3, c + 528, 128);
}

/*
 * run
 *		mode 0: registers only; 1: x block in L1, W (8 column blocks x 8
 *		k-steps) in L2; 2: same plus accumulators every 8 k-steps; 3: x and
 *		W tiles from 1 MB buffers; 4-7: the accumulator variants of the
 *		file header.  Returns GFLOP/s per CPU-second.
 */
__attribute__((target("amx-tile,amx-bf16")))
static double
run(int mode, const uint16_t *x, const uint16_t *w, float *acc)
{
	const long	blocks = 20000;
	double		best = 0;
	int			rep;

	for (rep = 0; rep < 10; rep++)
	{
		double		t0 = cpu_now(),
					dt;
		long		i;

		for (i = 0; i < blocks; i++)
		{
			int			nb = i % 8,
						mb = (i / 8) % 32;

			if (mode == 0)
			{
				int			s;

				for (s = 0; s < 8; s++)
				{
					_tile_dpbf16ps(0, 4, 6);
					_tile_dpbf16ps(1, 4, 7);
					_tile_dpbf16ps(2, 5, 6);
					_tile_dpbf16ps(3, 5, 7);
				}
				continue;
			}
			if (mode == 4 || mode == 7)
				acc_load(acc + (size_t) (i % 2) * 1024);
			if (mode == 6)
			{
				_tile_zero(0);
				_tile_zero(1);
				_tile_zero(2);
				_tile_zero(3);
			}
			if (mode == 5 && i == 0)
			{
				/* later blocks are loaded by the previous one's hand-off */
				acc_load(acc);
			}
			if (mode == 2)
				acc_load(acc + ((size_t) mb * 8 + nb) * 1024);
			if (mode == 3)
				ksteps(x + (size_t) (i % 64) * 16 * TILE, x + (size_t) (i % 64) * 16 * TILE + 8 * TILE,
					   w + (size_t) (i % 64) * 16 * TILE, 8);
			else
				ksteps(x, x + 8 * TILE, w + (size_t) nb * 16 * TILE, 8);
			if (mode == 4)
				acc_store(acc + (size_t) (i % 2) * 1024);
			if (mode == 6)
				acc_store(acc + ((size_t) mb * 8 + nb) * 1024);
			if (mode == 5)
			{
				float	   *c = acc + ((size_t) mb * 8 + nb) * 1024;
				float	   *n = acc + ((size_t) (((i + 1) / 8) % 32) * 8 + (i + 1) % 8) * 1024;

				_tile_stored(0, c, 128);
				_tile_loadd(0, n, 128);
				_tile_stored(1, c + 16, 128);
				_tile_loadd(1, n + 16, 128);
				_tile_stored(2, c + 512, 128);
				_tile_loadd(2, n + 512, 128);
				_tile_stored(3, c + 528, 128);
				_tile_loadd(3, n + 528, 128);
			}
			if (mode == 2)
				acc_store(acc + ((size_t) mb * 8 + nb) * 1024);
		}
		dt = cpu_now() - t0;
		if (blocks * 8 * 4 * 16384.0 / dt * 1e-9 > best)
			best = blocks * 8 * 4 * 16384.0 / dt * 1e-9;
	}
	return best;
}

/*
 * run_wide
 *		The 16 x 64 accumulator block (tiles 0-3 side by side: one x tile,
 *		four W tiles per k-step, W loaded into tiles 5-7 and 4 after x in
 *		4): mode 8, W (64 columns x 8 k-steps, 32 KB) in L1 and x tiles
 *		streaming from a 1 MB buffer (L2), accumulators loaded and stored
 *		every 8 k-steps from a 1 MB buffer; mode 9, the same without the
 *		accumulator traffic.  Returns GFLOP/s per CPU-second.
 */
__attribute__((target("amx-tile,amx-bf16")))
static double
run_wide(int mode, const uint16_t *x, const uint16_t *w, float *acc)
{
	const long	blocks = 20000;
	double		best = 0;
	int			rep;

	for (rep = 0; rep < 10; rep++)
	{
		double		t0 = cpu_now(),
					dt;
		long		i;

		for (i = 0; i < blocks; i++)
		{
			const uint16_t *xb = x + (size_t) (i % 128) * 8 * TILE;
			float	   *c = acc + (size_t) (i % 256) * 1024;
			int			s;

			if (mode == 8)
			{
				_tile_loadd(0, c, 256);
				_tile_loadd(1, c + 16, 256);
				_tile_loadd(2, c + 32, 256);
				_tile_loadd(3, c + 48, 256);
			}
			for (s = 0; s < 8; s++)
			{
				const uint16_t *wb = w + (size_t) s * 4 * TILE;

				_tile_loadd(4, xb + (size_t) s * TILE, 64);
				_tile_loadd(5, wb, 64);
				_tile_dpbf16ps(0, 4, 5);
				_tile_loadd(6, wb + TILE, 64);
				_tile_dpbf16ps(1, 4, 6);
				_tile_loadd(7, wb + 2 * TILE, 64);
				_tile_dpbf16ps(2, 4, 7);
				_tile_loadd(5, wb + 3 * TILE, 64);
				_tile_dpbf16ps(3, 4, 5);
			}
			if (mode == 8)
			{
				_tile_stored(0, c, 256);
				_tile_stored(1, c + 16, 256);
				_tile_stored(2, c + 32, 256);
				_tile_stored(3, c + 48, 256);
			}
		}
		dt = cpu_now() - t0;
		if (blocks * 8 * 4 * 16384.0 / dt * 1e-9 > best)
			best = blocks * 8 * 4 * 16384.0 / dt * 1e-9;
	}
	return best;
}

__attribute__((target("amx-tile,amx-bf16")))
int
main(void)
{
	static const char *names[] = {"registers", "x in L1, W in L2",
	"x in L1, W in L2, + accumulators", "x and W in L2",
	"accumulators in L1", "accumulators interleaved", "accumulators zeroed + stored",
	"accumulators in L1, loaded only",
	"16 x 64: W in L1, x in L2, + accumulators", "16 x 64: W in L1, x in L2"};
	size_t		mb = (size_t) 1 << 20;
	uint16_t   *x = aligned_alloc(4096, mb),
			   *w = aligned_alloc(4096, mb);
	float	   *acc = aligned_alloc(4096, mb);
	int			i;

	if (x == NULL || w == NULL || acc == NULL)
		return 1;
	if (!amx_bench_usable())
	{
		printf("skip: no usable AMX on this CPU / kernel\n");
		return 0;
	}
	/* touch everything: untouched pages all map to one zero page */
	memset(x, 1, mb);
	memset(w, 1, mb);
	memset(acc, 0, mb);
	amx_bench_load_config();
	for (i = 0; i < 10; i++)
	{
		_tile_zero(0);
		_tile_zero(1);
		_tile_zero(2);
		_tile_zero(3);
		_tile_loadd(4, x, 64);
		_tile_loadd(5, x + TILE, 64);
		_tile_loadd(6, w, 64);
		_tile_loadd(7, w + TILE, 64);
		printf("%-36s %6.0f GFLOP/s per CPU-second\n", names[i], i < 8 ? run(i, x, w, acc) : run_wide(i, x, w, acc));
	}
	_tile_release();
	free(x);
	free(w);
	free(acc);
	return 0;
}
