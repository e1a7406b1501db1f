/*
 * backend_cuda_ops.cu
 *	  The math operations of the CUDA backend's vtable (backend.h): each
 *	  checks its views, then launches kernels (cuda_kernels.h) or GEMMs
 *	  (cuda_matmul.h) on the backend's stream.  The dtype flow is described
 *	  in backend_cuda.cu.
 */
#include "backend_cuda_internal.h"

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
		return cuda_fail(be, CP_ERR_INVALID_ARG, "cuda matmul: empty shape %d x %d x %d", M, N, K);
	if (w == NULL || !w->weight || w->kind != CP_WEIGHT_MATRIX || w->dtype != CUK_BF16 ||
		w->rows != N || w->cols != K)
		return cuda_fail(be, CP_ERR_INVALID_ARG,
					"cuda matmul: weight is not a [%d, %d] matrix", N, K);
	RETURN_IF_FAILED(cuda_check_view(be, x, (size_t) M * K, "matmul", "x"));
	RETURN_IF_FAILED(cuda_check_view(be, y, (size_t) M * N, "matmul", "y"));
	if (bias != NULL)
		RETURN_IF_FAILED(cuda_check_vector(be, bias, (size_t) N, "matmul", "bias"));

	if (!(impl->xbf_valid && impl->xbf_src.buf == x.buf && impl->xbf_src.off == x.off &&
		  nx <= impl->xbf_len))
	{
		impl->xbf_valid = false;
		RETURN_IF_FAILED(cuda_grow(be, (void **) &impl->xbf, &impl->xbf_n, nx, 2,
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
		return cuda_fail(be, CP_ERR_INVALID_ARG,
					"cuda attention: bad shape B=%d T=%d heads=%d kv heads=%d head dim=%d",
					B, T, nh, nkv, hd);
	if (hd > 512)
		return cuda_fail(be, CP_ERR_UNSUPPORTED, "cuda attention: head dim %d over 512", hd);
	nq = (size_t) B * T * nh * hd;
	nk = (size_t) B * T * nkv * hd;
	RETURN_IF_FAILED(cuda_check_view(be, q, nq, "attention", "q"));
	RETURN_IF_FAILED(cuda_check_view(be, k, nk, "attention", "k"));
	RETURN_IF_FAILED(cuda_check_view(be, v, nk, "attention", "v"));
	RETURN_IF_FAILED(cuda_check_view(be, out, nq, "attention", "out"));
	if (lens != NULL)
	{
		int			b;

		for (b = 0; b < B; b++)
			if (lens[b] < 0 || lens[b] > T)
				return cuda_fail(be, CP_ERR_INVALID_ARG,
							"cuda attention: length %d of sequence %d outside 0..%d",
							lens[b], b, T);
		/* the lens of a forward pass repeat in every layer: copy once */
		if (impl->lens_n != B || memcmp(impl->lens_h, lens, sizeof(int) * B) != 0)
		{
			int		   *h = (int *) realloc(impl->lens_h, sizeof(int) * B);

			if (h == NULL)
				return cuda_fail(be, CP_ERR_NOMEM, "out of memory");
			impl->lens_h = h;
			impl->lens_n = 0;
			RETURN_IF_FAILED(cuda_grow(be, (void **) &impl->lens_d, &impl->lens_cap, (size_t) B, sizeof(int),
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
	RETURN_IF_FAILED(cuda_check_view(be, x, (size_t) rows * dim, "layernorm", "x"));
	RETURN_IF_FAILED(cuda_check_view(be, y, (size_t) rows * dim, "layernorm", "y"));
	RETURN_IF_FAILED(cuda_check_vector(be, w, (size_t) dim, "layernorm", "weight"));
	RETURN_IF_FAILED(cuda_check_vector(be, b, (size_t) dim, "layernorm", "bias"));
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
	RETURN_IF_FAILED(cuda_check_view(be, x, (size_t) rows * dim, "rmsnorm", "x"));
	RETURN_IF_FAILED(cuda_check_view(be, y, (size_t) rows * dim, "rmsnorm", "y"));
	RETURN_IF_FAILED(cuda_check_vector(be, w, (size_t) dim, "rmsnorm", "weight"));
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
	RETURN_IF_FAILED(cuda_check_view(be, x, (size_t) rows * dim, "l2norm", "x"));
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
		return cuda_fail(be, CP_ERR_INVALID_ARG, "cuda rope: head dim %d is not even", hd);
	RETURN_IF_FAILED(cuda_check_view(be, x, (size_t) B * T * nh * hd, "rope", "x"));
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
	RETURN_IF_FAILED(cuda_grow(be, (void **) &impl->xbf, &impl->xbf_n, n, 2,
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
	RETURN_IF_FAILED(cuda_check_view(be, x, n, "gelu_tanh", "x"));
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
	RETURN_IF_FAILED(cuda_check_view(be, out, n, "geglu", "out"));
	RETURN_IF_FAILED(cuda_check_view(be, gate, n, "geglu", "gate"));
	RETURN_IF_FAILED(cuda_check_view(be, up, n, "geglu", "up"));
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
	RETURN_IF_FAILED(cuda_check_view(be, y, n, "add", "y"));
	RETURN_IF_FAILED(cuda_check_view(be, x, n, "add", "x"));
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
		return cuda_fail(be, CP_ERR_INVALID_ARG, "cuda add_rows: period %d, dim %d", period, dim);
	RETURN_IF_FAILED(cuda_check_view(be, y, (size_t) rows * dim, "add_rows", "y"));
	RETURN_IF_FAILED(cuda_check_vector(be, t, (size_t) period * dim, "add_rows", "table"));
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
	RETURN_IF_FAILED(cuda_check_view(be, x, n, "scale", "x"));
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
		return cuda_fail(be, CP_ERR_INVALID_ARG,
					"cuda embedding: table is not a weight of %d columns", dim);
	RETURN_IF_FAILED(cuda_check_view(be, out, (size_t) n * dim, "embedding", "out"));
	for (i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= table->rows)
			return cuda_fail(be, CP_ERR_INVALID_ARG,
						"cuda embedding: id %d outside the table of %lld rows",
						(int) ids[i], (long long) table->rows);
	RETURN_IF_FAILED(cuda_upload_index(be, (const int *) ids, n, &ids_d));
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
	RETURN_IF_FAILED(cuda_check_view(be, src, (size_t) n * dim, "scatter_rows", "src"));
	for (i = 0; i < n; i++)
	{
		if (rows[i] < 0)
			return cuda_fail(be, CP_ERR_INVALID_ARG, "cuda scatter_rows: negative row %d", rows[i]);
		RETURN_IF_FAILED(cuda_check_view(be, cp_view(dst.buf, dst.off + (size_t) rows[i] * dim), (size_t) dim,
					   "scatter_rows", "dst row"));
	}
	RETURN_IF_FAILED(cuda_upload_index(be, rows, n, &rows_d));
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
		return cuda_fail(be, CP_ERR_INVALID_ARG, "cuda im2col: %dx%d not divisible by %d", H, W, P);
	RETURN_IF_FAILED(cuda_check_view(be, pixels, (size_t) B * C * H * W, "im2col", "pixels"));
	RETURN_IF_FAILED(cuda_check_view(be, cols, (size_t) B * C * H * W, "im2col", "cols"));
	CU(cuk_im2col(IMPL(be)->stream, fptr(cols), fptr(pixels), B, C, H, W, P),
	   "launch of im2col");
	return CP_OK;
	GUARD_END
}

/*
 * cuda_install_ops
 *		See backend_cuda_internal.h.
 */
void
cuda_install_ops(CpBackend *be)
{
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
}
