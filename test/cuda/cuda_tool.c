/*
 * cuda_tool.c
 *	  Helper of bench/gpu_check.sh (not a test by itself): runs the ColPali
 *	  model of a checkpoint folder on the CUDA backend from token ids and
 *	  pixel values prepared by Python, so the full-size parity check compares
 *	  the model numerics alone (tokenizer and image preprocessing have their
 *	  own CPU tests), and times the forward pass.
 *
 *	  cuda_tool encode MODEL_DIR IN_DIR OUT_DIR [PAGE_MODE [QUERY_MODE]]
 *		IN_DIR/shapes.txt "P T Q TQ S": P pages of T tokens, Q queries
 *		padded to TQ tokens, images S x S;
 *		IN_DIR/page_pixels.f32 [P,3,S,S], page_ids.i32 [T] (same for every
 *		page), query_ids.i32 [Q,TQ], query_lens.i32 [Q].
 *		Writes OUT_DIR/pages.f32 [P,T,E] and queries.f32 [Q,TQ,E] (rows past
 *		a query's length are zero).  The modes (causal | bidirectional) set
 *		Gemma's attention for pages and queries (default: the config's
 *		use_bidirectional_attention).
 *
 *	  cuda_tool bench MODEL_DIR [RUNS]
 *		Pages/s at batch 1 and 32 (1030-token page prompts, random pixels),
 *		single-query latency and queries/s at batch 32 (24 tokens), each the
 *		median of RUNS timed calls after a warm-up; the host-side clock is
 *		read after the result is downloaded, so it covers the whole
 *		forward.  Prints one JSON object with the peak device memory.
 *
 *	  With CUDA_TOOL_CPU=1 in the environment the CPU backend is used instead
 *	  (a dry run of bench/gpu_parity.py on a machine without a GPU).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "backend_loader.h"
#include "backend_cuda_abi.h"
#include "config.h"
#include "model.h"
#include "weights.h"

typedef struct Tool
{
	CpModelConfig cfg;
	CpWeights  *w;
	CpBackend  *be;
	void	   *lib;
	CpModel    *m;
} Tool;

/*
 * die
 *		Print a message and exit (a test tool, not the engine).
 */
static void
die(const char *what, const CpError *err)
{
	fprintf(stderr, "cuda_tool: %s: %s\n", what, err ? err->msg : "");
	exit(1);
}

/*
 * xmalloc
 *		malloc or die.
 */
static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory", NULL);
	return p;
}

/*
 * now_s
 *		Monotonic clock in seconds.
 */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * tool_open
 *		Config, weights, CUDA backend, model.
 */
static void
tool_open(Tool *t, const char *dir)
{
	CpBackendOptions bo;
	CpError		err;
	double		t0 = now_s();

	memset(t, 0, sizeof(*t));
	memset(&bo, 0, sizeof(bo));
	if (cp_config_load(dir, &t->cfg, &err) != CP_OK)
		die("config", &err);
	if (cp_weights_open(dir, NULL, &t->w, &err) != CP_OK)
		die("weights", &err);
	if (getenv("CUDA_TOOL_CPU") != NULL && strcmp(getenv("CUDA_TOOL_CPU"), "1") == 0)
	{
		if (cp_backend_cpu_create(&bo, &t->be, &err) != CP_OK)
			die("CPU backend", &err);
	}
	else if (cp_backend_load_cuda(NULL, &bo, &t->lib, &t->be, &err) != CP_OK)
		die("CUDA backend", &err);
	if (cp_model_load(&t->cfg, t->w, t->be, &t->m, &err) != CP_OK)
		die("model", &err);
	fprintf(stderr, "cuda_tool: model loaded in %.1f s\n", now_s() - t0);
}

/*
 * tool_close
 *		Free what tool_open made.
 */
static void
tool_close(Tool *t)
{
	cp_model_free(t->m);
	t->be->destroy(t->be);
	cp_backend_unload(t->lib);
	cp_weights_close(t->w);
}

/*
 * read_all
 *		Exactly expect bytes of dir/name, or die.
 */
static void *
read_all(const char *dir, const char *name, size_t expect)
{
	char		path[4096];
	FILE	   *f;
	void	   *buf = xmalloc(expect);

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (f == NULL || fread(buf, 1, expect, f) != expect)
	{
		fprintf(stderr, "cuda_tool: cannot read %zu bytes from %s\n", expect, path);
		exit(1);
	}
	fclose(f);
	return buf;
}

/*
 * write_all
 *		Write n bytes to dir/name, or die.
 */
static void
write_all(const char *dir, const char *name, const void *buf, size_t n)
{
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(buf, 1, n, f) != n || fclose(f) != 0)
	{
		fprintf(stderr, "cuda_tool: cannot write %s\n", path);
		exit(1);
	}
}

#define PAGE_BATCH 16
#define QUERY_BATCH 16

/*
 * cmd_encode
 *		cuda_tool encode (see the file header).
 */
static int
cmd_encode(const char *model, const char *in, const char *out, const char *page_mode,
		   const char *query_mode)
{
	Tool		t;
	int			P,
				T,
				Q,
				TQ,
				S,
				E,
				i,
				b;
	char		path[4096];
	FILE	   *f;
	float	   *pix,
			   *pe,
			   *qe;
	int32_t    *pids,
			   *ids,
			   *qids;
	int		   *qlens;
	size_t		npix;
	CpError		err;
	double		t0;

	snprintf(path, sizeof(path), "%s/shapes.txt", in);
	f = fopen(path, "r");
	if (f == NULL || fscanf(f, "%d %d %d %d %d", &P, &T, &Q, &TQ, &S) != 5)
	{
		fprintf(stderr, "cuda_tool: cannot read %s\n", path);
		return 1;
	}
	fclose(f);
	tool_open(&t, model);
	E = t.cfg.embedding_dim;
	npix = (size_t) 3 * S * S;
	pix = read_all(in, "page_pixels.f32", sizeof(float) * npix * P);
	pids = read_all(in, "page_ids.i32", sizeof(int32_t) * T);
	qids = read_all(in, "query_ids.i32", sizeof(int32_t) * Q * TQ);
	qlens = read_all(in, "query_lens.i32", sizeof(int32_t) * Q);
	pe = xmalloc(sizeof(float) * (size_t) P * T * E);
	qe = xmalloc(sizeof(float) * (size_t) Q * TQ * E);
	ids = xmalloc(sizeof(int32_t) * (size_t) PAGE_BATCH * T);
	for (b = 0; b < PAGE_BATCH; b++)
		memcpy(ids + (size_t) b * T, pids, sizeof(int32_t) * T);

	if (page_mode != NULL)
		cp_model_set_causal(t.m, strcmp(page_mode, "causal") == 0);
	t0 = now_s();
	for (i = 0; i < P; i += PAGE_BATCH)
	{
		int			B = P - i < PAGE_BATCH ? P - i : PAGE_BATCH;

		if (cp_model_forward(t.m, B, T, ids, NULL, pix + npix * i,
							 pe + (size_t) i * T * E, NULL, NULL, &err) != CP_OK)
			die("page forward", &err);
	}
	fprintf(stderr, "cuda_tool: %d pages in %.2f s\n", P, now_s() - t0);
	if (query_mode != NULL)
		cp_model_set_causal(t.m, strcmp(query_mode, "causal") == 0);
	t0 = now_s();
	for (i = 0; i < Q; i += QUERY_BATCH)
	{
		int			B = Q - i < QUERY_BATCH ? Q - i : QUERY_BATCH;

		if (cp_model_forward(t.m, B, TQ, qids + (size_t) i * TQ, qlens + i, NULL,
							 qe + (size_t) i * TQ * E, NULL, NULL, &err) != CP_OK)
			die("query forward", &err);
	}
	fprintf(stderr, "cuda_tool: %d queries in %.2f s\n", Q, now_s() - t0);
	write_all(out, "pages.f32", pe, sizeof(float) * (size_t) P * T * E);
	write_all(out, "queries.f32", qe, sizeof(float) * (size_t) Q * TQ * E);
	tool_close(&t);
	free(pix);
	free(pids);
	free(qids);
	free(qlens);
	free(pe);
	free(qe);
	free(ids);
	return 0;
}

/*
 * cmp_double
 *		qsort comparator.
 */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * time_forward
 *		Median seconds of runs forward passes after one warm-up.
 */
static double
time_forward(Tool *t, int B, int T, const int32_t *ids, const float *pix, float *out,
			 int runs)
{
	double	   *ts = xmalloc(sizeof(double) * runs);
	double		med;
	CpError		err;
	int			r;

	for (r = -1; r < runs; r++)
	{
		double		t0 = now_s();

		if (cp_model_forward(t->m, B, T, ids, NULL, pix, out, NULL, NULL, &err) != CP_OK)
			die("forward", &err);
		if (r >= 0)
			ts[r] = now_s() - t0;
	}
	qsort(ts, runs, sizeof(double), cmp_double);
	med = ts[runs / 2];
	free(ts);
	return med;
}

/*
 * cmd_bench
 *		cuda_tool bench (see the file header).
 */
static int
cmd_bench(const char *model, int runs)
{
	Tool		t;
	int			N,
				T,
				TQ = 24,
				E,
				S,
				maxb = 32,
				i,
				b;
	size_t		npix;
	float	   *pix,
			   *out;
	int32_t    *ids,
			   *qids;
	double		p1,
				p32,
				q1,
				q32;
	size_t		cur = 0,
				peak = 0;
	CpCudaMemoryStatsFn stats;

	tool_open(&t, model);
	N = t.cfg.num_image_tokens;
	T = N + 6;					/* <image> x N, <bos>, 4 text tokens, "\n" (1030) */
	E = t.cfg.embedding_dim;
	S = t.cfg.vision.image_size;
	npix = (size_t) 3 * S * S;
	pix = xmalloc(sizeof(float) * npix * maxb);
	for (i = 0; i < (int) (npix * maxb); i++)
		pix[i] = (float) ((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
	ids = xmalloc(sizeof(int32_t) * (size_t) T * maxb);
	for (b = 0; b < maxb; b++)
		for (i = 0; i < T; i++)
			ids[(size_t) b * T + i] = i < N ? t.cfg.image_token_id :
				(i == N ? 2 : (i == T - 1 ? 108 % t.cfg.text.vocab_size :
							   (1000 * (i - N)) % t.cfg.text.vocab_size));
	qids = xmalloc(sizeof(int32_t) * TQ * maxb);
	for (i = 0; i < TQ * maxb; i++)
		qids[i] = (int32_t) (3 + (i * 7919) % (t.cfg.text.vocab_size - 3));
	for (b = 0; b < maxb; b++)
		qids[b * TQ] = 2;
	out = xmalloc(sizeof(float) * (size_t) (T > TQ ? T : TQ) * E * maxb);

	p1 = time_forward(&t, 1, T, ids, pix, out, runs);
	p32 = time_forward(&t, 32, T, ids, pix, out, runs);
	q1 = time_forward(&t, 1, TQ, qids, NULL, out, runs * 4);
	q32 = time_forward(&t, 32, TQ, qids, NULL, out, runs * 2);
	*(void **) (&stats) = t.lib ? dlsym(t.lib, CP_CUDA_MEMORY_STATS_SYMBOL) : NULL;
	if (stats)
		stats(&cur, &peak);
	printf("{\"pages_b1_ms\": %.3f, \"pages_b1_per_s\": %.2f, "
		   "\"pages_b32_ms\": %.3f, \"pages_b32_per_s\": %.2f, "
		   "\"query_b1_ms\": %.3f, \"query_b32_ms\": %.3f, \"queries_b32_per_s\": %.1f, "
		   "\"peak_gpu_gb\": %.3f, \"page_tokens\": %d, \"query_tokens\": %d}\n",
		   p1 * 1e3, 1.0 / p1, p32 * 1e3, 32.0 / p32, q1 * 1e3, q32 * 1e3, 32.0 / q32,
		   peak / 1e9, T, TQ);
	tool_close(&t);
	free(pix);
	free(ids);
	free(qids);
	free(out);
	return 0;
}

/*
 * main
 *		Entry point.
 */
int
main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "encode") == 0)
		return cmd_encode(argv[2], argv[3], argv[4], argc >= 6 ? argv[5] : NULL,
						  argc >= 7 ? argv[6] : (argc >= 6 ? argv[5] : NULL));
	if (argc >= 3 && strcmp(argv[1], "bench") == 0)
		return cmd_bench(argv[2], argc >= 4 ? atoi(argv[3]) > 0 ? atoi(argv[3]) : 5 : 5);
	fprintf(stderr, "usage: cuda_tool encode MODEL_DIR IN_DIR OUT_DIR [PAGE_MODE [QUERY_MODE]]\n"
			"       cuda_tool bench MODEL_DIR [RUNS]\n");
	return 2;
}
