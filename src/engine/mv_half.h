/*
 * mv_half.h
 *	  IEEE binary16 ("half") conversions, scalar and exact, shared by the
 *	  multivector parsers, the SQL glue and the MaxSim kernels (all free of
 *	  PostgreSQL).
 *
 * Half has 1 sign bit, 5 exponent bits (bias 15) and 10 fraction bits: the
 * largest finite value is 65504, the smallest normal 2^-14, the smallest
 * subnormal 2^-24.  Every half is exactly a float, so half -> float is exact;
 * double (or float) -> half rounds to nearest, ties to even, as the
 * VCVTPS2PH instruction does in its default mode.
 */
#ifndef MV_HALF_H
#define MV_HALF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Largest finite half; values of magnitude >= 65520 round to infinity. */
#define MV_HALF_MAX			65504.0
#define MV_HALF_OVERFLOW	65520.0

/*
 * mv_half_to_float
 *		Exact conversion of a finite or non-finite half to float.
 */
static inline float
mv_half_to_float(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exp = (h >> 10) & 0x1f;
	uint32_t	frac = h & 0x3ff;
	uint32_t	bits;
	float		f;

	if (exp == 0x1f)			/* Inf, or NaN made quiet as VCVTPH2PS does */
		bits = sign | 0x7f800000 | (frac << 13) | (frac ? 0x00400000 : 0);
	else if (exp != 0)
		bits = sign | ((exp + 112) << 23) | (frac << 13);
	else
	{
		/* zero or subnormal: frac * 2^-24, exact in float */
		f = (float) frac * (1.0f / 16777216.0f);
		return sign ? -f : f;
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/*
 * mv_double_to_half
 *		Round a double to the nearest half, ties to even.  Returns 0 and sets
 *		*out, or returns -1 when d is NaN or infinite, 1 when it overflows
 *		(|d| >= 65520 rounds to infinity).  Values below half the smallest
 *		subnormal become +-0 (underflow is not an error).  Every float is
 *		exactly a double, so this is also the single rounding float -> half.
 */
static inline int
mv_double_to_half(double d, uint16_t *out)
{
	uint16_t	sign = signbit(d) ? 0x8000 : 0;
	double		a = fabs(d);
	int			e;
	double		m;

	if (isnan(d) || isinf(d))
		return -1;
	if (a >= MV_HALF_OVERFLOW)
		return 1;
	if (a < 6.103515625e-05)	/* 2^-14: subnormal or zero */
	{
		/* a * 2^24 is exact; rint rounds to nearest even (default mode) */
		m = rint(a * 16777216.0);
		*out = sign | (uint16_t) m; /* m == 1024 is the smallest normal */
		return 0;
	}
	(void) frexp(a, &e);		/* a = f * 2^e, 0.5 <= f < 1 */
	e -= 1;						/* a = 1.x * 2^e, -14 <= e <= 15 */
	m = rint(ldexp(a, 10 - e)); /* 1024 .. 2048, exact scaling */
	if (m >= 2048.0)
	{
		m = 1024.0;
		e += 1;
	}
	*out = sign | (uint16_t) (((e + 15) << 10) | ((int) m - 1024));
	return 0;
}

/* Is this half Inf or NaN (exponent all ones)? */
static inline int
mv_half_is_finite(uint16_t h)
{
	return (h & 0x7c00) != 0x7c00;
}

#endif							/* MV_HALF_H */
