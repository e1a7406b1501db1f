/*
 * backend_cpu_qwen.c
 *	  The CPU operations only the Qwen2-VL family needs (backend.h, "Qwen2-VL
 *	  family"): plain-weight RMSNorm, rotary from angle tables, SwiGLU,
 *	  QuickGELU, exact GELU.  Straight fp32 loops, shared by the fast and the
 *	  reference CPU backend (they are element-wise or per-row and cost little
 *	  next to the GEMMs); test_ops_qwen.c checks them against the formulas.
 */
#include <math.h>

#include "backend_cpu.h"

#define QIMPL(be) ((CpCpuImpl *) (be)->impl)

/*
 * qwen_rmsnorm_plain
 *		Qwen2RMSNorm in fp32: the row scaled by 1/sqrt(mean(x^2) + eps),
 *		then by the weight.
 */
static CpStatus
qwen_rmsnorm_plain(CpBackend *be, CpView y, CpView x, CpBuf *w, int rows,
				   int dim, float eps)
{
	int			r;

#pragma omp parallel for num_threads(QIMPL(be)->threads) schedule(static)
	for (r = 0; r < rows; r++)
	{
		const float *xr = cpu_ptr(x) + (size_t) r * dim;
		float	   *yr = cpu_ptr(y) + (size_t) r * dim;
		float		ss = 0.0f,
					inv;
		int			i;

		for (i = 0; i < dim; i++)
			ss += xr[i] * xr[i];
		inv = 1.0f / sqrtf(ss / (float) dim + eps);
		for (i = 0; i < dim; i++)
			yr[i] = cpu_w(w, i) * (xr[i] * inv);
	}
	return CP_OK;
}

/*
 * qwen_rotary
 *		x*cos + rotate_half(x)*sin with the row's angle table.
 */
static CpStatus
qwen_rotary(CpBackend *be, CpView x, CpView cos_t, CpView sin_t, int rows,
			int nh, int hd)
{
	int			r;
	int			half = hd / 2;

#pragma omp parallel for num_threads(QIMPL(be)->threads) schedule(static)
	for (r = 0; r < rows; r++)
	{
		const float *c = cpu_ptr(cos_t) + (size_t) r * half;
		const float *s = cpu_ptr(sin_t) + (size_t) r * half;
		int			h;

		for (h = 0; h < nh; h++)
		{
			float	   *v = cpu_ptr(x) + ((size_t) r * nh + h) * hd;
			int			j;

			for (j = 0; j < half; j++)
			{
				float		a = v[j];
				float		b = v[j + half];

				v[j] = a * c[j] - b * s[j];
				v[j + half] = b * c[j] + a * s[j];
			}
		}
	}
	return CP_OK;
}

/*
 * qwen_swiglu
 *		silu(gate) * up.
 */
static CpStatus
qwen_swiglu(CpBackend *be, CpView out, CpView gate, CpView up, size_t n)
{
	long		i;

#pragma omp parallel for num_threads(QIMPL(be)->threads) schedule(static)
	for (i = 0; i < (long) n; i++)
	{
		float		g = cpu_ptr(gate)[i];

		cpu_ptr(out)[i] = g / (1.0f + expf(-g)) * cpu_ptr(up)[i];
	}
	return CP_OK;
}

/*
 * qwen_quick_gelu
 *		x * sigmoid(1.702 x), as transformers' QuickGELUActivation.
 */
static CpStatus
qwen_quick_gelu(CpBackend *be, CpView x, size_t n)
{
	long		i;

#pragma omp parallel for num_threads(QIMPL(be)->threads) schedule(static)
	for (i = 0; i < (long) n; i++)
	{
		float		v = cpu_ptr(x)[i];

		cpu_ptr(x)[i] = v / (1.0f + expf(-1.702f * v));
	}
	return CP_OK;
}

/*
 * qwen_gelu_erf
 *		0.5 x (1 + erf(x / sqrt 2)), nn.GELU()'s exact form.
 */
static CpStatus
qwen_gelu_erf(CpBackend *be, CpView x, size_t n)
{
	long		i;

#pragma omp parallel for num_threads(QIMPL(be)->threads) schedule(static)
	for (i = 0; i < (long) n; i++)
	{
		float		v = cpu_ptr(x)[i];

		cpu_ptr(x)[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
	}
	return CP_OK;
}

/*
 * cp_backend_cpu_install_qwen_ops
 *		Fill the Qwen2-VL family's entries of a CPU backend.
 */
void
cp_backend_cpu_install_qwen_ops(CpBackend *be)
{
	be->rmsnorm_plain = qwen_rmsnorm_plain;
	be->rotary = qwen_rotary;
	be->swiglu = qwen_swiglu;
	be->quick_gelu = qwen_quick_gelu;
	be->gelu_erf = qwen_gelu_erf;
}
