/*
 * gemm_f32.h
 *	  fp32 GEMM y = x W^T on bf16 weights read straight from the mapping,
 *	  for many rows of x (pages), AVX-512: the weights are widened to fp32
 *	  while they are packed for the register kernel, instead of a converted
 *	  copy that a BLAS library then packs again.
 */
#ifndef CP_GEMM_F32_H
#define CP_GEMM_F32_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rows of x and columns of W of the register block (12 x 2 vectors). */
#define CP_F32W_MR 12
#define CP_F32W_NR 32
/* k-block (x block and weight block share it) and columns per weight block. */
#define CP_F32W_KC 384
#define CP_F32W_NC 512

/* Per-thread scratch of cp_gemm_f32_bf16w (one packed weight block), floats. */
#define CP_F32W_SCRATCH ((size_t) CP_F32W_NC * CP_F32W_KC)

/*
 * cp_gemm_f32_bf16w
 *		y[m, n] (+)= sum_k x[m, k] * w[n, k] for m < M, n in [n0, n1), in
 *		fp32 arithmetic (the bf16 weights widened exactly): x is [M, K] fp32
 *		with row stride ldx (cp_gemm_f32_ldx), w is [N, K] bf16 row-major (any 2-byte alignment), y has
 *		row stride ldy.  K must be even.  With add the result is added to y,
 *		otherwise it replaces it.  scratch holds CP_F32W_SCRATCH floats,
 *		64-byte aligned.  Needs AVX-512F; single-threaded, the caller
 *		splits the columns between threads.
 */
extern void cp_gemm_f32_bf16w(const float *x, size_t ldx, int M, int K,
							  const uint16_t *w, int n0, int n1, float *y,
							  int ldy, bool add, float *scratch);

/*
 * Row stride to give x for K columns: K unless that is a multiple of 64
 * floats, else 16 more, so that the 12 rows the kernel reads at once do
 * not fall into the same L1 set (a row stride of a multiple of 4 KB, as
 * with K = 2048 or 16384, made them evict each other).
 */
static inline size_t
cp_gemm_f32_ldx(int K)
{
	return (K % 64 == 0) ? (size_t) K + 16 : (size_t) K;
}

#endif							/* CP_GEMM_F32_H */
