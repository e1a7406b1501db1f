/*
 * mvtables.c
 *	  The per-query tables of an ordered mvivf scan's approximate stage
 *	  (mvrank.c runs it): every query row's centroid scores and the lookup
 *	  tables that turn a token's residual codes into its quantized score.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "mvivf.h"

/*
 * ToFixed
 *		A score in the fixed point of the quantized MaxSim (saturating).
 */
static inline int16
ToFixed(float v)
{
	float		x = rintf(v * MVIVF_FIXED_SCALE);

	if (!(x > PG_INT16_MIN))
		return PG_INT16_MIN;	/* also NaN: it can never be a maximum */
	if (x > PG_INT16_MAX)
		return PG_INT16_MAX;
	return (int16) x;
}

/*
 * MvivfBuildQueryTables
 *		The tables of one pass over query rows first .. first + st->nq - 1:
 *		ST (centroid scores, transposed so that one token's scores for every
 *		query row are contiguous) and, for the 16-bit kernels, their fixed
 *		point STFixed and the code lookup tables (the AMX kernel needs
 *		neither: MvivfPrepareInt8Codes builds its own).  Padding rows are zero.
 */
void
MvivfBuildQueryTables(const MvivfQuantizer * q, const MultiVector *query,
					  int first, MvivfApproxState * st)
{
	int			nqPad = st->nqPad;
	int			nqFix;
	int			nnib = 2 * q->codeSize;
	int			perNib = 4 / q->nbits;
	int			mask = (1 << q->nbits) - 1;
	float	   *ST;
	int16	   *STFixed;
	int16	   *lut;
	int			i;
	int			l;

	st->nqPadFixed = nqFix = (st->nq + MVIVF_FIXED_BLOCK - 1) / MVIVF_FIXED_BLOCK * MVIVF_FIXED_BLOCK;
	st->int8Codes = MvivfUseInt8Codes(q);
	st->codesQuery = NULL;
	st->STWide = NULL;
	ST = MvivfScratchAlloc(sizeof(float) * (Size) q->nlists * nqPad, MCXT_ALLOC_ZERO);
	STFixed = NULL;
	lut = NULL;
	if (!st->int8Codes)
	{
		STFixed = MvivfScratchAlloc(sizeof(int16) * (Size) q->nlists * nqFix, MCXT_ALLOC_ZERO);
		lut = palloc_extended(sizeof(int16) * (Size) nnib * 16 * nqFix,
							  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	}

	/*
	 * The centroid scores of every row of the pass in one product, written
	 * straight in ST's layout (list-major): the centroids are packed once
	 * per query, not once per block of rows, and nothing is transposed.
	 */
	MvivfScoreCentroidsTransposed(q, MV_ROW(query, first), st->nq, ST, nqPad);
	if (!st->int8Codes)
	{
		for (l = 0; l < q->nlists; l++)
		{
			CHECK_FOR_INTERRUPTS();
			for (i = 0; i < st->nq; i++)
				STFixed[(Size) l * nqFix + i] = ToFixed(ST[(Size) l * nqPad + i]);
		}
	}
	for (i = 0; i < st->nq; i++)
	{
		const float *x = MV_ROW(query, first + i);
		int16	   *rowLut = lut + (Size) (i / MVIVF_FIXED_BLOCK) * nnib * 16 * MVIVF_FIXED_BLOCK +
			i % MVIVF_FIXED_BLOCK;
		int			k;

		CHECK_FOR_INTERRUPTS();
		/* nibble k holds dimensions k * perNib .. (k + 1) * perNib - 1 */
		for (k = 0; k < nnib && !st->int8Codes; k++)
		{
			int			v;

			for (v = 0; v < 16; v++)
			{
				float		sum = 0;
				int			j;

				for (j = 0; j < perNib; j++)
				{
					int			d = k * perNib + j;

					if (d < q->dim)
						sum += x[d] * q->weights[(v >> (j * q->nbits)) & mask];
				}
				rowLut[((Size) k * 16 + v) * MVIVF_FIXED_BLOCK] = ToFixed(sum);
			}
		}
	}
	if (!st->int8Codes && st->byteTables)
	{
		/*
		 * One table per code byte: entry v of byte b is the sum of the
		 * entries of its two nibbles (2b: v & 15, 2b + 1: v >> 4), so a
		 * token's sum is that of the nibble tables, with half the loads.
		 */
		int16	   *bytes = palloc_extended(sizeof(int16) * (Size) q->codeSize * 256 * nqFix,
											MCXT_ALLOC_HUGE);
		int			blk;
		int			b;

		for (blk = 0; blk < nqFix; blk += MVIVF_FIXED_BLOCK)
		{
			const int16 *nib = lut + (Size) blk * nnib * 16;
			int16	   *out = bytes + (Size) blk * q->codeSize * 256;

			CHECK_FOR_INTERRUPTS();
			for (b = 0; b < q->codeSize; b++)
			{
				int			v;

				for (v = 0; v < 256; v++)
				{
					const int16 *lo = nib + ((Size) (2 * b) * 16 + (v & 15)) * MVIVF_FIXED_BLOCK;
					const int16 *hi = nib + ((Size) (2 * b + 1) * 16 + (v >> 4)) * MVIVF_FIXED_BLOCK;
					int16	   *e = out + ((Size) b * 256 + v) * MVIVF_FIXED_BLOCK;
					int			j;

					for (j = 0; j < MVIVF_FIXED_BLOCK; j++)
						e[j] = MvivfSatAdd16(lo[j], hi[j]);
				}
			}
		}
		pfree(lut);
		lut = bytes;
	}
	st->nlists = q->nlists;
	st->codeSize = q->codeSize;
	st->ST = ST;
	st->STFixed = STFixed;
	st->lut = lut;
	if (st->int8Codes)
		MvivfPrepareInt8Codes(q, query, first, st);
}
