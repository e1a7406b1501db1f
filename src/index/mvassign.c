/*
 * mvassign.c
 *	  Assignment of token rows to mvivf's lists and encoding of their
 *	  residuals: the centroid scoring (fp32 GEMMs, or AMX-BF16 tiles where
 *	  the CPU has them), the two-level search from 1,024 lists on, and the
 *	  AVX-512 forms of its inner loops.  Training and the quantizer cache
 *	  are in mvquantizer.c.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MVIVF_HAVE_AVX512 1
#endif

#include "miscadmin.h"
#include "utils/memutils.h"

#include "backend_cpu_blas.h"
#include "gemm_amx.h"
#include "gemm_bf16.h"
#include "mvivf.h"

/*
 * MvivfUseAmx
 *		Whether assignment runs on AMX-BF16 tiles (the CPU has them and Linux
 *		grants them to this process).
 */
bool
MvivfUseAmx(void)
{
	static int	use = -1;

#ifdef MVIVF_HAVE_AVX512
	if (use < 0)
		use = cp_cpu_amx_bf16_usable() ? 1 : 0;
#endif
	return use == 1;
}

#ifdef MVIVF_HAVE_AVX512
/*
 * AmxGatherRows
 *		Copy rows rowIdx[0..m) of src to rows 0..m) of dst, both in the A
 *		layout (each row is 64 bytes, padding included, in each of its
 *		`steps` k-step tiles, which are 64-byte aligned), and zero dst's rows
 *		m up to the next multiple of 32: AmxFirstMax reads whole 32-row
 *		blocks, and those rows' scores are never used, but they are defined.
 */
static __attribute__((target("avx512f"))) void
AmxGatherRows(const uint16 *src, const int *rowIdx, int m, uint16 *dst,
			  int steps)
{
	const Size	blockElems = (Size) steps * CP_AMX_TILE_ELEMS;	/* 16 rows */
	int			i;
	int			s;

	for (i = 0; i < m; i++)
	{
		int			sr = rowIdx[i];
		const uint16 *sp = src + (Size) (sr / 16) * blockElems + (sr % 16) * CP_AMX_K_STEP;
		uint16	   *dp = dst + (Size) (i / 16) * blockElems + (i % 16) * CP_AMX_K_STEP;

		for (s = 0; s < steps; s++)
			_mm512_store_si512(dp + (Size) s * CP_AMX_TILE_ELEMS,
							   _mm512_load_si512(sp + (Size) s * CP_AMX_TILE_ELEMS));
	}
	for (; i % 32 != 0; i++)
	{
		uint16	   *dp = dst + (Size) (i / 16) * blockElems + (i % 16) * CP_AMX_K_STEP;

		for (s = 0; s < steps; s++)
			_mm512_store_si512(dp + (Size) s * CP_AMX_TILE_ELEMS, _mm512_setzero_si512());
	}
}

/*
 * AmxFirstMax
 *		For each row m < M of xa (in the engine's AMX "A layout": 16-row x
 *		32-k bf16 tiles, readable up to a multiple of 32 rows, zero in
 *		columns K..Kp), the first column n < N of the largest xa[m] . W[n]
 *		(W in the "B layout" cp_amx_pack_weights writes: blocks of 32
 *		columns, two 16-column tiles per k-step) into arg[m] (-1 when no score is above
 *		-FLT_MAX) and its score into max[m].  The scores go from the tiles
 *		straight into per-row, per-lane running maxima (strictly greater
 *		wins, so each lane keeps its first maximum), so that no score
 *		matrix is written or read again: with 32 x 32 blocks, this is most
 *		of what an assignment costs.
 */
static __attribute__((target("amx-tile,amx-bf16,avx512f"))) void
AmxFirstMax(const uint16 *xa, int M, int Kp, const uint32 *packed,
			int N, float *max, int *arg)
{
	float		cb[4][16][16] __attribute__((aligned(64)));
	float		laneMax[32][16] __attribute__((aligned(64)));
	int32		laneCol[32][16] __attribute__((aligned(64)));
	const int	steps = Kp / CP_AMX_K_STEP;
	const Size	tileStride = 64;	/* bytes per tile row, A and B alike */
	const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8,
										   7, 6, 5, 4, 3, 2, 1, 0);
	int			mb;

	cp_amx_load_tile_config();

	for (mb = 0; mb < M; mb += 32)
	{
		const uint16 *x0 = xa + (Size) (mb / 16) * steps * CP_AMX_TILE_ELEMS;
		const uint16 *x1 = x0 + (Size) steps * CP_AMX_TILE_ELEMS;
		int			rows = Min(32, M - mb);
		int			nb;
		int			r;

		for (r = 0; r < rows; r++)
		{
			_mm512_store_ps(laneMax[r], _mm512_set1_ps(-FLT_MAX));
			_mm512_store_si512(laneCol[r], _mm512_set1_epi32(-1));
		}
		for (nb = 0; nb < N; nb += 32)
		{
			const uint32 *wp = packed + (Size) (nb / 32) * steps * CP_AMX_TILE_ELEMS;
			int			k;
			int			h;

			_tile_zero(0);
			_tile_zero(1);
			_tile_zero(2);
			_tile_zero(3);
			for (k = 0; k < steps; k++)
			{
				const uint32 *wk = wp + (Size) k * CP_AMX_TILE_ELEMS;

				_tile_loadd(4, x0 + (Size) k * CP_AMX_TILE_ELEMS, tileStride);
				_tile_loadd(5, x1 + (Size) k * CP_AMX_TILE_ELEMS, tileStride);
				_tile_loadd(6, wk, tileStride);
				_tile_loadd(7, wk + CP_AMX_TILE_ELEMS / 2, tileStride);
				_tile_dpbf16ps(0, 4, 6);
				_tile_dpbf16ps(1, 4, 7);
				_tile_dpbf16ps(2, 5, 6);
				_tile_dpbf16ps(3, 5, 7);
			}
			_tile_stored(0, cb[0], 16 * sizeof(float));
			_tile_stored(1, cb[1], 16 * sizeof(float));
			_tile_stored(2, cb[2], 16 * sizeof(float));
			_tile_stored(3, cb[3], 16 * sizeof(float));
			/* tile 0/1: rows 0-15, columns nb..+15 / nb+16..+31; 2/3: rows 16-31 */
			for (h = 0; h < 2; h++)
			{
				int			col = nb + 16 * h;
				__mmask16	live;
				__m512i		colv;

				if (col >= N)
					break;
				live = N - col >= 16 ? 0xFFFF : (__mmask16) ((1u << (N - col)) - 1);
				colv = _mm512_add_epi32(_mm512_set1_epi32(col), lanes);
				for (r = 0; r < rows; r++)
				{
					__m512		v = _mm512_load_ps(cb[(r >= 16) * 2 + h][r & 15]);
					__m512		best = _mm512_load_ps(laneMax[r]);
					__mmask16	gt = _mm512_mask_cmp_ps_mask(live, v, best, _CMP_GT_OQ);

					_mm512_store_ps(laneMax[r], _mm512_mask_blend_ps(gt, best, v));
					_mm512_store_si512(laneCol[r],
									   _mm512_mask_blend_epi32(gt, _mm512_load_si512(laneCol[r]), colv));
				}
			}
		}
		/* per row: the largest lane maximum, at its smallest column */
		for (r = 0; r < rows; r++)
		{
			__m512		lm = _mm512_load_ps(laneMax[r]);
			float		m = _mm512_reduce_max_ps(lm);
			__mmask16	eq = _mm512_cmp_ps_mask(lm, _mm512_set1_ps(m), _CMP_EQ_OQ);

			max[mb + r] = m;
			arg[mb + r] = m > -FLT_MAX ?
				_mm512_mask_reduce_min_epi32(eq, _mm512_load_si512(laneCol[r])) : -1;
		}
	}
	_tile_release();
}
#endif

/*
 * WorkBuffer
 *		A grow-only scratch area for the two-level assignment, kept for the
 *		life of the backend (a build or an insert needs it once per row
 *		block; allocating megabytes each time costs page faults).
 */
static void *
WorkBuffer(Size size)
{
	static void *buf = NULL;
	static Size bufSize = 0;

	if (size > bufSize)
	{
		if (buf)
			pfree(buf);
		bufSize = Max(size, 2 * bufSize);
		buf = MemoryContextAllocHuge(TopMemoryContext, bufSize);
	}
	return buf;
}

#define MVIVF_TWOLEVEL_CHUNK	(1 << 20)	/* floats of member scores per GEMM */
#define MVIVF_TWOLEVEL_GATHER	16384	/* rows gathered for one group GEMM */
#define MVIVF_AMX_GATHER		1024	/* the same, in bf16 A tiles */

/*
 * FirstMaxPortable
 *		The index of the first maximum of v[0..n) above -FLT_MAX (NaNs never
 *		win), -1 when there is none; *max gets it.
 */
static inline int
FirstMaxPortable(const float *v, int n, float *max)
{
	float		bs = -FLT_MAX;
	int			bj = -1;
	int			j;

	for (j = 0; j < n; j++)
		if (v[j] > bs)
		{
			bs = v[j];
			bj = j;
		}
	*max = bs;
	return bj;
}

#ifdef MVIVF_HAVE_AVX512
/*
 * FirstMaxAvx512
 *		FirstMaxPortable, 16 floats at a time: the maximum, then the first
 *		position holding it (the same index and float as the portable form).
 */
static __attribute__((target("avx512f"))) int
FirstMaxAvx512(const float *v, int n, float *max)
{
	const __m512 floor = _mm512_set1_ps(-FLT_MAX);
	__m512		acc = floor;
	float		m;
	int			j;

	for (j = 0; j + 16 <= n; j += 16)
		acc = _mm512_max_ps(_mm512_loadu_ps(v + j), acc);	/* NaN keeps acc */
	if (j < n)
		acc = _mm512_max_ps(_mm512_mask_loadu_ps(floor, (__mmask16) ((1u << (n - j)) - 1),
												 v + j), acc);
	m = _mm512_reduce_max_ps(acc);
	*max = m;
	if (!(m > -FLT_MAX))
		return -1;
	for (j = 0; j < n; j += 16)
	{
		__mmask16	live = n - j >= 16 ? 0xFFFF : (__mmask16) ((1u << (n - j)) - 1);
		__mmask16	eq = _mm512_mask_cmp_ps_mask(live, _mm512_mask_loadu_ps(floor, live, v + j),
												 _mm512_set1_ps(m), _CMP_EQ_OQ);

		if (eq)
			return j + __builtin_ctz(eq);
	}
	return -1;					/* not reached */
}

/*
 * MvivfCpuHasAvx512
 *		Whether this CPU runs the AVX-512 forms (of this file's loops and of
 *		mvapprox.c's scoring).
 *
 * The environment variable COLPALI_MVIVF_PORTABLE (any value), seen by the
 * server when it starts, makes every backend take the portable loops
 * instead: the tests use it to check that both forms give the same codes,
 * scores and rows on a CPU that has AVX-512 (docs/DEVELOPING.md).
 */
bool
MvivfCpuHasAvx512(void)
{
	static int	use = -1;

	if (use < 0)
	{
		__builtin_cpu_init();
		use = (__builtin_cpu_supports("avx512f") &&
			   getenv("COLPALI_MVIVF_PORTABLE") == NULL) ? 1 : 0;
	}
	return use == 1;
}
#endif

/*
 * FirstMax
 *		FirstMaxPortable, vectorised where the CPU can.
 */
static inline int
FirstMax(const float *v, int n, float *max)
{
#ifdef MVIVF_HAVE_AVX512
	if (MvivfCpuHasAvx512())
		return FirstMaxAvx512(v, n, max);
#endif
	return FirstMaxPortable(v, n, max);
}

/*
 * TopInsert
 *		Offer group g (score c[g]) to t, the ntop best so far in decreasing
 *		order (G at most; an earlier group wins a tie); returns the new ntop.
 */
static inline int
TopInsert(const float *c, int g, int *t, int ntop, int G)
{
	int			pos;

	if (ntop == G && c[g] <= c[t[ntop - 1]])
		return ntop;
	pos = ntop < G ? ntop++ : ntop - 1;
	while (pos > 0 && c[t[pos - 1]] < c[g])
	{
		t[pos] = t[pos - 1];
		pos--;
	}
	t[pos] = g;
	return ntop;
}

#ifdef MVIVF_HAVE_AVX512
/*
 * StableRanks
 *		For the n <= 16 values in v (lanes past n ignored), each one's rank:
 *		how many are larger, plus how many equal ones come before it.  The
 *		G best by TopInsert's rule (an earlier one wins a tie) are exactly
 *		those of rank < G.
 */
static __attribute__((target("avx512f"))) void
StableRanks(__m512 v, int n, int *rank)
{
	float		x[16];
	__mmask16	live = n >= 16 ? 0xFFFF : (__mmask16) ((1u << n) - 1);
	int			i;

	_mm512_storeu_ps(x, v);
	for (i = 0; i < n; i++)
	{
		__m512		xi = _mm512_set1_ps(x[i]);
		__mmask16	gt = _mm512_mask_cmp_ps_mask(live, v, xi, _CMP_GT_OQ);
		__mmask16	eq = _mm512_mask_cmp_ps_mask(live & ((1u << i) - 1), v, xi, _CMP_EQ_OQ);

		rank[i] = __builtin_popcount(gt) + __builtin_popcount(eq);
	}
}

/*
 * TopGroupsAvx512
 *		TopGroups without insertion sorting.  The lane-wise maxima of the
 *		scores are 16 distinct scores, so at least G scores are at least the
 *		G-th best of them (thr), and none below thr can be among the G best.
 *		The scores at or above thr, usually a few more than G, are ranked
 *		among themselves (their ranks are their ranks among all scores) and
 *		those of rank < G taken: the same set as TopGroups, in another order
 *		(only the set matters to the caller).  Returns false, leaving it to
 *		the plain loop, for a NaN score, fewer than 16 + G scores or more
 *		than 16 at or above thr.
 */
static __attribute__((target("avx512f"))) bool
TopGroupsAvx512(const float *c, int nc, int G, int *t)
{
	__m512		lm = _mm512_set1_ps(-FLT_MAX);
	__mmask16	nan = 0;
	float		lanes[16];
	float		cv[32];
	int			ci[32];
	int			rank[16];
	float		thr = 0;
	int			k = 0;
	int			ntop = 0;
	int			g;
	int			i;

	if (nc < 16 + G)
		return false;
	for (g = 0; g < nc; g += 16)
	{
		__mmask16	live = nc - g >= 16 ? 0xFFFF : (__mmask16) ((1u << (nc - g)) - 1);
		__m512		v = _mm512_mask_loadu_ps(lm, live, c + g);

		nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
		lm = _mm512_max_ps(lm, v);
	}
	if (nan)
		return false;
	StableRanks(lm, 16, rank);
	_mm512_storeu_ps(lanes, lm);
	for (i = 0; i < 16; i++)
		if (rank[i] == G - 1)
			thr = lanes[i];
	for (g = 0; g < nc; g += 16)
	{
		__mmask16	live = nc - g >= 16 ? 0xFFFF : (__mmask16) ((1u << (nc - g)) - 1);
		__m512		v = _mm512_maskz_loadu_ps(live, c + g);
		__mmask16	cand = _mm512_mask_cmp_ps_mask(live, v, _mm512_set1_ps(thr), _CMP_GE_OQ);
		int			nk = __builtin_popcount(cand);

		if (k + nk > 16)
			return false;
		_mm512_mask_compressstoreu_ps(cv + k, cand, v);
		_mm512_mask_compressstoreu_epi32(ci + k, cand,
										 _mm512_add_epi32(_mm512_set1_epi32(g),
														  _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8,
																		   7, 6, 5, 4, 3, 2, 1, 0)));
		k += nk;
	}
	StableRanks(_mm512_maskz_loadu_ps((__mmask16) ((1u << k) - 1), cv), k, rank);
	for (i = 0; i < k; i++)
		if (rank[i] < G)
			t[ntop++] = ci[i];
	Assert(ntop == G);
	return true;
}
#endif

/*
 * TopGroups
 *		t = the G best of the nc coarse scores c, by insertion.
 */
static inline void
TopGroups(const float *c, int nc, int G, int *t)
{
	int			ntop = 0;
	int			g;

#ifdef MVIVF_HAVE_AVX512
	if (MvivfCpuHasAvx512() && TopGroupsAvx512(c, nc, G, t))
		return;
#endif
	for (g = 0; g < nc; g++)
		ntop = TopInsert(c, g, t, ntop, G);
}

/*
 * AssignTwoLevel
 *		best[r] = the best centroid of row r among the members of its
 *		MVIVF_COARSE_PROBES best coarse groups (cs = n x ncoarse coarse
 *		scores).  The (row, group) pairs are bucketed by group so that each
 *		group is scored against all its rows with one GEMM.
 */
static void
AssignTwoLevel(const MvivfQuantizer * q, const float *rows, int n,
			   float *cs, uint32 *best)
{
	const int	G = Min(MVIVF_COARSE_PROBES, q->ncoarse);
	int			dim = q->dim;
	int			npairs = n * G;
	Size		off = 0;
	char	   *work;
	int		   *top;
	int		   *pairRow;
	int		   *groupCount;
	float	   *bestScore;
	float	   *gathered;
	float	   *out;
	bool		amx = q->groupPacked != NULL;
	int			maxChunk = Min(npairs, amx ? MVIVF_AMX_GATHER : MVIVF_TWOLEVEL_GATHER);
	int			kp = cp_amx_padded_k(dim);
	int			ldx = kp;		/* bf16 elements per row in the A layout */
	int			mp = TYPEALIGN(CP_AMX_BLOCK, maxChunk);
	int			np = TYPEALIGN(CP_AMX_BLOCK, n);
	uint16	   *rowsBf = NULL;
	uint16	   *xa = NULL;
	float	   *cbuf = NULL;
	float	   *amxMax = NULL;
	int		   *amxArg = NULL;
	int			r;
	int			g;

	if (amx)
	{
		/*
		 * the rows in bf16 as A tiles (for the coarse scores), gathered by
		 * group into more A tiles; the coarse GEMM's partial sums
		 */
		work = WorkBuffer(sizeof(int) * (Size) npairs * 2 + sizeof(int) * (q->ncoarse + 1) +
						  sizeof(float) * n + sizeof(uint16) * (Size) np * ldx +
						  sizeof(uint16) * (Size) mp * ldx + (sizeof(float) + sizeof(int)) * mp +
						  sizeof(float) * (Size) np * CP_AMX_GROUP_N + 6 * 64);
		off = TYPEALIGN(64, work) - (uintptr_t) work;
		xa = (uint16 *) (work + off);
		off += TYPEALIGN(64, sizeof(uint16) * (Size) mp * ldx);
		amxMax = (float *) (work + off);
		off += TYPEALIGN(64, sizeof(float) * mp);
		amxArg = (int *) (work + off);
		off += TYPEALIGN(64, sizeof(int) * mp);
		rowsBf = (uint16 *) (work + off);
		off += TYPEALIGN(64, sizeof(uint16) * (Size) np * ldx);
		cbuf = (float *) (work + off);
		off += TYPEALIGN(64, sizeof(float) * (Size) np * CP_AMX_GROUP_N);
		/*
		 * padding columns are zero (xa's rows are copied whole from rowsBf,
		 * and AmxGatherRows zeroes the rows past a chunk's own)
		 */
		cp_amx_pack_rows(rows, dim, n, dim, kp, 0, np / 16, rowsBf);
		cp_gemm_amx_bf16(rowsBf, n, kp, MvivfAmxAligned(q->coarsePacked), 0,
						 q->ncoarse, cs, q->ncoarse, false, cbuf);
	}
	else
	{
		work = WorkBuffer(sizeof(int) * (Size) npairs * 2 + sizeof(int) * (q->ncoarse + 1) +
						  sizeof(float) * n + sizeof(float) * (Size) maxChunk * dim +
						  sizeof(float) * MVIVF_TWOLEVEL_CHUNK + 64);
		cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, q->ncoarse,
				 dim, 1.0f, rows, dim, q->coarse, dim, 0.0f, cs, q->ncoarse);
	}
	top = (int *) (work + off);
	off += sizeof(int) * (Size) npairs;
	pairRow = (int *) (work + off);
	off += sizeof(int) * (Size) npairs;
	groupCount = (int *) (work + off);
	off += sizeof(int) * (q->ncoarse + 1);
	bestScore = (float *) (work + off);
	off += sizeof(float) * n;
	gathered = (float *) (work + off);
	if (!amx)
		off += sizeof(float) * (Size) maxChunk * dim;
	out = (float *) (work + off);

	/* the best G groups of every row */
	for (r = 0; r < n; r++)
	{
		TopGroups(cs + (Size) r * q->ncoarse, q->ncoarse, G, top + (Size) r * G);
		best[r] = 0;
		bestScore[r] = -FLT_MAX;
	}

	/* bucket the pairs by group (counting sort) */
	memset(groupCount, 0, sizeof(int) * (q->ncoarse + 1));
	for (r = 0; r < npairs; r++)
		groupCount[top[r] + 1]++;
	for (g = 0; g < q->ncoarse; g++)
		groupCount[g + 1] += groupCount[g];
	for (r = 0; r < npairs; r++)
		pairRow[groupCount[top[r]]++] = r / G;
	/* groupCount[g] is now the end of group g's pairs */

	for (g = 0; g < q->ncoarse; g++)
	{
		int			pstart = g == 0 ? 0 : groupCount[g - 1];
		int			pend = groupCount[g];
		int			mstart = q->groupStart[g];
		int			ng = q->groupStart[g + 1] - mstart;
		int			chunk = Min(maxChunk, Max(1, MVIVF_TWOLEVEL_CHUNK / Max(ng, 1)));
		int			p;

		if (ng == 0 || pend == pstart)
			continue;
		for (p = pstart; p < pend; p += chunk)
		{
			int			m = Min(chunk, pend - p);
			int			i;

#ifdef MVIVF_HAVE_AVX512
			if (amx)
			{
				AmxGatherRows(rowsBf, pairRow + p, m, xa, kp / CP_AMX_K_STEP);
				AmxFirstMax(xa, m, kp,
							MvivfAmxAligned(q->groupPacked) + q->groupPackedStart[g],
							ng, amxMax, amxArg);
				for (i = 0; i < m; i++)
				{
					int			row = pairRow[p + i];

					if (amxArg[i] >= 0 && amxMax[i] > bestScore[row])
					{
						bestScore[row] = amxMax[i];
						best[row] = q->groupMembers[mstart + amxArg[i]];
					}
				}
				continue;
			}
#endif
			{
				for (i = 0; i < m; i++)
					memcpy(gathered + (Size) i * dim, rows + (Size) pairRow[p + i] * dim,
						   sizeof(float) * dim);
				cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, ng, dim,
						 1.0f, gathered, dim, q->groupCentroids + (Size) mstart * dim,
						 dim, 0.0f, out, ng);
			}
			for (i = 0; i < m; i++)
			{
				int			row = pairRow[p + i];
				const float *o = out + (Size) i * ng;
				float		bs;
				int			bj = FirstMax(o, ng, &bs);

				if (bj >= 0 && bs > bestScore[row])
				{
					bestScore[row] = bs;
					best[row] = q->groupMembers[mstart + bj];
				}
			}
		}
	}
}

#ifdef MVIVF_HAVE_AVX512
/*
 * EncodeRowAvx512
 *		One row's code, as EncodeResiduals computes it, 16 coordinates at a
 *		time: buckets by counting cutoffs (a masked add per cutoff), then
 *		the 16 buckets shifted into place and OR-ed into one little-endian
 *		word (two for 4 bits), which are the code's next bytes.  code is
 *		zero on entry.
 */
static __attribute__((target("avx512f"))) void
EncodeRowAvx512(const MvivfQuantizer * q, const float *x, const float *c,
				uint8 *code)
{
	const int	nbits = q->nbits;
	const int	ncut = (1 << nbits) - 1;
	const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8,
										  7, 6, 5, 4, 3, 2, 1, 0);
	const __m512i one = _mm512_set1_epi32(1);
	__m512i		shifts;
	int			d;

	if (nbits == 4)
		shifts = _mm512_slli_epi32(_mm512_and_si512(lane, _mm512_set1_epi32(7)), 2);
	else
		shifts = _mm512_mullo_epi32(lane, _mm512_set1_epi32(nbits));
	for (d = 0; d + 16 <= q->dim; d += 16)
	{
		__m512		res = _mm512_sub_ps(_mm512_loadu_ps(x + d), _mm512_loadu_ps(c + d));
		__m512i		b = _mm512_setzero_si512();
		__m512i		sh;
		uint8	   *dst = code + d * nbits / 8;
		int			j;

		for (j = 0; j < ncut; j++)
			b = _mm512_mask_add_epi32(b, _mm512_cmp_ps_mask(res, _mm512_set1_ps(q->cutoffs[j]),
															_CMP_GT_OQ), b, one);
		sh = _mm512_sllv_epi32(b, shifts);
		if (nbits == 4)
		{
			uint32		lo = (uint32) _mm512_mask_reduce_or_epi32(0x00FF, sh);
			uint32		hi = (uint32) _mm512_mask_reduce_or_epi32(0xFF00, sh);

			memcpy(dst, &lo, 4);
			memcpy(dst + 4, &hi, 4);
		}
		else
		{
			uint32		w = (uint32) _mm512_reduce_or_epi32(sh);

			memcpy(dst, &w, 2 * nbits);
		}
	}
	for (; d < q->dim; d++)
	{
		float		res = x[d] - c[d];
		int			b = 0;
		int			j;
		int			bit = d * nbits;

		for (j = 0; j < ncut; j++)
			b += res > q->cutoffs[j];
		code[bit / 8] |= (uint8) (b << (bit % 8));
	}
}
#endif

#ifdef MVIVF_HAVE_AVX512
/*
 * CpuHasBmi2
 *		Whether this CPU has BMI2's bit deposit (every AVX-512 CPU so far).
 */
static bool
CpuHasBmi2(void)
{
	static int	use = -1;

	if (use < 0)
	{
		__builtin_cpu_init();
		use = __builtin_cpu_supports("bmi2") ? 1 : 0;
	}
	return use == 1;
}

/*
 * CutoffsSorted
 *		Whether the cutoffs are in non-decreasing order (they are quantiles,
 *		so always, unless a NaN came into the training residuals).
 */
static bool
CutoffsSorted(const MvivfQuantizer * q)
{
	int			j;

	for (j = 0; j + 1 < (1 << q->nbits) - 1; j++)
		if (!(q->cutoffs[j] <= q->cutoffs[j + 1]))
			return false;
	return true;
}

/*
 * EncodeRowNestedAvx512
 *		EncodeRowAvx512 for sorted cutoffs, from comparison masks alone.  With
 *		c_0 <= c_1 <= ..., the set of coordinates above c_j contains the set
 *		above c_(j+1), so a coordinate's bucket b (the number of cutoffs
 *		below it) is above c_j exactly for j < b, and bit p of b is the parity
 *		of how many of c_(2^p - 1), c_(2^p - 1 + 2^p), c_(2^p - 1 + 2 * 2^p),
 *		... it is above: the XOR of those masks.  Each bit's 16-lane mask is
 *		then deposited at every nbits-th bit of the code word.  The same bits
 *		as EncodeRowAvx512, with no vector reduction.
 */
static __attribute__((target("avx512f,bmi2"))) void
EncodeRowNestedAvx512(const MvivfQuantizer * q, const float *x, const float *c,
					  uint8 *code)
{
	const int	nbits = q->nbits;
	const int	ncut = (1 << nbits) - 1;
	__m512		cut[MVIVF_MAX_BUCKETS - 1];
	int			d;
	int			j;

	for (j = 0; j < ncut; j++)
		cut[j] = _mm512_set1_ps(q->cutoffs[j]);
	for (d = 0; d + 16 <= q->dim; d += 16)
	{
		__m512		res = _mm512_sub_ps(_mm512_loadu_ps(x + d), _mm512_loadu_ps(c + d));
		uint8	   *dst = code + d * nbits / 8;
		uint32		m[MVIVF_MAX_BUCKETS - 1];

		for (j = 0; j < ncut; j++)
			m[j] = _mm512_cmp_ps_mask(res, cut[j], _CMP_GT_OQ);
		if (nbits == 1)
		{
			uint16		w = (uint16) m[0];

			memcpy(dst, &w, 2);
		}
		else if (nbits == 2)
		{
			uint32		w = _pdep_u32(m[0] ^ m[1] ^ m[2], 0x55555555u) |
				_pdep_u32(m[1], 0xAAAAAAAAu);

			memcpy(dst, &w, 4);
		}
		else
		{
			uint32		b0 = 0;
			uint64		w;

			for (j = 0; j < 15; j++)
				b0 ^= m[j];
			w = _pdep_u64(b0, UINT64CONST(0x1111111111111111)) |
				_pdep_u64(m[1] ^ m[3] ^ m[5] ^ m[7] ^ m[9] ^ m[11] ^ m[13],
						  UINT64CONST(0x2222222222222222)) |
				_pdep_u64(m[3] ^ m[7] ^ m[11], UINT64CONST(0x4444444444444444)) |
				_pdep_u64(m[7], UINT64CONST(0x8888888888888888));
			memcpy(dst, &w, 8);
		}
	}
	for (; d < q->dim; d++)
	{
		float		r = x[d] - c[d];
		int			b = 0;
		int			bit = d * nbits;

		for (j = 0; j < ncut; j++)
			b += r > q->cutoffs[j];
		code[bit / 8] |= (uint8) (b << (bit % 8));
	}
}
#endif

/*
 * EncodeResiduals
 *		codes of the residuals of n rows from their assigned centroids.  A
 *		coordinate's bucket is the number of cutoffs below its residual (the
 *		cutoffs are sorted, so this is the first cutoff not below it), counted
 *		cutoff by cutoff over all coordinates so that the compiler vectorises
 *		the comparisons; then the buckets are packed nbits at a time.
 */
static void
EncodeResiduals(const MvivfQuantizer * q, const float *rows, int n,
				const uint32 *lists, uint8 *codes)
{
	int			dim = q->dim;
	int			nbits = q->nbits;
	int			ncut = (1 << nbits) - 1;
	float		res[MVIVF_MAX_DIM];
	uint8		bucket[MVIVF_MAX_DIM];
	int			r;

	Assert(dim <= MVIVF_MAX_DIM);
#ifdef MVIVF_HAVE_AVX512
	if (MvivfCpuHasAvx512() && CpuHasBmi2() && CutoffsSorted(q) &&
		(nbits == 1 || nbits == 2 || nbits == 4))
	{
		for (r = 0; r < n; r++)
		{
			uint8	   *code = codes + (Size) r * q->codeSize;

			/*
			 * a row's centroid is anywhere in the table (a few MB): fetch
			 * that of a later row while this one is encoded
			 */
			if (r + 4 < n)
			{
				const char *next = (const char *) (q->centroids + (Size) lists[r + 4] * dim);
				Size		off;

				for (off = 0; off < sizeof(float) * dim; off += 64)
					__builtin_prefetch(next + off);
			}
			memset(code, 0, q->codeSize);
			EncodeRowNestedAvx512(q, rows + (Size) r * dim,
								  q->centroids + (Size) lists[r] * dim, code);
		}
		return;
	}
#endif
	for (r = 0; r < n; r++)
	{
		const float *x = rows + (Size) r * dim;
		const float *c = q->centroids + (Size) lists[r] * dim;
		uint8	   *code = codes + (Size) r * q->codeSize;
		int			d;
		int			j;

#ifdef MVIVF_HAVE_AVX512
		if (MvivfCpuHasAvx512() && (nbits == 1 || nbits == 2 || nbits == 4))
		{
			memset(code, 0, q->codeSize);
			EncodeRowAvx512(q, x, c, code);
			continue;
		}
#endif
		for (d = 0; d < dim; d++)
		{
			res[d] = x[d] - c[d];
			bucket[d] = 0;
		}
		for (j = 0; j < ncut; j++)
		{
			float		cut = q->cutoffs[j];

			for (d = 0; d < dim; d++)
				bucket[d] += res[d] > cut;
		}
		memset(code, 0, q->codeSize);
		if (nbits == 2 && dim % 4 == 0)
		{
			for (d = 0; d < dim; d += 4)
				code[d / 4] = bucket[d] | bucket[d + 1] << 2 |
					bucket[d + 2] << 4 | bucket[d + 3] << 6;
		}
		else
		{
			for (d = 0; d < dim; d++)
			{
				int			bit = d * nbits;

				code[bit / 8] |= (uint8) (bucket[d] << (bit % 8));
			}
		}
	}
}

/*
 * MvivfAssignEncode
 *		Assign each row to its nearest (largest dot product) centroid, flat
 *		or two-level (MvivfPrepareCoarse), and encode the residual; codes has
 *		nrows * codeSize bytes, or is NULL to assign only (k-means).
 *		scratch, when not NULL, holds MVIVF_ASSIGN_BLOCK * nlists floats.
 *		Two-level assignment scores only the ncoarse coarse centroids per row
 *		into it, so it takes blocks of up to MVIVF_TWOLEVEL_BLOCK rows: the
 *		GEMMs of each group then have enough rows to run at full speed.
 */
void
MvivfAssignEncode(const MvivfQuantizer * q, const float *rows, int nrows,
				  uint32 *lists, uint8 *codes, float *scratch)
{
	int			block = MVIVF_ASSIGN_BLOCK;
	float	   *scores = scratch;
	int			start;
	int			threads;

	if (q->ncoarse > 0)
		block = (int) Min((int64) MVIVF_TWOLEVEL_BLOCK,
						  (int64) MVIVF_ASSIGN_BLOCK * q->nlists / q->ncoarse);
	if (scores == NULL)
		scores = palloc_extended(sizeof(float) * (Size) Min(block, nrows) *
								 (q->ncoarse > 0 ? q->ncoarse : q->nlists),
								 MCXT_ALLOC_HUGE);
	threads = MvivfBlasSingleThread();
	for (start = 0; start < nrows; start += block)
	{
		int			n = Min(block, nrows - start);
		int			r;

		if (q->ncoarse > 0)
			AssignTwoLevel(q, rows + (Size) start * q->dim, n, scores,
						   lists + start);
		else
		{
			MvivfScoreCentroids(q, rows + (Size) start * q->dim, n, scores);
			for (r = 0; r < n; r++)
			{
				const float *s = scores + (Size) r * q->nlists;
				float		bs = s[0];
				int			best = 0;
				int			l;

				for (l = 1; l < q->nlists; l++)
					if (s[l] > bs)
					{
						bs = s[l];
						best = l;
					}
				lists[start + r] = best;
			}
		}
		if (codes != NULL)
			EncodeResiduals(q, rows + (Size) start * q->dim, n, lists + start,
							codes + (Size) start * q->codeSize);
	}
	if (scratch == NULL)
		pfree(scores);
	MvivfBlasRestore(threads);
}
