/*
 * prompt_qwen2.c
 *	  The prompts of ColQwen2 / ColQwen2.5 as colpali-engine's processors
 *	  build them (docs/encoder.md#colqwen2-prompts), and their 3-D M-RoPE
 *	  position ids (docs/encoder.md#colqwen2-positions).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prompt.h"

#define QWEN_IMAGE_PAD "<|image_pad|>"

/*
 * append_ids
 *		Tokenize text and append its ids to *ids (grown with realloc).
 */
static CpStatus
append_ids(const CpTokenizer *tok, const char *text, size_t len,
		   int32_t **ids, int *n, CpError *err)
{
	int32_t    *got = NULL;
	int			ngot = 0;
	int32_t    *grown;
	CpStatus	st;

	st = cp_tokenizer_encode(tok, text, len, 0, &got, &ngot, err);
	if (st != CP_OK)
		return st;
	grown = realloc(*ids, sizeof(int32_t) * ((size_t) *n + ngot + 1));
	if (grown == NULL)
	{
		free(got);
		return cp_error(err, CP_ERR_NOMEM, "out of memory building a prompt");
	}
	memcpy(grown + *n, got, sizeof(int32_t) * ngot);
	*ids = grown;
	*n += ngot;
	free(got);
	return CP_OK;
}

/*
 * check_image_token
 *		The tokenizer's <|image_pad|> must be the config's image_token_id.
 */
static CpStatus
check_image_token(const CpTokenizer *tok, const CpModelConfig *cfg, CpError *err)
{
	int32_t		id = cp_tokenizer_token_id(tok, QWEN_IMAGE_PAD);

	if (id != cfg->image_token_id)
		return cp_error(err, CP_ERR_SHAPE, "tokenizer.json gives " QWEN_IMAGE_PAD " id %d but config.json says image_token_id %d",
						id, cfg->image_token_id);
	return CP_OK;
}

/*
 * cp_build_qwen_image_prompt
 *		See prompt.h.  Special tokens split the text before BPE, so the
 *		pieces around the image pads tokenize as the whole string would.
 */
CpStatus
cp_build_qwen_image_prompt(const CpTokenizer *tok, const CpModelConfig *cfg,
						   int n_image_tokens, int32_t **ids, int *n_ids,
						   CpError *err)
{
	static const char head[] = "<|im_start|>user\n<|vision_start|>";
	char		tail[512];
	int			tl;
	int32_t    *out = NULL;
	int			n = 0;
	int32_t    *grown;
	CpStatus	st;
	int			i;

	*ids = NULL;
	*n_ids = 0;
	st = check_image_token(tok, cfg, err);
	if (st != CP_OK)
		return st;
	if (n_image_tokens <= 0 || n_image_tokens > (1 << 20))
		return cp_error(err, CP_ERR_INVALID_ARG, "%d image tokens", n_image_tokens);
	tl = snprintf(tail, sizeof(tail), "<|vision_end|>%s<|im_end|><|endoftext|>", cfg->prompt.visual_prompt_prefix);
	if (tl < 0 || tl >= (int) sizeof(tail))
		return cp_error(err, CP_ERR_LIMIT, "visual prompt prefix too long");
	st = append_ids(tok, head, strlen(head), &out, &n, err);
	if (st == CP_OK)
	{
		grown = realloc(out, sizeof(int32_t) * ((size_t) n + n_image_tokens + 1));
		if (grown == NULL)
			st = cp_error(err, CP_ERR_NOMEM, "out of memory building a prompt");
		else
		{
			out = grown;
			for (i = 0; i < n_image_tokens; i++)
				out[n++] = cfg->image_token_id;
		}
	}
	if (st == CP_OK)
		st = append_ids(tok, tail, (size_t) tl, &out, &n, err);
	if (st != CP_OK)
	{
		free(out);
		return st;
	}
	*ids = out;
	*n_ids = n;
	return CP_OK;
}

/*
 * cp_build_qwen_query_prompt
 *		See prompt.h.
 */
CpStatus
cp_build_qwen_query_prompt(const CpTokenizer *tok, const CpModelConfig *cfg,
						   const char *text, size_t len, int32_t **ids,
						   int *n_ids, CpError *err)
{
	char	   *buf = NULL;
	size_t		total = 0;
	size_t		i;
	CpStatus	st;

	*ids = NULL;
	*n_ids = 0;
	if (text == NULL && len > 0)
		return cp_error(err, CP_ERR_INVALID_ARG, "no query text");
	/* the reference refuses it: more image tokens than images */
	for (i = 0; i + strlen(QWEN_IMAGE_PAD) <= len; i++)
		if (memcmp(text + i, QWEN_IMAGE_PAD, strlen(QWEN_IMAGE_PAD)) == 0)
			return cp_error(err, CP_ERR_INVALID_ARG, "a query must not contain the image placeholder token " QWEN_IMAGE_PAD);
	st = cp_query_prompt_text(cfg, text ? text : "", len, &buf, &total, err);
	if (st != CP_OK)
		return st;
	st = cp_tokenizer_encode(tok, buf, total, 0, ids, n_ids, err);
	free(buf);
	return st;
}

/*
 * cp_qwen_position_ids
 *		See prompt.h.  Mirrors Qwen2-VL's get_rope_index for one sequence
 *		with at most one image.
 */
CpStatus
cp_qwen_position_ids(const int32_t *ids, int n, int32_t image_token_id,
					 int grid_h, int grid_w, int merge_size, int32_t *pos,
					 CpError *err)
{
	int			start = -1;
	int			count = 0;
	int			mh;
	int			mw;
	int			i;
	int			next;

	for (i = 0; i < n; i++)
		if (ids[i] == image_token_id)
		{
			if (start < 0)
				start = i;
			else if (ids[i - 1] != image_token_id)
				return cp_error(err, CP_ERR_INVALID_ARG, "the image tokens of a sequence are not contiguous");
			count++;
		}
	if (start < 0)
	{
		for (i = 0; i < n; i++)
			pos[i] = pos[n + i] = pos[2 * n + i] = i;
		return CP_OK;
	}
	if (merge_size <= 0 || grid_h % merge_size != 0 || grid_w % merge_size != 0)
		return cp_error(err, CP_ERR_INVALID_ARG, "grid %dx%d is not a multiple of the merge size %d",
						grid_h, grid_w, merge_size);
	mh = grid_h / merge_size;
	mw = grid_w / merge_size;
	if (count != mh * mw)
		return cp_error(err, CP_ERR_INVALID_ARG, "%d image tokens for a merged grid of %dx%d", count, mh, mw);
	for (i = 0; i < start; i++)
		pos[i] = pos[n + i] = pos[2 * n + i] = i;
	for (i = 0; i < count; i++)
	{
		pos[start + i] = start;
		pos[n + start + i] = start + i / mw;
		pos[2 * n + start + i] = start + i % mw;
	}
	next = start + (mh > mw ? mh : mw);
	for (i = start + count; i < n; i++, next++)
		pos[i] = pos[n + i] = pos[2 * n + i] = next;
	return CP_OK;
}
