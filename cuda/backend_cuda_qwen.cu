/*
 * backend_cuda_qwen.cu
 *	  The Qwen2-VL family's entries of the CUDA backend's vtable (backend.h:
 *	  rmsnorm_plain, rotary, swiglu, quick_gelu, gelu_erf): each checks its
 *	  views, then launches the kernel of kernels_qwen.cu on the backend's
 *	  stream.  Activations stay fp32, as in the CPU backend.
 *
 * Compiled, not yet run on a device: the engine keeps device = auto on the
 * CPU for ColQwen2 (src/engine/engine.c) until the GPU parity tests have
 * run; colpali.device = cuda uses them.
 */
#include "backend_cuda_internal.h"

/*
 * cu_rmsnorm_plain
 *		vtable rmsnorm_plain (Qwen2, scale w).
 */
static CpStatus
cu_rmsnorm_plain(CpBackend *be, CpView y, CpView x, CpBuf *w, int rows, int dim,
				 float eps)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(cuda_check_view(be, x, (size_t) rows * dim, "rmsnorm_plain", "x"));
	RETURN_IF_FAILED(cuda_check_view(be, y, (size_t) rows * dim, "rmsnorm_plain", "y"));
	RETURN_IF_FAILED(cuda_check_vector(be, w, (size_t) dim, "rmsnorm_plain", "weight"));
	CU(cuk_rmsnorm_plain(IMPL(be)->stream, fptr(y), fptr(x), (const float *) w->d,
						 rows, dim, eps), "launch of rmsnorm_plain");
	return CP_OK;
	GUARD_END
}

/*
 * cu_rotary
 *		vtable rotary (angle tables per row).
 */
static CpStatus
cu_rotary(CpBackend *be, CpView x, CpView cos_t, CpView sin_t, int rows, int nh,
		  int hd)
{
	GUARD_BEGIN
	if (hd <= 0 || hd % 2 != 0)
		return cuda_fail(be, CP_ERR_INVALID_ARG, "cuda rotary: head dim %d is not even", hd);
	RETURN_IF_FAILED(cuda_check_view(be, x, (size_t) rows * nh * hd, "rotary", "x"));
	RETURN_IF_FAILED(cuda_check_view(be, cos_t, (size_t) rows * (hd / 2), "rotary", "cos"));
	RETURN_IF_FAILED(cuda_check_view(be, sin_t, (size_t) rows * (hd / 2), "rotary", "sin"));
	CU(cuk_rotary(IMPL(be)->stream, fptr(x), fptr(cos_t), fptr(sin_t), rows, nh, hd),
	   "launch of rotary");
	return CP_OK;
	GUARD_END
}

/*
 * cu_swiglu
 *		vtable swiglu.
 */
static CpStatus
cu_swiglu(CpBackend *be, CpView out, CpView gate, CpView up, size_t n)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(cuda_check_view(be, out, n, "swiglu", "out"));
	RETURN_IF_FAILED(cuda_check_view(be, gate, n, "swiglu", "gate"));
	RETURN_IF_FAILED(cuda_check_view(be, up, n, "swiglu", "up"));
	CU(cuk_swiglu(IMPL(be)->stream, fptr(out), fptr(gate), fptr(up), n), "launch of swiglu");
	return CP_OK;
	GUARD_END
}

/*
 * cu_quick_gelu
 *		vtable quick_gelu.
 */
static CpStatus
cu_quick_gelu(CpBackend *be, CpView x, size_t n)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(cuda_check_view(be, x, n, "quick_gelu", "x"));
	CU(cuk_quick_gelu(IMPL(be)->stream, fptr(x), n), "launch of quick_gelu");
	return CP_OK;
	GUARD_END
}

/*
 * cu_gelu_erf
 *		vtable gelu_erf.
 */
static CpStatus
cu_gelu_erf(CpBackend *be, CpView x, size_t n)
{
	GUARD_BEGIN
	RETURN_IF_FAILED(cuda_check_view(be, x, n, "gelu_erf", "x"));
	CU(cuk_gelu_erf(IMPL(be)->stream, fptr(x), n), "launch of gelu_erf");
	return CP_OK;
	GUARD_END
}

/*
 * cuda_install_qwen_ops
 *		See backend_cuda_internal.h.
 */
void
cuda_install_qwen_ops(CpBackend *be)
{
	be->rmsnorm_plain = cu_rmsnorm_plain;
	be->rotary = cu_rotary;
	be->swiglu = cu_swiglu;
	be->quick_gelu = cu_quick_gelu;
	be->gelu_erf = cu_gelu_erf;
}
