/*
 * kernels_qwen.cu
 *	  Kernels of the Qwen2-VL family's operations (backend.h, "Qwen2-VL
 *	  family"): plain-weight RMSNorm (one block per row, fp32 statistics),
 *	  rotary embedding from per-row angle tables, SwiGLU, QuickGELU and the
 *	  exact (erf) GELU (grid-stride loops).  They follow the CPU backend's
 *	  fp32 loops (src/engine/backend_cpu_qwen.c) formula for formula.
 *
 * Not yet run on a device: compiled only (see docs/cuda.md).
 */
#include <math.h>

#include "cuda_kernels.h"

#define QK_THREADS 256

/*
 * qk_block_sum
 *		Sum of v over the block (blockDim.x a multiple of 32, <= 1024);
 *		every thread gets the result.  As kernels_norm.cu's block_sum: device
 *		code is not linked across files (no -rdc), so each file has its own.
 */
static __device__ float
qk_block_sum(float v, float *red)
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

#define GRID_STRIDE(i, n) \
	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
		 i += (size_t) blockDim.x * gridDim.x)

/*
 * qk_grid
 *		Blocks for n elements with a grid-stride loop (capped).
 */
static unsigned int
qk_grid(size_t n)
{
	size_t		b = (n + QK_THREADS - 1) / QK_THREADS;

	if (b < 1)
		b = 1;
	if (b > 65535 * 8)
		b = 65535 * 8;
	return (unsigned int) b;
}

/*
 * k_rmsnorm_plain
 *		Qwen2 RMSNorm of one row per block: x * rsqrt(mean(x^2) + eps) * w.
 */
__global__ void
k_rmsnorm_plain(float *y, const float *x, const float *w, int dim, float eps)
{
	__shared__ float red[32];
	const float *xr = x + (size_t) blockIdx.x * dim;
	float	   *yr = y + (size_t) blockIdx.x * dim;
	float		s = 0.0f,
				r;
	int			i;

	for (i = threadIdx.x; i < dim; i += blockDim.x)
		s += xr[i] * xr[i];
	r = 1.0f / sqrtf(qk_block_sum(s, red) / (float) dim + eps);
	/* y may alias x: each element is read before it is written, by one thread */
	for (i = threadIdx.x; i < dim; i += blockDim.x)
		yr[i] = w[i] * (xr[i] * r);
}

/*
 * k_rotary
 *		rotate_half rotary in place on x [rows, nh, hd]: one thread per
 *		(row, head, pair j < hd/2), angles from the row's cos/sin tables.
 */
__global__ void
k_rotary(float *x, const float *cos_t, const float *sin_t, int rows, int nh,
		 int hd)
{
	int			half = hd / 2;
	size_t		n = (size_t) rows * nh * half;

	GRID_STRIDE(i, n)
	{
		int			j = (int) (i % half);
		size_t		rh = i / half;	/* row * nh + head */
		size_t		r = rh / nh;
		float	   *v = x + rh * hd;
		float		c = cos_t[r * half + j];
		float		s = sin_t[r * half + j];
		float		a = v[j];
		float		b = v[j + half];

		v[j] = a * c - b * s;
		v[j + half] = b * c + a * s;
	}
}

/* out = silu(gate) * up; out may be gate */
__global__ void
k_swiglu(float *out, const float *gate, const float *up, size_t n)
{
	GRID_STRIDE(i, n)
	{
		float		g = gate[i];

		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

/* x * sigmoid(1.702 x), in place */
__global__ void
k_quick_gelu(float *x, size_t n)
{
	GRID_STRIDE(i, n)
	{
		float		v = x[i];

		x[i] = v / (1.0f + expf(-1.702f * v));
	}
}

/* 0.5 x (1 + erf(x / sqrt 2)), in place */
__global__ void
k_gelu_erf(float *x, size_t n)
{
	GRID_STRIDE(i, n)
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
	k_rmsnorm_plain<<<rows, t < QK_THREADS ? t : QK_THREADS, 0, s>>>(y, x, w, dim, eps);
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
	size_t		n = (size_t) rows * nh * (hd / 2);

	if (n == 0)
		return cudaSuccess;
	k_rotary<<<qk_grid(n), QK_THREADS, 0, s>>>(x, cos_t, sin_t, rows, nh, hd);
	return cudaGetLastError();
}

/*
 * cuk_swiglu
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_swiglu(cudaStream_t s, float *out, const float *gate, const float *up,
		   size_t n)
{
	if (n == 0)
		return cudaSuccess;
	k_swiglu<<<qk_grid(n), QK_THREADS, 0, s>>>(out, gate, up, n);
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
	k_quick_gelu<<<qk_grid(n), QK_THREADS, 0, s>>>(x, n);
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
	k_gelu_erf<<<qk_grid(n), QK_THREADS, 0, s>>>(x, n);
	return cudaGetLastError();
}
