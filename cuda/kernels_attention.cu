/*
 * kernels_attention.cu
 *	  Fused scaled dot-product attention (no T x T matrix in memory) for
 *	  SigLIP (16 heads x 72, no mask) and Gemma (8 query heads sharing one
 *	  KV head of 256, bidirectional, key-padding mask), with the semantics
 *	  of CpBackend.attention (backend.h).
 *
 * Two kernels:
 * Keys at t >= lens[b] are masked; with causal, query t also ignores keys
 * after t (transformers 5 runs ColPali's Gemma causally when the model was
 * built with _from_config; see colpali_engine.h CpAttentionMode).
 *
 *	- attn_flash: flash-attention style, bf16 tensor cores
 *	  (mma.sync.m16n8k16, fp32 accumulation), online softmax in fp32 in
 *	  registers.  A block of 4 warps owns 64 query rows of one (batch, KV
 *	  head) group and walks the keys in tiles of 64 staged in shared memory
 *	  (converted from fp32 to bf16 on the way in).  Query rows of one group
 *	  are all (t, h) with h in the group, numbered i = t * g + (h mod g), so
 *	  for Gemma's multi-query attention the 8 heads of a token share the
 *	  key tiles.  Head dims are padded with zeros to a multiple of 16.
 *	- attn_simple: one warp per query row, fp32 CUDA cores, any head dim.
 *	  Slow; used for head dims over 256 and as the GPU-side oracle.
 *
 * Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with
 * floating point type"), with g = lane / 4 and c = lane % 4:
 *	A (16x16, row-major) 4 x b32: {A[g][2c..], A[g+8][2c..], A[g][2c+8..],
 *	  A[g+8][2c+8..]};
 *	B (16x8, "col")		 2 x b32: {B[2c..][g], B[2c+8..][g]};
 *	C (16x8 fp32)		 4 x f32: C[g][2c], C[g][2c+1], C[g+8][2c], C[g+8][2c+1].
 * The C fragments of two adjacent 8-key tiles of S = Q K^T are exactly the
 * A fragment of P for the 16-key step of P V (no shuffle needed).
 */
#include <math.h>
#include <stdint.h>

#include "cuda_kernels.h"

#define FA_WARPS 4
#define FA_BQ (16 * FA_WARPS)	/* query rows per block */
#define FA_BK 64				/* keys per tile */
#define FA_PAD 8				/* bf16 padding per shared row (bank spread) */

/* Shared memory bytes of attn_flash for a padded head dim. */
#define FA_SMEM(HDP) \
	((size_t) (FA_BQ + FA_BK) * ((HDP) + FA_PAD) * 2 + (size_t) (HDP) * (FA_BK + FA_PAD) * 2)

/*
 * mma_bf16_16816
 *		D += A . B with one mma.sync.m16n8k16 (bf16 in, fp32 accumulate).
 */
__device__ __forceinline__ void
mma_bf16_16816(float *d, const uint32_t *a, const uint32_t *b)
{
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
				 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
				 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
				 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]),
				   "r"(b[0]), "r"(b[1]));
}

/* Two floats as one bf16x2 register, lo in the low half. */
__device__ __forceinline__ uint32_t
pack_bf16x2(float lo, float hi)
{
	__nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);

	return *reinterpret_cast<uint32_t *>(&v);
}

/* Two adjacent bf16 in shared memory as one register. */
__device__ __forceinline__ uint32_t
ld_bf16x2(const __nv_bfloat16 *p)
{
	return *reinterpret_cast<const uint32_t *>(p);
}

/*
 * Element offset of query/output row i (local to group (b, kvh)).
 * Rows of a group: t = i / g, head h = kvh * g + i % g.
 */
__device__ __forceinline__ size_t
q_row_offset(int i, int b, int kvh, int g, int T, int nh, int hd)
{
	int			t = i / g;
	int			h = kvh * g + i % g;

	return (((size_t) b * T + t) * nh + h) * hd;
}

/*
 * stage_tile
 *		Stage nrow rows of hd fp32 (row r at src + off(r)) into shared bf16
 *		dst[r][0..HDP) (row stride ld), zero-padding columns >= hd and rows
 *		the caller marks invalid (off < 0).  transpose stores dst[c][r].
 */
template <int HDP>
__device__ __forceinline__ void
stage_tile(__nv_bfloat16 *dst, int ld, bool transpose, const float *src,
		   const long long *row_off, int nrow, int hd, bool vec4)
{
	int			tid = threadIdx.x;

	if (vec4)
	{
		int			n4 = nrow * (HDP / 4);

		for (int idx = tid; idx < n4; idx += FA_WARPS * 32)
		{
			int			r = idx / (HDP / 4);
			int			c = (idx % (HDP / 4)) * 4;
			float4		v = make_float4(0.f, 0.f, 0.f, 0.f);

			if (row_off[r] >= 0 && c < hd)
				v = *reinterpret_cast<const float4 *>(src + row_off[r] + c);
			if (transpose)
			{
				dst[(c + 0) * ld + r] = __float2bfloat16_rn(v.x);
				dst[(c + 1) * ld + r] = __float2bfloat16_rn(v.y);
				dst[(c + 2) * ld + r] = __float2bfloat16_rn(v.z);
				dst[(c + 3) * ld + r] = __float2bfloat16_rn(v.w);
			}
			else
			{
				*reinterpret_cast<uint32_t *>(dst + r * ld + c) = pack_bf16x2(v.x, v.y);
				*reinterpret_cast<uint32_t *>(dst + r * ld + c + 2) = pack_bf16x2(v.z, v.w);
			}
		}
	}
	else
	{
		int			n = nrow * HDP;

		for (int idx = tid; idx < n; idx += FA_WARPS * 32)
		{
			int			r = idx / HDP;
			int			c = idx % HDP;
			float		v = 0.0f;

			if (row_off[r] >= 0 && c < hd)
				v = src[row_off[r] + c];
			if (transpose)
				dst[c * ld + r] = __float2bfloat16_rn(v);
			else
				dst[r * ld + c] = __float2bfloat16_rn(v);
		}
	}
}

/*
 * attn_flash
 *		Tensor-core flash attention; one block = 64 query rows of one (batch, KV head) group.
 */
template <int HDP>
__global__ void __launch_bounds__(FA_WARPS * 32)
attn_flash(float *out, const float *q, const float *k, const float *v, int T,
		   int nh, int nkv, int hd, float scale_log2, const int *lens,
		   bool causal, bool vec4)
{
	extern __shared__ __align__(16) unsigned char fa_smem[];
	__nv_bfloat16 *Qs = reinterpret_cast<__nv_bfloat16 *>(fa_smem);
	__nv_bfloat16 *Ks = Qs + FA_BQ * (HDP + FA_PAD);
	__nv_bfloat16 *Vt = Ks + FA_BK * (HDP + FA_PAD);	/* [HDP][FA_BK + FA_PAD] */
	__shared__ long long row_off[FA_BQ > FA_BK ? FA_BQ : FA_BK];

	const int	ldq = HDP + FA_PAD;
	const int	ldv = FA_BK + FA_PAD;
	const int	g = nh / nkv;
	const int	b = blockIdx.y / nkv;
	const int	kvh = blockIdx.y % nkv;
	const int	nrows = T * g;
	const int	row0 = blockIdx.x * FA_BQ;
	const int	L = lens ? lens[b] : T;
	const int	warp = threadIdx.x >> 5;
	const int	lane = threadIdx.x & 31;
	const int	gr = lane >> 2;		/* fragment row group */
	const int	gc = lane & 3;		/* thread in group */
	/* causal: tokens of this thread's two rows, and the keys the block needs */
	const int	t_lo = (row0 + warp * 16 + gr) / g;
	const int	t_hi = (row0 + warp * 16 + gr + 8) / g;
	const int	t_last = ((row0 + FA_BQ < nrows ? row0 + FA_BQ : nrows) - 1) / g;
	const int	kend = causal ? (t_last + 1 < L ? t_last + 1 : L) : L;

	float		o[HDP / 8][4];
	float		m_lo = -INFINITY,
				m_hi = -INFINITY;	/* running max, rows gr and gr + 8 */
	float		l_lo = 0.0f,
				l_hi = 0.0f;	/* running partial sums (this thread's columns) */

#pragma unroll
	for (int nd = 0; nd < HDP / 8; nd++)
		o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;

	/* stage the query tile */
	for (int r = threadIdx.x; r < FA_BQ; r += FA_WARPS * 32)
		row_off[r] = (row0 + r < nrows) ?
			(long long) q_row_offset(row0 + r, b, kvh, g, T, nh, hd) : -1;
	__syncthreads();
	stage_tile<HDP>(Qs, ldq, false, q, row_off, FA_BQ, hd, vec4);

	for (int k0 = 0; k0 < kend; k0 += FA_BK)
	{
		float		s[FA_BK / 8][4];
		float		mx_lo = -INFINITY,
					mx_hi = -INFINITY;
		float		ms_lo,
					ms_hi,
					al_lo,
					al_hi;

		__syncthreads();		/* previous tile fully consumed, Q staged */
		for (int r = threadIdx.x; r < FA_BK; r += FA_WARPS * 32)
			row_off[r] = (k0 + r < L) ?
				(long long) (((size_t) b * T + k0 + r) * nkv + kvh) * hd : -1;
		__syncthreads();
		stage_tile<HDP>(Ks, ldq, false, k, row_off, FA_BK, hd, vec4);
		stage_tile<HDP>(Vt, ldv, true, v, row_off, FA_BK, hd, vec4);
		__syncthreads();

		/* S = Q K^T for this warp's 16 rows and the 64 keys */
#pragma unroll
		for (int nt = 0; nt < FA_BK / 8; nt++)
			s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
		for (int kk = 0; kk < HDP; kk += 16)
		{
			const __nv_bfloat16 *qa = Qs + (warp * 16 + gr) * ldq + kk + 2 * gc;
			uint32_t	a[4];

			a[0] = ld_bf16x2(qa);
			a[1] = ld_bf16x2(qa + 8 * ldq);
			a[2] = ld_bf16x2(qa + 8);
			a[3] = ld_bf16x2(qa + 8 * ldq + 8);
#pragma unroll
			for (int nt = 0; nt < FA_BK / 8; nt++)
			{
				const __nv_bfloat16 *kb = Ks + (nt * 8 + gr) * ldq + kk + 2 * gc;
				uint32_t	bb[2];

				bb[0] = ld_bf16x2(kb);
				bb[1] = ld_bf16x2(kb + 8);
				mma_bf16_16816(s[nt], a, bb);
			}
		}

		/* scale (log2 domain), mask keys >= L, row maxima */
#pragma unroll
		for (int nt = 0; nt < FA_BK / 8; nt++)
		{
			int			key = k0 + nt * 8 + 2 * gc;

#pragma unroll
			for (int e = 0; e < 4; e++)
			{
				int			kj = key + (e & 1);
				bool		ok = kj < L && (!causal || kj <= (e < 2 ? t_lo : t_hi));

				s[nt][e] = ok ? s[nt][e] * scale_log2 : -INFINITY;
			}
			mx_lo = fmaxf(mx_lo, fmaxf(s[nt][0], s[nt][1]));
			mx_hi = fmaxf(mx_hi, fmaxf(s[nt][2], s[nt][3]));
		}
		mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, 1));
		mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, 2));
		mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, 1));
		mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, 2));
		mx_lo = fmaxf(m_lo, mx_lo);
		mx_hi = fmaxf(m_hi, mx_hi);
		/* a row with no valid key yet keeps weight 0 instead of NaN */
		ms_lo = (mx_lo == -INFINITY) ? 0.0f : mx_lo;
		ms_hi = (mx_hi == -INFINITY) ? 0.0f : mx_hi;
		al_lo = exp2f(m_lo - ms_lo);
		al_hi = exp2f(m_hi - ms_hi);
		m_lo = mx_lo;
		m_hi = mx_hi;
		l_lo *= al_lo;
		l_hi *= al_hi;
#pragma unroll
		for (int nt = 0; nt < FA_BK / 8; nt++)
		{
			s[nt][0] = exp2f(s[nt][0] - ms_lo);
			s[nt][1] = exp2f(s[nt][1] - ms_lo);
			s[nt][2] = exp2f(s[nt][2] - ms_hi);
			s[nt][3] = exp2f(s[nt][3] - ms_hi);
			l_lo += s[nt][0] + s[nt][1];
			l_hi += s[nt][2] + s[nt][3];
		}
#pragma unroll
		for (int nd = 0; nd < HDP / 8; nd++)
		{
			o[nd][0] *= al_lo;
			o[nd][1] *= al_lo;
			o[nd][2] *= al_hi;
			o[nd][3] *= al_hi;
		}

		/* O += P V, P taken from the S fragments */
#pragma unroll
		for (int j = 0; j < FA_BK / 16; j++)
		{
			uint32_t	a[4];

			a[0] = pack_bf16x2(s[2 * j][0], s[2 * j][1]);
			a[1] = pack_bf16x2(s[2 * j][2], s[2 * j][3]);
			a[2] = pack_bf16x2(s[2 * j + 1][0], s[2 * j + 1][1]);
			a[3] = pack_bf16x2(s[2 * j + 1][2], s[2 * j + 1][3]);
#pragma unroll
			for (int nd = 0; nd < HDP / 8; nd++)
			{
				const __nv_bfloat16 *vb = Vt + (nd * 8 + gr) * ldv + j * 16 + 2 * gc;
				uint32_t	bb[2];

				bb[0] = ld_bf16x2(vb);
				bb[1] = ld_bf16x2(vb + 8);
				mma_bf16_16816(o[nd], a, bb);
			}
		}
	}

	/* normalise and write rows gr and gr + 8 of this warp */
	l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 1);
	l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 2);
	l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 1);
	l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 2);
#pragma unroll
	for (int half = 0; half < 2; half++)
	{
		int			i = row0 + warp * 16 + gr + 8 * half;
		float		inv = 1.0f / (half ? l_hi : l_lo);
		float	   *dst;
		bool		zero;

		if (i >= nrows)
			continue;
		dst = out + q_row_offset(i, b, kvh, g, T, nh, hd);
		zero = (i / g) >= L;
#pragma unroll
		for (int nd = 0; nd < HDP / 8; nd++)
		{
			int			c = nd * 8 + 2 * gc;

			if (c < hd)
				dst[c] = zero ? 0.0f : o[nd][2 * half] * inv;
			if (c + 1 < hd)
				dst[c + 1] = zero ? 0.0f : o[nd][2 * half + 1] * inv;
		}
	}
}

/* Most head-dim elements a lane of attn_simple holds (hd <= 32 * this). */
#define SIMPLE_MAX_PER_LANE 16

/*
 * attn_simple
 *		One warp per query row (b, t, h), online softmax over the keys,
 *		everything fp32.
 */
__global__ void
attn_simple(float *out, const float *q, const float *k, const float *v, int B,
			int T, int nh, int nkv, int hd, float scale, const int *lens,
			bool causal)
{
	size_t		row = (size_t) blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;
	int			h,
				t,
				b,
				kvh,
				L;
	float		qv[SIMPLE_MAX_PER_LANE],
				acc[SIMPLE_MAX_PER_LANE];
	float		m = -INFINITY,
				l = 0.0f;
	float	   *dst;

	if (row >= (size_t) B * T * nh)
		return;
	h = (int) (row % nh);
	t = (int) ((row / nh) % T);
	b = (int) (row / ((size_t) nh * T));
	kvh = h / (nh / nkv);
	L = lens ? lens[b] : T;
	dst = out + row * hd;
	if (t >= L)
	{
		for (int d = lane; d < hd; d += 32)
			dst[d] = 0.0f;
		return;
	}
#pragma unroll
	for (int j = 0; j < SIMPLE_MAX_PER_LANE; j++)
	{
		int			d = lane + 32 * j;

		qv[j] = (d < hd) ? q[row * hd + d] : 0.0f;
		acc[j] = 0.0f;
	}
	if (causal && t + 1 < L)
		L = t + 1;				/* keys after t are masked (output rows use the real length above) */
	for (int key = 0; key < L; key++)
	{
		const float *kr = k + (((size_t) b * T + key) * nkv + kvh) * hd;
		const float *vr = v + (((size_t) b * T + key) * nkv + kvh) * hd;
		float		sdot = 0.0f,
					mn,
					corr,
					p;

#pragma unroll
		for (int j = 0; j < SIMPLE_MAX_PER_LANE; j++)
		{
			int			d = lane + 32 * j;

			if (d < hd)
				sdot += qv[j] * kr[d];
		}
		for (int o = 16; o > 0; o >>= 1)
			sdot += __shfl_xor_sync(0xffffffffu, sdot, o);
		sdot *= scale;
		mn = fmaxf(m, sdot);
		corr = expf(m - mn);
		p = expf(sdot - mn);
		l = l * corr + p;
#pragma unroll
		for (int j = 0; j < SIMPLE_MAX_PER_LANE; j++)
		{
			int			d = lane + 32 * j;

			if (d < hd)
				acc[j] = acc[j] * corr + p * vr[d];
		}
		m = mn;
	}
#pragma unroll
	for (int j = 0; j < SIMPLE_MAX_PER_LANE; j++)
	{
		int			d = lane + 32 * j;

		if (d < hd)
			dst[d] = acc[j] / l;
	}
}

/*
 * launch_flash
 *		attn_flash<HDP> over all groups; raises the dynamic shared memory
 *		limit when the tile needs more than the 48 KB default.
 */
template <int HDP>
static cudaError_t
launch_flash(cudaStream_t s, float *out, const float *q, const float *k,
			 const float *v, int B, int T, int nh, int nkv, int hd,
			 float scale, const int *lens, bool causal)
{
	size_t		smem = FA_SMEM(HDP);
	int			nrows = T * (nh / nkv);
	dim3		grid((nrows + FA_BQ - 1) / FA_BQ, B * nkv);
	bool		vec4 = (hd % 4 == 0) &&
		((uintptr_t) q % 16 == 0) && ((uintptr_t) k % 16 == 0) &&
		((uintptr_t) v % 16 == 0);
	cudaError_t rc;

	if (smem > 48 * 1024)
	{
		rc = cudaFuncSetAttribute(attn_flash<HDP>,
								  cudaFuncAttributeMaxDynamicSharedMemorySize,
								  (int) smem);
		if (rc != cudaSuccess)
			return rc;
	}
	attn_flash<HDP><<<grid, FA_WARPS * 32, smem, s>>>(out, q, k, v, T, nh, nkv, hd,
													  scale * 1.4426950408889634f,
													  lens, causal, vec4);
	return cudaGetLastError();
}

/*
 * cuk_attention
 *		Launcher: flash kernel for head dims <= 256 unless simple, else attn_simple.
 */
cudaError_t
cuk_attention(cudaStream_t s, float *out, const float *q, const float *k,
			  const float *v, int B, int T, int nh, int nkv, int hd,
			  float scale, const int *lens, bool causal, bool simple)
{
	if (B <= 0 || T <= 0)
		return cudaSuccess;
	if (!simple && hd <= 256)
	{
		if (hd <= 16)
			return launch_flash<16>(s, out, q, k, v, B, T, nh, nkv, hd, scale, lens, causal);
		if (hd <= 32)
			return launch_flash<32>(s, out, q, k, v, B, T, nh, nkv, hd, scale, lens, causal);
		if (hd <= 64)
			return launch_flash<64>(s, out, q, k, v, B, T, nh, nkv, hd, scale, lens, causal);
		if (hd <= 80)
			return launch_flash<80>(s, out, q, k, v, B, T, nh, nkv, hd, scale, lens, causal);
		if (hd <= 128)
			return launch_flash<128>(s, out, q, k, v, B, T, nh, nkv, hd, scale, lens, causal);
		return launch_flash<256>(s, out, q, k, v, B, T, nh, nkv, hd, scale, lens, causal);
	}
	if (hd > 32 * SIMPLE_MAX_PER_LANE)
		return cudaErrorInvalidValue;
	{
		size_t		rows = (size_t) B * T * nh;
		int			warps = 4;

		attn_simple<<<(unsigned int) ((rows + warps - 1) / warps), warps * 32, 0, s>>>(
			out, q, k, v, B, T, nh, nkv, hd, scale, lens, causal);
	}
	return cudaGetLastError();
}
