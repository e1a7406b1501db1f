/*
 * dots_transposed.c
 *	  A few rows against many vectors, vector-major (see dots_transposed.h).
 */
#include "dots_transposed.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DOTS_HAVE_X86 1
#endif

#define DOTS_MIN(a, b) ((a) < (b) ? (a) : (b))

/* Vectors per step of the AVX-512 form (8 accumulators hide the FMA latency). */
#define DOTS_LISTS	4

bool
cp_dots_form_available(CpDotsForm form)
{
	switch (form)
	{
		case CP_DOTS_SCALAR:
			return true;
#ifdef DOTS_HAVE_X86
		case CP_DOTS_AVX2:
			__builtin_cpu_init();
			return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
		case CP_DOTS_AVX512:
			__builtin_cpu_init();
			return __builtin_cpu_supports("avx512f");
#endif
		default:
			return false;
	}
}

void
cp_dots_transpose_rows(const float *rows, int nr, int dim, float *qT)
{
	int			r;
	int			d;

	memset(qT, 0, sizeof(float) * (size_t) dim * CP_DOTS_ROWS);
	for (r = 0; r < nr; r++)
		for (d = 0; d < dim; d++)
			qT[(size_t) d * CP_DOTS_ROWS + r] = rows[(size_t) r * dim + d];
}

/*
 * DotsScalar
 *		The oracle: one fmaf chain per result, dimensions in order.
 */
static void
DotsScalar(const float *vecs, int l0, int l1, int dim, const float *qT,
		   int nr, float *out, int ld)
{
	int			l;

	for (l = l0; l < l1; l++)
	{
		const float *v = vecs + (size_t) l * dim;
		float		acc[CP_DOTS_ROWS] = {0};
		int			d;
		int			r;

		for (d = 0; d < dim; d++)
			for (r = 0; r < nr; r++)
				acc[r] = fmaf(v[d], qT[(size_t) d * CP_DOTS_ROWS + r], acc[r]);
		memcpy(out + (size_t) l * ld, acc, sizeof(float) * nr);
	}
}

#ifdef DOTS_HAVE_X86
/*
 * DotsBlockAvx512
 *		Dots of vectors [l0, l1) with the (at most 32) transposed rows
 *		qT (dim x CP_DOTS_ROWS, zero past nr), written to lanes < nr of each line.
 *		two: nr > 16, the second register of rows is needed.  The eight
 *		accumulators are named, not an array, so that GCC keeps them in
 *		registers.
 */
static inline __attribute__((target("avx512f"), always_inline)) void
DotsBlockAvx512(const float *vecs, int l0, int l1, int dim, const float *qT,
				int nr, bool two, float *out, int ld)
{
	__mmask16	m0 = nr >= 16 ? 0xFFFF : (__mmask16) ((1u << nr) - 1);
	__mmask16	m1 = nr >= 32 ? 0xFFFF : nr > 16 ? (__mmask16) ((1u << (nr - 16)) - 1) : 0;
	int			l;

	for (l = l0; l < l1; l += DOTS_LISTS)
	{
		int			nl = DOTS_MIN(DOTS_LISTS, l1 - l);
		const float *c0 = vecs + (size_t) l * dim;

		/* a short last step repeats its first vector, stored once */
		const float *c1 = nl > 1 ? c0 + dim : c0;
		const float *c2 = nl > 2 ? c0 + 2 * (size_t) dim : c0;
		const float *c3 = nl > 3 ? c0 + 3 * (size_t) dim : c0;
		__m512		a00 = _mm512_setzero_ps(),
					a01 = _mm512_setzero_ps(),
					a10 = _mm512_setzero_ps(),
					a11 = _mm512_setzero_ps(),
					a20 = _mm512_setzero_ps(),
					a21 = _mm512_setzero_ps(),
					a30 = _mm512_setzero_ps(),
					a31 = _mm512_setzero_ps();
		float	   *o = out + (size_t) l * ld;
		int			d;

		for (d = 0; d < dim; d++)
		{
			__m512		q0 = _mm512_loadu_ps(qT + (size_t) d * CP_DOTS_ROWS);
			__m512		b0 = _mm512_set1_ps(c0[d]);
			__m512		b1 = _mm512_set1_ps(c1[d]);
			__m512		b2 = _mm512_set1_ps(c2[d]);
			__m512		b3 = _mm512_set1_ps(c3[d]);

			a00 = _mm512_fmadd_ps(b0, q0, a00);
			a10 = _mm512_fmadd_ps(b1, q0, a10);
			a20 = _mm512_fmadd_ps(b2, q0, a20);
			a30 = _mm512_fmadd_ps(b3, q0, a30);

			/*
			 * The vectors stream in from memory: ask for
			 * the step after next's lines while this one runs.
			 */
			if ((d & 15) == 0 && l + 3 * DOTS_LISTS <= l1)
			{
				const float *ahead = c0 + 2 * DOTS_LISTS * (size_t) dim + d;

				_mm_prefetch((const char *) ahead, _MM_HINT_T0);
				_mm_prefetch((const char *) (ahead + dim), _MM_HINT_T0);
				_mm_prefetch((const char *) (ahead + 2 * (size_t) dim), _MM_HINT_T0);
				_mm_prefetch((const char *) (ahead + 3 * (size_t) dim), _MM_HINT_T0);
			}
			if (two)
			{
				__m512		q1 = _mm512_loadu_ps(qT + (size_t) d * CP_DOTS_ROWS + 16);

				a01 = _mm512_fmadd_ps(b0, q1, a01);
				a11 = _mm512_fmadd_ps(b1, q1, a11);
				a21 = _mm512_fmadd_ps(b2, q1, a21);
				a31 = _mm512_fmadd_ps(b3, q1, a31);
			}
		}
		_mm512_mask_storeu_ps(o, m0, a00);
		if (two)
			_mm512_mask_storeu_ps(o + 16, m1, a01);
		if (nl > 1)
		{
			_mm512_mask_storeu_ps(o + ld, m0, a10);
			if (two)
				_mm512_mask_storeu_ps(o + ld + 16, m1, a11);
		}
		if (nl > 2)
		{
			_mm512_mask_storeu_ps(o + 2 * (size_t) ld, m0, a20);
			if (two)
				_mm512_mask_storeu_ps(o + 2 * (size_t) ld + 16, m1, a21);
		}
		if (nl > 3)
		{
			_mm512_mask_storeu_ps(o + 3 * (size_t) ld, m0, a30);
			if (two)
				_mm512_mask_storeu_ps(o + 3 * (size_t) ld + 16, m1, a31);
		}
	}
}

/* DotsBlockAvx512, specialised on the number of row registers. */
static __attribute__((target("avx512f"))) void
DotsAvx512(const float *vecs, int l0, int l1, int dim, const float *qT,
		   int nr, float *out, int ld)
{
	if (nr > 16)
		DotsBlockAvx512(vecs, l0, l1, dim, qT, nr, true, out, ld);
	else
		DotsBlockAvx512(vecs, l0, l1, dim, qT, nr, false, out, ld);
}

/*
 * DotsAvx2
 *		DotsBlockAvx512 with 8 lanes: two vectors against four registers
 *		of rows, the same chain for every score.
 */
static __attribute__((target("avx2,fma"))) void
DotsAvx2(const float *vecs, int l0, int l1, int dim, const float *qT,
		 int nr, float *out, int ld)
{
	int			l;

	for (l = l0; l < l1; l += 2)
	{
		const float *c0 = vecs + (size_t) l * dim;
		const float *c1 = l + 1 < l1 ? c0 + dim : c0;
		__m256		a[2][4];
		float		line[CP_DOTS_ROWS];
		int			d;
		int			i;

		for (i = 0; i < 4; i++)
			a[0][i] = a[1][i] = _mm256_setzero_ps();
		for (d = 0; d < dim; d++)
		{
			__m256		b0 = _mm256_set1_ps(c0[d]);
			__m256		b1 = _mm256_set1_ps(c1[d]);

			for (i = 0; i < 4; i++)
			{
				__m256		q = _mm256_loadu_ps(qT + (size_t) d * CP_DOTS_ROWS + 8 * i);

				a[0][i] = _mm256_fmadd_ps(b0, q, a[0][i]);
				a[1][i] = _mm256_fmadd_ps(b1, q, a[1][i]);
			}
		}
		for (i = 0; i < 4; i++)
			_mm256_storeu_ps(line + 8 * i, a[0][i]);
		memcpy(out + (size_t) l * ld, line, sizeof(float) * nr);
		if (l + 1 < l1)
		{
			for (i = 0; i < 4; i++)
				_mm256_storeu_ps(line + 8 * i, a[1][i]);
			memcpy(out + (size_t) (l + 1) * ld, line, sizeof(float) * nr);
		}
	}
}

#endif							/* DOTS_HAVE_X86 */

void
cp_dots_transposed(CpDotsForm form, const float *vecs, int l0, int l1,
				   int dim, const float *qT, int nr, float *out, int ld)
{
#ifdef DOTS_HAVE_X86
	if (form == CP_DOTS_AVX512)
	{
		DotsAvx512(vecs, l0, l1, dim, qT, nr, out, ld);
		return;
	}
	if (form == CP_DOTS_AVX2)
	{
		DotsAvx2(vecs, l0, l1, dim, qT, nr, out, ld);
		return;
	}
#endif
	DotsScalar(vecs, l0, l1, dim, qT, nr, out, ld);
}
