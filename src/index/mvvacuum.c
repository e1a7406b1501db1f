/*
 * mvvacuum.c
 *	  VACUUM support for mvivf.
 *
 * ambulkdelete calls the callback once per document (not per token) and
 * sets the dead flag in the document directory; scans skip dead documents,
 * so a heap TID reused later is never confused with the dead document
 * (document ids are never reused).  amvacuumcleanup then
 *	- moves the pending area into the lists (dropping dead documents'
 *	  postings) and frees the pending pages for reuse;
 *	- when documents died, compacts each list in place, dropping the
 *	  postings of dead documents; emptied pages at a list's end are freed.
 * Freed pages are marked MVIVF_DELETED and recorded in the free space map;
 * MvivfNewBuffer reuses them.  A scan that meets a freed or reused page
 * while following a chain stops there: it may then miss postings that the
 * compaction moved (lower recall for that one scan), never return a wrong
 * row.
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "mvivf.h"

/* PostgreSQL 18 asks whether the delay is for ANALYZE */
#if PG_VERSION_NUM >= 180000
#define VacuumDelayPoint()	vacuum_delay_point(false)
#else
#define VacuumDelayPoint()	vacuum_delay_point()
#endif

/*
 * mvivfbulkdelete
 *		Mark the documents whose heap rows are dead (ambulkdelete).
 */
IndexBulkDeleteResult *
mvivfbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
				IndexBulkDeleteCallback callback, void *callback_state)
{
	Relation	index = info->index;
	MvivfMetaPageData meta;
	BlockNumber blkno;
	uint32		done = 0;
	uint32		newlyDead = 0;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	MvivfReadMeta(index, &meta);
	blkno = meta.docDirHead;
	while (blkno != InvalidBlockNumber)
	{
		Buffer		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno,
											 RBM_NORMAL, info->strategy);
		Page		page;
		MvivfDocEntry *docs;
		int			n;
		int			i;
		int			ndel = 0;
		GenericXLogState *state = NULL;

		VacuumDelayPoint();
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		n = MvivfPageGetOpaque(page)->nitems;
		docs = (MvivfDocEntry *) MvivfPageItems(page);
		for (i = 0; i < n; i++)
		{
			if (docs[i].flags & MVIVF_DOC_DEAD)
				continue;
			if (callback(&docs[i].tid, callback_state))
			{
				if (state == NULL)
				{
					state = GenericXLogStart(index);
					page = GenericXLogRegisterBuffer(state, buf, 0);
					docs = (MvivfDocEntry *) MvivfPageItems(page);
				}
				docs[i].flags |= MVIVF_DOC_DEAD;
				ndel++;
			}
			else
				stats->num_index_tuples++;
		}
		if (state)
			GenericXLogFinish(state);
		stats->tuples_removed += ndel;
		newlyDead += ndel;
		done += n;
		blkno = MvivfPageGetOpaque(BufferGetPage(buf))->next;
		UnlockReleaseBuffer(buf);
	}

	if (newlyDead > 0)
	{
		Buffer		metabuf = ReadBuffer(index, MVIVF_METAPAGE_BLKNO);
		GenericXLogState *state;

		LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		MvivfPageGetMeta(GenericXLogRegisterBuffer(state, metabuf, 0))->ndead += newlyDead;
		GenericXLogFinish(state);
		UnlockReleaseBuffer(metabuf);
	}
	return stats;
}

/*
 * FreePage
 *		Mark a page deleted and hand it to the free space map.
 */
static void
FreePage(Relation index, Buffer buf)
{
	GenericXLogState *state = GenericXLogStart(index);
	Page		page = GenericXLogRegisterBuffer(state, buf, 0);

	MvivfPageGetOpaque(page)->flags = MVIVF_DELETED;
	MvivfPageGetOpaque(page)->nitems = 0;
	MvivfPageGetOpaque(page)->next = InvalidBlockNumber;
	((PageHeader) page)->pd_lower = MAXALIGN(SizeOfPageHeaderData);
	GenericXLogFinish(state);
	RecordFreeIndexPage(index, BufferGetBlockNumber(buf));
}

/*
 * DeadFlags
 *		A per-document dead flag array from the document directory.
 */
static bool *
DeadFlags(Relation index, MvivfMetaPageData * meta, uint32 *ndocs)
{
	MvivfDocEntry *docs = MvivfReadDocDir(index, meta, ndocs);
	bool	   *dead = palloc_extended(sizeof(bool) * Max(*ndocs, 1), MCXT_ALLOC_HUGE);
	uint32		i;

	for (i = 0; i < *ndocs; i++)
		dead[i] = (docs[i].flags & MVIVF_DOC_DEAD) != 0;
	pfree(docs);
	return dead;
}

/*
 * MvivfMergePending
 *		Move the pending area into the lists, then free its pages.
 */
void
MvivfMergePending(Relation index)
{
	MvivfMetaPageData meta;
	MemoryContext ctx;
	MemoryContext old;
	MvivfPosting *postings;
	int64		npostings = 0;
	int64		maxpostings = 1024;
	BlockNumber *pages;
	int			npages = 0;
	int			maxpages = 64;
	BlockNumber blkno;
	Size		itemsz;
	bool	   *dead;
	uint32		ndocs;
	int			i;

	LockPage(index, MVIVF_WRITE_LOCK, ExclusiveLock);
	MvivfReadMeta(index, &meta);
	if (meta.pendingHead == InvalidBlockNumber || meta.nlists == 0)
	{
		UnlockPage(index, MVIVF_WRITE_LOCK, ExclusiveLock);
		return;
	}
	ctx = AllocSetContextCreate(CurrentMemoryContext, "mvivf merge",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ctx);
	itemsz = MvivfPendingSize(meta.codeSize);
	dead = DeadFlags(index, &meta, &ndocs);
	postings = palloc(sizeof(MvivfPosting) * maxpostings);
	pages = palloc(sizeof(BlockNumber) * maxpages);

	for (blkno = meta.pendingHead; blkno != InvalidBlockNumber;)
	{
		Buffer		buf = ReadBuffer(index, blkno);
		Page		page;
		int			n;

		CHECK_FOR_INTERRUPTS();
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		n = MvivfPageGetOpaque(page)->nitems;
		for (i = 0; i < n; i++)
		{
			const char *item = MvivfPageItems(page) + i * itemsz;
			MvivfPosting *p;
			uint32		docid;

			memcpy(&docid, item, sizeof(uint32));
			if (docid < ndocs && dead[docid])
				continue;
			if (npostings >= maxpostings)
			{
				maxpostings *= 2;
				postings = repalloc_huge(postings, sizeof(MvivfPosting) * maxpostings);
			}
			p = &postings[npostings++];
			p->docid = docid;
			memcpy(&p->list, item + sizeof(uint32), sizeof(uint32));
			p->code = palloc(meta.codeSize);
			memcpy(p->code, item + 2 * sizeof(uint32), meta.codeSize);
		}
		if (npages >= maxpages)
		{
			maxpages *= 2;
			pages = repalloc(pages, sizeof(BlockNumber) * maxpages);
		}
		pages[npages++] = blkno;
		blkno = MvivfPageGetOpaque(page)->next;
		UnlockReleaseBuffer(buf);
	}

	/* postings into the lists first: a concurrent scan never misses them */
	if (npostings > 0)
	{
		MvivfListEntry *listdir = MvivfReadListDir(index, &meta);

		qsort(postings, npostings, sizeof(MvivfPosting), MvivfPostingCmp);
		MvivfAppendPostings(index, postings, npostings, meta.codeSize, listdir);
		MvivfWriteListDir(index, &meta, listdir);
	}

	/* empty the pending area, then free its pages */
	{
		Buffer		metabuf = ReadBuffer(index, MVIVF_METAPAGE_BLKNO);
		GenericXLogState *state;
		MvivfMetaPage m;

		LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		m = MvivfPageGetMeta(GenericXLogRegisterBuffer(state, metabuf, 0));
		m->ntokens -= m->npending - npostings;	/* dead postings dropped */
		m->pendingHead = InvalidBlockNumber;
		m->pendingTail = InvalidBlockNumber;
		m->npending = 0;
		GenericXLogFinish(state);
		UnlockReleaseBuffer(metabuf);
	}
	for (i = 0; i < npages; i++)
	{
		Buffer		buf = ReadBuffer(index, pages[i]);

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		FreePage(index, buf);
		UnlockReleaseBuffer(buf);
	}
	UnlockPage(index, MVIVF_WRITE_LOCK, ExclusiveLock);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
}

/*
 * CompactLists
 *		Drop the postings of dead documents from every list: the list's items
 *		are rewritten, in order, onto its first pages; pages left empty at
 *		its end are freed.
 */
static void
CompactLists(Relation index, IndexVacuumInfo *info)
{
	MvivfMetaPageData meta;
	MvivfListEntry *listdir;
	bool	   *dead;
	uint32		ndocs;
	Size		itemsz;
	int			perPage;
	uint64		removed = 0;
	uint32		l;
	char	   *items;
	int			maxitems = 0;
	BlockNumber *pages;
	int			maxpages = 0;

	LockPage(index, MVIVF_WRITE_LOCK, ExclusiveLock);
	MvivfReadMeta(index, &meta);
	if (meta.nlists == 0)
	{
		UnlockPage(index, MVIVF_WRITE_LOCK, ExclusiveLock);
		return;
	}
	dead = DeadFlags(index, &meta, &ndocs);
	listdir = MvivfReadListDir(index, &meta);
	itemsz = MvivfPostingSize(meta.codeSize);
	perPage = MvivfItemsPerPage(itemsz);
	items = NULL;
	pages = NULL;

	for (l = 0; l < meta.nlists; l++)
	{
		MvivfListEntry *entry = &listdir[l];
		BlockNumber blkno;
		int			nitems = 0;
		int			npages = 0;
		int			kept;
		int			ndropped = 0;
		int			p;

		if (entry->head == InvalidBlockNumber)
			continue;
		VacuumDelayPoint();

		/* collect the live items of the list */
		for (blkno = entry->head; blkno != InvalidBlockNumber;)
		{
			Buffer		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno,
												 RBM_NORMAL, info->strategy);
			Page		page;
			int			n;
			int			i;

			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			n = MvivfPageGetOpaque(page)->nitems;
			if (nitems + n > maxitems)
			{
				maxitems = Max(nitems + n, 2 * maxitems);
				items = items ? repalloc_huge(items, itemsz * maxitems)
					: palloc_extended(itemsz * maxitems, MCXT_ALLOC_HUGE);
			}
			for (i = 0; i < n; i++)
			{
				const char *item = MvivfPageItems(page) + i * itemsz;
				uint32		docid;

				memcpy(&docid, item, sizeof(uint32));
				if (docid < ndocs && dead[docid])
				{
					ndropped++;
					continue;
				}
				memcpy(items + (Size) nitems * itemsz, item, itemsz);
				nitems++;
			}
			if (npages >= maxpages)
			{
				maxpages = Max(64, 2 * maxpages);
				pages = pages ? repalloc(pages, sizeof(BlockNumber) * maxpages)
					: palloc(sizeof(BlockNumber) * maxpages);
			}
			pages[npages++] = blkno;
			blkno = MvivfPageGetOpaque(page)->next;
			UnlockReleaseBuffer(buf);
		}
		if (ndropped == 0)
			continue;

		/* rewrite them onto the first pages, free the rest */
		kept = Max(1, (nitems + perPage - 1) / perPage);
		for (p = 0; p < npages; p++)
		{
			Buffer		buf = ReadBuffer(index, pages[p]);

			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
			if (p < kept)
			{
				GenericXLogState *state = GenericXLogStart(index);
				Page		page = GenericXLogRegisterBuffer(state, buf, 0);
				int			n = Min(perPage, nitems - p * perPage);

				n = Max(n, 0);
				memcpy(MvivfPageItems(page), items + (Size) p * perPage * itemsz, n * itemsz);
				MvivfPageGetOpaque(page)->nitems = n;
				((PageHeader) page)->pd_lower = MAXALIGN(SizeOfPageHeaderData) + n * itemsz;
				if (p == kept - 1)
					MvivfPageGetOpaque(page)->next = InvalidBlockNumber;
				GenericXLogFinish(state);
			}
			else
				FreePage(index, buf);
			UnlockReleaseBuffer(buf);
		}
		removed += ndropped;
		entry->tail = pages[kept - 1];
		entry->ntokens = nitems;
	}
	MvivfWriteListDir(index, &meta, listdir);

	if (removed > 0)
	{
		Buffer		metabuf = ReadBuffer(index, MVIVF_METAPAGE_BLKNO);
		GenericXLogState *state;
		MvivfMetaPage m;

		LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		m = MvivfPageGetMeta(GenericXLogRegisterBuffer(state, metabuf, 0));
		m->ntokens -= Min(m->ntokens, removed);
		GenericXLogFinish(state);
		UnlockReleaseBuffer(metabuf);
	}
	UnlockPage(index, MVIVF_WRITE_LOCK, ExclusiveLock);
}

/*
 * mvivfvacuumcleanup
 *		Merge the pending area, compact lists after deletions and report
 *		statistics (amvacuumcleanup).
 */
IndexBulkDeleteResult *
mvivfvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	Relation	index = info->index;
	MvivfMetaPageData meta;
	bool		deleted = (stats != NULL && stats->tuples_removed > 0);

	if (info->analyze_only)
		return stats;

	MvivfMergePending(index);
	if (deleted)
		CompactLists(index, info);
	IndexFreeSpaceMapVacuum(index);

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	MvivfReadMeta(index, &meta);
	stats->num_pages = RelationGetNumberOfBlocks(index);
	stats->num_index_tuples = meta.ndocs - meta.ndead;
	stats->estimated_count = false;
	return stats;
}
