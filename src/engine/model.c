/*
 * model.c
 *	  The architecture-independent part of the model (docs/encoder.md#forward):
 *	  choosing the architecture, loading weights by candidate names, the
 *	  workspace, checking a batch's inputs, mapping the <image> tokens to
 *	  rows, token embeddings with image features scattered in, and
 *	  downloading the output rows.  The layers of an architecture are in a
 *	  file of its own (model_paligemma.c), written against the backend
 *	  operations of backend.h only: no arithmetic on tensor data happens
 *	  here either.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* Largest batch, in tokens (B * T). */
#define CP_MODEL_MAX_TOKENS (1 << 24)

/* ---------------------------------------------------------------------
 * Loading
 * --------------------------------------------------------------------- */

/*
 * cp_model_load_tensor
 *		See model_internal.h.
 */
CpStatus
cp_model_load_tensor(CpModel *m, const CpWeights *w, const char *const *cands,
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

		cp_format_shape(want, sizeof(want), ndim, shape);
		cp_format_shape(got, sizeof(got), t->ndim, t->shape);
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

/*
 * cp_model_free_buffers
 *		See model_internal.h.
 */
void
cp_model_free_buffers(CpBackend *be, CpBuf **bufs, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		be->free(be, bufs[i]);
		bufs[i] = NULL;
	}
}

/*
 * select_arch
 *		The architecture of a configuration (config.c sets it from
 *		config.json); NULL for a family without a model definition yet.
 */
static const CpArch *
select_arch(const CpModelConfig *cfg)
{
	if (cfg->arch == CP_ARCH_PALIGEMMA)
		return &cp_arch_paligemma;
	if (cfg->arch == CP_ARCH_QWEN2_VL || cfg->arch == CP_ARCH_QWEN2_5_VL)
		return &cp_arch_qwen2vl;
	return NULL;
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
	CpStatus	st;

	*out = NULL;
	m = calloc(1, sizeof(CpModel));
	if (m == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	m->cfg = *cfg;
	m->be = be;
	m->arch = select_arch(cfg);
	if (m->arch == NULL)
	{
		free(m);
		return cp_error(err, CP_ERR_UNSUPPORTED, "no model definition for the architecture of model_type \"%s\" yet",
						cfg->model_type);
	}
	m->causal = !cfg->bidirectional;
	st = m->arch->load(m, w, err);
	if (st != CP_OK)
	{
		cp_model_free(m);
		return st;
	}
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
	if (m == NULL)
		return;
	m->arch->free(m);
	cp_model_free_buffers(m->be, m->ws, CP_MODEL_MAX_WORKSPACE);
	free(m->image_rows);
	free(m);
}

/*
 * cp_model_set_causal
 *		Choose the text attention mask (colpali_engine.h CpAttentionMode).
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
 * Forward helpers
 * --------------------------------------------------------------------- */

/*
 * cp_model_workspace
 *		See model_internal.h.
 */
CpStatus
cp_model_workspace(CpModel *m, int slot, size_t n, CpView *v, CpError *err)
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

/*
 * check_inputs
 *		A batch the forward pass can run: sizes, lengths, ids inside the
 *		vocabulary, and with pixels exactly num_image_tokens <image> tokens
 *		per sequence.  *nimg gets the number of <image> tokens.
 */
static CpStatus
check_inputs(const CpModel *m, int B, int T, const int32_t *ids,
			 const int *lens, bool with_pixels, int *nimg, CpError *err)
{
	int			vocab = m->cfg.text.vocab_size;
	int			b,
				t;

	*nimg = 0;
	if (B <= 0 || T <= 0)
		return cp_error(err, CP_ERR_INVALID_ARG, "empty batch (%d x %d)", B, T);
	if ((int64_t) B * T > CP_MODEL_MAX_TOKENS)
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

			if (id < 0 || id >= vocab)
				return cp_error(err, CP_ERR_INVALID_ARG,
								"token id %d outside the vocabulary of %d",
								id, vocab);
			if (id == m->cfg.image_token_id && t < Lb)
				count++;
		}
		if (with_pixels && count != m->cfg.num_image_tokens)
			return cp_error(err, CP_ERR_INVALID_ARG,
							"sequence %d holds %d image tokens, the model needs %d",
							b, count, m->cfg.num_image_tokens);
		*nimg += count;
	}
	return CP_OK;
}

/*
 * map_image_rows
 *		The k-th <image> token of sequence b (within its length) gets image
 *		feature row b*N+k: record the flattened position of each.
 */
static CpStatus
map_image_rows(CpModel *m, int B, int T, const int32_t *ids, const int *lens,
			   int nimg, CpError *err)
{
	int			b,
				t,
				n = 0;

	if (m->image_rows_cap < nimg)
	{
		int		   *p = realloc(m->image_rows, sizeof(int) * nimg);

		if (p == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		m->image_rows = p;
		m->image_rows_cap = nimg;
	}
	for (b = 0; b < B; b++)
		for (t = 0; t < (lens ? lens[b] : T); t++)
			if (ids[(size_t) b * T + t] == m->cfg.image_token_id)
				m->image_rows[n++] = b * T + t;
	m->n_image_rows = n;
	return CP_OK;
}

/*
 * cp_model_embed_tokens
 *		See model_internal.h.
 */
CpStatus
cp_model_embed_tokens(CpModel *m, CpView x, CpBuf *table, const int32_t *ids,
					  int R, int D, float scale, const CpView *img, CpError *err)
{
	CpBackend  *be = m->be;

	CP_OP(be, be->embedding(be, x, table, ids, R, D));
	CP_OP(be, be->scale(be, x, (size_t) R * D, scale));
	if (img != NULL)
		CP_OP(be, be->scatter_rows(be, x, *img, m->image_rows, m->n_image_rows, D, 1.0f));
	return CP_OK;
}

/*
 * download_rows
 *		Each sequence's rows of e into out; rows past its length zero.
 */
static CpStatus
download_rows(CpModel *m, CpView e, int B, int T, const int *lens, float *out,
			  CpError *err)
{
	CpBackend  *be = m->be;
	int			E = m->cfg.embedding_dim;
	int			b;

	for (b = 0; b < B; b++)
	{
		int			Lb = lens ? lens[b] : T;
		float	   *ob = out + (size_t) b * T * E;

		CP_OP(be, be->download(be, cp_view(e.buf, e.off + (size_t) b * T * E), ob,
							   (size_t) Lb * E));
		if (Lb < T)
			memset(ob + (size_t) Lb * E, 0, sizeof(float) * (size_t) (T - Lb) * E);
	}
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
	CpView		e;
	int			nimg;
	CpStatus	st;

	st = check_inputs(m, B, T, ids, lens, pixels != NULL, &nimg, err);
	m->n_image_rows = 0;
	if (st == CP_OK && pixels != NULL)
		st = map_image_rows(m, B, T, ids, lens, nimg, err);
	if (st == CP_OK)
		st = m->arch->forward(m, B, T, ids, lens, pixels, &e, cancel, cancel_arg, err);
	if (st == CP_OK)
		st = download_rows(m, e, B, T, lens, out, err);
	return st;
}
