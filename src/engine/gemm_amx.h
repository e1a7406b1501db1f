/*
 * gemm_amx.h
 *	  bf16 x bf16 -> fp32 GEMM on Intel AMX tiles (TDPBF16PS) for the CPU
 *	  backend's bf16 precision, with weights packed once at load.
 */
#ifndef CP_GEMM_AMX_H
#define CP_GEMM_AMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rows of x and columns of W per block (2 x 2 tiles of 16 x 16). */
#define CP_AMX_BLOCK 32
/* Columns of W per group (whose partial sums live in cbuf). */
#define CP_AMX_GROUP_N 256
/* k of one A tile row / of the packed weights' padding. */
#define CP_AMX_K_STEP 32

/*
 * cp_cpu_amx_bf16_usable
 *		Does this CPU have AMX-BF16, and has Linux granted this process
 *		the AMX tile state (asked for here, once)?
 */
extern bool cp_cpu_amx_bf16_usable(void);

/* K rounded up to whole A tiles. */
static inline int
cp_amx_padded_k(int K)
{
	return (K + CP_AMX_K_STEP - 1) / CP_AMX_K_STEP * CP_AMX_K_STEP;
}

/* uint32 words of cp_amx_pack_weights's output for a [N, K] weight. */
extern size_t cp_amx_packed_words(int N, int K);

/*
 * cp_amx_pack_weights
 *		w [N, K] bf16 (row-major, any 2-byte alignment) into dst (64-byte
 *		aligned, cp_amx_packed_words words): panels of 64 columns, each
 *		[Kp / 2 k-pairs][64 columns] words (a pair is two consecutive k of
 *		one column), zero past N and K.  A 16 x 16 block of it is one B tile.
 *		Panels are spread over threads OpenMP threads.
 */
extern void cp_amx_pack_weights(const uint16_t *w, int N, int K, uint32_t *dst,
								int threads);

/*
 * cp_amx_x_stride
 *		Row stride (bf16 elements) for x: Kp plus one cache line, so that
 *		the 16 rows of an x tile do not all fall into the same L1 set
 *		when Kp * 2 is a multiple of 4 KB (K = 2048, 16384).
 */
static inline int
cp_amx_x_stride(int Kp)
{
	return Kp + 32;
}

/*
 * cp_gemm_amx_bf16
 *		y[m, n] (+)= sum_k xa[m, k] * W[n, k] for m < M, n in [n0, n1):
 *		xa is [roundup(M, 32)] rows of ldx bf16 (cp_amx_x_stride(Kp)),
 *		zero past M rows and K columns (Kp = cp_amx_padded_k(K)); packed
 *		is W as cp_amx_pack_weights wrote it; n0 a multiple of 32.  cbuf
 *		holds roundup(M, 32) * CP_AMX_GROUP_N floats.  Single-threaded;
 *		the caller splits the columns between threads.
 */
extern void cp_gemm_amx_bf16(const uint16_t *xa, int ldx, int M, int Kp,
							 const uint32_t *packed, int n0, int n1,
							 float *y, int ldy, bool add, float *cbuf);

#endif							/* CP_GEMM_AMX_H */
