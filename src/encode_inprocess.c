/*
 * encode_inprocess.c
 *	  The in-process engine: encoding inside the calling backend, on the CPU,
 *	  when the background worker is not used (no preload, or
 *	  colpali.use_worker = off).
 *
 * The engine is opened on first use, kept in static storage for the life of
 * the backend (closed by an on_proc_exit callback) and reopened when the
 * model settings change.
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

#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/ipc.h"

#include "encode.h"
#include "multivector_from_engine.h"
#include "stats.h"

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

	if (colpali_device == CP_DEVICE_CUDA)
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

	memset(&err, 0, sizeof(err));
	EncoderEngineOptions(key, CP_DEVICE_CPU, &opts);
	opts.cancel = EncodeCancelRequested;

	st = cp_engine_open(&opts, &engine, &err);
	if (st == CP_ERR_CANCELLED)
		CHECK_FOR_INTERRUPTS();
	if (st != CP_OK)
		ReportEncoderError(st, err.msg, PHASE_LOAD, kind, key->model_path);

	LocalEngine = engine;
	memcpy(&LocalKey, key, sizeof(EncoderKey));
	LocalThreads = colpali_threads;
	LocalMaxBatch = colpali_max_batch;
	/* no path here: any role may raise client_min_messages to DEBUG1 */
	elog(DEBUG1, "colpali: loaded the model in process on %s (%s)",
		 cp_engine_device_name(engine), cp_engine_kernels(engine));
	return engine;
}

/*
 * EncodeInProcess
 *		Encode n inputs with the backend's own engine for the session's
 *		model (the caller has checked that one is configured).  Queries must
 *		be NUL-terminated UTF-8.  out[i] receives a palloc'd multivector.
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
 * ModelInfoInProcess
 *		Describe the backend's own engine for the session's model, loading
 *		it if needed (the caller has checked that one is configured).
 */
void
ModelInfoInProcess(EncoderModelInfo *info)
{
	EncoderKey	key;
	CpEngine   *engine;

	EncoderKeyFromSettings(&key);
	engine = GetLocalEngine(&key, ENCODE_MODEL_INFO);
	EncoderModelInfoFromEngine(engine, info);
}
