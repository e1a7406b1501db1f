/*
 * mvutils.c
 *	  Page helpers, metapage and directory access, and the quantizer (centroid
 *	  assignment and residual encoding) shared by build, insert, scan and
 *	  vacuum of the mvivf access method.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>
#include "backend_cpu_blas.h"

#include "access/generic_xlog.h"
#include "storage/bufmgr.h"
#include "miscadmin.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "mvivf.h"

/*
 * MvivfNewBuffer
 *		An exclusively locked buffer for a new page: a page freed by VACUUM
 *		when the free space map has one, else a new block at the end.
 */
Buffer
MvivfNewBuffer(Relation index, ForkNumber forkNum)
{
	Buffer		buf;

	if (forkNum == MAIN_FORKNUM)
	{
		for (;;)
		{
			BlockNumber blkno = GetFreeIndexPage(index);

			if (blkno == InvalidBlockNumber)
				break;
			buf = ReadBuffer(index, blkno);
			if (ConditionalLockBuffer(buf))
			{
				Page		page = BufferGetPage(buf);

				if (PageIsNew(page) ||
					(MvivfPageGetOpaque(page)->flags & MVIVF_DELETED))
					return buf;
				LockBuffer(buf, BUFFER_LOCK_UNLOCK);
			}
			ReleaseBuffer(buf);
		}
	}

#if PG_VERSION_NUM >= 160000
	buf = ExtendBufferedRel(BMR_REL(index), forkNum, NULL, EB_LOCK_FIRST);
#else
	{
		bool		needLock = !RELATION_IS_LOCAL(index);

		if (needLock)
			LockRelationForExtension(index, ExclusiveLock);
		buf = ReadBufferExtended(index, forkNum, P_NEW, RBM_NORMAL, NULL);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		if (needLock)
			UnlockRelationForExtension(index, ExclusiveLock);
	}
#endif
	return buf;
}

/*
 * MvivfInitPage
 *		Initialise an empty page of the given kind.
 */
void
MvivfInitPage(Page page, uint16 flags)
{
	MvivfPageOpaque opaque;

	PageInit(page, BLCKSZ, sizeof(MvivfPageOpaqueData));
	opaque = MvivfPageGetOpaque(page);
	opaque->next = InvalidBlockNumber;
	opaque->list = 0;
	opaque->nitems = 0;
	opaque->flags = flags;
	opaque->unused = 0;
	opaque->page_id = MVIVF_PAGE_ID;
	/* items are packed from the start of the contents area */
	((PageHeader) page)->pd_lower = MAXALIGN(SizeOfPageHeaderData);
}

/*
 * MvivfReadMeta
 *		Copy the metapage, checking magic and version.
 */
void
MvivfReadMeta(Relation index, MvivfMetaPageData * meta)
{
	Buffer		buf;
	Page		page;

	buf = ReadBuffer(index, MVIVF_METAPAGE_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	memcpy(meta, MvivfPageGetMeta(page), sizeof(MvivfMetaPageData));
	UnlockReleaseBuffer(buf);

	if (meta->magic != MVIVF_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not an mvivf index",
						RelationGetRelationName(index))));
	if (meta->version != MVIVF_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has mvivf format version %u, expected %d",
						RelationGetRelationName(index), meta->version,
						MVIVF_VERSION),
				 errhint("REINDEX the index.")));
}

/*
 * MvivfLoadQuantizer
 *		Read the centroids and bucket tables of a trained index.
 */
void
MvivfLoadQuantizer(Relation index, MvivfMetaPageData * meta, MvivfQuantizer * q)
{
	int			done = 0;
	BlockNumber blkno = meta->centroidStart;

	memset(q, 0, sizeof(MvivfQuantizer));
	q->dim = meta->dim;
	q->nbits = meta->nbits;
	q->nlists = meta->nlists;
	q->codeSize = meta->codeSize;
	memcpy(q->weights, meta->weights, sizeof(q->weights));
	memcpy(q->cutoffs, meta->cutoffs, sizeof(q->cutoffs));
	q->centroids = palloc_extended(sizeof(float) * (Size) meta->nlists * meta->dim,
								   MCXT_ALLOC_HUGE);
	while (done < (int) meta->nlists)
	{
		Buffer		buf = ReadBuffer(index, blkno);
		Page		page;
		int			n;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		n = MvivfPageGetOpaque(page)->nitems;
		if (!(MvivfPageGetOpaque(page)->flags & MVIVF_CENTROID) || n <= 0 ||
			done + n > (int) meta->nlists)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("index \"%s\" has a malformed centroid page %u",
							RelationGetRelationName(index), blkno)));
		memcpy(q->centroids + (Size) done * q->dim, MvivfPageItems(page),
			   sizeof(float) * (Size) n * q->dim);
		UnlockReleaseBuffer(buf);
		done += n;
		blkno++;
	}
}

/*
 * MvivfBlasSingleThread
 *		Make OpenBLAS run in the calling thread and return the previous
 *		thread count for MvivfBlasRestore.  Our products are small or many;
 *		OpenBLAS worker threads spent most of a build yielding to each other
 *		on a loaded machine, and a backend should use one core anyway.
 */
int
MvivfBlasSingleThread(void)
{
	int			threads = cp_blas_get_threads();

	if (threads > 1)
		cp_blas_set_threads(1);
	return threads;
}

/*
 * MvivfBlasRestore
 *		Undo MvivfBlasSingleThread.
 */
void
MvivfBlasRestore(int threads)
{
	if (threads > 1)
		cp_blas_set_threads(threads);
}

/*
 * MvivfGetQuantizer
 *		The quantizer of a trained index, with its two-level structure, from
 *		a one-entry backend cache (TopMemoryContext) keyed by the index's OID
 *		and relfilenode: centroids never change until REINDEX, which gives a
 *		new relfilenode.  Saves reading the centroid pages and grouping them
 *		on every insert statement and scan.
 */
const MvivfQuantizer *
MvivfGetQuantizer(Relation index, MvivfMetaPageData * meta)
{
	static MvivfQuantizer *cached = NULL;
	static MemoryContext cacheCtx = NULL;
	static Oid	cachedRelid = InvalidOid;
	static Oid	cachedNode = InvalidOid;
	MemoryContext old;

	if (cached != NULL && cachedRelid == RelationGetRelid(index) &&
		cachedNode == index->rd_rel->relfilenode &&
		cached->nlists == (int) meta->nlists && cached->dim == meta->dim)
		return cached;

	if (cacheCtx == NULL)
		cacheCtx = AllocSetContextCreate(TopMemoryContext, "mvivf quantizer cache",
										 ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(cacheCtx);
	cached = NULL;
	cachedRelid = InvalidOid;
	old = MemoryContextSwitchTo(cacheCtx);
	{
		MvivfQuantizer *q = palloc0(sizeof(MvivfQuantizer));

		MvivfLoadQuantizer(index, meta, q);
		MvivfPrepareCoarse(q);
		cached = q;
	}
	MemoryContextSwitchTo(old);
	cachedRelid = RelationGetRelid(index);
	cachedNode = index->rd_rel->relfilenode;
	return cached;
}

/*
 * MvivfScoreCentroids
 *		scores[r * nlists + l] = dot(rows[r], centroid l).
 */
void
MvivfScoreCentroids(const MvivfQuantizer * q, const float *rows, int nrows,
					float *scores)
{
	int			threads = MvivfBlasSingleThread();

	cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nrows, q->nlists,
				q->dim, 1.0f, rows, q->dim, q->centroids, q->dim, 0.0f,
				scores, q->nlists);
	MvivfBlasRestore(threads);
}

/*
 * MvivfPrepareCoarse
 *		Group the centroids under about sqrt(nlists) coarse centroids
 *		(spherical k-means over the centroids, deterministic), so that a
 *		token is assigned by scoring the coarse centroids and then only the
 *		members of its MVIVF_COARSE_PROBES best groups: about
 *		(1 + MVIVF_COARSE_PROBES) * sqrt(nlists) dot products instead of
 *		nlists.  Build and insert both assign this way, so they agree; the
 *		assignment may miss the very nearest centroid, which only makes the
 *		residual a little larger.  Flat below MVIVF_COARSE_MIN_LISTS lists.
 */
void
MvivfPrepareCoarse(MvivfQuantizer * q)
{
	int			nc;
	int			dim = q->dim;
	float	   *scores;
	int		   *assign;
	int		   *count;
	int			it;
	int			l;
	int			g;
	int			threads;

	MvivfFreeCoarse(q);
	if (q->nlists < MVIVF_COARSE_MIN_LISTS)
		return;
	threads = MvivfBlasSingleThread();
	nc = (int) sqrt((double) q->nlists);
	q->coarse = palloc(sizeof(float) * nc * dim);
	for (g = 0; g < nc; g++)
		memcpy(q->coarse + (Size) g * dim,
			   q->centroids + (Size) ((int64) g * q->nlists / nc) * dim,
			   sizeof(float) * dim);
	scores = palloc_extended(sizeof(float) * (Size) q->nlists * nc, MCXT_ALLOC_HUGE);
	assign = palloc(sizeof(int) * q->nlists);
	count = palloc0(sizeof(int) * (nc + 1));
	for (it = 0; it <= 5; it++)
	{
		cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q->nlists, nc, dim,
					1.0f, q->centroids, dim, q->coarse, dim, 0.0f, scores, nc);
		for (l = 0; l < q->nlists; l++)
		{
			const float *s = scores + (Size) l * nc;
			int			best = 0;

			for (g = 1; g < nc; g++)
				if (s[g] > s[best])
					best = g;
			assign[l] = best;
		}
		if (it == 5)
			break;
		/* new coarse centroid = normalised mean of its members */
		memset(q->coarse, 0, sizeof(float) * nc * dim);
		memset(count, 0, sizeof(int) * nc);
		for (l = 0; l < q->nlists; l++)
		{
			float	   *c = q->coarse + (Size) assign[l] * dim;
			const float *x = q->centroids + (Size) l * dim;
			int			d;

			for (d = 0; d < dim; d++)
				c[d] += x[d];
			count[assign[l]]++;
		}
		for (g = 0; g < nc; g++)
		{
			float	   *c = q->coarse + (Size) g * dim;
			double		norm = 0;
			int			d;

			if (count[g] == 0)
			{
				memcpy(c, q->centroids + (Size) ((int64) g * q->nlists / nc) * dim,
					   sizeof(float) * dim);
				continue;
			}
			for (d = 0; d < dim; d++)
				norm += (double) c[d] * c[d];
			if (norm > 0)
				for (d = 0; d < dim; d++)
					c[d] = (float) (c[d] / sqrt(norm));
		}
	}
	/* CSR of the groups, with the member centroids copied contiguously */
	memset(count, 0, sizeof(int) * (nc + 1));
	for (l = 0; l < q->nlists; l++)
		count[assign[l] + 1]++;
	for (g = 0; g < nc; g++)
		count[g + 1] += count[g];
	q->groupStart = palloc(sizeof(int) * (nc + 1));
	memcpy(q->groupStart, count, sizeof(int) * (nc + 1));
	q->groupMembers = palloc(sizeof(int) * q->nlists);
	q->groupCentroids = palloc_extended(sizeof(float) * (Size) q->nlists * dim,
										MCXT_ALLOC_HUGE);
	for (l = 0; l < q->nlists; l++)
	{
		int			pos = count[assign[l]]++;

		q->groupMembers[pos] = l;
		memcpy(q->groupCentroids + (Size) pos * dim, q->centroids + (Size) l * dim,
			   sizeof(float) * dim);
	}
	q->ncoarse = nc;
	pfree(scores);
	pfree(assign);
	pfree(count);
	MvivfBlasRestore(threads);
}

/*
 * MvivfFreeCoarse
 *		Forget the two-level structure (after the centroids changed).
 */
void
MvivfFreeCoarse(MvivfQuantizer * q)
{
	if (q->ncoarse > 0)
	{
		pfree(q->coarse);
		pfree(q->groupStart);
		pfree(q->groupMembers);
		pfree(q->groupCentroids);
	}
	q->ncoarse = 0;
	q->coarse = NULL;
	q->groupStart = NULL;
	q->groupMembers = NULL;
	q->groupCentroids = NULL;
}

/*
 * WorkBuffer
 *		A grow-only scratch area for the two-level assignment, kept for the
 *		life of the backend (a build or an insert needs it once per row
 *		block; allocating megabytes each time costs page faults).
 */
static void *
WorkBuffer(Size size)
{
	static void *buf = NULL;
	static Size bufSize = 0;

	if (size > bufSize)
	{
		if (buf)
			pfree(buf);
		bufSize = Max(size, 2 * bufSize);
		buf = MemoryContextAllocHuge(TopMemoryContext, bufSize);
	}
	return buf;
}

#define MVIVF_TWOLEVEL_CHUNK	(1 << 20)	/* floats of member scores per GEMM */

/*
 * AssignTwoLevel
 *		best[r] = the best centroid of row r among the members of its
 *		MVIVF_COARSE_PROBES best coarse groups (cs = n x ncoarse coarse
 *		scores).  The (row, group) pairs are bucketed by group so that each
 *		group is scored against all its rows with one GEMM.
 */
static void
AssignTwoLevel(const MvivfQuantizer * q, const float *rows, int n,
			   const float *cs, uint32 *best)
{
	const int	G = Min(MVIVF_COARSE_PROBES, q->ncoarse);
	int			dim = q->dim;
	int			npairs = n * G;
	Size		off = 0;
	char	   *work;
	int		   *top;
	int		   *pairRow;
	int		   *groupCount;
	float	   *bestScore;
	float	   *gathered;
	float	   *out;
	int			r;
	int			g;

	work = WorkBuffer(sizeof(int) * (Size) npairs * 2 + sizeof(int) * (q->ncoarse + 1) +
					  sizeof(float) * n + sizeof(float) * (Size) npairs * dim +
					  sizeof(float) * MVIVF_TWOLEVEL_CHUNK + 64);
	top = (int *) (work + off);
	off += sizeof(int) * (Size) npairs;
	pairRow = (int *) (work + off);
	off += sizeof(int) * (Size) npairs;
	groupCount = (int *) (work + off);
	off += sizeof(int) * (q->ncoarse + 1);
	bestScore = (float *) (work + off);
	off += sizeof(float) * n;
	gathered = (float *) (work + off);
	off += sizeof(float) * (Size) npairs * dim;
	out = (float *) (work + off);

	/* the best G groups of every row, by insertion */
	for (r = 0; r < n; r++)
	{
		const float *c = cs + (Size) r * q->ncoarse;
		int		   *t = top + (Size) r * G;
		int			ntop = 0;

		for (g = 0; g < q->ncoarse; g++)
		{
			int			pos;

			if (ntop == G && c[g] <= c[t[ntop - 1]])
				continue;
			pos = ntop < G ? ntop++ : ntop - 1;
			while (pos > 0 && c[t[pos - 1]] < c[g])
			{
				t[pos] = t[pos - 1];
				pos--;
			}
			t[pos] = g;
		}
		best[r] = 0;
		bestScore[r] = -FLT_MAX;
	}

	/* bucket the pairs by group (counting sort) */
	memset(groupCount, 0, sizeof(int) * (q->ncoarse + 1));
	for (r = 0; r < npairs; r++)
		groupCount[top[r] + 1]++;
	for (g = 0; g < q->ncoarse; g++)
		groupCount[g + 1] += groupCount[g];
	for (r = 0; r < npairs; r++)
		pairRow[groupCount[top[r]]++] = r / G;
	/* groupCount[g] is now the end of group g's pairs */

	for (g = 0; g < q->ncoarse; g++)
	{
		int			pstart = g == 0 ? 0 : groupCount[g - 1];
		int			pend = groupCount[g];
		int			mstart = q->groupStart[g];
		int			ng = q->groupStart[g + 1] - mstart;
		int			chunk = Max(1, MVIVF_TWOLEVEL_CHUNK / Max(ng, 1));
		int			p;

		if (ng == 0 || pend == pstart)
			continue;
		for (p = pstart; p < pend; p += chunk)
		{
			int			m = Min(chunk, pend - p);
			int			i;

			for (i = 0; i < m; i++)
				memcpy(gathered + (Size) i * dim, rows + (Size) pairRow[p + i] * dim,
					   sizeof(float) * dim);
			cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, ng, dim,
						1.0f, gathered, dim, q->groupCentroids + (Size) mstart * dim,
						dim, 0.0f, out, ng);
			for (i = 0; i < m; i++)
			{
				int			row = pairRow[p + i];
				const float *o = out + (Size) i * ng;
				int			j;

				for (j = 0; j < ng; j++)
					if (o[j] > bestScore[row])
					{
						bestScore[row] = o[j];
						best[row] = q->groupMembers[mstart + j];
					}
			}
		}
	}
}

/*
 * MvivfAssignEncode
 *		Assign each row to its nearest (largest dot product) centroid, flat
 *		or two-level (MvivfPrepareCoarse), and encode the residual; codes has
 *		nrows * codeSize bytes.  scratch, when not NULL, holds
 *		MVIVF_ASSIGN_BLOCK * nlists floats.
 */
void
MvivfAssignEncode(const MvivfQuantizer * q, const float *rows, int nrows,
				  uint32 *lists, uint8 *codes, float *scratch)
{
	const int	block = MVIVF_ASSIGN_BLOCK;
	int			nb = 1 << q->nbits;
	float	   *scores = scratch;
	int			start;
	int			threads = MvivfBlasSingleThread();

	if (scores == NULL)
		scores = palloc_extended(sizeof(float) * (Size) Min(block, nrows) * q->nlists,
								 MCXT_ALLOC_HUGE);

	for (start = 0; start < nrows; start += block)
	{
		int			n = Min(block, nrows - start);
		int			r;

		if (q->ncoarse > 0)
		{
			cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, q->ncoarse,
						q->dim, 1.0f, rows + (Size) start * q->dim, q->dim,
						q->coarse, q->dim, 0.0f, scores, q->ncoarse);
			AssignTwoLevel(q, rows + (Size) start * q->dim, n, scores,
						   lists + start);
		}
		else
			MvivfScoreCentroids(q, rows + (Size) start * q->dim, n, scores);
		for (r = 0; r < n; r++)
		{
			const float *x = rows + (Size) (start + r) * q->dim;
			uint8	   *code = codes + (Size) (start + r) * q->codeSize;
			const float *c;
			int			best = 0;
			int			d;

			if (q->ncoarse > 0)
				best = lists[start + r];
			else
			{
				const float *s = scores + (Size) r * q->nlists;
				int			l;

				for (l = 1; l < q->nlists; l++)
					if (s[l] > s[best])
						best = l;
			}
			lists[start + r] = best;
			c = q->centroids + (Size) best * q->dim;
			memset(code, 0, q->codeSize);
			for (d = 0; d < q->dim; d++)
			{
				float		res = x[d] - c[d];
				int			b = 0;
				int			bit = d * q->nbits;

				while (b < nb - 1 && res > q->cutoffs[b])
					b++;
				code[bit / 8] |= (uint8) (b << (bit % 8));
			}
		}
	}
	if (scratch == NULL)
		pfree(scores);
	MvivfBlasRestore(threads);
}

/*
 * MvivfOpenTail
 *		Lock the last page of a list for appending, creating the list's first
 *		page when it has none; entry->tail may lag behind after a crash, so
 *		follow the chain to its real end.
 */
static Buffer
MvivfOpenTail(Relation index, MvivfListEntry * entry, uint32 list)
{
	Buffer		buf;

	if (entry->tail == InvalidBlockNumber)
	{
		GenericXLogState *state;
		Page		page;

		buf = MvivfNewBuffer(index, MAIN_FORKNUM);
		state = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
		MvivfInitPage(page, MVIVF_POSTING);
		MvivfPageGetOpaque(page)->list = list;
		GenericXLogFinish(state);
		entry->head = entry->tail = BufferGetBlockNumber(buf);
		return buf;
	}
	for (;;)
	{
		BlockNumber next;

		buf = ReadBuffer(index, entry->tail);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		next = MvivfPageGetOpaque(BufferGetPage(buf))->next;
		if (next == InvalidBlockNumber)
			return buf;
		UnlockReleaseBuffer(buf);
		entry->tail = next;
	}
}

/*
 * MvivfAppendPostings
 *		Append postings (sorted by list, then document id) to the tails of
 *		their lists, one generic WAL record per page touched; updates the
 *		in-memory list directory, which the caller writes afterwards.
 */
void
MvivfAppendPostings(Relation index, MvivfPosting * postings, int npostings,
					int codeSize, MvivfListEntry * listdir)
{
	Size		itemsz = MvivfPostingSize(codeSize);
	int			perPage = MvivfItemsPerPage(itemsz);
	int			i = 0;

	while (i < npostings)
	{
		uint32		list = postings[i].list;
		MvivfListEntry *entry = &listdir[list];
		Buffer		buf = MvivfOpenTail(index, entry, list);
		GenericXLogState *state = GenericXLogStart(index);
		Page		page = GenericXLogRegisterBuffer(state, buf, 0);

		for (; i < npostings && postings[i].list == list; i++)
		{
			MvivfPageOpaque opaque = MvivfPageGetOpaque(page);
			char	   *item;

			if (opaque->nitems >= perPage)
			{
				Buffer		nbuf = MvivfNewBuffer(index, MAIN_FORKNUM);
				Page		npage = GenericXLogRegisterBuffer(state, nbuf,
															  GENERIC_XLOG_FULL_IMAGE);

				MvivfInitPage(npage, MVIVF_POSTING);
				MvivfPageGetOpaque(npage)->list = list;
				opaque->next = BufferGetBlockNumber(nbuf);
				GenericXLogFinish(state);
				UnlockReleaseBuffer(buf);
				buf = nbuf;
				entry->tail = BufferGetBlockNumber(buf);
				state = GenericXLogStart(index);
				page = GenericXLogRegisterBuffer(state, buf, 0);
				opaque = MvivfPageGetOpaque(page);
			}
			item = MvivfPageItems(page) + (Size) opaque->nitems * itemsz;
			memcpy(item, &postings[i].docid, sizeof(uint32));
			memcpy(item + sizeof(uint32), postings[i].code, codeSize);
			opaque->nitems++;
			((PageHeader) page)->pd_lower += itemsz;
			entry->ntokens++;
		}
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * MvivfWriteListDir
 *		Write the in-memory list directory back to its pages.
 */
void
MvivfWriteListDir(Relation index, MvivfMetaPageData * meta, MvivfListEntry * listdir)
{
	int			perPage = MvivfItemsPerPage(sizeof(MvivfListEntry));
	int			done = 0;
	BlockNumber blkno = meta->listDirStart;

	while (done < (int) meta->nlists)
	{
		int			n = Min(perPage, (int) meta->nlists - done);
		Buffer		buf = ReadBuffer(index, blkno);
		GenericXLogState *state;
		Page		page;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		if (memcmp(MvivfPageItems(page), listdir + done,
				   n * sizeof(MvivfListEntry)) != 0)
		{
			state = GenericXLogStart(index);
			page = GenericXLogRegisterBuffer(state, buf, 0);
			memcpy(MvivfPageItems(page), listdir + done, n * sizeof(MvivfListEntry));
			GenericXLogFinish(state);
		}
		UnlockReleaseBuffer(buf);
		done += n;
		blkno++;
	}
}

/*
 * MvivfReadListDir
 *		Read the whole list directory.
 */
MvivfListEntry *
MvivfReadListDir(Relation index, MvivfMetaPageData * meta)
{
	int			perPage = MvivfItemsPerPage(sizeof(MvivfListEntry));
	MvivfListEntry *listdir = palloc(sizeof(MvivfListEntry) * Max(meta->nlists, 1));
	int			done = 0;
	BlockNumber blkno = meta->listDirStart;

	while (done < (int) meta->nlists)
	{
		int			n = Min(perPage, (int) meta->nlists - done);
		Buffer		buf = ReadBuffer(index, blkno);

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		memcpy(listdir + done, MvivfPageItems(BufferGetPage(buf)),
			   n * sizeof(MvivfListEntry));
		UnlockReleaseBuffer(buf);
		done += n;
		blkno++;
	}
	return listdir;
}

/*
 * MvivfReadDocDir
 *		Read the document directory (at most meta->ndocs entries).
 */
MvivfDocEntry *
MvivfReadDocDir(Relation index, MvivfMetaPageData * meta, uint32 *ndocs)
{
	MvivfDocEntry *docs = palloc_extended(sizeof(MvivfDocEntry) * Max(meta->ndocs, 1),
										  MCXT_ALLOC_HUGE);
	uint32		done = 0;
	BlockNumber blkno = meta->docDirHead;

	while (blkno != InvalidBlockNumber && done < meta->ndocs)
	{
		Buffer		buf = ReadBuffer(index, blkno);
		Page		page;
		uint32		n;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		n = Min(MvivfPageGetOpaque(page)->nitems, meta->ndocs - done);
		memcpy(docs + done, MvivfPageItems(page), n * sizeof(MvivfDocEntry));
		done += n;
		blkno = MvivfPageGetOpaque(page)->next;
		UnlockReleaseBuffer(buf);
	}
	*ndocs = done;
	return docs;
}

/*
 * MvivfCheckDim
 *		Error out when a value's dimension differs from the index's.
 */
void
MvivfCheckDim(Relation index, int indexDim, int valueDim)
{
	if (indexDim != valueDim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("multivector dimension %d does not match index \"%s\" dimension %d",
						valueDim, RelationGetRelationName(index), indexDim)));
}

/*
 * MvivfPostingCmp
 *		qsort comparator: postings by list, then document id (the order in
 *		which build and VACUUM's merge append them to the lists).
 */
int
MvivfPostingCmp(const void *a, const void *b)
{
	const MvivfPosting *x = a;
	const MvivfPosting *y = b;

	if (x->list != y->list)
		return x->list < y->list ? -1 : 1;
	if (x->docid != y->docid)
		return x->docid < y->docid ? -1 : 1;
	return 0;
}

/*
 * MvivfDatumGetValue
 *		Detoast an indexed or query value and validate its header (format,
 *		dimensions, row count against the datum's size), so that a corrupt
 *		value is an ERROR rather than a read past its end.
 */
MultiVector *
MvivfDatumGetValue(Datum value)
{
	MultiVector *mv = DatumGetMultiVector(value);

	MultiVectorCheckFormat(mv);
	return mv;
}
