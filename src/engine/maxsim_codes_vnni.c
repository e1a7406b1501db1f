/*
 * maxsim_codes_vnni.c
 *	  The quantized MaxSim of residual-coded rows with AVX-512 VNNI, for
 *	  CPUs without AMX (maxsim_codes_amx.h explains the arithmetic and its
 *	  error; this form gives the AMX form's bits).
 *
 * VPDPBUSD multiplies unsigned bytes by signed bytes, four at a time into
 * each int32 lane.  The query rows' int8 values are the signed side, laid
 * out as for TDPBSSD (per 4 dimensions, 16 query rows x 4 bytes: one
 * register); a token's levels are the unsigned side, stored as level + 128
 * (levels lie in [-127, 127]) and broadcast 4 bytes at a time.  Each sum
 * then exceeds the signed one by 128 times the int8 query row's sum, so
 * the accumulators start from minus that (cq->vnniStart): the int32 sums
 * are those of TDPBSSD, exactly (at most 128 x 255 x 127 in magnitude, no
 * overflow).  The fold into the running maxima is fold_block's of the AMX
 * form: the same float operations in the same order, so the same bits.
 *
 * Per group of TOKENS tokens: decode them (maxsim_codes_decode.h: with
 * VBMI's multishift where the CPU has it, CP_CODES_VNNI; else with
 * AVX-512BW shuffles and blends, CP_CODES_VNNI_BW, for Intel Cascade Lake;
 * the same bytes, and on an AMD Zen 5 core the same speed), then
 * for each block of 32 query rows keep 2 x TOKENS accumulators in
 * registers over the dim / 4 groups of dimensions (two query registers
 * loaded per group, one broadcast per token), and fold.
 */
#include <stdbool.h>
#include <string.h>

#include "maxsim_codes_amx.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include "maxsim_codes_decode.h"

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define VNNI_VBMI_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi")))

/* tokens decoded and multiplied together (2 x TOKENS accumulators, named) */
#define TOKENS 8

/*
 * prefetch_ahead
 *		Prefetch token t's code two groups ahead and the centroid-score
 *		rows of token t + TOKENS (of n).
 */
static inline void
prefetch_ahead(const CpCodesQuery *cq, const void *lists, const uint8_t *codes,
			   size_t codeSize, int t, int n, const float *cs, size_t ldcs,
			   int nlists)
{
	_mm_prefetch((const char *) codes + (size_t) (t + 2 * TOKENS) * codeSize,
				 _MM_HINT_T0);
	if (t + TOKENS < n)
		codes_prefetch_scores(lists, t + TOKENS, cs, ldcs, nlists, cq->nblocks);
}

/*
 * decode_tokens_vbmi / decode_tokens_bw
 *		The m tokens whose codes start at code into rows 0 .. m-1 of buf
 *		(dim bytes each, level + 128), with VBMI or with AVX-512BW alone
 *		(the same bytes).  Called once per group, and not inlined: the
 *		target ISAs differ.
 */
static __attribute__((noinline)) VNNI_VBMI_TARGET void
decode_tokens_vbmi(const CpCodesQuery *cq, const CodesDecoder *dec,
				   const uint8_t *code, size_t codeSize, int m, uint8_t *buf)
{
	int			j;
	int			s;

	for (j = 0; j < m; j++, code += codeSize)
		for (s = 0; s < cq->dim / CP_CODES_KSTEP; s++)
			_mm512_store_si512(buf + (size_t) j * cq->dim + s * CP_CODES_KSTEP,
							   codes_decode64(dec, code + (size_t) s * 8 * cq->nbits, cq->nbits));
}

static __attribute__((noinline)) CODES_DECODE_BW_TARGET void
decode_tokens_bw(const CpCodesQuery *cq, const CodesDecoderBw *dec,
				 const uint8_t *code, size_t codeSize, int m, uint8_t *buf)
{
	int			j;
	int			s;

	for (j = 0; j < m; j++, code += codeSize)
		for (s = 0; s < cq->dim / CP_CODES_KSTEP; s++)
			_mm512_store_si512(buf + (size_t) j * cq->dim + s * CP_CODES_KSTEP,
							   codes_decode64_bw(dec, code + (size_t) s * 8 * cq->nbits, cq->nbits));
}

/* codes_decoder_init, for a caller without VBMI in its target */
static VNNI_VBMI_TARGET void
decoder_init_vbmi(CodesDecoder *dec, int nbits, const int8_t *table)
{
	codes_decoder_init(dec, nbits, table);
}

/*
 * vnni_block
 *		The int32 sums of the TOKENS rows of buf against the 32 query rows
 *		of block blk, folded into the block's running maxima for the first
 *		m tokens (those from t0).  dim is not made a constant for
 *		ColPali's 128: GCC 12 then peeled the second of the two k-steps into
 *		a copy of the inner loop that copied every accumulator to another
 *		register and back, spilling two, at every step (1.6 times the first
 *		k-step's time; the whole kernel 12 % slower than with dim a variable,
 *		whose loop keeps the accumulators in place).
 */
static inline __attribute__((always_inline)) VNNI_TARGET void
vnni_block(const CpCodesQuery *cq, int dim, int blk, const uint8_t *buf,
		   const void *lists, int t0, int m, const float *cs, size_t ldcs,
		   int nlists, float *acc, float *ciAcc)
{
	int			ksteps = dim / CP_CODES_KSTEP;
	const int8_t *bt = cq->tiles + (size_t) blk * ksteps * 2048;
	const int32_t *start = cq->vnniStart + blk * CP_CODES_BLOCK;
	const float *scale = cq->scale + blk * CP_CODES_BLOCK;
	__m512i		x00, x01, x02, x03, x04, x05, x06, x07;
	__m512i		x10, x11, x12, x13, x14, x15, x16, x17;
	__m512		a0,
				a1,
				ci0,
				ci1,
				s0,
				s1;
	int			s;
	int			g;

	/*
	 * The accumulators are named variables, not an array: with an array
	 * GCC 12 moves registers around at every step.
	 */
	x00 = x01 = x02 = x03 = x04 = x05 = x06 = x07 = _mm512_loadu_si512(start);
	x10 = x11 = x12 = x13 = x14 = x15 = x16 = x17 = _mm512_loadu_si512(start + 16);
#pragma GCC unroll 1
	for (s = 0; s < ksteps; s++)
	{
#pragma GCC unroll 1
		for (g = 0; g < CP_CODES_KSTEP / 4; g++)
		{
			/* 4 dimensions of 16 + 16 query rows, as in the tiles */
			const int8_t *qt = bt + (size_t) s * 2048 + g * 64;
			const uint8_t *tk = buf + s * CP_CODES_KSTEP + 4 * g;
			__m512i		q0 = _mm512_load_si512(qt);
			__m512i		q1 = _mm512_load_si512(qt + 1024);

#define VNNI_TOKEN(j, a0, a1) \
			do { \
				int32_t		four; \
				__m512i		t; \
				memcpy(&four, tk + (size_t) (j) * dim, sizeof(four)); \
				t = _mm512_set1_epi32(four); \
				a0 = _mm512_dpbusd_epi32(a0, t, q0); \
				a1 = _mm512_dpbusd_epi32(a1, t, q1); \
			} while (0)
			VNNI_TOKEN(0, x00, x10);
			VNNI_TOKEN(1, x01, x11);
			VNNI_TOKEN(2, x02, x12);
			VNNI_TOKEN(3, x03, x13);
			VNNI_TOKEN(4, x04, x14);
			VNNI_TOKEN(5, x05, x15);
			VNNI_TOKEN(6, x06, x16);
			VNNI_TOKEN(7, x07, x17);
#undef VNNI_TOKEN
		}
	}
	/* fold_block of the AMX form, for the first m tokens */
	a0 = _mm512_loadu_ps(acc + blk * CP_CODES_BLOCK);
	a1 = _mm512_loadu_ps(acc + blk * CP_CODES_BLOCK + 16);
	ci0 = _mm512_loadu_ps(ciAcc + blk * CP_CODES_BLOCK);
	ci1 = _mm512_loadu_ps(ciAcc + blk * CP_CODES_BLOCK + 16);
	s0 = _mm512_loadu_ps(scale);
	s1 = _mm512_loadu_ps(scale + 16);
#define VNNI_FOLD(j, y0, y1) \
	do { \
		uint16_t	list = UINT16_MAX; \
		if ((j) < m) \
			memcpy(&list, (const char *) lists + (size_t) (t0 + (j)) * sizeof(uint16_t), \
				   sizeof(uint16_t)); \
		if ((j) < m && list < nlists) \
		{ \
			const float *row = cs + (size_t) list * ldcs + blk * CP_CODES_BLOCK; \
			__m512		r0 = _mm512_loadu_ps(row); \
			__m512		r1 = _mm512_loadu_ps(row + 16); \
			ci0 = _mm512_max_ps(r0, ci0); \
			ci1 = _mm512_max_ps(r1, ci1); \
			a0 = _mm512_max_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(y0), s0, r0), a0); \
			a1 = _mm512_max_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(y1), s1, r1), a1); \
		} \
	} while (0)
	VNNI_FOLD(0, x00, x10);
	VNNI_FOLD(1, x01, x11);
	VNNI_FOLD(2, x02, x12);
	VNNI_FOLD(3, x03, x13);
	VNNI_FOLD(4, x04, x14);
	VNNI_FOLD(5, x05, x15);
	VNNI_FOLD(6, x06, x16);
	VNNI_FOLD(7, x07, x17);
#undef VNNI_FOLD
	_mm512_storeu_ps(acc + blk * CP_CODES_BLOCK, a0);
	_mm512_storeu_ps(acc + blk * CP_CODES_BLOCK + 16, a1);
	_mm512_storeu_ps(ciAcc + blk * CP_CODES_BLOCK, ci0);
	_mm512_storeu_ps(ciAcc + blk * CP_CODES_BLOCK + 16, ci1);
}

VNNI_TARGET void
cp_codes_maxsim_vnni(const CpCodesQuery *cq, const void *lists,
					 const uint8_t *codes, size_t codeSize, int n,
					 const float *cs, size_t ldcs, int nlists,
					 float *acc, float *ciAcc)
{
	uint8_t    *buf = (uint8_t *) cq->scratch;	/* TOKENS x dim <= its 32 x dim */
	bool		vbmi = cq->kernel == CP_CODES_VNNI;
	int8_t		table[16];
	CodesDecoder decVbmi;
	CodesDecoderBw decBw;
	int			c;
	int			t0;

	if (n <= 0)
		return;
	for (c = 0; c < 16; c++)
		table[c] = (int8_t) (uint8_t) (cq->levels[c] + 128);
	if (vbmi)
		decoder_init_vbmi(&decVbmi, cq->nbits, table);
	else
		codes_decoder_bw_init(&decBw, cq->nbits, table);
	for (t0 = 0; t0 < n; t0 += TOKENS)
	{
		const uint8_t *code = codes + (size_t) t0 * codeSize;
		int			m = n - t0 < TOKENS ? n - t0 : TOKENS;
		int			blk;
		int			j;

		for (j = 0; j < m; j++)
			prefetch_ahead(cq, lists, codes, codeSize, t0 + j, n, cs, ldcs, nlists);
		/* rows past m keep earlier values, whose sums are never folded */
		if (vbmi)
			decode_tokens_vbmi(cq, &decVbmi, code, codeSize, m, buf);
		else
			decode_tokens_bw(cq, &decBw, code, codeSize, m, buf);
		for (blk = 0; blk < cq->nblocks; blk++)
		{
			vnni_block(cq, cq->dim, blk, buf, lists, t0, m, cs, ldcs, nlists, acc, ciAcc);
		}
	}
}

#endif							/* x86-64 GCC/Clang; elsewhere cp_codes_maxsim never calls it */
