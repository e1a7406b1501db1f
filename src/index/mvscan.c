/*
 * mvscan.c
 *	  Ordered scans of an mvivf index: ORDER BY emb <#> query.
 *
 * The first amgettuple call does the approximate stage:
 *	1. S = Q x C^T, the score of every query row against every centroid, and
 *	   per query row the lookup tables of the residual codes;
 *	2. centroid interaction, sum_i max over a document's tokens of
 *	   S[i, centroid(token)]: bounded for every listed document from the
 *	   document lists of mvivf.probes centroids per query row (mvdoclists.c),
 *	   then computed exactly from the centroid numbers of the documents
 *	   whose bound can reach the mvivf.refine best; without document lists
 *	   the forward store (mvforward.c) is read from end to end instead;
 *	3. the mvivf.refine best of them, and a random sample of the others, get
 *	   their quantized MaxSim, sum_i max over tokens of (S[i, centroid] +
 *	   q_i . decoded residual), read from their codes; they come first, in
 *	   that order, then the others by centroid interaction raised by the
 *	   gain margin, a bound of what their residuals may add fitted on the
 *	   sample (an optimistic estimate on the same scale);
 *	4. a scan that walks past the refined documents, whose reranked rows are
 *	   all consumed (a filter, a large LIMIT), or for which an unrefined
 *	   document could come next, refines more: the refined prefix doubles.
 * The per-row tables are built for as many query rows at a time as fit in
 * work_mem x hash_mem_multiplier; a query with more rows takes several
 * passes.
 *
 * Then documents are reranked exactly, best approximate first: each one's
 * indexed value is read from the heap under the scan snapshot (invisible
 * rows are dropped) and its exact distance, the very float8 that the <#>
 * operator returns, goes into a min-heap.  Rows are returned from the top of
 * that heap, so the scan's output is in exact non-decreasing distance order
 * (xs_recheckorderby = false), NaN last as float8 sorts it:
 *
 *	- mvivf.rerank documents are reranked before the first row is returned,
 *	  and a random sample of the other refined ones;
 *	- before each row, further batches of mvivf.rerank / 2 documents down the
 *	  approximate order are reranked while no row waits (a WHERE filter
 *	  rejected them, or the LIMIT is large) or while unreranked documents
 *	  could still beat the best waiting one: while more than
 *	  mvivf.miss_tolerance of them are expected to, under a t model of
 *	  the errors (approximate - exact distance) fitted after each batch on
 *	  the random sample and on the second half of the reranked documents
 *	  (MvivfMayStop, mvmargin.c); docs/mvivf.md, "How deep a scan
 *	  reranks";
 *	- a row of a later batch whose distance is smaller than that of a row
 *	  already returned cannot be returned in order any more: it is skipped
 *	  (counted as missed, like a row the approximate stage ranked too low);
 *	- the scan ends when every live document was reranked or when
 *	  mvivf.max_scan_docs documents were (mvivf.candidates when
 *	  mvivf.iterative_scan = off); it returns what waits without checking
 *	  the bound once mvivf.max_rerank documents were reranked;
 *	- when every live document was reranked and returned, the rows whose
 *	  indexed value is NULL come last (MVIVF_DOC_NULL), as ORDER BY ... ASC
 *	  (NULLS LAST, the only order the index offers) puts them.
 *
 * So the order is always exact; what is approximate is only which rows are
 * found, as with any approximate index.  An untrained index (built on an
 * empty table) has no approximate order: it reranks every document first.
 *
 * Inserts append a document's directory entry before its codes, and scans
 * snapshot the directory first, so codes never belong to a document the
 * scan does not know; codes of a document added after the snapshot are
 * skipped.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "common/pg_prng.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "mvivf.h"

/* unreranked documents reranked with the first batch (mvmargin.c draws them) */
#define MVIVF_RERANK_SAMPLE		16

/*
 * BeginSearch
 *		Read the query, the metapage and the document directory, run the
 *		approximate stage and decide how far the scan may rerank.
 */
static void
BeginSearch(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	MvivfMetaPageData meta;
	MemoryContext old;

	if (scan->numberOfOrderBys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an mvivf index can only be scanned with ORDER BY ... <#> ...")));
	if (!IsMVCCSnapshot(scan->xs_snapshot))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("mvivf index scans require an MVCC snapshot")));

	old = MemoryContextSwitchTo(so->scanCtx);
	MvivfReadMeta(index, &meta);
	if (scan->orderByData[0].sk_flags & SK_ISNULL)
		so->nullQuery = true;
	else
	{
		so->query = MvivfQueryGetValue(index, scan->orderByData[0].sk_argument);
		if (meta.dim != 0)
			MvivfCheckDim(index, meta.dim, so->query->dim);
	}
	so->docs = MvivfReadDocDir(index, &meta, &so->ndocs);
	MvivfApproximateStage(scan, &meta);

	so->nextCand = 0;
	if (so->nullQuery)
	{
		/* every row's distance is NULL: any order is right, nothing to rerank */
		so->budget = so->ncands;
		so->firstBatch = so->batchSize = Max(so->ncands, 1);
	}
	else if (meta.nlists == 0)
	{
		/* untrained: no approximate order, so every document is reranked first */
		so->budget = so->ncands;
		so->firstBatch = so->batchSize = Max(so->ncands, 1);
	}
	else
	{
		int			rerank = Max(mvivf_rerank, 1);

		if (mvivf_iterative_scan == MVIVF_ITERATIVE_OFF)
			so->budget = Min(so->ncands, mvivf_candidates);
		else
			so->budget = Min(so->ncands, Max(mvivf_max_scan_docs, rerank));
		so->firstBatch = Min(rerank, Max(so->budget, 1));
		so->batchSize = Max(rerank / 2, 1);
		if (mvivf_miss_tolerance <= 0)
			so->firstBatch = Max(so->budget, 1);	/* exact: rerank them all */
	}
	so->heapCap = Max(1, Min(so->budget, so->firstBatch + so->batchSize));
	so->heap = palloc_extended(sizeof(MvivfScanCandidate) * so->heapCap, MCXT_ALLOC_HUGE);
	so->nheap = 0;
	so->returnedAny = false;
	MemoryContextSwitchTo(old);
}

/*
 * HeapPush / HeapPop
 *		The min-heap of reranked rows waiting to be returned.
 */
static void
HeapPush(MvivfScanOpaque so, const MvivfScanCandidate * c)
{
	int			i;

	if (so->nheap == so->heapCap)
	{
		so->heapCap *= 2;
		so->heap = repalloc_huge(so->heap, sizeof(MvivfScanCandidate) * so->heapCap);
	}
	i = so->nheap++;
	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (MvivfCandCmp(&so->heap[parent], c) <= 0)
			break;
		so->heap[i] = so->heap[parent];
		i = parent;
	}
	so->heap[i] = *c;
}

static MvivfScanCandidate
HeapPop(MvivfScanOpaque so)
{
	MvivfScanCandidate top = so->heap[0];
	MvivfScanCandidate last = so->heap[--so->nheap];
	int			i = 0;

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= so->nheap)
			break;
		if (child + 1 < so->nheap && MvivfCandCmp(&so->heap[child + 1], &so->heap[child]) < 0)
			child++;
		if (MvivfCandCmp(&last, &so->heap[child]) <= 0)
			break;
		so->heap[i] = so->heap[child];
		i = child;
	}
	if (so->nheap > 0)
		so->heap[i] = last;
	return top;
}

/*
 * ExactDistance
 *		Fetch the candidate's row under the scan snapshot and compute its
 *		exact distance, the value the <#> operator returns; false when the
 *		row is not visible or NULL.
 */
static bool
ExactDistance(IndexScanDesc scan, MvivfScanCandidate * cand, double *dist)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	ItemPointerData tid = cand->tid;
	bool		call_again = false;
	bool		all_dead = false;
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	bool		found;

	if (so->fetch == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(so->scanCtx->parent);

		so->fetch = table_index_fetch_begin(scan->heapRelation);
		so->slot = table_slot_create(scan->heapRelation, NULL);
		so->indexInfo = BuildIndexInfo(scan->indexRelation);
		so->estate = CreateExecutorState();
		MemoryContextSwitchTo(old);
	}
	found = table_index_fetch_tuple(so->fetch, &tid, scan->xs_snapshot,
									so->slot, &call_again, &all_dead);
	if (!found)
		return false;
	if (so->indexInfo->ii_Expressions != NIL)
	{
		ExprContext *econtext = GetPerTupleExprContext(so->estate);

		econtext->ecxt_scantuple = so->slot;
		FormIndexDatum(so->indexInfo, so->slot, so->estate, values, isnull);
	}
	else
		values[0] = slot_getattr(so->slot, so->indexInfo->ii_IndexAttrNumbers[0],
								 &isnull[0]);
	if (isnull[0])
	{
		ExecClearTuple(so->slot);
		return false;
	}
	/* the operator's own function: exact for every stored format */
	*dist = MvivfExactDistance(scan, values[0]);
	ExecClearTuple(so->slot);
	ResetExprContext(GetPerTupleExprContext(so->estate));
	return true;
}

/*
 * RerankOne
 *		ExactDistance in the short-lived context tmp, counted as reranked
 *		(and as invisible when the row is not visible or NULL).
 */
static bool
RerankOne(IndexScanDesc scan, MvivfScanCandidate * cand, MemoryContext tmp,
		  double *dist)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(tmp);
	bool		ok = ExactDistance(scan, cand, dist);

	MemoryContextSwitchTo(old);
	MemoryContextReset(tmp);
	so->nreranked++;
	if (!ok)
		so->ninvisible++;
	return ok;
}

/*
 * IsForced
 *		Whether document docid was reranked before the others (RerankForced).
 */
static inline bool
IsForced(MvivfScanOpaque so, uint32 docid)
{
	return so->forced != NULL && docid < so->ndocs && so->forced[docid];
}

/*
 * RerankBatch
 *		Rerank up to n more candidates into the heap; false when the scan may
 *		rerank no more.  A row closer than one already returned is skipped:
 *		returning it now would break the order.
 */
static bool
RerankBatch(IndexScanDesc scan, int n)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	MemoryContext tmp;
	int			end;
	int			half;

	end = Min(so->nextCand + n, so->budget);
	if (so->nextCand >= end)
		return false;

	if (so->nullQuery)
	{
		/* no order to honour: hand out the documents as they are */
		for (; so->nextCand < end; so->nextCand++)
			HeapPush(so, &so->cands[so->nextCand]);
		return true;
	}

	if (so->overshoot == NULL)
	{
		so->overshootCap = Max(end, 16);
		so->overshoot = palloc_extended(sizeof(double) * so->overshootCap, MCXT_ALLOC_HUGE);
	}
	tmp = AllocSetContextCreate(CurrentMemoryContext, "mvivf rerank",
								ALLOCSET_DEFAULT_SIZES);
	for (; so->nextCand < end; so->nextCand++)
	{
		MvivfScanCandidate c = so->cands[so->nextCand];
		double		dist;

		CHECK_FOR_INTERRUPTS();

		/*
		 * Reranked before the others already (RerankForced).  Outside a
		 * sample it does not count: the batch reranks n other documents, so
		 * that the head's errors are measured however many flagged documents
		 * the approximate order puts first.
		 */
		if (IsForced(so, c.docid))
		{
			if (so->sampling == MVIVF_SAMPLING_NONE && end < so->budget)
				end++;
			continue;
		}
		if (!RerankOne(scan, &c, tmp, &dist))
			continue;
		/*
		 * How far the approximate distance overshot the exact one: once per
		 * distinct document (copies of one stored value err alike, and would
		 * swamp the samples with one error).
		 */
		if (!isnan(dist) && !isnan(c.score) && so->nextCand < so->nrefined)
		{
			double		err = c.score - dist;

			/* wherever it is reranked: the gain sample is random anyway */
			if (so->isGainRerank != NULL && so->isGainRerank[c.docid] &&
				so->ngainErr < MVIVF_GAIN_RERANK)
			{
				if (so->gainErr == NULL)
					so->gainErr = palloc(sizeof(double) * MVIVF_GAIN_RERANK);
				so->gainErr[so->ngainErr++] = err;
			}
			/* the gain sample's own batch stays out of the refined samples */
			if (so->sampling != MVIVF_SAMPLING_GAIN &&
				!MvivfErrorSeen(so, c.score, dist))
			{
				if (so->sampling == MVIVF_SAMPLING_REFINED)
					so->sampleErr[so->nsampleErr++] = err;
				else
				{
					if (so->novershoot == so->overshootCap)
					{
						so->overshootCap *= 2;
						so->overshoot = repalloc_huge(so->overshoot, sizeof(double) * so->overshootCap);
					}
					so->overshoot[so->novershoot++] = err;
				}
			}
		}
		c.score = dist;
		if (so->returnedAny && float8_cmp_internal(dist, so->lastDistance) < 0)
		{
			so->nskipped++;
			continue;
		}
		HeapPush(so, &c);
	}
	MemoryContextDelete(tmp);

	/*
	 * The margin must bound the errors of the documents not reranked yet.
	 * Those of the second half of the documents reranked in approximate
	 * order are the nearest to them in rank; those of the random sample
	 * stand for all of them.  Both are needed: the documents ranked best
	 * are the ones whose approximate score erred upwards most (the winner's
	 * curse), so errors seen near the head of the order understate those
	 * further down, and a margin from them alone returns rows that a later
	 * batch would beat.
	 */
	half = so->novershoot / 2;
	{
		MvivfErrorStats head;
		MvivfErrorStats sample;
		double		headMargin;
		double		sampleMargin;

		MvivfErrorStatsOf(so->overshoot + half, so->novershoot - half, &head);
		MvivfErrorStatsOf(so->sampleErr, so->nsampleErr, &sample);
		headMargin = MvivfStatsMargin(&head, so->ncands - so->nextCand);
		sampleMargin = MvivfStatsMargin(&sample, so->ncands - so->nextCand);
		so->errMargin = Max(headMargin, sampleMargin);
		so->errStats = headMargin >= sampleMargin ? head : sample;
		so->headStats = head;
		so->sampleStats = sample;
	}
	return true;
}

/*
 * RerankForced
 *		Rerank, before any other, the live documents flagged MVIVF_DOC_RERANK
 *		(a row of norm above 2): their approximate distances may be far off
 *		in either direction, so that neither their place in the approximate
 *		order nor the error model of the others says anything of them.  Their
 *		errors are kept out of the error samples, and RerankBatch passes over
 *		them where the approximate order brings them.
 */
static void
RerankForced(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	MemoryContext tmp = NULL;
	uint32		d;

	for (d = 0; d < so->ndocs; d++)
	{
		MvivfScanCandidate c;
		double		dist;

		if (!(so->docs[d].flags & MVIVF_DOC_RERANK) ||
			(so->docs[d].flags & MVIVF_DOC_DEAD))
			continue;
		CHECK_FOR_INTERRUPTS();
		if (so->forced == NULL)
		{
			so->forced = palloc0(sizeof(bool) * so->ndocs);
			tmp = AllocSetContextCreate(CurrentMemoryContext, "mvivf rerank",
										ALLOCSET_DEFAULT_SIZES);
		}
		so->forced[d] = true;
		so->nforced++;
		memset(&c, 0, sizeof(c));
		c.docid = d;
		c.tid = so->docs[d].tid;
		if (!RerankOne(scan, &c, tmp, &dist))
			continue;
		c.score = dist;
		HeapPush(so, &c);
	}
	if (tmp != NULL)
		MemoryContextDelete(tmp);
}

/*
 * SampleWaits
 *		Whether the random sample of the refined documents is still to be
 *		drawn and enough refined documents wait for it (RerankSample).
 */
static inline bool
SampleWaits(MvivfScanOpaque so)
{
	return !so->sampleDrawn && !so->nullQuery && mvivf_miss_tolerance > 0 &&
		Min(so->nrefined, so->budget) - so->nextCand > 2 * MVIVF_RERANK_SAMPLE;
}

/*
 * RerankSample
 *		Rerank a random sample of the refined documents not reranked yet,
 *		whose errors calibrate the margin (RerankBatch); nothing while they
 *		are few enough for the next batches to cover them.
 *
 * It is drawn once, as soon as enough refined documents wait: with the
 * first batch, or, where the approximate stage refined few (a small
 * mvivf.refine), after the scan refined more.  Without it the errors of the
 * documents reranked in approximate order were the only model: on pages of
 * which 80 % are one blank page, with mvivf.refine = 24, the documents
 * reranked 100th to 160th erred by 0.48-0.59 where those before by 0.16 +-
 * 0.07, and LIMIT 100 returned rows two of them beat.
 */
static void
RerankSample(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	int			lo = so->nextCand;
	int			hi = Min(so->nrefined, so->budget);
	int			k = MVIVF_RERANK_SAMPLE;

	if (!SampleWaits(so))
		return;
	so->sampleDrawn = true;

	/*
	 * Documents reranked first (RerankForced) give no error: draw as many
	 * more as there are such documents among those the sample is drawn
	 * from, so that about k errors come back.
	 */
	if (so->nforced > 0)
	{
		int			nforced = 0;
		int			i;

		for (i = lo; i < hi; i++)
			if (IsForced(so, so->cands[i].docid))
				nforced++;
		if (nforced >= hi - lo - k)
			return;
		k = (int) Min((int64) hi - lo, (int64) k * (hi - lo) / (hi - lo - nforced));
	}
	MvivfSampleToFront(so, lo, hi, k);
	so->sampleErr = palloc(sizeof(double) * k);
	so->sampling = MVIVF_SAMPLING_REFINED;
	RerankBatch(scan, k);
	so->sampling = MVIVF_SAMPLING_NONE;
}

/*
 * RerankGainSample
 *		Rerank the documents of the gain sample not reranked yet (the first
 *		MVIVF_GAIN_RERANK of the random unrefined documents refined with the
 *		first ones), once, when an unrefined document could beat a row:
 *		their errors model those of the unrefined documents
 *		(MvivfUnrefinedErrStats).  Their errors stay out of the other two
 *		samples, which model the refined documents.
 */
static void
RerankGainSample(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	int			lo = so->nextCand;
	int			hi = Min(so->nrefined, so->budget);
	int			k;

	so->gainErrMeasured = true;
	k = MvivfMarkedToFront(so, lo, hi, so->isGainRerank);
	if (k > 0)
	{
		so->sampling = MVIVF_SAMPLING_GAIN;
		RerankBatch(scan, k);
		so->sampling = MVIVF_SAMPLING_NONE;
	}
	MvivfErrorStatsOf(so->gainErr, so->ngainErr, &so->gainErrStats);
}

/*
 * mvivfbeginscan
 *		Start a scan (ambeginscan).
 */
IndexScanDesc
mvivfbeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	MvivfScanOpaque so = palloc0(sizeof(MvivfScanOpaqueData));

	so->scanCtx = AllocSetContextCreate(CurrentMemoryContext, "mvivf scan",
										ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

/*
 * ReportScan
 *		Say at DEBUG1 what the finished scan did.
 */
static void
ReportScan(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;

	if (!so->started)
		return;
	MvivfExplainRecord(scan->indexRelation, so);
	ereport(DEBUG1,
			(errmsg_internal("mvivf scan of \"%s\": %d approximate passes over %d query rows, %s",
							 RelationGetRelationName(scan->indexRelation),
							 so->npasses, so->query ? so->query->nvec : 0,
							 so->int8Codes ? MvivfInt8CodesName() :
							 so->byteTables ? "byte code tables" : "nibble code tables")));
	ereport(DEBUG2,
			(errmsg_internal("mvivf scan of \"%s\": %d documents, " UINT64_FORMAT " tokens, %d refined, " UINT64_FORMAT " pages read, %d reranked, %d invisible, %d skipped out of order",
							 RelationGetRelationName(scan->indexRelation),
							 so->ncands, so->ntokens, so->nrefined,
							 so->npages, so->nreranked, so->ninvisible, so->nskipped)));

}

/*
 * mvivfrescan
 *		Restart a scan with new order-by keys (amrescan).
 */
void
mvivfrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
			int norderbys)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	MemoryContext scanCtx = so->scanCtx;
	IndexFetchTableData *fetch = so->fetch;
	TupleTableSlot *slot = so->slot;
	EState	   *estate = so->estate;
	IndexInfo  *indexInfo = so->indexInfo;

	ReportScan(scan);
	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	MemoryContextReset(scanCtx);
	/* everything else starts afresh; the heap access objects are kept */
	memset(so, 0, sizeof(MvivfScanOpaqueData));
	so->scanCtx = scanCtx;
	so->fetch = fetch;
	so->slot = slot;
	so->estate = estate;
	so->indexInfo = indexInfo;
}

/*
 * NextNullRow
 *		The next row without a value (MVIVF_DOC_NULL) into xs_heaptid; false
 *		when none is left.  The executor checks the row's visibility, as for
 *		any index scan, and computes its (NULL) distance.
 */
static bool
NextNullRow(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;

	for (; so->nextNull < so->ndocs; so->nextNull++)
	{
		const MvivfDocEntry *doc = &so->docs[so->nextNull];

		if ((doc->flags & MVIVF_DOC_UNRANKED) != MVIVF_DOC_NULL)
			continue;
		so->nextNull++;
		so->nnulls++;
		scan->xs_heaptid = doc->tid;
		scan->xs_recheck = false;
		scan->xs_recheckorderby = false;
		return true;
	}
	return false;
}

/*
 * mvivfgettuple
 *		Return the next row in exact distance order (amgettuple).
 */
bool
mvivfgettuple(IndexScanDesc scan, ScanDirection dir)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	MvivfScanCandidate next;

	if (!so->started)
	{
		MemoryContext old;

		BeginSearch(scan);
		so->started = true;
		pgstat_count_index_scan(scan->indexRelation);
		old = MemoryContextSwitchTo(so->scanCtx);
		if (!so->nullQuery)
			RerankForced(scan);
		RerankBatch(scan, so->firstBatch);
		RerankSample(scan);
		MemoryContextSwitchTo(old);
	}

	/*
	 * Rerank further batches while unreranked documents could still come
	 * before the best waiting row: while, under the error model of this
	 * query (fitted after each batch), more than mvivf.miss_tolerance of
	 * them are expected to (MvivfMayStop).  The depth adapts to the query: a
	 * query whose approximate scores are close to the exact ones stops after
	 * the first batch, one with near-ties and large errors reranks deep.
	 */
	if (!so->nullQuery)
	{
		MemoryContext old = MemoryContextSwitchTo(so->scanCtx);

		so->stopReason = so->budget >= so->ncands ? MVIVF_STOP_ALL : MVIVF_STOP_BUDGET;
		while (so->nextCand < so->budget)
		{
			bool		unrefinedBest = false;

			/* the scan refined enough for the random sample: draw it first */
			if (SampleWaits(so))
			{
				RerankSample(scan);
				continue;
			}
			if (so->nheap > 0)
			{
				/*
				 * Fewer than mvivf.miss_tolerance unreranked documents
				 * expected to beat the best waiting row: return it
				 * (MvivfMayStop, mvmargin.c, also says whether the
				 * unrefined documents are the likelier to beat it).
				 */
				if (MvivfMayStop(so, so->heap[0].score, &unrefinedBest))
				{
					so->stopReason = MVIVF_STOP_BOUND;
					break;
				}
			}
			else if (so->nrefined < so->ncands && so->nrefined > so->nextCand)
			{
				/*
				 * No row waits: the unrefined documents sit after the
				 * refined ones, in order of their centroid interaction (or
				 * its bound); the best of them may come before the next
				 * refined one, by the margin of its gain plus the error of
				 * its quantized score (MvivfSumMargin).
				 */
				double		unrefined = -so->ciScore[so->cands[so->nrefined].docid] -
					MvivfSumMargin(&so->gainStats, MvivfUnrefinedErrStats(so),
								   so->ncands - so->nextCand);

				unrefinedBest = float8_cmp_internal(unrefined,
													so->cands[so->nextCand].score - so->errMargin) < 0;
			}
			if (so->nheap > 0 && mvivf_max_rerank > 0 &&
				so->nextCand >= mvivf_max_rerank)
			{
				/* the cap: return what waits, recall may suffer */
				so->stopReason = MVIVF_STOP_CAP;
				break;
			}

			/*
			 * Before refining because an unrefined document could come
			 * next, measure the errors of such documents (once).
			 */
			if (unrefinedBest && !so->gainErrMeasured && so->isGainRerank != NULL)
			{
				RerankGainSample(scan);
				continue;
			}

			/*
			 * Refine more first when one of them could come next, when the
			 * scan goes past the refined documents, or when every reranked
			 * row has been consumed (a filter rejects rows, or a large
			 * LIMIT): such a scan walks far down the approximate order.  The
			 * refined prefix doubles each time (at least mvivf.refine more).
			 */
			if (so->nrefined < so->ncands &&
				(unrefinedBest ||
				 so->nextCand + so->batchSize > so->nrefined ||
				 (so->nheap == 0 && so->returnedAny)))
			{
				int			more = Max(so->nrefined, Max(mvivf_refine, 1));
				int			to;

				/*
				 * Only because an unrefined document could come next: a
				 * quarter of mvivf.refine more at a time, since the next
				 * ones by centroid interaction mostly settle it.
				 */
				if (unrefinedBest && so->nheap > 0 &&
					so->nextCand + so->batchSize <= so->nrefined)
					more = Max(mvivf_refine / 4, 1);
				to = (int) Min((int64) so->ncands, (int64) so->nrefined + more);

				/* the next ones by exact centroid interaction, not its bound */
				MvivfExactCentroids(scan, so->nrefined, to - so->nrefined);
				MvivfRefineCandidates(scan, so->nrefined, to, so->nextCand, to);
				continue;
			}
			if (!RerankBatch(scan, so->batchSize))
				break;
		}
		MemoryContextSwitchTo(old);
	}
	else if (so->nheap == 0)
		RerankBatch(scan, so->batchSize);
	if (so->nheap == 0)
	{
		/*
		 * Every row with a value is out: the NULL ones come last, unless the
		 * budget ended the scan first (a NULL query returned them already).
		 */
		if (!so->nullQuery && so->nextCand >= so->ncands)
			return NextNullRow(scan);
		return false;
	}

	next = HeapPop(so);
	so->returnedAny = true;
	so->lastDistance = next.score;
	scan->xs_heaptid = next.tid;
	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	return true;
}

/*
 * mvivfendscan
 *		End a scan (amendscan).
 */
void
mvivfendscan(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;

	ReportScan(scan);
	if (so->fetch)
		table_index_fetch_end(so->fetch);
	if (so->slot)
		ExecDropSingleTupleTableSlot(so->slot);
	if (so->estate)
		FreeExecutorState(so->estate);
	MemoryContextDelete(so->scanCtx);
	pfree(so);
	scan->opaque = NULL;
}
