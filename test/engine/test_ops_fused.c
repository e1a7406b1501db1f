/*
 * test_ops_fused.c
 *	  The CPU backend's fused operations (backend.h: matmul_shared,
 *	  act_matmul, geglu_mlp) against the plain operations of the same
 *	  backend (bitwise equal: the fused forms only skip passes over memory)
 *	  and against the naive reference, for the fp32 backend (weights
 *	  converted at load and lazy; lazy bf16 weights on AMX tiles where AMX
 *	  is usable), with and without the SIMD kernels, and
 *	  for bf16 precision on AMX tiles (where AMX is usable: elsewhere it
 *	  prints "skip AMX-BF16") and on AVX512_BF16.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gemm_amx.h"
#include "gemm_bf16.h"
#include "test_ops_util.h"

/* Bitwise equality of two results (a fused op against its plain ops). */
static void
compare_same(const char *what, const float *got, const float *want, size_t n)
{
	if (memcmp(got, want, n * sizeof(float)) != 0)
	{
		printf("FAIL %-40s differs from the plain ops\n", what);
		failures++;
	}
	else
		printf("ok   %-40s same as the plain ops\n", what);
}

/*
 * test_fused_on
 *		The fused ops of backend be (matmul_shared: three products of one
 *		x; act_matmul with GELU and GeGLU; geglu_mlp) against the same backend's plain
 *		ops (must be bitwise equal: the fused forms only skip passes over
 *		memory) and against the reference (tol: fp32, or bf16 rounding).
 */
static void
test_fused_on(CpBackend *be, const char *label, double tol, int M, int N,
			  int K, CpDType dt)
{
	int			Ns[3] = {N, N + 7, 40};
	float	   *x = malloc(sizeof(float) * M * K),
			   *up = malloc(sizeof(float) * M * K),
			   *w = malloc(sizeof(float) * (N + 7 > 40 ? N + 7 : 40) * K),
			   *bv = malloc(sizeof(float) * (N + 7)),
			   *y0 = malloc(sizeof(float) * M * (N + 7));
	void	   *ws[3],
			   *wus,
			   *bs;
	CpBuf	   *wbu,
			   *wb[3],
			   *bb,
			   *bias3[3];
	CpView		yv[3];
	CpBuf	   *yb[3];
	int			i,
				act;
	char		name[128];

	fill(x, (size_t) M * K, 1.0f);
	fill(up, (size_t) M * K, 1.0f);
	fill(bv, N + 7, 1.0f);
	fill(y0, (size_t) M * (N + 7), 1.0f);
	for (i = 0; i < 3; i++)
	{
		fill(w, (size_t) Ns[i] * K, 0.5f);
		wb[i] = upload_matrix(be, w, Ns[i], K, dt, &ws[i]);
	}
	fill(w, (size_t) N * K, 0.5f);
	wbu = upload_matrix(be, w, N, K, dt, &wus);
	bb = upload_bias(true, bv, N + 7, &bs);
	bias3[0] = NULL;
	bias3[1] = bb;
	bias3[2] = NULL;

	/* three products of one x */
	{
		CpBuf	   *xb = mkbuf(x, (size_t) M * K);

		for (i = 0; i < 3; i++)
		{
			yb[i] = mkbuf(NULL, (size_t) M * Ns[i]);
			yv[i] = cp_view(yb[i], 0);
		}
		check_st(be->matmul_shared(be, 3, yv, cp_view(xb, 0), wb, bias3, M, Ns, K), be, "matmul_shared");
		for (i = 0; i < 3; i++)
		{
			CpBuf	   *yp = mkbuf(NULL, (size_t) M * Ns[i]),
					   *yr = mkbuf(NULL, (size_t) M * Ns[i]);
			float	   *gf,
					   *gp,
					   *gr;

			check_st(be->matmul(be, cp_view(yp, 0), cp_view(xb, 0), wb[i], bias3[i], M, Ns[i], K, false), be, "matmul");
			check_st(ref->matmul(ref, cp_view(yr, 0), cp_view(xb, 0), wb[i], bias3[i], M, Ns[i], K, false), ref, "matmul");
			gf = dl(yb[i], (size_t) M * Ns[i]);
			gp = dl(yp, (size_t) M * Ns[i]);
			gr = dl(yr, (size_t) M * Ns[i]);
			snprintf(name, sizeof(name), "%s shared %d/3 %dx%dx%d", label, i + 1, M, Ns[i], K);
			compare_same(name, gf, gp, (size_t) M * Ns[i]);
			compare(name, gf, gr, (size_t) M * Ns[i], tol);
			fast->free(fast, yp);
			fast->free(fast, yr);
			fast->free(fast, yb[i]);
			free(gf);
			free(gp);
			free(gr);
		}
		fast->free(fast, xb);
	}

	/* activation, then the product: GELU with a bias, GeGLU accumulating */
	for (act = CP_FUSED_GELU_TANH; act <= CP_FUSED_GEGLU; act++)
	{
		bool		geglu = (act == CP_FUSED_GEGLU);
		CpBuf	   *xf = mkbuf(x, (size_t) M * K),
				   *xp = mkbuf(x, (size_t) M * K),
				   *xr = mkbuf(x, (size_t) M * K),
				   *ub = mkbuf(up, (size_t) M * K),
				   *yf = mkbuf(y0, (size_t) M * (N + 7)),
				   *yp = mkbuf(y0, (size_t) M * (N + 7)),
				   *yr = mkbuf(y0, (size_t) M * (N + 7));
		CpBuf	   *bias = geglu ? NULL : bb;
		float	   *gf,
				   *gp,
				   *gr;
		size_t		n = (size_t) M * K,
					ny = (size_t) M * (N + 7);

		check_st(be->act_matmul(be, cp_view(yf, 0), cp_view(xf, 0), cp_view(ub, 0), act,
								wb[1], bias, M, N + 7, K, geglu), be, "act_matmul");
		if (geglu)
		{
			check_st(be->geglu(be, cp_view(xp, 0), cp_view(xp, 0), cp_view(ub, 0), n), be, "geglu");
			check_st(ref->geglu(ref, cp_view(xr, 0), cp_view(xr, 0), cp_view(ub, 0), n), ref, "geglu");
		}
		else
		{
			check_st(be->gelu_tanh(be, cp_view(xp, 0), n), be, "gelu");
			check_st(ref->gelu_tanh(ref, cp_view(xr, 0), n), ref, "gelu");
		}
		check_st(be->matmul(be, cp_view(yp, 0), cp_view(xp, 0), wb[1], bias, M, N + 7, K, geglu), be, "matmul");
		check_st(ref->matmul(ref, cp_view(yr, 0), cp_view(xr, 0), wb[1], bias, M, N + 7, K, geglu), ref, "matmul");
		gf = dl(yf, ny);
		gp = dl(yp, ny);
		gr = dl(yr, ny);
		snprintf(name, sizeof(name), "%s %s matmul %dx%dx%d", label,
				 geglu ? "geglu acc" : "gelu bias", M, N + 7, K);
		compare_same(name, gf, gp, ny);
		compare(name, gf, gr, ny, tol);
		fast->free(fast, xf);
		fast->free(fast, xp);
		fast->free(fast, xr);
		fast->free(fast, ub);
		fast->free(fast, yf);
		fast->free(fast, yp);
		fast->free(fast, yr);
		free(gf);
		free(gp);
		free(gr);
	}
	/* Gemma's MLP: gate and up products, GeGLU, down product (acc) */
	{
		float	   *wd = malloc(sizeof(float) * K * N);
		void	   *wds;
		CpBuf	   *wdb,
				   *xb = mkbuf(x, (size_t) M * K),
				   *g1 = mkbuf(NULL, (size_t) M * N),
				   *u1 = mkbuf(NULL, (size_t) M * N),
				   *g2 = mkbuf(NULL, (size_t) M * N),
				   *u2 = mkbuf(NULL, (size_t) M * N),
				   *yf = mkbuf(x, (size_t) M * K),
				   *yp = mkbuf(x, (size_t) M * K),
				   *yr = mkbuf(x, (size_t) M * K);
		float	   *gf,
				   *gp,
				   *gr;
		size_t		ny = (size_t) M * K;

		fill(wd, (size_t) K * N, 0.5f);
		wdb = upload_matrix(be, wd, K, N, dt, &wds);
		check_st(be->geglu_mlp(be, cp_view(yf, 0), cp_view(xb, 0), cp_view(g1, 0), cp_view(u1, 0),
							   wb[0], wbu, wdb, M, N, K), be, "geglu_mlp");
		check_st(be->matmul(be, cp_view(g2, 0), cp_view(xb, 0), wb[0], NULL, M, N, K, false), be, "matmul");
		check_st(be->matmul(be, cp_view(u2, 0), cp_view(xb, 0), wbu, NULL, M, N, K, false), be, "matmul");
		check_st(be->geglu(be, cp_view(g2, 0), cp_view(g2, 0), cp_view(u2, 0), (size_t) M * N), be, "geglu");
		check_st(be->matmul(be, cp_view(yp, 0), cp_view(g2, 0), wdb, NULL, M, K, N, true), be, "matmul");
		check_st(ref->matmul(ref, cp_view(g1, 0), cp_view(xb, 0), wb[0], NULL, M, N, K, false), ref, "matmul");
		check_st(ref->matmul(ref, cp_view(u1, 0), cp_view(xb, 0), wbu, NULL, M, N, K, false), ref, "matmul");
		check_st(ref->geglu(ref, cp_view(g1, 0), cp_view(g1, 0), cp_view(u1, 0), (size_t) M * N), ref, "geglu");
		check_st(ref->matmul(ref, cp_view(yr, 0), cp_view(g1, 0), wdb, NULL, M, K, N, true), ref, "matmul");
		gf = dl(yf, ny);
		gp = dl(yp, ny);
		gr = dl(yr, ny);
		snprintf(name, sizeof(name), "%s geglu mlp %dx%dx%d", label, M, N, K);
		compare_same(name, gf, gp, ny);
		compare(name, gf, gr, ny, tol);
		be->free(be, wdb);
		free(wds);
		free(wd);
		fast->free(fast, xb);
		fast->free(fast, g1);
		fast->free(fast, u1);
		fast->free(fast, g2);
		fast->free(fast, u2);
		fast->free(fast, yf);
		fast->free(fast, yp);
		fast->free(fast, yr);
		free(gf);
		free(gp);
		free(gr);
	}
	for (i = 0; i < 3; i++)
	{
		be->free(be, wb[i]);
		free(ws[i]);
	}
	be->free(be, wbu);
	free(wus);
	fast->free(fast, bb);
	free(bs);
	free(x);
	free(up);
	free(w);
	free(bv);
	free(y0);
}

/*
 * test_bias_order
 *		A product with a bias (be->matmul) against the same product without
 *		it and the bias applied by hand in the order the backend documents:
 *		without accumulate, y preloaded with the bias rows and the product
 *		added onto it (bias + sum); with accumulate, (y + sum) + bias.  The
 *		AMX kernels apply the bias inside the tile product (no pass over y
 *		for it), so this must stay bitwise equal: a bias added after the
 *		sums, or read from the wrong columns, differs.
 */
static void
test_bias_order(CpBackend *be, const char *label, int M, int N, int K,
				CpDType dt)
{
	float	   *x = malloc(sizeof(float) * M * K),
			   *w = malloc(sizeof(float) * N * K),
			   *bv = malloc(sizeof(float) * N),
			   *y0 = malloc(sizeof(float) * M * N),
			   *pre = malloc(sizeof(float) * M * N);
	void	   *ws,
			   *bs;
	CpBuf	   *wb,
			   *bb,
			   *xb;
	int			acc;
	size_t		i,
				ny = (size_t) M * N;
	char		name[128];

	fill(x, (size_t) M * K, 1.0f);
	fill(w, (size_t) N * K, 0.5f);
	fill(bv, N, 1.0f);
	fill(y0, ny, 1.0f);
	wb = upload_matrix(be, w, N, K, dt, &ws);
	bb = upload_bias(true, bv, N, &bs);
	xb = mkbuf(x, (size_t) M * K);
	for (acc = 0; acc < 2; acc++)
	{
		CpBuf	   *yf,
				   *yp;
		float	   *gf,
				   *gp;

		for (i = 0; i < ny; i++)
			pre[i] = acc ? y0[i] : bv[i % N];
		yf = mkbuf(y0, ny);
		yp = mkbuf(pre, ny);
		check_st(be->matmul(be, cp_view(yf, 0), cp_view(xb, 0), wb, bb, M, N, K, acc), be, "matmul");
		check_st(be->matmul(be, cp_view(yp, 0), cp_view(xb, 0), wb, NULL, M, N, K, true), be, "matmul");
		gf = dl(yf, ny);
		gp = dl(yp, ny);
		if (acc)
			for (i = 0; i < ny; i++)
				gp[i] += bv[i % N];
		snprintf(name, sizeof(name), "%s bias%s %dx%dx%d", label, acc ? " acc" : "", M, N, K);
		compare_same(name, gf, gp, ny);
		fast->free(fast, yf);
		fast->free(fast, yp);
		free(gf);
		free(gp);
	}
	fast->free(fast, xb);
	be->free(be, wb);
	fast->free(fast, bb);
	free(ws);
	free(bs);
	free(x);
	free(w);
	free(bv);
	free(y0);
	free(pre);
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
	 * SIMD kernels with AMX (fp32 on bf16 weights: many-row products as
	 * split tile products) where it is usable, and without; portable C
	 */
	for (variant = 0; variant < 3; variant++)
	{
		if (!open_fp32_variant(variant, &o, "fp32 fused ops"))
			continue;
		test_fused_on(fast, "fp32", 1e-5, 45, 70, 96, CP_DTYPE_F32);
		test_fused_on(lazy, "fp32 lazy", 1e-5, 70, 64, 1040, CP_DTYPE_BF16);
		test_fused_on(lazy, "fp32 lazy", 1e-5, 3, 64, 1040, CP_DTYPE_BF16);
		/* 2 column groups with a partial block, K not a multiple of 32 */
		test_fused_on(lazy, "fp32 lazy", 1e-5, 130, 300, 1100, CP_DTYPE_BF16);
		/* the bias's order: row blocks with a partial one, column groups */
		test_bias_order(fast, "fp32", 37, 300, 96, CP_DTYPE_F32);
		test_bias_order(lazy, "fp32 lazy", 70, 300, 1100, CP_DTYPE_BF16);
		test_bias_order(lazy, "fp32 lazy", 37, 2090, 64, CP_DTYPE_BF16);
		lazy->destroy(lazy);
		if (variant < 2)
			fast->destroy(fast);
	}
	o.no_amx = false;

	/* bf16 precision: AMX tiles where they run, then AVX512_BF16 */
	o.no_simd = false;
	o.lazy_convert = false;
	o.bf16_matmul = true;
	for (amx = 1; amx >= 0; amx--)
	{
		o.no_amx = !amx;
		printf("-- bf16 precision, %s\n", amx ? "AMX tiles" : "AVX512_BF16 (no_amx)");
		if (amx && !cp_cpu_amx_bf16_usable())
		{
			printf("skip AMX-BF16 fused ops: this CPU (or kernel) has no usable AMX-BF16\n");
			continue;
		}
		if (!cp_cpu_has_avx512bf16())
		{
			printf("skip bf16 fused ops: this CPU has no AVX512_BF16\n");
			continue;
		}
		if (cp_backend_cpu_create(&o, &bf16, &err) != CP_OK)
			return 1;
		/*
		 * One rounding of a shared x; GELU / GeGLU rounded straight into
		 * the tile layout on AMX; the fused MLP: bitwise equal to the plain
		 * ops, and near the fp32 reference (bf16 rounding of x).
		 */
		test_fused_on(bf16, "bf16", 4e-3, 70, 64, 1040, CP_DTYPE_BF16);
		test_fused_on(bf16, "bf16", 4e-3, 33, 96, 300, CP_DTYPE_BF16);
		test_fused_on(bf16, "bf16", 4e-3, 5, 32, 64, CP_DTYPE_BF16);
		test_fused_on(bf16, "bf16", 4e-3, 40, 300, 64, CP_DTYPE_BF16);	/* 2 groups, a partial block */
		/* row panels of the fused MLP: 5 row blocks (4 + 1), 3 column groups */
		test_fused_on(bf16, "bf16", 4e-3, 150, 300, 96, CP_DTYPE_BF16);
		/*
		 * the bias's order: one row block (a query), a partial last row
		 * block (1 or 2 tiles), column groups with a partial block, and
		 * columns handed out in groups of 256 (N >= 2048)
		 */
		test_bias_order(bf16, "bf16", 5, 300, 64, CP_DTYPE_BF16);
		test_bias_order(bf16, "bf16", 37, 300, 96, CP_DTYPE_BF16);
		test_bias_order(bf16, "bf16", 70, 70, 1040, CP_DTYPE_BF16);
		test_bias_order(bf16, "bf16", 37, 2090, 64, CP_DTYPE_BF16);
		bf16->destroy(bf16);
	}

	fast->destroy(fast);
	ref->destroy(ref);
	if (failures)
	{
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("all fused ops ok\n");
	return 0;
}
