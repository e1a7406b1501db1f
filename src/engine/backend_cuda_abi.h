/*
 * backend_cuda_abi.h
 *	  extern "C" API of colpali_cuda.so, the CUDA backend of the colpali
 *	  engine (the .cu files in cuda/), shared by the library and the
 *	  engine's loader.  The engine never links against the library: it
 *	  dlopen()s it (backend_loader.c), checks the ABI with
 *	  cp_cuda_abi_check and calls cp_backend_cuda_create.
 *
 * Every function returns a status (or a plain value) and never aborts,
 * exits or prints; C++ exceptions never cross this boundary.
 *
 * Only the process that owns the GPU may load this library (the background
 * worker or the CLI), never the postmaster: CUDA contexts do not survive
 * fork().
 */
#ifndef CP_BACKEND_CUDA_ABI_H
#define CP_BACKEND_CUDA_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/*
 * Bump when the backend vtable, CpBackendOptions or the semantics of an op
 * change.  The loader passes its own value and struct sizes to
 * cp_cuda_abi_check, which compares them with the ones the library was
 * built with.
 */
#define CP_CUDA_ABI_VERSION 6

#define CP_CUDA_ABI_CHECK_SYMBOL "cp_cuda_abi_check"
#define CP_CUDA_MEMORY_STATS_SYMBOL "cp_cuda_memory_stats"

#ifdef __cplusplus
extern "C"
{
#endif

/* True if the caller was built against the same ABI as the library. */
typedef bool (*CpCudaAbiCheckFn) (int abi_version, size_t sizeof_backend,
								  size_t sizeof_options);
extern bool cp_cuda_abi_check(int abi_version, size_t sizeof_backend,
							  size_t sizeof_options);

/*
 * Create a CUDA backend on device 0 (CP_CUDA_BACKEND_SYMBOL of backend.h,
 * type CpBackendCreateFn); the device can be chosen with
 * CUDA_VISIBLE_DEVICES.  Fails with CP_ERR_UNSUPPORTED when no usable GPU
 * (compute capability >= 8.0) is present.
 */
extern CpStatus cp_backend_cuda_create(const CpBackendOptions *opts,
									   CpBackend **out, CpError *err);

/*
 * Device memory held by backends of this library, in bytes: now and the
 * peak since load (cudaMalloc'd buffers, weights, scratch and cuBLAS
 * workspace; not the CUDA context itself).
 */
typedef void (*CpCudaMemoryStatsFn) (size_t *current, size_t *peak);
extern void cp_cuda_memory_stats(size_t *current, size_t *peak);

#ifdef __cplusplus
}
#endif

#endif							/* CP_BACKEND_CUDA_ABI_H */
