/*
 * toast_stream.c
 *	  Reading an out-of-line TOAST value chunk by chunk, in order, without
 *	  assembling it.
 *
 * PostgreSQL's reader (heap_fetch_toast_slice) asks the TOAST index for
 * every chunk: an index step, then a heap fetch with its buffer mapping
 * lookup, pin, share lock, HOT-chain search and unlock per 2 kB chunk (about
 * 264 of them for a 527 kB ColPali page).  Here the index finds chunk 0,
 * and the heap is walked from there block by block, one pin and one share
 * lock per block, while the chunks lie where a value written in one go puts
 * them (WalkChunks: consecutive line pointers of consecutive blocks, other
 * values' tuples passed over).  The first chunk that does not is found
 * through the index and the walk resumes after it, unless walks keep finding
 * nothing (a value written interleaved with another): then the index reads
 * the rest.  Every chunk is checked as heap_fetch_toast_slice checks it, and
 * anything unexpected (a missing, misnumbered or missized chunk) is left to
 * the index path, so the ERRORs are those of detoasting.  Blocks are pinned
 * through a per-backend hint of the buffer each was in (ReadToastBlock).
 *
 * The TOAST relation and its index are opened and closed per value, as
 * detoast_attr does: measured, that is about 1 % of a page's time, and
 * keeping them open across rows would need resource-owner bookkeeping that
 * survives errors and subtransaction aborts.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/heaptoast.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/toast_internals.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "toast_stream.h"

bool		toast_stream_walk = true;

/* One out-of-line value being read from its TOAST table. */
typedef struct ToastRead
{
	ToastFeed	feed;			/* where the bytes go, in order */
	void	   *arg;
	int32		extsize;		/* stored bytes of the value */
	Relation	rel;			/* the TOAST table (heap) */
	Relation	index;			/* its valid index on (chunk_id, chunk_seq) */
	TupleDesc	tupdesc;
	Snapshot	snapshot;		/* the TOAST snapshot, as detoasting uses */
	Oid			valueid;
	int32		totalchunks;
	Buffer		lastbuf;		/* the page last prefetched by the index path */
} ToastRead;

/*
 * PrefetchPage
 *		Ask for every cache line of a TOAST page at once: it holds the next
 *		chunks too, so that their copies overlap with each other instead of
 *		waiting for memory one after another.
 */
static inline void
PrefetchPage(Page page)
{
	const char *p = (const char *) page;
	Size		off;

	for (off = 0; off < BLCKSZ; off += 64)
		__builtin_prefetch(p + off, 0, 3);
}

/*
 * ChunkExpectedSize
 *		The size chunk `seq` of the value must have.
 */
static inline int32
ChunkExpectedSize(const ToastRead *tr, int32 seq)
{
	return seq < tr->totalchunks - 1 ? TOAST_MAX_CHUNK_SIZE :
		tr->extsize - (tr->totalchunks - 1) * TOAST_MAX_CHUNK_SIZE;
}

/*
 * ChunkBytes
 *		The data and length of a stored chunk (plain or short varlena);
 *		false for a chunk that is itself toasted, which a TOAST table never
 *		holds.
 */
static inline bool
ChunkBytes(Pointer chunk, const char **data, int32 *len)
{
	if (!VARATT_IS_EXTENDED(chunk))
	{
		*len = VARSIZE(chunk) - VARHDRSZ;
		*data = VARDATA(chunk);
		return true;
	}
	if (VARATT_IS_SHORT(chunk))
	{
		*len = VARSIZE_SHORT(chunk) - VARHDRSZ_SHORT;
		*data = VARDATA_SHORT(chunk);
		return true;
	}
	return false;
}

/*
 * BeginChunkScan
 *		An ordered scan of the TOAST index over the value's chunks from chunk
 *		`first` on (the index is on (chunk_id, chunk_seq): chunks come in
 *		order).
 */
static SysScanDesc
BeginChunkScan(ToastRead *tr, int32 first)
{
	ScanKeyData keys[2];
	int			nkeys = 1;

	ScanKeyInit(&keys[0], (AttrNumber) 1, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(tr->valueid));
	if (first > 0)
		ScanKeyInit(&keys[nkeys++], (AttrNumber) 2, BTGreaterEqualStrategyNumber,
					F_INT4GE, Int32GetDatum(first));
	return systable_beginscan_ordered(tr->rel, tr->index, tr->snapshot,
									  nkeys, keys);
}

/*
 * FeedIndexedChunk
 *		Check a chunk returned by the index scan as heap_fetch_toast_slice
 *		does (same errors, in the same order) and feed its bytes.  Returns
 *		the feed's result.
 */
static bool
FeedIndexedChunk(ToastRead *tr, SysScanDesc scan, HeapTuple ttup,
				 int32 expected)
{
	bool		isnull;
	int32		curchunk;
	Pointer		chunk;
	const char *chunkdata;
	int32		chunksize;
	int32		expected_size;
	Buffer		buf;

	curchunk = DatumGetInt32(fastgetattr(ttup, 2, tr->tupdesc, &isnull));
	if (isnull)
		curchunk = -1;
	chunk = DatumGetPointer(fastgetattr(ttup, 3, tr->tupdesc, &isnull));
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("null chunk %d for toast value %u in %s",
								 curchunk, tr->valueid,
								 RelationGetRelationName(tr->rel))));
	if (!ChunkBytes(chunk, &chunkdata, &chunksize))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("found toasted toast chunk for toast value %u in %s",
								 tr->valueid,
								 RelationGetRelationName(tr->rel))));
	if (curchunk != expected || curchunk >= tr->totalchunks)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("unexpected chunk number %d (expected %d) for toast value %u in %s",
								 curchunk, expected, tr->valueid,
								 RelationGetRelationName(tr->rel))));
	expected_size = ChunkExpectedSize(tr, curchunk);
	if (chunksize != expected_size)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("unexpected chunk size %d (expected %d) in chunk %d of %d for toast value %u in %s",
								 chunksize, expected_size, curchunk,
								 tr->totalchunks, tr->valueid,
								 RelationGetRelationName(tr->rel))));
	/* the first chunk read from a TOAST page: prefetch the page */
	buf = ((BufferHeapTupleTableSlot *) scan->slot)->buffer;
	if (BufferIsValid(buf) && buf != tr->lastbuf)
	{
		PrefetchPage(BufferGetPage(buf));
		tr->lastbuf = buf;
	}
	return tr->feed(tr->arg, chunkdata, chunksize);
}

/* A chunk found on a TOAST page by WalkChunks. */
typedef struct WalkedChunk
{
	const char *data;
	int32		len;
} WalkedChunk;

/*
 * Buffers of TOAST blocks read lately, by (relfilenode, block), in a table
 * per backend of as many slots as shared buffers, rounded up to a power of
 * two, from 1,024 to 262,144 (12 bytes each, 3 MB at most; consecutive
 * blocks take consecutive slots).  A slot is only a hint: ReadRecentBuffer
 * pins the buffer only if it still holds that block, which skips the buffer
 * mapping lookup (a shared hash table probe under a partition lock, measured
 * at a fifth of an exact scan's time); any other case reads the block as
 * usual.
 */
#define RECENT_BUFFER_MIN_SLOTS (1 << 10)
#define RECENT_BUFFER_MAX_SLOTS (1 << 18)

typedef struct RecentBuffer
{
	Oid			relnumber;
	BlockNumber blkno;
	Buffer		buffer;
} RecentBuffer;

static RecentBuffer *recent_buffers = NULL;
static uint32 recent_buffer_mask = 0;

/*
 * ReadToastBlock
 *		ReadBuffer(rel, blkno), through the hint of the buffer it was in.
 */
static Buffer
ReadToastBlock(Relation rel, BlockNumber blkno)
{
#if PG_VERSION_NUM >= 160000
	RelFileLocator locator = rel->rd_locator;
	Oid			relnumber = locator.relNumber;
#else
	RelFileNode locator = rel->rd_node;
	Oid			relnumber = locator.relNode;
#endif
	RecentBuffer *slot;
	Buffer		buf;

	if (RelationUsesLocalBuffers(rel))
		return ReadBuffer(rel, blkno);
	if (recent_buffers == NULL)
	{
		uint32		nslots = RECENT_BUFFER_MIN_SLOTS;

		while (nslots < (uint32) NBuffers && nslots < RECENT_BUFFER_MAX_SLOTS)
			nslots <<= 1;
		recent_buffers = MemoryContextAllocZero(TopMemoryContext,
												sizeof(RecentBuffer) * nslots);
		recent_buffer_mask = nslots - 1;
	}
	slot = &recent_buffers[(relnumber * 2654435761U + blkno) & recent_buffer_mask];
	if (slot->buffer != InvalidBuffer && slot->relnumber == relnumber &&
		slot->blkno == blkno &&
		ReadRecentBuffer(locator, MAIN_FORKNUM, blkno, slot->buffer))
		return slot->buffer;
	buf = ReadBuffer(rel, blkno);
	slot->relnumber = relnumber;
	slot->blkno = blkno;
	slot->buffer = buf;
	return buf;
}

/*
 * WalkChunks
 *		Read the value's chunks from *next on by walking the TOAST heap from
 *		the tuple after `after` (the chunk before, found by the index) instead
 *		of asking the index for each chunk.
 *
 * The chunks of a value are inserted one after another, each where the
 * previous one went while it has room: normally on consecutive line pointers
 * of consecutive blocks.  Each block is pinned and share-locked once; its
 * tuples from the expected position on are looked at in line pointer order,
 * and a tuple is taken as chunk k only if its line pointer is normal, it is
 * not a heap-only tuple, its chunk_id is the value's and its chunk_seq is k,
 * it is visible to the TOAST snapshot (the test the index path applies in
 * heap_hot_search_buffer) and its data is an untoasted chunk of exactly the
 * expected size; tuples of other values and invisible ones are passed over.
 * The walk stops at the first chunk that is not on the page where it should
 * be (the next block, searched from its first line pointer, holds none of
 * the value's next chunks) or that fails a check: the index path then finds
 * it (ToastStreamValue may walk on from there) or reports the ERROR it
 * always did.
 * Each chunk read is the one visible tuple of its (chunk_id, chunk_seq),
 * the tuple the index would return.  (What the walk cannot see is damage
 * that only the index shows: a second visible copy of a chunk, which the
 * index path reports as an unexpected chunk number, or a chunk missing from
 * the index.  Neither arises from PostgreSQL's own writes: a value's OID is
 * not reused while any of its chunks exist.)
 *
 * The chunks are fed after the lock is released, with the pin held (as an
 * index scan returns tuples): nothing moves tuples of a pinned page.
 * Advances *next past the chunks fed; returns false when the feed did.
 */
static bool
WalkChunks(ToastRead *tr, ItemPointer after, int32 *next)
{
	BlockNumber blk = ItemPointerGetBlockNumber(after);
	OffsetNumber off = OffsetNumberNext(ItemPointerGetOffsetNumber(after));
	BlockNumber nblocks = InvalidBlockNumber;
	bool		page_start = false;
	Oid			relid = RelationGetRelid(tr->rel);
	WalkedChunk found[MaxHeapTuplesPerPage];

	while (*next < tr->totalchunks)
	{
		Buffer		buf;
		Page		page;
		OffsetNumber maxoff;
		int			nfound = 0;
		bool		stop = false;
		int			i;

		if (page_start && (nblocks == InvalidBlockNumber || blk >= nblocks))
		{
			nblocks = RelationGetNumberOfBlocks(tr->rel);
			if (blk >= nblocks)
				return true;
		}
		buf = ReadToastBlock(tr->rel, blk);
		/* as the index path does on every new block */
		heap_page_prune_opt(tr->rel, buf);
		PrefetchPage(BufferGetPage(buf));
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		maxoff = PageGetMaxOffsetNumber(page);
		for (; off <= maxoff && *next + nfound < tr->totalchunks; off++)
		{
			ItemId		lp = PageGetItemId(page, off);
			HeapTupleData tuple;
			int32		want = *next + nfound;
			bool		isnull;
			Datum		d;
			Pointer		chunk;

			if (!ItemIdIsNormal(lp))
				continue;
			tuple.t_data = (HeapTupleHeader) PageGetItem(page, lp);
			tuple.t_len = ItemIdGetLength(lp);
			tuple.t_tableOid = relid;
			ItemPointerSet(&tuple.t_self, blk, off);
			if (HeapTupleIsHeapOnly(&tuple))
				continue;
			d = heap_getattr(&tuple, 1, tr->tupdesc, &isnull);
			if (isnull || DatumGetObjectId(d) != tr->valueid)
				continue;
			d = heap_getattr(&tuple, 2, tr->tupdesc, &isnull);
			if (isnull || DatumGetInt32(d) != want)
				continue;
			if (!HeapTupleSatisfiesVisibility(&tuple, tr->snapshot, buf))
				continue;
			d = heap_getattr(&tuple, 3, tr->tupdesc, &isnull);
			chunk = DatumGetPointer(d);
			if (isnull ||
				!ChunkBytes(chunk, &found[nfound].data, &found[nfound].len) ||
				found[nfound].len != ChunkExpectedSize(tr, want))
			{
				stop = true;
				break;
			}
			nfound++;
		}
		LockBuffer(buf, BUFFER_LOCK_UNLOCK);
		for (i = 0; i < nfound; i++)
		{
			if (!tr->feed(tr->arg, found[i].data, found[i].len))
			{
				ReleaseBuffer(buf);
				return false;
			}
			(*next)++;
		}
		ReleaseBuffer(buf);
		if (stop || (page_start && nfound == 0))
			break;
		blk++;
		off = FirstOffsetNumber;
		page_start = true;
	}
	return true;
}

/*
 * ToastStreamValue
 *		See toast_stream.h.
 *
 * Chunk 0 comes from the TOAST index; from there the chunks are read by
 * walking the heap (WalkChunks) while they lie where a value written in one
 * go puts them.  The first chunk that does not is looked up in the index,
 * and the walk goes on from it; when two walks in a row find not even the
 * next chunk, the index reads the rest (a value written interleaved with
 * others).
 */
int
ToastStreamValue(const struct varatt_external *tp, ToastFeed feed, void *arg)
{
	ToastRead	tr;
	Relation   *toastidxs;
	int			num_indexes;
	int			validIndex;
	SysScanDesc scan;
	HeapTuple	ttup;
	int32		expected = 0;
	bool		go_on = true;
	bool		walk;
	int			misses = 0;
#if PG_VERSION_NUM < 180000
	SnapshotData SnapshotToast;
#endif

	memset(&tr, 0, sizeof(tr));
	tr.feed = feed;
	tr.arg = arg;
	tr.extsize = VARATT_EXTERNAL_GET_EXTSIZE(*tp);
	tr.rel = table_open(tp->va_toastrelid, AccessShareLock);
	if (tr.rel->rd_tableam != GetHeapamTableAmRoutine())
	{
		table_close(tr.rel, AccessShareLock);
		return -1;
	}
	tr.tupdesc = RelationGetDescr(tr.rel);
	tr.valueid = tp->va_valueid;
	tr.totalchunks = ((tr.extsize - 1) / TOAST_MAX_CHUNK_SIZE) + 1;
	tr.lastbuf = InvalidBuffer;
	validIndex = toast_open_indexes(tr.rel, AccessShareLock, &toastidxs,
									&num_indexes);
	tr.index = toastidxs[validIndex];
#if PG_VERSION_NUM >= 180000
	tr.snapshot = get_toast_snapshot();
#else
	init_toast_snapshot(&SnapshotToast);
	tr.snapshot = &SnapshotToast;
#endif
	scan = BeginChunkScan(&tr, 0);
	walk = toast_stream_walk;
	while (go_on &&
		   (ttup = systable_getnext_ordered(scan, ForwardScanDirection)) != NULL)
	{
		go_on = FeedIndexedChunk(&tr, scan, ttup, expected);
		expected++;
		if (go_on && walk && expected < tr.totalchunks)
		{
			ItemPointerData from = ttup->t_self;
			int32		walked_from = expected;

			go_on = WalkChunks(&tr, &from, &expected);
			if (!go_on)
				break;
			if (expected == walked_from)
			{
				/*
				 * The index gives the next chunk, and the walk tries again
				 * from it; twice in a row nothing: the chunks are not laid
				 * out for a walk (written interleaved), the index reads the
				 * rest.
				 */
				if (++misses >= 2)
					walk = false;
				continue;
			}
			misses = 0;

			/*
			 * The index finds the chunk after the last one walked, and the
			 * walk goes on from there; past the last chunk it still looks for
			 * stray ones, as reading the value through the index would.
			 */
			systable_endscan_ordered(scan);
			scan = BeginChunkScan(&tr, expected);
		}
	}
	if (go_on && expected != tr.totalchunks)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("missing chunk number %d for toast value %u in %s",
								 expected, tr.valueid,
								 RelationGetRelationName(tr.rel))));
	systable_endscan_ordered(scan);
	toast_close_indexes(toastidxs, num_indexes, AccessShareLock);
	table_close(tr.rel, AccessShareLock);
	return go_on ? 1 : 0;
}

