/*
 * backend_cpu_fused.c
 *	  The CPU backend's fused GEMM inputs (backend.h: matmul_shared,
 *	  act_matmul).  On AMX every GEMM input is rounded into the tile layout
 *	  (gemm_amx.h; in fp32 precision, split into its bf16 terms) before the
 *	  tile product; here that
 *	  happens once for the products that share an input (queries, keys and
 *	  values; gate and up), and the GELU / GeGLU output that feeds the next
 *	  GEMM goes into the tile layout row by row through a small per-thread
 *	  buffer, instead of a full fp32 activation written to memory, read
 *	  back and rounded.  The values are those of the plain ops (the same
 *	  element-wise kernels, the same rounding).  Other precisions and
 *	  kernels run the plain ops.
 */
#include <string.h>

#include "backend_cpu.h"
#include "vecmath.h"

#define IMPL(be) ((CpCpuImpl *) (be)->impl)

/*
 * cpu_matmul_shared
 *		The n products one after the other; on AMX a product whose
 *		predecessor also ran on AMX tiles reuses its rounded x.
 */
CpStatus
cpu_matmul_shared(CpBackend *be, int n, const CpView *y, CpView x,
				  CpBuf *const *w, CpBuf *const *bias, int M, const int *N,
				  int K)
{
	CpCpuImpl  *impl = IMPL(be);
	CpStatus	st = CP_OK;
	int			i;

	for (i = 0; i < n && st == CP_OK; i++)
	{
		impl->xb16_ready = (i > 0 && cpu_amx_gemm(impl, w[i], M) &&
							cpu_amx_gemm(impl, w[i - 1], M));
		st = cpu_matmul(be, y[i], x, w[i], bias[i], M, N[i], K, false);
	}
	impl->xb16_ready = false;
	return st;
}

/* dst[0..n) = act(x, up) with the vector form the CPU runs (one thread). */
static void
act_row(const CpCpuImpl *impl, int act, float *dst, const float *x,
		const float *up, int n)
{
	if (act == CP_FUSED_GEGLU)
	{
		if (impl->avx512)
			cp_geglu_avx512(dst, x, up, n);
		else if (impl->avx2)
			cp_geglu_avx2(dst, x, up, n);
		else
			cp_geglu_scalar(dst, x, up, n);
		return;
	}
	memcpy(dst, x, sizeof(float) * n);
	if (impl->avx512)
		cp_gelu_tanh_avx512(dst, n);
	else if (impl->avx2)
		cp_gelu_tanh_avx2(dst, n);
	else
		cp_gelu_tanh_scalar(dst, n);
}

/*
 * cpu_act_matmul
 *		On AMX: the threads compute the activation of a row at a time into
 *		their scratch row and round it into the A layout, then the tile
 *		product runs on it.  Otherwise the plain activation in place
 *		on x and cpu_matmul.
 */
CpStatus
cpu_act_matmul(CpBackend *be, CpView y, CpView x, CpView up, int act,
			   CpBuf *w, CpBuf *bias, int M, int N, int K, bool accumulate)
{
	CpCpuImpl  *impl = IMPL(be);
	int			kp,
				mp,
				terms = impl->amx_terms;
	CpStatus	st;

	if (!cpu_amx_gemm(impl, w, M))
	{
		if (act == CP_FUSED_GEGLU)
			st = be->geglu(be, x, x, up, (size_t) M * K);
		else
			st = be->gelu_tanh(be, x, (size_t) M * K);
		if (st != CP_OK)
			return st;
		return cpu_matmul(be, y, x, w, bias, M, N, K, accumulate);
	}

	kp = cp_amx_padded_k(K);
	mp = cp_amx_padded_m(M);
	st = cpu_grow_aligned(be, (void **) &impl->xb16, &impl->xb16_n,
						  (size_t) mp * kp * terms, sizeof(uint16_t));
	if (st == CP_OK)
		st = cpu_thread_scratch(be, (size_t) K);
	if (st != CP_OK)
		return st;

#pragma omp parallel num_threads(cpu_threads_for(impl, (size_t) M * K))
	{
		float	   *row = impl->tscratch[omp_get_thread_num()];
		int			r;

		/* rows to whichever thread is free, a tile of 16 at a time */
#pragma omp for schedule(dynamic, 16)
		for (r = 0; r < mp; r++)
		{
			if (r < M)
			{
				act_row(impl, act, row, cpu_ptr(x) + (size_t) r * K,
						act == CP_FUSED_GEGLU ? cpu_ptr(up) + (size_t) r * K : NULL, K);
				cp_amx_pack_row_split(row, K, kp, r, terms, impl->xb16);
			}
			else
				cp_amx_pack_row_split(NULL, K, kp, r, terms, impl->xb16);
		}
	}
	impl->xb16_ready = true;
	st = cpu_matmul(be, y, x, w, bias, M, N, K, accumulate);
	impl->xb16_ready = false;
	return st;
}

/*
 * cpu_geglu_mlp
 *		On AMX: x rounded into the A layout once; the gate and up tile
 *		products of each group of 256 columns end in GeGLU and are rounded
 *		into a second A layout (cp_gemm_amx_geglu, groups to whichever
 *		thread is free), which becomes the down product's input: gate and
 *		up never reach memory as fp32.  Otherwise the products one by one.
 */
CpStatus
cpu_geglu_mlp(CpBackend *be, CpView y, CpView x, CpView gate, CpView up,
			  CpBuf *w_gate, CpBuf *w_up, CpBuf *w_down, int M, int Ni, int K)
{
	CpCpuImpl  *impl = IMPL(be);
	int			kp = cp_amx_padded_k(K),
				ip = cp_amx_padded_k(Ni),
				mp = cp_amx_padded_m(M),
				groups = (Ni + CP_AMX_GROUP_N - 1) / CP_AMX_GROUP_N,
				terms = impl->amx_terms;
	CpGegluFn	geglu = impl->avx512 ? cp_geglu_avx512 : impl->avx2 ? cp_geglu_avx2 : cp_geglu_scalar;
	CpStatus	st;

	if (!cpu_amx_gemm(impl, w_gate, M) || !cpu_amx_gemm(impl, w_up, M) ||
		!cpu_amx_gemm(impl, w_down, M))
	{
		CpView		gu[2] = {gate, up};
		CpBuf	   *gu_w[2] = {w_gate, w_up};
		CpBuf	   *no_bias[2] = {NULL, NULL};
		int			gu_n[2] = {Ni, Ni};

		st = cpu_matmul_shared(be, 2, gu, x, gu_w, no_bias, M, gu_n, K);
		if (st != CP_OK)
			return st;
		return cpu_act_matmul(be, y, gate, up, CP_FUSED_GEGLU, w_down, NULL,
							  M, K, Ni, true);
	}

	st = cpu_amx_pack_weight(be, w_gate);
	if (st == CP_OK)
		st = cpu_amx_pack_weight(be, w_up);
	if (st == CP_OK)
		st = cpu_grow_aligned(be, (void **) &impl->xb16, &impl->xb16_n,
							  (size_t) mp * kp * terms, sizeof(uint16_t));
	if (st == CP_OK)
		st = cpu_grow_aligned(be, (void **) &impl->hb16, &impl->hb16_n,
							  (size_t) mp * ip * terms, sizeof(uint16_t));
	if (st == CP_OK)
		st = cpu_thread_scratch(be, (size_t) 2 * mp * CP_AMX_GROUP_N);
	if (st != CP_OK)
		return st;

#pragma omp parallel num_threads(impl->threads)
	{
		int			tid = omp_get_thread_num();
		int			r,
					g;

#pragma omp for schedule(dynamic, 16)
		for (r = 0; r < mp; r++)
			cp_amx_pack_row_split(r < M ? cpu_ptr(x) + (size_t) r * K : NULL, K, kp,
								  r, terms, impl->xb16);
#pragma omp for schedule(dynamic, 1)
		for (g = 0; g < groups; g++)
			cp_gemm_amx_geglu_split(impl->xb16, terms, M, kp, w_gate->amx_packed,
									w_up->amx_packed, g * CP_AMX_GROUP_N,
									Ni - g * CP_AMX_GROUP_N < CP_AMX_GROUP_N ? Ni : (g + 1) * CP_AMX_GROUP_N,
									Ni, geglu, impl->hb16, ip, impl->tscratch[tid]);
	}

	/* the GeGLU output is the down product's x */
	{
		uint16_t   *t = impl->xb16;
		size_t		tn = impl->xb16_n;

		impl->xb16 = impl->hb16;
		impl->xb16_n = impl->hb16_n;
		impl->hb16 = t;
		impl->hb16_n = tn;
	}
	impl->xb16_ready = true;
	st = cpu_matmul(be, y, gate, w_down, NULL, M, K, Ni, true);
	impl->xb16_ready = false;
	return st;
}
