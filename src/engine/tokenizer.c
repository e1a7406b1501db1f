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
 * Everything the file says that we cannot honour exactly (other model
 * types, regex patterns, NFKC, dropout, ...) is refused at load with a
 * message naming it, rather than silently tokenizing differently.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "file_util.h"
#include "tokenizer.h"

/* Added tokens longer than this are refused (matching cost is per byte). */
#define CP_TOK_MAX_ADDED_LEN 4096
/* Largest token id accepted (keeps id -> string tables bounded). */
#define CP_TOK_MAX_ID (1 << 24)

/* ---------------------------------------------------------------------
 * hash tables
 * --------------------------------------------------------------------- */

/* string -> int32, strings kept in an arena */
typedef struct CpStrMap
{
	uint32_t   *slots;			/* 0 = empty, else entry index + 1 */
	uint32_t	mask;
	uint32_t	count;
	uint32_t   *off;			/* per entry: offset in arena */
	uint32_t   *len;
	int32_t    *val;
	char	   *arena;
	size_t		arena_len;
	size_t		arena_cap;
	uint32_t	cap;			/* entries allocated */
} CpStrMap;

/* (left id, right id) -> (rank, new id) */
typedef struct CpPairMap
{
	uint64_t   *keys;
	int32_t    *rank;
	int32_t    *newid;
	bool	   *used;
	uint32_t	mask;
	uint32_t	count;
} CpPairMap;

/*
 * hash_bytes
 *		FNV-1a, 64 bit.
 */
static uint64_t
hash_bytes(const char *s, size_t n)
{
	uint64_t	h = 1469598103934665603ULL;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		h ^= (uint8_t) s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/*
 * hash_u64
 *		Mixer for pair keys (splitmix64 finaliser).
 */
static uint64_t
hash_u64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/*
 * strmap_free
 *		Release a string map.
 */
static void
strmap_free(CpStrMap *m)
{
	free(m->slots);
	free(m->off);
	free(m->len);
	free(m->val);
	free(m->arena);
	memset(m, 0, sizeof(*m));
}

/*
 * strmap_init
 *		Table for about n entries.
 */
static bool
strmap_init(CpStrMap *m, size_t n)
{
	uint32_t	size = 16;

	memset(m, 0, sizeof(*m));
	while (size < n * 2 + 16 && size < (1u << 30))
		size <<= 1;
	m->slots = calloc(size, sizeof(uint32_t));
	m->mask = size - 1;
	m->cap = (uint32_t) (n + 16);
	m->off = malloc(m->cap * sizeof(uint32_t));
	m->len = malloc(m->cap * sizeof(uint32_t));
	m->val = malloc(m->cap * sizeof(int32_t));
	m->arena_cap = 1024;
	m->arena = malloc(m->arena_cap);
	return m->slots && m->off && m->len && m->val && m->arena;
}

/*
 * strmap_find_slot
 *		Slot index holding s, or the empty slot where it would go.
 */
static uint32_t
strmap_find_slot(const CpStrMap *m, const char *s, size_t n)
{
	uint32_t	i = (uint32_t) hash_bytes(s, n) & m->mask;

	for (;;)
	{
		uint32_t	e = m->slots[i];

		if (e == 0)
			return i;
		e--;
		if (m->len[e] == n && memcmp(m->arena + m->off[e], s, n) == 0)
			return i;
		i = (i + 1) & m->mask;
	}
}

/*
 * strmap_get
 *		Value of s, or -1.
 */
static int32_t
strmap_get(const CpStrMap *m, const char *s, size_t n)
{
	uint32_t	e;

	if (m->slots == NULL)
		return -1;
	e = m->slots[strmap_find_slot(m, s, n)];
	return e ? m->val[e - 1] : -1;
}

/*
 * strmap_grow
 *		Double the slot table.
 */
static bool
strmap_grow(CpStrMap *m)
{
	uint32_t	size = (m->mask + 1) * 2;
	uint32_t   *ns = calloc(size, sizeof(uint32_t));
	uint32_t	e;

	if (ns == NULL || size == 0)
	{
		free(ns);
		return false;
	}
	free(m->slots);
	m->slots = ns;
	m->mask = size - 1;
	for (e = 0; e < m->count; e++)
	{
		uint32_t	i = (uint32_t) hash_bytes(m->arena + m->off[e], m->len[e]) & m->mask;

		while (m->slots[i] != 0)
			i = (i + 1) & m->mask;
		m->slots[i] = e + 1;
	}
	return true;
}

/*
 * strmap_put
 *		Insert or overwrite s -> v.  Returns false on out-of-memory.
 */
static bool
strmap_put(CpStrMap *m, const char *s, size_t n, int32_t v)
{
	uint32_t	slot;
	uint32_t	e;

	if (n > UINT32_MAX / 2)
		return false;
	if ((m->count + 1) * 2 > m->mask + 1 && !strmap_grow(m))
		return false;
	slot = strmap_find_slot(m, s, n);
	if (m->slots[slot] != 0)
	{
		m->val[m->slots[slot] - 1] = v;
		return true;
	}
	if (m->count == m->cap)
	{
		uint32_t	nc = m->cap * 2;
		uint32_t   *no = realloc(m->off, nc * sizeof(uint32_t));

		if (no == NULL)
			return false;
		m->off = no;
		no = realloc(m->len, nc * sizeof(uint32_t));
		if (no == NULL)
			return false;
		m->len = no;
		{
			int32_t    *nv = realloc(m->val, nc * sizeof(int32_t));

			if (nv == NULL)
				return false;
			m->val = nv;
		}
		m->cap = nc;
	}
	if (m->arena_len + n + 1 > m->arena_cap)
	{
		size_t		nc = m->arena_cap;
		char	   *na;

		while (m->arena_len + n + 1 > nc)
			nc *= 2;
		if (nc > UINT32_MAX)
			return false;
		na = realloc(m->arena, nc);
		if (na == NULL)
			return false;
		m->arena = na;
		m->arena_cap = nc;
	}
	e = m->count++;
	m->off[e] = (uint32_t) m->arena_len;
	m->len[e] = (uint32_t) n;
	m->val[e] = v;
	memcpy(m->arena + m->arena_len, s, n);
	m->arena[m->arena_len + n] = '\0';
	m->arena_len += n + 1;
	m->slots[slot] = e + 1;
	return true;
}

/*
 * pairmap_free
 *		Release a pair map.
 */
static void
pairmap_free(CpPairMap *m)
{
	free(m->keys);
	free(m->rank);
	free(m->newid);
	free(m->used);
	memset(m, 0, sizeof(*m));
}

/*
 * pairmap_init
 *		Fixed-size table for up to n pairs (never grows: callers size it).
 */
static bool
pairmap_init(CpPairMap *m, size_t n)
{
	uint32_t	size = 16;

	memset(m, 0, sizeof(*m));
	while (size < n * 2 + 16 && size < (1u << 30))
		size <<= 1;
	m->keys = malloc(size * sizeof(uint64_t));
	m->rank = malloc(size * sizeof(int32_t));
	m->newid = malloc(size * sizeof(int32_t));
	m->used = calloc(size, sizeof(bool));
	m->mask = size - 1;
	return m->keys && m->rank && m->newid && m->used;
}

/*
 * pairmap_put
 *		Insert or overwrite (later merges win, as in HF's HashMap collect).
 */
static void
pairmap_put(CpPairMap *m, int32_t a, int32_t b, int32_t rank, int32_t newid)
{
	uint64_t	k = ((uint64_t) (uint32_t) a << 32) | (uint32_t) b;
	uint32_t	i = (uint32_t) hash_u64(k) & m->mask;

	while (m->used[i] && m->keys[i] != k)
		i = (i + 1) & m->mask;
	if (!m->used[i])
		m->count++;
	m->used[i] = true;
	m->keys[i] = k;
	m->rank[i] = rank;
	m->newid[i] = newid;
}

/*
 * pairmap_get
 *		Rank and new id of the merge (a, b); false if there is none.
 */
static inline bool
pairmap_get(const CpPairMap *m, int32_t a, int32_t b, int32_t *rank, int32_t *newid)
{
	uint64_t	k = ((uint64_t) (uint32_t) a << 32) | (uint32_t) b;
	uint32_t	i = (uint32_t) hash_u64(k) & m->mask;

	while (m->used[i])
	{
		if (m->keys[i] == k)
		{
			*rank = m->rank[i];
			*newid = m->newid[i];
			return true;
		}
		i = (i + 1) & m->mask;
	}
	return false;
}

/* ---------------------------------------------------------------------
 * tokenizer object
 * --------------------------------------------------------------------- */

typedef enum CpNormKind
{
	CP_NORM_REPLACE,
	CP_NORM_PREPEND
} CpNormKind;

typedef struct CpNormStep
{
	CpNormKind	kind;
	char	   *pattern;		/* Replace: literal to find */
	char	   *content;		/* Replace: replacement; Prepend: prefix */
} CpNormStep;

typedef enum CpSplitBehavior
{
	CP_SPLIT_REMOVED,
	CP_SPLIT_ISOLATED,
	CP_SPLIT_MERGED_PREV,
	CP_SPLIT_MERGED_NEXT,
	CP_SPLIT_CONTIGUOUS
} CpSplitBehavior;

typedef struct CpPreStep
{
	char	   *pattern;		/* literal */
	CpSplitBehavior behavior;
} CpPreStep;

/* byte trie over added tokens (leftmost-longest matching) */
typedef struct CpTrie
{
	CpPairMap	edges;			/* (node, byte) -> child node (rank unused) */
	int32_t    *terminal;		/* per node: token id or -1 */
	int32_t		nnodes;
	int32_t		capnodes;
} CpTrie;

struct CpTokenizer
{
	CpStrMap	vocab;			/* model vocab: token -> id */
	CpStrMap	added;			/* added tokens: content -> id */
	uint8_t    *vocab_ids;		/* bitmap of the ids used by the vocabulary */
	int32_t		nvocab_ids;		/* bits in vocab_ids */
	CpPairMap	merges;
	int32_t		byte_ids[256];	/* <0xHH> ids, -1 if absent */
	bool		byte_fallback;
	bool		fuse_unk;
	bool		ignore_merges;
	int32_t		unk_id;			/* -1: no unk token */
	bool		unk_missing;	/* unk_token named but not in vocab */
	CpNormStep *norm;
	int			nnorm;
	CpPreStep  *pre;
	int			npre;
	CpTrie		raw_trie;		/* normalized=false added tokens */
	CpTrie		norm_trie;		/* normalized=true ones, in normalized form */
	bool		have_raw;
	bool		have_norm;
};

/* growable int32 output */
typedef struct CpIdBuf
{
	int32_t    *ids;
	int			n;
	int			cap;
	int			max;
} CpIdBuf;

/* growable byte string */
typedef struct CpStr
{
	char	   *s;
	size_t		n;
	size_t		cap;
} CpStr;

/*
 * idbuf_push
 *		Append an id; CP_ERR_LIMIT past max, CP_ERR_NOMEM.
 */
static CpStatus
idbuf_push(CpIdBuf *b, int32_t id, CpError *err)
{
	if (b->max > 0 && b->n >= b->max)
		return cp_error(err, CP_ERR_LIMIT, "text has more than %d tokens", b->max);
	if (b->n == b->cap)
	{
		int			nc = b->cap ? (b->cap > INT_MAX / 2 ? INT_MAX : b->cap * 2) : 64;
		int32_t    *ni;

		if (nc <= b->n)
			return cp_error(err, CP_ERR_LIMIT, "text has too many tokens");
		ni = realloc(b->ids, (size_t) nc * sizeof(int32_t));
		if (ni == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory tokenizing");
		b->ids = ni;
		b->cap = nc;
	}
	b->ids[b->n++] = id;
	return CP_OK;
}

/*
 * str_append
 *		Append n bytes.
 */
static bool
str_append(CpStr *s, const char *p, size_t n)
{
	if (s->n + n + 1 > s->cap)
	{
		size_t		nc = s->cap ? s->cap : 64;
		char	   *ns;

		while (s->n + n + 1 > nc)
		{
			if (nc > SIZE_MAX / 2)
				return false;
			nc *= 2;
		}
		ns = realloc(s->s, nc);
		if (ns == NULL)
			return false;
		s->s = ns;
		s->cap = nc;
	}
	memcpy(s->s + s->n, p, n);
	s->n += n;
	s->s[s->n] = '\0';
	return true;
}

/* ---------------------------------------------------------------------
 * UTF-8
 * --------------------------------------------------------------------- */

/*
 * utf8_char_len
 *		Length of the valid UTF-8 scalar at s (n bytes left), 0 if invalid
 *		(overlong, surrogate, > U+10FFFF, truncated), as Rust's str rules.
 */
static int
utf8_char_len(const uint8_t *s, size_t n)
{
	uint8_t		c = s[0];

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0;
	if (c < 0xe0)
		return (n >= 2 && (s[1] & 0xc0) == 0x80) ? 2 : 0;
	if (c < 0xf0)
	{
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0;			/* overlong */
		if (c == 0xed && s[1] >= 0xa0)
			return 0;			/* surrogate */
		return 3;
	}
	if (c < 0xf5)
	{
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0;			/* overlong */
		if (c == 0xf4 && s[1] >= 0x90)
			return 0;			/* > U+10FFFF */
		return 4;
	}
	return 0;
}

/*
 * utf8_validate
 *		Offset of the first invalid byte, or -1 if s is valid UTF-8.
 */
static long
utf8_validate(const char *s, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		int			l = utf8_char_len((const uint8_t *) s + i, n - i);

		if (l == 0)
			return (long) i;
		i += l;
	}
	return -1;
}

/* ---------------------------------------------------------------------
 * trie
 * --------------------------------------------------------------------- */

/*
 * trie_free
 *		Release a trie.
 */
static void
trie_free(CpTrie *t)
{
	pairmap_free(&t->edges);
	free(t->terminal);
	memset(t, 0, sizeof(*t));
}

/*
 * trie_init
 *		Trie with room for tokens of total_bytes bytes in all.
 */
static bool
trie_init(CpTrie *t, size_t total_bytes)
{
	memset(t, 0, sizeof(*t));
	if (!pairmap_init(&t->edges, total_bytes + 1))
		return false;
	t->capnodes = (int32_t) (total_bytes + 1);
	t->terminal = malloc(t->capnodes * sizeof(int32_t));
	if (t->terminal == NULL)
		return false;
	t->terminal[0] = -1;
	t->nnodes = 1;
	return true;
}

/*
 * trie_add
 *		Insert s -> id (the caller sized the trie for all bytes; a later
 *		identical string overwrites).
 */
static void
trie_add(CpTrie *t, const char *s, size_t n, int32_t id)
{
	int32_t		node = 0;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		int32_t		rank;
		int32_t		child;

		if (!pairmap_get(&t->edges, node, (uint8_t) s[i], &rank, &child))
		{
			child = t->nnodes++;
			t->terminal[child] = -1;
			pairmap_put(&t->edges, node, (uint8_t) s[i], 0, child);
		}
		node = child;
	}
	t->terminal[node] = id;
}

/*
 * trie_longest
 *		Longest token starting at s (n bytes left): its length, id in *id;
 *		0 if none.
 */
static size_t
trie_longest(const CpTrie *t, const char *s, size_t n, int32_t *id)
{
	int32_t		node = 0;
	size_t		best = 0;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		int32_t		rank;
		int32_t		child;

		if (!pairmap_get(&t->edges, node, (uint8_t) s[i], &rank, &child))
			break;
		node = child;
		if (t->terminal[node] >= 0)
		{
			best = i + 1;
			*id = t->terminal[node];
		}
	}
	return best;
}

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
	strmap_free(&tok->vocab);
	strmap_free(&tok->added);
	free(tok->vocab_ids);
	pairmap_free(&tok->merges);
	for (i = 0; i < tok->nnorm; i++)
	{
		free(tok->norm[i].pattern);
		free(tok->norm[i].content);
	}
	free(tok->norm);
	for (i = 0; i < tok->npre; i++)
		free(tok->pre[i].pattern);
	free(tok->pre);
	trie_free(&tok->raw_trie);
	trie_free(&tok->norm_trie);
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
 *		Accept null, Replace(literal), Prepend, Sequence of those.
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
	return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: normalizer \"%.64s\" is not supported (expected Replace, Prepend or Sequence)", type);
}

/*
 * load_pre_tokenizer
 *		Accept null, Split(literal, invert=false), Sequence of those.
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

		st = get_literal_pattern(json_object_get(p, "pattern"), "Split pre_tokenizer", &pat, err);
		if (st != CP_OK)
			return st;
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
		return CP_OK;
	}
	return cp_error(err, CP_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer \"%.64s\" is not supported (expected Split or Sequence)", type);
}

/*
 * normalize
 *		Apply the normalizer steps to s[0..n) into out (reset first).
 */
static bool
normalize(const CpTokenizer *tok, const char *s, size_t n, CpStr *out)
{
	CpStr		tmp = {0};
	int			k;

	out->n = 0;
	if (!str_append(out, s, n))
		return false;
	for (k = 0; k < tok->nnorm; k++)
	{
		const CpNormStep *st = &tok->norm[k];

		tmp.n = 0;
		if (!str_append(&tmp, "", 0))
			goto fail;
		if (st->kind == CP_NORM_PREPEND)
		{
			if (out->n > 0 &&
				(!str_append(&tmp, st->content, strlen(st->content)) ||
				 !str_append(&tmp, out->s, out->n)))
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
					if (!str_append(&tmp, out->s + start, i - start) ||
						!str_append(&tmp, st->content, clen))
						goto fail;
					i += plen;
					start = i;
				}
				else
					i++;
			}
			if (!str_append(&tmp, out->s + start, out->n - start))
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

	if (!strmap_init(&tok->vocab, json_object_size(vocab)))
		return cp_error(err, CP_ERR_NOMEM, "out of memory loading the vocabulary");
	json_object_foreach(vocab, key, val)
	{
		json_int_t	id;

		if (!json_is_integer(val) || (id = json_integer_value(val)) < 0 || id >= CP_TOK_MAX_ID)
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: vocab entry \"%.64s\" has no valid id", key);
		if (!strmap_put(&tok->vocab, key, strlen(key), (int32_t) id))
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
		tok->byte_ids[i] = strmap_get(&tok->vocab, code, strlen(code));
	}
	v = json_object_get(model, "unk_token");
	tok->unk_id = -1;
	if (json_is_string(v))
	{
		tok->unk_id = strmap_get(&tok->vocab, json_string_value(v), json_string_length(v));
		tok->unk_missing = (tok->unk_id < 0);
	}
	else if (v != NULL && !json_is_null(v))
		return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: unk_token is not a string");

	if (json_array_size(merges) > (size_t) INT32_MAX)
		return cp_error(err, CP_ERR_LIMIT, "tokenizer.json: too many merges");
	if (!pairmap_init(&tok->merges, json_array_size(merges)))
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
		ida = strmap_get(&tok->vocab, a, alen);
		idb = strmap_get(&tok->vocab, b, blen);
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
		idn = strmap_get(&tok->vocab, buf, alen + blen);
		if (ida < 0 || idb < 0 || idn < 0)
		{
			st = cp_error(err, CP_ERR_FORMAT, "tokenizer.json: merge %zu uses a token that is not in the vocabulary", i);
			goto done;
		}
		pairmap_put(&tok->merges, ida, idb, (int32_t) i, idn);
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
	if (!strmap_init(&tok->added, arr ? json_array_size(arr) : 0))
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
		vid = strmap_get(&tok->vocab, c, clen);
		if (vid >= 0 && vid != id)
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: added token \"%.64s\" has id %lld but the vocabulary says %d",
							c, (long long) id, vid);
		/* HF would renumber such a token; a consistent file never has one */
		if (vid < 0 && id < tok->nvocab_ids && tok->vocab_ids[id / 8] & (1 << (id % 8)))
			return cp_error(err, CP_ERR_FORMAT, "tokenizer.json: added token \"%.64s\" has id %lld, which the vocabulary gives to another token",
							c, (long long) id);
		if (!strmap_put(&tok->added, c, clen, (int32_t) id))
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		if (json_is_false(json_object_get(t, "normalized")))
			raw_bytes += clen;
		else
			norm_bytes += clen * 3 + 64;	/* normalized form may grow */
	}
	if (!trie_init(&tok->raw_trie, raw_bytes) || !trie_init(&tok->norm_trie, norm_bytes))
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
			trie_add(&tok->raw_trie, json_string_value(jc), clen, id);
			tok->have_raw = true;
		}
		else
		{
			if (!normalize(tok, json_string_value(jc), clen, &ns))
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
			trie_add(&tok->norm_trie, ns.s, ns.n, id);
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
	id = strmap_get(&tok->added, token, strlen(token));
	if (id >= 0)
		return id;
	return strmap_get(&tok->vocab, token, strlen(token));
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
	if (n > (size_t) INT32_MAX)
		return cp_error(err, CP_ERR_LIMIT, "text segment too long");
	if (tok->ignore_merges)
	{
		int32_t		id = strmap_get(&tok->vocab, s, n);

		if (id >= 0)
			return idbuf_push(out, id, err);
	}
	w->n = 0;
	h->n = 0;
	while (i < n)
	{
		int			l = utf8_char_len((const uint8_t *) s + i, n - i);
		int32_t		id;

		if (l == 0)
			return cp_error(err, CP_ERR_FORMAT, "text is not valid UTF-8");
		id = strmap_get(&tok->vocab, s + i, (size_t) l);
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

		if (pairmap_get(&tok->merges, w->c[k], w->c[k + 1], &m.rank, &m.newid))
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
		if (!pairmap_get(&tok->merges, w->c[pos], w->c[nx], &rank, &newid) || newid != top.newid)
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

			if (pairmap_get(&tok->merges, w->c[pv], w->c[pos], &m.rank, &m.newid))
			{
				m.pos = pv;
				if (!heap_push(h, m))
					goto nomem;
			}
		}
		if (w->next[pos] >= 0)
		{
			CpMerge		m;

			if (pairmap_get(&tok->merges, w->c[pos], w->c[w->next[pos]], &m.rank, &m.newid))
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
			CpStatus	st = idbuf_push(out, w->c[k], err);

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
	while (i + plen <= n)
	{
		size_t		mend;

		if (memcmp(s + i, ps->pattern, plen) != 0)
		{
			i++;
			continue;
		}
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
	if (!normalize(tok, s, n, &sc->norm))
		return cp_error(err, CP_ERR_NOMEM, "out of memory tokenizing");
	t = sc->norm.s;
	tn = sc->norm.n;
	/* the norm buffer is reused by nothing below: safe to read from */
	if (tok->have_norm)
	{
		while (i < tn)
		{
			int32_t		id;
			size_t		m = trie_longest(&tok->norm_trie, t + i, tn - i, &id);

			if (m == 0)
			{
				i++;
				continue;
			}
			st = pre_tokenize_and_bpe(tok, 0, t + start, i - start, sc, out, err);
			if (st == CP_OK)
				st = idbuf_push(out, id, err);
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
	bad = utf8_validate(text, len);
	if (bad >= 0)
		return cp_error(err, CP_ERR_FORMAT, "text is not valid UTF-8 (byte %ld)", bad);
	memset(&sc, 0, sizeof(sc));
	out.max = max_tokens;
	if (tok->have_raw)
	{
		while (i < len)
		{
			int32_t		id;
			size_t		m = trie_longest(&tok->raw_trie, text + i, len - i, &id);

			if (m == 0)
			{
				i++;
				continue;
			}
			st = encode_normal_segment(tok, text + start, i - start, &sc, &out, err);
			if (st == CP_OK)
				st = idbuf_push(&out, id, err);
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
	if (!str_append(&s, "<bos>", 5) ||
		!str_append(&s, cfg->prompt.visual_prompt_prefix, strlen(cfg->prompt.visual_prompt_prefix)) ||
		!str_append(&s, "\n", 1))
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
 *		Tokens of "<bos>" + query_prefix + text + augmentation x k + "\n"
 *		(ColPaliProcessor.process_queries).
 */
CpStatus
cp_build_query_prompt(const CpTokenizer *tok, const CpModelConfig *cfg,
					  const char *text, size_t len,
					  int32_t **ids, int *n_ids, CpError *err)
{
	CpStr		s = {0};
	CpStatus	st;
	bool		ok;
	int			i;

	*ids = NULL;
	*n_ids = 0;
	if (tok == NULL || cfg == NULL || (text == NULL && len > 0))
		return cp_error(err, CP_ERR_INVALID_ARG, "no tokenizer, configuration or text given");
	if (cp_tokenizer_token_id(tok, "<bos>") < 0)
		return cp_error(err, CP_ERR_FORMAT, "tokenizer has no <bos> token");
	/* report bad bytes at their offset in the caller's text */
	{
		long		bad = utf8_validate(text ? text : "", len);

		if (bad >= 0)
			return cp_error(err, CP_ERR_FORMAT, "query text is not valid UTF-8 (byte %ld)", bad);
	}
	if (cfg->prompt.query_augmentation_tokens < 0 || cfg->prompt.query_augmentation_tokens > 4096)
		return cp_error(err, CP_ERR_INVALID_ARG, "invalid number of query augmentation tokens");
	ok = str_append(&s, "<bos>", 5) &&
		str_append(&s, cfg->prompt.query_prefix, strlen(cfg->prompt.query_prefix)) &&
		str_append(&s, text ? text : "", len);
	for (i = 0; ok && i < cfg->prompt.query_augmentation_tokens; i++)
		ok = str_append(&s, cfg->prompt.query_augmentation_token, strlen(cfg->prompt.query_augmentation_token));
	ok = ok && str_append(&s, "\n", 1);
	if (!ok)
	{
		free(s.s);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	st = encode_cstr(tok, &s, ids, n_ids, err);
	free(s.s);
	return st;
}
