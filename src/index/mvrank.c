/*
 * mvrank.c
 *	  The approximate stage of an ordered mvivf scan (mvscan.c describes the
 *	  whole scan): the order of candidates, the centroid-interaction and
 *	  refinement passes over the forward store, the probes of the document
 *	  lists, and how deep the scan refines (from the error margins of
 *	  mvmargin.c).
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "executor/executor.h"
#include "executor/nodeHash.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "maxsim_codes_amx.h"
#include "mvivf.h"
#include "top_select.h"

/*
 * Unrefined documents refined with the first ones, at random, to calibrate
 * the gain margin (mvmargin.c draws them).
 */
#define MVIVF_REFINE_SAMPLE		32

/* the centroid score that puts an unlisted document first in line */
#define MVIVF_TAIL_SCORE		1e30

/*
 * CentroidPass
 *		Centroid interaction of every live document for the rows of st: add
 *		sum_i max over its tokens of (query row i . centroid) to score[doc],
 *		and note where each document's first group is.
 */
static void
CentroidPass(IndexScanDesc scan, MvivfMetaPageData * meta,
			 const MvivfApproxState * st, double *score)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	Size		nacc = (Size) Max(so->ndocs, 1) * st->nqPad;
	float	   *acc = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * nacc);
	BlockNumber blkno = meta->forwardHead;
	Size		k;
	uint32		d;

	for (k = 0; k < nacc; k++)
		acc[k] = -FLT_MAX;
	while (blkno != InvalidBlockNumber)
	{
		char	   *p;
		char	   *end;
		char	   *tokens;
		MvivfForwardGroup group;
		Buffer		buf;

		CHECK_FOR_INTERRUPTS();
		buf = MvivfReadForwardPage(index, blkno, &p, &end);
		while (MvivfNextGroup(index, blkno, &p, end, st->codeSize, &group, &tokens))
		{
			uint32		doc = group.docid;

			if (doc >= so->ndocs || (so->docs[doc].flags & MVIVF_DOC_DEAD))
				continue;
			if (so->startBlock[doc] == InvalidBlockNumber)
			{
				so->startBlock[doc] = blkno;
				so->startOffset[doc] = (tokens - sizeof(MvivfForwardGroup)) - (char *) BufferGetPage(buf);
			}
			if (group.kind == MVIVF_GROUP_CODES)
				continue;		/* the centroid numbers are elsewhere */
			MvivfCentroidTokens(st, acc + (Size) doc * st->nqPad, tokens, group.ntokens);
			so->ntokens += group.ntokens;
		}
		blkno = MvivfPageGetOpaque(BufferGetPage(buf))->next;
		UnlockReleaseBuffer(buf);
		so->npages++;
	}
	for (d = 0; d < so->ndocs; d++)
	{
		const float *ap = acc + (Size) d * st->nqPad;
		double		sum = 0;
		int			i;

		for (i = 0; i < st->nq; i++)
			sum += ap[i];
		score[d] += sum;
	}
	pfree(acc);
}

/*
 * RefineGroup
 *		Fold one forward group of a document being refined into its maxima:
 *		a mixed group (versions 2-3) at once; the centroid numbers of a LISTS
 *		group are kept in *ids (its CODES groups, which follow, take them in
 *		order: *used of *nids are taken).
 */
static void
RefineGroup(Relation index, BlockNumber blkno, const MvivfApproxState * st,
			const MvivfForwardGroup * group, const char *tokens,
			uint16 **ids, int *nids, int *idsCap, int *used,
			int16 *acc, int16 *ciAcc, float *facc, float *fciAcc)
{
	const char *lists;
	const uint8 *codes;
	int			n = group->ntokens;

	if (group->kind == MVIVF_GROUP_LISTS)
	{
		if (*nids + n > *idsCap)
		{
			*idsCap = Max(2 * *idsCap, *nids + n);
			*ids = repalloc(*ids, sizeof(uint16) * *idsCap);
		}
		memcpy(*ids + *nids, tokens, sizeof(uint16) * n);
		*nids += n;
		return;
	}
	if (group->kind == MVIVF_GROUP_CODES)
	{
		if (*used + n > *nids)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("index \"%s\" has a malformed forward page %u",
							RelationGetRelationName(index), blkno),
					 errdetail("Document %u has more codes than centroid numbers.",
							   group->docid)));
		lists = (const char *) (*ids + *used);
		codes = (const uint8 *) tokens;
		*used += n;
	}
	else
	{
		lists = tokens;
		codes = (const uint8 *) tokens + (Size) n * sizeof(uint16);
	}
	if (st->int8Codes)
		MvivfScoreTokensInt8(st, facc, fciAcc, lists, codes, n);
	else
		MvivfScoreTokens(st, acc, ciAcc, lists, codes, n);
}

/*
 * RefinePass
 *		Quantized MaxSim of the documents refine[0 .. nrefine-1] (in forward
 *		store order) for the rows of st, added to score[k] (k = position in
 *		refine), and their exact centroid interaction, added to ci[k]: each
 *		document's groups are read from its first one on.
 */
static void
RefinePass(IndexScanDesc scan, const MvivfApproxState * st,
		   const uint32 *refine, int nrefine, double *score, double *ci)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	int16	   *acc = palloc(sizeof(int16) * st->nqPadFixed);
	int16	   *ciAcc = palloc(sizeof(int16) * st->nqPadFixed);
	float	   *facc = palloc(sizeof(float) * st->nqPadFixed);
	float	   *fciAcc = palloc(sizeof(float) * st->nqPadFixed);
	int			idsCap = 2048;
	uint16	   *ids = palloc(sizeof(uint16) * idsCap);
	int			r;

	for (r = 0; r < nrefine; r++)
	{
		uint32		doc = refine[r];
		BlockNumber blkno = so->startBlock[doc];
		char	   *p;
		char	   *end;
		char	   *tokens;
		MvivfForwardGroup group;
		bool		done = false;
		double		sum = 0;
		double		ciSum = 0;
		int			nids = 0;
		int			used = 0;
		int			i;

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < st->nqPadFixed; i++)
		{
			acc[i] = ciAcc[i] = PG_INT16_MIN;
			facc[i] = fciAcc[i] = -FLT_MAX;
		}
		if (blkno == InvalidBlockNumber)
			continue;			/* no codes: keeps its centroid score */
		/* the document's groups follow each other from its first one */
		while (!done && blkno != InvalidBlockNumber)
		{
			Buffer		buf = MvivfReadForwardPage(index, blkno, &p, &end);

			so->npages++;
			if (blkno == so->startBlock[doc])
				p = (char *) BufferGetPage(buf) + so->startOffset[doc];
			while (MvivfNextGroup(index, blkno, &p, end, st->codeSize, &group, &tokens))
			{
				if (group.docid != doc)
				{
					done = true;
					break;
				}
				RefineGroup(index, blkno, st, &group, tokens, &ids, &nids,
							&idsCap, &used, acc, ciAcc, facc, fciAcc);
			}
			blkno = MvivfPageGetOpaque(BufferGetPage(buf))->next;
			UnlockReleaseBuffer(buf);
		}
		/* AMX's floats floored as the fixed point is (rows no token reached) */
		for (i = 0; i < st->nq; i++)
		{
			sum += st->int8Codes ? Max(facc[i], PG_INT16_MIN / MVIVF_FIXED_SCALE) :
				acc[i] / (double) MVIVF_FIXED_SCALE;
			ciSum += st->int8Codes ? Max(fciAcc[i], PG_INT16_MIN / MVIVF_FIXED_SCALE) :
				ciAcc[i] / (double) MVIVF_FIXED_SCALE;
		}
		score[r] += sum;
		ci[r] += ciSum;
	}
	pfree(acc);
	pfree(ciAcc);
	pfree(facc);
	pfree(fciAcc);
	pfree(ids);
}

/*
 * ProbeCallback
 *		MvivfScanDocList's callback of ProbePass.
 */
typedef struct ProbeArg
{
	float	   *acc;
	int			nqPad;
	const float *v;
	uint32		limit;
}			ProbeArg;

static void
ProbeCallback(void *arg, const uint32 *ids, int n)
{
	ProbeArg   *pa = (ProbeArg *) arg;

	MvivfProbeEntries(pa->acc, pa->nqPad, pa->v, ids, n, pa->limit);
}

/*
 * ProbePass
 *		An upper bound of the centroid interaction of every listed document
 *		for the rows of st, added to score[doc], from the document lists of a
 *		few centroids per row instead of every token (PLAID's pruning with
 *		WARP's imputation).  Row i probes its mvivf.probes best centroids by
 *		q_i . c; t_i is the score of its next best one.  A document found in
 *		a probed list of row i has its exact maximum for that row: the best
 *		of its probed centroids, since any other centroid of it scores at
 *		most t_i.  One found in none gets t_i, an upper bound of its maximum
 *		(its centroids are all unprobed).  The cost follows the entries of
 *		the probed lists, not the tokens of the corpus.
 */
static void
ProbePass(IndexScanDesc scan, const MvivfApproxState * st,
		  const uint32 *offsets, double *score)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	int			nlists = st->nlists;
	int			nqPad = st->nqPad;
	int			nprobe = Min(mvivf_probes, nlists);
	int			keep = Min(nprobe + 1, nlists);
	uint32		listed = so->meta.listedDocs;
	float		thresh[MVIVF_ROW_BLOCK];
	int32	   *slot = MvivfScratchAlloc(sizeof(int32) * nlists, 0);
	int		   *used = MvivfScratchAlloc(sizeof(int) * Min((Size) nlists, (Size) MVIVF_ROW_BLOCK * nprobe), 0);
	float	   *V = MvivfScratchAlloc(sizeof(float) * (Size) MVIVF_ROW_BLOCK * nprobe * MVIVF_ROW_BLOCK, 0);
	float	   *cols = MvivfScratchAlloc(sizeof(float) * (Size) MVIVF_ROW_BLOCK * nlists, 0);
	int		   *sel = palloc(sizeof(int) * keep);
	uint32	   *selectWork = palloc(CP_TOP_SELECT_WORK_BYTES);
	float	   *acc = MvivfScratchAlloc(sizeof(float) * Max(listed, 1) * MVIVF_ROW_BLOCK, 0);
	ProbeArg	pa;
	Buffer		pinned = InvalidBuffer;	/* the document-list page in use */
	int			blk;
	int			l;
	uint32		d;

	for (l = 0; l < nlists; l++)
		slot[l] = -1;
	pa.acc = acc;
	pa.nqPad = MVIVF_ROW_BLOCK;
	pa.limit = listed;

	/* a block of MVIVF_ROW_BLOCK query rows at a time: acc stays small */
	for (blk = 0; blk < st->nq; blk += MVIVF_ROW_BLOCK)
	{
		int			nrows = Min(MVIVF_ROW_BLOCK, st->nq - blk);
		int			nused = 0;
		int			u;
		int			j;

		for (j = 0; j < MVIVF_ROW_BLOCK; j++)
			thresh[j] = -FLT_MAX;

		/*
		 * Each row's scores side by side (ST holds a line of rows per list),
		 * then its keep best centroids by radix selection: a heap of them
		 * cost a mispredicted sift for most scores that entered it.
		 */
		for (l = 0; l < nlists; l++)
		{
			const float *row = st->ST + (Size) l * nqPad + blk;

			for (j = 0; j < nrows; j++)
				cols[(Size) j * nlists + l] = row[j];
		}
		for (j = 0; j < nrows; j++)
		{
			const float *col = cols + (Size) j * nlists;
			int			nsel;
			int			worst = -1;
			int			k;

			CHECK_FOR_INTERRUPTS();
			nsel = cp_top_select(col, nlists, keep, sel, selectWork);
			if (nprobe < nlists)
			{
				/*
				 * The worst of them (the last of equal scores, as the
				 * selection ranks them) is the best unprobed centroid: its
				 * score is t_i.
				 */
				for (k = 0; k < nsel; k++)
					if (worst < 0 || col[sel[k]] <= col[sel[worst]])
						worst = k;
				thresh[j] = col[sel[worst]];
			}
			for (k = 0; k < nsel; k++)
			{
				if (k == worst)
					continue;
				l = sel[k];
				if (slot[l] < 0)
				{
					int			z;

					slot[l] = nused;
					used[nused++] = l;
					for (z = 0; z < MVIVF_ROW_BLOCK; z++)
						V[(Size) slot[l] * MVIVF_ROW_BLOCK + z] = -FLT_MAX;
				}
				V[(Size) slot[l] * MVIVF_ROW_BLOCK + j] = col[l];
			}
		}

		for (d = 0; d < listed; d++)
			memcpy(acc + (Size) d * MVIVF_ROW_BLOCK, thresh, sizeof(thresh));
		/* in list order: the entries' pages are read in order */
		for (l = 0; l < nlists; l++)
		{
			if (slot[l] < 0)
				continue;
			CHECK_FOR_INTERRUPTS();
			pa.v = V + (Size) slot[l] * MVIVF_ROW_BLOCK;
			MvivfScanDocList(scan->indexRelation, &so->meta, offsets[l], offsets[l + 1],
							 ProbeCallback, &pa, &so->npages, &pinned);
			so->nprobed++;
			so->npostings += offsets[l + 1] - offsets[l];
		}
		if (BufferIsValid(pinned))
			ReleaseBuffer(pinned);
		pinned = InvalidBuffer;
		for (u = 0; u < nused; u++)
			slot[used[u]] = -1;
		for (d = 0; d < listed; d++)
		{
			const float *ap = acc + (Size) d * MVIVF_ROW_BLOCK;
			double		sum = 0;

			for (j = 0; j < nrows; j++)
				sum += ap[j];
			score[d] += sum;
		}
	}
	/* slot, used, V, cols and acc go with the pass's context (MvivfScratchAlloc) */
	pfree(sel);
	pfree(selectWork);
}

/*
 * DocCentroidScore
 *		The exact centroid interaction of listed document doc, from its
 *		centroid numbers (read from its location on, and since format
 *		version 4 up to its first group of codes: one or two pages), for
 *		the one-pass tables st.
 */
static double
DocCentroidScore(IndexScanDesc scan, const MvivfApproxState * st, uint32 doc,
				 float *acc)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	BlockNumber blkno;
	bool		done = false;
	double		sum = 0;
	int			i;

	if (so->startBlock[doc] == InvalidBlockNumber)
		MvivfReadDocLocation(index, &so->meta, doc, &so->startBlock[doc],
							 &so->startOffset[doc]);
	blkno = so->startBlock[doc];
	for (i = 0; i < st->nqPad; i++)
		acc[i] = -FLT_MAX;
	while (!done && blkno != InvalidBlockNumber)
	{
		char	   *p;
		char	   *end;
		char	   *tokens;
		MvivfForwardGroup group;
		Buffer		buf = MvivfReadForwardPage(index, blkno, &p, &end);

		so->npages++;
		if (blkno == so->startBlock[doc])
			p = (char *) BufferGetPage(buf) + so->startOffset[doc];
		while (MvivfNextGroup(index, blkno, &p, end, st->codeSize, &group, &tokens))
		{
			/* the document's centroid numbers end at its first codes */
			if (group.docid != doc || group.kind == MVIVF_GROUP_CODES)
			{
				done = true;
				break;
			}
			MvivfCentroidTokens(st, acc, tokens, group.ntokens);
			so->ntokens += group.ntokens;
		}
		blkno = MvivfPageGetOpaque(BufferGetPage(buf))->next;
		UnlockReleaseBuffer(buf);
	}
	for (i = 0; i < st->nq; i++)
		sum += acc[i];
	return sum;
}

/*
 * MvivfExactCentroids
 *		so->cands[from ..] are unrefined candidates in order of their centroid
 *		score: the exact centroid interaction or, for a listed document not
 *		computed yet, its probed bound.  Replace bounds by the exact value,
 *		best first, until k of these candidates have it and the next bound is
 *		no higher than the k-th best of them: then no other candidate's
 *		centroid interaction can reach the k best (its bound is below), so
 *		the next k in order are exactly those of a full pass.  The others
 *		keep their bound, an optimistic estimate.  Re-sorts cands[from ..],
 *		scored as MvivfRefineCandidates scores unrefined ones (centroid score
 *		raised by the gain margin).  Nothing to do without document lists.
 */
void
MvivfExactCentroids(IndexScanDesc scan, int from, int k)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	const MvivfApproxState *st = &so->tables;
	float	   *acc;
	double	   *best;			/* min-heap of the k best */
	int			nbest = 0;
	int			r;

	if (!so->pruned || k <= 0 || from >= so->ncands)
		return;
	acc = palloc(sizeof(float) * st->nqPad);
	best = palloc(sizeof(double) * k);
	for (r = from; r < so->ncands; r++)
	{
		uint32		doc = so->cands[r].docid;
		double		ci = so->ciScore[doc];
		int			pos;

		if (!so->ciExact[doc])
		{
			if (nbest >= k && ci <= best[0])
				break;
			CHECK_FOR_INTERRUPTS();
			ci = DocCentroidScore(scan, st, doc, acc);
			so->ciScore[doc] = ci;
			so->ciExact[doc] = true;
			so->nexact++;
		}
		else if (nbest >= k && ci <= best[0])
			break;
		so->cands[r].score = -(ci + so->gainMargin);
		/* keep the k largest in a min-heap */
		if (nbest < k)
		{
			pos = nbest++;
			while (pos > 0 && best[(pos - 1) / 2] > ci)
			{
				best[pos] = best[(pos - 1) / 2];
				pos = (pos - 1) / 2;
			}
			best[pos] = ci;
		}
		else if (ci > best[0])
		{
			pos = 0;
			for (;;)
			{
				int			child = 2 * pos + 1;

				if (child >= nbest)
					break;
				if (child + 1 < nbest && best[child + 1] < best[child])
					child++;
				if (best[child] >= ci)
					break;
				best[pos] = best[child];
				pos = child;
			}
			best[pos] = ci;
		}
	}
	/* only the scores of cands[from .. r-1] changed */
	MvivfSortChangedPrefix(so->cands + from, r - from, so->ncands - from);
	pfree(acc);
	pfree(best);
}

/*
 * LocateTail
 *		Where the codes of the documents inserted after the build (not in the
 *		document lists) start: they follow the build's last forward page.
 */
static void
LocateTail(IndexScanDesc scan, MvivfMetaPageData * meta)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	BlockNumber blkno = meta->listedForwardTail;

	if (blkno == InvalidBlockNumber)
		blkno = meta->forwardHead;
	while (blkno != InvalidBlockNumber)
	{
		char	   *p;
		char	   *end;
		char	   *tokens;
		MvivfForwardGroup group;
		Buffer		buf;

		CHECK_FOR_INTERRUPTS();
		buf = MvivfReadForwardPage(index, blkno, &p, &end);
		while (MvivfNextGroup(index, blkno, &p, end, meta->codeSize, &group, &tokens))
		{
			uint32		doc = group.docid;

			if (doc < meta->listedDocs || doc >= so->ndocs ||
				so->startBlock[doc] != InvalidBlockNumber)
				continue;
			so->startBlock[doc] = blkno;
			so->startOffset[doc] = (tokens - sizeof(MvivfForwardGroup)) - (char *) BufferGetPage(buf);
		}
		blkno = MvivfPageGetOpaque(BufferGetPage(buf))->next;
		UnlockReleaseBuffer(buf);
		so->npages++;
	}
}

/*
 * PadRows
 *		n rounded up to a multiple of block.
 */
static double
PadRows(int n, int block)
{
	return (double) ((n + block - 1) / block * block);
}

/*
 * ApproxPassBytes
 *		The memory of one pass of the approximate stage over n query rows
 *		(MvivfBuildQueryTables, MvivfPrepareInt8Codes, CentroidPass,
 *		ProbePass): the centroid scores (rows padded to MVIVF_ROW_BLOCK),
 *		then for the int8 kernels (int8) the query rows' int8 tiles and, when
 *		the padding to MVIVF_FIXED_BLOCK differs (a query of up to 16 rows,
 *		or 33-48), the scores again in that stride; for the 16-bit kernels
 *		their fixed point and the lookup tables (nibble tables, and byte
 *		tables built from them when byteTables); for a full pass the
 *		documents x rows maxima; when probing the document lists (probe),
 *		a block of rows' maxima of every listed document, the probed lists'
 *		scores and a block of rows' column of every centroid.
 */
static double
ApproxPassBytes(const MvivfQuantizer * q, int n, uint32 ndocs, uint32 listed,
				bool probe, bool byteTables, bool int8)
{
	double		rows = PadRows(n, MVIVF_ROW_BLOCK);
	double		rowsFixed = PadRows(n, MVIVF_FIXED_BLOCK);
	double		bytes = 4.0 * q->nlists * rows;

	if (int8)
	{
		bytes += (double) cp_codes_query_bytes(n, q->dim);
		if (rows != rowsFixed)
			bytes += 4.0 * q->nlists * rowsFixed;
	}
	else
	{
		bytes += 2.0 * q->nlists * rowsFixed + 64.0 * q->codeSize * rowsFixed;
		if (byteTables)
			bytes += 512.0 * q->codeSize * rowsFixed;
	}
	if (probe)
		bytes += 4.0 * MVIVF_ROW_BLOCK * ((double) listed + (double) MVIVF_ROW_BLOCK * mvivf_probes) +
			(4.0 * MVIVF_ROW_BLOCK + 8.0) * q->nlists;
	else
		bytes += 4.0 * ((double) ndocs + 1) * rows;
	return bytes;
}

/*
 * RowsPerPass
 *		How many query rows one pass of the approximate stage takes so that
 *		its memory (ApproxPassBytes) stays within the limit PostgreSQL gives
 *		hash tables, work_mem x hash_mem_multiplier: its per-document
 *		maxima play that part; at least one.  Each pass reads every forward
 *		page, and probing the document lists needs every row in one pass,
 *		so the limit decides between the probes and full passes: counted as
 *		work_mem alone, and with a second copy of the scores where the int8
 *		kernels share the first (ColPali queries of 17-32 rows), scans of
 *		50,000 pages of 100 rows took two full passes (173 ms a query
 *		against 92 ms probing), and ColPali pages did from about 12,000
 *		pages on.
 */
static int
RowsPerPass(const MvivfQuantizer * q, int nq, uint32 ndocs, uint32 listed,
			bool probe, bool byteTables, bool int8)
{
	double		budget = (double) get_hash_memory_limit();
	int			rows = nq;

	while (rows > 1 &&
		   ApproxPassBytes(q, rows, ndocs, listed, probe, byteTables, int8) > budget)
		rows--;
	return Max(rows, 1);
}

/*
 * StartOrderCmp
 *		Order documents to refine by where their codes are (fewer page
 *		switches); the scan opaque is passed through a static.
 */
static MvivfScanOpaque startOrderScan;

static int
StartOrderCmp(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a;
	uint32		y = *(const uint32 *) b;
	BlockNumber bx = startOrderScan->startBlock[x];
	BlockNumber by = startOrderScan->startBlock[y];

	if (bx != by)
		return bx < by ? -1 : 1;
	return (startOrderScan->startOffset[x] > startOrderScan->startOffset[y]) -
		(startOrderScan->startOffset[x] < startOrderScan->startOffset[y]);
}

/*
 * MvivfRefineCandidates
 *		Replace the approximate scores of so->cands[from .. to-1] by their
 *		quantized MaxSim, and sort so->cands[sortFrom .. to-1] (sortFrom <=
 *		from: candidates refined earlier and not reranked yet take their place
 *		among the new ones).  cands[from .. sampleFrom-1] are the next ones in
 *		centroid-interaction order, cands[sampleFrom .. to-1] (possibly none)
 *		a random sample of the unrefined ones.  The candidates after to keep
 *		their centroid interaction, raised by so->gainMargin, an optimistic
 *		bound of what their residuals would add (set here when there is a
 *		sample): so all approximate distances stay on one scale, an
 *		optimistic estimate of the quantized one, which the rerank's error
 *		margin relies on.
 */
void
MvivfRefineCandidates(IndexScanDesc scan, int from, int to, int sortFrom,
					  int sampleFrom)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	const MvivfQuantizer *q = MvivfGetQuantizer(scan->indexRelation, &so->meta, false);
	int			nq = so->query->nvec;
	int			n = to - from;
	uint32	   *refine;
	uint32	   *ciOrder;
	double	   *refScore;
	double	   *refCI;
	double	   *gain;
	double		shift = 0;
	MemoryContext passCtx;
	int			first;
	int			r;

	if (n <= 0)
		return;
	refine = palloc(sizeof(uint32) * n);
	ciOrder = palloc(sizeof(uint32) * n);
	for (r = 0; r < n; r++)
	{
		uint32		doc = so->cands[from + r].docid;

		refine[r] = ciOrder[r] = doc;
		/* a listed document's codes are found from its location */
		if (so->startBlock[doc] == InvalidBlockNumber && doc < so->meta.listedDocs)
			MvivfReadDocLocation(scan->indexRelation, &so->meta, doc,
								 &so->startBlock[doc], &so->startOffset[doc]);
	}
	/* in forward store order: fewer page switches */
	startOrderScan = so;
	qsort(refine, n, sizeof(uint32), StartOrderCmp);
	refScore = palloc0(sizeof(double) * n);
	refCI = palloc0(sizeof(double) * n);
	passCtx = AllocSetContextCreate(CurrentMemoryContext, "mvivf refine pass",
									ALLOCSET_DEFAULT_SIZES);
	for (first = 0; first < nq; first += so->perPass)
	{
		MemoryContext old = MemoryContextSwitchTo(passCtx);
		MvivfApproxState st;

		if (so->tables.ST != NULL)
			st = so->tables;	/* one pass: kept from the centroid step */
		else
		{
			st.nq = Min(so->perPass, nq - first);
			st.nqPad = (st.nq + MVIVF_ROW_BLOCK - 1) / MVIVF_ROW_BLOCK * MVIVF_ROW_BLOCK;
			st.byteTables = so->byteTables;
			MvivfBuildQueryTables(q, so->query, first, &st);
		}
		RefinePass(scan, &st, refine, n, refScore, refCI);
		MemoryContextSwitchTo(old);
		MemoryContextReset(passCtx);
	}
	MemoryContextDelete(passCtx);

	/*
	 * The gain (quantized - exact centroid interaction) that an unrefined
	 * document may have is bounded from the gains of the random sample of
	 * them, drawn from those very documents.  (The gains of the documents
	 * the centroid interaction ranks best are of another kind: often far
	 * smaller, as their centroid score erred upwards, sometimes far more
	 * spread.)  An unrefined document's ciScore is its centroid interaction
	 * or, after probing the document lists, an upper bound of it: either
	 * way ciScore + gain margin stays an optimistic estimate.
	 */
	gain = palloc_extended(sizeof(double) * Max(so->ndocs, 1), MCXT_ALLOC_HUGE);
	for (r = 0; r < n; r++)
	{
		gain[refine[r]] = refScore[r] - refCI[r];
		if (so->pruned)
		{
			so->ciScore[refine[r]] = refCI[r];
			so->ciExact[refine[r]] = true;
		}
	}
	/*
	 * The gains of the last documents refined in centroid-interaction order
	 * (ciOrder[0 .. sampleFrom-from-1] are the next ones in that order):
	 * the gains of the unrefined documents that follow them resemble theirs
	 * more than those of the random sample (MvivfMayStop).
	 */
	if (sampleFrom > from)
	{
		int			m = Min(MVIVF_EDGE_SAMPLE, so->nedgeGain + (sampleFrom - from));

		if (so->edgeGain == NULL)
			so->edgeGain = palloc(sizeof(double) * MVIVF_EDGE_SAMPLE);
		for (r = 0; r < sampleFrom - from; r++)
			so->edgeGain[so->nedgeGain++ % MVIVF_EDGE_SAMPLE] = gain[ciOrder[r]];
		MvivfErrorStatsOf(so->edgeGain, m, &so->edgeStats);
	}
	if (sampleFrom < to)
	{
		int			nsample = to - sampleFrom;
		int			nprefix = sampleFrom - from;
		double	   *x = palloc(sizeof(double) * nsample);

		for (r = 0; r < nsample; r++)
			x[r] = gain[ciOrder[nprefix + r]];
		MvivfErrorStatsOf(x, nsample, &so->gainStats);

		/* the gains against their exact centroid interaction (ciScore now) */
		{
			double	   *cx = palloc(sizeof(double) * nsample);

			for (r = 0; r < nsample; r++)
				cx[r] = so->ciScore[ciOrder[nprefix + r]];
			MvivfFitGain(cx, x, nsample, &so->gainFit);
			pfree(cx);
		}

		/*
		 * The first of them drawn (a random subset) are the ones whose
		 * errors will model the unrefined documents' (RerankGainSample).
		 */
		so->isGainRerank = palloc0(sizeof(bool) * Max(so->ndocs, 1));
		for (r = 0; r < Min(nsample, MVIVF_GAIN_RERANK); r++)
			so->isGainRerank[ciOrder[nprefix + r]] = true;
		so->gainMargin = MvivfStatsMargin(&so->gainStats, so->ncands - to);
		pfree(x);
	}
	shift = so->gainMargin;
	for (r = to; r < so->ncands; r++)
		so->cands[r].score = -(so->ciScore[so->cands[r].docid] + shift);
	for (r = 0; r < n; r++)
	{
		so->cands[from + r].docid = refine[r];
		so->cands[from + r].score = -refScore[r];
		so->cands[from + r].tid = so->docs[refine[r]].tid;
	}
	MvivfSortCands(so->cands + sortFrom, to - sortFrom);
	so->nrefined = to;
	pfree(refine);
	pfree(ciOrder);
	pfree(gain);
	pfree(refScore);
	pfree(refCI);
}

/*
 * MvivfApproximateStage
 *		Fill so->cands with every live document in approximate order: first
 *		the mvivf.refine documents the centroid interaction ranks best, by
 *		their quantized MaxSim, then the others by their centroid
 *		interaction (documents in order of id when the index is untrained or
 *		the query is NULL).  A scan that goes past the refined documents
 *		refines the rest first (mvivfgettuple).
 */
void
MvivfApproximateStage(IndexScanDesc scan, MvivfMetaPageData * meta)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	uint32		d;

	so->cands = MvivfScratchAlloc(sizeof(MvivfScanCandidate) * Max(so->ndocs, 1), 0);
	so->ncands = 0;

	if (meta->nlists == 0 || so->nullQuery)
	{
		/* a NULL query orders nothing: every row comes, NULL ones too */
		uint16		skip = so->nullQuery ? MVIVF_DOC_DEAD : MVIVF_DOC_UNRANKED;

		for (d = 0; d < so->ndocs; d++)
		{
			if (so->docs[d].flags & skip)
				continue;
			so->cands[so->ncands].docid = d;
			so->cands[so->ncands].score = 0;
			so->cands[so->ncands].tid = so->docs[d].tid;
			so->ncands++;
		}
		so->nrefined = so->ncands;	/* nothing to refine */
		return;
	}

	{
		const MvivfQuantizer *q = MvivfGetQuantizer(index, meta, false);
		int			nq = so->query->nvec;
		int			first;
		uint32	   *offsets = NULL;

		/*
		 * With document lists, bound the centroid interaction of the listed
		 * documents from a few lists per query row; the documents inserted
		 * since the build are refined by every scan.  Exact scans
		 * (mvivf.miss_tolerance = 0) refine every document anyway.
		 */
		bool		prune;

		so->meta = *meta;

		/*
		 * (one pass only: the exact centroid step needs every row's table).
		 * Byte tables (half the loads of the quantized MaxSim) where they
		 * fit with every row (RowsPerPass), else nibble tables: the same sums.
		 */
		prune = meta->listedDocs > 0 && meta->listedDocs <= so->ndocs &&
			mvivf_probes > 0 && mvivf_miss_tolerance > 0;
		so->int8Codes = MvivfUseInt8Codes(q);
		so->byteTables = true;
		if (prune && RowsPerPass(q, nq, so->ndocs, meta->listedDocs, true, true, so->int8Codes) < nq)
		{
			so->byteTables = false;
			prune = RowsPerPass(q, nq, so->ndocs, meta->listedDocs, true, false, so->int8Codes) >= nq;
		}
		if (prune)
			so->perPass = nq;
		else
		{
			so->byteTables = RowsPerPass(q, nq, so->ndocs, 0, false, true, so->int8Codes) >= nq;
			so->perPass = RowsPerPass(q, nq, so->ndocs, 0, false, so->byteTables, so->int8Codes);
		}
		so->startBlock = MvivfScratchAlloc(sizeof(BlockNumber) * Max(so->ndocs, 1), 0);
		so->startOffset = MvivfScratchAlloc(sizeof(uint16) * Max(so->ndocs, 1), 0);
		for (d = 0; d < so->ndocs; d++)
			so->startBlock[d] = InvalidBlockNumber;
		so->ciScore = MvivfScratchAlloc(sizeof(double) * Max(so->ndocs, 1), MCXT_ALLOC_ZERO);

		if (prune)
		{
			offsets = MvivfReadDocListDir(index, meta);
			LocateTail(scan, meta);
		}

		/* 1. centroid interaction of every live document, or its bound */
		for (first = 0; first < nq; first += so->perPass)
		{
			MemoryContext passCtx = AllocSetContextCreate(CurrentMemoryContext, "mvivf centroid pass",
														  ALLOCSET_DEFAULT_SIZES);
			MemoryContext old = MemoryContextSwitchTo(passCtx);
			MvivfApproxState st;

			st.nq = Min(so->perPass, nq - first);
			st.nqPad = (st.nq + MVIVF_ROW_BLOCK - 1) / MVIVF_ROW_BLOCK * MVIVF_ROW_BLOCK;
			st.byteTables = so->byteTables;
			MvivfBuildQueryTables(q, so->query, first, &st);
			if (prune)
				ProbePass(scan, &st, offsets, so->ciScore);
			else
				CentroidPass(scan, meta, &st, so->ciScore);
			MemoryContextSwitchTo(old);
			if (so->perPass >= nq)
				so->tables = st;	/* one pass: keep the tables (scan context) */
			else
				MemoryContextDelete(passCtx);
			so->npasses++;
		}

		/* 2. live documents by centroid interaction, best first */
		for (d = 0; d < so->ndocs; d++)
		{
			if (so->docs[d].flags & MVIVF_DOC_UNRANKED)
				continue;
			if (prune && d >= meta->listedDocs)
			{
				/* unlisted: first in line to be refined */
				so->ciScore[d] = MVIVF_TAIL_SCORE;
				so->ntail++;
			}
			so->cands[so->ncands].docid = d;
			so->cands[so->ncands].score = -so->ciScore[d];
			so->cands[so->ncands].tid = so->docs[d].tid;
			so->ncands++;
		}
		MvivfSortCands(so->cands, so->ncands);
		if (prune)
		{
			so->pruned = true;
			so->ciExact = palloc0(sizeof(bool) * Max(so->ndocs, 1));
			for (d = 0; d < so->ndocs; d++)
				if (d >= meta->listedDocs)
					so->ciExact[d] = true;	/* unlisted: refined first */
			MvivfExactCentroids(scan, 0, Min(mvivf_refine + so->ntail, so->ncands));
		}

		/*
		 * 3. quantized MaxSim of the best mvivf.refine of them (of all of
		 * them for exact results: mvivf.miss_tolerance = 0)
		 */
		if (mvivf_miss_tolerance <= 0)
			MvivfRefineCandidates(scan, 0, so->ncands, 0, so->ncands);
		else
		{
			int			prefix = Min(mvivf_refine + so->ntail, so->ncands);
			int			nsample = Min(MVIVF_REFINE_SAMPLE, so->ncands - prefix);

			/* plus a random sample of the others, to bound their gain */
			MvivfSampleToFront(so, prefix, so->ncands, nsample);
			MvivfRefineCandidates(scan, 0, prefix + nsample, 0, prefix);
		}
	}
}
