/*
 * maxsim_screen.h
 *	  Screened exact MaxSim: a cheap bf16 pass on AMX tiles finds the
 *	  document rows that can hold a query row's exact maximum, and only those
 *	  rows go through the exact float32 kernel (maxsim_kernels.h).  The result
 *	  has the bits of the unscreened kernel.  PostgreSQL-free.
 *
 * How (maxsim_screen.c has the derivation; docs/multivector.md explains it):
 *	 1. Every document row is rounded to bf16 (optionally split into a high
 *		and a low bf16 part, "split": about 16 significant bits) and its dot
 *		products with the query rows are computed on AMX tiles with float32
 *		accumulation: a_ij.  Its L2 norm |d_i| is computed in float32.
 *	 2. A rigorous bound B_ij = c * |q_j| * |d_i| + A_i covers everything
 *		that separates a_ij from the exact kernel's float32 value e_ij:
 *		|a_ij - e_ij| <= B_ij.
 *	 3. Per query row j, L_j = max over the rows seen of (a_ij - B_ij) is a
 *		lower bound of the exact maximum.  A row with a_ij + B_ij < L_j for
 *		every j is strictly below the exact value of a row that was kept, in
 *		every query row, so it can neither be a maximum nor tie with one;
 *		every other row is kept and folded, in row order, into the exact
 *		kernel's running maxima.
 *	 4. Screening needs finite norms below MVS_NORM_LIMIT (so that nothing
 *		overflows); a query outside that is not screened, and from the batch
 *		of a document row outside it on every row is kept (the rows before
 *		were already decided correctly, see maxsim_screen.c).
 * Without AMX-BF16 nothing is screened (mvs_begin returns 0).
 */
#ifndef MAXSIM_SCREEN_H
#define MAXSIM_SCREEN_H

#include <stddef.h>
#include <stdint.h>

#include "maxsim_kernels.h"

/* Rows and query norms (L2) must be finite and at most this to be screened. */
#define MVS_NORM_LIMIT		0x1p60f

/* Most document rows screened in one batch (mvs_batch_rows gives the number for a dim). */
#define MVS_MAX_BATCH_ROWS	1024

/* A screening state: one query, then any number of documents. */
typedef struct MvsScreen
{
	int			dim;
	int			nquery;
	int			kp;				/* dim rounded up to a multiple of 32 */
	int			nqt;			/* query tiles of 16 rows */
	int			split;			/* 1: hi + lo bf16 parts (3 tile products) */
	int			ok;				/* the query can be screened */
	int			batch;			/* rows per batch (mvs_batch_rows) */
	float		c;				/* relative bound factor */
	float		acoef;			/* A_i = acoef * (2 + qmax + |d_i|) */
	float		qmax;			/* largest query row norm (rounded up) */
	uint32_t   *bhi;			/* query, B tile layout, bf16 pairs */
	uint32_t   *blo;			/* its low parts (split) */
	float	   *cq;				/* c * |q_j| per lane, 0 past nquery */
	float	   *lower;			/* L_j per lane, +Infinity past nquery */
	uint16_t   *ahi;			/* 4 tiles of 16 document rows, bf16, 16 x kp each */
	uint16_t   *alo;			/* their low parts */
	float	   *dn;				/* per tile of the batch: its largest row norm bound */
	float	   *tileb;			/* per tile: B_j, 16 nqt floats */
	float	   *approx;			/* a_ij, batch x (16 nqt) */
	float	   *gather;			/* kept rows, float32, batch x dim */
	int		   *keep;			/* kept row indices of a batch */
	int			doc_on;			/* still screening this document */
	int			amx;			/* products on AMX tiles, else AVX512_BF16 */
	/* counters over all documents since mvs_begin (for benchmarks) */
	int64_t		rows_seen;
	int64_t		rows_kept;
	int64_t		docs_fallback;	/* documents with a row not screenable */
} MvsScreen;

/*
 * Can this process screen?  On AMX-BF16 tiles where present and granted by
 * the OS, else with AVX512_BF16 dot products (AMD Zen 4 and later, Intel
 * Cooper Lake); mvs_uses_amx says which.
 */
extern int	mvs_available(void);
extern int	mvs_uses_amx(void);

/*
 * mvs_prefer_vector
 *		Screen with AVX512_BF16 even where AMX is usable (tests, benchmarks);
 *		for screens begun after the call.
 */
extern void mvs_prefer_vector(int on);

/* Rows per screening batch for dim (a multiple of 16, at most MVS_MAX_BATCH_ROWS). */
extern int	mvs_batch_rows(int dim);

/* Bytes of scratch mvs_begin needs (it aligns them itself). */
extern size_t mvs_scratch_bytes(int nquery, int dim);

/*
 * mvs_begin
 *		Prepare screening of query (nquery x dim float32, row-major) into
 *		scratch (mvs_scratch_bytes).  Returns sc->ok: 1 when this query can
 *		be screened (AMX usable, every query row norm finite and at most
 *		MVS_NORM_LIMIT); 0 otherwise (mvs_stream_rows then keeps every row).
 *		split: 1 for hi + lo bf16 parts (tighter bound, three tile
 *		products), 0 for one bf16 rounding.
 */
extern int	mvs_begin(MvsScreen *sc, const float *query, int nquery, int dim,
					  int split, void *scratch);

/* Start a document: L_j = -Infinity. */
extern void mvs_doc_begin(MvsScreen *sc);

/*
 * mvs_stream_rows / mvs_stream_half_rows
 *		Screen nrows (at most sc->batch) document rows that follow the rows
 *		already given for this document, and fold the kept ones, in row
 *		order, into every query block of st (begun on the same query with
 *		mvk_stream_begin; the kernel kind is st's).  Half rows are widened
 *		exactly (only the kept ones, except when nothing is screened).
 *		Returns the number of rows kept.  After the last rows, mvk_stream_end
 *		gives the bits of the unscreened MaxSim.
 */
extern int	mvs_stream_rows(MvsScreen *sc, MvkStream *st, const float *rows,
							int nrows);
extern int	mvs_stream_half_rows(MvsScreen *sc, MvkStream *st,
								 const uint16_t *rows, int nrows);

/*
 * mvs_screen_rows / mvs_screen_half_rows
 *		The screening step alone: write the indices of the kept rows among
 *		nrows (<= sc->batch), ascending, into sc->keep and return their
 *		number.
 */
extern int	mvs_screen_rows(MvsScreen *sc, const float *rows, int nrows);
extern int	mvs_screen_half_rows(MvsScreen *sc, const uint16_t *rows, int nrows);

/*
 * mvk_maxsim_screened / mvk_maxsim_half_screened
 *		Whole in-memory documents: the bits of mvk_maxsim / mvk_maxsim_half
 *		with the same kind.  sc was begun on this query (any ok);
 *		stream_scratch: mvk_stream_scratch_floats(nquery, dim) floats.
 */
extern double mvk_maxsim_screened(MvkKind kind, MvsScreen *sc, const float *doc,
								  int ndoc, const float *query, int nquery,
								  int dim, float *stream_scratch);
extern double mvk_maxsim_half_screened(MvkKind kind, MvsScreen *sc,
									   const uint16_t *doc, int ndoc,
									   const float *query, int nquery,
									   int dim, float *stream_scratch);

/* Tests only: scale the bound factor c (to check that a broken bound is caught). */
extern void mvs_test_scale_bound(MvsScreen *sc, float factor);

#endif							/* MAXSIM_SCREEN_H */
