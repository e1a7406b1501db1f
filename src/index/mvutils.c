/*
 * mvutils.c
 *	  Page helpers, metapage and directory access shared by build, insert,
 *	  scan and vacuum of the mvivf access method (the quantizer is in
 *	  mvquantizer.c).
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/generic_xlog.h"
#include "storage/bufmgr.h"
#include "miscadmin.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "maxsim_compact.h"
#include "mvivf.h"

/* the input functions that tell the compact types apart (MvivfIndexFormat) */
extern PGDLLEXPORT Datum halfmultivector_in(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum bitmultivector_in(PG_FUNCTION_ARGS);

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
 * MvivfFloatCmp
 *		qsort comparator for floats, increasing.
 */
int
MvivfFloatCmp(const void *a, const void *b)
{
	float		x = *(const float *) a;
	float		y = *(const float *) b;

	return (x > y) - (x < y);
}

/*
 * MvivfMetaHasForcedCount
 *		Whether the metapage holds the drift limit and the count of documents
 *		reranked first (written by builds since they exist): bytes past
 *		pd_lower are neither kept by generic WAL nor written by older builds.
 */
bool
MvivfMetaHasForcedCount(Page metapage)
{
	MvivfMetaPage meta = MvivfPageGetMeta(metapage);

	return ((PageHeader) metapage)->pd_lower >=
		(char *) &meta->nforced + sizeof(meta->nforced) - (char *) metapage;
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
	/* fields an older build's shorter metapage lacks read as 0 */
	if (!MvivfMetaHasForcedCount(page))
	{
		meta->driftLimit = 0;
		meta->nforced = 0;
	}
	UnlockReleaseBuffer(buf);

	if (meta->magic != MVIVF_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not an mvivf index",
						RelationGetRelationName(index))));
	if (meta->version < MVIVF_MIN_VERSION || meta->version > MVIVF_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has mvivf format version %u, expected %d to %d",
						RelationGetRelationName(index), meta->version,
						MVIVF_MIN_VERSION, MVIVF_VERSION),
				 errhint("REINDEX the index.")));
	if (meta->version < 3)
	{
		/* version 2: no document lists (its metapage ends before them) */
		meta->listedDocs = 0;
		meta->listedForwardTail = InvalidBlockNumber;
		meta->docListDir = InvalidBlockNumber;
		meta->docListStart = InvalidBlockNumber;
		meta->docLocStart = InvalidBlockNumber;
		meta->npostings = 0;
	}
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
 * MvivfCheckSupportedDim
 *		Error out for a dimension the index could not be rebuilt with (a
 *		centroid must fit on a page), before any work is done on it.
 */
void
MvivfCheckSupportedDim(Relation index, int dim)
{
	if (dim > MVIVF_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("mvivf supports at most %d dimensions, index \"%s\" would have %d",
						MVIVF_MAX_DIM, RelationGetRelationName(index), dim)));
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
 * Compact columns (halfmultivector, bitmultivector).
 *
 * The quantizer works on float32 rows of unit length, whatever the column
 * stores, so build and insert read every value as float rows:
 *	 multivector      the stored floats;
 *	 halfmultivector  the stored halves widened to float32 (exact);
 *	 bitmultivector   each sign bit as +-1/sqrt(D): the +-1 vector that the
 *	                  binary MaxSim scores (q . (2b - 1)), scaled to unit
 *	                  length as the spherical k-means and the residual codes
 *	                  assume.
 * The approximate stage scores the query, read as float rows too (a binary
 * query as +-1), against those rows; on a binary index it multiplies the
 * query by sqrt(D) so that its estimates are on the scale of the exact
 * binary MaxSim (the scan compares the two to decide when to stop).  The
 * exact rerank calls the ORDER BY operator's own function
 * (MvivfExactDistance): the distance of every pair is the very float8 a
 * sequential scan computes, exact for what is stored.
 */

/*
 * DatumGetAnyFormat
 *		Detoast a value of any of the three formats and validate its header
 *		(format, dimensions, row count against the datum's size), so that a
 *		corrupt value is an ERROR rather than a read past its end.
 */
static MultiVector *
DatumGetAnyFormat(Datum value)
{
	MultiVector *mv = DatumGetMultiVector(value);

	if (mv->format == MV_FORMAT_HALF || mv->format == MV_FORMAT_BINARY)
		MultiVectorCheckAnyFormat(mv, mv->format);
	else
		MultiVectorCheckFormat(mv);
	return mv;
}

/*
 * AsFloatRows
 *		A validated value of any format as a float32 multivector, every
 *		element multiplied by `binaryScale` when the value is binary (+-1
 *		before scaling); a float value is returned as it is.
 */
static MultiVector *
AsFloatRows(MultiVector *mv, float binaryScale)
{
	MultiVector *result;
	Size		n;

	if (mv->format == MV_FORMAT_FLOAT32)
		return mv;
	n = (Size) mv->nvec * mv->dim;
	result = InitMultiVector(mv->nvec, mv->dim);
	if (mv->format == MV_FORMAT_HALF)
		mvk_half_to_float(mvk_best(), MV_HALF_DATA(mv), n, result->x);
	else
	{
		Size		i;

		mvk_bits_to_pm1(MV_BIT_DATA(mv), mv->nvec, mv->dim, result->x);
		if (binaryScale != 1.0f)
			for (i = 0; i < n; i++)
				result->x[i] *= binaryScale;
	}
	return result;
}

/*
 * MvivfDatumGetValue
 *		An indexed value of any format as float32 rows for the quantizer
 *		(binary rows as +-1/sqrt(D), see above), header validated.
 */
MultiVector *
MvivfDatumGetValue(Datum value)
{
	MultiVector *mv = DatumGetAnyFormat(value);

	return AsFloatRows(mv, (float) (1.0 / sqrt((double) mv->dim)));
}

/*
 * MvivfDocFlagsOf
 *		The flags a document's directory entry starts with, from its rows
 *		as the index codes them (MvivfDatumGetValue): MVIVF_DOC_RERANK when
 *		a row's norm exceeds 2.
 */
uint16
MvivfDocFlagsOf(const MultiVector *mv)
{
	int			i;

	for (i = 0; i < mv->nvec; i++)
	{
		const float *x = mv->x + (Size) i * mv->dim;
		double		norm2 = 0;
		int			d;

		for (d = 0; d < mv->dim; d++)
			norm2 += (double) x[d] * x[d];
		if (!(norm2 <= MVIVF_RERANK_NORM2))
			return MVIVF_DOC_RERANK;
	}
	return 0;
}

/*
 * MvivfIndexFormat
 *		The MV_FORMAT_* of the values an index stores, from the input type of
 *		its operator class (the type's input function tells which of the
 *		three it is).
 */
int
MvivfIndexFormat(Relation index)
{
	Oid			typinput;
	Oid			typioparam;
	FmgrInfo	finfo;

	getTypeInputInfo(index->rd_opcintype[0], &typinput, &typioparam);
	fmgr_info(typinput, &finfo);
	if (finfo.fn_addr == bitmultivector_in)
		return MV_FORMAT_BINARY;
	if (finfo.fn_addr == halfmultivector_in)
		return MV_FORMAT_HALF;
	return MV_FORMAT_FLOAT32;
}

/*
 * MvivfQueryGetValue
 *		The query of a scan of `index` as float32 rows for the approximate
 *		stage: half widened, binary as +-1, and on a binary index scaled by
 *		sqrt(D) so that query . (+-1/sqrt(D)) estimates the exact binary
 *		MaxSim on its own scale.
 */
MultiVector *
MvivfQueryGetValue(Relation index, Datum value)
{
	MultiVector *mv = DatumGetAnyFormat(value);
	float		scale = 1.0f;

	if (MvivfIndexFormat(index) == MV_FORMAT_BINARY)
		scale = (float) sqrt((double) mv->dim);
	mv = AsFloatRows(mv, 1.0f);
	if (scale != 1.0f)
	{
		Size		n = (Size) mv->nvec * mv->dim;
		MultiVector *scaled = InitMultiVector(mv->nvec, mv->dim);
		Size		i;

		for (i = 0; i < n; i++)
			scaled->x[i] = mv->x[i] * scale;
		mv = scaled;
	}
	return mv;
}

/*
 * MvivfExactDistance
 *		The exact distance of a stored value: the ORDER BY operator's own
 *		function applied to the value and the scan's query, so that the index
 *		returns the float8 a sequential scan sorts by, for every (document,
 *		query) format pair the operator family has.
 */
double
MvivfExactDistance(IndexScanDesc scan, Datum value)
{
	ScanKey		key = &scan->orderByData[0];

	return DatumGetFloat8(FunctionCall2Coll(&key->sk_func, key->sk_collation,
											value, key->sk_argument));
}
