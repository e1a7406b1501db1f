/*
 * mvcost.c
 *	  Cost estimate of an mvivf scan.
 *
 * The planner charges a sequential scan with ORDER BY emb <#> q for every
 * row's exact MaxSim at the operator function's cost, per_row = procost *
 * cpu_operator_cost (TOAST reads are not counted, for either path).  The
 * index does the same exact work for each document it reranks, plus one
 * random page read for it, plus an approximate stage whose work is
 * expressed in the same unit, W = the multiply-adds of one exact MaxSim
 * (avg tokens * nq * dim), one unit per token (or list entry) and query row
 * for a vector max, MVIVF_COST_PER_CODE_BYTE per code byte for the
 * quantized MaxSim (measured on 1,000 ColPali pages, 2-bit codes: with one
 * lookup per code byte a document's quantized MaxSim costs about a third of
 * its exact MaxSim's arithmetic, its centroid interaction a few percent):
 *
 *	centroids = nq*nlists*dim					(query rows x centroids)
 *	probe     = nq * min(nlists, 4*probes) * N/nlists
 *	                                            (list entries read; the rows
 *	                                            of a block of 16 share most
 *	                                            of their probed lists)
 *	ci        = E * avgTokens * nq				(exact centroid interaction)
 *	refine    = R * avgTokens * nq * 1.3 * codeSize	(quantized MaxSim)
 *	stage1    = per_row * (centroids + probe + ci + refine) / W
 *	          + seq_page_cost * (E * number pages + R * forward pages)
 *	                                            (per document; since format
 *	                                            version 4 the exact centroid
 *	                                            interaction reads the pages of
 *	                                            its centroid numbers alone)
 *	rerank    = per_row + random_page_cost			(one document)
 *	startup   = stage1 + F * rerank
 *	total     = startup + (D - F) * rerank
 *
 * with N the entries of the document lists, R = mvivf.refine + 32 the
 * documents refined, E the documents whose exact centroid interaction is
 * computed: those whose probed bound can still reach the R best, taken as
 * min(D, 2 R) (measured at the default 256 probes: about R on 1,000
 * ColPali pages, 1-2 R on 10,000); without
 * document lists (format version 2, an untrained index, or mvivf.probes =
 * 0) there is no probe and E = D (every token's centroid number is read);
 * nq the query's rows (32 when the query is not a constant), D live
 * documents and F the documents reranked before the first row
 * (mvivf.rerank plus the documents flagged to be reranked first, such as
 * inserts unlike the build's data, mvdrift.c; all of them for an untrained
 * index).  The planner scales
 * total - startup by the fraction of rows a LIMIT takes.
 *
 * A scan ends after B documents (mvivf.max_scan_docs, or mvivf.candidates
 * with iterative scans off), so when the query needs more, the index would
 * return too few rows: the rows needed, LIMIT / (fraction of the table that
 * passes the other conditions), are compared with B and the path is
 * disabled when they exceed it, as it is when there is no LIMIT and D > B,
 * and when they exceed half of the documents (a sort is exact and cheaper).
 * Without ORDER BY the cost is infinite: the index cannot answer such a scan.
 */
#include "postgres.h"

#include <math.h>

#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/cost.h"
#include "optimizer/plancat.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
#include "utils/spccache.h"

#include "mvivf.h"

/*
 * Cost units per code byte and query row of the quantized MaxSim: 2 with
 * two nibble lookups per code byte; with one byte-table lookup its time per
 * query fell from 15.3 to 9.9 ms for the same 288 documents (perf, 1,000
 * hard pages), 0.65 of it.
 */
#define MVIVF_COST_PER_CODE_BYTE 1.3

/*
 * A query that needs more than this fraction of the documents is better
 * served by a sort of the whole table, which is exact, than by an index scan,
 * which may skip a row found late (mvscan.c): keep the planner off the index.
 */
#define MVIVF_MAX_FRACTION 0.5

/*
 * What the planner adds for a disabled path before PostgreSQL 18 (its
 * disable_cost); 18 counts disabled nodes instead, and a cost added on top
 * would rank the path below other disabled ones it should be compared with.
 */
#define MVIVF_DISABLE_COST 1.0e10

/*
 * QueryRows
 *		Rows of the query when it is a constant, else 32.
 */
static int
QueryRows(IndexPath *path)
{
	Expr	   *expr = linitial(path->indexorderbys);

	if (IsA(expr, OpExpr) && list_length(((OpExpr *) expr)->args) == 2)
	{
		Node	   *arg = lsecond(((OpExpr *) expr)->args);

		if (IsA(arg, Const) && !((Const *) arg)->constisnull)
		{
			MultiVector *mv = DatumGetMultiVector(((Const *) arg)->constvalue);

			return Max(mv->nvec, 1);
		}
	}
	return 32;
}

/*
 * RowsWanted
 *		How many rows the query will read from this relation: its LIMIT when
 *		the planner knows one, else the planner's tuple fraction, else all.
 */
static double
RowsWanted(PlannerInfo *root, IndexPath *path)
{
	double		relRows = Max(path->indexinfo->rel->rows, 1);

	if (root->limit_tuples > 0)
		return Min(root->limit_tuples, relRows);
	if (root->tuple_fraction >= 1)
		return Min(root->tuple_fraction, relRows);
	if (root->tuple_fraction > 0)
		return Max(root->tuple_fraction * relRows, 1);
	return relRows;
}

/*
 * mvivfcostestimate
 *		amcostestimate for mvivf (formula above).
 */
void
mvivfcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
				  Cost *indexStartupCost, Cost *indexTotalCost,
				  Selectivity *indexSelectivity, double *indexCorrelation,
				  double *indexPages)
{
	Relation	index;
	MvivfMetaPageData meta;
	RelOptInfo *rel = path->indexinfo->rel;
	double		perRow;
	double		nq;
	double		live;
	double		first;
	double		budget;
	double		passing;
	double		needed;
	double		avgTokens;
	double		work;
	double		stage1;
	double		frac;
	double		pages;
	double		rerank;
	Cost		startup;

	if (path->indexorderbys == NIL)
	{
		*indexStartupCost = get_float8_infinity();
		*indexTotalCost = get_float8_infinity();
		*indexSelectivity = 0;
		*indexCorrelation = 0;
		*indexPages = 0;
#if PG_VERSION_NUM >= 180000
		path->path.disabled_nodes = 2;
#endif
		return;
	}

	index = index_open(path->indexinfo->indexoid, NoLock);
	MvivfReadMeta(index, &meta);
	index_close(index, NoLock);

	{
		Expr	   *expr = linitial(path->indexorderbys);
		QualCost	qc;

		qc.startup = 0;
		qc.per_tuple = 0;
		if (IsA(expr, OpExpr))
			add_function_cost(root, get_opcode(((OpExpr *) expr)->opno),
							  (Node *) expr, &qc);
		perRow = Max(qc.per_tuple, cpu_operator_cost);
	}
	nq = QueryRows(path);
	pages = path->indexinfo->pages;
	live = Max((double) meta.ndocs - meta.ndead, 1);
	avgTokens = meta.ndocs > 0 ? (double) meta.ntokens / meta.ndocs : 1;
	work = Max(avgTokens * nq * Max(meta.dim, 1), 1);
	if (meta.nlists > 0)
	{
		double		refined = Min(live, (double) mvivf_refine + 32);
		double		exact = live;
		double		probe = 0;
		double		fwdPages = meta.ndocs > 0 ?
			avgTokens * MvivfForwardTokenSize(meta.codeSize) / BLCKSZ + 1 : 1;
		double		ciPages = fwdPages;

		if (meta.version >= 3 && meta.listedDocs > 0 && mvivf_probes > 0)
		{
			probe = nq * Min((double) meta.nlists, 4.0 * mvivf_probes) *
				meta.npostings / meta.nlists;
			exact = Min(live, 2 * refined);
			if (meta.version >= MVIVF_SPLIT_VERSION)
				ciPages = avgTokens * sizeof(uint16) / BLCKSZ + 1;
		}
		stage1 = nq * meta.nlists * meta.dim + probe + exact * avgTokens * nq +
			refined * avgTokens * nq * MVIVF_COST_PER_CODE_BYTE * meta.codeSize;
		frac = Min(1.0, (exact * ciPages + refined * fwdPages) / Max(pages, 1));
		if (mvivf_iterative_scan == MVIVF_ITERATIVE_OFF)
			budget = Min((double) mvivf_candidates, live);
		else
			budget = Min((double) Max(mvivf_max_scan_docs, mvivf_rerank), live);
		/* and every document flagged to be reranked first, up front */
		first = Min((double) Max(mvivf_rerank, 1) + meta.nforced, live);
		first = Min(first, budget);
	}
	else
	{
		/* untrained: every document is reranked before the first row */
		stage1 = 0;
		frac = 1;
		budget = live;
		first = live;
	}

	rerank = perRow + random_page_cost;
	startup = perRow * stage1 / work + seq_page_cost * pages * frac + first * rerank;
	*indexStartupCost = startup;
	*indexTotalCost = startup + Max(live - first, 0) * rerank;
	*indexSelectivity = 1;
	*indexCorrelation = 0;
	*indexPages = pages * frac;

	/*
	 * Documents the scan must rerank to produce the rows wanted, when the
	 * other conditions pass a fraction `passing` of the table; more than the
	 * scan may rerank means a short result, so keep the planner away.
	 */
	passing = rel->tuples > 0 ? Min(1.0, Max(rel->rows, 1) / rel->tuples) : 1.0;
	needed = RowsWanted(root, path) / passing;
	if ((needed > budget && budget < live) || needed > MVIVF_MAX_FRACTION * live)
	{
#if PG_VERSION_NUM >= 180000
		/* a disabled path counts its disabled nodes first, then its cost */
		path->path.disabled_nodes++;
#else
		*indexStartupCost += MVIVF_DISABLE_COST;
		*indexTotalCost += MVIVF_DISABLE_COST;
#endif
	}
}
