/*
 * stats.c
 *	  colpali_stats(): where encoding runs and how it performs.
 *
 * With the background worker, the numbers are the worker's, kept in shared
 * memory (worker.h): every session sees the same.  Without it, they are this
 * backend's own in-process calls.  Latencies are per request (per call of
 * colpali_image / colpali_query, per chunk of colpali_images), from
 * submission to result; p99 is over the last WORKER_LATENCY_RING requests.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "encode.h"
#include "stats.h"
#include "worker.h"
#include "worker_client.h"

PG_FUNCTION_INFO_V1(colpali_stats);

/* In-process counters of this backend. */
static uint64 LocalBatches = 0;
static uint64 LocalItems = 0;
static uint64 LocalMaxBatch = 0;
static double LocalLatencySum = 0.0;
static float LocalLatencyRing[WORKER_LATENCY_RING];

/*
 * LocalStatsRecord
 *		Count one in-process engine call of nitems inputs.
 */
void
LocalStatsRecord(int nitems, double elapsed_ms)
{
	LocalLatencyRing[LocalBatches % WORKER_LATENCY_RING] = (float) elapsed_ms;
	LocalBatches++;
	LocalItems += nitems;
	if ((uint64) nitems > LocalMaxBatch)
		LocalMaxBatch = nitems;
	LocalLatencySum += elapsed_ms;
}

/*
 * CompareFloat
 *		qsort comparator for latencies.
 */
static int
CompareFloat(const void *a, const void *b)
{
	float		fa = *(const float *) a;
	float		fb = *(const float *) b;

	return fa < fb ? -1 : (fa > fb ? 1 : 0);
}

/*
 * Percentile99
 *		99th percentile of the first n values of ring (n may exceed its size).
 */
static double
Percentile99(const float *ring, uint64 count)
{
	int			n = (int) Min(count, (uint64) WORKER_LATENCY_RING);
	float	   *copy;
	int			k;
	double		result;

	if (n == 0)
		return 0.0;
	copy = palloc(sizeof(float) * n);
	memcpy(copy, ring, sizeof(float) * n);
	qsort(copy, n, sizeof(float), CompareFloat);
	k = (int) ceil(0.99 * n) - 1;
	result = copy[Max(k, 0)];
	pfree(copy);
	return result;
}

/*
 * colpali_stats
 *		One row: mode, device, model, worker_pid, queue_depth, requests,
 *		batches, items, max_batch_items, errors, mean_latency_ms,
 *		p99_latency_ms, worker_starts.
 */
Datum
colpali_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[13];
	bool		nulls[13];
	bool		show_path = EncoderMayShowModelPath();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, 0, sizeof(nulls));

	if (WorkerAvailable() && colpali_use_worker)
	{
		WorkerShared *sh = ColpaliWorkerShared;
		int			depth = 0;
		float	   *ring = palloc(sizeof(float) * WORKER_LATENCY_RING);
		uint64		count;
		double		sum;

		LWLockAcquire(sh->lock, LW_SHARED);
		for (int i = 0; i < WORKER_SLOTS; i++)
			if (sh->slots[i].state == SLOT_PENDING || sh->slots[i].state == SLOT_RUNNING)
				depth += sh->slots[i].nitems;
		values[0] = CStringGetTextDatum("worker");
		if (sh->device[0])
			values[1] = CStringGetTextDatum(sh->device);
		else
			nulls[1] = true;
		if (sh->model_path[0] && show_path)
			values[2] = CStringGetTextDatum(sh->model_path);
		else
			nulls[2] = true;
		if (sh->worker_pid != 0)
			values[3] = Int32GetDatum(sh->worker_pid);
		else
			nulls[3] = true;
		values[4] = Int32GetDatum(depth);
		values[5] = Int64GetDatum((int64) sh->requests);
		values[6] = Int64GetDatum((int64) sh->batches);
		values[7] = Int64GetDatum((int64) sh->items);
		values[8] = Int64GetDatum((int64) sh->max_batch_items);
		values[9] = Int64GetDatum((int64) sh->errors);
		sum = sh->latency_sum_ms;
		count = sh->latency_count;
		memcpy(ring, sh->latency_ring, sizeof(float) * WORKER_LATENCY_RING);
		values[12] = Int64GetDatum((int64) sh->starts);
		LWLockRelease(sh->lock);

		if (count > 0)
		{
			values[10] = Float8GetDatum(sum / (double) count);
			values[11] = Float8GetDatum(Percentile99(ring, count));
		}
		else
			nulls[10] = nulls[11] = true;
	}
	else
	{
		values[0] = CStringGetTextDatum("in-process");
		values[1] = CStringGetTextDatum("cpu");
		if (colpali_model_path && colpali_model_path[0] && show_path)
			values[2] = CStringGetTextDatum(colpali_model_path);
		else
			nulls[2] = true;
		nulls[3] = true;
		values[4] = Int32GetDatum(0);
		values[5] = Int64GetDatum((int64) LocalBatches);
		values[6] = Int64GetDatum((int64) LocalBatches);
		values[7] = Int64GetDatum((int64) LocalItems);
		values[8] = Int64GetDatum((int64) LocalMaxBatch);
		values[9] = Int64GetDatum(0);
		if (LocalBatches > 0)
		{
			values[10] = Float8GetDatum(LocalLatencySum / (double) LocalBatches);
			values[11] = Float8GetDatum(Percentile99(LocalLatencyRing, LocalBatches));
		}
		else
			nulls[10] = nulls[11] = true;
		nulls[12] = true;
	}

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
