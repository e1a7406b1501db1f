/*
 * scalar_levels.h
 *	  The levels of a scalar quantizer shared by every coordinate: mvivf's
 *	  residual codes store, per dimension, which of nb levels stands for the
 *	  residual coordinate (PostgreSQL-free).
 *
 * Trained on a sample of residual coordinates, sorted: first nb buckets of
 * equal population, each level the mean of its bucket; then Lloyd-Max
 * iterations, each cutoff at the midpoint of its two levels (so a code takes
 * the nearest level) and each level the mean of its bucket, until the
 * cutoffs stop moving.  That is the least squared error of the
 * reconstruction for the sample (a local optimum, from a good start).
 * Equal-population buckets alone are far from it where residuals mix
 * scales, as pages do (background rows close to their centroid, content
 * rows far): their inner buckets are spent on tiny residuals and their outer
 * ones are wide.  The outermost thousandth of the sample on each side counts
 * as the value where it starts, so that a few rows of huge norm do not take
 * a level of their own.
 */
#ifndef CP_SCALAR_LEVELS_H
#define CP_SCALAR_LEVELS_H

#include <stdbool.h>
#include <stdint.h>

/* Lloyd-Max iterations at most, and 1 / the share clipped at each end. */
#define CP_LEVELS_ITERATIONS	10000
#define CP_LEVELS_CLIP			1000

/*
 * cp_scalar_levels
 *		Train nb (>= 1) levels into levels[] and nb - 1 cutoffs into
 *		cutoffs[] (non-decreasing) on the n sorted finite values of sorted,
 *		which are clipped in place.  A value v is coded as the number of
 *		cutoffs below it (v > cutoff).  With n == 0 every level and cutoff
 *		is 0.  Returns false when memory ran out (levels and cutoffs then
 *		hold the equal-population solution).
 */
extern bool cp_scalar_levels(float *sorted, int64_t n, int nb,
							 float *levels, float *cutoffs);

#endif							/* CP_SCALAR_LEVELS_H */
