/*
 * maxsim_stream.h
 *	  MaxSim of a document as it is stored (src/maxsim_stream.c): an
 *	  out-of-line value is read chunk by chunk from TOAST (walking the TOAST
 *	  heap where the chunks lie in order) and fed to the kernels as it
 *	  arrives, never copied whole.  Used by the <#> and maxsim functions of
 *	  all three types and by the mvivf exact rerank.
 */
#ifndef MAXSIM_STREAM_H
#define MAXSIM_STREAM_H

#include "postgres.h"

#include "multivector.h"

/* colpali.maxsim_streaming: off materialises every value first (tests, benchmarks). */
extern bool maxsim_streaming;

extern void MaxSimStreamInit(void);

/*
 * Screened exact MaxSim (src/maxsim_screening.c, src/engine/maxsim_screen.h):
 * colpali.maxsim_screening, the screen of a query (NULL when nothing is
 * screened), and the screened in-memory kernels (false when not screening).
 */
struct MvsScreen;
extern bool maxsim_screening;
extern void MaxSimScreeningInit(void);
extern struct MvsScreen *MaxSimScreenFor(const float *query, int nquery, int dim);
extern bool MaxSimScreened(const float *doc, const uint16 *hdoc, int ndoc,
						   const float *query, int nquery, int dim,
						   double *score);
extern double MaxSimKernelUnscreened(const float *doc, int ndoc,
									 const float *query, int nquery, int dim);

/*
 * MaxSimStoredScore
 *		MaxSim of the document datum `doc` (any storage form: inline, short,
 *		compressed, out of line, compressed out of line, indirect) and the
 *		detoasted `query`.  docformat / queryformat: the MV_FORMAT_* the
 *		caller's SQL types expect, or -1 to take what the header says.  The
 *		headers are checked (ERROR data_corrupted); the pairs are those of the
 *		SQL operators (float doc with a float query, half doc with a float or
 *		half query, binary doc with a float or binary query), others are an
 *		ERROR.  Returns false without scoring when the document's D differs
 *		from the query's (*docdim: the document's D), so that the caller can
 *		report it in its own words; true with *score set otherwise.  The
 *		score has the bits of the materialised computation (maxsim_kernels.h).
 */
extern bool MaxSimStoredScore(Datum doc, int docformat, const MultiVector *query,
							  int queryformat, double *score, int *docdim);

/* The same, with the standard ERROR for different dimensions. */
extern double MaxSimStored(Datum doc, int docformat, const MultiVector *query,
						   int queryformat);

/*
 * MaxSim of an in-memory document and query whose headers, pair and
 * dimensions were checked (src/maxsim_compact.c).
 */
extern double MaxSimPairScore(const MultiVector *doc, const MultiVector *query);

/* maxsim(arg 0, arg 1) of an SQL call, for the given formats (maxsim_compact.c). */
extern double MaxSimArgs(FunctionCallInfo fcinfo, int docformat, int queryformat);

#endif							/* MAXSIM_STREAM_H */
