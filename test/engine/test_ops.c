/*
 * test_ops.c
 *	  Every fast CPU backend operation against its naive reference
 *	  (backend_cpu_ref.c) on random data, with the shapes ColPali uses
 *	  (scaled down) plus awkward ones: odd sizes, batches with padding,
 *	  multi-head and multi-query attention, F32 / BF16 / F16 weights, used in
 *	  place, converted at load and converted lazily; with the hand-written
 *	  SIMD kernels and without them; and the bf16 GEMM of bf16 precision.
 *
 * The metric is the largest absolute difference relative to the largest
 * reference magnitude (a normalised max error), per op.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
#include "backend_cpu_blas.h"
#include "gemm_amx.h"
#include "gemm_bf16.h"
#include "vecmath.h"
#include "weights.h"

#include "test_ops_util.h"

/* matmul for a dtype and a backend for the weights, with/without bias/acc. */
static void
test_matmul(int M, int N, int K, CpDType dt, bool use_lazy, bool bias,
			bool acc)
{
	float	   *x = malloc(sizeof(float) * M * K),
			   *w = malloc(sizeof(float) * N * K),
			   *bv = malloc(sizeof(float) * N),
			   *y0 = malloc(sizeof(float) * M * N);
	void	   *ws,
			   *bs;
	CpBuf	   *wb,
			   *bb,
			   *xb,
			   *yf,
			   *yr;
	CpBackend  *wbe = use_lazy ? lazy : fast;
	float	   *gf,
			   *gr;
	char		name[128];

	fill(x, (size_t) M * K, 1.0f);
	fill(w, (size_t) N * K, 0.5f);
	fill(bv, N, 1.0f);
	fill(y0, (size_t) M * N, 1.0f);
	wb = upload_matrix(wbe, w, N, K, dt, &ws);
	bb = upload_bias(bias, bv, N, &bs);
	xb = mkbuf(x, (size_t) M * K);
	yf = mkbuf(y0, (size_t) M * N);
	yr = mkbuf(y0, (size_t) M * N);
	check_st(wbe->matmul(wbe, cp_view(yf, 0), cp_view(xb, 0), wb, bb, M, N, K, acc), wbe, "matmul");
	check_st(ref->matmul(ref, cp_view(yr, 0), cp_view(xb, 0), wb, bb, M, N, K, acc), ref, "matmul");
	gf = dl(yf, (size_t) M * N);
	gr = dl(yr, (size_t) M * N);
	snprintf(name, sizeof(name), "matmul %dx%dx%d %s%s%s%s", M, N, K,
			 dt == CP_DTYPE_F32 ? "f32" : dt == CP_DTYPE_BF16 ? "bf16" : "f16",
			 use_lazy ? " lazy" : "", bias ? " bias" : "", acc ? " acc" : "");
	compare(name, gf, gr, (size_t) M * N, 1e-5);
	fast->free(fast, wb);
	fast->free(fast, bb);
	fast->free(fast, xb);
	fast->free(fast, yf);
	fast->free(fast, yr);
	free(x);
	free(w);
	free(bv);
	free(y0);
	free(ws);
	free(bs);
	free(gf);
	free(gr);
}

/* attention with optional padding. */
static void
test_attention_on(CpBackend *be, double tol, int B, int T, int nh, int nkv,
				  int hd, bool pad, bool causal)
{
	size_t		nq = (size_t) B * T * nh * hd,
				nk = (size_t) B * T * nkv * hd;
	float	   *qh = malloc(nq * 4),
			   *kh = malloc(nk * 4),
			   *vh = malloc(nk * 4);
	int		   *lens = malloc(sizeof(int) * B);
	CpBuf	   *q,
			   *k,
			   *v,
			   *of,
			   *orf;
	float	   *gf,
			   *gr;
	char		name[128];
	int			b;

	fill(qh, nq, 2.0f);
	fill(kh, nk, 2.0f);
	fill(vh, nk, 1.0f);
	for (b = 0; b < B; b++)
		lens[b] = pad ? 1 + (b * 7 + 3) % T : T;
	if (pad)
		lens[0] = T;
	q = mkbuf(qh, nq);
	k = mkbuf(kh, nk);
	v = mkbuf(vh, nk);
	of = mkbuf(NULL, nq);
	orf = mkbuf(NULL, nq);
	if (be == bf16)
	{
		/* bf16-exact inputs: what remains is the rounding of p to bf16 */
		round_bf16(qh, nq);
		round_bf16(kh, nk);
		round_bf16(vh, nk);
		fast->free(fast, q);
		fast->free(fast, k);
		fast->free(fast, v);
		q = mkbuf(qh, nq);
		k = mkbuf(kh, nk);
		v = mkbuf(vh, nk);
	}
	check_st(be->attention(be, cp_view(of, 0), cp_view(q, 0), cp_view(k, 0), cp_view(v, 0),
						   B, T, nh, nkv, hd, 1.0f / sqrtf(hd), pad ? lens : NULL, causal), be, "attention");
	check_st(ref->attention(ref, cp_view(orf, 0), cp_view(q, 0), cp_view(k, 0), cp_view(v, 0),
							B, T, nh, nkv, hd, 1.0f / sqrtf(hd), pad ? lens : NULL, causal), ref, "attention");
	gf = dl(of, nq);
	gr = dl(orf, nq);
	snprintf(name, sizeof(name), "%sattention B%d T%d %dq/%dkv x%d%s%s",
			 be == bf16 ? "bf16 " : "", B, T, nh, nkv, hd,
			 pad ? " padded" : "", causal ? " causal" : "");
	compare(name, gf, gr, nq, tol);
	fast->free(fast, q);
	fast->free(fast, k);
	fast->free(fast, v);
	fast->free(fast, of);
	fast->free(fast, orf);
	free(qh);
	free(kh);
	free(vh);
	free(lens);
	free(gf);
	free(gr);
}

/* Attention of the fp32 backend against the reference. */
static void
test_attention(int B, int T, int nh, int nkv, int hd, bool pad, bool causal)
{
	test_attention_on(fast, 1e-5, B, T, nh, nkv, hd, pad, causal);
}

/* Norms, element-wise ops, gathers, rope, im2col. */
static void
test_misc(void)
{
	int			rows = 37,
				dim = 300;
	size_t		n = (size_t) rows * dim;
	float	   *xh = malloc(n * 4),
			   *x2 = malloc(n * 4),
			   *wv = malloc(dim * 4),
			   *bv = malloc(dim * 4);
	void	   *s1,
			   *s2,
			   *s3;
	CpTensor	wt,
				bt,
				tt;
	CpBuf	   *w,
			   *bb,
			   *x,
			   *x2b,
			   *yf,
			   *yr,
			   *tab,
			   *tabl;
	float	   *gf,
			   *gr;
	int32_t		ids[9] = {0, 5, 36, 2, 2, 17, 1, 30, 36};
	int			rowsidx[4] = {3, 0, 8, 5};
	int			i;

	fill(xh, n, 3.0f);
	for (i = 0; i < dim; i++)
		xh[i] += 5.0f;			/* a row with a large mean */
	fill(x2, n, 1.0f);
	fill(wv, dim, 1.0f);
	fill(bv, dim, 1.0f);
	wt = mktensor(wv, 1, dim, CP_DTYPE_BF16, &s1);
	wt.ndim = 1;
	wt.shape[0] = dim;
	bt = mktensor(bv, 1, dim, CP_DTYPE_F32, &s2);
	bt.ndim = 1;
	bt.shape[0] = dim;
	tt = mktensor(xh, rows, dim, CP_DTYPE_BF16, &s3);
	check_st(fast->weight_upload(fast, &wt, CP_WEIGHT_VECTOR, &w), fast, "upload");
	check_st(fast->weight_upload(fast, &bt, CP_WEIGHT_VECTOR, &bb), fast, "upload");
	check_st(fast->weight_upload(fast, &tt, CP_WEIGHT_TABLE, &tabl), fast, "upload");
	check_st(fast->weight_upload(fast, &tt, CP_WEIGHT_VECTOR, &tab), fast, "upload");
	x = mkbuf(xh, n);
	x2b = mkbuf(x2, n);
	yf = mkbuf(NULL, n);
	yr = mkbuf(NULL, n);

#define RUN2(label, call_args_f, call_args_r, count, tol) do { \
		fast->upload(fast, cp_view(yf, 0), x2, n); \
		fast->upload(fast, cp_view(yr, 0), x2, n); \
		check_st(fast->call_args_f, fast, label); \
		check_st(ref->call_args_r, ref, label); \
		gf = dl(yf, n); gr = dl(yr, n); \
		compare(label, gf, gr, (count), tol); \
		free(gf); free(gr); \
	} while (0)

	RUN2("layernorm", layernorm(fast, cp_view(yf, 0), cp_view(x, 0), w, bb, rows, dim, 1e-6f),
		 layernorm(ref, cp_view(yr, 0), cp_view(x, 0), w, bb, rows, dim, 1e-6f), n, 1e-5);
	RUN2("rmsnorm (1+w)", rmsnorm(fast, cp_view(yf, 0), cp_view(x, 0), w, rows, dim, 1e-6f),
		 rmsnorm(ref, cp_view(yr, 0), cp_view(x, 0), w, rows, dim, 1e-6f), n, 1e-5);
	RUN2("l2norm", l2norm(fast, cp_view(yf, 0), rows, dim),
		 l2norm(ref, cp_view(yr, 0), rows, dim), n, 1e-6);
	RUN2("gelu_tanh", gelu_tanh(fast, cp_view(yf, 0), n),
		 gelu_tanh(ref, cp_view(yr, 0), n), n, 1e-6);
	RUN2("geglu (out aliases gate)", geglu(fast, cp_view(yf, 0), cp_view(yf, 0), cp_view(x, 0), n),
		 geglu(ref, cp_view(yr, 0), cp_view(yr, 0), cp_view(x, 0), n), n, 1e-6);
	RUN2("add", add(fast, cp_view(yf, 0), cp_view(x, 0), n),
		 add(ref, cp_view(yr, 0), cp_view(x, 0), n), n, 1e-7);
	RUN2("add_rows period 5", add_rows(fast, cp_view(yf, 0), tab, rows, 5, dim),
		 add_rows(ref, cp_view(yr, 0), tab, rows, 5, dim), n, 1e-7);
	RUN2("scale", scale(fast, cp_view(yf, 3), n - 3, 45.254833f),
		 scale(ref, cp_view(yr, 3), n - 3, 45.254833f), n, 1e-7);
	RUN2("embedding (bf16 table, lazy rows)", embedding(fast, cp_view(yf, 0), tabl, ids, 9, dim),
		 embedding(ref, cp_view(yr, 0), tabl, ids, 9, dim), n, 0);
	RUN2("embedding (converted table)", embedding(fast, cp_view(yf, 0), tab, ids, 9, dim),
		 embedding(ref, cp_view(yr, 0), tabl, ids, 9, dim), n, 0);
	RUN2("scatter_rows", scatter_rows(fast, cp_view(yf, 0), cp_view(x, 7), rowsidx, 4, dim, 0.25f),
		 scatter_rows(ref, cp_view(yr, 0), cp_view(x, 7), rowsidx, 4, dim, 0.25f), n, 0);
	/* rope: [B=2, T=6, nh=3, hd=20] = 720 floats, position 1-based */
	RUN2("rope (pos0 1)", rope(fast, cp_view(yf, 0), 2, 6, 3, 20, 10000.0f, 1),
		 rope(ref, cp_view(yr, 0), 2, 6, 3, 20, 10000.0f, 1), n, 1e-6);
	RUN2("rope (hd 256, 1030 positions)", rope(fast, cp_view(yf, 0), 1, 40, 1, 256, 10000.0f, 991),
		 rope(ref, cp_view(yr, 0), 1, 40, 1, 256, 10000.0f, 991), n, 1e-6);
	/*
	 * the backend keeps its last table: calls that differ from the one
	 * before in one parameter each (theta, the first position, the head
	 * size at the same table size, the positions) must not reuse it
	 */
	RUN2("rope (table kept: same call again)", rope(fast, cp_view(yf, 0), 1, 40, 1, 256, 10000.0f, 991),
		 rope(ref, cp_view(yr, 0), 1, 40, 1, 256, 10000.0f, 991), n, 1e-6);
	RUN2("rope (other theta)", rope(fast, cp_view(yf, 0), 1, 40, 1, 256, 500.0f, 991),
		 rope(ref, cp_view(yr, 0), 1, 40, 1, 256, 500.0f, 991), n, 1e-6);
	RUN2("rope (other first position)", rope(fast, cp_view(yf, 0), 1, 40, 1, 256, 500.0f, 3),
		 rope(ref, cp_view(yr, 0), 1, 40, 1, 256, 500.0f, 3), n, 1e-6);
	RUN2("rope (other head size, same table size)", rope(fast, cp_view(yf, 0), 1, 80, 1, 128, 500.0f, 3),
		 rope(ref, cp_view(yr, 0), 1, 80, 1, 128, 500.0f, 3), n, 1e-6);
	RUN2("rope (fewer positions)", rope(fast, cp_view(yf, 0), 1, 20, 2, 128, 500.0f, 3),
		 rope(ref, cp_view(yr, 0), 1, 20, 2, 128, 500.0f, 3), n, 1e-6);
	/* im2col: B=2, C=3, 28x28, P=7 = 4704 floats <= n */
	RUN2("im2col", im2col(fast, cp_view(yf, 0), cp_view(x, 0), 2, 3, 28, 28, 7),
		 im2col(ref, cp_view(yr, 0), cp_view(x, 0), 2, 3, 28, 28, 7), n, 0);

	fast->free(fast, w);
	fast->free(fast, bb);
	fast->free(fast, tab);
	fast->free(fast, tabl);
	fast->free(fast, x);
	fast->free(fast, x2b);
	fast->free(fast, yf);
	fast->free(fast, yr);
	free(xh);
	free(x2);
	free(wv);
	free(bv);
	free(s1);
	free(s2);
	free(s3);
}

/* The reference rope must follow the formula literally: check one value. */
static void
test_rope_formula(void)
{
	float		v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	CpBuf	   *b = mkbuf(v, 8);
	float	   *g;
	/* position 1 (first token), hd 8, theta 10000: inv_freq[1] = 0.1 */
	double		c = cos(0.1),
				s = sin(0.1);

	ref->rope(ref, cp_view(b, 0), 1, 1, 1, 8, 10000.0f, 1);
	g = dl(b, 8);
	if (fabs(g[1] - (2 * c - 6 * s)) > 1e-6 || fabs(g[5] - (6 * c + 2 * s)) > 1e-6 ||
		fabs(g[0] - (1 * cos(1.0) - 5 * sin(1.0))) > 1e-6)
	{
		printf("FAIL rope formula: %g %g %g\n", g[0], g[1], g[5]);
		failures++;
	}
	else
		printf("ok   rope formula (rotate_half, 1-based)\n");
	free(g);
	fast->free(fast, b);
}

/*
 * test_matmul_bf16
 *		The bf16 GEMM (bf16_matmul backend) against the reference on the
 *		same bf16 values: x and W are made bf16-exact first, so the kernel's
 *		rounding is the identity and only summation order differs (tight
 *		tolerance); then x as it is, where the rounding of x to bf16 (2^-9
 *		relative per element) is the expected difference.
 */
static void
test_matmul_bf16(int M, int N, int K, CpDType dt, bool bias, bool acc)
{
	float	   *x = malloc(sizeof(float) * M * K),
			   *xr = malloc(sizeof(float) * M * K),
			   *w = malloc(sizeof(float) * N * K),
			   *bv = malloc(sizeof(float) * N),
			   *y0 = malloc(sizeof(float) * M * N);
	void	   *ws,
			   *bs;
	CpBuf	   *wb,
			   *bb;
	int			pass;
	size_t		i;

	fill(x, (size_t) M * K, 1.0f);
	fill(w, (size_t) N * K, 0.5f);
	for (i = 0; i < (size_t) N * K; i++)
		w[i] = cp_bf16_to_f32(cp_f32_to_bf16(w[i]));
	for (i = 0; i < (size_t) M * K; i++)
		xr[i] = cp_bf16_to_f32(cp_f32_to_bf16(x[i]));
	fill(bv, N, 1.0f);
	fill(y0, (size_t) M * N, 1.0f);
	wb = upload_matrix(bf16, w, N, K, dt, &ws);
	bb = upload_bias(bias, bv, N, &bs);
	for (pass = 0; pass < 2; pass++)
	{
		CpBuf	   *xb = mkbuf(pass == 0 ? xr : x, (size_t) M * K),
				   *xrb = mkbuf(xr, (size_t) M * K),
				   *yf = mkbuf(y0, (size_t) M * N),
				   *yr = mkbuf(y0, (size_t) M * N);
		float	   *gf,
				   *gr;
		char		name[128];

		check_st(bf16->matmul(bf16, cp_view(yf, 0), cp_view(xb, 0), wb, bb, M, N, K, acc), bf16, "matmul");
		check_st(ref->matmul(ref, cp_view(yr, 0), cp_view(pass == 0 ? xrb : xb, 0), wb, bb, M, N, K, acc), ref, "matmul");
		gf = dl(yf, (size_t) M * N);
		gr = dl(yr, (size_t) M * N);
		snprintf(name, sizeof(name), "bf16 matmul %dx%dx%d %s%s%s%s", M, N, K,
				 dt == CP_DTYPE_F32 ? "f32" : "bf16", bias ? " bias" : "",
				 acc ? " acc" : "", pass == 0 ? " (exact x)" : "");
		/*
		 * Exact inputs: fp32 sums in another order.  Raw x: each product
		 * off by at most 2^-8 relative, |sum| bounded by sum |x w|, which
		 * for these random signs is ~sqrt(K) times the typical output.
		 */
		compare(name, gf, gr, (size_t) M * N, pass == 0 ? 1e-5 : 4e-3);
		fast->free(fast, xb);
		fast->free(fast, xrb);
		fast->free(fast, yf);
		fast->free(fast, yr);
		free(gf);
		free(gr);
	}
	bf16->free(bf16, wb);
	fast->free(fast, bb);
	free(x);
	free(xr);
	free(w);
	free(bv);
	free(y0);
	free(ws);
	free(bs);
}

/*
 * test_vecmath_forms
 *		The AVX-512 and AVX2 forms of GELU, GeGLU and softmax against the
 *		portable form (each where the CPU runs it), at lengths around the
 *		vector widths; inputs reach past exp's clamping range.
 */
static void
test_vecmath_forms(void)
{
	static const int lens[] = {1, 7, 8, 9, 15, 16, 17, 100, 1031};
	int			form,
				li;

	for (form = 0; form < 2; form++)
	{
		bool		able = form == 0 ? cp_vecmath_avx512() : cp_vecmath_avx2();
		const char *fname = form == 0 ? "avx512f" : "avx2-fma";

		if (!able)
		{
			printf("skip %s element-wise forms: not on this CPU\n", fname);
			continue;
		}
		for (li = 0; li < (int) (sizeof(lens) / sizeof(lens[0])); li++)
		{
			int			n = lens[li];

			/* a and b hold at least the two row sums below */
			float	   *g = malloc(sizeof(float) * n),
					   *u = malloc(sizeof(float) * n),
					   *a = malloc(sizeof(float) * (n < 2 ? 2 : n)),
					   *b = malloc(sizeof(float) * (n < 2 ? 2 : n));
			char		name[96];

			fill(g, n, 12.0f);
			fill(u, n, 2.0f);
			/* gelu */
			memcpy(a, g, sizeof(float) * n);
			memcpy(b, g, sizeof(float) * n);
			cp_gelu_tanh_scalar(a, n);
			if (form == 0)
				cp_gelu_tanh_avx512(b, n);
			else
				cp_gelu_tanh_avx2(b, n);
			snprintf(name, sizeof(name), "gelu %s n=%d", fname, n);
			compare(name, b, a, n, 1e-6);
			/* geglu */
			cp_geglu_scalar(a, g, u, n);
			if (form == 0)
				cp_geglu_avx512(b, g, u, n);
			else
				cp_geglu_avx2(b, g, u, n);
			snprintf(name, sizeof(name), "geglu %s n=%d", fname, n);
			compare(name, b, a, n, 1e-6);
			/* softmax over scores spread past exp's -87 cut-off */
			fill(a, n, 60.0f);
			memcpy(b, a, sizeof(float) * n);
			cp_softmax_scalar(a, n);
			if (form == 0)
				cp_softmax_avx512(b, n);
			else
				cp_softmax_avx2(b, n);
			snprintf(name, sizeof(name), "softmax %s n=%d", fname, n);
			compare(name, b, a, n, 1e-6);
			/* the norms' row reductions (sums in another order) */
			a[0] = cp_sum_scalar(g, n);
			b[0] = form == 0 ? cp_sum_avx512(g, n) : cp_sum_avx2(g, n);
			a[1] = cp_sumsq_dev_scalar(g, 0.25f, n);
			b[1] = form == 0 ? cp_sumsq_dev_avx512(g, 0.25f, n) : cp_sumsq_dev_avx2(g, 0.25f, n);
			snprintf(name, sizeof(name), "row sum %s n=%d", fname, n);
			compare(name, b, a, 1, 1e-5 * sqrt(n));
			snprintf(name, sizeof(name), "row sum of squares %s n=%d", fname, n);
			compare(name, b + 1, a + 1, 1, 1e-6 * sqrt(n));
			free(g);
			free(u);
			free(a);
			free(b);
		}
	}
}

/*
 * test_blas_core
 *		OpenBLAS runs the kernel set we chose from cpuid (not its own
 *		detection, which gives generic SSE3 kernels on CPUs it does not
 *		know), unless the user chose one with OPENBLAS_CORETYPE.
 */
static void
test_blas_core(void)
{
	const char *core = cp_blas_core_for_cpu();
	const char *name = cp_blas_kernel_name();
	char		want[64];

	printf("fp32 GEMM kernel: %s (asked for %s)\n", name, core ? core : "OpenBLAS's choice");
	if (getenv("OPENBLAS_CORETYPE") != NULL || core == NULL)
	{
		printf("skip OpenBLAS core check: %s\n",
			   core ? "OPENBLAS_CORETYPE is set" : "no AVX2/AVX-512 kernel set to ask for");
		return;
	}
	snprintf(want, sizeof(want), "openblas:%s", core);
	if (strcasecmp(name, want) != 0)
	{
		printf("FAIL OpenBLAS core: runs %s, wanted %s\n", name, want);
		failures++;
	}
	else
		printf("ok   OpenBLAS core %s\n", name);
}

/* A value of magnitude up to 2^spread or down to 2^-spread, either sign. */
static float
frand_wide(int spread)
{
	int			e = (int) ((frand() + 1.0f) * (spread + 0.5f)) - spread;

	return ldexpf(frand(), e);
}

/*
 * test_split_exact
 *		The split A layout (gemm_amx.h): the terms of every x, read back
 *		from their tiles, sum exactly to x (three terms) for values over the
 *		whole range where bf16 keeps them; below 2^-102 what is lost is
 *		under 2^-126 (AMX's flushed denormals).  Two terms keep 16 bits:
 *		not exact (checks that the test sees a missing term).
 */
static void
test_split_exact(void)
{
	int			K = 83,
				kp = cp_amx_padded_k(K),
				rows = 19,
				terms,
				r,
				k,
				t;

	for (terms = 2; terms <= CP_AMX_SPLIT_TERMS; terms++)
	{
		float	   *x = malloc(sizeof(float) * rows * K);
		uint16_t   *a = aligned_alloc(64, sizeof(uint16_t) * cp_amx_padded_m(rows) * kp * terms);
		int			inexact = 0,
					bad = 0;
		double		worst = 0.0;

		for (k = 0; k < rows * K; k++)
			x[k] = frand_wide(k % 5 == 0 ? 120 : 30);
		x[0] = 1.0f + ldexpf(1.0f, -23);	/* all 24 bits set apart */
		x[1] = -ldexpf(1.0f, 127) * 1.5f;
		x[2] = ldexpf(1.0f, -110) * 1.3f;	/* the last term underflows */
		cp_amx_pack_rows_split(x, K, rows, K, kp, 0, cp_amx_padded_m(rows) / 16, terms, a);
		for (r = 0; r < rows; r++)
			for (k = 0; k < kp; k++)
			{
				double		sum = 0.0,
							want = k < K ? x[(size_t) r * K + k] : 0.0,
							err;

				for (t = 0; t < terms; t++)
					sum += cp_bf16_to_f32(a[(size_t) (r / 16) * (kp / 32) * terms * 512 +
											(size_t) (k / 32) * terms * 512 + (size_t) t * 512 +
											(size_t) (r % 16) * 32 + k % 32]);
				err = fabs(sum - want);
				if (err != 0.0)
					inexact++;
				if (err / fabs(want) > worst && fabs(want) >= ldexp(1.0, -102))
					worst = err / fabs(want);
				if (terms == CP_AMX_SPLIT_TERMS &&
					(fabs(want) >= ldexp(1.0, -102) ? err != 0.0 : err >= ldexp(1.0, -126)))
					bad++;
			}
		if (terms == CP_AMX_SPLIT_TERMS && bad > 0)
		{
			printf("FAIL split of x into %d bf16 terms: %d of %d values not exact (worst rel %.3g)\n",
				   terms, bad, rows * kp, worst);
			failures++;
		}
		else if (terms < CP_AMX_SPLIT_TERMS && inexact == 0)
		{
			printf("FAIL split of x into %d bf16 terms is exact: the test cannot see a missing term\n",
				   terms);
			failures++;
		}
		else
			printf("ok   split of x into %d bf16 terms: worst rel error %.3g\n", terms, worst);
		free(x);
		free(a);
	}
}

/*
 * test_matmul_split
 *		fp32 products of the AMX split path (backend sb) against the
 *		double reference, element by element, on x and W spread over 2^±xs
 *		and 2^±ws: |y - ref| <= tol * (sum_k |x_k w_k| + |bias| + |y0|),
 *		the form of fp32's own dot-product error bound; the FMA kernel
 *		(backend fb, no_amx) is measured the same way and printed beside
 *		it.  Then the first M1 rows alone must give the same bits as in
 *		the whole product (a page does not depend on the rows beside it;
 *		for more than 65 rows, where both products take the many-row path).
 *		Returns the split path's error (tol = INFINITY: only measured).
 */
static double
test_matmul_split(CpBackend *sb, CpBackend *fb, int M, int N, int K, bool bias,
				  bool acc, int xs, int ws, double tol)
{
	float	   *x = malloc(sizeof(float) * M * K),
			   *w = malloc(sizeof(float) * N * K),
			   *bv = malloc(sizeof(float) * N),
			   *y0 = malloc(sizeof(float) * M * N),
			   *got[2];
	double	   *want = malloc(sizeof(double) * M * N),
			   *mag = malloc(sizeof(double) * M * N),
				worst[2] = {0.0, 0.0};
	void	   *ws_store[2],
			   *bs[2];
	CpBuf	   *wb[2],
			   *bb[2],
			   *xb,
			   *yb;
	CpBackend  *be[2] = {sb, fb};
	int			M1 = M > 2 * 65 ? M / 2 + 1 : 65,
				m,
				n,
				k,
				i;
	char		name[160];

	for (k = 0; k < M * K; k++)
		x[k] = frand_wide(xs);
	for (k = 0; k < N * K; k++)
		w[k] = cp_bf16_to_f32(cp_f32_to_bf16(frand_wide(ws)));
	fill(bv, N, 1.0f);
	fill(y0, (size_t) M * N, 1.0f);
	for (m = 0; m < M; m++)
		for (n = 0; n < N; n++)
		{
			double		s = 0.0,
						a = 0.0;

			for (k = 0; k < K; k++)
			{
				s += (double) x[(size_t) m * K + k] * w[(size_t) n * K + k];
				a += fabs((double) x[(size_t) m * K + k] * w[(size_t) n * K + k]);
			}
			if (bias)
			{
				s += bv[n];
				a += fabs(bv[n]);
			}
			if (acc)
			{
				s += y0[(size_t) m * N + n];
				a += fabs(y0[(size_t) m * N + n]);
			}
			want[(size_t) m * N + n] = s;
			mag[(size_t) m * N + n] = a;
		}
	xb = mkbuf(x, (size_t) M * K);
	for (i = 0; i < 2; i++)
	{
		wb[i] = upload_matrix(be[i], w, N, K, CP_DTYPE_BF16, &ws_store[i]);
		bb[i] = upload_bias(bias, bv, N, &bs[i]);
		yb = mkbuf(y0, (size_t) M * N);
		check_st(be[i]->matmul(be[i], cp_view(yb, 0), cp_view(xb, 0), wb[i], bb[i], M, N, K, acc),
				 be[i], "matmul");
		got[i] = dl(yb, (size_t) M * N);
		fast->free(fast, yb);
		for (k = 0; k < M * N; k++)
		{
			double		e = fabs(got[i][k] - want[k]) / mag[k];

			if (!(e <= worst[i]))
				worst[i] = isnan(e) ? INFINITY : e;
		}
	}
	snprintf(name, sizeof(name), "fp32 split matmul %dx%dx%d 2^+-%d x 2^+-%d%s%s", M, N, K,
			 xs, ws, bias ? " bias" : "", acc ? " acc" : "");
	if (!(worst[0] <= tol))
	{
		printf("FAIL %-52s error %.3g of sum|x w| > %.1g (FMA kernel: %.3g)\n", name,
			   worst[0], tol, worst[1]);
		failures++;
	}
	else
		printf("ok   %-52s error %.3g of sum|x w| (FMA kernel: %.3g)\n", name, worst[0],
			   worst[1]);

	/* the first M1 rows alone: the same bits */
	if (M1 < M)
	{
		CpBuf	   *y1 = mkbuf(y0, (size_t) M1 * N);
		float	   *g1;

		check_st(sb->matmul(sb, cp_view(y1, 0), cp_view(xb, 0), wb[0], bb[0], M1, N, K, acc),
				 sb, "matmul");
		g1 = dl(y1, (size_t) M1 * N);
		snprintf(name, sizeof(name), "fp32 split matmul %dx%dx%d%s: %d rows alone", M, N, K,
				 acc ? " acc" : "", M1);
		if (memcmp(g1, got[0], sizeof(float) * M1 * N) != 0)
		{
			printf("FAIL %-52s differ from the same rows in %d\n", name, M);
			failures++;
		}
		else
			printf("ok   %-52s same bits as in %d\n", name, M);
		fast->free(fast, y1);
		free(g1);
	}
	for (i = 0; i < 2; i++)
	{
		fast->free(fast, wb[i]);
		fast->free(fast, bb[i]);
		free(ws_store[i]);
		free(bs[i]);
		free(got[i]);
	}
	fast->free(fast, xb);
	free(x);
	free(w);
	free(bv);
	free(y0);
	free(want);
	free(mag);
	return worst[0];
}

/*
 * test_fp32_split
 *		fp32 precision on AMX (bf16 weights, activations split into bf16
 *		terms): the split itself, then products of many rows against the
 *		reference with a bound of fp32 class, on shapes with ragged edges
 *		(K not a multiple of 32, M not of 16, odd N) and values spread
 *		over many binades; the two-term split must fail the same bound.
 */
static void
test_fp32_split(void)
{
	CpBackendOptions o;
	CpError		err;
	CpBackend  *sb,
			   *s2,
			   *fb;
	/* fp32's unit roundoff 2^-24 times a small multiple */
	const double tol = 16.0 * ldexp(1.0, -24);

	printf("-- fp32 precision on AMX tiles (activations split into bf16 terms)\n");
	if (!cp_cpu_amx_bf16_usable() || !cp_vecmath_avx512())
	{
		printf("skip AMX-BF16 fp32 split GEMM: this CPU (or kernel) has no usable AMX-BF16\n");
		return;
	}
	test_split_exact();
	memset(&o, 0, sizeof(o));
	o.threads = 2;
	o.lazy_convert = true;
	if (cp_backend_cpu_create(&o, &sb, &err) != CP_OK)
		exit(1);
	printf("kernels: %s\n", cp_backend_cpu_kernels(sb));
	if (strstr(cp_backend_cpu_kernels(sb), "gemm_many_rows=amx-bf16x3") == NULL ||
		strstr(cp_backend_cpu_kernels(sb), "gemm_few_rows=amx-bf16x3") == NULL)
	{
		printf("FAIL fp32 on AMX: kernels do not say gemm_few_rows=amx-bf16x3 gemm_many_rows=amx-bf16x3\n");
		failures++;
	}
	o.fp32_split_terms = 2;
	if (cp_backend_cpu_create(&o, &s2, &err) != CP_OK)
		exit(1);
	o.fp32_split_terms = 0;
	o.no_amx = true;
	if (cp_backend_cpu_create(&o, &fb, &err) != CP_OK)
		exit(1);

	test_matmul_split(sb, fb, 70, 33, 65, true, false, 4, 2, tol);
	test_matmul_split(sb, fb, 65, 31, 31, false, true, 20, 4, tol);
	test_matmul_split(sb, fb, 130, 257, 588, true, true, 20, 8, tol);
	test_matmul_split(sb, fb, 97, 530, 2050, false, false, 12, 4, tol);
	test_matmul_split(sb, fb, 300, 2100, 96, true, true, 6, 2, tol);	/* dynamic column groups */
	test_matmul_split(sb, fb, 1030, 96, 1152, false, true, 3, 1, tol);	/* a page's rows, 2 k-blocks */
	test_matmul_split(sb, fb, 90, 40, 3000, false, false, 2, 1, tol);	/* 94 k-steps: 3 k-blocks */
	/* few rows (a query): W read in place as A tiles, x^T split as B */
	test_matmul_split(sb, fb, 24, 2100, 96, true, true, 20, 4, tol);	/* dynamic column groups, tail */
	test_matmul_split(sb, fb, 5, 45, 2048, false, true, 12, 4, tol);	/* 2 k-blocks, 13-column tail */
	test_matmul_split(sb, fb, 1, 7, 32, true, false, 4, 2, tol);	/* all tail */
	test_matmul_split(sb, fb, 33, 250, 160, false, true, 20, 8, tol);	/* 2nd row block of 1 row */
	test_matmul_split(sb, fb, 64, 68, 1024, true, false, 6, 2, tol);
	test_matmul_split(sb, fb, 17, 96, 3200, false, false, 3, 1, tol);	/* 100 k-steps: 4 k-blocks */

	/* the two-term split is short of fp32 (the bound sees a missing term) */
	printf("-- fp32 on AMX with two terms (16 bits of x): expected to exceed the bound\n");
	if (test_matmul_split(s2, fb, 70, 33, 65, true, false, 4, 2, INFINITY) <= tol)
	{
		printf("FAIL two-term split within the fp32 bound: the bound cannot see a missing term\n");
		failures++;
	}
	else
		printf("ok   two-term split exceeds the fp32 bound %.3g (as it must)\n", tol);
	sb->destroy(sb);
	s2->destroy(s2);
	fb->destroy(fb);
}

/* Every op of the fast backend (and its lazy twin) against the reference. */
static void
test_all_ops(void)
{
	test_matmul(1, 1, 1, CP_DTYPE_F32, false, false, false);
	test_matmul(7, 33, 65, CP_DTYPE_F32, false, true, false);
	test_matmul(13, 40, 64, CP_DTYPE_F32, false, true, true);
	test_matmul(13, 40, 64, CP_DTYPE_BF16, false, true, false);
	test_matmul(29, 300, 2048, CP_DTYPE_BF16, true, false, true);
	test_matmul(3, 1000, 1500, CP_DTYPE_BF16, true, true, false);
	/* few rows + lazy bf16 + K % 16 == 0: the AVX-512 kernel (when present) */
	test_matmul(33, 130, 4304, CP_DTYPE_BF16, true, false, false);
	test_matmul(6, 45, 2064, CP_DTYPE_BF16, true, true, true);	/* 3 k-chunks */
	test_matmul(1, 7, 16, CP_DTYPE_BF16, true, true, false);
	test_matmul(64, 68, 1040, CP_DTYPE_BF16, true, false, true);
	test_matmul(65, 68, 1040, CP_DTYPE_BF16, true, true, false);	/* tiles + SGEMM */
	test_matmul(5, 70, 96, CP_DTYPE_F16, false, false, false);
	test_matmul(5, 70, 96, CP_DTYPE_F16, true, true, true);
	test_matmul(130, 257, 588, CP_DTYPE_F32, false, true, false);
	/* many rows + lazy bf16: the AVX-512 kernel's edges (rows, columns, k) */
	test_matmul(130, 257, 588, CP_DTYPE_BF16, true, true, true);
	test_matmul(97, 530, 2050, CP_DTYPE_BF16, true, false, false);
	test_matmul(70, 33, 66, CP_DTYPE_BF16, true, true, false);
	test_matmul(70, 100, 1024, CP_DTYPE_BF16, true, false, true);	/* x copied, padded stride */
	test_matmul(70, 33, 65, CP_DTYPE_BF16, true, false, true);	/* odd K: OpenBLAS */
	/* >= 2048 columns: blocks of 256 columns handed out to free threads */
	test_matmul(70, 2100, 64, CP_DTYPE_BF16, true, true, true);
	/* the last row block with 16 rows (its second tile skipped) and 17 */
	test_matmul(80, 68, 1040, CP_DTYPE_BF16, true, true, false);
	test_matmul(81, 68, 1040, CP_DTYPE_BF16, true, false, true);

	test_attention(1, 1, 1, 1, 8, false, false);
	test_attention(2, 17, 4, 4, 12, false, false);	/* SigLIP-like MHA */
	test_attention(3, 23, 8, 1, 32, true, false);	/* Gemma-like MQA, padded */
	test_attention(3, 23, 8, 1, 32, true, true);	/* same, causal */
	test_attention(2, 11, 6, 2, 16, true, false);	/* GQA */
	test_attention(2, 11, 6, 2, 16, true, true);
	test_attention(1, 300, 8, 1, 24, false, true);	/* several row chunks */
	test_attention(1, 300, 3, 3, 16, false, false);
	test_attention(1, 64, 2, 2, 72, false, false);

	test_misc();
}

int
main(void)
{
	CpBackendOptions o;
	CpError		err;
	int			variant,
				amx;

	memset(&o, 0, sizeof(o));
	o.threads = 2;
	if (cp_backend_cpu_ref_create(&o, &ref, &err) != CP_OK)
		return 1;

	/*
	 * hand-written SIMD kernels (where the CPU has them): with AMX (fp32
	 * products of many rows on bf16 weights split into bf16 terms) where
	 * it is usable, and without; then portable C
	 */
	for (variant = 0; variant < 3; variant++)
	{
		if (!open_fp32_variant(variant, &o, "SIMD kernels"))
			continue;
		printf("kernels: %s\n", cp_backend_cpu_kernels(lazy));
		test_all_ops();
		fast->destroy(fast);
		lazy->destroy(lazy);
	}
	o.no_amx = false;
	o.no_simd = false;
	o.lazy_convert = false;
	if (cp_backend_cpu_create(&o, &fast, &err) != CP_OK)
		return 1;

	test_vecmath_forms();
	test_blas_core();
	test_fp32_split();

	/* bf16 precision: the AMX kernel where it runs, then AVX512_BF16 */
	o.bf16_matmul = true;
	for (amx = 1; amx >= 0; amx--)
	{
		o.no_amx = !amx;
		printf("-- bf16 precision, %s\n", amx ? "AMX tiles" : "AVX512_BF16 (no_amx)");
		if (amx && !cp_cpu_amx_bf16_usable())
		{
			printf("skip AMX-BF16 GEMM: this CPU (or kernel) has no usable AMX-BF16\n");
			continue;
		}
		if (cp_backend_cpu_create(&o, &bf16, &err) != CP_OK)
			return 1;
		printf("kernels: %s\n", cp_backend_cpu_kernels(bf16));
		if (!cp_cpu_has_avx512bf16())
		{
			printf("skip bf16 GEMM: this CPU has no AVX512_BF16 (bf16 precision runs fp32 here)\n");
			bf16->destroy(bf16);
			continue;
		}
		test_matmul_bf16(65, 68, 1040, CP_DTYPE_BF16, false, true);	/* 2 k-blocks */
		test_matmul_bf16(130, 257, 588, CP_DTYPE_F32, true, false);	/* F32 weights rounded at load */
		test_matmul_bf16(97, 130, 4304, CP_DTYPE_BF16, true, true);
		test_matmul_bf16(300, 64, 2, CP_DTYPE_BF16, false, false);
		test_matmul_bf16(67, 1, 2048, CP_DTYPE_BF16, true, false);
		/* odd K: the fp32 path even in bf16 precision (expect fp32 error) */
		test_matmul_bf16(70, 33, 65, CP_DTYPE_BF16, true, false);
		/* few rows (a query): dot products from the mapping, masked tails */
		test_matmul_bf16(20, 100, 256, CP_DTYPE_BF16, false, true);
		test_matmul_bf16(1, 7, 16, CP_DTYPE_BF16, true, false);
		test_matmul_bf16(33, 130, 4304, CP_DTYPE_BF16, false, false);
		test_matmul_bf16(64, 68, 1040, CP_DTYPE_BF16, true, true);
		test_matmul_bf16(5, 45, 8210, CP_DTYPE_BF16, true, true);	/* 3 k-chunks */
		/* AMX: row and column blocks of 32, 64-column panels, padded K */
		test_matmul_bf16(1030, 96, 1152, CP_DTYPE_BF16, true, false);
		test_matmul_bf16(32, 64, 32, CP_DTYPE_BF16, false, false);
		test_matmul_bf16(45, 200, 2080, CP_DTYPE_BF16, false, true);
		test_matmul_bf16(40, 600, 2080, CP_DTYPE_BF16, true, true);	/* column groups */
		test_matmul_bf16(1030, 600, 300, CP_DTYPE_BF16, false, true);	/* edge blocks, acc */
		test_matmul_bf16(70, 2100, 96, CP_DTYPE_BF16, true, true);	/* dynamic column groups */
		/* last row block: 16 rows (second tile skipped), 17 rows */
		test_matmul_bf16(1040, 64, 288, CP_DTYPE_BF16, false, true);
		test_matmul_bf16(1041, 64, 288, CP_DTYPE_BF16, true, false);
		/* a query on packed weights over 2 MB (huge pages, prefetched stream) */
		test_matmul_bf16(20, 2100, 1040, CP_DTYPE_BF16, false, true);

		/*
		 * Attention (on AMX: bf16 tile products, fp32 softmax): SigLIP's
		 * head size 72 (padded to 96), Gemma's MQA with padding and the
		 * causal mask, several row chunks, GQA; inputs bf16-exact, so the
		 * difference is the rounding of the probabilities to bf16.
		 */
		test_attention_on(bf16, 4e-3, 1, 1, 1, 1, 8, false, false);
		test_attention_on(bf16, 4e-3, 2, 17, 4, 4, 12, false, false);
		test_attention_on(bf16, 4e-3, 1, 300, 3, 3, 72, false, false);
		test_attention_on(bf16, 4e-3, 3, 23, 8, 1, 32, true, false);
		test_attention_on(bf16, 4e-3, 3, 23, 8, 1, 32, true, true);
		test_attention_on(bf16, 4e-3, 2, 70, 8, 1, 256, true, true);
		test_attention_on(bf16, 4e-3, 2, 11, 6, 2, 16, true, true);
		test_attention_on(bf16, 4e-3, 1, 300, 8, 1, 24, false, true);
		bf16->destroy(bf16);
	}

	test_rope_formula();

	fast->destroy(fast);
	ref->destroy(ref);
	if (failures)
	{
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("all ops ok\n");
	return 0;
}
