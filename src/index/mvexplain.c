/*
 * mvexplain.c
 *	  What mvivf index scans did, in EXPLAIN (ANALYZE) output.
 *
 * An index access method has no say in EXPLAIN's output in PostgreSQL 15-17
 * (18 adds per-node hooks).  So the scans of a statement record their counters
 * in a small backend-local table (MvivfExplainRecord, called when a scan ends
 * or restarts), and an ExplainOneQuery_hook plans and explains the query as
 * PostgreSQL would, then, for EXPLAIN (ANALYZE) in text format, adds one line
 * per mvivf index that was scanned:
 *
 *	mvivf docs_idx: scans=1 documents=1000 tokens=1030000 refined=256
 *	  pages=4900 passes=1 reranked=80 invisible=0 skipped=0 margin=0.412
 *	  stop=bound
 *
 * (live documents ranked by centroid interaction and their tokens, documents
 * scored from their residual codes, index pages read by the approximate
 * stage, documents reranked exactly from the heap, the largest error margin
 * the adaptive rerank ended with, and why the rerank stopped: bound = no
 * unreranked document could beat the rows returned, all = every document
 * was reranked, budget = mvivf.max_scan_docs or mvivf.candidates, cap =
 * mvivf.max_rerank; several reasons joined by "+" over several scans), and
 * forced=N where documents with a row of norm above 2 were reranked first
 * (MVIVF_DOC_RERANK), and nulls=N where rows whose indexed value is NULL
 * were returned after all the others (MVIVF_DOC_NULL).  Other formats are
 * left untouched (their structure is closed when the plan is done);
 * client_min_messages = debug2 shows the same counters per scan.
 *
 * Plain EXPLAIN (no ANALYZE, text format) instead says, for every mvivf
 * index the plan scans, what its rows are under the settings in force:
 *
 *	mvivf docs_idx: exact order, approximate recall (mvivf.miss_tolerance =
 *	  0.001), at most 20000 documents reranked, NULLs last
 *
 * (PostgreSQL 15-16, where the hook plans the query itself and so sees the
 * plan, and 18, whose explain_per_plan_hook is given the plan; in 17 the
 * hook leaves planning to PostgreSQL and no such line is added).
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#if PG_VERSION_NUM >= 180000
#include "commands/explain_format.h"
#include "commands/explain_state.h"
#endif
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "optimizer/optimizer.h"
#include "portability/instr_time.h"
#include "tcop/tcopprot.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "mvivf.h"

#define MAX_EXPLAINED_INDEXES 8

typedef struct MvivfExplainEntry
{
	Oid			index;
	uint64		scans;
	uint64		documents;
	uint64		tokens;
	uint64		refined;
	uint64		pages;
	uint64		passes;
	uint64		reranked;
	uint64		invisible;
	uint64		skipped;
	uint64		probed;			/* document lists probed */
	uint64		postings;		/* their entries */
	uint64		exact;			/* exact centroid interactions of listed docs */
	uint64		forced;			/* reranked first: a row of norm above 2 */
	uint64		nulls;			/* NULL rows returned after the others */
	double		margin;			/* largest final error margin of a scan */
	uint64		stops[MVIVF_STOP_CAP + 1];	/* scans per stop reason */
}			MvivfExplainEntry;

static MvivfExplainEntry entries[MAX_EXPLAINED_INDEXES];
static int	nentries = 0;
static ExplainOneQuery_hook_type prev_ExplainOneQuery_hook = NULL;

/*
 * MvivfExplainRecord
 *		Add the counters of one finished scan.
 */
void
MvivfExplainRecord(Relation index, MvivfScanOpaque so)
{
	Oid			relid = RelationGetRelid(index);
	MvivfExplainEntry *e = NULL;
	int			i;

	for (i = 0; i < nentries; i++)
		if (entries[i].index == relid)
			e = &entries[i];
	if (e == NULL)
	{
		if (nentries == MAX_EXPLAINED_INDEXES)
			return;
		e = &entries[nentries++];
		memset(e, 0, sizeof(*e));
		e->index = relid;
	}
	e->scans++;
	e->documents += so->ncands;
	e->tokens += so->ntokens;
	e->refined += so->nrefined;
	e->pages += so->npages;
	e->passes += so->npasses;
	e->reranked += so->nreranked;
	e->invisible += so->ninvisible;
	e->skipped += so->nskipped;
	e->probed += so->nprobed;
	e->postings += so->npostings;
	e->exact += so->nexact;
	e->forced += so->nforced;
	e->nulls += so->nnulls;
	e->margin = Max(e->margin, so->errMargin);
	if (so->stopReason >= 0 && so->stopReason <= MVIVF_STOP_CAP)
		e->stops[so->stopReason]++;
}

/* the plan is seen by the ExplainOneQuery_hook up to 16, per plan from 18 */
#define MVIVF_EXPLAIN_SEES_PLAN (PG_VERSION_NUM < 170000 || PG_VERSION_NUM >= 180000)

#if MVIVF_EXPLAIN_SEES_PLAN
/*
 * IsMvivfIndex
 *		Is the relation an index of the access method am (mvivf's)?
 */
static bool
IsMvivfIndex(Oid relid, Oid am)
{
	HeapTuple	tp;
	bool		result = false;

	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (HeapTupleIsValid(tp))
	{
		result = ((Form_pg_class) GETSTRUCT(tp))->relam == am;
		ReleaseSysCache(tp);
	}
	return result;
}

/*
 * CollectMvivfScans
 *		The indexes of access method am (mvivf's) that plan (and the plans
 *		under it) scan, added to *indexes once each.
 */
static void
CollectMvivfScans(Plan *plan, Oid am, List **indexes)
{
	ListCell   *lc;
	List	   *children = NIL;

	if (plan == NULL)
		return;
	check_stack_depth();
	switch (nodeTag(plan))
	{
		case T_IndexScan:
			if (IsMvivfIndex(((IndexScan *) plan)->indexid, am))
				*indexes = list_append_unique_oid(*indexes, ((IndexScan *) plan)->indexid);
			break;
		case T_Append:
			children = ((Append *) plan)->appendplans;
			break;
		case T_MergeAppend:
			children = ((MergeAppend *) plan)->mergeplans;
			break;
		case T_SubqueryScan:
			CollectMvivfScans(((SubqueryScan *) plan)->subplan, am, indexes);
			break;
		case T_CustomScan:
			children = ((CustomScan *) plan)->custom_plans;
			break;
		default:
			break;
	}
	foreach(lc, children)
		CollectMvivfScans((Plan *) lfirst(lc), am, indexes);
	CollectMvivfScans(plan->lefttree, am, indexes);
	CollectMvivfScans(plan->righttree, am, indexes);
}

/*
 * ExplainMvivfContract
 *		Plain EXPLAIN: one line per mvivf index the plan scans, saying which
 *		part of its answer is exact and which approximate under the current
 *		settings (docs/mvivf.md, "The contract").
 */
static void
ExplainMvivfContract(PlannedStmt *stmt, ExplainState *es)
{
	Oid			am = get_index_am_oid("mvivf", true);
	List	   *indexes = NIL;
	ListCell   *lc;
	bool		iterative = mvivf_iterative_scan != MVIVF_ITERATIVE_OFF;
	int			budget = iterative ? mvivf_max_scan_docs : mvivf_candidates;
	const char *which = iterative ? "" : " (mvivf.iterative_scan = off)";

	if (!OidIsValid(am))
		return;
	/* the access method looked up once, not at every index scan node */
	CollectMvivfScans(stmt->planTree, am, &indexes);
	foreach(lc, stmt->subplans)
		CollectMvivfScans((Plan *) lfirst(lc), am, &indexes);
	foreach(lc, indexes)
	{
		char	   *name = get_rel_name(lfirst_oid(lc));
		char		label[NAMEDATALEN + 8];
		char		value[512];

		snprintf(label, sizeof(label), "mvivf %s", name ? name : "?");
		if (mvivf_miss_tolerance > 0)
			snprintf(value, sizeof(value),
					 "exact order, approximate recall (mvivf.miss_tolerance = %g), at most %d documents reranked%s",
					 mvivf_miss_tolerance, budget, which);
		else
			snprintf(value, sizeof(value),
					 "exact order, exact recall while the table has at most %d documents%s",
					 budget, which);
		strlcat(value, ", NULLs last", sizeof(value));
		ExplainPropertyText(label, value, es);
	}
}
#endif

#if PG_VERSION_NUM >= 180000
static explain_per_plan_hook_type prev_explain_per_plan_hook = NULL;

/*
 * MvivfExplainPerPlan
 *		PostgreSQL 18 on: the contract lines of plain EXPLAIN, after each
 *		plan is printed.
 */
static void
MvivfExplainPerPlan(PlannedStmt *plannedstmt, IntoClause *into,
					ExplainState *es, const char *queryString,
					ParamListInfo params, QueryEnvironment *queryEnv)
{
	if (prev_explain_per_plan_hook)
		prev_explain_per_plan_hook(plannedstmt, into, es, queryString,
								   params, queryEnv);
	if (!es->analyze && es->format == EXPLAIN_FORMAT_TEXT)
		ExplainMvivfContract(plannedstmt, es);
}
#endif

/*
 * MvivfExplainQuery
 *		Plan and explain as PostgreSQL does, then add the mvivf counters
 *		(EXPLAIN ANALYZE) or what the plan's mvivf scans promise (EXPLAIN).
 */
static void
MvivfExplainQuery(Query *query, int cursorOptions, IntoClause *into,
			 ExplainState *es, const char *queryString, ParamListInfo params,
			 QueryEnvironment *queryEnv)
{
	int			i;

	nentries = 0;
	if (prev_ExplainOneQuery_hook)
		prev_ExplainOneQuery_hook(query, cursorOptions, into, es, queryString,
								  params, queryEnv);
#if PG_VERSION_NUM >= 170000
	else
		standard_ExplainOneQuery(query, cursorOptions, into, es, queryString,
								 params, queryEnv);
#else
	else
	{
		/* what ExplainOneQuery does without a hook (PostgreSQL 15-16) */
		PlannedStmt *plan;
		instr_time	planstart;
		instr_time	planduration;
		BufferUsage bufusage_start;
		BufferUsage bufusage;

		if (es->buffers)
			bufusage_start = pgBufferUsage;
		INSTR_TIME_SET_CURRENT(planstart);
		plan = pg_plan_query(query, queryString, cursorOptions, params);
		INSTR_TIME_SET_CURRENT(planduration);
		INSTR_TIME_SUBTRACT(planduration, planstart);
		if (es->buffers)
		{
			memset(&bufusage, 0, sizeof(BufferUsage));
			BufferUsageAccumDiff(&bufusage, &pgBufferUsage, &bufusage_start);
		}
		ExplainOnePlan(plan, into, es, queryString, params, queryEnv,
					   &planduration, (es->buffers ? &bufusage : NULL));
		if (!es->analyze && es->format == EXPLAIN_FORMAT_TEXT)
			ExplainMvivfContract(plan, es);
	}
#endif

	if (!es->analyze || es->format != EXPLAIN_FORMAT_TEXT)
		return;
	for (i = 0; i < nentries; i++)
	{
		MvivfExplainEntry *e = &entries[i];
		char	   *name = get_rel_name(e->index);
		char		label[NAMEDATALEN + 8];
		char		value[640];
		static const char *const stopNames[] = {"none", "bound", "all", "budget", "cap"};
		char		stops[64] = "";
		int			r;

		snprintf(label, sizeof(label), "mvivf %s", name ? name : "?");
		snprintf(value, sizeof(value),
				 "scans=" UINT64_FORMAT " documents=" UINT64_FORMAT " tokens=" UINT64_FORMAT
				 " refined=" UINT64_FORMAT " pages=" UINT64_FORMAT " passes=" UINT64_FORMAT
				 " reranked=" UINT64_FORMAT " invisible=" UINT64_FORMAT " skipped=" UINT64_FORMAT,
				 e->scans, e->documents, e->tokens, e->refined, e->pages,
				 e->passes, e->reranked, e->invisible, e->skipped);
		for (r = MVIVF_STOP_BOUND; r <= MVIVF_STOP_CAP; r++)
			if (e->stops[r] > 0)
			{
				if (stops[0] != '\0')
					strlcat(stops, "+", sizeof(stops));
				strlcat(stops, stopNames[r], sizeof(stops));
			}
		snprintf(value + strlen(value), sizeof(value) - strlen(value),
				 " probed=" UINT64_FORMAT " postings=" UINT64_FORMAT " exact=" UINT64_FORMAT,
				 e->probed, e->postings, e->exact);
		if (e->forced > 0)
			snprintf(value + strlen(value), sizeof(value) - strlen(value),
					 " forced=" UINT64_FORMAT, e->forced);
		if (e->nulls > 0)
			snprintf(value + strlen(value), sizeof(value) - strlen(value),
					 " nulls=" UINT64_FORMAT, e->nulls);
		snprintf(value + strlen(value), sizeof(value) - strlen(value),
				 " margin=%.3g stop=%s", e->margin, stops[0] ? stops : "none");
		ExplainPropertyText(label, value, es);
	}
	nentries = 0;
}

/*
 * MvivfExplainInit
 *		Install the hook; called from MvivfInit.
 */
void
MvivfExplainInit(void)
{
	prev_ExplainOneQuery_hook = ExplainOneQuery_hook;
	ExplainOneQuery_hook = MvivfExplainQuery;
#if PG_VERSION_NUM >= 180000
	prev_explain_per_plan_hook = explain_per_plan_hook;
	explain_per_plan_hook = MvivfExplainPerPlan;
#endif
}
