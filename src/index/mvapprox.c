/*
 * mvapprox.c
 *	  The inner loop of the approximate stage: a document's quantized
 *	  MaxSim, token by token, for a block of query rows.
 *
 * For every token (centroid number, residual code) and query row i:
 *	s_i = ST[list][i] + sum over code bytes b of lut[b][code[b]][i]
 *	acc[i] = max(acc[i], s_i)
 * A token is skipped without decoding its code when no row's centroid score
 * plus that row's largest possible residual contribution (bound[i]) exceeds
 * acc[i]: it could not raise any maximum, so the result is the same.
 * An AVX-512 form (one register = MVIVF_ROW_BLOCK rows) is chosen at run
 * time; the portable form computes the same sums in the same order, so both
 * give the same floats.
 */
#include "postgres.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MVIVF_HAVE_AVX512 1
#endif

#include "mvivf.h"

/*
 * ScoreTokensPortable
 *		The portable form.
 */
static void
ScoreTokensPortable(MvivfApproxState * st, float *acc, const char *tok, int n)
{
	Size		tokSize = MvivfForwardTokenSize(st->codeSize);
	int			blk;

	for (blk = 0; blk < st->nqPad; blk += MVIVF_ROW_BLOCK)
	{
		float		a[MVIVF_ROW_BLOCK];
		int			t;

		memcpy(a, acc + blk, sizeof(a));
		for (t = 0; t < n; t++)
		{
			const char *p = tok + (Size) t * tokSize;
			const uint8 *code = (const uint8 *) p + sizeof(uint16);
			uint16		list;
			const float *c;
			float		s[MVIVF_ROW_BLOCK];
			bool		useful = false;
			int			b;
			int			j;

			memcpy(&list, p, sizeof(uint16));
			if (list >= st->nlists)
				continue;
			c = st->ST + (Size) list * st->nqPad + blk;
			for (j = 0; j < MVIVF_ROW_BLOCK; j++)
				useful |= c[j] + st->bound[blk + j] > a[j];
			if (!useful)
				continue;
			st->decoded++;
			memcpy(s, c, sizeof(s));
			for (b = 0; b < st->codeSize; b++)
			{
				const float *lv = st->lut + ((Size) b * 256 + code[b]) * st->nqPad + blk;

				for (j = 0; j < MVIVF_ROW_BLOCK; j++)
					s[j] += lv[j];
			}
			for (j = 0; j < MVIVF_ROW_BLOCK; j++)
				a[j] = Max(a[j], s[j]);
		}
		memcpy(acc + blk, a, sizeof(a));
	}
}

#ifdef MVIVF_HAVE_AVX512
/*
 * ScoreTokensAvx512
 *		The AVX-512 form: the same sums, 16 query rows per register.
 */
static __attribute__((target("avx512f"))) void
ScoreTokensAvx512(MvivfApproxState * st, float *acc, const char *tok, int n)
{
	Size		tokSize = MvivfForwardTokenSize(st->codeSize);
	int			codeSize = st->codeSize;
	int			nqPad = st->nqPad;
	int			blk;
	uint64		decoded = 0;

	for (blk = 0; blk < nqPad; blk += MVIVF_ROW_BLOCK)
	{
		__m512		a = _mm512_loadu_ps(acc + blk);
		__m512		bound = _mm512_loadu_ps(st->bound + blk);
		const float *lut = st->lut + blk;
		int			t;

		for (t = 0; t < n; t++)
		{
			const char *p = tok + (Size) t * tokSize;
			const uint8 *code = (const uint8 *) p + sizeof(uint16);
			uint16		list;
			__m512		s;
			int			b;

			memcpy(&list, p, sizeof(uint16));
			if (list >= st->nlists)
				continue;
			s = _mm512_loadu_ps(st->ST + (Size) list * nqPad + blk);
			if (_mm512_cmp_ps_mask(_mm512_add_ps(s, bound), a, _CMP_GT_OQ) == 0)
				continue;
			decoded++;
			for (b = 0; b < codeSize; b++)
				s = _mm512_add_ps(s, _mm512_loadu_ps(lut + ((Size) b * 256 + code[b]) * nqPad));
			a = _mm512_max_ps(a, s);
		}
		_mm512_storeu_ps(acc + blk, a);
	}
	st->decoded += decoded;
}
#endif

/*
 * MvivfScoreTokens
 *		Fold n tokens of one document into its per-row maxima acc.
 */
void
MvivfScoreTokens(MvivfApproxState * st, float *acc, const char *tok, int n)
{
#ifdef MVIVF_HAVE_AVX512
	static int	useAvx512 = -1;

	if (useAvx512 < 0)
	{
		__builtin_cpu_init();
		useAvx512 = __builtin_cpu_supports("avx512f") ? 1 : 0;
	}
	st->tokens += n;
	if (useAvx512)
	{
		ScoreTokensAvx512(st, acc, tok, n);
		return;
	}
#else
	st->tokens += n;
#endif
	ScoreTokensPortable(st, acc, tok, n);
}
