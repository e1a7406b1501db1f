/*
 * recent_buffer.h
 *	  ReadBuffer through a per-backend hint of the buffer each block was in
 *	  (src/recent_buffer.c), for the blocks an exact scan or an mvivf scan
 *	  reads again and again: TOAST pages of stored documents, the index's
 *	  forward and document-list pages.
 */
#ifndef RECENT_BUFFER_H
#define RECENT_BUFFER_H

#include "postgres.h"

#include "storage/bufmgr.h"
#include "utils/rel.h"

/*
 * ReadBufferRecent
 *		ReadBuffer(rel, blkno), skipping the shared buffer-mapping lookup
 *		when the block is still in the buffer it was in when this backend
 *		last read it.
 */
extern Buffer ReadBufferRecent(Relation rel, BlockNumber blkno);

/*
 * ReadBufferIfRecent
 *		The block pinned through the hint alone, or InvalidBuffer (the block
 *		is not where this backend last found it, or was never read).  A
 *		buffer returned holds the block of the relation's current file, so
 *		the block exists: truncation drops the buffers of the blocks it
 *		removes, and cannot run while the caller holds a lock on the
 *		relation.
 */
extern Buffer ReadBufferIfRecent(Relation rel, BlockNumber blkno);

/*
 * RecentBufferHint
 *		The shared buffer that held (rel, blkno) when this backend last read
 *		it, or InvalidBuffer; not pinned, so a hint only (the buffer may hold
 *		another block by now): good for prefetching its bytes, not for
 *		reading them.
 */
extern Buffer RecentBufferHint(Relation rel, BlockNumber blkno);

#endif							/* RECENT_BUFFER_H */
