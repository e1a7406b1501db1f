/*
 * backend_cpu.c
 *	  fp32 CPU backend: GEMMs through OpenBLAS (cblas_sgemm), everything
 *	  else plain C loops parallelised with OpenMP.
 *
 * Weights.  An F32 tensor that is 4-byte aligned in the mapping is used in
 * place (no copy: the page cache is shared with every other process that
 * maps the same checkpoint).  BF16/F16 matrices are either converted to fp32
 * once at upload, or, with lazy_convert, kept as mapped and converted tile
 * by tile (a few MB) just before each GEMM tile, which halves resident
 * memory at a small cost (bench/results/encoder.md).  The token embedding
 * table is never converted as a whole: embedding() converts the rows it
 * reads.  Norm weights and biases are always converted (they are small).
 *
 * Threads.  OpenBLAS and OpenMP both get CpBackendOptions.threads; the two
 * never run at the same time (OpenMP loops and GEMMs alternate), so the
 * cores are not oversubscribed.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "backend_cpu.h"

/* Target size of one converted weight tile for lazy matmul. */
#define LAZY_TILE_BYTES (4u << 20)

#define IMPL(be) ((CpCpuImpl *) (be)->impl)

/*
 * cpu_scratch
 *		Backend-owned scratch of at least n floats (grown on demand).
 */
CpStatus
cpu_scratch(CpBackend *be, size_t n, float **out)
{
	CpCpuImpl  *impl = IMPL(be);

	if (impl->scratch_n < n)
	{
		float	   *p = NULL;

		if (posix_memalign((void **) &p, 64, n * sizeof(float)) != 0)
			return cp_error(&be->err, CP_ERR_NOMEM,
							"out of memory allocating %zu bytes of scratch",
							n * sizeof(float));
		free(impl->scratch);
		impl->scratch = p;
		impl->scratch_n = n;
	}
	*out = impl->scratch;
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

	if (t->dtype == CP_DTYPE_F32 && ((uintptr_t) t->data % sizeof(float)) == 0)
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
		free(IMPL(be)->scratch);
	free(be->impl);
	free(be);
}

/*
 * cpu_install_common
 *		Buffer management entries, identical for fast and reference ops.
 */
void
cpu_install_common(CpBackend *be)
{
	be->destroy = cpu_destroy;
	be->alloc = cpu_alloc;
	be->free = cpu_free;
	be->upload = cpu_upload;
	be->download = cpu_download;
	be->weight_upload = cpu_weight_upload;
}

/* ---------------------------------------------------------------------
 * Fast operations
 * --------------------------------------------------------------------- */

/*
 * convert_rows
 *		Rows [r0, r0 + nr) of a lazy weight [*, K] into dst as fp32.
 */
static void
convert_rows(const CpBuf *w, int64_t r0, int nr, int K, float *dst, int threads)
{
	const uint16_t *src = (const uint16_t *) w->raw + (size_t) r0 * K;
	size_t		n = (size_t) nr * K;
	int64_t		i;

	if (w->dtype == CP_DTYPE_BF16)
	{
		uint32_t   *d = (uint32_t *) dst;

#pragma omp parallel for num_threads(threads) schedule(static)
		for (i = 0; i < (int64_t) n; i++)
			d[i] = (uint32_t) src[i] << 16;
	}
	else
	{
#pragma omp parallel for num_threads(threads) schedule(static)
		for (i = 0; i < (int64_t) n; i++)
			dst[i] = cp_f16_to_f32(src[i]);
	}
}

/*
 * cpu_matmul
 *		y = x . W^T + bias (+ y) through cblas_sgemm; lazy weights are
 *		converted in tiles of rows of W (columns of y).
 */
static CpStatus
cpu_matmul(CpBackend *be, CpView y, CpView x, CpBuf *w, CpBuf *bias,
		   int M, int N, int K, bool accumulate)
{
	CpCpuImpl  *impl = IMPL(be);
	float	   *yp = cpu_ptr(y);
	const float *xp = cpu_ptr(x);
	float		beta = accumulate ? 1.0f : 0.0f;
	int			m;

	if (bias != NULL && !accumulate)
	{
		/* preload the bias and let the GEMM add onto it */
#pragma omp parallel for num_threads(impl->threads) schedule(static)
		for (m = 0; m < M; m++)
			memcpy(yp + (size_t) m * N, bias->data, sizeof(float) * N);
		beta = 1.0f;
	}

	if (!w->lazy)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K,
					1.0f, xp, K, w->data, K, beta, yp, N);
	else
	{
		int			tile = (int) (LAZY_TILE_BYTES / ((size_t) K * sizeof(float)));
		float	   *buf;
		int			n0;
		CpStatus	st;

		if (tile < 16)
			tile = 16;
		if (tile > N)
			tile = N;
		st = cpu_scratch(be, (size_t) tile * K, &buf);
		if (st != CP_OK)
			return st;
		for (n0 = 0; n0 < N; n0 += tile)
		{
			int			nt = (N - n0 < tile) ? N - n0 : tile;

			convert_rows(w, n0, nt, K, buf, impl->threads);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nt, K,
						1.0f, xp, K, buf, K, beta, yp + n0, N);
		}
	}

	if (bias != NULL && accumulate)
	{
#pragma omp parallel for num_threads(impl->threads) schedule(static)
		for (m = 0; m < M; m++)
		{
			float	   *yr = yp + (size_t) m * N;
			int			n;

			for (n = 0; n < N; n++)
				yr[n] += bias->data[n];
		}
	}
	return CP_OK;
}

/*
 * softmax_rows
 *		Row-wise softmax of s[rows, n] (row stride ld) in place, fp32.
 */
static void
softmax_rows(float *s, int rows, int n, int ld, int threads)
{
	int			r;

#pragma omp parallel for num_threads(threads) schedule(static)
	for (r = 0; r < rows; r++)
	{
		float	   *sr = s + (size_t) r * ld;
		float		mx = -INFINITY,
					sum = 0.0f,
					inv;
		int			j;

		for (j = 0; j < n; j++)
			mx = sr[j] > mx ? sr[j] : mx;
		for (j = 0; j < n; j++)
		{
			sr[j] = expf(sr[j] - mx);
			sum += sr[j];
		}
		inv = 1.0f / sum;
		for (j = 0; j < n; j++)
			sr[j] *= inv;
	}
}

/*
 * cpu_attention
 *		Per sequence: S = scale * Q K^T (one GEMM), softmax, O = P V.
 *		With a single KV head (Gemma MQA) the nh query heads of a token are
 *		consecutive rows of length hd, so all heads go through one GEMM of
 *		T*nh rows; otherwise one GEMM pair per head with strided rows.
 */
static CpStatus
cpu_attention(CpBackend *be, CpView out, CpView q, CpView k, CpView v,
			  int B, int T, int nh, int nkv, int hd, float scale,
			  const int *lens)
{
	CpCpuImpl  *impl = IMPL(be);
	int			group = nh / nkv;
	float	   *s;
	int			b,
				h;
	CpStatus	st;

	st = cpu_scratch(be, (size_t) T * T * (nkv == 1 ? nh : 1), &s);
	if (st != CP_OK)
		return st;

	for (b = 0; b < B; b++)
	{
		int			L = lens ? lens[b] : T;
		const float *qb = cpu_ptr(q) + (size_t) b * T * nh * hd;
		const float *kb = cpu_ptr(k) + (size_t) b * T * nkv * hd;
		const float *vb = cpu_ptr(v) + (size_t) b * T * nkv * hd;
		float	   *ob = cpu_ptr(out) + (size_t) b * T * nh * hd;

		if (L < T)
			memset(ob + (size_t) L * nh * hd, 0, sizeof(float) * (size_t) (T - L) * nh * hd);
		if (L <= 0)
			continue;
		if (nkv == 1)
		{
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L * nh, L, hd,
						scale, qb, hd, kb, hd, 0.0f, s, L);
			softmax_rows(s, L * nh, L, L, impl->threads);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L * nh, hd, L,
						1.0f, s, L, vb, hd, 0.0f, ob, hd);
			continue;
		}
		for (h = 0; h < nh; h++)
		{
			int			kvh = h / group;

			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, hd,
						scale, qb + (size_t) h * hd, nh * hd,
						kb + (size_t) kvh * hd, nkv * hd, 0.0f, s, L);
			softmax_rows(s, L, L, L, impl->threads);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, hd, L,
						1.0f, s, L, vb + (size_t) kvh * hd, nkv * hd,
						0.0f, ob + (size_t) h * hd, nh * hd);
		}
	}
	return CP_OK;
}

/*
 * cpu_layernorm
 *		Two-pass mean/variance per row in fp32 (as PyTorch's CPU kernel).
 */
static CpStatus
cpu_layernorm(CpBackend *be, CpView y, CpView x, CpBuf *w, CpBuf *b,
			  int rows, int dim, float eps)
{
	int			r;

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
	for (r = 0; r < rows; r++)
	{
		const float *xr = cpu_ptr(x) + (size_t) r * dim;
		float	   *yr = cpu_ptr(y) + (size_t) r * dim;
		float		mean = 0.0f,
					var = 0.0f,
					inv;
		int			i;

		for (i = 0; i < dim; i++)
			mean += xr[i];
		mean /= (float) dim;
		for (i = 0; i < dim; i++)
			var += (xr[i] - mean) * (xr[i] - mean);
		var /= (float) dim;
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
	int			r;

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
	for (r = 0; r < rows; r++)
	{
		const float *xr = cpu_ptr(x) + (size_t) r * dim;
		float	   *yr = cpu_ptr(y) + (size_t) r * dim;
		float		ss = 0.0f,
					inv;
		int			i;

		for (i = 0; i < dim; i++)
			ss += xr[i] * xr[i];
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
	int			r;

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
	for (r = 0; r < rows; r++)
	{
		float	   *xr = cpu_ptr(x) + (size_t) r * dim;
		float		ss = 0.0f,
					nrm;
		int			i;

		for (i = 0; i < dim; i++)
			ss += xr[i] * xr[i];
		nrm = sqrtf(ss);
		for (i = 0; i < dim; i++)
			xr[i] /= nrm;
	}
	return CP_OK;
}

/*
 * cpu_rope
 *		Rotary embedding: cos/sin tables per position computed once per
 *		call, then applied to every head.
 */
static CpStatus
cpu_rope(CpBackend *be, CpView x, int B, int T, int nh, int hd, float theta,
		 int pos0)
{
	int			half = hd / 2;
	float	   *tab;
	int			t,
				bt;
	CpStatus	st;

	st = cpu_scratch(be, (size_t) T * hd, &tab);
	if (st != CP_OK)
		return st;
#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
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
#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
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
	int64_t		i;

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
	for (i = 0; i < (int64_t) n; i++)
		p[i] = gelu_tanh_f(p[i]);
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
	int64_t		i;

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
	for (i = 0; i < (int64_t) n; i++)
		o[i] = gelu_tanh_f(g[i]) * u[i];
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

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
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

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
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

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
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

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
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

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
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

#pragma omp parallel for num_threads(IMPL(be)->threads) schedule(static)
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
 * cp_backend_cpu_create
 *		Make a CPU backend (fast ops, or the naive reference ops).
 */
CpStatus
cp_backend_cpu_create(const CpBackendOptions *opts, CpBackend **out,
					  CpError *err)
{
	CpBackend  *be = calloc(1, sizeof(CpBackend));
	CpCpuImpl  *impl = calloc(1, sizeof(CpCpuImpl));

	if (be == NULL || impl == NULL)
	{
		free(be);
		free(impl);
		return cp_error(err, CP_ERR_NOMEM, "out of memory creating the CPU backend");
	}
	impl->threads = (opts && opts->threads > 0) ? opts->threads : omp_get_max_threads();
	impl->lazy_convert = opts ? opts->lazy_convert : false;
	be->impl = impl;
	be->name = "cpu";
	cpu_install_common(be);
	if (opts && opts->reference)
		cpu_install_reference(be);
	else
	{
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
	}
	openblas_set_num_threads(impl->threads);
	*out = be;
	return CP_OK;
}
