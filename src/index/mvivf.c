/*
 * mvivf.c
 *	  The mvivf access method handler, its reloptions and its settings.
 */
#include "postgres.h"

#include "access/amapi.h"
#include "access/reloptions.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "utils/guc.h"

#include "colpali.h"
#include "mvivf.h"

PG_FUNCTION_INFO_V1(mvivfhandler);

int			mvivf_probes = 256;
int			mvivf_candidates = 100;
int			mvivf_rerank = 24;
int			mvivf_iterative_scan = MVIVF_ITERATIVE_STRICT;
int			mvivf_max_scan_docs = 20000;
int			mvivf_refine = MVIVF_DEFAULT_REFINE;
double		mvivf_miss_tolerance = MVIVF_DEFAULT_MISS_TOLERANCE;
int			mvivf_max_rerank = 0;

static relopt_kind mvivf_relopt_kind;

static const struct config_enum_entry mvivf_iterative_scan_options[] = {
	{"off", MVIVF_ITERATIVE_OFF, false},
	{"strict_order", MVIVF_ITERATIVE_STRICT, false},
	/* 0.1.0 returned rows out of order across batches; now a synonym */
	{"relaxed_order", MVIVF_ITERATIVE_STRICT, true},
	{NULL, 0, false}
};

/*
 * MvivfInit
 *		Register the reloptions and define the mvivf.* settings; called from
 *		_PG_init.
 */
void
MvivfInit(void)
{
	MvivfExplainInit();
	mvivf_relopt_kind = add_reloption_kind();
	add_int_reloption(mvivf_relopt_kind, "lists",
					  "Number of inverted lists (0 chooses 4 * sqrt(tokens))",
					  MVIVF_DEFAULT_LISTS, 0, MVIVF_MAX_LISTS, AccessExclusiveLock);
	add_int_reloption(mvivf_relopt_kind, "bits",
					  "Bits per dimension of the residual codes (1, 2 or 4)",
					  MVIVF_DEFAULT_BITS, 1, 4, AccessExclusiveLock);
	add_int_reloption(mvivf_relopt_kind, "kmeans_iterations",
					  "Iterations of k-means when training the centroids",
					  MVIVF_DEFAULT_ITERS, 1, MVIVF_MAX_ITERS, AccessExclusiveLock);
	add_int_reloption(mvivf_relopt_kind, "samples_per_list",
					  "Sampled token vectors per list used to train the centroids",
					  MVIVF_DEFAULT_SAMPLES, 4, 1024, AccessExclusiveLock);

	DefineCustomIntVariable("mvivf.probes",
							"Centroids whose document lists each query row probes to bound the documents' centroid interaction; 0 reads every document's centroid numbers instead.",
							"Only indexes with document lists (format version 3 on) probe; the exact centroid interaction is then computed for the documents whose bound can still reach the mvivf.refine best.",
							&mvivf_probes, 256, 0, MVIVF_MAX_LISTS,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mvivf.candidates",
							"Most documents one scan reranks when mvivf.iterative_scan is off.",
							"With iterative scans off, a scan ends after reranking this many documents, even if the query asked for more rows.",
							&mvivf_candidates, 100, 1, 100000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mvivf.rerank",
							"Fewest documents reranked exactly before the first row is returned; further batches are half as large.",
							"The scan reranks further batches on its own while unreranked documents could still beat a returned row (see mvivf.miss_tolerance); each reranked document costs one read of the indexed value from the table.",
							&mvivf_rerank, 24, 1, 100000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("mvivf.iterative_scan",
							 "Keep reranking further documents while the query asks for rows.",
							 "strict_order (the default) reranks further batches down the approximate order, up to mvivf.max_scan_docs documents, and never returns a row out of exact order; off stops after mvivf.candidates documents.",
							 &mvivf_iterative_scan, MVIVF_ITERATIVE_STRICT,
							 mvivf_iterative_scan_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mvivf.refine",
							"Fewest documents whose quantized MaxSim is computed from their residual codes.",
							"The approximate stage ranks every document by centroid interaction, then scores this many of the best (and a random sample of the others) from their residual codes; the scan refines more, doubling, while an unrefined document could still beat a returned row.",
							&mvivf_refine, MVIVF_DEFAULT_REFINE, 0, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mvivf.max_scan_docs",
							"Most documents one iterative scan reranks.",
							"A scan that reaches it ends, even if the query asked for more rows; the planner avoids the index when it expects that.",
							&mvivf_max_scan_docs, 20000, 1, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("mvivf.miss_tolerance",
							 "How many documents the adaptive rerank may leave unreranked although they could beat a returned row.",
							 "Before each row, the scan reranks further documents while, under a normal model of this query's approximation errors (mean and spread of approximate - exact distance of the documents reranked last), more than this many unreranked documents are expected to beat the row.  Smaller reranks deeper; 0 reranks and refines every document (exact results).",
							 &mvivf_miss_tolerance, MVIVF_DEFAULT_MISS_TOLERANCE, 0.0, 1000.0,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mvivf.max_rerank",
							"Most documents the adaptive rerank reranks before returning a row (0: no limit but mvivf.max_scan_docs).",
							"Caps the cost of a query on data the approximate stage ranks poorly, at the price of recall; rows rejected by a filter still make the scan go on, up to mvivf.max_scan_docs.",
							&mvivf_max_rerank, 0, 0, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
}

/*
 * mvivfoptions
 *		Parse and check the reloptions.
 */
static bytea *
mvivfoptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"lists", RELOPT_TYPE_INT, offsetof(MvivfOptions, lists)},
		{"bits", RELOPT_TYPE_INT, offsetof(MvivfOptions, bits)},
		{"kmeans_iterations", RELOPT_TYPE_INT, offsetof(MvivfOptions, kmeansIters)},
		{"samples_per_list", RELOPT_TYPE_INT, offsetof(MvivfOptions, samplesPerList)},
	};
	MvivfOptions *opts;

	opts = (MvivfOptions *) build_reloptions(reloptions, validate,
											 mvivf_relopt_kind,
											 sizeof(MvivfOptions),
											 tab, lengthof(tab));
	if (opts && validate && opts->bits == 3)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for mvivf option \"bits\": %d", opts->bits),
				 errdetail("Valid values are 1, 2 and 4.")));
	return (bytea *) opts;
}

/*
 * MvivfGetOptions
 *		The index's options, with defaults when none were given.
 */
MvivfOptions *
MvivfGetOptions(Relation index)
{
	static MvivfOptions defaults = {0, MVIVF_DEFAULT_LISTS, MVIVF_DEFAULT_BITS,
	MVIVF_DEFAULT_ITERS, MVIVF_DEFAULT_SAMPLES};

	if (index->rd_options)
		return (MvivfOptions *) index->rd_options;
	return &defaults;
}

/*
 * mvivfbuildphasename
 *		Names of the build phases shown by pg_stat_progress_create_index.
 */
static char *
mvivfbuildphasename(int64 phasenum)
{
	switch (phasenum)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case PROGRESS_MVIVF_PHASE_SAMPLE:
			return "sampling tokens";
		case PROGRESS_MVIVF_PHASE_KMEANS:
			return "performing k-means";
		case PROGRESS_MVIVF_PHASE_ASSIGN:
			return "assigning tokens";
		case PROGRESS_MVIVF_PHASE_WRITE:
			return "writing lists";
		default:
			return NULL;
	}
}

/*
 * mvivfhandler
 *		The IndexAmRoutine of mvivf.
 */
Datum
mvivfhandler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *amroutine = makeNode(IndexAmRoutine);

	amroutine->amstrategies = 0;
	amroutine->amsupport = 0;
	amroutine->amoptsprocnum = 0;
	amroutine->amcanorder = false;
	amroutine->amcanorderbyop = true;
	amroutine->amcanbackward = false;
	amroutine->amcanunique = false;
	amroutine->amcanmulticol = false;
	amroutine->amoptionalkey = true;
	amroutine->amsearcharray = false;
	amroutine->amsearchnulls = false;
	amroutine->amstorage = false;
	amroutine->amclusterable = false;
	amroutine->ampredlocks = false;
	amroutine->amcanparallel = false;
#if PG_VERSION_NUM >= 170000
	amroutine->amcanbuildparallel = false;
#endif
	amroutine->amcaninclude = false;
	amroutine->amusemaintenanceworkmem = false;
#if PG_VERSION_NUM >= 160000
	amroutine->amsummarizing = false;
#endif
	amroutine->amparallelvacuumoptions = VACUUM_OPTION_NO_PARALLEL;
	amroutine->amkeytype = InvalidOid;

	amroutine->ambuild = mvivfbuild;
	amroutine->ambuildempty = mvivfbuildempty;
	amroutine->aminsert = mvivfinsert;
#if PG_VERSION_NUM >= 170000
	amroutine->aminsertcleanup = NULL;
#endif
	amroutine->ambulkdelete = mvivfbulkdelete;
	amroutine->amvacuumcleanup = mvivfvacuumcleanup;
	amroutine->amcanreturn = NULL;
	amroutine->amcostestimate = mvivfcostestimate;
#if PG_VERSION_NUM >= 180000
	amroutine->amgettreeheight = NULL;
#endif
	amroutine->amoptions = mvivfoptions;
	amroutine->amproperty = NULL;
	amroutine->ambuildphasename = mvivfbuildphasename;
	amroutine->amvalidate = mvivfvalidate;
#if PG_VERSION_NUM >= 160000
	amroutine->amadjustmembers = NULL;
#endif
	amroutine->ambeginscan = mvivfbeginscan;
	amroutine->amrescan = mvivfrescan;
	amroutine->amgettuple = mvivfgettuple;
	amroutine->amgetbitmap = NULL;
	amroutine->amendscan = mvivfendscan;
	amroutine->ammarkpos = NULL;
	amroutine->amrestrpos = NULL;
	amroutine->amestimateparallelscan = NULL;
	amroutine->aminitparallelscan = NULL;
	amroutine->amparallelrescan = NULL;
#if PG_VERSION_NUM >= 180000
	amroutine->amtranslatestrategy = NULL;
	amroutine->amtranslatecmptype = NULL;
#endif

	PG_RETURN_POINTER(amroutine);
}
