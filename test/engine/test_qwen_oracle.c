/*
 * test_qwen_oracle.c
 *	  A naive float32 ColQwen2 (Qwen2-VL) and ColQwen2.5 (Qwen2.5-VL:
 *	  RMSNorm, SwiGLU, window attention) forward pass written straight from
 *	  docs/encoder.md section 7 with plain loops (no backend), checked
 *	  against colpali-engine's embeddings in test/fixtures/qwen: it pins
 *	  down the specification (patch rows, 2-D vision rotary, merger, M-RoPE
 *	  over 3-D positions, GQA with biases, causal attention, projection, L2)
 *	  and is the oracle the backend-based model (model_qwen2vl.c, to come)
 *	  is to be compared with.  Its inputs come from the engine's own
 *	  preprocessing, prompts and positions.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "image_qwen.h"
#include "prompt.h"
#include "tokenizer.h"
#include "weights.h"
#include "golden_format.h"
#include "test_util.h"
#include "golden_compare.h"

#define QDIR "../fixtures/qwen/"

typedef struct Oracle
{
	CpModelConfig cfg;
	CpWeights  *w;
	bool		ok;
} Oracle;

/* tensor by name suffix as float32 (NULL + failure when missing) */
static float *
T(Oracle *o, const char *fmt, int layer)
{
	char		name[256];
	const CpTensor *t;
	float	   *f = NULL;
	CpError		err = {0};

	snprintf(name, sizeof(name), fmt, layer);
	t = cp_weights_find(o->w, name);
	if (t == NULL || cp_tensor_load_f32(t, &f, &err) != CP_OK)
	{
		CHECK(false, "tensor %s: %s", name, t ? err.msg : "missing");
		o->ok = false;
		return NULL;
	}
	return f;
}

/* y[M,N] = x[M,K] W[N,K]^T + b (b may be NULL); double sums */
static void
linear(float *y, const float *x, int M, int K, const float *W, const float *b, int N)
{
	int			m,
				n,
				k;

	for (m = 0; m < M; m++)
		for (n = 0; n < N; n++)
		{
			double		s = b ? b[n] : 0.0;

			for (k = 0; k < K; k++)
				s += (double) x[(size_t) m * K + k] * W[(size_t) n * K + k];
			y[(size_t) m * N + n] = (float) s;
		}
}

static void
layernorm(float *y, const float *x, int rows, int dim, const float *w, const float *b, float eps)
{
	int			r,
				i;

	for (r = 0; r < rows; r++)
	{
		double		mu = 0,
					var = 0;

		for (i = 0; i < dim; i++)
			mu += x[(size_t) r * dim + i];
		mu /= dim;
		for (i = 0; i < dim; i++)
			var += (x[(size_t) r * dim + i] - mu) * (x[(size_t) r * dim + i] - mu);
		var /= dim;
		for (i = 0; i < dim; i++)
			y[(size_t) r * dim + i] = (float) ((x[(size_t) r * dim + i] - mu) / sqrt(var + eps) * w[i] + b[i]);
	}
}

/* Qwen2 RMSNorm: x * rsqrt(mean(x^2) + eps) * w */
static void
rmsnorm(float *y, const float *x, int rows, int dim, const float *w, float eps)
{
	int			r,
				i;

	for (r = 0; r < rows; r++)
	{
		double		ss = 0;

		for (i = 0; i < dim; i++)
			ss += (double) x[(size_t) r * dim + i] * x[(size_t) r * dim + i];
		for (i = 0; i < dim; i++)
			y[(size_t) r * dim + i] = (float) (x[(size_t) r * dim + i] / sqrt(ss / dim + eps)) * w[i];
	}
}

/* rotate_half rotary on x [rows, nh, hd] with angles ang [rows, hd/2] */
static void
rotary(float *x, int rows, int nh, int hd, const float *ang)
{
	int			r,
				h,
				j;

	for (r = 0; r < rows; r++)
		for (h = 0; h < nh; h++)
		{
			float	   *v = x + ((size_t) r * nh + h) * hd;

			for (j = 0; j < hd / 2; j++)
			{
				float		c = cosf(ang[(size_t) r * (hd / 2) + j]);
				float		s = sinf(ang[(size_t) r * (hd / 2) + j]);
				float		a = v[j];
				float		b = v[j + hd / 2];

				v[j] = a * c - b * s;
				v[j + hd / 2] = b * c + a * s;
			}
		}
}

/* softmax attention; q [T, nh, hd], k/v [T, nkv, hd] -> out [T, nh, hd] */
static void
attention(float *out, const float *q, const float *k, const float *v, int T, int nh, int nkv, int hd, bool causal)
{
	double	   *p = malloc(sizeof(double) * T);
	int			t,
				h,
				s,
				d;

	for (t = 0; t < T; t++)
		for (h = 0; h < nh; h++)
		{
			int			g = h / (nh / nkv);
			int			last = causal ? t : T - 1;
			double		mx = -1e300,
						sum = 0;

			for (s = 0; s <= last; s++)
			{
				double		dot = 0;

				for (d = 0; d < hd; d++)
					dot += (double) q[((size_t) t * nh + h) * hd + d] * k[((size_t) s * nkv + g) * hd + d];
				p[s] = dot / sqrt((double) hd);
				if (p[s] > mx)
					mx = p[s];
			}
			for (s = 0; s <= last; s++)
				sum += (p[s] = exp(p[s] - mx));
			for (d = 0; d < hd; d++)
			{
				double		acc = 0;

				for (s = 0; s <= last; s++)
					acc += p[s] * v[((size_t) s * nkv + g) * hd + d];
				out[((size_t) t * nh + h) * hd + d] = (float) (acc / sum);
			}
		}
	free(p);
}

/*
 * window_order
 *		Qwen2.5-VL's window partition of the merged grid (mh x mw cells):
 *		windows of ws x ws cells in row-major window order, cells row-major
 *		inside each (edge windows smaller).  order[i] = original cell of the
 *		i-th cell in window order; wlen[k] = cells of window k; returns the
 *		number of windows.
 */
static int
window_order(int mh, int mw, int ws, int *order, int *wlen)
{
	int			nwh = (mh + ws - 1) / ws;
	int			nww = (mw + ws - 1) / ws;
	int			n = 0,
				nw = 0,
				a,
				b,
				i,
				j;

	for (a = 0; a < nwh; a++)
		for (b = 0; b < nww; b++)
		{
			int			before = n;

			for (i = a * ws; i < (a + 1) * ws && i < mh; i++)
				for (j = b * ws; j < (b + 1) * ws && j < mw; j++)
					order[n++] = i * mw + j;
			wlen[nw++] = n - before;
		}
	return nw;
}

/* rows [cells*4, dim] gathered in window order: dst cell k = src cell order[k] */
static void
permute_cells(float *dst, const float *src, const int *order, int cells, int dim)
{
	int			k;

	for (k = 0; k < cells; k++)
		memcpy(dst + (size_t) k * 4 * dim, src + (size_t) order[k] * 4 * dim, sizeof(float) * 4 * dim);
}

/*
 * vision
 *		Qwen2-VL or Qwen2.5-VL tower + merger: rows [P, 1176] ->
 *		[P/4, text hidden] in the original merged-cell order.
 */
static float *
vision(Oracle *o, const float *pixels, int gh, int gw)
{
	const CpQwenConfig *q = &o->cfg.qwen;
	int			P = gh * gw;
	int			D = q->vision_hidden;
	int			I = q->vision_intermediate;
	int			nh = q->vision_heads;
	int			hd = q->vision_head_dim;
	int			row = 3 * q->image.temporal_patch_size * q->image.patch_size * q->image.patch_size;
	float	   *x = malloc(sizeof(float) * P * D);
	float	   *n = malloc(sizeof(float) * P * D);
	float	   *qkv = malloc(sizeof(float) * P * 3 * D);
	float	   *qq = malloc(sizeof(float) * P * D);
	float	   *kk = malloc(sizeof(float) * P * D);
	float	   *vv = malloc(sizeof(float) * P * D);
	float	   *att = malloc(sizeof(float) * P * D);
	float	   *mlp = malloc(sizeof(float) * P * I);
	float	   *ang = malloc(sizeof(float) * P * (hd / 2));
	float	   *merged;
	float	   *out;
	float	   *w;
	bool		v25 = o->cfg.arch == CP_ARCH_QWEN2_5_VL;
	int			cells = P / 4;
	int		   *order = malloc(sizeof(int) * cells);
	int		   *wlen = malloc(sizeof(int) * cells);
	int			nwin = 0;
	int			r,
				l,
				j;

	w = T(o, "visual.patch_embed.proj.weight", 0);
	if (!w)
		return NULL;
	linear(x, pixels, P, row, w, NULL, D);
	free(w);
	/* 2-D rotary: first hd/4 pairs rotate by the patch row, the rest by its column */
	for (r = 0; r < P; r++)
	{
		int			blk = r / 4;
		int			hpos = (blk / (gw / 2)) * 2 + (r % 4) / 2;
		int			wpos = (blk % (gw / 2)) * 2 + r % 2;

		for (j = 0; j < hd / 2; j++)
		{
			int			i = j % (hd / 4);
			float		inv = 1.0f / powf(10000.0f, (float) (2 * i) / (float) (hd / 2));

			ang[(size_t) r * (hd / 2) + j] = (float) (j < hd / 4 ? hpos : wpos) * inv;
		}
	}
	if (v25)
	{
		/* window attention works on rows permuted into window order */
		nwin = window_order(gh / 2, gw / 2, q->window_size / q->image.patch_size / q->image.merge_size, order, wlen);
		memcpy(n, x, sizeof(float) * P * D);
		permute_cells(x, n, order, cells, D);
		memcpy(att, ang, sizeof(float) * P * (hd / 2));
		permute_cells(ang, att, order, cells, hd / 2);
	}
	for (l = 0; l < q->depth && o->ok; l++)
	{
		bool		full = !v25;
		float	   *n1w = T(o, "visual.blocks.%d.norm1.weight", l),
				   *n1b = v25 ? NULL : T(o, "visual.blocks.%d.norm1.bias", l),
				   *qkvw = T(o, "visual.blocks.%d.attn.qkv.weight", l),
				   *qkvb = T(o, "visual.blocks.%d.attn.qkv.bias", l),
				   *pw = T(o, "visual.blocks.%d.attn.proj.weight", l),
				   *pb = T(o, "visual.blocks.%d.attn.proj.bias", l),
				   *n2w = T(o, "visual.blocks.%d.norm2.weight", l),
				   *n2b = v25 ? NULL : T(o, "visual.blocks.%d.norm2.bias", l),
				   *f1w = T(o, v25 ? "visual.blocks.%d.mlp.gate_proj.weight" : "visual.blocks.%d.mlp.fc1.weight", l),
				   *f1b = T(o, v25 ? "visual.blocks.%d.mlp.gate_proj.bias" : "visual.blocks.%d.mlp.fc1.bias", l),
				   *f2w = T(o, v25 ? "visual.blocks.%d.mlp.down_proj.weight" : "visual.blocks.%d.mlp.fc2.weight", l),
				   *f2b = T(o, v25 ? "visual.blocks.%d.mlp.down_proj.bias" : "visual.blocks.%d.mlp.fc2.bias", l),
				   *upw = v25 ? T(o, "visual.blocks.%d.mlp.up_proj.weight", l) : NULL,
				   *upb = v25 ? T(o, "visual.blocks.%d.mlp.up_proj.bias", l) : NULL;

		for (j = 0; j < q->n_fullatt; j++)
			full = full || q->fullatt_block_indexes[j] == l;
		if (o->ok)
		{
			if (v25)
				rmsnorm(n, x, P, D, n1w, 1e-6f);
			else
				layernorm(n, x, P, D, n1w, n1b, 1e-6f);
			linear(qkv, n, P, D, qkvw, qkvb, 3 * D);
			for (r = 0; r < P; r++)
			{
				memcpy(qq + (size_t) r * D, qkv + (size_t) r * 3 * D, sizeof(float) * D);
				memcpy(kk + (size_t) r * D, qkv + (size_t) r * 3 * D + D, sizeof(float) * D);
				memcpy(vv + (size_t) r * D, qkv + (size_t) r * 3 * D + 2 * D, sizeof(float) * D);
			}
			rotary(qq, P, nh, hd, ang);
			rotary(kk, P, nh, hd, ang);
			if (full)
				attention(att, qq, kk, vv, P, nh, nh, hd, false);
			else
			{
				int			start = 0,
							k;

				/* each window attends only within itself */
				for (k = 0; k < nwin; k++)
				{
					size_t		off = (size_t) start * 4 * D;

					attention(att + off, qq + off, kk + off, vv + off, wlen[k] * 4, nh, nh, hd, false);
					start += wlen[k];
				}
			}
			linear(n, att, P, D, pw, pb, D);
			for (j = 0; j < P * D; j++)
				x[j] += n[j];
			if (v25)
			{
				float	   *up = malloc(sizeof(float) * P * I);

				rmsnorm(n, x, P, D, n2w, 1e-6f);
				linear(mlp, n, P, D, f1w, f1b, I);
				linear(up, n, P, D, upw, upb, I);
				for (j = 0; j < P * I; j++)
					mlp[j] = mlp[j] / (1.0f + expf(-mlp[j])) * up[j];	/* SwiGLU */
				free(up);
			}
			else
			{
				layernorm(n, x, P, D, n2w, n2b, 1e-6f);
				linear(mlp, n, P, D, f1w, f1b, I);
				for (j = 0; j < P * I; j++)
					mlp[j] = mlp[j] / (1.0f + expf(-1.702f * mlp[j]));	/* QuickGELU */
			}
			linear(n, mlp, P, I, f2w, f2b, D);
			for (j = 0; j < P * D; j++)
				x[j] += n[j];
		}
		free(n1w); free(n1b); free(qkvw); free(qkvb); free(pw); free(pb);
		free(n2w); free(n2b); free(f1w); free(f1b); free(f2w); free(f2b); free(upw); free(upb);
	}
	/* merger: LayerNorm, 4 consecutive rows (one 2x2 block) as one, MLP with exact GELU */
	merged = malloc(sizeof(float) * P * D);
	out = malloc(sizeof(float) * (P / 4) * o->cfg.text.hidden_size);
	{
		float	   *lw = T(o, "visual.merger.ln_q.weight", 0),
				   *lb = v25 ? NULL : T(o, "visual.merger.ln_q.bias", 0),
				   *m0w = T(o, "visual.merger.mlp.0.weight", 0),
				   *m0b = T(o, "visual.merger.mlp.0.bias", 0),
				   *m2w = T(o, "visual.merger.mlp.2.weight", 0),
				   *m2b = T(o, "visual.merger.mlp.2.bias", 0);
		float	   *hid = malloc(sizeof(float) * P * D);

		if (o->ok)
		{
			int			Ht = o->cfg.text.hidden_size;

			if (v25)
				rmsnorm(merged, x, P, D, lw, 1e-6f);
			else
				layernorm(merged, x, P, D, lw, lb, 1e-6f);
			linear(hid, merged, P / 4, 4 * D, m0w, m0b, 4 * D);
			for (j = 0; j < P * D; j++)
				hid[j] = (float) (0.5 * hid[j] * (1.0 + erf(hid[j] / sqrt(2.0))));
			linear(out, hid, P / 4, 4 * D, m2w, m2b, Ht);
			if (v25)
			{
				/* back to the original cell order */
				float	   *tmp = malloc(sizeof(float) * cells * Ht);

				memcpy(tmp, out, sizeof(float) * cells * Ht);
				for (j = 0; j < cells; j++)
					memcpy(out + (size_t) order[j] * Ht, tmp + (size_t) j * Ht, sizeof(float) * Ht);
				free(tmp);
			}
		}
		free(lw); free(lb); free(m0w); free(m0b); free(m2w); free(m2b); free(hid);
	}
	free(x); free(n); free(qkv); free(qq); free(kk); free(vv); free(att); free(mlp); free(ang); free(merged);
	free(order); free(wlen);
	return out;
}

/*
 * decoder
 *		Qwen2 layers over ids with 3-D positions pos [3, n] (image rows from
 *		img, in order), then norm, projection and L2 -> [n, 128].
 */
static float *
decoder(Oracle *o, const int32_t *ids, int n, const int32_t *pos, const float *img)
{
	const CpTextConfig *c = &o->cfg.text;
	int			H = c->hidden_size,
				I = c->intermediate_size,
				nh = c->num_heads,
				nkv = c->num_kv_heads,
				hd = c->head_dim;
	int			E = o->cfg.embedding_dim;
	float	   *x = malloc(sizeof(float) * n * H);
	float	   *h = malloc(sizeof(float) * n * H);
	float	   *qq = malloc(sizeof(float) * n * nh * hd);
	float	   *kk = malloc(sizeof(float) * n * nkv * hd);
	float	   *vv = malloc(sizeof(float) * n * nkv * hd);
	float	   *att = malloc(sizeof(float) * n * nh * hd);
	float	   *g = malloc(sizeof(float) * n * I);
	float	   *u = malloc(sizeof(float) * n * I);
	float	   *ang = malloc(sizeof(float) * n * (hd / 2));
	float	   *emb = malloc(sizeof(float) * n * E);
	float	   *table = T(o, "embed_tokens.weight", 0);
	int			t,
				j,
				l,
				k = 0;

	if (!table)
		return NULL;
	for (t = 0; t < n; t++)
	{
		if (ids[t] == o->cfg.image_token_id)
			memcpy(x + (size_t) t * H, img + (size_t) (k++) * H, sizeof(float) * H);
		else
			memcpy(x + (size_t) t * H, table + (size_t) ids[t] * H, sizeof(float) * H);
	}
	free(table);
	/* M-RoPE: pair j rotates by the position of its section (t, h, w) */
	for (t = 0; t < n; t++)
		for (j = 0; j < hd / 2; j++)
		{
			int			sec = j < o->cfg.qwen.mrope_section[0] ? 0 :
				j < o->cfg.qwen.mrope_section[0] + o->cfg.qwen.mrope_section[1] ? 1 : 2;
			float		inv = 1.0f / powf(c->rope_theta, (float) (2 * j) / (float) hd);

			ang[(size_t) t * (hd / 2) + j] = (float) pos[(size_t) sec * n + t] * inv;
		}
	for (l = 0; l < c->num_layers && o->ok; l++)
	{
		float	   *inw = T(o, "layers.%d.input_layernorm.weight", l),
				   *qw = T(o, "layers.%d.self_attn.q_proj.weight", l),
				   *qb = T(o, "layers.%d.self_attn.q_proj.bias", l),
				   *kw = T(o, "layers.%d.self_attn.k_proj.weight", l),
				   *kb = T(o, "layers.%d.self_attn.k_proj.bias", l),
				   *vw = T(o, "layers.%d.self_attn.v_proj.weight", l),
				   *vb = T(o, "layers.%d.self_attn.v_proj.bias", l),
				   *ow = T(o, "layers.%d.self_attn.o_proj.weight", l),
				   *pw = T(o, "layers.%d.post_attention_layernorm.weight", l),
				   *gw = T(o, "layers.%d.mlp.gate_proj.weight", l),
				   *uw = T(o, "layers.%d.mlp.up_proj.weight", l),
				   *dw = T(o, "layers.%d.mlp.down_proj.weight", l);

		if (o->ok)
		{
			rmsnorm(h, x, n, H, inw, c->rms_norm_eps);
			linear(qq, h, n, H, qw, qb, nh * hd);
			linear(kk, h, n, H, kw, kb, nkv * hd);
			linear(vv, h, n, H, vw, vb, nkv * hd);
			rotary(qq, n, nh, hd, ang);
			rotary(kk, n, nkv, hd, ang);
			attention(att, qq, kk, vv, n, nh, nkv, hd, true);
			linear(h, att, n, nh * hd, ow, NULL, H);
			for (j = 0; j < n * H; j++)
				x[j] += h[j];
			rmsnorm(h, x, n, H, pw, c->rms_norm_eps);
			linear(g, h, n, H, gw, NULL, I);
			linear(u, h, n, H, uw, NULL, I);
			for (j = 0; j < n * I; j++)
				g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];	/* SwiGLU */
			linear(h, g, n, I, dw, NULL, H);
			for (j = 0; j < n * H; j++)
				x[j] += h[j];
		}
		free(inw); free(qw); free(qb); free(kw); free(kb); free(vw); free(vb);
		free(ow); free(pw); free(gw); free(uw); free(dw);
	}
	{
		float	   *nw = T(o, "norm.weight", 0),
				   *cw = T(o, "custom_text_proj.weight", 0),
				   *cb = T(o, "custom_text_proj.bias", 0);

		if (o->ok)
		{
			rmsnorm(h, x, n, H, nw, c->rms_norm_eps);
			linear(emb, h, n, H, cw, cb, E);
			for (t = 0; t < n; t++)
			{
				double		ss = 0;

				for (j = 0; j < E; j++)
					ss += (double) emb[(size_t) t * E + j] * emb[(size_t) t * E + j];
				for (j = 0; j < E; j++)
					emb[(size_t) t * E + j] = (float) (emb[(size_t) t * E + j] / sqrt(ss));
			}
		}
		free(nw); free(cw); free(cb);
	}
	free(x); free(h); free(qq); free(kk); free(vv); free(att); free(g); free(u); free(ang);
	return emb;
}

int
main(void)
{
	json_error_t jerr;
	json_t	   *manifest = json_load_file(QDIR "manifest.json", 0, &jerr);
	const char *dirs[4] = {QDIR "models/colqwen2-hub2024", QDIR "models/colqwen2-t5", QDIR "models/colqwen2_5-hub2024",
	QDIR "models/colqwen2_5-t5"};
	const char *golds[4] = {"colqwen2", "colqwen2", "colqwen2_5", "colqwen2_5"};
	int			d;

	CHECK(manifest != NULL, "qwen manifest: %s", jerr.text);
	for (d = 0; manifest && d < 4; d++)
	{
		Oracle		o;
		CpTokenizer *tok = NULL;
		CpError		err = {0};
		char		path[512];
		json_t	   *gold = json_object_get(json_object_get(manifest, "goldens"), golds[d]);
		json_t	   *images = json_object_get(manifest, "images");
		json_t	   *pages = json_object_get(gold, "pages");
		json_t	   *queries = json_object_get(gold, "queries");
		double		maxdiff = 0,
					mincos = 1;
		size_t		i;
		int			npages = 0,
					nqueries = 0;

		memset(&o, 0, sizeof(o));
		o.ok = true;
		snprintf(path, sizeof(path), "%s/tokenizer.json", dirs[d]);
		if (cp_config_load(dirs[d], &o.cfg, &err) != CP_OK || cp_tokenizer_load(path, &tok, &err) != CP_OK ||
			cp_weights_open(dirs[d], NULL, &o.w, &err) != CP_OK)
		{
			CHECK(false, "%s: %s", dirs[d], err.msg);
			continue;
		}
		o.cfg.qwen.image.max_pixels = json_integer_value(json_object_get(gold, "max_pixels"));
		for (i = 0; i < json_array_size(pages) && o.ok; i++)
		{
			json_t	   *pg = json_array_get(pages, i);
			const char *name = json_string_value(json_object_get(pg, "image"));
			const char *file = NULL;
			uint8_t    *bytes;
			size_t		len,
						j;
			float	   *px = NULL;
			int			gh,
						gw,
						n = 0;
			int32_t    *ids = NULL;
			int32_t    *pos;
			float	   *img,
					   *emb;

			for (j = 0; j < json_array_size(images); j++)
				if (strcmp(json_string_value(json_object_get(json_array_get(images, j), "name")), name) == 0)
					file = json_string_value(json_object_get(json_array_get(images, j), "file"));
			snprintf(path, sizeof(path), "../fixtures/%s", file ? file : "?");
			bytes = read_file(path, &len);
			if (bytes == NULL ||
				cp_qwen_image_preprocess(bytes, len, &o.cfg.qwen.image, 0, &px, &gh, &gw, &err) != CP_OK ||
				cp_build_qwen_image_prompt(tok, &o.cfg, gh * gw / 4, &ids, &n, &err) != CP_OK)
			{
				CHECK(false, "page %s: %s", name, err.msg);
				free(bytes);
				continue;
			}
			pos = malloc(sizeof(int32_t) * 3 * n);
			CHECK(cp_qwen_position_ids(ids, n, o.cfg.image_token_id, gh, gw, 2, pos, &err) == CP_OK, "%s", err.msg);
			img = vision(&o, px, gh, gw);
			emb = img ? decoder(&o, ids, n, pos, img) : NULL;
			if (emb)
			{
				compare(name, emb, json_object_get(pg, "embedding"), &maxdiff, &mincos);
				npages++;
			}
			free(emb); free(img); free(pos); free(ids); free(px); free(bytes);
		}
		for (i = 0; i < json_array_size(queries) && o.ok; i++)
		{
			json_t	   *q = json_array_get(queries, i);
			const char *text = json_string_value(json_object_get(q, "text"));
			CpModelConfig qc = o.cfg;
			int32_t    *ids = NULL;
			int32_t    *pos;
			int			n = 0;
			float	   *emb;

			if (!golden_query_format(&qc, json_string_value(json_object_get(q, "format"))))
			{
				CHECK(false, "query %zu: unknown format", i);
				continue;
			}
			if (cp_build_qwen_query_prompt(tok, &qc, text, strlen(text), &ids, &n, &err) != CP_OK)
			{
				CHECK(false, "query: %s", err.msg);
				continue;
			}
			pos = malloc(sizeof(int32_t) * 3 * n);
			CHECK(cp_qwen_position_ids(ids, n, o.cfg.image_token_id, 0, 0, 2, pos, &err) == CP_OK, "%s", err.msg);
			emb = decoder(&o, ids, n, pos, NULL);
			if (emb)
			{
				compare(text, emb, json_object_get(q, "embedding"), &maxdiff, &mincos);
				nqueries++;
			}
			free(emb); free(pos); free(ids);
		}
		printf("%s: %d pages, %d queries: max |diff| %.3g, min row cosine %.9f\n", dirs[d], npages, nqueries,
			   maxdiff, mincos);
		CHECK(npages >= 10 && nqueries >= 5, "%s: too few compared", dirs[d]);
		CHECK(maxdiff <= 1e-4 && mincos >= 0.99999, "%s: max |diff| %.3g, min cosine %.9f", dirs[d], maxdiff, mincos);
		cp_tokenizer_free(tok);
		cp_weights_close(o.w);
	}
	json_decref(manifest);
	if (failures)
	{
		printf("test_qwen_oracle: %d failure(s) of %d checks\n", failures, checks);
		return 1;
	}
	printf("test_qwen_oracle: ok (%d checks)\n", checks);
	return 0;
}
