/*
 * gemm_f32.c
 *	  fp32 GEMM on bf16 weights as mapped (gemm_f32.h), AVX-512.
 *
 * Blocking, per call (the caller gives each thread its own columns): for
 * each k-block (of equal size, at most CP_F32W_KC) and each block of
 * CP_F32W_NC columns, the weights are gathered, widened and packed into
 * panels of 32 columns ([k][32], 768 KB for the block, resident in L2);
 * then every 12 rows of x, read in place (12 x 1.5 KB, resident in L1
 * while the block's panels pass; the caller gives x a row stride that is
 * not a multiple of 4 KB, or the 12 rows would share one set of L1), run against every column panel: 24 fp32
 * accumulators (12 rows x 2 vectors of 16 columns), two weight loads and
 * twelve broadcast FMA pairs per k.  The block of y is loaded and stored
 * once per k-block.  x is not copied, so a call may cover any columns
 * (the backend hands out blocks of columns to whichever thread is free).
 */
#include <immintrin.h>

#include "gemm_f32.h"

/*
 * pack_w
 *		Columns [c0, c0 + ncols) of w, k in [k0, k0 + kc) (k0 and kc even),
 *		widened to fp32 into panels of 32 columns: dst[p][k][j] =
 *		w[c0 + 32 p + j][k0 + k], zero past ncols.  A gather reads one
 *		32-bit word (a pair of consecutive k) from each of 16 columns.
 */
__attribute__((target("avx512f")))
static void
pack_w(const uint16_t *w, int K, int c0, int ncols, int k0, int kc, float *dst)
{
	const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8,
										  7, 6, 5, 4, 3, 2, 1, 0);
	const __m512i hi_mask = _mm512_set1_epi32((int) 0xFFFF0000u);
	int			panels = (ncols + CP_F32W_NR - 1) / CP_F32W_NR;
	int			p,
				h;

	for (p = 0; p < panels; p++)
		for (h = 0; h < 2; h++)
		{
			int			first = p * CP_F32W_NR + h * 16;
			int			valid = ncols - first;
			__mmask16	vm = valid >= 16 ? 0xFFFF : valid <= 0 ? 0 : (__mmask16) ((1u << valid) - 1);
			const int  *base = (const int *) (w + (size_t) (c0 + (valid > 0 ? first : 0)) * K + k0);
			__m512i		idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(K / 2));
			float	   *d = dst + (size_t) p * kc * CP_F32W_NR + h * 16;
			int			k;

			for (k = 0; k < kc; k += 2)
			{
				__m512i		g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), vm,
															idx, base, 4);

				_mm512_store_ps(d + (size_t) k * CP_F32W_NR,
								_mm512_castsi512_ps(_mm512_slli_epi32(g, 16)));
				_mm512_store_ps(d + (size_t) (k + 1) * CP_F32W_NR,
								_mm512_castsi512_ps(_mm512_and_si512(g, hi_mask)));
				idx = _mm512_add_epi32(idx, _mm512_set1_epi32(1));
			}
		}
}

/*
 * kernel_12x32
 *		y[i, j] (+)= sum_k x[i][k] * wp[k][j] for i < rows (<= 12), j <
 *		cols (<= 32), rows of x ldx floats apart (rows past the last valid
 *		one repeat it; their sums are dropped); with first, y is replaced
 *		instead.
 */
__attribute__((target("avx512f")))
static void
kernel_12x32(const float *x, size_t ldx, const float *wp, int kc, float *y,
			 int ldy, int rows, int cols, bool first)
{
	__m512		c[CP_F32W_MR][2];
	const float *xr[CP_F32W_MR];
	__mmask16	m0 = cols >= 16 ? 0xFFFF : (__mmask16) ((1u << cols) - 1);
	__mmask16	m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16) ((1u << (cols - 16)) - 1);
	int			i,
				k;

#pragma GCC unroll 12
	for (i = 0; i < CP_F32W_MR; i++)
	{
		xr[i] = x + (size_t) (i < rows ? i : rows - 1) * ldx;
		c[i][0] = _mm512_setzero_ps();
		c[i][1] = _mm512_setzero_ps();
	}
	for (k = 0; k < kc; k++)
	{
		__m512		b0 = _mm512_load_ps(wp + (size_t) k * CP_F32W_NR);
		__m512		b1 = _mm512_load_ps(wp + (size_t) k * CP_F32W_NR + 16);

#pragma GCC unroll 12
		for (i = 0; i < CP_F32W_MR; i++)
		{
			__m512		av = _mm512_set1_ps(xr[i][k]);

			c[i][0] = _mm512_fmadd_ps(av, b0, c[i][0]);
			c[i][1] = _mm512_fmadd_ps(av, b1, c[i][1]);
		}
	}
	for (i = 0; i < rows; i++)
	{
		float	   *yr = y + (size_t) i * ldy;

		if (!first)
		{
			c[i][0] = _mm512_add_ps(c[i][0], _mm512_maskz_loadu_ps(m0, yr));
			c[i][1] = _mm512_add_ps(c[i][1], _mm512_maskz_loadu_ps(m1, yr + 16));
		}
		_mm512_mask_storeu_ps(yr, m0, c[i][0]);
		_mm512_mask_storeu_ps(yr + 16, m1, c[i][1]);
	}
}

/*
 * cp_gemm_f32_bf16w
 *		See gemm_f32.h.
 */
void
cp_gemm_f32_bf16w(const float *x, size_t ldx, int M, int K, const uint16_t *w,
				  int n0, int n1, float *y, int ldy, bool add, float *scratch)
{
	/* k-blocks of equal, even size up to CP_F32W_KC (no short last block) */
	int			nkb = (K + CP_F32W_KC - 1) / CP_F32W_KC;
	int			kcb = ((K + nkb - 1) / nkb + 1) / 2 * 2;
	int			k0;

	for (k0 = 0; k0 < K; k0 += kcb)
	{
		int			kc = K - k0 < kcb ? K - k0 : kcb;
		bool		first = (k0 == 0 && !add);
		int			c0;

		for (c0 = n0; c0 < n1; c0 += CP_F32W_NC)
		{
			int			ncols = n1 - c0 < CP_F32W_NC ? n1 - c0 : CP_F32W_NC;
			int			m0;

			pack_w(w, K, c0, ncols, k0, kc, scratch);
			for (m0 = 0; m0 < M; m0 += CP_F32W_MR)
			{
				int			rows = M - m0 < CP_F32W_MR ? M - m0 : CP_F32W_MR;
				int			j;

				for (j = 0; j < ncols; j += CP_F32W_NR)
					kernel_12x32(x + (size_t) m0 * ldx + k0, ldx,
								 scratch + (size_t) (j / CP_F32W_NR) * kc * CP_F32W_NR,
								 kc, y + (size_t) m0 * ldy + c0 + j, ldy, rows,
								 ncols - j < CP_F32W_NR ? ncols - j : CP_F32W_NR,
								 first);
			}
		}
	}
}
