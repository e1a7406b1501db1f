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
 *		row-major, w is [N, K] bf16 row-major (any 2-byte alignment), y has
 *		row stride ldy.  K must be even.  With add the result is added to y,
 *		otherwise it replaces it.  scratch holds CP_F32W_SCRATCH floats,
 *		64-byte aligned.  Needs AVX-512F; single-threaded, the caller
 *		splits the columns between threads.
 */
extern void cp_gemm_f32_bf16w(const float *x, int M, int K, const uint16_t *w,
							  int n0, int n1, float *y, int ldy, bool add,
							  float *scratch);

#endif							/* CP_GEMM_F32_H */
