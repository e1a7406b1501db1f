/*
 * cuda_matmul.h
 *	  cuBLASLt GEMMs with a fused bias epilogue (matmul_lt.cu), used by
 *	  backend_cuda.cu before its cublasGemmEx path.
 */
#ifndef COLPALI_CUDA_MATMUL_H
#define COLPALI_CUDA_MATMUL_H

#include <stdbool.h>
#include <stddef.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

typedef struct LtCache LtCache;

/* 0 or a cublasStatus_t; the workspace given to lt_matmul has ws_bytes. */
extern int	lt_create(LtCache **out, size_t ws_bytes);
extern void lt_destroy(LtCache *c);

/*
 * y[M,N] = x[M,K] . w[N,K]^T (+ bias[N]) + beta * y, bf16 operands, fp32
 * accumulation and output, on stream s.  False when cuBLASLt cannot run it
 * (the caller then uses cublasGemmEx); nothing was enqueued in that case.
 */
extern bool lt_matmul(LtCache *c, cudaStream_t s, void *ws, float *y,
					  const __nv_bfloat16 *x, const __nv_bfloat16 *w,
					  const float *bias, int M, int N, int K, float beta);

/* GEMMs asked of lt_matmul, and how many fell back. */
extern void lt_stats(const LtCache *c, long *calls, long *fallbacks);

#endif							/* COLPALI_CUDA_MATMUL_H */
