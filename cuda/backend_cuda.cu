/*
 * backend_cuda.cu
 *	  The CUDA backend of the colpali engine: the CpBackend vtable of
 *	  backend.h on one GPU (memory, streams, cuBLAS handle, op dispatch),
 *	  exported through the extern "C" API of src/engine/backend_cuda_abi.h.
 *
 * Dtype flow (docs/encoder.md#precision, adapted to the fp32 activation interface):
 *	- Matmul weights are uploaded once as bf16 (BF16 checkpoints are copied
 *	  as they are; F32/F16 ones are rounded to nearest even on the host).
 *	  The token embedding table keeps its stored dtype and is converted row
 *	  by row in the gather.  Norm weights, biases and position embeddings
 *	  are fp32.
 *	- Activations are fp32 in device memory, as the interface says.  A
 *	  matmul converts its input x to bf16 in a scratch buffer, then runs
 *	  a cuBLASLt GEMM (matmul_lt.cu) with bf16 operands, fp32 accumulation
 *	  (CUBLAS_COMPUTE_32F), an fp32 output and the bias as an epilogue;
 *	  where cuBLASLt cannot run a call, cublasGemmEx does, with the bias
 *	  written (or added) first and the GEMM accumulating onto it (beta = 1).
 *	- Norms, softmax, RoPE, GELU and residual adds are fp32, so the GPU
 *	  result is closer to an fp32 reference than transformers' bf16 run.
 *
 * Every CUDA / cuBLAS call is checked; a failure becomes CP_ERR_BACKEND
 * (CP_ERR_NOMEM for allocations) with a message naming the call.  After a
 * kernel fault the CUDA context is unusable and every later call fails
 * cleanly; the owner should destroy the backend.  Nothing here aborts,
 * exits or prints, and no C++ exception leaves the library.
 *
 * Threading: a backend belongs to the thread that created it (one stream,
 * one cuBLAS handle); operations are enqueued in order on that stream and
 * download() synchronises.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backend_cuda_abi.h"
#include "dtype.h"
#include "cuda_kernels.h"
#include "cuda_matmul.h"

#define CP_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

/* cuBLAS workspace (NVIDIA recommends 32 MiB on Hopper). */
#define BLAS_WORKSPACE_BYTES ((size_t) 32 << 20)
/* Host staging for weight dtype conversion, in elements. */
#define CONVERT_CHUNK ((size_t) 1 << 20)

struct CpBuf
{
	void	   *d;				/* device memory */
	size_t		n;				/* elements */
	size_t		bytes;
	int			dtype;			/* CUK_F32 / CUK_F16 / CUK_BF16 */
	bool		weight;
	CpWeightKind kind;			/* weights only */
	int64_t		rows;			/* weights: shape as [rows, cols] */
	int64_t		cols;
};

typedef struct CudaImpl
{
	int			device;
	char		device_name[256];
	cudaStream_t stream;
	cublasHandle_t blas;
	LtCache    *lt;				/* cuBLASLt GEMMs with bias epilogue, or NULL
								 * (COLPALI_CUDA_GEMM=gemmex) */
	void	   *blas_ws;
	__nv_bfloat16 *xbf;			/* bf16 copy of a matmul input */
	size_t		xbf_n;
	/*
	 * What xbf holds: the view xbf_src of xbf_len floats, still equal to
	 * the buffer's contents (rounded to bf16) while xbf_valid.  Every op
	 * except matmul clears xbf_valid (GUARD_BEGIN); a matmul clears it
	 * when its output overlaps the range.  So the q/k/v (and gate/up)
	 * GEMMs of one normalised input convert it once, and GELU / GeGLU
	 * write their result there directly for the following GEMM.
	 */
	CpView		xbf_src;
	size_t		xbf_len;
	bool		xbf_valid;
	int		   *idx_d;			/* device copy of ids / rows */
	size_t		idx_n;
	int		   *lens_d;			/* device copy of attention lens */
	int		   *lens_h;			/* what lens_d holds */
	int			lens_n;
	size_t		lens_cap;		/* elements allocated at lens_d */
	bool		simple_attention;	/* COLPALI_CUDA_ATTENTION=simple */
	bool		fuse_bf16;		/* GELU/GeGLU also write the bf16 GEMM input
								 * (off with COLPALI_CUDA_NO_FUSE=1) */
} CudaImpl;

#define IMPL(be) ((CudaImpl *) (be)->impl)

/* Device bytes held by all backends of this library. */
static size_t mem_current;
static size_t mem_peak;

static CpStatus
fail(CpBackend *be, CpStatus status, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));

/*
 * fail
 *		Record an error in be->err and return status.
 */
static CpStatus
fail(CpBackend *be, CpStatus status, const char *fmt,...)
{
	va_list		ap;

	be->err.status = status;
	va_start(ap, fmt);
	vsnprintf(be->err.msg, sizeof(be->err.msg), fmt, ap);
	va_end(ap);
	return status;
}

/*
 * fail_cuda
 *		Error for a failed CUDA runtime call.
 */
static CpStatus
fail_cuda(CpBackend *be, cudaError_t rc, const char *what)
{
	return fail(be, rc == cudaErrorMemoryAllocation ? CP_ERR_NOMEM : CP_ERR_BACKEND,
				"CUDA %s failed: %s (%s)", what, cudaGetErrorString(rc),
				cudaGetErrorName(rc));
}

#define CU(call, what) \
	do { cudaError_t rc_ = (call); \
		 if (rc_ != cudaSuccess) return fail_cuda(be, rc_, (what)); } while (0)

#define BLAS(call, what) \
	do { cublasStatus_t bs_ = (call); \
		 if (bs_ != CUBLAS_STATUS_SUCCESS) \
			 return fail(be, CP_ERR_BACKEND, "cuBLAS %s failed: %s", (what), \
						 cublasGetStatusString(bs_)); } while (0)

/*
 * Every vtable entry runs inside GUARD so that no exception escapes.
 * GUARD_BEGIN also forgets the cached bf16 matmul input (see CudaImpl);
 * matmul uses GUARD_BEGIN_KEEP.
 */
#define GUARD_BEGIN_KEEP try {
#define GUARD_BEGIN try { IMPL(be)->xbf_valid = false;
#define GUARD_END \
	} catch (...) { \
		return fail(be, CP_ERR_BACKEND, "unexpected C++ exception in %s", __func__); \
	}

/*
 * dev_alloc / dev_free
 *		cudaMalloc / cudaFree with the library's memory accounting.
 */
static cudaError_t
dev_alloc(void **p, size_t bytes)
{
	cudaError_t rc = cudaMalloc(p, bytes > 0 ? bytes : 16);

	if (rc == cudaSuccess)
	{
		size_t		cur = __atomic_add_fetch(&mem_current, bytes, __ATOMIC_RELAXED);
		size_t		peak = __atomic_load_n(&mem_peak, __ATOMIC_RELAXED);

		while (cur > peak &&
			   !__atomic_compare_exchange_n(&mem_peak, &peak, cur, true,
											__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
	else
		*p = NULL;
	return rc;
}

/*
 * dev_free
 *		cudaFree with the library's memory accounting (NULL is a no-op).
 */
static void
dev_free(void *p, size_t bytes)
{
	if (p == NULL)
		return;
	cudaFree(p);
	__atomic_sub_fetch(&mem_current, bytes, __ATOMIC_RELAXED);
}

/*
 * grow
 *		Make the device scratch *p hold at least n elements of size esz.
 *		cudaFree synchronises the device, so the old buffer is no longer
 *		in use when it goes.
 */
static CpStatus
grow(CpBackend *be, void **p, size_t *cap, size_t n, size_t esz, const char *what)
{
	if (*cap >= n && *p != NULL)
		return CP_OK;
	dev_free(*p, *cap * esz);
	*p = NULL;
	*cap = 0;
	CU(dev_alloc(p, n * esz), what);
	*cap = n;
	return CP_OK;
}

/*
 * check_view
 *		v must be an fp32 activation buffer holding [off, off + n).
 */
static CpStatus
check_view(CpBackend *be, CpView v, size_t n, const char *op, const char *arg)
{
	if (v.buf == NULL)
		return fail(be, CP_ERR_INVALID_ARG, "cuda %s: %s has no buffer", op, arg);
	if (v.buf->dtype != CUK_F32 || v.off > v.buf->n || n > v.buf->n - v.off)
		return fail(be, CP_ERR_INVALID_ARG,
					"cuda %s: %s range [%zu, %zu) outside its buffer of %zu floats",
					op, arg, v.off, v.off + n, v.buf->n);
	return CP_OK;
}

/*
 * check_vector
 *		w must be an fp32 weight buffer of at least n elements.
 */
static CpStatus
check_vector(CpBackend *be, const CpBuf *w, size_t n, const char *op, const char *arg)
{
	if (w == NULL || w->dtype != CUK_F32 || w->n < n)
		return fail(be, CP_ERR_INVALID_ARG,
					"cuda %s: %s must be an fp32 buffer of %zu elements", op, arg, n);
	return CP_OK;
}

#define RETURN_IF_FAILED(expr) do { CpStatus st_ = (expr); if (st_ != CP_OK) return st_; } while (0)

/*
 * fptr
 *		Device address of an fp32 activation view.
 */
static inline float *
fptr(CpView v)
{
	return (float *) v.buf->d + v.off;
}

/*
 * upload_index
 *		Copy n host ints to the device index scratch.
 */
static CpStatus
upload_index(CpBackend *be, const int *h, int n, int **out)
{
	CudaImpl   *impl = IMPL(be);

	RETURN_IF_FAILED(grow(be, (void **) &impl->idx_d, &impl->idx_n, (size_t) (n > 0 ? n : 1),
			 sizeof(int), "allocation of index scratch"));
	if (n > 0)
		CU(cudaMemcpyAsync(impl->idx_d, h, sizeof(int) * n, cudaMemcpyHostToDevice,
						   impl->stream), "copy of indices to the device");
	*out = impl->idx_d;
	return CP_OK;
}

/* ---------------------------------------------------------------------
 * Host dtype conversion (weights only, once at load)
 * --------------------------------------------------------------------- */

/*
 * h_to_f32
 *		Element i of a host array of dtype as float.
 */
static float
h_to_f32(const void *src, int dtype, size_t i)
{
	if (dtype == CUK_BF16)
		return cp_bf16_to_f32(((const uint16_t *) src)[i]);
	if (dtype == CUK_F16)
		return cp_f16_to_f32(((const uint16_t *) src)[i]);
	return ((const float *) src)[i];
}

/*
 * upload_converted
 *		Convert n host elements of dtype src_dtype to dst_dtype (F32 or
 *		BF16) chunk by chunk and copy them to dst.
 */
static CpStatus
upload_converted(CpBackend *be, void *dst, int dst_dtype, const void *src,
				 int src_dtype, size_t n)
{
	CudaImpl   *impl = IMPL(be);
	size_t		esz = dst_dtype == CUK_F32 ? 4 : 2;
	unsigned char *tmp = (unsigned char *) malloc(CONVERT_CHUNK * 4);
	size_t		i0;

	if (tmp == NULL)
		return fail(be, CP_ERR_NOMEM, "out of memory converting a weight");
	for (i0 = 0; i0 < n; i0 += CONVERT_CHUNK)
	{
		size_t		m = n - i0 < CONVERT_CHUNK ? n - i0 : CONVERT_CHUNK;
		size_t		i;
		cudaError_t rc;

		for (i = 0; i < m; i++)
		{
			float		f = h_to_f32(src, src_dtype, i0 + i);

			if (dst_dtype == CUK_F32)
				((float *) tmp)[i] = f;
			else
				((uint16_t *) tmp)[i] = cp_f32_to_bf16(f);
		}
		/* pageable source: returns once tmp is staged, so tmp can be reused */
		rc = cudaMemcpyAsync((unsigned char *) dst + i0 * esz, tmp, m * esz,
							 cudaMemcpyHostToDevice, impl->stream);
		if (rc != cudaSuccess)
		{
			free(tmp);
			return fail_cuda(be, rc, "copy of a weight to the device");
		}
	}
	free(tmp);
	return CP_OK;
}

/* ---------------------------------------------------------------------
 * Memory
 * --------------------------------------------------------------------- */

/*
 * cu_alloc
 *		vtable alloc: an fp32 activation buffer of n elements.
 */
static CpStatus
cu_alloc(CpBackend *be, size_t n, CpBuf **out)
{
	CpBuf	   *b;
	cudaError_t rc;

	GUARD_BEGIN
	*out = NULL;
	b = (CpBuf *) calloc(1, sizeof(CpBuf));
	if (b == NULL)
		return fail(be, CP_ERR_NOMEM, "out of memory");
	b->n = n;
	b->bytes = n * sizeof(float);
	b->dtype = CUK_F32;
	rc = dev_alloc(&b->d, b->bytes);
	if (rc != cudaSuccess)
	{
		free(b);
		return fail(be, rc == cudaErrorMemoryAllocation ? CP_ERR_NOMEM : CP_ERR_BACKEND,
					"cudaMalloc of %zu bytes of activations failed: %s",
					n * sizeof(float), cudaGetErrorString(rc));
	}
	*out = b;
	return CP_OK;
	GUARD_END
}

/*
 * cu_free
 *		vtable free: any buffer (NULL is a no-op).
 */
static void
cu_free(CpBackend *be, CpBuf *buf)
{
	if (be->impl != NULL)
		IMPL(be)->xbf_valid = false;
	if (buf == NULL)
		return;
	try
	{
		dev_free(buf->d, buf->bytes);
	}
	catch (...)
	{
	}
	free(buf);
}

/*
 * cu_upload
 *		vtable upload: host floats into a view (pageable copy, staged before return).
 */
static CpStatus
cu_upload(CpBackend *be, CpView dst, const float *src, size_t n)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(check_view(be, dst, n, "upload", "destination"));
	if (n > 0)
		CU(cudaMemcpyAsync(fptr(dst), src, n * sizeof(float), cudaMemcpyHostToDevice,
						   IMPL(be)->stream), "upload");
	return CP_OK;
	GUARD_END
}

/*
 * cu_download
 *		vtable download: a view into host floats; synchronises the stream.
 */
static CpStatus
cu_download(CpBackend *be, CpView src, float *dst, size_t n)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(check_view(be, src, n, "download", "source"));
	if (n > 0)
		CU(cudaMemcpyAsync(dst, fptr(src), n * sizeof(float), cudaMemcpyDeviceToHost,
						   IMPL(be)->stream), "download");
	/* also reports any earlier asynchronous kernel failure */
	CU(cudaStreamSynchronize(IMPL(be)->stream), "computation (reported at download)");
	return CP_OK;
	GUARD_END
}

/*
 * cu_weight_upload
 *		vtable weight_upload: a checkpoint tensor as bf16 (matrix), fp32 (vector) or as stored (table).
 */
static CpStatus
cu_weight_upload(CpBackend *be, const CpTensor *t, CpWeightKind kind, CpBuf **out)
{
	CpBuf	   *b;
	int			src_dtype;
	int			dst_dtype;
	size_t		n;
	cudaError_t rc;
	CpStatus	st;

	GUARD_BEGIN
	*out = NULL;
	if (t->dtype == CP_DTYPE_F32)
		src_dtype = CUK_F32;
	else if (t->dtype == CP_DTYPE_F16)
		src_dtype = CUK_F16;
	else if (t->dtype == CP_DTYPE_BF16)
		src_dtype = CUK_BF16;
	else
		return fail(be, CP_ERR_UNSUPPORTED, "tensor \"%s\" has a dtype the CUDA backend cannot use",
					t->name);
	if (t->numel < 0)
		return fail(be, CP_ERR_SHAPE, "tensor \"%s\" has a negative size", t->name);
	n = (size_t) t->numel;
	if (kind == CP_WEIGHT_MATRIX)
		dst_dtype = CUK_BF16;
	else if (kind == CP_WEIGHT_TABLE)
		dst_dtype = src_dtype;
	else
		dst_dtype = CUK_F32;

	b = (CpBuf *) calloc(1, sizeof(CpBuf));
	if (b == NULL)
		return fail(be, CP_ERR_NOMEM, "out of memory");
	b->n = n;
	b->bytes = n * (dst_dtype == CUK_F32 ? 4 : 2);
	b->dtype = dst_dtype;
	b->weight = true;
	b->kind = kind;
	b->rows = t->ndim > 0 ? t->shape[0] : 1;
	b->cols = (b->rows > 0) ? (int64_t) n / b->rows : 0;
	rc = dev_alloc(&b->d, b->bytes);
	if (rc != cudaSuccess)
	{
		size_t		bytes = b->bytes;

		free(b);
		return fail(be, rc == cudaErrorMemoryAllocation ? CP_ERR_NOMEM : CP_ERR_BACKEND,
					"cudaMalloc of %zu bytes for tensor \"%s\" failed: %s",
					bytes, t->name, cudaGetErrorString(rc));
	}
	if (n == 0)
		st = CP_OK;
	else if (src_dtype == dst_dtype)
	{
		rc = cudaMemcpyAsync(b->d, t->data, b->bytes, cudaMemcpyHostToDevice,
							 IMPL(be)->stream);
		st = (rc == cudaSuccess) ? CP_OK : fail_cuda(be, rc, "copy of a weight to the device");
	}
	else
		st = upload_converted(be, b->d, dst_dtype, t->data, src_dtype, n);
	if (st != CP_OK)
	{
		cu_free(be, b);
		return st;
	}
	*out = b;
	return CP_OK;
	GUARD_END
}

/* ---------------------------------------------------------------------
 * Linear algebra
 * --------------------------------------------------------------------- */

/*
 * cu_matmul
 *		vtable matmul: y = x . W^T (+ bias) (+ y); see the dtype flow at the top.
 */
static CpStatus
cu_matmul(CpBackend *be, CpView y, CpView x, CpBuf *w, CpBuf *bias, int M, int N,
		  int K, bool accumulate)
{
	CudaImpl   *impl = IMPL(be);
	float		alpha = 1.0f,
				beta;
	size_t		nx = (size_t) M * K;

	GUARD_BEGIN_KEEP
	if (M <= 0 || N <= 0 || K <= 0)
		return fail(be, CP_ERR_INVALID_ARG, "cuda matmul: empty shape %d x %d x %d", M, N, K);
	if (w == NULL || !w->weight || w->kind != CP_WEIGHT_MATRIX || w->dtype != CUK_BF16 ||
		w->rows != N || w->cols != K)
		return fail(be, CP_ERR_INVALID_ARG,
					"cuda matmul: weight is not a [%d, %d] matrix", N, K);
	RETURN_IF_FAILED(check_view(be, x, (size_t) M * K, "matmul", "x"));
	RETURN_IF_FAILED(check_view(be, y, (size_t) M * N, "matmul", "y"));
	if (bias != NULL)
		RETURN_IF_FAILED(check_vector(be, bias, (size_t) N, "matmul", "bias"));

	if (!(impl->xbf_valid && impl->xbf_src.buf == x.buf && impl->xbf_src.off == x.off &&
		  nx <= impl->xbf_len))
	{
		impl->xbf_valid = false;
		RETURN_IF_FAILED(grow(be, (void **) &impl->xbf, &impl->xbf_n, nx, 2,
				 "allocation of the bf16 matmul input"));
		CU(cuk_f32_to_bf16(impl->stream, impl->xbf, fptr(x), nx),
		   "launch of the bf16 conversion");
		impl->xbf_src = x;
		impl->xbf_len = nx;
		impl->xbf_valid = true;
	}
	/* the output overwrites the cached input range: forget it */
	if (y.buf == impl->xbf_src.buf &&
		y.off < impl->xbf_src.off + impl->xbf_len &&
		impl->xbf_src.off < y.off + (size_t) M * N)
		impl->xbf_valid = false;
	beta = accumulate ? 1.0f : 0.0f;
	if (lt_matmul(impl->lt, impl->stream, impl->blas_ws, fptr(y), impl->xbf,
				  (const __nv_bfloat16 *) w->d, bias ? (const float *) bias->d : NULL,
				  M, N, K, beta))
		return CP_OK;
	/* cublasGemmEx; the bias is written (or added) first, then beta = 1 */
	if (bias != NULL)
	{
		CU(cuk_bias_rows(impl->stream, fptr(y), (const float *) bias->d, M, N, accumulate),
		   "launch of the bias kernel");
		beta = 1.0f;
	}
	/* column-major view: y^T [N, M] = W [K, N]^T . x^T [K, M] */
	BLAS(cublasGemmEx(impl->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha,
					  w->d, CUDA_R_16BF, K, impl->xbf, CUDA_R_16BF, K, &beta,
					  fptr(y), CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
		 "bf16 GEMM");
	return CP_OK;
	GUARD_END
}

/*
 * cu_attention
 *		vtable attention: fused attention kernel (kernels_attention.cu).
 */
static CpStatus
cu_attention(CpBackend *be, CpView out, CpView q, CpView k, CpView v, int B, int T,
			 int nh, int nkv, int hd, float scale, const int *lens, bool causal)
{
	CudaImpl   *impl = IMPL(be);
	const int  *lens_d = NULL;
	size_t		nq,
				nk;

	GUARD_BEGIN
	if (B <= 0 || T <= 0 || nh <= 0 || nkv <= 0 || hd <= 0 || nh % nkv != 0)
		return fail(be, CP_ERR_INVALID_ARG,
					"cuda attention: bad shape B=%d T=%d heads=%d kv heads=%d head dim=%d",
					B, T, nh, nkv, hd);
	if (hd > 512)
		return fail(be, CP_ERR_UNSUPPORTED, "cuda attention: head dim %d over 512", hd);
	nq = (size_t) B * T * nh * hd;
	nk = (size_t) B * T * nkv * hd;
	RETURN_IF_FAILED(check_view(be, q, nq, "attention", "q"));
	RETURN_IF_FAILED(check_view(be, k, nk, "attention", "k"));
	RETURN_IF_FAILED(check_view(be, v, nk, "attention", "v"));
	RETURN_IF_FAILED(check_view(be, out, nq, "attention", "out"));
	if (lens != NULL)
	{
		int			b;

		for (b = 0; b < B; b++)
			if (lens[b] < 0 || lens[b] > T)
				return fail(be, CP_ERR_INVALID_ARG,
							"cuda attention: length %d of sequence %d outside 0..%d",
							lens[b], b, T);
		/* the lens of a forward pass repeat in every layer: copy once */
		if (impl->lens_n != B || memcmp(impl->lens_h, lens, sizeof(int) * B) != 0)
		{
			int		   *h = (int *) realloc(impl->lens_h, sizeof(int) * B);

			if (h == NULL)
				return fail(be, CP_ERR_NOMEM, "out of memory");
			impl->lens_h = h;
			impl->lens_n = 0;
			RETURN_IF_FAILED(grow(be, (void **) &impl->lens_d, &impl->lens_cap, (size_t) B, sizeof(int),
					 "allocation of attention lengths"));
			CU(cudaMemcpyAsync(impl->lens_d, lens, sizeof(int) * B, cudaMemcpyHostToDevice,
							   impl->stream), "copy of attention lengths");
			memcpy(impl->lens_h, lens, sizeof(int) * B);
			impl->lens_n = B;
		}
		lens_d = impl->lens_d;
	}
	CU(cuk_attention(impl->stream, fptr(out), fptr(q), fptr(k), fptr(v), B, T, nh, nkv,
					 hd, scale, lens_d, causal, impl->simple_attention),
	   "launch of the attention kernel");
	return CP_OK;
	GUARD_END
}

/* ---------------------------------------------------------------------
 * Normalisation, position, element-wise, gathers
 * --------------------------------------------------------------------- */

/*
 * cu_layernorm
 *		vtable layernorm.
 */
static CpStatus
cu_layernorm(CpBackend *be, CpView y, CpView x, CpBuf *w, CpBuf *b, int rows,
			 int dim, float eps)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(check_view(be, x, (size_t) rows * dim, "layernorm", "x"));
	RETURN_IF_FAILED(check_view(be, y, (size_t) rows * dim, "layernorm", "y"));
	RETURN_IF_FAILED(check_vector(be, w, (size_t) dim, "layernorm", "weight"));
	RETURN_IF_FAILED(check_vector(be, b, (size_t) dim, "layernorm", "bias"));
	CU(cuk_layernorm(IMPL(be)->stream, fptr(y), fptr(x), (const float *) w->d,
					 (const float *) b->d, rows, dim, eps), "launch of layernorm");
	return CP_OK;
	GUARD_END
}

/*
 * cu_rmsnorm
 *		vtable rmsnorm (Gemma, scale 1 + w).
 */
static CpStatus
cu_rmsnorm(CpBackend *be, CpView y, CpView x, CpBuf *w, int rows, int dim, float eps)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(check_view(be, x, (size_t) rows * dim, "rmsnorm", "x"));
	RETURN_IF_FAILED(check_view(be, y, (size_t) rows * dim, "rmsnorm", "y"));
	RETURN_IF_FAILED(check_vector(be, w, (size_t) dim, "rmsnorm", "weight"));
	CU(cuk_rmsnorm(IMPL(be)->stream, fptr(y), fptr(x), (const float *) w->d, rows, dim,
				   eps), "launch of rmsnorm");
	return CP_OK;
	GUARD_END
}

/*
 * cu_l2norm
 *		vtable l2norm (no epsilon).
 */
static CpStatus
cu_l2norm(CpBackend *be, CpView x, int rows, int dim)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(check_view(be, x, (size_t) rows * dim, "l2norm", "x"));
	CU(cuk_l2norm(IMPL(be)->stream, fptr(x), rows, dim), "launch of l2norm");
	return CP_OK;
	GUARD_END
}

/*
 * cu_rope
 *		vtable rope (rotate_half form).
 */
static CpStatus
cu_rope(CpBackend *be, CpView x, int B, int T, int nh, int hd, float theta, int pos0)
{
	GUARD_BEGIN
	if (hd <= 0 || hd % 2 != 0)
		return fail(be, CP_ERR_INVALID_ARG, "cuda rope: head dim %d is not even", hd);
	RETURN_IF_FAILED(check_view(be, x, (size_t) B * T * nh * hd, "rope", "x"));
	CU(cuk_rope(IMPL(be)->stream, fptr(x), B, T, nh, hd, theta, pos0), "launch of rope");
	return CP_OK;
	GUARD_END
}

/*
 * bf16_out_buffer
 *		Scratch for an op that writes its result [n] also as bf16 (the
 *		MLP activations, whose only consumer is the next GEMM), or NULL when
 *		fusing is off.  The caller marks it with bf16_out_mark_valid once the
 *		kernel is enqueued, so the GEMM skips its own conversion.
 */
static CpStatus
bf16_out_buffer(CpBackend *be, size_t n, __nv_bfloat16 **bf)
{
	CudaImpl   *impl = IMPL(be);

	*bf = NULL;
	if (!impl->fuse_bf16)
		return CP_OK;
	RETURN_IF_FAILED(grow(be, (void **) &impl->xbf, &impl->xbf_n, n, 2,
			 "allocation of the bf16 matmul input"));
	*bf = impl->xbf;
	return CP_OK;
}

/*
 * bf16_out_mark_valid
 *		Mark the bf16 scratch as holding view v of n elements.
 */
static void
bf16_out_mark_valid(CpBackend *be, CpView v, size_t n)
{
	CudaImpl   *impl = IMPL(be);

	impl->xbf_src = v;
	impl->xbf_len = n;
	impl->xbf_valid = true;
}

/*
 * cu_gelu_tanh
 *		vtable gelu_tanh; also writes the bf16 input of the next GEMM.
 */
static CpStatus
cu_gelu_tanh(CpBackend *be, CpView x, size_t n)
{
	__nv_bfloat16 *bf;

	GUARD_BEGIN
	RETURN_IF_FAILED(check_view(be, x, n, "gelu_tanh", "x"));
	RETURN_IF_FAILED(bf16_out_buffer(be, n, &bf));
	CU(cuk_gelu_tanh(IMPL(be)->stream, fptr(x), n, bf), "launch of gelu_tanh");
	if (bf)
		bf16_out_mark_valid(be, x, n);
	return CP_OK;
	GUARD_END
}

/*
 * cu_geglu
 *		vtable geglu; also writes the bf16 input of the next GEMM.
 */
static CpStatus
cu_geglu(CpBackend *be, CpView out, CpView gate, CpView up, size_t n)
{
	__nv_bfloat16 *bf;

	GUARD_BEGIN
	RETURN_IF_FAILED(check_view(be, out, n, "geglu", "out"));
	RETURN_IF_FAILED(check_view(be, gate, n, "geglu", "gate"));
	RETURN_IF_FAILED(check_view(be, up, n, "geglu", "up"));
	RETURN_IF_FAILED(bf16_out_buffer(be, n, &bf));
	CU(cuk_geglu(IMPL(be)->stream, fptr(out), fptr(gate), fptr(up), n, bf), "launch of geglu");
	if (bf)
		bf16_out_mark_valid(be, out, n);
	return CP_OK;
	GUARD_END
}

/*
 * cu_add
 *		vtable add.
 */
static CpStatus
cu_add(CpBackend *be, CpView y, CpView x, size_t n)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(check_view(be, y, n, "add", "y"));
	RETURN_IF_FAILED(check_view(be, x, n, "add", "x"));
	CU(cuk_add(IMPL(be)->stream, fptr(y), fptr(x), n), "launch of add");
	return CP_OK;
	GUARD_END
}

/*
 * cu_add_rows
 *		vtable add_rows (position embeddings).
 */
static CpStatus
cu_add_rows(CpBackend *be, CpView y, CpBuf *t, int rows, int period, int dim)
{
	GUARD_BEGIN
	if (period <= 0 || dim <= 0)
		return fail(be, CP_ERR_INVALID_ARG, "cuda add_rows: period %d, dim %d", period, dim);
	RETURN_IF_FAILED(check_view(be, y, (size_t) rows * dim, "add_rows", "y"));
	RETURN_IF_FAILED(check_vector(be, t, (size_t) period * dim, "add_rows", "table"));
	CU(cuk_add_rows(IMPL(be)->stream, fptr(y), (const float *) t->d, rows, period, dim),
	   "launch of add_rows");
	return CP_OK;
	GUARD_END
}

/*
 * cu_scale
 *		vtable scale.
 */
static CpStatus
cu_scale(CpBackend *be, CpView x, size_t n, float s)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(check_view(be, x, n, "scale", "x"));
	CU(cuk_scale(IMPL(be)->stream, fptr(x), n, s), "launch of scale");
	return CP_OK;
	GUARD_END
}

/*
 * cu_embedding
 *		vtable embedding: gather table rows by host ids.
 */
static CpStatus
cu_embedding(CpBackend *be, CpView out, CpBuf *table, const int32_t *ids, int n, int dim)
{
	int		   *ids_d;
	int			i;

	GUARD_BEGIN
	if (table == NULL || !table->weight || table->cols != dim)
		return fail(be, CP_ERR_INVALID_ARG,
					"cuda embedding: table is not a weight of %d columns", dim);
	RETURN_IF_FAILED(check_view(be, out, (size_t) n * dim, "embedding", "out"));
	for (i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= table->rows)
			return fail(be, CP_ERR_INVALID_ARG,
						"cuda embedding: id %d outside the table of %lld rows",
						(int) ids[i], (long long) table->rows);
	RETURN_IF_FAILED(upload_index(be, (const int *) ids, n, &ids_d));
	CU(cuk_embedding(IMPL(be)->stream, fptr(out), table->d, table->dtype,
					 (const int32_t *) ids_d, n, dim), "launch of embedding");
	return CP_OK;
	GUARD_END
}

/*
 * cu_scatter_rows
 *		vtable scatter_rows (image features into the text rows).
 */
static CpStatus
cu_scatter_rows(CpBackend *be, CpView dst, CpView src, const int *rows, int n, int dim,
				float s)
{
	int		   *rows_d;
	int			i;

	GUARD_BEGIN
	if (n <= 0)
		return CP_OK;
	RETURN_IF_FAILED(check_view(be, src, (size_t) n * dim, "scatter_rows", "src"));
	for (i = 0; i < n; i++)
	{
		if (rows[i] < 0)
			return fail(be, CP_ERR_INVALID_ARG, "cuda scatter_rows: negative row %d", rows[i]);
		RETURN_IF_FAILED(check_view(be, cp_view(dst.buf, dst.off + (size_t) rows[i] * dim), (size_t) dim,
					   "scatter_rows", "dst row"));
	}
	RETURN_IF_FAILED(upload_index(be, rows, n, &rows_d));
	CU(cuk_scatter_rows(IMPL(be)->stream, fptr(dst), fptr(src), rows_d, n, dim, s),
	   "launch of scatter_rows");
	return CP_OK;
	GUARD_END
}

/*
 * cu_im2col
 *		vtable im2col (patch extraction).
 */
static CpStatus
cu_im2col(CpBackend *be, CpView cols, CpView pixels, int B, int C, int H, int W, int P)
{
	GUARD_BEGIN
	if (P <= 0 || H % P != 0 || W % P != 0)
		return fail(be, CP_ERR_INVALID_ARG, "cuda im2col: %dx%d not divisible by %d", H, W, P);
	RETURN_IF_FAILED(check_view(be, pixels, (size_t) B * C * H * W, "im2col", "pixels"));
	RETURN_IF_FAILED(check_view(be, cols, (size_t) B * C * H * W, "im2col", "cols"));
	CU(cuk_im2col(IMPL(be)->stream, fptr(cols), fptr(pixels), B, C, H, W, P),
	   "launch of im2col");
	return CP_OK;
	GUARD_END
}

/* ---------------------------------------------------------------------
 * Lifecycle
 * --------------------------------------------------------------------- */

/*
 * cu_destroy
 *		vtable destroy: free scratch, handles, stream and the backend.
 */
static void
cu_destroy(CpBackend *be)
{
	CudaImpl   *impl;

	if (be == NULL)
		return;
	impl = IMPL(be);
	if (impl != NULL)
	{
		try
		{
			if (impl->stream)
				cudaStreamSynchronize(impl->stream);
			dev_free(impl->xbf, impl->xbf_n * 2);
			dev_free(impl->idx_d, impl->idx_n * sizeof(int));
			dev_free(impl->lens_d, impl->lens_cap * sizeof(int));
			lt_destroy(impl->lt);
			if (impl->blas)
				cublasDestroy(impl->blas);
			dev_free(impl->blas_ws, impl->blas_ws ? BLAS_WORKSPACE_BYTES : 0);
			if (impl->stream)
				cudaStreamDestroy(impl->stream);
		}
		catch (...)
		{
		}
		free(impl->lens_h);
		free(impl);
	}
	free(be);
}

/*
 * create_backend
 *		Body of the exported constructors.
 */
static CpStatus
create_backend(int device, const CpBackendOptions *opts, CpBackend **out, CpError *err)
{
	CpBackend  *be;
	CudaImpl   *impl;
	int			count = 0;
	cudaDeviceProp prop;
	cudaError_t rc;
	const char *attn;
	CpStatus	st;

	*out = NULL;
	rc = cudaGetDeviceCount(&count);
	if (rc != cudaSuccess || count == 0)
	{
		if (err)
		{
			err->status = CP_ERR_UNSUPPORTED;
			snprintf(err->msg, sizeof(err->msg), "no CUDA device available: %s",
					 rc != cudaSuccess ? cudaGetErrorString(rc) : "device count is 0");
		}
		/* clear the sticky "no device" state of this thread */
		cudaGetLastError();
		return CP_ERR_UNSUPPORTED;
	}
	if (device < 0 || device >= count)
	{
		if (err)
		{
			err->status = CP_ERR_INVALID_ARG;
			snprintf(err->msg, sizeof(err->msg), "CUDA device %d does not exist (%d present)",
					 device, count);
		}
		return CP_ERR_INVALID_ARG;
	}
	rc = cudaGetDeviceProperties(&prop, device);
	if (rc == cudaSuccess && prop.major < 8)
	{
		if (err)
		{
			err->status = CP_ERR_UNSUPPORTED;
			snprintf(err->msg, sizeof(err->msg),
					 "CUDA device %d (%s) has compute capability %d.%d; bf16 tensor cores need 8.0",
					 device, prop.name, prop.major, prop.minor);
		}
		return CP_ERR_UNSUPPORTED;
	}

	be = (CpBackend *) calloc(1, sizeof(CpBackend));
	impl = (CudaImpl *) calloc(1, sizeof(CudaImpl));
	if (be == NULL || impl == NULL)
	{
		free(be);
		free(impl);
		if (err)
		{
			err->status = CP_ERR_NOMEM;
			snprintf(err->msg, sizeof(err->msg), "out of memory");
		}
		return CP_ERR_NOMEM;
	}
	be->name = "cuda";
	be->impl = impl;
	impl->device = device;
	if (rc == cudaSuccess)
		snprintf(impl->device_name, sizeof(impl->device_name), "%s", prop.name);
	attn = getenv("COLPALI_CUDA_ATTENTION");
	impl->simple_attention = (attn != NULL && strcmp(attn, "simple") == 0);
	impl->fuse_bf16 = !(getenv("COLPALI_CUDA_NO_FUSE") != NULL &&
						strcmp(getenv("COLPALI_CUDA_NO_FUSE"), "1") == 0);
	(void) opts;

	st = CP_OK;
	rc = cudaSetDevice(device);
	if (rc != cudaSuccess)
		st = fail_cuda(be, rc, "cudaSetDevice");
	if (st == CP_OK && (rc = cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking)) != cudaSuccess)
		st = fail_cuda(be, rc, "stream creation");
	if (st == CP_OK)
	{
		cublasStatus_t bs = cublasCreate(&impl->blas);

		if (bs != CUBLAS_STATUS_SUCCESS)
		{
			impl->blas = NULL;
			st = fail(be, CP_ERR_BACKEND, "cublasCreate failed: %s", cublasGetStatusString(bs));
		}
		else if ((bs = cublasSetStream(impl->blas, impl->stream)) != CUBLAS_STATUS_SUCCESS)
			st = fail(be, CP_ERR_BACKEND, "cublasSetStream failed: %s", cublasGetStatusString(bs));
	}
	if (st == CP_OK && (rc = dev_alloc(&impl->blas_ws, BLAS_WORKSPACE_BYTES)) != cudaSuccess)
		st = fail_cuda(be, rc, "allocation of the cuBLAS workspace");
	if (st == CP_OK)
	{
		cublasStatus_t bs = cublasSetWorkspace(impl->blas, impl->blas_ws, BLAS_WORKSPACE_BYTES);

		if (bs != CUBLAS_STATUS_SUCCESS)
			st = fail(be, CP_ERR_BACKEND, "cublasSetWorkspace failed: %s",
					  cublasGetStatusString(bs));
	}
	if (st == CP_OK && !(getenv("COLPALI_CUDA_GEMM") != NULL &&
						 strcmp(getenv("COLPALI_CUDA_GEMM"), "gemmex") == 0) &&
		lt_create(&impl->lt, BLAS_WORKSPACE_BYTES) != 0)
		impl->lt = NULL;		/* no cuBLASLt: every GEMM goes through cublasGemmEx */
	if (st != CP_OK)
	{
		if (err)
			*err = be->err;
		cu_destroy(be);
		return st;
	}

	be->destroy = cu_destroy;
	be->alloc = cu_alloc;
	be->free = cu_free;
	be->upload = cu_upload;
	be->download = cu_download;
	be->weight_upload = cu_weight_upload;
	be->matmul = cu_matmul;
	be->attention = cu_attention;
	be->layernorm = cu_layernorm;
	be->rmsnorm = cu_rmsnorm;
	be->l2norm = cu_l2norm;
	be->rope = cu_rope;
	be->gelu_tanh = cu_gelu_tanh;
	be->geglu = cu_geglu;
	be->add = cu_add;
	be->add_rows = cu_add_rows;
	be->scale = cu_scale;
	be->embedding = cu_embedding;
	be->scatter_rows = cu_scatter_rows;
	be->im2col = cu_im2col;
	*out = be;
	return CP_OK;
}

/* ---------------------------------------------------------------------
 * Exported API (backend_cuda_abi.h)
 * --------------------------------------------------------------------- */

/*
 * cp_cuda_abi_check
 *		See backend_cuda_abi.h.
 */
CP_CUDA_EXPORT bool
cp_cuda_abi_check(int abi_version, size_t sizeof_backend, size_t sizeof_options)
{
	return abi_version == CP_CUDA_ABI_VERSION &&
		sizeof_backend == sizeof(CpBackend) &&
		sizeof_options == sizeof(CpBackendOptions);
}

/*
 * cp_backend_cuda_create
 *		CP_CUDA_BACKEND_SYMBOL (backend_cuda_abi.h): a backend on device 0;
 *		catch-all at the C boundary.
 */
CP_CUDA_EXPORT CpStatus
cp_backend_cuda_create(const CpBackendOptions *opts, CpBackend **out, CpError *err)
{
	try
	{
		return create_backend(0, opts, out, err);
	}
	catch (...)
	{
		if (err)
		{
			err->status = CP_ERR_BACKEND;
			snprintf(err->msg, sizeof(err->msg), "unexpected C++ exception creating the CUDA backend");
		}
		return CP_ERR_BACKEND;
	}
}

/*
 * cp_cuda_memory_stats
 *		See backend_cuda_abi.h.
 */
CP_CUDA_EXPORT void
cp_cuda_memory_stats(size_t *current, size_t *peak)
{
	if (current)
		*current = __atomic_load_n(&mem_current, __ATOMIC_RELAXED);
	if (peak)
		*peak = __atomic_load_n(&mem_peak, __ATOMIC_RELAXED);
}
