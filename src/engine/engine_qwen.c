/*
 * engine_qwen.c
 *	  cp_engine_encode_images / cp_engine_encode_queries for ColQwen2 and
 *	  ColQwen2.5 (docs/encoder.md section 7): each page gets its own
 *	  smart_resize grid, prompt and positions, so pages and queries are
 *	  encoded one at a time through cp_qwen_model_encode (batching them is
 *	  future work).
 */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "image_qwen.h"
#include "model_qwen2vl.h"
#include "prompt.h"

/*
 * encode_one
 *		ids (+ page pixels) -> a fresh embedding of every prompt row.
 */
static CpStatus
encode_one(CpEngine *e, const int32_t *ids, int n, const float *pixels, int gh,
		   int gw, CpEmbedding *out, CpError *err)
{
	int			E = e->cfg.embedding_dim;
	CpStatus	st;

	out->data = malloc(sizeof(float) * (size_t) n * E);
	if (out->data == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	st = cp_qwen_model_encode(e->model, ids, n, pixels, gh, gw, out->data,
							  e->cancel, e->cancel_arg, err);
	if (st != CP_OK)
	{
		free(out->data);
		out->data = NULL;
		return st;
	}
	out->nvec = n;
	out->dim = E;
	return CP_OK;
}

/*
 * cp_engine_qwen_encode_images
 *		See engine_internal.h.
 */
CpStatus
cp_engine_qwen_encode_images(CpEngine *e, int n, const uint8_t *const *bytes,
							 const size_t *lengths, CpEmbedding *out,
							 CpError *err)
{
	int			i;
	CpStatus	st = CP_OK;

	memset(out, 0, sizeof(CpEmbedding) * n);
	for (i = 0; i < n && st == CP_OK; i++)
	{
		float	   *px = NULL;
		int32_t    *ids = NULL;
		int			gh = 0,
					gw = 0,
					len = 0;

		st = cp_qwen_image_preprocess(bytes[i], lengths[i], &e->cfg.qwen.image,
									  e->max_image_pixels, &px, &gh, &gw, err);
		if (st == CP_OK)
			st = cp_build_qwen_image_prompt(e->tok, &e->cfg, gh * gw / 4, &ids, &len, err);
		if (st == CP_OK)
			st = encode_one(e, ids, len, px, gh, gw, &out[i], err);
		free(px);
		free(ids);
	}
	if (st != CP_OK)
		for (i = 0; i < n; i++)
			cp_embedding_free(&out[i]);
	return st;
}

/*
 * cp_engine_qwen_encode_queries
 *		See engine_internal.h.
 */
CpStatus
cp_engine_qwen_encode_queries(CpEngine *e, int n, const char *const *texts,
							  CpEmbedding *out, CpError *err)
{
	int			i;
	CpStatus	st = CP_OK;

	memset(out, 0, sizeof(CpEmbedding) * n);
	for (i = 0; i < n && st == CP_OK; i++)
	{
		int32_t    *ids = NULL;
		int			len = 0;

		if (texts[i] == NULL)
		{
			st = cp_error(err, CP_ERR_INVALID_ARG, "query %d is NULL", i);
			break;
		}
		st = cp_build_qwen_query_prompt(e->tok, &e->cfg, texts[i], strlen(texts[i]), &ids, &len, err);
		if (st == CP_OK && len > CP_MAX_QUERY_TOKENS)
			st = cp_error(err, CP_ERR_LIMIT, "query of %d tokens is longer than the limit of %d tokens",
						  len, CP_MAX_QUERY_TOKENS);
		else if (st == CP_OK && len <= 0)
			st = cp_error(err, CP_ERR_INVALID_ARG, "query %d has no tokens", i);
		if (st == CP_OK)
			st = encode_one(e, ids, len, NULL, 0, 0, &out[i], err);
		free(ids);
	}
	if (st != CP_OK)
		for (i = 0; i < n; i++)
			cp_embedding_free(&out[i]);
	return st;
}
