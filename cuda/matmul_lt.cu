/*
 * matmul_lt.cu
 *	  bf16 GEMMs through cuBLASLt with the bias fused as an epilogue
 *	  (CUBLASLT_EPILOGUE_BIAS), so a biased matmul costs no extra pass over
 *	  its output.  The descriptors and the heuristic's algorithm are cached
 *	  per shape (a few dozen shapes per model: the query path needs them
 *	  without a heuristic call per GEMM).
 *
 * lt_matmul returns false when cuBLASLt cannot do a call (pointers not
 * 256-byte aligned, no algorithm, an Lt error); the caller then runs the
 * same product through cublasGemmEx (backend_cuda.cu), which reports real
 * errors.  COLPALI_CUDA_GEMM=gemmex disables this path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

#include "cuda_matmul.h"

#define LT_CACHE_SIZE 64
#define LT_ALIGN 256

typedef struct LtEntry
{
	int			M,
				N,
				K;
	bool		bias;
	bool		used;
	bool		ok;				/* false: Lt has no algorithm, use GemmEx */
	cublasLtMatmulDesc_t op;
	cublasLtMatrixLayout_t a,
				b,
				c;
	cublasLtMatmulAlgo_t algo;
} LtEntry;

struct LtCache
{
	cublasLtHandle_t lt;
	size_t		ws_bytes;
	LtEntry		e[LT_CACHE_SIZE];
	int			next;			/* round-robin eviction */
	long		calls;
	long		fallbacks;
};

/*
 * entry_release
 *		Destroy an entry's descriptors and clear it.
 */
static void
entry_release(LtEntry *e)
{
	if (e->op)
		cublasLtMatmulDescDestroy(e->op);
	if (e->a)
		cublasLtMatrixLayoutDestroy(e->a);
	if (e->b)
		cublasLtMatrixLayoutDestroy(e->b);
	if (e->c)
		cublasLtMatrixLayoutDestroy(e->c);
	memset(e, 0, sizeof(*e));
}

/*
 * entry_build
 *		Descriptors and algorithm of y^T [N, M] = W [K, N]^T . x^T [K, M]
 *		(+ bias[N] per row of y^T), bf16 in, fp32 out, fp32 compute.
 */
static bool
entry_build(LtCache *c, LtEntry *e, int M, int N, int K, bool bias)
{
	cublasOperation_t ta = CUBLAS_OP_T,
				tb = CUBLAS_OP_N;
	cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
	cudaDataType_t bias_type = CUDA_R_32F;
	cublasLtMatmulPreference_t pref = NULL;
	cublasLtMatmulHeuristicResult_t res;
	int			nres = 0;
	uint32_t	align = LT_ALIGN;
	bool		ok;

	memset(e, 0, sizeof(*e));
	e->M = M;
	e->N = N;
	e->K = K;
	e->bias = bias;
	e->used = true;
	ok = cublasLtMatmulDescCreate(&e->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)) == CUBLAS_STATUS_SUCCESS &&
		(!bias ||
		 cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
										sizeof(bias_type)) == CUBLAS_STATUS_SUCCESS) &&
		cublasLtMatrixLayoutCreate(&e->a, CUDA_R_16BF, K, N, K) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatrixLayoutCreate(&e->b, CUDA_R_16BF, K, M, K) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatrixLayoutCreate(&e->c, CUDA_R_32F, N, M, N) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
											 &c->ws_bytes, sizeof(c->ws_bytes)) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
											 &align, sizeof(align)) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
											 &align, sizeof(align)) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
											 &align, sizeof(align)) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
											 &align, sizeof(align)) == CUBLAS_STATUS_SUCCESS &&
		cublasLtMatmulAlgoGetHeuristic(c->lt, e->op, e->a, e->b, e->c, e->c, pref, 1, &res,
									   &nres) == CUBLAS_STATUS_SUCCESS &&
		nres > 0;
	if (pref)
		cublasLtMatmulPreferenceDestroy(pref);
	if (ok)
		e->algo = res.algo;
	e->ok = ok;
	return ok;
}

/*
 * lt_create
 *		See cuda_matmul.h.
 */
int
lt_create(LtCache **out, size_t ws_bytes)
{
	LtCache    *c = (LtCache *) calloc(1, sizeof(LtCache));
	cublasStatus_t st;

	*out = NULL;
	if (c == NULL)
		return (int) CUBLAS_STATUS_ALLOC_FAILED;
	st = cublasLtCreate(&c->lt);
	if (st != CUBLAS_STATUS_SUCCESS)
	{
		free(c);
		return (int) st;
	}
	c->ws_bytes = ws_bytes;
	*out = c;
	return 0;
}

/*
 * lt_destroy
 *		See cuda_matmul.h.
 */
void
lt_destroy(LtCache *c)
{
	int			i;

	if (c == NULL)
		return;
	for (i = 0; i < LT_CACHE_SIZE; i++)
		entry_release(&c->e[i]);
	cublasLtDestroy(c->lt);
	free(c);
}

/*
 * lt_stats
 *		See cuda_matmul.h.
 */
void
lt_stats(const LtCache *c, long *calls, long *fallbacks)
{
	*calls = c ? c->calls : 0;
	*fallbacks = c ? c->fallbacks : 0;
}

/*
 * lt_matmul
 *		See cuda_matmul.h.
 */
bool
lt_matmul(LtCache *c, cudaStream_t s, void *ws, float *y, const __nv_bfloat16 *x,
		  const __nv_bfloat16 *w, const float *bias, int M, int N, int K, float beta)
{
	LtEntry    *e = NULL;
	float		alpha = 1.0f;
	int			i;

	if (c == NULL)
		return false;
	c->calls++;
	if ((uintptr_t) y % LT_ALIGN || (uintptr_t) x % LT_ALIGN || (uintptr_t) w % LT_ALIGN ||
		(bias && (uintptr_t) bias % 16))
	{
		c->fallbacks++;
		return false;
	}
	for (i = 0; i < LT_CACHE_SIZE && e == NULL; i++)
		if (c->e[i].used && c->e[i].M == M && c->e[i].N == N && c->e[i].K == K &&
			c->e[i].bias == (bias != NULL))
			e = &c->e[i];
	if (e == NULL)
	{
		e = &c->e[c->next];
		c->next = (c->next + 1) % LT_CACHE_SIZE;
		entry_release(e);
		entry_build(c, e, M, N, K, bias != NULL);
	}
	if (!e->ok)
	{
		c->fallbacks++;
		return false;
	}
	if (bias &&
		cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
									   sizeof(bias)) != CUBLAS_STATUS_SUCCESS)
	{
		c->fallbacks++;
		return false;
	}
	if (cublasLtMatmul(c->lt, e->op, &alpha, w, e->a, x, e->b, &beta, y, e->c, y, e->c,
					   &e->algo, ws, c->ws_bytes, s) != CUBLAS_STATUS_SUCCESS)
	{
		e->ok = false;			/* do not try this shape again */
		c->fallbacks++;
		return false;
	}
	return true;
}
