/*
 * recent_buffer.c
 *	  ReadBuffer through a per-backend hint of the buffer each block was in.
 *
 * ReadBuffer finds a block's buffer through the shared buffer-mapping hash
 * table: a hash of the buffer tag and a probe under a partition lock, with
 * cache misses on a table of one entry per shared buffer.  Measured, that
 * lookup was a fifth of an exact scan's time reading TOAST pages, and a
 * tenth of an mvivf scan's reading its forward pages.  Blocks read again
 * (every query of a session reads the same pages) are therefore pinned
 * through a per-backend table of the buffer each block was in, by
 * (relfilenode, block): as many slots as shared buffers, rounded up to a
 * power of two, from 1,024 to 4M (12 bytes each).  The table is anonymous
 * memory that the kernel zeroes page by page when first touched, so a
 * backend holds only the pages of the slots it used: about one 4 kB page per
 * 340 consecutive blocks read, however large shared_buffers is.  (Capped at
 * 3 MB, it could not hold the blocks of a 10,000-page table's TOAST, 660,000
 * of them, and buffer-mapping lookups took 7 % of an mvivf scan there.)
 *
 * Each relation gets its own range of consecutive slots, one per block,
 * handed out in the order relations are first read (RelationBase), so that
 * the blocks of the relations a session reads in turn do not evict each
 * other's hints while they fit in the table.  A slot taken from a hash of
 * the relation number instead put the ranges of two relations on top of
 * each other at random: two TOAST tables of 66,000 and 33,000 blocks read
 * in alternation shared every slot of the smaller one, and both scans lost
 * 15-20 % to buffer-mapping lookups.
 *
 * A slot is only a hint: ReadRecentBuffer pins the buffer only if it still
 * holds that block, and any other case reads the block as usual.
 */
#include "postgres.h"

#include <sys/mman.h>

#include "miscadmin.h"

#include "recent_buffer.h"

/* the relation's file: its locator and relfilenode number */
#if PG_VERSION_NUM >= 160000
#define REL_LOCATOR(rel)	((rel)->rd_locator)
#define REL_NUMBER(rel)		((rel)->rd_locator.relNumber)
#else
#define REL_LOCATOR(rel)	((rel)->rd_node)
#define REL_NUMBER(rel)		((rel)->rd_node.relNode)
#endif

#define RECENT_BUFFER_MIN_SLOTS (1 << 10)
#define RECENT_BUFFER_MAX_SLOTS (1 << 22)

typedef struct RecentBuffer
{
	Oid			relnumber;
	BlockNumber blkno;
	Buffer		buffer;
} RecentBuffer;

/* where the slots of one relation start */
typedef struct RelationRange
{
	Oid			relnumber;
	uint32		base;
	uint32		nslots;			/* slots set aside */
} RelationRange;

#define RELATION_RANGES 256		/* relations remembered; a power of two */
#define RELATION_PROBES 8		/* entries looked at for one relation */
#define RELATION_RANGE_MIN 256	/* slots set aside for a small relation */

static RecentBuffer *recent_buffers = NULL;
static uint32 recent_buffer_mask = 0;
static RelationRange relation_ranges[RELATION_RANGES];
static uint32 next_range_base = 0;
static RelationRange *last_range = NULL;

/*
 * RelationBase
 *		The first slot of rel's range, which holds block blkno.  A relation
 *		seen for the first time (or again after another one took its entry,
 *		or read past its range after it grew) gets the slots after the last
 *		range handed out: its current size and a quarter more for growth, at
 *		least RELATION_RANGE_MIN.  Once the ranges go round the
 *		table, new ones overlap the oldest, which costs hints, not
 *		correctness.  Entries are found by linear probing, so that two
 *		relations a session reads in turn do not take each other's entry
 *		(each would get a new range at every switch): a relation replaces
 *		another only when the RELATION_PROBES entries it may use are taken.
 */
static uint32
RelationBase(Relation rel, Oid relnumber, BlockNumber blkno)
{
	uint32		home;
	RelationRange *range = NULL;
	BlockNumber nblocks;
	int			i;

	if (last_range != NULL && last_range->relnumber == relnumber &&
		blkno < last_range->nslots)
		return last_range->base;
	home = (relnumber * 2654435761U) >> 24;
	for (i = 0; i < RELATION_PROBES; i++)
	{
		RelationRange *r = &relation_ranges[(home + i) & (RELATION_RANGES - 1)];

		if (r->relnumber == relnumber)
		{
			range = r;
			break;
		}
		if (r->relnumber == InvalidOid && range == NULL)
			range = r;
	}
	if (range == NULL)
		range = &relation_ranges[home & (RELATION_RANGES - 1)];
	if (range->relnumber != relnumber || blkno >= range->nslots)
	{
		nblocks = Max(RelationGetNumberOfBlocks(rel), blkno + 1);
		range->relnumber = relnumber;
		range->base = next_range_base;
		range->nslots = Max(nblocks + nblocks / 4, RELATION_RANGE_MIN);
		next_range_base += range->nslots;
	}
	last_range = range;
	return range->base;
}

/*
 * RecentSlot
 *		The hint slot of (rel, blkno), the table allocated on first use.
 */
static RecentBuffer *
RecentSlot(Relation rel, Oid relnumber, BlockNumber blkno)
{
	if (recent_buffers == NULL)
	{
		uint32		nslots = RECENT_BUFFER_MIN_SLOTS;
		void	   *table;

		while (nslots < (uint32) NBuffers && nslots < RECENT_BUFFER_MAX_SLOTS)
			nslots <<= 1;
		/* never unmapped: the table lives as long as the backend */
		table = mmap(NULL, sizeof(RecentBuffer) * nslots, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (table == MAP_FAILED)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("Failed to map %zu bytes of buffer hints.",
							   sizeof(RecentBuffer) * nslots)));
		recent_buffers = table;
		recent_buffer_mask = nslots - 1;
	}
	return &recent_buffers[(RelationBase(rel, relnumber, blkno) + blkno) & recent_buffer_mask];
}

/*
 * HintedBuffer
 *		The buffer (rel, blkno) was in when this backend last read it, or
 *		InvalidBuffer; *slot is its hint slot.
 */
static Buffer
HintedBuffer(Relation rel, BlockNumber blkno, RecentBuffer **slot)
{
	Oid			relnumber = REL_NUMBER(rel);

	*slot = RecentSlot(rel, relnumber, blkno);
	if ((*slot)->relnumber == relnumber && (*slot)->blkno == blkno)
		return (*slot)->buffer;
	return InvalidBuffer;
}

/*
 * PinIfRecent
 *		The block pinned through its hint slot (*slot), or InvalidBuffer.
 */
static Buffer
PinIfRecent(Relation rel, BlockNumber blkno, RecentBuffer **slot)
{
	Buffer		buf = HintedBuffer(rel, blkno, slot);

	if (buf != InvalidBuffer &&
		ReadRecentBuffer(REL_LOCATOR(rel), MAIN_FORKNUM, blkno, buf))
		return buf;
	return InvalidBuffer;
}

/*
 * RecentBufferHint
 *		See recent_buffer.h.
 */
Buffer
RecentBufferHint(Relation rel, BlockNumber blkno)
{
	RecentBuffer *slot;

	if (RelationUsesLocalBuffers(rel))
		return InvalidBuffer;
	return HintedBuffer(rel, blkno, &slot);
}

/*
 * ReadBufferIfRecent
 *		See recent_buffer.h.
 */
Buffer
ReadBufferIfRecent(Relation rel, BlockNumber blkno)
{
	RecentBuffer *slot;

	if (RelationUsesLocalBuffers(rel))
		return InvalidBuffer;
	return PinIfRecent(rel, blkno, &slot);
}

/*
 * ReadBufferRecent
 *		See recent_buffer.h.
 */
Buffer
ReadBufferRecent(Relation rel, BlockNumber blkno)
{
	RecentBuffer *slot;
	Buffer		buf;

	if (RelationUsesLocalBuffers(rel))
		return ReadBuffer(rel, blkno);
	buf = PinIfRecent(rel, blkno, &slot);
	if (buf != InvalidBuffer)
		return buf;
	buf = ReadBuffer(rel, blkno);
	slot->relnumber = REL_NUMBER(rel);
	slot->blkno = blkno;
	slot->buffer = buf;
	return buf;
}
