/*
 * explain.c
 *	  colpali_explain(page, query): where a page matched a query.
 *
 * For every query row, the page row with the largest dot product and that
 * dot product, computed with exactly the operations of the MaxSim kernels
 * (a float32 fused multiply-add chain per dot product, maxima taken in row
 * order as MAXPS does), so that the scores of one query add up, in query
 * row order, to maxsim(page, query) (exactly, for queries of up to 64
 * rows; the kernels add longer queries in blocks).  For image rows the
 * patch position in the page's grid is returned too, so an application can
 * highlight the matched region: ColPali pages start with grid_width^2 image
 * rows (32 x 32 patches at 448 px) followed by the prompt's text rows.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "multivector.h"

PG_FUNCTION_INFO_V1(colpali_explain);

/*
 * BestRow
 *		The page row whose dot product with q is largest (the last of equal
 *		ones, as the kernels' maximum keeps the later value), and that dot
 *		product.
 */
static int
BestRow(const MultiVector *page, const float *q, float *score)
{
	float		m = -INFINITY;
	int			best = 0;
	int			i;

	for (i = 0; i < page->nvec; i++)
	{
		const float *d = MV_ROW(page, i);
		float		s = 0.0f;
		int			k;

		for (k = 0; k < page->dim; k++)
			s = fmaf(d[k], q[k], s);
		if (!(m > s))
		{
			m = s;
			best = i;
		}
	}
	*score = m;
	return best;
}

/*
 * colpali_explain
 *		colpali_explain(page, query, grid_width, image_rows) returns one row
 *		per query row: (query_row, page_row, score, patch_y, patch_x).  Rows
 *		count from 0.  patch_y/patch_x are NULL unless grid_width is given
 *		and the page row is an image row (page_row < image_rows, which
 *		defaults to grid_width^2).
 */
Datum
colpali_explain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MultiVector *page = PG_GETARG_MULTIVECTOR_P(0);
	MultiVector *query = PG_GETARG_MULTIVECTOR_P(1);
	int32		gridWidth = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2);
	int64		imageRows;
	int			j;

	MultiVectorCheckFormat(page);
	MultiVectorCheckFormat(query);
	if (page->dim != query->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different multivector dimensions %d and %d", page->dim, query->dim)));
	if (!PG_ARGISNULL(2) && gridWidth <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("grid_width must be positive")));
	if (!PG_ARGISNULL(3))
	{
		imageRows = PG_GETARG_INT32(3);
		if (imageRows < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("image_rows must not be negative")));
	}
	else
		imageRows = (int64) gridWidth * gridWidth;

	InitMaterializedSRF(fcinfo, 0);
	for (j = 0; j < query->nvec; j++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, true, true};
		float		score;
		int			row;

		CHECK_FOR_INTERRUPTS();
		row = BestRow(page, MV_ROW(query, j), &score);
		values[0] = Int32GetDatum(j);
		values[1] = Int32GetDatum(row);
		values[2] = Float8GetDatum((double) score);
		if (gridWidth > 0 && row < imageRows)
		{
			values[3] = Int32GetDatum(row / gridWidth);
			values[4] = Int32GetDatum(row % gridWidth);
			nulls[3] = nulls[4] = false;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
