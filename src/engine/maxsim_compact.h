/*
 * maxsim_compact.h
 *	  PostgreSQL-free kernels for the compact multivector formats: half
 *	  (IEEE binary16) and binary (one sign bit per dimension), with the same
 *	  runtime dispatch as maxsim_kernels.h (MvkKind).
 *
 * MaxSim over half or binary documents is defined through the float kernel
 * so that it is exact for what is stored and bit-identical across kernels:
 *	 - a half document (or query) is widened to float32 exactly
 *	   (mvk_half_to_float: VCVTPH2PS or the scalar decoder give the same
 *	   bits), then the float32 kernel runs on the stored values;
 *	 - a binary document scored against a float query is expanded to +-1
 *	   (mvk_bits_to_pm1), so the score is q . (2b - 1) computed exactly as
 *	   the float kernel computes any dot product (each +-1 * q_k is exact);
 *	 - binary x binary is the same dot product of +-1 vectors, which is
 *	   D - 2 * hamming(a, b), an integer computed with popcounts
 *	   (mvk_hamming_maxsim): every kernel returns the same integer sum.
 *
 * Bit layout (as bitmultivector stores it): a row is MV_BIT_ROW_BYTES(dim)
 * = ceil(dim / 8) bytes, dimension k in byte k / 8 at bit 7 - k % 8 (most
 * significant first, as PostgreSQL's bit strings), 1 = positive; padding
 * bits are zero.
 */
#ifndef MAXSIM_COMPACT_H
#define MAXSIM_COMPACT_H

#include <stddef.h>
#include <stdint.h>

#include "maxsim_kernels.h"

/* Widen n halves to float32 (exact; every kernel gives the same bits). */
extern void mvk_half_to_float(MvkKind kind, const uint16_t *src, size_t n,
							  float *dst);

/* Expand nvec rows of dim sign bits into +-1.0f, row-major nvec x dim. */
extern void mvk_bits_to_pm1(const uint8_t *bits, int nvec, int dim,
							float *dst);

/*
 * MaxSim of binary rows: sum over query rows of the maximum over document
 * rows of (dim - 2 * hamming), i.e. the dot product of the +-1 vectors.
 * Exact (an integer below 2^38) for every kernel.  ndoc, nquery, dim >= 1.
 */
extern double mvk_hamming_maxsim(MvkKind kind, const uint8_t *doc, int ndoc,
								 const uint8_t *query, int nquery, int dim);

/*
 * The same in parts (a stored document read chunk by chunk): lower best[j]
 * (start at INT32_MAX) to the smallest hamming distance between query row j
 * and any of the ndoc document rows; mvk_hamming_sum then gives
 * sum_j (dim - 2 best[j]), the value of mvk_hamming_maxsim.
 */
extern void mvk_hamming_minima(MvkKind kind, const uint8_t *doc, int ndoc,
							   const uint8_t *query, int nquery, int dim,
							   int32_t *best);
extern double mvk_hamming_sum(const int32_t *best, int nquery, int dim);

/* Is the hamming kernel of this kind using a hardware popcount? ("avx512-vpopcntdq", "popcnt", "scalar") */
extern const char *mvk_hamming_name(MvkKind kind, int dim);

#endif							/* MAXSIM_COMPACT_H */
