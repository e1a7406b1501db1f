/*
 * model_qwen2vl.c
 *	  ColQwen2 (Qwen2-VL) and ColQwen2.5 (Qwen2.5-VL) on the backend ops
 *	  (docs/encoder.md#colqwen2-forward): vision tower with 2-D rotary
 *	  positions (window attention for 2.5), PatchMerger, Qwen2 decoder with
 *	  GQA, q/k/v biases and M-RoPE over 3-D positions, causal attention,
 *	  final norm, projection to embedding_dim, L2 normalisation.  One
 *	  sequence at a time through cp_qwen_model_encode (a page with its own
 *	  patch grid); the batched cp_model_forward is not wired yet.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "model_qwen2vl.h"
#include "prompt.h"

typedef struct QVLayer
{
	CpBuf	   *n1w,
			   *n1b,
			   *qw,
			   *qb,
			   *kw,
			   *kb,
			   *vw,
			   *vb,
			   *pw,
			   *pb,
			   *n2w,
			   *n2b,
			   *f1w,
			   *f1b,
			   *f2w,
			   *f2b,
			   *upw,
			   *upb;
} QVLayer;

typedef struct QTLayer
{
	CpBuf	   *inw,
			   *qw,
			   *qb,
			   *kw,
			   *kb,
			   *vw,
			   *vb,
			   *ow,
			   *pw,
			   *gw,
			   *uw,
			   *dw;
} QTLayer;

typedef struct QState
{
	CpBuf	   *patch_w;
	QVLayer    *vl;
	CpBuf	   *mlnw,
			   *mlnb,
			   *m0w,
			   *m0b,
			   *m2w,
			   *m2b;
	QTLayer    *tl;
	CpBuf	   *embed,
			   *norm,
			   *projw,
			   *projb;
} QState;

#define NVL (sizeof(QVLayer) / sizeof(CpBuf *))
#define NTL (sizeof(QTLayer) / sizeof(CpBuf *))

#define LOAD(expr) do { CpStatus st_ = (expr); if (st_ != CP_OK) return st_; } while (0)
#define C1(s) ((const char *const[]) {s}), 1
#define SHAPE1(a) 1, ((const int64_t[]) {(a)})
#define SHAPE2(a, b) 2, ((const int64_t[]) {(a), (b)})

/*
 * qwen_free
 *		Release every loaded weight.
 */
static void
qwen_free(CpModel *m)
{
	QState	   *s = m->arch_state;
	int			l;

	if (s == NULL)
		return;
	if (s->vl)
		for (l = 0; l < m->cfg.qwen.depth; l++)
			cp_model_free_buffers(m->be, (CpBuf **) &s->vl[l], NVL);
	if (s->tl)
		for (l = 0; l < m->cfg.text.num_layers; l++)
			cp_model_free_buffers(m->be, (CpBuf **) &s->tl[l], NTL);
	cp_model_free_buffers(m->be, &s->patch_w, 1);
	cp_model_free_buffers(m->be, &s->mlnw, 6);
	cp_model_free_buffers(m->be, &s->embed, 4);
	free(s->vl);
	free(s->tl);
	free(s);
	m->arch_state = NULL;
}

/*
 * load_slice
 *		Rows [part * n, (part + 1) * n) of a [3n, ...] tensor (the fused
 *		qkv weight or bias of a vision block) as a weight of its own.
 */
static CpStatus
load_slice(CpModel *m, const CpWeights *w, const char *fmt, int layer, int part,
		   int n, int cols, CpWeightKind kind, CpBuf **out, CpError *err)
{
	char		name[256];
	const CpTensor *t;
	CpTensor	sub;
	size_t		esz;

	snprintf(name, sizeof(name), fmt, layer);
	t = cp_weights_find(w, name);
	if (t == NULL)
		return cp_error(err, CP_ERR_NOT_FOUND, "checkpoint has no tensor \"%s\"", name);
	if (t->shape[0] != 3 * (int64_t) n || (cols > 0 && (t->ndim != 2 || t->shape[1] != cols)) ||
		(cols == 0 && t->ndim != 1))
		return cp_error(err, CP_ERR_SHAPE, "tensor \"%s\" is not [%d%s] as config.json implies", t->name, 3 * n,
						cols > 0 ? ", width" : "");
	esz = cp_dtype_size(t->dtype);
	sub = *t;
	sub.shape[0] = n;
	sub.numel = (int64_t) n * (cols > 0 ? cols : 1);
	sub.nbytes = (size_t) sub.numel * esz;
	sub.data = (const char *) t->data + (size_t) part * sub.nbytes;
	if (m->be->weight_upload(m->be, &sub, kind, out) != CP_OK)
	{
		*err = m->be->err;
		return err->status;
	}
	return CP_OK;
}

/*
 * qwen_load
 *		Every weight, in any layout whose names end as the 2024 hub ones.
 */
static CpStatus
qwen_load(CpModel *m, const CpWeights *w, CpError *err)
{
	const CpModelConfig *c = &m->cfg;
	const CpQwenConfig *q = &c->qwen;
	bool		v25 = c->arch == CP_ARCH_QWEN2_5_VL;
	int			D = q->vision_hidden,
				I = q->vision_intermediate,
				H = c->text.hidden_size,
				Ti = c->text.intermediate_size,
				nh = c->text.num_heads,
				nkv = c->text.num_kv_heads,
				hd = c->text.head_dim;
	int			row = 3 * q->image.temporal_patch_size * q->image.patch_size * q->image.patch_size;
	QState	   *s;
	int			l;

	if (!m->be->rmsnorm_plain || !m->be->rotary || !m->be->swiglu || !m->be->quick_gelu || !m->be->gelu_erf)
		return cp_error(err, CP_ERR_UNSUPPORTED, "the %s backend has no operations for Qwen2-VL models yet",
						m->be->name);
	s = calloc(1, sizeof(QState));
	if (s == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	m->arch_state = s;
	s->vl = calloc(q->depth, sizeof(QVLayer));
	s->tl = calloc(c->text.num_layers, sizeof(QTLayer));
	if (s->vl == NULL || s->tl == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");

	/* the Conv3d weight [D, 3, T, P, P] is a [D, 1176] matrix */
	{
		const CpTensor *t = cp_weights_find(w, "visual.patch_embed.proj.weight");
		CpTensor	flat;

		if (t == NULL)
			return cp_error(err, CP_ERR_NOT_FOUND, "checkpoint has no tensor \"visual.patch_embed.proj.weight\"");
		if (t->ndim != 5 || t->shape[0] != D || t->numel != (int64_t) D * row)
			return cp_error(err, CP_ERR_SHAPE, "tensor \"%s\" is not [%d, 3, %d, %d, %d]", t->name, D,
							q->image.temporal_patch_size, q->image.patch_size, q->image.patch_size);
		flat = *t;
		flat.ndim = 2;
		flat.shape[1] = row;
		if (m->be->weight_upload(m->be, &flat, CP_WEIGHT_MATRIX, &s->patch_w) != CP_OK)
		{
			*err = m->be->err;
			return err->status;
		}
	}
	for (l = 0; l < q->depth; l++)
	{
		QVLayer    *v = &s->vl[l];

		LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.norm1.weight"), l, SHAPE1(D), CP_WEIGHT_VECTOR, &v->n1w, err));
		LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.norm2.weight"), l, SHAPE1(D), CP_WEIGHT_VECTOR, &v->n2w, err));
		if (!v25)
		{
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.norm1.bias"), l, SHAPE1(D), CP_WEIGHT_VECTOR, &v->n1b, err));
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.norm2.bias"), l, SHAPE1(D), CP_WEIGHT_VECTOR, &v->n2b, err));
		}
		LOAD(load_slice(m, w, "visual.blocks.%d.attn.qkv.weight", l, 0, D, D, CP_WEIGHT_MATRIX, &v->qw, err));
		LOAD(load_slice(m, w, "visual.blocks.%d.attn.qkv.weight", l, 1, D, D, CP_WEIGHT_MATRIX, &v->kw, err));
		LOAD(load_slice(m, w, "visual.blocks.%d.attn.qkv.weight", l, 2, D, D, CP_WEIGHT_MATRIX, &v->vw, err));
		LOAD(load_slice(m, w, "visual.blocks.%d.attn.qkv.bias", l, 0, D, 0, CP_WEIGHT_VECTOR, &v->qb, err));
		LOAD(load_slice(m, w, "visual.blocks.%d.attn.qkv.bias", l, 1, D, 0, CP_WEIGHT_VECTOR, &v->kb, err));
		LOAD(load_slice(m, w, "visual.blocks.%d.attn.qkv.bias", l, 2, D, 0, CP_WEIGHT_VECTOR, &v->vb, err));
		LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.attn.proj.weight"), l, SHAPE2(D, D), CP_WEIGHT_MATRIX, &v->pw, err));
		LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.attn.proj.bias"), l, SHAPE1(D), CP_WEIGHT_VECTOR, &v->pb, err));
		if (v25)
		{
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.mlp.gate_proj.weight"), l, SHAPE2(I, D), CP_WEIGHT_MATRIX, &v->f1w, err));
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.mlp.gate_proj.bias"), l, SHAPE1(I), CP_WEIGHT_VECTOR, &v->f1b, err));
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.mlp.up_proj.weight"), l, SHAPE2(I, D), CP_WEIGHT_MATRIX, &v->upw, err));
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.mlp.up_proj.bias"), l, SHAPE1(I), CP_WEIGHT_VECTOR, &v->upb, err));
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.mlp.down_proj.weight"), l, SHAPE2(D, I), CP_WEIGHT_MATRIX, &v->f2w, err));
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.mlp.down_proj.bias"), l, SHAPE1(D), CP_WEIGHT_VECTOR, &v->f2b, err));
		}
		else
		{
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.mlp.fc1.weight"), l, SHAPE2(I, D), CP_WEIGHT_MATRIX, &v->f1w, err));
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.mlp.fc1.bias"), l, SHAPE1(I), CP_WEIGHT_VECTOR, &v->f1b, err));
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.mlp.fc2.weight"), l, SHAPE2(D, I), CP_WEIGHT_MATRIX, &v->f2w, err));
			LOAD(cp_model_load_tensor(m, w, C1("visual.blocks.%d.mlp.fc2.bias"), l, SHAPE1(D), CP_WEIGHT_VECTOR, &v->f2b, err));
		}
	}
	LOAD(cp_model_load_tensor(m, w, C1("visual.merger.ln_q.weight"), 0, SHAPE1(D), CP_WEIGHT_VECTOR, &s->mlnw, err));
	if (!v25)
		LOAD(cp_model_load_tensor(m, w, C1("visual.merger.ln_q.bias"), 0, SHAPE1(D), CP_WEIGHT_VECTOR, &s->mlnb, err));
	LOAD(cp_model_load_tensor(m, w, C1("visual.merger.mlp.0.weight"), 0, SHAPE2(4 * D, 4 * D), CP_WEIGHT_MATRIX, &s->m0w, err));
	LOAD(cp_model_load_tensor(m, w, C1("visual.merger.mlp.0.bias"), 0, SHAPE1(4 * D), CP_WEIGHT_VECTOR, &s->m0b, err));
	LOAD(cp_model_load_tensor(m, w, C1("visual.merger.mlp.2.weight"), 0, SHAPE2(H, 4 * D), CP_WEIGHT_MATRIX, &s->m2w, err));
	LOAD(cp_model_load_tensor(m, w, C1("visual.merger.mlp.2.bias"), 0, SHAPE1(H), CP_WEIGHT_VECTOR, &s->m2b, err));

	for (l = 0; l < c->text.num_layers; l++)
	{
		QTLayer    *t = &s->tl[l];

		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.input_layernorm.weight"), l, SHAPE1(H), CP_WEIGHT_VECTOR, &t->inw, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.self_attn.q_proj.weight"), l, SHAPE2(nh * hd, H), CP_WEIGHT_MATRIX, &t->qw, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.self_attn.q_proj.bias"), l, SHAPE1(nh * hd), CP_WEIGHT_VECTOR, &t->qb, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.self_attn.k_proj.weight"), l, SHAPE2(nkv * hd, H), CP_WEIGHT_MATRIX, &t->kw, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.self_attn.k_proj.bias"), l, SHAPE1(nkv * hd), CP_WEIGHT_VECTOR, &t->kb, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.self_attn.v_proj.weight"), l, SHAPE2(nkv * hd, H), CP_WEIGHT_MATRIX, &t->vw, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.self_attn.v_proj.bias"), l, SHAPE1(nkv * hd), CP_WEIGHT_VECTOR, &t->vb, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.self_attn.o_proj.weight"), l, SHAPE2(H, nh * hd), CP_WEIGHT_MATRIX, &t->ow, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.post_attention_layernorm.weight"), l, SHAPE1(H), CP_WEIGHT_VECTOR, &t->pw, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.mlp.gate_proj.weight"), l, SHAPE2(Ti, H), CP_WEIGHT_MATRIX, &t->gw, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.mlp.up_proj.weight"), l, SHAPE2(Ti, H), CP_WEIGHT_MATRIX, &t->uw, err));
		LOAD(cp_model_load_tensor(m, w, C1("layers.%d.mlp.down_proj.weight"), l, SHAPE2(H, Ti), CP_WEIGHT_MATRIX, &t->dw, err));
	}
	LOAD(cp_model_load_tensor(m, w, C1("embed_tokens.weight"), 0, SHAPE2(c->text.vocab_size, H), CP_WEIGHT_TABLE, &s->embed, err));
	LOAD(cp_model_load_tensor(m, w, ((const char *const[]) {"language_model.norm.weight", "model.norm.weight"}), 2, 0,
							  SHAPE1(H), CP_WEIGHT_VECTOR, &s->norm, err));
	LOAD(cp_model_load_tensor(m, w, ((const char *const[]) {"custom_text_proj.weight", "embedding_proj_layer.weight"}), 2, 0,
							  SHAPE2(c->embedding_dim, H), CP_WEIGHT_MATRIX, &s->projw, err));
	LOAD(cp_model_load_tensor(m, w, ((const char *const[]) {"custom_text_proj.bias", "embedding_proj_layer.bias"}), 2, 0,
							  SHAPE1(c->embedding_dim), CP_WEIGHT_VECTOR, &s->projb, err));
	return CP_OK;
}

/*
 * upload_angles
 *		cos and sin of a host angle table [rows, half] into two workspace
 *		slots.
 */
static CpStatus
upload_angles(CpModel *m, const float *ang, int rows, int half, int slot_cos,
			  int slot_sin, CpView *vc, CpView *vs, CpError *err)
{
	size_t		n = (size_t) rows * half;
	float	   *c = malloc(sizeof(float) * n);
	float	   *s = malloc(sizeof(float) * n);
	size_t		i;
	CpStatus	st;

	if (c == NULL || s == NULL)
	{
		free(c);
		free(s);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < n; i++)
	{
		c[i] = cosf(ang[i]);
		s[i] = sinf(ang[i]);
	}
	st = cp_model_workspace(m, slot_cos, n, vc, err);
	if (st == CP_OK)
		st = cp_model_workspace(m, slot_sin, n, vs, err);
	if (st == CP_OK && (m->be->upload(m->be, *vc, c, n) != CP_OK || m->be->upload(m->be, *vs, s, n) != CP_OK))
	{
		*err = m->be->err;
		st = err->status;
	}
	free(c);
	free(s);
	return st;
}

/*
 * window_order
 *		Qwen2.5-VL's windows of ws x ws merged cells over an mh x mw grid,
 *		row-major windows, cells row-major inside (edge windows smaller):
 *		order[k] = original cell of the k-th cell in window order, wlen[]
 *		cells per window; returns the number of windows.
 */
static int
window_order(int mh, int mw, int ws, int *order, int *wlen)
{
	int			nwh = (mh + ws - 1) / ws,
				nww = (mw + ws - 1) / ws,
				n = 0,
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

/*
 * vision_forward
 *		Pixel rows [gh*gw, 1176] -> merged features [gh*gw/4, H] in *img
 *		(original merged-cell order).
 */
static CpStatus
vision_forward(CpModel *m, const float *pixels, int gh, int gw, CpView *img,
			   CpCancelFn cancel, void *cancel_arg, CpError *err)
{
	CpBackend  *be = m->be;
	QState	   *s = m->arch_state;
	const CpQwenConfig *q = &m->cfg.qwen;
	bool		v25 = m->cfg.arch == CP_ARCH_QWEN2_5_VL;
	int			P = gh * gw,
				cells = P / 4,
				D = q->vision_hidden,
				I = q->vision_intermediate,
				nh = q->vision_heads,
				hd = q->vision_head_dim,
				H = m->cfg.text.hidden_size;
	int			row = 3 * q->image.temporal_patch_size * q->image.patch_size * q->image.patch_size;
	float	   *ang = malloc(sizeof(float) * P * (hd / 2));
	int		   *order = malloc(sizeof(int) * cells);
	int		   *wlen = malloc(sizeof(int) * cells);
	int		   *rows = malloc(sizeof(int) * P);
	int			nwin = 0;
	CpView		x,
				n,
				qv,
				kv,
				vv,
				att,
				mlp,
				up,
				vc,
				vs,
				tmp;
	CpStatus	st = CP_OK;
	int			r,
				l,
				j,
				k;

	if (ang == NULL || order == NULL || wlen == NULL || rows == NULL)
	{
		st = cp_error(err, CP_ERR_NOMEM, "out of memory");
		goto done;
	}
#define WS(slot, cnt, v) do { st = cp_model_workspace(m, slot, (cnt), &(v), err); if (st != CP_OK) goto done; } while (0)
#define OP(call) do { if ((call) != CP_OK) { *err = be->err; st = err->status; goto done; } } while (0)
	WS(0, (size_t) P * D, x);
	WS(1, (size_t) P * D, n);
	WS(2, (size_t) P * D, qv);
	WS(3, (size_t) P * D, kv);
	WS(4, (size_t) P * D, vv);
	WS(5, (size_t) P * D, att);
	WS(6, (size_t) P * I, mlp);
	WS(7, (size_t) P * I, up);
	WS(12, (size_t) cells * H, *img);
	WS(13, (size_t) P * (row > D ? row : D) + (size_t) cells * H, tmp);

	/* patch embedding: the pixel rows times the flattened Conv3d weight */
	OP(be->upload(be, tmp, pixels, (size_t) P * row));
	OP(be->matmul(be, x, tmp, s->patch_w, NULL, P, D, row, false));

	/* 2-D rotary angles: first hd/4 pairs by the patch row, the rest by its column */
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
		float	   *pa = malloc(sizeof(float) * P * (hd / 2));

		if (pa == NULL)
		{
			st = cp_error(err, CP_ERR_NOMEM, "out of memory");
			goto done;
		}
		nwin = window_order(gh / 2, gw / 2, q->window_size / q->image.patch_size / q->image.merge_size, order, wlen);
		/* rows into window order: source row of cell order[k] goes to k */
		for (k = 0; k < cells; k++)
			for (j = 0; j < 4; j++)
			{
				rows[order[k] * 4 + j] = k * 4 + j;
				memcpy(pa + (size_t) (k * 4 + j) * (hd / 2), ang + (size_t) (order[k] * 4 + j) * (hd / 2),
					   sizeof(float) * (hd / 2));
			}
		memcpy(ang, pa, sizeof(float) * P * (hd / 2));
		free(pa);
		OP(be->scatter_rows(be, n, x, rows, P, D, 1.0f));
		/* the permuted rows (slot 1) become x; slot 0 serves as n */
		x = n;
		n = cp_view(m->ws[0], 0);
	}
	st = upload_angles(m, ang, P, hd / 2, 8, 9, &vc, &vs, err);
	if (st != CP_OK)
		goto done;

	for (l = 0; l < q->depth; l++)
	{
		const QVLayer *v = &s->vl[l];
		bool		full = !v25;

		if (cp_model_cancelled(cancel, cancel_arg))
		{
			st = cp_error(err, CP_ERR_CANCELLED, "cancelled");
			goto done;
		}
		for (j = 0; j < q->n_fullatt; j++)
			full = full || q->fullatt_block_indexes[j] == l;
		if (v25)
			OP(be->rmsnorm_plain(be, n, x, v->n1w, P, D, 1e-6f));
		else
			OP(be->layernorm(be, n, x, v->n1w, v->n1b, P, D, 1e-6f));
		OP(be->matmul(be, qv, n, v->qw, v->qb, P, D, D, false));
		OP(be->matmul(be, kv, n, v->kw, v->kb, P, D, D, false));
		OP(be->matmul(be, vv, n, v->vw, v->vb, P, D, D, false));
		OP(be->rotary(be, qv, vc, vs, P, nh, hd));
		OP(be->rotary(be, kv, vc, vs, P, nh, hd));
		if (full)
			OP(be->attention(be, att, qv, kv, vv, 1, P, nh, nh, hd, 1.0f / sqrtf((float) hd), NULL, false));
		else
		{
			size_t		start = 0;

			/* each window attends within itself (rows are in window order) */
			for (k = 0; k < nwin; k++)
			{
				size_t		off = start * 4 * D;

				OP(be->attention(be, cp_view(att.buf, att.off + off), cp_view(qv.buf, qv.off + off),
								 cp_view(kv.buf, kv.off + off), cp_view(vv.buf, vv.off + off), 1, wlen[k] * 4,
								 nh, nh, hd, 1.0f / sqrtf((float) hd), NULL, false));
				start += wlen[k];
			}
		}
		OP(be->matmul(be, x, att, v->pw, v->pb, P, D, D, true));
		if (v25)
		{
			OP(be->rmsnorm_plain(be, n, x, v->n2w, P, D, 1e-6f));
			OP(be->matmul(be, mlp, n, v->f1w, v->f1b, P, I, D, false));
			OP(be->matmul(be, up, n, v->upw, v->upb, P, I, D, false));
			OP(be->swiglu(be, mlp, mlp, up, (size_t) P * I));
		}
		else
		{
			OP(be->layernorm(be, n, x, v->n2w, v->n2b, P, D, 1e-6f));
			OP(be->matmul(be, mlp, n, v->f1w, v->f1b, P, I, D, false));
			OP(be->quick_gelu(be, mlp, (size_t) P * I));
		}
		OP(be->matmul(be, x, mlp, v->f2w, v->f2b, P, D, I, true));
		CP_TRACE(m, "qwen_vision_layer", l, x, P, D);
	}

	/* merger: norm, each 2x2 block's four rows as one row, MLP with exact GELU */
	if (v25)
		OP(be->rmsnorm_plain(be, n, x, s->mlnw, P, D, 1e-6f));
	else
		OP(be->layernorm(be, n, x, s->mlnw, s->mlnb, P, D, 1e-6f));
	OP(be->matmul(be, tmp, n, s->m0w, s->m0b, cells, 4 * D, 4 * D, false));
	OP(be->gelu_erf(be, tmp, (size_t) cells * 4 * D));
	if (v25)
	{
		/* back to the original cell order */
		OP(be->matmul(be, n, tmp, s->m2w, s->m2b, cells, H, 4 * D, false));
		OP(be->scatter_rows(be, *img, n, order, cells, H, 1.0f));
	}
	else
		OP(be->matmul(be, *img, tmp, s->m2w, s->m2b, cells, H, 4 * D, false));
#undef WS
#undef OP
done:
	free(ang);
	free(order);
	free(wlen);
	free(rows);
	return st;
}

/*
 * text_forward
 *		One sequence of n ids with positions pos [3, n] (image rows from img
 *		when given) -> L2-normalised embeddings [n, E] in *emb.
 */
static CpStatus
text_forward(CpModel *m, const int32_t *ids, int n, const int32_t *pos,
			 const CpView *img, CpView *emb, CpCancelFn cancel,
			 void *cancel_arg, CpError *err)
{
	CpBackend  *be = m->be;
	QState	   *s = m->arch_state;
	const CpTextConfig *c = &m->cfg.text;
	int			H = c->hidden_size,
				Ti = c->intermediate_size,
				nh = c->num_heads,
				nkv = c->num_kv_heads,
				hd = c->head_dim,
				E = m->cfg.embedding_dim;
	float	   *ang = malloc(sizeof(float) * n * (hd / 2));
	int		   *rows = malloc(sizeof(int) * n);
	int			nimg = 0;
	CpView		x,
				h,
				qv,
				kv,
				vv,
				att,
				g,
				u,
				vc,
				vs;
	CpStatus	st = CP_OK;
	int			t,
				j,
				l;

	if (ang == NULL || rows == NULL)
	{
		st = cp_error(err, CP_ERR_NOMEM, "out of memory");
		goto done;
	}
#define WS(slot, cnt, v) do { st = cp_model_workspace(m, slot, (cnt), &(v), err); if (st != CP_OK) goto done; } while (0)
#define OP(call) do { if ((call) != CP_OK) { *err = be->err; st = err->status; goto done; } } while (0)
	WS(14, (size_t) n * H, x);
	WS(15, (size_t) n * H, h);
	WS(16, (size_t) n * nh * hd, qv);
	WS(17, (size_t) n * nkv * hd, kv);
	WS(18, (size_t) n * nkv * hd, vv);
	WS(19, (size_t) n * nh * hd, att);
	WS(20, (size_t) n * Ti, g);
	WS(21, (size_t) n * Ti, u);
	WS(24, (size_t) n * E, *emb);

	for (t = 0; t < n; t++)
	{
		if (ids[t] < 0 || ids[t] >= c->vocab_size)
		{
			st = cp_error(err, CP_ERR_INVALID_ARG, "token id %d outside the vocabulary", ids[t]);
			goto done;
		}
		if (ids[t] == m->cfg.image_token_id)
			rows[nimg++] = t;
	}
	OP(be->embedding(be, x, s->embed, ids, n, H));
	if (nimg > 0)
	{
		if (img == NULL)
		{
			st = cp_error(err, CP_ERR_INVALID_ARG, "image tokens without an image");
			goto done;
		}
		OP(be->scatter_rows(be, x, *img, rows, nimg, H, 1.0f));
	}
	/* M-RoPE: pair j rotates by the t, h or w position of its section */
	for (t = 0; t < n; t++)
		for (j = 0; j < hd / 2; j++)
		{
			int			sec = j < m->cfg.qwen.mrope_section[0] ? 0 :
				j < m->cfg.qwen.mrope_section[0] + m->cfg.qwen.mrope_section[1] ? 1 : 2;
			float		inv = 1.0f / powf(c->rope_theta, (float) (2 * j) / (float) hd);

			ang[(size_t) t * (hd / 2) + j] = (float) pos[(size_t) sec * n + t] * inv;
		}
	st = upload_angles(m, ang, n, hd / 2, 22, 23, &vc, &vs, err);
	if (st != CP_OK)
		goto done;
	for (l = 0; l < c->num_layers; l++)
	{
		const QTLayer *q = &s->tl[l];

		if (cp_model_cancelled(cancel, cancel_arg))
		{
			st = cp_error(err, CP_ERR_CANCELLED, "cancelled");
			goto done;
		}
		OP(be->rmsnorm_plain(be, h, x, q->inw, n, H, c->rms_norm_eps));
		OP(be->matmul(be, qv, h, q->qw, q->qb, n, nh * hd, H, false));
		OP(be->matmul(be, kv, h, q->kw, q->kb, n, nkv * hd, H, false));
		OP(be->matmul(be, vv, h, q->vw, q->vb, n, nkv * hd, H, false));
		OP(be->rotary(be, qv, vc, vs, n, nh, hd));
		OP(be->rotary(be, kv, vc, vs, n, nkv, hd));
		OP(be->attention(be, att, qv, kv, vv, 1, n, nh, nkv, hd, 1.0f / sqrtf((float) hd), NULL, true));
		OP(be->matmul(be, x, att, q->ow, NULL, n, H, nh * hd, true));
		OP(be->rmsnorm_plain(be, h, x, q->pw, n, H, c->rms_norm_eps));
		OP(be->matmul(be, g, h, q->gw, NULL, n, Ti, H, false));
		OP(be->matmul(be, u, h, q->uw, NULL, n, Ti, H, false));
		OP(be->swiglu(be, g, g, u, (size_t) n * Ti));
		OP(be->matmul(be, x, g, q->dw, NULL, n, H, Ti, true));
		CP_TRACE(m, "qwen_text_layer", l, x, n, H);
	}
	OP(be->rmsnorm_plain(be, h, x, s->norm, n, H, c->rms_norm_eps));
	OP(be->matmul(be, *emb, h, s->projw, s->projb, n, E, H, false));
	OP(be->l2norm(be, *emb, n, E));
#undef WS
#undef OP
done:
	free(ang);
	free(rows);
	return st;
}

/*
 * cp_qwen_model_encode
 *		See model_qwen2vl.h.
 */
CpStatus
cp_qwen_model_encode(CpModel *m, const int32_t *ids, int n, const float *pixels,
					 int grid_h, int grid_w, float *out, CpCancelFn cancel,
					 void *cancel_arg, CpError *err)
{
	int32_t    *pos;
	CpView		img,
				emb;
	CpStatus	st;

	if (m->cfg.arch != CP_ARCH_QWEN2_VL && m->cfg.arch != CP_ARCH_QWEN2_5_VL)
		return cp_error(err, CP_ERR_INVALID_ARG, "not a Qwen2-VL family model");
	if (n <= 0 || n > 65536)
		return cp_error(err, CP_ERR_INVALID_ARG, "%d tokens", n);
	if (pixels != NULL && (grid_h <= 0 || grid_w <= 0 || grid_h % 2 || grid_w % 2 ||
						   (int64_t) grid_h * grid_w > 1 << 20))
		return cp_error(err, CP_ERR_INVALID_ARG, "patch grid %dx%d", grid_h, grid_w);
	pos = malloc(sizeof(int32_t) * 3 * n);
	if (pos == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	st = cp_qwen_position_ids(ids, n, m->cfg.image_token_id, pixels ? grid_h : 0, pixels ? grid_w : 0,
							  m->cfg.qwen.image.merge_size, pos, err);
	if (st == CP_OK && pixels != NULL)
		st = vision_forward(m, pixels, grid_h, grid_w, &img, cancel, cancel_arg, err);
	if (st == CP_OK)
		st = text_forward(m, ids, n, pos, pixels ? &img : NULL, &emb, cancel, cancel_arg, err);
	if (st == CP_OK && m->be->download(m->be, emb, out, (size_t) n * m->cfg.embedding_dim) != CP_OK)
	{
		*err = m->be->err;
		st = err->status;
	}
	free(pos);
	return st;
}

/*
 * qwen_forward
 *		The generic batched entry (cp_model_forward) is not wired for this
 *		family yet: pages need their own grid and positions, so both pages
 *		and queries go through cp_qwen_model_encode, one at a time.
 */
static CpStatus
qwen_forward(CpModel *m, int B, int T, const int32_t *ids, const int *lens,
			 const float *pixels, CpView *emb, CpCancelFn cancel,
			 void *cancel_arg, CpError *err)
{
	(void) B;
	(void) T;
	(void) ids;
	(void) lens;
	(void) emb;
	(void) cancel;
	(void) cancel_arg;
	(void) pixels;
	return cp_error(err, CP_ERR_UNSUPPORTED,
					"ColQwen2 models encode through cp_qwen_model_encode (batched forward not implemented yet)");
}

const CpArch cp_arch_qwen2vl = {
	.name = "qwen2-vl",
	.load = qwen_load,
	.free = qwen_free,
	.forward = qwen_forward,
};
