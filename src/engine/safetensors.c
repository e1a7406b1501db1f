/*
 * safetensors.c
 *	  The safetensors header parser (the fuzz target fuzz_safetensors) and
 *	  the dtype facts and conversions of the tensors it describes.
 *
 * A safetensors file is: u64 little-endian header length n, n bytes of JSON
 * ({"name": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...,
 * "__metadata__": {...}}), then the data section.  Everything in the header
 * is untrusted: the JSON is parsed by jansson from a bounded buffer, every
 * dimension, byte count and offset is checked with overflow-safe arithmetic
 * against the real file size, and overlapping tensors are rejected, before
 * any pointer into the mapping is formed (docs/encoder.md#safetensors).
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "weights.h"

/* Same cap as the safetensors reference implementation. */
#define CP_ST_MAX_HEADER ((uint64_t) 100 * 1024 * 1024)
/* More tensors than any real checkpoint; keeps allocations bounded. */
#define CP_ST_MAX_TENSORS 1000000
#define CP_ST_MAX_ANY_DIMS 64

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
