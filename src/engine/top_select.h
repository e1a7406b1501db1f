/*
 * top_select.h
 *	  The k best of n float scores, without sorting them (PostgreSQL-free).
 *
 * A radix selection on the scores' order-preserving 32-bit keys: three
 * passes of an 11/11/10-bit histogram find the key of the k-th best score,
 * and one more pass collects the winners.  The cost is a few passes over
 * the scores whatever their order, where a heap of the k best pays a
 * mispredicted sift for most of the scores that enter it (mvivf's probes
 * keep the 257 best of about 4,000 centroid scores for every query row).
 */
#ifndef CP_TOP_SELECT_H
#define CP_TOP_SELECT_H

#include <stdint.h>

/* Bytes of workspace cp_top_select needs (its histograms). */
#define CP_TOP_SELECT_WORK_BYTES	(2048 * sizeof(uint32_t))

/*
 * Write to idx[] the indices of the min(k, n) best of score[0..n), in
 * increasing index order, and return their number.  Best means highest;
 * among equal scores the lower index wins, so the result is the first
 * min(k, n) of a stable descending sort.  Scores are compared as IEEE
 * floats after mapping -0 to +0; a NaN with its sign bit clear ranks above
 * +inf and one with it set below -inf.  work holds
 * CP_TOP_SELECT_WORK_BYTES.
 */
extern int	cp_top_select(const float *score, int n, int k, int *idx,
						  uint32_t *work);

#endif							/* CP_TOP_SELECT_H */
