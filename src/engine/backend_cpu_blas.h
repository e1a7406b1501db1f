/*
 * backend_cpu_blas.h
 *	  The fp32 GEMM of the CPU backend and of the mvivf index: OpenBLAS,
 *	  loaded at run time with a kernel set chosen by us from cpuid, and the
 *	  names of the GEMM kernels that run (docs/cpu-kernels.md).
 */
#ifndef CP_BACKEND_CPU_BLAS_H
#define CP_BACKEND_CPU_BLAS_H

#include <stdbool.h>

#include <cblas.h>				/* only for the enums of the interface */

/*
 * cp_sgemm
 *		cblas_sgemm of the loaded OpenBLAS (same arguments).  Loads the
 *		library on first use; when it cannot be loaded, a portable loop
 *		computes the same product (slowly), so the caller never fails.
 */
extern void cp_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta,
					 enum CBLAS_TRANSPOSE tb, int M, int N, int K,
					 float alpha, const float *A, int lda, const float *B,
					 int ldb, float beta, float *C, int ldc);

/* OpenBLAS's own thread count (the engine and the index use 1). */
extern int	cp_blas_get_threads(void);
extern void cp_blas_set_threads(int n);

/*
 * cp_blas_kernel_name
 *		"openblas:<core>" (the kernel set OpenBLAS runs, e.g.
 *		"openblas:SkylakeX"), or "portable" when OpenBLAS could not be
 *		loaded.  Loads the library if needed.
 */
extern const char *cp_blas_kernel_name(void);

/*
 * cp_blas_core_for_cpu
 *		The OpenBLAS core type we ask for on this CPU ("SkylakeX",
 *		"Haswell"), or NULL to let OpenBLAS choose (older CPUs).
 */
extern const char *cp_blas_core_for_cpu(void);

#endif							/* CP_BACKEND_CPU_BLAS_H */
