/*
 * backend_cpu_blas.c
 *	  OpenBLAS, loaded at run time with the kernel set we choose.
 *
 * Debian's OpenBLAS is built for every x86-64 core type and picks one from
 * cpuid when it is loaded; a CPU it does not know (newer than the library,
 * e.g. an Emerald Rapids Xeon for 0.3.21) gets its generic SSE3
 * ("Prescott") kernels, six times slower than the AVX-512 ones.  Its only
 * way to be told otherwise is the OPENBLAS_CORETYPE environment variable,
 * read by the library's constructor.  So the engine is not linked against
 * OpenBLAS: the first GEMM dlopen()s it with OPENBLAS_CORETYPE set for the
 * duration of the load to the kernel set our own cpuid test chooses (the
 * previous environment is restored), in the CLI and in a PostgreSQL
 * backend alike.  A user's own OPENBLAS_CORETYPE wins.  If OpenBLAS was
 * already loaded by something else in the process, dlopen() returns that
 * copy and its kernels; the name we report is always the one the library
 * says it runs.
 *
 * Every caller runs its GEMMs in one thread (the encoder threads with
 * OpenMP around one-thread GEMMs; mvivf's products are small, and a backend
 * should use one core).  Yet OpenBLAS starts a worker thread per core when
 * it is loaded (OMP_NUM_THREADS, set for the encoder's threads, also sets
 * its count), and in a backend running mvivf scans a worker was measured
 * spinning on sched_yield for a tenth of the backend's own CPU time.  So
 * the load also sets OPENBLAS_NUM_THREADS=1 (which OpenBLAS reads before
 * OMP_NUM_THREADS), unless the user set it or GOTO_NUM_THREADS: no worker
 * thread is started.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu_blas.h"

typedef void (*sgemm_fn) (enum CBLAS_ORDER, enum CBLAS_TRANSPOSE,
						  enum CBLAS_TRANSPOSE, const int, const int,
						  const int, const float, const float *, const int,
						  const float *, const int, const float, float *,
						  const int);
typedef int (*get_threads_fn) (void);
typedef void (*set_threads_fn) (int);
typedef char *(*corename_fn) (void);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static sgemm_fn blas_sgemm;
static get_threads_fn blas_get_threads;
static set_threads_fn blas_set_threads;
static char blas_name[64] = "portable";

/*
 * cp_blas_core_for_cpu
 *		See backend_cpu_blas.h.  The AVX-512 kernels need F, CD, BW, DQ
 *		and VL (every AVX-512 server CPU has them); Haswell's need AVX2
 *		and FMA.
 */
const char *
cp_blas_core_for_cpu(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
		__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
		__builtin_cpu_supports("avx512vl"))
		return "SkylakeX";
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return "Haswell";
	return NULL;
}

/*
 * blas_load
 *		Load OpenBLAS once (pthread_once), see the file header.
 */
static void
blas_load(void)
{
	const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : cp_blas_core_for_cpu();
	int			one_thread = getenv("OPENBLAS_NUM_THREADS") == NULL &&
		getenv("GOTO_NUM_THREADS") == NULL;
	void	   *h;

	if (core != NULL)
		setenv("OPENBLAS_CORETYPE", core, 1);
	if (one_thread)
		setenv("OPENBLAS_NUM_THREADS", "1", 1);
	h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
	if (h == NULL)
		h = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
	if (core != NULL)
		unsetenv("OPENBLAS_CORETYPE");
	if (one_thread)
		unsetenv("OPENBLAS_NUM_THREADS");
	if (h == NULL)
		return;
	blas_sgemm = (sgemm_fn) dlsym(h, "cblas_sgemm");
	blas_get_threads = (get_threads_fn) dlsym(h, "openblas_get_num_threads");
	blas_set_threads = (set_threads_fn) dlsym(h, "openblas_set_num_threads");
	if (blas_sgemm == NULL)
		return;
	{
		corename_fn corename = (corename_fn) dlsym(h, "openblas_get_corename");
		const char *cn = corename ? corename() : NULL;

		snprintf(blas_name, sizeof(blas_name), "openblas:%s",
				 cn ? cn : "unknown");
	}
}

/*
 * sgemm_portable
 *		Row-major C = alpha op(A) op(B) + beta C, plain loops: only when
 *		OpenBLAS is missing, so that the caller still gets the product.
 */
static void
sgemm_portable(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M,
			   int N, int K, float alpha, const float *A, int lda,
			   const float *B, int ldb, float beta, float *C, int ldc)
{
	int			m,
				n,
				k;

	for (m = 0; m < M; m++)
		for (n = 0; n < N; n++)
		{
			float		sum = 0.0f;
			float	   *c = C + (size_t) m * ldc + n;

			for (k = 0; k < K; k++)
			{
				float		a = ta == CblasNoTrans ? A[(size_t) m * lda + k] : A[(size_t) k * lda + m];
				float		b = tb == CblasNoTrans ? B[(size_t) k * ldb + n] : B[(size_t) n * ldb + k];

				sum += a * b;
			}
			*c = alpha * sum + (beta == 0.0f ? 0.0f : beta * *c);
		}
}

void
cp_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta,
		 enum CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
		 const float *A, int lda, const float *B, int ldb, float beta,
		 float *C, int ldc)
{
	pthread_once(&blas_once, blas_load);
	if (blas_sgemm != NULL)
		blas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
	else if (order == CblasRowMajor)
		sgemm_portable(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
	else						/* column-major C = row-major C^T */
		sgemm_portable(tb, ta, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
}

int
cp_blas_get_threads(void)
{
	pthread_once(&blas_once, blas_load);
	return blas_get_threads ? blas_get_threads() : 1;
}

void
cp_blas_set_threads(int n)
{
	pthread_once(&blas_once, blas_load);
	if (blas_set_threads != NULL)
		blas_set_threads(n);
}

const char *
cp_blas_kernel_name(void)
{
	pthread_once(&blas_once, blas_load);
	return blas_name;
}
