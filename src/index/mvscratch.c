/*
 * mvscratch.c
 *	  Large per-scan arrays of mvivf kept for the next scan of the backend.
 *
 * A scan allocates arrays in proportion to the centroids and the documents
 * of the index (the centroid scores of the query, the probe's columns and
 * accumulators, the candidates): at 10,000 ColPali pages some 8 MB, at
 * 50,000 pages of 100 rows some 12 MB.  palloc hands chunks that large to
 * malloc, and glibc gives them back to the kernel when the scan frees them
 * (munmap, or a trim of the heap's top), so every scan faulted its arrays
 * in again page by page: 800 faults a query at 10,000 pages, 1,500 at
 * 50,000 (about 2 us each on the machine of bench/RESULTS.md; a fifth of
 * the scan's CPU time at 50,000).  Here such arrays come from a few blocks
 * the backend keeps (at most MVIVF_SCRATCH_KEEP bytes in all), each lent to
 * one array at a time and taken back when the memory context it was lent
 * in is reset or deleted (a memory context callback: also on ERROR).  The
 * blocks live in the backend's "mvivf scratch" memory context
 * (pg_backend_memory_contexts).  Arrays below MVIVF_SCRATCH_MIN bytes, or
 * when the kept blocks are busy or would exceed the limit, are plain palloc
 * chunks.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "mvivf.h"

/*
 * smaller arrays stay palloc chunks: below glibc's initial mmap threshold
 * (128 kB), malloc keeps their memory anyway
 */
#define MVIVF_SCRATCH_MIN		(128 * 1024)
/* at most this much kept by a backend between scans */
#define MVIVF_SCRATCH_KEEP		(64 * 1024 * 1024)
#define MVIVF_SCRATCH_BLOCKS	16

typedef struct ScratchBlock
{
	char	   *ptr;
	Size		size;
	bool		busy;
} ScratchBlock;

static ScratchBlock scratchBlocks[MVIVF_SCRATCH_BLOCKS];
static int	nScratchBlocks = 0;
static Size scratchBytes = 0;
/* holds the blocks; pg_backend_memory_contexts shows it as "mvivf scratch" */
static MemoryContext scratchContext = NULL;

/* MemoryContextCallback: the context a block was lent in goes away */
static void
ScratchRelease(void *arg)
{
	((ScratchBlock *) arg)->busy = false;
}

/* lend block b in CurrentMemoryContext */
static void *
ScratchLend(ScratchBlock * b)
{
	MemoryContextCallback *cb = palloc(sizeof(MemoryContextCallback));

	cb->func = ScratchRelease;
	cb->arg = b;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	b->busy = true;
	return b->ptr;
}

/*
 * MvivfScratchAlloc
 *		size bytes that live as long as CurrentMemoryContext (not to be
 *		pfree'd or repalloc'd), zeroed with MCXT_ALLOC_ZERO in flags.
 */
void *
MvivfScratchAlloc(Size size, int flags)
{
	ScratchBlock *best = NULL;
	void	   *p = NULL;
	/* whole 64 kB and an eighth more: a slightly larger array fits too */
	Size		blockSize = TYPEALIGN(64 * 1024, size + size / 8);
	int			i;

	if (size < MVIVF_SCRATCH_MIN)
		return palloc_extended(size, flags | MCXT_ALLOC_HUGE);

	/* the smallest free kept block that holds it */
	for (i = 0; i < nScratchBlocks; i++)
	{
		ScratchBlock *b = &scratchBlocks[i];

		if (!b->busy && b->size >= size && (best == NULL || b->size < best->size))
			best = b;
	}
	if (best != NULL)
		p = ScratchLend(best);
	else if (nScratchBlocks < MVIVF_SCRATCH_BLOCKS &&
			 scratchBytes + blockSize <= MVIVF_SCRATCH_KEEP)
	{
		ScratchBlock *b = &scratchBlocks[nScratchBlocks];

		if (scratchContext == NULL)
			scratchContext = AllocSetContextCreate(TopMemoryContext, "mvivf scratch",
												   ALLOCSET_SMALL_SIZES);
		b->ptr = MemoryContextAllocExtended(scratchContext, blockSize,
											MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
		if (b->ptr != NULL)
		{
			b->size = blockSize;
			b->busy = false;
			nScratchBlocks++;
			scratchBytes += blockSize;
			p = ScratchLend(b);
		}
	}
	if (p == NULL)
		return palloc_extended(size, flags | MCXT_ALLOC_HUGE);
	if (flags & MCXT_ALLOC_ZERO)
		memset(p, 0, size);
	return p;
}
