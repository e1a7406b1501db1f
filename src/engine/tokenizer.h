/*
 * tokenizer.h
 *	  Gemma tokenizer read from tokenizer.json (HF tokenizers format):
 *	  added/special tokens split first, normalizer (space -> U+2581), BPE by
 *	  merge rank, byte fallback (<0xNN>).  Ids identical to HF tokenizers.
 *	  The prompts built from it are in prompt.h.
 */
#ifndef CP_TOKENIZER_H
#define CP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "cp_status.h"

typedef struct CpTokenizer CpTokenizer;

/*
 * Load tokenizer.json.  Supported: model BPE (vocab, merges as "a b" or
 * ["a", "b"], byte_fallback, fuse_unk, unk_token, ignore_merges), normalizer
 * null / Replace(literal) / Prepend / Sequence, pre_tokenizer null /
 * Split(literal) / Sequence, added_tokens (normalized or not).  Anything else
 * -> CP_ERR_UNSUPPORTED; malformed -> CP_ERR_FORMAT; the message names it.
 */
extern CpStatus cp_tokenizer_load(const char *tokenizer_json_path,
								  CpTokenizer **out, CpError *err);
/* Same, from a JSON document in memory (fuzz harness, tests). */
extern CpStatus cp_tokenizer_load_from_memory(const char *json, size_t len,
											  CpTokenizer **out, CpError *err);
extern void cp_tokenizer_free(CpTokenizer *tok);

/*
 * Encode UTF-8 text without adding special tokens (like
 * tokenizer(text, add_special_tokens=False)).  *ids is malloc'd (also for
 * zero ids).  Invalid UTF-8 -> CP_ERR_FORMAT; more than max_tokens (> 0)
 * -> CP_ERR_LIMIT.  O(n log n) in the text length; thread-safe (the
 * tokenizer is read-only after loading).
 */
extern CpStatus cp_tokenizer_encode(const CpTokenizer *tok, const char *text,
									size_t len, int max_tokens,
									int32_t **ids, int *n_ids, CpError *err);

/* Id of a token string (vocabulary or added token), or -1. */
extern int32_t cp_tokenizer_token_id(const CpTokenizer *tok, const char *token);

#endif							/* CP_TOKENIZER_H */
