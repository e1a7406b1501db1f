/*
 * tokenizer_load.c
 *	  Reading tokenizer.json (Hugging Face tokenizers format) into a
 *	  CpTokenizer: the BPE model (vocabulary, merges in both spellings),
 *	  normalizer, pre-tokenizer and added tokens (docs/encoder.md#tokenizer),
 *	  for both the SentencePiece-style BPE of Gemma and the byte-level BPE of
 *	  Qwen2 (NFC, regex Split, ByteLevel; docs/encoder.md#colqwen2-tokenizer).
 *	  Everything the file says that we cannot honour exactly (other model
 *	  types, NFKC, dropout, ...) is refused with a message
 *	  naming it, rather than silently tokenizing differently.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "file_util.h"
#include "tokenizer_internal.h"

/* ---------------------------------------------------------------------
 * loading
 * --------------------------------------------------------------------- */

/*
 * cp_tokenizer_free
 *		Release everything.
 */
void
cp_tokenizer_free(CpTokenizer *tok)
{
	int			i;

	if (tok == NULL)
		return;
	cp_strmap_free(&tok->vocab);
	cp_strmap_free(&tok->added);
	free(tok->vocab_ids);
	cp_pairmap_free(&tok->merges);
	for (i = 0; i < tok->nnorm; i++)
	{
		free(tok->norm[i].pattern);
		free(tok->norm[i].content);
	}
	free(tok->norm);
	for (i = 0; i < tok->npre; i++)
	{
		free(tok->pre[i].pattern);
		cp_tok_regex_free(tok->pre[i].regex);
	}
	free(tok->pre);
	cp_trie_free(&tok->raw_trie);
	cp_trie_free(&tok->norm_trie);
	free(tok);
}

/*
 * get_literal_pattern
 *		{"String": s} -> s; a {"Regex": ...} pattern is unsupported.
 */
static CpStatus
get_literal_pattern(json_t *pat, const char *what, const char **out, CpError *err)
{
	json_t	   *s = json_object_get(pat, "String");

	if (json_is_object(pat) && json_object_get(pat, "Regex") != NULL)
		return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: %s with a regex pattern is not supported", what);
	if (!json_is_string(s))
		return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: %s has no {\"String\": ...} pattern", what);
	*out = json_string_value(s);
	return CP_OK;
}

/*
 * load_normalizer
 *		Accept null, Replace(literal), Prepend, NFC, Sequence of those.
 */
static CpStatus
load_normalizer(CpTokenizer *tok, json_t *n, CpError *err)
{
	const char *type;
	CpStatus	st;

	if (n == NULL || json_is_null(n))
		return CP_OK;
	if (!json_is_object(n) || !json_is_string(json_object_get(n, "type")))
		return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: normalizer has no \"type\"");
	type = json_string_value(json_object_get(n, "type"));
	if (strcmp(type, "Sequence") == 0)
	{
		json_t	   *arr = json_object_get(n, "normalizers");
		size_t		i;

		if (!json_is_array(arr))
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: Sequence normalizer has no \"normalizers\" array");
		for (i = 0; i < json_array_size(arr); i++)
		{
			st = load_normalizer(tok, json_array_get(arr, i), err);
			if (st != CP_OK)
				return st;
		}
		return CP_OK;
	}
	if (strcmp(type, "NFC") == 0)
	{
		CpNormStep *ns;

		if (tok->nnorm >= 64)
			return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: too many normalizers");
		ns = realloc(tok->norm, (tok->nnorm + 1) * sizeof(CpNormStep));
		if (ns == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		tok->norm = ns;
		memset(&tok->norm[tok->nnorm], 0, sizeof(CpNormStep));
		tok->norm[tok->nnorm++].kind = CP_NORM_NFC;
		return CP_OK;
	}
	if (strcmp(type, "Replace") == 0 || strcmp(type, "Prepend") == 0)
	{
		CpNormStep	step;
		CpNormStep *ns;
		const char *pat = NULL;
		json_t	   *c;

		memset(&step, 0, sizeof(step));
		if (tok->nnorm >= 64)
			return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: too many normalizers");
		if (type[0] == 'R')
		{
			step.kind = CP_NORM_REPLACE;
			st = get_literal_pattern(json_object_get(n, "pattern"), "Replace normalizer", &pat, err);
			if (st != CP_OK)
				return st;
			if (pat[0] == '\0')
				return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: Replace normalizer with an empty pattern");
			c = json_object_get(n, "content");
		}
		else
		{
			step.kind = CP_NORM_PREPEND;
			c = json_object_get(n, "prepend");
		}
		if (!json_is_string(c))
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: %s normalizer has no string %s", type,
							type[0] == 'R' ? "\"content\"" : "\"prepend\"");
		ns = realloc(tok->norm, (tok->nnorm + 1) * sizeof(CpNormStep));
		if (ns == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		tok->norm = ns;
		step.pattern = pat ? strdup(pat) : NULL;
		step.content = strdup(json_string_value(c));
		tok->norm[tok->nnorm++] = step;
		if ((pat && step.pattern == NULL) || step.content == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		return CP_OK;
	}
	return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: normalizer \"%.64s\" is not supported (expected Replace, Prepend, NFC or Sequence)", type);
}

/*
 * load_pre_tokenizer
 *		Accept null, Split(literal or regex, invert=false), a final
 *		ByteLevel (no prefix space; with use_regex, GPT-2's split first),
 *		Sequence of those.
 */
static CpStatus
load_pre_tokenizer(CpTokenizer *tok, json_t *p, CpError *err)
{
	const char *type;
	CpStatus	st;

	if (p == NULL || json_is_null(p))
		return CP_OK;
	if (!json_is_object(p) || !json_is_string(json_object_get(p, "type")))
		return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: pre_tokenizer has no \"type\"");
	type = json_string_value(json_object_get(p, "type"));
	if (tok->byte_level)
		return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: a pre_tokenizer after ByteLevel is not supported");
	if (strcmp(type, "ByteLevel") == 0)
	{
		json_t	   *jprefix = json_object_get(p, "add_prefix_space");
		json_t	   *jregex = json_object_get(p, "use_regex");

		/* tokenizers' defaults for absent fields are true for both */
		if (jprefix == NULL || json_is_true(jprefix))
			return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: ByteLevel pre_tokenizer with add_prefix_space is not supported");
		if (jregex == NULL || json_is_true(jregex))
		{
			/* tokenizers' ByteLevel first splits (Isolated) on GPT-2's pattern */
			static const char *gpt2 =
				"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
			json_t	   *split = json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split",
										  "pattern", "Regex", gpt2, "behavior", "Isolated", "invert", 0);

			if (split == NULL)
				return cp_error(err, CP_ERR_NOMEM, "out of memory");
			st = load_pre_tokenizer(tok, split, err);
			json_decref(split);
			if (st != CP_OK)
				return st;
		}
		tok->byte_level = true;
		cp_tok_byte_level_init(tok);
		return CP_OK;
	}
	if (strcmp(type, "Sequence") == 0)
	{
		json_t	   *arr = json_object_get(p, "pretokenizers");
		size_t		i;

		if (!json_is_array(arr))
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: Sequence pre_tokenizer has no \"pretokenizers\" array");
		for (i = 0; i < json_array_size(arr); i++)
		{
			st = load_pre_tokenizer(tok, json_array_get(arr, i), err);
			if (st != CP_OK)
				return st;
		}
		return CP_OK;
	}
	if (strcmp(type, "Split") == 0)
	{
		const char *pat;
		const char *beh;
		CpPreStep	step;
		CpPreStep  *np;
		json_t	   *jb = json_object_get(p, "behavior");
		json_t	   *jre = json_object_get(json_object_get(p, "pattern"), "Regex");

		memset(&step, 0, sizeof(step));
		if (jre != NULL)
		{
			if (!json_is_string(jre))
				return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: Split pre_tokenizer has a non-string Regex");
			pat = json_string_value(jre);
		}
		else
		{
			st = get_literal_pattern(json_object_get(p, "pattern"), "Split pre_tokenizer", &pat, err);
			if (st != CP_OK)
				return st;
		}
		if (pat[0] == '\0')
			return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: Split pre_tokenizer with an empty pattern");
		if (json_is_true(json_object_get(p, "invert")))
			return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: inverted Split pre_tokenizer is not supported");
		if (!json_is_string(jb))
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: Split pre_tokenizer has no \"behavior\"");
		beh = json_string_value(jb);
		if (strcmp(beh, "Removed") == 0)
			step.behavior = CP_SPLIT_REMOVED;
		else if (strcmp(beh, "Isolated") == 0)
			step.behavior = CP_SPLIT_ISOLATED;
		else if (strcmp(beh, "MergedWithPrevious") == 0)
			step.behavior = CP_SPLIT_MERGED_PREV;
		else if (strcmp(beh, "MergedWithNext") == 0)
			step.behavior = CP_SPLIT_MERGED_NEXT;
		else if (strcmp(beh, "Contiguous") == 0)
			step.behavior = CP_SPLIT_CONTIGUOUS;
		else
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: unknown Split behavior \"%.64s\"", beh);
		if (jre != NULL && step.behavior == CP_SPLIT_CONTIGUOUS)
			return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: Contiguous Split with a regex pattern is not supported");
		if (tok->npre >= 64)
			return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: too many pre_tokenizers");
		np = realloc(tok->pre, (tok->npre + 1) * sizeof(CpPreStep));
		if (np == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		tok->pre = np;
		step.pattern = strdup(pat);
		tok->pre[tok->npre++] = step;
		if (step.pattern == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		if (jre != NULL)
			return cp_tok_regex_compile(pat, &tok->pre[tok->npre - 1].regex, err);
		return CP_OK;
	}
	return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer \"%.64s\" is not supported (expected Split, ByteLevel or Sequence)", type);
}

/*
 * merge_part
 *		Left and right parts of a merges entry ("a b" or ["a", "b"]).
 */
static bool
merge_part(json_t *m, const char **a, size_t *alen, const char **b, size_t *blen)
{
	if (json_is_string(m))
	{
		const char *s = json_string_value(m);
		size_t		n = json_string_length(m);
		const char *sp = memchr(s, ' ', n);

		/* exactly one space, as tokenizers' split(' ') into two parts */
		if (sp == NULL || memchr(sp + 1, ' ', n - (sp + 1 - s)) != NULL)
			return false;
		*a = s;
		*alen = sp - s;
		*b = sp + 1;
		*blen = n - *alen - 1;
		return true;
	}
	if (json_is_array(m) && json_array_size(m) == 2 &&
		json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1)))
	{
		*a = json_string_value(json_array_get(m, 0));
		*alen = json_string_length(json_array_get(m, 0));
		*b = json_string_value(json_array_get(m, 1));
		*blen = json_string_length(json_array_get(m, 1));
		return true;
	}
	return false;
}

/*
 * load_model
 *		The BPE model: vocab, merges, flags.
 */
static CpStatus
load_model(CpTokenizer *tok, json_t *model, CpError *err)
{
	json_t	   *vocab = json_object_get(model, "vocab");
	json_t	   *merges = json_object_get(model, "merges");
	json_t	   *type = json_object_get(model, "type");
	json_t	   *v;
	const char *key;
	json_t	   *val;
	size_t		i;
	char	   *buf = NULL;
	size_t		bufcap = 0;
	CpStatus	st = CP_OK;

	if (type != NULL && !(json_is_string(type) && strcmp(json_string_value(type), "BPE") == 0))
		return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: model type \"%.64s\" is not supported (expected BPE)",
						json_is_string(type) ? json_string_value(type) : "?");
	if (!json_is_object(vocab))
		return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: model has no \"vocab\" object");
	if (!json_is_array(merges))
		return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: model has no \"merges\" array");
	v = json_object_get(model, "dropout");
	if (v != NULL && !json_is_null(v) && !(json_is_number(v) && json_number_value(v) == 0.0))
		return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: BPE dropout is not supported");
	v = json_object_get(model, "continuing_subword_prefix");
	if (v != NULL && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
		return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: continuing_subword_prefix is not supported");
	v = json_object_get(model, "end_of_word_suffix");
	if (v != NULL && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
		return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: end_of_word_suffix is not supported");
	tok->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
	tok->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
	tok->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));

	if (!cp_strmap_init(&tok->vocab, json_object_size(vocab)))
		return cp_error(err, CP_ERR_NOMEM, "out of memory loading the vocabulary");
	json_object_foreach(vocab, key, val)
	{
		json_int_t	id;

		if (!json_is_integer(val) || (id = json_integer_value(val)) < 0 || id >= CP_TOK_MAX_ID)
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: vocab entry \"%.64s\" has no valid id", key);
		if (!cp_strmap_put(&tok->vocab, key, strlen(key), (int32_t) id))
			return cp_error(err, CP_ERR_NOMEM, "out of memory loading the vocabulary");
	}
	/* bitmap of used ids (added tokens must not reuse one) */
	{
		json_int_t	maxid = -1;

		json_object_foreach(vocab, key, val)
		{
			if (json_integer_value(val) > maxid)
				maxid = json_integer_value(val);
		}
		tok->nvocab_ids = (int32_t) (maxid + 1);
		tok->vocab_ids = calloc((size_t) tok->nvocab_ids / 8 + 1, 1);
		if (tok->vocab_ids == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory loading the vocabulary");
		json_object_foreach(vocab, key, val)
		{
			json_int_t	id = json_integer_value(val);

			tok->vocab_ids[id / 8] |= (uint8_t) (1 << (id % 8));
		}
	}
	for (i = 0; i < 256; i++)
	{
		char		code[8];

		snprintf(code, sizeof(code), "<0x%02X>", (unsigned) i);
		tok->byte_ids[i] = cp_strmap_get(&tok->vocab, code, strlen(code));
	}
	v = json_object_get(model, "unk_token");
	tok->unk_id = -1;
	if (json_is_string(v))
	{
		tok->unk_id = cp_strmap_get(&tok->vocab, json_string_value(v), json_string_length(v));
		tok->unk_missing = (tok->unk_id < 0);
	}
	else if (v != NULL && !json_is_null(v))
		return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: unk_token is not a string");

	if (json_array_size(merges) > (size_t) INT32_MAX)
		return cp_error(err, CP_ERR_LIMIT, "tokenizer.json: too many merges");
	if (!cp_pairmap_init(&tok->merges, json_array_size(merges)))
		return cp_error(err, CP_ERR_NOMEM, "out of memory loading merges");
	for (i = 0; i < json_array_size(merges); i++)
	{
		const char *a;
		const char *b;
		size_t		alen;
		size_t		blen;
		int32_t		ida;
		int32_t		idb;
		int32_t		idn;

		if (!merge_part(json_array_get(merges, i), &a, &alen, &b, &blen))
		{
			st = cp_error(err, CP_ERR_FORMAT, "tokenizer.json: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", i);
			goto done;
		}
		ida = cp_strmap_get(&tok->vocab, a, alen);
		idb = cp_strmap_get(&tok->vocab, b, blen);
		if (alen + blen + 1 > bufcap)
		{
			char	   *nb;

			bufcap = (alen + blen + 1) * 2;
			nb = realloc(buf, bufcap);
			if (nb == NULL)
			{
				st = cp_error(err, CP_ERR_NOMEM, "out of memory loading merges");
				goto done;
			}
			buf = nb;
		}
		memcpy(buf, a, alen);
		memcpy(buf + alen, b, blen);
		idn = cp_strmap_get(&tok->vocab, buf, alen + blen);
		if (ida < 0 || idb < 0 || idn < 0)
		{
			st = cp_error(err, CP_ERR_FORMAT, "tokenizer.json: merge %zu uses a token that is not in the vocabulary", i);
			goto done;
		}
		cp_pairmap_put(&tok->merges, ida, idb, (int32_t) i, idn);
	}
done:
	free(buf);
	return st;
}

/*
 * load_added_tokens
 *		added_tokens: ids, and the two tries (raw / normalized).
 */
static CpStatus
load_added_tokens(CpTokenizer *tok, json_t *arr, CpError *err)
{
	size_t		i;
	size_t		raw_bytes = 0;
	size_t		norm_bytes = 0;
	CpStr		ns = {0};
	CpStatus	st = CP_OK;

	if (arr == NULL || json_is_null(arr))
		arr = NULL;
	else if (!json_is_array(arr))
		return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: \"added_tokens\" is not an array");
	if (!cp_strmap_init(&tok->added, arr ? json_array_size(arr) : 0))
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	if (arr == NULL)
		return CP_OK;

	/* pass 1: validate, sizes */
	for (i = 0; i < json_array_size(arr); i++)
	{
		json_t	   *t = json_array_get(arr, i);
		json_t	   *jc = json_object_get(t, "content");
		json_t	   *jid = json_object_get(t, "id");
		json_int_t	id;
		int32_t		vid;
		const char *c;
		size_t		clen;

		if (!json_is_object(t) || !json_is_string(jc) || !json_is_integer(jid))
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: added token %zu has no \"id\" and \"content\"", i);
		id = json_integer_value(jid);
		c = json_string_value(jc);
		clen = json_string_length(jc);
		if (id < 0 || id >= CP_TOK_MAX_ID)
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: added token \"%.64s\" has an invalid id", c);
		if (clen == 0)
			continue;			/* tokenizers ignores empty added tokens */
		if (clen > CP_TOK_MAX_ADDED_LEN || strlen(c) != clen)
			return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: added token %zu is too long or contains NUL", i);
		if (json_is_true(json_object_get(t, "single_word")) ||
			json_is_true(json_object_get(t, "lstrip")) ||
			json_is_true(json_object_get(t, "rstrip")))
			return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: added token \"%.64s\" uses single_word/lstrip/rstrip, which is not supported", c);
		vid = cp_strmap_get(&tok->vocab, c, clen);
		if (vid >= 0 && vid != id)
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: added token \"%.64s\" has id %lld but the vocabulary says %d",
							c, (long long) id, vid);
		/* HF would renumber such a token; a consistent file never has one */
		if (vid < 0 && id < tok->nvocab_ids && tok->vocab_ids[id / 8] & (1 << (id % 8)))
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: added token \"%.64s\" has id %lld, which the vocabulary gives to another token",
							c, (long long) id);
		if (!cp_strmap_put(&tok->added, c, clen, (int32_t) id))
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		if (json_is_false(json_object_get(t, "normalized")))
			raw_bytes += clen;
		else
			norm_bytes += clen * 3 + 64;	/* normalized form may grow */
	}
	if (!cp_trie_init(&tok->raw_trie, raw_bytes) || !cp_trie_init(&tok->norm_trie, norm_bytes))
		return cp_error(err, CP_ERR_NOMEM, "out of memory");

	/* pass 2: tries (later entries win on identical content) */
	for (i = 0; i < json_array_size(arr); i++)
	{
		json_t	   *t = json_array_get(arr, i);
		json_t	   *jc = json_object_get(t, "content");
		int32_t		id = (int32_t) json_integer_value(json_object_get(t, "id"));
		size_t		clen = json_string_length(jc);

		if (clen == 0)
			continue;
		if (json_is_false(json_object_get(t, "normalized")))
		{
			cp_trie_add(&tok->raw_trie, json_string_value(jc), clen, id);
			tok->have_raw = true;
		}
		else
		{
			if (!cp_tok_normalize(tok, json_string_value(jc), clen, &ns))
			{
				st = cp_error(err, CP_ERR_NOMEM, "out of memory");
				break;
			}
			if (ns.n == 0)
				continue;
			if (ns.n > clen * 3 + 64)
			{
				st = cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: normalized form of added token \"%.64s\" is too long",
							  json_string_value(jc));
				break;
			}
			cp_trie_add(&tok->norm_trie, ns.s, ns.n, id);
			tok->have_norm = true;
		}
	}
	free(ns.s);
	return st;
}

/*
 * cp_tokenizer_load_from_memory
 *		Parse a tokenizer.json document.
 */
CpStatus
cp_tokenizer_load_from_memory(const char *json, size_t len, CpTokenizer **out,
							  CpError *err)
{
	json_error_t jerr;
	json_t	   *root;
	json_t	   *model;
	CpTokenizer *tok;
	CpStatus	st;

	*out = NULL;
	if (json == NULL)
		return cp_error(err, CP_ERR_INVALID_ARG, "no tokenizer.json given");
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return cp_error(err, CP_ERR_FORMAT, "tokenizer.json is not valid JSON: %s (line %d)", jerr.text, jerr.line);
	tok = calloc(1, sizeof(CpTokenizer));
	if (tok == NULL)
	{
		json_decref(root);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	if (!json_is_object(root))
	{
		st = cp_error(err, CP_ERR_FORMAT, "tokenizer.json is not a JSON object");
		goto done;
	}
	model = json_object_get(root, "model");
	if (!json_is_object(model))
	{
		st = cp_error(err, CP_ERR_FORMAT, "tokenizer.json has no \"model\" object");
		goto done;
	}
	st = load_model(tok, model, err);
	if (st == CP_OK)
		st = load_normalizer(tok, json_object_get(root, "normalizer"), err);
	if (st == CP_OK)
		st = load_pre_tokenizer(tok, json_object_get(root, "pre_tokenizer"), err);
	if (st == CP_OK)
		st = load_added_tokens(tok, json_object_get(root, "added_tokens"), err);
done:
	json_decref(root);
	if (st != CP_OK)
	{
		cp_tokenizer_free(tok);
		return st;
	}
	*out = tok;
	return CP_OK;
}

/*
 * cp_tokenizer_load
 *		Read and parse a tokenizer.json file.
 */
CpStatus
cp_tokenizer_load(const char *path, CpTokenizer **out, CpError *err)
{
	char	   *buf;
	size_t		got;
	CpStatus	st;

	*out = NULL;
	st = cp_read_file(path, (size_t) 1024 * 1024 * 1024, &buf, &got, err);
	if (st != CP_OK)
		return st;
	st = cp_tokenizer_load_from_memory(buf, got, out, err);
	free(buf);
	if (st != CP_OK && err != NULL && strncmp(err->msg, "tokenizer.json", 14) == 0)
	{
		char		tmp[CP_ERROR_MSG_LEN];

		snprintf(tmp, sizeof(tmp), "%s", err->msg + 14);
		cp_error(err, st, "\"%s\"%s", path, tmp);
	}
	return st;
}

/*
 * cp_tokenizer_token_id
 *		Id of an added token or vocabulary entry, -1 if unknown.
 */
int32_t
cp_tokenizer_token_id(const CpTokenizer *tok, const char *token)
{
	int32_t		id;

	if (tok == NULL || token == NULL)
		return -1;
	id = cp_strmap_get(&tok->added, token, strlen(token));
	if (id >= 0)
		return id;
	return cp_strmap_get(&tok->vocab, token, strlen(token));
}

