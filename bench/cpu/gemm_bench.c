/*
 * gemm_bench.c
 *	  The CPU backend's weight GEMM y = x W^T on the encoder's shapes, per
 *	  kernel: fp32 (OpenBLAS on fp32 weights; the default lazy bf16 weights),
 *	  bf16 precision on AVX512_BF16 and on AMX tiles, and, built with
 *	  -DWITH_DNNL, oneDNN's dnnl_sgemm / dnnl_gemm_bf16bf16f32 for comparison.
 *	  Prints GFLOP/s from process CPU time (the machine may be shared) and
 *	  wall time.  docs/cpu-kernels.md has the numbers.
 *
 *	  cc -O2 -fopenmp -Isrc/engine bench/cpu/gemm_bench.c \
 *		  build/libcolpali_engine.a -ljansson -ljpeg -lm -ldl [-DWITH_DNNL -ldnnl]
 *	  ./a.out [THREADS]
 *	  (GEMM_BENCH_BF16_ONLY=1: only the AMX kernel and oneDNN's bf16 matmul
 *	  on weights reordered once into its own layout; GEMM_BENCH_FP32_ONLY=1:
 *	  only the fp32 kernels; GEMM_BENCH_SPLIT_ONLY=1: only fp32 on bf16
 *	  weights, on AMX (split activations) and without; GEMM_BENCH_SPLIT2=1
 *	  adds the two-term split)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_cpu.h"
#include "dtype.h"
#include "weights.h"
#ifdef WITH_DNNL
#include <dnnl.h>
#endif

static double
now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
report(const char *kernel, int M, int N, int K, int reps, double cpu, double wall)
{
	double		flop = 2.0 * M * N * K * reps;

	printf("%-28s M=%5d N=%5d K=%5d  %7.1f GFLOP/s per CPU-s  %7.1f GFLOP/s wall\n",
		   kernel, M, N, K, flop / cpu * 1e-9, flop / wall * 1e-9);
	fflush(stdout);
}

static void
bench_backend(const char *kernel, CpBackendOptions *o, bool f32_weights,
			  const uint16_t *wbf, const float *wf, const float *x,
			  int M, int N, int K)
{
	CpBackend  *be;
	CpError		err;
	CpTensor	t;
	CpBuf	   *wb,
			   *xb,
			   *yb;
	double		c0,
				w0;
	int			reps = 0;

	if (cp_backend_cpu_create(o, &be, &err) != CP_OK)
		return;
	memset(&t, 0, sizeof(t));
	t.name = "w";
	t.dtype = f32_weights ? CP_DTYPE_F32 : CP_DTYPE_BF16;
	t.ndim = 2;
	t.shape[0] = N;
	t.shape[1] = K;
	t.numel = (int64_t) N * K;
	t.data = f32_weights ? (const void *) wf : (const void *) wbf;
	t.nbytes = (size_t) t.numel * (f32_weights ? 4 : 2);
	if (be->weight_upload(be, &t, CP_WEIGHT_MATRIX, &wb) != CP_OK ||
		be->alloc(be, (size_t) M * K, &xb) != CP_OK ||
		be->alloc(be, (size_t) M * N, &yb) != CP_OK)
		return;
	be->upload(be, cp_view(xb, 0), x, (size_t) M * K);
	be->matmul(be, cp_view(yb, 0), cp_view(xb, 0), wb, NULL, M, N, K, false);
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	w0 = now(CLOCK_MONOTONIC);
	do
	{
		be->matmul(be, cp_view(yb, 0), cp_view(xb, 0), wb, NULL, M, N, K, false);
		reps++;
	} while (now(CLOCK_MONOTONIC) - w0 < 1.5 || reps < 2);
	report(kernel, M, N, K, reps, now(CLOCK_PROCESS_CPUTIME_ID) - c0,
		   now(CLOCK_MONOTONIC) - w0);
	be->free(be, wb);
	be->free(be, xb);
	be->free(be, yb);
	be->destroy(be);
}

#ifdef WITH_DNNL
#define DNNL_OK(call) do { if ((call) != dnnl_success) { printf("oneDNN: %s failed\n", #call); return; } } while (0)

/*
 * bench_dnnl
 *		oneDNN: dnnl_sgemm for fp32; for bf16 its matmul primitive (2.6 has
 *		no bf16 GEMM function) on bf16 x [M, K] and W [N, K] as stored (plain
 *		"ba" weights, as we keep them mapped), x rounded per call.
 */
static void
bench_dnnl(bool bf16, bool packed, const uint16_t *wbf, const float *wf, const float *x,
		   int M, int N, int K)
{
	float	   *y = malloc(sizeof(float) * M * N);
	uint16_t   *xb = malloc(sizeof(uint16_t) * M * K);
	double		c0 = 0,
				w0 = 0;
	int			reps = -1;
	dnnl_engine_t eng = NULL;
	dnnl_stream_t str = NULL;
	dnnl_primitive_t prim = NULL;
	dnnl_memory_t am = NULL,
				bm = NULL,
				cm = NULL;

	if (bf16)
	{
		dnnl_memory_desc_t a_md,
					b_md,
					c_md;
		dnnl_dims_t ad = {M, K},
					bd = {K, N},
					cd = {M, N};
		dnnl_matmul_desc_t md;
		dnnl_primitive_desc_t pd;

		DNNL_OK(dnnl_engine_create(&eng, dnnl_cpu, 0));
		DNNL_OK(dnnl_stream_create(&str, eng, dnnl_stream_default_flags));
		DNNL_OK(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dnnl_bf16, dnnl_ab));
		dnnl_memory_desc_t w_md;

		DNNL_OK(dnnl_memory_desc_init_by_tag(&w_md, 2, bd, dnnl_bf16, dnnl_ba));
		if (packed)
			DNNL_OK(dnnl_memory_desc_init_by_tag(&b_md, 2, bd, dnnl_bf16, dnnl_format_tag_any));
		else
			b_md = w_md;
		DNNL_OK(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_f32, dnnl_ab));
		DNNL_OK(dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &c_md));
		DNNL_OK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
		DNNL_OK(dnnl_primitive_create(&prim, pd));
		{
			const char *impl = NULL;

			dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
			printf("onednn matmul implementation: %s\n", impl ? impl : "?");
		}
		DNNL_OK(dnnl_memory_create(&am, &a_md, eng, xb));
		if (packed)
		{
			/* weights reordered once into the layout the kernel wants */
			const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
			dnnl_memory_t src;
			dnnl_primitive_desc_t rpd;
			dnnl_primitive_t rp;
			dnnl_exec_arg_t rargs[2];

			DNNL_OK(dnnl_memory_create(&src, &w_md, eng, (void *) wbf));
			DNNL_OK(dnnl_memory_create(&bm, want, eng, DNNL_MEMORY_ALLOCATE));
			DNNL_OK(dnnl_reorder_primitive_desc_create(&rpd, &w_md, eng, want, eng, NULL));
			DNNL_OK(dnnl_primitive_create(&rp, rpd));
			rargs[0].arg = DNNL_ARG_FROM;
			rargs[0].memory = src;
			rargs[1].arg = DNNL_ARG_TO;
			rargs[1].memory = bm;
			DNNL_OK(dnnl_primitive_execute(rp, str, 2, rargs));
			dnnl_stream_wait(str);
		}
		else
			DNNL_OK(dnnl_memory_create(&bm, &b_md, eng, (void *) wbf));
		DNNL_OK(dnnl_memory_create(&cm, &c_md, eng, y));
	}
	do
	{
		if (reps == 0)
		{
			c0 = now(CLOCK_PROCESS_CPUTIME_ID);
			w0 = now(CLOCK_MONOTONIC);
		}
		if (bf16)
		{
			dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
			int			i;

			/* x rounded per call, as the engine must */
			for (i = 0; i < M * K; i++)
				xb[i] = cp_f32_to_bf16(x[i]);
			dnnl_primitive_execute(prim, str, 3, args);
			dnnl_stream_wait(str);
		}
		else
			dnnl_sgemm('N', 'T', M, N, K, 1.0f, x, K, wf, K, 0.0f, y, N);
		reps++;
	} while (reps < 1 || now(CLOCK_MONOTONIC) - w0 < 1.5 || reps < 2);
	report(!bf16 ? "onednn sgemm" : packed ? "onednn matmul bf16, packed W" : "onednn matmul bf16", M, N, K, reps,
		   now(CLOCK_PROCESS_CPUTIME_ID) - c0, now(CLOCK_MONOTONIC) - w0);
	free(y);
	free(xb);
}
#endif

int
main(int argc, char **argv)
{
	static const int shapes[][3] = {
		{1030, 4304, 1152},		/* SigLIP MLP up, a page */
		{1030, 16384, 2048},	/* Gemma gate/up, a page */
		{1030, 2048, 16384},	/* Gemma down, a page */
		{24, 16384, 2048},		/* Gemma gate/up, a query */
		{24, 2048, 16384},		/* Gemma down, a query */
	};
	int			threads = argc > 1 ? atoi(argv[1]) : 1;
	bool		amx_only = getenv("GEMM_BENCH_BF16_ONLY") != NULL;
	int			s;

	for (s = 0; s < (int) (sizeof(shapes) / sizeof(shapes[0])); s++)
	{
		int			M = shapes[s][0],
					N = shapes[s][1],
					K = shapes[s][2];
		float	   *wf = malloc(sizeof(float) * N * K),
				   *x = malloc(sizeof(float) * M * K);
		uint16_t   *wbf = malloc(sizeof(uint16_t) * N * K);
		CpBackendOptions o;
		size_t		i;
		char		name[64];

		for (i = 0; i < (size_t) N * K; i++)
		{
			wbf[i] = cp_f32_to_bf16((float) ((i * 2654435761u) % 1000) / 1000.0f - 0.5f);
			wf[i] = cp_bf16_to_f32(wbf[i]);
		}
		for (i = 0; i < (size_t) M * K; i++)
			x[i] = (float) ((i * 40503u) % 997) / 997.0f - 0.5f;
		memset(&o, 0, sizeof(o));
		o.threads = threads;
		o.lazy_convert = true;
		if (!amx_only)
		{
			bench_backend("fp32, bf16 weights (lazy)", &o, false, wbf, wf, x, M, N, K);
			/* the same without AMX: the AVX-512 FMA kernels */
			o.no_amx = true;
			bench_backend("fp32, lazy, no_amx", &o, false, wbf, wf, x, M, N, K);
			o.no_amx = false;
			if (getenv("GEMM_BENCH_SPLIT2"))
			{
				o.fp32_split_terms = 2;
				bench_backend("fp32, lazy, amx-bf16x2", &o, false, wbf, wf, x, M, N, K);
				o.fp32_split_terms = 0;
			}
			if (getenv("GEMM_BENCH_SPLIT_ONLY"))
				goto next;
			/* the same without our AVX-512 kernels: tiles converted for OpenBLAS */
			o.no_simd = true;
			bench_backend("fp32, lazy, OpenBLAS tiles", &o, false, wbf, wf, x, M, N, K);
			o.no_simd = false;
			o.lazy_convert = false;
			snprintf(name, sizeof(name), "fp32, fp32 weights");
			bench_backend(name, &o, true, wbf, wf, x, M, N, K);
		}
		if (getenv("GEMM_BENCH_FP32_ONLY"))
			goto next;
		o.lazy_convert = false;
		o.bf16_matmul = true;
		o.no_amx = true;
		if (!amx_only)
			bench_backend("bf16, avx512bf16", &o, false, wbf, wf, x, M, N, K);
		o.no_amx = false;
		bench_backend("bf16, amx-bf16", &o, false, wbf, wf, x, M, N, K);
#ifdef WITH_DNNL
		if (!getenv("GEMM_BENCH_BF16_ONLY"))
		{
			bench_dnnl(false, false, wbf, wf, x, M, N, K);
			bench_dnnl(true, false, wbf, wf, x, M, N, K);
		}
		if (!getenv("GEMM_BENCH_AMX_ONLY"))
			bench_dnnl(true, true, wbf, wf, x, M, N, K);
#endif
next:
		free(wf);
		free(x);
		free(wbf);
	}
	return 0;
}
