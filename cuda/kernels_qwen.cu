/*
 * kernels_qwen.cu
 *	  The CUDA kernels only the Qwen2-VL family needs (backend.h, "Qwen2-VL
 *	  family"): RMSNorm with a plain weight, rotary embedding from per-row
 *	  angle tables, SwiGLU, QuickGELU and exact (erf) GELU.  Same formulas,
 *	  in the same fp32 operation order, as the CPU versions
 *	  (src/engine/backend_cpu_qwen.c), which test/cuda/test_cuda_ops.c uses
 *	  as the oracle.
 */
#include <math.h>

#include "cuda_kernels.h"

#define QW_THREADS 256

/* grid-stride loop over [0, n) */
#define QW_STRIDE(i, n) \
	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
		 i += (size_t) gridDim.x * blockDim.x)

/*
 * qw_grid
 *		Blocks for n elements, capped (the loops are grid-stride).
 */
static unsigned int
qw_grid(size_t n)
{
	size_t		b = (n + QW_THREADS - 1) / QW_THREADS;

	if (b < 1)
		b = 1;
	return (unsigned int) (b > 65535 ? 65535 : b);
}

/*
 * qw_block_sum
 *		Sum of v over the block (blockDim.x a multiple of 32); every thread
 *		gets the result.  red has 32 floats of shared memory.
 */
__device__ static float
qw_block_sum(float v, float *red)
{
	int			lane = threadIdx.x & 31;
	int			warp = threadIdx.x >> 5;
	int			nwarps = (blockDim.x + 31) >> 5;
	int			o;

	for (o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	__syncthreads();
	if (lane == 0)
		red[warp] = v;
	__syncthreads();
	v = (lane < nwarps) ? red[lane] : 0.0f;
	for (o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/*
 * k_rmsnorm_plain
 *		Qwen2RMSNorm of one row per block: x / sqrt(mean(x^2) + eps) * w.
 */
__global__ void
k_rmsnorm_plain(float *y, const float *x, const float *w, int dim, float eps)
{
	__shared__ float red[32];
	const float *xr = x + (size_t) blockIdx.x * dim;
	float	   *yr = y + (size_t) blockIdx.x * dim;
	float		s = 0.0f,
				inv;
	int			i;

	for (i = threadIdx.x; i < dim; i += blockDim.x)
		s += xr[i] * xr[i];
	inv = 1.0f / sqrtf(qw_block_sum(s, red) / (float) dim + eps);
	/* y may alias x: each element is read before it is written, by one thread */
	for (i = threadIdx.x; i < dim; i += blockDim.x)
		yr[i] = w[i] * (xr[i] * inv);
}

/*
 * k_rotary
 *		x[r, h, :] = x*cos + rotate_half(x)*sin with row r's tables; one
 *		thread per (row, head, pair).
 */
__global__ void
k_rotary(float *x, const float *cos_t, const float *sin_t, size_t pairs,
		 int nh, int half)
{
	QW_STRIDE(i, pairs)
	{
		int			j = (int) (i % half);
		size_t		rh = i / half;	/* row * nh + head */
		size_t		r = rh / nh;
		float	   *v = x + rh * 2 * half;
		float		c = cos_t[r * half + j],
					s = sin_t[r * half + j],
					a = v[j],
					b = v[j + half];

		v[j] = a * c - b * s;
		v[j + half] = b * c + a * s;
	}
}

/*
 * k_swiglu
 *		out = silu(gate) * up (out may be gate).
 */
__global__ void
k_swiglu(float *out, const float *gate, const float *up, size_t n)
{
	QW_STRIDE(i, n)
	{
		float		g = gate[i];

		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

/*
 * k_quick_gelu
 *		x = x * sigmoid(1.702 x).
 */
__global__ void
k_quick_gelu(float *x, size_t n)
{
	QW_STRIDE(i, n)
	{
		float		v = x[i];

		x[i] = v / (1.0f + expf(-1.702f * v));
	}
}

/*
 * k_gelu_erf
 *		x = 0.5 x (1 + erf(x / sqrt 2)).
 */
__global__ void
k_gelu_erf(float *x, size_t n)
{
	QW_STRIDE(i, n)
	{
		float		v = x[i];

		x[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
	}
}

/*
 * cuk_rmsnorm_plain
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_rmsnorm_plain(cudaStream_t s, float *y, const float *x, const float *w,
				  int rows, int dim, float eps)
{
	int			t = ((dim + 31) / 32) * 32;

	if (rows <= 0)
		return cudaSuccess;
	k_rmsnorm_plain<<<rows, t < QW_THREADS ? t : QW_THREADS, 0, s>>>(y, x, w, dim, eps);
	return cudaGetLastError();
}

/*
 * cuk_rotary
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_rotary(cudaStream_t s, float *x, const float *cos_t, const float *sin_t,
		   int rows, int nh, int hd)
{
	size_t		pairs = (size_t) rows * nh * (hd / 2);

	if (pairs == 0)
		return cudaSuccess;
	k_rotary<<<qw_grid(pairs), QW_THREADS, 0, s>>>(x, cos_t, sin_t, pairs, nh, hd / 2);
	return cudaGetLastError();
}

/*
 * cuk_swiglu
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_swiglu(cudaStream_t s, float *out, const float *gate, const float *up, size_t n)
{
	if (n == 0)
		return cudaSuccess;
	k_swiglu<<<qw_grid(n), QW_THREADS, 0, s>>>(out, gate, up, n);
	return cudaGetLastError();
}

/*
 * cuk_quick_gelu
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_quick_gelu(cudaStream_t s, float *x, size_t n)
{
	if (n == 0)
		return cudaSuccess;
	k_quick_gelu<<<qw_grid(n), QW_THREADS, 0, s>>>(x, n);
	return cudaGetLastError();
}

/*
 * cuk_gelu_erf
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_gelu_erf(cudaStream_t s, float *x, size_t n)
{
	if (n == 0)
		return cudaSuccess;
	k_gelu_erf<<<qw_grid(n), QW_THREADS, 0, s>>>(x, n);
	return cudaGetLastError();
}
