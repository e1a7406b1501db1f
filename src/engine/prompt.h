/*
 * prompt.h
 *	  The token ids of the prompts a model encodes (docs/encoder.md#prompts),
 *	  one implementation per architecture (prompt_paligemma.c).
 */
#ifndef CP_PROMPT_H
#define CP_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "cp_status.h"
#include "tokenizer.h"

/*
 * ColPali prompts (docs/encoder.md#page-prompt and #query-prompt), as transformers'
 * ColPaliProcessor builds them.  *ids malloc'd.
 *	page:  num_image_tokens x image_token_id, then the tokens of
 *		   "<bos>" + visual_prompt_prefix + "\n"
 *	query: tokens of "<bos>" + query_prefix + text +
 *		   query_augmentation_tokens x query_augmentation_token + "\n"
 * (prefixes and the augmentation token from CpModelConfig.prompt).  The
 * tokenizer must know "<bos>" (else CP_ERR_FORMAT); if it knows "<image>",
 * its id must equal cfg->image_token_id (else CP_ERR_SHAPE).  Invalid UTF-8
 * in text -> CP_ERR_FORMAT.  Like HF, special-token strings inside the query
 * text ("<pad>", "<image>", ...) become those tokens; no length limit is
 * applied here (the caller checks n_ids).
 */
extern CpStatus cp_build_image_prompt(const CpTokenizer *tok,
									  const CpModelConfig *cfg,
									  int32_t **ids, int *n_ids, CpError *err);
extern CpStatus cp_build_query_prompt(const CpTokenizer *tok,
									  const CpModelConfig *cfg,
									  const char *text, size_t len,
									  int32_t **ids, int *n_ids, CpError *err);

#endif							/* CP_PROMPT_H */
