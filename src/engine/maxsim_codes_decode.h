/*
 * maxsim_codes_decode.h
 *	  Decoding residual codes to one byte per dimension with AVX-512 VBMI,
 *	  shared by the int8 forms of the quantized MaxSim (maxsim_codes_amx.c
 *	  on AMX tiles, maxsim_codes_vnni.c on AVX-512 VNNI), and with AVX-512BW
 *	  alone for CPUs with VNNI but without VBMI (Intel Cascade Lake).
 *	  Internal to the engine; include only from x86-64 GCC/Clang code.
 *
 * Dimension d of a code lies at bit d * nbits of its little-endian 64-bit
 * words, so output byte j of lane l (dimension 8 l + j of a block of 64)
 * is in word (8 l nbits) / 64 at bit (8 l nbits) % 64 + j nbits: a permute
 * puts that word into lane l, VPMULTISHIFTQB takes the 8 bits from there,
 * an AND keeps the value, and VPSHUFB maps it to its byte (a table of 16
 * values per 128-bit lane).  The functions carry only the ISA they use,
 * so that callers built for a superset inline them.
 */
#ifndef MAXSIM_CODES_DECODE_H
#define MAXSIM_CODES_DECODE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <immintrin.h>

#include "maxsim_codes_amx.h"

#define CODES_DECODE_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi")))
#define CODES_DECODE_BW_TARGET __attribute__((target("avx512f,avx512bw")))

/* The decoder's constants for nbits bits per dimension. */
typedef struct CodesDecoder
{
	__m512i		ctrl;			/* VPMULTISHIFTQB bit offsets */
	__m512i		perm;			/* source word of each lane */
	__m512i		valueMask;
	__m512i		lut;			/* output byte of each value, per 128 bits */
} CodesDecoder;

/*
 * codes_decoder_init
 *		Constants to decode codes of nbits (1, 2 or 4) bits per dimension
 *		into table[value] (16 bytes; entries past 2^nbits unused).
 */
static inline CODES_DECODE_TARGET void
codes_decoder_init(CodesDecoder *dec, int nbits, const int8_t *table)
{
	uint8_t		ctrlBytes[64];
	int64_t		permWords[8];
	int			l;
	int			j;

	for (l = 0; l < 8; l++)
	{
		permWords[l] = (8 * l * nbits) / 64;
		for (j = 0; j < 8; j++)
			ctrlBytes[l * 8 + j] = (uint8_t) ((8 * l * nbits) % 64 + j * nbits);
	}
	dec->ctrl = _mm512_loadu_si512(ctrlBytes);
	dec->perm = _mm512_loadu_si512(permWords);
	dec->valueMask = _mm512_set1_epi8((char) ((1 << nbits) - 1));
	dec->lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) table));
}

/*
 * codes_prefetch_scores
 *		Prefetch the centroid scores that folding token t will read (nblocks
 *		x CP_CODES_BLOCK floats of its list's row in cs): random rows of a
 *		table of a few MB.
 */
static inline void
codes_prefetch_scores(const void *lists, int t, const float *cs, size_t ldcs,
					  int nlists, int nblocks)
{
	uint16_t	list;

	memcpy(&list, (const char *) lists + (size_t) t * sizeof(uint16_t), sizeof(uint16_t));
	if (list < nlists)
	{
		const float *row = cs + (size_t) list * ldcs;
		int			b;

		for (b = 0; b < nblocks; b++)
		{
			_mm_prefetch((const char *) (row + b * CP_CODES_BLOCK), _MM_HINT_T0);
			_mm_prefetch((const char *) (row + b * CP_CODES_BLOCK + 16), _MM_HINT_T0);
		}
	}
}

/*
 * codes_load64
 *		The 8 * nbits code bytes of 64 dimensions at src, read exactly, in
 *		the low bytes of a register.
 */
static inline __attribute__((target("avx512f"))) __m512i
codes_load64(const uint8_t *src, int nbits)
{
	if (nbits == 2)
		return _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *) src));
	if (nbits == 4)
		return _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) src));
	return _mm512_zextsi128_si512(_mm_loadl_epi64((const __m128i *) src));
}

/*
 * codes_decode64
 *		The 64 output bytes of the 64 dimensions whose codes start at src
 *		(8 * nbits bytes, read exactly).
 */
static inline CODES_DECODE_TARGET __m512i
codes_decode64(const CodesDecoder *dec, const uint8_t *src, int nbits)
{
	__m512i		w = _mm512_permutexvar_epi64(dec->perm, codes_load64(src, nbits));

	return _mm512_shuffle_epi8(dec->lut,
							   _mm512_and_si512(_mm512_multishift_epi64_epi8(dec->ctrl, w),
												dec->valueMask));
}

/*
 * Without VBMI (codes_decode64_bw): a permute puts into 128-bit lane l the
 * 64-bit word that holds dimensions 16 l .. 16 l + 15, VPSHUFB copies code
 * byte k of the lane to the output bytes of its 8 / nbits dimensions, and
 * the value of each output byte is then picked from that copy: for 1 bit
 * a bit test and a blend of the two levels; for 2 and 4 bits the low or
 * high nibble (a shift, a mask and a blend), mapped by VPSHUFB tables.  The
 * output is codes_decode64's, byte for byte.
 */
typedef struct CodesDecoderBw
{
	__m512i		perm;			/* source word of each 128-bit lane */
	__m512i		spread;			/* VPSHUFB: code byte of each output byte */
	__m512i		bitTest;		/* 1 bit: the bit of each output byte */
	__m512i		level0;			/* 1 bit: table[0], table[1] everywhere */
	__m512i		level1;
	__m512i		lut0;			/* 2 bits: table[n & 3]; 4 bits: table[n] */
	__m512i		lut1;			/* 2 bits: table[n >> 2] */
	__mmask64	useHigh;		/* output bytes taken from the high nibble */
	__mmask64	useLut1;		/* 2 bits: output bytes mapped by lut1 */
} CodesDecoderBw;

static inline CODES_DECODE_BW_TARGET void
codes_decoder_bw_init(CodesDecoderBw *dec, int nbits, const int8_t *table)
{
	int			per = 8 / nbits;	/* dimensions per code byte */
	uint8_t		spread[64];
	uint8_t		bitTest[64];
	int8_t		lut0[16];
	int8_t		lut1[16];
	int64_t		permWords[8];
	__mmask64	useHigh = 0;
	__mmask64	useLut1 = 0;
	int			l;
	int			b;
	int			n;

	for (l = 0; l < 4; l++)
	{
		/* lane l: dimensions 16 l .. 16 l + 15, from bit 16 l nbits on */
		permWords[2 * l] = (16 * l * nbits) / 64;
		permWords[2 * l + 1] = (16 * l * nbits) / 64;
		for (b = 0; b < 16; b++)
		{
			int			bit = (16 * l + b) * nbits - ((16 * l * nbits) / 64) * 64;
			int			j = b % per;	/* which value of its code byte */

			spread[16 * l + b] = (uint8_t) (bit / 8);
			bitTest[16 * l + b] = (uint8_t) (1 << j);
			if (nbits == 4 ? j == 1 : nbits == 2 && j >= 2)
				useHigh |= (__mmask64) 1 << (16 * l + b);
			if (nbits == 2 && j % 2 == 1)
				useLut1 |= (__mmask64) 1 << (16 * l + b);
		}
	}
	for (n = 0; n < 16; n++)
	{
		lut0[n] = nbits == 4 ? table[n] : table[n & 3];
		lut1[n] = table[(n >> 2) & 3];
	}
	dec->perm = _mm512_loadu_si512(permWords);
	dec->spread = _mm512_loadu_si512(spread);
	dec->bitTest = _mm512_loadu_si512(bitTest);
	dec->level0 = _mm512_set1_epi8(table[0]);
	dec->level1 = _mm512_set1_epi8(table[1]);
	dec->lut0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) lut0));
	dec->lut1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) lut1));
	dec->useHigh = useHigh;
	dec->useLut1 = useLut1;
}

/* codes_decode64 without VBMI (same arguments, same bytes) */
static inline CODES_DECODE_BW_TARGET __m512i
codes_decode64_bw(const CodesDecoderBw *dec, const uint8_t *src, int nbits)
{
	__m512i		w = _mm512_shuffle_epi8(_mm512_permutexvar_epi64(dec->perm,
																 codes_load64(src, nbits)),
										dec->spread);
	__m512i		nibble;
	__m512i		low4 = _mm512_set1_epi8(0x0F);

	if (nbits == 1)
		return _mm512_mask_blend_epi8(_mm512_test_epi8_mask(w, dec->bitTest),
									  dec->level0, dec->level1);
	nibble = _mm512_mask_blend_epi8(dec->useHigh, _mm512_and_si512(w, low4),
									_mm512_and_si512(_mm512_srli_epi16(w, 4), low4));
	if (nbits == 4)
		return _mm512_shuffle_epi8(dec->lut0, nibble);
	return _mm512_mask_blend_epi8(dec->useLut1, _mm512_shuffle_epi8(dec->lut0, nibble),
								  _mm512_shuffle_epi8(dec->lut1, nibble));
}

#endif							/* MAXSIM_CODES_DECODE_H */
