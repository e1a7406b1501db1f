/*
 * cuda_kernels.h
 *	  Host-side launchers of the CUDA kernels (kernels_*.cu), used by the
 *	  backend vtable (backend_cuda.cu).  Each launcher enqueues its kernel on
 *	  the given stream and returns cudaGetLastError(); sizes are already
 *	  validated by the caller.  All activations are fp32.
 */
#ifndef COLPALI_CUDA_KERNELS_H
#define COLPALI_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

/* Element dtypes of weight tables (same numbering as CpDType). */
enum
{
	CUK_F32 = 0,
	CUK_F16 = 1,
	CUK_BF16 = 2
};

/* ---- kernels_elementwise.cu ---- */
extern cudaError_t cuk_f32_to_bf16(cudaStream_t s, __nv_bfloat16 *dst,
								   const float *src, size_t n);
extern cudaError_t cuk_to_f32(cudaStream_t s, float *dst, const void *src,
							  int dtype, size_t n);
/* bf (NULL = none) also receives the result rounded to bf16 */
extern cudaError_t cuk_gelu_tanh(cudaStream_t s, float *x, size_t n,
								 __nv_bfloat16 *bf);
extern cudaError_t cuk_geglu(cudaStream_t s, float *out, const float *gate,
							 const float *up, size_t n, __nv_bfloat16 *bf);
extern cudaError_t cuk_add(cudaStream_t s, float *y, const float *x, size_t n);
extern cudaError_t cuk_add_rows(cudaStream_t s, float *y, const float *t,
								int rows, int period, int dim);
/* y[r, :] = bias (accumulate false) or y[r, :] += bias (true), M rows of N. */
extern cudaError_t cuk_bias_rows(cudaStream_t s, float *y, const float *bias,
								 int M, int N, bool accumulate);
extern cudaError_t cuk_scale(cudaStream_t s, float *x, size_t n, float k);
extern cudaError_t cuk_embedding(cudaStream_t s, float *out, const void *table,
								 int dtype, const int32_t *ids, int n, int dim);
extern cudaError_t cuk_scatter_rows(cudaStream_t s, float *dst, const float *src,
									const int *rows, int n, int dim, float k);
extern cudaError_t cuk_im2col(cudaStream_t s, float *cols, const float *pix,
							  int B, int C, int H, int W, int P);
extern cudaError_t cuk_rope(cudaStream_t s, float *x, int B, int T, int nh,
							int hd, float theta, int pos0);

/* ---- kernels_norm.cu ---- */
extern cudaError_t cuk_layernorm(cudaStream_t s, float *y, const float *x,
								 const float *w, const float *b, int rows,
								 int dim, float eps);
extern cudaError_t cuk_rmsnorm(cudaStream_t s, float *y, const float *x,
							   const float *w, int rows, int dim, float eps);
extern cudaError_t cuk_l2norm(cudaStream_t s, float *x, int rows, int dim);

/* ---- kernels_attention.cu ---- */

/*
 * Attention with the semantics of CpBackend.attention: q [B,T,nh,hd],
 * k, v [B,T,nkv,hd], out [B,T,nh,hd]; lens device array of B (NULL = all
 * T); causal masks keys after the query's token.  cuk_attention picks the tensor-core flash kernel when hd <= 256 and
 * simple is false, else the plain fp32 one (any hd; the test oracle).
 */
extern cudaError_t cuk_attention(cudaStream_t s, float *out, const float *q,
								 const float *k, const float *v, int B, int T,
								 int nh, int nkv, int hd, float scale,
								 const int *lens, bool causal, bool simple);

/* Qwen2-VL family (kernels_qwen.cu) */
extern cudaError_t cuk_rmsnorm_plain(cudaStream_t s, float *y, const float *x,
									 const float *w, int rows, int dim,
									 float eps);
extern cudaError_t cuk_rotary(cudaStream_t s, float *x, const float *cos_t,
							  const float *sin_t, int rows, int nh, int hd);
extern cudaError_t cuk_swiglu(cudaStream_t s, float *out, const float *gate,
							  const float *up, size_t n);
extern cudaError_t cuk_quick_gelu(cudaStream_t s, float *x, size_t n);
extern cudaError_t cuk_gelu_erf(cudaStream_t s, float *x, size_t n);

#endif							/* COLPALI_CUDA_KERNELS_H */
