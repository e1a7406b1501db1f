/*
 * gemm_amx.c
 *	  bf16 GEMM on AMX tiles; see gemm_amx.h.
 *
 * One TDPBF16PS multiplies a 16 x 32 bf16 tile of x by a 32 x 16 tile of W
 * (stored as 16 rows of 16 k-pairs) into a 16 x 16 fp32 tile: 8,192
 * multiply-adds, an order of magnitude more per cycle than AVX512_BF16.
 * Products of bf16 values are exact in fp32 and summed in fp32, as in the
 * AVX512_BF16 kernel, so both give the same results up to summation order.
 * With x split into bf16 terms (gemm_amx.h), each k-step multiplies the
 * terms one after the other by the same W tiles: fp32 products at fp32
 * accuracy for the fp32 precision.
 *
 * Eight tile registers: four accumulators (a 32 x 32 block of y), two
 * tiles of x and two of W.  Both operands are kept in layouts where every
 * tile is 1 KB of consecutive memory (gemm_amx.h): the weights are packed
 * once at load, x is rounded into its layout per GEMM, so a tile load reads
 * 16 consecutive cache lines and a block's k-steps are one stream.
 *
 * Loop order: a group of CP_AMX_GROUP_N columns, a k-block of KC_STEPS
 * k-steps, a block of 32 rows (its x block stays in L1 while the group's
 * column blocks pass), 32 columns.  Partial sums between k-blocks live in
 * cbuf (the group's part stays in L2); a block inside y starts from y when
 * adding and its last k-block stores straight into y, so only the edge
 * blocks (past M rows or the caller's columns) are copied at the end.  A
 * query (one row block) runs the whole K per block with no partial sums;
 * a page's products with K <= 2,048 take each row block through all its
 * k-blocks before the next (ROWS_OUTER_MAX_STEPS).  A bias is applied
 * inside (cp_gemm_amx_split_bias): the accumulators start from it, or an
 * accumulating product adds it to each block after its last store.
 *
 * What bounds it (bench/cpu/amx_tile_bench.c, this loop on synthetic data,
 * docs/cpu-kernels.md): TDPBF16PS peaks at ~3.2 TFLOP/s per core on tiles
 * in registers, 2.3 with x in L1 and W from L2, 1.5 when the accumulators
 * are also loaded and stored every 8 k-steps, 0.7 with both operands from
 * L2.  The whole kernel reaches about 1 TFLOP/s per CPU-second on the page
 * shapes.
 *
 * Linux hands out the AMX register state (8 KB per thread) only to a
 * process that asked for it with arch_prctl(ARCH_REQ_XCOMP_PERM); without
 * that the first tile instruction kills the process, so
 * cp_cpu_amx_bf16_usable asks first and says no when refused.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gemm_amx.h"
#include "gemm_amx_tiles.h"
#include "gemm_bf16.h"

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/*
 * k-steps per k-block: the x block of one row block (2 x KC_STEPS tiles,
 * 16 KB) stays in L1 while the group's column blocks pass, and the
 * group's partial sums (cbuf, roundup(M, 32) x 256 fp32, 1 MB for a page)
 * stay in L2.  Measured on the page shapes: 8 beats 4, 12, 16 and the
 * whole K (2 to 64 tried).
 */
#define KC_STEPS 8

/*
 * bf16 products of at most this many k-steps (K <= 2,048: SigLIP's q, k,
 * v, o and fc1, Gemma's q, k, v and o, the projector on a page) run each
 * row block through the whole K, the group's column blocks in turn in
 * every k-block, instead of each k-block through all row blocks.  A row
 * block's partial sums for the group (32 KB) then go back and forth
 * between k-blocks through L1 instead of a 1 MB buffer in L2, and its x
 * (128 KB at K 2,048) is read from L2; the group's weights for the whole
 * K (up to 1 MB) stay in L2 for the next row block.  The tile kernel alone
 * on this VM, one thread, four alternating rounds (GFLOP/s per
 * CPU-second): 1,152 x 1,152 x 1,030 rows 1,213-1,312 against
 * 1,029-1,186, 256 x 2,048 1,323-1,465 against 1,114-1,383, 2,048 x
 * 2,048 1,240-1,297 against 1,158-1,209, fc1 (4,304 x 1,152) unchanged.
 * Longer K (Gemma's down, SigLIP's fc2) lost half its rate this way: a
 * group's weights no longer fit in L2.
 */
#define ROWS_OUTER_MAX_STEPS 64

/*
 * The most k-steps per k-block with x split into two or three terms (fp32
 * precision), in k-blocks of equal size.  Each W tile load now feeds
 * `terms` times the tile products, and longer k-blocks (fewer round trips
 * of the accumulators through cbuf) won, x and W from L2 notwithstanding:
 * on the page shapes 32 beat 2, 4, 8, 16 and the whole K by 5-30 %.
 */
#define KC_STEPS_SPLIT 32

/*
 * How far ahead of the k-step it multiplies a query's GEMM prefetches the
 * packed weights (bytes; the same stream, so past a column block's end it
 * reaches the next block).  A query's products read W once from memory
 * and are bound by that stream: with the hardware prefetchers alone one
 * core read the bench model's MLP weights (0.4 GB) at ~10-12 GB/s here,
 * with 768 bytes ahead (every line) and the weights on huge pages
 * (cp_amx_alloc_packed) at ~15 GB/s, what a plain streaming read of the
 * same bytes reaches (bench/cpu/amx_query_bench.c; 512-1024 were as good,
 * 2048-8192 and prefetches into L2 no better; either change alone gained
 * a few %).  Pages' products reuse each W tile from L2 and do not
 * prefetch.
 */
#define STREAM_PREFETCH_BYTES 768

/*
 * The fused gate / up / GeGLU products of a page (bf16 activations) keep
 * the partial sums of both products for all rows of a column group: 2 MB
 * for 256 columns, the whole L2, so every k-block's sums went out to L3
 * and back.  There the group is GEGLU_GROUP_N columns and the rows go
 * GEGLU_PANEL_ROW_BLOCKS row blocks at a time through all k-blocks: a
 * panel's sums (128 rows x 128 columns x 2, 128 KB) stay in L2 beside the
 * group's weights (2 x 128 columns x 2,048 k, 1 MB), which are read again
 * for each panel.  The fused kernel alone on the Gemma page shape, two
 * threads on their own groups (as in the engine), GFLOP/s per CPU-second
 * in five alternating rounds on this VM: 1,050-1,109 against 1,032-1,091
 * (panels of 8 row blocks: 1,026-1,069; of 2: slower with two threads,
 * whose weight reads then share L3).  Each element's sums keep their
 * order (k-blocks in turn), so the values are the same.
 */
#define GEGLU_GROUP_N 128
#define GEGLU_PANEL_ROW_BLOCKS 4

static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static bool amx_usable;
static bool amx_int8_usable;

static void
amx_probe(void)
{
	unsigned int eax,
				ebx,
				ecx,
				edx;
	bool		granted;

	/*
	 * CPUID.(EAX=7, ECX=0):EDX bit 22 = AMX-BF16, bit 24 = AMX-TILE, bit 25
	 * = AMX-INT8
	 */
	__asm__ __volatile__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx)
						 : "a"(7), "c"(0));
	if (!(edx & (1u << 24)))
		return;
	granted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM,
					  XFEATURE_XTILEDATA) == 0;
	/* the edge kernels of the bf16 products need AVX512_BF16 */
	amx_usable = granted && (edx & (1u << 22)) && cp_cpu_has_avx512bf16();
	amx_int8_usable = granted && (edx & (1u << 25));
}

bool
cp_cpu_amx_bf16_usable(void)
{
	pthread_once(&amx_once, amx_probe);
	return amx_usable;
}

bool
cp_cpu_amx_int8_usable(void)
{
	pthread_once(&amx_once, amx_probe);
	return amx_int8_usable;
}

size_t
cp_amx_packed_words(int N, int K)
{
	size_t		blocks = (size_t) (N + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK;

	return blocks * (size_t) cp_amx_padded_k(K) * (CP_AMX_BLOCK / 2);
}

/*
 * cp_amx_alloc_packed
 *		See gemm_amx.h.  Only the whole 2 MB pages inside the buffer are
 *		advised (the allocator may hand out the rest of its mapping), and
 *		only in the process's own memory: madvise failing (no THP) changes
 *		nothing but the speed.
 */
void *
cp_amx_alloc_packed(size_t bytes)
{
	const size_t huge = (size_t) 2 << 20;
	void	   *p;

	if (bytes < huge)
		return posix_memalign(&p, 64, bytes ? bytes : 1) == 0 ? p : NULL;
	if (posix_memalign(&p, huge, bytes) != 0)
		return NULL;
#ifdef MADV_HUGEPAGE
	(void) madvise(p, bytes / huge * huge, MADV_HUGEPAGE);
#endif
	return p;
}

void
cp_amx_pack_weights(const uint16_t *w, int N, int K, uint32_t *dst,
					int threads)
{
	int			kp = cp_amx_padded_k(K),
				full = K / 2;
	int			n0;

	/*
	 * Through the AVX-512 transposing packer of gemm_bf16.c: a 64-column
	 * panel of up to CP_BF16_PANEL_K / 2 pairs into a scratch panel, whose
	 * 64-byte rows are then spread over the B layout's tiles.
	 */
#pragma omp parallel num_threads(threads)
	{
		uint32_t   *pan = aligned_alloc(64, CP_BF16_PACK_WORDS * sizeof(uint32_t));

#pragma omp for schedule(static)
		for (n0 = 0; n0 < N; n0 += CP_BF16_PANEL_N)
		{
			int			ncols = (N - n0 < CP_BF16_PANEL_N) ? N - n0 : CP_BF16_PANEL_N;
			int			nblk = (ncols + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK;
			int			p0,
						b;

			/* zero the panel's blocks first: pads past K and N */
			for (b = 0; b < nblk; b++)
				memset(dst + cp_amx_b_index(n0 + b * CP_AMX_BLOCK, 0, kp), 0,
					   sizeof(uint32_t) * (size_t) kp * (CP_AMX_BLOCK / 2));
			if (pan == NULL)
			{
				/* no scratch: the plain way */
				int			c,
							p;

				for (c = 0; c < ncols; c++)
					for (p = 0; p < full; p++)
						dst[cp_amx_b_index(n0 + c, p, kp)] =
							w[(size_t) (n0 + c) * K + 2 * p] |
							(uint32_t) w[(size_t) (n0 + c) * K + 2 * p + 1] << 16;
			}
			else
				for (p0 = 0; p0 < full; p0 += CP_BF16_PANEL_K / 2)
				{
					int			np = (full - p0 < CP_BF16_PANEL_K / 2) ? full - p0 : CP_BF16_PANEL_K / 2;
					int			p,
								q;

					cp_bf16_pack_panel(w, K, n0, ncols, p0, np, pan);
					for (p = 0; p < np; p++)
						for (q = 0; q < nblk * 2; q++)
							memcpy(dst + cp_amx_b_index(n0 + q * 16, p0 + p, kp),
								   pan + (size_t) p * CP_BF16_PANEL_N + q * 16,
								   16 * sizeof(uint32_t));
				}
			if (K % 2 == 1)
			{
				int			c;

				for (c = 0; c < ncols; c++)
					dst[cp_amx_b_index(n0 + c, full, kp)] =
						w[(size_t) (n0 + c) * K + K - 1];
			}
		}
		free(pan);
	}
}

/*
 * split_store
 *		The terms of 32 fp32 values (lo: the first 16, hi: the next 16) as
 *		bf16 at d, d + CP_AMX_TILE_ELEMS, ...: term 0 = bf16(v) (rounded to
 *		nearest even), term t = bf16(v - the terms before it).  Each
 *		remainder is exact in fp32 (it is v less its leading bits), so three
 *		terms hold all 24 bits of v (see gemm_amx.h for the denormal bound).
 */
__attribute__((target("avx512f,avx512bf16")))
static inline void
split_store(__m512 lo, __m512 hi, int terms, uint16_t *d)
{
	int			t;

	for (t = 0; t < terms; t++)
	{
		__m512bh	b = _mm512_cvtne2ps_pbh(hi, lo);

		_mm512_store_si512((__m512i *) (d + (size_t) t * CP_AMX_TILE_ELEMS), (__m512i) b);
		if (t + 1 < terms)
		{
			/* the bf16 values back in fp32: each 16-bit half to the top */
			__m512i		bi = (__m512i) b;
			__m512		blo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(bi)), 16));
			__m512		bhi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(bi, 1)), 16));

			lo = _mm512_sub_ps(lo, blo);
			hi = _mm512_sub_ps(hi, bhi);
		}
	}
}

/*
 * cp_amx_pack_row_split
 *		See gemm_amx.h.
 */
__attribute__((target("avx512f,avx512bf16")))
void
cp_amx_pack_row_split(const float *x, int K, int Kp, int r, int terms,
					  uint16_t *dst)
{
	int			steps = Kp / CP_AMX_K_STEP;
	uint16_t   *d = dst + (size_t) (r / 16) * steps * terms * CP_AMX_TILE_ELEMS +
		(size_t) (r % 16) * CP_AMX_K_STEP;
	int			s;

	if (x == NULL)
	{
		for (s = 0; s < steps * terms; s++)
			memset(d + (size_t) s * CP_AMX_TILE_ELEMS, 0, CP_AMX_K_STEP * sizeof(uint16_t));
		return;
	}
	for (s = 0; s < steps; s++)
	{
		int			k = s * CP_AMX_K_STEP;
		uint16_t   *ds = d + (size_t) s * terms * CP_AMX_TILE_ELEMS;
		__m512		lo,
					hi;

		if (k + 32 <= K)
		{
			lo = _mm512_loadu_ps(x + k);
			hi = _mm512_loadu_ps(x + k + 16);
		}
		else
		{
			int			na = K - k,
						nb = K - k - 16;
			__mmask16	ma = na >= 16 ? 0xFFFF : na <= 0 ? 0 : (__mmask16) ((1u << na) - 1);
			__mmask16	mb = nb >= 16 ? 0xFFFF : nb <= 0 ? 0 : (__mmask16) ((1u << nb) - 1);

			lo = _mm512_maskz_loadu_ps(ma, x + k);
			hi = _mm512_maskz_loadu_ps(mb, x + k + 16);
		}
		if (terms == 1)
			_mm512_store_si512((__m512i *) ds, (__m512i) _mm512_cvtne2ps_pbh(hi, lo));
		else
			split_store(lo, hi, terms, ds);
	}
}

/*
 * cp_amx_pack_row
 *		See gemm_amx.h.
 */
void
cp_amx_pack_row(const float *x, int K, int Kp, int r, uint16_t *dst)
{
	cp_amx_pack_row_split(x, K, Kp, r, 1, dst);
}

/*
 * cp_amx_pack_rows
 *		See gemm_amx.h.
 */
void
cp_amx_pack_rows(const float *src, size_t lds, int rows, int K, int Kp,
				 int t0, int t1, uint16_t *dst)
{
	cp_amx_pack_rows_split(src, lds, rows, K, Kp, t0, t1, 1, dst);
}

/*
 * cp_amx_pack_rows_split
 *		See gemm_amx.h.
 */
void
cp_amx_pack_rows_split(const float *src, size_t lds, int rows, int K, int Kp,
					   int t0, int t1, int terms, uint16_t *dst)
{
	int			r;

	for (r = t0 * 16; r < t1 * 16; r++)
		cp_amx_pack_row_split(r < rows ? src + (size_t) r * lds : NULL, K, Kp, r,
							  terms, dst);
}

/* The tile configuration: palette 1, every tile 16 rows of 64 bytes. */
typedef struct TileConfig
{
	uint8_t		palette;
	uint8_t		start_row;
	uint8_t		reserved[14];
	uint16_t	colsb[16];
	uint8_t		rows[16];
} TileConfig;

__attribute__((target("amx-tile")))
void
cp_amx_load_tile_config(void)
{
	TileConfig	cfg __attribute__((aligned(64)));
	int			i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.palette = 1;
	for (i = 0; i < 8; i++)
	{
		cfg.rows[i] = 16;
		cfg.colsb[i] = 64;
	}
	/*
	 * GCC's _tile_loadconfig tells the compiler it reads 8 bytes of cfg: out
	 * of line (where nothing else reads cfg) the other stores were dropped.
	 * The barrier makes the whole struct live.
	 */
	__asm__ __volatile__("" : : "r"(&cfg) : "memory");
	_tile_loadconfig(&cfg);
}

/*
 * block_32x32
 *		Tiles 0-3 (+)= the 32 x 32 product of A row tiles a0, a1 and one
 *		column block b of the B layout, over steps k-steps; each k-step of
 *		the A tiles holds `terms` tiles (the split of x, gemm_amx.h), all
 *		multiplied by the same two W tiles, loaded once.  The caller zeroes
 *		or loads 0-3.  With stream (one row block of x: a query, where W is
 *		read once from memory and nothing else), each k-step also prefetches
 *		the W lines STREAM_PREFETCH_BYTES ahead (see there).  Without two,
 *		the second row tile (a1) lies wholly past the last row and only
 *		tiles 0-1 are computed (2-3 are left as they are).
 */
__attribute__((target("amx-tile,amx-bf16"), always_inline))
static inline void
block_32x32(const uint16_t *a0, const uint16_t *a1, const uint32_t *b, int steps,
			int terms, bool stream, bool two)
{
	int			s,
				t;

	if (!two)
	{
		/*
		 * rows 0-15 only: the last block of a 1,030-row page (6 rows); a
		 * query (stream) keeps the whole block, its time is the weights'
		 * stream
		 */
		for (s = 0; s < steps; s++)
		{
			const uint32_t *bk = b + (size_t) s * CP_AMX_TILE_ELEMS;
			const uint16_t *x0 = a0 + (size_t) s * terms * CP_AMX_TILE_ELEMS;

			_tile_loadd(6, bk, 64);
			_tile_loadd(7, bk + 256, 64);
			for (t = 0; t < terms; t++)
			{
				_tile_loadd(4, x0 + (size_t) t * CP_AMX_TILE_ELEMS, 64);
				_tile_dpbf16ps(0, 4, 6);
				_tile_dpbf16ps(1, 4, 7);
			}
		}
		return;
	}
	if (terms == 1)
	{
		for (s = 0; s < steps; s++)
		{
			const uint32_t *bk = b + (size_t) s * CP_AMX_TILE_ELEMS;

			if (stream)
			{
				const char *pf = (const char *) bk + STREAM_PREFETCH_BYTES;
				int			l;

				/* every line of the k-step STREAM_PREFETCH_BYTES ahead */
				for (l = 0; l < CP_AMX_TILE_ELEMS * 4; l += 64)
					_mm_prefetch(pf + l, _MM_HINT_T0);
			}
			_tile_loadd(4, a0 + (size_t) s * CP_AMX_TILE_ELEMS, 64);
			_tile_loadd(6, bk, 64);
			_tile_dpbf16ps(0, 4, 6);
			_tile_loadd(7, bk + 256, 64);
			_tile_dpbf16ps(1, 4, 7);
			_tile_loadd(5, a1 + (size_t) s * CP_AMX_TILE_ELEMS, 64);
			_tile_dpbf16ps(2, 5, 6);
			_tile_dpbf16ps(3, 5, 7);
		}
		return;
	}
	for (s = 0; s < steps; s++)
	{
		const uint32_t *bk = b + (size_t) s * CP_AMX_TILE_ELEMS;
		const uint16_t *x0 = a0 + (size_t) s * terms * CP_AMX_TILE_ELEMS;
		const uint16_t *x1 = a1 + (size_t) s * terms * CP_AMX_TILE_ELEMS;

		_tile_loadd(6, bk, 64);
		_tile_loadd(7, bk + 256, 64);
		for (t = 0; t < terms; t++)
		{
			_tile_loadd(4, x0 + (size_t) t * CP_AMX_TILE_ELEMS, 64);
			_tile_dpbf16ps(0, 4, 6);
			_tile_dpbf16ps(1, 4, 7);
			_tile_loadd(5, x1 + (size_t) t * CP_AMX_TILE_ELEMS, 64);
			_tile_dpbf16ps(2, 5, 6);
			_tile_dpbf16ps(3, 5, 7);
		}
	}
}

/* k-steps per k-block of a product of steps k-steps (see KC_STEPS). */
static inline int
kc_steps(int terms, int steps)
{
	int			nkb = (steps + KC_STEPS_SPLIT - 1) / KC_STEPS_SPLIT;

	if (terms == 1)
		return KC_STEPS;
	return (steps + nkb - 1) / nkb;
}

/*
 * amx_gemm
 *		cp_gemm_amx_split's body, inlined for each number of terms.
 *		Tiles: 0-3 accumulate y (rows 0-15 / 16-31 by columns 0-15 /
 *		16-31), 4-5 x, 6-7 W.
 */
__attribute__((target("amx-tile,amx-bf16,avx512f"), always_inline))
static inline void
amx_gemm(const uint16_t *xa, int terms, int M, int Kp, const uint32_t *packed,
		 int n0, int n1, float *y, int ldy, bool add, const float *bias,
		 float *cbuf)
{
	int			mp = cp_amx_padded_m(M);
	int			steps = Kp / CP_AMX_K_STEP;
	size_t		rowtile = (size_t) steps * terms * CP_AMX_TILE_ELEMS;	/* x: one row tile */
	size_t		colblock = (size_t) steps * CP_AMX_TILE_ELEMS;	/* W: one column block */
	const size_t cstride = CP_AMX_BLOCK * sizeof(float);
	const size_t ystride = (size_t) ldy * sizeof(float);
	/* one row block (a query): x stays in L2 anyway, no partial sums */
	int			kcs = (mp == CP_AMX_BLOCK) ? steps : kc_steps(terms, steps);
	bool		stream = (mp == CP_AMX_BLOCK);
	bool		rows_outer = (terms == 1 && !stream && steps <= ROWS_OUTER_MAX_STEPS);
	int			g0;

	cp_amx_load_tile_config();
	for (g0 = n0; g0 < n1; g0 += CP_AMX_GROUP_N)
	{
		int			g1 = (n1 - g0 < CP_AMX_GROUP_N) ? n1 : g0 + CP_AMX_GROUP_N;
		int			nblk = (g1 - g0 + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK,
					mblk = mp / CP_AMX_BLOCK,
					outer,
					kb,
					nb,
					mb;

		/*
		 * Short products (see ROWS_OUTER_MAX_STEPS) run each row block
		 * through all its k-blocks before the next; the others each
		 * k-block through all row blocks.  The order of an element's sums
		 * is the same.
		 */
		for (outer = 0; outer < (rows_outer ? mblk : 1); outer++)
		for (kb = 0; kb < steps; kb += kcs)
		{
			int			ks = (steps - kb < kcs) ? steps - kb : kcs;
			int			i_end = rows_outer ? (outer + 1) * nblk : nblk * mblk,
						i;

			for (i = rows_outer ? outer * nblk : 0; i < i_end; i++)
			{
				int			mbi = CP_AMX_BLOCK * (i / nblk),
							nbi = g0 + CP_AMX_BLOCK * (i % nblk);
				const uint16_t *x0 = xa + (size_t) (mbi / 16) * rowtile +
					(size_t) kb * terms * CP_AMX_TILE_ELEMS;
				const uint16_t *x1 = x0 + rowtile;
				const uint32_t *wp = packed + (size_t) (nbi / CP_AMX_BLOCK) * colblock +
					(size_t) kb * CP_AMX_TILE_ELEMS;
				bool		inside = (mbi + CP_AMX_BLOCK <= M && nbi + CP_AMX_BLOCK <= n1);
				bool		first = (kb == 0),
							last = (kb + ks == steps);
				float	   *cb = cbuf + (size_t) ((nbi - g0) / CP_AMX_BLOCK) * mp * CP_AMX_BLOCK +
					(size_t) mbi * CP_AMX_BLOCK;
				float	   *yb = y + (size_t) mbi * ldy + nbi;
				const float *bb = NULL;
				float		bpad[CP_AMX_BLOCK] __attribute__((aligned(64)));

				/*
				 * The bias of the block's columns, each tile row the same
				 * (loaded with row stride 0); an edge block's part past n1
				 * from a zero-padded copy, not read past the vector's end.
				 */
				if (bias != NULL && !add && first)
				{
					if (nbi + CP_AMX_BLOCK <= n1)
						bb = bias + nbi;
					else
					{
						memset(bpad, 0, sizeof(bpad));
						memcpy(bpad, bias + nbi, sizeof(float) * (n1 - nbi));
						bb = bpad;
					}
				}

				/*
				 * Partial sums between k-blocks live in cbuf (the group's
				 * part of it stays in L2); blocks inside y start from y
				 * when adding and end in y; edge blocks, whose tiles would
				 * cross the end of y or of our columns, end in cbuf.  An
				 * edge block also starts from y when adding (its valid part
				 * copied into cbuf), so that every element is summed in the
				 * same order wherever its block lies: a page's rows do not
				 * depend on the rows beside it in the batch.
				 */
				if (first && add && !inside)
				{
					int			rows = M - mbi < CP_AMX_BLOCK ? M - mbi : CP_AMX_BLOCK,
								cols = n1 - nbi < CP_AMX_BLOCK ? n1 - nbi : CP_AMX_BLOCK,
								m;

					memset(cb, 0, sizeof(float) * CP_AMX_BLOCK * CP_AMX_BLOCK);
					for (m = 0; m < rows; m++)
						memcpy(cb + (size_t) m * CP_AMX_BLOCK, yb + (size_t) m * ldy,
							   sizeof(float) * cols);
				}
				if (first && inside && add)
					acc_tiles_start(yb, ystride, 16 * (size_t) ldy);
				else if (bb != NULL)
					acc_tiles_start(bb, 0, 0);
				else
					acc_tiles_start(first && !add ? NULL : cb, cstride, 16 * CP_AMX_BLOCK);
				if (mbi + 16 >= M && !stream)
					block_32x32(x0, x1, wp, ks, terms, false, false);
				else if (stream)
					block_32x32(x0, x1, wp, ks, terms, true, true);
				else
					block_32x32(x0, x1, wp, ks, terms, false, true);
				if (last && inside)
				{
					_tile_stored(0, yb, ystride);
					_tile_stored(1, yb + 16, ystride);
					_tile_stored(2, yb + 16 * (size_t) ldy, ystride);
					_tile_stored(3, yb + 16 * (size_t) ldy + 16, ystride);
					if (bias != NULL && add)
					{
						/* (y + sum) + bias, while the block is in L1 */
						__m512		b0 = _mm512_loadu_ps(bias + nbi),
									b1 = _mm512_loadu_ps(bias + nbi + 16);
						int			r;

						for (r = 0; r < CP_AMX_BLOCK; r++)
						{
							float	   *yr = yb + (size_t) r * ldy;

							_mm512_storeu_ps(yr, _mm512_add_ps(_mm512_loadu_ps(yr), b0));
							_mm512_storeu_ps(yr + 16, _mm512_add_ps(_mm512_loadu_ps(yr + 16), b1));
						}
					}
				}
				else
				{
					_tile_stored(0, cb, cstride);
					_tile_stored(1, cb + 16, cstride);
					_tile_stored(2, cb + 16 * CP_AMX_BLOCK, cstride);
					_tile_stored(3, cb + 16 * CP_AMX_BLOCK + 16, cstride);
				}
			}
		}
		/* the edge blocks' valid part into y (which they started from) */
		for (mb = 0; mb < mp; mb += CP_AMX_BLOCK)
			for (nb = g0; nb < g1; nb += CP_AMX_BLOCK)
			{
				const float *cb = cbuf + (size_t) ((nb - g0) / CP_AMX_BLOCK) * mp * CP_AMX_BLOCK +
					(size_t) mb * CP_AMX_BLOCK;
				int			ncols = (g1 - nb < CP_AMX_BLOCK) ? g1 - nb : CP_AMX_BLOCK;
				int			m;

				if (mb + CP_AMX_BLOCK <= M && nb + CP_AMX_BLOCK <= n1)
					continue;
				for (m = 0; m < CP_AMX_BLOCK && mb + m < M; m++)
				{
					float	   *yr = y + (size_t) (mb + m) * ldy + nb;
					const float *cr = cb + (size_t) m * CP_AMX_BLOCK;
					int			c;

					if (bias != NULL && add)
						for (c = 0; c < ncols; c++)
							yr[c] = cr[c] + bias[nb + c];
					else
						memcpy(yr, cr, sizeof(float) * ncols);
				}
			}
	}
	_tile_release();
}

/*
 * cp_gemm_amx_bf16
 *		See gemm_amx.h.
 */
void
cp_gemm_amx_bf16(const uint16_t *xa, int M, int Kp, const uint32_t *packed,
				 int n0, int n1, float *y, int ldy, bool add, float *cbuf)
{
	cp_gemm_amx_split(xa, 1, M, Kp, packed, n0, n1, y, ldy, add, cbuf);
}

/*
 * cp_gemm_amx_split
 *		See gemm_amx.h: cp_gemm_amx_split_bias without a bias.
 */
void
cp_gemm_amx_split(const uint16_t *xa, int terms, int M, int Kp,
				  const uint32_t *packed, int n0, int n1, float *y, int ldy,
				  bool add, float *cbuf)
{
	cp_gemm_amx_split_bias(xa, terms, M, Kp, packed, n0, n1, y, ldy, add,
						   NULL, cbuf);
}

/*
 * cp_gemm_amx_split_bias
 *		See gemm_amx.h and the file header.  One copy of the kernel per
 *		number of terms, so that the inner loop has constant bounds.
 */
__attribute__((target("amx-tile,amx-bf16,avx512f")))
void
cp_gemm_amx_split_bias(const uint16_t *xa, int terms, int M, int Kp,
					   const uint32_t *packed, int n0, int n1, float *y,
					   int ldy, bool add, const float *bias, float *cbuf)
{
	switch (terms)
	{
		case 2:
			amx_gemm(xa, 2, M, Kp, packed, n0, n1, y, ldy, add, bias, cbuf);
			break;
		case 3:
			amx_gemm(xa, 3, M, Kp, packed, n0, n1, y, ldy, add, bias, cbuf);
			break;
		default:
			amx_gemm(xa, 1, M, Kp, packed, n0, n1, y, ldy, add, bias, cbuf);
			break;
	}
}

/*
 * cp_amx_tile_product
 *		See gemm_amx.h.
 */
__attribute__((target("amx-tile,amx-bf16")))
void
cp_amx_tile_product(const uint16_t *a0, const uint16_t *a1, const uint32_t *b,
					int steps, int nb0, int nb1, float *c, int ldc)
{
	size_t		colblock = (size_t) steps * CP_AMX_TILE_ELEMS;
	size_t		cs = (size_t) ldc * sizeof(float);
	int			nb;

	cp_amx_load_tile_config();
	for (nb = nb0; nb < nb1; nb++)
	{
		float	   *cb = c + (size_t) (nb - nb0) * CP_AMX_BLOCK;

		acc_tiles_start(NULL, 0, 0);
		block_32x32(a0, a1, b + (size_t) nb * colblock, steps, 1, false, true);
		_tile_stored(0, cb, cs);
		_tile_stored(1, cb + 16, cs);
		_tile_stored(2, cb + (size_t) 16 * ldc, cs);
		_tile_stored(3, cb + (size_t) 16 * ldc + 16, cs);
	}
	_tile_release();
}


/*
 * amx_geglu
 *		cp_gemm_amx_geglu_split's body, inlined for each number of terms.
 *		The gate and up blocks run one after the other with the loop order
 *		of amx_gemm, their sums kept in cbuf (gate: the first half, up: the
 *		second) up to the last k-block; then each 32 x 32 block pair
 *		becomes one k-step of out (its terms).
 */
__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16"), always_inline))
static inline void
amx_geglu(const uint16_t *xa, int terms, int M, int Kp, const uint32_t *gate,
		  const uint32_t *up, int n0, int n1, int N, CpGegluFn geglu,
		  uint16_t *out, int out_kp, float *cbuf)
{
	int			mp = cp_amx_padded_m(M);
	int			steps = Kp / CP_AMX_K_STEP;
	int			out_steps = out_kp / CP_AMX_K_STEP;
	size_t		rowtile = (size_t) steps * terms * CP_AMX_TILE_ELEMS;
	size_t		colblock = (size_t) steps * CP_AMX_TILE_ELEMS;
	const size_t cstride = CP_AMX_BLOCK * sizeof(float);
	int			kcs = (mp == CP_AMX_BLOCK) ? steps : kc_steps(terms, steps);
	bool		stream = (mp == CP_AMX_BLOCK);
	bool		panels = (terms == 1 && !stream);
	int			gn = panels ? GEGLU_GROUP_N : CP_AMX_GROUP_N;
	size_t		half = (size_t) mp * gn;
	int			g0;

	cp_amx_load_tile_config();
	for (g0 = n0; g0 < n1; g0 += gn)
	{
		int			g1 = (n1 - g0 < gn) ? n1 : g0 + gn;
		int			nblk = (g1 - g0 + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK,
					mblk = mp / CP_AMX_BLOCK,
					prb = panels ? GEGLU_PANEL_ROW_BLOCKS : mblk;
		int			p0,
					kb,
					i;

		for (p0 = 0; p0 < mblk; p0 += prb)
			for (kb = 0; kb < steps; kb += kcs)
			{
				int			ks = (steps - kb < kcs) ? steps - kb : kcs;
				int			pblk = (mblk - p0 < prb) ? mblk - p0 : prb;

				for (i = 0; i < nblk * pblk; i++)
				{
					int			mbi = CP_AMX_BLOCK * (p0 + i / nblk),
								nbi = g0 + CP_AMX_BLOCK * (i % nblk);
					const uint16_t *x0 = xa + (size_t) (mbi / 16) * rowtile +
						(size_t) kb * terms * CP_AMX_TILE_ELEMS;
					const uint16_t *x1 = x0 + rowtile;
					size_t		woff = (size_t) (nbi / CP_AMX_BLOCK) * colblock +
						(size_t) kb * CP_AMX_TILE_ELEMS;
					int			which;

					for (which = 0; which < 2; which++)
					{
						float	   *cb = cbuf + which * half +
							(size_t) ((nbi - g0) / CP_AMX_BLOCK) * mp * CP_AMX_BLOCK +
							(size_t) mbi * CP_AMX_BLOCK;

						acc_tiles_start(kb == 0 ? NULL : cb, cstride, 16 * CP_AMX_BLOCK);
						if (mbi + 16 >= M && !stream)
							block_32x32(x0, x1, (which == 0 ? gate : up) + woff, ks, terms, false, false);
						else if (stream)
							block_32x32(x0, x1, (which == 0 ? gate : up) + woff, ks, terms, true, true);
						else
							block_32x32(x0, x1, (which == 0 ? gate : up) + woff, ks, terms, false, true);
						_tile_stored(0, cb, cstride);
						_tile_stored(1, cb + 16, cstride);
						_tile_stored(2, cb + 16 * CP_AMX_BLOCK, cstride);
						_tile_stored(3, cb + 16 * CP_AMX_BLOCK + 16, cstride);
					}
				}
			}
		/* gelu_tanh(gate) * up of each row of each block, into out */
		for (i = 0; i < nblk * mblk; i++)
		{
			int			mbi = CP_AMX_BLOCK * (i / nblk),
						nbi = g0 + CP_AMX_BLOCK * (i % nblk);
			const float *cg = cbuf + (size_t) ((nbi - g0) / CP_AMX_BLOCK) * mp * CP_AMX_BLOCK +
				(size_t) mbi * CP_AMX_BLOCK;
			const float *cu = cg + half;
			int			valid = N - nbi < CP_AMX_BLOCK ? N - nbi : CP_AMX_BLOCK;
			int			r;

			for (r = 0; r < CP_AMX_BLOCK; r++)
			{
				int			row = mbi + r;
				float		act[CP_AMX_BLOCK] __attribute__((aligned(64)));
				uint16_t   *d = out + (size_t) (row / 16) * out_steps * terms * CP_AMX_TILE_ELEMS +
					(size_t) (nbi / CP_AMX_BLOCK) * terms * CP_AMX_TILE_ELEMS +
					(size_t) (row % 16) * CP_AMX_K_STEP;

				geglu(act, cg + (size_t) r * CP_AMX_BLOCK, cu + (size_t) r * CP_AMX_BLOCK,
					  CP_AMX_BLOCK);
				if (valid < CP_AMX_BLOCK)
					memset(act + valid, 0, sizeof(float) * (CP_AMX_BLOCK - valid));
				if (terms == 1)
					_mm512_store_si512((__m512i *) d,
									   (__m512i) _mm512_cvtne2ps_pbh(_mm512_load_ps(act + 16),
																	 _mm512_load_ps(act)));
				else
					split_store(_mm512_load_ps(act), _mm512_load_ps(act + 16), terms, d);
			}
		}
	}
	_tile_release();
}

/*
 * cp_gemm_amx_geglu
 *		See gemm_amx.h.
 */
void
cp_gemm_amx_geglu(const uint16_t *xa, int M, int Kp, const uint32_t *gate,
				  const uint32_t *up, int n0, int n1, int N,
				  CpGegluFn geglu, uint16_t *out, int out_kp, float *cbuf)
{
	cp_gemm_amx_geglu_split(xa, 1, M, Kp, gate, up, n0, n1, N, geglu, out,
							out_kp, cbuf);
}

/*
 * cp_gemm_amx_geglu_split
 *		See gemm_amx.h.
 */
__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16")))
void
cp_gemm_amx_geglu_split(const uint16_t *xa, int terms, int M, int Kp,
						const uint32_t *gate, const uint32_t *up, int n0,
						int n1, int N, CpGegluFn geglu, uint16_t *out,
						int out_kp, float *cbuf)
{
	switch (terms)
	{
		case 2:
			amx_geglu(xa, 2, M, Kp, gate, up, n0, n1, N, geglu, out, out_kp, cbuf);
			break;
		case 3:
			amx_geglu(xa, 3, M, Kp, gate, up, n0, n1, N, geglu, out, out_kp, cbuf);
			break;
		default:
			amx_geglu(xa, 1, M, Kp, gate, up, n0, n1, N, geglu, out, out_kp, cbuf);
			break;
	}
}
