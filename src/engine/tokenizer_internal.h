/*
 * tokenizer_internal.h
 *	  The tokenizer's data structures, shared by its loader
 *	  (tokenizer_load.c), its tables (tokenizer_tables.c), the BPE encoder
 *	  (tokenizer.c) and the prompt builders (prompt_*.c).  Others use
 *	  tokenizer.h.
 */
#ifndef CP_TOKENIZER_INTERNAL_H
#define CP_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* Added tokens longer than this are refused (matching cost is per byte). */
#define CP_TOK_MAX_ADDED_LEN 4096
/* Largest token id accepted (keeps id -> string tables bounded). */
#define CP_TOK_MAX_ID (1 << 24)

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

typedef enum CpNormKind
{
	CP_NORM_REPLACE,
	CP_NORM_PREPEND,
	CP_NORM_NFC					/* canonical composition (utf8proc) */
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
	char	   *pattern;		/* literal (when regex is NULL) */
	void	   *regex;			/* compiled {"Regex": ...} (pcre2_code), or NULL */
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
	bool		byte_level;		/* ByteLevel pre-tokenizer: bytes -> GPT-2 code points before BPE */
	char		bl_enc[256][2]; /* byte -> UTF-8 of its code point */
	uint8_t		bl_len[256];
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


/* string -> id map (tokenizer_tables.c); get returns -1 when absent */
extern void cp_strmap_free(CpStrMap *m);
extern bool cp_strmap_init(CpStrMap *m, size_t n);
extern int32_t cp_strmap_get(const CpStrMap *m, const char *s, size_t n);
extern bool cp_strmap_put(CpStrMap *m, const char *s, size_t n, int32_t v);

/* (id, id) -> (rank, new id) map */
extern void cp_pairmap_free(CpPairMap *m);
extern bool cp_pairmap_init(CpPairMap *m, size_t n);
extern void cp_pairmap_put(CpPairMap *m, int32_t a, int32_t b, int32_t rank,
						   int32_t newid);

/*
 * cp_hash_u64
 *		Mixer for pair keys (splitmix64 finaliser).
 */
static inline uint64_t
cp_hash_u64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/*
 * cp_pairmap_get
 *		Rank and new id of the merge (a, b); false if there is none.
 */
static inline bool
cp_pairmap_get(const CpPairMap *m, int32_t a, int32_t b, int32_t *rank, int32_t *newid)
{
	uint64_t	k = ((uint64_t) (uint32_t) a << 32) | (uint32_t) b;
	uint32_t	i = (uint32_t) cp_hash_u64(k) & m->mask;

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

/* byte trie of added tokens, leftmost-longest match */
extern void cp_trie_free(CpTrie *t);
extern bool cp_trie_init(CpTrie *t, size_t total_bytes);
extern void cp_trie_add(CpTrie *t, const char *s, size_t n, int32_t id);
extern size_t cp_trie_longest(const CpTrie *t, const char *s, size_t n,
							  int32_t *id);

/* growable outputs */
extern CpStatus cp_idbuf_push(CpIdBuf *b, int32_t id, CpError *err);
extern bool cp_str_append(CpStr *s, const char *p, size_t n);

/* UTF-8: length of the scalar at s (0 if invalid); offset of the first invalid byte or -1 */
extern int	cp_utf8_char_len(const uint8_t *s, size_t n);
extern long cp_utf8_validate(const char *s, size_t n);

/* The normalizer steps applied to s, into out (tokenizer.c). */
extern bool cp_tok_normalize(const CpTokenizer *tok, const char *s, size_t n,
							 CpStr *out);

/* byte-level BPE pieces (tokenizer_bytelevel.c) */
extern bool cp_tok_nfc(const char *s, size_t n, CpStr *out);
extern CpStatus cp_tok_regex_compile(const char *pattern, void **code, CpError *err);
extern void cp_tok_regex_free(void *code);
extern int	cp_tok_regex_find(const void *code, const char *s, size_t n,
							  size_t from, size_t *ms, size_t *me);
extern void cp_tok_byte_level_init(CpTokenizer *tok);
extern bool cp_tok_byte_level(const CpTokenizer *tok, const char *s, size_t n,
							  CpStr *out);

#endif							/* CP_TOKENIZER_INTERNAL_H */
