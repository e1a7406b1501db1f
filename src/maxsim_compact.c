/*
 * maxsim_compact.c
 *	  MaxSim and <#> for halfmultivector and bitmultivector documents:
 *
 *	 doc             query            score
 *	 halfmultivector multivector      float32 kernel on the widened stored values
 *	 halfmultivector halfmultivector  the same, query widened too
 *	 bitmultivector  multivector      q . (2b - 1): float32 kernel on the +-1 doc
 *	 bitmultivector  bitmultivector   sum_j max_i (D - 2 hamming): +-1 dot products
 *
 * Each is bit-identical to maxsim() of the operands cast to multivector
 * (the widening is exact), so the float kernel's error bound applies
 * unchanged; binary x binary is an exact integer.  The kernels live in
 * src/engine/maxsim_compact.c (PostgreSQL-free); interrupts are checked
 * between blocks of query rows as for multivector.  A stored document is
 * read as it is stored (maxsim_stream.c): out-of-line values chunk by chunk.
 */
#include "postgres.h"

#if PG_VERSION_NUM >= 160000
#include "varatt.h"			/* the varlena macros left postgres.h in 16 */
#endif

#include "access/detoast.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "maxsim_compact.h"
#include "maxsim_kernels.h"
#include "maxsim_stream.h"
#include "multivector.h"

PG_FUNCTION_INFO_V1(maxsim_half_float);
PG_FUNCTION_INFO_V1(maxsim_half_half);
PG_FUNCTION_INFO_V1(maxsim_bit_float);
PG_FUNCTION_INFO_V1(maxsim_bit_bit);
PG_FUNCTION_INFO_V1(negative_maxsim_half_float);
PG_FUNCTION_INFO_V1(negative_maxsim_half_half);
PG_FUNCTION_INFO_V1(negative_maxsim_bit_float);
PG_FUNCTION_INFO_V1(negative_maxsim_bit_bit);

/* Backend-lifetime buffers for a widened document and query. */
static void *doc_buffer = NULL;
static Size doc_buffer_size = 0;
static void *query_buffer = NULL;
static Size query_buffer_size = 0;

/*
 * MaxSimGrowBuffer
 *		A TopMemoryContext buffer of at least `bytes`, kept for reuse: a scan
 *		widens one document per row, and a fresh 0.5 MB allocation per row
 *		would cost more than the widening.
 */
void *
MaxSimGrowBuffer(void **buf, Size *size, Size bytes)
{
	if (bytes > *size)
	{
		if (*buf)
			pfree(*buf);
		*buf = MemoryContextAllocHuge(TopMemoryContext, bytes);
		*size = bytes;
	}
	return *buf;
}

void *
MaxSimDocBuffer(Size bytes)
{
	return MaxSimGrowBuffer(&doc_buffer, &doc_buffer_size, bytes);
}

/*
 * The detoasted query of one call site, kept for the next call with the same
 * stored value (see MaxSimQueryArg).
 */
typedef struct QueryCache
{
	char		pointer[TOAST_POINTER_SIZE];	/* the on-disk TOAST pointer */
	MultiVector *value;			/* its detoasted value, in fn_mcxt */
} QueryCache;

/*
 * MaxSimQueryArg
 *		The query argument, detoasted.  A query that comes from a table, as in
 *		ORDER BY emb <#> (SELECT q FROM queries WHERE ...), reaches every call
 *		as the same on-disk TOAST pointer; fetching it again for each row
 *		would cost as many TOAST chunk reads per row as a binary page has.
 *		The detoasted copy is kept in the call site's fn_extra, keyed by the
 *		pointer (value id and TOAST relation: stored values never change).
 *		*cached tells the caller not to free it.
 */
MultiVector *
MaxSimQueryArg(FunctionCallInfo fcinfo, int argno, bool *cached)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(argno));
	QueryCache *cache = (QueryCache *) fcinfo->flinfo->fn_extra;
	MemoryContext old;

	*cached = false;
	if (!VARATT_IS_EXTERNAL_ONDISK(v) || VARSIZE_EXTERNAL(v) != TOAST_POINTER_SIZE)
		return (MultiVector *) PG_DETOAST_DATUM(PG_GETARG_DATUM(argno));
	*cached = true;
	if (cache != NULL && memcmp(cache->pointer, v, TOAST_POINTER_SIZE) == 0)
		return cache->value;
	if (cache == NULL)
		cache = fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(QueryCache));
	else if (cache->value != NULL)
		pfree(cache->value);
	cache->value = NULL;
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	cache->value = (MultiVector *) detoast_attr(v);
	MemoryContextSwitchTo(old);
	memcpy(cache->pointer, v, TOAST_POINTER_SIZE);
	return cache->value;
}

/* A binary document widened to float32 +-1. */
static const float *
WidenDoc(const MultiVector *doc)
{
	Size		n = (Size) doc->nvec * doc->dim;
	float	   *x = MaxSimDocBuffer(n * sizeof(float));

	mvk_bits_to_pm1(MV_BIT_DATA(doc), doc->nvec, doc->dim, x);
	return x;
}

static double
HalfFloat(const MultiVector *doc, const MultiVector *query)
{
	return MaxSimHalfKernel(MV_HALF_DATA(doc), doc->nvec, query->x,
							query->nvec, doc->dim);
}

static double
HalfHalf(const MultiVector *doc, const MultiVector *query)
{
	Size		nq = (Size) query->nvec * query->dim;
	float	   *q;

	q = MaxSimGrowBuffer(&query_buffer, &query_buffer_size, nq * sizeof(float));
	mvk_half_to_float(mvk_best(), MV_HALF_DATA(query), nq, q);
	return MaxSimHalfKernel(MV_HALF_DATA(doc), doc->nvec, q, query->nvec,
							doc->dim);
}

static double
BitFloat(const MultiVector *doc, const MultiVector *query)
{
	return MaxSimKernelUnscreened(WidenDoc(doc), doc->nvec, query->x,
								  query->nvec, doc->dim);
}

/*
 * BitBit
 *		Hamming MaxSim, a block of query rows at a time with an interrupt
 *		check in between (integer partial sums: the split changes nothing).
 */
static double
BitBit(const MultiVector *doc, const MultiVector *query)
{
	Size		rb = MV_BIT_ROW_BYTES(doc->dim);
	MvkKind		kind = mvk_best();
	double		total = 0.0;
	int			q0;

	for (q0 = 0; q0 < query->nvec; q0 += MVK_QUERY_BLOCK)
	{
		CHECK_FOR_INTERRUPTS();
		total += mvk_hamming_maxsim(kind, MV_BIT_DATA(doc), doc->nvec,
									MV_BIT_DATA(query) + (Size) q0 * rb,
									Min(MVK_QUERY_BLOCK, query->nvec - q0),
									doc->dim);
	}
	return total;
}

/*
 * MaxSimPairScore
 *		MaxSim of in-memory operands whose headers, pair and dimensions the
 *		caller checked (maxsim_stream.c).
 */
double
MaxSimPairScore(const MultiVector *doc, const MultiVector *query)
{
	switch (doc->format)
	{
		case MV_FORMAT_HALF:
			return query->format == MV_FORMAT_HALF ? HalfHalf(doc, query) :
				HalfFloat(doc, query);
		case MV_FORMAT_BINARY:
			return query->format == MV_FORMAT_BINARY ? BitBit(doc, query) :
				BitFloat(doc, query);
		default:
			return MaxSimKernel(doc->x, doc->nvec, query->x, query->nvec,
								doc->dim);
	}
}

/*
 * MaxSimArgs
 *		maxsim(doc, query) of a call whose argument 0 is the stored document
 *		of docformat and argument 1 the query of queryformat: the document is
 *		read as stored (maxsim_stream.c), the query through MaxSimQueryArg.
 */
double
MaxSimArgs(FunctionCallInfo fcinfo, int docformat, int queryformat)
{
	bool		cached;
	MultiVector *query = MaxSimQueryArg(fcinfo, 1, &cached);
	double		result = MaxSimStored(PG_GETARG_DATUM(0), docformat, query,
									  queryformat);

	if (!cached)
		PG_FREE_IF_COPY(query, 1);
	return result;
}

/* maxsim(doc, query) and doc <#> query for one pair. */
#define MAXSIM_PAIR(NAME, DOCFMT, QUERYFMT) \
Datum \
maxsim_##NAME(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_FLOAT8(MaxSimArgs(fcinfo, DOCFMT, QUERYFMT)); \
} \
Datum \
negative_maxsim_##NAME(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_FLOAT8(-MaxSimArgs(fcinfo, DOCFMT, QUERYFMT)); \
}

MAXSIM_PAIR(half_float, MV_FORMAT_HALF, MV_FORMAT_FLOAT32)
MAXSIM_PAIR(half_half, MV_FORMAT_HALF, MV_FORMAT_HALF)
MAXSIM_PAIR(bit_float, MV_FORMAT_BINARY, MV_FORMAT_FLOAT32)
MAXSIM_PAIR(bit_bit, MV_FORMAT_BINARY, MV_FORMAT_BINARY)
