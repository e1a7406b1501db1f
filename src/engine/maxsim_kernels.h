/*
 * maxsim_kernels.h
 *	  PostgreSQL-free MaxSim kernels (scalar oracle, AVX2+FMA, AVX-512) with
 *	  runtime dispatch.  Used by src/maxsim.c and by bench/maxsim.
 *
 * MaxSim(doc, query) = sum over query rows j of max over doc rows i of
 * <doc_i, query_j>, for row-major float32 matrices doc (ndoc x dim) and
 * query (nquery x dim).
 *
 * Every kernel computes exactly the same floating-point operations, so all
 * kernels return bit-identical results (the scalar kernel is the oracle that
 * tests compare the SIMD kernels against):
 *	 - each dot product is a float32 fused multiply-add chain over k = 0..dim-1
 *	   starting from +0 (s = fmaf(d[k], q[k], s));
 *	 - the maximum over doc rows is taken in row order with m = (m > s) ? m : s
 *	   starting from -Infinity (the semantics of the x86 MAXPS instruction);
 *	 - the maxima are summed in double, in query row order, into one partial
 *	   sum per block of MVK_QUERY_BLOCK query rows; the partial sums are
 *	   added in order (so a caller that splits the query at block boundaries
 *	   and adds the results in order gets the same bits).
 *
 * Error bound: with u = 2^-24 and g = dim*u / (1 - dim*u), each dot product
 * differs from the exact one by at most g * sum_k |d_k q_k|, so
 *	 |MaxSim_kernel - MaxSim_exact| <= g * sum_j max_i sum_k |d_ik q_jk|
 * plus a double-rounding term below nquery * 2^-53 relative.  For
 * L2-normalised rows this is at most nquery * g (about 2.4e-4 for 32 query
 * rows of 128 dims; typical errors are far smaller).  A product or sum that
 * exceeds the float32 range gives +-Infinity or NaN.
 */
#ifndef MAXSIM_KERNELS_H
#define MAXSIM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Kernel implementations, best last. */
typedef enum MvkKind
{
	MVK_SCALAR = 0,
	MVK_AVX2 = 1,				/* AVX2 + FMA, 8 lanes */
	MVK_AVX512 = 2				/* AVX-512F+VL, 16 (+8) lanes */
} MvkKind;

/* Query rows handled per pass over the document (doc streamed once if nquery <= this). */
#define MVK_QUERY_BLOCK		64

/* Floats of a half document widened at a time by the AVX-512 half kernel (32 kB). */
#define MVK_HALF_CHUNK_FLOATS	8192

/*
 * Scratch space (in floats) the SIMD kernels need for a transposed block of
 * query rows; the caller provides it (plus nothing else: the kernels align
 * it themselves, so allocate mvk_scratch_floats() floats exactly).
 */
extern size_t mvk_scratch_floats(int dim);

/* Is this kernel usable on the running CPU (and compiled in)? */
extern int	mvk_available(MvkKind kind);

/* The best available kernel and its name ("scalar", "avx2", "avx512"). */
extern MvkKind mvk_best(void);
extern const char *mvk_name(MvkKind kind);

/*
 * Compute MaxSim with the given kernel (which must be available).  ndoc,
 * nquery, dim >= 1.  scratch: mvk_scratch_floats(dim) floats, unused by the
 * scalar kernel (may be NULL there).
 */
extern double mvk_maxsim(MvkKind kind, const float *doc, int ndoc,
						 const float *query, int nquery, int dim,
						 float *scratch);

/*
 * MaxSim of a half (binary16) document and a float32 query: bit-identical
 * to mvk_maxsim on the exactly widened document.  `widened`: room for
 * ndoc * dim floats, used by the kernels that widen the whole document
 * first (the AVX-512 one widens chunks inside the scratch space).
 */
extern double mvk_maxsim_half(MvkKind kind, const uint16_t *doc, int ndoc,
							  const float *query, int nquery, int dim,
							  float *scratch, float *widened);

/*
 * Streaming MaxSim: the document arrives a few rows at a time (as a stored
 * value is read chunk by chunk) and never exists as one array.  The query is
 * transposed once, at mvk_stream_begin; mvk_stream_rows folds rows into the
 * running maxima of one block of MVK_QUERY_BLOCK query rows (the caller
 * loops over the blocks, with interrupt checks in between, and feeds every
 * row of the document to every block, rows in document order);
 * mvk_stream_end sums the maxima.  The operations, and so the bits, are
 * those of mvk_maxsim on the whole document: each row enters each query
 * row's maximum in row order, and the sums are taken as described above.
 * Rows may be fed in any number of calls; calls of a multiple of 30 rows
 * (all register blocks are 6, 5, 3 or 2 rows) run at full speed.
 */
typedef struct MvkStream
{
	MvkKind		kind;
	int			dim;
	int			nquery;
	const float *query;			/* the caller's, row-major (scalar kernel) */
	float	   *qt;				/* transposed blocks, one every dim * 64 floats */
	float	   *maxima;			/* 64 running maxima per block */
} MvkStream;

/* Scratch (in floats) for a stream of nquery query rows of dim dimensions. */
extern size_t mvk_stream_scratch_floats(int nquery, int dim);

/* Number of query blocks of a stream (ceil(nquery / MVK_QUERY_BLOCK)). */
#define MVK_STREAM_BLOCKS(nquery)	(((nquery) + MVK_QUERY_BLOCK - 1) / MVK_QUERY_BLOCK)

/* Start a stream; query must stay valid until mvk_stream_end. */
extern void mvk_stream_begin(MvkStream *st, MvkKind kind, const float *query,
							 int nquery, int dim, float *scratch);

/*
 * Start the next document on a stream begun on the same query (the
 * transposed blocks in its scratch unchanged): only the maxima are reset.
 */
extern void mvk_stream_restart(MvkStream *st);

/* Fold nrows document rows (row-major) into the maxima of query block b. */
extern void mvk_stream_rows(MvkStream *st, int b, const float *rows, int nrows);

/* The MaxSim of everything fed (at least one row). */
extern double mvk_stream_end(const MvkStream *st);

#endif							/* MAXSIM_KERNELS_H */
