/*
 * mvcost.c
 *	  Cost estimate of an mvivf scan.
 *
 * The planner charges a sequential scan with ORDER BY emb <#> q for every
 * row's exact MaxSim at the operator function's cost, per_row = procost *
 * cpu_operator_cost (TOAST reads are not counted, for either path).  The
 * index does the same exact work for R = min(mvivf.candidates, documents)
 * rows, plus an approximate stage whose work is expressed in the same unit,
 * W = the multiply-adds of one exact MaxSim (avg tokens * nq * dim):
 *
 *	cost = per_row * (R + (nq*nlists*dim + nq*T*p/nlists*codeSize) / W)
 *	     + seq_page_cost * P * min(1, nq*p/nlists)
 *	     + random_page_cost * R
 *
 * with T tokens and P pages in the index, p = mvivf.probes, nq the query's
 * rows (32 when the query is not a constant).  Startup cost = total cost:
 * nothing is returned before the rerank.  Without ORDER BY the cost is
 * infinite: the index cannot answer such a scan.
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
	double		perRow;
	double		nq;
	double		probes;
	double		R;
	double		avgTokens;
	double		work;
	double		stage1;
	double		frac;
	double		pages;
	Cost		cost;

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
	R = Min((double) mvivf_candidates, Max(meta.ndocs - meta.ndead, 1));
	avgTokens = meta.ndocs > 0 ? (double) meta.ntokens / meta.ndocs : 1;
	work = Max(avgTokens * nq * Max(meta.dim, 1), 1);
	if (meta.nlists > 0)
	{
		probes = Min(mvivf_probes, (double) meta.nlists);
		stage1 = nq * meta.nlists * meta.dim +
			nq * (double) meta.ntokens * probes / meta.nlists * meta.codeSize;
		frac = Min(1.0, nq * probes / meta.nlists);
	}
	else
	{
		/* untrained: every document is reranked */
		R = Max(meta.ndocs - meta.ndead, 1);
		stage1 = 0;
		frac = 1;
	}
	cost = perRow * (R + stage1 / work) + seq_page_cost * pages * frac +
		random_page_cost * R;

	*indexStartupCost = cost;
	*indexTotalCost = cost;
	*indexSelectivity = 1;
	*indexCorrelation = 0;
	*indexPages = pages * frac;
}
