/*
 * worker.h
 *	  Shared-memory state of the colpali background worker: the request
 *	  ring and the statistics read by colpali_stats().
 *
 * Protocol (the worker side in worker.c, the client side in worker_client.c):
 *	FREE -> PENDING       requester: inputs copied into its own DSM segment
 *	PENDING -> RUNNING    worker: took the slot into a batch, attached inputs
 *	RUNNING -> DONE       worker: result in a pinned DSM segment, or an error
 *	DONE -> FREE          requester: copied (and unpinned) the result
 *	PENDING -> FREE       requester gave up before the worker saw the slot
 *	RUNNING -> ABANDONED  requester gave up while the worker computes;
 *	ABANDONED -> FREE     worker: drops the result instead of publishing it
 *	PENDING/RUNNING -> DONE with lost set: the worker is exiting
 * All transitions happen under WorkerShared->lock.
 */
#ifndef COLPALI_WORKER_H
#define COLPALI_WORKER_H

#include "postgres.h"

#include "storage/dsm.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "encode.h"

/*
 * This backend's number in ProcGlobal->allProcs, whose latch the other side
 * sets (PGPROC.pgprocno left in PostgreSQL 17; the difference works in all).
 */
#define MyProcIndex()	((int) (MyProc - ProcGlobal->allProcs))

#define WORKER_SLOTS		64		/* concurrent requests (not items) */
#define WORKER_LATENCY_RING	1024	/* recent request latencies kept for p99 */

typedef enum WorkerSlotState
{
	SLOT_FREE = 0,
	SLOT_PENDING,
	SLOT_RUNNING,
	SLOT_DONE,
	SLOT_ABANDONED
} WorkerSlotState;

typedef struct WorkerSlot
{
	volatile int state;			/* WorkerSlotState */
	EncodeKind	kind;
	int			nitems;
	int			procno;			/* requester's MyProcIndex() (its latch) */
	uint64		seq;			/* request number, orders the queue */
	uint64		generation;		/* worker generation that took it */
	TimestampTz submitted;
	dsm_handle	input;			/* requester's segment with the inputs */
	dsm_handle	result;			/* worker's pinned segment, or 0 */
	bool		lost;			/* DONE because the worker exited */
	CpStatus	status;			/* CP_OK or the error */
	EncodePhase phase;
	char		errmsg[CP_ERROR_MSG_LEN];
	EncoderKey	key;			/* model the request wants */
	EncoderModelInfo info;		/* answer to an ENCODE_MODEL_INFO request */
} WorkerSlot;

typedef struct WorkerShared
{
	LWLock	   *lock;
	pid_t		worker_pid;		/* 0 while no worker runs */
	int			worker_procno;
	uint64		generation;		/* bumped at each worker start */
	uint64		next_seq;
	TimestampTz worker_started;

	/* statistics */
	char		device[16];		/* "cpu", "cuda", or "" before the first load */
	char		model_path[MAXPGPATH];
	uint64		starts;
	uint64		requests;
	uint64		batches;
	uint64		items;
	uint64		max_batch_items;
	uint64		errors;
	double		latency_sum_ms;
	float		latency_ring[WORKER_LATENCY_RING];
	uint64		latency_count;

	WorkerSlot	slots[WORKER_SLOTS];
} WorkerShared;

/* worker.c: the ring, created by the shmem_startup_hook when preloading */
extern WorkerShared *ColpaliWorkerShared;

/* Input segment: header, then offsets/lengths, then the bytes. */
typedef struct WorkerInputHeader
{
	int			n;
	Size		offsets[FLEXIBLE_ARRAY_MEMBER];	/* n offsets, then n lengths */
} WorkerInputHeader;

/* Result segment: n items, each nvec x dim floats at offset. */
typedef struct WorkerResultItem
{
	int32		nvec;
	int32		dim;
	Size		offset;
} WorkerResultItem;

typedef struct WorkerResultHeader
{
	int			n;
	WorkerResultItem items[FLEXIBLE_ARRAY_MEMBER];
} WorkerResultHeader;

extern PGDLLEXPORT void ColpaliWorkerMain(Datum main_arg);

#endif							/* COLPALI_WORKER_H */
