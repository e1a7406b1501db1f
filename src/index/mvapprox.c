/*
 * mvapprox.c
 *	  The inner loops of the approximate stage, for one document's tokens
 *	  and a block of MVIVF_ROW_BLOCK query rows at a time.
 *
 * Centroid interaction (every live document):
 *	acc[i] = max(acc[i], ST[list][i])
 * Quantized MaxSim (the documents the centroid interaction ranks best):
 *	acc[i] = max(acc[i], ST[list][i] + sum over code bytes b of
 *	                     lut[b][code[b]][i])
 * where ST[list][i] is query row i . centroid and lut[b][v][i] the
 * contribution of code byte value v at byte b to query row i . residual.
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
 * TokenList
 *		The centroid number of token t of a group whose tokens start at tok
 *		(PG_UINT16_MAX + 1 marks a bad one), and where its code is: a group
 *		stores its n centroid numbers, then its n codes.
 */
static inline uint32
TokenList(const MvivfApproxState * st, const char *tok, int n, int t,
		  const uint8 **code)
{
	uint16		list;

	memcpy(&list, tok + (Size) t * sizeof(uint16), sizeof(uint16));
	*code = (const uint8 *) tok + (Size) n * sizeof(uint16) + (Size) t * st->codeSize;
	return list < st->nlists ? list : PG_UINT16_MAX + 1;
}

static void
CentroidTokensPortable(const MvivfApproxState * st, float *acc, const char *tok, int n)
{
	int			blk;

	for (blk = 0; blk < st->nqPad; blk += MVIVF_ROW_BLOCK)
	{
		float		a[MVIVF_ROW_BLOCK];
		int			t;
		int			j;

		memcpy(a, acc + blk, sizeof(a));
		for (t = 0; t < n; t++)
		{
			const uint8 *code;
			uint32		list = TokenList(st, tok, n, t, &code);
			const float *c;

			if (list > PG_UINT16_MAX)
				continue;
			c = st->ST + (Size) list * st->nqPad + blk;
			for (j = 0; j < MVIVF_ROW_BLOCK; j++)
				a[j] = Max(c[j], a[j]);
		}
		memcpy(acc + blk, a, sizeof(a));
	}
}

static void
ScoreTokensPortable(const MvivfApproxState * st, float *acc, const char *tok, int n)
{
	int			blk;

	for (blk = 0; blk < st->nqPad; blk += MVIVF_ROW_BLOCK)
	{
		float		a[MVIVF_ROW_BLOCK];
		int			t;

		memcpy(a, acc + blk, sizeof(a));
		for (t = 0; t < n; t++)
		{
			const uint8 *code;
			uint32		list = TokenList(st, tok, n, t, &code);
			float		s[MVIVF_ROW_BLOCK];
			int			b;
			int			j;

			if (list > PG_UINT16_MAX)
				continue;
			memcpy(s, st->ST + (Size) list * st->nqPad + blk, sizeof(s));
			for (b = 0; b < st->codeSize; b++)
			{
				const float *lv = st->lut + ((Size) b * 256 + code[b]) * st->nqPad + blk;

				for (j = 0; j < MVIVF_ROW_BLOCK; j++)
					s[j] += lv[j];
			}
			for (j = 0; j < MVIVF_ROW_BLOCK; j++)
				a[j] = Max(s[j], a[j]);
		}
		memcpy(acc + blk, a, sizeof(a));
	}
}

#ifdef MVIVF_HAVE_AVX512
static __attribute__((target("avx512f"))) void
CentroidTokensAvx512(const MvivfApproxState * st, float *acc, const char *tok, int n)
{
	int			blk;

	for (blk = 0; blk < st->nqPad; blk += MVIVF_ROW_BLOCK)
	{
		__m512		a = _mm512_loadu_ps(acc + blk);
		int			t;

		for (t = 0; t < n; t++)
		{
			const uint8 *code;
			uint32		list = TokenList(st, tok, n, t, &code);

			if (list > PG_UINT16_MAX)
				continue;
			a = _mm512_max_ps(_mm512_loadu_ps(st->ST + (Size) list * st->nqPad + blk), a);
		}
		_mm512_storeu_ps(acc + blk, a);
	}
}

static __attribute__((target("avx512f"))) void
ScoreTokensAvx512(const MvivfApproxState * st, float *acc, const char *tok, int n)
{
	int			codeSize = st->codeSize;
	int			nqPad = st->nqPad;
	int			blk;

	for (blk = 0; blk < nqPad; blk += MVIVF_ROW_BLOCK)
	{
		__m512		a = _mm512_loadu_ps(acc + blk);
		const float *lut = st->lut + blk;
		int			t;

		for (t = 0; t < n; t++)
		{
			const uint8 *code;
			uint32		list = TokenList(st, tok, n, t, &code);
			__m512		s;
			int			b;

			if (list > PG_UINT16_MAX)
				continue;
			s = _mm512_loadu_ps(st->ST + (Size) list * nqPad + blk);
			for (b = 0; b < codeSize; b++)
				s = _mm512_add_ps(s, _mm512_loadu_ps(lut + ((Size) b * 256 + code[b]) * nqPad));
			a = _mm512_max_ps(s, a);
		}
		_mm512_storeu_ps(acc + blk, a);
	}
}
#endif

/*
 * MvivfCentroidTokens
 *		Fold n tokens of one document into its centroid-interaction maxima.
 */
void
MvivfCentroidTokens(const MvivfApproxState * st, float *acc, const char *tok, int n)
{
#ifdef MVIVF_HAVE_AVX512
	if (MvivfCpuHasAvx512())
	{
		CentroidTokensAvx512(st, acc, tok, n);
		return;
	}
#endif
	CentroidTokensPortable(st, acc, tok, n);
}

/*
 * MvivfScoreTokens
 *		Fold n tokens of one document into its quantized-MaxSim maxima.
 */
void
MvivfScoreTokens(const MvivfApproxState * st, float *acc, const char *tok, int n)
{
#ifdef MVIVF_HAVE_AVX512
	if (MvivfCpuHasAvx512())
	{
		ScoreTokensAvx512(st, acc, tok, n);
		return;
	}
#endif
	ScoreTokensPortable(st, acc, tok, n);
}
