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

struct CpBuf
{
	float	   *data;			/* fp32 elements, or NULL when lazy */
	const void *raw;			/* lazy: bf16/f16 data in the mapping */
	CpDType		dtype;			/* dtype of raw (lazy) */
	size_t		n;				/* number of elements */
	int64_t		rows;			/* weights: shape as [rows, cols] */
	int64_t		cols;
	bool		owned;			/* data was malloc'd here */
	bool		lazy;			/* convert raw on use */
};

typedef struct CpCpuImpl
{
	int			threads;		/* OpenMP threads for element-wise ops */
	bool		lazy_convert;
	bool		avx512;			/* AVX-512 small-M bf16 kernel usable */
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

/* Shared by both backends (buffer management is identical). */
extern void cpu_install_common(CpBackend *be);

/* Naive reference ops (backend_cpu_ref.c). */
extern void cpu_install_reference(CpBackend *be);

#endif							/* CP_BACKEND_CPU_H */
