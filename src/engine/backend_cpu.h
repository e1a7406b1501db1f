/*
 * backend_cpu.h
 *	  Private parts of the CPU backend shared by the fast operations
 *	  (backend_cpu.c) and their naive reference twins (backend_cpu_ref.c).
 *	  Both work on the same CpBuf, so the test oracle can run on buffers
 *	  made by the fast backend.
 */
#ifndef CP_BACKEND_CPU_H
#define CP_BACKEND_CPU_H

#include <omp.h>

#include "backend.h"
#include "gemm_amx.h"
#include "gemm_bf16.h"

struct CpBuf
{
	float	   *data;			/* fp32 elements, or NULL when lazy */
	const void *raw;			/* lazy: bf16/f16 data in the mapping, or
								 * a bf16 copy when raw_owned */
	CpDType		dtype;			/* dtype of raw (lazy) */
	size_t		n;				/* number of elements */
	int64_t		rows;			/* weights: shape as [rows, cols] */
	int64_t		cols;
	bool		owned;			/* data was malloc'd here */
	bool		lazy;			/* convert raw on use */
	bool		raw_owned;		/* raw was malloc'd here */
	uint32_t   *amx_packed;		/* raw packed for AMX tiles (gemm_amx.h),
								 * owned: at load in bf16 precision, on the
								 * first many-row product in fp32 */
};

typedef struct CpCpuImpl
{
	int			threads;		/* OpenMP threads for element-wise ops */
	bool		lazy_convert;
	bool		avx512;			/* AVX-512 kernels usable (small-M bf16
								 * weights, element-wise) */
	bool		avx2;			/* AVX2 + FMA element-wise kernels usable */
	bool		bf16_matmul;	/* bf16 GEMMs (option set and CPU able) */
	bool		amx;			/* ... on AMX tiles (CPU and kernel able) */
	bool		amx_fp32;		/* fp32 precision: many-row products on
								 * bf16 weights as tile products of x split
								 * into bf16 terms (gemm_amx.h) */
	int			amx_terms;		/* terms of x in this backend's A layout:
								 * 1 (amx), the split's (amx_fp32), or 0 */
	char		kernels[200];	/* names of the kernels that run */
	uint16_t   *xb16;			/* activations rounded to bf16 */
	size_t		xb16_n;
	uint16_t   *hb16;			/* a second A layout: the fused MLP's
								 * GeGLU output while xb16 holds its input */
	size_t		hb16_n;
	bool		xb16_ready;		/* xb16 holds the next AMX product's x in
								 * the A layout already (set by the fused
								 * ops, backend_cpu_fused.c, for one call) */
	float	   *xpad;			/* fp32 GEMM input copied with a padded row
								 * stride (cp_gemm_f32_ldx) */
	size_t		xpad_n;
	uint32_t   *attn_kv;		/* AMX attention: keys and values packed */
	size_t		attn_kv_n;
	uint32_t  **bf16_pack;		/* per-thread packed weight panel */
	float	   *scratch;		/* shared scratch (rope tables) */
	size_t		scratch_n;
	/* the rope table in scratch is for these (cpu_rope; tab NULL: none) */
	const float *rope_tab;
	int			rope_T,
				rope_hd,
				rope_pos0;
	float		rope_theta;
	float	  **tscratch;		/* per-thread scratch: weight tiles, scores */
	size_t	   *tscratch_n;
} CpCpuImpl;

/* The Qwen2-VL family's ops (backend_cpu_qwen.c), for both CPU backends. */
extern void cp_backend_cpu_install_qwen_ops(CpBackend *be);

/* Element pointer of a view (activations are always fp32 in memory). */
static inline float *
cpu_ptr(CpView v)
{
	return v.buf->data + v.off;
}

/*
 * cpu_attn_query_rows
 *		Where attention's query rows [r0, ...) of sequence bb, head h start
 *		in q and in out, and their row stride.  With multi-query attention
 *		(one kv head) the nh heads of a position are consecutive rows of one
 *		stream; otherwise each head is a column slice of [T, nh * hd].
 */
static inline void
cpu_attn_query_rows(CpView q, CpView out, int bb, int T, int nh, int hd,
					int h, int r0, bool mqa, const float **qb, float **ob,
					int *ldq)
{
	size_t		off;

	if (mqa)
	{
		off = ((size_t) bb * T * nh + r0) * hd;
		*ldq = hd;
	}
	else
	{
		off = ((size_t) bb * T + r0) * nh * hd + (size_t) h * hd;
		*ldq = nh * hd;
	}
	*qb = cpu_ptr(q) + off;
	*ob = cpu_ptr(out) + off;
}

/* Element idx of a (possibly lazy) weight buffer as fp32. */
static inline float
cpu_w(const CpBuf *b, size_t idx)
{
	if (!b->lazy)
		return b->data[idx];
	if (b->dtype == CP_DTYPE_BF16)
		return cp_bf16_to_f32(((const uint16_t *) b->raw)[idx]);
	return cp_f16_to_f32(((const uint16_t *) b->raw)[idx]);
}

/*
 * Make *buf (64-byte aligned, *have elements of elem bytes) hold at least n
 * elements; the old contents are not kept.
 */
extern CpStatus cpu_grow_aligned(CpBackend *be, void **buf, size_t *have,
								 size_t n, size_t elem);
extern CpStatus cpu_scratch(CpBackend *be, size_t n, float **out);
extern CpStatus cpu_thread_scratch(CpBackend *be, size_t n);

/*
 * cpu_thread_share
 *		The calling OpenMP thread's share [*lo, *hi) of n elements.
 */
static inline void
cpu_thread_share(size_t n, size_t *lo, size_t *hi)
{
	size_t		t = (size_t) omp_get_thread_num(),
				nt = (size_t) omp_get_num_threads();

	*lo = n * t / nt;
	*hi = n * (t + 1) / nt;
}

/*
 * Elements below which an element-wise op runs on the calling thread
 * alone: for a query's few rows, waking the other threads and waiting for
 * them at the barrier costs more than the loop (and on a loaded machine a
 * parallel region ends only when every thread has been scheduled).
 */
#define CPU_PARALLEL_MIN_WORK ((size_t) 1 << 16)

/* Threads for an element-wise op over work elements. */
static inline int
cpu_threads_for(const CpCpuImpl *impl, size_t work)
{
	return work < CPU_PARALLEL_MIN_WORK ? 1 : impl->threads;
}

/*
 * Columns per work item when a weight GEMM's columns are handed out to
 * whichever thread is free (schedule(dynamic)), or 0 for equal shares
 * fixed in advance.  On a machine shared with other work one thread may
 * get half a core: equal shares would make the other wait at the end of
 * every GEMM.  Blocks of 256 columns (an AMX column group) where there are
 * at least 8 of them; narrower GEMMs keep equal shares.
 */
#define CPU_GEMM_DYNAMIC_COLS 256

static inline int
cpu_gemm_dynamic_cols(const CpCpuImpl *impl, int N)
{
	return (impl->threads > 1 && N >= 8 * CPU_GEMM_DYNAMIC_COLS) ? CPU_GEMM_DYNAMIC_COLS : 0;
}

/* Rows of x up to which bf16 weights go through the AVX-512 kernel. */
#define SMALL_M 64
/* k-chunk of that kernel: keeps a [M, KC] slice of x in L2. */
#define SMALL_M_KC 1024

/*
 * cpu_amx_gemm
 *		Does the product of M rows by weight w run on AMX tiles here?  In
 *		bf16 precision on AMX: every weight packed at load.  In fp32
 *		precision with AMX: bf16 weights (as mapped) for more than SMALL_M
 *		rows (a page; the few rows of a query are bound by reading the
 *		weights, which the few-row kernel does straight from the mapping),
 *		packed on first use (cpu_amx_pack_weight).
 */
static inline bool
cpu_amx_gemm(const CpCpuImpl *impl, const CpBuf *w, int M)
{
	if (impl->amx)
		return w->amx_packed != NULL;
	return impl->amx_fp32 && w->lazy && w->dtype == CP_DTYPE_BF16 &&
		M > SMALL_M && w->rows <= INT32_MAX && w->cols <= INT32_MAX;
}

/*
 * Pack w's bf16 weights for the tile products (gemm_amx.h), unless done
 * (backend_cpu.c).
 */
extern CpStatus cpu_amx_pack_weight(CpBackend *be, CpBuf *w);

/* The fast matmul (backend_cpu_matmul.c). */
extern CpStatus cpu_matmul(CpBackend *be, CpView y, CpView x, CpBuf *w,
						   CpBuf *bias, int M, int N, int K, bool accumulate);

/* The fused ops of backend.h (backend_cpu_fused.c). */
extern CpStatus cpu_matmul_shared(CpBackend *be, int n, const CpView *y,
								  CpView x, CpBuf *const *w,
								  CpBuf *const *bias, int M, const int *N,
								  int K);
extern CpStatus cpu_act_matmul(CpBackend *be, CpView y, CpView x, CpView up,
							   int act, CpBuf *w, CpBuf *bias, int M, int N,
							   int K, bool accumulate);
extern CpStatus cpu_geglu_mlp(CpBackend *be, CpView y, CpView x, CpView gate,
							  CpView up, CpBuf *w_gate, CpBuf *w_up,
							  CpBuf *w_down, int M, int Ni, int K);

/*
 * Row-wise softmax of s[rows, n] (row stride ld) in place, fp32; with
 * causal, row r covers only the first t + 1 columns, t = (row0 + r) /
 * per_token its token, and the rest of the row becomes 0 (backend_cpu.c).
 */
extern void cpu_softmax_rows(const CpCpuImpl *impl, float *s, int rows, int n,
							 int ld, bool causal, int row0, int per_token);

/* Attention in bf16 precision on AMX tiles (backend_cpu_attn_amx.c). */
extern CpStatus cpu_attention_amx(CpBackend *be, CpView out, CpView q, CpView k,
								  CpView v, int B, int T, int nh, int nkv, int hd,
								  float scale, const int *lens, bool causal);

/*
 * A CPU backend with buffer management installed and no math ops yet
 * (cp_backend_cpu_create and cp_backend_cpu_ref_create install theirs);
 * bf16_allowed: may use the bf16 GEMMs if the options ask for them.
 */
extern CpStatus cpu_backend_new(const CpBackendOptions *opts, bool bf16_allowed,
								CpBackend **out, CpError *err);

#endif							/* CP_BACKEND_CPU_H */
