/*
 * mvscan.c
 *	  Ordered scans of an mvivf index: ORDER BY emb <#> query.
 *
 * The first amgettuple call does the approximate stage:
 *	1. S = Q x C^T, the score of every query row against every centroid;
 *	2. per query row i, the mvivf.probes best lists; m_i = the score of the
 *	   last probed centroid (the imputed similarity of a document with no
 *	   posting seen for row i, and a floor for the ones seen);
 *	3. every posting of the pending area and of the probed lists is scored,
 *	   s = S[i, list] + sum over code bytes of LUT_i[byte][code byte], and
 *	   delta[doc, i] = max(delta[doc, i], s - m_i);
 *	4. approx(doc) = -(sum_i m_i + sum_i delta[doc, i]); live documents are
 *	   sorted by it.
 * Then the best candidates are reranked exactly in batches of mvivf.rerank:
 * each one's indexed value is read from the heap under the scan snapshot
 * (invisible rows are dropped), its exact MaxSim computed, and the batch is
 * returned sorted by exact distance with xs_recheckorderby = false.  Only
 * the first mvivf.candidates documents are used, unless mvivf.iterative_scan
 * is relaxed_order, in which case later batches continue down the
 * approximate order (exact order within a batch, relaxed across batches).
 *
 * The pending area is read before the list directory and the lists, so a
 * concurrent VACUUM that moves postings from one to the other never hides
 * them from the scan.
 */
#include "postgres.h"

#include <float.h>

#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "mvivf.h"

/*
 * CandCmp
 *		Order candidates by distance, then document id.
 */
static int
CandCmp(const void *a, const void *b)
{
	const MvivfScanCandidate *x = a;
	const MvivfScanCandidate *y = b;

	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return (x->docid > y->docid) - (x->docid < y->docid);
}

/*
 * KthLargest
 *		The k-th largest value (k >= 1) of a[0..n-1]; reorders a.
 */
static float
KthLargest(float *a, int n, int k)
{
	int			lo = 0;
	int			hi = n - 1;
	int			target = k - 1;

	while (lo < hi)
	{
		float		pivot = a[(lo + hi) / 2];
		int			i = lo;
		int			j = hi;

		while (i <= j)
		{
			while (a[i] > pivot)
				i++;
			while (a[j] < pivot)
				j--;
			if (i <= j)
			{
				float		t = a[i];

				a[i] = a[j];
				a[j] = t;
				i++;
				j--;
			}
		}
		if (target <= j)
			hi = j;
		else if (target >= i)
			lo = i;
		else
			break;
	}
	return a[target];
}

/*
 * BuildLuts
 *		lut[(i * codeSize + b) * 256 + v] = contribution of code byte value v
 *		at byte b to the dot product with query row i.
 */
static float *
BuildLuts(const MvivfQuantizer * q, const MultiVector *query)
{
	int			perByte = 8 / q->nbits;
	int			mask = (1 << q->nbits) - 1;
	float	   *lut = palloc_extended(sizeof(float) * (Size) query->nvec * q->codeSize * 256,
									  MCXT_ALLOC_HUGE);
	int			i;

	for (i = 0; i < query->nvec; i++)
	{
		const float *x = MV_ROW(query, i);
		int			b;

		for (b = 0; b < q->codeSize; b++)
		{
			float	   *t = lut + ((Size) i * q->codeSize + b) * 256;
			int			v;

			for (v = 0; v < 256; v++)
			{
				float		sum = 0;
				int			j;

				for (j = 0; j < perByte; j++)
				{
					int			d = b * perByte + j;

					if (d < q->dim)
						sum += x[d] * q->weights[(v >> (j * q->nbits)) & mask];
				}
				t[v] = sum;
			}
		}
	}
	return lut;
}

/* state of the approximate stage */
typedef struct ApproxState
{
	const MvivfQuantizer *q;
	int			nq;
	uint32		ndocs;
	const MvivfDocEntry *docs;
	const float *S;				/* nq x nlists */
	const float *m;				/* nq */
	const float *lut;
	const int  *probeStart;		/* CSR: query rows probing list l */
	const int  *probeRows;
	float	   *delta;			/* ndocs x nq */
}			ApproxState;

/*
 * ScorePosting
 *		Score one posting against the query rows that probe its list.
 */
static inline void
ScorePosting(ApproxState * st, uint32 list, uint32 docid, const uint8 *code)
{
	int			k;
	int			codeSize = st->q->codeSize;

	if (docid >= st->ndocs || (st->docs[docid].flags & MVIVF_DOC_DEAD))
		return;
	for (k = st->probeStart[list]; k < st->probeStart[list + 1]; k++)
	{
		int			i = st->probeRows[k];
		const float *lut = st->lut + (Size) i * codeSize * 256;
		float		s = st->S[(Size) i * st->q->nlists + list];
		float	   *dp;
		int			b;

		for (b = 0; b < codeSize; b++)
			s += lut[b * 256 + code[b]];
		s -= st->m[i];
		dp = &st->delta[(Size) docid * st->nq + i];
		if (s > *dp)
			*dp = s;
	}
}

/*
 * ScanPending
 *		Score the postings of the pending area that fall in probed lists.
 */
static void
ScanPending(Relation index, MvivfMetaPageData * meta, ApproxState * st)
{
	Size		itemsz = MvivfPendingSize(meta->codeSize);
	BlockNumber blkno = meta->pendingHead;

	while (blkno != InvalidBlockNumber)
	{
		Buffer		buf = ReadBuffer(index, blkno);
		Page		page;
		MvivfPageOpaque opaque;
		int			i;

		CHECK_FOR_INTERRUPTS();
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		opaque = MvivfPageGetOpaque(page);
		if (!(opaque->flags & MVIVF_PENDING))
		{
			/* merged meanwhile: its postings are in the lists now */
			UnlockReleaseBuffer(buf);
			break;
		}
		for (i = 0; i < opaque->nitems; i++)
		{
			const char *item = MvivfPageItems(page) + i * itemsz;
			uint32		docid;
			uint32		list;

			memcpy(&docid, item, sizeof(uint32));
			memcpy(&list, item + sizeof(uint32), sizeof(uint32));
			if (list < meta->nlists)
				ScorePosting(st, list, docid, (const uint8 *) item + 2 * sizeof(uint32));
		}
		blkno = opaque->next;
		UnlockReleaseBuffer(buf);
	}
}

/*
 * ScanList
 *		Score every posting of one probed list.
 */
static void
ScanList(Relation index, MvivfMetaPageData * meta, uint32 list,
		 BlockNumber blkno, ApproxState * st)
{
	Size		itemsz = MvivfPostingSize(meta->codeSize);

	while (blkno != InvalidBlockNumber)
	{
		Buffer		buf = ReadBuffer(index, blkno);
		Page		page;
		MvivfPageOpaque opaque;
		int			i;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		opaque = MvivfPageGetOpaque(page);
		if (!(opaque->flags & MVIVF_POSTING) || opaque->list != list)
		{
			/* freed or reused by a concurrent VACUUM */
			UnlockReleaseBuffer(buf);
			break;
		}
		for (i = 0; i < opaque->nitems; i++)
		{
			const char *item = MvivfPageItems(page) + i * itemsz;
			uint32		docid;

			memcpy(&docid, item, sizeof(uint32));
			ScorePosting(st, list, docid, (const uint8 *) item + sizeof(uint32));
		}
		blkno = opaque->next;
		UnlockReleaseBuffer(buf);
	}
}

/*
 * ApproximateStage
 *		Fill so->cands with every live document, sorted by approximate
 *		distance (documents in order of id when the index is untrained).
 */
static void
ApproximateStage(IndexScanDesc scan, MvivfMetaPageData * meta)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	MultiVector *query = so->query;
	uint32		d;

	so->cands = palloc_extended(sizeof(MvivfScanCandidate) * Max(so->ndocs, 1),
								MCXT_ALLOC_HUGE);
	so->ncands = 0;

	if (meta->nlists == 0 || so->nullQuery)
	{
		for (d = 0; d < so->ndocs; d++)
		{
			if (so->docs[d].flags & MVIVF_DOC_DEAD)
				continue;
			so->cands[so->ncands].docid = d;
			so->cands[so->ncands].score = 0;
			so->cands[so->ncands].tid = so->docs[d].tid;
			so->ncands++;
		}
		return;
	}

	{
		MvivfQuantizer q;
		ApproxState st;
		int			nq = query->nvec;
		int			probes = Min(mvivf_probes, (int) meta->nlists);
		float	   *S;
		float	   *m;
		float	   *tmp;
		int		   *probeCount;
		int		   *probeStart;
		int		   *probeRows;
		uint32	   *chosen;
		int			nchosen = 0;
		double		summ = 0;
		MvivfListEntry *listdir;
		int			i;
		uint32		l;

		MvivfLoadQuantizer(index, meta, &q);
		S = palloc_extended(sizeof(float) * (Size) nq * q.nlists, MCXT_ALLOC_HUGE);
		MvivfScoreCentroids(&q, query->x, nq, S);

		/* probes per query row and the imputed score m_i */
		m = palloc(sizeof(float) * nq);
		tmp = palloc(sizeof(float) * q.nlists);
		chosen = palloc_extended(sizeof(uint32) * (Size) nq * probes, MCXT_ALLOC_HUGE);
		probeCount = palloc0(sizeof(int) * (q.nlists + 1));
		for (i = 0; i < nq; i++)
		{
			const float *s = S + (Size) i * q.nlists;
			int			taken = 0;

			memcpy(tmp, s, sizeof(float) * q.nlists);
			m[i] = KthLargest(tmp, q.nlists, probes);
			summ += m[i];
			for (l = 0; l < q.nlists && taken < probes; l++)
				if (s[l] > m[i])
					chosen[(Size) i * probes + taken++] = l;
			for (l = 0; l < q.nlists && taken < probes; l++)
				if (s[l] == m[i])
					chosen[(Size) i * probes + taken++] = l;
			for (; taken < probes; taken++)
				chosen[(Size) i * probes + taken] = PG_UINT32_MAX;
		}
		for (i = 0; i < nq * probes; i++)
			if (chosen[i] != PG_UINT32_MAX)
				probeCount[chosen[i]]++;
		probeStart = palloc(sizeof(int) * (q.nlists + 1));
		probeStart[0] = 0;
		for (l = 0; l < q.nlists; l++)
			probeStart[l + 1] = probeStart[l] + probeCount[l];
		probeRows = palloc(sizeof(int) * Max(probeStart[q.nlists], 1));
		memset(probeCount, 0, sizeof(int) * q.nlists);
		for (i = 0; i < nq * probes; i++)
		{
			uint32		c = chosen[i];

			if (c != PG_UINT32_MAX)
				probeRows[probeStart[c] + probeCount[c]++] = i / probes;
		}

		st.q = &q;
		st.nq = nq;
		st.ndocs = so->ndocs;
		st.docs = so->docs;
		st.S = S;
		st.m = m;
		st.lut = BuildLuts(&q, query);
		st.probeStart = probeStart;
		st.probeRows = probeRows;
		st.delta = MemoryContextAllocHuge(CurrentMemoryContext,
										  sizeof(float) * (Size) Max(so->ndocs, 1) * nq);
		memset(st.delta, 0, sizeof(float) * (Size) Max(so->ndocs, 1) * nq);

		/* pending area first, then the list directory and the lists */
		ScanPending(index, meta, &st);
		listdir = MvivfReadListDir(index, meta);
		for (l = 0; l < q.nlists; l++)
		{
			if (probeStart[l + 1] == probeStart[l])
				continue;
			CHECK_FOR_INTERRUPTS();
			ScanList(index, meta, l, listdir[l].head, &st);
			nchosen++;
		}

		for (d = 0; d < so->ndocs; d++)
		{
			const float *dp = st.delta + (Size) d * nq;
			double		sum = summ;

			if (so->docs[d].flags & MVIVF_DOC_DEAD)
				continue;
			for (i = 0; i < nq; i++)
				sum += dp[i];
			so->cands[so->ncands].docid = d;
			so->cands[so->ncands].score = (float) -sum;
			so->cands[so->ncands].tid = so->docs[d].tid;
			so->ncands++;
		}
		pg_qsort(so->cands, so->ncands, sizeof(MvivfScanCandidate), CandCmp);
	}
}

/*
 * BeginSearch
 *		Read the query, the metapage and the document directory, and run the
 *		approximate stage.
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
		so->query = MvivfDatumGetValue(scan->orderByData[0].sk_argument);
		if (meta.dim != 0)
			MvivfCheckDim(index, meta.dim, so->query->dim);
	}
	so->docs = MvivfReadDocDir(index, &meta, &so->ndocs);
	ApproximateStage(scan, &meta);

	so->nextCand = 0;
	if (meta.nlists == 0 || so->nullQuery)
		so->limitCand = so->ncands; /* exhaustive */
	else
		so->limitCand = Min(so->ncands, mvivf_candidates);
	so->batch = palloc_extended(sizeof(MvivfScanCandidate) *
								Max(1, Min(so->ncands, Max(mvivf_rerank, 1))),
								MCXT_ALLOC_HUGE);
	so->nbatch = so->nextBatch = 0;
	MemoryContextSwitchTo(old);
}

/*
 * ExactDistance
 *		Fetch the candidate's row under the scan snapshot and compute its
 *		exact distance; false when the row is not visible or NULL.
 */
static bool
ExactDistance(IndexScanDesc scan, MvivfScanCandidate * cand, float *dist)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	ItemPointerData tid = cand->tid;
	bool		call_again = false;
	bool		all_dead = false;
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	MultiVector *doc;
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
	doc = MvivfDatumGetValue(values[0]);
	if (!so->nullQuery)
	{
		if (doc->dim != so->query->dim)
			MvivfCheckDim(scan->indexRelation, so->query->dim, doc->dim);
		*dist = (float) -MaxSimKernel(doc->x, doc->nvec, so->query->x,
									  so->query->nvec, doc->dim);
	}
	else
		*dist = 0;
	ExecClearTuple(so->slot);
	ResetExprContext(GetPerTupleExprContext(so->estate));
	return true;
}

/*
 * NextBatch
 *		Rerank the next batch of candidates; false when none are left.
 */
static bool
NextBatch(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	MemoryContext tmp;
	MemoryContext old;
	int			n;
	int			i;

	if (so->nextCand >= so->limitCand)
	{
		if (mvivf_iterative_scan == MVIVF_ITERATIVE_RELAXED &&
			so->limitCand < so->ncands && so->limitCand < mvivf_max_scan_docs)
			so->limitCand = Min(so->ncands, mvivf_max_scan_docs);
		else
			return false;
	}
	n = Min(Max(mvivf_rerank, 1), so->limitCand - so->nextCand);
	if (so->nullQuery)
	{
		/* no order to honour: hand out the documents as they are */
		memcpy(so->batch, so->cands + so->nextCand, sizeof(MvivfScanCandidate) * n);
		so->nbatch = n;
		so->nextBatch = 0;
		so->nextCand += n;
		return true;
	}

	tmp = AllocSetContextCreate(CurrentMemoryContext, "mvivf rerank",
								ALLOCSET_DEFAULT_SIZES);
	so->nbatch = 0;
	for (i = 0; i < n; i++)
	{
		MvivfScanCandidate c = so->cands[so->nextCand + i];
		float		dist;
		bool		ok;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(tmp);
		ok = ExactDistance(scan, &c, &dist);
		MemoryContextSwitchTo(old);
		MemoryContextReset(tmp);
		if (ok)
		{
			c.score = dist;
			so->batch[so->nbatch++] = c;
		}
	}
	MemoryContextDelete(tmp);
	so->nextCand += n;
	pg_qsort(so->batch, so->nbatch, sizeof(MvivfScanCandidate), CandCmp);
	so->nextBatch = 0;
	return true;
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
 * mvivfrescan
 *		Restart a scan with new order-by keys (amrescan).
 */
void
mvivfrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
			int norderbys)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;

	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	MemoryContextReset(so->scanCtx);
	so->started = false;
	so->nullQuery = false;
	so->query = NULL;
	so->cands = NULL;
	so->ncands = so->nextCand = so->limitCand = 0;
	so->batch = NULL;
	so->nbatch = so->nextBatch = 0;
	so->docs = NULL;
	so->ndocs = 0;
}

/*
 * mvivfgettuple
 *		Return the next row in exact distance order (amgettuple).
 */
bool
mvivfgettuple(IndexScanDesc scan, ScanDirection dir)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;

	if (!so->started)
	{
		BeginSearch(scan);
		so->started = true;
	}
	for (;;)
	{
		if (so->nextBatch < so->nbatch)
		{
			scan->xs_heaptid = so->batch[so->nextBatch++].tid;
			scan->xs_recheck = false;
			scan->xs_recheckorderby = false;
			return true;
		}
		if (!NextBatch(scan))
			return false;
	}
}

/*
 * mvivfendscan
 *		End a scan (amendscan).
 */
void
mvivfendscan(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;

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
