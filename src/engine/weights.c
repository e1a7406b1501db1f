/*
 * weights.c
 *	  Memory-mapped safetensors checkpoints (single file or sharded), with an
 *	  optional PEFT LoRA adapter merged at load.
 *
 * A safetensors file is: u64 little-endian header length n, n bytes of JSON
 * ({"name": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...,
 * "__metadata__": {...}}), then the data section.  Everything in the header
 * is untrusted: the JSON is parsed by jansson from a bounded buffer, every
 * dimension, byte count and offset is checked with overflow-safe arithmetic
 * against the real file size, and overlapping tensors are rejected, before
 * any pointer into the mapping is formed.
 *
 * Files are mapped PROT_READ/MAP_SHARED so that several backends share the
 * weights through the page cache; nothing ever writes into a mapping.
 * Tensors whose data is not aligned to their element size (possible with an
 * odd header length) and tensors changed by a LoRA merge get owned copies.
 *
 * Every tensor also gets a canonical name with the layout prefixes of
 * docs/encoder.md#tensor-names removed; lookups match both names by suffix at "."
 * boundaries, and LoRA modules are paired with base tensors through it (an
 * adapter trained on one layout may sit on a base saved in another).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "weights.h"

/* Same cap as the safetensors reference implementation. */
#define CP_ST_MAX_HEADER ((uint64_t) 100 * 1024 * 1024)
/* More tensors than any real checkpoint; keeps allocations bounded. */
#define CP_ST_MAX_TENSORS 1000000
#define CP_ST_MAX_ANY_DIMS 64

typedef struct CpMapping
{
	void	   *addr;
	size_t		size;
} CpMapping;

struct CpWeights
{
	CpTensor   *tensors;
	char	  **canon;			/* canonical name of each tensor (malloc'd) */
	int			count;
	int			cap;
	CpMapping  *maps;
	int			nmaps;
	void	  **owned;			/* merged / realigned data buffers */
	int			nowned;
};

typedef struct CpDTypeInfo
{
	const char *name;
	int			size;
	int			cp;				/* CpDType, or -1 when validated but not kept */
} CpDTypeInfo;

static const CpDTypeInfo dtype_table[] = {
	{"F32", 4, CP_DTYPE_F32},
	{"F16", 2, CP_DTYPE_F16},
	{"BF16", 2, CP_DTYPE_BF16},
	{"F64", 8, -1},
	{"I64", 8, -1},
	{"U64", 8, -1},
	{"I32", 4, -1},
	{"U32", 4, -1},
	{"I16", 2, -1},
	{"U16", 2, -1},
	{"I8", 1, -1},
	{"U8", 1, -1},
	{"BOOL", 1, -1},
	{"F8_E4M3", 1, -1},
	{"F8_E5M2", 1, -1},
};

/*
 * cp_dtype_name
 *		Safetensors spelling of a dtype.
 */
const char *
cp_dtype_name(CpDType dtype)
{
	switch (dtype)
	{
		case CP_DTYPE_F32:
			return "F32";
		case CP_DTYPE_F16:
			return "F16";
		case CP_DTYPE_BF16:
			return "BF16";
	}
	return "?";
}

/*
 * cp_dtype_size
 *		Bytes per element.
 */
size_t
cp_dtype_size(CpDType dtype)
{
	return dtype == CP_DTYPE_F32 ? 4 : 2;
}

/*
 * cp_tensor_to_f32
 *		Convert a range of elements to float32.
 */
void
cp_tensor_to_f32(const CpTensor *t, int64_t offset, int64_t count, float *dst)
{
	int64_t		i;

	if (t == NULL || offset < 0 || count < 0 || offset > t->numel ||
		count > t->numel - offset)
		return;
	switch (t->dtype)
	{
		case CP_DTYPE_F32:
			memcpy(dst, (const float *) t->data + offset, (size_t) count * sizeof(float));
			break;
		case CP_DTYPE_BF16:
			{
				const uint16_t *src = (const uint16_t *) t->data + offset;

				cp_bf16_to_f32_n(src, dst, (size_t) count);
			}
			break;
		case CP_DTYPE_F16:
			{
				const uint16_t *src = (const uint16_t *) t->data + offset;

				for (i = 0; i < count; i++)
					dst[i] = cp_f16_to_f32(src[i]);
			}
			break;
	}
}

/*
 * cp_tensor_load_f32
 *		Whole tensor converted into a fresh float32 array.
 */
CpStatus
cp_tensor_load_f32(const CpTensor *t, float **out, CpError *err)
{
	float	   *buf;

	*out = NULL;
	if (t == NULL)
		return cp_error(err, CP_ERR_INVALID_ARG, "no tensor given");
	if ((uint64_t) t->numel > SIZE_MAX / sizeof(float))
		return cp_error(err, CP_ERR_NOMEM, "tensor \"%s\" too large", t->name);
	buf = malloc(t->numel > 0 ? (size_t) t->numel * sizeof(float) : 1);
	if (buf == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory converting tensor \"%s\"",
						t->name);
	cp_tensor_to_f32(t, 0, t->numel, buf);
	*out = buf;
	return CP_OK;
}

/* ---------------------------------------------------------------------
 * header parsing
 * --------------------------------------------------------------------- */

typedef struct CpSpan
{
	uint64_t	begin;
	uint64_t	end;
	const char *name;
} CpSpan;

/*
 * span_cmp
 *		qsort order of data spans: by begin, then end.
 */
static int
span_cmp(const void *a, const void *b)
{
	const CpSpan *x = a;
	const CpSpan *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/*
 * tensor_offset_cmp
 *		qsort order of parsed tensors: by data offset.
 */
static int
tensor_offset_cmp(const void *a, const void *b)
{
	uintptr_t	x = (uintptr_t) ((const CpTensor *) a)->data;
	uintptr_t	y = (uintptr_t) ((const CpTensor *) b)->data;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * cp_safetensors_free_header
 *		Free what cp_safetensors_parse_header returned.
 */
void
cp_safetensors_free_header(CpTensor *tensors, int count)
{
	int			i;

	if (tensors == NULL)
		return;
	for (i = 0; i < count; i++)
		free((char *) tensors[i].name);
	free(tensors);
}

/*
 * parse_one_entry
 *		Validate one header entry; fill *t (when the dtype is kept) and *span.
 *		Returns CP_OK, with *keep telling whether the tensor is F32/F16/BF16.
 */
static CpStatus
parse_one_entry(const char *key, json_t *val, uint64_t data_size,
				CpTensor *t, CpSpan *span, bool *keep, CpError *err)
{
	json_t	   *jdtype = json_object_get(val, "dtype");
	json_t	   *jshape = json_object_get(val, "shape");
	json_t	   *joffs = json_object_get(val, "data_offsets");
	const CpDTypeInfo *info = NULL;
	const char *dts;
	size_t		ndim;
	size_t		i;
	uint64_t	numel = 1;
	uint64_t	nbytes;
	json_int_t	b;
	json_int_t	e;

	if (!json_is_object(val))
		return cp_error(err, CP_ERR_FORMAT, "safetensors header: entry \"%s\" is not an object", key);
	if (!json_is_string(jdtype))
		return cp_error(err, CP_ERR_FORMAT, "safetensors header: tensor \"%s\" has no string \"dtype\"", key);
	dts = json_string_value(jdtype);
	for (i = 0; i < sizeof(dtype_table) / sizeof(dtype_table[0]); i++)
		if (strcmp(dts, dtype_table[i].name) == 0)
			info = &dtype_table[i];
	if (info == NULL)
		return cp_error(err, CP_ERR_UNSUPPORTED, "safetensors header: tensor \"%s\" has unknown dtype \"%.32s\"",
						key, dts);
	if (!json_is_array(jshape))
		return cp_error(err, CP_ERR_FORMAT, "safetensors header: tensor \"%s\" has no \"shape\" array", key);
	ndim = json_array_size(jshape);
	if (ndim > CP_ST_MAX_ANY_DIMS || (info->cp >= 0 && ndim > CP_MAX_DIMS))
		return cp_error(err, CP_ERR_UNSUPPORTED, "safetensors header: tensor \"%s\" has %zu dimensions (at most %d supported)",
						key, ndim, info->cp >= 0 ? CP_MAX_DIMS : CP_ST_MAX_ANY_DIMS);
	memset(t, 0, sizeof(*t));
	for (i = 0; i < ndim; i++)
	{
		json_t	   *d = json_array_get(jshape, i);
		json_int_t	v;

		if (!json_is_integer(d) || (v = json_integer_value(d)) < 0)
			return cp_error(err, CP_ERR_FORMAT, "safetensors header: tensor \"%s\" has an invalid shape entry %zu", key, i);
		if (v != 0 && numel > (uint64_t) INT64_MAX / (uint64_t) v)
			return cp_error(err, CP_ERR_FORMAT, "safetensors header: tensor \"%s\" shape overflows", key);
		numel *= (uint64_t) v;
		if (i < CP_MAX_DIMS)
			t->shape[i] = (int64_t) v;
	}
	if (numel > (uint64_t) INT64_MAX / (uint64_t) info->size)
		return cp_error(err, CP_ERR_FORMAT, "safetensors header: tensor \"%s\" byte size overflows", key);
	nbytes = numel * (uint64_t) info->size;
	if (!json_is_array(joffs) || json_array_size(joffs) != 2 ||
		!json_is_integer(json_array_get(joffs, 0)) ||
		!json_is_integer(json_array_get(joffs, 1)))
		return cp_error(err, CP_ERR_FORMAT, "safetensors header: tensor \"%s\" has no [begin, end] \"data_offsets\"", key);
	b = json_integer_value(json_array_get(joffs, 0));
	e = json_integer_value(json_array_get(joffs, 1));
	if (b < 0 || e < b || (uint64_t) e > data_size)
		return cp_error(err, CP_ERR_FORMAT, "safetensors header: tensor \"%s\" data_offsets [%lld, %lld] outside the data section (%llu bytes)",
						key, (long long) b, (long long) e, (unsigned long long) data_size);
	if ((uint64_t) (e - b) != nbytes)
		return cp_error(err, CP_ERR_FORMAT, "safetensors header: tensor \"%s\" needs %llu bytes for its shape and dtype but data_offsets span %llu",
						key, (unsigned long long) nbytes, (unsigned long long) (e - b));
	span->begin = (uint64_t) b;
	span->end = (uint64_t) e;
	span->name = key;
	*keep = info->cp >= 0;
	if (*keep)
	{
		t->dtype = (CpDType) info->cp;
		t->ndim = (int) ndim;
		t->numel = (int64_t) numel;
		t->nbytes = (size_t) nbytes;
		t->data = (const void *) (uintptr_t) b;
	}
	return CP_OK;
}

/*
 * cp_safetensors_parse_header
 *		Parse and validate a safetensors header (see weights.h).
 */
CpStatus
cp_safetensors_parse_header(const uint8_t *file, size_t file_size,
							CpTensor **tensors, int *count,
							size_t *data_start, CpError *err)
{
	uint64_t	hlen = 0;
	uint64_t	data_size;
	json_t	   *root;
	json_error_t jerr;
	const char *key;
	json_t	   *val;
	size_t		nent;
	CpTensor   *out = NULL;
	CpSpan	   *spans = NULL;
	int			nout = 0;
	int			nspans = 0;
	CpStatus	st = CP_OK;
	int			i;

	*tensors = NULL;
	*count = 0;
	if (file == NULL || file_size < 8)
		return cp_error(err, CP_ERR_FORMAT, "safetensors: file of %zu bytes is too small for a header", file_size);
	for (i = 7; i >= 0; i--)
		hlen = (hlen << 8) | file[i];
	if (hlen > file_size - 8)
		return cp_error(err, CP_ERR_FORMAT, "safetensors: header length %llu exceeds the file size (%zu bytes)",
						(unsigned long long) hlen, file_size);
	if (hlen > CP_ST_MAX_HEADER)
		return cp_error(err, CP_ERR_LIMIT, "safetensors: header length %llu is over the 100 MB limit",
						(unsigned long long) hlen);
	if (hlen < 2)
		return cp_error(err, CP_ERR_FORMAT, "safetensors: header length %llu is too small", (unsigned long long) hlen);
	data_size = (uint64_t) file_size - 8 - hlen;

	root = json_loadb((const char *) file + 8, (size_t) hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return cp_error(err, CP_ERR_FORMAT, "safetensors: header is not valid JSON: %s (at byte %d)",
						jerr.text, jerr.position);
	if (!json_is_object(root))
	{
		json_decref(root);
		return cp_error(err, CP_ERR_FORMAT, "safetensors: header is not a JSON object");
	}
	nent = json_object_size(root);
	if (nent > CP_ST_MAX_TENSORS)
	{
		json_decref(root);
		return cp_error(err, CP_ERR_LIMIT, "safetensors: %zu tensors is too many", nent);
	}
	out = calloc(nent + 1, sizeof(CpTensor));
	spans = calloc(nent + 1, sizeof(CpSpan));
	if (out == NULL || spans == NULL)
	{
		st = cp_error(err, CP_ERR_NOMEM, "safetensors: out of memory for %zu header entries", nent);
		goto done;
	}
	json_object_foreach(root, key, val)
	{
		bool		keep = false;

		if (strcmp(key, "__metadata__") == 0)
		{
			if (!json_is_object(val))
			{
				st = cp_error(err, CP_ERR_FORMAT, "safetensors: \"__metadata__\" is not an object");
				goto done;
			}
			continue;
		}
		if (key[0] == '\0')
		{
			st = cp_error(err, CP_ERR_FORMAT, "safetensors header: tensor with an empty name");
			goto done;
		}
		st = parse_one_entry(key, val, data_size, &out[nout], &spans[nspans], &keep, err);
		if (st != CP_OK)
			goto done;
		nspans++;
		if (keep)
		{
			out[nout].name = strdup(key);
			if (out[nout].name == NULL)
			{
				st = cp_error(err, CP_ERR_NOMEM, "safetensors: out of memory");
				goto done;
			}
			nout++;
		}
	}

	/* no two non-empty tensors may share bytes */
	qsort(spans, nspans, sizeof(CpSpan), span_cmp);
	{
		uint64_t	maxend = 0;
		const char *maxname = NULL;

		for (i = 0; i < nspans; i++)
		{
			if (spans[i].begin == spans[i].end)
				continue;
			if (maxname != NULL && spans[i].begin < maxend)
			{
				st = cp_error(err, CP_ERR_FORMAT, "safetensors header: tensors \"%s\" and \"%s\" overlap",
							  maxname, spans[i].name);
				goto done;
			}
			maxend = spans[i].end;
			maxname = spans[i].name;
		}
	}
	qsort(out, nout, sizeof(CpTensor), tensor_offset_cmp);
	*tensors = out;
	*count = nout;
	if (data_start != NULL)
		*data_start = (size_t) (8 + hlen);
	out = NULL;

done:
	if (out != NULL)
		cp_safetensors_free_header(out, nout);
	free(spans);
	json_decref(root);
	return st;
}

/* ---------------------------------------------------------------------
 * names
 * --------------------------------------------------------------------- */

/*
 * strip_prefix
 *		If s starts with p, return the rest, else s.
 */
static const char *
strip_prefix(const char *s, const char *p)
{
	size_t		n = strlen(p);

	return strncmp(s, p, n) == 0 ? s + n : s;
}

/*
 * canonical_name
 *		Tensor name without the layout prefixes of docs/encoder.md#tensor-names (malloc'd):
 *		"base_model.model.", then "vlm." or "model.", then "model.";
 *		"language_model.model.X" -> "language_model.X"; the vision tower
 *		always with its "vision_model." level (transformers 5 saves
 *		"vision_tower.X" without it); "language_model.lm_head.weight" ->
 *		"lm_head.weight".
 */
static char *
canonical_name(const char *name)
{
	const char *s = strip_prefix(name, "base_model.model.");
	const char *t;
	const char *ins = NULL;		/* text to put back in front of rest */
	const char *rest;
	char	   *out;
	size_t		n;

	t = strip_prefix(s, "vlm.");
	if (t == s)
		t = strip_prefix(s, "model.");
	s = strip_prefix(t, "model.");
	rest = s;
	if (strncmp(s, "language_model.model.", 21) == 0)
	{
		ins = "language_model.";
		rest = s + 21;
	}
	else if (strncmp(s, "vision_tower.", 13) == 0 &&
			 strncmp(s + 13, "vision_model.", 13) != 0)
	{
		ins = "vision_tower.vision_model.";
		rest = s + 13;
	}
	else if (strcmp(s, "language_model.lm_head.weight") == 0)
		rest = "lm_head.weight";
	n = (ins ? strlen(ins) : 0) + strlen(rest) + 1;
	out = malloc(n);
	if (out != NULL)
		snprintf(out, n, "%s%s", ins ? ins : "", rest);
	return out;
}

/*
 * suffix_match
 *		Does name equal suffix or end with "." + suffix?
 */
static bool
suffix_match(const char *name, const char *suffix, size_t slen)
{
	size_t		nlen = strlen(name);

	if (nlen < slen || strcmp(name + nlen - slen, suffix) != 0)
		return false;
	return nlen == slen || name[nlen - slen - 1] == '.';
}

/*
 * find_tensor
 *		Index of the tensor matching suffix, -1 if none, -2 if ambiguous.
 */
static int
find_tensor(const CpWeights *w, const char *suffix)
{
	size_t		slen = strlen(suffix);
	int			found = -1;
	int			exact = -1;
	int			nfound = 0;
	int			i;

	for (i = 0; i < w->count; i++)
	{
		if (suffix_match(w->tensors[i].name, suffix, slen) ||
			suffix_match(w->canon[i], suffix, slen))
		{
			nfound++;
			found = i;
			if (strcmp(w->tensors[i].name, suffix) == 0 || strcmp(w->canon[i], suffix) == 0)
			{
				if (exact >= 0)
					return -2;
				exact = i;
			}
		}
	}
	if (nfound <= 1)
		return found;
	return exact >= 0 ? exact : -2;
}

/*
 * find_exact
 *		Index of the tensor whose stored or canonical name is name, -1 if
 *		none, -2 if several.
 */
static int
find_exact(const CpWeights *w, const char *name, const char *canon)
{
	int			found = -1;
	int			i;

	for (i = 0; i < w->count; i++)
	{
		if (strcmp(w->tensors[i].name, name) == 0)
			return i;
		if (strcmp(w->canon[i], canon) == 0)
		{
			if (found >= 0)
				return -2;
			found = i;
		}
	}
	return found;
}

/*
 * cp_weights_find
 *		See weights.h.
 */
const CpTensor *
cp_weights_find(const CpWeights *w, const char *suffix)
{
	int			i;

	if (w == NULL || suffix == NULL)
		return NULL;
	i = find_tensor(w, suffix);
	return i >= 0 ? &w->tensors[i] : NULL;
}

/*
 * cp_weights_lookup
 *		cp_weights_find with an error message.
 */
CpStatus
cp_weights_lookup(const CpWeights *w, const char *suffix, const CpTensor **out,
				  CpError *err)
{
	int			i;

	*out = NULL;
	if (w == NULL || suffix == NULL)
		return cp_error(err, CP_ERR_INVALID_ARG, "no weights or tensor name given");
	i = find_tensor(w, suffix);
	if (i == -1)
		return cp_error(err, CP_ERR_NOT_FOUND, "checkpoint has no tensor \"%s\"", suffix);
	if (i == -2)
		return cp_error(err, CP_ERR_FORMAT, "tensor name \"%s\" is ambiguous in the checkpoint", suffix);
	*out = &w->tensors[i];
	return CP_OK;
}

/*
 * format_shape
 *		"[a, b, c]" into buf.
 */
static void
format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
	size_t		pos = 0;
	int			i;

	pos += snprintf(buf + pos, size - pos, "[");
	for (i = 0; i < ndim && pos < size; i++)
		pos += snprintf(buf + pos, size - pos, "%s%lld", i ? ", " : "", (long long) shape[i]);
	if (pos < size)
		snprintf(buf + pos, size - pos, "]");
}

/*
 * cp_weights_require
 *		Find a tensor and check its exact shape.
 */
CpStatus
cp_weights_require(const CpWeights *w, const char *suffix, int ndim,
				   const int64_t *shape, const CpTensor **out, CpError *err)
{
	const CpTensor *t;
	CpStatus	st;
	bool		ok;
	int			i;

	st = cp_weights_lookup(w, suffix, &t, err);
	if (st != CP_OK)
		return st;
	ok = (t->ndim == ndim);
	for (i = 0; ok && i < ndim; i++)
		ok = (t->shape[i] == shape[i]);
	if (!ok)
	{
		char		want[128];
		char		have[128];

		format_shape(want, sizeof(want), ndim, shape);
		format_shape(have, sizeof(have), t->ndim, t->shape);
		*out = NULL;
		return cp_error(err, CP_ERR_SHAPE, "tensor \"%s\" has shape %s, expected %s",
						t->name, have, want);
	}
	*out = t;
	return CP_OK;
}

/*
 * cp_weights_count / cp_weights_at
 *		Enumerate tensors (sorted by name).
 */
int
cp_weights_count(const CpWeights *w)
{
	return w ? w->count : 0;
}

const CpTensor *
cp_weights_at(const CpWeights *w, int i)
{
	if (w == NULL || i < 0 || i >= w->count)
		return NULL;
	return &w->tensors[i];
}

/* ---------------------------------------------------------------------
 * files
 * --------------------------------------------------------------------- */

/*
 * cp_weights_close
 *		Unmap everything and free owned copies.
 */
void
cp_weights_close(CpWeights *w)
{
	int			i;

	if (w == NULL)
		return;
	for (i = 0; i < w->count; i++)
	{
		free((char *) w->tensors[i].name);
		free(w->canon[i]);
	}
	for (i = 0; i < w->nmaps; i++)
		munmap(w->maps[i].addr, w->maps[i].size);
	for (i = 0; i < w->nowned; i++)
		free(w->owned[i]);
	free(w->tensors);
	free(w->canon);
	free(w->maps);
	free(w->owned);
	free(w);
}

/*
 * add_owned
 *		Remember a buffer to free at close.
 */
static CpStatus
add_owned(CpWeights *w, void *p, CpError *err)
{
	void	  **n = realloc(w->owned, (w->nowned + 1) * sizeof(void *));

	if (n == NULL)
	{
		free(p);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	w->owned = n;
	w->owned[w->nowned++] = p;
	return CP_OK;
}

/*
 * add_tensor
 *		Append a tensor (takes ownership of name).
 */
static CpStatus
add_tensor(CpWeights *w, const CpTensor *t, CpError *err)
{
	char	   *canon;

	if (w->count == w->cap)
	{
		int			ncap = w->cap ? w->cap * 2 : 256;
		CpTensor   *nt = realloc(w->tensors, ncap * sizeof(CpTensor));
		char	  **nc;

		if (nt == NULL)
			goto nomem;
		w->tensors = nt;
		nc = realloc(w->canon, ncap * sizeof(char *));
		if (nc == NULL)
			goto nomem;
		w->canon = nc;
		w->cap = ncap;
	}
	canon = canonical_name(t->name);
	if (canon == NULL)
		goto nomem;
	w->tensors[w->count] = *t;
	w->canon[w->count] = canon;
	w->count++;
	return CP_OK;

nomem:
	free((char *) t->name);
	return cp_error(err, CP_ERR_NOMEM, "out of memory");
}

/*
 * map_file
 *		mmap path read-only; CP_ERR_NOT_FOUND when absent.
 */
static CpStatus
map_file(const char *path, CpMapping *m, CpError *err)
{
	struct stat sb;
	int			fd;
	void	   *addr;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cp_error(err, errno == ENOENT ? CP_ERR_NOT_FOUND : CP_ERR_IO,
						"could not open \"%s\": %s", path, strerror(errno));
	if (fstat(fd, &sb) != 0)
	{
		int			e = errno;

		close(fd);
		return cp_error(err, CP_ERR_IO, "could not stat \"%s\": %s", path, strerror(e));
	}
	if (!S_ISREG(sb.st_mode))
	{
		close(fd);
		return cp_error(err, CP_ERR_IO, "\"%s\" is not a regular file", path);
	}
	if (sb.st_size < 8)
	{
		close(fd);
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" is too small to be a safetensors file (%lld bytes)",
						path, (long long) sb.st_size);
	}
	addr = mmap(NULL, (size_t) sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (addr == MAP_FAILED)
		return cp_error(err, CP_ERR_IO, "could not map \"%s\": %s", path, strerror(errno));
	m->addr = addr;
	m->size = (size_t) sb.st_size;
	return CP_OK;
}

/*
 * add_file
 *		Map one safetensors file and append its tensors to w.  If first is
 *		non-NULL it receives the index of the first tensor added.
 */
static CpStatus
add_file(CpWeights *w, const char *path, CpError *err)
{
	CpMapping	m;
	CpMapping  *nm;
	CpTensor   *ts = NULL;
	int			n = 0;
	size_t		data_start = 0;
	CpStatus	st;
	int			i;

	st = map_file(path, &m, err);
	if (st != CP_OK)
		return st;
	nm = realloc(w->maps, (w->nmaps + 1) * sizeof(CpMapping));
	if (nm == NULL)
	{
		munmap(m.addr, m.size);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	w->maps = nm;
	w->maps[w->nmaps++] = m;

	st = cp_safetensors_parse_header(m.addr, m.size, &ts, &n, &data_start, err);
	if (st != CP_OK)
	{
		/* prepend the file name to the parser's message */
		if (err != NULL)
		{
			char		tmp[CP_ERROR_MSG_LEN];

			snprintf(tmp, sizeof(tmp), "%s", err->msg);
			cp_error(err, st, "\"%s\": %s", path, tmp);
		}
		return st;
	}
	for (i = 0; i < n; i++)
	{
		CpTensor	t = ts[i];
		const uint8_t *p = (const uint8_t *) m.addr + data_start + (uintptr_t) t.data;
		size_t		esize = cp_dtype_size(t.dtype);

		t.data = p;
		if (((uintptr_t) p % esize) != 0)
		{
			void	   *copy = malloc(t.nbytes ? t.nbytes : 1);

			if (copy == NULL)
				st = cp_error(err, CP_ERR_NOMEM, "out of memory");
			else
			{
				memcpy(copy, p, t.nbytes);
				t.data = copy;
				st = add_owned(w, copy, err);
			}
		}
		ts[i].name = NULL;		/* ownership moves to w (even on failure) */
		if (st == CP_OK)
			st = add_tensor(w, &t, err);
		else
			free((char *) t.name);
		if (st != CP_OK)
		{
			for (i = i + 1; i < n; i++)
				free((char *) ts[i].name);
			free(ts);
			return st;
		}
	}
	free(ts);
	return CP_OK;
}

/*
 * join_path
 *		dir + "/" + name into buf; CP_ERR_LIMIT when too long.
 */
static CpStatus
join_path(char *buf, size_t size, const char *dir, const char *name, CpError *err)
{
	int			n = snprintf(buf, size, "%s/%s", dir, name);

	if (n < 0 || (size_t) n >= size)
		return cp_error(err, CP_ERR_LIMIT, "path \"%s/%s\" is too long", dir, name);
	return CP_OK;
}

/*
 * file_exists
 *		True if path names an existing file.
 */
static bool
file_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/*
 * name_cmp
 *		qsort order of tensors by name (with the canonical names array kept in
 *		step through an index sort).
 */
typedef struct CpNameIdx
{
	const char *name;
	int			idx;
} CpNameIdx;

static int
nameidx_cmp(const void *a, const void *b)
{
	return strcmp(((const CpNameIdx *) a)->name, ((const CpNameIdx *) b)->name);
}

/*
 * sort_and_check
 *		Sort tensors by name and reject duplicates (e.g. across shards).
 */
static CpStatus
sort_and_check(CpWeights *w, CpError *err)
{
	CpNameIdx  *ix;
	CpTensor   *nt;
	char	  **nc;
	int			i;

	if (w->count == 0)
		return CP_OK;
	ix = malloc(w->count * sizeof(CpNameIdx));
	nt = malloc(w->count * sizeof(CpTensor));
	nc = malloc(w->count * sizeof(char *));
	if (ix == NULL || nt == NULL || nc == NULL)
	{
		free(ix);
		free(nt);
		free(nc);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < w->count; i++)
	{
		ix[i].name = w->tensors[i].name;
		ix[i].idx = i;
	}
	qsort(ix, w->count, sizeof(CpNameIdx), nameidx_cmp);
	for (i = 0; i < w->count; i++)
	{
		nt[i] = w->tensors[ix[i].idx];
		nc[i] = w->canon[ix[i].idx];
	}
	free(w->tensors);
	free(w->canon);
	w->tensors = nt;
	w->canon = nc;
	w->cap = w->count;
	for (i = 1; i < w->count; i++)
		if (strcmp(nt[i - 1].name, nt[i].name) == 0)
		{
			free(ix);
			return cp_error(err, CP_ERR_FORMAT, "tensor \"%s\" is stored twice in the checkpoint", nt[i].name);
		}
	free(ix);
	return CP_OK;
}

/*
 * open_checkpoint
 *		Add the tensors of dir (model.safetensors or its sharded index).
 */
static CpStatus
open_checkpoint(CpWeights *w, const char *dir, CpError *err)
{
	char		path[4096];
	json_t	   *root;
	json_t	   *map;
	json_error_t jerr;
	const char *key;
	json_t	   *val;
	const char **shards = NULL;
	int			nshards = 0;
	CpStatus	st;
	int			first;
	int			i;

	/* a single file wins over an index, as in transformers */
	st = join_path(path, sizeof(path), dir, "model.safetensors", err);
	if (st != CP_OK)
		return st;
	if (file_exists(path))
		return add_file(w, path, err);
	st = join_path(path, sizeof(path), dir, "model.safetensors.index.json", err);
	if (st != CP_OK)
		return st;
	if (!file_exists(path))
		return cp_error(err, CP_ERR_NOT_FOUND,
						"no model.safetensors or model.safetensors.index.json in \"%s\"", dir);

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" is not valid JSON: %s (line %d)", path, jerr.text, jerr.line);
	map = json_object_get(root, "weight_map");
	if (!json_is_object(map) || json_object_size(map) == 0)
	{
		json_decref(root);
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" has no \"weight_map\" object", path);
	}
	shards = calloc(json_object_size(map), sizeof(char *));
	if (shards == NULL)
	{
		json_decref(root);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	json_object_foreach(map, key, val)
	{
		const char *f;
		bool		seen = false;

		if (!json_is_string(val))
		{
			st = cp_error(err, CP_ERR_FORMAT, "\"%s\": weight_map entry \"%s\" is not a file name", path, key);
			goto done;
		}
		f = json_string_value(val);
		/* shards are plain file names next to the index: no paths */
		if (f[0] == '\0' || strchr(f, '/') != NULL || strcmp(f, "..") == 0 || strcmp(f, ".") == 0)
		{
			st = cp_error(err, CP_ERR_FORMAT, "\"%s\": shard name \"%s\" is not a plain file name", path, f);
			goto done;
		}
		for (i = 0; i < nshards && !seen; i++)
			seen = strcmp(shards[i], f) == 0;
		if (!seen)
			shards[nshards++] = f;
	}
	first = w->count;
	for (i = 0; i < nshards; i++)
	{
		char		spath[4096];

		st = join_path(spath, sizeof(spath), dir, shards[i], err);
		if (st == CP_OK)
			st = add_file(w, spath, err);
		if (st != CP_OK)
			goto done;
	}
	/* every tensor the index promises must be present */
	json_object_foreach(map, key, val)
	{
		bool		found = false;

		for (i = first; i < w->count && !found; i++)
			found = strcmp(w->tensors[i].name, key) == 0;
		if (!found)
		{
			/* a non-float tensor may be listed but not kept; accept only if
			 * its shard really has it, which add_file checked implicitly is
			 * not possible here, so say what is missing */
			st = cp_error(err, CP_ERR_NOT_FOUND, "tensor \"%s\" listed in \"%s\" is missing from shard \"%s\" (or not F32/F16/BF16)",
						  key, path, json_string_value(val));
			goto done;
		}
	}
	st = CP_OK;
done:
	free(shards);
	json_decref(root);
	return st;
}

/* ---------------------------------------------------------------------
 * LoRA adapter
 * --------------------------------------------------------------------- */

typedef struct CpLoraConfig
{
	double		alpha;
	int			r;
	bool		rslora;
	json_t	   *targets;		/* string (regex) or array of names, borrowed */
	bool		have_regex;
	regex_t		regex;
} CpLoraConfig;

/*
 * read_lora_config
 *		Parse adapter_config.json (PEFT LoRA).
 */
static CpStatus
read_lora_config(const char *path, json_t **rootp, CpLoraConfig *lc, CpError *err)
{
	json_error_t jerr;
	json_t	   *root;
	json_t	   *v;

	memset(lc, 0, sizeof(*lc));
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" is not valid JSON: %s (line %d)", path, jerr.text, jerr.line);
	*rootp = root;
	if (!json_is_object(root))
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" is not a JSON object", path);
	v = json_object_get(root, "peft_type");
	if (v != NULL && !(json_is_string(v) && strcmp(json_string_value(v), "LORA") == 0))
		return cp_error(err, CP_ERR_UNSUPPORTED, "\"%s\": only LoRA adapters are supported (peft_type \"%s\")",
						path, json_is_string(v) ? json_string_value(v) : "?");
	v = json_object_get(root, "r");
	lc->r = 8;					/* PEFT default */
	if (v != NULL)
	{
		if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > INT_MAX)
			return cp_error(err, CP_ERR_FORMAT, "\"%s\": \"r\" must be a positive integer", path);
		lc->r = (int) json_integer_value(v);
	}
	v = json_object_get(root, "lora_alpha");
	lc->alpha = 8;				/* PEFT default */
	if (v != NULL)
	{
		if (!json_is_number(v))
			return cp_error(err, CP_ERR_FORMAT, "\"%s\": \"lora_alpha\" must be a number", path);
		lc->alpha = json_number_value(v);
	}
	v = json_object_get(root, "use_rslora");
	lc->rslora = json_is_true(v);
	if (json_is_true(json_object_get(root, "use_dora")))
		return cp_error(err, CP_ERR_UNSUPPORTED, "\"%s\": DoRA adapters (use_dora) are not supported", path);
	if (json_is_true(json_object_get(root, "fan_in_fan_out")))
		return cp_error(err, CP_ERR_UNSUPPORTED, "\"%s\": fan_in_fan_out adapters are not supported", path);
	v = json_object_get(root, "alpha_pattern");
	if (v != NULL && !json_is_null(v) && !(json_is_object(v) && json_object_size(v) == 0))
		return cp_error(err, CP_ERR_UNSUPPORTED, "\"%s\": per-module \"alpha_pattern\" is not supported", path);
	v = json_object_get(root, "rank_pattern");
	if (v != NULL && !json_is_null(v) && !(json_is_object(v) && json_object_size(v) == 0))
		return cp_error(err, CP_ERR_UNSUPPORTED, "\"%s\": per-module \"rank_pattern\" is not supported", path);
	v = json_object_get(root, "target_modules");
	if (json_is_string(v))
	{
		/* PEFT uses re.fullmatch; POSIX ERE covers the usual patterns */
		size_t		n = strlen(json_string_value(v));
		char	   *pat = malloc(n + 5);

		if (pat == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		snprintf(pat, n + 5, "^(%s)$", json_string_value(v));
		lc->have_regex = (regcomp(&lc->regex, pat, REG_EXTENDED | REG_NOSUB) == 0);
		free(pat);
	}
	else if (json_is_array(v))
		lc->targets = v;
	return CP_OK;
}

/*
 * lora_targets_module
 *		Is module (path without "base_model.model.") a LoRA target?  Unknown
 *		(uncompilable regex, no target list) counts as yes.
 */
static bool
lora_targets_module(const CpLoraConfig *lc, const char *module)
{
	size_t		i;

	if (lc->have_regex)
		return regexec(&lc->regex, module, 0, NULL, 0) == 0;
	if (lc->targets == NULL)
		return true;
	for (i = 0; i < json_array_size(lc->targets); i++)
	{
		json_t	   *t = json_array_get(lc->targets, i);

		if (json_is_string(t) &&
			suffix_match(module, json_string_value(t), strlen(json_string_value(t))))
			return true;
	}
	return false;
}

/*
 * lora_rank_update
 *		w[nr, in] += scale * b[nr, r] @ a[r, in], row by row, four ranks per
 *		pass: the rank r is small (4..64), a stays in cache, and the inner
 *		loop vectorises.  No BLAS here, so the safetensors reader links alone
 *		(fuzz harness).
 */
static void
lora_rank_update(float *w, int64_t nr, int64_t in, const float *b, const float *a,
				 int64_t r, float scale)
{
	int64_t		o;
	int64_t		k;
	int64_t		j;

	for (o = 0; o < nr; o++)
	{
		float	   *row = w + o * in;

		/* four ranks per pass: a quarter of the row traffic */
		for (k = 0; k + 4 <= r; k += 4)
		{
			float		b0 = scale * b[o * r + k];
			float		b1 = scale * b[o * r + k + 1];
			float		b2 = scale * b[o * r + k + 2];
			float		b3 = scale * b[o * r + k + 3];
			const float *a0 = a + k * in;
			const float *a1 = a0 + in;
			const float *a2 = a1 + in;
			const float *a3 = a2 + in;

#pragma omp simd
			for (j = 0; j < in; j++)
				row[j] += b0 * a0[j] + b1 * a1[j] + b2 * a2[j] + b3 * a3[j];
		}
		for (; k < r; k++)
		{
			float		bk = scale * b[o * r + k];
			const float *ak = a + k * in;

#pragma omp simd
			for (j = 0; j < in; j++)
				row[j] += bk * ak[j];
		}
	}
}

/*
 * merge_lora
 *		base[out, in] += scale * B[out, r] @ A[r, in], into an owned float32
 *		copy of the base tensor.  The merged tensor stays float32: rounding it
 *		back to a bf16 base's dtype would lose the low-rank delta, which is
 *		often below one bf16 ulp of the weight (transformers applies an
 *		unmerged adapter in float32, and so do our goldens).
 */
static CpStatus
merge_lora(CpWeights *w, int bi, const CpTensor *A, const CpTensor *B,
		   double scale, CpError *err)
{
	CpTensor   *t = &w->tensors[bi];
	int64_t		out_dim;
	int64_t		in_dim;
	int64_t		r;
	float	   *a = NULL;
	float	   *b = NULL;
	float	   *dst = NULL;
	CpStatus	st;

	if (t->ndim != 2 || A->ndim != 2 || B->ndim != 2)
		return cp_error(err, CP_ERR_SHAPE, "LoRA for \"%s\": base and lora_A/lora_B must be matrices", t->name);
	out_dim = t->shape[0];
	in_dim = t->shape[1];
	r = A->shape[0];
	if (A->shape[1] != in_dim || B->shape[0] != out_dim || B->shape[1] != r)
		return cp_error(err, CP_ERR_SHAPE,
						"LoRA for \"%s\" [%lld, %lld]: lora_A is [%lld, %lld], lora_B is [%lld, %lld]",
						t->name, (long long) out_dim, (long long) in_dim,
						(long long) A->shape[0], (long long) A->shape[1],
						(long long) B->shape[0], (long long) B->shape[1]);
	if (out_dim > INT_MAX || in_dim > INT_MAX || r > INT_MAX)
		return cp_error(err, CP_ERR_LIMIT, "LoRA for \"%s\": matrix too large", t->name);
	st = cp_tensor_load_f32(A, &a, err);
	if (st == CP_OK)
		st = cp_tensor_load_f32(B, &b, err);
	if (st != CP_OK)
		goto done;
	dst = malloc((size_t) (out_dim * in_dim) * sizeof(float) + 1);
	if (dst == NULL)
	{
		st = cp_error(err, CP_ERR_NOMEM, "out of memory merging LoRA into \"%s\"", t->name);
		goto done;
	}
	cp_tensor_to_f32(t, 0, out_dim * in_dim, dst);
	lora_rank_update(dst, out_dim, in_dim, b, a, r, (float) scale);
	t->data = dst;
	t->dtype = CP_DTYPE_F32;
	t->nbytes = (size_t) (out_dim * in_dim) * sizeof(float);
	st = add_owned(w, dst, err);	/* frees dst on failure */
	dst = NULL;
	if (st != CP_OK)
		t->data = NULL;
done:
	free(dst);
	free(a);
	free(b);
	return st;
}

/*
 * ends_with
 *		Does s end with suffix?
 */
static bool
ends_with(const char *s, const char *suffix)
{
	size_t		n = strlen(s);
	size_t		m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * apply_adapter
 *		Merge the adapter in dir into the base tensors already in w.
 */
static CpStatus
apply_adapter(CpWeights *w, const char *dir, CpError *err)
{
	char		path[4096];
	json_t	   *cfgroot = NULL;
	CpLoraConfig lc;
	CpWeights  *ad = NULL;
	CpStatus	st;
	int			i;
	int			nbase = w->count;

	memset(&lc, 0, sizeof(lc));
	st = join_path(path, sizeof(path), dir, "adapter_config.json", err);
	if (st == CP_OK)
		st = read_lora_config(path, &cfgroot, &lc, err);
	if (st != CP_OK)
		goto done;

	ad = calloc(1, sizeof(CpWeights));
	if (ad == NULL)
	{
		st = cp_error(err, CP_ERR_NOMEM, "out of memory");
		goto done;
	}
	st = join_path(path, sizeof(path), dir, "adapter_model.safetensors", err);
	if (st != CP_OK)
		goto done;
	if (!file_exists(path))
	{
		char		binpath[4096];

		if (join_path(binpath, sizeof(binpath), dir, "adapter_model.bin", NULL) == CP_OK &&
			file_exists(binpath))
			st = cp_error(err, CP_ERR_UNSUPPORTED, "adapter \"%s\" is stored as a pickle (adapter_model.bin); only adapter_model.safetensors is supported", dir);
		else
			st = cp_error(err, CP_ERR_NOT_FOUND, "adapter folder \"%s\" has no adapter_model.safetensors", dir);
		goto done;
	}
	st = add_file(ad, path, err);
	if (st == CP_OK)
		st = sort_and_check(ad, err);
	if (st != CP_OK)
		goto done;

	for (i = 0; i < ad->count; i++)
	{
		const char *name = ad->tensors[i].name;
		const char *mod = strip_prefix(name, "base_model.model.");

		if (ends_with(name, ".lora_B.weight"))
			continue;			/* handled with its lora_A */
		if (strstr(name, "lora_embedding_") != NULL || strstr(name, "lora_magnitude") != NULL)
		{
			st = cp_error(err, CP_ERR_UNSUPPORTED, "adapter tensor \"%s\" (embedding LoRA or DoRA) is not supported", name);
			goto done;
		}
		if (ends_with(name, ".lora_A.weight"))
		{
			size_t		mlen = strlen(mod) - strlen(".lora_A.weight");
			char	   *module = strndup(mod, mlen);
			char	   *bname = NULL;
			char	   *bcanon = NULL;
			int			bi;
			int			ai;
			double		scale;
			const CpTensor *A = &ad->tensors[i];
			const CpTensor *B;

			if (module == NULL)
			{
				st = cp_error(err, CP_ERR_NOMEM, "out of memory");
				goto done;
			}
			if (!lora_targets_module(&lc, module))
			{
				st = cp_error(err, CP_ERR_FORMAT, "adapter tensor \"%s\": module \"%s\" is not in target_modules", name, module);
				free(module);
				goto done;
			}
			/* the matching lora_B */
			bname = malloc(strlen(name) + 1);
			if (bname == NULL)
			{
				free(module);
				st = cp_error(err, CP_ERR_NOMEM, "out of memory");
				goto done;
			}
			strcpy(bname, name);
			bname[strlen(name) - strlen("A.weight")] = 'B';
			ai = find_exact(ad, bname, "");
			free(bname);
			if (ai < 0)
			{
				st = cp_error(err, CP_ERR_NOT_FOUND, "adapter has \"%s\" but no matching lora_B", name);
				free(module);
				goto done;
			}
			B = &ad->tensors[ai];
			/* the base weight, by stored or canonical name */
			bname = malloc(mlen + sizeof(".weight"));
			if (bname != NULL)
			{
				memcpy(bname, module, mlen);
				strcpy(bname + mlen, ".weight");
				bcanon = canonical_name(bname);
			}
			free(module);
			if (bname == NULL || bcanon == NULL)
			{
				free(bname);
				free(bcanon);
				st = cp_error(err, CP_ERR_NOMEM, "out of memory");
				goto done;
			}
			bi = find_exact(w, bname, bcanon);
			if (bi < 0 || bi >= nbase)
			{
				st = cp_error(err, bi == -2 ? CP_ERR_FORMAT : CP_ERR_NOT_FOUND,
							  "LoRA adapter targets \"%s\", which the base checkpoint %s", bname,
							  bi == -2 ? "holds under several names" : "does not have");
				free(bname);
				free(bcanon);
				goto done;
			}
			free(bname);
			free(bcanon);
			if (A->ndim != 2 || (int64_t) lc.r != A->shape[0])
			{
				st = cp_error(err, CP_ERR_SHAPE, "adapter tensor \"%s\" has rank %lld but adapter_config.json says r = %d",
							  name, A->ndim == 2 ? (long long) A->shape[0] : -1LL, lc.r);
				goto done;
			}
			scale = lc.rslora ? lc.alpha / sqrt((double) lc.r) : lc.alpha / lc.r;
			st = merge_lora(w, bi, A, B, scale, err);
			if (st != CP_OK)
				goto done;
		}
		else
		{
			/* a full tensor (modules_to_save, e.g. the 128-d projection) */
			CpTensor	t = ad->tensors[i];
			char	   *canon = canonical_name(mod);
			int			bi;

			if (canon == NULL)
			{
				st = cp_error(err, CP_ERR_NOMEM, "out of memory");
				goto done;
			}
			bi = find_exact(w, mod, canon);
			free(canon);
			if (bi == -2)
			{
				st = cp_error(err, CP_ERR_FORMAT, "adapter tensor \"%s\" matches several base tensors", name);
				goto done;
			}
			if (bi >= 0)
			{
				CpTensor   *bt = &w->tensors[bi];
				int			d;
				bool		same = bt->ndim == t.ndim;

				for (d = 0; same && d < t.ndim; d++)
					same = bt->shape[d] == t.shape[d];
				if (!same)
				{
					st = cp_error(err, CP_ERR_SHAPE, "adapter tensor \"%s\" does not have the shape of base tensor \"%s\"",
								  name, bt->name);
					goto done;
				}
				bt->dtype = t.dtype;
				bt->data = t.data;
				bt->nbytes = t.nbytes;
			}
			else
			{
				t.name = strdup(mod);
				if (t.name == NULL)
				{
					st = cp_error(err, CP_ERR_NOMEM, "out of memory");
					goto done;
				}
				st = add_tensor(w, &t, err);
				if (st != CP_OK)
					goto done;
			}
		}
	}

	/* the adapter's mappings and copies now back tensors of w */
	{
		CpMapping  *nm = realloc(w->maps, (w->nmaps + ad->nmaps) * sizeof(CpMapping));
		void	  **no;

		if (nm == NULL)
		{
			st = cp_error(err, CP_ERR_NOMEM, "out of memory");
			goto done;
		}
		w->maps = nm;
		no = realloc(w->owned, (w->nowned + ad->nowned + 1) * sizeof(void *));
		if (no == NULL)
		{
			st = cp_error(err, CP_ERR_NOMEM, "out of memory");
			goto done;
		}
		w->owned = no;
		memcpy(w->maps + w->nmaps, ad->maps, ad->nmaps * sizeof(CpMapping));
		w->nmaps += ad->nmaps;
		ad->nmaps = 0;
		memcpy(w->owned + w->nowned, ad->owned, ad->nowned * sizeof(void *));
		w->nowned += ad->nowned;
		ad->nowned = 0;
	}
	st = CP_OK;

done:
	if (lc.have_regex)
		regfree(&lc.regex);
	json_decref(cfgroot);
	cp_weights_close(ad);
	return st;
}

/*
 * cp_adapter_base_dir
 *		When no base_dir is given, base_model_name_or_path of the adapter
 *		config if it names an existing local folder: absolute, relative to
 *		the adapter folder, or a sibling of it (a hub name such as
 *		"vidore/colpaligemma-3b-pt-448-base" downloaded next to the adapter
 *		as its last component).  Writes into buf; false if none.
 */
bool
cp_adapter_base_dir(const char *dir, char *buf, size_t size)
{
	char		path[4096];
	json_t	   *root;
	json_t	   *v;
	bool		ok = false;
	struct stat sb;

	if (snprintf(path, sizeof(path), "%s/adapter_config.json", dir) >= (int) sizeof(path))
		return false;
	root = json_load_file(path, 0, NULL);
	if (root == NULL)
		return false;
	v = json_object_get(root, "base_model_name_or_path");
	if (json_is_string(v) && json_string_value(v)[0] != '\0')
	{
		const char *p = json_string_value(v);
		const char *last = strrchr(p, '/');
		int			n;

		if (p[0] == '/')
		{
			n = snprintf(buf, size, "%s", p);
			ok = n > 0 && (size_t) n < size && stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode);
		}
		else
		{
			n = snprintf(buf, size, "%s/%s", dir, p);
			ok = n > 0 && (size_t) n < size && stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode);
			if (!ok)
			{
				n = snprintf(buf, size, "%s/../%s", dir, last ? last + 1 : p);
				ok = n > 0 && (size_t) n < size && stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode);
			}
		}
	}
	json_decref(root);
	return ok;
}

/*
 * cp_weights_open
 *		See weights.h.
 */
CpStatus
cp_weights_open(const char *dir, const char *base_dir, CpWeights **out, CpError *err)
{
	CpWeights  *w;
	char		path[4096];
	char		basebuf[4096];
	bool		adapter;
	CpStatus	st;

	*out = NULL;
	if (dir == NULL || dir[0] == '\0')
		return cp_error(err, CP_ERR_INVALID_ARG, "no checkpoint folder given");
	st = join_path(path, sizeof(path), dir, "adapter_config.json", err);
	if (st != CP_OK)
		return st;
	adapter = file_exists(path);
	if (adapter && (base_dir == NULL || base_dir[0] == '\0'))
	{
		char		full[4096];
		char		index[4096];

		if (cp_adapter_base_dir(dir, basebuf, sizeof(basebuf)))
			base_dir = basebuf;
		else if (join_path(full, sizeof(full), dir, "model.safetensors", NULL) == CP_OK &&
				 join_path(index, sizeof(index), dir, "model.safetensors.index.json", NULL) == CP_OK &&
				 (file_exists(full) || file_exists(index)))
			adapter = false;	/* a full checkpoint shipped with its adapter config */
		else
			return cp_error(err, CP_ERR_INVALID_ARG,
							"\"%s\" is a LoRA adapter: the base checkpoint folder must be given", dir);
	}
	w = calloc(1, sizeof(CpWeights));
	if (w == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	st = open_checkpoint(w, adapter ? base_dir : dir, err);
	if (st == CP_OK)
		st = sort_and_check(w, err);
	if (st == CP_OK && adapter)
	{
		st = apply_adapter(w, dir, err);
		if (st == CP_OK)
			st = sort_and_check(w, err);
	}
	if (st != CP_OK)
	{
		cp_weights_close(w);
		return st;
	}
	*out = w;
	return CP_OK;
}
