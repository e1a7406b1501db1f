/*
 * prompt.h
 *	  The token ids of the prompts a model encodes (docs/encoder.md#prompts),
 *	  one implementation per architecture (prompt_paligemma.c,
 *	  prompt_qwen2.c).
 */
#ifndef CP_PROMPT_H
#define CP_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "colpali_engine.h"
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

/*
 * ColQwen2 / ColQwen2.5 prompts (docs/encoder.md#colqwen2-prompts), as
 * colpali-engine's ColQwen2Processor builds them.  *ids malloc'd.
 *	page:  "<|im_start|>user\n<|vision_start|>" + n_image_tokens x
 *		   image_token_id + "<|vision_end|>" + visual_prompt_prefix +
 *		   "<|im_end|><|endoftext|>"
 *	query: query_prefix + text + query_augmentation_tokens x
 *		   query_augmentation_token ("Query: " and 10 x "<|endoftext|>" by
 *		   default: the training format)
 * The tokenizer's <|image_pad|> must be image_token_id (CP_ERR_SHAPE); a
 * query containing "<|image_pad|>" is refused (CP_ERR_INVALID_ARG), as the
 * reference refuses it.
 */
extern CpStatus cp_build_qwen_image_prompt(const CpTokenizer *tok,
										   const CpModelConfig *cfg,
										   int n_image_tokens, int32_t **ids,
										   int *n_ids, CpError *err);
extern CpStatus cp_build_qwen_query_prompt(const CpTokenizer *tok,
										   const CpModelConfig *cfg,
										   const char *text, size_t len,
										   int32_t **ids, int *n_ids,
										   CpError *err);

/*
 * Apply the prompt formats chosen in CpEngineOptions to cfg->prompt (which
 * holds the checkpoint's prompt settings on entry) and describe them in
 * query_desc / page_desc (docs/encoder.md#prompt-formats; prompt_format.c).
 * Until it is called (cp_config_load leaves query_before / query_after
 * empty and page_bos 0) the builders use the trained format.
 */
extern CpStatus cp_prompt_apply_format(CpModelConfig *cfg,
									   CpPromptFormat query_format,
									   const char *custom_prefix,
									   const char *custom_suffix,
									   CpPromptFormat page_format,
									   const char *page_prompt,
									   char *query_desc, char *page_desc,
									   size_t desc_size, CpError *err);

/*
 * The text of a query prompt for cfg's format: query_before + text +
 * query_after, malloc'd and NUL-terminated (the trained format when
 * cp_prompt_apply_format was not called).
 */
extern CpStatus cp_query_prompt_text(const CpModelConfig *cfg, const char *text,
									 size_t len, char **out, size_t *out_len,
									 CpError *err);

/*
 * 3-D M-RoPE positions of one sequence (docs/encoder.md#colqwen2-positions)
 * into pos[3 * n] (rows t, h, w): text counts up; the one contiguous run of
 * image_token_id at s gets (s, s + i, s + j) over the merged grid
 * (grid / merge_size, row-major); text after it resumes at
 * s + max(merged h, merged w).  No image: 0..n-1 on all three rows.
 */
extern CpStatus cp_qwen_position_ids(const int32_t *ids, int n,
									 int32_t image_token_id, int grid_h,
									 int grid_w, int merge_size, int32_t *pos,
									 CpError *err);

#endif							/* CP_PROMPT_H */
