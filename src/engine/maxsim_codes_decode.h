/*
 * maxsim_codes_decode.h
 *	  Decoding residual codes to one byte per dimension with AVX-512 VBMI,
 *	  shared by the int8 forms of the quantized MaxSim (maxsim_codes_amx.c
 *	  on AMX tiles, maxsim_codes_vnni.c on AVX-512 VNNI).  Internal to the
 *	  engine; include only from x86-64 GCC/Clang code.
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

#include <stdint.h>

#include <immintrin.h>

#define CODES_DECODE_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi")))

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
 * codes_decode64
 *		The 64 output bytes of the 64 dimensions whose codes start at src
 *		(8 * nbits bytes, read exactly).
 */
static inline CODES_DECODE_TARGET __m512i
codes_decode64(const CodesDecoder *dec, const uint8_t *src, int nbits)
{
	__m512i		w;

	if (nbits == 2)
		w = _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *) src));
	else if (nbits == 4)
		w = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) src));
	else
		w = _mm512_zextsi128_si512(_mm_loadl_epi64((const __m128i *) src));
	w = _mm512_permutexvar_epi64(dec->perm, w);
	return _mm512_shuffle_epi8(dec->lut,
							   _mm512_and_si512(_mm512_multishift_epi64_epi8(dec->ctrl, w),
												dec->valueMask));
}

#endif							/* MAXSIM_CODES_DECODE_H */
