/*
 * kernels_elementwise.cu
 *	  Element-wise, gather and layout kernels of the CUDA backend: dtype
 *	  conversion, GELU-tanh, GeGLU, residual add, row broadcasts (bias,
 *	  position embeddings), scaling, embedding gather, row scatter, im2col
 *	  and rotary embeddings.  Simple grid-stride loops: these ops move a few
 *	  bytes per element and are bound by memory bandwidth.
 */
#include <math.h>

#include <cuda_fp16.h>

#include "cuda_kernels.h"

#define EW_THREADS 256

/*
 * grid_for
 *		Blocks for n elements with a grid-stride loop (capped).
 */
static unsigned int
grid_for(size_t n)
{
	size_t		b = (n + EW_THREADS - 1) / EW_THREADS;

	if (b < 1)
		b = 1;
	if (b > 65535 * 8)
		b = 65535 * 8;
	return (unsigned int) b;
}

#define GRID_STRIDE(i, n) \
	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
		 i += (size_t) blockDim.x * gridDim.x)

/* gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
__device__ __forceinline__ float
gelu_tanh_f(float x)
{
	const float c = 0.7978845608028654f;

	return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

/*
 * k_f32_to_bf16
 *		dst = bf16(src), round to nearest even.
 */
__global__ void
k_f32_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n)
{
	GRID_STRIDE(i, n)
		dst[i] = __float2bfloat16_rn(src[i]);
}

/*
 * k_to_f32
 *		dst = float(src) for an fp32/f16/bf16 source.
 */
__global__ void
k_to_f32(float *dst, const void *src, int dtype, size_t n)
{
	GRID_STRIDE(i, n)
	{
		float		v;

		if (dtype == CUK_BF16)
			v = __bfloat162float(((const __nv_bfloat16 *) src)[i]);
		else if (dtype == CUK_F16)
			v = __half2float(((const __half *) src)[i]);
		else
			v = ((const float *) src)[i];
		dst[i] = v;
	}
}

/* bf (may be NULL) receives the result rounded to bf16: the next GEMM's input */
__global__ void
k_gelu_tanh(float *x, size_t n, __nv_bfloat16 *bf)
{
	GRID_STRIDE(i, n)
	{
		float		y = gelu_tanh_f(x[i]);

		x[i] = y;
		if (bf)
			bf[i] = __float2bfloat16_rn(y);
	}
}

/*
 * k_geglu
 *		out = gelu_tanh(gate) * up.
 */
__global__ void
k_geglu(float *out, const float *gate, const float *up, size_t n, __nv_bfloat16 *bf)
{
	GRID_STRIDE(i, n)
	{
		float		y = gelu_tanh_f(gate[i]) * up[i];

		out[i] = y;
		if (bf)
			bf[i] = __float2bfloat16_rn(y);
	}
}

/*
 * k_add
 *		y += x.
 */
__global__ void
k_add(float *y, const float *x, size_t n)
{
	GRID_STRIDE(i, n)
		y[i] += x[i];
}

/*
 * k_add_rows
 *		y[r, :] += t[r mod period, :].
 */
__global__ void
k_add_rows(float *y, const float *t, size_t n, int period, int dim)
{
	GRID_STRIDE(i, n)
	{
		size_t		r = i / dim;
		int			c = (int) (i % dim);

		y[i] += t[(r % period) * dim + c];
	}
}

/*
 * k_bias_rows
 *		y[r, :] = bias (or += bias with accumulate).
 */
__global__ void
k_bias_rows(float *y, const float *bias, size_t n, int N, bool accumulate)
{
	GRID_STRIDE(i, n)
	{
		float		b = bias[i % N];

		y[i] = accumulate ? y[i] + b : b;
	}
}

/*
 * k_scale
 *		x *= k.
 */
__global__ void
k_scale(float *x, size_t n, float k)
{
	GRID_STRIDE(i, n)
		x[i] *= k;
}

/*
 * k_embedding
 *		out[i, :] = table[ids[i], :] converted to float.
 */
__global__ void
k_embedding(float *out, const void *table, int dtype, const int32_t *ids,
			size_t n, int dim)
{
	GRID_STRIDE(i, n)
	{
		size_t		r = i / dim;
		int			c = (int) (i % dim);
		size_t		src = (size_t) ids[r] * dim + c;
		float		v;

		if (dtype == CUK_BF16)
			v = __bfloat162float(((const __nv_bfloat16 *) table)[src]);
		else if (dtype == CUK_F16)
			v = __half2float(((const __half *) table)[src]);
		else
			v = ((const float *) table)[src];
		out[i] = v;
	}
}

/*
 * k_scatter_rows
 *		dst[rows[i], :] = src[i, :] * k.
 */
__global__ void
k_scatter_rows(float *dst, const float *src, const int *rows, size_t n,
			   int dim, float k)
{
	GRID_STRIDE(i, n)
	{
		size_t		r = i / dim;
		int			c = (int) (i % dim);

		dst[(size_t) rows[r] * dim + c] = src[i] * k;
	}
}

/* cols [B, (H/P)*(W/P), C*P*P] from pixels [B, C, H, W]; vector order (c, ky, kx). */
__global__ void
k_im2col(float *cols, const float *pix, size_t n, int C, int H, int W, int P)
{
	int			np_x = W / P;
	int			np = (H / P) * np_x;
	int			vec = C * P * P;

	GRID_STRIDE(i, n)
	{
		int			e = (int) (i % vec);
		size_t		bp = i / vec;
		int			p = (int) (bp % np);
		size_t		b = bp / np;
		int			c = e / (P * P);
		int			ky = (e / P) % P;
		int			kx = e % P;
		int			y = (p / np_x) * P + ky;
		int			x = (p % np_x) * P + kx;

		cols[i] = pix[((b * C + c) * H + y) * W + x];
	}
}

/*
 * Rotary embedding, rotate_half form; one thread per (row, pair).  Angles
 * and cos/sin in fp32 with the accurate (range-reduced) functions, as
 * transformers and the CPU backend.
 */
__global__ void
k_rope(float *x, size_t npairs, int T, int nh, int hd, float theta, int pos0)
{
	int			half = hd / 2;

	GRID_STRIDE(i, npairs)
	{
		int			j = (int) (i % half);
		size_t		row = i / half;	/* (b, t, h) */
		int			t = (int) ((row / nh) % T);
		float		inv_freq = 1.0f / powf(theta, (float) (2 * j) / (float) hd);
		float		ang = (float) (t + pos0) * inv_freq;
		float		cs = cosf(ang),
					sn = sinf(ang);
		float	   *p = x + row * hd;
		float		x1 = p[j],
					x2 = p[j + half];

		p[j] = x1 * cs - x2 * sn;
		p[j + half] = x2 * cs + x1 * sn;
	}
}

/* ---- launchers ---- */

/*
 * cuk_f32_to_bf16
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_f32_to_bf16(cudaStream_t s, __nv_bfloat16 *dst, const float *src, size_t n)
{
	k_f32_to_bf16<<<grid_for(n), EW_THREADS, 0, s>>>(dst, src, n);
	return cudaGetLastError();
}

/*
 * cuk_to_f32
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_to_f32(cudaStream_t s, float *dst, const void *src, int dtype, size_t n)
{
	k_to_f32<<<grid_for(n), EW_THREADS, 0, s>>>(dst, src, dtype, n);
	return cudaGetLastError();
}

/*
 * cuk_gelu_tanh
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_gelu_tanh(cudaStream_t s, float *x, size_t n, __nv_bfloat16 *bf)
{
	k_gelu_tanh<<<grid_for(n), EW_THREADS, 0, s>>>(x, n, bf);
	return cudaGetLastError();
}

/*
 * cuk_geglu
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_geglu(cudaStream_t s, float *out, const float *gate, const float *up, size_t n,
		  __nv_bfloat16 *bf)
{
	k_geglu<<<grid_for(n), EW_THREADS, 0, s>>>(out, gate, up, n, bf);
	return cudaGetLastError();
}

/*
 * cuk_add
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_add(cudaStream_t s, float *y, const float *x, size_t n)
{
	k_add<<<grid_for(n), EW_THREADS, 0, s>>>(y, x, n);
	return cudaGetLastError();
}

/*
 * cuk_add_rows
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_add_rows(cudaStream_t s, float *y, const float *t, int rows, int period, int dim)
{
	size_t		n = (size_t) rows * dim;

	k_add_rows<<<grid_for(n), EW_THREADS, 0, s>>>(y, t, n, period, dim);
	return cudaGetLastError();
}

/*
 * cuk_bias_rows
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_bias_rows(cudaStream_t s, float *y, const float *bias, int M, int N, bool accumulate)
{
	size_t		n = (size_t) M * N;

	k_bias_rows<<<grid_for(n), EW_THREADS, 0, s>>>(y, bias, n, N, accumulate);
	return cudaGetLastError();
}

/*
 * cuk_scale
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_scale(cudaStream_t s, float *x, size_t n, float k)
{
	k_scale<<<grid_for(n), EW_THREADS, 0, s>>>(x, n, k);
	return cudaGetLastError();
}

/*
 * cuk_embedding
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_embedding(cudaStream_t s, float *out, const void *table, int dtype,
			  const int32_t *ids, int n, int dim)
{
	size_t		total = (size_t) n * dim;

	k_embedding<<<grid_for(total), EW_THREADS, 0, s>>>(out, table, dtype, ids, total, dim);
	return cudaGetLastError();
}

/*
 * cuk_scatter_rows
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_scatter_rows(cudaStream_t s, float *dst, const float *src, const int *rows,
				 int n, int dim, float k)
{
	size_t		total = (size_t) n * dim;

	k_scatter_rows<<<grid_for(total), EW_THREADS, 0, s>>>(dst, src, rows, total, dim, k);
	return cudaGetLastError();
}

/*
 * cuk_im2col
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_im2col(cudaStream_t s, float *cols, const float *pix, int B, int C, int H,
		   int W, int P)
{
	size_t		n = (size_t) B * (H / P) * (W / P) * C * P * P;

	k_im2col<<<grid_for(n), EW_THREADS, 0, s>>>(cols, pix, n, C, H, W, P);
	return cudaGetLastError();
}

/*
 * cuk_rope
 *		Launcher of the kernel of the same name (see cuda_kernels.h).
 */
cudaError_t
cuk_rope(cudaStream_t s, float *x, int B, int T, int nh, int hd, float theta,
		 int pos0)
{
	size_t		npairs = (size_t) B * T * nh * (hd / 2);

	k_rope<<<grid_for(npairs), EW_THREADS, 0, s>>>(x, npairs, T, nh, hd, theta, pos0);
	return cudaGetLastError();
}
