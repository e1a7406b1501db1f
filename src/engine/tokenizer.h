/*
 * tokenizer.h
 *	  Gemma tokenizer read from tokenizer.json (HF tokenizers format):
 *	  added/special tokens split first, normalizer (space -> U+2581), BPE by
 *	  merge rank, byte fallback (<0xNN>).  Ids identical to HF tokenizers.
 *	  Also builds the ColPali prompts (encoder.md section 1).
 */
#ifndef CP_TOKENIZER_H
#define CP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "cp_status.h"

typedef struct CpTokenizer CpTokenizer;

extern CpStatus cp_tokenizer_load(const char *tokenizer_json_path,
								  CpTokenizer **out, CpError *err);
/* Same, from a JSON document in memory (fuzz harness, tests). */
extern CpStatus cp_tokenizer_load_from_memory(const char *json, size_t len,
											  CpTokenizer **out, CpError *err);
extern void cp_tokenizer_free(CpTokenizer *tok);

/*
 * Encode UTF-8 text without adding special tokens (like
 * tokenizer(text, add_special_tokens=False)).  *ids is malloc'd.
 * Invalid UTF-8 -> CP_ERR_FORMAT; more than max_tokens -> CP_ERR_LIMIT.
 */
extern CpStatus cp_tokenizer_encode(const CpTokenizer *tok, const char *text,
									size_t len, int max_tokens,
									int32_t **ids, int *n_ids, CpError *err);

/* Id of a token string (vocabulary or added token), or -1. */
extern int32_t cp_tokenizer_token_id(const CpTokenizer *tok, const char *token);

/*
 * ColPali prompts (encoder.md 1.2 and 1.3), as transformers'
 * ColPaliProcessor builds them.  *ids malloc'd.
 *	page:  num_image_tokens x <image>, <bos>, "Describe the image." , "\n"
 *	query: <bos>, prefix + text, augmentation pads, "\n"
 */
extern CpStatus cp_build_image_prompt(const CpTokenizer *tok,
									  const CpModelConfig *cfg,
									  int32_t **ids, int *n_ids, CpError *err);
extern CpStatus cp_build_query_prompt(const CpTokenizer *tok,
									  const CpModelConfig *cfg,
									  const char *text, size_t len,
									  int32_t **ids, int *n_ids, CpError *err);

#endif							/* CP_TOKENIZER_H */
