/*
 * test_cuda_ops.c
 *	  Every CUDA backend op against the fp32 CPU backend on random data
 *	  (ggml test-backend-ops style): normalised mean squared error
 *	  NMSE = sum (gpu - cpu)^2 / sum cpu^2 under a per-op threshold.
 *
 * Thresholds: ops computed in fp32 on both sides differ only by rounding
 * order and 1-ulp libm differences (NMSE <= 1e-9).  bf16 GEMMs see inputs
 * rounded to bf16 (relative error 2^-9 per operand, NMSE ~3e-6 expected):
 * threshold 1e-4; with inputs that are already bf16 values both sides
 * multiply the same numbers and only the summation order differs:
 * threshold 1e-9.  The tensor-core attention also rounds softmax weights
 * to bf16: 1e-4 (1e-5 with bf16-exact inputs).
 *
 * GPU outputs are poisoned with NaN before each op, so an element the GPU
 * does not write fails the test.  Without a GPU (or colpali_cuda.so) the
 * test prints SKIP and succeeds, unless COLPALI_CUDA_REQUIRE=1.
 * CUDA_TEST_CPU=1 runs the same checks with the fast CPU backend in place
 * of the GPU and the naive reference ops as the oracle (tests the test).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_loader.h"

static int	failures = 0;
static bool on_cpu = false;

/*
 * open_device
 *		The backend under test: CUDA, or with CUDA_TEST_CPU=1 the fast CPU
 *		backend.
 */
static CpStatus
open_device(const CpBackendOptions *bo, void **lib, CpBackend **out, CpError *err)
{
	if (on_cpu)
	{
		*lib = NULL;
		return cp_backend_cpu_create(bo, out, err);
	}
	return cp_backend_load_cuda(NULL, bo, lib, out, err);
}
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

/* xorshift64*: uniform in [-1, 1) */
static float
frand(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (float) ((double) ((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

static float *
rand_array(size_t n, float scale, bool bf16_exact)
{
	float	   *a = malloc(sizeof(float) * (n ? n : 1));
	size_t		i;

	if (a == NULL)
	{
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	for (i = 0; i < n; i++)
	{
		a[i] = frand() * scale;
		if (bf16_exact)
			a[i] = cp_bf16_to_f32(cp_f32_to_bf16(a[i]));
	}
	return a;
}

/* ---- the two backends and buffers mirrored on both ---- */

typedef struct Pair
{
	CpBackend  *cpu;
	CpBackend  *gpu;
} Pair;

typedef struct Buf2
{
	CpBuf	   *c;
	CpBuf	   *g;
	size_t		n;
} Buf2;

static void
die_be(CpBackend *be, const char *what)
{
	fprintf(stderr, "FATAL %s on %s: %s\n", what, be->name, be->err.msg);
	exit(1);
}

/* Activation buffer of n floats with the same contents on both sides. */
static Buf2
act(Pair *p, const float *host, size_t n)
{
	Buf2		b;
	float	   *nan_fill = NULL;

	b.n = n;
	if (p->cpu->alloc(p->cpu, n, &b.c) != CP_OK)
		die_be(p->cpu, "alloc");
	if (p->gpu->alloc(p->gpu, n, &b.g) != CP_OK)
		die_be(p->gpu, "alloc");
	if (host == NULL)
	{
		size_t		i;

		nan_fill = malloc(sizeof(float) * (n ? n : 1));
		for (i = 0; i < n; i++)
			nan_fill[i] = NAN;
		host = nan_fill;
	}
	if (p->cpu->upload(p->cpu, cp_view(b.c, 0), host, n) != CP_OK)
		die_be(p->cpu, "upload");
	if (p->gpu->upload(p->gpu, cp_view(b.g, 0), host, n) != CP_OK)
		die_be(p->gpu, "upload");
	free(nan_fill);
	return b;
}

/* Weight from host floats stored as dtype (values rounded to it). */
static Buf2
weight(Pair *p, const float *host, int64_t rows, int64_t cols, CpDType dtype,
	   CpWeightKind kind)
{
	Buf2		b;
	CpTensor	t;
	size_t		n = (size_t) (rows * cols);
	void	   *data;
	size_t		i;

	memset(&t, 0, sizeof(t));
	t.name = "test";
	t.dtype = dtype;
	t.ndim = 2;
	t.shape[0] = rows;
	t.shape[1] = cols;
	t.numel = rows * cols;
	if (dtype == CP_DTYPE_F32)
	{
		data = malloc(sizeof(float) * n);
		memcpy(data, host, sizeof(float) * n);
		t.nbytes = sizeof(float) * n;
	}
	else
	{
		uint16_t   *h = malloc(sizeof(uint16_t) * n);

		for (i = 0; i < n; i++)
			h[i] = cp_f32_to_bf16(host[i]);
		data = h;
		t.nbytes = sizeof(uint16_t) * n;
	}
	t.data = data;
	b.n = n;
	if (p->cpu->weight_upload(p->cpu, &t, kind, &b.c) != CP_OK)
		die_be(p->cpu, "weight_upload");
	if (p->gpu->weight_upload(p->gpu, &t, kind, &b.g) != CP_OK)
		die_be(p->gpu, "weight_upload");
	/* the CPU backend may keep pointing at F32 data: leak it (test only) */
	if (dtype != CP_DTYPE_F32)
		free(data);
	return b;
}

static void
free2(Pair *p, Buf2 *b)
{
	p->cpu->free(p->cpu, b->c);
	p->gpu->free(p->gpu, b->g);
}

/*
 * compare
 *		Download [off, off + n) of both sides and check NMSE <= thr; also
 *		that the rows listed as zero are exactly zero on the GPU.
 */
static void
compare(Pair *p, const char *name, Buf2 *b, size_t off, size_t n, double thr)
{
	float	   *c = malloc(sizeof(float) * (n ? n : 1));
	float	   *g = malloc(sizeof(float) * (n ? n : 1));
	double		num = 0.0,
				den = 0.0,
				nmse;
	size_t		i;
	bool		ok;

	if (p->cpu->download(p->cpu, cp_view(b->c, off), c, n) != CP_OK)
		die_be(p->cpu, "download");
	if (p->gpu->download(p->gpu, cp_view(b->g, off), g, n) != CP_OK)
		die_be(p->gpu, "download");
	for (i = 0; i < n; i++)
	{
		double		d = (double) g[i] - (double) c[i];

		num += d * d;
		den += (double) c[i] * c[i];
	}
	nmse = den > 0 ? num / den : num;
	ok = (nmse <= thr);			/* false for NaN */
	printf("%-4s %-44s NMSE %.3e (threshold %.0e)\n", ok ? "ok" : "FAIL", name, nmse, thr);
	if (!ok)
	{
		failures++;
		for (i = 0; i < n && i < 4; i++)
			printf("     [%zu] cpu %.7g gpu %.7g\n", i, c[i], g[i]);
	}
	free(c);
	free(g);
}

#define CALL(be, expr) do { if ((expr) != CP_OK) die_be((be), #expr); } while (0)

/* ---- op tests ---- */

static void
test_matmul(Pair *p, int M, int N, int K, bool use_bias, bool accumulate,
			bool exact, size_t off)
{
	char		name[128];
	float	   *x = rand_array((size_t) M * K + off, 1.0f, exact);
	float	   *w = rand_array((size_t) N * K, 0.5f, true);
	float	   *bias = rand_array((size_t) N, 1.0f, false);
	float	   *y0 = rand_array((size_t) M * N + off, 1.0f, false);
	Buf2		X = act(p, x, (size_t) M * K + off);
	Buf2		W = weight(p, w, N, K, exact ? CP_DTYPE_BF16 : CP_DTYPE_F32, CP_WEIGHT_MATRIX);
	Buf2		Bv = weight(p, bias, 1, N, CP_DTYPE_F32, CP_WEIGHT_VECTOR);
	Buf2		Y = act(p, accumulate ? y0 : NULL, (size_t) M * N + off);
	Pair		q = *p;
	CpBackend  *bes[2] = {q.cpu, q.gpu};
	int			i;

	for (i = 0; i < 2; i++)
	{
		CpBackend  *be = bes[i];
		CpBuf	   *xb = i ? X.g : X.c,
				   *wb = i ? W.g : W.c,
				   *bb = i ? Bv.g : Bv.c,
				   *yb = i ? Y.g : Y.c;

		CALL(be, be->matmul(be, cp_view(yb, off), cp_view(xb, off), wb,
							use_bias ? bb : NULL, M, N, K, accumulate));
	}
	snprintf(name, sizeof(name), "matmul %dx%dx%d%s%s%s%s", M, N, K,
			 use_bias ? " +bias" : "", accumulate ? " +=" : "",
			 exact ? " bf16-exact" : "", off ? " offset" : "");
	compare(p, name, &Y, off, (size_t) M * N, exact ? 1e-9 : 1e-4);
	free2(p, &X);
	free2(p, &W);
	free2(p, &Bv);
	free2(p, &Y);
	free(x);
	free(w);
	free(bias);
	free(y0);
}

/*
 * test_matmul_reuse
 *		The CUDA backend converts a matmul input to bf16 once and reuses it
 *		while nothing wrote the input: q/k/v-style GEMMs from one x, then
 *		x changed by another op (scale) and by a matmul writing into x's
 *		own buffer, each followed by a GEMM that must see the new x.
 */
static void
test_matmul_reuse(Pair *p)
{
	int			M = 19,
				K = 64,
				N = 48;
	float	   *x = rand_array((size_t) M * K * 2, 1.0f, true);
	float	   *w = rand_array((size_t) N * K, 0.5f, true);
	float	   *w2 = rand_array((size_t) K * K, 0.5f, true);
	Buf2		X = act(p, x, (size_t) M * K * 2);
	Buf2		W = weight(p, w, N, K, CP_DTYPE_BF16, CP_WEIGHT_MATRIX);
	Buf2		W2 = weight(p, w2, K, K, CP_DTYPE_BF16, CP_WEIGHT_MATRIX);
	Buf2		Y = act(p, NULL, (size_t) M * N * 4);
	CpBackend  *bes[2] = {p->cpu, p->gpu};
	int			i;

	for (i = 0; i < 2; i++)
	{
		CpBackend  *be = bes[i];
		CpBuf	   *xb = i ? X.g : X.c,
				   *wb = i ? W.g : W.c,
				   *w2b = i ? W2.g : W2.c,
				   *yb = i ? Y.g : Y.c;

		CALL(be, be->matmul(be, cp_view(yb, 0), cp_view(xb, 0), wb, NULL, M, N, K, false));
		CALL(be, be->matmul(be, cp_view(yb, (size_t) M * N), cp_view(xb, 0), wb, NULL, M, N, K, false));
		CALL(be, be->scale(be, cp_view(xb, 0), (size_t) M * K, 0.5f));
		CALL(be, be->matmul(be, cp_view(yb, (size_t) 2 * M * N), cp_view(xb, 0), wb, NULL, M, N, K, false));
		/* x[M*K..] = x[0..] . W2^T (same buffer), then x[0..] = x[M*K..] . W2^T in place of the source */
		CALL(be, be->matmul(be, cp_view(xb, (size_t) M * K), cp_view(xb, 0), w2b, NULL, M, K, K, false));
		CALL(be, be->matmul(be, cp_view(xb, 0), cp_view(xb, (size_t) M * K), w2b, NULL, M, K, K, false));
		CALL(be, be->matmul(be, cp_view(yb, (size_t) 3 * M * N), cp_view(xb, 0), wb, NULL, M, N, K, false));
	}
	/* the chained products are no longer bf16-exact on the GPU: bf16 tolerance */
	compare(p, "matmul input reuse (q/k/v, after scale)", &Y, 0, (size_t) 3 * M * N, 1e-9);
	compare(p, "matmul input reuse (after writes into x)", &Y, (size_t) 3 * M * N, (size_t) M * N, 1e-4);
	free2(p, &X);
	free2(p, &W);
	free2(p, &W2);
	free2(p, &Y);
	free(x);
	free(w);
	free(w2);
}

/*
 * test_mlp_chain
 *		GeGLU then the down GEMM, and GELU then fc2, as the model runs them:
 *		on the CUDA backend GeGLU / GELU also write the bf16 GEMM input
 *		(fused), so this checks that the GEMM uses it correctly.  Run on
 *		(cpu, gpu) with the bf16 threshold and on (gpu, gpu without fusing)
 *		with an exact one.
 */
static void
test_mlp_chain(Pair *p, const char *label, double thr)
{
	int			M = 37,
				I = 512,
				D = 96;
	size_t		n = (size_t) M * I;
	float	   *g = rand_array(n, 3.0f, false);
	float	   *u = rand_array(n, 1.0f, false);
	float	   *w = rand_array((size_t) D * I, 0.5f, true);
	Buf2		G = act(p, g, n),
				U = act(p, u, n),
				Y = act(p, NULL, (size_t) 2 * M * D),
				W = weight(p, w, D, I, CP_DTYPE_BF16, CP_WEIGHT_MATRIX);
	CpBackend  *bes[2] = {p->cpu, p->gpu};
	char		name[128];
	int			i;

	for (i = 0; i < 2; i++)
	{
		CpBackend  *be = bes[i];
		CpBuf	   *gb = i ? G.g : G.c,
				   *ub = i ? U.g : U.c,
				   *wb = i ? W.g : W.c,
				   *yb = i ? Y.g : Y.c;

		CALL(be, be->geglu(be, cp_view(gb, 0), cp_view(gb, 0), cp_view(ub, 0), n));
		CALL(be, be->matmul(be, cp_view(yb, 0), cp_view(gb, 0), wb, NULL, M, D, I, false));
		CALL(be, be->gelu_tanh(be, cp_view(ub, 0), n));
		CALL(be, be->matmul(be, cp_view(yb, (size_t) M * D), cp_view(ub, 0), wb, NULL, M, D, I, false));
	}
	snprintf(name, sizeof(name), "geglu+gelu -> matmul %s", label);
	compare(p, name, &Y, 0, (size_t) 2 * M * D, thr);
	free2(p, &G);
	free2(p, &U);
	free2(p, &Y);
	free2(p, &W);
	free(g);
	free(u);
	free(w);
}

static void
test_attention(Pair *p, const char *label, int B, int T, int nh, int nkv, int hd,
			   const int *lens, bool causal, bool exact, double thr)
{
	char		name[160];
	size_t		nq = (size_t) B * T * nh * hd,
				nk = (size_t) B * T * nkv * hd;
	float	   *q = rand_array(nq, 2.0f, exact);
	float	   *k = rand_array(nk, 2.0f, exact);
	float	   *v = rand_array(nk, 1.0f, exact);
	Buf2		Q = act(p, q, nq),
				K = act(p, k, nk),
				V = act(p, v, nk),
				O = act(p, NULL, nq);
	float		scale = 1.0f / sqrtf((float) hd);

	CALL(p->cpu, p->cpu->attention(p->cpu, cp_view(O.c, 0), cp_view(Q.c, 0), cp_view(K.c, 0),
								   cp_view(V.c, 0), B, T, nh, nkv, hd, scale, lens, causal));
	CALL(p->gpu, p->gpu->attention(p->gpu, cp_view(O.g, 0), cp_view(Q.g, 0), cp_view(K.g, 0),
								   cp_view(V.g, 0), B, T, nh, nkv, hd, scale, lens, causal));
	snprintf(name, sizeof(name), "attention %s B%d T%d h%d/%d d%d%s%s%s", label, B, T, nh, nkv,
			 hd, lens ? " masked" : "", causal ? " causal" : "", exact ? " exact" : "");
	compare(p, name, &O, 0, nq, thr);
	free2(p, &Q);
	free2(p, &K);
	free2(p, &V);
	free2(p, &O);
	free(q);
	free(k);
	free(v);
}

static void
test_norms(Pair *p, int rows, int dim)
{
	char		name[96];
	size_t		n = (size_t) rows * dim;
	float	   *x = rand_array(n, 3.0f, false);
	float	   *w = rand_array((size_t) dim, 1.0f, false);
	float	   *b = rand_array((size_t) dim, 1.0f, false);
	Buf2		X = act(p, x, n),
				Y = act(p, NULL, n),
				Wt = weight(p, w, 1, dim, CP_DTYPE_F32, CP_WEIGHT_VECTOR),
				Bt = weight(p, b, 1, dim, CP_DTYPE_F32, CP_WEIGHT_VECTOR);

	CALL(p->cpu, p->cpu->layernorm(p->cpu, cp_view(Y.c, 0), cp_view(X.c, 0), Wt.c, Bt.c, rows, dim, 1e-6f));
	CALL(p->gpu, p->gpu->layernorm(p->gpu, cp_view(Y.g, 0), cp_view(X.g, 0), Wt.g, Bt.g, rows, dim, 1e-6f));
	snprintf(name, sizeof(name), "layernorm %dx%d", rows, dim);
	compare(p, name, &Y, 0, n, 1e-9);

	CALL(p->cpu, p->cpu->rmsnorm(p->cpu, cp_view(Y.c, 0), cp_view(X.c, 0), Wt.c, rows, dim, 1e-6f));
	CALL(p->gpu, p->gpu->rmsnorm(p->gpu, cp_view(Y.g, 0), cp_view(X.g, 0), Wt.g, rows, dim, 1e-6f));
	snprintf(name, sizeof(name), "rmsnorm %dx%d", rows, dim);
	compare(p, name, &Y, 0, n, 1e-9);

	CALL(p->cpu, p->cpu->l2norm(p->cpu, cp_view(X.c, 0), rows, dim));
	CALL(p->gpu, p->gpu->l2norm(p->gpu, cp_view(X.g, 0), rows, dim));
	snprintf(name, sizeof(name), "l2norm %dx%d", rows, dim);
	compare(p, name, &X, 0, n, 1e-9);

	free2(p, &X);
	free2(p, &Y);
	free2(p, &Wt);
	free2(p, &Bt);
	free(x);
	free(w);
	free(b);
}

static void
test_rope(Pair *p, int B, int T, int nh, int hd)
{
	char		name[96];
	size_t		n = (size_t) B * T * nh * hd;
	float	   *x = rand_array(n, 2.0f, false);
	Buf2		X = act(p, x, n);

	CALL(p->cpu, p->cpu->rope(p->cpu, cp_view(X.c, 0), B, T, nh, hd, 10000.0f, 1));
	CALL(p->gpu, p->gpu->rope(p->gpu, cp_view(X.g, 0), B, T, nh, hd, 10000.0f, 1));
	snprintf(name, sizeof(name), "rope B%d T%d h%d d%d", B, T, nh, hd);
	compare(p, name, &X, 0, n, 1e-9);
	free2(p, &X);
	free(x);
}

static void
test_elementwise(Pair *p, size_t n)
{
	float	   *a = rand_array(n, 4.0f, false);
	float	   *b = rand_array(n, 4.0f, false);
	float	   *t = rand_array(64 * 48, 1.0f, false);
	Buf2		A = act(p, a, n),
				Bb = act(p, b, n),
				O = act(p, NULL, n),
				Tt = weight(p, t, 64, 48, CP_DTYPE_F32, CP_WEIGHT_VECTOR);
	int			rows = (int) (n / 48);

	CALL(p->cpu, p->cpu->geglu(p->cpu, cp_view(O.c, 0), cp_view(A.c, 0), cp_view(Bb.c, 0), n));
	CALL(p->gpu, p->gpu->geglu(p->gpu, cp_view(O.g, 0), cp_view(A.g, 0), cp_view(Bb.g, 0), n));
	compare(p, "geglu", &O, 0, n, 1e-9);

	CALL(p->cpu, p->cpu->gelu_tanh(p->cpu, cp_view(A.c, 0), n));
	CALL(p->gpu, p->gpu->gelu_tanh(p->gpu, cp_view(A.g, 0), n));
	compare(p, "gelu_tanh", &A, 0, n, 1e-9);

	CALL(p->cpu, p->cpu->add(p->cpu, cp_view(A.c, 0), cp_view(Bb.c, 0), n));
	CALL(p->gpu, p->gpu->add(p->gpu, cp_view(A.g, 0), cp_view(Bb.g, 0), n));
	compare(p, "add", &A, 0, n, 1e-12);

	CALL(p->cpu, p->cpu->scale(p->cpu, cp_view(A.c, 0), n, 45.254833995939045f));
	CALL(p->gpu, p->gpu->scale(p->gpu, cp_view(A.g, 0), n, 45.254833995939045f));
	compare(p, "scale", &A, 0, n, 1e-12);

	CALL(p->cpu, p->cpu->add_rows(p->cpu, cp_view(A.c, 0), Tt.c, rows, 64, 48));
	CALL(p->gpu, p->gpu->add_rows(p->gpu, cp_view(A.g, 0), Tt.g, rows, 64, 48));
	compare(p, "add_rows (period 64)", &A, 0, (size_t) rows * 48, 1e-12);

	free2(p, &A);
	free2(p, &Bb);
	free2(p, &O);
	free2(p, &Tt);
	free(a);
	free(b);
	free(t);
}

/* The Qwen2-VL family's ops against the CPU backend's fp32 loops. */
static void
test_qwen_ops(Pair *p, int rows, int nh, int hd)
{
	char		name[96];
	int			dim = nh * hd;
	size_t		n = (size_t) rows * dim;
	size_t		na = (size_t) rows * (hd / 2);
	float	   *x = rand_array(n, 3.0f, false);
	float	   *u = rand_array(n, 3.0f, false);
	float	   *w = rand_array((size_t) dim, 1.0f, false);
	float	   *ang = rand_array(na, 6.0f, false);
	float	   *c = malloc(sizeof(float) * na);
	float	   *sn = malloc(sizeof(float) * na);
	Buf2		X,
				U,
				Y,
				Wt,
				Cs,
				Sn;

	for (size_t i = 0; i < na; i++)
	{
		c[i] = cosf(ang[i]);
		sn[i] = sinf(ang[i]);
	}
	X = act(p, x, n);
	U = act(p, u, n);
	Y = act(p, NULL, n);
	Wt = weight(p, w, 1, dim, CP_DTYPE_F32, CP_WEIGHT_VECTOR);
	Cs = act(p, c, na);
	Sn = act(p, sn, na);

	CALL(p->cpu, p->cpu->rmsnorm_plain(p->cpu, cp_view(Y.c, 0), cp_view(X.c, 0), Wt.c, rows, dim, 1e-6f));
	CALL(p->gpu, p->gpu->rmsnorm_plain(p->gpu, cp_view(Y.g, 0), cp_view(X.g, 0), Wt.g, rows, dim, 1e-6f));
	snprintf(name, sizeof(name), "rmsnorm_plain %dx%d", rows, dim);
	compare(p, name, &Y, 0, n, 1e-9);

	CALL(p->cpu, p->cpu->rotary(p->cpu, cp_view(X.c, 0), cp_view(Cs.c, 0), cp_view(Sn.c, 0), rows, nh, hd));
	CALL(p->gpu, p->gpu->rotary(p->gpu, cp_view(X.g, 0), cp_view(Cs.g, 0), cp_view(Sn.g, 0), rows, nh, hd));
	snprintf(name, sizeof(name), "rotary %d rows h%d d%d", rows, nh, hd);
	compare(p, name, &X, 0, n, 1e-9);

	CALL(p->cpu, p->cpu->swiglu(p->cpu, cp_view(Y.c, 0), cp_view(X.c, 0), cp_view(U.c, 0), n));
	CALL(p->gpu, p->gpu->swiglu(p->gpu, cp_view(Y.g, 0), cp_view(X.g, 0), cp_view(U.g, 0), n));
	compare(p, "swiglu", &Y, 0, n, 1e-9);

	CALL(p->cpu, p->cpu->quick_gelu(p->cpu, cp_view(X.c, 0), n));
	CALL(p->gpu, p->gpu->quick_gelu(p->gpu, cp_view(X.g, 0), n));
	compare(p, "quick_gelu", &X, 0, n, 1e-9);

	CALL(p->cpu, p->cpu->gelu_erf(p->cpu, cp_view(U.c, 0), n));
	CALL(p->gpu, p->gpu->gelu_erf(p->gpu, cp_view(U.g, 0), n));
	compare(p, "gelu_erf", &U, 0, n, 1e-9);

	free2(p, &X);
	free2(p, &U);
	free2(p, &Y);
	free2(p, &Wt);
	free2(p, &Cs);
	free2(p, &Sn);
	free(x);
	free(u);
	free(w);
	free(ang);
	free(c);
	free(sn);
}

static void
test_gathers(Pair *p)
{
	int			vocab = 1000,
				dim = 96,
				n = 77,
				i;
	float	   *tab = rand_array((size_t) vocab * dim, 1.0f, false);
	int32_t		ids[77];
	int			rows[20];
	float	   *src = rand_array((size_t) 20 * dim, 1.0f, false);
	Buf2		Tb = weight(p, tab, vocab, dim, CP_DTYPE_BF16, CP_WEIGHT_TABLE);
	Buf2		Tf = weight(p, tab, vocab, dim, CP_DTYPE_F32, CP_WEIGHT_TABLE);
	Buf2		O = act(p, NULL, (size_t) n * dim);
	Buf2		S = act(p, src, (size_t) 20 * dim);
	int			C = 3,
				H = 56,
				P = 14,
				Bn = 2;
	size_t		npx = (size_t) Bn * C * H * H;
	float	   *pix = rand_array(npx, 1.0f, false);
	Buf2		Px = act(p, pix, npx),
				Cols = act(p, NULL, npx);

	for (i = 0; i < n; i++)
		ids[i] = (int32_t) ((i * 7919) % vocab);
	ids[0] = vocab - 1;
	for (i = 0; i < 20; i++)
		rows[i] = (i * 3 + 5) % n;	/* distinct: 3 is coprime with 77 */

	CALL(p->cpu, p->cpu->embedding(p->cpu, cp_view(O.c, 0), Tb.c, ids, n, dim));
	CALL(p->gpu, p->gpu->embedding(p->gpu, cp_view(O.g, 0), Tb.g, ids, n, dim));
	compare(p, "embedding (bf16 table)", &O, 0, (size_t) n * dim, 0.0);
	CALL(p->cpu, p->cpu->embedding(p->cpu, cp_view(O.c, 0), Tf.c, ids, n, dim));
	CALL(p->gpu, p->gpu->embedding(p->gpu, cp_view(O.g, 0), Tf.g, ids, n, dim));
	compare(p, "embedding (f32 table)", &O, 0, (size_t) n * dim, 0.0);

	CALL(p->cpu, p->cpu->scatter_rows(p->cpu, cp_view(O.c, 0), cp_view(S.c, 0), rows, 20, dim, 0.5f));
	CALL(p->gpu, p->gpu->scatter_rows(p->gpu, cp_view(O.g, 0), cp_view(S.g, 0), rows, 20, dim, 0.5f));
	compare(p, "scatter_rows", &O, 0, (size_t) n * dim, 0.0);

	CALL(p->cpu, p->cpu->im2col(p->cpu, cp_view(Cols.c, 0), cp_view(Px.c, 0), Bn, C, H, H, P));
	CALL(p->gpu, p->gpu->im2col(p->gpu, cp_view(Cols.g, 0), cp_view(Px.g, 0), Bn, C, H, H, P));
	compare(p, "im2col", &Cols, 0, npx, 0.0);

	free2(p, &Tb);
	free2(p, &Tf);
	free2(p, &O);
	free2(p, &S);
	free2(p, &Px);
	free2(p, &Cols);
	free(tab);
	free(src);
	free(pix);
}

/*
 * test_errors
 *		Bad arguments give an error status with a message, not a crash.
 */
static void
test_errors(Pair *p)
{
	CpBackend  *g = p->gpu;
	CpBuf	   *small;
	bool		ok;

	if (on_cpu)
		return;					/* the CPU backend does not check views */
	CALL(g, g->alloc(g, 16, &small));
	ok = g->scale(g, cp_view(small, 8), 9, 2.0f) == CP_ERR_INVALID_ARG &&
		strstr(g->err.msg, "outside") != NULL;
	printf("%-4s %-44s (%s)\n", ok ? "ok" : "FAIL", "out-of-range view rejected", g->err.msg);
	if (!ok)
		failures++;
	g->free(g, small);
}

int
main(void)
{
	CpBackendOptions bo;
	CpError		err;
	Pair		p;
	void	   *lib = NULL;
	void	   *lib2 = NULL;
	Pair		ps;
	const char *req = getenv("COLPALI_CUDA_REQUIRE");
	int			lens3[3] = {100, 37, 1};
	int			lens2[2] = {30, 17};
	int			lens1030[2] = {1030, 24};

	memset(&bo, 0, sizeof(bo));
	memset(&err, 0, sizeof(err));
	on_cpu = getenv("CUDA_TEST_CPU") != NULL && strcmp(getenv("CUDA_TEST_CPU"), "1") == 0;
	/* the oracle: naive ops when the CPU is under test */
	if ((on_cpu ? cp_backend_cpu_ref_create(&bo, &p.cpu, &err) :
		 cp_backend_cpu_create(&bo, &p.cpu, &err)) != CP_OK)
	{
		fprintf(stderr, "CPU backend: %s\n", err.msg);
		return 1;
	}
	if (open_device(&bo, &lib, &p.gpu, &err) != CP_OK)
	{
		printf("SKIP: %s\n", err.msg);
		return (req && strcmp(req, "1") == 0) ? 1 : 0;
	}

	/* GEMMs: the model's shapes (scaled down in M) and odd ones */
	test_matmul(&p, 64, 1152, 1152, true, false, false, 0);
	test_matmul(&p, 64, 1152, 1152, true, false, true, 0);
	test_matmul(&p, 37, 4304, 1152, true, false, true, 0);
	test_matmul(&p, 37, 1152, 4304, true, true, true, 0);
	test_matmul(&p, 24, 2048, 2048, false, true, true, 0);
	test_matmul(&p, 24, 256, 2048, false, false, true, 0);
	test_matmul(&p, 1, 128, 2048, true, false, true, 0);
	test_matmul(&p, 33, 96, 32, false, false, true, 3);
	test_matmul(&p, 7, 5, 3, true, true, false, 1);
	test_matmul_reuse(&p);
	test_mlp_chain(&p, "(gpu vs cpu)", 1e-4);

	/* attention: SigLIP, Gemma pages and padded queries, tiny, odd dims */
	test_attention(&p, "siglip", 1, 1024, 16, 16, 72, NULL, false, false, 1e-4);
	test_attention(&p, "siglip", 2, 1024, 16, 16, 72, NULL, false, true, 1e-5);
	test_attention(&p, "gemma", 2, 1030, 8, 1, 256, lens1030, false, false, 1e-4);
	test_attention(&p, "gemma", 2, 1030, 8, 1, 256, lens1030, true, false, 1e-4);
	test_attention(&p, "gemma-q", 3, 100, 8, 1, 256, lens3, false, true, 1e-5);
	test_attention(&p, "gemma-q", 3, 100, 8, 1, 256, lens3, true, true, 1e-5);
	test_attention(&p, "tiny", 2, 30, 4, 1, 16, lens2, false, false, 1e-4);
	test_attention(&p, "tiny", 2, 30, 4, 1, 16, lens2, true, false, 1e-4);
	test_attention(&p, "gqa", 2, 65, 4, 2, 40, lens2, false, false, 1e-4);
	test_attention(&p, "gqa", 2, 130, 4, 2, 40, NULL, true, false, 1e-4);
	test_attention(&p, "odd", 1, 3, 2, 2, 6, NULL, false, false, 1e-4);
	test_attention(&p, "simple", 1, 40, 2, 1, 300, NULL, false, false, 1e-9);
	test_attention(&p, "simple", 1, 40, 2, 1, 300, NULL, true, false, 1e-9);

	test_norms(&p, 300, 1152);
	test_norms(&p, 17, 2048);
	test_norms(&p, 9, 128);
	test_norms(&p, 5, 32);
	test_rope(&p, 2, 1030, 8, 256);
	test_rope(&p, 2, 33, 1, 16);
	test_elementwise(&p, (size_t) 48 * 1000);
	test_qwen_ops(&p, 300, 12, 128);
	test_qwen_ops(&p, 7, 16, 80);
	test_gathers(&p);
	test_errors(&p);

	/*
	 * A second CUDA backend with the fp32 attention kernel, without the
	 * fused bf16 outputs and with cublasGemmEx instead of cuBLASLt: the
	 * attention oracle, and the other GEMM / MLP paths against the first
	 * backend's (same bf16 inputs, so only the summation order differs).
	 */
	setenv("COLPALI_CUDA_ATTENTION", "simple", 1);
	setenv("COLPALI_CUDA_NO_FUSE", "1", 1);
	setenv("COLPALI_CUDA_GEMM", "gemmex", 1);
	ps.cpu = p.cpu;
	if (open_device(&bo, &lib2, &ps.gpu, &err) != CP_OK)
	{
		printf("FAIL second CUDA backend: %s\n", err.msg);
		failures++;
	}
	else
	{
		test_attention(&ps, "siglip/simple", 1, 1024, 16, 16, 72, NULL, false, false, 1e-9);
		test_attention(&ps, "gemma/simple", 3, 100, 8, 1, 256, lens3, false, false, 1e-9);
		test_attention(&ps, "gemma/simple", 3, 100, 8, 1, 256, lens3, true, false, 1e-9);
		{
			Pair		gg;

			gg.cpu = p.gpu;		/* reference side: fused, cuBLASLt */
			gg.gpu = ps.gpu;
			test_mlp_chain(&gg, "(fused/Lt vs unfused/GemmEx GPU)", 1e-9);
			test_matmul(&gg, 64, 1152, 1152, true, false, true, 0);
			test_matmul(&gg, 37, 1152, 4304, true, true, true, 0);
			test_matmul(&gg, 24, 2048, 2048, false, true, true, 0);
		}
		ps.gpu->destroy(ps.gpu);
		cp_backend_unload(lib2);
	}
	unsetenv("COLPALI_CUDA_ATTENTION");
	unsetenv("COLPALI_CUDA_NO_FUSE");
	unsetenv("COLPALI_CUDA_GEMM");

	p.gpu->destroy(p.gpu);
	cp_backend_unload(lib);
	p.cpu->destroy(p.cpu);
	if (failures)
	{
		printf("%d CUDA op check(s) FAILED\n", failures);
		return 1;
	}
	printf("all CUDA op checks passed\n");
	return 0;
}
