/*
 * model_paligemma.c
 *	  ColPali on PaliGemma (docs/encoder.md#forward): the SigLIP vision
 *	  tower, the projector, the Gemma decoder and the 128-d head, as a
 *	  sequence of backend operations.
 *
 *	  pixels -> im2col -> patch GEMM (+bias) -> + position embeddings
 *	  -> SigLIP pre-LN layers (MHA, no mask; GELU-tanh MLP) -> post-LN
 *	  -> projector (+bias) -> scattered into the rows of the <image> tokens
 *	  of embed_tokens[ids] * sqrt(hidden) -> Gemma layers (RMSNorm(1+w),
 *	  MQA with RoPE at positions 1..T, bidirectional, padding keys masked;
 *	  GeGLU MLP) -> final RMSNorm -> Linear(hidden, 128) + bias -> L2
 *	  normalisation.
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

#include "model_internal.h"

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

_Static_assert(WS_COUNT <= CP_MODEL_MAX_WORKSPACE, "too many workspace slots");

/*
 * Rows of the Gemma MLP computed at once (bounds the [rows, I] buffers).
 * The rows are split into chunks of equal size up to MLP_CHUNK_MAX_ROWS, so
 * that a batch of pages (1030 rows each) runs one chunk per page instead of
 * full chunks and a tail of a few rows, which would stream every MLP weight
 * once more for almost no work.
 */
#define MLP_CHUNK_MAX_ROWS 1088

/* The weights of the model (CpModel.arch_state). */
typedef struct PaliGemma
{
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
} PaliGemma;

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

#define ONE(s) ((const char *const[]) {s}), 1
#define LM(s) ((const char *const[]) {"language_model.model." s, "language_model." s}), 2
#define VIS(s) ((const char *const[]) {"vision_tower.vision_model." s, "vision_tower." s}), 2

/* Helpers declaring shapes inline. */
#define SHAPE1(a) 1, ((const int64_t[]) {(a)})
#define SHAPE2(a, b) 2, ((const int64_t[]) {(a), (b)})
#define SHAPE4(a, b, c, d) 4, ((const int64_t[]) {(a), (b), (c), (d)})

/* Load one weight; on failure return (pg_free releases what was loaded). */
#define LOAD(expr) do { CpStatus st_ = (expr); if (st_ != CP_OK) return st_; } while (0)

/*
 * pg_free
 *		Release the weights (any of them may be missing).
 */
static void
pg_free(CpModel *m)
{
	PaliGemma  *pg = m->arch_state;
	CpBackend  *be = m->be;
	int			l;

	if (pg == NULL)
		return;
	if (pg->vl)
		for (l = 0; l < m->cfg.vision.num_layers; l++)
			cp_model_free_buffers(be, (CpBuf **) &pg->vl[l],
								  sizeof(CpVisionLayer) / sizeof(CpBuf *));
	if (pg->tl)
		for (l = 0; l < m->cfg.text.num_layers; l++)
			cp_model_free_buffers(be, (CpBuf **) &pg->tl[l],
								  sizeof(CpTextLayer) / sizeof(CpBuf *));
	be->free(be, pg->patch_w);
	be->free(be, pg->patch_b);
	be->free(be, pg->pos_emb);
	be->free(be, pg->post_ln_w);
	be->free(be, pg->post_ln_b);
	be->free(be, pg->proj_w);
	be->free(be, pg->proj_b);
	be->free(be, pg->embed);
	be->free(be, pg->final_norm);
	be->free(be, pg->head_w);
	be->free(be, pg->head_b);
	free(pg->vl);
	free(pg->tl);
	free(pg);
	m->arch_state = NULL;
}

/*
 * pg_load
 *		Check the configuration, then find, check and upload every weight.
 */
static CpStatus
pg_load(CpModel *m, const CpWeights *w, CpError *err)
{
	const CpModelConfig *cfg = &m->cfg;
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
	PaliGemma  *pg;
	int			l;
	CpStatus	st;

	st = check_config(cfg, err);
	if (st != CP_OK)
		return st;
	pg = calloc(1, sizeof(PaliGemma));
	if (pg == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	m->arch_state = pg;
	pg->vl = calloc(vc->num_layers > 0 ? vc->num_layers : 1, sizeof(CpVisionLayer));
	pg->tl = calloc(tc->num_layers > 0 ? tc->num_layers : 1, sizeof(CpTextLayer));
	if (pg->vl == NULL || pg->tl == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");

	/* vision tower */
	LOAD(cp_model_load_tensor(m, w, VIS("embeddings.patch_embedding.weight"), 0,
					SHAPE4(Dv, C, P, P), CP_WEIGHT_MATRIX, &pg->patch_w, err));
	LOAD(cp_model_load_tensor(m, w, VIS("embeddings.patch_embedding.bias"), 0,
					SHAPE1(Dv), CP_WEIGHT_VECTOR, &pg->patch_b, err));
	LOAD(cp_model_load_tensor(m, w, VIS("embeddings.position_embedding.weight"), 0,
					SHAPE2(vc->num_patches, Dv), CP_WEIGHT_VECTOR, &pg->pos_emb, err));
	for (l = 0; l < vc->num_layers; l++)
	{
		CpVisionLayer *L = &pg->vl[l];

#define VL(field, suffix, kind, ...) \
		LOAD(cp_model_load_tensor(m, w, VIS("encoder.layers.%d." suffix), l, \
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
	LOAD(cp_model_load_tensor(m, w, VIS("post_layernorm.weight"), 0,
					SHAPE1(Dv), CP_WEIGHT_VECTOR, &pg->post_ln_w, err));
	LOAD(cp_model_load_tensor(m, w, VIS("post_layernorm.bias"), 0,
					SHAPE1(Dv), CP_WEIGHT_VECTOR, &pg->post_ln_b, err));

	/* projector */
	LOAD(cp_model_load_tensor(m, w, ONE("multi_modal_projector.linear.weight"), 0,
					SHAPE2(D, Dv), CP_WEIGHT_MATRIX, &pg->proj_w, err));
	LOAD(cp_model_load_tensor(m, w, ONE("multi_modal_projector.linear.bias"), 0,
					SHAPE1(D), CP_WEIGHT_VECTOR, &pg->proj_b, err));

	/* language model */
	LOAD(cp_model_load_tensor(m, w, LM("embed_tokens.weight"), 0,
					SHAPE2(tc->vocab_size, D), CP_WEIGHT_TABLE, &pg->embed, err));
	for (l = 0; l < tc->num_layers; l++)
	{
		CpTextLayer *L = &pg->tl[l];

#define TL(field, suffix, kind, ...) \
		LOAD(cp_model_load_tensor(m, w, LM("layers.%d." suffix), l, __VA_ARGS__, kind, \
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
	LOAD(cp_model_load_tensor(m, w, LM("norm.weight"), 0, SHAPE1(D), CP_WEIGHT_VECTOR,
					&pg->final_norm, err));

	/* head: HF-native name first, colpali-engine name second */
	LOAD(cp_model_load_tensor(m, w, ((const char *const[]) {"embedding_proj_layer.weight",
					"custom_text_proj.weight"}), 2, 0, SHAPE2(E, D),
					CP_WEIGHT_MATRIX, &pg->head_w, err));
	LOAD(cp_model_load_tensor(m, w, ((const char *const[]) {"embedding_proj_layer.bias",
					"custom_text_proj.bias"}), 2, 0, SHAPE1(E),
					CP_WEIGHT_VECTOR, &pg->head_b, err));

	return CP_OK;
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
	PaliGemma  *pg = m->arch_state;
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

	CP_WORKSPACE(m, WS_PIX, (size_t) B * C * H * H, pix);
	CP_WORKSPACE(m, WS_COLS, (size_t) R * C * P * P, cols);
	CP_WORKSPACE(m, WS_XV, (size_t) R * Dv, x);
	CP_WORKSPACE(m, WS_HV, (size_t) R * Dv, h);
	CP_WORKSPACE(m, WS_QV, (size_t) R * Dv, q);
	CP_WORKSPACE(m, WS_KV, (size_t) R * Dv, k);
	CP_WORKSPACE(m, WS_VV, (size_t) R * Dv, v);
	CP_WORKSPACE(m, WS_AV, (size_t) R * Dv, a);
	CP_WORKSPACE(m, WS_FV, (size_t) R * Iv, f);
	CP_WORKSPACE(m, WS_IMG, (size_t) R * m->cfg.text.hidden_size, *img);

	/* patch embedding as im2col + GEMM, then absolute positions */
	CP_OP(be, be->upload(be, pix, pixels, (size_t) B * C * H * H));
	CP_OP(be, be->im2col(be, cols, pix, B, C, H, H, P));
	CP_OP(be, be->matmul(be, x, cols, pg->patch_w, pg->patch_b, R, Dv, C * P * P, false));
	CP_OP(be, be->add_rows(be, x, pg->pos_emb, R, N, Dv));
	CP_TRACE(m, "vision_embeddings", -1, x, R, Dv);

	for (l = 0; l < vc->num_layers; l++)
	{
		CpVisionLayer *L = &pg->vl[l];

		if (cp_model_cancelled(cancel, cancel_arg))
			return cp_error(err, CP_ERR_CANCELLED, "encoding cancelled");
		CP_OP(be, be->layernorm(be, h, x, L->ln1_w, L->ln1_b, R, Dv, vc->layer_norm_eps));
		{
			CpView		qkv[3] = {q, k, v};
			CpBuf	   *qkv_w[3] = {L->q_w, L->k_w, L->v_w};
			CpBuf	   *qkv_b[3] = {L->q_b, L->k_b, L->v_b};
			int			qkv_n[3] = {Dv, Dv, Dv};

			CP_OP(be, cp_backend_matmul_shared(be, 3, qkv, h, qkv_w, qkv_b, R,
											   qkv_n, Dv));
		}
		CP_OP(be, be->attention(be, a, q, k, v, B, N, vc->num_heads, vc->num_heads,
								vc->head_dim, scale, NULL, false));
		CP_OP(be, be->matmul(be, x, a, L->o_w, L->o_b, R, Dv, Dv, true));
		CP_OP(be, be->layernorm(be, h, x, L->ln2_w, L->ln2_b, R, Dv, vc->layer_norm_eps));
		CP_OP(be, be->matmul(be, f, h, L->fc1_w, L->fc1_b, R, Iv, Dv, false));
		CP_OP(be, cp_backend_act_matmul(be, x, f, f, CP_FUSED_GELU_TANH, L->fc2_w,
										L->fc2_b, R, Dv, Iv, true));
		CP_TRACE(m, "vision_layer", l, x, R, Dv);
	}
	CP_OP(be, be->layernorm(be, h, x, pg->post_ln_w, pg->post_ln_b, R, Dv, vc->layer_norm_eps));
	CP_TRACE(m, "vision_post_layernorm", -1, h, R, Dv);
	CP_OP(be, be->matmul(be, *img, h, pg->proj_w, pg->proj_b, R, m->cfg.text.hidden_size,
						 Dv, false));
	CP_TRACE(m, "projector", -1, *img, R, m->cfg.text.hidden_size);
	return CP_OK;
}

/*
 * pg_forward
 *		The text decoder over the embeddings (image features scattered in)
 *		and the head: see CpArch in model_internal.h.
 */
static CpStatus
pg_forward(CpModel *m, int B, int T, const int32_t *ids, const int *lens,
		   const float *pixels, CpView *emb, CpCancelFn cancel,
		   void *cancel_arg, CpError *err)
{
	CpBackend  *be = m->be;
	PaliGemma  *pg = m->arch_state;
	const CpTextConfig *tc = &m->cfg.text;
	int			D = tc->hidden_size,
				I = tc->intermediate_size,
				nh = tc->num_heads,
				nkv = tc->num_kv_heads,
				hd = tc->head_dim,
				E = m->cfg.embedding_dim;
	int			R = B * T;
	int			nchunks = R > MLP_CHUNK_MAX_ROWS ? (R + MLP_CHUNK_MAX_ROWS - 1) / MLP_CHUNK_MAX_ROWS : 1;
	int			chunk = (R + nchunks - 1) / nchunks;
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
	int			l;
	CpStatus	st;

	if (pixels != NULL)
	{
		st = vision_forward(m, B, pixels, &img, cancel, cancel_arg, err);
		if (st != CP_OK)
			return st;
	}

	CP_WORKSPACE(m, WS_X, (size_t) R * D, x);
	CP_WORKSPACE(m, WS_H, (size_t) R * D, h);
	CP_WORKSPACE(m, WS_Q, (size_t) R * nh * hd, q);
	CP_WORKSPACE(m, WS_K, (size_t) R * nkv * hd, k);
	CP_WORKSPACE(m, WS_V, (size_t) R * nkv * hd, v);
	CP_WORKSPACE(m, WS_A, (size_t) R * nh * hd, a);
	CP_WORKSPACE(m, WS_GATE, (size_t) chunk * I, gate);
	CP_WORKSPACE(m, WS_UP, (size_t) chunk * I, up);
	CP_WORKSPACE(m, WS_E, (size_t) R * E, e);

	/*
	 * Embeddings: table rows * sqrt(D) (Gemma's normalizer, fp32), then the
	 * image features as they are.  Older transformers divided the features
	 * by sqrt(D) and multiplied every row by sqrt(D) afterwards, the same
	 * up to rounding in fp32 (docs/encoder.md#text-embeddings); transformers
	 * 5 scales inside the embedding, as here.
	 */
	st = cp_model_embed_tokens(m, x, pg->embed, ids, R, D, normalizer,
							   pixels != NULL ? &img : NULL, err);
	if (st != CP_OK)
		return st;
	CP_TRACE(m, "text_inputs_embeds", -1, x, R, D);

	for (l = 0; l < tc->num_layers; l++)
	{
		CpTextLayer *L = &pg->tl[l];
		int			r0;

		if (cp_model_cancelled(cancel, cancel_arg))
			return cp_error(err, CP_ERR_CANCELLED, "encoding cancelled");
		CP_OP(be, be->rmsnorm(be, h, x, L->in_norm, R, D, tc->rms_norm_eps));
		{
			CpView		qkv[3] = {q, k, v};
			CpBuf	   *qkv_w[3] = {L->q_w, L->k_w, L->v_w};
			CpBuf	   *no_bias[3] = {NULL, NULL, NULL};
			int			qkv_n[3] = {nh * hd, nkv * hd, nkv * hd};

			CP_OP(be, cp_backend_matmul_shared(be, 3, qkv, h, qkv_w, no_bias, R,
											   qkv_n, D));
		}
		CP_OP(be, be->rope(be, q, B, T, nh, hd, tc->rope_theta, 1));
		CP_OP(be, be->rope(be, k, B, T, nkv, hd, tc->rope_theta, 1));
		CP_OP(be, be->attention(be, a, q, k, v, B, T, nh, nkv, hd,
								1.0f / sqrtf((float) hd), lens, m->causal));
		CP_OP(be, be->matmul(be, x, a, L->o_w, NULL, R, D, nh * hd, true));
		CP_OP(be, be->rmsnorm(be, h, x, L->post_norm, R, D, tc->rms_norm_eps));
		for (r0 = 0; r0 < R; r0 += chunk)
		{
			int			rn = (R - r0 < chunk) ? R - r0 : chunk;
			CpView		hr = cp_view(h.buf, h.off + (size_t) r0 * D);
			CpView		xr = cp_view(x.buf, x.off + (size_t) r0 * D);

			CP_OP(be, cp_backend_geglu_mlp(be, xr, hr, gate, up, L->gate_w,
										   L->up_w, L->down_w, rn, I, D));
		}
		CP_TRACE(m, "text_layer", l, x, R, D);
	}
	if (cp_model_cancelled(cancel, cancel_arg))
		return cp_error(err, CP_ERR_CANCELLED, "encoding cancelled");
	CP_OP(be, be->rmsnorm(be, h, x, pg->final_norm, R, D, tc->rms_norm_eps));
	CP_TRACE(m, "text_final_norm", -1, h, R, D);
	CP_OP(be, be->matmul(be, e, h, pg->head_w, pg->head_b, R, E, D, false));
	CP_OP(be, be->l2norm(be, e, R, E));

	*emb = e;
	return CP_OK;
}

const CpArch cp_arch_paligemma = {
	.name = "paligemma",
	.load = pg_load,
	.free = pg_free,
	.forward = pg_forward,
};
