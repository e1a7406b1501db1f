/*
 * encode.c
 *	  SQL encoder functions colpali_query(text), colpali_image(bytea) and
 *	  colpali_images(bytea[]), and the in-process engine.
 *
 * Each call goes to the background worker when the library was preloaded
 * and colpali.use_worker is on (worker.c), else it runs in the calling
 * backend on the CPU.  The in-process engine is opened on first use, kept in
 * static storage for the life of the backend (closed by an on_proc_exit
 * callback) and reopened when the model settings change.
 *
 * Interrupts: the engine polls a cancel callback between layers, possibly
 * from one of its own threads, so the callback only reads the
 * QueryCancelPending / ProcDiePending flags (sig_atomic_t) and never calls a
 * PostgreSQL function.  When the engine returns CP_ERR_CANCELLED, the glue
 * runs CHECK_FOR_INTERRUPTS() on the main thread, which raises the usual
 * cancel / statement_timeout / terminate error.  The engine leaves itself
 * reusable after a cancelled call, so the backend stays healthy.
 *
 * Memory: embeddings come back malloc'd from the engine; they are copied
 * into palloc'd multivectors and freed in a PG_FINALLY block so an ERROR in
 * between does not leak them.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/ipc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "colpali.h"
#include "encode.h"

PG_FUNCTION_INFO_V1(colpali_query);
PG_FUNCTION_INFO_V1(colpali_image);
PG_FUNCTION_INFO_V1(colpali_images);

static CpEngine *LocalEngine = NULL;
static EncoderKey LocalKey;
static int	LocalThreads = 0;
static int	LocalMaxBatch = 0;
static bool LocalExitRegistered = false;

/*
 * EncodeCancelRequested
 *		Engine cancel callback.  May run on an engine thread: it only reads
 *		two signal flags.
 */
static bool
EncodeCancelRequested(void *arg)
{
	return QueryCancelPending || ProcDiePending;
}

/*
 * CloseLocalEngine
 *		on_proc_exit callback: release the in-process engine.
 */
static void
CloseLocalEngine(int code, Datum arg)
{
	if (LocalEngine != NULL)
		cp_engine_close(LocalEngine);
	LocalEngine = NULL;
}

/*
 * RequireModel
 *		ERROR unless a model is configured.
 */
static void
RequireModel(const EncoderKey *key)
{
	if (key->model_path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no colpali model is configured"),
				 errhint("A superuser must set colpali.model_path to a ColPali checkpoint folder, "
						 "for example with ALTER SYSTEM SET colpali.model_path = '/path/to/colpali-v1.3-hf'.")));
}

/*
 * GetLocalEngine
 *		The in-process engine for the session's settings, opened (or
 *		reopened after a settings change) as needed.
 */
static CpEngine *
GetLocalEngine(const EncoderKey *key, EncodeKind kind)
{
	CpEngineOptions opts;
	CpEngine   *engine = NULL;
	CpError		err;
	CpStatus	st;

	if (EncoderDeviceSetting() == CP_DEVICE_CUDA)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("colpali.device = cuda needs the colpali background worker"),
				 errdetail("Encoding inside a backend always runs on the CPU."),
				 errhint("Add colpali to shared_preload_libraries, or set colpali.device to auto or cpu.")));

	if (LocalEngine != NULL &&
		(memcmp(key, &LocalKey, sizeof(EncoderKey)) != 0 ||
		 LocalThreads != colpali_threads || LocalMaxBatch != colpali_max_batch))
	{
		cp_engine_close(LocalEngine);
		LocalEngine = NULL;
	}
	if (LocalEngine != NULL)
		return LocalEngine;

	if (!LocalExitRegistered)
	{
		on_proc_exit(CloseLocalEngine, (Datum) 0);
		LocalExitRegistered = true;
	}

	memset(&opts, 0, sizeof(opts));
	memset(&err, 0, sizeof(err));
	opts.model_dir = key->model_path;
	opts.base_model_dir = key->base_model_path[0] ? key->base_model_path : NULL;
	opts.device = CP_DEVICE_CPU;
	opts.threads = colpali_threads;
	opts.max_image_pixels = key->max_image_pixels;
	opts.cancel = EncodeCancelRequested;
	opts.cancel_arg = NULL;
	opts.cpu_weights = (CpWeightMode) key->cpu_weights;
	opts.cpu_precision = (CpPrecision) key->cpu_precision;
	opts.max_batch = colpali_max_batch;
	opts.attention = (CpAttentionMode) key->attention;

	st = cp_engine_open(&opts, &engine, &err);
	if (st == CP_ERR_CANCELLED)
		CHECK_FOR_INTERRUPTS();
	if (st != CP_OK)
		ReportEncoderError(st, err.msg, PHASE_LOAD, kind, key->model_path);

	LocalEngine = engine;
	memcpy(&LocalKey, key, sizeof(EncoderKey));
	LocalThreads = colpali_threads;
	LocalMaxBatch = colpali_max_batch;
	elog(DEBUG1, "colpali: loaded model \"%s\" in process on %s (%s)",
		 key->model_path, cp_engine_device_name(engine),
		 cp_engine_kernels(engine));
	return engine;
}

/*
 * EmbeddingToMultiVector
 *		Copy an engine embedding into a palloc'd multivector.
 */
MultiVector *
EmbeddingToMultiVector(const CpEmbedding *emb)
{
	MultiVector *mv;

	if (emb->data == NULL || emb->nvec < 1 || emb->dim < 1 || emb->dim > MV_MAX_DIM)
		elog(ERROR, "colpali engine returned an invalid embedding (%d x %d)",
			 emb->nvec, emb->dim);
	if (emb->nvec > MV_MAX_VECTORS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("embedding has %d vectors, more than the multivector limit of %d",
						emb->nvec, MV_MAX_VECTORS),
				 errhint("Shorten the query text.")));

	mv = InitMultiVector(emb->nvec, emb->dim);
	memcpy(mv->x, emb->data, sizeof(float) * (Size) emb->nvec * (Size) emb->dim);
	return mv;
}

/*
 * EncodeInProcess
 *		Encode n inputs with the backend's own engine.  Queries must be
 *		NUL-terminated.  out[i] receives a palloc'd multivector.
 */
void
EncodeInProcess(EncodeKind kind, int n, const uint8 *const *inputs,
				const size_t *lengths, MultiVector **out)
{
	EncoderKey	key;
	CpEngine   *engine;
	CpEmbedding *embs;
	CpError		err;
	CpStatus	st;
	instr_time	start;
	instr_time	duration;

	EncoderKeyFromSettings(&key);
	RequireModel(&key);
	engine = GetLocalEngine(&key, kind);

	embs = palloc0(sizeof(CpEmbedding) * n);
	memset(&err, 0, sizeof(err));
	cp_engine_set_cancel(engine, EncodeCancelRequested, NULL);

	INSTR_TIME_SET_CURRENT(start);
	if (kind == ENCODE_IMAGES)
		st = cp_engine_encode_images(engine, n, inputs, lengths, embs, &err);
	else
		st = cp_engine_encode_queries(engine, n, (const char *const *) inputs,
									  embs, &err);
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);

	if (st == CP_ERR_CANCELLED)
		CHECK_FOR_INTERRUPTS();
	if (st != CP_OK)
		ReportEncoderError(st, err.msg, PHASE_ENCODE, kind, key.model_path);

	PG_TRY();
	{
		for (int i = 0; i < n; i++)
			out[i] = EmbeddingToMultiVector(&embs[i]);
	}
	PG_FINALLY();
	{
		for (int i = 0; i < n; i++)
			cp_embedding_free(&embs[i]);
	}
	PG_END_TRY();
	pfree(embs);

	LocalStatsRecord(n, INSTR_TIME_GET_MILLISEC(duration));
}

/*
 * Encode
 *		Route a request to the worker or to the in-process engine.
 */
static void
Encode(EncodeKind kind, int n, const uint8 *const *inputs,
	   const size_t *lengths, MultiVector **out)
{
	if (colpali_use_worker && WorkerAvailable())
	{
		EncoderKey	key;

		EncoderKeyFromSettings(&key);
		RequireModel(&key);
		WorkerEncode(kind, n, inputs, lengths, out);
	}
	else
		EncodeInProcess(kind, n, inputs, lengths, out);
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
 * colpali_query
 *		colpali_query(text) -> multivector: embed a search query.
 */
Datum
colpali_query(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	Size		len = VARSIZE_ANY_EXHDR(t);
	char	   *query;
	const uint8 *input;
	size_t		length;
	MultiVector *result;

	if (len > COLPALI_MAX_QUERY_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("could not encode query: %zu bytes is more than the limit of %d bytes",
						(size_t) len, COLPALI_MAX_QUERY_BYTES),
				 errhint("Shorten the query text.")));

	query = text_to_cstring(t);
	input = (const uint8 *) query;
	length = len;
	Encode(ENCODE_QUERIES, 1, &input, &length, &result);
	PG_RETURN_MULTIVECTOR_P(result);
}

/*
 * colpali_image
 *		colpali_image(bytea) -> multivector: embed a page image.
 */
Datum
colpali_image(PG_FUNCTION_ARGS)
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
 *		batches of colpali.max_batch.  NULL elements give NULL results.
 */
Datum
colpali_images(PG_FUNCTION_ARGS)
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
