/*
 * dtype.h
 *	  Conversions between the checkpoint dtypes (bfloat16, IEEE half) and
 *	  float32, inline: the engine's weight reader, the CPU backends and the
 *	  CUDA backend's host side all use these (C and C++).
 *
 * Widening is exact.  Narrowing to bfloat16 rounds to nearest even, and a
 * NaN stays a quiet NaN (rounding could otherwise carry it into infinity).
 */
#ifndef CP_DTYPE_H
#define CP_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * cp_bf16_to_f32
 *		bfloat16 bits to float: the upper half of the float's bits.
 */
static inline float
cp_bf16_to_f32(uint16_t h)
{
	uint32_t	u = (uint32_t) h << 16;
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * cp_f32_to_bf16
 *		float to bfloat16 bits, round to nearest even; NaN stays quiet.
 */
static inline uint16_t
cp_f32_to_bf16(float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof(u));
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t) ((u >> 16) | 0x0040);
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t) (u >> 16);
}

/*
 * cp_f16_to_f32
 *		IEEE half bits to float (subnormals, infinities and NaN included).
 */
static inline float
cp_f16_to_f32(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exp = (h >> 10) & 0x1f;
	uint32_t	man = h & 0x3ff;
	uint32_t	u;
	float		f;

	if (exp == 0x1f)
		u = sign | 0x7f800000u | (man << 13);
	else if (exp != 0)
		u = sign | ((exp + 112) << 23) | (man << 13);
	else if (man == 0)
		u = sign;
	else
	{
		/* subnormal: man * 2^-24 */
		f = (float) man * (1.0f / 16777216.0f);
		return sign ? -f : f;
	}
	memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * cp_bf16_to_f32_n
 *		n bfloat16 values to float, as integer shifts (vectorises).
 */
static inline void
cp_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n)
{
	uint32_t   *d = (uint32_t *) dst;
	size_t		i;

#if defined(_OPENMP)
#pragma omp simd
#endif
	for (i = 0; i < n; i++)
		d[i] = (uint32_t) src[i] << 16;
}

#endif							/* CP_DTYPE_H */
