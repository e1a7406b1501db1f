/*
 * amx_page_bench.c
 *	  The AMX tile GEMMs of src/engine/gemm_amx.c alone on a page's shapes
 *	  (1,030 rows: cp_gemm_amx_bf16 for the plain products, cp_gemm_amx_geglu
 *	  for Gemma's fused gate / up / GeGLU), one thread, all columns, random
 *	  bf16 weights packed once.  Prints GFLOP/s per CPU-second of the calling
 *	  thread (best of REPS calls) and a hash of the output bits, so that two
 *	  builds of the kernel can be compared for speed and for identical
 *	  results (a change of loop order must keep the hash).
 *
 *	  cc -O2 -fopenmp -Isrc/engine bench/cpu/amx_page_bench.c \
 *		  build/libcolpali_engine.a -ljansson -ljpeg -lpcre2-8 -lutf8proc -lm -ldl
 *	  ./a.out [REPS [SHAPE]]	(SHAPE: index into the table below; all if absent)
 *
 *	  To time a variant of the kernel, compile a copy of gemm_amx.c to an
 *	  object and link it before the library.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm_amx.h"
#include "vecmath.h"

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint16_t
to_bf16(float f)
{
	uint32_t	u;

	memcpy(&u, &f, 4);
	return (uint16_t) (u >> 16);
}

static float
uniform(void)
{
	return rand() / (float) RAND_MAX - 0.5f;
}

/* FNV-1a over n 16- or 32-bit words */
static uint64_t
hash_words(const void *p, size_t n, size_t size)
{
	uint64_t	h = 1469598103934665603ull;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		uint32_t	v = 0;

		memcpy(&v, (const char *) p + i * size, size);
		h ^= v;
		h *= 1099511628211ull;
	}
	return h;
}

/*
 * run_shape
 *		Time one shape (M, N, K, fused) and print its line; false when out
 *		of memory.
 */
static bool
run_shape(const int *shape, int reps)
{
	int			M = shape[0],
				N = shape[1],
				K = shape[2];
	bool		fused = shape[3];
	int			kp = cp_amx_padded_k(K),
				mp = cp_amx_padded_m(M),
				okp = cp_amx_padded_k(N);
	float	   *x = malloc(sizeof(float) * M * K);
	uint16_t   *w = malloc(sizeof(uint16_t) * N * K),
			   *w2 = malloc(sizeof(uint16_t) * N * K);
	uint32_t   *pw = cp_amx_alloc_packed(sizeof(uint32_t) * cp_amx_packed_words(N, K)),
			   *pw2 = cp_amx_alloc_packed(sizeof(uint32_t) * cp_amx_packed_words(N, K));
	uint16_t   *xa = aligned_alloc(64, sizeof(uint16_t) * mp * kp),
			   *out = aligned_alloc(64, sizeof(uint16_t) * mp * okp);
	float	   *y = aligned_alloc(64, sizeof(float) * M * N + 64),
			   *cbuf = aligned_alloc(64, sizeof(float) * 2 * mp * CP_AMX_GROUP_N);
	double		best = 1e30,
				flop = 2.0 * M * N * K * (fused ? 2 : 1);
	size_t		i;
	int			r;

	if (!x || !w || !w2 || !pw || !pw2 || !xa || !out || !y || !cbuf)
		return false;
	srand(1);
	for (i = 0; i < (size_t) M * K; i++)
		x[i] = uniform();
	for (i = 0; i < (size_t) N * K; i++)
	{
		w[i] = to_bf16(uniform());
		w2[i] = to_bf16(uniform());
	}
	cp_amx_pack_weights(w, N, K, pw, 1);
	cp_amx_pack_weights(w2, N, K, pw2, 1);
	cp_amx_pack_rows(x, K, M, K, kp, 0, mp / 16, xa);
	for (r = 0; r < reps; r++)
	{
		double		t0 = cpu_now(),
					dt;

		if (fused)
			cp_gemm_amx_geglu(xa, M, kp, pw, pw2, 0, N, N, cp_geglu_avx512,
							  out, okp, cbuf);
		else
			cp_gemm_amx_bf16(xa, M, kp, pw, 0, N, y, N, false, cbuf);
		dt = cpu_now() - t0;
		if (dt < best)
			best = dt;
	}
	printf("%s M=%d N=%d K=%d  %7.0f GFLOP/s per CPU-s  hash %016llx\n",
		   fused ? "geglu" : "plain", M, N, K, flop / best * 1e-9,
		   (unsigned long long) (fused ? hash_words(out, (size_t) mp * okp, 2) :
								 hash_words(y, (size_t) M * N, 4)));
	free(x);
	free(w);
	free(w2);
	free(pw);
	free(pw2);
	free(xa);
	free(out);
	free(y);
	free(cbuf);
	return true;
}

int
main(int argc, char **argv)
{
	/* M, N, K, fused gate/up/GeGLU (N: columns of each) */
	static const int shapes[][4] = {
		{1030, 2048, 2048, 0},	/* Gemma q, o */
		{1030, 2048, 16384, 0},	/* Gemma down */
		{1030, 4304, 1152, 0},	/* SigLIP fc1 */
		{1030, 1152, 4304, 0},	/* SigLIP fc2 */
		{1030, 8192, 2048, 1},	/* Gemma gate / up / GeGLU, half the columns */
		{1030, 1152, 1152, 0},	/* SigLIP q, k, v, o */
		{1030, 256, 2048, 0},	/* Gemma k, v */
	};
	int			reps = argc > 1 ? atoi(argv[1]) : 3;
	int			only = argc > 2 ? atoi(argv[2]) : -1;
	int			s;

	if (!cp_cpu_amx_bf16_usable())
	{
		printf("skip: no usable AMX-BF16 on this CPU / kernel\n");
		return 0;
	}
	for (s = 0; s < (int) (sizeof(shapes) / sizeof(shapes[0])); s++)
		if ((only < 0 || s == only) && !run_shape(shapes[s], reps))
			return 1;
	return 0;
}
