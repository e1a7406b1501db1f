/*
 * vecmath.h
 *	  exp-based element-wise kernels of the CPU backend (GELU, GeGLU,
 *	  softmax) and the norms' row reductions: a portable scalar form, an AVX-512 form and an AVX2 + FMA
 *	  form of the same formulas, chosen at run time (cp_vecmath_kernel_name).
 *
 * exp(x) = 2^n p(r), n = nearest integer to x / ln 2 (ties to even),
 * r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in two parts), p the
 * degree-7 Taylor polynomial: relative error about 2e-7.  Inputs below
 * -87.3 give 0, above 88.7 saturate.  The forms differ only in the
 * rounding of fused multiply-adds and the order of the softmax sum (a few
 * ulp).
 */
#ifndef CP_VECMATH_H
#define CP_VECMATH_H

#include <stdbool.h>
#include <stddef.h>

/* Can the AVX-512 / the AVX2 + FMA forms run on this CPU? */
extern bool cp_vecmath_avx512(void);
extern bool cp_vecmath_avx2(void);

/* "avx512f", "avx2-fma" or "portable": the forms the CPU backend runs. */
extern const char *cp_vecmath_kernel_name(bool no_simd);

/* x[i] = gelu_tanh(x[i]) */
extern void cp_gelu_tanh_scalar(float *x, size_t n);
extern void cp_gelu_tanh_avx512(float *x, size_t n);
extern void cp_gelu_tanh_avx2(float *x, size_t n);

/* out[i] = gelu_tanh(gate[i]) * up[i] (out may be gate) */
extern void cp_geglu_scalar(float *out, const float *gate, const float *up,
							size_t n);
extern void cp_geglu_avx512(float *out, const float *gate, const float *up,
							size_t n);
extern void cp_geglu_avx2(float *out, const float *gate, const float *up,
						  size_t n);

/* s[0..n) = softmax(s[0..n)) in place */
extern void cp_softmax_scalar(float *s, int n);
extern void cp_softmax_avx512(float *s, int n);
extern void cp_softmax_avx2(float *s, int n);

/* Row reductions of the norms: sum x[i], and sum (x[i] - c)^2. */
extern float cp_sum_scalar(const float *x, int n);
extern float cp_sum_avx512(const float *x, int n);
extern float cp_sum_avx2(const float *x, int n);
extern float cp_sumsq_dev_scalar(const float *x, float c, int n);
extern float cp_sumsq_dev_avx512(const float *x, float c, int n);
extern float cp_sumsq_dev_avx2(const float *x, float c, int n);

#endif							/* CP_VECMATH_H */
