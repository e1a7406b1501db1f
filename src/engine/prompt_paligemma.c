/*
 * prompt_paligemma.c
 *	  The prompts of ColPali on PaliGemma, as transformers'
 *	  ColPaliProcessor builds them (docs/encoder.md#page-prompt and
 *	  #query-prompt).  Another architecture gets a prompt_*.c of its own.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prompt.h"
#include "tokenizer_internal.h"

/* ---------------------------------------------------------------------
 * ColPali prompts
 * --------------------------------------------------------------------- */

/*
 * encode_str
 *		Encode a NUL-terminated-or-sized string built by the prompt code.
 */
static CpStatus
encode_cstr(const CpTokenizer *tok, const CpStr *s, int32_t **ids, int *n, CpError *err)
{
	return cp_tokenizer_encode(tok, s->s ? s->s : "", s->n, 0, ids, n, err);
}

/*
 * cp_build_image_prompt
 *		<image> x N, then the tokens of "<bos>" + visual_prompt_prefix + "\n"
 *		(ColPaliProcessor: image_token * image_seq_length + bos_token +
 *		visual_prompt_prefix + "\n"; <image> is an added token, so encoding
 *		the rest separately gives the same ids).
 */
CpStatus
cp_build_image_prompt(const CpTokenizer *tok, const CpModelConfig *cfg,
					  int32_t **ids, int *n_ids, CpError *err)
{
	CpStr		s = {0};
	int32_t    *tail = NULL;
	int			ntail = 0;
	int32_t    *res;
	int32_t		img;
	CpStatus	st;
	int			n;
	int			i;

	*ids = NULL;
	*n_ids = 0;
	if (tok == NULL || cfg == NULL)
		return cp_error(err, CP_ERR_INVALID_ARG, "no tokenizer or configuration given");
	n = cfg->num_image_tokens;
	if (n <= 0 || n > (1 << 20))
		return cp_error(err, CP_ERR_SHAPE, "invalid number of image tokens %d", n);
	img = cp_tokenizer_token_id(tok, "<image>");
	if (img >= 0 && img != cfg->image_token_id)
		return cp_error(err, CP_ERR_SHAPE, "tokenizer's <image> id %d differs from the model's image_token_index %d",
						img, cfg->image_token_id);
	if (cp_tokenizer_token_id(tok, "<bos>") < 0)
		return cp_error(err, CP_ERR_FORMAT, "tokenizer has no <bos> token");
	if (!cp_str_append(&s, "<bos>", 5) ||
		(cfg->prompt.format_set && cfg->prompt.page_bos == 2 &&
		 !cp_str_append(&s, "<bos>", 5)) ||
		!cp_str_append(&s, cfg->prompt.visual_prompt_prefix, strlen(cfg->prompt.visual_prompt_prefix)) ||
		!cp_str_append(&s, "\n", 1))
	{
		free(s.s);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	st = encode_cstr(tok, &s, &tail, &ntail, err);
	free(s.s);
	if (st != CP_OK)
		return st;
	res = malloc(((size_t) n + ntail) * sizeof(int32_t));
	if (res == NULL)
	{
		free(tail);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < n; i++)
		res[i] = cfg->image_token_id;
	memcpy(res + n, tail, (size_t) ntail * sizeof(int32_t));
	free(tail);
	*ids = res;
	*n_ids = n + ntail;
	return CP_OK;
}

/*
 * cp_build_query_prompt
 *		Tokens of the query prompt of the chosen format
 *		(docs/encoder.md#prompt-formats; by default "<bos>" + query_prefix +
 *		text + augmentation x k + "\n", as transformers' ColPaliProcessor and
 *		the training collator build it).
 */
CpStatus
cp_build_query_prompt(const CpTokenizer *tok, const CpModelConfig *cfg,
					  const char *text, size_t len,
					  int32_t **ids, int *n_ids, CpError *err)
{
	char	   *buf = NULL;
	size_t		total = 0;
	CpStatus	st;

	*ids = NULL;
	*n_ids = 0;
	if (tok == NULL || cfg == NULL || (text == NULL && len > 0))
		return cp_error(err, CP_ERR_INVALID_ARG, "no tokenizer, configuration or text given");
	if (cp_tokenizer_token_id(tok, "<bos>") < 0)
		return cp_error(err, CP_ERR_FORMAT, "tokenizer has no <bos> token");
	/* report bad bytes at their offset in the caller's text */
	{
		long		bad = cp_utf8_validate(text ? text : "", len);

		if (bad >= 0)
			return cp_error(err, CP_ERR_FORMAT, "query text is not valid UTF-8 (byte %ld)", bad);
	}
	if (cfg->prompt.query_augmentation_tokens < 0 || cfg->prompt.query_augmentation_tokens > 4096)
		return cp_error(err, CP_ERR_INVALID_ARG, "invalid number of query augmentation tokens");
	st = cp_query_prompt_text(cfg, text ? text : "", len, &buf, &total, err);
	if (st != CP_OK)
		return st;
	st = cp_tokenizer_encode(tok, buf, total, 0, ids, n_ids, err);
	free(buf);
	return st;
}
