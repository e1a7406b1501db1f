/*
 * maxsim_codes_amx.c
 *	  Quantized MaxSim of residual-coded rows on AMX-INT8 tiles
 *	  (maxsim_codes_amx.h explains the arithmetic and its error).
 *
 * Per block of 16 tokens: decode them into 16 int8 rows of dim bytes
 * (scratch), then for each block of 32 query rows and each 64 dimensions
 * one A tile (16 tokens x 64 dimensions) times two B tiles (64 dimensions
 * x 16 query rows each, in TDPBSSD's layout of 4 consecutive dimensions
 * per 32-bit column element) into two int32 accumulator tiles, which are
 * stored and folded token by token into the float running maxima.  At D =
 * 128 that is 4 tile products per 16 tokens and 32 query rows, against
 * 32 table lookups per token of the byte-table loop it replaces.
 *
 * Decoding one token's 64 dimensions: maxsim_codes_decode.h.
 */
#include <math.h>
#include <string.h>

#include "gemm_amx.h"
#include "maxsim_codes_amx.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include "maxsim_codes_decode.h"
#define CODES_HAVE_X86 1
#endif

#define ALIGN64(p)	((void *) (((uintptr_t) (p) + 63) & ~(uintptr_t) 63))
#define ROUND64(n)	(((size_t) (n) + 63) & ~(size_t) 63)

bool
cp_codes_amx_usable(void)
{
#ifdef CODES_HAVE_X86
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") &&
		__builtin_cpu_supports("avx512bw") &&
		__builtin_cpu_supports("avx512vbmi") &&
		cp_cpu_amx_int8_usable();
#else
	return false;
#endif
}

bool
cp_codes_vnni_usable(void)
{
#ifdef CODES_HAVE_X86
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") &&
		__builtin_cpu_supports("avx512bw") &&
		__builtin_cpu_supports("avx512vnni");
#else
	return false;
#endif
}

bool
cp_codes_vbmi_usable(void)
{
#ifdef CODES_HAVE_X86
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512vbmi");
#else
	return false;
#endif
}

bool
cp_codes_shape_supported(int dim, int nbits)
{
	return dim > 0 && dim % CP_CODES_KSTEP == 0 &&
		(nbits == 1 || nbits == 2 || nbits == 4);
}

static int
blocks_of(int nq)
{
	return (nq + CP_CODES_BLOCK - 1) / CP_CODES_BLOCK;
}

size_t
cp_codes_query_bytes(int nq, int dim)
{
	size_t		nb = (size_t) blocks_of(nq);

	return 64 + ROUND64(sizeof(float) * nb * CP_CODES_BLOCK) +
		ROUND64(sizeof(int32_t) * nb * CP_CODES_BLOCK) +
		ROUND64(nb * CP_CODES_BLOCK * (size_t) dim) + ROUND64((size_t) 32 * dim);
}

/* x rounded to the nearest integer in [-127, 127] */
static int8_t
to_int8(float x)
{
	float		r = rintf(x);

	if (r > 127.0f)
		r = 127.0f;
	if (r < -127.0f)
		r = -127.0f;
	return (int8_t) r;
}

void
cp_codes_prepare(CpCodesQuery *cq, const float *q, size_t ldq, int nq,
				 int dim, int nbits, const float *weights, void *mem)
{
	int			nvalues = 1 << nbits;
	int			ksteps = dim / CP_CODES_KSTEP;
	float		maxw = 0;
	char	   *p = ALIGN64(mem);
	int			nb = blocks_of(nq);
	int			i;
	int			c;

	cq->nq = nq;
	cq->nblocks = nb;
	cq->dim = dim;
	cq->nbits = nbits;
	for (c = 0; c < nvalues; c++)
		if (isfinite(weights[c]) && fabsf(weights[c]) > maxw)
			maxw = fabsf(weights[c]);
	cq->levelScale = maxw > 0 ? maxw / 127.0f : 1.0f;
	memset(cq->levels, 0, sizeof(cq->levels));
	for (c = 0; c < nvalues; c++)
		cq->levels[c] = isfinite(weights[c]) ? to_int8(weights[c] / cq->levelScale) : 0;

	cq->kernel = cp_codes_amx_usable() ? CP_CODES_AMX :
		!cp_codes_vnni_usable() ? CP_CODES_NONE :
		cp_codes_vbmi_usable() ? CP_CODES_VNNI : CP_CODES_VNNI_BW;
	cq->scale = (float *) p;
	p += ROUND64(sizeof(float) * nb * CP_CODES_BLOCK);
	cq->vnniStart = (int32_t *) p;
	p += ROUND64(sizeof(int32_t) * nb * CP_CODES_BLOCK);
	cq->tiles = (int8_t *) p;
	p += ROUND64((size_t) nb * CP_CODES_BLOCK * dim);
	cq->scratch = (int8_t *) p;
	memset(cq->scale, 0, sizeof(float) * nb * CP_CODES_BLOCK);
	memset(cq->vnniStart, 0, sizeof(int32_t) * nb * CP_CODES_BLOCK);
	memset(cq->tiles, 0, (size_t) nb * CP_CODES_BLOCK * dim);
	memset(cq->scratch, 0, (size_t) 32 * dim);

	for (i = 0; i < nq; i++)
	{
		const float *x = q + (size_t) i * ldq;
		float		maxq = 0;
		float		sq;
		int			blk = i / CP_CODES_BLOCK;
		int			cb = (i % CP_CODES_BLOCK) / 16;
		int			col = i % 16;
		int			d;

		for (d = 0; d < dim; d++)
		{
			if (!isfinite(x[d]))
				break;
			if (fabsf(x[d]) > maxq)
				maxq = fabsf(x[d]);
		}
		if (d < dim || maxq == 0)
			continue;			/* scale 0, zero row: centroid scores only */
		sq = maxq / 127.0f;
		cq->scale[i] = sq * cq->levelScale;
		for (d = 0; d < dim; d++)
		{
			int			s = d / CP_CODES_KSTEP;
			int			k = d % CP_CODES_KSTEP;
			size_t		tile = ((size_t) blk * ksteps + s) * 2 + cb;

			int8_t		v = to_int8(x[d] / sq);

			cq->tiles[tile * 1024 + (size_t) (k / 4) * 64 + col * 4 + k % 4] = v;
			cq->vnniStart[i] -= 128 * v;
		}
	}
}

double
cp_codes_error_bound(const CpCodesQuery *cq, int i, const float *q,
					 const float *weights, const uint8_t *code)
{
	double		sq = cq->scale[i] / cq->levelScale;
	double		sw = cq->levelScale;
	double		l1q = 0;
	double		l1w = 0;
	int			mask = (1 << cq->nbits) - 1;
	int			d;

	if (cq->scale[i] == 0)
	{
		/* no residual term: the error is the whole exact term */
		double		s = 0;

		for (d = 0; d < cq->dim; d++)
		{
			int			bit = d * cq->nbits;

			s += (double) q[d] * weights[(code[bit / 8] >> (bit % 8)) & mask];
		}
		return fabs(s);
	}
	for (d = 0; d < cq->dim; d++)
	{
		int			bit = d * cq->nbits;

		l1q += fabs(q[d]);
		l1w += fabs(weights[(code[bit / 8] >> (bit % 8)) & mask]);
	}
	return sw / 2 * l1q + sq / 2 * l1w + cq->dim * sq * sw / 4;
}

#ifdef CODES_HAVE_X86
#define CODES_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vbmi")))

/*
 * decode_block
 *		Tokens [t0, t0 + m) into rows 0 .. m-1 of buf (dim bytes each):
 *		rows past m keep earlier values, whose sums are never used.
 */
static inline CODES_TARGET void
decode_block(const CpCodesQuery *cq, const CodesDecoder *dec,
			 const uint8_t *codes, size_t codeSize, int t0, int m, int8_t *buf,
			 const void *lists, const float *cs, size_t ldcs, int nlists)
{
	int			dim = cq->dim;
	int			nbits = cq->nbits;
	int			ksteps = dim / CP_CODES_KSTEP;
	int			j;

	for (j = 0; j < m; j++)
	{
		const uint8_t *code = codes + (size_t) (t0 + j) * codeSize;
		int			s;

		/*
		 * The codes two blocks ahead (may lie past the last: a hint only),
		 * and the centroid scores this token's fold will read.
		 */
		_mm_prefetch((const char *) code + 32 * codeSize, _MM_HINT_T0);
		codes_prefetch_scores(lists, t0 + j, cs, ldcs, nlists, cq->nblocks);

		for (s = 0; s < ksteps; s++)
			_mm512_store_si512(buf + (size_t) j * dim + s * CP_CODES_KSTEP,
							   codes_decode64(dec, code + (size_t) s * 8 * nbits, nbits));
	}
}

/*
 * fold_block
 *		Fold the int32 sums c (16 tokens x 32 query rows of block blk) of
 *		tokens [t0, t0 + m) into the block's running maxima.
 */
static inline CODES_TARGET void
fold_block(const CpCodesQuery *cq, int blk, int32_t c[2][16][16],
		   const void *lists, int t0, int m, const float *cs, size_t ldcs,
		   int nlists, float *acc, float *ciAcc)
{
	const float *scale = cq->scale + blk * CP_CODES_BLOCK;
	__m512		a0 = _mm512_loadu_ps(acc + blk * CP_CODES_BLOCK);
	__m512		a1 = _mm512_loadu_ps(acc + blk * CP_CODES_BLOCK + 16);
	__m512		ci0 = _mm512_loadu_ps(ciAcc + blk * CP_CODES_BLOCK);
	__m512		ci1 = _mm512_loadu_ps(ciAcc + blk * CP_CODES_BLOCK + 16);
	__m512		s0 = _mm512_loadu_ps(scale);
	__m512		s1 = _mm512_loadu_ps(scale + 16);
	int			j;

	for (j = 0; j < m; j++)
	{
		uint16_t	list;
		const float *row;
		__m512		c0,
					c1;

		memcpy(&list, (const char *) lists + (size_t) (t0 + j) * sizeof(uint16_t),
			   sizeof(uint16_t));
		if (list >= nlists)
			continue;
		row = cs + (size_t) list * ldcs + blk * CP_CODES_BLOCK;
		c0 = _mm512_loadu_ps(row);
		c1 = _mm512_loadu_ps(row + 16);
		ci0 = _mm512_max_ps(c0, ci0);
		ci1 = _mm512_max_ps(c1, ci1);
		a0 = _mm512_max_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[0][j])), s0, c0), a0);
		a1 = _mm512_max_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[1][j])), s1, c1), a1);
	}
	_mm512_storeu_ps(acc + blk * CP_CODES_BLOCK, a0);
	_mm512_storeu_ps(acc + blk * CP_CODES_BLOCK + 16, a1);
	_mm512_storeu_ps(ciAcc + blk * CP_CODES_BLOCK, ci0);
	_mm512_storeu_ps(ciAcc + blk * CP_CODES_BLOCK + 16, ci1);
}

/*
 * codes_maxsim_amx
 *		Token blocks are decoded one ahead into two buffers, so that the
 *		decoding of the next block overlaps the tile products of this one.
 *		In the common shape (128 dimensions, at most 32 query rows) the four
 *		B tiles stay loaded (tiles 3-6) and the two A tiles of a block are
 *		tiles 2 and 7; otherwise each product loads its tiles.
 */
static CODES_TARGET void
codes_maxsim_amx(const CpCodesQuery *cq, const void *lists,
				 const uint8_t *codes, size_t codeSize, int n,
				 const float *cs, size_t ldcs, int nlists,
				 float *acc, float *ciAcc)
{
	int			dim = cq->dim;
	int			ksteps = dim / CP_CODES_KSTEP;
	bool		resident = (ksteps == 2 && cq->nblocks == 1);
	int32_t		c[2][16][16] __attribute__((aligned(64)));
	CodesDecoder dec;
	int			t0;

	if (n <= 0)
		return;
	codes_decoder_init(&dec, cq->nbits, cq->levels);
	cp_amx_load_tile_config();
	if (resident)
	{
		_tile_loadd(3, cq->tiles, 64);
		_tile_loadd(4, cq->tiles + 1024, 64);
		_tile_loadd(5, cq->tiles + 2048, 64);
		_tile_loadd(6, cq->tiles + 3072, 64);
	}
	decode_block(cq, &dec, codes, codeSize, 0, n < 16 ? n : 16, cq->scratch,
				 lists, cs, ldcs, nlists);
	for (t0 = 0; t0 < n; t0 += 16)
	{
		int			m = n - t0 < 16 ? n - t0 : 16;
		int8_t	   *buf = cq->scratch + (size_t) ((t0 / 16) % 2) * 16 * dim;
		int8_t	   *next = cq->scratch + (size_t) ((t0 / 16 + 1) % 2) * 16 * dim;
		int			blk;

		if (resident)
		{
			_tile_zero(0);
			_tile_zero(1);
			_tile_loadd(2, buf, dim);
			_tile_loadd(7, buf + CP_CODES_KSTEP, dim);
			_tile_dpbssd(0, 2, 3);
			_tile_dpbssd(1, 2, 4);
			_tile_dpbssd(0, 7, 5);
			_tile_dpbssd(1, 7, 6);
			_tile_stored(0, c[0], 64);
			_tile_stored(1, c[1], 64);
			if (t0 + 16 < n)
				decode_block(cq, &dec, codes, codeSize, t0 + 16,
							 n - t0 - 16 < 16 ? n - t0 - 16 : 16, next,
							 lists, cs, ldcs, nlists);
			fold_block(cq, 0, c, lists, t0, m, cs, ldcs, nlists, acc, ciAcc);
			continue;
		}
		for (blk = 0; blk < cq->nblocks; blk++)
		{
			const int8_t *bt = cq->tiles + (size_t) blk * ksteps * 2048;
			int			s;

			_tile_zero(0);
			_tile_zero(1);
			for (s = 0; s < ksteps; s++)
			{
				_tile_loadd(2, buf + s * CP_CODES_KSTEP, dim);
				_tile_loadd(3, bt + (size_t) s * 2048, 64);
				_tile_loadd(4, bt + (size_t) s * 2048 + 1024, 64);
				_tile_dpbssd(0, 2, 3);
				_tile_dpbssd(1, 2, 4);
			}
			_tile_stored(0, c[0], 64);
			_tile_stored(1, c[1], 64);
			if (blk == 0 && t0 + 16 < n)
				decode_block(cq, &dec, codes, codeSize, t0 + 16,
							 n - t0 - 16 < 16 ? n - t0 - 16 : 16, next,
							 lists, cs, ldcs, nlists);
			fold_block(cq, blk, c, lists, t0, m, cs, ldcs, nlists, acc, ciAcc);
		}
	}
	_tile_release();
}
#endif

void
cp_codes_maxsim(const CpCodesQuery *cq, const void *lists,
				const uint8_t *codes, size_t codeSize, int n,
				const float *cs, size_t ldcs, int nlists,
				float *acc, float *ciAcc)
{
#ifdef CODES_HAVE_X86
	if (cq->kernel == CP_CODES_AMX)
		codes_maxsim_amx(cq, lists, codes, codeSize, n, cs, ldcs, nlists, acc, ciAcc);
	else if (cq->kernel == CP_CODES_VNNI || cq->kernel == CP_CODES_VNNI_BW)
		cp_codes_maxsim_vnni(cq, lists, codes, codeSize, n, cs, ldcs, nlists, acc, ciAcc);
#else
	(void) cq;
	(void) lists;
	(void) codes;
	(void) codeSize;
	(void) n;
	(void) cs;
	(void) ldcs;
	(void) nlists;
	(void) acc;
	(void) ciAcc;
#endif
}
