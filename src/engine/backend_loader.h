/*
 * backend_loader.h
 *	  Loading the optional CUDA backend (colpali_cuda.so) at run time.
 *
 * The engine never links against CUDA: the backend lives in its own shared
 * library that only the process owning the GPU (the background worker or
 * the CLI, never the postmaster) loads, on first use.
 */
#ifndef CP_BACKEND_LOADER_H
#define CP_BACKEND_LOADER_H

#include "backend.h"

#define CP_CUDA_LIBRARY_NAME "colpali_cuda.so"

/*
 * dlopen colpali_cuda.so, check its ABI and create a CUDA backend.
 * The library is looked for, first match wins:
 *	1. the path in the environment variable COLPALI_CUDA_LIB;
 *	2. lib_dir/colpali_cuda.so when lib_dir is not NULL;
 *	3. the directory of the object holding the engine (colpali.so in
 *	   $pkglibdir, or the executable that links the engine statically);
 *	4. the directory of the running executable;
 *	5. the dynamic linker's search path.
 * On success *handle is the library handle (pass it to cp_backend_unload
 * after destroying the backend).  Without the library, with a library of
 * another ABI, or without a usable GPU the result is CP_ERR_UNSUPPORTED
 * with a message saying which; device = auto then falls back to the CPU.
 */
extern CpStatus cp_backend_load_cuda(const char *lib_dir,
									 const CpBackendOptions *opts,
									 void **handle, CpBackend **out,
									 CpError *err);

/* dlclose a handle from cp_backend_load_cuda (NULL is a no-op). */
extern void cp_backend_unload(void *handle);

#endif							/* CP_BACKEND_LOADER_H */
