/*
 * maxsim.c
 *	  MaxSim between multivectors: maxsim(doc, query), the <#> operator
 *	  (= -maxsim, so ascending ORDER BY gives the best documents first) and
 *	  maxsim_scalar(), the reference kernel exposed for tests.
 *
 * The kernels themselves (SIMD with runtime dispatch, error bound) live in
 * maxsim_kernels.c, which is free of PostgreSQL so that the benchmark can
 * use them; MaxSimKernel and MaxSimHalfKernel screen the document's rows
 * first where they can (maxsim_screening.c, same bits).  This file adds the dimension check, the scratch buffer and
 * interrupt checks between blocks of query rows; maxsim() and <#> read the
 * stored document through maxsim_stream.c (out-of-line values chunk by
 * chunk, never materialised).
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "maxsim_kernels.h"
#include "maxsim_stream.h"
#include "multivector.h"

PG_FUNCTION_INFO_V1(maxsim);
PG_FUNCTION_INFO_V1(maxsim_scalar);
PG_FUNCTION_INFO_V1(multivector_negative_maxsim);
PG_FUNCTION_INFO_V1(maxsim_kernel);

/*
 * Scratch for the transposed query block, kept for the life of the backend
 * and grown to the largest dimension seen (at most 1 MB for MV_MAX_DIM).
 */
static void *scratch = NULL;
static Size scratch_bytes = 0;

/*
 * GetScratch
 *		Scratch space for a query of dim dimensions.
 */
static float *
GetScratch(int dim)
{
	return MaxSimGrowBuffer(&scratch, &scratch_bytes,
							mvk_scratch_floats(dim) * sizeof(float));
}

/*
 * MaxSimRun
 *		MaxSim with the given kernel, one block of query rows at a time with
 *		an interrupt check in between (a block of the largest allowed doc is
 *		a fraction of a second).  Splitting at block boundaries keeps the
 *		result identical to one kernel call (see maxsim_kernels.h).
 */
static double
MaxSimRun(MvkKind kind, const float *doc, int ndoc, const float *query,
		  int nquery, int dim)
{
	float	   *s = GetScratch(dim);
	double		total = 0.0;
	int			q0;

	for (q0 = 0; q0 < nquery; q0 += MVK_QUERY_BLOCK)
	{
		int			nb = Min(MVK_QUERY_BLOCK, nquery - q0);

		CHECK_FOR_INTERRUPTS();
		total += mvk_maxsim(kind, doc, ndoc, query + (size_t) q0 * dim, nb,
							dim, s);
	}
	return total;
}

/*
 * MaxSimKernel
 *		MaxSim on raw row-major arrays with the best kernel for this CPU.
 */
double
MaxSimKernel(const float *doc, int ndoc, const float *query, int nquery,
			 int dim)
{
	double		score;

	if (MaxSimScreened(doc, NULL, ndoc, query, nquery, dim, &score))
		return score;
	return MaxSimRun(mvk_best(), doc, ndoc, query, nquery, dim);
}

/*
 * MaxSimKernelUnscreened
 *		MaxSimKernel without screening (binary documents widened to +-1 keep
 *		the plain kernel).
 */
double
MaxSimKernelUnscreened(const float *doc, int ndoc, const float *query,
					   int nquery, int dim)
{
	return MaxSimRun(mvk_best(), doc, ndoc, query, nquery, dim);
}

/*
 * MaxSimHalfKernel
 *		MaxSim of a half document and a float32 query with the best kernel,
 *		a block of query rows at a time with interrupt checks: the same bits
 *		as MaxSimKernel on the widened document (maxsim_kernels.h).  The
 *		AVX-512 kernel widens the document chunk by chunk in the scratch
 *		space; the others widen it whole into a buffer first.
 */
double
MaxSimHalfKernel(const uint16 *doc, int ndoc, const float *query, int nquery,
				 int dim)
{
	MvkKind		kind = mvk_best();
	float	   *s = GetScratch(dim);
	float	   *widened = NULL;
	double		total = 0.0;
	int			q0;

	if (MaxSimScreened(NULL, doc, ndoc, query, nquery, dim, &total))
		return total;
	if (kind != MVK_AVX512)
		widened = MaxSimDocBuffer((Size) ndoc * dim * sizeof(float));
	for (q0 = 0; q0 < nquery; q0 += MVK_QUERY_BLOCK)
	{
		int			nb = Min(MVK_QUERY_BLOCK, nquery - q0);

		CHECK_FOR_INTERRUPTS();
		total += mvk_maxsim_half(kind, doc, ndoc, query + (size_t) q0 * dim, nb,
								 dim, s, widened);
	}
	return total;
}

/*
 * CheckSameDims
 *		ERROR unless document and query rows have the same dimension.
 */
static void
CheckSameDims(const MultiVector *doc, const MultiVector *query)
{
	MultiVectorCheckFormat(doc);
	MultiVectorCheckFormat(query);
	if (doc->dim != query->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different multivector dimensions %d and %d",
						doc->dim, query->dim),
				 errdetail("The document has %d dimensions and the query has %d.",
						   doc->dim, query->dim)));
}

/*
 * MaxSimScore
 *		MaxSim of two multivectors (ERROR on a dimension mismatch).
 */
double
MaxSimScore(const MultiVector *doc, const MultiVector *query)
{
	CheckSameDims(doc, query);
	return MaxSimKernel(doc->x, doc->nvec, query->x, query->nvec, doc->dim);
}

/*
 * maxsim
 *		SQL maxsim(doc, query): sum over query rows of the best dot product
 *		with any document row.
 */
Datum
maxsim(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(MaxSimArgs(fcinfo, MV_FORMAT_FLOAT32, MV_FORMAT_FLOAT32));
}

/*
 * multivector_negative_maxsim
 *		The <#> operator: -maxsim(doc, query), smaller is better.
 */
Datum
multivector_negative_maxsim(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(-MaxSimArgs(fcinfo, MV_FORMAT_FLOAT32, MV_FORMAT_FLOAT32));
}

/*
 * maxsim_scalar
 *		maxsim() computed by the scalar reference kernel; by construction it
 *		returns the same bits as maxsim(), which tests check.
 */
Datum
maxsim_scalar(PG_FUNCTION_ARGS)
{
	MultiVector *doc = PG_GETARG_MULTIVECTOR_P(0);
	MultiVector *query = PG_GETARG_MULTIVECTOR_P(1);
	double		result;

	CheckSameDims(doc, query);
	result = MaxSimRun(MVK_SCALAR, doc->x, doc->nvec, query->x, query->nvec,
					   doc->dim);
	PG_FREE_IF_COPY(doc, 0);
	PG_FREE_IF_COPY(query, 1);
	PG_RETURN_FLOAT8(result);
}

/*
 * maxsim_kernel
 *		Name of the kernel maxsim() uses on this CPU: avx512, avx2 or scalar.
 */
Datum
maxsim_kernel(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(mvk_name(mvk_best())));
}
