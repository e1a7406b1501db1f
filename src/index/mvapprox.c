/*
 * mvapprox.c
 *	  The inner loops of the approximate stage, for one document's tokens
 *	  and a block of MVIVF_ROW_BLOCK query rows at a time.
 *
 * Centroid interaction (every live document):
 *	acc[i] = max(acc[i], ST[list][i])
 * Quantized MaxSim (the documents the approximate order ranks best), in
 * 16-bit fixed point (MVIVF_FIXED_SCALE), 32 query rows per register:
 *	acc[i] = max(acc[i], STFixed[list][i] + sum over code bytes b of
 *	                     lut[b][byte b of the code][i])
 * where STFixed[list][i] is query row i . centroid and lut[b][v][i] the
 * contribution of value v of the code's b-th byte to query row i . residual,
 * the sum of the contributions of its two 4-bit nibbles (each rounded to
 * fixed point on its own); adds saturate.  Byte tables take 256 x 32 values
 * per byte (512 kB for a block of 32 query rows and a 128-d code of 2 bits),
 * which stay in the L2 cache of current x86 cores (1-2 MB), and halve the
 * loads and adds of nibble tables (16 x 32 values per nibble, 64 kB), which
 * the scan uses instead when byte tables do not fit in work_mem x
 * hash_mem_multiplier: the sums are the same.  Even and odd bytes (nibbles)
 * are summed in two chains (for instruction-level parallelism), then added.
 * Integer sums are exact, so the portable form gives the very same numbers.
 * Probing a document list (MvivfProbeEntries) raises the per-row maxima of
 * each listed document to the list's centroid scores.
 * The same loop also keeps the document's centroid interaction (ciAcc),
 * which the scan needs to calibrate what residuals add.
 * An AVX-512 form (one register = MVIVF_ROW_BLOCK rows) is chosen at run
 * time; the portable form computes the same sums in the same order, so both
 * give the same floats.
 * Where the CPU has AMX-INT8 or AVX-512 VNNI (and colpali.cpu_amx is on),
 * the quantized MaxSim runs in int8 instead (MvivfScoreTokensInt8, the
 * engine's maxsim_codes_amx.c and maxsim_codes_vnni.c, which give the same
 * numbers): codes decoded to int8 levels times the query rounded to int8,
 * in float, another approximation of the same score (its error is bounded
 * there, and is far below that of the residual codes themselves).
 */
#include "postgres.h"

#include <float.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MVIVF_HAVE_AVX512 1
#endif

#include "encode.h"
#include "maxsim_codes_amx.h"
#include "mvivf.h"

/*
 * TokenList
 *		The centroid number of token t of a run of tokens whose centroid
 *		numbers start at lists (PG_UINT16_MAX + 1 marks a bad one), and where
 *		its code is: the run's codes start at codes (right after the numbers
 *		in a mixed group of versions 2-3, in a group of their own since
 *		version 4; NULL where only the numbers are read).
 */
static inline uint32
TokenList(const MvivfApproxState * st, const char *lists, const uint8 *codes,
		  int t, const uint8 **code)
{
	uint16		list;

	memcpy(&list, lists + (Size) t * sizeof(uint16), sizeof(uint16));
	*code = codes + (Size) t * st->codeSize;
	return list < st->nlists ? list : PG_UINT16_MAX + 1;
}

/* the centroid number of token t of the run at lists, as TokenList */
static inline uint32
ListAt(const MvivfApproxState * st, const char *lists, int t)
{
	uint16		list;

	memcpy(&list, lists + (Size) t * sizeof(uint16), sizeof(uint16));
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
			uint32		list = ListAt(st, tok, t);
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
ScoreBytesPortable(const MvivfApproxState * st, int16 *acc, int16 *ciAcc,
					const char *tok, const uint8 *codes, int n)
{
	int			codeSize = st->codeSize;
	int			blk;

	for (blk = 0; blk < st->nqPadFixed; blk += MVIVF_FIXED_BLOCK)
	{
		const int16 *lut = st->lut + (Size) blk * codeSize * 256;
		int			t;

		for (t = 0; t < n; t++)
		{
			const uint8 *code;
			uint32		list = TokenList(st, tok, codes, t, &code);
			int16		s0[MVIVF_FIXED_BLOCK];
			int16		s1[MVIVF_FIXED_BLOCK];
			int			b;
			int			j;

			if (list > PG_UINT16_MAX)
				continue;
			memcpy(s0, st->STFixed + (Size) list * st->nqPadFixed + blk, sizeof(s0));
			for (j = 0; j < MVIVF_FIXED_BLOCK; j++)
			{
				ciAcc[blk + j] = Max(s0[j], ciAcc[blk + j]);
				s1[j] = 0;
			}
			for (b = 0; b < codeSize; b++)
			{
				const int16 *e = lut + ((Size) b * 256 + code[b]) * MVIVF_FIXED_BLOCK;
				int16	   *s = (b & 1) ? s1 : s0;

				for (j = 0; j < MVIVF_FIXED_BLOCK; j++)
					s[j] = MvivfSatAdd16(s[j], e[j]);
			}
			for (j = 0; j < MVIVF_FIXED_BLOCK; j++)
				acc[blk + j] = Max(MvivfSatAdd16(s0[j], s1[j]), acc[blk + j]);
		}
	}
}

static void
ScoreNibblesPortable(const MvivfApproxState * st, int16 *acc, int16 *ciAcc,
					const char *tok, const uint8 *codes, int n)
{
	int			nnib = 2 * st->codeSize;
	int			blk;

	for (blk = 0; blk < st->nqPadFixed; blk += MVIVF_FIXED_BLOCK)
	{
		const int16 *lut = st->lut + (Size) blk * nnib * 16;
		int			t;

		for (t = 0; t < n; t++)
		{
			const uint8 *code;
			uint32		list = TokenList(st, tok, codes, t, &code);
			int16		s0[MVIVF_FIXED_BLOCK];
			int16		s1[MVIVF_FIXED_BLOCK];
			int			b;
			int			j;

			if (list > PG_UINT16_MAX)
				continue;
			memcpy(s0, st->STFixed + (Size) list * st->nqPadFixed + blk, sizeof(s0));
			for (j = 0; j < MVIVF_FIXED_BLOCK; j++)
			{
				ciAcc[blk + j] = Max(s0[j], ciAcc[blk + j]);
				s1[j] = 0;
			}
			for (b = 0; b < st->codeSize; b++)
			{
				const int16 *lo = lut + ((Size) (2 * b) * 16 + (code[b] & 15)) * MVIVF_FIXED_BLOCK;
				const int16 *hi = lut + ((Size) (2 * b + 1) * 16 + (code[b] >> 4)) * MVIVF_FIXED_BLOCK;

				for (j = 0; j < MVIVF_FIXED_BLOCK; j++)
				{
					s0[j] = MvivfSatAdd16(s0[j], lo[j]);
					s1[j] = MvivfSatAdd16(s1[j], hi[j]);
				}
			}
			for (j = 0; j < MVIVF_FIXED_BLOCK; j++)
				acc[blk + j] = Max(MvivfSatAdd16(s0[j], s1[j]), acc[blk + j]);
		}
	}
}

static void
ProbeEntriesPortable(float *acc, int nqPad, const float *v, const uint32 *ids,
					 int n, uint32 limit)
{
	int			k;

	for (k = 0; k < n; k++)
	{
		float	   *a;
		int			j;

		if (ids[k] >= limit)
			continue;
		a = acc + (Size) ids[k] * nqPad;
		for (j = 0; j < nqPad; j++)
			a[j] = Max(v[j], a[j]);
	}
}

#ifdef MVIVF_HAVE_AVX512
static __attribute__((target("avx512f"))) void
ProbeEntriesAvx512(float *acc, int nqPad, const float *v, const uint32 *ids,
				   int n, uint32 limit)
{
	int			k;

	for (k = 0; k < n; k++)
	{
		float	   *a;
		int			j;

		if (ids[k] >= limit)
			continue;
		a = acc + (Size) ids[k] * nqPad;
		for (j = 0; j < nqPad; j += MVIVF_ROW_BLOCK)
			_mm512_storeu_ps(a + j, _mm512_max_ps(_mm512_loadu_ps(v + j),
												  _mm512_loadu_ps(a + j)));
	}
}

static __attribute__((target("avx512f"))) void
CentroidTokensAvx512(const MvivfApproxState * st, float *acc, const char *tok, int n)
{
	int			blk;

	if (st->nqPad == 2 * MVIVF_ROW_BLOCK)
	{
		/*
		 * Two blocks (17 to 32 query rows, a ColPali query): both in one
		 * pass over the tokens, the table rows of the tokens 8 ahead
		 * prefetched (their lists are random, the table a few MB).  Each
		 * row's maxima are taken in the same order as below.
		 */
		__m512		a0 = _mm512_loadu_ps(acc);
		__m512		a1 = _mm512_loadu_ps(acc + MVIVF_ROW_BLOCK);
		int			t;

		for (t = 0; t < n; t++)
		{
			uint32		list;
			const float *row;

			if (t + 8 < n)
			{
				list = ListAt(st, tok, t + 8);
				if (list <= PG_UINT16_MAX)
				{
					row = st->ST + (Size) list * st->nqPad;
					__builtin_prefetch(row, 0, 3);
					__builtin_prefetch(row + MVIVF_ROW_BLOCK, 0, 3);
				}
			}
			list = ListAt(st, tok, t);
			if (list > PG_UINT16_MAX)
				continue;
			row = st->ST + (Size) list * st->nqPad;
			a0 = _mm512_max_ps(_mm512_loadu_ps(row), a0);
			a1 = _mm512_max_ps(_mm512_loadu_ps(row + MVIVF_ROW_BLOCK), a1);
		}
		_mm512_storeu_ps(acc, a0);
		_mm512_storeu_ps(acc + MVIVF_ROW_BLOCK, a1);
		return;
	}

	for (blk = 0; blk < st->nqPad; blk += MVIVF_ROW_BLOCK)
	{
		__m512		a = _mm512_loadu_ps(acc + blk);
		int			t;

		for (t = 0; t < n; t++)
		{
			uint32		list = ListAt(st, tok, t);

			if (list > PG_UINT16_MAX)
				continue;
			a = _mm512_max_ps(_mm512_loadu_ps(st->ST + (Size) list * st->nqPad + blk), a);
		}
		_mm512_storeu_ps(acc + blk, a);
	}
}

static __attribute__((target("avx512f,avx512bw"))) void
ScoreBytesAvx512(const MvivfApproxState * st, int16 *acc, int16 *ciAcc,
				  const char *tok, const uint8 *codes, int n)
{
	int			codeSize = st->codeSize;
	int			nqPad = st->nqPadFixed;
	int			blk;

	for (blk = 0; blk < nqPad; blk += MVIVF_FIXED_BLOCK)
	{
		__m512i		a = _mm512_loadu_si512(acc + blk);
		__m512i		ci = _mm512_loadu_si512(ciAcc + blk);
		const int16 *lut = st->lut + (Size) blk * codeSize * 256;
		int			t;

		for (t = 0; t < n; t++)
		{
			const uint8 *code;
			uint32		list = TokenList(st, tok, codes, t, &code);
			__m512i		s0;
			__m512i		s1 = _mm512_setzero_si512();
			int			b;

			if (list > PG_UINT16_MAX)
				continue;
			s0 = _mm512_loadu_si512(st->STFixed + (Size) list * nqPad + blk);
			ci = _mm512_max_epi16(s0, ci);
			/* even bytes into s0, odd ones into s1 (codeSize is even) */
			for (b = 0; b + 1 < codeSize; b += 2)
			{
				s0 = _mm512_adds_epi16(s0, _mm512_loadu_si512(lut + ((Size) b * 256 + code[b]) * MVIVF_FIXED_BLOCK));
				s1 = _mm512_adds_epi16(s1, _mm512_loadu_si512(lut + ((Size) (b + 1) * 256 + code[b + 1]) * MVIVF_FIXED_BLOCK));
			}
			if (b < codeSize)
				s0 = _mm512_adds_epi16(s0, _mm512_loadu_si512(lut + ((Size) b * 256 + code[b]) * MVIVF_FIXED_BLOCK));
			a = _mm512_max_epi16(_mm512_adds_epi16(s0, s1), a);
		}
		_mm512_storeu_si512(acc + blk, a);
		_mm512_storeu_si512(ciAcc + blk, ci);
	}
}

static __attribute__((target("avx512f,avx512bw"))) void
ScoreNibblesAvx512(const MvivfApproxState * st, int16 *acc, int16 *ciAcc,
				  const char *tok, const uint8 *codes, int n)
{
	int			codeSize = st->codeSize;
	int			nnib = 2 * codeSize;
	int			nqPad = st->nqPadFixed;
	int			blk;

	for (blk = 0; blk < nqPad; blk += MVIVF_FIXED_BLOCK)
	{
		__m512i		a = _mm512_loadu_si512(acc + blk);
		__m512i		ci = _mm512_loadu_si512(ciAcc + blk);
		const int16 *lut = st->lut + (Size) blk * nnib * 16;
		int			t;

		for (t = 0; t < n; t++)
		{
			const uint8 *code;
			uint32		list = TokenList(st, tok, codes, t, &code);
			__m512i		s0;
			__m512i		s1 = _mm512_setzero_si512();
			int			b;

			if (list > PG_UINT16_MAX)
				continue;
			s0 = _mm512_loadu_si512(st->STFixed + (Size) list * nqPad + blk);
			ci = _mm512_max_epi16(s0, ci);
			for (b = 0; b < codeSize; b++)
			{
				s0 = _mm512_adds_epi16(s0, _mm512_loadu_si512(lut + ((Size) (2 * b) * 16 + (code[b] & 15)) * MVIVF_FIXED_BLOCK));
				s1 = _mm512_adds_epi16(s1, _mm512_loadu_si512(lut + ((Size) (2 * b + 1) * 16 + (code[b] >> 4)) * MVIVF_FIXED_BLOCK));
			}
			a = _mm512_max_epi16(_mm512_adds_epi16(s0, s1), a);
		}
		_mm512_storeu_si512(acc + blk, a);
		_mm512_storeu_si512(ciAcc + blk, ci);
	}
}

/*
 * CpuHasAvx512Bw
 *		Whether this CPU has AVX-512BW (16-bit lanes), which the fixed-point
 *		quantized MaxSim needs.
 */
static bool
CpuHasAvx512Bw(void)
{
	static int	use = -1;

	if (use < 0)
	{
		__builtin_cpu_init();
		use = (MvivfCpuHasAvx512() && __builtin_cpu_supports("avx512bw")) ? 1 : 0;
	}
	return use == 1;
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
 *		Fold n tokens of one document into its quantized-MaxSim maxima (acc)
 *		and its centroid-interaction maxima (ciAcc).
 */
void
MvivfScoreTokens(const MvivfApproxState * st, int16 *acc, int16 *ciAcc,
				 const char *tok, const uint8 *codes, int n)
{
#ifdef MVIVF_HAVE_AVX512
	if (CpuHasAvx512Bw())
	{
		if (st->byteTables)
			ScoreBytesAvx512(st, acc, ciAcc, tok, codes, n);
		else
			ScoreNibblesAvx512(st, acc, ciAcc, tok, codes, n);
		return;
	}
#endif
	if (st->byteTables)
		ScoreBytesPortable(st, acc, ciAcc, tok, codes, n);
	else
		ScoreNibblesPortable(st, acc, ciAcc, tok, codes, n);
}

/*
 * MvivfProbeEntries
 *		For each document id of a probed list (ids below limit), raise its
 *		nqPad per-row maxima in acc to v, the list's centroid scores of the
 *		rows that probe it (-FLT_MAX for the others).
 */
void
MvivfProbeEntries(float *acc, int nqPad, const float *v, const uint32 *ids,
				  int n, uint32 limit)
{
#ifdef MVIVF_HAVE_AVX512
	if (MvivfCpuHasAvx512())
	{
		ProbeEntriesAvx512(acc, nqPad, v, ids, n, limit);
		return;
	}
#endif
	ProbeEntriesPortable(acc, nqPad, v, ids, n, limit);
}

/*
 * MvivfUseInt8Codes
 *		Whether the quantized MaxSim of q's codes runs in int8, on AMX-INT8
 *		tiles (with AVX-512 VBMI) or, on CPUs without them, with AVX-512 VNNI
 *		(the same numbers): the CPU has one of them, colpali.cpu_amx is
 *		on (off keeps the 16-bit tables), the AVX-512 forms are not turned
 *		off (COLPALI_MVIVF_PORTABLE), and the codes have a shape the kernels
 *		take (dimension a multiple of 64).
 */
bool
MvivfUseInt8Codes(const MvivfQuantizer * q)
{
#ifdef MVIVF_HAVE_AVX512
	static int	usable = -1;

	if (usable < 0)
		usable = (MvivfCpuHasAvx512() &&
				  (cp_codes_amx_usable() || cp_codes_vnni_usable())) ? 1 : 0;
	return usable == 1 && colpali_cpu_amx &&
		cp_codes_shape_supported(q->dim, q->nbits);
#else
	return false;
#endif
}

/*
 * MvivfInt8CodesName
 *		Which int8 kernel MvivfUseInt8Codes scans run here, for DEBUG1.
 */
const char *
MvivfInt8CodesName(void)
{
	return cp_codes_amx_usable() ? "AMX-INT8 code tiles" : "AVX-512 VNNI code products";
}

/*
 * MvivfPrepareInt8Codes
 *		The int8 tables of query rows first .. first + st->nq - 1, once
 *		st->ST is built: the int8 query tiles and the centroid scores with
 *		rows in blocks of MVIVF_FIXED_BLOCK (zero past nq).
 */
void
MvivfPrepareInt8Codes(const MvivfQuantizer * q, const MultiVector *query,
					 int first, MvivfApproxState * st)
{
	CpCodesQuery *cq = palloc(sizeof(CpCodesQuery));
	void	   *mem = palloc_extended(cp_codes_query_bytes(st->nq, q->dim),
									  MCXT_ALLOC_HUGE);
	float	   *wide;
	int			l;

	StaticAssertStmt(MVIVF_FIXED_BLOCK == CP_CODES_BLOCK,
					 "the int8 kernels' query blocks are the fixed point's");
	cp_codes_prepare(cq, MV_ROW(query, first), query->dim, st->nq, q->dim,
					 q->nbits, q->weights, mem);
	st->codesQuery = cq;
	if (st->nqPad == st->nqPadFixed)
	{
		/* 17-32 rows (a ColPali query): ST already has the kernel's stride */
		st->STWide = st->ST;
		return;
	}
	wide = MvivfScratchAlloc(sizeof(float) * (Size) q->nlists * st->nqPadFixed, MCXT_ALLOC_ZERO);
	for (l = 0; l < q->nlists; l++)
		memcpy(wide + (Size) l * st->nqPadFixed, st->ST + (Size) l * st->nqPad,
			   sizeof(float) * st->nq);
	st->STWide = wide;
}

/*
 * MvivfScoreTokensInt8
 *		MvivfScoreTokens in int8 (AMX or VNNI), in float: fold n tokens of one
 *		document into its quantized-MaxSim maxima (acc) and its centroid
 *		maxima (ciAcc), nqPadFixed floats each.
 */
void
MvivfScoreTokensInt8(const MvivfApproxState * st, float *acc, float *ciAcc,
					const char *tok, const uint8 *codes, int n)
{
	cp_codes_maxsim(st->codesQuery, tok, codes,
					st->codeSize, n, st->STWide, st->nqPadFixed, st->nlists,
					acc, ciAcc);
}
