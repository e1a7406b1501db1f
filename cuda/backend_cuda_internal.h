/*
 * backend_cuda_internal.h
 *	  What the CUDA backend's infrastructure (backend_cuda.cu: buffers,
 *	  weights, creation, exported API) shares with its operations
 *	  (backend_cuda_ops.cu): the buffer and backend structures, error
 *	  helpers and the guard macros.  Nothing here is exported from
 *	  colpali_cuda.so (hidden visibility).
 */
#ifndef CP_BACKEND_CUDA_INTERNAL_H
#define CP_BACKEND_CUDA_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backend_cuda_abi.h"
#include "cuda_kernels.h"
#include "cuda_matmul.h"
#include "dtype.h"

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

#define CU(call, what) \
	do { cudaError_t rc_ = (call); \
		 if (rc_ != cudaSuccess) return cuda_fail_call(be, rc_, (what)); } while (0)

#define BLAS(call, what) \
	do { cublasStatus_t bs_ = (call); \
		 if (bs_ != CUBLAS_STATUS_SUCCESS) \
			 return cuda_fail(be, CP_ERR_BACKEND, "cuBLAS %s failed: %s", (what), \
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
		return cuda_fail(be, CP_ERR_BACKEND, "unexpected C++ exception in %s", __func__); \
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

/* Record an error in be->err and return status. */
extern CpStatus cuda_fail(CpBackend *be, CpStatus status, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));
/* Error for a failed CUDA runtime call. */
extern CpStatus cuda_fail_call(CpBackend *be, cudaError_t rc, const char *what);
/* cudaMalloc / cudaFree with the library's memory accounting. */
extern cudaError_t cuda_dev_alloc(void **p, size_t bytes);
extern void cuda_dev_free(void *p, size_t bytes);
/* Make the device scratch *p hold at least n elements of size esz. */
extern CpStatus cuda_grow(CpBackend *be, void **p, size_t *cap, size_t n,
						  size_t esz, const char *what);
/* v must be an fp32 activation buffer holding [off, off + n). */
extern CpStatus cuda_check_view(CpBackend *be, CpView v, size_t n,
								const char *op, const char *arg);
/* w must be an fp32 weight buffer of at least n elements. */
extern CpStatus cuda_check_vector(CpBackend *be, const CpBuf *w, size_t n,
								  const char *op, const char *arg);
/* Copy n host ints to the device index scratch. */
extern CpStatus cuda_upload_index(CpBackend *be, const int *h, int n, int **out);

/* The math operations of the vtable (backend_cuda_ops.cu). */
extern void cuda_install_ops(CpBackend *be);
/* The Qwen2-VL family's vtable entries (backend_cuda_qwen.cu). */
extern void cuda_install_qwen_ops(CpBackend *be);

#endif							/* CP_BACKEND_CUDA_INTERNAL_H */
