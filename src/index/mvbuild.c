/*
 * mvbuild.c
 *	  Build an mvivf index.
 *
 * The build makes two passes over the table:
 *	1. "sampling tokens": count documents and tokens and keep a reservoir
 *	   sample of token rows, capped by maintenance_work_mem / 2;
 *	2. "performing k-means": spherical k-means over the sample gives the
 *	   centroids (lists = 4 * sqrt(tokens) unless the lists option is set);
 *	   the residuals of the sample give the bucket cutoffs and weights
 *	   (quantiles of the residual coordinates);
 *	3. "assigning tokens": assign every token to its centroid and encode its
 *	   residual; each document's codes are appended to the forward store
 *	   (mvforward.c) as it is read;
 *	4. the document directory, an empty list directory (the lists of format
 *	   version 1 are no longer filled), the document lists (per centroid,
 *	   the documents with a token assigned to it, and where each document's
 *	   codes start: mvdoclists.c) and the metapage are written.
 * Every page goes through generic WAL, so the index is crash safe and
 * replicated as it is built.
 */
#include "postgres.h"

#include <math.h>

#include "access/generic_xlog.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "pgstat.h"

#include "mvivf.h"

#define MVIVF_MAX_SAMPLE	(1 << 20)	/* token rows, whatever the memory */
#define MVIVF_BUILD_BATCH_ROWS	16384	/* token rows assigned together */
#define MVIVF_NORM_CHECK_ROWS	65536	/* sampled rows checked for unit length */

typedef struct MvivfBuildState
{
	Relation	index;
	MvivfOptions *opts;
	int			dim;
	double		indtuples;		/* documents indexed */
	uint64		ntokens;
	uint64		seen;			/* live tokens offered to the reservoir */
	float	   *sample;
	bool	   *sampleDead;		/* per slot: a row of a dead tuple */
	int64		sampleCap;
	int64		nsample;		/* slots filled */
	int64		nsampleLive;	/* of which rows of live tuples */
	int64		deadCursor;		/* no dead slot before it */
	pg_prng_state prng;
	MemoryContext tmpCtx;
	MemoryContext buildCtx;
	/* pass 1: the rows whose value is NULL (MVIVF_DOC_NULL documents) */
	ItemPointerData *nullTids;
	uint32		nnull;
	uint32		nullCap;

	/* pass 2 */
	MvivfQuantizer q;
	MvivfListEntry *listdir;
	MvivfDocEntry *docs;
	uint32		ndocs;
	uint32		maxdocs;
	float	   *driftScores;	/* of the documents not flagged, mvdrift.c */
	uint32		ndriftScores;
	float	   *scores;			/* MVIVF_ASSIGN_BLOCK x nlists */

	/* pass 2: documents read but not yet assigned (a batch) */
	float	   *batchRows;		/* their rows, one after the other */
	uint32	   *assign;			/* their centroid numbers */
	uint8	   *codes;			/* their residual codes */
	int64		batchCap;		/* rows the three arrays hold */
	int64		batchFill;		/* rows in the batch */
	int			batchDocs;		/* documents in the batch: bs->docs[ndocs..] */
	int		   *batchNvec;		/* their row counts */
	bool	   *batchDead;		/* whether each is a dead tuple's */
	int			batchNvecCap;
}			MvivfBuildState;

/*
 * KeepRandomRows
 *		Move a uniformly random k of the n rows of sample to its front (a
 *		partial Fisher-Yates shuffle).  The reservoir's order is not random:
 *		until it fills, and in the slots never replaced after that, row i is
 *		the table's token i, so its first k rows would be the first pages of
 *		the table in scan order.
 */
static void
KeepRandomRows(float *sample, int64 n, int64 k, int dim, pg_prng_state *prng)
{
	float	   *tmp = palloc(sizeof(float) * dim);
	int64		i;

	for (i = 0; i < k; i++)
	{
		int64		j = (int64) pg_prng_uint64_range(prng, i, n - 1);

		if ((i & 65535) == 0)
			CHECK_FOR_INTERRUPTS();

		if (j != i)
		{
			memcpy(tmp, sample + i * dim, sizeof(float) * dim);
			memcpy(sample + i * dim, sample + j * dim, sizeof(float) * dim);
			memcpy(sample + j * dim, tmp, sizeof(float) * dim);
		}
	}
	pfree(tmp);
}

/*
 * SampleSlot
 *		The reservoir slot a token row takes, or -1.
 *
 * The centroids are trained on the rows of live tuples.  A build also
 * indexes the tuples that are dead but may still be visible to a running
 * transaction (recently dead ones: rows a DELETE or UPDATE left while
 * another transaction, in any database, kept an older snapshot), so that
 * such snapshots find them; trained on too, the rows a user deleted before
 * a REINDEX would shape the centroids meant for the rows that replaced them.
 * A dead tuple's rows fill only free slots, and a live row takes a dead
 * row's slot before the reservoir draws: the live rows are a uniform sample
 * of the live ones, and the dead ones are trained on only when the table
 * has no live rows at all.
 */
static int64
SampleSlot(MvivfBuildState * bs, bool alive)
{
	int64		slot = -1;

	if (!alive)
	{
		if (bs->nsample < bs->sampleCap)
		{
			slot = bs->nsample++;
			bs->sampleDead[slot] = true;
		}
		return slot;
	}
	if (bs->nsampleLive < bs->sampleCap)
	{
		if (bs->nsample < bs->sampleCap)
			slot = bs->nsample++;
		else
		{
			/* every slot is filled, not all by live rows: take a dead one */
			while (!bs->sampleDead[bs->deadCursor])
				bs->deadCursor++;
			slot = bs->deadCursor;
		}
		bs->sampleDead[slot] = false;
		bs->nsampleLive++;
	}
	else
	{
		/* every slot holds a live row: draw as a reservoir does */
		uint64		r = pg_prng_uint64_range(&bs->prng, 0, bs->seen);

		if (r < (uint64) bs->sampleCap)
			slot = r;
	}
	bs->seen++;
	return slot;
}

/*
 * DropDeadSamples
 *		After pass 1: keep only the live rows of the sample when there are
 *		any, in slot order.
 */
static void
DropDeadSamples(MvivfBuildState * bs)
{
	int64		w = 0;
	int64		i;

	if (bs->nsampleLive == 0 || bs->nsampleLive == bs->nsample)
		return;
	for (i = 0; i < bs->nsample; i++)
	{
		if (bs->sampleDead[i])
			continue;
		if (w != i)
			memcpy(bs->sample + w * bs->dim, bs->sample + i * bs->dim,
				   sizeof(float) * bs->dim);
		w++;
	}
	bs->nsample = w;
}

/*
 * SampleCallback
 *		Pass 1: count and reservoir-sample the token rows of one document.
 */
static void
SampleCallback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			   bool tupleIsAlive, void *state)
{
	MvivfBuildState *bs = (MvivfBuildState *) state;
	MemoryContext old;
	MultiVector *mv;
	int			i;

	if (isnull[0])
	{
		/* indexed without tokens, so that scans can return it last */
		if (bs->nnull == bs->nullCap)
		{
			bs->nullCap = Max(64, bs->nullCap * 2);
			bs->nullTids = bs->nullTids == NULL ?
				MemoryContextAllocHuge(bs->buildCtx, sizeof(ItemPointerData) * bs->nullCap) :
				repalloc_huge(bs->nullTids, sizeof(ItemPointerData) * bs->nullCap);
		}
		bs->nullTids[bs->nnull++] = *tid;
		return;
	}
	old = MemoryContextSwitchTo(bs->tmpCtx);
	mv = MvivfDatumGetValue(values[0]);
	if (bs->dim == 0)
	{
		Size		budget = (Size) maintenance_work_mem * 1024 / 2;

		MvivfCheckSupportedDim(index, mv->dim);
		bs->dim = mv->dim;
		bs->sampleCap = Min(MVIVF_MAX_SAMPLE, budget / (sizeof(float) * bs->dim));
		bs->sampleCap = Max(bs->sampleCap, 1);
		bs->sample = MemoryContextAllocHuge(bs->buildCtx,
											sizeof(float) * bs->sampleCap * bs->dim);
		bs->sampleDead = MemoryContextAllocHuge(bs->buildCtx,
												sizeof(bool) * bs->sampleCap);
	}
	MvivfCheckDim(index, bs->dim, mv->dim);
	for (i = 0; i < mv->nvec; i++)
	{
		int64		slot = SampleSlot(bs, tupleIsAlive);

		if (slot >= 0)
			memcpy(bs->sample + slot * bs->dim, MV_ROW(mv, i), sizeof(float) * bs->dim);
	}
	bs->ntokens += mv->nvec;
	bs->indtuples++;
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpCtx);
}

/*
 * FlushBatch
 *		Assign and encode the tokens of the batched documents together (the
 *		two-level assignment's GEMMs run far faster on many rows at once than
 *		on one page's), then append each document's codes to the forward
 *		store in order.
 */
static void
FlushBatch(MvivfBuildState * bs)
{
	Buffer		metabuf;
	int64		off = 0;
	int			i;

	if (bs->batchDocs == 0)
		return;
	CHECK_FOR_INTERRUPTS();
	MvivfAssignEncode(&bs->q, bs->batchRows, (int) bs->batchFill, bs->assign,
					  bs->codes, bs->scores);
	metabuf = ReadBuffer(bs->index, MVIVF_METAPAGE_BLKNO);
	LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
	for (i = 0; i < bs->batchDocs; i++)
	{
		uint32		docid = bs->ndocs + i;
		int			n = bs->batchNvec[i];

		MvivfAppendForward(bs->index, metabuf, docid, n, bs->assign + off,
						   bs->codes + off * bs->q.codeSize, bs->q.codeSize);
		/* the drift limit comes from the live documents (SampleSlot) */
		if (bs->docs[docid].flags == 0 && !bs->batchDead[i])
			bs->driftScores[bs->ndriftScores++] =
				MvivfDriftScore(&bs->q, bs->batchRows + off * bs->dim, n,
								bs->assign + off, bs->codes + off * bs->q.codeSize);
		off += n;
	}
	UnlockReleaseBuffer(metabuf);
	bs->ndocs += bs->batchDocs;
	bs->batchDocs = 0;
	bs->batchFill = 0;
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, bs->ndocs);
}

/*
 * AssignCallback
 *		Pass 2: add one document to the batch, flushing the batch first when
 *		the document would not fit.
 */
static void
AssignCallback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			   bool tupleIsAlive, void *state)
{
	MvivfBuildState *bs = (MvivfBuildState *) state;
	MemoryContext old;
	MultiVector *mv;
	MvivfDocEntry *doc;
	int64		n;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmpCtx);
	mv = MvivfDatumGetValue(values[0]);
	MvivfCheckDim(index, bs->dim, mv->dim);
	MemoryContextSwitchTo(old);
	n = mv->nvec;

	if (bs->batchFill + n > bs->batchCap)
	{
		FlushBatch(bs);
		if (n > bs->batchCap)
		{
			bs->batchCap = n;
			bs->batchRows = repalloc_huge(bs->batchRows, sizeof(float) * n * bs->dim);
			bs->assign = repalloc_huge(bs->assign, sizeof(uint32) * n);
			bs->codes = repalloc_huge(bs->codes, (Size) n * bs->q.codeSize);
		}
	}
	memcpy(bs->batchRows + bs->batchFill * bs->dim, mv->x,
		   sizeof(float) * n * bs->dim);

	if (bs->ndocs + bs->batchDocs >= bs->maxdocs)
	{
		bs->maxdocs *= 2;
		bs->docs = repalloc_huge(bs->docs, sizeof(MvivfDocEntry) * bs->maxdocs);
		bs->driftScores = repalloc_huge(bs->driftScores, sizeof(float) * bs->maxdocs);
	}
	doc = &bs->docs[bs->ndocs + bs->batchDocs];
	doc->tid = *tid;
	doc->ntokens = Min(n, PG_UINT16_MAX);
	doc->flags = MvivfDocFlagsOf(mv);
	if (bs->batchDocs >= bs->batchNvecCap)
	{
		bs->batchNvecCap *= 2;
		bs->batchNvec = repalloc(bs->batchNvec, sizeof(int) * bs->batchNvecCap);
		bs->batchDead = repalloc(bs->batchDead, sizeof(bool) * bs->batchNvecCap);
	}
	bs->batchNvec[bs->batchDocs] = n;
	bs->batchDead[bs->batchDocs] = !tupleIsAlive;
	bs->batchDocs++;
	bs->batchFill += n;
	bs->ntokens += n;
	MemoryContextReset(bs->tmpCtx);
}

/*
 * AddNullDocs
 *		The rows without a value, found by pass 1, after the documents of
 *		pass 2 in the directory: no tokens, flagged MVIVF_DOC_NULL.
 */
static void
AddNullDocs(MvivfBuildState * bs)
{
	uint32		i;

	if (bs->ndocs + bs->nnull > bs->maxdocs || bs->docs == NULL)
	{
		bs->maxdocs = Max(bs->ndocs + bs->nnull, 1);
		bs->docs = bs->docs == NULL ?
			MemoryContextAllocHuge(bs->buildCtx, sizeof(MvivfDocEntry) * bs->maxdocs) :
			repalloc_huge(bs->docs, sizeof(MvivfDocEntry) * bs->maxdocs);
	}
	for (i = 0; i < bs->nnull; i++)
	{
		MvivfDocEntry *doc = &bs->docs[bs->ndocs++];

		doc->tid = bs->nullTids[i];
		doc->ntokens = 0;
		doc->flags = MVIVF_DOC_NULL;
	}
}

/*
 * StartNewPage
 *		Start a generic WAL record on a new, initialised page.
 */
static Buffer
StartNewPage(Relation index, ForkNumber fork, GenericXLogState **state,
			 Page *page, uint16 flags)
{
	Buffer		buf = MvivfNewBuffer(index, fork);

	*state = GenericXLogStart(index);
	*page = GenericXLogRegisterBuffer(*state, buf, GENERIC_XLOG_FULL_IMAGE);
	MvivfInitPage(*page, flags);
	return buf;
}

/*
 * WriteArrayPages
 *		Write nitems items of itemsz bytes on consecutive new pages of a kind;
 *		with chain, pages are linked.  Returns the first block (Invalid when
 *		there are no items) and sets *last.
 */
static BlockNumber
WriteArrayPages(Relation index, const char *items, int64 nitems, Size itemsz,
				uint16 flags, bool chain, BlockNumber *last)
{
	int			perPage = MvivfItemsPerPage(itemsz);
	BlockNumber first = InvalidBlockNumber;
	Buffer		prevbuf = InvalidBuffer;
	GenericXLogState *prevstate = NULL;
	Page		prevpage = NULL;
	int64		done = 0;

	*last = InvalidBlockNumber;
	while (done < nitems)
	{
		int			n = Min(perPage, nitems - done);
		GenericXLogState *state;
		Page		page;
		Buffer		buf = StartNewPage(index, MAIN_FORKNUM, &state, &page, flags);

		memcpy(MvivfPageItems(page), items + done * itemsz, n * itemsz);
		MvivfPageGetOpaque(page)->nitems = n;
		((PageHeader) page)->pd_lower += n * itemsz;
		if (first == InvalidBlockNumber)
			first = BufferGetBlockNumber(buf);
		if (prevbuf != InvalidBuffer)
		{
			if (chain)
				MvivfPageGetOpaque(prevpage)->next = BufferGetBlockNumber(buf);
			GenericXLogFinish(prevstate);
			UnlockReleaseBuffer(prevbuf);
		}
		prevbuf = buf;
		prevstate = state;
		prevpage = page;
		*last = BufferGetBlockNumber(buf);
		done += n;
	}
	if (prevbuf != InvalidBuffer)
	{
		GenericXLogFinish(prevstate);
		UnlockReleaseBuffer(prevbuf);
	}
	return first;
}

/*
 * WriteMeta
 *		Write the metapage (block 0, which must exist).
 */
static void
WriteMeta(Relation index, MvivfMetaPageData * meta)
{
	Buffer		buf = ReadBuffer(index, MVIVF_METAPAGE_BLKNO);
	GenericXLogState *state;
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
	MvivfInitPage(page, MVIVF_META);
	memcpy(MvivfPageGetMeta(page), meta, sizeof(MvivfMetaPageData));
	((PageHeader) page)->pd_lower += sizeof(MvivfMetaPageData);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/*
 * InitMeta
 *		A metapage describing an empty, untrained index.
 */
static void
InitMeta(MvivfMetaPageData * meta, int nbits)
{
	memset(meta, 0, sizeof(MvivfMetaPageData));
	meta->magic = MVIVF_MAGIC;
	meta->version = MVIVF_VERSION;
	meta->nbits = nbits;
	meta->centroidStart = InvalidBlockNumber;
	meta->listDirStart = InvalidBlockNumber;
	meta->docDirHead = InvalidBlockNumber;
	meta->docDirTail = InvalidBlockNumber;
	meta->pendingHead = InvalidBlockNumber;
	meta->pendingTail = InvalidBlockNumber;
	meta->forwardHead = InvalidBlockNumber;
	meta->forwardTail = InvalidBlockNumber;
	meta->listedForwardTail = InvalidBlockNumber;
	meta->docListDir = InvalidBlockNumber;
	meta->docListStart = InvalidBlockNumber;
	meta->docLocStart = InvalidBlockNumber;
}

/*
 * WarnIfNotNormalised
 *		The centroids are trained with spherical k-means and the residual
 *		codes assume unit rows (as ColPali's are): warn when more than 1% of
 *		the sampled rows are not L2-normalised, since candidate search then
 *		loses much of its recall (the final order stays exact).  Warn too
 *		when any sampled row's norm is off by more than half: a few rows of
 *		large norm dominate the MaxSim of their pages, and their residual
 *		codes, scaled for unit rows, cannot express them (one row in 2,000
 *		of norm 20 took recall@10 to 0.97 on 1,000 pages, below the 1%
 *		share that the first check needs).
 */
static void
WarnIfNotNormalised(MvivfBuildState * bs)
{
	int64		off = 0;
	int64		stride = Max(1, bs->nsample / MVIVF_NORM_CHECK_ROWS);
	int64		n = 0;
	int64		far = 0;
	double		maxNorm2 = 0;
	int64		i;

	/* every stride-th sampled row: enough to estimate the share */
	for (i = 0; i < bs->nsample; i += stride, n++)
	{
		const float *x = bs->sample + i * bs->dim;
		double		norm2 = 0;
		int			d;

		for (d = 0; d < bs->dim; d++)
			norm2 += (double) x[d] * x[d];
		if (fabs(norm2 - 1.0) > 0.02)
			off++;
	}
	/* every sampled row: rows far from unit length may be rare */
	for (i = 0; i < bs->nsample; i++)
	{
		const float *x = bs->sample + i * bs->dim;
		double		norm2 = 0;
		int			d;

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		for (d = 0; d < bs->dim; d++)
			norm2 += (double) x[d] * x[d];
		if (norm2 > 2.25 || norm2 < 0.25)
			far++;
		maxNorm2 = Max(maxNorm2, norm2);
	}
	if (off * 100 > n)
		ereport(WARNING,
				(errmsg("%.0f%% of the sampled rows of index \"%s\" are not L2-normalised",
						100.0 * off / n, RelationGetRelationName(bs->index)),
				 errdetail("mvivf finds candidates assuming unit-length rows; on other rows its recall drops, though the returned order stays exact."),
				 errhint("Index and query l2_normalize(column) instead, or normalise the stored values.")));
	else if (far > 0)
		ereport(WARNING,
				(errmsg("%lld of the sampled rows of index \"%s\" have a norm below 0.5 or above 1.5 (largest %.3g)",
						(long long) far, RelationGetRelationName(bs->index), sqrt(maxNorm2)),
				 errdetail("mvivf finds candidates assuming unit-length rows; a few rows of large norm decide the MaxSim of their pages, and its recall drops, though the returned order stays exact."),
				 errhint("Index and query l2_normalize(column) instead, or normalise the stored values.")));
}

/*
 * mvivfbuild
 *		Build the index (ambuild).
 */
IndexBuildResult *
mvivfbuild(Relation heap, Relation index, IndexInfo *indexInfo)
{
	IndexBuildResult *result;
	MvivfBuildState bs;
	MvivfMetaPageData meta;
	Buffer		metabuf;
	double		reltuples;
	int			nlists;
	int			i;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data",
			 RelationGetRelationName(index));

	memset(&bs, 0, sizeof(bs));
	bs.index = index;
	bs.opts = MvivfGetOptions(index);
	pg_prng_seed(&bs.prng, 0x5eed);
	bs.buildCtx = CurrentMemoryContext;
	bs.tmpCtx = AllocSetContextCreate(CurrentMemoryContext, "mvivf build tuple",
									  ALLOCSET_DEFAULT_SIZES);

	/* a declared multivector(D) must be a dimension the index can rebuild */
	if (TupleDescAttr(RelationGetDescr(index), 0)->atttypmod > 0)
		MvivfCheckSupportedDim(index, TupleDescAttr(RelationGetDescr(index), 0)->atttypmod);

	/* block 0 first, so that it is the metapage */
	InitMeta(&meta, bs.opts->bits);
	metabuf = MvivfNewBuffer(index, MAIN_FORKNUM);
	Assert(BufferGetBlockNumber(metabuf) == MVIVF_METAPAGE_BLKNO);
	UnlockReleaseBuffer(metabuf);
	WriteMeta(index, &meta);

	/* pass 1 */
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, PROGRESS_MVIVF_PHASE_SAMPLE);
	reltuples = table_index_build_scan(heap, index, indexInfo, true, true,
									   SampleCallback, &bs, NULL);
	if (bs.ntokens == 0)
	{
		/* nothing to train on: an untrained index, searched exhaustively */
		meta.dim = bs.dim;
		if (bs.nnull > 0)
		{
			AddNullDocs(&bs);
			meta.docDirHead = WriteArrayPages(index, (char *) bs.docs, bs.ndocs,
											  sizeof(MvivfDocEntry), MVIVF_DOCDIR,
											  true, &meta.docDirTail);
			meta.ndocs = bs.ndocs;
		}
		WriteMeta(index, &meta);
		result = palloc0(sizeof(IndexBuildResult));
		result->heap_tuples = reltuples;
		result->index_tuples = bs.ndocs;
		MemoryContextDelete(bs.tmpCtx);
		return result;
	}

	DropDeadSamples(&bs);
	WarnIfNotNormalised(&bs);

	nlists = bs.opts->lists;
	if (nlists == 0)
		nlists = (int) (4 * sqrt((double) bs.ntokens));
	nlists = Max(1, Min(nlists, MVIVF_MAX_LISTS));
	if (nlists > bs.nsample)
		nlists = bs.nsample;
	if ((int64) nlists * bs.opts->samplesPerList > bs.nsample &&
		bs.nsample == bs.sampleCap && bs.sampleCap < MVIVF_MAX_SAMPLE)
		ereport(NOTICE,
				(errmsg("mvivf trains %d lists on %lld sampled tokens, fewer than the %d per list asked for",
						nlists, (long long) bs.nsample, bs.opts->samplesPerList),
				 errhint("Increase maintenance_work_mem to train on a larger sample.")));
	/* keep at most samplesPerList rows per list, taken at random */
	if (bs.nsample > (int64) nlists * bs.opts->samplesPerList)
	{
		KeepRandomRows(bs.sample, bs.nsample, (int64) nlists * bs.opts->samplesPerList,
					   bs.dim, &bs.prng);
		bs.nsample = (int64) nlists * bs.opts->samplesPerList;
	}

	bs.q.dim = bs.dim;
	bs.q.nbits = bs.opts->bits;
	bs.q.nlists = nlists;
	bs.q.codeSize = (bs.dim * bs.opts->bits + 7) / 8;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, PROGRESS_MVIVF_PHASE_KMEANS);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, bs.opts->kmeansIters);
	bs.scores = palloc_extended(sizeof(float) * MVIVF_ASSIGN_BLOCK * (Size) nlists,
								MCXT_ALLOC_HUGE);
	MvivfTrainQuantizer(&bs.q, bs.sample, bs.nsample, bs.opts->kmeansIters,
						&bs.prng, bs.scores);
	pfree(bs.sample);
	bs.sample = NULL;

	/* centroid pages and an empty list directory, right after the metapage */
	meta.dim = bs.dim;
	meta.nlists = nlists;
	meta.codeSize = bs.q.codeSize;
	meta.centroidsPerPage = MvivfItemsPerPage(sizeof(float) * bs.dim);
	if (meta.centroidsPerPage < 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("mvivf does not support dimension %d", bs.dim),
				 errdetail("A centroid must fit on one index page.")));
	memcpy(meta.weights, bs.q.weights, sizeof(meta.weights));
	memcpy(meta.cutoffs, bs.q.cutoffs, sizeof(meta.cutoffs));
	{
		BlockNumber last;

		meta.centroidStart = WriteArrayPages(index, (char *) bs.q.centroids,
											 nlists, sizeof(float) * bs.dim,
											 MVIVF_CENTROID, false, &last);
		bs.listdir = palloc_extended(sizeof(MvivfListEntry) * nlists, MCXT_ALLOC_HUGE);
		for (i = 0; i < nlists; i++)
		{
			bs.listdir[i].head = InvalidBlockNumber;
			bs.listdir[i].tail = InvalidBlockNumber;
			bs.listdir[i].ntokens = 0;
		}
		meta.listDirStart = WriteArrayPages(index, (char *) bs.listdir, nlists,
											sizeof(MvivfListEntry),
											MVIVF_LISTDIR, false, &last);
	}

	/* pass 2 */
	bs.maxdocs = Max(1024, (uint32) bs.indtuples + 1);
	bs.docs = palloc_extended(sizeof(MvivfDocEntry) * bs.maxdocs, MCXT_ALLOC_HUGE);
	bs.driftScores = palloc_extended(sizeof(float) * bs.maxdocs, MCXT_ALLOC_HUGE);
	bs.ntokens = 0;
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, PROGRESS_MVIVF_PHASE_ASSIGN);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, (int64) bs.indtuples);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, 0);
	WriteMeta(index, &meta);	/* the forward store's chain starts empty */
	bs.batchCap = MVIVF_BUILD_BATCH_ROWS;
	bs.batchRows = palloc_extended(sizeof(float) * bs.batchCap * bs.dim, MCXT_ALLOC_HUGE);
	bs.assign = palloc_extended(sizeof(uint32) * bs.batchCap, MCXT_ALLOC_HUGE);
	bs.codes = palloc_extended((Size) bs.batchCap * bs.q.codeSize, MCXT_ALLOC_HUGE);
	bs.batchNvecCap = 64;
	bs.batchNvec = palloc(sizeof(int) * bs.batchNvecCap);
	bs.batchDead = palloc(sizeof(bool) * bs.batchNvecCap);
	reltuples = table_index_build_scan(heap, index, indexInfo, true, true,
									   AssignCallback, &bs, NULL);
	FlushBatch(&bs);
	meta.driftLimit = MvivfDriftLimit(bs.driftScores, bs.ndriftScores);
	elog(DEBUG1, "mvivf drift limit %g from %u documents", meta.driftLimit,
		 bs.ndriftScores);
	pfree(bs.driftScores);
	AddNullDocs(&bs);
	pfree(bs.batchRows);
	pfree(bs.assign);
	pfree(bs.codes);
	pfree(bs.batchNvec);
	pfree(bs.batchDead);
	{
		MvivfMetaPageData written;

		MvivfReadMeta(index, &written);
		meta.forwardHead = written.forwardHead;
		meta.forwardTail = written.forwardTail;
	}

	/* directories, document lists and metapage */
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, PROGRESS_MVIVF_PHASE_WRITE);
	MvivfWriteListDir(index, &meta, bs.listdir);
	if (bs.ndocs > 0)
	{
		uint32	   *offsets;
		uint32	   *entries;
		uint64		nentries;
		MvivfDocLocation *locs;
		BlockNumber last;

		meta.ndocs = bs.ndocs;
		MvivfCollectDocLists(index, &meta, bs.ndocs, &offsets, &entries,
							 &nentries, &locs);
		meta.docListDir = WriteArrayPages(index, (char *) offsets, (int64) nlists + 1,
										  sizeof(uint32), MVIVF_DOCLIST, false, &last);
		if (nentries > 0)
			meta.docListStart = WriteArrayPages(index, (char *) entries, nentries,
												sizeof(uint32), MVIVF_DOCLIST, false, &last);
		meta.docLocStart = WriteArrayPages(index, (char *) locs, bs.ndocs,
										   sizeof(MvivfDocLocation), MVIVF_DOCLIST,
										   false, &last);
		meta.npostings = (uint32) nentries;
		meta.listedDocs = bs.ndocs;
		meta.listedForwardTail = meta.forwardTail;
		pfree(offsets);
		pfree(entries);
		pfree(locs);
	}
	meta.docDirHead = WriteArrayPages(index, (char *) bs.docs, bs.ndocs,
									  sizeof(MvivfDocEntry), MVIVF_DOCDIR,
									  true, &meta.docDirTail);
	meta.ndocs = bs.ndocs;
	meta.ntokens = bs.ntokens;
	meta.nforced = 0;
	for (i = 0; i < (int) bs.ndocs; i++)
		if (bs.docs[i].flags & MVIVF_DOC_RERANK)
			meta.nforced++;
	WriteMeta(index, &meta);

	result = palloc0(sizeof(IndexBuildResult));
	result->heap_tuples = reltuples;
	result->index_tuples = bs.ndocs;
	MemoryContextDelete(bs.tmpCtx);
	return result;
}

/*
 * mvivfbuildempty
 *		Write the metapage of an empty index into the init fork (unlogged
 *		tables).
 */
void
mvivfbuildempty(Relation index)
{
	MvivfMetaPageData meta;
	MvivfOptions *opts = MvivfGetOptions(index);
	GenericXLogState *state;
	Page		page;
	Buffer		buf;

	InitMeta(&meta, opts->bits);
	buf = StartNewPage(index, INIT_FORKNUM, &state, &page, MVIVF_META);
	memcpy(MvivfPageGetMeta(page), &meta, sizeof(MvivfMetaPageData));
	((PageHeader) page)->pd_lower += sizeof(MvivfMetaPageData);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}
