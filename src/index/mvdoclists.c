/*
 * mvdoclists.c
 *	  The document lists of an mvivf index (format version 3): for every
 *	  centroid, the documents that have at least one token assigned to it,
 *	  and where each document's codes start in the forward store.
 *
 * CREATE INDEX writes them once the forward store is complete, in three
 * areas of contiguous pages (MVIVF_DOCLIST):
 *	- the list directory: nlists + 1 uint32 offsets, list c's documents being
 *	  entries off[c] .. off[c + 1] - 1;
 *	- the entries: uint32 document ids, increasing within a list;
 *	- the locations: per document id, MvivfDocLocation {forward block, byte
 *	  offset of its first group}.
 * Item i of an area lives on page start + i / perPage at slot i % perPage
 * (perPage = MvivfItemsPerPage(item size)).  The lists cover documents
 * 0 .. meta->listedDocs - 1; documents inserted later (the unlisted tail)
 * are found by reading the forward store from meta->listedForwardTail on,
 * and every scan scores them fully.  VACUUM leaves the lists alone: a dead
 * document stays listed and scans skip it.
 *
 * A scan uses the lists to bound every listed document's centroid
 * interaction from a few probed lists per query row (mvrank.c) instead of
 * reading every token's centroid number, and the locations to read the
 * codes of only the documents it refines.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"

#include "mvivf.h"
#include "recent_buffer.h"

/*
 * ReadDocListPage
 *		Pin and share-lock page blkno of a document-list area, checking its
 *		kind; *items is the start of its items, *nitems their number.
 */
static Buffer
ReadDocListPage(Relation index, BlockNumber blkno, char **items, int *nitems)
{
	Buffer		buf;
	Page		page;

	buf = ReadBufferRecent(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (!(MvivfPageGetOpaque(page)->flags & MVIVF_DOCLIST))
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a malformed document-list page %u",
						RelationGetRelationName(index), blkno)));
	*items = MvivfPageItems(page);
	*nitems = MvivfPageGetOpaque(page)->nitems;
	return buf;
}

/*
 * MvivfCollectDocLists
 *		Read the forward store written by a build (documents 0 .. ndocs - 1)
 *		twice: count the distinct documents of every list and note where each
 *		document starts, then fill the entries.  Returns the offsets (nlists +
 *		1), entries (*nentries) and locations (ndocs), palloc'd.
 */
void
MvivfCollectDocLists(Relation index, MvivfMetaPageData * meta, uint32 ndocs,
					 uint32 **offsetsOut, uint32 **entriesOut,
					 uint64 *nentries, MvivfDocLocation * *locsOut)
{
	uint32		nlists = meta->nlists;
	uint32	   *offsets = palloc0(sizeof(uint32) * ((Size) nlists + 1));
	uint32	   *lastDoc = palloc_extended(sizeof(uint32) * Max(nlists, 1), MCXT_ALLOC_HUGE);
	uint32	   *fill = NULL;
	uint32	   *entries = NULL;
	MvivfDocLocation *locs = palloc_extended(sizeof(MvivfDocLocation) * Max(ndocs, 1),
											 MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	uint64		total = 0;
	int			pass;
	uint32		c;
	uint32		d;

	for (d = 0; d < ndocs; d++)
		locs[d].block = InvalidBlockNumber;
	for (pass = 0; pass < 2; pass++)
	{
		BlockNumber blkno = meta->forwardHead;

		for (c = 0; c < nlists; c++)
			lastDoc[c] = PG_UINT32_MAX;
		while (blkno != InvalidBlockNumber)
		{
			char	   *page;
			char	   *p;
			char	   *end;
			char	   *lists;
			MvivfForwardGroup group;
			Buffer		buf;

			CHECK_FOR_INTERRUPTS();
			buf = MvivfReadForwardPage(index, blkno, &p, &end);
			page = (char *) BufferGetPage(buf);
			for (;;)
			{
				char	   *groupStart = p;
				int			t;

				if (!MvivfNextGroup(index, blkno, &p, end, meta->codeSize, &group, &lists))
					break;
				if (group.docid >= ndocs)
					ereport(ERROR,
							(errcode(ERRCODE_INDEX_CORRUPTED),
							 errmsg("index \"%s\" has a malformed forward page %u",
									RelationGetRelationName(index), blkno)));
				if (pass == 0 && locs[group.docid].block == InvalidBlockNumber)
				{
					locs[group.docid].block = blkno;
					locs[group.docid].offset = groupStart - page;
				}
				if (group.kind == MVIVF_GROUP_CODES)
					continue;	/* its centroid numbers came before */
				for (t = 0; t < group.ntokens; t++)
				{
					uint16		list;

					memcpy(&list, lists + (Size) t * sizeof(uint16), sizeof(uint16));
					if (list >= nlists || lastDoc[list] == group.docid)
						continue;
					lastDoc[list] = group.docid;
					if (pass == 0)
						offsets[list + 1]++;
					else
						entries[fill[list]++] = group.docid;
				}
			}
			blkno = MvivfPageGetOpaque((Page) page)->next;
			UnlockReleaseBuffer(buf);
		}
		if (pass == 0)
		{
			for (c = 0; c < nlists; c++)
			{
				total += offsets[c + 1];
				if (total > PG_UINT32_MAX)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("index \"%s\" would have more than %u document-list entries",
									RelationGetRelationName(index), PG_UINT32_MAX)));
				offsets[c + 1] = (uint32) total;
			}
			entries = palloc_extended(sizeof(uint32) * Max(total, 1), MCXT_ALLOC_HUGE);
			fill = palloc_extended(sizeof(uint32) * Max(nlists, 1), MCXT_ALLOC_HUGE);
			memcpy(fill, offsets, sizeof(uint32) * nlists);
		}
	}
	pfree(lastDoc);
	pfree(fill);
	*offsetsOut = offsets;
	*entriesOut = entries;
	*nentries = total;
	*locsOut = locs;
}

/*
 * MvivfReadDocListDir
 *		The nlists + 1 offsets of the document lists.
 */
uint32 *
MvivfReadDocListDir(Relation index, MvivfMetaPageData * meta)
{
	uint32		n = meta->nlists + 1;
	uint32	   *offsets = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);
	uint32		done = 0;
	BlockNumber blkno = meta->docListDir;

	while (done < n)
	{
		char	   *items;
		int			nitems;
		Buffer		buf = ReadDocListPage(index, blkno, &items, &nitems);
		uint32		k = Min((uint32) nitems, n - done);

		if (nitems <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("index \"%s\" has a malformed document-list page %u",
							RelationGetRelationName(index), blkno)));
		memcpy(offsets + done, items, sizeof(uint32) * k);
		done += k;
		UnlockReleaseBuffer(buf);
		blkno++;
	}
	for (done = 0; done < n; done++)
		if (offsets[done] > meta->npostings ||
			(done > 0 && offsets[done] < offsets[done - 1]))
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("index \"%s\" has a malformed document-list directory",
							RelationGetRelationName(index))));
	return offsets;
}

/*
 * MvivfScanDocList
 *		Call fn(arg, ids, n) on the entries from .. to - 1 of the document
 *		lists, a page's share at a time (the ids point into the locked page).
 *		*pinned is a pin the caller keeps between calls (InvalidBuffer at
 *		first; the caller releases it): the lists of neighbouring centroids
 *		share pages, and a scan probes them in list order, so a page is
 *		looked up in the buffer pool once, not once per list.  (These pages
 *		never change after the build; each use still takes the share lock.)
 */
void
MvivfScanDocList(Relation index, MvivfMetaPageData * meta, uint32 from,
				 uint32 to, void (*fn) (void *arg, const uint32 *ids, int n),
				 void *arg, uint64 *npages, Buffer *pinned)
{
	uint32		perPage = MvivfItemsPerPage(sizeof(uint32));

	while (from < to)
	{
		BlockNumber blkno = meta->docListStart + from / perPage;
		uint32		slot = from % perPage;
		char	   *items;
		int			nitems;
		uint32		k = Min(to - from, perPage - slot);
		Page		page;

		if (BufferIsValid(*pinned) && BufferGetBlockNumber(*pinned) == blkno)
			LockBuffer(*pinned, BUFFER_LOCK_SHARE);
		else
		{
			if (BufferIsValid(*pinned))
				ReleaseBuffer(*pinned);
			*pinned = ReadDocListPage(index, blkno, &items, &nitems);
			(*npages)++;
		}
		page = BufferGetPage(*pinned);
		items = MvivfPageItems(page);
		nitems = MvivfPageGetOpaque(page)->nitems;
		if (slot + k > (uint32) nitems)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("index \"%s\" has a malformed document-list page %u",
							RelationGetRelationName(index), blkno)));
		fn(arg, (const uint32 *) items + slot, (int) k);
		LockBuffer(*pinned, BUFFER_LOCK_UNLOCK);
		from += k;
	}
}

/*
 * MvivfReadDocLocation
 *		Where the codes of listed document doc start in the forward store.
 */
void
MvivfReadDocLocation(Relation index, MvivfMetaPageData * meta, uint32 doc,
					 BlockNumber *block, uint16 *offset)
{
	uint32		perPage = MvivfItemsPerPage(sizeof(MvivfDocLocation));
	char	   *items;
	int			nitems;
	Buffer		buf = ReadDocListPage(index, meta->docLocStart + doc / perPage,
									  &items, &nitems);
	MvivfDocLocation loc;

	if (doc % perPage >= (uint32) nitems)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has no location for document %u",
						RelationGetRelationName(index), doc)));
	memcpy(&loc, items + (Size) (doc % perPage) * sizeof(MvivfDocLocation), sizeof(loc));
	UnlockReleaseBuffer(buf);
	*block = loc.block;
	*offset = loc.offset;
}
