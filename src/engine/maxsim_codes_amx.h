/*
 * maxsim_codes_amx.h
 *	  Quantized MaxSim of residual-coded document rows in int8, on AMX-INT8
 *	  tiles or with AVX-512 VNNI (maxsim_codes_vnni.c), the same numbers:
 *	  for every query row i and a document's tokens t (each a centroid
 *	  number and a residual code of nbits per dimension),
 *		acc[i] = max(acc[i], cs[list_t][i] + q_i . decode(code_t))
 *		ciAcc[i] = max(ciAcc[i], cs[list_t][i])
 *	  where cs holds the query rows' centroid scores and decode(code)[d] =
 *	  weights[value of dimension d].  PostgreSQL-free.
 *
 * How: the weights (2^nbits reconstruction values shared by every
 * dimension) are rounded to int8 levels on one scale (largest magnitude
 * 127), and each query row to int8 on its own scale (largest magnitude
 * 127).  A block of 16 tokens is decoded to int8 rows (AVX-512 VBMI: one
 * multishift picks each dimension's bits, one shuffle maps them to their
 * level) and multiplied by 32 query rows at a time on tiles (TDPBSSD, 64
 * dimensions per product, int32 sums, exact); the sums are scaled back to
 * float by the two scales and added to the token's centroid score.  CPUs
 * without AMX but with AVX-512 VNNI and VBMI (AMD Zen 4 and later, Intel
 * Ice Lake and later) compute the same int32 sums with VPDPBUSD and fold
 * them with the same float operations in the same order: both kernels give
 * the same bits.
 *
 * Error: with sq the row's scale and sw the levels', |q_d - sq Q_d| <= sq/2
 * and |w - sw W| <= sw/2, so a token's q . decode(code) errs by at most
 *		sw/2 sum_d |q_d| + sq/2 sum_d |w_{c_d}| + dim sq sw / 4
 * (cp_codes_error_bound), and so does the maximum over tokens; the float
 * arithmetic after the exact int32 sums adds a few ulps.  Both roundings
 * are below 0.4 % of the largest value, so for typical rows the error is
 * far smaller than the bound (which assumes every rounding errs the same
 * way) and than the residual quantization error itself.
 */
#ifndef MAXSIM_CODES_AMX_H
#define MAXSIM_CODES_AMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Query rows per block (two 16-column tiles) and dimensions per product. */
#define CP_CODES_BLOCK	32
#define CP_CODES_KSTEP	64

/* Which form runs cp_codes_maxsim. */
typedef enum CpCodesKernel
{
	CP_CODES_NONE = 0,			/* neither is usable here */
	CP_CODES_AMX,				/* AMX-INT8 tiles */
	CP_CODES_VNNI,				/* AVX-512 VNNI, codes decoded with VBMI */
	CP_CODES_VNNI_BW			/* the same, decoded with AVX-512BW alone */
} CpCodesKernel;

typedef struct CpCodesQuery
{
	CpCodesKernel kernel;		/* set by cp_codes_prepare; may be lowered */
	int			nq;				/* query rows */
	int			nblocks;		/* blocks of CP_CODES_BLOCK rows */
	int			dim;			/* a multiple of CP_CODES_KSTEP */
	int			nbits;			/* 1, 2 or 4 */
	int8_t		levels[16];		/* int8 level of each code value */
	float		levelScale;		/* sw: weight ~ sw * level */
	float	   *scale;			/* [nblocks * 32]: sq * sw per row (0 past nq) */
	int32_t    *vnniStart;		/* [nblocks * 32]: -128 x the sum of each int8
								 * query row, where the VNNI form's sums start */
	int8_t	   *tiles;			/* [nblocks][dim / 64][2][16][64] B tiles */
	int8_t	   *scratch;		/* [2][16][dim]: decoded rows of two token blocks */
} CpCodesQuery;

/*
 * cp_codes_amx_usable
 *		Whether this CPU runs cp_codes_maxsim: AMX-INT8 granted by the
 *		kernel, AVX-512BW and AVX-512 VBMI.
 */
extern bool cp_codes_amx_usable(void);

/*
 * cp_codes_vnni_usable
 *		Whether this CPU runs the VNNI form: AVX-512BW and VNNI (then
 *		CP_CODES_VNNI_BW is usable; CP_CODES_VNNI needs VBMI too).
 */
extern bool cp_codes_vnni_usable(void);
extern bool cp_codes_vbmi_usable(void);

/* Whether codes of this shape are supported (dim % 64 == 0, nbits 1, 2, 4). */
extern bool cp_codes_shape_supported(int dim, int nbits);

/* Bytes of memory cp_codes_prepare needs for nq rows of dim dimensions. */
extern size_t cp_codes_query_bytes(int nq, int dim);

/*
 * cp_codes_prepare
 *		Fill cq for query rows q[0 .. nq) (row i at q + i * ldq, dim
 *		floats) and the 2^nbits weights, in mem (cp_codes_query_bytes
 *		bytes, any alignment).  A row with a value that is not finite gets
 *		scale 0: only its centroid scores count.  cq->kernel is the first
 *		of AMX, VNNI, VNNI_BW this CPU runs, else NONE; a caller may set
 *		a later one of them (tests).
 */
extern void cp_codes_prepare(CpCodesQuery *cq, const float *q, size_t ldq,
							 int nq, int dim, int nbits,
							 const float *weights, void *mem);

/*
 * cp_codes_maxsim
 *		Fold n tokens into acc and ciAcc (nblocks * 32 floats each): token t
 *		has centroid number lists[t] (uint16, any alignment; one not below
 *		nlists is skipped) and its code at codes + t * codeSize; cs + l *
 *		ldcs holds the nblocks * 32 centroid scores of list l.  Runs the
 *		form cq->kernel names (not NONE); single-threaded (uses
 *		cq->scratch).
 */
extern void cp_codes_maxsim(const CpCodesQuery *cq, const void *lists,
							const uint8_t *codes, size_t codeSize, int n,
							const float *cs, size_t ldcs, int nlists,
							float *acc, float *ciAcc);

/*
 * cp_codes_error_bound
 *		The bound above on |cp_codes_maxsim's q_i . decode(code) - the exact
 *		sum_d q[i][d] * weights[c_d]| for row i of cq (its float query row
 *		q) and one code.
 */
extern double cp_codes_error_bound(const CpCodesQuery *cq, int i,
								   const float *q, const float *weights,
								   const uint8_t *code);

/* The VNNI form (maxsim_codes_vnni.c); cp_codes_maxsim calls it. */
extern void cp_codes_maxsim_vnni(const CpCodesQuery *cq, const void *lists,
								 const uint8_t *codes, size_t codeSize, int n,
								 const float *cs, size_t ldcs, int nlists,
								 float *acc, float *ciAcc);

#endif							/* MAXSIM_CODES_AMX_H */
