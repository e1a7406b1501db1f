/*
 * mvinsert.c
 *	  Insert one document into an mvivf index.
 *
 * An insert assigns and encodes the document's tokens without any lock,
 * then, holding the index write lock and the metapage, appends one entry to
 * the document directory and the document's token codes to the forward
 * store (mvforward.c): about three pages for a 1030 x 128 document at 1 bit,
 * in generic WAL records of at most four pages each (metapage included, so
 * that the chain heads and counters always match the pages).  Scans read the
 * whole forward store, so a new row is found at once.
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "mvivf.h"

/* cached between inserts of one statement (indexInfo->ii_AmCache) */
typedef struct MvivfInsertCache
{
	MvivfMetaPageData meta;
	bool		driftNoticed;	/* the statement said so once (mvdrift.c) */
}			MvivfInsertCache;

/*
 * GetInsertCache
 *		The metapage of the index, read once per statement (the quantizer is
 *		cached across statements, per index, by MvivfGetQuantizer).
 */
static MvivfInsertCache *
GetInsertCache(Relation index, IndexInfo *indexInfo)
{
	MvivfInsertCache *cache = indexInfo->ii_AmCache;

	if (cache == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(indexInfo->ii_Context);

		cache = palloc0(sizeof(MvivfInsertCache));
		MvivfReadMeta(index, &cache->meta);
		MemoryContextSwitchTo(old);
		indexInfo->ii_AmCache = cache;
	}
	return cache;
}

/*
 * AppendDocEntry
 *		Append the document's directory entry and return its id; metabuf is
 *		exclusively locked by the caller.
 */
static uint32
AppendDocEntry(Relation index, Buffer metabuf, ItemPointer tid, int ntokens,
			   uint16 flags)
{
	GenericXLogState *state = GenericXLogStart(index);
	MvivfMetaPage meta = MvivfPageGetMeta(GenericXLogRegisterBuffer(state, metabuf, 0));
	int			perPage = MvivfItemsPerPage(sizeof(MvivfDocEntry));
	Buffer		tbuf = InvalidBuffer;
	Buffer		nbuf = InvalidBuffer;
	Page		target = NULL;
	MvivfDocEntry entry;
	uint32		docid = meta->ndocs;

	if (meta->docDirTail != InvalidBlockNumber)
	{
		tbuf = ReadBuffer(index, meta->docDirTail);
		LockBuffer(tbuf, BUFFER_LOCK_EXCLUSIVE);
		target = GenericXLogRegisterBuffer(state, tbuf, 0);
	}
	if (target == NULL || MvivfPageGetOpaque(target)->nitems >= perPage)
	{
		Page		npage;

		nbuf = MvivfNewBuffer(index, MAIN_FORKNUM);
		npage = GenericXLogRegisterBuffer(state, nbuf, GENERIC_XLOG_FULL_IMAGE);
		MvivfInitPage(npage, MVIVF_DOCDIR);
		if (target != NULL)
			MvivfPageGetOpaque(target)->next = BufferGetBlockNumber(nbuf);
		else
			meta->docDirHead = BufferGetBlockNumber(nbuf);
		meta->docDirTail = BufferGetBlockNumber(nbuf);
		target = npage;
	}
	entry.tid = *tid;
	entry.ntokens = Min(ntokens, PG_UINT16_MAX);
	entry.flags = flags;
	memcpy(MvivfPageItems(target) + MvivfPageGetOpaque(target)->nitems * sizeof(MvivfDocEntry),
		   &entry, sizeof(MvivfDocEntry));
	MvivfPageGetOpaque(target)->nitems++;
	((PageHeader) target)->pd_lower += sizeof(MvivfDocEntry);
	meta->ndocs++;
	if ((flags & MVIVF_DOC_RERANK) &&
		MvivfMetaHasForcedCount(BufferGetPage(metabuf)))
		meta->nforced++;
	GenericXLogFinish(state);
	if (BufferIsValid(tbuf))
		UnlockReleaseBuffer(tbuf);
	if (BufferIsValid(nbuf))
		UnlockReleaseBuffer(nbuf);
	return docid;
}

/*
 * mvivfinsert
 *		Add one document (aminsert).
 */
bool
mvivfinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
			Relation heap, IndexUniqueCheck checkUnique,
#if PG_VERSION_NUM >= 140000
			bool indexUnchanged,
#endif
			IndexInfo *indexInfo)
{
	MemoryContext tmpCtx;
	MemoryContext old;
	MvivfInsertCache *cache;
	const MvivfQuantizer *q = NULL;
	MultiVector *mv;
	uint32	   *lists = NULL;
	uint8	   *codes = NULL;
	uint16		flags;
	Buffer		metabuf;
	MvivfMetaPage meta;
	uint32		docid;

	if (isnull[0])
	{
		/* a document without tokens, returned last by scans (MVIVF_DOC_NULL) */
		LockPage(index, MVIVF_WRITE_LOCK, ExclusiveLock);
		metabuf = ReadBuffer(index, MVIVF_METAPAGE_BLKNO);
		LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
		(void) AppendDocEntry(index, metabuf, heap_tid, 0, MVIVF_DOC_NULL);
		UnlockReleaseBuffer(metabuf);
		UnlockPage(index, MVIVF_WRITE_LOCK, ExclusiveLock);
		return false;
	}

	cache = GetInsertCache(index, indexInfo);
	tmpCtx = AllocSetContextCreate(CurrentMemoryContext, "mvivf insert",
								   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(tmpCtx);
	mv = MvivfDatumGetValue(values[0]);
	if (cache->meta.dim != 0)
		MvivfCheckDim(index, cache->meta.dim, mv->dim);
	if (cache->meta.nlists > 0)
	{
		lists = palloc(sizeof(uint32) * mv->nvec);
		q = MvivfGetQuantizer(index, &cache->meta, true);
		codes = palloc((Size) mv->nvec * q->codeSize);
		MvivfAssignEncode(q, mv->x, mv->nvec, lists, codes, NULL);
	}
	flags = MvivfDocFlagsOf(mv);
	if (flags == 0 && lists != NULL && cache->meta.driftLimit > 0)
	{
		float		score = MvivfDriftScore(q, mv->x, mv->nvec, lists, codes);

		elog(DEBUG2, "mvivf insert: drift score %g, limit %g", score,
			 cache->meta.driftLimit);
		if (!(score <= cache->meta.driftLimit))	/* NaN too */
			flags = MVIVF_DOC_RERANK | MVIVF_DOC_DRIFT;
	}
	if ((flags & MVIVF_DOC_DRIFT) && !cache->driftNoticed)
	{
		cache->driftNoticed = true;
		ereport(NOTICE,
				(errmsg("index \"%s\" represents a new row far worse than the rows it was built on",
						RelationGetRelationName(index)),
				 errdetail("Its scans rerank such rows exactly before the others, which makes them slower."),
				 errhint("REINDEX once the table holds the new kind of data, so that the index is trained on it.")));
	}

	LockPage(index, MVIVF_WRITE_LOCK, ExclusiveLock);
	metabuf = ReadBuffer(index, MVIVF_METAPAGE_BLKNO);
	LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
	meta = MvivfPageGetMeta(BufferGetPage(metabuf));
	if (meta->dim == 0)
	{
		/* the first row of an index built empty fixes its dimension */
		GenericXLogState *state;

		MvivfCheckSupportedDim(index, mv->dim);
		state = GenericXLogStart(index);

		MvivfPageGetMeta(GenericXLogRegisterBuffer(state, metabuf, 0))->dim = mv->dim;
		GenericXLogFinish(state);
	}
	else
		MvivfCheckDim(index, meta->dim, mv->dim);

	docid = AppendDocEntry(index, metabuf, heap_tid, mv->nvec, flags);
	if (lists != NULL)
		MvivfAppendForward(index, metabuf, docid, mv->nvec, lists, codes,
						   q->codeSize);

	UnlockReleaseBuffer(metabuf);
	UnlockPage(index, MVIVF_WRITE_LOCK, ExclusiveLock);

	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmpCtx);
	return false;
}
