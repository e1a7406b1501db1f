/*
 * encode.c
 *	  SQL encoder functions colpali_query(text), colpali_image(bytea) and
 *	  colpali_images(bytea[]).
 *
 * Each call goes to the background worker when the library was preloaded
 * and colpali.use_worker is on (worker_client.c), else it runs in the
 * calling backend on the CPU (encode_inprocess.c).
 *
 * Query text is converted from the database encoding to UTF-8, which is
 * what the engine reads.
 *
 * colpali_query keeps its recent results per call site (in fn_extra), keyed
 * by the text and by every setting that decides the output.  It is STABLE
 * and typically appears as ORDER BY emb <#> colpali_query('...'), which a
 * plan other than an index scan evaluates once per row: with the kept
 * result a statement encodes each distinct text once per call site, instead
 * of once per row.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "encode.h"
#include "pool.h"
#include "worker_client.h"

PG_FUNCTION_INFO_V1(colpali_query);
PG_FUNCTION_INFO_V1(colpali_image);
PG_FUNCTION_INFO_V1(colpali_images);

/*
 * The results a colpali_query call site keeps: at most this many, and at
 * most this many bytes of text and embeddings together (the newest result
 * is kept even when it alone is larger).
 */
#define QUERY_CACHE_ENTRIES		16
#define QUERY_CACHE_BYTES		((Size) 16 * 1024 * 1024)

/*
 * Every setting that decides what colpali_query returns.  Zeroed before it
 * is filled, so that it can be compared with memcmp.
 */
typedef struct QuerySettings
{
	EncoderKey	key;			/* model, precision, attention, ... */
	int32		device;
	int32		threads;
	int32		max_batch;
	bool		use_worker;
} QuerySettings;

typedef struct QueryCacheEntry
{
	char	   *text;			/* UTF-8 */
	Size		len;
	MultiVector *embedding;
} QueryCacheEntry;

/* fn_extra of a colpali_query call site, in fn_mcxt. */
typedef struct QueryCache
{
	QuerySettings settings;		/* of every entry */
	int			nentries;		/* entries[0] is the oldest */
	Size		bytes;			/* text and embeddings held */
	QueryCacheEntry entries[QUERY_CACHE_ENTRIES];
} QueryCache;

/*
 * RequireModel
 *		ERROR unless a model is configured.
 */
static void
RequireModel(void)
{
	if (colpali_model_path == NULL || colpali_model_path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no colpali model is configured"),
				 errhint("A superuser must set colpali.model_path to a ColPali checkpoint folder, "
						 "for example with ALTER SYSTEM SET colpali.model_path = '/path/to/colpali-v1.3-hf'.")));
}

/*
 * Encode
 *		Route a request to the worker or to the in-process engine.
 */
static void
Encode(EncodeKind kind, int n, const uint8 *const *inputs,
	   const size_t *lengths, MultiVector **out)
{
	RequireModel();
	if (colpali_use_worker && WorkerAvailable())
		WorkerEncode(kind, n, inputs, lengths, out);
	else
		EncodeInProcess(kind, n, inputs, lengths, out);
}

/*
 * CheckQueryBytes
 *		Reject query text over the length limit.
 */
static void
CheckQueryBytes(Size len)
{
	if (len > COLPALI_MAX_QUERY_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("could not encode query: %zu bytes is more than the limit of %d bytes",
						(size_t) len, COLPALI_MAX_QUERY_BYTES),
				 errhint("Shorten the query text.")));
}

/*
 * QueryTextToUtf8
 *		The text as a palloc'd, NUL-terminated UTF-8 string, checked against
 *		the length limit before and after conversion.  In an SQL_ASCII
 *		database the bytes must already be valid UTF-8.
 */
static char *
QueryTextToUtf8(text *t, Size *len)
{
	const char *src = VARDATA_ANY(t);
	Size		srclen = VARSIZE_ANY_EXHDR(t);
	char	   *utf8;

	CheckQueryBytes(srclen);
	utf8 = pg_server_to_any(src, (int) srclen, PG_UTF8);
	if (utf8 == src)
	{
		utf8 = pnstrdup(src, srclen);
		*len = srclen;
	}
	else
		*len = strlen(utf8);
	CheckQueryBytes(*len);
	return utf8;
}

/*
 * CurrentQuerySettings
 *		Fill *settings from this session's settings.
 */
static void
CurrentQuerySettings(QuerySettings *settings)
{
	memset(settings, 0, sizeof(QuerySettings));
	EncoderKeyFromSettings(&settings->key);
	settings->device = colpali_device;
	settings->threads = colpali_threads;
	settings->max_batch = colpali_max_batch;
	settings->use_worker = colpali_use_worker;
}

/*
 * QueryCacheDropOldest
 *		Forget the oldest entry.
 */
static void
QueryCacheDropOldest(QueryCache *cache)
{
	QueryCacheEntry *e = &cache->entries[0];

	cache->bytes -= e->len + VARSIZE(e->embedding);
	pfree(e->text);
	pfree(e->embedding);
	cache->nentries--;
	memmove(&cache->entries[0], &cache->entries[1],
			sizeof(QueryCacheEntry) * cache->nentries);
}

/*
 * QueryCacheLookup
 *		The call site's kept embedding of text under settings, or NULL.
 *		Entries kept under other settings are dropped.
 */
static MultiVector *
QueryCacheLookup(QueryCache *cache, const QuerySettings *settings,
				 const char *text, Size len)
{
	if (memcmp(&cache->settings, settings, sizeof(QuerySettings)) != 0)
	{
		while (cache->nentries > 0)
			QueryCacheDropOldest(cache);
		memcpy(&cache->settings, settings, sizeof(QuerySettings));
		return NULL;
	}
	for (int i = 0; i < cache->nentries; i++)
	{
		QueryCacheEntry *e = &cache->entries[i];

		if (e->len == len && memcmp(e->text, text, len) == 0)
			return e->embedding;
	}
	return NULL;
}

/*
 * QueryCacheStore
 *		Keep a copy of the embedding of text in mcxt, dropping the oldest
 *		entries while the limits would be exceeded.
 */
static void
QueryCacheStore(QueryCache *cache, MemoryContext mcxt, const char *text,
				Size len, const MultiVector *embedding)
{
	Size		need = len + VARSIZE(embedding);
	QueryCacheEntry *e;
	MemoryContext old;

	while (cache->nentries > 0 &&
		   (cache->nentries == QUERY_CACHE_ENTRIES ||
			cache->bytes + need > QUERY_CACHE_BYTES))
		QueryCacheDropOldest(cache);

	old = MemoryContextSwitchTo(mcxt);
	e = &cache->entries[cache->nentries];
	e->text = pnstrdup(text, len);
	e->len = len;
	e->embedding = (MultiVector *) palloc(VARSIZE(embedding));
	memcpy(e->embedding, embedding, VARSIZE(embedding));
	MemoryContextSwitchTo(old);
	cache->nentries++;
	cache->bytes += need;
}

/*
 * colpali_query
 *		colpali_query(text) -> multivector: embed a search query.
 */
Datum
colpali_query(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	FmgrInfo   *flinfo = fcinfo->flinfo;
	QueryCache *cache = NULL;
	QuerySettings settings;
	char	   *query;
	Size		len;
	const uint8 *input;
	size_t		length;
	MultiVector *result;
	MultiVector *kept;

	query = QueryTextToUtf8(t, &len);

	if (flinfo != NULL)
	{
		if (flinfo->fn_extra == NULL)
			flinfo->fn_extra = MemoryContextAllocZero(flinfo->fn_mcxt,
													  sizeof(QueryCache));
		cache = (QueryCache *) flinfo->fn_extra;
		CurrentQuerySettings(&settings);
		kept = QueryCacheLookup(cache, &settings, query, len);
		if (kept != NULL)
		{
			/* a copy: the caller owns what it gets */
			result = (MultiVector *) palloc(VARSIZE(kept));
			memcpy(result, kept, VARSIZE(kept));
			PG_RETURN_MULTIVECTOR_P(result);
		}
	}

	input = (const uint8 *) query;
	length = len;
	Encode(ENCODE_QUERIES, 1, &input, &length, &result);
	if (cache != NULL)
		QueryCacheStore(cache, flinfo->fn_mcxt, query, len, result);
	PG_RETURN_MULTIVECTOR_P(result);
}

/*
 * CheckImageBytes
 *		Reject empty and oversized image data before any decoding.
 */
static void
CheckImageBytes(Size len)
{
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("could not encode image: the image is empty"),
				 errhint("Pass the bytes of a PNG, JPEG, BMP, GIF or TGA file.")));
	if (len > COLPALI_MAX_IMAGE_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("could not encode image: %zu bytes is more than the limit of %zu bytes",
						(size_t) len, (size_t) COLPALI_MAX_IMAGE_BYTES)));
}

/*
 * colpali_image
 *		colpali_image(bytea) -> multivector: embed a page image, pooled by
 *		colpali.pool_factor (pool.c).
 */
Datum
colpali_image(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMultiVector(colpali_image_unpooled(fcinfo));

	PG_RETURN_MULTIVECTOR_P(PoolMultiVector(mv, colpali_pool_factor));
}

/*
 * colpali_image_unpooled
 *		Embed the page image of argument 0, all rows.
 */
Datum
colpali_image_unpooled(FunctionCallInfo fcinfo)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	const uint8 *input = (const uint8 *) VARDATA_ANY(b);
	size_t		length = VARSIZE_ANY_EXHDR(b);
	MultiVector *result;

	CheckImageBytes(length);
	Encode(ENCODE_IMAGES, 1, &input, &length, &result);
	PG_RETURN_MULTIVECTOR_P(result);
}

/*
 * colpali_images
 *		colpali_images(bytea[]) -> multivector[]: embed many page images in
 *		batches of colpali.max_batch, each pooled by colpali.pool_factor.
 *		NULL elements give NULL results.
 */
Datum
colpali_images(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(PoolMultiVectorArray(colpali_images_unpooled(fcinfo),
										 colpali_pool_factor));
}

/*
 * colpali_images_unpooled
 *		Embed the page images of argument 0, all rows of each.
 */
Datum
colpali_images_unpooled(FunctionCallInfo fcinfo)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Oid			rettype = get_fn_expr_rettype(fcinfo->flinfo);
	Oid			elemtype;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	Datum	   *results;
	int			batch = Max(colpali_max_batch, 1);
	const uint8 **inputs;
	size_t	   *lengths;
	int		   *index;
	MultiVector **out;
	int			dims[1];
	int			lbs[1];

	if (!OidIsValid(rettype) || !OidIsValid(elemtype = get_element_type(rettype)))
		elog(ERROR, "colpali_images: could not determine the result type");
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("colpali_images expects a one-dimensional array")));

	deconstruct_array(arr, BYTEAOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);

	results = palloc0(sizeof(Datum) * Max(nelems, 1));
	inputs = palloc(sizeof(uint8 *) * batch);
	lengths = palloc(sizeof(size_t) * batch);
	index = palloc(sizeof(int) * batch);
	out = palloc(sizeof(MultiVector *) * batch);

	for (int i = 0; i < nelems;)
	{
		int			n = 0;

		/* gather the next batch of non-NULL images */
		for (; i < nelems && n < batch; i++)
		{
			bytea	   *b;

			if (nulls[i])
				continue;
			b = DatumGetByteaPP(elems[i]);
			CheckImageBytes(VARSIZE_ANY_EXHDR(b));
			inputs[n] = (const uint8 *) VARDATA_ANY(b);
			lengths[n] = VARSIZE_ANY_EXHDR(b);
			index[n] = i;
			n++;
		}
		if (n == 0)
			break;
		CHECK_FOR_INTERRUPTS();
		Encode(ENCODE_IMAGES, n, inputs, lengths, out);
		for (int j = 0; j < n; j++)
			results[index[j]] = PointerGetDatum(out[j]);
		if (nelems > batch)
			ereport(DEBUG1,
					(errmsg("colpali_images: encoded %d of %d images", i, nelems)));
	}

	dims[0] = nelems;
	lbs[0] = ARR_NDIM(arr) == 1 ? ARR_LBOUND(arr)[0] : 1;
	if (nelems == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(elemtype));
	PG_RETURN_ARRAYTYPE_P(construct_md_array(results, nulls, 1, dims, lbs,
											 elemtype, typlen, typbyval, typalign));
}
