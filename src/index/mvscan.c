/*
 * mvscan.c
 *	  Ordered scans of an mvivf index: ORDER BY emb <#> query.
 *
 * The first amgettuple call does the approximate stage:
 *	1. S = Q x C^T, the score of every query row against every centroid, and
 *	   per query row the lookup tables of the residual codes;
 *	2. centroid interaction: the forward store (mvforward.c) is read from end
 *	   to end and every live document gets sum_i max over its tokens of
 *	   S[i, centroid(token)] (only the centroid numbers are read);
 *	3. the mvivf.refine best of them, and a random sample of the others, get
 *	   their quantized MaxSim, sum_i max over tokens of (S[i, centroid] +
 *	   q_i . decoded residual), read from their codes; they come first, in
 *	   that order, then the others by centroid interaction raised by the
 *	   gain margin, a bound of what their residuals may add fitted on the
 *	   sample (an optimistic estimate on the same scale);
 *	4. a scan that walks past the refined documents, whose reranked rows are
 *	   all consumed (a filter, a large LIMIT), or for which an unrefined
 *	   document could come next, refines more: the refined prefix doubles.
 * The per-row tables are built for as many query rows at a time as fit in
 * work_mem; a query with more rows takes several passes.
 *
 * Then documents are reranked exactly, best approximate first: each one's
 * indexed value is read from the heap under the scan snapshot (invisible
 * rows are dropped) and its exact distance, the very float8 that the <#>
 * operator returns, goes into a min-heap.  Rows are returned from the top of
 * that heap, so the scan's output is in exact non-decreasing distance order
 * (xs_recheckorderby = false), NaN last as float8 sorts it:
 *
 *	- mvivf.rerank documents are reranked before the first row is returned,
 *	  and a random sample of the other refined ones;
 *	- before each row, further batches of mvivf.rerank / 2 documents down the
 *	  approximate order are reranked while no row waits (a WHERE filter
 *	  rejected them, or the LIMIT is large) or while an unreranked document
 *	  (the next one, or the best unrefined one) could still beat the best
 *	  waiting one: its approximate distance less the error margin, fitted
 *	  after each batch on the errors (approximate - exact distance) of the
 *	  random sample and of the second half of the reranked documents, so
 *	  that fewer than mvivf.miss_tolerance unreranked documents are expected
 *	  to exceed it under a normal model (ErrorMargin); docs/mvivf.md, "How
 *	  deep a scan reranks";
 *	- a row of a later batch whose distance is smaller than that of a row
 *	  already returned cannot be returned in order any more: it is skipped
 *	  (counted as missed, like a row the approximate stage ranked too low);
 *	- the scan ends when every live document was reranked or when
 *	  mvivf.max_scan_docs documents were (mvivf.candidates when
 *	  mvivf.iterative_scan = off); it returns what waits without checking
 *	  the bound once mvivf.max_rerank documents were reranked.
 *
 * So the order is always exact; what is approximate is only which rows are
 * found, as with any approximate index.  An untrained index (built on an
 * empty table) has no approximate order: it reranks every document first.
 *
 * Inserts append a document's directory entry before its codes, and scans
 * snapshot the directory first, so codes never belong to a document the
 * scan does not know; codes of a document added after the snapshot are
 * skipped.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "common/pg_prng.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "mvivf.h"

/*
 * Random samples that calibrate the error margins: unrefined documents
 * refined with the first ones, unreranked documents reranked with the first
 * batch.  A fixed seed keeps a query's results reproducible.
 */
#define MVIVF_REFINE_SAMPLE		32
#define MVIVF_RERANK_SAMPLE		16
#define MVIVF_SAMPLE_SEED		UINT64CONST(0x6d76697666)

/*
 * CandCmp
 *		Order candidates by distance as float8 sorts (NaN after every number),
 *		then by document id.
 */
static int
CandCmp(const MvivfScanCandidate * x, const MvivfScanCandidate * y)
{
	int			c = float8_cmp_internal(x->score, y->score);

	if (c != 0)
		return c;
	return (x->docid > y->docid) - (x->docid < y->docid);
}

static int
CandQsortCmp(const void *a, const void *b)
{
	return CandCmp(a, b);
}

/*
 * NormalUpperQuantile
 *		z such that a standard normal variable exceeds z with probability p,
 *		by bisection on erfc (exact enough: it only sets a safety margin).
 */
static double
NormalUpperQuantile(double p)
{
	double		lo = 0;
	double		hi = 40;
	int			i;

	if (p >= 0.5)
		return 0;
	if (p <= 0)
		return hi;
	for (i = 0; i < 60; i++)
	{
		double		mid = (lo + hi) / 2;

		if (0.5 * erfc(mid / M_SQRT2) > p)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

/*
 * ErrorMargin
 *		How much larger than any of the observed errors x[0 .. n-1] the error
 *		of one of nrem unobserved documents may be: the largest observed one,
 *		or mean + z * standard deviation if larger, with z the normal quantile
 *		that nrem documents exceed mvivf.miss_tolerance times in expectation
 *		(z = 4.75 for 1,000 documents at the default 0.001); never negative.
 *		The errors are those of the documents nearest in approximate rank to
 *		the unobserved ones, so the margin is calibrated on this query and
 *		this index, not on a corpus chosen in advance.
 */
static double
ErrorMargin(const double *x, int n, double nrem)
{
	double		max = 0;
	double		sum = 0;
	double		sumsq = 0;
	double		mean;
	double		var;
	int			i;

	if (n <= 0 || nrem <= 0)
		return 0;
	for (i = 0; i < n; i++)
	{
		max = Max(max, x[i]);
		sum += x[i];
	}
	if (n < 2)
		return max;
	mean = sum / n;
	for (i = 0; i < n; i++)
		sumsq += (x[i] - mean) * (x[i] - mean);
	var = sumsq / (n - 1);
	return Max(max, mean + NormalUpperQuantile(mvivf_miss_tolerance / nrem) * sqrt(var));
}

/*
 * SampleToFront
 *		Move k candidates drawn at random from so->cands[lo .. hi-1] to
 *		positions lo .. lo+k-1 (a partial Fisher-Yates shuffle), then sort
 *		the others, lo+k .. hi-1, back into approximate order.
 */
static void
SampleToFront(MvivfScanOpaque so, int lo, int hi, int k)
{
	pg_prng_state prng;
	int			i;

	pg_prng_seed(&prng, MVIVF_SAMPLE_SEED + (uint64) lo);
	for (i = 0; i < k; i++)
	{
		int			j = lo + i + (int) pg_prng_uint64_range(&prng, 0, hi - lo - i - 1);
		MvivfScanCandidate tmp = so->cands[lo + i];

		so->cands[lo + i] = so->cands[j];
		so->cands[j] = tmp;
	}
	pg_qsort(so->cands + lo + k, hi - lo - k, sizeof(MvivfScanCandidate),
			 CandQsortCmp);
}

/*
 * BuildTables
 *		The tables of one pass over query rows first .. first + st->nq - 1:
 *		ST (centroid scores, transposed so that one token's scores for every
 *		query row are contiguous) and the code lookup tables.  Padding rows
 *		are zero.
 */
static void
BuildTables(const MvivfQuantizer * q, const MultiVector *query, int first,
			MvivfApproxState * st)
{
	int			nqPad = st->nqPad;
	int			perByte = 8 / q->nbits;
	int			mask = (1 << q->nbits) - 1;
	float	   *S = palloc_extended(sizeof(float) * (Size) st->nq * q->nlists, MCXT_ALLOC_HUGE);
	float	   *ST = palloc_extended(sizeof(float) * (Size) q->nlists * nqPad,
									 MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	float	   *lut = palloc_extended(sizeof(float) * (Size) q->codeSize * 256 * nqPad,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	int			i;
	int			l;

	MvivfScoreCentroids(q, MV_ROW(query, first), st->nq, S);
	for (i = 0; i < st->nq; i++)
	{
		const float *x = MV_ROW(query, first + i);
		int			b;

		CHECK_FOR_INTERRUPTS();
		for (l = 0; l < q->nlists; l++)
			ST[(Size) l * nqPad + i] = S[(Size) i * q->nlists + l];
		for (b = 0; b < q->codeSize; b++)
		{
			int			v;

			for (v = 0; v < 256; v++)
			{
				float		sum = 0;
				int			j;

				for (j = 0; j < perByte; j++)
				{
					int			d = b * perByte + j;

					if (d < q->dim)
						sum += x[d] * q->weights[(v >> (j * q->nbits)) & mask];
				}
				lut[((Size) b * 256 + v) * nqPad + i] = sum;
			}
		}
	}
	pfree(S);
	st->nlists = q->nlists;
	st->codeSize = q->codeSize;
	st->ST = ST;
	st->lut = lut;
}

/*
 * ReadForwardPage
 *		Pin and share-lock a forward page, checking its kind.
 */
static Buffer
ReadForwardPage(Relation index, BlockNumber blkno, char **start, char **end)
{
	Buffer		buf = ReadBuffer(index, blkno);
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (!(MvivfPageGetOpaque(page)->flags & MVIVF_FORWARD) ||
		((PageHeader) page)->pd_lower > ((PageHeader) page)->pd_upper ||
		((PageHeader) page)->pd_lower < MAXALIGN(SizeOfPageHeaderData))
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a malformed forward page %u",
						RelationGetRelationName(index), blkno)));
	*start = MvivfPageItems(page);
	*end = (char *) page + ((PageHeader) page)->pd_lower;
	return buf;
}

/*
 * NextGroup
 *		Read the group header at *p (within [.., end)) and advance *p past
 *		the group; false at the end of the page.
 */
static bool
NextGroup(Relation index, BlockNumber blkno, char **p, char *end, Size tokSize,
		  MvivfForwardGroup * group, char **tokens)
{
	if (*p + sizeof(MvivfForwardGroup) > end)
		return false;
	memcpy(group, *p, sizeof(MvivfForwardGroup));
	*tokens = *p + sizeof(MvivfForwardGroup);
	if (*tokens + (Size) group->ntokens * tokSize > end)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a malformed forward page %u",
						RelationGetRelationName(index), blkno)));
	*p = *tokens + (Size) group->ntokens * tokSize;
	return true;
}

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
	Size		tokSize = MvivfForwardTokenSize(st->codeSize);
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
		buf = ReadForwardPage(index, blkno, &p, &end);
		while (NextGroup(index, blkno, &p, end, tokSize, &group, &tokens))
		{
			uint32		doc = group.docid;

			if (doc >= so->ndocs || (so->docs[doc].flags & MVIVF_DOC_DEAD))
				continue;
			if (so->startBlock[doc] == InvalidBlockNumber)
			{
				so->startBlock[doc] = blkno;
				so->startOffset[doc] = (tokens - sizeof(MvivfForwardGroup)) - (char *) BufferGetPage(buf);
			}
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
 * RefinePass
 *		Quantized MaxSim of the documents refine[0 .. nrefine-1] (in forward
 *		store order) for the rows of st, added to score[k] (k = position in
 *		refine): each document's groups are read from its first one on.
 */
static void
RefinePass(IndexScanDesc scan, const MvivfApproxState * st,
		   const uint32 *refine, int nrefine, double *score)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	Size		tokSize = MvivfForwardTokenSize(st->codeSize);
	float	   *acc = palloc(sizeof(float) * st->nqPad);
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
		int			i;

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < st->nqPad; i++)
			acc[i] = -FLT_MAX;
		if (blkno == InvalidBlockNumber)
			continue;			/* no codes: keeps its centroid score */
		/* the document's groups follow each other from its first one */
		while (!done && blkno != InvalidBlockNumber)
		{
			Buffer		buf = ReadForwardPage(index, blkno, &p, &end);

			so->npages++;
			if (blkno == so->startBlock[doc])
				p = (char *) BufferGetPage(buf) + so->startOffset[doc];
			while (NextGroup(index, blkno, &p, end, tokSize, &group, &tokens))
			{
				if (group.docid != doc)
				{
					done = true;
					break;
				}
				MvivfScoreTokens(st, acc, tokens, group.ntokens);
			}
			blkno = MvivfPageGetOpaque(BufferGetPage(buf))->next;
			UnlockReleaseBuffer(buf);
		}
		for (i = 0; i < st->nq; i++)
			sum += acc[i];
		score[r] += sum;
	}
	pfree(acc);
}

/*
 * RowsPerPass
 *		How many query rows one pass of the approximate stage takes so that
 *		its per-row tables (centroid scores twice, lookup tables, the
 *		documents x rows maxima) stay within work_mem; at least one.
 */
static int
RowsPerPass(const MvivfQuantizer * q, int nq, uint32 ndocs)
{
	double		perRow = sizeof(float) * (2.0 * q->nlists + (double) q->codeSize * 256 +
										  (double) ndocs + 1);
	double		budget = (double) work_mem * 1024.0;
	double		rows = floor(budget / perRow);

	if (rows < 1)
		return 1;
	return (int) Min(rows, (double) nq);
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
 * RefineCandidates
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
static void
RefineCandidates(IndexScanDesc scan, int from, int to, int sortFrom,
				 int sampleFrom)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	const MvivfQuantizer *q = MvivfGetQuantizer(scan->indexRelation, &so->meta);
	int			nq = so->query->nvec;
	int			n = to - from;
	uint32	   *refine;
	uint32	   *ciOrder;
	double	   *refScore;
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
		refine[r] = ciOrder[r] = so->cands[from + r].docid;
	/* in forward store order: fewer page switches */
	startOrderScan = so;
	qsort(refine, n, sizeof(uint32), StartOrderCmp);
	refScore = palloc0(sizeof(double) * n);
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
			BuildTables(q, so->query, first, &st);
		}
		RefinePass(scan, &st, refine, n, refScore);
		MemoryContextSwitchTo(old);
		MemoryContextReset(passCtx);
	}
	MemoryContextDelete(passCtx);

	/*
	 * The gain (quantized - centroid score) that an unrefined document may
	 * have is bounded from the gains of the random sample of them, drawn
	 * from those very documents.  (The gains of the documents the centroid
	 * interaction ranks best are of another kind: often far smaller, as
	 * their centroid score erred upwards, sometimes far more spread.)
	 */
	gain = palloc_extended(sizeof(double) * Max(so->ndocs, 1), MCXT_ALLOC_HUGE);
	for (r = 0; r < n; r++)
		gain[refine[r]] = refScore[r] - so->ciScore[refine[r]];
	if (sampleFrom < to)
	{
		int			nsample = to - sampleFrom;
		int			nprefix = sampleFrom - from;
		double	   *x = palloc(sizeof(double) * nsample);

		for (r = 0; r < nsample; r++)
			x[r] = gain[ciOrder[nprefix + r]];
		so->gainMargin = ErrorMargin(x, nsample, so->ncands - to);
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
	pg_qsort(so->cands + sortFrom, to - sortFrom, sizeof(MvivfScanCandidate),
			 CandQsortCmp);
	so->nrefined = to;
	pfree(refine);
	pfree(ciOrder);
	pfree(gain);
	pfree(refScore);
}

/*
 * ApproximateStage
 *		Fill so->cands with every live document in approximate order: first
 *		the mvivf.refine documents the centroid interaction ranks best, by
 *		their quantized MaxSim, then the others by their centroid
 *		interaction (documents in order of id when the index is untrained or
 *		the query is NULL).  A scan that goes past the refined documents
 *		refines the rest first (mvivfgettuple).
 */
static void
ApproximateStage(IndexScanDesc scan, MvivfMetaPageData * meta)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	uint32		d;

	so->cands = palloc_extended(sizeof(MvivfScanCandidate) * Max(so->ndocs, 1),
								MCXT_ALLOC_HUGE);
	so->ncands = 0;

	if (meta->nlists == 0 || so->nullQuery)
	{
		for (d = 0; d < so->ndocs; d++)
		{
			if (so->docs[d].flags & MVIVF_DOC_DEAD)
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
		const MvivfQuantizer *q = MvivfGetQuantizer(index, meta);
		int			nq = so->query->nvec;
		int			first;

		so->meta = *meta;
		so->perPass = RowsPerPass(q, nq, so->ndocs);
		so->startBlock = palloc_extended(sizeof(BlockNumber) * Max(so->ndocs, 1), MCXT_ALLOC_HUGE);
		so->startOffset = palloc_extended(sizeof(uint16) * Max(so->ndocs, 1), MCXT_ALLOC_HUGE);
		for (d = 0; d < so->ndocs; d++)
			so->startBlock[d] = InvalidBlockNumber;
		so->ciScore = palloc_extended(sizeof(double) * Max(so->ndocs, 1),
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

		/* 1. centroid interaction of every live document */
		for (first = 0; first < nq; first += so->perPass)
		{
			MemoryContext passCtx = AllocSetContextCreate(CurrentMemoryContext, "mvivf centroid pass",
														  ALLOCSET_DEFAULT_SIZES);
			MemoryContext old = MemoryContextSwitchTo(passCtx);
			MvivfApproxState st;

			st.nq = Min(so->perPass, nq - first);
			st.nqPad = (st.nq + MVIVF_ROW_BLOCK - 1) / MVIVF_ROW_BLOCK * MVIVF_ROW_BLOCK;
			BuildTables(q, so->query, first, &st);
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
			if (so->docs[d].flags & MVIVF_DOC_DEAD)
				continue;
			so->cands[so->ncands].docid = d;
			so->cands[so->ncands].score = -so->ciScore[d];
			so->cands[so->ncands].tid = so->docs[d].tid;
			so->ncands++;
		}
		pg_qsort(so->cands, so->ncands, sizeof(MvivfScanCandidate), CandQsortCmp);

		/*
		 * 3. quantized MaxSim of the best mvivf.refine of them (of all of
		 * them for exact results: mvivf.miss_tolerance = 0)
		 */
		if (mvivf_miss_tolerance <= 0)
			RefineCandidates(scan, 0, so->ncands, 0, so->ncands);
		else
		{
			int			prefix = Min(mvivf_refine, so->ncands);
			int			nsample = Min(MVIVF_REFINE_SAMPLE, so->ncands - prefix);

			/* plus a random sample of the others, to bound their gain */
			SampleToFront(so, prefix, so->ncands, nsample);
			RefineCandidates(scan, 0, prefix + nsample, 0, prefix);
		}
	}
}

/*
 * BeginSearch
 *		Read the query, the metapage and the document directory, run the
 *		approximate stage and decide how far the scan may rerank.
 */
static void
BeginSearch(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	MvivfMetaPageData meta;
	MemoryContext old;

	if (scan->numberOfOrderBys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an mvivf index can only be scanned with ORDER BY ... <#> ...")));
	if (!IsMVCCSnapshot(scan->xs_snapshot))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("mvivf index scans require an MVCC snapshot")));

	old = MemoryContextSwitchTo(so->scanCtx);
	MvivfReadMeta(index, &meta);
	if (scan->orderByData[0].sk_flags & SK_ISNULL)
		so->nullQuery = true;
	else
	{
		so->query = MvivfQueryGetValue(index, scan->orderByData[0].sk_argument);
		if (meta.dim != 0)
			MvivfCheckDim(index, meta.dim, so->query->dim);
	}
	so->docs = MvivfReadDocDir(index, &meta, &so->ndocs);
	ApproximateStage(scan, &meta);

	so->nextCand = 0;
	if (so->nullQuery)
	{
		/* every row's distance is NULL: any order is right, nothing to rerank */
		so->budget = so->ncands;
		so->firstBatch = so->batchSize = Max(so->ncands, 1);
	}
	else if (meta.nlists == 0)
	{
		/* untrained: no approximate order, so every document is reranked first */
		so->budget = so->ncands;
		so->firstBatch = so->batchSize = Max(so->ncands, 1);
	}
	else
	{
		int			rerank = Max(mvivf_rerank, 1);

		if (mvivf_iterative_scan == MVIVF_ITERATIVE_OFF)
			so->budget = Min(so->ncands, mvivf_candidates);
		else
			so->budget = Min(so->ncands, Max(mvivf_max_scan_docs, rerank));
		so->firstBatch = Min(rerank, Max(so->budget, 1));
		so->batchSize = Max(rerank / 2, 1);
		if (mvivf_miss_tolerance <= 0)
			so->firstBatch = Max(so->budget, 1);	/* exact: rerank them all */
	}
	so->heapCap = Max(1, Min(so->budget, so->firstBatch + so->batchSize));
	so->heap = palloc_extended(sizeof(MvivfScanCandidate) * so->heapCap, MCXT_ALLOC_HUGE);
	so->nheap = 0;
	so->returnedAny = false;
	MemoryContextSwitchTo(old);
}

/*
 * HeapPush / HeapPop
 *		The min-heap of reranked rows waiting to be returned.
 */
static void
HeapPush(MvivfScanOpaque so, const MvivfScanCandidate * c)
{
	int			i;

	if (so->nheap == so->heapCap)
	{
		so->heapCap *= 2;
		so->heap = repalloc_huge(so->heap, sizeof(MvivfScanCandidate) * so->heapCap);
	}
	i = so->nheap++;
	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (CandCmp(&so->heap[parent], c) <= 0)
			break;
		so->heap[i] = so->heap[parent];
		i = parent;
	}
	so->heap[i] = *c;
}

static MvivfScanCandidate
HeapPop(MvivfScanOpaque so)
{
	MvivfScanCandidate top = so->heap[0];
	MvivfScanCandidate last = so->heap[--so->nheap];
	int			i = 0;

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= so->nheap)
			break;
		if (child + 1 < so->nheap && CandCmp(&so->heap[child + 1], &so->heap[child]) < 0)
			child++;
		if (CandCmp(&last, &so->heap[child]) <= 0)
			break;
		so->heap[i] = so->heap[child];
		i = child;
	}
	if (so->nheap > 0)
		so->heap[i] = last;
	return top;
}

/*
 * ExactDistance
 *		Fetch the candidate's row under the scan snapshot and compute its
 *		exact distance, the value the <#> operator returns; false when the
 *		row is not visible or NULL.
 */
static bool
ExactDistance(IndexScanDesc scan, MvivfScanCandidate * cand, double *dist)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	ItemPointerData tid = cand->tid;
	bool		call_again = false;
	bool		all_dead = false;
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	bool		found;

	if (so->fetch == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(so->scanCtx->parent);

		so->fetch = table_index_fetch_begin(scan->heapRelation);
		so->slot = table_slot_create(scan->heapRelation, NULL);
		so->indexInfo = BuildIndexInfo(scan->indexRelation);
		so->estate = CreateExecutorState();
		MemoryContextSwitchTo(old);
	}
	found = table_index_fetch_tuple(so->fetch, &tid, scan->xs_snapshot,
									so->slot, &call_again, &all_dead);
	if (!found)
		return false;
	if (so->indexInfo->ii_Expressions != NIL)
	{
		ExprContext *econtext = GetPerTupleExprContext(so->estate);

		econtext->ecxt_scantuple = so->slot;
		FormIndexDatum(so->indexInfo, so->slot, so->estate, values, isnull);
	}
	else
		values[0] = slot_getattr(so->slot, so->indexInfo->ii_IndexAttrNumbers[0],
								 &isnull[0]);
	if (isnull[0])
	{
		ExecClearTuple(so->slot);
		return false;
	}
	/* the operator's own function: exact for every stored format */
	*dist = MvivfExactDistance(scan, values[0]);
	ExecClearTuple(so->slot);
	ResetExprContext(GetPerTupleExprContext(so->estate));
	return true;
}

/*
 * RerankBatch
 *		Rerank up to n more candidates into the heap; false when the scan may
 *		rerank no more.  A row closer than one already returned is skipped:
 *		returning it now would break the order.
 */
static bool
RerankBatch(IndexScanDesc scan, int n)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	MemoryContext tmp;
	int			end;
	int			half;

	end = Min(so->nextCand + n, so->budget);
	if (so->nextCand >= end)
		return false;

	if (so->nullQuery)
	{
		/* no order to honour: hand out the documents as they are */
		for (; so->nextCand < end; so->nextCand++)
			HeapPush(so, &so->cands[so->nextCand]);
		return true;
	}

	if (so->overshoot == NULL)
	{
		so->overshootCap = Max(end, 16);
		so->overshoot = palloc_extended(sizeof(double) * so->overshootCap, MCXT_ALLOC_HUGE);
	}
	tmp = AllocSetContextCreate(CurrentMemoryContext, "mvivf rerank",
								ALLOCSET_DEFAULT_SIZES);
	for (; so->nextCand < end; so->nextCand++)
	{
		MvivfScanCandidate c = so->cands[so->nextCand];
		MemoryContext old;
		double		dist;
		bool		ok;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(tmp);
		ok = ExactDistance(scan, &c, &dist);
		MemoryContextSwitchTo(old);
		MemoryContextReset(tmp);
		so->nreranked++;
		if (!ok)
		{
			so->ninvisible++;
			continue;
		}
		/* how far the approximate distance overshot the exact one */
		if (!isnan(dist) && !isnan(c.score) && so->nextCand < so->nrefined)
		{
			if (so->sampling)
				so->sampleErr[so->nsampleErr++] = c.score - dist;
			else
			{
				if (so->novershoot == so->overshootCap)
				{
					so->overshootCap *= 2;
					so->overshoot = repalloc_huge(so->overshoot, sizeof(double) * so->overshootCap);
				}
				so->overshoot[so->novershoot++] = c.score - dist;
			}
		}
		c.score = dist;
		if (so->returnedAny && float8_cmp_internal(dist, so->lastDistance) < 0)
		{
			so->nskipped++;
			continue;
		}
		HeapPush(so, &c);
	}
	MemoryContextDelete(tmp);

	/*
	 * The margin must bound the errors of the documents not reranked yet.
	 * Those of the second half of the documents reranked in approximate
	 * order are the nearest to them in rank; those of the random sample
	 * stand for all of them.  Both are needed: the documents ranked best
	 * are the ones whose approximate score erred upwards most (the winner's
	 * curse), so errors seen near the head of the order understate those
	 * further down, and a margin from them alone returns rows that a later
	 * batch would beat.
	 */
	half = so->novershoot / 2;
	so->errMargin = Max(ErrorMargin(so->overshoot + half, so->novershoot - half,
									so->ncands - so->nextCand),
						ErrorMargin(so->sampleErr, so->nsampleErr,
									so->ncands - so->nextCand));
	return true;
}

/*
 * RerankSample
 *		Rerank a random sample of the refined documents not reranked yet,
 *		whose errors calibrate the margin (RerankBatch); nothing when they
 *		are few enough for the next batches to cover them.
 */
static void
RerankSample(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	int			lo = so->nextCand;
	int			hi = Min(so->nrefined, so->budget);
	int			k = MVIVF_RERANK_SAMPLE;

	if (so->nullQuery || hi - lo <= 2 * k)
		return;
	SampleToFront(so, lo, hi, k);
	so->sampleErr = palloc(sizeof(double) * k);
	so->sampling = true;
	RerankBatch(scan, k);
	so->sampling = false;
}

/*
 * mvivfbeginscan
 *		Start a scan (ambeginscan).
 */
IndexScanDesc
mvivfbeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	MvivfScanOpaque so = palloc0(sizeof(MvivfScanOpaqueData));

	so->scanCtx = AllocSetContextCreate(CurrentMemoryContext, "mvivf scan",
										ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

/*
 * ReportScan
 *		Say at DEBUG1 what the finished scan did.
 */
static void
ReportScan(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;

	if (!so->started)
		return;
	MvivfExplainRecord(scan->indexRelation, so);
	ereport(DEBUG1,
			(errmsg_internal("mvivf scan of \"%s\": %d approximate passes over %d query rows",
							 RelationGetRelationName(scan->indexRelation),
							 so->npasses, so->query ? so->query->nvec : 0)));
	ereport(DEBUG2,
			(errmsg_internal("mvivf scan of \"%s\": %d documents, " UINT64_FORMAT " tokens, %d refined, " UINT64_FORMAT " pages read, %d reranked, %d invisible, %d skipped out of order",
							 RelationGetRelationName(scan->indexRelation),
							 so->ncands, so->ntokens, so->nrefined,
							 so->npages, so->nreranked, so->ninvisible, so->nskipped)));

}

/*
 * mvivfrescan
 *		Restart a scan with new order-by keys (amrescan).
 */
void
mvivfrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
			int norderbys)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	MemoryContext scanCtx = so->scanCtx;
	IndexFetchTableData *fetch = so->fetch;
	TupleTableSlot *slot = so->slot;
	EState	   *estate = so->estate;
	IndexInfo  *indexInfo = so->indexInfo;

	ReportScan(scan);
	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	MemoryContextReset(scanCtx);
	/* everything else starts afresh; the heap access objects are kept */
	memset(so, 0, sizeof(MvivfScanOpaqueData));
	so->scanCtx = scanCtx;
	so->fetch = fetch;
	so->slot = slot;
	so->estate = estate;
	so->indexInfo = indexInfo;
}

/*
 * mvivfgettuple
 *		Return the next row in exact distance order (amgettuple).
 */
bool
mvivfgettuple(IndexScanDesc scan, ScanDirection dir)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;
	MvivfScanCandidate next;

	if (!so->started)
	{
		MemoryContext old;

		BeginSearch(scan);
		so->started = true;
		pgstat_count_index_scan(scan->indexRelation);
		old = MemoryContextSwitchTo(so->scanCtx);
		RerankBatch(scan, so->firstBatch);
		if (mvivf_miss_tolerance > 0)
			RerankSample(scan);
		MemoryContextSwitchTo(old);
	}

	/*
	 * Rerank further batches while an unreranked document could still come
	 * before the best waiting row: while its approximate distance less the
	 * error margin of this query (ErrorMargin, recomputed after each batch)
	 * is below the row's exact distance.  The depth adapts to the query: a
	 * query whose approximate scores are close to the exact ones stops after
	 * the first batch, one with near-ties and large errors reranks deep.
	 */
	if (!so->nullQuery)
	{
		MemoryContext old = MemoryContextSwitchTo(so->scanCtx);

		so->stopReason = so->budget >= so->ncands ? MVIVF_STOP_ALL : MVIVF_STOP_BUDGET;
		while (so->nextCand < so->budget)
		{
			double		bound = so->cands[so->nextCand].score;
			bool		unrefinedBest = false;

			/*
			 * The documents not refined yet sit after the refined ones, at an
			 * optimistic estimate of their quantized MaxSim
			 * (RefineCandidates): the best of them may come before the next
			 * refined one.
			 */
			if (so->nrefined < so->ncands && so->nrefined > so->nextCand &&
				float8_cmp_internal(so->cands[so->nrefined].score, bound) < 0)
			{
				bound = so->cands[so->nrefined].score;
				unrefinedBest = true;
			}
			if (so->nheap > 0 && so->heap[0].score <= bound - so->errMargin)
			{
				/* nothing unreranked can beat the best waiting row */
				so->stopReason = MVIVF_STOP_BOUND;
				break;
			}
			if (so->nheap > 0 && mvivf_max_rerank > 0 &&
				so->nextCand >= mvivf_max_rerank)
			{
				/* the cap: return what waits, recall may suffer */
				so->stopReason = MVIVF_STOP_CAP;
				break;
			}

			/*
			 * Refine more first when one of them could come next, when the
			 * scan goes past the refined documents, or when every reranked
			 * row has been consumed (a filter rejects rows, or a large
			 * LIMIT): such a scan walks far down the approximate order.  The
			 * refined prefix doubles each time (at least mvivf.refine more).
			 */
			if (so->nrefined < so->ncands &&
				(unrefinedBest ||
				 so->nextCand + so->batchSize > so->nrefined ||
				 (so->nheap == 0 && so->returnedAny)))
			{
				int			more = Max(so->nrefined, Max(mvivf_refine, 1));
				int			to = (int) Min((int64) so->ncands, (int64) so->nrefined + more);

				RefineCandidates(scan, so->nrefined, to, so->nextCand, to);
				continue;
			}
			if (!RerankBatch(scan, so->batchSize))
				break;
		}
		MemoryContextSwitchTo(old);
	}
	else if (so->nheap == 0)
		RerankBatch(scan, so->batchSize);
	if (so->nheap == 0)
		return false;

	next = HeapPop(so);
	so->returnedAny = true;
	so->lastDistance = next.score;
	scan->xs_heaptid = next.tid;
	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	return true;
}

/*
 * mvivfendscan
 *		End a scan (amendscan).
 */
void
mvivfendscan(IndexScanDesc scan)
{
	MvivfScanOpaque so = (MvivfScanOpaque) scan->opaque;

	ReportScan(scan);
	if (so->fetch)
		table_index_fetch_end(so->fetch);
	if (so->slot)
		ExecDropSingleTupleTableSlot(so->slot);
	if (so->estate)
		FreeExecutorState(so->estate);
	MemoryContextDelete(so->scanCtx);
	pfree(so);
	scan->opaque = NULL;
}
