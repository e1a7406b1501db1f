/*
 * gemm_bf16.c
 *	  bf16 GEMM for the CPU backend's opt-in bf16 precision.
 *
 * VDPBF16PS multiplies 16 pairs of bf16 values and adds both products of
 * a pair into one fp32 lane: twice the products per instruction of an fp32
 * FMA, at the same throughput on Zen 4 (measured: 1 zmm instruction per
 * cycle each, so 2x the FLOP peak).  A product of two bf16 values (8-bit
 * significands) is exact in fp32, so the only rounding beyond fp32's own is
 * the activations' rounding to bf16 (relative 2^-9); weights stored as bf16
 * in the checkpoint are used exactly.
 *
 * Layout.  A pair is two consecutive k of one row, one 32-bit word.  The
 * weights [N, K] are repacked, one panel of 64 columns by CP_BF16_PANEL_K
 * k at a time, into [k/2][64 columns] words, so that one k-pair of the
 * panel is four 64-byte vectors; the activations are read as they are
 * ([M, K] bf16, a pair broadcast to all lanes).  The micro-kernel keeps a
 * 6 x 64 block of y in 24 registers.  Packing costs one pass over the
 * weights per GEMM (1/M of the arithmetic), so the weights stay as mapped
 * and shared through the page cache.
 */
#include <immintrin.h>
#include <string.h>

#include "gemm_bf16.h"
#include "dtype.h"

/* Rows of y per micro-kernel call (6 x 4 accumulators + 4 weight vectors). */
#define TILE_M 6

/* A k-pair of bf16 read as one word from a uint16_t array. */
typedef uint32_t bf16_pair __attribute__((may_alias));

bool
cp_cpu_has_avx512bf16(void)
{
	return __builtin_cpu_supports("avx512f") &&
		__builtin_cpu_supports("avx512bf16");
}

__attribute__((target("avx512f,avx512bf16")))
static void
f32_to_bf16_avx512(const float *src, uint16_t *dst, size_t n)
{
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m256bh	h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));

		_mm256_storeu_si256((__m256i *) (dst + i), (__m256i) h);
	}
	for (; i < n; i++)
		dst[i] = cp_f32_to_bf16(src[i]);
}

void
cp_round_to_bf16(const float *src, uint16_t *dst, size_t n)
{
	size_t		i;

	if (cp_cpu_has_avx512bf16())
	{
		f32_to_bf16_avx512(src, dst, n);
		return;
	}
	for (i = 0; i < n; i++)
		dst[i] = cp_f32_to_bf16(src[i]);
}

/*
 * transpose_16x16
 *		pack[q][c0 + r] = word q of row r, for 16 rows of 16 words each
 *		(rows[r] point at the first word, any alignment): the classic
 *		three rounds of interleaving (32-bit, 64-bit, then 128-bit lanes
 *		twice).
 */
__attribute__((target("avx512f")))
static inline void
transpose_16x16(const uint16_t *const *rows, uint32_t *pack, int c0)
{
	__m512i		r[16],
				t[16];
	int			i;

#pragma GCC unroll 16
	for (i = 0; i < 16; i++)
		r[i] = _mm512_loadu_si512((const void *) rows[i]);
#pragma GCC unroll 8
	for (i = 0; i < 16; i += 2)
	{
		t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
	}
#pragma GCC unroll 4
	for (i = 0; i < 16; i += 4)
	{
		r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
		r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
		r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
		r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
	}
	/*
	 * Now r[4g + j] holds, in 128-bit lane l, words 4l + {j', ...} of rows
	 * 4g..4g+3; gather lane l of the four groups into output word rows.
	 */
#pragma GCC unroll 4
	for (i = 0; i < 4; i++)
	{
		t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
		t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
		t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
		t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
	}
#pragma GCC unroll 4
	for (i = 0; i < 4; i++)
	{
		__m512i		a = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
		__m512i		b = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
		__m512i		c = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
		__m512i		d = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);

		_mm512_store_si512((void *) (pack + (size_t) (i) * CP_BF16_PANEL_N + c0), a);
		_mm512_store_si512((void *) (pack + (size_t) (i + 4) * CP_BF16_PANEL_N + c0), b);
		_mm512_store_si512((void *) (pack + (size_t) (i + 8) * CP_BF16_PANEL_N + c0), c);
		_mm512_store_si512((void *) (pack + (size_t) (i + 12) * CP_BF16_PANEL_N + c0), d);
	}
}

/*
 * cp_bf16_pack_panel
 *		See gemm_bf16.h.  Columns [n0, n0 + ncols) and k-pairs [p0, p0 + npairs) of w [*, K]
 *		into pack[p][c] (64 words per pair; columns past ncols are zero).
 *		Full blocks of 16 columns x 16 pairs are transposed in registers,
 *		the rest word by word.
 */
__attribute__((target("avx512f")))
void
cp_bf16_pack_panel(const uint16_t *w, int K, int n0, int ncols, int p0, int npairs,
		   uint32_t *pack)
{
	int			c,
				p,
				full_p = npairs - npairs % 16,
				full_c = ncols - ncols % 16;

	for (c = 0; c < full_c; c += 16)
	{
		const uint16_t *rows[16];
		int			i;

		for (i = 0; i < 16; i++)
			rows[i] = w + (size_t) (n0 + c + i) * K + 2 * (size_t) p0;
		for (p = 0; p < full_p; p += 16)
		{
			const uint16_t *at[16];

			for (i = 0; i < 16; i++)
				at[i] = rows[i] + 2 * p;
			transpose_16x16(at, pack + (size_t) p * CP_BF16_PANEL_N, c);
		}
		for (i = 0; i < 16; i++)
			for (p = full_p; p < npairs; p++)
			{
				uint32_t	word;

				memcpy(&word, rows[i] + 2 * p, sizeof(word));
				pack[(size_t) p * CP_BF16_PANEL_N + c + i] = word;
			}
	}
	for (c = full_c; c < ncols; c++)
	{
		const uint16_t *src = w + (size_t) (n0 + c) * K + 2 * (size_t) p0;

		for (p = 0; p < npairs; p++)
		{
			uint32_t	word;

			memcpy(&word, src + 2 * p, sizeof(word));	/* w may be 2-aligned */
			pack[(size_t) p * CP_BF16_PANEL_N + c] = word;
		}
	}
	for (; c < CP_BF16_PANEL_N; c++)
		for (p = 0; p < npairs; p++)
			pack[(size_t) p * CP_BF16_PANEL_N + c] = 0;
}

/*
 * micro_tile
 *		y[0..rows, 0..64) (+)= x[0..rows, pairs] . pack over npairs k-pairs.
 *		x rows are ldx bf16 apart (4-byte aligned); rows past the last one
 *		repeat it and are not stored; mask[j] selects the live columns of
 *		vector j.
 */
__attribute__((target("avx512f,avx512bf16")))
static void
micro_tile(const uint16_t *x, int ldx, int rows, const uint32_t *pack,
		   int npairs, float *y, int ldy, const __mmask16 *mask, bool load)
{
	const bf16_pair *xr[TILE_M];
	__m512		acc[TILE_M][4];
	int			i,
				j,
				p;

	for (i = 0; i < TILE_M; i++)
	{
		xr[i] = (const bf16_pair *) (x + (size_t) (i < rows ? i : rows - 1) * ldx);
		for (j = 0; j < 4; j++)
			acc[i][j] = (load && i < rows) ?
				_mm512_maskz_loadu_ps(mask[j], y + (size_t) i * ldy + 16 * j) :
				_mm512_setzero_ps();
	}
	for (p = 0; p < npairs; p++)
	{
		const uint32_t *bp = pack + (size_t) p * CP_BF16_PANEL_N;
		__m512bh	b[4];

#pragma GCC unroll 4
		for (j = 0; j < 4; j++)
			b[j] = (__m512bh) _mm512_load_si512((const void *) (bp + 16 * j));
#pragma GCC unroll 6
		for (i = 0; i < TILE_M; i++)
		{
			__m512bh	a = (__m512bh) _mm512_set1_epi32((int) xr[i][p]);

#pragma GCC unroll 4
			for (j = 0; j < 4; j++)
				acc[i][j] = _mm512_dpbf16_ps(acc[i][j], a, b[j]);
		}
	}
	for (i = 0; i < rows; i++)
		for (j = 0; j < 4; j++)
			_mm512_mask_storeu_ps(y + (size_t) i * ldy + 16 * j, mask[j],
								  acc[i][j]);
}

/*
 * cp_gemm_bf16_cols
 *		See gemm_bf16.h.  Loop order: panel of 64 columns, k-block, rows;
 *		the packed panel (128 KB) stays in L2 while all rows of x stream
 *		past it.
 */
__attribute__((target("avx512f,avx512bf16")))
void
cp_gemm_bf16_cols(const uint16_t *xb, int M, int K, const uint16_t *w,
				  int n0, int n1, float *y, int ldy, bool add, uint32_t *pack)
{
	int			n;

	for (n = n0; n < n1; n += CP_BF16_PANEL_N)
	{
		int			ncols = (n1 - n < CP_BF16_PANEL_N) ? n1 - n : CP_BF16_PANEL_N;
		__mmask16	mask[4];
		int			j,
					k0;

		for (j = 0; j < 4; j++)
		{
			int			live = ncols - 16 * j;

			mask[j] = live >= 16 ? (__mmask16) 0xffff :
				(live <= 0 ? (__mmask16) 0 : (__mmask16) ((1u << live) - 1));
		}
		for (k0 = 0; k0 < K; k0 += CP_BF16_PANEL_K)
		{
			int			kc = (K - k0 < CP_BF16_PANEL_K) ? K - k0 : CP_BF16_PANEL_K;
			bool		load = add || k0 > 0;
			int			m;

			cp_bf16_pack_panel(w, K, n, ncols, k0 / 2, kc / 2, pack);
			for (m = 0; m < M; m += TILE_M)
				micro_tile(xb + (size_t) m * K + k0, K,
						   (M - m < TILE_M) ? M - m : TILE_M, pack, kc / 2,
						   y + (size_t) m * ldy + n, ldy, mask, load);
		}
	}
}

/* Rows of w per block of the few-rows kernel, and its k-chunk. */
#define FEW_N 6
#define FEW_KC 4096

/*
 * cp_gemm_bf16_few_rows
 *		See gemm_bf16.h.  Blocks of 4 rows of x by FEW_N rows of w, each
 *		pair of rows a dot product along k held in one register (32 k per
 *		VDPBF16PS) and reduced at the end of a k-chunk; the last partial
 *		step loads only the live pairs.  Out-of-range rows repeat the last
 *		one and are dropped.
 */
__attribute__((target("avx512f,avx512bf16")))
void
cp_gemm_bf16_few_rows(const uint16_t *xb, int M, int K, const uint16_t *w,
					  int n0, int n1, float *y, int ldy, bool add)
{
	int			k0;

	for (k0 = 0; k0 < K; k0 += FEW_KC)
	{
		int			k1 = (K - k0 < FEW_KC) ? K : k0 + FEW_KC;
		bool		first = (k0 == 0 && !add);
		int			n;

		for (n = n0; n < n1; n += FEW_N)
		{
			const uint16_t *wr[FEW_N];
			int			m,
						j;

			for (j = 0; j < FEW_N; j++)
				wr[j] = w + (size_t) (n + j < n1 ? n + j : n1 - 1) * K;
			for (m = 0; m < M; m += 4)
			{
				const uint16_t *xr[4];
				__m512		acc[4][FEW_N];
				float		sums[4][FEW_N];
				int			i,
							k;

#pragma GCC unroll 4
				for (i = 0; i < 4; i++)
				{
					xr[i] = xb + (size_t) (m + i < M ? m + i : M - 1) * K;
#pragma GCC unroll 6
					for (j = 0; j < FEW_N; j++)
						acc[i][j] = _mm512_setzero_ps();
				}
				for (k = k0; k < k1; k += 32)
				{
					__mmask16	live = (k1 - k >= 32) ? (__mmask16) 0xffff :
						(__mmask16) ((1u << ((k1 - k) / 2)) - 1);
					__m512bh	xv[4];

#pragma GCC unroll 4
					for (i = 0; i < 4; i++)
						xv[i] = (__m512bh) _mm512_maskz_loadu_epi32(live, xr[i] + k);
#pragma GCC unroll 6
					for (j = 0; j < FEW_N; j++)
					{
						__m512bh	wv = (__m512bh) _mm512_maskz_loadu_epi32(live, wr[j] + k);

#pragma GCC unroll 4
						for (i = 0; i < 4; i++)
							acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv[i], wv);
					}
				}
				/*
				 * Reduce every accumulator with constant indices first, so
				 * that they stay in registers through the loop above.
				 */
#pragma GCC unroll 4
				for (i = 0; i < 4; i++)
#pragma GCC unroll 6
					for (j = 0; j < FEW_N; j++)
						sums[i][j] = _mm512_reduce_add_ps(acc[i][j]);
				for (i = 0; i < 4 && m + i < M; i++)
					for (j = 0; j < FEW_N && n + j < n1; j++)
					{
						float	   *yp = y + (size_t) (m + i) * ldy + n + j;

						*yp = first ? sums[i][j] : *yp + sums[i][j];
					}
			}
		}
	}
}
