/*
 * gemm_bf16.h
 *	  bf16 x bf16 -> fp32 GEMM for the CPU backend's opt-in bf16 precision
 *	  (AVX512_BF16 VDPBF16PS), and the fp32 -> bf16 rounding it needs.
 */
#ifndef CP_GEMM_BF16_H
#define CP_GEMM_BF16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Columns of W handled by one packed panel (four 16-lane vectors). */
#define CP_BF16_PANEL_N 64
/* k-block of a packed panel: 64 x 1024 bf16 = 128 KB, resident in L2. */
#define CP_BF16_PANEL_K 1024

/* Does this CPU execute VDPBF16PS (and AVX-512F)? */
extern bool cp_cpu_has_avx512bf16(void);

/* bf16 with round-to-nearest-even, NaN kept a (quiet) NaN. */
extern void cp_round_to_bf16(const float *src, uint16_t *dst, size_t n);

/*
 * Per-thread packing buffer for cp_gemm_bf16_cols, in uint32 units
 * (CP_BF16_PANEL_N * CP_BF16_PANEL_K / 2).
 */
#define CP_BF16_PACK_WORDS ((size_t) CP_BF16_PANEL_N * CP_BF16_PANEL_K / 2)

/*
 * cp_gemm_bf16_cols
 *		y[m, n] (+)= sum_k xb[m, k] * w[n, k] for m < M and n in [n0, n1):
 *		xb is [M, K] bf16 (row-major), w is [N, K] bf16 (row-major, as a
 *		linear layer's weight is stored; any 2-byte alignment), y is fp32
 *		with row stride ldy.  Products of two bf16 values are exact in
 *		fp32 and are summed in fp32.  K must be even.  With add the
 *		result is added to y, otherwise it replaces it.  pack is
 *		CP_BF16_PACK_WORDS words, 64-byte aligned.  Single-threaded; the
 *		caller splits the columns between threads.
 */
extern void cp_gemm_bf16_cols(const uint16_t *xb, int M, int K,
							  const uint16_t *w, int n0, int n1,
							  float *y, int ldy, bool add, uint32_t *pack);

/*
 * cp_bf16_pack_panel
 *		Columns [n0, n0 + ncols) (ncols <= CP_BF16_PANEL_N) and k-pairs
 *		[p0, p0 + npairs) of w [*, K] into pack[p][c], CP_BF16_PANEL_N
 *		words per pair, columns past ncols zero; pack 64-byte aligned.
 *		Needs AVX-512F.
 */
extern void cp_bf16_pack_panel(const uint16_t *w, int K, int n0, int ncols,
							   int p0, int npairs, uint32_t *pack);

/*
 * cp_gemm_bf16_few_rows
 *		The same product for few rows of x (a query: ~20), where packing
 *		the weights would cost as much as the arithmetic: dot products
 *		straight from w as mapped (unaligned loads).  Same arguments
 *		without pack; K must be even.
 */
extern void cp_gemm_bf16_few_rows(const uint16_t *xb, int M, int K,
								  const uint16_t *w, int n0, int n1,
								  float *y, int ldy, bool add);

#endif							/* CP_GEMM_BF16_H */
