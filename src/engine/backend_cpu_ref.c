/*
 * backend_cpu_ref.c
 *	  Naive reference implementations of every backend operation: plain
 *	  single-threaded loops written straight from the formulas in
 *	  docs/encoder.md#forward, accumulating in double where it costs nothing.
 *	  They are the test oracle for the fast CPU ops (test/engine/test_ops.c)
 *	  and for the CUDA backend, and a fallback nobody should need.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"

/*
 * ref_matmul
 *		y = x . W^T + bias (+ y), one dot product at a time.
 */
static CpStatus
ref_matmul(CpBackend *be, CpView y, CpView x, CpBuf *w, CpBuf *bias,
		   int M, int N, int K, bool accumulate)
{
	float	   *yp = cpu_ptr(y);
	const float *xp = cpu_ptr(x);
	int			m,
				n,
				k;

	for (m = 0; m < M; m++)
		for (n = 0; n < N; n++)
		{
			double		acc = 0.0;

			for (k = 0; k < K; k++)
				acc += (double) xp[(size_t) m * K + k] * cpu_w(w, (size_t) n * K + k);
			if (bias != NULL)
				acc += cpu_w(bias, n);
			if (accumulate)
				acc += yp[(size_t) m * N + n];
			yp[(size_t) m * N + n] = (float) acc;
		}
	return CP_OK;
}

/*
 * ref_attention
 *		softmax(q.k^T * scale + key mask) . v, one query row at a time;
 *		keys past the sequence length (and, if causal, past the query) are
 *		left out.
 */
static CpStatus
ref_attention(CpBackend *be, CpView out, CpView q, CpView k, CpView v,
			  int B, int T, int nh, int nkv, int hd, float scale,
			  const int *lens, bool causal)
{
	float	   *op = cpu_ptr(out);
	const float *qp = cpu_ptr(q);
	const float *kp = cpu_ptr(k);
	const float *vp = cpu_ptr(v);
	double	   *p = malloc(sizeof(double) * (size_t) T);
	int			group = nh / nkv;
	int			b,
				h,
				i,
				j,
				d;

	if (p == NULL)
		return cp_error(&be->err, CP_ERR_NOMEM, "out of memory in attention");
	for (b = 0; b < B; b++)
	{
		int			L = lens ? lens[b] : T;

		for (i = 0; i < T; i++)
			for (h = 0; h < nh; h++)
			{
				int			kvh = h / group;
				const float *qi = qp + (((size_t) b * T + i) * nh + h) * hd;
				float	   *oi = op + (((size_t) b * T + i) * nh + h) * hd;
				double		mx = -INFINITY,
							sum = 0.0;
				int			nk = causal && i + 1 < L ? i + 1 : L;

				if (i >= L)
				{
					memset(oi, 0, sizeof(float) * hd);
					continue;
				}
				for (j = 0; j < nk; j++)
				{
					const float *kj = kp + (((size_t) b * T + j) * nkv + kvh) * hd;
					double		s = 0.0;

					for (d = 0; d < hd; d++)
						s += (double) qi[d] * kj[d];
					p[j] = s * scale;
					if (p[j] > mx)
						mx = p[j];
				}
				for (j = 0; j < nk; j++)
				{
					p[j] = exp(p[j] - mx);
					sum += p[j];
				}
				for (d = 0; d < hd; d++)
				{
					double		acc = 0.0;

					for (j = 0; j < nk; j++)
						acc += p[j] * vp[(((size_t) b * T + j) * nkv + kvh) * hd + d];
					oi[d] = (float) (acc / sum);
				}
			}
	}
	free(p);
	return CP_OK;
}

/*
 * ref_layernorm
 *		(x - mean) / sqrt(var + eps) * w + b with the biased variance.
 */
static CpStatus
ref_layernorm(CpBackend *be, CpView y, CpView x, CpBuf *w, CpBuf *b,
			  int rows, int dim, float eps)
{
	int			r,
				i;

	for (r = 0; r < rows; r++)
	{
		const float *xr = cpu_ptr(x) + (size_t) r * dim;
		float	   *yr = cpu_ptr(y) + (size_t) r * dim;
		double		mean = 0.0,
					var = 0.0,
					inv;

		for (i = 0; i < dim; i++)
			mean += xr[i];
		mean /= dim;
		for (i = 0; i < dim; i++)
			var += (xr[i] - mean) * (xr[i] - mean);
		var /= dim;
		inv = 1.0 / sqrt(var + eps);
		for (i = 0; i < dim; i++)
			yr[i] = (float) ((xr[i] - mean) * inv * cpu_w(w, i) + cpu_w(b, i));
	}
	return CP_OK;
}

/*
 * ref_rmsnorm
 *		Gemma RMSNorm: x / sqrt(mean(x^2) + eps) * (1 + w).
 */
static CpStatus
ref_rmsnorm(CpBackend *be, CpView y, CpView x, CpBuf *w, int rows, int dim,
			float eps)
{
	int			r,
				i;

	for (r = 0; r < rows; r++)
	{
		const float *xr = cpu_ptr(x) + (size_t) r * dim;
		float	   *yr = cpu_ptr(y) + (size_t) r * dim;
		double		ss = 0.0,
					inv;

		for (i = 0; i < dim; i++)
			ss += (double) xr[i] * xr[i];
		inv = 1.0 / sqrt(ss / dim + eps);
		for (i = 0; i < dim; i++)
			yr[i] = (float) (xr[i] * inv * (1.0 + cpu_w(w, i)));
	}
	return CP_OK;
}

/*
 * ref_l2norm
 *		Divide every row by its Euclidean norm.
 */
static CpStatus
ref_l2norm(CpBackend *be, CpView x, int rows, int dim)
{
	int			r,
				i;

	for (r = 0; r < rows; r++)
	{
		float	   *xr = cpu_ptr(x) + (size_t) r * dim;
		double		ss = 0.0,
					nrm;

		for (i = 0; i < dim; i++)
			ss += (double) xr[i] * xr[i];
		nrm = sqrt(ss);
		for (i = 0; i < dim; i++)
			xr[i] = (float) (xr[i] / nrm);
	}
	return CP_OK;
}

/*
 * ref_rope
 *		Rotary embedding, rotate_half form, position t + pos0.
 */
static CpStatus
ref_rope(CpBackend *be, CpView x, int B, int T, int nh, int hd, float theta,
		 int pos0)
{
	int			half = hd / 2;
	int			b,
				t,
				h,
				i;

	for (b = 0; b < B; b++)
		for (t = 0; t < T; t++)
			for (h = 0; h < nh; h++)
			{
				float	   *v = cpu_ptr(x) + (((size_t) b * T + t) * nh + h) * hd;

				for (i = 0; i < half; i++)
				{
					float		inv_freq = 1.0f / powf(theta, (float) (2 * i) / (float) hd);
					float		ang = (float) (t + pos0) * inv_freq;
					float		c = cosf(ang),
								s = sinf(ang);
					float		x1 = v[i],
								x2 = v[i + half];

					v[i] = x1 * c - x2 * s;
					v[i + half] = x2 * c + x1 * s;
				}
			}
	return CP_OK;
}

/*
 * ref_gelu_tanh
 *		x = gelu_tanh(x) element-wise.
 */
static CpStatus
ref_gelu_tanh(CpBackend *be, CpView x, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		double		v = cpu_ptr(x)[i];

		cpu_ptr(x)[i] = (float) (0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
	}
	return CP_OK;
}

/*
 * ref_geglu
 *		out = gelu_tanh(gate) * up.
 */
static CpStatus
ref_geglu(CpBackend *be, CpView out, CpView gate, CpView up, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		double		v = cpu_ptr(gate)[i];
		double		g = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));

		cpu_ptr(out)[i] = (float) (g * cpu_ptr(up)[i]);
	}
	return CP_OK;
}

/*
 * ref_add
 *		y += x.
 */
static CpStatus
ref_add(CpBackend *be, CpView y, CpView x, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		cpu_ptr(y)[i] += cpu_ptr(x)[i];
	return CP_OK;
}

/*
 * ref_add_rows
 *		y[r] += t[r mod period].
 */
static CpStatus
ref_add_rows(CpBackend *be, CpView y, CpBuf *t, int rows, int period, int dim)
{
	int			r,
				i;

	for (r = 0; r < rows; r++)
		for (i = 0; i < dim; i++)
			cpu_ptr(y)[(size_t) r * dim + i] += cpu_w(t, (size_t) (r % period) * dim + i);
	return CP_OK;
}

/*
 * ref_scale
 *		x *= s.
 */
static CpStatus
ref_scale(CpBackend *be, CpView x, size_t n, float s)
{
	size_t		i;

	for (i = 0; i < n; i++)
		cpu_ptr(x)[i] *= s;
	return CP_OK;
}

/*
 * ref_embedding
 *		out[i] = table[ids[i]].
 */
static CpStatus
ref_embedding(CpBackend *be, CpView out, CpBuf *table, const int32_t *ids,
			  int n, int dim)
{
	int			i,
				d;

	for (i = 0; i < n; i++)
		for (d = 0; d < dim; d++)
			cpu_ptr(out)[(size_t) i * dim + d] = cpu_w(table, (size_t) ids[i] * dim + d);
	return CP_OK;
}

/*
 * ref_scatter_rows
 *		dst[rows[i]] = src[i] * s.
 */
static CpStatus
ref_scatter_rows(CpBackend *be, CpView dst, CpView src, const int *rows,
				 int n, int dim, float s)
{
	int			i,
				d;

	for (i = 0; i < n; i++)
		for (d = 0; d < dim; d++)
			cpu_ptr(dst)[(size_t) rows[i] * dim + d] = cpu_ptr(src)[(size_t) i * dim + d] * s;
	return CP_OK;
}

/*
 * ref_im2col
 *		Non-overlapping P x P patches, vector order (c, ky, kx).
 */
static CpStatus
ref_im2col(CpBackend *be, CpView cols, CpView pixels, int B, int C, int H,
		   int W, int P)
{
	int			gh = H / P,
				gw = W / P;
	int			b,
				py,
				px,
				c,
				ky,
				kx;
	float	   *o = cpu_ptr(cols);

	for (b = 0; b < B; b++)
		for (py = 0; py < gh; py++)
			for (px = 0; px < gw; px++)
				for (c = 0; c < C; c++)
					for (ky = 0; ky < P; ky++)
						for (kx = 0; kx < P; kx++)
							*o++ = cpu_ptr(pixels)[(((size_t) b * C + c) * H + py * P + ky) * W
												   + px * P + kx];
	return CP_OK;
}

/*
 * cp_backend_cpu_ref_create
 *		A CPU backend whose math ops are the naive references above (the
 *		buffer management is the fast backend's, so the oracle can run on
 *		buffers made by either).
 */
CpStatus
cp_backend_cpu_ref_create(const CpBackendOptions *opts, CpBackend **out,
						  CpError *err)
{
	CpBackend  *be;
	CpStatus	st = cpu_backend_new(opts, false, &be, err);

	if (st != CP_OK)
		return st;
	be->name = "cpu-reference";
	be->matmul = ref_matmul;
	be->attention = ref_attention;
	be->layernorm = ref_layernorm;
	be->rmsnorm = ref_rmsnorm;
	be->l2norm = ref_l2norm;
	be->rope = ref_rope;
	be->gelu_tanh = ref_gelu_tanh;
	be->geglu = ref_geglu;
	be->add = ref_add;
	be->add_rows = ref_add_rows;
	be->scale = ref_scale;
	be->embedding = ref_embedding;
	be->scatter_rows = ref_scatter_rows;
	be->im2col = ref_im2col;
	*out = be;
	return CP_OK;
}
