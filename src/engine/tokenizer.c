/*
 * tokenizer.c
 *	  The Gemma tokenizer of a Hugging Face tokenizer.json, giving the ids
 *	  that HF tokenizers gives for tokenizer(text, add_special_tokens=False).
 *
 * Pipeline (tokenizers' TokenizerImpl::encode, see docs/encoder.md#tokenizer):
 *	1. split the raw text on added tokens with normalized=false
 *	   (leftmost-longest); matched spans become their ids;
 *	2. every other segment goes through the normalizer (Replace / Prepend /
 *	   Sequence of them; Gemma replaces " " by U+2581), then is split on
 *	   added tokens with normalized=true (matched in normalized form);
 *	3. the pre-tokenizer (null or literal Split, a no-op for Gemma) cuts
 *	   what is left into words;
 *	4. each word is BPE'd: one symbol per Unicode scalar (vocab id, else its
 *	   UTF-8 bytes as <0xHH> when byte_fallback and all exist, else <unk>,
 *	   consecutive unknowns fused when fuse_unk), then adjacent pairs are
 *	   merged by lowest merge rank, leftmost first, through a binary heap
 *	   exactly like tokenizers' Word::merge_all (O(n log n), so one huge
 *	   word, which is what a long Gemma text is, stays fast).
 * Loading is in tokenizer_load.c, the tables in tokenizer_tables.c.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/*
 * cp_tok_normalize
 *		Apply the normalizer steps to s[0..n) into out (reset first).
 */
bool
cp_tok_normalize(const CpTokenizer *tok, const char *s, size_t n, CpStr *out)
{
	CpStr		tmp = {0};
	int			k;

	out->n = 0;
	if (!cp_str_append(out, s, n))
		return false;
	for (k = 0; k < tok->nnorm; k++)
	{
		const CpNormStep *st = &tok->norm[k];

		tmp.n = 0;
		if (!cp_str_append(&tmp, "", 0))
			goto fail;
		if (st->kind == CP_NORM_NFC)
		{
			if (!cp_tok_nfc(out->s, out->n, &tmp))
				goto fail;
		}
		else if (st->kind == CP_NORM_PREPEND)
		{
			if (out->n > 0 &&
				(!cp_str_append(&tmp, st->content, strlen(st->content)) ||
				 !cp_str_append(&tmp, out->s, out->n)))
				goto fail;
			if (out->n == 0)
				continue;
		}
		else
		{
			size_t		plen = strlen(st->pattern);
			size_t		clen = strlen(st->content);
			size_t		i = 0;
			size_t		start = 0;

			while (i + plen <= out->n)
			{
				if (memcmp(out->s + i, st->pattern, plen) == 0)
				{
					if (!cp_str_append(&tmp, out->s + start, i - start) ||
						!cp_str_append(&tmp, st->content, clen))
						goto fail;
					i += plen;
					start = i;
				}
				else
					i++;
			}
			if (!cp_str_append(&tmp, out->s + start, out->n - start))
				goto fail;
		}
		/* swap */
		{
			CpStr		t = *out;

			*out = tmp;
			tmp = t;
		}
	}
	free(tmp.s);
	return true;
fail:
	free(tmp.s);
	return false;
}

/* ---------------------------------------------------------------------
 * BPE
 * --------------------------------------------------------------------- */

typedef struct CpMerge
{
	int32_t		rank;
	int32_t		pos;
	int32_t		newid;
} CpMerge;

typedef struct CpHeap
{
	CpMerge    *a;
	int			n;
	int			cap;
} CpHeap;

/*
 * merge_less
 *		Heap order: lowest rank first, then leftmost position.
 */
static inline bool
merge_less(const CpMerge *x, const CpMerge *y)
{
	return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

/*
 * heap_push
 *		Add a candidate merge.
 */
static bool
heap_push(CpHeap *h, CpMerge m)
{
	int			i;

	if (h->n == h->cap)
	{
		int			nc = h->cap ? h->cap * 2 : 64;
		CpMerge    *na = realloc(h->a, (size_t) nc * sizeof(CpMerge));

		if (na == NULL)
			return false;
		h->a = na;
		h->cap = nc;
	}
	i = h->n++;
	while (i > 0)
	{
		int			p = (i - 1) / 2;

		if (!merge_less(&m, &h->a[p]))
			break;
		h->a[i] = h->a[p];
		i = p;
	}
	h->a[i] = m;
	return true;
}

/*
 * heap_pop
 *		Remove and return the best candidate (h->n > 0).
 */
static CpMerge
heap_pop(CpHeap *h)
{
	CpMerge		top = h->a[0];
	CpMerge		last = h->a[--h->n];
	int			i = 0;

	for (;;)
	{
		int			l = 2 * i + 1;
		int			r = l + 1;
		int			m = i;
		const CpMerge *best = &last;

		if (l < h->n && merge_less(&h->a[l], best))
		{
			m = l;
			best = &h->a[l];
		}
		if (r < h->n && merge_less(&h->a[r], best))
			m = r;
		if (m == i)
			break;
		h->a[i] = h->a[m];
		i = m;
	}
	if (h->n > 0)
		h->a[i] = last;
	return top;
}

/* symbols of one word (doubly linked through arrays) */
typedef struct CpWord
{
	int32_t    *c;
	int32_t    *prev;
	int32_t    *next;
	int32_t    *len;
	int			n;
	int			cap;
} CpWord;

/*
 * word_add
 *		Append a symbol of len bytes.
 */
static bool
word_add(CpWord *w, int32_t id, int32_t len)
{
	if (w->n == w->cap)
	{
		int			nc = w->cap ? w->cap * 2 : 64;
		int32_t    *a = realloc(w->c, (size_t) nc * sizeof(int32_t));

		if (a == NULL)
			return false;
		w->c = a;
		if ((a = realloc(w->prev, (size_t) nc * sizeof(int32_t))) == NULL)
			return false;
		w->prev = a;
		if ((a = realloc(w->next, (size_t) nc * sizeof(int32_t))) == NULL)
			return false;
		w->next = a;
		if ((a = realloc(w->len, (size_t) nc * sizeof(int32_t))) == NULL)
			return false;
		w->len = a;
		w->cap = nc;
	}
	w->c[w->n] = id;
	w->len[w->n] = len;
	w->prev[w->n] = w->n - 1;
	w->next[w->n] = -1;
	if (w->n > 0)
		w->next[w->n - 1] = w->n;
	w->n++;
	return true;
}

typedef struct CpScratch
{
	CpWord		word;
	CpHeap		heap;
	CpStr		norm;
	CpStr		bytes;			/* byte-level form of the current word */
} CpScratch;

/*
 * bpe_word
 *		BPE one word (valid UTF-8, non-empty) and append its ids.
 */
static CpStatus
bpe_word(const CpTokenizer *tok, const char *s, size_t n, CpScratch *sc,
		 CpIdBuf *out, CpError *err)
{
	CpWord	   *w = &sc->word;
	CpHeap	   *h = &sc->heap;
	size_t		i = 0;
	int32_t		unk_len = 0;	/* pending unk, 0 = none */
	int			k;

	if (n == 0)
		return CP_OK;
	if (n > (size_t) INT32_MAX / 2)
		return cp_error(err, CP_ERR_LIMIT, "text segment too long");
	if (tok->byte_level)
	{
		/* BPE runs over the GPT-2 code points of the word's bytes */
		if (!cp_tok_byte_level(tok, s, n, &sc->bytes))
			goto nomem;
		s = sc->bytes.s;
		n = sc->bytes.n;
	}
	if (tok->ignore_merges)
	{
		int32_t		id = cp_strmap_get(&tok->vocab, s, n);

		if (id >= 0)
			return cp_idbuf_push(out, id, err);
	}
	w->n = 0;
	h->n = 0;
	while (i < n)
	{
		int			l = cp_utf8_char_len((const uint8_t *) s + i, n - i);
		int32_t		id;

		if (l == 0)
			return cp_error(err, CP_ERR_FORMAT, "text is not valid UTF-8");
		id = cp_strmap_get(&tok->vocab, s + i, (size_t) l);
		if (id >= 0)
		{
			if (unk_len > 0 && !word_add(w, tok->unk_id, unk_len))
				goto nomem;
			unk_len = 0;
			if (!word_add(w, id, l))
				goto nomem;
		}
		else
		{
			bool		done = false;

			if (tok->byte_fallback)
			{
				bool		all = true;

				for (k = 0; k < l; k++)
					all = all && tok->byte_ids[(uint8_t) s[i + k]] >= 0;
				if (all)
				{
					/* as tokenizers: a pending unk is not flushed first */
					for (k = 0; k < l; k++)
						if (!word_add(w, tok->byte_ids[(uint8_t) s[i + k]], 1))
							goto nomem;
					done = true;
				}
			}
			if (!done && (tok->unk_id >= 0 || tok->unk_missing))
			{
				if (tok->unk_missing)
					return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: unk_token is not in the vocabulary");
				if (unk_len > 0 && tok->fuse_unk)
					unk_len += l;
				else
				{
					if (unk_len > 0 && !word_add(w, tok->unk_id, unk_len))
						goto nomem;
					unk_len = l;
				}
			}
		}
		i += l;
	}
	if (unk_len > 0 && !word_add(w, tok->unk_id, unk_len))
		goto nomem;

	/* initial pairs */
	for (k = 0; k + 1 < w->n; k++)
	{
		CpMerge		m;

		if (cp_pairmap_get(&tok->merges, w->c[k], w->c[k + 1], &m.rank, &m.newid))
		{
			m.pos = k;
			if (!heap_push(h, m))
				goto nomem;
		}
	}
	/* Word::merge_all */
	while (h->n > 0)
	{
		CpMerge		top = heap_pop(h);
		int32_t		pos = top.pos;
		int32_t		nx;
		int32_t		rank;
		int32_t		newid;

		if (w->len[pos] == 0 || w->next[pos] < 0)
			continue;
		nx = w->next[pos];
		if (!cp_pairmap_get(&tok->merges, w->c[pos], w->c[nx], &rank, &newid) || newid != top.newid)
			continue;
		/* merge nx into pos */
		w->c[pos] = top.newid;
		w->len[pos] += w->len[nx];
		w->next[pos] = w->next[nx];
		w->len[nx] = 0;
		if (w->next[nx] >= 0)
			w->prev[w->next[nx]] = pos;
		if (w->prev[pos] >= 0)
		{
			CpMerge		m;
			int32_t		pv = w->prev[pos];

			if (cp_pairmap_get(&tok->merges, w->c[pv], w->c[pos], &m.rank, &m.newid))
			{
				m.pos = pv;
				if (!heap_push(h, m))
					goto nomem;
			}
		}
		if (w->next[pos] >= 0)
		{
			CpMerge		m;

			if (cp_pairmap_get(&tok->merges, w->c[pos], w->c[w->next[pos]], &m.rank, &m.newid))
			{
				m.pos = pos;
				if (!heap_push(h, m))
					goto nomem;
			}
		}
	}
	for (k = 0; k < w->n; k++)
	{
		if (w->len[k] > 0)
		{
			CpStatus	st = cp_idbuf_push(out, w->c[k], err);

			if (st != CP_OK)
				return st;
		}
	}
	return CP_OK;
nomem:
	return cp_error(err, CP_ERR_NOMEM, "out of memory tokenizing");
}

/*
 * pre_tokenize_and_bpe
 *		Run the pre-tokenizer steps (literal Splits) on s and BPE each piece.
 *		Steps are applied recursively: step k splits, each piece goes to
 *		step k + 1.
 */
static CpStatus
pre_tokenize_and_bpe(const CpTokenizer *tok, int step, const char *s, size_t n,
					 CpScratch *sc, CpIdBuf *out, CpError *err)
{
	const CpPreStep *ps;
	size_t		plen;
	size_t		i = 0;
	size_t		start = 0;		/* start of the pending piece */
	CpStatus	st;

	if (n == 0)
		return CP_OK;
	if (step >= tok->npre)
		return bpe_word(tok, s, n, sc, out, err);
	ps = &tok->pre[step];
	plen = strlen(ps->pattern);
	while (i < n && (ps->regex != NULL || i + plen <= n))
	{
		size_t		mend;

		if (ps->regex != NULL)
		{
			/* next regex match from i (tokenizers' find_iter) */
			int			rc = cp_tok_regex_find(ps->regex, s, n, i, &i, &mend);

			if (rc < 0)
				return cp_error(err, CP_ERR_NOMEM, "out of memory (or regex match limit) tokenizing");
			if (rc > 0)
				break;
			if (mend == i)
			{
				/* an empty match splits nothing; step over one character */
				int			l = cp_utf8_char_len((const uint8_t *) s + i, n - i);

				i += l > 0 ? (size_t) l : 1;
				continue;
			}
		}
		else if (memcmp(s + i, ps->pattern, plen) != 0)
		{
			i++;
			continue;
		}
		else
			mend = i + plen;
		if (ps->behavior == CP_SPLIT_CONTIGUOUS)
			while (mend + plen <= n && memcmp(s + mend, ps->pattern, plen) == 0)
				mend += plen;
		switch (ps->behavior)
		{
			case CP_SPLIT_REMOVED:
				st = pre_tokenize_and_bpe(tok, step + 1, s + start, i - start, sc, out, err);
				start = mend;
				break;
			case CP_SPLIT_ISOLATED:
			case CP_SPLIT_CONTIGUOUS:
				st = pre_tokenize_and_bpe(tok, step + 1, s + start, i - start, sc, out, err);
				if (st == CP_OK)
					st = pre_tokenize_and_bpe(tok, step + 1, s + i, mend - i, sc, out, err);
				start = mend;
				break;
			case CP_SPLIT_MERGED_PREV:
				st = pre_tokenize_and_bpe(tok, step + 1, s + start, mend - start, sc, out, err);
				start = mend;
				break;
			case CP_SPLIT_MERGED_NEXT:
			default:
				st = pre_tokenize_and_bpe(tok, step + 1, s + start, i - start, sc, out, err);
				start = i;
				break;
		}
		if (st != CP_OK)
			return st;
		i = mend;
	}
	return pre_tokenize_and_bpe(tok, step + 1, s + start, n - start, sc, out, err);
}

/*
 * encode_normal_segment
 *		A raw-text segment between non-normalized added tokens: normalize,
 *		split on normalized added tokens, pre-tokenize, BPE.
 */
static CpStatus
encode_normal_segment(const CpTokenizer *tok, const char *s, size_t n,
					  CpScratch *sc, CpIdBuf *out, CpError *err)
{
	const char *t;
	size_t		tn;
	size_t		i = 0;
	size_t		start = 0;
	CpStatus	st;

	if (n == 0)
		return CP_OK;
	if (!cp_tok_normalize(tok, s, n, &sc->norm))
		return cp_error(err, CP_ERR_NOMEM, "out of memory tokenizing");
	t = sc->norm.s;
	tn = sc->norm.n;
	/* the norm buffer is reused by nothing below: safe to read from */
	if (tok->have_norm)
	{
		while (i < tn)
		{
			int32_t		id;
			size_t		m = cp_trie_longest(&tok->norm_trie, t + i, tn - i, &id);

			if (m == 0)
			{
				i++;
				continue;
			}
			st = pre_tokenize_and_bpe(tok, 0, t + start, i - start, sc, out, err);
			if (st == CP_OK)
				st = cp_idbuf_push(out, id, err);
			if (st != CP_OK)
				return st;
			i += m;
			start = i;
		}
	}
	return pre_tokenize_and_bpe(tok, 0, t + start, tn - start, sc, out, err);
}

/*
 * cp_tokenizer_encode
 *		See tokenizer.h.
 */
CpStatus
cp_tokenizer_encode(const CpTokenizer *tok, const char *text, size_t len,
					int max_tokens, int32_t **ids, int *n_ids, CpError *err)
{
	CpIdBuf		out = {0};
	CpScratch	sc;
	size_t		i = 0;
	size_t		start = 0;
	long		bad;
	CpStatus	st = CP_OK;

	*ids = NULL;
	*n_ids = 0;
	if (tok == NULL || (text == NULL && len > 0))
		return cp_error(err, CP_ERR_INVALID_ARG, "no tokenizer or text given");
	bad = cp_utf8_validate(text, len);
	if (bad >= 0)
		return cp_error(err, CP_ERR_FORMAT, "text is not valid UTF-8 (byte %ld)", bad);
	memset(&sc, 0, sizeof(sc));
	out.max = max_tokens;
	if (tok->have_raw)
	{
		while (i < len)
		{
			int32_t		id;
			size_t		m = cp_trie_longest(&tok->raw_trie, text + i, len - i, &id);

			if (m == 0)
			{
				i++;
				continue;
			}
			st = encode_normal_segment(tok, text + start, i - start, &sc, &out, err);
			if (st == CP_OK)
				st = cp_idbuf_push(&out, id, err);
			if (st != CP_OK)
				goto done;
			i += m;
			start = i;
		}
	}
	st = encode_normal_segment(tok, text + start, len - start, &sc, &out, err);
done:
	free(sc.word.c);
	free(sc.word.prev);
	free(sc.word.next);
	free(sc.word.len);
	free(sc.heap.a);
	free(sc.norm.s);
	free(sc.bytes.s);
	if (st != CP_OK)
	{
		free(out.ids);
		return st;
	}
	if (out.ids == NULL)
	{
		out.ids = malloc(sizeof(int32_t));
		if (out.ids == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	*ids = out.ids;
	*n_ids = out.n;
	return CP_OK;
}

