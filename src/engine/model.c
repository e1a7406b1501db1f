/*
 * model.c
 *	  ColPali forward pass (docs/encoder.md#forward) as a sequence of backend
 *	  operations; no arithmetic on tensor data happens here.
 *
 *	  pixels -> im2col -> patch GEMM (+bias) -> + position embeddings
 *	  -> SigLIP pre-LN layers (MHA, no mask; GELU-tanh MLP) -> post-LN
 *	  -> projector (+bias) -> scattered into the rows of the <image> tokens
 *	  of embed_tokens[ids] * sqrt(hidden) -> Gemma layers (RMSNorm(1+w), MQA with RoPE at positions 1..T,
 *	  bidirectional, padding keys masked; GeGLU MLP) -> final RMSNorm
 *	  -> Linear(hidden, 128) + bias -> L2 normalisation.
 *
 * Tensors are found by suffix so that every checkpoint layout of
 * docs/encoder.md#tensor-names works; each comes in two forms: vision
 * "vision_tower.vision_model.X" (transformers 4) or "vision_tower.X"
 * (transformers 5 save_pretrained), Gemma "language_model.model.X"
 * (before transformers 4.52) or "language_model.X" (after).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct CpVisionLayer
{
	CpBuf	   *ln1_w,
			   *ln1_b;			/* [Dv] */
	CpBuf	   *q_w,
			   *k_w,
			   *v_w,
			   *o_w;			/* [Dv, Dv] */
	CpBuf	   *q_b,
			   *k_b,
			   *v_b,
			   *o_b;			/* [Dv] */
	CpBuf	   *ln2_w,
			   *ln2_b;			/* [Dv] */
	CpBuf	   *fc1_w,
			   *fc1_b;			/* [Iv, Dv], [Iv] */
	CpBuf	   *fc2_w,
			   *fc2_b;			/* [Dv, Iv], [Dv] */
} CpVisionLayer;

typedef struct CpTextLayer
{
	CpBuf	   *in_norm;		/* [D] */
	CpBuf	   *q_w;			/* [nh*hd, D] */
	CpBuf	   *k_w,
			   *v_w;			/* [nkv*hd, D] */
	CpBuf	   *o_w;			/* [D, nh*hd] */
	CpBuf	   *post_norm;		/* [D] */
	CpBuf	   *gate_w,
			   *up_w;			/* [I, D] */
	CpBuf	   *down_w;			/* [D, I] */
} CpTextLayer;

/* Activation buffers, grown on demand and reused across calls. */
enum
{
	WS_PIX,						/* [B, C, H, W] */
	WS_COLS,					/* [B*N, C*P*P] */
	WS_XV,						/* [B*N, Dv] residual stream */
	WS_HV,						/* [B*N, Dv] normed */
	WS_QV, WS_KV, WS_VV, WS_AV, /* [B*N, Dv] */
	WS_FV,						/* [B*N, Iv] */
	WS_IMG,						/* [B*N, D] image features */
	WS_X,						/* [B*T, D] residual stream */
	WS_H,						/* [B*T, D] normed */
	WS_Q,						/* [B*T, nh*hd] */
	WS_K, WS_V,					/* [B*T, nkv*hd] */
	WS_A,						/* [B*T, nh*hd] */
	WS_GATE, WS_UP,				/* [chunk, I] */
	WS_E,						/* [B*T, E] */
	WS_COUNT
};

/* Rows of the Gemma MLP computed at once (bounds the [rows, I] buffers). */
#define MLP_CHUNK_ROWS 1024

struct CpModel
{
	CpModelConfig cfg;
	CpBackend  *be;
	/* vision tower */
	CpBuf	   *patch_w;		/* [Dv, C*P*P] */
	CpBuf	   *patch_b;		/* [Dv] */
	CpBuf	   *pos_emb;		/* [N, Dv] */
	CpVisionLayer *vl;
	CpBuf	   *post_ln_w,
			   *post_ln_b;		/* [Dv] */
	/* projector */
	CpBuf	   *proj_w;			/* [D, Dv] */
	CpBuf	   *proj_b;			/* [D] */
	/* language model */
	CpBuf	   *embed;			/* [vocab, D] table */
	CpTextLayer *tl;
	CpBuf	   *final_norm;		/* [D] */
	/* head */
	CpBuf	   *head_w;			/* [E, D] */
	CpBuf	   *head_b;			/* [E] */
	/* workspace */
	CpBuf	   *ws[WS_COUNT];
	size_t		ws_n[WS_COUNT];
	bool		causal;			/* Gemma attention causal (see cp_model_load) */
	CpTraceFn	trace;
	void	   *trace_arg;
	/* host scratch for row indices */
	int		   *rows;
	int			rows_n;
};

/* ---------------------------------------------------------------------
 * Loading
 * --------------------------------------------------------------------- */

/*
 * shape_str
 *		"[a, b, c]" for error messages.
 */
static void
shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
	size_t		used = 0;
	int			i;

	used += snprintf(buf + used, len - used, "[");
	for (i = 0; i < ndim && used < len; i++)
		used += snprintf(buf + used, len - used, "%s%lld", i ? ", " : "",
						 (long long) shape[i]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
}

/*
 * load_tensor
 *		Find the first of the candidate suffixes (printf formats taking the
 *		layer number), check its shape, upload it.
 */
static CpStatus
load_tensor(CpModel *m, const CpWeights *w, const char *const *cands,
			int ncand, int layer, int ndim, const int64_t *shape,
			CpWeightKind kind, CpBuf **out, CpError *err)
{
	char		name[256];
	const CpTensor *t = NULL;
	int			i;

	for (i = 0; i < ncand && t == NULL; i++)
	{
		snprintf(name, sizeof(name), cands[i], layer);
		t = cp_weights_find(w, name);
	}
	if (t == NULL)
	{
		snprintf(name, sizeof(name), cands[0], layer);
		return cp_error(err, CP_ERR_NOT_FOUND,
						"checkpoint has no tensor \"%s\"%s", name,
						ncand > 1 ? " (or an alternative layout of it)" : "");
	}
	if (t->ndim != ndim || memcmp(t->shape, shape, sizeof(int64_t) * ndim) != 0)
	{
		char		want[128],
					got[128];

		shape_str(want, sizeof(want), ndim, shape);
		shape_str(got, sizeof(got), t->ndim, t->shape);
		return cp_error(err, CP_ERR_SHAPE,
						"tensor \"%s\" has shape %s, expected %s from config.json",
						t->name, got, want);
	}
	if (m->be->weight_upload(m->be, t, kind, out) != CP_OK)
	{
		*err = m->be->err;
		return err->status;
	}
	return CP_OK;
}

#define ONE(s) ((const char *const[]) {s}), 1
#define LM(s) ((const char *const[]) {"language_model.model." s, "language_model." s}), 2
#define VIS(s) ((const char *const[]) {"vision_tower.vision_model." s, "vision_tower." s}), 2

/* Helpers declaring shapes inline. */
#define SHAPE1(a) 1, ((const int64_t[]) {(a)})
#define SHAPE2(a, b) 2, ((const int64_t[]) {(a), (b)})
#define SHAPE4(a, b, c, d) 4, ((const int64_t[]) {(a), (b), (c), (d)})

#define TRY(expr) do { CpStatus st_ = (expr); if (st_ != CP_OK) { cp_model_free(m); return st_; } } while (0)

/*
 * check_config
 *		Reject hyper-parameters the forward pass cannot run.
 */
static CpStatus
check_config(const CpModelConfig *c, CpError *err)
{
	const CpVisionConfig *v = &c->vision;
	const CpTextConfig *t = &c->text;

	if (v->hidden_size <= 0 || v->num_heads <= 0 || v->head_dim <= 0 ||
		v->num_heads * v->head_dim != v->hidden_size || v->num_layers < 0 ||
		v->intermediate_size <= 0 || v->patch_size <= 0 ||
		v->image_size <= 0 || v->image_size % v->patch_size != 0 ||
		v->num_channels <= 0 ||
		v->num_patches != (v->image_size / v->patch_size) * (v->image_size / v->patch_size))
		return cp_error(err, CP_ERR_SHAPE, "inconsistent vision_config in config.json");
	if (t->hidden_size <= 0 || t->num_heads <= 0 || t->num_kv_heads <= 0 ||
		t->head_dim <= 0 || t->num_heads % t->num_kv_heads != 0 ||
		t->num_layers < 0 || t->intermediate_size <= 0 || t->vocab_size <= 0 ||
		t->head_dim % 2 != 0)
		return cp_error(err, CP_ERR_SHAPE, "inconsistent text_config in config.json");
	if (c->projector_dim != t->hidden_size)
		return cp_error(err, CP_ERR_SHAPE,
						"projection_dim %d differs from the text hidden_size %d",
						c->projector_dim, t->hidden_size);
	if (c->num_image_tokens != v->num_patches)
		return cp_error(err, CP_ERR_SHAPE,
						"num_image_tokens %d differs from the %d patches of the vision tower",
						c->num_image_tokens, v->num_patches);
	if (c->embedding_dim <= 0)
		return cp_error(err, CP_ERR_SHAPE, "embedding_dim %d is not positive",
						c->embedding_dim);
	if (v->hidden_act != CP_ACT_GELU_TANH || t->hidden_act != CP_ACT_GELU_TANH)
		return cp_error(err, CP_ERR_UNSUPPORTED,
						"only the tanh-approximated GELU activation is supported");
	if (c->image_token_id < 0 || c->image_token_id >= t->vocab_size)
		return cp_error(err, CP_ERR_SHAPE, "image_token_index %d outside the vocabulary of %d",
						c->image_token_id, t->vocab_size);
	return CP_OK;
}

/*
 * cp_model_load
 *		Find, check and upload every weight.
 */
CpStatus
cp_model_load(const CpModelConfig *cfg, const CpWeights *w, CpBackend *be,
			  CpModel **out, CpError *err)
{
	CpModel    *m;
	const CpVisionConfig *vc = &cfg->vision;
	const CpTextConfig *tc = &cfg->text;
	int64_t		Dv = vc->hidden_size,
				Iv = vc->intermediate_size,
				P = vc->patch_size,
				C = vc->num_channels;
	int64_t		D = tc->hidden_size,
				I = tc->intermediate_size,
				QD = (int64_t) tc->num_heads * tc->head_dim,
				KD = (int64_t) tc->num_kv_heads * tc->head_dim;
	int64_t		E = cfg->embedding_dim;
	int			l;
	CpStatus	st;

	*out = NULL;
	st = check_config(cfg, err);
	if (st != CP_OK)
		return st;
	m = calloc(1, sizeof(CpModel));
	if (m == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	m->cfg = *cfg;
	m->be = be;
	m->causal = !cfg->bidirectional;
	m->vl = calloc(vc->num_layers > 0 ? vc->num_layers : 1, sizeof(CpVisionLayer));
	m->tl = calloc(tc->num_layers > 0 ? tc->num_layers : 1, sizeof(CpTextLayer));
	if (m->vl == NULL || m->tl == NULL)
	{
		cp_model_free(m);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}

	/* vision tower */
	TRY(load_tensor(m, w, VIS("embeddings.patch_embedding.weight"), 0,
					SHAPE4(Dv, C, P, P), CP_WEIGHT_MATRIX, &m->patch_w, err));
	TRY(load_tensor(m, w, VIS("embeddings.patch_embedding.bias"), 0,
					SHAPE1(Dv), CP_WEIGHT_VECTOR, &m->patch_b, err));
	TRY(load_tensor(m, w, VIS("embeddings.position_embedding.weight"), 0,
					SHAPE2(vc->num_patches, Dv), CP_WEIGHT_VECTOR, &m->pos_emb, err));
	for (l = 0; l < vc->num_layers; l++)
	{
		CpVisionLayer *L = &m->vl[l];

#define VL(field, suffix, kind, ...) \
		TRY(load_tensor(m, w, VIS("encoder.layers.%d." suffix), l, \
						__VA_ARGS__, kind, &L->field, err))
		VL(ln1_w, "layer_norm1.weight", CP_WEIGHT_VECTOR, SHAPE1(Dv));
		VL(ln1_b, "layer_norm1.bias", CP_WEIGHT_VECTOR, SHAPE1(Dv));
		VL(q_w, "self_attn.q_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(Dv, Dv));
		VL(q_b, "self_attn.q_proj.bias", CP_WEIGHT_VECTOR, SHAPE1(Dv));
		VL(k_w, "self_attn.k_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(Dv, Dv));
		VL(k_b, "self_attn.k_proj.bias", CP_WEIGHT_VECTOR, SHAPE1(Dv));
		VL(v_w, "self_attn.v_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(Dv, Dv));
		VL(v_b, "self_attn.v_proj.bias", CP_WEIGHT_VECTOR, SHAPE1(Dv));
		VL(o_w, "self_attn.out_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(Dv, Dv));
		VL(o_b, "self_attn.out_proj.bias", CP_WEIGHT_VECTOR, SHAPE1(Dv));
		VL(ln2_w, "layer_norm2.weight", CP_WEIGHT_VECTOR, SHAPE1(Dv));
		VL(ln2_b, "layer_norm2.bias", CP_WEIGHT_VECTOR, SHAPE1(Dv));
		VL(fc1_w, "mlp.fc1.weight", CP_WEIGHT_MATRIX, SHAPE2(Iv, Dv));
		VL(fc1_b, "mlp.fc1.bias", CP_WEIGHT_VECTOR, SHAPE1(Iv));
		VL(fc2_w, "mlp.fc2.weight", CP_WEIGHT_MATRIX, SHAPE2(Dv, Iv));
		VL(fc2_b, "mlp.fc2.bias", CP_WEIGHT_VECTOR, SHAPE1(Dv));
#undef VL
	}
	TRY(load_tensor(m, w, VIS("post_layernorm.weight"), 0,
					SHAPE1(Dv), CP_WEIGHT_VECTOR, &m->post_ln_w, err));
	TRY(load_tensor(m, w, VIS("post_layernorm.bias"), 0,
					SHAPE1(Dv), CP_WEIGHT_VECTOR, &m->post_ln_b, err));

	/* projector */
	TRY(load_tensor(m, w, ONE("multi_modal_projector.linear.weight"), 0,
					SHAPE2(D, Dv), CP_WEIGHT_MATRIX, &m->proj_w, err));
	TRY(load_tensor(m, w, ONE("multi_modal_projector.linear.bias"), 0,
					SHAPE1(D), CP_WEIGHT_VECTOR, &m->proj_b, err));

	/* language model */
	TRY(load_tensor(m, w, LM("embed_tokens.weight"), 0,
					SHAPE2(tc->vocab_size, D), CP_WEIGHT_TABLE, &m->embed, err));
	for (l = 0; l < tc->num_layers; l++)
	{
		CpTextLayer *L = &m->tl[l];

#define TL(field, suffix, kind, ...) \
		TRY(load_tensor(m, w, LM("layers.%d." suffix), l, __VA_ARGS__, kind, \
						&L->field, err))
		TL(in_norm, "input_layernorm.weight", CP_WEIGHT_VECTOR, SHAPE1(D));
		TL(q_w, "self_attn.q_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(QD, D));
		TL(k_w, "self_attn.k_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(KD, D));
		TL(v_w, "self_attn.v_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(KD, D));
		TL(o_w, "self_attn.o_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(D, QD));
		TL(post_norm, "post_attention_layernorm.weight", CP_WEIGHT_VECTOR, SHAPE1(D));
		TL(gate_w, "mlp.gate_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(I, D));
		TL(up_w, "mlp.up_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(I, D));
		TL(down_w, "mlp.down_proj.weight", CP_WEIGHT_MATRIX, SHAPE2(D, I));
#undef TL
	}
	TRY(load_tensor(m, w, LM("norm.weight"), 0, SHAPE1(D), CP_WEIGHT_VECTOR,
					&m->final_norm, err));

	/* head: HF-native name first, colpali-engine name second */
	TRY(load_tensor(m, w, ((const char *const[]) {"embedding_proj_layer.weight",
					"custom_text_proj.weight"}), 2, 0, SHAPE2(E, D),
					CP_WEIGHT_MATRIX, &m->head_w, err));
	TRY(load_tensor(m, w, ((const char *const[]) {"embedding_proj_layer.bias",
					"custom_text_proj.bias"}), 2, 0, SHAPE1(E),
					CP_WEIGHT_VECTOR, &m->head_b, err));

	*out = m;
	return CP_OK;
}

/*
 * cp_model_free
 *		Release weights and workspace (not the backend).
 */
void
cp_model_free(CpModel *m)
{
	CpBackend  *be;
	int			l,
				i;

	if (m == NULL)
		return;
	be = m->be;
	be->free(be, m->patch_w);
	be->free(be, m->patch_b);
	be->free(be, m->pos_emb);
	if (m->vl)
		for (l = 0; l < m->cfg.vision.num_layers; l++)
		{
			CpBuf	  **p = (CpBuf **) &m->vl[l];

			for (i = 0; i < (int) (sizeof(CpVisionLayer) / sizeof(CpBuf *)); i++)
				be->free(be, p[i]);
		}
	be->free(be, m->post_ln_w);
	be->free(be, m->post_ln_b);
	be->free(be, m->proj_w);
	be->free(be, m->proj_b);
	be->free(be, m->embed);
	if (m->tl)
		for (l = 0; l < m->cfg.text.num_layers; l++)
		{
			CpBuf	  **p = (CpBuf **) &m->tl[l];

			for (i = 0; i < (int) (sizeof(CpTextLayer) / sizeof(CpBuf *)); i++)
				be->free(be, p[i]);
		}
	be->free(be, m->final_norm);
	be->free(be, m->head_w);
	be->free(be, m->head_b);
	for (i = 0; i < WS_COUNT; i++)
		be->free(be, m->ws[i]);
	free(m->vl);
	free(m->tl);
	free(m->rows);
	free(m);
}

/*
 * cp_model_set_causal
 *		Choose the Gemma attention mask (colpali_engine.h CpAttentionMode).
 */
void
cp_model_set_causal(CpModel *m, bool causal)
{
	m->causal = causal;
}

/*
 * cp_model_set_trace
 *		Install (or remove, fn NULL) the per-stage trace callback.
 */
void
cp_model_set_trace(CpModel *m, CpTraceFn fn, void *arg)
{
	m->trace = fn;
	m->trace_arg = arg;
}

/* ---------------------------------------------------------------------
 * Forward pass
 * --------------------------------------------------------------------- */

#define TRACE(stage, layer, v, rows, cols) \
	do { if (m->trace) m->trace(m->trace_arg, stage, layer, be, v, rows, cols); } while (0)

/* Run a backend op; on failure copy its message and leave. */
#define OP(call) do { if ((call) != CP_OK) { *err = be->err; return err->status; } } while (0)

/*
 * ws
 *		Workspace buffer slot with at least n floats, as a view at 0.
 */
static CpStatus
ws(CpModel *m, int slot, size_t n, CpView *v, CpError *err)
{
	CpBackend  *be = m->be;

	if (m->ws_n[slot] < n)
	{
		be->free(be, m->ws[slot]);
		m->ws[slot] = NULL;
		m->ws_n[slot] = 0;
		if (be->alloc(be, n, &m->ws[slot]) != CP_OK)
		{
			*err = be->err;
			return err->status;
		}
		m->ws_n[slot] = n;
	}
	*v = cp_view(m->ws[slot], 0);
	return CP_OK;
}

#define WS(slot, n, v) do { CpStatus st_ = ws(m, slot, (n), &(v), err); if (st_ != CP_OK) return st_; } while (0)

/*
 * cancelled
 *		Poll the cancel callback.
 */
static bool
cancelled(CpCancelFn cancel, void *arg)
{
	return cancel != NULL && cancel(arg);
}

/*
 * vision_forward
 *		B images -> projected image features [B*N, D] in *img.
 */
static CpStatus
vision_forward(CpModel *m, int B, const float *pixels, CpView *img,
			   CpCancelFn cancel, void *cancel_arg, CpError *err)
{
	CpBackend  *be = m->be;
	const CpVisionConfig *vc = &m->cfg.vision;
	int			C = vc->num_channels,
				H = vc->image_size,
				P = vc->patch_size,
				N = vc->num_patches,
				Dv = vc->hidden_size,
				Iv = vc->intermediate_size;
	int			R = B * N;
	float		scale = 1.0f / sqrtf((float) vc->head_dim);
	CpView		pix,
				cols,
				x,
				h,
				q,
				k,
				v,
				a,
				f;
	int			l;

	WS(WS_PIX, (size_t) B * C * H * H, pix);
	WS(WS_COLS, (size_t) R * C * P * P, cols);
	WS(WS_XV, (size_t) R * Dv, x);
	WS(WS_HV, (size_t) R * Dv, h);
	WS(WS_QV, (size_t) R * Dv, q);
	WS(WS_KV, (size_t) R * Dv, k);
	WS(WS_VV, (size_t) R * Dv, v);
	WS(WS_AV, (size_t) R * Dv, a);
	WS(WS_FV, (size_t) R * Iv, f);
	WS(WS_IMG, (size_t) R * m->cfg.text.hidden_size, *img);

	/* patch embedding as im2col + GEMM, then absolute positions */
	OP(be->upload(be, pix, pixels, (size_t) B * C * H * H));
	OP(be->im2col(be, cols, pix, B, C, H, H, P));
	OP(be->matmul(be, x, cols, m->patch_w, m->patch_b, R, Dv, C * P * P, false));
	OP(be->add_rows(be, x, m->pos_emb, R, N, Dv));
	TRACE("vision_embeddings", -1, x, R, Dv);

	for (l = 0; l < vc->num_layers; l++)
	{
		CpVisionLayer *L = &m->vl[l];

		if (cancelled(cancel, cancel_arg))
			return cp_error(err, CP_ERR_CANCELLED, "encoding cancelled");
		OP(be->layernorm(be, h, x, L->ln1_w, L->ln1_b, R, Dv, vc->layer_norm_eps));
		OP(be->matmul(be, q, h, L->q_w, L->q_b, R, Dv, Dv, false));
		OP(be->matmul(be, k, h, L->k_w, L->k_b, R, Dv, Dv, false));
		OP(be->matmul(be, v, h, L->v_w, L->v_b, R, Dv, Dv, false));
		OP(be->attention(be, a, q, k, v, B, N, vc->num_heads, vc->num_heads,
						 vc->head_dim, scale, NULL, false));
		OP(be->matmul(be, x, a, L->o_w, L->o_b, R, Dv, Dv, true));
		OP(be->layernorm(be, h, x, L->ln2_w, L->ln2_b, R, Dv, vc->layer_norm_eps));
		OP(be->matmul(be, f, h, L->fc1_w, L->fc1_b, R, Iv, Dv, false));
		OP(be->gelu_tanh(be, f, (size_t) R * Iv));
		OP(be->matmul(be, x, f, L->fc2_w, L->fc2_b, R, Dv, Iv, true));
		TRACE("vision_layer", l, x, R, Dv);
	}
	OP(be->layernorm(be, h, x, m->post_ln_w, m->post_ln_b, R, Dv, vc->layer_norm_eps));
	TRACE("vision_post_layernorm", -1, h, R, Dv);
	OP(be->matmul(be, *img, h, m->proj_w, m->proj_b, R, m->cfg.text.hidden_size,
				  Dv, false));
	TRACE("projector", -1, *img, R, m->cfg.text.hidden_size);
	return CP_OK;
}

/*
 * cp_model_forward
 *		See model.h.
 */
CpStatus
cp_model_forward(CpModel *m, int B, int T, const int32_t *ids,
				 const int *lens, const float *pixels, float *out,
				 CpCancelFn cancel, void *cancel_arg, CpError *err)
{
	CpBackend  *be = m->be;
	const CpTextConfig *tc = &m->cfg.text;
	int			D = tc->hidden_size,
				I = tc->intermediate_size,
				nh = tc->num_heads,
				nkv = tc->num_kv_heads,
				hd = tc->head_dim,
				E = m->cfg.embedding_dim;
	int			R = B * T;
	int			N = m->cfg.num_image_tokens;
	int			chunk = R < MLP_CHUNK_ROWS ? R : MLP_CHUNK_ROWS;
	float		normalizer = sqrtf((float) D);
	CpView		img = {0},
				x,
				h,
				q,
				k,
				v,
				a,
				gate,
				up,
				e;
	int			b,
				t,
				l,
				nimg = 0;
	CpStatus	st;

	if (B <= 0 || T <= 0)
		return cp_error(err, CP_ERR_INVALID_ARG, "empty batch (%d x %d)", B, T);
	if ((int64_t) B * T > (1 << 24))
		return cp_error(err, CP_ERR_LIMIT, "batch of %d x %d tokens is too large", B, T);
	for (b = 0; b < B; b++)
	{
		int			Lb = lens ? lens[b] : T;
		int			count = 0;

		if (Lb <= 0 || Lb > T)
			return cp_error(err, CP_ERR_INVALID_ARG,
							"sequence %d has length %d outside 1..%d", b, Lb, T);
		for (t = 0; t < T; t++)
		{
			int32_t		id = ids[(size_t) b * T + t];

			if (id < 0 || id >= tc->vocab_size)
				return cp_error(err, CP_ERR_INVALID_ARG,
								"token id %d outside the vocabulary of %d",
								id, tc->vocab_size);
			if (id == m->cfg.image_token_id && t < Lb)
				count++;
		}
		if (pixels != NULL && count != N)
			return cp_error(err, CP_ERR_INVALID_ARG,
							"sequence %d holds %d image tokens, the model needs %d",
							b, count, N);
		nimg += count;
	}

	/* image-token rows, in order: the k-th <image> of sequence b gets row b*N+k */
	if (pixels != NULL)
	{
		if (m->rows_n < nimg)
		{
			int		   *p = realloc(m->rows, sizeof(int) * nimg);

			if (p == NULL)
				return cp_error(err, CP_ERR_NOMEM, "out of memory");
			m->rows = p;
			m->rows_n = nimg;
		}
		nimg = 0;
		for (b = 0; b < B; b++)
			for (t = 0; t < (lens ? lens[b] : T); t++)
				if (ids[(size_t) b * T + t] == m->cfg.image_token_id)
					m->rows[nimg++] = b * T + t;
		st = vision_forward(m, B, pixels, &img, cancel, cancel_arg, err);
		if (st != CP_OK)
			return st;
	}

	WS(WS_X, (size_t) R * D, x);
	WS(WS_H, (size_t) R * D, h);
	WS(WS_Q, (size_t) R * nh * hd, q);
	WS(WS_K, (size_t) R * nkv * hd, k);
	WS(WS_V, (size_t) R * nkv * hd, v);
	WS(WS_A, (size_t) R * nh * hd, a);
	WS(WS_GATE, (size_t) chunk * I, gate);
	WS(WS_UP, (size_t) chunk * I, up);
	WS(WS_E, (size_t) R * E, e);

	/*
	 * Embeddings: table rows * sqrt(D) (Gemma's normalizer, fp32), then the
	 * image features as they are.  Older transformers divided the features
	 * by sqrt(D) and multiplied every row by sqrt(D) afterwards, the same
	 * up to rounding in fp32 (docs/encoder.md#text-embeddings); transformers 5 scales
	 * inside the embedding, as here.
	 */
	OP(be->embedding(be, x, m->embed, ids, R, D));
	OP(be->scale(be, x, (size_t) R * D, normalizer));
	if (pixels != NULL)
		OP(be->scatter_rows(be, x, img, m->rows, nimg, D, 1.0f));
	TRACE("text_inputs_embeds", -1, x, R, D);

	for (l = 0; l < tc->num_layers; l++)
	{
		CpTextLayer *L = &m->tl[l];
		int			r0;

		if (cancelled(cancel, cancel_arg))
			return cp_error(err, CP_ERR_CANCELLED, "encoding cancelled");
		OP(be->rmsnorm(be, h, x, L->in_norm, R, D, tc->rms_norm_eps));
		OP(be->matmul(be, q, h, L->q_w, NULL, R, nh * hd, D, false));
		OP(be->matmul(be, k, h, L->k_w, NULL, R, nkv * hd, D, false));
		OP(be->matmul(be, v, h, L->v_w, NULL, R, nkv * hd, D, false));
		OP(be->rope(be, q, B, T, nh, hd, tc->rope_theta, 1));
		OP(be->rope(be, k, B, T, nkv, hd, tc->rope_theta, 1));
		OP(be->attention(be, a, q, k, v, B, T, nh, nkv, hd,
						 1.0f / sqrtf((float) hd), lens, m->causal));
		OP(be->matmul(be, x, a, L->o_w, NULL, R, D, nh * hd, true));
		OP(be->rmsnorm(be, h, x, L->post_norm, R, D, tc->rms_norm_eps));
		for (r0 = 0; r0 < R; r0 += chunk)
		{
			int			rn = (R - r0 < chunk) ? R - r0 : chunk;
			CpView		hr = cp_view(h.buf, h.off + (size_t) r0 * D);
			CpView		xr = cp_view(x.buf, x.off + (size_t) r0 * D);

			OP(be->matmul(be, gate, hr, L->gate_w, NULL, rn, I, D, false));
			OP(be->matmul(be, up, hr, L->up_w, NULL, rn, I, D, false));
			OP(be->geglu(be, gate, gate, up, (size_t) rn * I));
			OP(be->matmul(be, xr, gate, L->down_w, NULL, rn, D, I, true));
		}
		TRACE("text_layer", l, x, R, D);
	}
	if (cancelled(cancel, cancel_arg))
		return cp_error(err, CP_ERR_CANCELLED, "encoding cancelled");
	OP(be->rmsnorm(be, h, x, m->final_norm, R, D, tc->rms_norm_eps));
	TRACE("text_final_norm", -1, h, R, D);
	OP(be->matmul(be, e, h, m->head_w, m->head_b, R, E, D, false));
	OP(be->l2norm(be, e, R, E));

	for (b = 0; b < B; b++)
	{
		int			Lb = lens ? lens[b] : T;
		float	   *ob = out + (size_t) b * T * E;

		OP(be->download(be, cp_view(e.buf, e.off + (size_t) b * T * E), ob,
						(size_t) Lb * E));
		if (Lb < T)
			memset(ob + (size_t) Lb * E, 0, sizeof(float) * (size_t) (T - Lb) * E);
	}
	return CP_OK;
}
