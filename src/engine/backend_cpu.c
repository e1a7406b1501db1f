/*
 * backend_cpu.c
 *	  fp32 CPU backend: GEMMs through OpenBLAS (cp_sgemm: loaded at run
 *	  time with the kernel set chosen from cpuid, backend_cpu_blas.c) or,
 *	  in bf16 precision, our AMX / AVX512_BF16 kernels; everything else C
 *	  loops parallelised with OpenMP, the exp-based ones with AVX-512 and
 *	  AVX2 forms chosen at run time (docs/cpu-kernels.md).
 *
 * Weights.  An F32 tensor that is 4-byte aligned in the mapping is used in
 * place (no copy: the page cache is shared with every other process that
 * maps the same checkpoint).  BF16/F16 matrices are either converted to fp32
 * once at upload, or, with lazy_convert, kept as mapped and converted tile
 * by tile (a few MB) just before each GEMM tile, which halves resident
 * memory at a small cost (bench/results/encoder.md).  The token embedding
 * table is never converted as a whole: embedding() converts the rows it
 * reads.  Norm weights and biases are always converted (they are small).
 * In bf16 precision on AMX, matrices are also packed once into the tile
 * layout (gemm_amx.h); raw stays for the reference backend and tests.
 *
 * Threads.  All parallelism is OpenMP with CpBackendOptions.threads
 * threads; OpenBLAS is set to one thread and each OpenMP thread calls
 * cp_sgemm on its own slice of the output columns (or attention heads /
 * rows).  Letting OpenBLAS's pthreads and OpenMP's threads alternate made
 * each pool spin while the other worked (4x slower on 2 cores).
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu_blas.h"
#include <immintrin.h>

#include "backend_cpu.h"
#include "vecmath.h"

#define IMPL(be) ((CpCpuImpl *) (be)->impl)

/*
 * cpu_grow_aligned
 *		Make *buf (64-byte aligned, *have elements of elem bytes) hold at
 *		least n elements; the old contents are not kept.
 */
CpStatus
cpu_grow_aligned(CpBackend *be, void **buf, size_t *have, size_t n, size_t elem)
{
	void	   *p = NULL;

	if (*have >= n)
		return CP_OK;
	if (posix_memalign(&p, 64, n * elem) != 0)
		return cp_error(&be->err, CP_ERR_NOMEM,
						"out of memory allocating %zu bytes of scratch", n * elem);
	free(*buf);
	*buf = p;
	*have = n;
	return CP_OK;
}

/*
 * cpu_scratch
 *		Backend-owned scratch of at least n floats (grown on demand).
 */
CpStatus
cpu_scratch(CpBackend *be, size_t n, float **out)
{
	CpCpuImpl  *impl = IMPL(be);
	CpStatus	st = cpu_grow_aligned(be, (void **) &impl->scratch, &impl->scratch_n,
								  n, sizeof(float));

	*out = impl->scratch;
	return st;
}

/*
 * cpu_thread_scratch
 *		Make every thread's scratch at least n floats.
 */
CpStatus
cpu_thread_scratch(CpBackend *be, size_t n)
{
	CpCpuImpl  *impl = IMPL(be);
	int			t;

	for (t = 0; t < impl->threads; t++)
	{
		CpStatus	st = cpu_grow_aligned(be, (void **) &impl->tscratch[t],
									  &impl->tscratch_n[t], n, sizeof(float));

		if (st != CP_OK)
			return st;
	}
	return CP_OK;
}

/* ---------------------------------------------------------------------
 * Buffers (shared by the fast and the reference backend)
 * --------------------------------------------------------------------- */

/*
 * cpu_alloc
 *		64-byte aligned activation buffer of n floats.
 */
static CpStatus
cpu_alloc(CpBackend *be, size_t n, CpBuf **out)
{
	CpBuf	   *b = calloc(1, sizeof(CpBuf));

	if (b == NULL || posix_memalign((void **) &b->data, 64,
									(n ? n : 1) * sizeof(float)) != 0)
	{
		free(b);
		return cp_error(&be->err, CP_ERR_NOMEM,
						"out of memory allocating %zu floats", n);
	}
	b->n = n;
	b->rows = 1;
	b->cols = (int64_t) n;
	b->owned = true;
	*out = b;
	return CP_OK;
}

/*
 * cpu_free
 *		Release a buffer and, if we own it, its data.
 */
static void
cpu_free(CpBackend *be, CpBuf *buf)
{
	if (buf == NULL)
		return;
	if (buf->owned)
		free(buf->data);
	if (buf->raw_owned)
		free((void *) buf->raw);
	free(buf->amx_packed);
	free(buf);
}

/*
 * cpu_upload
 *		Host floats into a buffer range (bounds-checked).
 */
static CpStatus
cpu_upload(CpBackend *be, CpView dst, const float *src, size_t n)
{
	if (dst.buf->lazy || dst.off + n > dst.buf->n || !dst.buf->owned)
		return cp_error(&be->err, CP_ERR_INVALID_ARG,
						"upload of %zu floats at %zu outside a buffer of %zu",
						n, dst.off, dst.buf->n);
	memcpy(dst.buf->data + dst.off, src, n * sizeof(float));
	return CP_OK;
}

/*
 * cpu_download
 *		Buffer range into host floats (bounds-checked).
 */
static CpStatus
cpu_download(CpBackend *be, CpView src, float *dst, size_t n)
{
	size_t		i;

	if (src.off + n > src.buf->n)
		return cp_error(&be->err, CP_ERR_INVALID_ARG,
						"download of %zu floats at %zu outside a buffer of %zu",
						n, src.off, src.buf->n);
	if (!src.buf->lazy)
		memcpy(dst, src.buf->data + src.off, n * sizeof(float));
	else
		for (i = 0; i < n; i++)
			dst[i] = cpu_w(src.buf, src.off + i);
	return CP_OK;
}

/*
 * cpu_amx_pack_weight
 *		See backend_cpu.h.  The packed copy takes the weight's size again
 *		next to the mapping; in fp32 precision only the weights a page's
 *		products use are packed, on the first page, so that a process that
 *		encodes only queries does not pay for it.
 */
CpStatus
cpu_amx_pack_weight(CpBackend *be, CpBuf *w)
{
	size_t		words;

	if (w->amx_packed != NULL)
		return CP_OK;
	words = cp_amx_packed_words((int) w->rows, (int) w->cols);
	w->amx_packed = cp_amx_alloc_packed(words * sizeof(uint32_t));
	if (w->amx_packed == NULL)
	{
		return cp_error(&be->err, CP_ERR_NOMEM,
						"out of memory packing a [%lld, %lld] weight for AMX",
						(long long) w->rows, (long long) w->cols);
	}
	cp_amx_pack_weights((const uint16_t *) w->raw, (int) w->rows,
						(int) w->cols, w->amx_packed, IMPL(be)->threads);
	return CP_OK;
}

/*
 * cpu_weight_upload
 *		Wrap a checkpoint tensor: in place (aligned F32), lazily (bf16/f16
 *		tables, and matrices with lazy_convert), or converted to fp32.
 */
static CpStatus
cpu_weight_upload(CpBackend *be, const CpTensor *t, CpWeightKind kind,
				  CpBuf **out)
{
	CpBuf	   *b = calloc(1, sizeof(CpBuf));
	int			i;

	if (b == NULL)
		return cp_error(&be->err, CP_ERR_NOMEM, "out of memory");
	b->n = (size_t) t->numel;
	b->rows = t->ndim > 0 ? t->shape[0] : 1;
	b->cols = 1;
	for (i = 1; i < t->ndim; i++)
		b->cols *= t->shape[i];
	if (t->ndim <= 1)
	{
		b->rows = 1;
		b->cols = t->numel;
	}

	if (kind == CP_WEIGHT_MATRIX && IMPL(be)->bf16_matmul)
	{
		/* bf16 GEMMs: bf16 as mapped, anything else rounded to bf16 once */
		b->dtype = CP_DTYPE_BF16;
		b->lazy = true;
		if (t->dtype == CP_DTYPE_BF16)
			b->raw = t->data;
		else
		{
			uint16_t   *copy = NULL;
			float	   *row;
			int64_t		r;

			row = malloc(sizeof(float) * (size_t) (b->cols > 0 ? b->cols : 1));
			if (row == NULL ||
				posix_memalign((void **) &copy, 64,
							   (b->n ? b->n : 1) * sizeof(uint16_t)) != 0)
			{
				free(row);
				free(b);
				return cp_error(&be->err, CP_ERR_NOMEM,
								"out of memory converting tensor \"%s\" (%lld elements)",
								t->name ? t->name : "?", (long long) t->numel);
			}
			for (r = 0; r < b->rows; r++)
			{
				cp_tensor_to_f32(t, r * b->cols, b->cols, row);
				cp_round_to_bf16(row, copy + (size_t) r * b->cols, (size_t) b->cols);
			}
			free(row);
			b->raw = copy;
			b->raw_owned = true;
		}
		if (IMPL(be)->amx && b->rows <= INT32_MAX && b->cols <= INT32_MAX)
		{
			/* AMX tiles read the weights in their own layout: pack once */
			CpStatus	st = cpu_amx_pack_weight(be, b);

			if (st != CP_OK)
			{
				cpu_free(be, b);
				return st;
			}
		}
	}
	else if (t->dtype == CP_DTYPE_F32 && ((uintptr_t) t->data % sizeof(float)) == 0)
	{
		/* read-only mapping used in place; we never write through it */
		b->data = (float *) (uintptr_t) t->data;
		b->owned = false;
	}
	else if (t->dtype != CP_DTYPE_F32 &&
			 (kind == CP_WEIGHT_TABLE ||
			  (kind == CP_WEIGHT_MATRIX && IMPL(be)->lazy_convert)))
	{
		b->raw = t->data;
		b->dtype = t->dtype;
		b->lazy = true;
	}
	else
	{
		if (posix_memalign((void **) &b->data, 64,
						   (b->n ? b->n : 1) * sizeof(float)) != 0)
		{
			free(b);
			return cp_error(&be->err, CP_ERR_NOMEM,
							"out of memory converting tensor \"%s\" (%lld elements)",
							t->name ? t->name : "?", (long long) t->numel);
		}
		b->owned = true;
		cp_tensor_to_f32(t, 0, (int64_t) b->n, b->data);
	}
	*out = b;
	return CP_OK;
}

/*
 * cpu_destroy
 *		Free the backend and its scratch.
 */
static void
cpu_destroy(CpBackend *be)
{
	if (be == NULL)
		return;
	if (be->impl)
	{
		CpCpuImpl  *impl = IMPL(be);
		int			t;

		free(impl->scratch);
		free(impl->xb16);
		free(impl->xpad);
		free(impl->hb16);
		free(impl->attn_kv);
		for (t = 0; impl->tscratch && t < impl->threads; t++)
			free(impl->tscratch[t]);
		for (t = 0; impl->bf16_pack && t < impl->threads; t++)
			free(impl->bf16_pack[t]);
		free(impl->bf16_pack);
		free(impl->tscratch);
		free(impl->tscratch_n);
	}
	free(be->impl);
	free(be);
}

/*
 * cpu_install_common
 *		Buffer management entries, identical for fast and reference ops.
 */
static void
cpu_install_common(CpBackend *be)
{
	be->destroy = cpu_destroy;
	cp_backend_cpu_install_qwen_ops(be);
	be->alloc = cpu_alloc;
	be->free = cpu_free;
	be->upload = cpu_upload;
	be->download = cpu_download;
	be->weight_upload = cpu_weight_upload;
}

/* ---------------------------------------------------------------------
 * Fast operations (matmul: backend_cpu_matmul.c)
 * --------------------------------------------------------------------- */

/*
 * cpu_softmax_rows
 *		Row-wise softmax of s[rows, n] (row stride ld) in place, fp32
 *		(called by one thread).  With causal, row r covers only the first
 *		t + 1 columns, t = (row0 + r) / per_token its token, and the rest
 *		of the row becomes 0.
 */
void
cpu_softmax_rows(const CpCpuImpl *impl, float *s, int rows, int n, int ld,
				 bool causal, int row0, int per_token)
{
	int			r;

	for (r = 0; r < rows; r++)
	{
		float	   *sr = s + (size_t) r * ld;
		int			len = n;

		if (causal)
		{
			int			t = (row0 + r) / per_token;

			len = t + 1 < n ? t + 1 : n;
			memset(sr + len, 0, sizeof(float) * (n - len));
		}
		if (impl->avx512)
			cp_softmax_avx512(sr, len);
		else if (impl->avx2)
			cp_softmax_avx2(sr, len);
		else
			cp_softmax_scalar(sr, len);
	}
}

/* Query rows per attention work item (bounds the score scratch). */
#define ATT_ROWS 256

/*
 * cpu_attention
 *		Work items of up to ATT_ROWS query rows of one (sequence, head
 *		group) are spread over the threads; each computes S = scale Q K^T
 *		with one GEMM, the softmax, and O = P V with a second GEMM.  The
 *		query heads sharing a KV head are handled together: with one KV
 *		head (Gemma MQA) the nh heads of a token are consecutive rows of hd
 *		floats, so Q is simply a [T*nh, hd] matrix; otherwise one head at a
 *		time with strided rows.
 */
static CpStatus
cpu_attention(CpBackend *be, CpView out, CpView q, CpView k, CpView v,
			  int B, int T, int nh, int nkv, int hd, float scale,
			  const int *lens, bool causal)
{
	CpCpuImpl  *impl = IMPL(be);
	bool		mqa = (nkv == 1);
	int			heads = mqa ? 1 : nh;	/* head streams per sequence */
	int			rows_per_head = mqa ? T * nh : T;
	int			chunks = (rows_per_head + ATT_ROWS - 1) / ATT_ROWS;
	int			items = B * heads * chunks;
	int			group = nh / nkv;
	int			it,
				b;
	CpStatus	st;

	if (impl->amx)
		return cpu_attention_amx(be, out, q, k, v, B, T, nh, nkv, hd, scale,
								 lens, causal);
	st = cpu_thread_scratch(be, (size_t) ATT_ROWS * T);
	if (st != CP_OK)
		return st;

	/* padded query rows are zero */
	for (b = 0; b < B; b++)
	{
		int			L = lens ? lens[b] : T;

		if (L < T)
			memset(cpu_ptr(out) + ((size_t) b * T + L) * nh * hd, 0,
				   sizeof(float) * (size_t) (T - L) * nh * hd);
	}

#pragma omp parallel for num_threads(items < 2 ? 1 : impl->threads) schedule(dynamic, 1)
	for (it = 0; it < items; it++)
	{
		int			bb = it / (heads * chunks);
		int			h = (it / chunks) % heads;
		int			c = it % chunks;
		int			L = lens ? lens[bb] : T;
		int			nrows = mqa ? L * nh : L;
		int			r0 = c * ATT_ROWS;
		int			rn = nrows - r0 < ATT_ROWS ? nrows - r0 : ATT_ROWS;
		int			kvh = h / group;
		float	   *s = impl->tscratch[omp_get_thread_num()];
		const float *qb,
				   *kb,
				   *vb;
		float	   *ob;
		int			ldq;

		if (rn <= 0)
			continue;
		kb = cpu_ptr(k) + (size_t) bb * T * nkv * hd + (size_t) kvh * hd;
		vb = cpu_ptr(v) + (size_t) bb * T * nkv * hd + (size_t) kvh * hd;
		cpu_attn_query_rows(q, out, bb, T, nh, hd, h, r0, mqa, &qb, &ob, &ldq);
		cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rn, L, hd,
					scale, qb, ldq, kb, nkv * hd, 0.0f, s, L);
		cpu_softmax_rows(impl, s, rn, L, L, causal, r0, mqa ? nh : 1);
		cp_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rn, hd, L,
					1.0f, s, L, vb, nkv * hd, 0.0f, ob, ldq);
	}
	return CP_OK;
}

/* sum x[0..n) with the vector form the CPU runs */
static inline float
row_sum(const CpCpuImpl *impl, const float *x, int n)
{
	if (impl->avx512)
		return cp_sum_avx512(x, n);
	if (impl->avx2)
		return cp_sum_avx2(x, n);
	return cp_sum_scalar(x, n);
}

/* sum (x[i] - c)^2 over [0, n) likewise */
static inline float
row_sumsq_dev(const CpCpuImpl *impl, const float *x, float c, int n)
{
	if (impl->avx512)
		return cp_sumsq_dev_avx512(x, c, n);
	if (impl->avx2)
		return cp_sumsq_dev_avx2(x, c, n);
	return cp_sumsq_dev_scalar(x, c, n);
}

/*
 * cpu_layernorm
 *		Two-pass mean/variance per row in fp32 (as PyTorch's CPU kernel).
 */
static CpStatus
cpu_layernorm(CpBackend *be, CpView y, CpView x, CpBuf *w, CpBuf *b,
			  int rows, int dim, float eps)
{
	const CpCpuImpl *impl = IMPL(be);
	int			r;

#pragma omp parallel for num_threads(cpu_threads_for(IMPL(be), (size_t) rows * dim)) schedule(static)
	for (r = 0; r < rows; r++)
	{
		const float *xr = cpu_ptr(x) + (size_t) r * dim;
		float	   *yr = cpu_ptr(y) + (size_t) r * dim;
		float		mean = 0.0f,
					var = 0.0f,
					inv;
		int			i;

		mean = row_sum(impl, xr, dim) / (float) dim;
		var = row_sumsq_dev(impl, xr, mean, dim) / (float) dim;
		inv = 1.0f / sqrtf(var + eps);
		for (i = 0; i < dim; i++)
			yr[i] = (xr[i] - mean) * inv * w->data[i] + b->data[i];
	}
	return CP_OK;
}

/*
 * cpu_rmsnorm
 *		Gemma RMSNorm, fp32, multiply by (1 + w).
 */
static CpStatus
cpu_rmsnorm(CpBackend *be, CpView y, CpView x, CpBuf *w, int rows, int dim,
			float eps)
{
	const CpCpuImpl *impl = IMPL(be);
	int			r;

#pragma omp parallel for num_threads(cpu_threads_for(IMPL(be), (size_t) rows * dim)) schedule(static)
	for (r = 0; r < rows; r++)
	{
		const float *xr = cpu_ptr(x) + (size_t) r * dim;
		float	   *yr = cpu_ptr(y) + (size_t) r * dim;
		float		ss = 0.0f,
					inv;
		int			i;

		ss = row_sumsq_dev(impl, xr, 0.0f, dim);
		inv = 1.0f / sqrtf(ss / (float) dim + eps);
		for (i = 0; i < dim; i++)
			yr[i] = (xr[i] * inv) * (1.0f + w->data[i]);
	}
	return CP_OK;
}

/*
 * cpu_l2norm
 *		Row-wise division by the Euclidean norm.
 */
static CpStatus
cpu_l2norm(CpBackend *be, CpView x, int rows, int dim)
{
	const CpCpuImpl *impl = IMPL(be);
	int			r;

#pragma omp parallel for num_threads(cpu_threads_for(IMPL(be), (size_t) rows * dim)) schedule(static)
	for (r = 0; r < rows; r++)
	{
		float	   *xr = cpu_ptr(x) + (size_t) r * dim;
		float		ss = 0.0f,
					nrm;
		int			i;

		ss = row_sumsq_dev(impl, xr, 0.0f, dim);
		nrm = sqrtf(ss);
		for (i = 0; i < dim; i++)
			xr[i] /= nrm;
	}
	return CP_OK;
}

/*
 * cpu_rope
 *		Rotary embedding: cos/sin tables per position, then applied to
 *		every head.  The table is kept for the next call with the same
 *		positions and frequencies (a layer's keys after its queries, the
 *		next layer): on a page it was computed four times, 0.3 % of the
 *		time.
 */
static CpStatus
cpu_rope(CpBackend *be, CpView x, int B, int T, int nh, int hd, float theta,
		 int pos0)
{
	CpCpuImpl  *impl = IMPL(be);
	int			half = hd / 2;
	float	   *tab;
	int			t,
				bt;
	CpStatus	st;

	st = cpu_scratch(be, (size_t) T * hd, &tab);
	if (st != CP_OK)
		return st;
	if (impl->rope_tab != tab || impl->rope_T != T || impl->rope_hd != hd ||
		impl->rope_pos0 != pos0 || impl->rope_theta != theta)
	{
		impl->rope_tab = NULL;
#pragma omp parallel for num_threads(cpu_threads_for(impl, (size_t) B * T * nh * hd)) schedule(static)
		for (t = 0; t < T; t++)
		{
			int			i;

			for (i = 0; i < half; i++)
			{
				float		inv_freq = 1.0f / powf(theta, (float) (2 * i) / (float) hd);
				float		ang = (float) (t + pos0) * inv_freq;

				tab[(size_t) t * hd + i] = cosf(ang);
				tab[(size_t) t * hd + half + i] = sinf(ang);
			}
		}
		impl->rope_tab = tab;
		impl->rope_T = T;
		impl->rope_hd = hd;
		impl->rope_pos0 = pos0;
		impl->rope_theta = theta;
	}
#pragma omp parallel for num_threads(cpu_threads_for(IMPL(be), (size_t) B * T * nh * hd)) schedule(static)
	for (bt = 0; bt < B * T; bt++)
	{
		const float *c = tab + (size_t) (bt % T) * hd;
		const float *s = c + half;
		int			h,
					i;

		for (h = 0; h < nh; h++)
		{
			float	   *v = cpu_ptr(x) + ((size_t) bt * nh + h) * hd;

			for (i = 0; i < half; i++)
			{
				float		x1 = v[i],
							x2 = v[i + half];

				v[i] = x1 * c[i] - x2 * s[i];
				v[i + half] = x2 * c[i] + x1 * s[i];
			}
		}
	}
	return CP_OK;
}

/*
 * cpu_gelu_tanh
 *		In-place tanh-approximated GELU.
 */
static CpStatus
cpu_gelu_tanh(CpBackend *be, CpView x, size_t n)
{
	float	   *p = cpu_ptr(x);
	bool		avx512 = IMPL(be)->avx512,
				avx2 = IMPL(be)->avx2;

#pragma omp parallel num_threads(cpu_threads_for(IMPL(be), n))
	{
		size_t		lo,
					hi;

		cpu_thread_share(n, &lo, &hi);
		if (avx512)
			cp_gelu_tanh_avx512(p + lo, hi - lo);
		else if (avx2)
			cp_gelu_tanh_avx2(p + lo, hi - lo);
		else
			cp_gelu_tanh_scalar(p + lo, hi - lo);
	}
	return CP_OK;
}

/*
 * cpu_geglu
 *		out = gelu_tanh(gate) * up.
 */
static CpStatus
cpu_geglu(CpBackend *be, CpView out, CpView gate, CpView up, size_t n)
{
	float	   *o = cpu_ptr(out);
	const float *g = cpu_ptr(gate);
	const float *u = cpu_ptr(up);
	bool		avx512 = IMPL(be)->avx512,
				avx2 = IMPL(be)->avx2;

#pragma omp parallel num_threads(cpu_threads_for(IMPL(be), n))
	{
		size_t		lo,
					hi;

		cpu_thread_share(n, &lo, &hi);
		if (avx512)
			cp_geglu_avx512(o + lo, g + lo, u + lo, hi - lo);
		else if (avx2)
			cp_geglu_avx2(o + lo, g + lo, u + lo, hi - lo);
		else
			cp_geglu_scalar(o + lo, g + lo, u + lo, hi - lo);
	}
	return CP_OK;
}

/*
 * cpu_add
 *		y += x.
 */
static CpStatus
cpu_add(CpBackend *be, CpView y, CpView x, size_t n)
{
	float	   *yp = cpu_ptr(y);
	const float *xp = cpu_ptr(x);
	int64_t		i;

#pragma omp parallel for num_threads(cpu_threads_for(IMPL(be), n)) schedule(static)
	for (i = 0; i < (int64_t) n; i++)
		yp[i] += xp[i];
	return CP_OK;
}

/*
 * cpu_add_rows
 *		y[r] += t[r mod period] (t fp32).
 */
static CpStatus
cpu_add_rows(CpBackend *be, CpView y, CpBuf *t, int rows, int period, int dim)
{
	int			r;

#pragma omp parallel for num_threads(cpu_threads_for(IMPL(be), (size_t) rows * dim)) schedule(static)
	for (r = 0; r < rows; r++)
	{
		float	   *yr = cpu_ptr(y) + (size_t) r * dim;
		const float *tr = t->data + (size_t) (r % period) * dim;
		int			i;

		for (i = 0; i < dim; i++)
			yr[i] += tr[i];
	}
	return CP_OK;
}

/*
 * cpu_scale
 *		x *= s.
 */
static CpStatus
cpu_scale(CpBackend *be, CpView x, size_t n, float s)
{
	float	   *p = cpu_ptr(x);
	int64_t		i;

#pragma omp parallel for num_threads(cpu_threads_for(IMPL(be), n)) schedule(static)
	for (i = 0; i < (int64_t) n; i++)
		p[i] *= s;
	return CP_OK;
}

/*
 * cpu_embedding
 *		Gather rows of the (possibly bf16/f16) table, converting only those.
 */
static CpStatus
cpu_embedding(CpBackend *be, CpView out, CpBuf *table, const int32_t *ids,
			  int n, int dim)
{
	int			i;

#pragma omp parallel for num_threads(cpu_threads_for(IMPL(be), (size_t) n * dim)) schedule(static)
	for (i = 0; i < n; i++)
	{
		float	   *o = cpu_ptr(out) + (size_t) i * dim;
		size_t		base = (size_t) ids[i] * dim;
		int			d;

		if (!table->lazy)
			memcpy(o, table->data + base, sizeof(float) * dim);
		else
			for (d = 0; d < dim; d++)
				o[d] = cpu_w(table, base + d);
	}
	return CP_OK;
}

/*
 * cpu_scatter_rows
 *		dst[rows[i]] = src[i] * s.
 */
static CpStatus
cpu_scatter_rows(CpBackend *be, CpView dst, CpView src, const int *rows,
				 int n, int dim, float s)
{
	int			i;

#pragma omp parallel for num_threads(cpu_threads_for(IMPL(be), (size_t) n * dim)) schedule(static)
	for (i = 0; i < n; i++)
	{
		float	   *d = cpu_ptr(dst) + (size_t) rows[i] * dim;
		const float *sr = cpu_ptr(src) + (size_t) i * dim;
		int			j;

		for (j = 0; j < dim; j++)
			d[j] = sr[j] * s;
	}
	return CP_OK;
}

/*
 * cpu_im2col
 *		Patches of P x P pixels, one patch per row, (c, ky, kx) order; each
 *		kernel row is a contiguous run of P pixels.
 */
static CpStatus
cpu_im2col(CpBackend *be, CpView cols, CpView pixels, int B, int C, int H,
		   int W, int P)
{
	int			gh = H / P,
				gw = W / P;
	int			np = B * gh * gw;
	int			idx;

#pragma omp parallel for num_threads(cpu_threads_for(IMPL(be), (size_t) np * C * P * P)) schedule(static)
	for (idx = 0; idx < np; idx++)
	{
		int			b = idx / (gh * gw);
		int			py = (idx / gw) % gh;
		int			px = idx % gw;
		float	   *o = cpu_ptr(cols) + (size_t) idx * C * P * P;
		int			c,
					ky;

		for (c = 0; c < C; c++)
			for (ky = 0; ky < P; ky++)
			{
				memcpy(o, cpu_ptr(pixels) + (((size_t) b * C + c) * H + py * P + ky) * W + px * P,
					   sizeof(float) * P);
				o += P;
			}
	}
	return CP_OK;
}

/*
 * cpu_backend_new
 *		See backend_cpu.h.
 */
CpStatus
cpu_backend_new(const CpBackendOptions *opts, bool bf16_allowed,
				CpBackend **out, CpError *err)
{
	CpBackend  *be = calloc(1, sizeof(CpBackend));
	CpCpuImpl  *impl = calloc(1, sizeof(CpCpuImpl));
	char		split_name[16];
	int			t;

	if (be == NULL || impl == NULL)
	{
		free(be);
		free(impl);
		return cp_error(err, CP_ERR_NOMEM, "out of memory creating the CPU backend");
	}
	impl->threads = (opts && opts->threads > 0) ? opts->threads : omp_get_max_threads();
	impl->lazy_convert = opts ? opts->lazy_convert : false;
	impl->avx512 = cp_vecmath_avx512() && !(opts && opts->no_simd);
	impl->avx2 = cp_vecmath_avx2() && !(opts && opts->no_simd);
	impl->bf16_matmul = bf16_allowed && opts && opts->bf16_matmul && !opts->no_simd &&
		cp_cpu_has_avx512bf16();
	impl->amx = impl->bf16_matmul && !(opts && opts->no_amx) &&
		cp_cpu_amx_bf16_usable();
	/* fp32 precision: bf16 weights' many-row products as split tile products */
	impl->amx_fp32 = bf16_allowed && !impl->bf16_matmul && impl->avx512 &&
		!(opts && opts->no_amx) && cp_cpu_amx_bf16_usable();
	impl->amx_terms = impl->amx ? 1 : 0;
	if (impl->amx_fp32)
		impl->amx_terms = (opts && opts->fp32_split_terms >= 1 &&
						   opts->fp32_split_terms <= CP_AMX_SPLIT_TERMS) ?
			opts->fp32_split_terms : CP_AMX_SPLIT_TERMS;
	impl->tscratch = calloc(impl->threads, sizeof(float *));
	impl->tscratch_n = calloc(impl->threads, sizeof(size_t));
	impl->bf16_pack = calloc(impl->threads, sizeof(uint32_t *));
	if (impl->tscratch == NULL || impl->tscratch_n == NULL ||
		impl->bf16_pack == NULL)
	{
		free(impl->bf16_pack);
		free(impl->tscratch);
		free(impl->tscratch_n);
		free(impl);
		free(be);
		return cp_error(err, CP_ERR_NOMEM, "out of memory creating the CPU backend");
	}
	be->impl = impl;
	be->name = "cpu";
	cpu_install_common(be);
	for (t = 0; impl->bf16_matmul && t < impl->threads; t++)
		if (posix_memalign((void **) &impl->bf16_pack[t], 64,
						   CP_BF16_PACK_WORDS * sizeof(uint32_t)) != 0)
		{
			impl->bf16_pack[t] = NULL;
			cpu_destroy(be);
			return cp_error(err, CP_ERR_NOMEM, "out of memory creating the CPU backend");
		}
	/* OpenMP does the threading; each thread runs a one-thread GEMM */
	cp_blas_set_threads(1);
	snprintf(split_name, sizeof(split_name), "amx-bf16x%d", impl->amx_terms);
	snprintf(impl->kernels, sizeof(impl->kernels),
			 "gemm=%s gemm_few_rows=%s gemm_many_rows=%s bf16_gemm=%s elementwise=%s attention=%s",
			 cp_blas_kernel_name(),
			 impl->amx_fp32 ? split_name :
			 impl->avx512 ? "avx512f" : cp_blas_kernel_name(),
			 impl->amx_fp32 ? split_name :
			 impl->avx512 ? "avx512f" : cp_blas_kernel_name(),
			 impl->amx ? "amx-bf16" : impl->bf16_matmul ? "avx512bf16" : "none",
			 cp_vecmath_kernel_name(opts && opts->no_simd),
			 impl->amx ? "amx-bf16" : cp_blas_kernel_name());
	*out = be;
	return CP_OK;
}

/*
 * cp_backend_cpu_kernels
 *		See backend.h.
 */
const char *
cp_backend_cpu_kernels(const CpBackend *be)
{
	return IMPL(be)->kernels;
}

/*
 * cp_backend_cpu_create
 *		Make the fast CPU backend.
 */
CpStatus
cp_backend_cpu_create(const CpBackendOptions *opts, CpBackend **out,
					  CpError *err)
{
	CpBackend  *be;
	CpStatus	st = cpu_backend_new(opts, true, &be, err);

	if (st != CP_OK)
		return st;
	be->matmul = cpu_matmul;
	be->attention = cpu_attention;
	be->layernorm = cpu_layernorm;
	be->rmsnorm = cpu_rmsnorm;
	be->l2norm = cpu_l2norm;
	be->rope = cpu_rope;
	be->gelu_tanh = cpu_gelu_tanh;
	be->geglu = cpu_geglu;
	be->add = cpu_add;
	be->add_rows = cpu_add_rows;
	be->scale = cpu_scale;
	be->embedding = cpu_embedding;
	be->scatter_rows = cpu_scatter_rows;
	be->im2col = cpu_im2col;
	be->matmul_shared = cpu_matmul_shared;
	be->act_matmul = cpu_act_matmul;
	be->geglu_mlp = cpu_geglu_mlp;
	*out = be;
	return CP_OK;
}
