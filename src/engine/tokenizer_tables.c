/*
 * tokenizer_tables.c
 *	  The lookup structures of the tokenizer: open-addressing hash maps
 *	  (string -> id for the vocabulary and added tokens, id pair -> merge
 *	  rank), the byte trie of added tokens, growable buffers and UTF-8
 *	  checks.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

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
 * cp_strmap_free
 *		Release a string map.
 */
void
cp_strmap_free(CpStrMap *m)
{
	free(m->slots);
	free(m->off);
	free(m->len);
	free(m->val);
	free(m->arena);
	memset(m, 0, sizeof(*m));
}

/*
 * cp_strmap_init
 *		Table for about n entries.
 */
bool
cp_strmap_init(CpStrMap *m, size_t n)
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
 * cp_strmap_get
 *		Value of s, or -1.
 */
int32_t
cp_strmap_get(const CpStrMap *m, const char *s, size_t n)
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
 * cp_strmap_put
 *		Insert or overwrite s -> v.  Returns false on out-of-memory.
 */
bool
cp_strmap_put(CpStrMap *m, const char *s, size_t n, int32_t v)
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
 * cp_pairmap_free
 *		Release a pair map.
 */
void
cp_pairmap_free(CpPairMap *m)
{
	free(m->keys);
	free(m->rank);
	free(m->newid);
	free(m->used);
	memset(m, 0, sizeof(*m));
}

/*
 * cp_pairmap_init
 *		Fixed-size table for up to n pairs (never grows: callers size it).
 */
bool
cp_pairmap_init(CpPairMap *m, size_t n)
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
 * cp_pairmap_put
 *		Insert or overwrite (later merges win, as in HF's HashMap collect).
 */
void
cp_pairmap_put(CpPairMap *m, int32_t a, int32_t b, int32_t rank, int32_t newid)
{
	uint64_t	k = ((uint64_t) (uint32_t) a << 32) | (uint32_t) b;
	uint32_t	i = (uint32_t) cp_hash_u64(k) & m->mask;

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
 * cp_idbuf_push
 *		Append an id; CP_ERR_LIMIT past max, CP_ERR_NOMEM.
 */
CpStatus
cp_idbuf_push(CpIdBuf *b, int32_t id, CpError *err)
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
 * cp_str_append
 *		Append n bytes.
 */
bool
cp_str_append(CpStr *s, const char *p, size_t n)
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
 * cp_utf8_char_len
 *		Length of the valid UTF-8 scalar at s (n bytes left), 0 if invalid
 *		(overlong, surrogate, > U+10FFFF, truncated), as Rust's str rules.
 */
int
cp_utf8_char_len(const uint8_t *s, size_t n)
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
 * cp_utf8_validate
 *		Offset of the first invalid byte, or -1 if s is valid UTF-8.
 */
long
cp_utf8_validate(const char *s, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		int			l = cp_utf8_char_len((const uint8_t *) s + i, n - i);

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
 * cp_trie_free
 *		Release a trie.
 */
void
cp_trie_free(CpTrie *t)
{
	cp_pairmap_free(&t->edges);
	free(t->terminal);
	memset(t, 0, sizeof(*t));
}

/*
 * cp_trie_init
 *		Trie with room for tokens of total_bytes bytes in all.
 */
bool
cp_trie_init(CpTrie *t, size_t total_bytes)
{
	memset(t, 0, sizeof(*t));
	if (!cp_pairmap_init(&t->edges, total_bytes + 1))
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
 * cp_trie_add
 *		Insert s -> id (the caller sized the trie for all bytes; a later
 *		identical string overwrites).
 */
void
cp_trie_add(CpTrie *t, const char *s, size_t n, int32_t id)
{
	int32_t		node = 0;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		int32_t		rank;
		int32_t		child;

		if (!cp_pairmap_get(&t->edges, node, (uint8_t) s[i], &rank, &child))
		{
			child = t->nnodes++;
			t->terminal[child] = -1;
			cp_pairmap_put(&t->edges, node, (uint8_t) s[i], 0, child);
		}
		node = child;
	}
	t->terminal[node] = id;
}

/*
 * cp_trie_longest
 *		Longest token starting at s (n bytes left): its length, id in *id;
 *		0 if none.
 */
size_t
cp_trie_longest(const CpTrie *t, const char *s, size_t n, int32_t *id)
{
	int32_t		node = 0;
	size_t		best = 0;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		int32_t		rank;
		int32_t		child;

		if (!cp_pairmap_get(&t->edges, node, (uint8_t) s[i], &rank, &child))
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

