/*
 * backend_cpu_attn_amx.c
 *	  The CPU backend's attention in bf16 precision on AMX tiles: S = Q K^T
 *	  and O = P V as bf16 tile products with fp32 accumulation (gemm_amx.h),
 *	  the scaling, masks and softmax in fp32 between them.
 *
 * The same work items as the fp32 path (backend_cpu.c): up to ATT_ROWS
 * query rows of one (sequence, head stream).  First the keys and values of
 * every (sequence, kv head) are rounded to bf16 into the B layout once
 * (keys as a [L, hd] matrix, values transposed as [hd, L]), shared by all
 * the query heads and row chunks that read them; then each item rounds its
 * query rows into the A layout, multiplies them by the keys into fp32
 * scores, runs the softmax on those (with the causal and padding masks as
 * the fp32 path), rounds the probabilities into the A layout and multiplies
 * them by the values.  The products are exact in fp32 and summed in fp32,
 * so the only roundings beyond fp32's are those of q, k, v and p to bf16,
 * as in PyTorch's bf16 attention.
 */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "backend_cpu.h"

#define IMPL(be) ((CpCpuImpl *) (be)->impl)

/* Query rows per work item (a multiple of CP_AMX_BLOCK). */
#define ATT_ROWS 256

/*
 * pack_keys
 *		Keys n in [n0, n0 + 32) (fp32 rows of ld floats, hd of them used,
 *		L valid) into the B layout of a [Lc, hdp] matrix: each key row is
 *		rounded 32 elements (16 pairs) at a time and its 16 words scattered
 *		down one column of a B tile.
 */
__attribute__((target("avx512f,avx512bf16")))
static void
pack_keys(const float *k, size_t ld, int L, int hd, int hdp, int n0,
		  uint32_t *dst)
{
	const __m512i rows16 = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112,
											 128, 144, 160, 176, 192, 208, 224, 240);
	int			n,
				s;

	for (n = n0; n < n0 + CP_AMX_BLOCK; n++)
		for (s = 0; s < hdp / CP_AMX_K_STEP; s++)
		{
			int			c = s * CP_AMX_K_STEP;
			uint32_t   *t = dst + cp_amx_b_index(n, s * 16, hdp);
			__m512		lo = _mm512_setzero_ps(),
						hi = _mm512_setzero_ps();

			if (n < L)
			{
				int			na = hd - c,
							nb = hd - c - 16;
				__mmask16	ma = na >= 16 ? 0xFFFF : na <= 0 ? 0 : (__mmask16) ((1u << na) - 1);
				__mmask16	mb = nb >= 16 ? 0xFFFF : nb <= 0 ? 0 : (__mmask16) ((1u << nb) - 1);
				const float *row = k + (size_t) n * ld + c;

				lo = _mm512_maskz_loadu_ps(ma, row);
				hi = _mm512_maskz_loadu_ps(mb, row + 16);
			}
			_mm512_i32scatter_epi32(t, rows16, (__m512i) _mm512_cvtne2ps_pbh(hi, lo), 4);
		}
}

/*
 * pack_values
 *		Values of keys [n0, n0 + 32) (fp32 rows of ld floats, hd used, L
 *		valid) into the B layout of the [hdc, Lc] matrix V^T: a pair is the
 *		same column of two consecutive keys, so two rows are rounded
 *		together and interleaved; 16 pairs of one column-tile fill one B
 *		tile row.
 */
__attribute__((target("avx512f,avx512bf16,avx512bw")))
static void
pack_values(const float *v, size_t ld, int L, int hd, int hdc, int Lc, int n0,
			uint32_t *dst)
{
	/* 16-bit element j of the result: a[j / 2] for even j, b[j / 2] for odd */
	const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10,
										   25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4,
										   19, 3, 18, 2, 17, 1, 16, 0);
	int			p,
				c;

	for (p = n0 / 2; p < (n0 + CP_AMX_BLOCK) / 2; p++)
		for (c = 0; c < hdc; c += 16)
		{
			int			nc = hd - c;
			__mmask16	m = nc >= 16 ? 0xFFFF : nc <= 0 ? 0 : (__mmask16) ((1u << nc) - 1);
			__m512		a = _mm512_setzero_ps(),
						b = _mm512_setzero_ps();

			if (2 * p < L)
				a = _mm512_maskz_loadu_ps(m, v + (size_t) (2 * p) * ld + c);
			if (2 * p + 1 < L)
				b = _mm512_maskz_loadu_ps(m, v + (size_t) (2 * p + 1) * ld + c);
			_mm512_store_si512((__m512i *) (dst + cp_amx_b_index(c, p, Lc)),
							   _mm512_permutexvar_epi16(inter, (__m512i) _mm512_cvtne2ps_pbh(b, a)));
		}
}

/* s[0..n) *= f */
__attribute__((target("avx512f")))
static void
scale_row(float *s, int n, float f)
{
	__m512		vf = _mm512_set1_ps(f);
	int			j;

	for (j = 0; j + 16 <= n; j += 16)
		_mm512_storeu_ps(s + j, _mm512_mul_ps(_mm512_loadu_ps(s + j), vf));
	for (; j < n; j++)
		s[j] *= f;
}

/*
 * cpu_attention_amx
 *		See backend.h (attention) and the file header.  Called by
 *		cpu_attention in bf16 precision on AMX.
 */
CpStatus
cpu_attention_amx(CpBackend *be, CpView out, CpView q, CpView k, CpView v,
				  int B, int T, int nh, int nkv, int hd, float scale,
				  const int *lens, bool causal)
{
	CpCpuImpl  *impl = IMPL(be);
	bool		mqa = (nkv == 1);
	int			heads = mqa ? 1 : nh;
	int			rows_per_head = mqa ? T * nh : T;
	int			chunks = (rows_per_head + ATT_ROWS - 1) / ATT_ROWS;
	int			items = B * heads * chunks;
	int			group = nh / nkv;
	int			hdp = cp_amx_padded_k(hd);	/* Q K^T reduction */
	int			hdc = (hd + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK * CP_AMX_BLOCK;	/* P V columns */
	int			Tc = (T + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK * CP_AMX_BLOCK;
	size_t		kwords = cp_amx_packed_words(Tc, hdp),
				vwords = cp_amx_packed_words(hdc, Tc);
	size_t		per_kv = kwords + vwords;
	size_t		qa_elems = (size_t) ATT_ROWS * hdp,
				pa_elems = (size_t) ATT_ROWS * Tc;
	int			kblocks = Tc / CP_AMX_BLOCK;
	int			it,
				b;
	CpStatus	st;

	/* per thread: scores, then q and p in the A layout, an output block */
	st = cpu_thread_scratch(be, (size_t) ATT_ROWS * Tc + (qa_elems + pa_elems) / 2 +
							(size_t) CP_AMX_BLOCK * hdc);
	if (st == CP_OK)
		st = cpu_grow_aligned(be, (void **) &impl->attn_kv, &impl->attn_kv_n,
							  (size_t) B * nkv * per_kv, sizeof(uint32_t));
	if (st != CP_OK)
		return st;

	for (b = 0; b < B; b++)
	{
		int			L = lens ? lens[b] : T;

		if (L < T)
			memset(cpu_ptr(out) + ((size_t) b * T + L) * nh * hd, 0,
				   sizeof(float) * (size_t) (T - L) * nh * hd);
	}

	/* a query: one work item and one block of keys, no second thread */
#pragma omp parallel num_threads(items < 2 && B * nkv * kblocks < 2 ? 1 : impl->threads)
	{
		int			tid = omp_get_thread_num();
		float	   *s = impl->tscratch[tid];
		uint16_t   *qa = (uint16_t *) (s + (size_t) ATT_ROWS * Tc);
		uint16_t   *pa = qa + qa_elems;
		float	   *ob = (float *) (pa + pa_elems);
		int			j;

		/* keys and values of every (sequence, kv head), 32 keys at a time */
#pragma omp for schedule(static)
		for (j = 0; j < B * nkv * kblocks; j++)
		{
			int			bb = j / (nkv * kblocks),
						kvh = (j / kblocks) % nkv,
						n0 = (j % kblocks) * CP_AMX_BLOCK;
			int			L = lens ? lens[bb] : T;
			int			Lc = (L + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK * CP_AMX_BLOCK;
			size_t		off = (size_t) bb * T * nkv * hd + (size_t) kvh * hd;
			uint32_t   *kp = impl->attn_kv + (size_t) (bb * nkv + kvh) * per_kv;

			/* the values' layout has this sequence's Lc as its k extent */
			if (n0 >= Lc)
				continue;
			pack_keys(cpu_ptr(k) + off, (size_t) nkv * hd, L, hd, hdp, n0, kp);
			pack_values(cpu_ptr(v) + off, (size_t) nkv * hd, L, hd, hdc, Lc, n0,
						kp + kwords);
		}

#pragma omp for schedule(dynamic, 1)
		for (it = 0; it < items; it++)
		{
			int			bb = it / (heads * chunks);
			int			h = (it / chunks) % heads;
			int			c = it % chunks;
			int			L = lens ? lens[bb] : T;
			int			Lc = (L + CP_AMX_BLOCK - 1) / CP_AMX_BLOCK * CP_AMX_BLOCK;
			int			nrows = mqa ? L * nh : L;
			int			r0 = c * ATT_ROWS;
			int			rn = nrows - r0 < ATT_ROWS ? nrows - r0 : ATT_ROWS;
			int			rp = cp_amx_padded_m(rn > 0 ? rn : 1);
			int			kvh = h / group;
			const uint32_t *kp = impl->attn_kv + (size_t) (bb * nkv + kvh) * per_kv;
			const uint32_t *vp = kp + kwords;
			const float *qb;
			float	   *obase;
			int			ldq,
						mb,
						r;

			if (rn <= 0)
				continue;
			cpu_attn_query_rows(q, out, bb, T, nh, hd, h, r0, mqa, &qb, &obase, &ldq);

			/* S = Q K^T (fp32), scaled, softmax (fp32) */
			cp_amx_pack_rows(qb, ldq, rn, hd, hdp, 0, rp / 16, qa);
			for (mb = 0; mb < rp; mb += CP_AMX_BLOCK)
			{
				const uint16_t *a0 = qa + (size_t) (mb / 16) * hdp * 16;

				cp_amx_tile_product(a0, a0 + (size_t) hdp * 16, kp, hdp / CP_AMX_K_STEP,
									0, Lc / CP_AMX_BLOCK, s + (size_t) mb * Lc, Lc);
			}
			/*
			 * row by row while the row is in L1: scale, softmax, and the
			 * probabilities rounded to bf16 for O = P V (fp32 sums)
			 */
			for (r = 0; r < rp; r++)
			{
				float	   *sr = s + (size_t) r * Lc;

				if (r < rn)
				{
					scale_row(sr, L, scale);
					cpu_softmax_rows(impl, sr, 1, L, Lc, causal, r0 + r, mqa ? nh : 1);
				}
				cp_amx_pack_row(r < rn ? sr : NULL, L, Lc, r, pa);
			}
			for (mb = 0; mb < rp; mb += CP_AMX_BLOCK)
			{
				const uint16_t *a0 = pa + (size_t) (mb / 16) * Lc * 16;
				int			m;

				/* a whole block of rows as wide as the output: in place */
				if (hdc == hd && mb + CP_AMX_BLOCK <= rn)
				{
					cp_amx_tile_product(a0, a0 + (size_t) Lc * 16, vp, Lc / CP_AMX_K_STEP,
										0, hdc / CP_AMX_BLOCK, obase + (size_t) mb * ldq, ldq);
					continue;
				}
				cp_amx_tile_product(a0, a0 + (size_t) Lc * 16, vp, Lc / CP_AMX_K_STEP,
									0, hdc / CP_AMX_BLOCK, ob, hdc);
				for (m = mb; m < mb + CP_AMX_BLOCK && m < rn; m++)
					memcpy(obase + (size_t) m * ldq, ob + (size_t) (m - mb) * hdc,
						   sizeof(float) * hd);
			}
		}
	}
	return CP_OK;
}
