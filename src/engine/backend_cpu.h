/*
 * backend_cpu.h
 *	  Private parts of the CPU backend shared by the fast operations
 *	  (backend_cpu.c) and their naive reference twins (backend_cpu_ref.c).
 *	  Both work on the same CpBuf, so the test oracle can run on buffers
 *	  made by the fast backend.
 */
#ifndef CP_BACKEND_CPU_H
#define CP_BACKEND_CPU_H

#include "backend.h"
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
};

typedef struct CpCpuImpl
{
	int			threads;		/* OpenMP threads for element-wise ops */
	bool		lazy_convert;
	bool		avx512;			/* AVX-512 small-M bf16 kernel usable */
	bool		bf16_matmul;	/* bf16 GEMMs (option set and CPU able) */
	uint16_t   *xb16;			/* activations rounded to bf16 */
	size_t		xb16_n;
	uint32_t  **bf16_pack;		/* per-thread packed weight panel */
	float	   *scratch;		/* shared scratch (rope tables) */
	size_t		scratch_n;
	float	  **tscratch;		/* per-thread scratch: weight tiles, scores */
	size_t	   *tscratch_n;
} CpCpuImpl;

/* Element pointer of a view (activations are always fp32 in memory). */
static inline float *
cpu_ptr(CpView v)
{
	return v.buf->data + v.off;
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

extern CpStatus cpu_scratch(CpBackend *be, size_t n, float **out);
extern CpStatus cpu_thread_scratch(CpBackend *be, size_t n);

/*
 * A CPU backend with buffer management installed and no math ops yet
 * (cp_backend_cpu_create and cp_backend_cpu_ref_create install theirs);
 * bf16_allowed: may use the bf16 GEMMs if the options ask for them.
 */
extern CpStatus cpu_backend_new(const CpBackendOptions *opts, bool bf16_allowed,
								CpBackend **out, CpError *err);

#endif							/* CP_BACKEND_CPU_H */
