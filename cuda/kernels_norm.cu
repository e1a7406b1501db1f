/*
 * kernels_norm.cu
 *	  Row normalisations of the CUDA backend, one thread block per row,
 *	  statistics accumulated in fp32: SigLIP LayerNorm (biased variance, two
 *	  passes for accuracy), Gemma RMSNorm (scale 1 + w, multiplied in fp32
 *	  as transformers does before its cast) and the head's L2 normalisation
 *	  (no epsilon).  Rows are a few KB, so the second and third reads of a
 *	  row hit L1/L2.
 */
#include <math.h>

#include "cuda_kernels.h"

#define NORM_THREADS 256

/*
 * block_sum
 *		Sum of v over the block (blockDim.x a multiple of 32, <= 1024);
 *		every thread gets the result.  red has 32 floats of shared memory.
 */
__device__ float
block_sum(float v, float *red)
{
	int			lane = threadIdx.x & 31;
	int			warp = threadIdx.x >> 5;
	int			nwarps = (blockDim.x + 31) >> 5;
	int			o;

	for (o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	__syncthreads();			/* red may still be read by a previous call */
	if (lane == 0)
		red[warp] = v;
	__syncthreads();
	v = (lane < nwarps) ? red[lane] : 0.0f;
	for (o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/*
 * k_layernorm
 *		LayerNorm of one row per block (two-pass variance).
 */
__global__ void
k_layernorm(float *y, const float *x, const float *w, const float *b, int dim,
			float eps)
{
	__shared__ float red[32];
	const float *xr = x + (size_t) blockIdx.x * dim;
	float	   *yr = y + (size_t) blockIdx.x * dim;
	float		s = 0.0f,
				mean,
				rstd;
	int			i;

	for (i = threadIdx.x; i < dim; i += blockDim.x)
		s += xr[i];
	mean = block_sum(s, red) / (float) dim;
	s = 0.0f;
	for (i = threadIdx.x; i < dim; i += blockDim.x)
	{
		float		d = xr[i] - mean;

		s += d * d;
	}
	rstd = rsqrtf(block_sum(s, red) / (float) dim + eps);
	/* y may alias x: each element is read before it is written, by one thread */
	for (i = threadIdx.x; i < dim; i += blockDim.x)
		yr[i] = (xr[i] - mean) * rstd * w[i] + b[i];
}

/*
 * k_rmsnorm
 *		Gemma RMSNorm of one row per block.
 */
__global__ void
k_rmsnorm(float *y, const float *x, const float *w, int dim, float eps)
{
	__shared__ float red[32];
	const float *xr = x + (size_t) blockIdx.x * dim;
	float	   *yr = y + (size_t) blockIdx.x * dim;
	float		s = 0.0f,
				r;
	int			i;

	for (i = threadIdx.x; i < dim; i += blockDim.x)
		s += xr[i] * xr[i];
	r = rsqrtf(block_sum(s, red) / (float) dim + eps);
	for (i = threadIdx.x; i < dim; i += blockDim.x)
		yr[i] = (xr[i] * r) * (1.0f + w[i]);
}

/*
 * k_l2norm
 *		L2 normalisation of one row per block, in place.
 */
__global__ void
k_l2norm(float *x, int dim)
{
	__shared__ float red[32];
	float	   *xr = x + (size_t) blockIdx.x * dim;
	float		s = 0.0f,
				nrm;
	int			i;

	for (i = threadIdx.x; i < dim; i += blockDim.x)
		s += xr[i] * xr[i];
	nrm = sqrtf(block_sum(s, red));
	for (i = threadIdx.x; i < dim; i += blockDim.x)
		xr[i] = xr[i] / nrm;
}

/*
 * norm_threads
 *		Threads per row block: enough for dim, a multiple of 32.
 */
static int
norm_threads(int dim)
{
	int			t = ((dim + 31) / 32) * 32;

	return t < NORM_THREADS ? t : NORM_THREADS;
}

/*
 * cuk_layernorm
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_layernorm(cudaStream_t s, float *y, const float *x, const float *w,
			  const float *b, int rows, int dim, float eps)
{
	if (rows <= 0)
		return cudaSuccess;
	k_layernorm<<<rows, norm_threads(dim), 0, s>>>(y, x, w, b, dim, eps);
	return cudaGetLastError();
}

/*
 * cuk_rmsnorm
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_rmsnorm(cudaStream_t s, float *y, const float *x, const float *w, int rows,
			int dim, float eps)
{
	if (rows <= 0)
		return cudaSuccess;
	k_rmsnorm<<<rows, norm_threads(dim), 0, s>>>(y, x, w, dim, eps);
	return cudaGetLastError();
}

/*
 * cuk_l2norm
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_l2norm(cudaStream_t s, float *x, int rows, int dim)
{
	if (rows <= 0)
		return cudaSuccess;
	k_l2norm<<<rows, norm_threads(dim), 0, s>>>(x, dim);
	return cudaGetLastError();
}
