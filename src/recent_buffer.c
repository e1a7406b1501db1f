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
 * power of two, from 1,024 to 262,144 (12 bytes each, 3 MB at most;
 * consecutive blocks take consecutive slots).  A slot is only a hint:
 * ReadRecentBuffer pins the buffer only if it still holds that block, and
 * any other case reads the block as usual.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "recent_buffer.h"

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
 * RecentSlot
 *		The hint slot of (rel, blkno), the table allocated on first use.
 */
static RecentBuffer *
RecentSlot(Oid relnumber, BlockNumber blkno)
{
	if (recent_buffers == NULL)
	{
		uint32		nslots = RECENT_BUFFER_MIN_SLOTS;

		while (nslots < (uint32) NBuffers && nslots < RECENT_BUFFER_MAX_SLOTS)
			nslots <<= 1;
		recent_buffers = MemoryContextAllocZero(TopMemoryContext,
												sizeof(RecentBuffer) * nslots);
		recent_buffer_mask = nslots - 1;
	}
	return &recent_buffers[(relnumber * 2654435761U + blkno) & recent_buffer_mask];
}

/*
 * ReadBufferIfRecent
 *		See recent_buffer.h.
 */
Buffer
ReadBufferIfRecent(Relation rel, BlockNumber blkno)
{
#if PG_VERSION_NUM >= 160000
	RelFileLocator locator = rel->rd_locator;
	Oid			relnumber = locator.relNumber;
#else
	RelFileNode locator = rel->rd_node;
	Oid			relnumber = locator.relNode;
#endif
	RecentBuffer *slot;

	if (RelationUsesLocalBuffers(rel))
		return InvalidBuffer;
	slot = RecentSlot(relnumber, blkno);
	if (slot->buffer != InvalidBuffer && slot->relnumber == relnumber &&
		slot->blkno == blkno &&
		ReadRecentBuffer(locator, MAIN_FORKNUM, blkno, slot->buffer))
		return slot->buffer;
	return InvalidBuffer;
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
	buf = ReadBufferIfRecent(rel, blkno);
	if (buf != InvalidBuffer)
		return buf;
	buf = ReadBuffer(rel, blkno);
#if PG_VERSION_NUM >= 160000
	slot = RecentSlot(rel->rd_locator.relNumber, blkno);
	slot->relnumber = rel->rd_locator.relNumber;
#else
	slot = RecentSlot(rel->rd_node.relNode, blkno);
	slot->relnumber = rel->rd_node.relNode;
#endif
	slot->blkno = blkno;
	slot->buffer = buf;
	return buf;
}
