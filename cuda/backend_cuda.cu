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
#include "backend_cuda_internal.h"

#define CP_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

/* cuBLAS workspace (NVIDIA recommends 32 MiB on Hopper). */
#define BLAS_WORKSPACE_BYTES ((size_t) 32 << 20)
/* Host staging for weight dtype conversion, in elements. */
#define CONVERT_CHUNK ((size_t) 1 << 20)

/* Device bytes held by all backends of this library. */
static size_t mem_current;
static size_t mem_peak;

/*
 * cuda_fail
 *		Record an error in be->err and return status.
 */
CpStatus
cuda_fail(CpBackend *be, CpStatus status, const char *fmt,...)
{
	va_list		ap;

	be->err.status = status;
	va_start(ap, fmt);
	vsnprintf(be->err.msg, sizeof(be->err.msg), fmt, ap);
	va_end(ap);
	return status;
}

/*
 * cuda_fail_call
 *		Error for a failed CUDA runtime call.
 */
CpStatus
cuda_fail_call(CpBackend *be, cudaError_t rc, const char *what)
{
	return cuda_fail(be, rc == cudaErrorMemoryAllocation ? CP_ERR_NOMEM : CP_ERR_BACKEND,
				"CUDA %s failed: %s (%s)", what, cudaGetErrorString(rc),
				cudaGetErrorName(rc));
}

/*
 * dev_alloc / dev_free
 *		cudaMalloc / cudaFree with the library's memory accounting.
 */
cudaError_t
cuda_dev_alloc(void **p, size_t bytes)
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
 * cuda_dev_free
 *		cudaFree with the library's memory accounting (NULL is a no-op).
 */
void
cuda_dev_free(void *p, size_t bytes)
{
	if (p == NULL)
		return;
	cudaFree(p);
	__atomic_sub_fetch(&mem_current, bytes, __ATOMIC_RELAXED);
}

/*
 * cuda_grow
 *		Make the device scratch *p hold at least n elements of size esz.
 *		cudaFree synchronises the device, so the old buffer is no longer
 *		in use when it goes.
 */
CpStatus
cuda_grow(CpBackend *be, void **p, size_t *cap, size_t n, size_t esz, const char *what)
{
	if (*cap >= n && *p != NULL)
		return CP_OK;
	cuda_dev_free(*p, *cap * esz);
	*p = NULL;
	*cap = 0;
	CU(cuda_dev_alloc(p, n * esz), what);
	*cap = n;
	return CP_OK;
}

/*
 * cuda_check_view
 *		v must be an fp32 activation buffer holding [off, off + n).
 */
CpStatus
cuda_check_view(CpBackend *be, CpView v, size_t n, const char *op, const char *arg)
{
	if (v.buf == NULL)
		return cuda_fail(be, CP_ERR_INVALID_ARG, "cuda %s: %s has no buffer", op, arg);
	if (v.buf->dtype != CUK_F32 || v.off > v.buf->n || n > v.buf->n - v.off)
		return cuda_fail(be, CP_ERR_INVALID_ARG,
					"cuda %s: %s range [%zu, %zu) outside its buffer of %zu floats",
					op, arg, v.off, v.off + n, v.buf->n);
	return CP_OK;
}

/*
 * cuda_check_vector
 *		w must be an fp32 weight buffer of at least n elements.
 */
CpStatus
cuda_check_vector(CpBackend *be, const CpBuf *w, size_t n, const char *op, const char *arg)
{
	if (w == NULL || w->dtype != CUK_F32 || w->n < n)
		return cuda_fail(be, CP_ERR_INVALID_ARG,
					"cuda %s: %s must be an fp32 buffer of %zu elements", op, arg, n);
	return CP_OK;
}

/*
 * cuda_upload_index
 *		Copy n host ints to the device index scratch.
 */
CpStatus
cuda_upload_index(CpBackend *be, const int *h, int n, int **out)
{
	CudaImpl   *impl = IMPL(be);

	RETURN_IF_FAILED(cuda_grow(be, (void **) &impl->idx_d, &impl->idx_n, (size_t) (n > 0 ? n : 1),
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
		return cuda_fail(be, CP_ERR_NOMEM, "out of memory converting a weight");
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
			return cuda_fail_call(be, rc, "copy of a weight to the device");
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
		return cuda_fail(be, CP_ERR_NOMEM, "out of memory");
	b->n = n;
	b->bytes = n * sizeof(float);
	b->dtype = CUK_F32;
	rc = cuda_dev_alloc(&b->d, b->bytes);
	if (rc != cudaSuccess)
	{
		free(b);
		return cuda_fail(be, rc == cudaErrorMemoryAllocation ? CP_ERR_NOMEM : CP_ERR_BACKEND,
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
		cuda_dev_free(buf->d, buf->bytes);
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
	RETURN_IF_FAILED(cuda_check_view(be, dst, n, "upload", "destination"));
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
	RETURN_IF_FAILED(cuda_check_view(be, src, n, "download", "source"));
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
		return cuda_fail(be, CP_ERR_UNSUPPORTED, "tensor \"%s\" has a dtype the CUDA backend cannot use",
					t->name);
	if (t->numel < 0)
		return cuda_fail(be, CP_ERR_SHAPE, "tensor \"%s\" has a negative size", t->name);
	n = (size_t) t->numel;
	if (kind == CP_WEIGHT_MATRIX)
		dst_dtype = CUK_BF16;
	else if (kind == CP_WEIGHT_TABLE)
		dst_dtype = src_dtype;
	else
		dst_dtype = CUK_F32;

	b = (CpBuf *) calloc(1, sizeof(CpBuf));
	if (b == NULL)
		return cuda_fail(be, CP_ERR_NOMEM, "out of memory");
	b->n = n;
	b->bytes = n * (dst_dtype == CUK_F32 ? 4 : 2);
	b->dtype = dst_dtype;
	b->weight = true;
	b->kind = kind;
	b->rows = t->ndim > 0 ? t->shape[0] : 1;
	b->cols = (b->rows > 0) ? (int64_t) n / b->rows : 0;
	rc = cuda_dev_alloc(&b->d, b->bytes);
	if (rc != cudaSuccess)
	{
		size_t		bytes = b->bytes;

		free(b);
		return cuda_fail(be, rc == cudaErrorMemoryAllocation ? CP_ERR_NOMEM : CP_ERR_BACKEND,
					"cudaMalloc of %zu bytes for tensor \"%s\" failed: %s",
					bytes, t->name, cudaGetErrorString(rc));
	}
	if (n == 0)
		st = CP_OK;
	else if (src_dtype == dst_dtype)
	{
		rc = cudaMemcpyAsync(b->d, t->data, b->bytes, cudaMemcpyHostToDevice,
							 IMPL(be)->stream);
		st = (rc == cudaSuccess) ? CP_OK : cuda_fail_call(be, rc, "copy of a weight to the device");
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
			cuda_dev_free(impl->xbf, impl->xbf_n * 2);
			cuda_dev_free(impl->idx_d, impl->idx_n * sizeof(int));
			cuda_dev_free(impl->lens_d, impl->lens_cap * sizeof(int));
			lt_destroy(impl->lt);
			if (impl->blas)
				cublasDestroy(impl->blas);
			cuda_dev_free(impl->blas_ws, impl->blas_ws ? BLAS_WORKSPACE_BYTES : 0);
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
		st = cuda_fail_call(be, rc, "cudaSetDevice");
	if (st == CP_OK && (rc = cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking)) != cudaSuccess)
		st = cuda_fail_call(be, rc, "stream creation");
	if (st == CP_OK)
	{
		cublasStatus_t bs = cublasCreate(&impl->blas);

		if (bs != CUBLAS_STATUS_SUCCESS)
		{
			impl->blas = NULL;
			st = cuda_fail(be, CP_ERR_BACKEND, "cublasCreate failed: %s", cublasGetStatusString(bs));
		}
		else if ((bs = cublasSetStream(impl->blas, impl->stream)) != CUBLAS_STATUS_SUCCESS)
			st = cuda_fail(be, CP_ERR_BACKEND, "cublasSetStream failed: %s", cublasGetStatusString(bs));
	}
	if (st == CP_OK && (rc = cuda_dev_alloc(&impl->blas_ws, BLAS_WORKSPACE_BYTES)) != cudaSuccess)
		st = cuda_fail_call(be, rc, "allocation of the cuBLAS workspace");
	if (st == CP_OK)
	{
		cublasStatus_t bs = cublasSetWorkspace(impl->blas, impl->blas_ws, BLAS_WORKSPACE_BYTES);

		if (bs != CUBLAS_STATUS_SUCCESS)
			st = cuda_fail(be, CP_ERR_BACKEND, "cublasSetWorkspace failed: %s",
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
	cuda_install_ops(be);
	cuda_install_qwen_ops(be);
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
