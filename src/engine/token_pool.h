/*
 * token_pool.h
 *	  Hierarchical token pooling of one multivector (PostgreSQL-free).
 *
 * The rows of a page are grouped by Ward clustering and each group is
 * replaced by the L2-normalised mean of its rows, as colpali-engine's
 * HierarchicalTokenPooler does; docs/pooling.md describes every step, the
 * cluster-count rule and how ties are broken.
 *
 * The caller provides all memory (cp_token_pool_workspace_bytes), so the
 * function owns no resources and its progress callback may even leave it
 * by a non-local jump (the PostgreSQL glue checks for interrupts there).
 */
#ifndef CP_TOKEN_POOL_H
#define CP_TOKEN_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "cp_status.h"

/*
 * Most rows one call may pool.  Memory grows as 12 N^2 bytes and time as
 * N^3 (the distance rows are N-dimensional): 2048 rows need 48 MiB and well
 * under a second, and ColPali / ColQwen pages have about 1,030 / 800 rows.
 */
#define CP_POOL_MAX_ROWS	2048

/* Called now and then; return true to stop with CP_ERR_CANCELLED. */
typedef bool (*CpPoolProgressFn) (void *arg);

/* Rows the pooled result has at most: max(nrows / factor, 1), nrows for factor 1. */
extern int	cp_token_pool_max_clusters(int nrows, int factor);

/* Bytes of workspace cp_token_pool needs for nrows rows (0 if nrows is out of range). */
extern size_t cp_token_pool_workspace_bytes(int nrows);

/*
 * Pool nrows x dim row-major floats "rows" with the given factor (>= 1).
 *
 * labels (nrows ints, may be NULL) receives each row's cluster id, 0-based,
 * in the order of the output rows; pooled (cp_token_pool_max_clusters(...)
 * x dim floats) receives the pooled rows and *npooled their number (which
 * can be below the maximum when merge distances tie).  For factor 1 the
 * rows are copied unchanged and every label is 0, as colpali-engine does.
 * workspace must hold cp_token_pool_workspace_bytes(nrows) bytes, aligned
 * for double.  progress may be NULL.
 */
extern CpStatus cp_token_pool(const float *rows, int nrows, int dim, int factor,
							  void *workspace, int *labels, float *pooled,
							  int *npooled, CpPoolProgressFn progress,
							  void *progress_arg, CpError *err);

/*
 * Tests only (not thread-safe): compute with the portable row functions
 * instead of the SIMD variants this CPU would use; the results must be the
 * same bits.
 */
extern void cp_token_pool_force_generic(bool on);

#endif							/* CP_TOKEN_POOL_H */
