/*
 * vecmath.c
 *	  exp-based element-wise kernels of the CPU backend; see vecmath.h.
 *
 * The engine is built for the x86-64 baseline, so the portable loops run
 * 4 lanes wide at best; the AVX-512 forms (selected at run time) are what
 * keep GELU, GeGLU and the attention softmax a few per cent of a page's
 * time instead of a fifth of it.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vecmath.h"

#define EXP_LO (-87.3f)
#define EXP_HI 88.7f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693145751953125f
#define LN2_LO 1.42860682030941723212e-6f
/* adding and subtracting 1.5 * 2^23 rounds |t| < 2^22 to an integer, ties to even */
#define ROUND_MAGIC 12582912.0f

bool
cp_vecmath_avx512(void)
{
	return __builtin_cpu_supports("avx512f");
}

bool
cp_vecmath_avx2(void)
{
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

const char *
cp_vecmath_kernel_name(bool no_simd)
{
	if (no_simd)
		return "portable";
	if (cp_vecmath_avx512())
		return "avx512f";
	if (cp_vecmath_avx2())
		return "avx2-fma";
	return "portable";
}

/* ---------------------------------------------------------------------
 * Portable forms
 * --------------------------------------------------------------------- */

static inline float
exp_scalar(float x)
{
	float		n,
				r,
				p,
				scale;
	int32_t		e;

	x = x < EXP_LO ? EXP_LO : (x > EXP_HI ? EXP_HI : x);
	n = (x * LOG2E + ROUND_MAGIC) - ROUND_MAGIC;
	r = x - n * LN2_HI;
	r = r - n * LN2_LO;
	p = 1.0f / 5040.0f;
	p = p * r + 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	e = ((int32_t) n + 127) << 23;
	memcpy(&scale, &e, sizeof(scale));
	return x <= EXP_LO ? 0.0f : p * scale;
}

/*
 * gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)),
 * u = sqrt(2/pi)(x + 0.044715 x^3); the last form has no cancellation.
 */
static inline float
gelu_scalar(float x)
{
	float		u = 0.7978845608028654f * (x + 0.044715f * x * x * x);

	return x / (1.0f + exp_scalar(-2.0f * u));
}

void
cp_gelu_tanh_scalar(float *x, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		x[i] = gelu_scalar(x[i]);
}

void
cp_geglu_scalar(float *out, const float *gate, const float *up, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		out[i] = gelu_scalar(gate[i]) * up[i];
}

void
cp_softmax_scalar(float *s, int n)
{
	float		mx = -INFINITY,
				sum = 0.0f,
				inv;
	int			j;

	for (j = 0; j < n; j++)
		mx = s[j] > mx ? s[j] : mx;
	for (j = 0; j < n; j++)
	{
		s[j] = exp_scalar(s[j] - mx);
		sum += s[j];
	}
	inv = 1.0f / sum;
	for (j = 0; j < n; j++)
		s[j] *= inv;
}

/* ---------------------------------------------------------------------
 * AVX-512 forms
 * --------------------------------------------------------------------- */

__attribute__((target("avx512f")))
static inline __m512
exp_avx512(__m512 x)
{
	__m512		lo = _mm512_set1_ps(EXP_LO);
	__mmask16	under = _mm512_cmp_ps_mask(x, lo, _CMP_LE_OQ);
	__m512		n,
				r,
				p;
	__m512i		e;

	x = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(EXP_HI));
	n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
							 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
	p = _mm512_set1_ps(1.0f / 5040.0f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n),
										   _mm512_set1_epi32(127)), 23);
	return _mm512_maskz_mul_ps((__mmask16) ~under, p, _mm512_castsi512_ps(e));
}

__attribute__((target("avx512f")))
static inline __m512
gelu_avx512(__m512 x)
{
	__m512		x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
	__m512		u = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f),
								  _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
	__m512		ex = exp_avx512(_mm512_mul_ps(_mm512_set1_ps(-2.0f), u));

	return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), ex));
}

__attribute__((target("avx512f")))
void
cp_gelu_tanh_avx512(float *x, size_t n)
{
	size_t		i;

	for (i = 0; i + 16 <= n; i += 16)
		_mm512_storeu_ps(x + i, gelu_avx512(_mm512_loadu_ps(x + i)));
	if (i < n)
	{
		__mmask16	m = (__mmask16) ((1u << (n - i)) - 1);

		_mm512_mask_storeu_ps(x + i, m, gelu_avx512(_mm512_maskz_loadu_ps(m, x + i)));
	}
}

__attribute__((target("avx512f")))
void
cp_geglu_avx512(float *out, const float *gate, const float *up, size_t n)
{
	size_t		i;

	for (i = 0; i + 16 <= n; i += 16)
		_mm512_storeu_ps(out + i,
						 _mm512_mul_ps(gelu_avx512(_mm512_loadu_ps(gate + i)),
									   _mm512_loadu_ps(up + i)));
	if (i < n)
	{
		__mmask16	m = (__mmask16) ((1u << (n - i)) - 1);

		_mm512_mask_storeu_ps(out + i, m,
							  _mm512_mul_ps(gelu_avx512(_mm512_maskz_loadu_ps(m, gate + i)),
											_mm512_maskz_loadu_ps(m, up + i)));
	}
}

__attribute__((target("avx512f")))
void
cp_softmax_avx512(float *s, int n)
{
	__m512		vmax = _mm512_set1_ps(-INFINITY),
				vsum = _mm512_setzero_ps(),
				vmx,
				inv;
	__mmask16	tail = (__mmask16) ((1u << (n % 16)) - 1);
	int			j,
				full = n - n % 16;

	for (j = 0; j < full; j += 16)
		vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(s + j));
	if (tail)
		vmax = _mm512_mask_max_ps(vmax, tail, vmax, _mm512_maskz_loadu_ps(tail, s + j));
	vmx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
	for (j = 0; j < full; j += 16)
	{
		__m512		ex = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + j), vmx));

		_mm512_storeu_ps(s + j, ex);
		vsum = _mm512_add_ps(vsum, ex);
	}
	if (tail)
	{
		__m512		ex = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + j), vmx));

		_mm512_mask_storeu_ps(s + j, tail, ex);
		vsum = _mm512_mask_add_ps(vsum, tail, vsum, ex);
	}
	inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
	for (j = 0; j < full; j += 16)
		_mm512_storeu_ps(s + j, _mm512_mul_ps(_mm512_loadu_ps(s + j), inv));
	if (tail)
		_mm512_mask_storeu_ps(s + j, tail,
							  _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, s + j), inv));
}

/* ---------------------------------------------------------------------
 * AVX2 + FMA forms (the same formulas 8 lanes wide)
 * --------------------------------------------------------------------- */

__attribute__((target("avx2,fma")))
static inline __m256
exp_avx2(__m256 x)
{
	__m256		lo = _mm256_set1_ps(EXP_LO);
	__m256		under = _mm256_cmp_ps(x, lo, _CMP_LE_OQ);
	__m256		n,
				r,
				p;
	__m256i		e;

	x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(EXP_HI));
	n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
						_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
	p = _mm256_set1_ps(1.0f / 5040.0f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
										   _mm256_set1_epi32(127)), 23);
	return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

__attribute__((target("avx2,fma")))
static inline __m256
gelu_avx2(__m256 x)
{
	__m256		x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
	__m256		u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
								  _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
	__m256		ex = exp_avx2(_mm256_mul_ps(_mm256_set1_ps(-2.0f), u));

	return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), ex));
}

/* Lanes [0, n) live, n in [0, 8]: a mask for maskload/maskstore. */
__attribute__((target("avx2,fma")))
static inline __m256i
tail_mask_avx2(int n)
{
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
							  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2,fma")))
void
cp_gelu_tanh_avx2(float *x, size_t n)
{
	size_t		i;

	for (i = 0; i + 8 <= n; i += 8)
		_mm256_storeu_ps(x + i, gelu_avx2(_mm256_loadu_ps(x + i)));
	if (i < n)
	{
		__m256i		m = tail_mask_avx2((int) (n - i));

		_mm256_maskstore_ps(x + i, m, gelu_avx2(_mm256_maskload_ps(x + i, m)));
	}
}

__attribute__((target("avx2,fma")))
void
cp_geglu_avx2(float *out, const float *gate, const float *up, size_t n)
{
	size_t		i;

	for (i = 0; i + 8 <= n; i += 8)
		_mm256_storeu_ps(out + i,
						 _mm256_mul_ps(gelu_avx2(_mm256_loadu_ps(gate + i)),
									   _mm256_loadu_ps(up + i)));
	if (i < n)
	{
		__m256i		m = tail_mask_avx2((int) (n - i));

		_mm256_maskstore_ps(out + i, m,
							_mm256_mul_ps(gelu_avx2(_mm256_maskload_ps(gate + i, m)),
										  _mm256_maskload_ps(up + i, m)));
	}
}

__attribute__((target("avx2,fma")))
static inline float
hsum_avx2(__m256 v)
{
	__m128		s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
void
cp_softmax_avx2(float *s, int n)
{
	__m256		vmax = _mm256_set1_ps(-INFINITY),
				vsum = _mm256_setzero_ps(),
				vmx,
				inv;
	__m128		h;
	int			j,
				full = n - n % 8;
	__m256i		tail = tail_mask_avx2(n % 8);
	float		mx;

	for (j = 0; j < full; j += 8)
		vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
	h = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
	h = _mm_max_ps(h, _mm_movehl_ps(h, h));
	h = _mm_max_ss(h, _mm_movehdup_ps(h));
	mx = _mm_cvtss_f32(h);
	for (j = full; j < n; j++)
		mx = s[j] > mx ? s[j] : mx;
	vmx = _mm256_set1_ps(mx);
	for (j = 0; j < full; j += 8)
	{
		__m256		ex = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), vmx));

		_mm256_storeu_ps(s + j, ex);
		vsum = _mm256_add_ps(vsum, ex);
	}
	if (full < n)
	{
		/* dead lanes load 0 and give exp(-mx); mask them out of the sum */
		__m256		ex = exp_avx2(_mm256_sub_ps(_mm256_maskload_ps(s + j, tail), vmx));

		ex = _mm256_and_ps(ex, _mm256_castsi256_ps(tail));
		_mm256_maskstore_ps(s + j, tail, ex);
		vsum = _mm256_add_ps(vsum, ex);
	}
	inv = _mm256_set1_ps(1.0f / hsum_avx2(vsum));
	for (j = 0; j < full; j += 8)
		_mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
	if (full < n)
		_mm256_maskstore_ps(s + j, tail,
							_mm256_mul_ps(_mm256_maskload_ps(s + j, tail), inv));
}

/* ---------------------------------------------------------------------
 * Row reductions of the norms: sum x and sum (x - c)^2, three forms
 * (the vector forms sum in 16 / 8 lanes, then across them)
 * --------------------------------------------------------------------- */

float
cp_sum_scalar(const float *x, int n)
{
	float		s = 0.0f;
	int			i;

	for (i = 0; i < n; i++)
		s += x[i];
	return s;
}

float
cp_sumsq_dev_scalar(const float *x, float c, int n)
{
	float		s = 0.0f;
	int			i;

	for (i = 0; i < n; i++)
		s += (x[i] - c) * (x[i] - c);
	return s;
}

__attribute__((target("avx512f")))
float
cp_sum_avx512(const float *x, int n)
{
	__m512		acc = _mm512_setzero_ps();
	int			i;

	for (i = 0; i + 16 <= n; i += 16)
		acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + i));
	if (i < n)
		acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps((__mmask16) ((1u << (n - i)) - 1), x + i));
	return _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx512f")))
float
cp_sumsq_dev_avx512(const float *x, float c, int n)
{
	__m512		acc = _mm512_setzero_ps(),
				vc = _mm512_set1_ps(c);
	int			i;

	for (i = 0; i + 16 <= n; i += 16)
	{
		__m512		d = _mm512_sub_ps(_mm512_loadu_ps(x + i), vc);

		acc = _mm512_fmadd_ps(d, d, acc);
	}
	if (i < n)
	{
		__mmask16	m = (__mmask16) ((1u << (n - i)) - 1);
		__m512		d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vc);

		acc = _mm512_fmadd_ps(d, d, acc);
	}
	return _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx2,fma")))
float
cp_sum_avx2(const float *x, int n)
{
	__m256		acc = _mm256_setzero_ps();
	float		s;
	int			i;

	for (i = 0; i + 8 <= n; i += 8)
		acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + i));
	s = hsum_avx2(acc);
	for (; i < n; i++)
		s += x[i];
	return s;
}

__attribute__((target("avx2,fma")))
float
cp_sumsq_dev_avx2(const float *x, float c, int n)
{
	__m256		acc = _mm256_setzero_ps(),
				vc = _mm256_set1_ps(c);
	float		s;
	int			i;

	for (i = 0; i + 8 <= n; i += 8)
	{
		__m256		d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vc);

		acc = _mm256_fmadd_ps(d, d, acc);
	}
	s = hsum_avx2(acc);
	for (; i < n; i++)
		s += (x[i] - c) * (x[i] - c);
	return s;
}
