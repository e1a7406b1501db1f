/*
 * mvquantizer.c
 *	  The quantizer of mvivf: spherical k-means training of the centroids,
 *	  residual bucket tables, assignment of token rows to lists (flat, or
 *	  two-level from 1,024 lists on), residual encoding, and the backend's
 *	  cache of trained quantizers.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "commands/progress.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/backend_progress.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "backend_cpu_blas.h"
#include "mvivf.h"

#define MVIVF_QUANT_VALUES	(1 << 20)	/* residual coordinates for cutoffs */

/*
 * MvivfBlasSingleThread
 *		Make OpenBLAS run in the calling thread and return the previous
 *		thread count for MvivfBlasRestore.  Our products are small or many;
 *		OpenBLAS worker threads spent most of a build yielding to each other
 *		on a loaded machine, and a backend should use one core anyway.
 */
int
MvivfBlasSingleThread(void)
{
	int			threads = cp_blas_get_threads();

	if (threads > 1)
		cp_blas_set_threads(1);
	return threads;
}

/*
 * MvivfBlasRestore
 *		Undo MvivfBlasSingleThread.
 */
void
MvivfBlasRestore(int threads)
{
	if (threads > 1)
		cp_blas_set_threads(threads);
}

/*
 * The backend's quantizer cache: the quantizers of the last few indexes
 * used, each in its own memory context under TopMemoryContext, keyed by the
 * index's OID and relfilenode (centroids never change until REINDEX, which
 * gives a new relfilenode).  Saves reading the centroid pages and grouping
 * them on every insert statement and scan; several entries, so that a table
 * with several mvivf indexes does not reload them for every row.
 */
#define MVIVF_QUANTIZER_CACHE_SIZE 8

typedef struct MvivfCachedQuantizer
{
	Oid			relid;
	Oid			relfilenode;
	uint64		lastUse;
	MemoryContext ctx;
	MvivfQuantizer *q;
}			MvivfCachedQuantizer;

static MvivfCachedQuantizer quantizerCache[MVIVF_QUANTIZER_CACHE_SIZE];
static uint64 quantizerCacheClock = 0;

/*
 * MvivfGetQuantizer
 *		The quantizer of a trained index, with its two-level structure, from
 *		the backend's cache.
 */
const MvivfQuantizer *
MvivfGetQuantizer(Relation index, MvivfMetaPageData * meta)
{
	Oid			relid = RelationGetRelid(index);
	Oid			node = index->rd_rel->relfilenode;
	MvivfCachedQuantizer *slot = NULL;
	MemoryContext old;
	int			i;

	for (i = 0; i < MVIVF_QUANTIZER_CACHE_SIZE; i++)
	{
		MvivfCachedQuantizer *e = &quantizerCache[i];

		if (e->q != NULL && e->relid == relid && e->relfilenode == node &&
			e->q->nlists == (int) meta->nlists && e->q->dim == meta->dim)
		{
			e->lastUse = ++quantizerCacheClock;
			return e->q;
		}
		/* an empty slot, else the least recently used one */
		if (slot == NULL || (slot->q != NULL && (e->q == NULL || e->lastUse < slot->lastUse)))
			slot = e;
	}

	if (slot->ctx == NULL)
		slot->ctx = AllocSetContextCreate(TopMemoryContext, "mvivf quantizer cache",
										  ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(slot->ctx);
	slot->q = NULL;
	old = MemoryContextSwitchTo(slot->ctx);
	{
		MvivfQuantizer *q = palloc0(sizeof(MvivfQuantizer));

		MvivfLoadQuantizer(index, meta, q);
		MvivfPrepareCoarse(q);
		slot->q = q;
	}
	MemoryContextSwitchTo(old);
	slot->relid = relid;
	slot->relfilenode = node;
	slot->lastUse = ++quantizerCacheClock;
	return slot->q;
}

/*
 * MvivfScoreCentroids
 *		scores[r * nlists + l] = dot(rows[r], centroid l).
 */
void
MvivfScoreCentroids(const MvivfQuantizer * q, const float *rows, int nrows,
					float *scores)
{
	int			threads = MvivfBlasSingleThread();

	cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nrows, q->nlists,
				q->dim, 1.0f, rows, q->dim, q->centroids, q->dim, 0.0f,
				scores, q->nlists);
	MvivfBlasRestore(threads);
}

/*
 * MvivfPrepareCoarse
 *		Group the centroids under about sqrt(nlists) coarse centroids
 *		(spherical k-means over the centroids, deterministic), so that a
 *		token is assigned by scoring the coarse centroids and then only the
 *		members of its MVIVF_COARSE_PROBES best groups: about
 *		(1 + MVIVF_COARSE_PROBES) * sqrt(nlists) dot products instead of
 *		nlists.  Build and insert both assign this way, so they agree; the
 *		assignment may miss the very nearest centroid, which only makes the
 *		residual a little larger.  Flat below MVIVF_COARSE_MIN_LISTS lists.
 */
void
MvivfPrepareCoarse(MvivfQuantizer * q)
{
	int			nc;
	int			dim = q->dim;
	float	   *scores;
	int		   *assign;
	int		   *count;
	int			it;
	int			l;
	int			g;
	int			threads;

	MvivfFreeCoarse(q);
	if (q->nlists < MVIVF_COARSE_MIN_LISTS)
		return;
	threads = MvivfBlasSingleThread();
	nc = (int) sqrt((double) q->nlists);
	q->coarse = palloc(sizeof(float) * nc * dim);
	for (g = 0; g < nc; g++)
		memcpy(q->coarse + (Size) g * dim,
			   q->centroids + (Size) ((int64) g * q->nlists / nc) * dim,
			   sizeof(float) * dim);
	scores = palloc_extended(sizeof(float) * (Size) q->nlists * nc, MCXT_ALLOC_HUGE);
	assign = palloc(sizeof(int) * q->nlists);
	count = palloc0(sizeof(int) * (nc + 1));
	for (it = 0; it <= 5; it++)
	{
		cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q->nlists, nc, dim,
					1.0f, q->centroids, dim, q->coarse, dim, 0.0f, scores, nc);
		for (l = 0; l < q->nlists; l++)
		{
			const float *s = scores + (Size) l * nc;
			int			best = 0;

			for (g = 1; g < nc; g++)
				if (s[g] > s[best])
					best = g;
			assign[l] = best;
		}
		if (it == 5)
			break;
		/* new coarse centroid = normalised mean of its members */
		memset(q->coarse, 0, sizeof(float) * nc * dim);
		memset(count, 0, sizeof(int) * nc);
		for (l = 0; l < q->nlists; l++)
		{
			float	   *c = q->coarse + (Size) assign[l] * dim;
			const float *x = q->centroids + (Size) l * dim;
			int			d;

			for (d = 0; d < dim; d++)
				c[d] += x[d];
			count[assign[l]]++;
		}
		for (g = 0; g < nc; g++)
		{
			float	   *c = q->coarse + (Size) g * dim;
			double		norm = 0;
			int			d;

			if (count[g] == 0)
			{
				memcpy(c, q->centroids + (Size) ((int64) g * q->nlists / nc) * dim,
					   sizeof(float) * dim);
				continue;
			}
			for (d = 0; d < dim; d++)
				norm += (double) c[d] * c[d];
			if (norm > 0)
				for (d = 0; d < dim; d++)
					c[d] = (float) (c[d] / sqrt(norm));
		}
	}
	/* CSR of the groups, with the member centroids copied contiguously */
	memset(count, 0, sizeof(int) * (nc + 1));
	for (l = 0; l < q->nlists; l++)
		count[assign[l] + 1]++;
	for (g = 0; g < nc; g++)
		count[g + 1] += count[g];
	q->groupStart = palloc(sizeof(int) * (nc + 1));
	memcpy(q->groupStart, count, sizeof(int) * (nc + 1));
	q->groupMembers = palloc(sizeof(int) * q->nlists);
	q->groupCentroids = palloc_extended(sizeof(float) * (Size) q->nlists * dim,
										MCXT_ALLOC_HUGE);
	for (l = 0; l < q->nlists; l++)
	{
		int			pos = count[assign[l]]++;

		q->groupMembers[pos] = l;
		memcpy(q->groupCentroids + (Size) pos * dim, q->centroids + (Size) l * dim,
			   sizeof(float) * dim);
	}
	q->ncoarse = nc;
	pfree(scores);
	pfree(assign);
	pfree(count);
	MvivfBlasRestore(threads);
}

/*
 * MvivfFreeCoarse
 *		Forget the two-level structure (after the centroids changed).
 */
void
MvivfFreeCoarse(MvivfQuantizer * q)
{
	if (q->ncoarse > 0)
	{
		pfree(q->coarse);
		pfree(q->groupStart);
		pfree(q->groupMembers);
		pfree(q->groupCentroids);
	}
	q->ncoarse = 0;
	q->coarse = NULL;
	q->groupStart = NULL;
	q->groupMembers = NULL;
	q->groupCentroids = NULL;
}

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

/*
 * AssignTwoLevel
 *		best[r] = the best centroid of row r among the members of its
 *		MVIVF_COARSE_PROBES best coarse groups (cs = n x ncoarse coarse
 *		scores).  The (row, group) pairs are bucketed by group so that each
 *		group is scored against all its rows with one GEMM.
 */
static void
AssignTwoLevel(const MvivfQuantizer * q, const float *rows, int n,
			   const float *cs, uint32 *best)
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
	int			r;
	int			g;

	work = WorkBuffer(sizeof(int) * (Size) npairs * 2 + sizeof(int) * (q->ncoarse + 1) +
					  sizeof(float) * n + sizeof(float) * (Size) npairs * dim +
					  sizeof(float) * MVIVF_TWOLEVEL_CHUNK + 64);
	top = (int *) (work + off);
	off += sizeof(int) * (Size) npairs;
	pairRow = (int *) (work + off);
	off += sizeof(int) * (Size) npairs;
	groupCount = (int *) (work + off);
	off += sizeof(int) * (q->ncoarse + 1);
	bestScore = (float *) (work + off);
	off += sizeof(float) * n;
	gathered = (float *) (work + off);
	off += sizeof(float) * (Size) npairs * dim;
	out = (float *) (work + off);

	/* the best G groups of every row, by insertion */
	for (r = 0; r < n; r++)
	{
		const float *c = cs + (Size) r * q->ncoarse;
		int		   *t = top + (Size) r * G;
		int			ntop = 0;

		for (g = 0; g < q->ncoarse; g++)
		{
			int			pos;

			if (ntop == G && c[g] <= c[t[ntop - 1]])
				continue;
			pos = ntop < G ? ntop++ : ntop - 1;
			while (pos > 0 && c[t[pos - 1]] < c[g])
			{
				t[pos] = t[pos - 1];
				pos--;
			}
			t[pos] = g;
		}
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
		int			chunk = Max(1, MVIVF_TWOLEVEL_CHUNK / Max(ng, 1));
		int			p;

		if (ng == 0 || pend == pstart)
			continue;
		for (p = pstart; p < pend; p += chunk)
		{
			int			m = Min(chunk, pend - p);
			int			i;

			for (i = 0; i < m; i++)
				memcpy(gathered + (Size) i * dim, rows + (Size) pairRow[p + i] * dim,
					   sizeof(float) * dim);
			cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, ng, dim,
						1.0f, gathered, dim, q->groupCentroids + (Size) mstart * dim,
						dim, 0.0f, out, ng);
			for (i = 0; i < m; i++)
			{
				int			row = pairRow[p + i];
				const float *o = out + (Size) i * ng;
				int			j;

				for (j = 0; j < ng; j++)
					if (o[j] > bestScore[row])
					{
						bestScore[row] = o[j];
						best[row] = q->groupMembers[mstart + j];
					}
			}
		}
	}
}

/*
 * MvivfAssignEncode
 *		Assign each row to its nearest (largest dot product) centroid, flat
 *		or two-level (MvivfPrepareCoarse), and encode the residual; codes has
 *		nrows * codeSize bytes.  scratch, when not NULL, holds
 *		MVIVF_ASSIGN_BLOCK * nlists floats.
 */
void
MvivfAssignEncode(const MvivfQuantizer * q, const float *rows, int nrows,
				  uint32 *lists, uint8 *codes, float *scratch)
{
	const int	block = MVIVF_ASSIGN_BLOCK;
	int			nb = 1 << q->nbits;
	float	   *scores = scratch;
	int			start;
	int			threads = MvivfBlasSingleThread();

	if (scores == NULL)
		scores = palloc_extended(sizeof(float) * (Size) Min(block, nrows) * q->nlists,
								 MCXT_ALLOC_HUGE);

	for (start = 0; start < nrows; start += block)
	{
		int			n = Min(block, nrows - start);
		int			r;

		if (q->ncoarse > 0)
		{
			cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, q->ncoarse,
						q->dim, 1.0f, rows + (Size) start * q->dim, q->dim,
						q->coarse, q->dim, 0.0f, scores, q->ncoarse);
			AssignTwoLevel(q, rows + (Size) start * q->dim, n, scores,
						   lists + start);
		}
		else
			MvivfScoreCentroids(q, rows + (Size) start * q->dim, n, scores);
		for (r = 0; r < n; r++)
		{
			const float *x = rows + (Size) (start + r) * q->dim;
			uint8	   *code = codes + (Size) (start + r) * q->codeSize;
			const float *c;
			int			best = 0;
			int			d;

			if (q->ncoarse > 0)
				best = lists[start + r];
			else
			{
				const float *s = scores + (Size) r * q->nlists;
				int			l;

				for (l = 1; l < q->nlists; l++)
					if (s[l] > s[best])
						best = l;
			}
			lists[start + r] = best;
			c = q->centroids + (Size) best * q->dim;
			memset(code, 0, q->codeSize);
			for (d = 0; d < q->dim; d++)
			{
				float		res = x[d] - c[d];
				int			b = 0;
				int			bit = d * q->nbits;

				while (b < nb - 1 && res > q->cutoffs[b])
					b++;
				code[bit / 8] |= (uint8) (b << (bit % 8));
			}
		}
	}
	if (scratch == NULL)
		pfree(scores);
	MvivfBlasRestore(threads);
}

/*
 * NormalizeRow
 *		Scale a row to unit length (left alone when it is zero).
 */
static void
NormalizeRow(float *x, int dim)
{
	double		norm = 0;
	int			d;

	for (d = 0; d < dim; d++)
		norm += (double) x[d] * x[d];
	if (norm > 0)
	{
		float		inv = (float) (1.0 / sqrt(norm));

		for (d = 0; d < dim; d++)
			x[d] *= inv;
	}
}

/*
 * FloatCmp
 *		qsort comparator for floats.
 */
static int
FloatCmp(const void *a, const void *b)
{
	float		x = *(const float *) a;
	float		y = *(const float *) b;

	return (x > y) - (x < y);
}

/*
 * MvivfTrainQuantizer
 *		Spherical k-means over the n sample rows (shuffled in place) for the
 *		centroids of q (dim, nbits, nlists and codeSize set by the caller),
 *		then bucket cutoffs and weights from the sample residuals.  scores is
 *		scratch of MVIVF_ASSIGN_BLOCK x nlists floats.
 */
void
MvivfTrainQuantizer(MvivfQuantizer * q, float *sample, int64 n, int iters,
					pg_prng_state *prng, float *scores)
{
	int			dim = q->dim;
	int			nlists = q->nlists;
	int			nb = 1 << q->nbits;
	float	   *sums;
	int64	   *counts;
	uint32	   *assign;
	uint8	   *scratch;
	float	   *vals;
	int64		nvals;
	int64		stride;
	int64		i;
	int			it;
	int			b;

	/* shuffle the sample so that its first nlists rows are a random seed */
	for (i = n - 1; i > 0; i--)
	{
		int64		j = pg_prng_uint64_range(prng, 0, i);
		int			d;

		for (d = 0; d < dim; d++)
		{
			float		t = sample[i * dim + d];

			sample[i * dim + d] = sample[j * dim + d];
			sample[j * dim + d] = t;
		}
	}
	q->centroids = palloc_extended(sizeof(float) * (Size) nlists * dim, MCXT_ALLOC_HUGE);
	memcpy(q->centroids, sample, sizeof(float) * (Size) nlists * dim);
	for (i = 0; i < nlists; i++)
		NormalizeRow(q->centroids + i * dim, dim);

	sums = palloc_extended(sizeof(float) * (Size) nlists * dim, MCXT_ALLOC_HUGE);
	counts = palloc(sizeof(int64) * nlists);
	assign = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);
	scratch = palloc_extended((Size) n * q->codeSize, MCXT_ALLOC_HUGE);
	/* cutoffs are irrelevant while training: codes are discarded */
	for (b = 0; b < MVIVF_MAX_BUCKETS; b++)
		q->cutoffs[b] = 0;

	for (it = 0; it < iters; it++)
	{
		const int64 chunk = 4096;
		int64		start;

		MvivfPrepareCoarse(q);
		memset(sums, 0, sizeof(float) * (Size) nlists * dim);
		memset(counts, 0, sizeof(int64) * nlists);
		for (start = 0; start < n; start += chunk)
		{
			int64		m = Min(chunk, n - start);

			CHECK_FOR_INTERRUPTS();
			MvivfAssignEncode(q, sample + start * dim, m, assign + start,
							  scratch + start * q->codeSize, scores);
		}
		for (i = 0; i < n; i++)
		{
			float	   *s = sums + (Size) assign[i] * dim;
			const float *x = sample + i * dim;
			int			d;

			for (d = 0; d < dim; d++)
				s[d] += x[d];
			counts[assign[i]]++;
		}
		for (i = 0; i < nlists; i++)
		{
			float	   *c = q->centroids + i * dim;

			if (counts[i] == 0)
			{
				/* re-seed an empty list with a random sample row */
				int64		r = pg_prng_uint64_range(prng, 0, n - 1);

				memcpy(c, sample + r * dim, sizeof(float) * dim);
			}
			else
				memcpy(c, sums + i * dim, sizeof(float) * dim);
			NormalizeRow(c, dim);
		}
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, it + 1);
	}

	/* final assignment, then quantiles of the residual coordinates */
	MvivfPrepareCoarse(q);
	for (i = 0; i < n; i += 4096)
		MvivfAssignEncode(q, sample + i * dim, Min(4096, n - i), assign + i,
						  scratch + i * q->codeSize, scores);
	stride = Max(1, (n * dim) / MVIVF_QUANT_VALUES);
	vals = palloc_extended(sizeof(float) * ((n * dim) / stride + 1), MCXT_ALLOC_HUGE);
	nvals = 0;
	for (i = 0; i < n * dim; i += stride)
	{
		int64		row = i / dim;
		int			d = i % dim;

		vals[nvals++] = sample[i] - q->centroids[(Size) assign[row] * dim + d];
	}
	qsort(vals, nvals, sizeof(float), FloatCmp);
	for (b = 0; b < nb; b++)
	{
		int64		lo = nvals * b / nb;
		int64		hi = nvals * (b + 1) / nb;
		double		sum = 0;
		int64		j;

		for (j = lo; j < hi; j++)
			sum += vals[j];
		q->weights[b] = hi > lo ? (float) (sum / (hi - lo)) : 0;
		if (b < nb - 1)
			q->cutoffs[b] = vals[Min(hi, nvals - 1)];
	}
	pfree(vals);
	pfree(sums);
	pfree(counts);
	pfree(assign);
	pfree(scratch);
}
