/*
 * maxsim_kernels.c
 *	  MaxSim kernels: scalar oracle, AVX2+FMA and AVX-512, runtime dispatch.
 *
 * No PostgreSQL headers here: the benchmark (bench/maxsim) and the kernel
 * self-test compile this file on its own.
 *
 * Design.  The SIMD kernels vectorise over query rows, not over the inner
 * dimension, so that no horizontal reduction is ever needed:
 *
 *	 1. A block of up to MVK_QUERY_BLOCK query rows is transposed into the
 *		scratch buffer, qt[k][j] (lanes padded with zeros to the vector width).
 *	 2. For R document rows at a time (register blocking), each lane j of the
 *		accumulators acc[r][v] holds <doc_{i+r}, query_j>, built by one FMA
 *		per k with doc_{i+r}[k] broadcast: the R x NQV accumulators and the
 *		NQV query vectors for this k stay in registers.
 *	 3. After the k loop the accumulators are folded into running maxima M[v]
 *		(vertical MAXPS, rows in order), and the next R rows follow (they
 *		were prefetched during the k loop, see MVK_PF_BLOCKS).  Each
 *		document row is read from memory once per query block, so once in
 *		total for queries of up to MVK_QUERY_BLOCK rows (ColPali: 20-32).
 *	 4. The maxima are stored and summed in double in query row order, one
 *		partial sum per block; the block sums are added in order.
 *
 * Because each lane is an in-order FMA chain and the maxima are taken in row
 * order, the results are bit-identical to the scalar kernel (see the header
 * for the exact operations and the error bound).
 */
#include "maxsim_kernels.h"

#include <math.h>
#include <stdint.h>

#include "mv_half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define MVK_HAVE_X86 1
#include <immintrin.h>
#endif

/*
 * Software prefetch: during the k loop over one block of R document rows,
 * the block MVK_PF_BLOCKS blocks ahead is prefetched in address order (one
 * prefetch per k covers R floats, so the whole block by the end of the
 * loop).  The kernel reads a block column by column, a strided pattern
 * that restarts in every 4 kB page, which hardware prefetchers follow badly:
 * on AMD Zen 4 this took out-of-cache throughput with 4-row queries from 28%
 * to over 50% of the single-core read bandwidth, and 20-32-row queries
 * (compute-bound) to about 97% of their in-cache speed.
 */
#ifndef MVK_PF_BLOCKS
#define MVK_PF_BLOCKS 1
#endif
#ifndef MVK_PF_LOCALITY
#define MVK_PF_LOCALITY 3
#endif

/* Prefetch base + off bytes (may lie past the document: prefetches never fault). */
#define MVK_PREFETCH(base, off) \
	__builtin_prefetch((const void *) ((uintptr_t) (base) + (off)), 0, MVK_PF_LOCALITY)

/* Rows that make whole register blocks for every kernel (6, 5, 3, 2 rows). */
#define MVK_ROWS_MULTIPLE 30

/* Align a scratch pointer up to 64 bytes. */
#define MVK_ALIGN64(p)	((float *) (((uintptr_t) (p) + 63) & ~(uintptr_t) 63))

/*
 * mvk_scratch_floats
 *		Floats of scratch the SIMD kernels need: one transposed query block
 *		plus slack for alignment.
 */
size_t
mvk_scratch_floats(int dim)
{
	return (size_t) dim * MVK_QUERY_BLOCK + 16 + MVK_HALF_CHUNK_FLOATS;
}

/*
 * MaxSimScalar
 *		The reference kernel: the definition, written out plainly.
 */
static double
MaxSimScalar(const float *doc, int ndoc, const float *query, int nquery,
			 int dim)
{
	double		total = 0.0;
	double		part = 0.0;
	int			j;

	for (j = 0; j < nquery; j++)
	{
		const float *q = query + (size_t) j * dim;
		float		m = -INFINITY;
		int			i;

		if (j > 0 && j % MVK_QUERY_BLOCK == 0)
		{
			total += part;
			part = 0.0;
		}

		for (i = 0; i < ndoc; i++)
		{
			const float *d = doc + (size_t) i * dim;
			float		s = 0.0f;
			int			k;

			for (k = 0; k < dim; k++)
				s = fmaf(d[k], q[k], s);
			m = (m > s) ? m : s;
		}
		part += m;
	}
	return total + part;
}

/*
 * TransposeQueryBlock
 *		qt[k * pad + j] = query[(q0 + j) * dim + k] for j < nq, zero for
 *		nq <= j < pad.
 */
static void
TransposeQueryBlock(const float *query, int q0, int nq, int dim, int pad,
					float *qt)
{
	int			k;
	int			j;

	for (k = 0; k < dim; k++)
	{
		float	   *row = qt + (size_t) k * pad;

		for (j = 0; j < nq; j++)
			row[j] = query[(size_t) (q0 + j) * dim + k];
		for (; j < pad; j++)
			row[j] = 0.0f;
	}
}

#ifdef MVK_HAVE_X86

/* ---------------------------------------------------------------------------
 * AVX-512 (F + VL): 16-lane zmm vectors plus, when the query rows of a block
 * are not a multiple of 16, one 8-lane ymm vector (on CPUs that split zmm
 * operations into two 256-bit halves, such as AMD Zen 4, this wastes fewer
 * lanes; e.g. 20 query rows use 24 lanes instead of 32).  Up to 64 query
 * rows per pass.
 * ---------------------------------------------------------------------------
 */

/*
 * Avx512Rows
 *		Fold R document rows starting at doc into the maxima M[0..nz-1] (zmm
 *		lanes) and Mh (nh = 1: one ymm of 8 more lanes), for query lanes
 *		qt[k * pad + l].  Inlined with constant nz, nh and R so that the
 *		accumulators live in registers.  Prefetches a block ahead.
 *		pad (the row stride of qt) is a multiple of 16, so all loads are
 *		aligned.
 */
static inline __attribute__((always_inline, target("avx512f,avx512vl,avx2,fma"))) void
Avx512Rows(const float *doc, int dim, const float *qt, int pad, int nz, int nh,
		   int R, __m512 *M, __m256 *Mh)
{
	__m512		acc[8][4];
	__m256		acch[8];
	int			r;
	int			v;
	int			k;

#pragma GCC unroll 8
	for (r = 0; r < R; r++)
	{
#pragma GCC unroll 4
		for (v = 0; v < nz; v++)
			acc[r][v] = _mm512_setzero_ps();
		if (nh)
			acch[r] = _mm256_setzero_ps();
	}

	for (k = 0; k < dim; k++)
	{
		const float *qk = qt + (size_t) k * pad;
		__m512		qv[4];
		__m256		qh = _mm256_setzero_ps();

		MVK_PREFETCH(doc, ((size_t) MVK_PF_BLOCKS * R * dim + (size_t) k * R) * sizeof(float));
#pragma GCC unroll 4
		for (v = 0; v < nz; v++)
			qv[v] = _mm512_load_ps(qk + 16 * v);
		if (nh)
			qh = _mm256_load_ps(qk + 16 * nz);
#pragma GCC unroll 8
		for (r = 0; r < R; r++)
		{
			float		x = doc[(size_t) r * dim + k];
			__m512		b = _mm512_set1_ps(x);

#pragma GCC unroll 4
			for (v = 0; v < nz; v++)
				acc[r][v] = _mm512_fmadd_ps(b, qv[v], acc[r][v]);
			if (nh)
				acch[r] = _mm256_fmadd_ps(_mm256_set1_ps(x), qh, acch[r]);
		}
	}

#pragma GCC unroll 8
	for (r = 0; r < R; r++)
	{
#pragma GCC unroll 4
		for (v = 0; v < nz; v++)
			M[v] = _mm512_max_ps(M[v], acc[r][v]);
		if (nh)
			*Mh = _mm256_max_ps(*Mh, acch[r]);
	}
}

/* One pass over the document for nz zmm + nh ymm query vectors, block R. */
#define AVX512_PASS(NZ, NH, R) \
static __attribute__((target("avx512f,avx512vl,avx2,fma"))) void \
Avx512Pass##NZ##_##NH(const float *doc, int ndoc, int dim, const float *qt, \
					  float *out) \
{ \
	__m512		M[4]; \
	__m256		Mh = _mm256_set1_ps(-INFINITY); \
	int			i; \
	int			v; \
	for (v = 0; v < 4; v++) \
		M[v] = _mm512_set1_ps(-INFINITY); \
	/* the running maxima continue from out (-Infinity for a fresh pass) */ \
	for (v = 0; v < (NZ); v++) \
		M[v] = _mm512_loadu_ps(out + 16 * v); \
	if (NH) \
		Mh = _mm256_loadu_ps(out + 16 * (NZ)); \
	for (i = 0; i + (R) <= ndoc; i += (R)) \
		Avx512Rows(doc + (size_t) i * dim, dim, qt, 16 * ((NZ) + (NH)), \
				   (NZ), (NH), (R), M, &Mh); \
	for (; i < ndoc; i++) \
		Avx512Rows(doc + (size_t) i * dim, dim, qt, 16 * ((NZ) + (NH)), \
				   (NZ), (NH), 1, M, &Mh); \
	for (v = 0; v < (NZ); v++) \
		_mm512_storeu_ps(out + 16 * v, M[v]); \
	if (NH) \
		_mm256_storeu_ps(out + 16 * (NZ), Mh); \
}

/*
 * Register blocks of 6 rows (5 at 64 lanes): blocks of 8 rows, which at
 * D = 128 span one 4 kB page, measured up to 40% slower out of cache.
 */
AVX512_PASS(0, 1, 6)
AVX512_PASS(1, 0, 6)
AVX512_PASS(1, 1, 6)
AVX512_PASS(2, 0, 6)
AVX512_PASS(2, 1, 6)
AVX512_PASS(3, 0, 6)
AVX512_PASS(3, 1, 6)
AVX512_PASS(4, 0, 5)

/*
 * MaxSimAvx512
 *		MaxSim with AVX-512F/VL; see the file header for the scheme.
 */
static __attribute__((target("avx512f,avx512vl,avx2,fma"))) void
Avx512PassAny(const float *doc, int ndoc, int dim, const float *qt, int n8,
			  float *m)
{
	switch (n8)
	{
		case 1:
			Avx512Pass0_1(doc, ndoc, dim, qt, m);
			break;
		case 2:
			Avx512Pass1_0(doc, ndoc, dim, qt, m);
			break;
		case 3:
			Avx512Pass1_1(doc, ndoc, dim, qt, m);
			break;
		case 4:
			Avx512Pass2_0(doc, ndoc, dim, qt, m);
			break;
		case 5:
			Avx512Pass2_1(doc, ndoc, dim, qt, m);
			break;
		case 6:
			Avx512Pass3_0(doc, ndoc, dim, qt, m);
			break;
		case 7:
			Avx512Pass3_1(doc, ndoc, dim, qt, m);
			break;
		default:
			Avx512Pass4_0(doc, ndoc, dim, qt, m);
			break;
	}
}

/*
 * MaxSimAvx512Half
 *		MaxSim of a half document (binary16, row-major) with AVX-512: the
 *		document is widened (VCVTPH2PS, exact) MVK_HALF_CHUNK_FLOATS at a
 *		time into the scratch space after the query block, and each chunk of
 *		rows continues the running maxima of the previous one.  Every row is
 *		folded into the maxima in row order as in MaxSimAvx512, so the result
 *		is that of the float kernel on the widened document, bit for bit,
 *		without writing and rereading a float copy of the whole document.
 */
static __attribute__((target("avx512f,avx512vl,avx2,fma"))) double
MaxSimAvx512Half(const uint16_t *doc, int ndoc, const float *query, int nquery,
				 int dim, float *scratch)
{
	float	   *qt = MVK_ALIGN64(scratch);
	float	   *chunk = qt + (size_t) dim * MVK_QUERY_BLOCK;
	int			rows = MVK_HALF_CHUNK_FLOATS / dim;
	float		m[MVK_QUERY_BLOCK];
	double		total = 0.0;
	int			q0;

	/* whole register blocks per chunk (see maxsim_kernels.h, streaming) */
	if (rows >= MVK_ROWS_MULTIPLE)
		rows -= rows % MVK_ROWS_MULTIPLE;

	for (q0 = 0; q0 < nquery; q0 += MVK_QUERY_BLOCK)
	{
		int			nb = nquery - q0 < MVK_QUERY_BLOCK ? nquery - q0 : MVK_QUERY_BLOCK;
		int			n8 = (nb + 7) / 8;
		double		part = 0.0;
		int			i0;
		int			j;

		TransposeQueryBlock(query, q0, nb, dim, 16 * ((n8 + 1) / 2), qt);
		for (j = 0; j < MVK_QUERY_BLOCK; j++)
			m[j] = -INFINITY;
		for (i0 = 0; i0 < ndoc; i0 += rows)
		{
			int			nr = ndoc - i0 < rows ? ndoc - i0 : rows;
			size_t		n = (size_t) nr * dim;
			const uint16_t *src = doc + (size_t) i0 * dim;
			size_t		k;

			for (k = 0; k + 16 <= n; k += 16)
				_mm512_storeu_ps(chunk + k,
								 _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (src + k))));
			for (; k < n; k++)
				chunk[k] = mv_half_to_float(src[k]);
			Avx512PassAny(chunk, nr, dim, qt, n8, m);
		}
		for (j = 0; j < nb; j++)
			part += m[j];
		total += part;
	}
	return total;
}

static __attribute__((target("avx512f,avx512vl,avx2,fma"))) double
MaxSimAvx512(const float *doc, int ndoc, const float *query, int nquery,
			 int dim, float *scratch)
{
	float	   *qt = MVK_ALIGN64(scratch);
	float		m[MVK_QUERY_BLOCK];
	double		total = 0.0;
	int			q0;

	for (q0 = 0; q0 < nquery; q0 += MVK_QUERY_BLOCK)
	{
		int			nb = nquery - q0 < MVK_QUERY_BLOCK ? nquery - q0 : MVK_QUERY_BLOCK;
		int			n8 = (nb + 7) / 8;	/* 8-lane groups */
		double		part = 0.0;
		int			j;

		TransposeQueryBlock(query, q0, nb, dim, 16 * ((n8 + 1) / 2), qt);
		for (j = 0; j < MVK_QUERY_BLOCK; j++)
			m[j] = -INFINITY;
		switch (n8)
		{
			case 1:
				Avx512Pass0_1(doc, ndoc, dim, qt, m);
				break;
			case 2:
				Avx512Pass1_0(doc, ndoc, dim, qt, m);
				break;
			case 3:
				Avx512Pass1_1(doc, ndoc, dim, qt, m);
				break;
			case 4:
				Avx512Pass2_0(doc, ndoc, dim, qt, m);
				break;
			case 5:
				Avx512Pass2_1(doc, ndoc, dim, qt, m);
				break;
			case 6:
				Avx512Pass3_0(doc, ndoc, dim, qt, m);
				break;
			case 7:
				Avx512Pass3_1(doc, ndoc, dim, qt, m);
				break;
			default:
				Avx512Pass4_0(doc, ndoc, dim, qt, m);
				break;
		}
		for (j = 0; j < nb; j++)
			part += m[j];
		total += part;
	}
	return total;
}

/* ---------------------------------------------------------------------------
 * AVX2 + FMA: 8 lanes, 16 registers: up to 4 query vectors (32 rows) per
 * pass; a 64-row block takes two passes.
 * ---------------------------------------------------------------------------
 */

/*
 * Avx2Rows
 *		As Avx512Rows, with 8-lane vectors; qt points at the pass's first
 *		lane and pad is the row stride of the transposed block.
 */
static inline __attribute__((always_inline, target("avx2,fma"))) void
Avx2Rows(const float *doc, int dim, const float *qt, int pad, int nqv,
		 int R, __m256 *M)
{
	__m256		acc[6][4];
	int			r;
	int			v;
	int			k;

#pragma GCC unroll 6
	for (r = 0; r < R; r++)
#pragma GCC unroll 4
		for (v = 0; v < nqv; v++)
			acc[r][v] = _mm256_setzero_ps();

	for (k = 0; k < dim; k++)
	{
		const float *qk = qt + (size_t) k * pad;
		__m256		qv[4];

		MVK_PREFETCH(doc, ((size_t) MVK_PF_BLOCKS * R * dim + (size_t) k * R) * sizeof(float));
#pragma GCC unroll 4
		for (v = 0; v < nqv; v++)
			qv[v] = _mm256_load_ps(qk + 8 * v);
#pragma GCC unroll 6
		for (r = 0; r < R; r++)
		{
			__m256		b = _mm256_broadcast_ss(doc + (size_t) r * dim + k);

#pragma GCC unroll 4
			for (v = 0; v < nqv; v++)
				acc[r][v] = _mm256_fmadd_ps(b, qv[v], acc[r][v]);
		}
	}

#pragma GCC unroll 6
	for (r = 0; r < R; r++)
#pragma GCC unroll 4
		for (v = 0; v < nqv; v++)
			M[v] = _mm256_max_ps(M[v], acc[r][v]);
}

#define AVX2_PASS(NQV, R) \
static __attribute__((target("avx2,fma"))) void \
Avx2Pass##NQV(const float *doc, int ndoc, int dim, const float *qt, int pad, \
			  float *out) \
{ \
	__m256		M[4]; \
	int			i; \
	int			v; \
	/* the running maxima continue from out (-Infinity for a fresh pass) */ \
	for (v = 0; v < (NQV); v++) \
		M[v] = _mm256_loadu_ps(out + 8 * v); \
	for (i = 0; i + (R) <= ndoc; i += (R)) \
		Avx2Rows(doc + (size_t) i * dim, dim, qt, pad, (NQV), (R), M); \
	for (; i < ndoc; i++) \
		Avx2Rows(doc + (size_t) i * dim, dim, qt, pad, (NQV), 1, M); \
	for (v = 0; v < (NQV); v++) \
		_mm256_storeu_ps(out + 8 * v, M[v]); \
}

AVX2_PASS(1, 6)
AVX2_PASS(2, 5)
AVX2_PASS(3, 3)
AVX2_PASS(4, 2)

/*
 * MaxSimAvx2
 *		MaxSim with AVX2 and FMA.
 */
static __attribute__((target("avx2,fma"))) double
MaxSimAvx2(const float *doc, int ndoc, const float *query, int nquery,
		   int dim, float *scratch)
{
	float	   *qt = MVK_ALIGN64(scratch);
	float		m[MVK_QUERY_BLOCK];
	double		total = 0.0;
	int			q0;

	for (q0 = 0; q0 < nquery; q0 += MVK_QUERY_BLOCK)
	{
		int			nb = nquery - q0 < MVK_QUERY_BLOCK ? nquery - q0 : MVK_QUERY_BLOCK;
		int			nv = (nb + 7) / 8;
		int			pad = 8 * nv;
		int			v0;
		double		part = 0.0;
		int			j;

		TransposeQueryBlock(query, q0, nb, dim, pad, qt);
		for (j = 0; j < MVK_QUERY_BLOCK; j++)
			m[j] = -INFINITY;
		for (v0 = 0; v0 < nv; v0 += 4)
		{
			int			nqv = nv - v0 < 4 ? nv - v0 : 4;
			const float *qp = qt + 8 * v0;
			float	   *mp = m + 8 * v0;

			switch (nqv)
			{
				case 1:
					Avx2Pass1(doc, ndoc, dim, qp, pad, mp);
					break;
				case 2:
					Avx2Pass2(doc, ndoc, dim, qp, pad, mp);
					break;
				case 3:
					Avx2Pass3(doc, ndoc, dim, qp, pad, mp);
					break;
				default:
					Avx2Pass4(doc, ndoc, dim, qp, pad, mp);
					break;
			}
		}
		for (j = 0; j < nb; j++)
			part += m[j];
		total += part;
	}
	return total;
}

#endif							/* MVK_HAVE_X86 */

/*
 * mvk_available
 *		Is the kernel compiled in and supported by this CPU (and its OS)?
 */
int
mvk_available(MvkKind kind)
{
	switch (kind)
	{
		case MVK_SCALAR:
			return 1;
#ifdef MVK_HAVE_X86
		case MVK_AVX2:
			__builtin_cpu_init();
			return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
		case MVK_AVX512:
			__builtin_cpu_init();
			return __builtin_cpu_supports("avx512f") &&
				__builtin_cpu_supports("avx512vl") &&
				__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
		default:
			return 0;
	}
}

/*
 * mvk_best
 *		The fastest available kernel; probed once.
 */
MvkKind
mvk_best(void)
{
	static int	best = -1;

	if (best < 0)
	{
		if (mvk_available(MVK_AVX512))
			best = MVK_AVX512;
		else if (mvk_available(MVK_AVX2))
			best = MVK_AVX2;
		else
			best = MVK_SCALAR;
	}
	return (MvkKind) best;
}

/*
 * mvk_name
 *		Printable kernel name.
 */
const char *
mvk_name(MvkKind kind)
{
	switch (kind)
	{
		case MVK_SCALAR:
			return "scalar";
		case MVK_AVX2:
			return "avx2";
		case MVK_AVX512:
			return "avx512";
	}
	return "unknown";
}

/*
 * mvk_maxsim_half
 *		MaxSim of a half document (widened exactly) and a float32 query: the
 *		same bits as mvk_maxsim on the widened document.  AVX-512 widens a
 *		chunk at a time inside the kernel; the other kernels widen the whole
 *		document into `widened` (ndoc * dim floats, the caller's) first.
 */
double
mvk_maxsim_half(MvkKind kind, const uint16_t *doc, int ndoc, const float *query,
				int nquery, int dim, float *scratch, float *widened)
{
	size_t		n = (size_t) ndoc * dim;
	size_t		k;

#ifdef MVK_HAVE_X86
	if (kind == MVK_AVX512 && mvk_available(MVK_AVX512))
		return MaxSimAvx512Half(doc, ndoc, query, nquery, dim, scratch);
#endif
	for (k = 0; k < n; k++)
		widened[k] = mv_half_to_float(doc[k]);
	return mvk_maxsim(kind, widened, ndoc, query, nquery, dim, scratch);
}

/*
 * mvk_maxsim
 *		Run the given kernel; an unavailable one falls back to the scalar
 *		kernel (same result, by construction).
 */
double
mvk_maxsim(MvkKind kind, const float *doc, int ndoc, const float *query,
		   int nquery, int dim, float *scratch)
{
#ifdef MVK_HAVE_X86
	if (kind == MVK_AVX512 && mvk_available(MVK_AVX512))
		return MaxSimAvx512(doc, ndoc, query, nquery, dim, scratch);
	if (kind == MVK_AVX2 && mvk_available(MVK_AVX2))
		return MaxSimAvx2(doc, ndoc, query, nquery, dim, scratch);
#endif
	return MaxSimScalar(doc, ndoc, query, nquery, dim);
}

/* ---------------------------------------------------------------------------
 * Streaming MaxSim (maxsim_kernels.h): the passes above already continue the
 * running maxima they are given, so a stream is the transposed query blocks,
 * the maxima, and the same passes over whatever rows arrive.
 * ---------------------------------------------------------------------------
 */

/* Floats between two transposed query blocks of a stream (64 lanes at most). */
#define MVK_STREAM_QT_FLOATS(dim)	((size_t) (dim) * MVK_QUERY_BLOCK)

/*
 * StreamPad
 *		Row stride of a transposed block of nb query rows for this kernel,
 *		as MaxSimAvx512 and MaxSimAvx2 lay it out.
 */
static int
StreamPad(MvkKind kind, int nb)
{
	int			n8 = (nb + 7) / 8;

	return kind == MVK_AVX512 ? 16 * ((n8 + 1) / 2) : 8 * n8;
}

size_t
mvk_stream_scratch_floats(int nquery, int dim)
{
	size_t		nblocks = MVK_STREAM_BLOCKS(nquery);

	return nblocks * (MVK_STREAM_QT_FLOATS(dim) + MVK_QUERY_BLOCK) + 16;
}

/*
 * mvk_stream_begin
 *		Transpose every query block (SIMD kernels) and set the maxima to
 *		-Infinity.  An unavailable kernel falls back to the scalar one.
 */
void
mvk_stream_begin(MvkStream *st, MvkKind kind, const float *query, int nquery,
				 int dim, float *scratch)
{
	int			nblocks = MVK_STREAM_BLOCKS(nquery);
	int			b;
	size_t		j;

	if (!mvk_available(kind))
		kind = MVK_SCALAR;
	st->kind = kind;
	st->dim = dim;
	st->nquery = nquery;
	st->query = query;
	st->qt = MVK_ALIGN64(scratch);
	st->maxima = st->qt + (size_t) nblocks * MVK_STREAM_QT_FLOATS(dim);
	for (j = 0; j < (size_t) nblocks * MVK_QUERY_BLOCK; j++)
		st->maxima[j] = -INFINITY;
	if (kind == MVK_SCALAR)
		return;
	for (b = 0; b < nblocks; b++)
	{
		int			q0 = b * MVK_QUERY_BLOCK;
		int			nb = nquery - q0 < MVK_QUERY_BLOCK ? nquery - q0 : MVK_QUERY_BLOCK;

		TransposeQueryBlock(query, q0, nb, dim, StreamPad(kind, nb),
							st->qt + (size_t) b * MVK_STREAM_QT_FLOATS(dim));
	}
}

void
mvk_stream_restart(MvkStream *st)
{
	size_t		j;

	for (j = 0; j < (size_t) MVK_STREAM_BLOCKS(st->nquery) * MVK_QUERY_BLOCK; j++)
		st->maxima[j] = -INFINITY;
}

/*
 * StreamRowsScalar
 *		The oracle's loop (MaxSimScalar) over some document rows, continuing
 *		the maxima m[0 .. nb-1] of query rows query[0 .. nb-1].
 */
static void
StreamRowsScalar(const float *query, int nb, const float *doc, int nrows,
				 int dim, float *m)
{
	int			j;

	for (j = 0; j < nb; j++)
	{
		const float *q = query + (size_t) j * dim;
		float		mj = m[j];
		int			i;

		for (i = 0; i < nrows; i++)
		{
			const float *d = doc + (size_t) i * dim;
			float		s = 0.0f;
			int			k;

			for (k = 0; k < dim; k++)
				s = fmaf(d[k], q[k], s);
			mj = (mj > s) ? mj : s;
		}
		m[j] = mj;
	}
}

void
mvk_stream_rows(MvkStream *st, int b, const float *rows, int nrows)
{
	int			q0 = b * MVK_QUERY_BLOCK;
	int			nb = st->nquery - q0 < MVK_QUERY_BLOCK ? st->nquery - q0 : MVK_QUERY_BLOCK;
	float	   *m = st->maxima + (size_t) b * MVK_QUERY_BLOCK;
	const float *qt = st->qt + (size_t) b * MVK_STREAM_QT_FLOATS(st->dim);

	if (nrows <= 0)
		return;
#ifdef MVK_HAVE_X86
	if (st->kind == MVK_AVX512)
	{
		Avx512PassAny(rows, nrows, st->dim, qt, (nb + 7) / 8, m);
		return;
	}
	if (st->kind == MVK_AVX2)
	{
		int			nv = (nb + 7) / 8;
		int			v0;

		for (v0 = 0; v0 < nv; v0 += 4)
		{
			int			nqv = nv - v0 < 4 ? nv - v0 : 4;
			const float *qp = qt + 8 * v0;
			float	   *mp = m + 8 * v0;

			switch (nqv)
			{
				case 1:
					Avx2Pass1(rows, nrows, st->dim, qp, 8 * nv, mp);
					break;
				case 2:
					Avx2Pass2(rows, nrows, st->dim, qp, 8 * nv, mp);
					break;
				case 3:
					Avx2Pass3(rows, nrows, st->dim, qp, 8 * nv, mp);
					break;
				default:
					Avx2Pass4(rows, nrows, st->dim, qp, 8 * nv, mp);
					break;
			}
		}
		return;
	}
#endif
	StreamRowsScalar(st->query + (size_t) q0 * st->dim, nb, rows, nrows,
					 st->dim, m);
}

/*
 * mvk_stream_end
 *		Sum the maxima in double, one partial sum per query block, the
 *		partial sums in block order (as mvk_maxsim and MaxSimRun do).
 */
double
mvk_stream_end(const MvkStream *st)
{
	double		total = 0.0;
	int			q0;

	for (q0 = 0; q0 < st->nquery; q0 += MVK_QUERY_BLOCK)
	{
		int			nb = st->nquery - q0 < MVK_QUERY_BLOCK ? st->nquery - q0 : MVK_QUERY_BLOCK;
		double		part = 0.0;
		int			j;

		for (j = 0; j < nb; j++)
			part += st->maxima[q0 + j];
		total += part;
	}
	return total;
}
