/*
 * progress.c
 *	  Progress of bulk encoding runs, readable from any session: the
 *	  colpali_progress view, in the manner of pg_stat_progress_create_index.
 *
 * PostgreSQL 15 gives extensions no progress command of their own (its
 * pg_stat_progress_* views know only the built-in commands), so colpali
 * keeps a small table in shared memory: one entry per backend slot
 * (MaxBackends of them, about 100 bytes each), written only by the backend
 * that owns the slot and read by colpali_progress().  A run reports itself
 * with colpali_progress_report() (colpali_embed_images after every batch,
 * colpali-ingest after every batch it loads) and clears its entry with
 * colpali_progress_end(); a run that fails, or a backend that exits, clears
 * it too (transaction abort and exit callbacks).
 *
 * With shared_preload_libraries = 'colpali' the table is reserved at server
 * start.  Without it, the first backend that reports progress takes the
 * table from the spare shared memory PostgreSQL keeps for such late
 * allocations (ShmemInitStruct after start-up); other backends attach to it
 * by name.  Should that fail (no spare memory), ShmemInitStruct's ERROR
 * (out_of_memory) reaches the caller: colpali_embed_images and colpali-ingest
 * catch it, say so once and go on without showing progress.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#if PG_VERSION_NUM >= 170000
#include "storage/procnumber.h"
#else
#include "storage/backendid.h"
#endif
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "colpali.h"

PG_FUNCTION_INFO_V1(colpali_progress_report);
PG_FUNCTION_INFO_V1(colpali_progress_end);
PG_FUNCTION_INFO_V1(colpali_progress);

#define PROGRESS_PHASE_LEN 32

/* One backend slot's run; zero pid means the slot reports nothing. */
typedef struct ProgressEntry
{
	slock_t		mutex;			/* readers copy the entry under it */
	int			pid;
	Oid			datid;
	Oid			userid;
	Oid			relid;
	int32		batch_size;
	int64		total;
	int64		done;
	int64		failed;
	TimestampTz started;
	TimestampTz updated;
	char		phase[PROGRESS_PHASE_LEN];
} ProgressEntry;

static ProgressEntry *ProgressTable = NULL;
static bool ProgressCallbacksRegistered = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * ProgressShmemSize
 *		Bytes of the table: one entry per backend slot.
 */
static Size
ProgressShmemSize(void)
{
	return mul_size(MaxBackends, sizeof(ProgressEntry));
}

/*
 * ProgressAttach
 *		Create the table or attach to it; the caller holds
 *		AddinShmemInitLock.
 */
static void
ProgressAttach(void)
{
	bool		found;
	ProgressEntry *table;

	table = ShmemInitStruct("colpali progress", ProgressShmemSize(), &found);
	if (!found)
	{
		for (int i = 0; i < MaxBackends; i++)
		{
			memset(&table[i], 0, sizeof(ProgressEntry));
			SpinLockInit(&table[i].mutex);
		}
	}
	ProgressTable = table;
}

/*
 * ProgressShmemRequest
 *		shmem_request_hook: reserve the table when preloaded.
 */
static void
ProgressShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(ProgressShmemSize());
}

/*
 * ProgressShmemStartup
 *		shmem_startup_hook: create the table at server start.
 */
static void
ProgressShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ProgressAttach();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * ProgressInit
 *		Called from _PG_init: when preloading, reserve the table.
 */
void
ProgressInit(void)
{
	if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ProgressShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ProgressShmemStartup;
}

/*
 * ProgressTableGet
 *		The table, attaching to it (or creating it, when the library was not
 *		preloaded) on first use.  ShmemInitStruct raises an ERROR when no
 *		spare shared memory is left; the SQL callers catch it.
 */
static ProgressEntry *
ProgressTableGet(void)
{
	if (ProgressTable == NULL)
	{
		LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
		PG_TRY();
		{
			ProgressAttach();
		}
		PG_FINALLY();
		{
			LWLockRelease(AddinShmemInitLock);
		}
		PG_END_TRY();
	}
	return ProgressTable;
}

/*
 * MySlot
 *		This backend's entry.
 */
static ProgressEntry *
MySlot(void)
{
	ProgressEntry *table = ProgressTableGet();

#if PG_VERSION_NUM >= 170000
	Assert(MyProcNumber >= 0 && MyProcNumber < MaxBackends);
	return &table[MyProcNumber];
#else
	Assert(MyBackendId >= 1 && MyBackendId <= MaxBackends);
	return &table[MyBackendId - 1];
#endif
}

/*
 * ProgressClear
 *		Mark this backend's entry empty (if it has one).
 */
static void
ProgressClear(void)
{
	ProgressEntry *slot;

	if (ProgressTable == NULL)
		return;
	slot = MySlot();
	SpinLockAcquire(&slot->mutex);
	slot->pid = 0;
	SpinLockRelease(&slot->mutex);
}

/*
 * ProgressXactCallback
 *		A run that fails clears its entry, as PostgreSQL's own progress
 *		reporting does on abort.  Commits keep it: colpali_embed_images
 *		commits after every batch.
 */
static void
ProgressXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		ProgressClear();
}

/*
 * ProgressExitCallback
 *		A backend that exits leaves no entry behind.
 */
static void
ProgressExitCallback(int code, Datum arg)
{
	ProgressClear();
}

/*
 * colpali_progress_report(tbl regclass, phase text, total bigint,
 *						   done bigint, failed bigint, batch_size integer)
 *		Publish this backend's run.  A new relation (or no run yet) starts
 *		the clock.  Only the caller's own entry is written.
 */
Datum
colpali_progress_report(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_ARGISNULL(0) ? InvalidOid : PG_GETARG_OID(0);
	text	   *phase = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	int64		total = PG_ARGISNULL(2) ? -1 : PG_GETARG_INT64(2);
	int64		done = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);
	int64		failed = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4);
	int32		batch_size = PG_ARGISNULL(5) ? 0 : PG_GETARG_INT32(5);
	TimestampTz now = GetCurrentTimestamp();
	ProgressEntry *slot;

	slot = MySlot();
	if (!ProgressCallbacksRegistered)
	{
		RegisterXactCallback(ProgressXactCallback, NULL);
		before_shmem_exit(ProgressExitCallback, (Datum) 0);
		ProgressCallbacksRegistered = true;
	}

	SpinLockAcquire(&slot->mutex);
	if (slot->pid != MyProcPid || slot->relid != relid)
		slot->started = now;
	slot->pid = MyProcPid;
	slot->datid = MyDatabaseId;
	slot->userid = GetUserId();
	slot->relid = relid;
	slot->batch_size = batch_size;
	slot->total = total;
	slot->done = done;
	slot->failed = failed;
	slot->updated = now;
	memset(slot->phase, 0, PROGRESS_PHASE_LEN);
	if (phase != NULL)
		memcpy(slot->phase, VARDATA_ANY(phase),
			   Min(VARSIZE_ANY_EXHDR(phase), PROGRESS_PHASE_LEN - 1));
	SpinLockRelease(&slot->mutex);

	PG_RETURN_VOID();
}

/*
 * colpali_progress_end()
 *		This backend's run is over.
 */
Datum
colpali_progress_end(PG_FUNCTION_ARGS)
{
	/* a backend that never reported has no table pointer and no entry */
	ProgressClear();
	PG_RETURN_VOID();
}

/*
 * colpali_progress()
 *		One row per backend with a run in progress.  As in pg_stat_progress_*,
 *		the details of other roles' runs (relation, counts) are NULL unless
 *		the caller may read all statistics.
 */
Datum
colpali_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ProgressEntry *table;
	bool		read_all;

	InitMaterializedSRF(fcinfo, 0);
	table = ProgressTableGet();
	read_all = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	for (int i = 0; i < MaxBackends; i++)
	{
		ProgressEntry e;
		Datum		values[10];
		bool		nulls[10];

		CHECK_FOR_INTERRUPTS();
		SpinLockAcquire(&table[i].mutex);
		memcpy(&e, &table[i], sizeof(ProgressEntry));
		SpinLockRelease(&table[i].mutex);
		if (e.pid == 0)
			continue;

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(e.pid);
		values[1] = ObjectIdGetDatum(e.datid);
		if (read_all || has_privs_of_role(GetUserId(), e.userid))
		{
			e.phase[PROGRESS_PHASE_LEN - 1] = '\0';
			values[2] = ObjectIdGetDatum(e.relid);
			nulls[2] = !OidIsValid(e.relid);
			values[3] = CStringGetTextDatum(e.phase);
			values[4] = Int32GetDatum(e.batch_size);
			values[5] = Int64GetDatum(e.total);
			nulls[5] = e.total < 0;
			values[6] = Int64GetDatum(e.done);
			values[7] = Int64GetDatum(e.failed);
			values[8] = TimestampTzGetDatum(e.started);
			values[9] = TimestampTzGetDatum(e.updated);
		}
		else
		{
			for (int k = 2; k < 10; k++)
				nulls[k] = true;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
