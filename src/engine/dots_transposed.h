/*
 * dots_transposed.h
 *	  A few rows against many vectors, the result vector-major
 *	  (PostgreSQL-free): out[l * ld + r] = dot(row r, vector l).
 *
 * mvivf scores every query row against every centroid of the index once per
 * query and reads the scores a centroid at a time.  The rows are transposed
 * once (cp_dots_transpose_rows: CP_DOTS_ROWS rows of dim floats, which stay
 * in L1) and the vectors are read once, from where they lie; a BLAS SGEMM
 * packed the whole vector matrix anew on every call, which cost as much as
 * the product.
 *
 * Every result is one chain of fused multiply-adds over the dimensions in
 * order, starting from zero, so the forms give the same bits; the scalar
 * form (fmaf) is the oracle of the engine test, and fast only where fmaf is
 * one instruction.
 */
#ifndef CP_DOTS_TRANSPOSED_H
#define CP_DOTS_TRANSPOSED_H

#include <stdbool.h>

/* Rows per call: two AVX-512 registers. */
#define CP_DOTS_ROWS	32

typedef enum CpDotsForm
{
	CP_DOTS_SCALAR,
	CP_DOTS_AVX2,				/* AVX2 + FMA */
	CP_DOTS_AVX512				/* AVX-512F */
} CpDotsForm;

/* Can this CPU run the form? */
extern bool cp_dots_form_available(CpDotsForm form);

/* qT[d * CP_DOTS_ROWS + r] = rows[r * dim + d] for r < nr (<= CP_DOTS_ROWS), zero for r >= nr. */
extern void cp_dots_transpose_rows(const float *rows, int nr, int dim, float *qT);

/*
 * out[l * ld + r] = sum over d of vecs[l * dim + d] * qT[d * CP_DOTS_ROWS + r]
 * for l in [l0, l1) and r < nr; the entries from nr to ld - 1 of each line
 * are left alone.  form must be available.
 */
extern void cp_dots_transposed(CpDotsForm form, const float *vecs, int l0,
							   int l1, int dim, const float *qT, int nr,
							   float *out, int ld);

#endif							/* CP_DOTS_TRANSPOSED_H */
