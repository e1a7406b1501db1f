/*
 * worker.c
 *	  The colpali background worker: registration (only when the library is
 *	  in shared_preload_libraries) and the main loop that owns the engine,
 *	  forms batches from the request ring and publishes results.
 *
 * The postmaster never touches the engine (nor CUDA): it only registers the
 * worker and sizes shared memory.  The worker opens the engine for the model
 * a request asks for (colpali.model_path travels with the request) on the
 * device of its own colpali.device setting, and keeps it open.
 *
 * Batching: the oldest PENDING request decides the batch kind (pages or
 * queries) and model; the worker takes whole requests of that kind and model
 * in arrival order up to colpali.max_batch items (a larger request goes alone
 * and is encoded in chunks).  While the engine runs, new requests pile up,
 * so right after a batch the next one is formed at once from whatever
 * waits (continuous batching).  Only when the worker was idle and the last
 * batch (or the queue now) shows concurrent requesters does it wait, up to
 * colpali.max_wait_ms after the oldest request arrived, for the batch to
 * fill: a burst of sessions then shares the first batch, and a lone
 * sequential client never pays the wait.  If a batch fails because of one bad input (format,
 * limit, ...), each request of the batch is retried alone so only the
 * faulty one gets the error.
 *
 * Failure: an ERROR while serving a batch fails that batch's requests and
 * the worker goes on.  If the worker exits (FATAL, SIGTERM), its exit
 * callback clears worker_pid and wakes the requesters it was serving, which
 * then report an ERROR; the postmaster restarts the worker after
 * bgw_restart_time.  A crash (SIGKILL, segfault) of any process attached to
 * shared memory makes the postmaster reinitialise shared memory and restart
 * all sessions; that is PostgreSQL's rule and the reason the engine never
 * aborts.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "colpali.h"
#include "encode.h"
#include "worker.h"

WorkerShared *ColpaliWorkerShared = NULL;

/* A batch being served: slot numbers and the worker's input mappings. */
typedef struct Batch
{
	EncodeKind	kind;
	EncoderKey	key;
	int			nslots;
	int			nitems;
	int			slots[WORKER_SLOTS];
	dsm_segment *inputs[WORKER_SLOTS];
} Batch;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Worker process state. */
static CpEngine *WorkerEngine = NULL;
static EncoderKey WorkerKey;
static int	WorkerDevice = -1;
static int	WorkerThreads = -1;
static int	WorkerMaxBatch = -1;
static bool LoggedCpuFallback = false;
static uint64 MyGeneration = 0;
static MemoryContext BatchContext = NULL;
static bool JustServed = false;	/* the previous loop iteration ran a batch */
static int	LastBatchRequests = 0;	/* requests in the last batch */

/*
 * WorkerShmemSize
 *		Bytes of static shared memory the ring needs.
 */
static Size
WorkerShmemSize(void)
{
	return MAXALIGN(sizeof(WorkerShared));
}

/*
 * WorkerShmemRequest
 *		shmem_request_hook: reserve the ring and its lock.
 */
static void
WorkerShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(WorkerShmemSize());
	RequestNamedLWLockTranche("colpali", 1);
}

/*
 * WorkerShmemStartup
 *		shmem_startup_hook: create the ring (or attach to it).
 */
static void
WorkerShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ColpaliWorkerShared = ShmemInitStruct("colpali worker", WorkerShmemSize(), &found);
	if (!found)
	{
		memset(ColpaliWorkerShared, 0, sizeof(WorkerShared));
		ColpaliWorkerShared->lock = &(GetNamedLWLockTranche("colpali"))->lock;
		ColpaliWorkerShared->next_seq = 1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * WorkerInit
 *		Called from _PG_init: when preloading, install the shared memory
 *		hooks and register the worker.  Nothing else happens in the
 *		postmaster (no engine, no CUDA).
 */
void
WorkerInit(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = WorkerShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = WorkerShmemStartup;

	memset(&worker, 0, sizeof(worker));
	/* a connection to no database: just enough to show in pg_stat_activity */
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 1;
	strlcpy(worker.bgw_library_name, "colpali", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "ColpaliWorkerMain", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "colpali encoder", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "colpali encoder", BGW_MAXLEN);
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/*
 * WorkerCancelRequested
 *		Engine cancel callback of the worker: stop when the worker must exit
 *		or when every requester of the batch has given up.  Only reads
 *		flags and shared slot states; never calls PostgreSQL.
 */
static bool
WorkerCancelRequested(void *arg)
{
	Batch	   *b = (Batch *) arg;

	if (ProcDiePending)
		return true;
	if (b == NULL)
		return false;
	for (int i = 0; i < b->nslots; i++)
		if (ColpaliWorkerShared->slots[b->slots[i]].state != SLOT_ABANDONED)
			return false;
	return true;
}

/*
 * CloseWorkerEngine
 *		on_proc_exit callback and settings-change helper.
 */
static void
CloseWorkerEngine(int code, Datum arg)
{
	if (WorkerEngine != NULL)
		cp_engine_close(WorkerEngine);
	WorkerEngine = NULL;
}

/*
 * OmpWaitIsPassive
 *		Was the server started with OMP_WAIT_POLICY=passive?  libgomp reads it
 *		once, when the library is loaded, so only the environment counts.
 */
static bool
OmpWaitIsPassive(void)
{
	const char *policy = getenv("OMP_WAIT_POLICY");

	return policy != NULL && pg_strcasecmp(policy, "passive") == 0;
}

/*
 * EnsureEngine
 *		Open (or reopen) the engine for key on the configured device.
 */
static CpStatus
EnsureEngine(const EncoderKey *key, CpError *err)
{
	CpEngineOptions opts;
	CpEngine   *engine = NULL;
	CpStatus	st;
	const char *device;

	if (WorkerEngine != NULL &&
		(memcmp(key, &WorkerKey, sizeof(EncoderKey)) != 0 ||
		 WorkerDevice != colpali_device || WorkerThreads != colpali_threads ||
		 WorkerMaxBatch != colpali_max_batch))
		CloseWorkerEngine(0, (Datum) 0);
	if (WorkerEngine != NULL)
		return CP_OK;
	if (key->model_path[0] == '\0')
		return cp_error(err, CP_ERR_INVALID_ARG, "no model is configured");

	EncoderEngineOptions(key, (CpDevice) colpali_device, &opts);
	opts.cancel = WorkerCancelRequested;
	st = cp_engine_open(&opts, &engine, err);
	if (st != CP_OK)
	{
		ereport(LOG,
				(errmsg("colpali worker could not load model \"%s\": %s",
						key->model_path, err->msg)));
		return st;
	}

	WorkerEngine = engine;
	memcpy(&WorkerKey, key, sizeof(EncoderKey));
	WorkerDevice = colpali_device;
	WorkerThreads = colpali_threads;
	WorkerMaxBatch = colpali_max_batch;
	device = cp_engine_device_name(engine);

	if (colpali_device == CP_DEVICE_AUTO && strcmp(device, "cpu") == 0 &&
		!LoggedCpuFallback)
	{
		ereport(LOG,
				(errmsg("colpali worker found no usable GPU, encoding on the CPU"),
				 errdetail("colpali.device is auto.")));
		LoggedCpuFallback = true;
	}
	ereport(LOG,
			(errmsg("colpali worker loaded model \"%s\" on %s",
					key->model_path, device)));
	if (strcmp(device, "cpu") == 0 && colpali_threads != 1 &&
		!OmpWaitIsPassive())
		ereport(LOG,
				(errmsg("colpali worker encodes on several CPU threads while OMP_WAIT_POLICY is not \"passive\""),
				 errdetail("Idle OpenMP threads then keep spinning and slow down the other processes of the server."),
				 errhint("Start the server with OMP_WAIT_POLICY=passive in its environment, or set colpali.threads = 1.")));

	LWLockAcquire(ColpaliWorkerShared->lock, LW_EXCLUSIVE);
	strlcpy(ColpaliWorkerShared->device, device, sizeof(ColpaliWorkerShared->device));
	strlcpy(ColpaliWorkerShared->model_path, key->model_path, MAXPGPATH);
	LWLockRelease(ColpaliWorkerShared->lock);
	return CP_OK;
}

/*
 * RecordLatency
 *		Add one finished request to the statistics.  Caller holds the lock.
 */
static void
RecordLatency(WorkerSlot *slot)
{
	WorkerShared *sh = ColpaliWorkerShared;
	double		ms = (double) (GetCurrentTimestamp() - slot->submitted) / 1000.0;

	sh->requests++;
	sh->latency_sum_ms += ms;
	sh->latency_ring[sh->latency_count % WORKER_LATENCY_RING] = (float) ms;
	sh->latency_count++;
}

/*
 * FinishSlot
 *		Fail one request with an engine status and message (or drop it if
 *		its requester has gone).
 */
static void
FinishSlot(int idx, CpStatus status, EncodePhase phase, const char *msg)
{
	WorkerSlot *slot = &ColpaliWorkerShared->slots[idx];

	LWLockAcquire(ColpaliWorkerShared->lock, LW_EXCLUSIVE);
	if (slot->state == SLOT_ABANDONED)
		slot->state = SLOT_FREE;
	else if (slot->state == SLOT_RUNNING || slot->state == SLOT_PENDING)
	{
		slot->status = status;
		slot->phase = phase;
		strlcpy(slot->errmsg, msg ? msg : "", CP_ERROR_MSG_LEN);
		slot->result = DSM_HANDLE_INVALID;
		slot->state = SLOT_DONE;
		ColpaliWorkerShared->errors++;
		RecordLatency(slot);
		SetLatch(&GetPGProcByNumber(slot->procno)->procLatch);
	}
	LWLockRelease(ColpaliWorkerShared->lock);
}

/*
 * PublishResult
 *		Copy n embeddings into a new pinned DSM segment and hand it to the
 *		requester of slot idx (or drop it if the requester has gone).
 */
static void
PublishResult(int idx, int n, const CpEmbedding *embs)
{
	WorkerSlot *slot = &ColpaliWorkerShared->slots[idx];
	Size		header = MAXALIGN(offsetof(WorkerResultHeader, items) +
								  sizeof(WorkerResultItem) * n);
	Size		total = header;
	dsm_segment *seg;
	WorkerResultHeader *h;
	char	   *base;
	Size		pos;
	dsm_handle	handle;

	if (slot->state == SLOT_ABANDONED)
	{
		FinishSlot(idx, CP_ERR_CANCELLED, PHASE_ENCODE, NULL);
		return;
	}

	for (int i = 0; i < n; i++)
		total = add_size(total, MAXALIGN(sizeof(float) * (Size) embs[i].nvec *
										 (Size) embs[i].dim));
	seg = dsm_create(total, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
	{
		FinishSlot(idx, CP_ERR_NOMEM, PHASE_ENCODE,
				   "the server is out of dynamic shared memory segments");
		return;
	}
	base = dsm_segment_address(seg);
	h = (WorkerResultHeader *) base;
	h->n = n;
	pos = header;
	for (int i = 0; i < n; i++)
	{
		Size		bytes = sizeof(float) * (Size) embs[i].nvec * (Size) embs[i].dim;

		h->items[i].nvec = embs[i].nvec;
		h->items[i].dim = embs[i].dim;
		h->items[i].offset = pos;
		memcpy(base + pos, embs[i].data, bytes);
		pos += MAXALIGN(bytes);
	}
	dsm_pin_segment(seg);
	handle = dsm_segment_handle(seg);
	dsm_detach(seg);

	LWLockAcquire(ColpaliWorkerShared->lock, LW_EXCLUSIVE);
	if (slot->state != SLOT_RUNNING)
	{
		/* abandoned meanwhile: nobody will read the result */
		dsm_unpin_segment(handle);
		if (slot->state == SLOT_ABANDONED)
			slot->state = SLOT_FREE;
	}
	else
	{
		slot->status = CP_OK;
		slot->result = handle;
		slot->state = SLOT_DONE;
		RecordLatency(slot);
		SetLatch(&GetPGProcByNumber(slot->procno)->procLatch);
	}
	LWLockRelease(ColpaliWorkerShared->lock);
}

/*
 * PublishModelInfo
 *		Answer the ENCODE_MODEL_INFO request of slot idx with the loaded
 *		engine's description (or drop it if the requester has gone).
 */
static void
PublishModelInfo(int idx)
{
	WorkerSlot *slot = &ColpaliWorkerShared->slots[idx];
	EncoderModelInfo info;

	EncoderModelInfoFromEngine(WorkerEngine, &info);
	LWLockAcquire(ColpaliWorkerShared->lock, LW_EXCLUSIVE);
	if (slot->state == SLOT_ABANDONED)
		slot->state = SLOT_FREE;
	else if (slot->state == SLOT_RUNNING)
	{
		memcpy(&slot->info, &info, sizeof(EncoderModelInfo));
		slot->status = CP_OK;
		slot->result = DSM_HANDLE_INVALID;
		slot->state = SLOT_DONE;
		RecordLatency(slot);
		SetLatch(&GetPGProcByNumber(slot->procno)->procLatch);
	}
	LWLockRelease(ColpaliWorkerShared->lock);
}

/*
 * CompareSeq
 *		qsort comparator: slots in arrival order.
 */
static int
CompareSeq(const void *a, const void *b)
{
	uint64		sa = ColpaliWorkerShared->slots[*(const int *) a].seq;
	uint64		sb = ColpaliWorkerShared->slots[*(const int *) b].seq;

	return sa < sb ? -1 : (sa > sb ? 1 : 0);
}

/*
 * CollectBatch
 *		Take the next batch from the ring, or return false and set
 *		*timeout_ms to how long to wait for it to fill (-1: queue empty).
 */
static bool
CollectBatch(Batch *b, long *timeout_ms)
{
	WorkerShared *sh = ColpaliWorkerShared;
	int			oldest = -1;
	int			pending_items = 0;
	int			cand[WORKER_SLOTS];
	int			ncand = 0;
	int			limit = colpali_max_batch;
	long		waited;
	WorkerSlot *ref;

	*timeout_ms = -1;
	b->nslots = 0;
	b->nitems = 0;

	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	for (int i = 0; i < WORKER_SLOTS; i++)
		if (sh->slots[i].state == SLOT_PENDING &&
			(oldest < 0 || sh->slots[i].seq < sh->slots[oldest].seq))
			oldest = i;
	if (oldest < 0)
	{
		LWLockRelease(sh->lock);
		return false;
	}
	ref = &sh->slots[oldest];
	for (int i = 0; i < WORKER_SLOTS; i++)
	{
		WorkerSlot *s = &sh->slots[i];

		if (s->state == SLOT_PENDING && s->kind == ref->kind &&
			memcmp(&s->key, &ref->key, sizeof(EncoderKey)) == 0)
		{
			cand[ncand++] = i;
			pending_items += s->nitems;
		}
	}
	/*
	 * Wait for the batch to fill only after an idle spell and when the last
	 * batch showed concurrent requesters: right after a batch, whatever
	 * queued up meanwhile goes at once, and a lone sequential client never
	 * pays colpali.max_wait_ms.
	 */
	waited = TimestampDifferenceMilliseconds(ref->submitted, GetCurrentTimestamp());
	if (pending_items < limit && waited < colpali_max_wait_ms &&
		!JustServed && (LastBatchRequests > 1 || ncand > 1))
	{
		*timeout_ms = Max(colpali_max_wait_ms - waited, 1);
		LWLockRelease(sh->lock);
		return false;
	}

	qsort(cand, ncand, sizeof(int), CompareSeq);
	b->kind = ref->kind;
	memcpy(&b->key, &ref->key, sizeof(EncoderKey));
	for (int c = 0; c < ncand; c++)
	{
		WorkerSlot *s = &sh->slots[cand[c]];
		dsm_segment *seg;

		if (b->nslots > 0 && b->nitems + s->nitems > limit)
			break;
		seg = dsm_attach(s->input);
		if (seg == NULL)
		{
			/* cannot happen while the requester waits; fail just this one */
			s->status = CP_ERR_INVALID_ARG;
			s->phase = PHASE_ENCODE;
			strlcpy(s->errmsg, "the request's input segment has vanished", CP_ERROR_MSG_LEN);
			s->state = SLOT_DONE;
			SetLatch(&GetPGProcByNumber(s->procno)->procLatch);
			continue;
		}
		s->state = SLOT_RUNNING;
		s->generation = MyGeneration;
		b->slots[b->nslots] = cand[c];
		b->inputs[b->nslots] = seg;
		b->nslots++;
		b->nitems += s->nitems;
	}
	LWLockRelease(sh->lock);
	return b->nslots > 0;
}

/*
 * EncodeSlots
 *		Encode the requests b->slots[from .. to-1] together (in chunks of
 *		max_batch items) and publish their results.  Returns the engine
 *		status; on failure nothing is published and err is filled.
 */
static CpStatus
EncodeSlots(Batch *b, int from, int to, CpError *err)
{
	volatile int n = 0;
	int			pos = 0;
	int			chunk = Max(colpali_max_batch, 1);
	const uint8 **inputs;
	size_t	   *lengths;
	CpEmbedding *embs;
	volatile CpStatus st = CP_OK;

	for (int s = from; s < to; s++)
		n += ColpaliWorkerShared->slots[b->slots[s]].nitems;
	inputs = palloc(sizeof(uint8 *) * n);
	lengths = palloc(sizeof(size_t) * n);
	embs = palloc0(sizeof(CpEmbedding) * n);

	for (int s = from; s < to; s++)
	{
		char	   *base = dsm_segment_address(b->inputs[s]);
		WorkerInputHeader *h = (WorkerInputHeader *) base;
		int			k = ColpaliWorkerShared->slots[b->slots[s]].nitems;

		if (h->n != k)
			elog(ERROR, "colpali request has %d inputs, slot says %d", h->n, k);
		for (int i = 0; i < k; i++)
		{
			inputs[pos] = (const uint8 *) base + h->offsets[i];
			lengths[pos] = h->offsets[k + i];
			pos++;
		}
	}

	cp_engine_set_cancel(WorkerEngine, WorkerCancelRequested, b);
	for (int start = 0; start < n && st == CP_OK; start += chunk)
	{
		int			m = Min(chunk, n - start);

		if (b->kind == ENCODE_IMAGES)
			st = cp_engine_encode_images(WorkerEngine, m, inputs + start,
										 lengths + start, embs + start, err);
		else
			st = cp_engine_encode_queries(WorkerEngine, m,
										  (const char *const *) (inputs + start),
										  embs + start, err);
	}
	cp_engine_set_cancel(WorkerEngine, WorkerCancelRequested, NULL);

	/* the embeddings are malloc'd: free them even if publishing fails */
	PG_TRY();
	{
		if (st == CP_OK)
		{
			int			at = 0;

			LWLockAcquire(ColpaliWorkerShared->lock, LW_EXCLUSIVE);
			ColpaliWorkerShared->batches++;
			ColpaliWorkerShared->items += n;
			if ((uint64) n > ColpaliWorkerShared->max_batch_items)
				ColpaliWorkerShared->max_batch_items = n;
			LWLockRelease(ColpaliWorkerShared->lock);
			for (int s = from; s < to; s++)
			{
				int			k = ColpaliWorkerShared->slots[b->slots[s]].nitems;

				PublishResult(b->slots[s], k, embs + at);
				at += k;
			}
		}
	}
	PG_FINALLY();
	{
		for (int i = 0; i < n; i++)
			cp_embedding_free(&embs[i]);
	}
	PG_END_TRY();
	return st;
}

/*
 * IsInputError
 *		Statuses caused by one input rather than by the model or the
 *		machine: worth retrying the batch's requests one by one.
 */
static bool
IsInputError(CpStatus st)
{
	return st == CP_ERR_FORMAT || st == CP_ERR_UNSUPPORTED ||
		st == CP_ERR_LIMIT || st == CP_ERR_INVALID_ARG || st == CP_ERR_SHAPE;
}

/*
 * ServeBatch
 *		Load the model if needed, encode, publish; errors go to the
 *		requesters, never kill the worker.
 */
static void
ServeBatch(Batch *b)
{
	CpError		err;
	CpStatus	st;
	char		activity[64];

	snprintf(activity, sizeof(activity), "encoding %d %s from %d requests",
			 b->nitems, b->kind == ENCODE_IMAGES ? "page images" :
			 b->kind == ENCODE_QUERIES ? "queries" : "model descriptions",
			 b->nslots);
	pgstat_report_activity(STATE_RUNNING, activity);
	memset(&err, 0, sizeof(err));
	st = EnsureEngine(&b->key, &err);
	if (st != CP_OK)
	{
		if (st == CP_ERR_CANCELLED)
			CHECK_FOR_INTERRUPTS();
		for (int s = 0; s < b->nslots; s++)
			FinishSlot(b->slots[s], st, PHASE_LOAD, err.msg);
		return;
	}

	if (b->kind == ENCODE_MODEL_INFO)
	{
		for (int s = 0; s < b->nslots; s++)
			PublishModelInfo(b->slots[s]);
		return;
	}

	/* developer option: keep the batch in flight (tests) */
	for (int waited = 0; waited < colpali_debug_batch_delay_ms &&
		 !WorkerCancelRequested(b); waited += 5)
		pg_usleep(5000L);
	if (ProcDiePending)
		CHECK_FOR_INTERRUPTS();

	st = EncodeSlots(b, 0, b->nslots, &err);
	if (st == CP_ERR_CANCELLED)
		CHECK_FOR_INTERRUPTS();	/* exits if we were told to */
	if (st != CP_OK && IsInputError(st) && b->nslots > 1)
	{
		/* find the culprit: each request alone */
		for (int s = 0; s < b->nslots; s++)
		{
			memset(&err, 0, sizeof(err));
			st = EncodeSlots(b, s, s + 1, &err);
			if (st == CP_ERR_CANCELLED)
				CHECK_FOR_INTERRUPTS();
			if (st != CP_OK)
				FinishSlot(b->slots[s], st, PHASE_ENCODE, err.msg);
		}
		return;
	}
	if (st != CP_OK)
		for (int s = 0; s < b->nslots; s++)
			FinishSlot(b->slots[s], st, PHASE_ENCODE, err.msg);
}

/*
 * ReleaseBatch
 *		Detach the batch's input segments.
 */
static void
ReleaseBatch(Batch *b)
{
	for (int s = 0; s < b->nslots; s++)
		if (b->inputs[s] != NULL)
			dsm_detach(b->inputs[s]);
	b->nslots = 0;
}

/*
 * WorkerExit
 *		before_shmem_exit callback: say we are gone and answer every waiting
 *		request (taken or not) with "worker lost", so its requester reports
 *		an ERROR now instead of waiting for the next worker.
 */
static void
WorkerExit(int code, Datum arg)
{
	WorkerShared *sh = ColpaliWorkerShared;

	LWLockReleaseAll();
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	if (sh->generation == MyGeneration)
		sh->worker_pid = 0;
	for (int i = 0; i < WORKER_SLOTS; i++)
	{
		WorkerSlot *s = &sh->slots[i];

		if (s->state == SLOT_ABANDONED && s->generation == MyGeneration)
			s->state = SLOT_FREE;
		else if (s->state == SLOT_PENDING ||
				 (s->state == SLOT_RUNNING && s->generation == MyGeneration))
		{
			s->lost = true;
			s->result = DSM_HANDLE_INVALID;
			s->state = SLOT_DONE;
			SetLatch(&GetPGProcByNumber(s->procno)->procLatch);
		}
	}
	LWLockRelease(sh->lock);
}

/*
 * ColpaliWorkerMain
 *		Entry point of the background worker.
 */
void
ColpaliWorkerMain(Datum main_arg)
{
	WorkerShared *sh;
	Batch		batch;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("colpali encoder");

	sh = ColpaliWorkerShared;
	if (sh == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("colpali shared memory is not initialised")));

	BatchContext = AllocSetContextCreate(TopMemoryContext, "colpali worker batch",
										 ALLOCSET_DEFAULT_SIZES);

	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	MyGeneration = ++sh->generation;
	sh->worker_pid = MyProcPid;
	sh->worker_procno = MyProcIndex();
	sh->worker_started = GetCurrentTimestamp();
	sh->starts++;
	/* requests abandoned while a previous worker held them have no owner left */
	for (int i = 0; i < WORKER_SLOTS; i++)
		if (sh->slots[i].state == SLOT_ABANDONED)
			sh->slots[i].state = SLOT_FREE;
	LWLockRelease(sh->lock);
	before_shmem_exit(WorkerExit, (Datum) 0);
	on_proc_exit(CloseWorkerEngine, (Datum) 0);

	ereport(LOG, (errmsg("colpali background worker started")));

	/* load the configured model now, so the first request does not wait */
	if (colpali_model_path != NULL && colpali_model_path[0] != '\0')
	{
		EncoderKey	key;
		CpError		err;

		memset(&err, 0, sizeof(err));
		EncoderKeyFromSettings(&key);
		(void) EnsureEngine(&key, &err);
	}

	memset(&batch, 0, sizeof(batch));
	for (;;)
	{
		long		timeout_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (CollectBatch(&batch, &timeout_ms))
		{
			MemoryContext old = MemoryContextSwitchTo(BatchContext);

			JustServed = true;
			LastBatchRequests = batch.nslots;

			PG_TRY();
			{
				ServeBatch(&batch);
			}
			PG_CATCH();
			{
				ErrorData  *edata;

				/* fail this batch, keep the worker */
				MemoryContextSwitchTo(TopMemoryContext);
				edata = CopyErrorData();
				FlushErrorState();
				LWLockReleaseAll();
				ereport(LOG,
						(errmsg("colpali worker failed a batch: %s", edata->message)));
				for (int s = 0; s < batch.nslots; s++)
					FinishSlot(batch.slots[s], CP_ERR_BACKEND, PHASE_ENCODE,
							   edata->message);
				FreeErrorData(edata);
			}
			PG_END_TRY();
			MemoryContextSwitchTo(old);
			ReleaseBatch(&batch);
			MemoryContextReset(BatchContext);
			pgstat_report_activity(STATE_IDLE, NULL);
			continue;
		}

		JustServed = false;
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH |
						 (timeout_ms >= 0 ? WL_TIMEOUT : 0),
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
