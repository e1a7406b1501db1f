/*
 * backend_loader.c
 *	  Find, dlopen and ABI-check colpali_cuda.so, then create its backend
 *	  (see backend_loader.h for the search order).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_loader.h"
#include "backend_cuda_abi.h"

/*
 * is_file
 *		True if path names an existing regular file.
 */
static bool
is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * dir_of
 *		Copy the directory part of path into out (size PATH_MAX); false if
 *		path has no directory part or is too long.
 */
static bool
dir_of(const char *path, char *out)
{
	const char *slash = strrchr(path, '/');
	size_t		len;

	if (slash == NULL)
		return false;
	len = (size_t) (slash - path);
	if (len == 0 || len >= PATH_MAX)
		return false;
	memcpy(out, path, len);
	out[len] = '\0';
	return true;
}

/*
 * try_open
 *		dlopen path; on failure remember the first loader message of a file
 *		that exists (e.g. a missing libcublas) in why.
 */
static void *
try_open(const char *path, bool must_exist, char *why, size_t whylen)
{
	void	   *h;

	if (must_exist && !is_file(path))
		return NULL;
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL && why[0] == '\0' && must_exist)
	{
		const char *e = dlerror();

		snprintf(why, whylen, "%s", e ? e : path);
	}
	return h;
}

/*
 * open_library
 *		The search of backend_loader.h; returns the handle and the path
 *		used, or NULL with an explanation in err.
 */
static void *
open_library(const char *lib_dir, char *used, CpError *err)
{
	char		why[CP_ERROR_MSG_LEN] = "";
	char		dir[PATH_MAX];
	char		exe[PATH_MAX];
	const char *env;
	Dl_info		info;
	void	   *h;
	ssize_t		n;

	env = getenv("COLPALI_CUDA_LIB");
	if (env != NULL && env[0] != '\0')
	{
		snprintf(used, PATH_MAX, "%s", env);
		h = try_open(env, false, why, sizeof(why));
		if (h == NULL)
		{
			const char *e = dlerror();

			cp_error(err, CP_ERR_UNSUPPORTED,
					 "CUDA backend library \"%s\" (from COLPALI_CUDA_LIB) cannot be loaded: %s",
					 env, why[0] ? why : (e ? e : "not found"));
		}
		return h;
	}

	if (lib_dir != NULL && lib_dir[0] != '\0' &&
		snprintf(used, PATH_MAX, "%s/%s", lib_dir, CP_CUDA_LIBRARY_NAME) < PATH_MAX &&
		(h = try_open(used, true, why, sizeof(why))) != NULL)
		return h;

	if (dladdr((void *) cp_backend_load_cuda, &info) != 0 && info.dli_fname != NULL &&
		dir_of(info.dli_fname, dir) &&
		snprintf(used, PATH_MAX, "%s/%s", dir, CP_CUDA_LIBRARY_NAME) < PATH_MAX &&
		(h = try_open(used, true, why, sizeof(why))) != NULL)
		return h;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0)
	{
		exe[n] = '\0';
		if (dir_of(exe, dir) &&
			snprintf(used, PATH_MAX, "%s/%s", dir, CP_CUDA_LIBRARY_NAME) < PATH_MAX &&
			(h = try_open(used, true, why, sizeof(why))) != NULL)
			return h;
	}

	snprintf(used, PATH_MAX, "%s", CP_CUDA_LIBRARY_NAME);
	h = try_open(CP_CUDA_LIBRARY_NAME, false, why, sizeof(why));
	if (h != NULL)
		return h;
	if (why[0] != '\0')
		cp_error(err, CP_ERR_UNSUPPORTED, "CUDA backend library cannot be loaded: %s", why);
	else
		cp_error(err, CP_ERR_UNSUPPORTED,
				 "CUDA backend not available: %s not found (build with nvcc, or set COLPALI_CUDA_LIB)",
				 CP_CUDA_LIBRARY_NAME);
	return NULL;
}

/*
 * cp_backend_load_cuda
 *		See backend_loader.h.
 */
CpStatus
cp_backend_load_cuda(const char *lib_dir, const CpBackendOptions *opts,
					 void **handle, CpBackend **out, CpError *err)
{
	char		used[PATH_MAX];
	void	   *h;
	CpCudaAbiCheckFn abi_check;
	CpBackendCreateFn create;
	CpStatus	st;

	*handle = NULL;
	*out = NULL;
	h = open_library(lib_dir, used, err);
	if (h == NULL)
		return CP_ERR_UNSUPPORTED;

	*(void **) (&abi_check) = dlsym(h, CP_CUDA_ABI_CHECK_SYMBOL);
	*(void **) (&create) = dlsym(h, CP_CUDA_BACKEND_SYMBOL);
	if (abi_check == NULL || create == NULL)
	{
		dlclose(h);
		return cp_error(err, CP_ERR_UNSUPPORTED,
						"%s is not a colpali CUDA backend (no %s)", used,
						abi_check == NULL ? CP_CUDA_ABI_CHECK_SYMBOL : CP_CUDA_BACKEND_SYMBOL);
	}
	if (!abi_check(CP_CUDA_ABI_VERSION, sizeof(CpBackend), sizeof(CpBackendOptions)))
	{
		dlclose(h);
		return cp_error(err, CP_ERR_UNSUPPORTED,
						"%s was built for another version of the colpali engine (ABI %d expected); rebuild it",
						used, CP_CUDA_ABI_VERSION);
	}
	st = create(opts, out, err);
	if (st != CP_OK)
	{
		*out = NULL;
		dlclose(h);
		return st;
	}
	*handle = h;
	return CP_OK;
}

/*
 * cp_backend_unload
 *		dlclose a handle from cp_backend_load_cuda.
 */
void
cp_backend_unload(void *handle)
{
	if (handle != NULL)
		dlclose(handle);
}
