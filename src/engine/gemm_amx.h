/*
 * gemm_amx.h
 *	  bf16 x bf16 -> fp32 GEMM on Intel AMX tiles (TDPBF16PS) for the CPU
 *	  backend's bf16 precision, with weights packed once at load; and the
 *	  same tile products on fp32 activations split exactly into bf16 terms,
 *	  for fp32 precision on bf16 weights.
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
/* bf16 elements of one A tile (16 rows x 32 k) and one k-step's 2 B tiles. */
#define CP_AMX_TILE_ELEMS 512

/*
 * cp_cpu_amx_bf16_usable
 *		Does this CPU have AMX-BF16, and has Linux granted this process
 *		the AMX tile state (asked for here, once)?
 */
extern bool cp_cpu_amx_bf16_usable(void);

/*
 * cp_cpu_amx_int8_usable
 *		Does this CPU have AMX-INT8, and has Linux granted this process the
 *		AMX tile state (the same permission as for AMX-BF16)?
 */
extern bool cp_cpu_amx_int8_usable(void);

/*
 * cp_amx_load_tile_config
 *		Configure tiles 0-7 as 16 rows x 64 bytes (palette 1): the shape of
 *		every tile product here.  Needs a CPU where cp_cpu_amx_bf16_usable or
 *		cp_cpu_amx_int8_usable holds; _tile_release() undoes it.
 */
extern void cp_amx_load_tile_config(void);

/* K rounded up to whole A tiles. */
static inline int
cp_amx_padded_k(int K)
{
	return (K + CP_AMX_K_STEP - 1) / CP_AMX_K_STEP * CP_AMX_K_STEP;
}

/* M rounded up to whole row blocks. */
static inline int
cp_amx_padded_m(int M)
{
	return (M + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK * CP_AMX_BLOCK;
}

/*
 * The "B layout" of a [N, K] matrix (weights, attention keys / values):
 * blocks of 32 columns, each [Kp / 32 k-steps][2 tiles of 16 columns][16
 * k-pairs][16 columns] uint32 words (a pair is two consecutive k of one
 * column, the lower k in the low half), so that one k-step of a block is
 * two B tiles in 2 KB of consecutive memory and a block is one stream.
 * Zero past N and K.  cp_amx_packed_words is its size.
 */
extern size_t cp_amx_packed_words(int N, int K);

/* Word index of pair p (k = 2p, 2p + 1) of column n in the B layout. */
static inline size_t
cp_amx_b_index(int n, int p, int Kp)
{
	return ((size_t) (n / 32) * (Kp / 32) + p / 16) * 512 +
		(size_t) ((n % 32) / 16) * 256 + (size_t) (p % 16) * 16 + n % 16;
}

/*
 * cp_amx_alloc_packed
 *		Memory for packed weights (free() releases it): 64-byte aligned, and
 *		from 2 MB on 2 MB aligned with transparent huge pages asked for
 *		(madvise), so that streaming it (a query's products read every
 *		weight once) does not walk a page table every 4 KB.  With the
 *		kernel's prefetch a query cost ~30 % less CPU on the bench model
 *		(either alone: a few %).  NULL when out of memory.
 */
extern void *cp_amx_alloc_packed(size_t bytes);

/*
 * cp_amx_pack_weights
 *		w [N, K] bf16 (row-major, any 2-byte alignment) into dst (64-byte
 *		aligned, cp_amx_packed_words words) in the B layout.  Column blocks
 *		are spread over threads OpenMP threads.
 */
extern void cp_amx_pack_weights(const uint16_t *w, int N, int K, uint32_t *dst,
								int threads);

/*
 * The "A layout" of a [M, K] matrix (activations): rounded to bf16, as A
 * tiles of 16 rows x 32 k (1 KB each), [roundup(M, 32) / 16 row tiles][Kp /
 * 32 k-steps][16][32], zero past M and K: every tile is 1 KB of consecutive
 * memory.  cp_amx_pack_rows writes row tiles [t0, t1) (16 rows each) of it
 * from fp32 src (rows of lds floats, `rows` of them valid).  Needs
 * AVX512_BF16 (implied by cp_cpu_amx_bf16_usable).
 */
extern void cp_amx_pack_rows(const float *src, size_t lds, int rows, int K,
							 int Kp, int t0, int t1, uint16_t *dst);

/*
 * cp_amx_pack_row
 *		Row r of the A layout (as cp_amx_pack_rows) from the K floats at x,
 *		or zeros when x is NULL.
 */
extern void cp_amx_pack_row(const float *x, int K, int Kp, int r,
							uint16_t *dst);

/*
 * fp32 products on AMX: the "split A layout".  An fp32 value x is the sum
 * of three bf16 terms: h = bf16(x) (rounded to nearest), m = bf16(x - h),
 * l = bf16(x - h - m); each remainder is exact in fp32, and 3 x 8
 * significand bits hold fp32's 24, so x = h + m + l exactly.  Products of
 * bf16 values are exact in fp32, so x w = h w + m w + l w for a bf16
 * weight w, summed by TDPBF16PS in fp32: an fp32 GEMM at fp32 accuracy
 * from three tile products.  Exact except where bf16 (as AMX and the
 * conversion instruction treat it) flushes values below 2^-126 to zero: a
 * term or a product under 2^-126 in magnitude is lost, an absolute error
 * below 2^-126 per term (zero for |x| >= 2^-102 unless the product itself
 * underflows).  Two terms keep 16 bits of x (relative error 2^-17).
 *
 * The layout is the A layout with `terms` tiles per k-step, term after
 * term: [roundup(M, 32) / 16 row tiles][Kp / 32 k-steps][terms][16][32]
 * bf16; terms = 1 is the A layout itself.
 */
#define CP_AMX_SPLIT_TERMS 3

/*
 * cp_amx_pack_row_split / cp_amx_pack_rows_split
 *		cp_amx_pack_row / cp_amx_pack_rows into the split A layout of
 *		`terms` terms (1 to 3).
 */
extern void cp_amx_pack_row_split(const float *x, int K, int Kp, int r,
								  int terms, uint16_t *dst);
extern void cp_amx_pack_rows_split(const float *src, size_t lds, int rows,
								   int K, int Kp, int t0, int t1, int terms,
								   uint16_t *dst);

/*
 * cp_gemm_amx_bf16
 *		y[m, n] (+)= sum_k xa[m, k] * W[n, k] for m < M, n in [n0, n1): xa
 *		is x in the A layout (Kp = cp_amx_padded_k(K)), packed is W in the
 *		B layout; n0 a multiple of 32.  cbuf holds roundup(M, 32) *
 *		CP_AMX_GROUP_N floats.  Single-threaded; the caller splits the
 *		columns between threads.
 */
extern void cp_gemm_amx_bf16(const uint16_t *xa, int M, int Kp,
							 const uint32_t *packed, int n0, int n1,
							 float *y, int ldy, bool add, float *cbuf);

/*
 * cp_gemm_amx_split
 *		cp_gemm_amx_bf16 with xa in the split A layout of `terms` terms (1
 *		to 3): every k-step multiplies each term of x by the same W tiles,
 *		into the same fp32 sums.  terms = 1 is cp_gemm_amx_bf16.
 */
extern void cp_gemm_amx_split(const uint16_t *xa, int terms, int M, int Kp,
							  const uint32_t *packed, int n0, int n1,
							  float *y, int ldy, bool add, float *cbuf);

/*
 * cp_gemm_amx_split_bias
 *		cp_gemm_amx_split with an optional bias (N floats, NULL for none),
 *		in the order of a bias written into y before the product and added
 *		after it: without add, the accumulators start from the bias (y =
 *		bias + sum, k in order, as a product adding onto y preloaded with
 *		the bias); with add, y = (y + sum) + bias, the bias added to each
 *		block once its sums are final.  Same bits as those two passes, one
 *		pass over y fewer.
 */
extern void cp_gemm_amx_split_bias(const uint16_t *xa, int terms, int M,
								   int Kp, const uint32_t *packed, int n0,
								   int n1, float *y, int ldy, bool add,
								   const float *bias, float *cbuf);

/* out[0..n) = gelu_tanh(gate) * up (one of vecmath.h's forms). */
typedef void (*CpGegluFn) (float *out, const float *gate, const float *up,
						   size_t n);

/*
 * cp_gemm_amx_geglu
 *		Gemma's gate and up products and GeGLU in one pass, for the down
 *		product's input: for m < roundup(M, 32), n in [n0, n1) (multiples
 *		of 32 except n1 = N), out[m, n] = bf16(geglu(g, u)), g = sum_k xa[m,
 *		k] * gate[n, k], u likewise with up, written into out in the A
 *		layout (out_kp = cp_amx_padded_k(N) columns; zero past N).  The
 *		sums and the rounding are those of cp_gemm_amx_bf16 followed by the
 *		activation and cp_amx_pack_row, so the values are the same.  cbuf
 *		holds 2 * roundup(M, 32) * CP_AMX_GROUP_N floats.  Single-threaded.
 */
extern void cp_gemm_amx_geglu(const uint16_t *xa, int M, int Kp,
							  const uint32_t *gate, const uint32_t *up,
							  int n0, int n1, int N, CpGegluFn geglu,
							  uint16_t *out, int out_kp, float *cbuf);

/*
 * cp_gemm_amx_geglu_split
 *		cp_gemm_amx_geglu with xa and out in the split A layout of `terms`
 *		terms.
 */
extern void cp_gemm_amx_geglu_split(const uint16_t *xa, int terms, int M,
									int Kp, const uint32_t *gate,
									const uint32_t *up, int n0, int n1,
									int N, CpGegluFn geglu, uint16_t *out,
									int out_kp, float *cbuf);

/*
 * fp32 products of few rows (a query) on AMX, the weights read in place:
 * the transposed product y^T = W x^T, where 16 rows of W (32 k each, row
 * stride K) are an A tile as they lie in the mapping, and x^T, split into
 * its terms, is the B operand.  The "xt layout" of x [M, K] (K a multiple
 * of 32): [roundup(M, 32) / 32 row blocks][K / 32 k-steps][terms][2 B
 * tiles: rows 0-15 / 16-31 of the block][16 k-pairs][16 rows] uint32
 * words (a pair: two consecutive k of one row, the lower k in the low
 * half), zero past M.  cp_amx_xt_words is its size.
 */
static inline size_t
cp_amx_xt_words(int M, int K, int terms)
{
	return (size_t) cp_amx_padded_m(M) * K / 2 * terms;
}

/*
 * cp_amx_pack_xt_split
 *		x [M, K] fp32 (row-major, K a multiple of 32) split into `terms`
 *		bf16 terms into dst (64-byte aligned) in the xt layout.
 */
extern void cp_amx_pack_xt_split(const float *x, int M, int K, int terms,
								 uint32_t *dst);

/*
 * cp_gemm_amx_split_rows
 *		y[m, n] (+)= sum_k x[m, k] * w[n, k] for m < M, n in [n0, n1)
 *		(n1 - n0 a multiple of 32): w [N, K] bf16 row-major as mapped (K a
 *		multiple of 32), xt = x in the xt layout of `terms` terms.  The sums
 *		of an element do not depend on n0, n1 or the rows beside it.  cbuf
 *		holds CP_AMX_GROUP_N * 32 floats.  Single-threaded.
 */
extern void cp_gemm_amx_split_rows(const uint16_t *w, int K,
								   const uint32_t *xt, int M, int terms,
								   int n0, int n1, float *y, int ldy,
								   bool add, float *cbuf);

/*
 * cp_amx_tile_product
 *		c = a . b for one 32-row block of a (A layout, two row tiles at a0
 *		and a1, k-steps [0, steps)) and 32-column blocks [nb0, nb1) of b (B
 *		layout, steps k-steps per block): c is [32, (nb1 - nb0) * 32] fp32
 *		with row stride ldc floats.  Loads and releases the tile
 *		configuration itself.
 */
extern void cp_amx_tile_product(const uint16_t *a0, const uint16_t *a1,
								const uint32_t *b, int steps, int nb0, int nb1,
								float *c, int ldc);

#endif							/* CP_GEMM_AMX_H */
