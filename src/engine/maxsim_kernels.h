/*
 * maxsim_kernels.h
 *	  PostgreSQL-free MaxSim kernels (scalar oracle, AVX2+FMA, AVX-512) with
 *	  runtime dispatch.  Used by src/maxsim.c and by bench/maxsim.
 *
 * MaxSim(doc, query) = sum over query rows j of max over doc rows i of
 * <doc_i, query_j>, for row-major float32 matrices doc (ndoc x dim) and
 * query (nquery x dim).
 *
 * Every kernel computes exactly the same floating-point operations, so all
 * kernels return bit-identical results (the scalar kernel is the oracle that
 * tests compare the SIMD kernels against):
 *	 - each dot product is a float32 fused multiply-add chain over k = 0..dim-1
 *	   starting from +0 (s = fmaf(d[k], q[k], s));
 *	 - the maximum over doc rows is taken in row order with m = (m > s) ? m : s
 *	   starting from -Infinity (the semantics of the x86 MAXPS instruction);
 *	 - the maxima are summed in double, in query row order, into one partial
 *	   sum per block of MVK_QUERY_BLOCK query rows; the partial sums are
 *	   added in order (so a caller that splits the query at block boundaries
 *	   and adds the results in order gets the same bits).
 *
 * Error bound: with u = 2^-24 and g = dim*u / (1 - dim*u), each dot product
 * differs from the exact one by at most g * sum_k |d_k q_k|, so
 *	 |MaxSim_kernel - MaxSim_exact| <= g * sum_j max_i sum_k |d_ik q_jk|
 * plus a double-rounding term below nquery * 2^-53 relative.  For
 * L2-normalised rows this is at most nquery * g (about 2.4e-4 for 32 query
 * rows of 128 dims; typical errors are far smaller).  A product or sum that
 * exceeds the float32 range gives +-Infinity or NaN.
 */
#ifndef MAXSIM_KERNELS_H
#define MAXSIM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Kernel implementations, best last. */
typedef enum MvkKind
{
	MVK_SCALAR = 0,
	MVK_AVX2 = 1,				/* AVX2 + FMA, 8 lanes */
	MVK_AVX512 = 2				/* AVX-512F+VL, 16 (+8) lanes */
} MvkKind;

/* Query rows handled per pass over the document (doc streamed once if nquery <= this). */
#define MVK_QUERY_BLOCK		64

/* Floats of a half document widened at a time by the AVX-512 half kernel (32 kB). */
#define MVK_HALF_CHUNK_FLOATS	8192

/*
 * Scratch space (in floats) the SIMD kernels need for a transposed block of
 * query rows; the caller provides it (plus nothing else: the kernels align
 * it themselves, so allocate mvk_scratch_floats() floats exactly).
 */
extern size_t mvk_scratch_floats(int dim);

/* Is this kernel usable on the running CPU (and compiled in)? */
extern int	mvk_available(MvkKind kind);

/* The best available kernel and its name ("scalar", "avx2", "avx512"). */
extern MvkKind mvk_best(void);
extern const char *mvk_name(MvkKind kind);

/*
 * Compute MaxSim with the given kernel (which must be available).  ndoc,
 * nquery, dim >= 1.  scratch: mvk_scratch_floats(dim) floats, unused by the
 * scalar kernel (may be NULL there).
 */
extern double mvk_maxsim(MvkKind kind, const float *doc, int ndoc,
						 const float *query, int nquery, int dim,
						 float *scratch);

/*
 * MaxSim of a half (binary16) document and a float32 query: bit-identical
 * to mvk_maxsim on the exactly widened document.  `widened`: room for
 * ndoc * dim floats, used by the kernels that widen the whole document
 * first (the AVX-512 one widens chunks inside the scratch space).
 */
extern double mvk_maxsim_half(MvkKind kind, const uint16_t *doc, int ndoc,
							  const float *query, int nquery, int dim,
							  float *scratch, float *widened);

#endif							/* MAXSIM_KERNELS_H */
