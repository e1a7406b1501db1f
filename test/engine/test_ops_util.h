/*
 * test_ops_util.h
 *	  Helpers of the CPU op tests (test_ops.c, test_ops_fused.c): random
 *	  data, buffers on the fast backend, weights of any dtype, and the
 *	  normalised max error against the reference.  Each test program has
 *	  its own copy of the backends and the failure count.
 */
#ifndef TEST_OPS_UTIL_H
#define TEST_OPS_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dtype.h"
#include "gemm_amx.h"
#include "weights.h"

static int	failures = 0;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

/* xorshift64* uniform in [-1, 1). */
static inline float
frand(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (float) ((double) ((rng_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static inline void
fill(float *p, size_t n, float amp)
{
	size_t		i;

	for (i = 0; i < n; i++)
		p[i] = frand() * amp;
}

/* p[i] = bf16(p[i]) */
static inline void
round_bf16(float *p, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		p[i] = cp_bf16_to_f32(cp_f32_to_bf16(p[i]));
}

static CpBackend *fast,
		   *ref,
		   *lazy,
		   *bf16;				/* bf16_matmul */

/*
 * open_fp32_variant
 *		The fast and lazy (weights converted tile by tile) CPU backends of
 *		fp32 kernel variant v: 0 the SIMD kernels with AMX tiles, 1 the SIMD
 *		kernels without AMX (no_amx), 2 portable C (no_simd).  False when v
 *		is 0 and this CPU (or kernel) has no usable AMX-BF16, after saying
 *		which tests (`what`) are skipped; a backend that cannot be created
 *		ends the test.
 */
static inline bool
open_fp32_variant(int v, CpBackendOptions *o, const char *what)
{
	CpError		err;

	if (v == 0 && !cp_cpu_amx_bf16_usable())
	{
		printf("skip %s on AMX: this CPU (or kernel) has no usable AMX-BF16\n", what);
		return false;
	}
	printf("-- %s\n", v == 0 ? "SIMD kernels, AMX tiles" :
		   v == 1 ? "SIMD kernels without AMX (no_amx)" : "portable C (no_simd)");
	o->no_simd = (v == 2);
	o->no_amx = (v == 1);
	o->lazy_convert = false;
	if (cp_backend_cpu_create(o, &fast, &err) != CP_OK)
		exit(1);
	o->lazy_convert = true;
	if (cp_backend_cpu_create(o, &lazy, &err) != CP_OK)
		exit(1);
	return true;
}

/* Fatal setup failure: report and count. */
static inline void
check_st(CpStatus st, CpBackend *be, const char *what)
{
	if (st != CP_OK)
	{
		printf("FAIL %s: %s\n", what, be->err.msg);
		failures++;
	}
}

/* Activation buffer with the given host contents. */
static inline CpBuf *
mkbuf(const float *host, size_t n)
{
	CpBuf	   *b;

	if (fast->alloc(fast, n, &b) != CP_OK)
	{
		printf("FAIL alloc\n");
		exit(1);
	}
	if (host)
		fast->upload(fast, cp_view(b, 0), host, n);
	return b;
}

static inline float *
dl(CpBuf *b, size_t n)
{
	float	   *h = malloc(n * sizeof(float));

	fast->download(fast, cp_view(b, 0), h, n);
	return h;
}

/* Compare got vs want: normalised max error must be <= tol. */
static inline void
compare(const char *what, const float *got, const float *want, size_t n,
		double tol)
{
	double		maxref = 1e-30,
				maxd = 0.0;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		double		d = fabs((double) got[i] - want[i]);

		if (!(d <= maxd))		/* NaN counts */
			maxd = isnan(d) ? INFINITY : d;
		if (fabs(want[i]) > maxref)
			maxref = fabs(want[i]);
	}
	if (maxd / maxref > tol)
	{
		printf("FAIL %-40s max|d| %.3g (rel %.3g > %.1g)\n", what, maxd,
			   maxd / maxref, tol);
		failures++;
	}
	else
		printf("ok   %-40s rel %.3g\n", what, maxd / maxref);
}

/* A weight tensor of the given dtype from float data. */
static inline CpTensor
mktensor(const float *src, int64_t rows, int64_t cols, CpDType dt, void **store)
{
	CpTensor	t;
	int64_t		n = rows * cols,
				i;

	memset(&t, 0, sizeof(t));
	t.name = "test";
	t.dtype = dt;
	t.ndim = 2;
	t.shape[0] = rows;
	t.shape[1] = cols;
	t.numel = n;
	if (dt == CP_DTYPE_F32)
	{
		float	   *p = malloc(n * sizeof(float));

		memcpy(p, src, n * sizeof(float));
		*store = p;
		t.nbytes = n * 4;
	}
	else
	{
		uint16_t   *p = malloc(n * sizeof(uint16_t));

		for (i = 0; i < n; i++)
		{
			if (dt == CP_DTYPE_BF16)
				p[i] = cp_f32_to_bf16(src[i]);
			else
			{
				/* f16 of small values: via bf16-exact values is enough */
				float		f = src[i];
				uint32_t	u;
				int			e;
				uint32_t	mant;

				memcpy(&u, &f, 4);
				e = (int) ((u >> 23) & 0xff) - 127 + 15;
				mant = (u >> 13) & 0x3ff;
				if (f == 0.0f || e <= 0)
					p[i] = (uint16_t) ((u >> 16) & 0x8000);
				else
					p[i] = (uint16_t) (((u >> 16) & 0x8000) | (e << 10) | mant);
			}
		}
		*store = p;
		t.nbytes = n * 2;
	}
	t.data = *store;
	return t;
}

/* Upload w [N, K] as a matmul weight of dtype dt on backend be. */
static inline CpBuf *
upload_matrix(CpBackend *be, const float *w, int N, int K, CpDType dt,
			  void **store)
{
	CpTensor	t = mktensor(w, N, K, dt, store);
	CpBuf	   *b = NULL;

	check_st(be->weight_upload(be, &t, CP_WEIGHT_MATRIX, &b), be, "upload");
	return b;
}

/* Upload bv [N] as an F32 bias vector (NULL unless wanted). */
static inline CpBuf *
upload_bias(bool wanted, const float *bv, int N, void **store)
{
	CpTensor	t;
	CpBuf	   *b = NULL;

	*store = NULL;
	if (!wanted)
		return NULL;
	t = mktensor(bv, 1, N, CP_DTYPE_F32, store);
	t.ndim = 1;
	t.shape[0] = N;
	check_st(fast->weight_upload(fast, &t, CP_WEIGHT_VECTOR, &b), fast, "upload");
	return b;
}

#endif							/* TEST_OPS_UTIL_H */
