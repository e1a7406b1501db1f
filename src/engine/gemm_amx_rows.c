/*
 * gemm_amx_rows.c
 *	  fp32 products of few rows (a query) on AMX tiles with the weights read
 *	  in place; see gemm_amx.h (cp_amx_pack_xt_split, cp_gemm_amx_split_rows).
 *
 * The product is computed transposed, y^T = W x^T: 16 rows of the bf16
 * weights as they lie in the mapping are an A tile, and x^T, split into its
 * bf16 terms and packed once per product in the "xt layout", is the B
 * operand.  No packed copy of the weights is needed, which is what a few-row
 * product wants: its time is one read of the weights.  The x^T part of a
 * k-block stays in L2 while the weight rows stream past.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "gemm_amx.h"
#include "gemm_amx_tiles.h"

/*
 * cp_amx_pack_xt_split
 *		See gemm_amx.h.  Each row's 32 values of a k-step are split into
 *		their terms, and each term's 16 pairs are scattered down the row's
 *		column of its B tile.
 */
__attribute__((target("avx512f,avx512bf16")))
void
cp_amx_pack_xt_split(const float *x, int M, int K, int terms, uint32_t *dst)
{
	const __m512i col = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112,
										  128, 144, 160, 176, 192, 208, 224, 240);
	int			steps = K / CP_AMX_K_STEP,
				mp = cp_amx_padded_m(M),
				m,
				s,
				t;

	for (m = 0; m < mp; m++)
	{
		size_t		blk = (size_t) (m / CP_AMX_BLOCK) * steps;
		int			half = (m % CP_AMX_BLOCK) / 16,
					c = m % 16;

		for (s = 0; s < steps; s++)
		{
			uint32_t   *d = dst + ((blk + s) * terms * 2 + half) * 256 + c;
			__m512		lo = _mm512_setzero_ps(),
						hi = _mm512_setzero_ps();

			if (m < M)
			{
				lo = _mm512_loadu_ps(x + (size_t) m * K + s * CP_AMX_K_STEP);
				hi = _mm512_loadu_ps(x + (size_t) m * K + s * CP_AMX_K_STEP + 16);
			}
			for (t = 0; t < terms; t++)
			{
				__m512i		b = (__m512i) _mm512_cvtne2ps_pbh(hi, lo);

				_mm512_i32scatter_epi32(d + (size_t) t * 2 * 256, col, b, 4);
				if (t + 1 < terms)
				{
					lo = _mm512_sub_ps(lo, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(b)), 16)));
					hi = _mm512_sub_ps(hi, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(b, 1)), 16)));
				}
			}
		}
	}
}

/* k-steps per k-block of cp_gemm_amx_split_rows: its x part stays in L2. */
#define ROWS_KC_STEPS 32

/*
 * amx_rows
 *		cp_gemm_amx_split_rows's body, inlined for each number of terms.
 *		Tiles: 0-3 accumulate y^T (W rows 0-15 / 16-31 of the block by x
 *		rows 0-15 / 16-31), 4-5 W (16 rows of 32 k each, read in place),
 *		6-7 one term of x^T.
 */
__attribute__((target("amx-tile,amx-bf16"), always_inline))
static inline void
amx_rows(const uint16_t *w, int K, const uint32_t *xt, int M, int terms,
		 int n0, int n1, float *y, int ldy, bool add, float *cbuf)
{
	int			steps = K / CP_AMX_K_STEP;
	int			nkb = (steps + ROWS_KC_STEPS - 1) / ROWS_KC_STEPS;
	int			kcs = (steps + nkb - 1) / nkb;
	int			mblocks = (M + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK;
	const size_t wstride = (size_t) K * sizeof(uint16_t);
	const size_t cstride = CP_AMX_BLOCK * sizeof(float);
	int			g0;

	cp_amx_load_tile_config();
	for (g0 = n0; g0 < n1; g0 += CP_AMX_GROUP_N)
	{
		int			g1 = (n1 - g0 < CP_AMX_GROUP_N) ? n1 : g0 + CP_AMX_GROUP_N;
		int			mb;

		for (mb = 0; mb < mblocks; mb++)
		{
			int			rows = M - mb * CP_AMX_BLOCK < CP_AMX_BLOCK ? M - mb * CP_AMX_BLOCK : CP_AMX_BLOCK;
			bool		two = rows > 16;
			int			kb,
						nb;

			for (kb = 0; kb < steps; kb += kcs)
			{
				int			ks = (steps - kb < kcs) ? steps - kb : kcs;

				for (nb = g0; nb < g1; nb += CP_AMX_BLOCK)
				{
					/* y^T row n (from g0) at cbuf + n * 32 */
					float	   *cb = cbuf + (size_t) (nb - g0) * CP_AMX_BLOCK;
					const uint16_t *wr = w + (size_t) nb * K;
					int			s,
								t;

					acc_tiles_start(kb == 0 ? NULL : cb, cstride, 16 * CP_AMX_BLOCK);
					for (s = kb; s < kb + ks; s++)
					{
						const uint32_t *xs = xt + ((size_t) mb * steps + s) * terms * 512;

						_tile_loadd(4, wr + (size_t) s * CP_AMX_K_STEP, wstride);
						_tile_loadd(5, wr + (size_t) 16 * K + (size_t) s * CP_AMX_K_STEP, wstride);
						for (t = 0; t < terms; t++)
						{
							_tile_loadd(6, xs + (size_t) t * 512, 64);
							_tile_dpbf16ps(0, 4, 6);
							_tile_dpbf16ps(2, 5, 6);
							if (two)
							{
								_tile_loadd(7, xs + (size_t) t * 512 + 256, 64);
								_tile_dpbf16ps(1, 4, 7);
								_tile_dpbf16ps(3, 5, 7);
							}
						}
					}
					_tile_stored(0, cb, cstride);
					_tile_stored(1, cb + 16, cstride);
					_tile_stored(2, cb + 16 * CP_AMX_BLOCK, cstride);
					_tile_stored(3, cb + 16 * CP_AMX_BLOCK + 16, cstride);
				}
			}
			/* y^T of the group's blocks into y */
			for (nb = 0; nb < g1 - g0; nb++)
			{
				const float *c = cbuf + (size_t) nb * CP_AMX_BLOCK;
				int			m;

				for (m = 0; m < rows; m++)
				{
					float	   *yp = y + (size_t) (mb * CP_AMX_BLOCK + m) * ldy + g0 + nb;

					*yp = add ? *yp + c[m] : c[m];
				}
			}
		}
	}
	_tile_release();
}

/*
 * cp_gemm_amx_split_rows
 *		See gemm_amx.h.
 */
__attribute__((target("amx-tile,amx-bf16")))
void
cp_gemm_amx_split_rows(const uint16_t *w, int K, const uint32_t *xt, int M,
					   int terms, int n0, int n1, float *y, int ldy, bool add,
					   float *cbuf)
{
	switch (terms)
	{
		case 2:
			amx_rows(w, K, xt, M, 2, n0, n1, y, ldy, add, cbuf);
			break;
		case 3:
			amx_rows(w, K, xt, M, 3, n0, n1, y, ldy, add, cbuf);
			break;
		default:
			amx_rows(w, K, xt, M, 1, n0, n1, y, ldy, add, cbuf);
			break;
	}
}
