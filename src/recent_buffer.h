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

#endif							/* RECENT_BUFFER_H */
