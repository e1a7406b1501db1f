/*
 * mvrank.c
 *	  The approximate stage of an ordered mvivf scan (mvscan.c describes the
 *	  whole scan): the order of candidates, the centroid-interaction and
 *	  refinement passes over the forward store, and the error margins and
 *	  random samples that decide how deep the scan refines and reranks.
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
#define MVIVF_SAMPLE_SEED		UINT64CONST(0x6d76697666)

/*
 * MvivfCandCmp
 *		Order candidates by distance as float8 sorts (NaN after every number),
 *		then by document id.
 */
int
MvivfCandCmp(const MvivfScanCandidate * x, const MvivfScanCandidate * y)
{
	int			c = float8_cmp_internal(x->score, y->score);

	if (c != 0)
		return c;
	return (x->docid > y->docid) - (x->docid < y->docid);
}

static int
CandQsortCmp(const void *a, const void *b)
{
	return MvivfCandCmp(a, b);
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
 * MvivfErrorMargin
 *		How much larger than any of the observed errors x[0 .. n-1] the error
 *		of one of nrem unobserved documents may be: the largest observed one,
 *		or mean + z * standard deviation if larger, with z the normal quantile
 *		that nrem documents exceed mvivf.miss_tolerance times in expectation
 *		(z = 4.75 for 1,000 documents at the default 0.001); never negative.
 *		The errors are those of the documents nearest in approximate rank to
 *		the unobserved ones, so the margin is calibrated on this query and
 *		this index, not on a corpus chosen in advance.
 */
double
MvivfErrorMargin(const double *x, int n, double nrem)
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
 * MvivfSampleToFront
 *		Move k candidates drawn at random from so->cands[lo .. hi-1] to
 *		positions lo .. lo+k-1 (a partial Fisher-Yates shuffle), then sort
 *		the others, lo+k .. hi-1, back into approximate order.
 */
void
MvivfSampleToFront(MvivfScanOpaque so, int lo, int hi, int k)
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
		so->gainMargin = MvivfErrorMargin(x, nsample, so->ncands - to);
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
			MvivfRefineCandidates(scan, 0, so->ncands, 0, so->ncands);
		else
		{
			int			prefix = Min(mvivf_refine, so->ncands);
			int			nsample = Min(MVIVF_REFINE_SAMPLE, so->ncands - prefix);

			/* plus a random sample of the others, to bound their gain */
			MvivfSampleToFront(so, prefix, so->ncands, nsample);
			MvivfRefineCandidates(scan, 0, prefix + nsample, 0, prefix);
		}
	}
}
