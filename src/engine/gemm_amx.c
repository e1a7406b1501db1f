/*
 * gemm_amx.c
 *	  bf16 GEMM on AMX tiles; see gemm_amx.h.
 *
 * One TDPBF16PS multiplies a 16 x 32 bf16 tile of x by a 32 x 16 tile of W
 * (stored as 16 rows of 16 k-pairs) into a 16 x 16 fp32 tile: 8,192
 * multiply-adds, an order of magnitude more per cycle than AVX512_BF16.
 * Products of bf16 values are exact in fp32 and summed in fp32, as in the
 * AVX512_BF16 kernel, so both give the same results up to summation order.
 *
 * Eight tile registers: four accumulators (a 32 x 32 block of y), two
 * tiles of x and two of W.  The weights are packed once at load into the
 * layout a W tile is loaded from (k-pair rows of 64 columns, a 256-byte
 * stride), so a GEMM reads them as a stream; x is rounded into a
 * zero-padded bf16 copy per GEMM.  Loop order: a group of
 * CP_AMX_GROUP_N columns, a k-block of KC (the group's W block, 512 KB,
 * stays in L2), a block of 32 rows (its 64 KB of x stay in L1/L2 while
 * the group's column blocks pass), 32 columns.  The partial sums of the
 * group live in cbuf between k-blocks.  x is thus read once per group of
 * columns, W once per GEMM: with 32 columns at a time instead, x (4 to
 * 34 MB for a page) was read hundreds of times per GEMM and the kernel
 * ran at memory speed.
 *
 * Linux hands out the AMX register state (8 KB per thread) only to a
 * process that asked for it with arch_prctl(ARCH_REQ_XCOMP_PERM); without
 * that the first tile instruction kills the process, so
 * cp_cpu_amx_bf16_usable asks first and says no when refused.
 */
#include <immintrin.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gemm_amx.h"
#include "gemm_bf16.h"

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* k per block of the W columns kept in L2 (512 pairs x 256 columns x 4 B). */
#define KC 1024

static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static bool amx_usable;

static void
amx_probe(void)
{
	unsigned int eax,
				ebx,
				ecx,
				edx;

	/* CPUID.(EAX=7, ECX=0):EDX bit 22 = AMX-BF16, bit 24 = AMX-TILE */
	__asm__ __volatile__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx)
						 : "a"(7), "c"(0));
	if (!(edx & (1u << 22)) || !(edx & (1u << 24)))
		return;
	if (!cp_cpu_has_avx512bf16())	/* the edge kernels */
		return;
	amx_usable = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM,
						 XFEATURE_XTILEDATA) == 0;
}

bool
cp_cpu_amx_bf16_usable(void)
{
	pthread_once(&amx_once, amx_probe);
	return amx_usable;
}

size_t
cp_amx_packed_words(int N, int K)
{
	size_t		panels = (size_t) (N + CP_BF16_PANEL_N - 1) / CP_BF16_PANEL_N;

	return panels * (size_t) (cp_amx_padded_k(K) / 2) * CP_BF16_PANEL_N;
}

void
cp_amx_pack_weights(const uint16_t *w, int N, int K, uint32_t *dst,
					int threads)
{
	int			kp = cp_amx_padded_k(K),
				pairs = kp / 2,
				full = K / 2;
	int			n0;

#pragma omp parallel for num_threads(threads) schedule(static)
	for (n0 = 0; n0 < N; n0 += CP_BF16_PANEL_N)
	{
		int			ncols = (N - n0 < CP_BF16_PANEL_N) ? N - n0 : CP_BF16_PANEL_N;
		uint32_t   *pan = dst + (size_t) (n0 / CP_BF16_PANEL_N) * pairs * CP_BF16_PANEL_N;
		int			p0;

		/* whole pairs, through the AVX-512 transposing packer */
		for (p0 = 0; p0 < full; p0 += CP_BF16_PANEL_K / 2)
		{
			int			np = (full - p0 < CP_BF16_PANEL_K / 2) ? full - p0 : CP_BF16_PANEL_K / 2;

			cp_bf16_pack_panel(w, K, n0, ncols, p0, np,
							   pan + (size_t) p0 * CP_BF16_PANEL_N);
		}
		/* odd K's last half pair, then zero pairs up to Kp */
		memset(pan + (size_t) full * CP_BF16_PANEL_N, 0,
			   sizeof(uint32_t) * (size_t) (pairs - full) * CP_BF16_PANEL_N);
		if (K % 2 == 1)
		{
			int			c;

			for (c = 0; c < ncols; c++)
				pan[(size_t) full * CP_BF16_PANEL_N + c] =
					w[(size_t) (n0 + c) * K + K - 1];
		}
	}
}

/* The tile configuration: palette 1, every tile 16 rows of 64 bytes. */
typedef struct TileConfig
{
	uint8_t		palette;
	uint8_t		start_row;
	uint8_t		reserved[14];
	uint16_t	colsb[16];
	uint8_t		rows[16];
} TileConfig;

__attribute__((target("amx-tile")))
static void
load_tile_config(void)
{
	TileConfig	cfg __attribute__((aligned(64)));
	int			i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.palette = 1;
	for (i = 0; i < 8; i++)
	{
		cfg.rows[i] = 16;
		cfg.colsb[i] = 64;
	}
	_tile_loadconfig(&cfg);
}

/*
 * cp_gemm_amx_bf16
 *		See gemm_amx.h and the file header.  Tiles: 0-3 accumulate y
 *		(rows 0-15 / 16-31 by columns 0-15 / 16-31), 4-5 x, 6-7 W.
 */
__attribute__((target("amx-tile,amx-bf16")))
void
cp_gemm_amx_bf16(const uint16_t *xa, int ldx, int M, int Kp,
				 const uint32_t *packed, int n0, int n1, float *y, int ldy,
				 bool add, float *cbuf)
{
	int			mp = (M + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK * CP_AMX_BLOCK;
	size_t		panel_words = (size_t) (Kp / 2) * CP_BF16_PANEL_N;
	size_t		xstride = (size_t) ldx * sizeof(uint16_t);
	const size_t cstride = CP_AMX_BLOCK * sizeof(float);
	const size_t wstride = CP_BF16_PANEL_N * sizeof(uint32_t);
	int			g0;

	load_tile_config();
	for (g0 = n0; g0 < n1; g0 += CP_AMX_GROUP_N)
	{
		int			g1 = (n1 - g0 < CP_AMX_GROUP_N) ? n1 : g0 + CP_AMX_GROUP_N;
		int			kb,
					nb;

		for (kb = 0; kb < Kp; kb += KC)
		{
			int			ke = (Kp - kb < KC) ? Kp : kb + KC;
			int			mb;

			for (mb = 0; mb < mp; mb += CP_AMX_BLOCK)
			{
				const uint16_t *x0 = xa + (size_t) mb * ldx;
				const uint16_t *x1 = x0 + (size_t) 16 * ldx;

				for (nb = g0; nb < g1; nb += CP_AMX_BLOCK)
				{
					const uint32_t *wp = packed + (size_t) (nb / CP_BF16_PANEL_N) * panel_words +
						nb % CP_BF16_PANEL_N;
					float	   *cb = cbuf + (size_t) ((nb - g0) / CP_AMX_BLOCK) * mp * CP_AMX_BLOCK +
						(size_t) mb * CP_AMX_BLOCK;
					int			k;

					if (kb == 0)
					{
						_tile_zero(0);
						_tile_zero(1);
						_tile_zero(2);
						_tile_zero(3);
					}
					else
					{
						_tile_loadd(0, cb, cstride);
						_tile_loadd(1, cb + 16, cstride);
						_tile_loadd(2, cb + 16 * CP_AMX_BLOCK, cstride);
						_tile_loadd(3, cb + 16 * CP_AMX_BLOCK + 16, cstride);
					}
					for (k = kb; k < ke; k += CP_AMX_K_STEP)
					{
						const uint32_t *wk = wp + (size_t) (k / 2) * CP_BF16_PANEL_N;

						_tile_loadd(4, x0 + k, xstride);
						_tile_loadd(5, x1 + k, xstride);
						_tile_loadd(6, wk, wstride);
						_tile_loadd(7, wk + 16, wstride);
						_tile_dpbf16ps(0, 4, 6);
						_tile_dpbf16ps(1, 4, 7);
						_tile_dpbf16ps(2, 5, 6);
						_tile_dpbf16ps(3, 5, 7);
					}
					_tile_stored(0, cb, cstride);
					_tile_stored(1, cb + 16, cstride);
					_tile_stored(2, cb + 16 * CP_AMX_BLOCK, cstride);
					_tile_stored(3, cb + 16 * CP_AMX_BLOCK + 16, cstride);
				}
			}
		}
		for (nb = g0; nb < g1; nb += CP_AMX_BLOCK)
		{
			const float *cb = cbuf + (size_t) ((nb - g0) / CP_AMX_BLOCK) * mp * CP_AMX_BLOCK;
			int			ncols = (g1 - nb < CP_AMX_BLOCK) ? g1 - nb : CP_AMX_BLOCK;
			int			m;

			for (m = 0; m < M; m++)
			{
				const float *src = cb + (size_t) m * CP_AMX_BLOCK;
				float	   *dst = y + (size_t) m * ldy + nb;
				int			j;

				if (add)
					for (j = 0; j < ncols; j++)
						dst[j] += src[j];
				else
					memcpy(dst, src, sizeof(float) * ncols);
			}
		}
	}
	_tile_release();
}
