/*
 * worker_client.c
 *	  The client side of the background worker protocol: how a backend hands
 *	  an encoding request to the colpali background worker through the
 *	  request ring in shared memory (worker.h) and waits for the answer.
 *
 * A requester copies its inputs into a DSM segment it creates, fills a free
 * slot (state PENDING) and sets the worker's latch.  It then sleeps on its
 * own latch with CHECK_FOR_INTERRUPTS, so query cancel, statement_timeout
 * and pg_terminate_backend work while it waits.  The worker publishes the
 * result in a DSM segment it pins (state DONE); the requester attaches,
 * copies, unpins (which destroys the segment once detached) and frees the
 * slot.
 *
 * Giving up (ERROR or FATAL while waiting) goes through
 * PG_ENSURE_ERROR_CLEANUP: a PENDING slot is simply freed (the worker never
 * saw it, and our input segment goes away with our resource owner); a
 * RUNNING slot is marked ABANDONED, so the worker, which holds its own
 * mapping of the input, finishes or cancels the batch and then frees the
 * slot without publishing anything; a DONE slot has its result unpinned.
 *
 * If the worker exits, its exit callback answers every PENDING slot and
 * every RUNNING slot of its generation with "worker lost" (DONE, lost), so
 * the requesters report an ERROR at once; a requester also notices a changed
 * generation on its own (the crash case).  Requests submitted while no
 * worker runs wait for the restarted one (up to WORKER_ABSENT_TIMEOUT_MS).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"

#include "encode.h"
#include "multivector_from_engine.h"
#include "worker.h"
#include "worker_client.h"

/* How long a request may wait for a worker that is not running at all. */
#define WORKER_ABSENT_TIMEOUT_MS	30000

/* What the cleanup callback needs to know about the request in flight. */
typedef struct PendingRequest
{
	int			slot;
	uint64		seq;
} PendingRequest;

/*
 * WorkerAvailable
 *		True when the library was preloaded, so the ring exists (the worker
 *		itself may be restarting; requests then wait for it).
 */
bool
WorkerAvailable(void)
{
	return ColpaliWorkerShared != NULL;
}

/*
 * WakeWorker
 *		Set the worker's latch, if a worker runs.  Caller holds the lock.
 */
static void
WakeWorker(void)
{
	if (ColpaliWorkerShared->worker_pid != 0)
		SetLatch(&GetPGProcByNumber(ColpaliWorkerShared->worker_procno)->procLatch);
}

/*
 * CreateInputSegment
 *		Copy n inputs into a new DSM segment (queries get a trailing NUL).
 */
static dsm_segment *
CreateInputSegment(EncodeKind kind, int n, const uint8 *const *inputs,
				   const size_t *lengths)
{
	Size		header = MAXALIGN(offsetof(WorkerInputHeader, offsets) +
								  sizeof(Size) * 2 * n);
	Size		total = header;
	dsm_segment *seg;
	WorkerInputHeader *h;
	char	   *base;
	Size		pos;

	for (int i = 0; i < n; i++)
		total = add_size(total, MAXALIGN(lengths[i] + 1));
	seg = dsm_create(total, 0);
	base = dsm_segment_address(seg);
	h = (WorkerInputHeader *) base;
	h->n = n;
	pos = header;
	for (int i = 0; i < n; i++)
	{
		h->offsets[i] = pos;
		h->offsets[n + i] = lengths[i];
		memcpy(base + pos, inputs[i], lengths[i]);
		base[pos + lengths[i]] = '\0';
		pos += MAXALIGN(lengths[i] + 1);
	}
	return seg;
}

/*
 * AbandonRequest
 *		Error/exit cleanup of a request in flight (see the file header).
 */
static void
AbandonRequest(int code, Datum arg)
{
	PendingRequest *req = (PendingRequest *) DatumGetPointer(arg);
	WorkerSlot *slot = &ColpaliWorkerShared->slots[req->slot];

	LWLockAcquire(ColpaliWorkerShared->lock, LW_EXCLUSIVE);
	if (slot->seq == req->seq)
	{
		switch (slot->state)
		{
			case SLOT_PENDING:
				slot->state = SLOT_FREE;
				break;
			case SLOT_RUNNING:
				slot->state = SLOT_ABANDONED;
				WakeWorker();
				break;
			case SLOT_DONE:
				if (slot->result != DSM_HANDLE_INVALID)
					dsm_unpin_segment(slot->result);
				slot->result = DSM_HANDLE_INVALID;
				slot->state = SLOT_FREE;
				break;
			default:
				break;
		}
	}
	LWLockRelease(ColpaliWorkerShared->lock);
}

/*
 * ClaimSlot
 *		Find a free slot and fill it as PENDING; wait while all are busy.
 */
static int
ClaimSlot(EncodeKind kind, int n, dsm_segment *input, uint64 *seq)
{
	EncoderKey	key;

	EncoderKeyFromSettings(&key);
	for (;;)
	{
		LWLockAcquire(ColpaliWorkerShared->lock, LW_EXCLUSIVE);
		for (int i = 0; i < WORKER_SLOTS; i++)
		{
			WorkerSlot *slot = &ColpaliWorkerShared->slots[i];

			if (slot->state != SLOT_FREE)
				continue;
			slot->kind = kind;
			slot->nitems = n;
			slot->procno = MyProcIndex();
			slot->seq = *seq = ColpaliWorkerShared->next_seq++;
			slot->generation = 0;
			slot->submitted = GetCurrentTimestamp();
			slot->input = dsm_segment_handle(input);
			slot->result = DSM_HANDLE_INVALID;
			slot->lost = false;
			slot->status = CP_OK;
			slot->phase = PHASE_ENCODE;
			slot->errmsg[0] = '\0';
			memcpy(&slot->key, &key, sizeof(EncoderKey));
			slot->state = SLOT_PENDING;
			WakeWorker();
			LWLockRelease(ColpaliWorkerShared->lock);
			return i;
		}
		LWLockRelease(ColpaliWorkerShared->lock);

		/* every slot is taken: poll until one frees up */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * CopyResult
 *		Copy the items of a result segment into palloc'd multivectors, then
 *		unpin it (it goes away when we detach).
 */
static void
CopyResult(dsm_handle handle, int n, MultiVector **out)
{
	dsm_segment *seg = dsm_attach(handle);
	WorkerResultHeader *h;
	char	   *base;

	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not attach to the result of the colpali background worker")));
	dsm_unpin_segment(handle);
	base = dsm_segment_address(seg);
	h = (WorkerResultHeader *) base;
	if (h->n != n)
		elog(ERROR, "colpali worker returned %d results for %d inputs", h->n, n);
	for (int i = 0; i < n; i++)
	{
		CpEmbedding emb;

		emb.nvec = h->items[i].nvec;
		emb.dim = h->items[i].dim;
		emb.data = (float *) (base + h->items[i].offset);
		out[i] = EmbeddingToMultiVector(&emb);
	}
	dsm_detach(seg);
}

/* What became of a request. */
typedef struct RequestOutcome
{
	CpStatus	status;
	EncodePhase phase;
	char		errmsg[CP_ERROR_MSG_LEN];
	dsm_handle	result;
	bool		worker_lost;
	EncoderModelInfo info;		/* ENCODE_MODEL_INFO answers */
} RequestOutcome;

/*
 * WaitForRequest
 *		Sleep on our latch until the worker answers the request in slot idx,
 *		or until the worker that took it is gone.  Frees the slot.
 */
static void
WaitForRequest(int idx, RequestOutcome *outcome)
{
	WorkerSlot *slot = &ColpaliWorkerShared->slots[idx];
	TimestampTz absent_since = 0;

	for (;;)
	{
		bool		done = false;

		LWLockAcquire(ColpaliWorkerShared->lock, LW_EXCLUSIVE);
		if (slot->state == SLOT_DONE)
		{
			outcome->worker_lost = slot->lost;
			outcome->status = slot->status;
			outcome->phase = slot->phase;
			strlcpy(outcome->errmsg, slot->errmsg, CP_ERROR_MSG_LEN);
			outcome->result = slot->result;
			if (slot->kind == ENCODE_MODEL_INFO)
				memcpy(&outcome->info, &slot->info, sizeof(EncoderModelInfo));
			slot->result = DSM_HANDLE_INVALID;
			slot->state = SLOT_FREE;
			done = true;
		}
		else if (slot->state == SLOT_RUNNING &&
				 (ColpaliWorkerShared->worker_pid == 0 ||
				  ColpaliWorkerShared->generation != slot->generation))
		{
			/* the worker that took our request is gone */
			slot->state = SLOT_FREE;
			outcome->worker_lost = true;
			done = true;
		}
		else if (slot->state == SLOT_PENDING &&
				 ColpaliWorkerShared->worker_pid == 0)
		{
			/* no worker at all: wait for the postmaster to restart it */
			if (absent_since == 0)
				absent_since = GetCurrentTimestamp();
			else if (TimestampDifferenceExceeds(absent_since, GetCurrentTimestamp(),
												WORKER_ABSENT_TIMEOUT_MS))
			{
				slot->state = SLOT_FREE;
				LWLockRelease(ColpaliWorkerShared->lock);
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("the colpali background worker is not running"),
						 errhint("Check the server log; set colpali.use_worker = off to encode in this session.")));
			}
		}
		else
			absent_since = 0;
		LWLockRelease(ColpaliWorkerShared->lock);
		if (done)
			return;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * WorkerRequest
 *		Send n inputs of kind to the background worker and wait: out[i]
 *		receives a palloc'd multivector (encoding requests), *info the
 *		model description (ENCODE_MODEL_INFO).  ERROR if the worker reports
 *		one, if it exits while holding the request, or on cancel.
 */
static void
WorkerRequest(EncodeKind kind, int n, const uint8 *const *inputs,
			  const size_t *lengths, MultiVector **out, EncoderModelInfo *info)
{
	dsm_segment *input;
	PendingRequest req;
	RequestOutcome outcome;
	EncoderKey	key;

	EncoderKeyFromSettings(&key);
	memset(&outcome, 0, sizeof(outcome));
	outcome.result = DSM_HANDLE_INVALID;
	input = CreateInputSegment(kind, n, inputs, lengths);
	req.slot = -1;
	req.seq = 0;

	pgstat_report_wait_start(PG_WAIT_EXTENSION);
	req.slot = ClaimSlot(kind, n, input, &req.seq);

	PG_ENSURE_ERROR_CLEANUP(AbandonRequest, PointerGetDatum(&req));
	{
		WaitForRequest(req.slot, &outcome);

		/*
		 * The slot is FREE now, so cleanup would not unpin the result: do it
		 * here, first thing after attaching (CopyResult).
		 */
		if (!outcome.worker_lost && outcome.status == CP_OK &&
			kind != ENCODE_MODEL_INFO)
			CopyResult(outcome.result, n, out);
		else if (outcome.result != DSM_HANDLE_INVALID)
			dsm_unpin_segment(outcome.result);
	}
	PG_END_ENSURE_ERROR_CLEANUP(AbandonRequest, PointerGetDatum(&req));
	pgstat_report_wait_end();
	dsm_detach(input);

	if (outcome.worker_lost)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("the colpali background worker exited while encoding this request"),
				 errhint("The worker is restarted automatically; retry the statement.")));
	if (outcome.status != CP_OK)
		ReportEncoderError(outcome.status, outcome.errmsg, outcome.phase, kind,
						   key.model_path);
	if (info != NULL)
		memcpy(info, &outcome.info, sizeof(EncoderModelInfo));
}

/*
 * WorkerEncode
 *		Encode n inputs through the background worker; out[i] receives a
 *		palloc'd multivector.
 */
void
WorkerEncode(EncodeKind kind, int n, const uint8 *const *inputs,
			 const size_t *lengths, MultiVector **out)
{
	WorkerRequest(kind, n, inputs, lengths, out, NULL);
}

/*
 * WorkerModelInfo
 *		The worker's description of the session's model (loaded there if
 *		needed): one request with a single empty input.
 */
void
WorkerModelInfo(EncoderModelInfo *info)
{
	const uint8 *empty = (const uint8 *) "";
	size_t		len = 0;

	WorkerRequest(ENCODE_MODEL_INFO, 1, &empty, &len, NULL, info);
}
