/*
 * pool.c
 *	  Token pooling in SQL: colpali_pool(multivector, integer), the pooling
 *	  forms of the image encoders (colpali_image(bytea, pool_factor) and
 *	  colpali_images(bytea[], pool_factor)) and the colpali.pool_factor
 *	  setting that the one-argument encoders apply.
 *
 * The clustering itself is src/engine/token_pool.c (docs/pooling.md).  Its
 * workspace (12 N^2 bytes, N <= CP_POOL_MAX_ROWS) is palloc'd here, in the
 * caller's memory context, so that an error or a cancel frees it; the
 * engine owns nothing, so its progress callback may raise the interrupt
 * error directly.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "colpali.h"
#include "multivector.h"
#include "pool.h"
#include "token_pool.h"

PG_FUNCTION_INFO_V1(colpali_pool);
PG_FUNCTION_INFO_V1(colpali_image_pooled);
PG_FUNCTION_INFO_V1(colpali_images_pooled);

/* colpali.pool_factor: what the one-argument image encoders apply (1 = none). */
int			colpali_pool_factor = 1;

/* Largest pool factor accepted (any larger one pools a page to one row). */
#define POOL_MAX_FACTOR		1000000

/*
 * PoolInit
 *		Define colpali.pool_factor.  Called from _PG_init.
 */
void
PoolInit(void)
{
	DefineCustomIntVariable("colpali.pool_factor",
							"Token pooling factor applied by colpali_image(bytea) and colpali_images(bytea[]).",
							"1 stores every row of a page; k > 1 keeps at most max(N / k, 1) rows "
							"(hierarchical pooling, see colpali_pool).",
							&colpali_pool_factor,
							1, 1, POOL_MAX_FACTOR,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
}

/*
 * PoolProgress
 *		Engine progress callback: service interrupts (cancel, timeouts).
 */
static bool
PoolProgress(void *arg)
{
	CHECK_FOR_INTERRUPTS();
	return false;
}

/*
 * CheckPoolFactor
 *		ERROR unless factor is a usable pool factor.
 */
void
CheckPoolFactor(int32 factor)
{
	if (factor < 1 || factor > POOL_MAX_FACTOR)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pool factor must be between 1 and %d, not %d",
						POOL_MAX_FACTOR, factor)));
}

/*
 * PoolMultiVector
 *		Hierarchical token pooling of mv with the given factor: a new
 *		multivector (mv itself for factor 1).
 */
MultiVector *
PoolMultiVector(MultiVector *mv, int32 factor)
{
	MultiVector *result;
	float	   *pooled;
	void	   *workspace;
	int			npooled = 0;
	CpError		err = {0};
	CpStatus	st;

	CheckPoolFactor(factor);
	MultiVectorCheckFormat(mv);
	if (factor == 1)
		return mv;
	if (mv->nvec > CP_POOL_MAX_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("colpali_pool supports at most %d rows, the multivector has %d",
						CP_POOL_MAX_ROWS, mv->nvec),
				 errdetail("Pooling needs memory quadratic and time cubic in the number of rows.")));

	workspace = palloc(cp_token_pool_workspace_bytes(mv->nvec));
	pooled = palloc(sizeof(float) * (Size) cp_token_pool_max_clusters(mv->nvec, factor) * mv->dim);
	st = cp_token_pool(mv->x, mv->nvec, mv->dim, factor, workspace, NULL, pooled,
					   &npooled, PoolProgress, NULL, &err);
	pfree(workspace);
	if (st == CP_ERR_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("could not pool the multivector: %s", err.msg)));
	if (st != CP_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not pool the multivector: %s", err.msg)));

	result = InitMultiVector(npooled, mv->dim);
	memcpy(result->x, pooled, sizeof(float) * (Size) npooled * mv->dim);
	pfree(pooled);
	return result;
}

/*
 * colpali_pool
 *		colpali_pool(multivector, factor integer) -> multivector.
 */
Datum
colpali_pool(PG_FUNCTION_ARGS)
{
	int32		factor = PG_GETARG_INT32(1);
	MultiVector *mv;

	CheckPoolFactor(factor);
	mv = PG_GETARG_MULTIVECTOR_P(0);
	PG_RETURN_MULTIVECTOR_P(PoolMultiVector(mv, factor));
}

/*
 * colpali_image_pooled
 *		colpali_image(bytea, pool_factor integer) -> multivector: embed a
 *		page image and pool it (the setting colpali.pool_factor is ignored).
 */
Datum
colpali_image_pooled(PG_FUNCTION_ARGS)
{
	int32		factor = PG_GETARG_INT32(1);
	MultiVector *mv;

	CheckPoolFactor(factor);
	mv = DatumGetMultiVector(colpali_image_unpooled(fcinfo));
	PG_RETURN_MULTIVECTOR_P(PoolMultiVector(mv, factor));
}

/*
 * PoolMultiVectorArray
 *		Pool every non-NULL element of a one-dimensional multivector[].
 */
Datum
PoolMultiVectorArray(Datum array, int32 factor)
{
	ArrayType  *arr = DatumGetArrayTypeP(array);
	Oid			elemtype = ARR_ELEMTYPE(arr);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	int			dims[1];
	int			lbs[1];

	if (factor == 1 || ARR_NDIM(arr) == 0)
		return array;
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign,
					  &elems, &nulls, &nelems);
	for (int i = 0; i < nelems; i++)
	{
		if (nulls[i])
			continue;
		elems[i] = PointerGetDatum(PoolMultiVector(DatumGetMultiVector(elems[i]), factor));
	}
	dims[0] = nelems;
	lbs[0] = ARR_LBOUND(arr)[0];
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, elemtype,
											  typlen, typbyval, typalign));
}

/*
 * colpali_images_pooled
 *		colpali_images(bytea[], pool_factor integer) -> multivector[]: embed
 *		many page images and pool each (colpali.pool_factor is ignored).
 */
Datum
colpali_images_pooled(PG_FUNCTION_ARGS)
{
	int32		factor = PG_GETARG_INT32(1);

	CheckPoolFactor(factor);
	PG_RETURN_DATUM(PoolMultiVectorArray(colpali_images_unpooled(fcinfo), factor));
}
