/*
 * toast_stream.c
 *	  Reading an out-of-line TOAST value chunk by chunk, in order, without
 *	  assembling it.
 *
 * PostgreSQL's reader (heap_fetch_toast_slice) asks the TOAST index for
 * every chunk: an index step, then a heap fetch with its buffer mapping
 * lookup, pin, share lock, HOT-chain search and unlock per 2 kB chunk (about
 * 264 of them for a 527 kB ColPali page).  Here chunk 0 is looked for
 * behind the previous value read (WalkFromHint), else found through the
 * index, and the heap is walked from there block by block, one pin and one
 * share lock per block, while the chunks lie where a value written in one go
 * puts them (WalkChunks: consecutive line pointers of consecutive blocks,
 * other values' tuples passed over).  The first chunk that does not is
 * looked for behind recent values' last chunks (WalkFromLastChunks), else
 * found through the index, and the walk resumes after it, unless walks keep
 * finding nothing (a value written interleaved with another): then the index
 * reads the rest.  Every chunk is checked as heap_fetch_toast_slice checks
 * it, and anything unexpected (a missing, misnumbered or missized chunk) is
 * left to the index path, so the ERRORs are those of detoasting.  Blocks are
 * pinned through a per-backend hint of the buffer each was in
 * (recent_buffer.c).
 *
 * The TOAST relation is opened and closed per value, as detoast_attr does
 * (keeping it open across rows would need resource-owner bookkeeping that
 * survives errors and subtransaction aborts), and its index only when a
 * chunk is asked of it: a value the walks read whole needs none.
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

#include "recent_buffer.h"
#include "toast_stream.h"

bool		toast_stream_walk = true;

/* One out-of-line value being read from its TOAST table. */
typedef struct ToastRead
{
	ToastFeed	feed;			/* where the bytes go, in order */
	void	   *arg;
	int32		extsize;		/* stored bytes of the value */
	Relation	rel;			/* the TOAST table (heap) */
	Relation	index;			/* its valid index on (chunk_id, chunk_seq), once
								 * opened (BeginChunkScan) */
	Relation   *indexes;		/* all its indexes, as toast_open_indexes gives */
	int			nindexes;
	TupleDesc	tupdesc;
	Snapshot	snapshot;		/* the TOAST snapshot, as detoasting uses */
	Oid			valueid;
	int32		totalchunks;
	Buffer		lastbuf;		/* the page last prefetched by the index path */
	BlockNumber nblocks;		/* blocks of the TOAST table, once looked up */
	ItemPointerData furthest;	/* the chunk fed that lies furthest on */
	ItemPointerData lastfed;	/* where the last chunk fed lies */
	ItemPointerData firstfed;	/* where the first chunk fed (chunk 0) lies */
	struct ValuePosition *position; /* where the value lay when last read,
									 * or NULL */
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

	/* opened on first use: a value the walks read whole needs no index */
	if (tr->index == NULL)
	{
		int			valid = toast_open_indexes(tr->rel, AccessShareLock,
											   &tr->indexes, &tr->nindexes);

		tr->index = tr->indexes[valid];
	}

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

/*
 * NoteChunkPosition
 *		Remember where the last chunk fed lies, and where it lies if it is
 *		further on in the TOAST heap than every other so far: the next value
 *		written after this one begins behind it (a value's small last chunk
 *		often went into free space of an earlier block).
 */
static inline void
NoteChunkPosition(ToastRead *tr, BlockNumber blk, OffsetNumber off)
{
	ItemPointerSet(&tr->lastfed, blk, off);
	if (!ItemPointerIsValid(&tr->firstfed))
		ItemPointerSet(&tr->firstfed, blk, off);
	if (!ItemPointerIsValid(&tr->furthest) ||
		blk > ItemPointerGetBlockNumber(&tr->furthest) ||
		(blk == ItemPointerGetBlockNumber(&tr->furthest) &&
		 off > ItemPointerGetOffsetNumber(&tr->furthest)))
		ItemPointerSet(&tr->furthest, blk, off);
}

/* A chunk found on a TOAST page by WalkChunks. */
typedef struct WalkedChunk
{
	const char *data;
	int32		len;
	OffsetNumber off;
} WalkedChunk;

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
 * With `guess` (the walk starts where the chunk may lie, not behind the one
 * before it), a first block that holds none of the chunks ends the walk.
 *
 * The chunks are fed after the lock is released, with the pin held (as an
 * index scan returns tuples): nothing moves tuples of a pinned page.
 * Advances *next past the chunks fed; returns false when the feed did.
 */
static bool
WalkChunks(ToastRead *tr, ItemPointer after, int32 *next, bool guess)
{
	BlockNumber blk = ItemPointerGetBlockNumber(after);
	OffsetNumber off = OffsetNumberNext(ItemPointerGetOffsetNumber(after));
	bool		page_start = false;
	Oid			relid = RelationGetRelid(tr->rel);
	WalkedChunk found[MaxHeapTuplesPerPage];

	while (*next < tr->totalchunks)
	{
		Buffer		buf = InvalidBuffer;
		Page		page;
		OffsetNumber maxoff;
		int			nfound = 0;
		bool		stop = false;
		int			i;

		/* past the blocks known to exist: does this one? */
		if (page_start && (tr->nblocks == InvalidBlockNumber || blk >= tr->nblocks))
		{
			buf = ReadBufferIfRecent(tr->rel, blk);
			if (buf == InvalidBuffer)
			{
				tr->nblocks = RelationGetNumberOfBlocks(tr->rel);
				if (blk >= tr->nblocks)
					return true;
			}
		}
		if (buf == InvalidBuffer)
			buf = ReadBufferRecent(tr->rel, blk);
		/* as the index path does on every new block */
		heap_page_prune_opt(tr->rel, buf);
		/* (a guessed block may hold nothing of the value: not all of it) */
		if (!guess || page_start)
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
			found[nfound].off = off;
			nfound++;
		}
		LockBuffer(buf, BUFFER_LOCK_UNLOCK);

		/*
		 * The next block's bytes, from the buffer it was in when this backend
		 * last read it, come in while this block's chunks are copied and
		 * scored (an exact scan's table seldom fits the CPU caches: 22 % off
		 * its time on 1,000 ColPali pages on an AMD EPYC, bench/RESULTS.md).
		 */
		if (*next + nfound < tr->totalchunks)
		{
			Buffer		hint = RecentBufferHint(tr->rel, blk + 1);

			if (BufferIsValid(hint))
				PrefetchPage(BufferGetPage(hint));
		}
		for (i = 0; i < nfound; i++)
		{
			if (!tr->feed(tr->arg, found[i].data, found[i].len))
			{
				ReleaseBuffer(buf);
				return false;
			}
			NoteChunkPosition(tr, blk, found[i].off);
			(*next)++;
		}
		ReleaseBuffer(buf);
		if (stop || ((page_start || guess) && nfound == 0))
			break;
		blk++;
		off = FirstOffsetNumber;
		page_start = true;
	}
	return true;
}

/*
 * Where the next value of a TOAST table is likely to begin: the tuple after
 * the chunk of the last value read from it that lies furthest on.  A
 * sequential scan of a table loaded in order reads its values in the order
 * their chunks were written, so chunk 0 of the next value normally lies
 * right behind the previous value's furthest chunk, and the walk can find it
 * without the TOAST index.  A few TOAST
 * tables (those of a join, or two columns) are remembered at once; where
 * guesses keep missing (values read in another order, as a rerank reads
 * them), guessing rests for a while.  A guess is only where the walk starts
 * looking: what it takes as chunk 0 passes the checks every walked chunk
 * passes.
 */
#define NEXT_VALUE_SLOTS	4
#define NEXT_VALUE_MISSES	4	/* misses in a row before a rest */
#define NEXT_VALUE_REST		64	/* values read without guessing then */
#define LAST_CHUNK_SLOTS	8

/* How a kind of guess has fared lately: it rests after misses in a row. */
typedef struct GuessRecord
{
	int			misses;
	int			rest;			/* values left to read without guessing */
} GuessRecord;

/* Whether to guess now (a resting guess counts down a value). */
static inline bool
GuessMayTry(GuessRecord *g)
{
	if (g->rest > 0)
	{
		g->rest--;
		return false;
	}
	return true;
}

/* Record a guess's outcome: NEXT_VALUE_MISSES misses in a row, a rest. */
static inline void
GuessOutcome(GuessRecord *g, bool hit)
{
	if (hit)
		g->misses = 0;
	else if (++g->misses >= NEXT_VALUE_MISSES)
	{
		g->misses = 0;
		g->rest = NEXT_VALUE_REST;
	}
}

typedef struct NextValueHint
{
	Oid			toastrelid;
	ItemPointerData after;		/* the furthest chunk of the last value read */
	GuessRecord nextGuess;		/* chunk 0 behind `after` */

	/*
	 * Where the last chunks of the last values read lie, the oldest at
	 * lastchunk_next.  A value's last chunk is smaller than the others and is
	 * often put into free space of an earlier block: the free space map
	 * hands out a few such blocks in turn, so that it goes just behind the
	 * last chunk of a value read a few values before.
	 */
	ItemPointerData lastchunks[LAST_CHUNK_SLOTS];
	int			lastchunk_next;
	GuessRecord lastGuess;		/* a displaced chunk behind those */
} NextValueHint;

static NextValueHint next_value[NEXT_VALUE_SLOTS];
static int	next_value_victim = 0;

/*
 * NextValueSlot
 *		The hint of TOAST table `toastrelid`, or NULL; a new slot with
 *		`create`.
 */
static NextValueHint *
NextValueSlot(Oid toastrelid, bool create)
{
	NextValueHint *slot;
	int			i;

	for (i = 0; i < NEXT_VALUE_SLOTS; i++)
		if (next_value[i].toastrelid == toastrelid)
			return &next_value[i];
	if (!create)
		return NULL;
	slot = &next_value[next_value_victim];
	next_value_victim = (next_value_victim + 1) % NEXT_VALUE_SLOTS;
	memset(slot, 0, sizeof(*slot));
	slot->toastrelid = toastrelid;
	ItemPointerSetInvalid(&slot->after);
	for (i = 0; i < LAST_CHUNK_SLOTS; i++)
		ItemPointerSetInvalid(&slot->lastchunks[i]);
	return slot;
}

/*
 * BlockStillThere
 *		Whether block blk of the TOAST table exists.  The table's lock was
 *		released after the value the block was remembered from: VACUUM may
 *		have truncated it since.  A block still in the buffer it was in
 *		exists (recent_buffer.h); any other is checked against the table's
 *		size, looked up once per value.
 */
static bool
BlockStillThere(ToastRead *tr, BlockNumber blk)
{
	Buffer		buf;

	if (tr->nblocks != InvalidBlockNumber && blk < tr->nblocks)
		return true;
	buf = ReadBufferIfRecent(tr->rel, blk);
	if (buf != InvalidBuffer)
	{
		ReleaseBuffer(buf);
		return true;
	}
	tr->nblocks = RelationGetNumberOfBlocks(tr->rel);
	return blk < tr->nblocks;
}

/*
 * Where the first and the last chunk of values read lately lie, by (TOAST
 * table, value): a value read again, as a rerank reads a page that an
 * earlier scan of the session read, starts where its chunk 0 lay and finds
 * a displaced last chunk where it lay, without the TOAST index.  Only a
 * hint, checked as every walked chunk is (another value may have the slot,
 * or the value's OID may have been reused since).  20 bytes a slot.
 */
#define VALUE_POSITION_SLOTS	(1 << 14)

typedef struct ValuePosition
{
	Oid			toastrelid;
	Oid			valueid;
	ItemPointerData first;		/* chunk 0 */
	ItemPointerData last;		/* the last chunk */
} ValuePosition;

static ValuePosition *value_positions = NULL;

/* The slot of (TOAST table, value). */
static inline ValuePosition *
ValuePositionSlot(Oid toastrelid, Oid valueid)
{
	return &value_positions[(valueid * 2654435761U ^ toastrelid) &
							(VALUE_POSITION_SLOTS - 1)];
}

/*
 * ValuePositionOf
 *		The remembered positions of the value, or NULL.
 */
static ValuePosition *
ValuePositionOf(Oid toastrelid, Oid valueid)
{
	ValuePosition *vp;

	if (value_positions == NULL)
		return NULL;
	vp = ValuePositionSlot(toastrelid, valueid);
	return vp->toastrelid == toastrelid && vp->valueid == valueid ? vp : NULL;
}

/*
 * RememberValuePosition
 *		Keep where the first and the last chunk of a value read whole lie.
 */
static void
RememberValuePosition(ToastRead *tr)
{
	Oid			toastrelid = RelationGetRelid(tr->rel);
	ValuePosition *vp;

	if (value_positions == NULL)
		value_positions = MemoryContextAllocZero(TopMemoryContext,
												 sizeof(ValuePosition) * VALUE_POSITION_SLOTS);
	vp = ValuePositionSlot(toastrelid, tr->valueid);
	vp->toastrelid = toastrelid;
	vp->valueid = tr->valueid;
	vp->first = tr->firstfed;
	vp->last = tr->lastfed;
}

/*
 * WalkFromPosition
 *		Look for chunk *next at `pos` and behind it on its block, and walk on
 *		from there; advances *next past the chunks fed, returns false when
 *		the feed stopped the read.
 */
static bool
WalkFromPosition(ToastRead *tr, ItemPointer pos, int32 *next)
{
	ItemPointerData after;

	if (!ItemPointerIsValid(pos) ||
		!BlockStillThere(tr, ItemPointerGetBlockNumber(pos)))
		return true;
	/* WalkChunks looks from the line pointer after `after` */
	ItemPointerSetBlockNumber(&after, ItemPointerGetBlockNumber(pos));
	ItemPointerSetOffsetNumber(&after, ItemPointerGetOffsetNumber(pos) - 1);
	return WalkChunks(tr, &after, next, true);
}

/*
 * WalkFromLastChunks
 *		The walk stopped at chunk *next: look for it behind the last chunks
 *		of the last values read (oldest first, each in its block only), and
 *		walk on from where it is.  Where that keeps failing (values read in
 *		another order than their layout), it rests as WalkFromHint does.
 *		Advances *next past the chunks fed; returns false when the feed
 *		stopped the read.
 */
static bool
WalkFromLastChunks(ToastRead *tr, int32 *next)
{
	NextValueHint *hint = NextValueSlot(RelationGetRelid(tr->rel), false);
	int			i;

	if (hint == NULL || !GuessMayTry(&hint->lastGuess))
		return true;
	for (i = 0; i < LAST_CHUNK_SLOTS; i++)
	{
		ItemPointerData after =
			hint->lastchunks[(hint->lastchunk_next + i) % LAST_CHUNK_SLOTS];
		int32		from = *next;

		if (!ItemPointerIsValid(&after) ||
			!BlockStillThere(tr, ItemPointerGetBlockNumber(&after)))
			continue;
		if (!WalkChunks(tr, &after, next, true))
			return false;
		if (*next > from)
		{
			GuessOutcome(&hint->lastGuess, true);
			return true;
		}
	}
	GuessOutcome(&hint->lastGuess, false);
	return true;
}

/*
 * WalkFromGuesses
 *		The walk stopped at chunk *next of a value: look for it where the
 *		value's last chunk lay when it was last read, then behind the last
 *		chunks of recent values.  Advances *next past the chunks fed;
 *		returns false when the feed stopped the read.
 */
static bool
WalkFromGuesses(ToastRead *tr, int32 *next)
{
	int32		from = *next;

	if (tr->position != NULL && !WalkFromPosition(tr, &tr->position->last, next))
		return false;
	if (*next > from || *next >= tr->totalchunks)
		return true;
	return WalkFromLastChunks(tr, next);
}

/*
 * RememberValueEnd
 *		A value was read to its end: where the next value and later last
 *		chunks are likely to lie.
 */
static void
RememberValueEnd(ToastRead *tr)
{
	NextValueHint *hint = NextValueSlot(RelationGetRelid(tr->rel), true);

	hint->after = tr->furthest;
	hint->lastchunks[hint->lastchunk_next] = tr->lastfed;
	hint->lastchunk_next = (hint->lastchunk_next + 1) % LAST_CHUNK_SLOTS;
	RememberValuePosition(tr);
}

/*
 * WalkFromHint
 *		Look for the value's first chunks where the hint says the next value
 *		begins (the rest of that block and the next one); advances *next
 *		past the chunks fed, returns false when the feed stopped the read.
 */
static bool
WalkFromHint(ToastRead *tr, int32 *next)
{
	NextValueHint *hint = NextValueSlot(RelationGetRelid(tr->rel), false);
	ItemPointerData after;
	bool		go_on;

	if (hint == NULL || !ItemPointerIsValid(&hint->after) ||
		!GuessMayTry(&hint->nextGuess))
		return true;
	after = hint->after;
	if (!BlockStillThere(tr, ItemPointerGetBlockNumber(&after)))
		return true;
	go_on = WalkChunks(tr, &after, next, false);
	GuessOutcome(&hint->nextGuess, *next > 0);
	return go_on;
}

/*
 * ToastStreamValue
 *		See toast_stream.h.
 *
 * Chunk 0 is looked for where the previous value of the TOAST table ended
 * (WalkFromHint), else asked of the TOAST index; from there the chunks are
 * read by walking the heap (WalkChunks) while they lie where a value written
 * in one go puts them.  The first chunk that does not is looked for behind
 * the last chunks of recent values (WalkFromLastChunks), else looked up in
 * the index, and the walk goes on from it; when two walks in a row find not
 * even the next chunk, the index reads the rest (a value written interleaved
 * with others).  A value read to its last chunk by walks is not followed by
 * an index search for chunks past its end (which only damage could leave), as
 * a slice of it read by PostgreSQL would not be; where the index reads to the
 * end, it reports them as detoasting does.
 */
int
ToastStreamValue(const struct varatt_external *tp, ToastFeed feed, void *arg)
{
	ToastRead	tr;
	SysScanDesc scan = NULL;
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
	tr.nblocks = InvalidBlockNumber;
	ItemPointerSetInvalid(&tr.furthest);
	ItemPointerSetInvalid(&tr.lastfed);
	ItemPointerSetInvalid(&tr.firstfed);
#if PG_VERSION_NUM >= 180000
	tr.snapshot = get_toast_snapshot();
#else
	init_toast_snapshot(&SnapshotToast);
	tr.snapshot = &SnapshotToast;
#endif
	walk = toast_stream_walk;
	if (walk)
	{
		/* where the value began when last read, else behind the last value */
		tr.position = ValuePositionOf(RelationGetRelid(tr.rel), tr.valueid);
		if (tr.position != NULL)
			go_on = WalkFromPosition(&tr, &tr.position->first, &expected);
		if (go_on && expected == 0)
			go_on = WalkFromHint(&tr, &expected);
		if (go_on && expected > 0 && expected < tr.totalchunks)
			go_on = WalkFromGuesses(&tr, &expected);
	}
	if (go_on && expected < tr.totalchunks)
		scan = BeginChunkScan(&tr, expected);
	while (scan != NULL && go_on &&
		   (ttup = systable_getnext_ordered(scan, ForwardScanDirection)) != NULL)
	{
		go_on = FeedIndexedChunk(&tr, scan, ttup, expected);
		NoteChunkPosition(&tr, ItemPointerGetBlockNumber(&ttup->t_self),
						  ItemPointerGetOffsetNumber(&ttup->t_self));
		expected++;
		if (go_on && walk && expected < tr.totalchunks)
		{
			ItemPointerData from = ttup->t_self;
			int32		walked_from = expected;

			go_on = WalkChunks(&tr, &from, &expected, false);
			if (go_on && expected > walked_from && expected < tr.totalchunks)
				go_on = WalkFromGuesses(&tr, &expected);
			if (!go_on || expected == tr.totalchunks)
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

			/* the index finds the chunk after the last one walked */
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
	if (go_on && ItemPointerIsValid(&tr.furthest))
		RememberValueEnd(&tr);
	if (scan != NULL)
		systable_endscan_ordered(scan);
	if (tr.index != NULL)
		toast_close_indexes(tr.indexes, tr.nindexes, AccessShareLock);
	table_close(tr.rel, AccessShareLock);
	return go_on ? 1 : 0;
}
