/*
 * backend_cpu_matmul.c
 *	  The CPU backend's matmul (y = x W^T + b): fp32 weights through
 *	  OpenBLAS, each OpenMP thread on its own columns; bf16/f16 weights kept
 *	  as mapped, read straight from the mapping by our AVX-512 kernels
 *	  (few rows: dot products; many rows: widened while packed, gemm_f32.c)
 *	  or, without AVX-512, converted tile by tile for OpenBLAS, or, for many
 *	  rows on AMX, as tile products of x split exactly into bf16 terms
 *	  (gemm_amx.h); with bf16 precision, bf16 GEMMs on AMX tiles
 *	  (gemm_amx.c, weights packed at load) or with AVX512_BF16
 *	  (gemm_bf16.c).
 */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu_blas.h"
#include <immintrin.h>

#include "backend_cpu.h"
#include "gemm_f32.h"

#define IMPL(be) ((CpCpuImpl *) (be)->impl)

/*
 * Size of one converted weight tile per thread for lazy matmul: small
 * (cache-resident) for few rows, large for many rows, where each tile
 * costs one more packing of x inside the GEMM.
 */
#define LAZY_TILE_BYTES_SMALL_M ((size_t) 1 << 20)
#define LAZY_TILE_BYTES_LARGE_M ((size_t) 32 << 20)
#define LAZY_LARGE_M 64

/*
 * convert_rows
 *		Rows [r0, r0 + nr) of a lazy weight [*, K] into dst as fp32
 *		(called by one thread).
 */
static void
convert_rows(const CpBuf *w, int64_t r0, int nr, int K, float *dst)
{
	const uint16_t *src = (const uint16_t *) w->raw + (size_t) r0 * K;
	size_t		n = (size_t) nr * K;
	size_t		i;

	if (w->dtype == CP_DTYPE_BF16)
		cp_bf16_to_f32_n(src, dst, n);
	else
	{
		for (i = 0; i < n; i++)
			dst[i] = cp_f16_to_f32(src[i]);
	}
}

/*
 * split_range
 *		Thread t's share [*lo, *hi) of n items in blocks of align.
 */
static void
split_range(int n, int nthreads, int t, int align, int *lo, int *hi)
{
	int			blocks = (n + align - 1) / align;
	int			per = blocks / nthreads,
				extra = blocks % nthreads;
	int			b0 = t * per + (t < extra ? t : extra);
	int			b1 = b0 + per + (t < extra ? 1 : 0);

	*lo = b0 * align < n ? b0 * align : n;
	*hi = b1 * align < n ? b1 * align : n;
}

/*
 * fp32_gemm_on_bf16_weights
 *		fp32 arithmetic (unlike cp_gemm_bf16_few_rows, which multiplies
 *		bf16 values): y[m, n] (+)= sum_k x[m, k] * W[n, k] for n in [n0, n1), with W in
 *		bf16 as mapped (K a multiple of 16), for few rows of x: the weights
 *		are read once per block of 4 rows of x, widened to fp32 in registers
 *		(no converted copy, no GEMM packing); 4 x 4 fp32 accumulators, fp32
 *		FMAs.  Out-of-range rows and columns of a block reuse the last valid
 *		one and their results are dropped, so the inner loop has no branch.
 */
__attribute__((target("avx512f")))
static void
fp32_gemm_on_bf16_weights(const float *x, int M, int K, const uint16_t *w, int n0,
						  int n1, float *y, int N, bool add)
{
	int			k0;

	for (k0 = 0; k0 < K; k0 += SMALL_M_KC)
	{
		int			k1 = (K - k0 < SMALL_M_KC) ? K : k0 + SMALL_M_KC;
		bool		first = (k0 == 0 && !add);
		int			n;

		for (n = n0; n < n1; n += 4)
		{
			const uint16_t *wr[4];
			int			m,
						j;

			for (j = 0; j < 4; j++)
				wr[j] = w + (size_t) (n + j < n1 ? n + j : n1 - 1) * K;
			for (m = 0; m < M; m += 4)
			{
				const float *xr[4];
				__m512		acc[4][4];
				int			i,
							k;

				for (i = 0; i < 4; i++)
				{
					xr[i] = x + (size_t) (m + i < M ? m + i : M - 1) * K;
					for (j = 0; j < 4; j++)
						acc[i][j] = _mm512_setzero_ps();
				}
				for (k = k0; k < k1; k += 16)
				{
					__m512		xv[4];

#pragma GCC unroll 4
					for (i = 0; i < 4; i++)
						xv[i] = _mm512_loadu_ps(xr[i] + k);
#pragma GCC unroll 4
					for (j = 0; j < 4; j++)
					{
						__m256i		h = _mm256_loadu_si256((const __m256i *) (wr[j] + k));
						__m512		wv = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));

#pragma GCC unroll 4
						for (i = 0; i < 4; i++)
							acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
					}
				}
				for (i = 0; i < 4 && m + i < M; i++)
					for (j = 0; j < 4 && n + j < n1; j++)
					{
						float		sum = _mm512_reduce_add_ps(acc[i][j]);
						float	   *yp = y + (size_t) (m + i) * N + n + j;

						*yp = first ? sum : *yp + sum;
					}
			}
		}
	}
}

/*
 * amx_matmul
 *		y (+)= x . W^T (+ bias) on AMX tiles, W packed (gemm_amx.h); the
 *		kernel applies the bias in cpu_matmul's order (cp_gemm_amx_split_bias:
 *		no pass over y for it).  x is rounded
 *		into the A layout (bf16 precision) or split into its bf16 terms
 *		(fp32 precision: the split A layout, impl->amx_terms), unless a
 *		fused op did it already (xb16_ready), then the threads run the tile
 *		GEMM on blocks of 32 output columns: equal shares, or groups of 256
 *		columns handed out to whichever thread is free
 *		(cpu_gemm_dynamic_cols).
 */
static CpStatus
amx_matmul(CpBackend *be, float *y, const float *x, CpBuf *w,
		   const float *bias, int M, int N, int K, bool add)
{
	CpCpuImpl  *impl = IMPL(be);
	int			kp = cp_amx_padded_k(K);
	int			mp = cp_amx_padded_m(M);
	int			terms = impl->amx_terms;
	int			nthreads = impl->threads;
	bool		ready = impl->xb16_ready;
	int			dyn = cpu_gemm_dynamic_cols(impl, N);
	CpStatus	st = cpu_amx_pack_weight(be, w);

	if (st == CP_OK && !ready)
		st = cpu_grow_aligned(be, (void **) &impl->xb16, &impl->xb16_n,
							  (size_t) mp * kp * terms, sizeof(uint16_t));
	if (st == CP_OK)
		st = cpu_thread_scratch(be, (size_t) mp * CP_AMX_GROUP_N);
	if (st != CP_OK)
		return st;
	if (N < CP_AMX_BLOCK * nthreads)
		nthreads = (N + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK;

#pragma omp parallel num_threads(impl->threads)
	{
		int			tid = omp_get_thread_num();
		int			t0,
					t1,
					c0,
					c1;

		if (!ready)
		{
			split_range(mp / 16, omp_get_num_threads(), tid, 1, &t0, &t1);
			cp_amx_pack_rows_split(x, K, M, K, kp, t0, t1, terms, impl->xb16);
#pragma omp barrier
		}
		if (dyn > 0)
		{
			int			c;

#pragma omp for schedule(dynamic, 1)
			for (c = 0; c < (N + dyn - 1) / dyn; c++)
				cp_gemm_amx_split_bias(impl->xb16, terms, M, kp, w->amx_packed, c * dyn,
									   N - c * dyn < dyn ? N : (c + 1) * dyn, y,
									   N, add, bias, impl->tscratch[tid]);
		}
		else
		{
			split_range(N, nthreads, tid, CP_AMX_BLOCK, &c0, &c1);
			if (tid < nthreads && c1 > c0)
				cp_gemm_amx_split_bias(impl->xb16, terms, M, kp, w->amx_packed, c0, c1,
									   y, N, add, bias, impl->tscratch[tid]);
		}
	}
	return CP_OK;
}

/*
 * amx_few_rows_cols
 *		Columns [lo, hi) of amx_few_rows_matmul (lo a multiple of 32).
 */
static void
amx_few_rows_cols(CpCpuImpl *impl, float *y, const float *x, const uint16_t *wb,
				  int M, int N, int K, int lo, int hi, bool add, float *cbuf)
{
	int			mid = lo + (hi - lo) / CP_AMX_BLOCK * CP_AMX_BLOCK;

	if (mid > lo)
		cp_gemm_amx_split_rows(wb, K, (const uint32_t *) impl->xb16, M,
							   impl->amx_terms, lo, mid, y, N, add, cbuf);
	if (hi > mid)
		fp32_gemm_on_bf16_weights(x, M, K, wb, mid, hi, y, N, add);
}

/*
 * amx_few_rows_matmul
 *		fp32 y (+)= x . W^T for few rows of x (a query) on AMX, W bf16 read
 *		straight from the mapping (K a multiple of 32): x is split into its
 *		bf16 terms in the xt layout (gemm_amx.h) by the calling thread, then
 *		the threads run cp_gemm_amx_split_rows on their columns, whole
 *		blocks of 32; a last partial block runs on the AVX-512 kernel.
 */
static CpStatus
amx_few_rows_matmul(CpBackend *be, float *y, const float *x, const CpBuf *w,
					int M, int N, int K, bool add)
{
	CpCpuImpl  *impl = IMPL(be);
	const uint16_t *wb = (const uint16_t *) w->raw;
	int			terms = impl->amx_terms;
	int			dyn = cpu_gemm_dynamic_cols(impl, N);
	int			nthreads = impl->threads;
	CpStatus	st;

	st = cpu_grow_aligned(be, (void **) &impl->xb16, &impl->xb16_n,
						  cp_amx_xt_words(M, K, terms) * 2, sizeof(uint16_t));
	if (st == CP_OK)
		st = cpu_thread_scratch(be, (size_t) CP_AMX_GROUP_N * CP_AMX_BLOCK);
	if (st != CP_OK)
		return st;
	cp_amx_pack_xt_split(x, M, K, terms, (uint32_t *) impl->xb16);
	if (N < CP_AMX_BLOCK * nthreads)
		nthreads = 1;

#pragma omp parallel num_threads(nthreads)
	{
		float	   *cbuf = impl->tscratch[omp_get_thread_num()];
		int			lo,
					hi,
					c;

		if (dyn > 0)
		{
#pragma omp for schedule(dynamic, 1)
			for (c = 0; c < (N + dyn - 1) / dyn; c++)
			{
				lo = c * dyn;
				hi = N - lo < dyn ? N : lo + dyn;
				amx_few_rows_cols(impl, y, x, wb, M, N, K, lo, hi, add, cbuf);
			}
		}
		else
		{
			split_range(N, nthreads, omp_get_thread_num(), CP_AMX_BLOCK, &lo, &hi);
			if (hi > lo)
				amx_few_rows_cols(impl, y, x, wb, M, N, K, lo, hi, add, cbuf);
		}
	}
	return CP_OK;
}

/*
 * bf16_matmul
 *		y (+)= bf16(x) . W^T with W bf16: x is rounded once into the
 *		backend's bf16 scratch, then each thread runs the bf16 GEMM on its
 *		own panels of output columns (packed panels for many rows of x,
 *		dot products straight from the mapping for few).
 */
static CpStatus
bf16_matmul(CpBackend *be, float *y, const float *x, const CpBuf *w,
			int M, int N, int K, bool add)
{
	CpCpuImpl  *impl = IMPL(be);
	size_t		n = (size_t) M * K;
	int			nthreads = impl->threads;
	bool		few;
	CpStatus	st;

	st = cpu_grow_aligned(be, (void **) &impl->xb16, &impl->xb16_n, n,
					  sizeof(uint16_t));
	if (st != CP_OK)
		return st;
	few = (M <= SMALL_M);
	if (few && N < 32 * nthreads)
		nthreads = 1;
	else if (!few && N < CP_BF16_PANEL_N * nthreads)
		nthreads = (N + CP_BF16_PANEL_N - 1) / CP_BF16_PANEL_N;

#pragma omp parallel num_threads(impl->threads)
	{
		int			tid = omp_get_thread_num();
		size_t		lo,
					hi;
		int			c0,
					c1;

		cpu_thread_share(n, &lo, &hi);
		cp_round_to_bf16(x + lo, impl->xb16 + lo, hi - lo);
#pragma omp barrier
		split_range(N, nthreads, tid, few ? 6 : CP_BF16_PANEL_N, &c0, &c1);
		if (tid < nthreads && c1 > c0 && few)
			cp_gemm_bf16_few_rows(impl->xb16, M, K, (const uint16_t *) w->raw,
								  c0, c1, y, N, add);
		else if (tid < nthreads && c1 > c0)
			cp_gemm_bf16_cols(impl->xb16, M, K, (const uint16_t *) w->raw,
							  c0, c1, y, N, add, impl->bf16_pack[tid]);
	}
	return CP_OK;
}

/*
 * cpu_matmul
 *		y = x . W^T + bias (+ y): the N output columns are split across
 *		the threads, each running a single-threaded cp_sgemm on its
 *		slice; lazy weights are converted tile by tile into the thread's
 *		scratch first.
 */
CpStatus
cpu_matmul(CpBackend *be, CpView y, CpView x, CpBuf *w, CpBuf *bias,
		   int M, int N, int K, bool accumulate)
{
	CpCpuImpl  *impl = IMPL(be);
	float	   *yp = cpu_ptr(y);
	const float *xp = cpu_ptr(x);
	float		beta = accumulate ? 1.0f : 0.0f;
	int			nthreads = impl->threads;
	int			tile = 0;
	int			m;

	if (cpu_amx_gemm(impl, w, M))
	{
		/* the tile kernel starts from the bias or adds it (same order) */
		return amx_matmul(be, yp, xp, w, bias != NULL ? bias->data : NULL,
						  M, N, K, accumulate);
	}
	if (bias != NULL && !accumulate)
	{
		/* preload the bias and let the GEMM add onto it */
#pragma omp parallel for num_threads(cpu_threads_for(impl, (size_t) M * N)) schedule(static)
		for (m = 0; m < M; m++)
			memcpy(yp + (size_t) m * N, bias->data, sizeof(float) * N);
		beta = 1.0f;
	}
	if (N < 32 * nthreads)
		nthreads = 1;
	if (w->lazy && w->dtype == CP_DTYPE_BF16 && impl->bf16_matmul &&
		K % 2 == 0)
	{
		CpStatus	st = bf16_matmul(be, yp, xp, w, M, N, K, beta != 0.0f);

		if (st != CP_OK)
			return st;
		goto bias_after;
	}
	if (impl->amx_fp32 && w->lazy && w->dtype == CP_DTYPE_BF16 && M <= SMALL_M &&
		K % CP_AMX_K_STEP == 0)
	{
		CpStatus	st = amx_few_rows_matmul(be, yp, xp, w, M, N, K, beta != 0.0f);

		if (st != CP_OK)
			return st;
		goto bias_after;
	}
	if (w->lazy && w->dtype == CP_DTYPE_BF16 && M <= SMALL_M && K % 16 == 0 &&
		impl->avx512)
	{
		const uint16_t *wb = (const uint16_t *) w->raw;
		bool		add = (beta != 0.0f);

#pragma omp parallel num_threads(nthreads)
		{
			int			lo,
						hi;

			split_range(N, nthreads, omp_get_thread_num(), 16, &lo, &hi);
			if (hi > lo)
				fp32_gemm_on_bf16_weights(xp, M, K, wb, lo, hi, yp, N, add);
		}
		goto bias_after;
	}
	if (w->lazy && w->dtype == CP_DTYPE_BF16 && K % 2 == 0 && impl->avx512)
	{
		/* many rows: widened while packed for our register kernel */
		const uint16_t *wb = (const uint16_t *) w->raw;
		bool		add = (beta != 0.0f);
		int			dyn = cpu_gemm_dynamic_cols(impl, N);
		size_t		ldx = cp_gemm_f32_ldx(K);
		const float *xs = xp;
		CpStatus	st = cpu_thread_scratch(be, CP_F32W_SCRATCH);

		if (st == CP_OK && ldx != (size_t) K)
		{
			st = cpu_grow_aligned(be, (void **) &impl->xpad, &impl->xpad_n,
								  (size_t) M * ldx, sizeof(float));
			xs = impl->xpad;
		}
		if (st != CP_OK)
			return st;
#pragma omp parallel num_threads(impl->threads)
		{
			float	   *scratch = impl->tscratch[omp_get_thread_num()];
			int			lo,
						hi,
						c;

			if (xs != xp)
			{
#pragma omp for schedule(static)
				for (c = 0; c < M; c++)
					memcpy(impl->xpad + (size_t) c * ldx, xp + (size_t) c * K,
						   sizeof(float) * K);
			}
			if (dyn > 0)
			{
#pragma omp for schedule(dynamic, 1)
				for (c = 0; c < (N + dyn - 1) / dyn; c++)
					cp_gemm_f32_bf16w(xs, ldx, M, K, wb, c * dyn,
									  N - c * dyn < dyn ? N : (c + 1) * dyn,
									  yp, N, add, scratch);
			}
			else
			{
				split_range(N, nthreads, omp_get_thread_num(), CP_F32W_NR, &lo, &hi);
				if (omp_get_thread_num() < nthreads && hi > lo)
					cp_gemm_f32_bf16w(xs, ldx, M, K, wb, lo, hi, yp, N, add, scratch);
			}
		}
		goto bias_after;
	}
	if (w->lazy)
	{
		size_t		bytes = M >= LAZY_LARGE_M ? LAZY_TILE_BYTES_LARGE_M : LAZY_TILE_BYTES_SMALL_M;
		CpStatus	st;

		tile = (int) (bytes / ((size_t) K * sizeof(float)));
		tile = tile < 16 ? 16 : tile;
		tile = tile > (N + nthreads - 1) / nthreads ? (N + nthreads - 1) / nthreads : tile;
		st = cpu_thread_scratch(be, (size_t) tile * K);
		if (st != CP_OK)
			return st;
	}

#pragma omp parallel num_threads(nthreads)
	{
		int			t = omp_get_thread_num();
		int			lo,
					hi;

		split_range(N, nthreads, t, 16, &lo, &hi);
		if (hi > lo && !w->lazy)
			cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, hi - lo, K,
						1.0f, xp, K, w->data + (size_t) lo * K, K, beta,
						yp + lo, N);
		else if (hi > lo)
		{
			float	   *buf = impl->tscratch[t];
			int			n0;

			for (n0 = lo; n0 < hi; n0 += tile)
			{
				int			nt = (hi - n0 < tile) ? hi - n0 : tile;

				convert_rows(w, n0, nt, K, buf);
				cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nt, K,
							1.0f, xp, K, buf, K, beta, yp + n0, N);
			}
		}
	}

bias_after:
	if (bias != NULL && accumulate)
	{
#pragma omp parallel for num_threads(cpu_threads_for(impl, (size_t) M * N)) schedule(static)
		for (m = 0; m < M; m++)
		{
			float	   *yr = yp + (size_t) m * N;
			int			n;

			for (n = 0; n < N; n++)
				yr[n] += bias->data[n];
		}
	}
	return CP_OK;
}
