/*
 * maxsim_screen.c
 *	  Screened exact MaxSim (see maxsim_screen.h): a bf16 pass on AMX tiles
 *	  with a rigorous error bound picks the document rows that the exact
 *	  float32 kernel must see; the others cannot change its result.
 *
 * The error bound.  Let e_ij be what the exact kernel computes for document
 * row d = d_i and query row q = q_j (the float32 fmaf chain over k of
 * maxsim_kernels.h), S = sum_k q_k d_k the real dot product, n = dim, and
 * P = sum_k |q_k d_k| <= |q| |d| (Cauchy-Schwarz; |.| the L2 norm).
 *
 *	 (exact kernel) |e - S| <= g24(n) P, g_u(m) = m u / (1 - m u), u = 2^-24
 *		for round-to-nearest float32, plus at most 2^-150 per operation when
 *		results underflow.
 *	 (inputs) Every value x is rounded to bf16 (8 significant bits, round to
 *		nearest: |x - h| <= 2^-8 |x|).  One part: the approximate products
 *		use h_q h_d, and |sum h_q h_d - S| <= (2 * 2^-8 + 2^-16) P.  Split:
 *		x ~ h + l with l the bf16 rounding of x - h (exact in float32), so
 *		|x - h - l| <= 2^-16 |x|; the products used are h_q h_d + h_q l_d +
 *		l_q h_d, which leave out l_q l_d (|l| <= (2^-8 + 2^-16) |x|), so the
 *		sum is within (2 * 2^-16 + 2^-32 + (2^-8 + 2^-16)^2) P of S.
 *	 (tile accumulation) Products of two bf16 values are exact in float32.
 *		TDPBF16PS adds them into float32 accumulators in an order (and with
 *		a fusing) that Intel leaves to the implementation; whatever it is,
 *		each of the m = kp or 3 kp terms (kp: n rounded up to 32; padding
 *		terms are exact zeros) goes through at most m roundings, so the sum
 *		is within g(m) times the sum of the terms' magnitudes.  We take
 *		u = 2^-23 here, which holds for any faithful rounding, not only for
 *		round to nearest; the terms' magnitudes add up to at most (1 +
 *		2^-8)^2 P (one part) or 1.1 P (split).
 *	 So |a - e| <= c |q| |d| with c = the sum of these factors, and a final
 *	 factor (1 + 2^-8) covers the float32 roundings of c * |q| (and of its
 *	 product with |d|, and of the bound's addition).
 *
 *	 (tiny values) AMX and VCVTNE2PS2BF16 treat bf16/float32 subnormals as
 *		zero and flush subnormal results; the exact kernel underflows
 *		gradually (or flushes, if someone set MXCSR so).  Each such event
 *		moves one value by less than 2^-126: an input (moving a product by
 *		at most 2^-126 times the other factor, so a dot by 2^-125 sqrt(n)
 *		(|q| + |d|) in all), a product, or a partial sum (3 kp events at
 *		most).  A_i = n 2^-120 (2 + max_j |q_j| + |d_i|) covers all of them
 *		with a wide margin.
 *	 The norms: |q| is computed in double and rounded up.  |d| is computed
 *	 in float32 as sqrt(ss + n 2^-124) (1 + 2^-10), ss the float32 sum of
 *	 squares (relative error <= g24(n) <= 2^-12 for n <= 4096, and squares
 *	 flushed below 2^-126 lose at most n 2^-126, which the n 2^-124 term
 *	 returns): never below the true norm.
 *
 *	 Overflow: screening needs every norm finite and <= 2^60.  Then every
 *	 component, bf16 value and partial sum is below 2^122 in magnitude and
 *	 every bound below 2^125: nothing is infinite or NaN on either side.  A
 *	 query outside the limit is not screened at all.  A document row outside
 *	 it (or a NaN/Infinity) turns screening off for the rest of that
 *	 document: every row of its batch and of the later batches is kept.
 *	 The rows of earlier batches were each dropped only because a kept row
 *	 of an earlier batch or of their own had a larger exact value in every
 *	 query row, so the kernel's maxima when the bad row's batch arrives are
 *	 exactly those of the unscreened kernel (below), and from there on both
 *	 fold the same rows, NaN and Infinity included.
 *
 *	 The bound of a row uses the largest norm of its tile of 16 rows: B
 *	 grows with |d|, so that bounds every row of the tile.
 *
 * The candidate rule.  Rows come in batches (of a stored value read chunk
 * by chunk).  After a batch, L_j = max over the rows seen so far (this
 * batch included) of a_ij - B_ij, which is <= e_i'j for the row i' that
 * attains it; and i' was kept: when its own batch was tested, L_j was
 * a_i'j - B_i'j already (it is the largest now, so it was then), and
 * a_i'j + B_i'j >= a_i'j - B_i'j.  The rows of a batch are tested against
 * the L_j that includes the whole batch.  A row i is dropped when
 * a_ij + B_ij < L_j for every j, so e_ij < e_i'j for every j, with i'
 * kept.  The exact kernel folds rows with m = (m > s) ? m : s, so its
 * result is the value of the last row whose e equals the maximum (ties and
 * +0/-0 included): every such row is kept (it is not strictly below
 * anything), and dropping rows strictly below a kept one changes neither the
 * maximum nor which row is last to attain it.  Rounded comparisons are safe:
 * fl(x) < fl(y) implies x < y.
 */
#include "maxsim_screen.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "maxsim_compact.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define MVS_HAVE_X86 1
#include <immintrin.h>
#include "gemm_amx.h"
#endif

/* Prepared tiles in flight (a ring): see ScreenBatch. */
#define MVS_RING 8

/* Align a pointer up to 64 bytes. */
#define MVS_ALIGN64(p)	((void *) (((uintptr_t) (p) + 63) & ~(uintptr_t) 63))
#define MVS_ROUND64(n)	(((size_t) (n) + 63) & ~(size_t) 63)

/* mvs_prefer_vector: the AVX512_BF16 form even where AMX is usable */
static int	prefer_vector = 0;

void
mvs_prefer_vector(int on)
{
	prefer_vector = on ? 1 : 0;
}

/*
 * ScreenKind
 *		How this process screens: MVS_KIND_AMX (AMX-BF16 tiles),
 *		MVS_KIND_VECTOR (AVX512_BF16 dot products, on CPUs without AMX or
 *		with mvs_prefer_vector), or MVS_KIND_NONE.
 */
#define MVS_KIND_NONE	0
#define MVS_KIND_VECTOR 1
#define MVS_KIND_AMX	2

static int
ScreenKind(void)
{
#ifdef MVS_HAVE_X86
	static int	vector = -1;

	if (vector < 0)
	{
		__builtin_cpu_init();
		vector = __builtin_cpu_supports("avx512f") &&
			__builtin_cpu_supports("avx512bw") &&
			__builtin_cpu_supports("avx512vl") &&
			__builtin_cpu_supports("avx512dq") &&
			__builtin_cpu_supports("avx512bf16");	/* (F16C and FMA come with AVX-512) */
	}
	if (!vector)
		return MVS_KIND_NONE;
	return !prefer_vector && cp_cpu_amx_bf16_usable() ? MVS_KIND_AMX : MVS_KIND_VECTOR;
#else
	return MVS_KIND_NONE;
#endif
}

int
mvs_available(void)
{
	return ScreenKind() != MVS_KIND_NONE;
}

int
mvs_uses_amx(void)
{
	return ScreenKind() == MVS_KIND_AMX;
}

/*
 * mvs_batch_rows
 *		512 kB of float32 rows per batch (1024 rows at D = 128, so a ColPali
 *		page is one batch): the larger the batch, the higher every row's
 *		L_j, and a scan stages the rows anyway.  Measured on the exact scan
 *		(float / half pages, screened against unscreened CPU time): batches
 *		of 64 rows 1.04x / 1.19x, 256 rows 1.08-1.13x / 1.26-1.34x, 512 rows
 *		1.15x / 1.35x, 1024 rows 1.16x / 1.40x.
 */
int
mvs_batch_rows(int dim)
{
	int			b = 131072 / (dim > 0 ? dim : 1);

	b -= b % 16;
	if (b < 16)
		b = 16;
	if (b > MVS_MAX_BATCH_ROWS)
		b = MVS_MAX_BATCH_ROWS;
	return b;
}

/* Sizes of the scratch areas, in bytes, each rounded to 64. */
static void
ScratchSizes(int nquery, int dim, size_t *sz)
{
	int			kp = (dim + 31) / 32 * 32;
	int			nqt = (nquery + 15) / 16;
	int			batch = mvs_batch_rows(dim);

	sz[0] = MVS_ROUND64((size_t) nqt * kp * 16 * sizeof(uint32_t) / 2);	/* bhi */
	sz[1] = sz[0];				/* blo */
	sz[2] = MVS_ROUND64((size_t) nqt * 16 * sizeof(float));	/* cq */
	sz[3] = sz[2];				/* lower */
	sz[4] = MVS_ROUND64((size_t) MVS_RING * 16 * kp * sizeof(uint16_t));	/* ahi: a ring of tiles */
	sz[5] = sz[4];				/* alo */
	sz[6] = MVS_ROUND64((size_t) (batch + 16) * sizeof(float));	/* dn */
	sz[7] = MVS_ROUND64((size_t) batch * nqt * 16 * sizeof(float));	/* approx */
	sz[8] = MVS_ROUND64((size_t) batch * dim * sizeof(float));	/* gather */
	sz[9] = MVS_ROUND64((size_t) batch * sizeof(int));	/* keep */
	sz[10] = MVS_ROUND64((size_t) (batch / 16) * nqt * 16 * sizeof(float));	/* tileb */
}

#define MVS_NAREAS 11

size_t
mvs_scratch_bytes(int nquery, int dim)
{
	size_t		sz[MVS_NAREAS];
	size_t		total = 64;
	int			i;

	ScratchSizes(nquery, dim, sz);
	for (i = 0; i < MVS_NAREAS; i++)
		total += sz[i];
	return total;
}

/*
 * Bf16Round
 *		float32 -> bf16, round to nearest even; zero and subnormal inputs
 *		give a signed zero (as the hardware treats them).  Finite inputs
 *		below 2^127 only (the norm limit guarantees it).
 */
static uint16_t
Bf16Round(float x)
{
	uint32_t	u;

	memcpy(&u, &x, sizeof(u));
	if ((u & 0x7f800000) == 0)
		return (uint16_t) ((u >> 16) & 0x8000);
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t) (u >> 16);
}

static float
Bf16ToFloat(uint16_t h)
{
	uint32_t	u = (uint32_t) h << 16;
	float		x;

	memcpy(&x, &u, sizeof(x));
	return x;
}

/* g(m) = m u / (1 - m u) */
static double
Gamma(double m, double u)
{
	return m * u / (1.0 - m * u);
}

/*
 * SetBound
 *		c, c * |q_j| per lane (the norms in lower[] on entry are the query
 *		norms, rounded up).
 */
static void
SetBound(MvsScreen *sc, const float *qnorm)
{
	int			j;

	for (j = 0; j < sc->nqt * 16; j++)
		sc->cq[j] = j < sc->nquery ? sc->c * qnorm[j] : 0.0f;
}

int
mvs_begin(MvsScreen *sc, const float *query, int nquery, int dim, int split,
		  void *scratch)
{
	size_t		sz[MVS_NAREAS];
	char	   *p = MVS_ALIGN64(scratch);
	const double ub = 1.0 / 256.0;
	double		ein,
				mag,
				c;
	int			steps;
	int			j;
	int			k;

	memset(sc, 0, sizeof(*sc));
	sc->dim = dim;
	sc->nquery = nquery;
	sc->kp = (dim + 31) / 32 * 32;
	sc->nqt = (nquery + 15) / 16;
	sc->split = split ? 1 : 0;
	sc->batch = mvs_batch_rows(dim);
	ScratchSizes(nquery, dim, sz);
	sc->bhi = (uint32_t *) p;
	p += sz[0];
	sc->blo = (uint32_t *) p;
	p += sz[1];
	sc->cq = (float *) p;
	p += sz[2];
	sc->lower = (float *) p;
	p += sz[3];
	sc->ahi = (uint16_t *) p;
	p += sz[4];
	sc->alo = (uint16_t *) p;
	p += sz[5];
	sc->dn = (float *) p;
	p += sz[6];
	sc->approx = (float *) p;
	p += sz[7];
	sc->gather = (float *) p;
	p += sz[8];
	sc->keep = (int *) p;
	p += sz[9];
	sc->tileb = (float *) p;

	/* the bound factor (file header) */
	if (sc->split)
	{
		ein = 2.0 * ub * ub + ub * ub * ub * ub + (ub + ub * ub) * (ub + ub * ub);
		mag = 1.1;
		c = ein + Gamma(3.0 * sc->kp, 0x1p-23) * mag;
	}
	else
	{
		ein = 2.0 * ub + ub * ub;
		mag = (1.0 + ub) * (1.0 + ub);
		c = ein + Gamma(sc->kp, 0x1p-23) * mag;
	}
	c += Gamma(dim, 0x1p-24);
	c *= 1.0 + 0x1p-8;
	sc->c = (float) (c * (1.0 + 0x1p-20));
	sc->acoef = (float) (dim * 0x1p-120 * (1.0 + 0x1p-8));

	/* SelectRows keeps 64 vectors of bounds: 1024 query rows at most */
	if (!mvs_available() || dim > 4096 || sc->nqt > 64)
		return 0;
	sc->amx = mvs_uses_amx();

	/* query norms (double, rounded up), kept in lower[] for SetBound */
	sc->qmax = 0.0f;
	for (j = 0; j < sc->nqt * 16; j++)
	{
		double		ss = 0.0;
		float		qn;

		if (j < nquery)
		{
			for (k = 0; k < dim; k++)
				ss += (double) query[(size_t) j * dim + k] * query[(size_t) j * dim + k];
			if (!(sqrt(ss) <= MVS_NORM_LIMIT))
				return 0;		/* NaN, Infinity or too large */
		}
		qn = (float) (sqrt(ss) * (1.0 + 0x1p-20));
		sc->lower[j] = qn;
		if (qn > sc->qmax)
			sc->qmax = qn;
	}
	SetBound(sc, sc->lower);

	/* the query in the B tile layout: [tile][k-step][pair][column] */
	steps = sc->kp / 32;
	for (j = 0; j < sc->nqt * 16; j++)
	{
		int			g = j / 16;
		int			n = j % 16;

		for (k = 0; k < sc->kp; k += 2)
		{
			size_t		idx = (((size_t) g * steps + k / 32) * 16 + (k % 32) / 2) * 16 + n;
			uint16_t	h[2] = {0, 0};
			uint16_t	l[2] = {0, 0};
			int			t;

			for (t = 0; t < 2; t++)
			{
				if (j < nquery && k + t < dim)
				{
					float		x = query[(size_t) j * dim + k + t];

					h[t] = Bf16Round(x);
					l[t] = Bf16Round(x - Bf16ToFloat(h[t]));
				}
			}
			sc->bhi[idx] = h[0] | (uint32_t) h[1] << 16;
			sc->blo[idx] = l[0] | (uint32_t) l[1] << 16;
		}
	}
	sc->ok = 1;
	return 1;
}

void
mvs_test_scale_bound(MvsScreen *sc, float factor)
{
	int			j;

	sc->c *= factor;
	for (j = 0; j < sc->nqt * 16; j++)
		sc->cq[j] *= factor;
}

void
mvs_doc_begin(MvsScreen *sc)
{
	int			j;

	sc->doc_on = sc->ok;
	for (j = 0; j < sc->nqt * 16; j++)
		sc->lower[j] = j < sc->nquery ? -INFINITY : INFINITY;
}

#ifdef MVS_HAVE_X86

#define MVS_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,f16c,fma"

/*
 * PrepRow
 *		One document row (float32, or half when half) into its bf16 parts
 *		(kp columns, zero past dim); returns its squares summed into 16
 *		lanes (the caller adds the lanes).  Inlined with constant dim, kp
 *		and split for the common shapes, so that the loop unrolls and the
 *		masks fold away.
 */
static inline __attribute__((always_inline, target(MVS_TARGET))) __m512
PrepRow(const void *src, int half, int dim, int kp, int split, uint16_t *hi,
		uint16_t *lo)
{
	__m512		ss0 = _mm512_setzero_ps();
	__m512		ss1 = _mm512_setzero_ps();
	int			k;

#pragma GCC unroll 8
	for (k = 0; k < kp; k += 32)
	{
		int			na = dim - k;
		int			nb = dim - k - 16;
		__mmask16	ma = na >= 16 ? 0xFFFF : na <= 0 ? 0 : (__mmask16) ((1u << na) - 1);
		__mmask16	mb = nb >= 16 ? 0xFFFF : nb <= 0 ? 0 : (__mmask16) ((1u << nb) - 1);
		__m512		x0;
		__m512		x1;
		__m512bh	h;

		if (half)
		{
			const uint16_t *s = (const uint16_t *) src + k;

			x0 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(ma, s));
			x1 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mb, s + 16));
		}
		else
		{
			const float *s = (const float *) src + k;

			x0 = _mm512_maskz_loadu_ps(ma, s);
			x1 = _mm512_maskz_loadu_ps(mb, s + 16);
		}
		ss0 = _mm512_fmadd_ps(x0, x0, ss0);
		ss1 = _mm512_fmadd_ps(x1, x1, ss1);
		h = _mm512_cvtne2ps_pbh(x1, x0);
		_mm512_store_si512((__m512i *) (hi + k), (__m512i) h);
		if (split)
		{
			__m512i		hb = (__m512i) h;
			__m512		h0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(hb)), 16));
			__m512		h1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(hb, 1)), 16));
			__m512bh	l = _mm512_cvtne2ps_pbh(_mm512_sub_ps(x1, h1), _mm512_sub_ps(x0, h0));

			_mm512_store_si512((__m512i *) (lo + k), (__m512i) l);
		}
	}
	return _mm512_add_ps(ss0, ss1);
}

/*
 * SumLanes16
 *		Lane r of the result = the sum of the 16 lanes of v[r]: a 16 x 16
 *		transpose folded into additions (45 instructions for 16 rows).
 */
static inline __attribute__((always_inline, target(MVS_TARGET))) __m512
SumLanes16(const __m512 *v)
{
	__m512		t[8];
	__m512		u[4];
	__m512		w0;
	__m512		w1;
	int			i;

	/* per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] */
	for (i = 0; i < 8; i++)
		t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
							 _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
	/* per 128-bit lane: [a, b, c, d] (that lane's part of each row's sum) */
	for (i = 0; i < 4; i++)
		u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
							 _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
	/* rows 0-7: [0-3 lanes 0+1, 0-3 lanes 2+3, 4-7 lanes 0+1, 4-7 lanes 2+3] */
	w0 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
					   _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
	w1 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(2, 0, 2, 0)),
					   _mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(3, 1, 3, 1)));
	return _mm512_add_ps(_mm512_shuffle_f32x4(w0, w1, _MM_SHUFFLE(2, 0, 2, 0)),
						 _mm512_shuffle_f32x4(w0, w1, _MM_SHUFFLE(3, 1, 3, 1)));
}

/*
 * One query tile G of a k-step: tile 4 holds the rows' high parts, 5 their
 * low parts; 6 and 7 the query tile's high and low parts; G accumulates.
 */
#define MVS_TILE_STEP(G) \
	do { \
		size_t		bo = ((size_t) (g0 + (G)) * steps + s) * 256; \
		_tile_loadd(6, sc->bhi + bo, 64); \
		_tile_dpbf16ps(G, 4, 6); \
		if (split) \
		{ \
			_tile_dpbf16ps(G, 5, 6); \
			_tile_loadd(7, sc->blo + bo, 64); \
			_tile_dpbf16ps(G, 4, 7); \
		} \
	} while (0)

/*
 * TileProducts
 *		out[r][j] (row stride 16 nqt floats) = the bf16 dot products of the
 *		16 prepared rows at ah / al (row stride kp) with every query row.
 *		The tile configuration is loaded.
 */
static inline __attribute__((always_inline, target("amx-tile,amx-bf16"))) void
TileProducts(const MvsScreen *sc, const uint16_t *ah, const uint16_t *al,
			 float *out)
{
	int			steps = sc->kp / 32;
	int			split = sc->split;
	size_t		lda = (size_t) sc->kp * sizeof(uint16_t);
	size_t		ldc = (size_t) sc->nqt * 16 * sizeof(float);
	int			g0;

	for (g0 = 0; g0 < sc->nqt; g0 += 4)
	{
		int			ng = sc->nqt - g0 < 4 ? sc->nqt - g0 : 4;
		int			s;

		_tile_zero(0);
		_tile_zero(1);
		_tile_zero(2);
		_tile_zero(3);
		for (s = 0; s < steps; s++)
		{
			_tile_loadd(4, ah + (size_t) s * 32, lda);
			if (split)
				_tile_loadd(5, al + (size_t) s * 32, lda);
			MVS_TILE_STEP(0);
			if (ng > 1)
				MVS_TILE_STEP(1);
			if (ng > 2)
				MVS_TILE_STEP(2);
			if (ng > 3)
				MVS_TILE_STEP(3);
		}
		_tile_stored(0, out + 16 * g0, ldc);
		if (ng > 1)
			_tile_stored(1, out + 16 * (g0 + 1), ldc);
		if (ng > 2)
			_tile_stored(2, out + 16 * (g0 + 2), ldc);
		if (ng > 3)
			_tile_stored(3, out + 16 * (g0 + 3), ldc);
	}
}

/* Tiles between a tile's preparation and its products, and its bounds. */
#define MVS_LAG_PRODUCTS 2
#define MVS_LAG_BOUNDS 4

/*
 * PrepTileShape
 *		Rows [t0, t0 + n) of the batch into ring slot hi / lo (16 rows, the
 *		ones past n zero); the largest of their norm bounds (file header)
 *		into sc->dn[t0 / 16].
 *		False when a row is outside the norm limit.
 */
static inline __attribute__((always_inline, target(MVS_TARGET))) bool
PrepTileShape(MvsScreen *sc, const void *rows, int half, int t0, int n,
			  uint16_t *hi, uint16_t *lo, int dim, int kp, int split)
{
	size_t		esz = half ? sizeof(uint16_t) : sizeof(float);
	__m512		ss[16];
	__m512		dn;
	int			r;

	for (r = 0; r < n; r++)
	{
		const char *src = (const char *) rows + (size_t) (t0 + r) * dim * esz;
		size_t		off;

		/*
		 * Prefetch the row two tiles ahead (past the batch too: prefetches
		 * never fault): out of cache, the sequential reads alone left the
		 * screen waiting for memory.
		 */
		for (off = 0; off < (size_t) dim * esz; off += 64)
			__builtin_prefetch(src + (size_t) 32 * dim * esz + off, 0, 3);
		ss[r] = PrepRow(src, half, dim, kp, split, hi + (size_t) r * kp,
						lo + (size_t) r * kp);
	}
	for (; r < 16; r++)
	{
		ss[r] = _mm512_setzero_ps();
		memset(hi + (size_t) r * kp, 0, (size_t) kp * sizeof(uint16_t));
		if (split)
			memset(lo + (size_t) r * kp, 0, (size_t) kp * sizeof(uint16_t));
	}
	/* sqrt(ss + n 2^-124) (1 + 2^-10), for 16 rows at once */
	dn = _mm512_mul_ps(_mm512_sqrt_ps(_mm512_add_ps(SumLanes16(ss),
													_mm512_set1_ps((float) dim * 0x1p-124f))),
					   _mm512_set1_ps(1.0f + 0x1p-10f));
	/* the tile's largest (the rows past n have norm bounds of zero rows) */
	sc->dn[t0 / 16] = _mm512_reduce_max_ps(dn);
	/* NaN compares false: not (dn <= limit) catches it with Infinity */
	return _mm512_cmp_ps_mask(dn, _mm512_set1_ps(MVS_NORM_LIMIT), _CMP_LE_OQ) == 0xFFFF;
}

static inline __attribute__((always_inline, target(MVS_TARGET))) bool
PrepTile(MvsScreen *sc, const void *rows, int half, int t0, int n,
		 uint16_t *hi, uint16_t *lo)
{
	/* ColPali's shape unrolled, the rest generic */
	if (sc->dim == 128 && !sc->split)
		return half ? PrepTileShape(sc, rows, 1, t0, n, hi, lo, 128, 128, 0) :
			PrepTileShape(sc, rows, 0, t0, n, hi, lo, 128, 128, 0);
	if (sc->dim == 128)
		return half ? PrepTileShape(sc, rows, 1, t0, n, hi, lo, 128, 128, 1) :
			PrepTileShape(sc, rows, 0, t0, n, hi, lo, 128, 128, 1);
	return half ? PrepTileShape(sc, rows, 1, t0, n, hi, lo, sc->dim, sc->kp, sc->split) :
		PrepTileShape(sc, rows, 0, t0, n, hi, lo, sc->dim, sc->kp, sc->split);
}

/*
 * TileBounds
 *		Tile t0 / 16 (rows [t0, t0 + n)): its bound vectors B_j = c |q_j|
 *		dmax + A(dmax), with dmax the tile's largest row norm bound (B is
 *		increasing in |d|, so this bounds every row of the tile; ColPali rows
 *		are L2-normalised, so it loses nothing there), into sc->tileb; and
 *		L_j = max(L_j, a - B) over the tile's rows, with two running maxima
 *		per vector (even and odd rows) to halve the dependency chain.
 */
static inline __attribute__((always_inline, target(MVS_TARGET))) void
TileBounds(MvsScreen *sc, int t0, int n)
{
	size_t		ldc = (size_t) sc->nqt * 16;
	const float *out = sc->approx + (size_t) t0 * ldc;
	float	   *tb = sc->tileb + (size_t) (t0 / 16) * ldc;
	float		dmax = sc->dn[t0 / 16];
	__m512		dv = _mm512_set1_ps(dmax);
	__m512		A = _mm512_set1_ps(sc->acoef * (2.0f + sc->qmax + dmax));
	int			r;
	int			g;

	for (g = 0; g < sc->nqt; g++)
	{
		__m512		L0 = _mm512_load_ps(sc->lower + 16 * g);
		__m512		L1 = L0;
		__m512		B = _mm512_fmadd_ps(_mm512_load_ps(sc->cq + 16 * g), dv, A);

		_mm512_store_ps(tb + 16 * g, B);
		for (r = 0; r + 1 < n; r += 2)
		{
			const float *a0 = out + (size_t) r * ldc + 16 * g;

			L0 = _mm512_max_ps(L0, _mm512_sub_ps(_mm512_load_ps(a0), B));
			L1 = _mm512_max_ps(L1, _mm512_sub_ps(_mm512_load_ps(a0 + ldc), B));
		}
		if (r < n)
			L0 = _mm512_max_ps(L0, _mm512_sub_ps(_mm512_load_ps(out + (size_t) r * ldc + 16 * g), B));
		_mm512_store_ps(sc->lower + 16 * g, _mm512_max_ps(L0, L1));
	}
}

/*
 * KeepRows
 *		After a batch's bounds: the rows with a + B >= L_j for some j into
 *		sc->keep; returns their number.
 */
static inline __attribute__((always_inline, target(MVS_TARGET))) int
KeepRows(MvsScreen *sc, int nrows)
{
	size_t		ldc = (size_t) sc->nqt * 16;
	int			nkeep = 0;
	int			r;
	int			g;

	for (r = 0; r < nrows; r++)
	{
		const float *a = sc->approx + (size_t) r * ldc;
		const float *tb = sc->tileb + (size_t) (r / 16) * ldc;
		__mmask16	any = 0;

		for (g = 0; g < sc->nqt; g++)
			any |= _mm512_cmp_ps_mask(_mm512_add_ps(_mm512_load_ps(a + 16 * g),
													_mm512_load_ps(tb + 16 * g)),
									  _mm512_load_ps(sc->lower + 16 * g), _CMP_GE_OQ);
		if (any)
			sc->keep[nkeep++] = r;
	}
	return nkeep;
}

/*
 * ScreenBatch
 *		mvs_screen_rows for float32 (half = 0) or half rows: -1 when a row is
 *		outside the norm limit, else the number of kept rows (in sc->keep).
 *
 *		Tiles of 16 rows go through three stages, software-pipelined: the
 *		rows are prepared (bf16 parts and norms, into a ring of tile
 *		buffers), multiplied on the AMX tiles MVS_LAG_PRODUCTS tiles later,
 *		and their lower bounds folded into L_j MVS_LAG_BOUNDS tiles later.  The
 *		distance matters: a tile load of data just written by vector stores,
 *		or a vector load of a tile just stored, waits for the stores to
 *		drain (measured: the AMX stage cost 4 times its arithmetic).  Then
 *		every row of the batch is tested against the final L_j.
 */
static __attribute__((target(MVS_TARGET ",amx-tile,amx-bf16"))) int
ScreenBatch(MvsScreen *sc, const void *rows, int half, int nrows)
{
	int			ntiles = (nrows + 15) / 16;
	size_t		slot = (size_t) 16 * sc->kp;
	size_t		ldc = (size_t) sc->nqt * 16;
	int			t;

	cp_amx_load_tile_config();
	for (t = 0; t < ntiles + MVS_LAG_BOUNDS; t++)
	{
		int			tp = t - MVS_LAG_PRODUCTS;
		int			tb = t - MVS_LAG_BOUNDS;

		if (t < ntiles &&
			!PrepTile(sc, rows, half, 16 * t, nrows - 16 * t < 16 ? nrows - 16 * t : 16,
					  sc->ahi + (t % MVS_RING) * slot, sc->alo + (t % MVS_RING) * slot))
		{
			_tile_release();
			return -1;
		}
		if (tp >= 0 && tp < ntiles)
			TileProducts(sc, sc->ahi + (tp % MVS_RING) * slot,
						 sc->alo + (tp % MVS_RING) * slot,
						 sc->approx + (size_t) 16 * tp * ldc);
		if (tb >= 0)
			TileBounds(sc, 16 * tb, nrows - 16 * tb < 16 ? nrows - 16 * tb : 16);
	}
	_tile_release();
	return KeepRows(sc, nrows);
}

/*
 * VecProducts
 *		TileProducts with AVX512_BF16 instead of tiles: out[r][j] for the 16
 *		prepared rows at ah / al and every query row.  VDPBF16PS adds two
 *		exact bf16 products into each float32 lane; every lane of a row's
 *		products is one chain over the kp (split: 3 kp) terms, which the
 *		bound's g(m) covers as it covers the tiles' (file header).  Rows go
 *		8 at a time against two query tiles (16 accumulators, named: GCC 12
 *		moves an array of them between registers at every step); a missing
 *		second tile is multiplied by zeros and not stored.
 */
static inline __attribute__((always_inline, target(MVS_TARGET))) void
VecProducts(const MvsScreen *sc, const uint16_t *ah, const uint16_t *al,
			float *out)
{
	int			kp = sc->kp;
	int			npairs = kp / 2;
	int			split = sc->split;
	size_t		ldc = (size_t) sc->nqt * 16;
	int			g;
	int			r0;

	for (g = 0; g < sc->nqt; g += 2)
	{
		int			two = g + 1 < sc->nqt;
		/* tile g's pairs: bhi[(g * kp / 2 + p) * 16 + column] */
		const uint32_t *bh0 = sc->bhi + (size_t) g * npairs * 16;
		const uint32_t *bl0 = sc->blo + (size_t) g * npairs * 16;

		for (r0 = 0; r0 < 16; r0 += 8)
		{
			const uint16_t *a = ah + (size_t) r0 * kp;
			const uint16_t *l = al + (size_t) r0 * kp;
			__m512		x00, x01, x02, x03, x04, x05, x06, x07;
			__m512		x10, x11, x12, x13, x14, x15, x16, x17;
			int			p;

			x00 = x01 = x02 = x03 = x04 = x05 = x06 = x07 = _mm512_setzero_ps();
			x10 = x11 = x12 = x13 = x14 = x15 = x16 = x17 = _mm512_setzero_ps();
#pragma GCC unroll 1
			for (p = 0; p < npairs; p++)
			{
				__m512bh	b0 = (__m512bh) _mm512_load_si512(bh0 + (size_t) p * 16);
				__m512bh	b1 = two ? (__m512bh) _mm512_load_si512(bh0 + (size_t) (npairs + p) * 16) :
					(__m512bh) _mm512_setzero_si512();
				__m512bh	c0 = b0;
				__m512bh	c1 = b1;

				if (split)
				{
					c0 = (__m512bh) _mm512_load_si512(bl0 + (size_t) p * 16);
					c1 = two ? (__m512bh) _mm512_load_si512(bl0 + (size_t) (npairs + p) * 16) :
						(__m512bh) _mm512_setzero_si512();
				}
#define MVS_VEC_ROW(j, y0, y1) \
				do { \
					uint32_t	pair; \
					__m512bh	v; \
					memcpy(&pair, a + (size_t) (j) * kp + 2 * p, sizeof(pair)); \
					v = (__m512bh) _mm512_set1_epi32((int) pair); \
					y0 = _mm512_dpbf16_ps(y0, v, b0); \
					y1 = _mm512_dpbf16_ps(y1, v, b1); \
					if (split) \
					{ \
						__m512bh	w; \
						memcpy(&pair, l + (size_t) (j) * kp + 2 * p, sizeof(pair)); \
						w = (__m512bh) _mm512_set1_epi32((int) pair); \
						y0 = _mm512_dpbf16_ps(y0, w, b0); \
						y1 = _mm512_dpbf16_ps(y1, w, b1); \
						y0 = _mm512_dpbf16_ps(y0, v, c0); \
						y1 = _mm512_dpbf16_ps(y1, v, c1); \
					} \
				} while (0)
				MVS_VEC_ROW(0, x00, x10);
				MVS_VEC_ROW(1, x01, x11);
				MVS_VEC_ROW(2, x02, x12);
				MVS_VEC_ROW(3, x03, x13);
				MVS_VEC_ROW(4, x04, x14);
				MVS_VEC_ROW(5, x05, x15);
				MVS_VEC_ROW(6, x06, x16);
				MVS_VEC_ROW(7, x07, x17);
#undef MVS_VEC_ROW
			}
#define MVS_VEC_STORE(j, y0, y1) \
			do { \
				_mm512_store_ps(out + (size_t) (r0 + (j)) * ldc + 16 * g, y0); \
				if (two) \
					_mm512_store_ps(out + (size_t) (r0 + (j)) * ldc + 16 * (g + 1), y1); \
			} while (0)
			MVS_VEC_STORE(0, x00, x10);
			MVS_VEC_STORE(1, x01, x11);
			MVS_VEC_STORE(2, x02, x12);
			MVS_VEC_STORE(3, x03, x13);
			MVS_VEC_STORE(4, x04, x14);
			MVS_VEC_STORE(5, x05, x15);
			MVS_VEC_STORE(6, x06, x16);
			MVS_VEC_STORE(7, x07, x17);
#undef MVS_VEC_STORE
		}
	}
}

/*
 * ScreenBatchVector
 *		ScreenBatch on CPUs without AMX: each tile of 16 rows is prepared,
 *		multiplied (VecProducts) and folded into L_j in turn (vector loads
 *		of vector stores need no distance).
 */
static __attribute__((target(MVS_TARGET))) int
ScreenBatchVector(MvsScreen *sc, const void *rows, int half, int nrows)
{
	int			ntiles = (nrows + 15) / 16;
	size_t		ldc = (size_t) sc->nqt * 16;
	int			t;

	for (t = 0; t < ntiles; t++)
	{
		int			n = nrows - 16 * t < 16 ? nrows - 16 * t : 16;

		if (!PrepTile(sc, rows, half, 16 * t, n, sc->ahi, sc->alo))
			return -1;
		VecProducts(sc, sc->ahi, sc->alo, sc->approx + (size_t) 16 * t * ldc);
		TileBounds(sc, 16 * t, n);
	}
	return KeepRows(sc, nrows);
}

#endif							/* MVS_HAVE_X86 */

/*
 * Screen
 *		The kept rows of a batch (all of them when not screening).
 */
static int
Screen(MvsScreen *sc, const void *rows, int half, int nrows)
{
	int			n = -1;
	int			r;

	sc->rows_seen += nrows;
#ifdef MVS_HAVE_X86
	if (sc->doc_on)
	{
		n = sc->amx ? ScreenBatch(sc, rows, half, nrows) :
			ScreenBatchVector(sc, rows, half, nrows);
		if (n < 0)
		{
			/* a row outside the norm limit: keep everything from here on */
			sc->doc_on = 0;
			sc->docs_fallback++;
		}
	}
#endif
	if (n < 0)
	{
		for (r = 0; r < nrows; r++)
			sc->keep[r] = r;
		n = nrows;
	}
	sc->rows_kept += n;
	return n;
}

int
mvs_screen_rows(MvsScreen *sc, const float *rows, int nrows)
{
	return Screen(sc, rows, 0, nrows);
}

int
mvs_screen_half_rows(MvsScreen *sc, const uint16_t *rows, int nrows)
{
	return Screen(sc, rows, 1, nrows);
}

/* Fold n float32 rows into every query block of st. */
static void
FoldRows(MvkStream *st, const float *rows, int n)
{
	int			b;

	for (b = 0; b < MVK_STREAM_BLOCKS(st->nquery); b++)
		mvk_stream_rows(st, b, rows, n);
}

int
mvs_stream_rows(MvsScreen *sc, MvkStream *st, const float *rows, int nrows)
{
	int			n = Screen(sc, rows, 0, nrows);
	int			i;

	if (n == nrows)
		FoldRows(st, rows, nrows);
	else if (n > 0)
	{
		for (i = 0; i < n; i++)
			memcpy(sc->gather + (size_t) i * sc->dim,
				   rows + (size_t) sc->keep[i] * sc->dim,
				   sizeof(float) * sc->dim);
		FoldRows(st, sc->gather, n);
	}
	return n;
}

int
mvs_stream_half_rows(MvsScreen *sc, MvkStream *st, const uint16_t *rows,
					 int nrows)
{
	int			n = Screen(sc, rows, 1, nrows);
	MvkKind		kind = mvk_best();
	int			i;

	if (n == nrows)
		mvk_half_to_float(kind, rows, (size_t) nrows * sc->dim, sc->gather);
	else
		for (i = 0; i < n; i++)
			mvk_half_to_float(kind, rows + (size_t) sc->keep[i] * sc->dim,
							  sc->dim, sc->gather + (size_t) i * sc->dim);
	if (n > 0)
		FoldRows(st, sc->gather, n);
	return n;
}

double
mvk_maxsim_screened(MvkKind kind, MvsScreen *sc, const float *doc, int ndoc,
					const float *query, int nquery, int dim,
					float *stream_scratch)
{
	MvkStream	st;
	int			i0;

	mvk_stream_begin(&st, kind, query, nquery, dim, stream_scratch);
	mvs_doc_begin(sc);
	for (i0 = 0; i0 < ndoc; i0 += sc->batch)
		mvs_stream_rows(sc, &st, doc + (size_t) i0 * dim,
						ndoc - i0 < sc->batch ? ndoc - i0 : sc->batch);
	return mvk_stream_end(&st);
}

double
mvk_maxsim_half_screened(MvkKind kind, MvsScreen *sc, const uint16_t *doc,
						 int ndoc, const float *query, int nquery, int dim,
						 float *stream_scratch)
{
	MvkStream	st;
	int			i0;

	mvk_stream_begin(&st, kind, query, nquery, dim, stream_scratch);
	mvs_doc_begin(sc);
	for (i0 = 0; i0 < ndoc; i0 += sc->batch)
		mvs_stream_half_rows(sc, &st, doc + (size_t) i0 * dim,
							 ndoc - i0 < sc->batch ? ndoc - i0 : sc->batch);
	return mvk_stream_end(&st);
}
