/*
 * maxsim_compact.c
 *	  Kernels for half and binary multivectors (see maxsim_compact.h):
 *	  half -> float widening (AVX-512F / F16C / scalar), sign bits -> +-1,
 *	  and the hamming MaxSim (AVX-512 VPOPCNTDQ for 128-bit rows, 64-bit
 *	  POPCNT for rows of whole 64-bit words, a plain scalar oracle).
 *
 * No PostgreSQL headers: test/engine/test_maxsim_compact.c compiles this
 * file on its own and checks every kernel against the scalar oracle.
 */
#include "maxsim_compact.h"

#include <limits.h>
#include <string.h>

#include "mv_half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define MVC_HAVE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#define MVC_ROW_BYTES(dim)	(((size_t) (dim) + 7) / 8)

/*
 * HalfToFloatScalar
 *		The reference widening.
 */
static void
HalfToFloatScalar(const uint16_t *src, size_t n, float *dst)
{
	size_t		i;

	for (i = 0; i < n; i++)
		dst[i] = mv_half_to_float(src[i]);
}

#ifdef MVC_HAVE_X86
static __attribute__((target("avx512f"))) void
HalfToFloatAvx512(const uint16_t *src, size_t n, float *dst)
{
	size_t		i;

	for (i = 0; i + 16 <= n; i += 16)
		_mm512_storeu_ps(dst + i,
						 _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (src + i))));
	HalfToFloatScalar(src + i, n - i, dst + i);
}

static __attribute__((target("avx2,f16c"))) void
HalfToFloatF16c(const uint16_t *src, size_t n, float *dst)
{
	size_t		i;

	for (i = 0; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i,
						 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (src + i))));
	HalfToFloatScalar(src + i, n - i, dst + i);
}
#endif

#ifdef MVC_HAVE_X86
/*
 * HaveF16c
 *		CPUID leaf 1, ECX bit 29 (not every compiler's __builtin_cpu_supports
 *		knows "f16c").
 */
static int
HaveF16c(void)
{
	unsigned int a,
				b,
				c,
				d;

	return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}
#endif

void
mvk_half_to_float(MvkKind kind, const uint16_t *src, size_t n, float *dst)
{
#ifdef MVC_HAVE_X86
	if (kind == MVK_AVX512 && mvk_available(MVK_AVX512))
	{
		HalfToFloatAvx512(src, n, dst);
		return;
	}
	if (kind >= MVK_AVX2 && mvk_available(MVK_AVX2) && HaveF16c())
	{
		HalfToFloatF16c(src, n, dst);
		return;
	}
#endif
	HalfToFloatScalar(src, n, dst);
}

/*
 * mvk_bits_to_pm1
 *		Eight floats per byte from a 256-entry table (built on first use).
 */
void
mvk_bits_to_pm1(const uint8_t *bits, int nvec, int dim, float *dst)
{
	static float table[256][8];
	static int	ready = 0;
	size_t		rb = MVC_ROW_BYTES(dim);
	int			i;

	if (!ready)
	{
		int			b;
		int			k;

		for (b = 0; b < 256; b++)
			for (k = 0; k < 8; k++)
				table[b][k] = (b >> (7 - k)) & 1 ? 1.0f : -1.0f;
		ready = 1;
	}
	for (i = 0; i < nvec; i++)
	{
		const uint8_t *row = bits + (size_t) i * rb;
		float	   *out = dst + (size_t) i * dim;
		int			k;

		for (k = 0; k + 8 <= dim; k += 8)
			memcpy(out + k, table[row[k / 8]], 8 * sizeof(float));
		if (k < dim)
			memcpy(out + k, table[row[k / 8]], (size_t) (dim - k) * sizeof(float));
	}
}

/*
 * HammingScalar
 *		The oracle: bit by bit, no popcount instruction.  Every hamming
 *		kernel lowers best[j] to the smallest hamming distance between query
 *		row j and the given document rows (so a document may come in parts).
 */
static void
HammingScalar(const uint8_t *doc, int ndoc, const uint8_t *query, int nquery,
			  int dim, int32_t *best)
{
	size_t		rb = MVC_ROW_BYTES(dim);
	int			j;

	for (j = 0; j < nquery; j++)
	{
		const uint8_t *q = query + (size_t) j * rb;
		int32_t		b = best[j];
		int			i;

		for (i = 0; i < ndoc; i++)
		{
			const uint8_t *d = doc + (size_t) i * rb;
			int32_t		h = 0;
			size_t		k;

			for (k = 0; k < rb; k++)
			{
				unsigned	x = d[k] ^ q[k];

				while (x)
				{
					x &= x - 1;
					h++;
				}
			}
			if (h < b)
				b = h;
		}
		best[j] = b;
	}
}

#ifdef MVC_HAVE_X86
/*
 * HammingPopcnt
 *		Rows of whole 64-bit words (dim % 64 == 0), hardware POPCNT.
 */
static __attribute__((target("popcnt"))) void
HammingPopcnt(const uint8_t *doc, int ndoc, const uint8_t *query, int nquery,
			  int dim, int32_t *best)
{
	size_t		nw = (size_t) dim / 64;
	int			j;

	for (j = 0; j < nquery; j++)
	{
		uint64_t	q[64];		/* MV_MAX_DIM / 64 words */
		int32_t		b = best[j];
		int			i;

		memcpy(q, query + (size_t) j * nw * 8, nw * 8);
		for (i = 0; i < ndoc; i++)
		{
			const uint8_t *d = doc + (size_t) i * nw * 8;
			int32_t		h = 0;
			size_t		w;

			for (w = 0; w < nw; w++)
			{
				uint64_t	x;

				memcpy(&x, d + w * 8, 8);
				h += __builtin_popcountll(x ^ q[w]);
			}
			if (h < b)
				b = h;
		}
		best[j] = b;
	}
}

/*
 * HammingAvx512x128
 *		Rows of 16 bytes (dim 121 .. 128; zero padding bits: the padding
 *		contributes nothing), VPOPCNTQ.  Eight document rows at a time are
 *		rearranged into one vector of their first 64-bit words and one of
 *		their second words (two permutes, shared by all query rows); each of
 *		up to 8 query rows (its words broadcast) then costs two XORs, two
 *		popcounts, an add and a running minimum per 8 document rows, with
 *		no shuffle per query row (popcounts and shuffles share one port).
 */
static __attribute__((target("avx512f,avx512vpopcntdq"))) void
HammingAvx512x128(const uint8_t *doc, int ndoc, const uint8_t *query,
				  int nquery, int dim, int32_t *best)
{
	const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
	const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
	int			j0;

	for (j0 = 0; j0 < nquery; j0 += 8)
	{
		int			nb = nquery - j0 < 8 ? nquery - j0 : 8;
		__m512i		Q0[8];
		__m512i		Q1[8];
		__m512i		M[8];
		int			j;
		int			i;

		for (j = 0; j < 8; j++)
		{
			const uint8_t *q = query + (size_t) (j0 + (j < nb ? j : 0)) * 16;
			uint64_t	w0;
			uint64_t	w1;

			memcpy(&w0, q, 8);
			memcpy(&w1, q + 8, 8);
			Q0[j] = _mm512_set1_epi64((long long) w0);
			Q1[j] = _mm512_set1_epi64((long long) w1);
			M[j] = _mm512_set1_epi64(LLONG_MAX);
		}
		for (i = 0; i + 8 <= ndoc; i += 8)
		{
			__m512i		a = _mm512_loadu_si512((const void *) (doc + (size_t) i * 16));
			__m512i		b = _mm512_loadu_si512((const void *) (doc + (size_t) i * 16 + 64));
			__m512i		d0 = _mm512_permutex2var_epi64(a, even, b);
			__m512i		d1 = _mm512_permutex2var_epi64(a, odd, b);

#pragma GCC unroll 8
			for (j = 0; j < 8; j++)
			{
				__m512i		c = _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(d0, Q0[j])),
												 _mm512_popcnt_epi64(_mm512_xor_si512(d1, Q1[j])));

				M[j] = _mm512_min_epu64(M[j], c);
			}
		}
		if (i < ndoc)
		{
			/* the last 1-7 rows: masked loads, absent rows count as far */
			int			n = ndoc - i;
			__mmask8	ma = n >= 4 ? 0xff : (__mmask8) ((1u << (2 * n)) - 1);
			__mmask8	mb = n > 4 ? (__mmask8) ((1u << (2 * (n - 4))) - 1) : 0;
			__mmask8	valid = (__mmask8) ((1u << n) - 1);
			__m512i		a = _mm512_maskz_loadu_epi64(ma, (const void *) (doc + (size_t) i * 16));
			__m512i		b = _mm512_maskz_loadu_epi64(mb, (const void *) (doc + (size_t) i * 16 + 64));
			__m512i		d0 = _mm512_permutex2var_epi64(a, even, b);
			__m512i		d1 = _mm512_permutex2var_epi64(a, odd, b);

			for (j = 0; j < 8; j++)
			{
				__m512i		c = _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(d0, Q0[j])),
												 _mm512_popcnt_epi64(_mm512_xor_si512(d1, Q1[j])));

				c = _mm512_mask_mov_epi64(_mm512_set1_epi64(LLONG_MAX), valid, c);
				M[j] = _mm512_min_epu64(M[j], c);
			}
		}
		for (j = 0; j < nb; j++)
		{
			int32_t		h = (int32_t) _mm512_reduce_min_epu64(M[j]);

			if (h < best[j0 + j])
				best[j0 + j] = h;
		}
	}
}

static int
HaveVpopcntdq(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") &&
		__builtin_cpu_supports("avx512vpopcntdq");
}
#endif

const char *
mvk_hamming_name(MvkKind kind, int dim)
{
#ifdef MVC_HAVE_X86
	if (kind == MVK_AVX512 && MVC_ROW_BYTES(dim) == 16 && HaveVpopcntdq())
		return "avx512-vpopcntdq";
	if (kind >= MVK_AVX2 && dim % 64 == 0 && __builtin_cpu_supports("popcnt"))
		return "popcnt";
#endif
	return "scalar";
}

void
mvk_hamming_minima(MvkKind kind, const uint8_t *doc, int ndoc,
				   const uint8_t *query, int nquery, int dim, int32_t *best)
{
	if (ndoc <= 0)
		return;
#ifdef MVC_HAVE_X86
	if (kind == MVK_AVX512 && MVC_ROW_BYTES(dim) == 16 && HaveVpopcntdq())
	{
		HammingAvx512x128(doc, ndoc, query, nquery, dim, best);
		return;
	}
	if (kind >= MVK_AVX2 && dim % 64 == 0 && __builtin_cpu_supports("popcnt"))
	{
		HammingPopcnt(doc, ndoc, query, nquery, dim, best);
		return;
	}
#endif
	HammingScalar(doc, ndoc, query, nquery, dim, best);
}

/*
 * mvk_hamming_sum
 *		sum_j (dim - 2 best[j]) in query row order: an exact integer.
 */
double
mvk_hamming_sum(const int32_t *best, int nquery, int dim)
{
	double		total = 0.0;
	int			j;

	for (j = 0; j < nquery; j++)
		total += dim - 2 * (long) best[j];
	return total;
}

double
mvk_hamming_maxsim(MvkKind kind, const uint8_t *doc, int ndoc,
				   const uint8_t *query, int nquery, int dim)
{
	int32_t		best[MVK_QUERY_BLOCK];
	double		total = 0.0;
	int			j0;

	/* a block of query rows at a time, so that best[] stays on the stack */
	for (j0 = 0; j0 < nquery; j0 += MVK_QUERY_BLOCK)
	{
		int			nb = nquery - j0 < MVK_QUERY_BLOCK ? nquery - j0 : MVK_QUERY_BLOCK;
		int			j;

		for (j = 0; j < nb; j++)
			best[j] = INT32_MAX;
		mvk_hamming_minima(kind, doc, ndoc, query + (size_t) j0 * MVC_ROW_BYTES(dim),
						   nb, dim, best);
		total += mvk_hamming_sum(best, nb, dim);
	}
	return total;
}
